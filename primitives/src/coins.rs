//! Coins with integer amounts and decimal gas prices in 18-digit fixed point, so fee
//! arithmetic never touches floating point.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cosmos_sdk_proto::cosmos::base::v1beta1::Coin as ProtoCoin;

/// The staking/fee denomination of the chain.
pub const FEE_DENOM: &str = "uvirt";

/// Invalid coins, naming the field they came from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CoinsError(pub String);

/// A denomination-sorted set of positive amounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coins(BTreeMap<String, u128>);

fn valid_denom(denom: &str) -> bool {
    // cosmos-sdk: [a-zA-Z][a-zA-Z0-9/:._-]{2,127}
    let mut chars = denom.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && (3..=128).contains(&denom.len())
        && chars.all(|c| c.is_ascii_alphanumeric() || "/:._-".contains(c))
}

impl Coins {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(denom: &str, amount: u128) -> Self {
        let mut c = Self::new();
        if amount > 0 {
            c.0.insert(denom.to_string(), amount);
        }
        c
    }

    /// Validates proto coins as `sdk.Coins.Validate` does: valid denoms, positive
    /// amounts, sorted, no duplicates.
    pub fn from_proto(coins: &[ProtoCoin], field: &str) -> Result<Self, CoinsError> {
        Self::parse(coins, field, false)
    }

    /// As [`Coins::from_proto`], but zero amounts are valid and hold nothing (a fee whose
    /// amounts are all zero, which the Cosmos SDK accepts and deducts nothing for).
    pub fn from_proto_zeros_allowed(coins: &[ProtoCoin], field: &str) -> Result<Self, CoinsError> {
        Self::parse(coins, field, true)
    }

    fn parse(coins: &[ProtoCoin], field: &str, zeros_allowed: bool) -> Result<Self, CoinsError> {
        let mut out = BTreeMap::new();
        let mut last: Option<&str> = None;
        for coin in coins {
            if !valid_denom(&coin.denom) {
                return Err(CoinsError(format!(
                    "{field}: invalid denom {:?}",
                    coin.denom
                )));
            }
            let amount: u128 = coin.amount.parse().map_err(|_| {
                CoinsError(format!(
                    "{field}: amount {:?} of {} is not a non-negative integer",
                    coin.amount, coin.denom
                ))
            })?;
            if amount == 0 && !zeros_allowed {
                return Err(CoinsError(format!(
                    "{field}: amount of {} must be positive",
                    coin.denom
                )));
            }
            if let Some(prev) = last {
                if prev >= coin.denom.as_str() {
                    return Err(CoinsError(format!(
                        "{field}: denoms must be sorted and unique ({prev} before {})",
                        coin.denom
                    )));
                }
            }
            last = Some(&coin.denom);
            if amount > 0 {
                out.insert(coin.denom.clone(), amount);
            }
        }
        Ok(Self(out))
    }

    pub fn to_proto(&self) -> Vec<ProtoCoin> {
        self.0
            .iter()
            .map(|(denom, amount)| ProtoCoin {
                denom: denom.clone(),
                amount: amount.to_string(),
            })
            .collect()
    }

    pub fn amount_of(&self, denom: &str) -> u128 {
        self.0.get(denom).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u128)> {
        self.0.iter().map(|(d, a)| (d.as_str(), *a))
    }
}

impl fmt::Display for Coins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(d, a)| format!("{a}{d}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses `"100uvirt,5foo"` (the CLI and genesis format).
impl FromStr for Coins {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut proto = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let split = part
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| format!("coin {part:?} has no denomination (e.g. 100uvirt)"))?;
            let (amount, denom) = part.split_at(split);
            if amount.is_empty() {
                return Err(format!("coin {part:?} has no amount (e.g. 100uvirt)"));
            }
            proto.push(ProtoCoin {
                denom: denom.to_string(),
                amount: amount.to_string(),
            });
        }
        proto.sort_by(|a, b| a.denom.cmp(&b.denom));
        Coins::from_proto(&proto, "coins").map_err(|e| e.0)
    }
}

/// A non-negative decimal with 18 fractional digits (cosmos `LegacyDec`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dec(u128);

impl Dec {
    pub const SCALE: u128 = 1_000_000_000_000_000_000;

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// `ceil(self × n)`, the fee a gas limit requires at this price.
    pub fn mul_ceil(&self, n: u64) -> u128 {
        let product = self.0.saturating_mul(n as u128);
        product.div_ceil(Self::SCALE)
    }

    /// `floor(self × n)`.
    pub fn mul_floor(&self, n: u64) -> u128 {
        self.0.saturating_mul(n as u128) / Self::SCALE
    }
}

impl FromStr for Dec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() && frac.is_empty()
            || !int.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
        {
            return Err(format!("{s:?} is not a non-negative decimal number"));
        }
        if frac.len() > 18 {
            return Err(format!("{s:?} has more than 18 decimal places"));
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| format!("{s:?} is too large"))?
        };
        let frac_scaled: u128 = format!("{frac:0<18}").parse().unwrap_or(0);
        int.checked_mul(Self::SCALE)
            .and_then(|v| v.checked_add(frac_scaled))
            .map(Dec)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = self.0 / Self::SCALE;
        let frac = self.0 % Self::SCALE;
        if frac == 0 {
            write!(f, "{int}")
        } else {
            let frac = format!("{frac:018}");
            write!(f, "{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// Node-local minimum gas prices, e.g. `"0.025uvirt"` (`minimum-gas-prices` in app.toml).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GasPrices(pub BTreeMap<String, Dec>);

impl FromStr for GasPrices {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let split = part
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| {
                    format!("gas price {part:?} has no denomination (e.g. 0.025uvirt)")
                })?;
            let (amount, denom) = part.split_at(split);
            if !valid_denom(denom) {
                return Err(format!("gas price {part:?}: invalid denom {denom:?}"));
            }
            out.insert(denom.to_string(), amount.parse::<Dec>()?);
        }
        Ok(Self(out))
    }
}

impl GasPrices {
    /// The fee required for `gas` in each denom with a non-zero price. A tx must pay at
    /// least the required amount in one of them (cosmos `checkTxFeeWithValidatorMinGasPrices`).
    pub fn required_fees(&self, gas: u64) -> Coins {
        let mut out = Coins::new();
        for (denom, price) in &self.0 {
            if !price.is_zero() {
                out.0.insert(denom.clone(), price.mul_ceil(gas));
            }
        }
        out
    }
}

impl Coins {
    /// The sum of two coin sets (saturating; supplies are far below u128::MAX).
    pub fn plus(&self, other: &Coins) -> Coins {
        let mut out = self.clone();
        for (denom, amount) in other.iter() {
            let entry = out.0.entry(denom.to_string()).or_insert(0);
            *entry = entry.saturating_add(amount);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coins_parse_validate_and_display() {
        let c: Coins = "5foo, 100uvirt".parse().unwrap();
        assert_eq!(c.to_string(), "5foo,100uvirt");
        assert_eq!(c.amount_of(FEE_DENOM), 100);
        assert!("100"
            .parse::<Coins>()
            .unwrap_err()
            .contains("no denomination"));
        assert!("0uvirt".parse::<Coins>().unwrap_err().contains("positive"));
        assert!("1uvirt,2uvirt"
            .parse::<Coins>()
            .unwrap_err()
            .contains("unique"));
        let unsorted = [
            ProtoCoin {
                denom: "uvirt".into(),
                amount: "1".into(),
            },
            ProtoCoin {
                denom: "abc".into(),
                amount: "1".into(),
            },
        ];
        assert!(Coins::from_proto(&unsorted, "amount")
            .unwrap_err()
            .0
            .contains("sorted"));
        let neg = [ProtoCoin {
            denom: "uvirt".into(),
            amount: "-1".into(),
        }];
        assert!(Coins::from_proto(&neg, "amount")
            .unwrap_err()
            .0
            .contains("non-negative integer"));
    }

    #[test]
    fn gas_prices_are_exact_fixed_point() {
        let p: GasPrices = "0.025uvirt".parse().unwrap();
        assert_eq!(p.required_fees(200_000).amount_of("uvirt"), 5_000);
        assert_eq!(p.required_fees(1).amount_of("uvirt"), 1); // ceil
        assert_eq!("0.1".parse::<Dec>().unwrap().to_string(), "0.1");
        assert!("1.2.3uvirt".parse::<GasPrices>().is_err());
        assert!("0.0000000000000000001".parse::<Dec>().is_err());
        let zero: GasPrices = "0uvirt".parse().unwrap();
        assert!(zero.required_fees(100).is_empty());
    }
}
