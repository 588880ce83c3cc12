use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use hpc_store::{StateRead, StateWrite};
use serde::{Deserialize, Serialize};

use super::keeper::{parse_amount, supply_prefix, BankKeeper};
use crate::address::Address;
use crate::auth::AuthKeeper;
use crate::coins::Coins;
use crate::serde_util::GenesisError;

/// `app_state.bank` in the Cosmos SDK's JSON shape (params and metadata omitted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankGenesis {
    #[serde(default)]
    pub balances: Vec<GenesisBalance>,
    /// Optional; when given it must equal the sum of balances.
    #[serde(default)]
    pub supply: Vec<JsonCoin>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBalance {
    pub address: String,
    pub coins: Vec<JsonCoin>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCoin {
    pub denom: String,
    pub amount: String,
}

fn to_proto(coins: &[JsonCoin]) -> Vec<Coin> {
    coins
        .iter()
        .map(|c| Coin {
            denom: c.denom.clone(),
            amount: c.amount.clone(),
        })
        .collect()
}

fn to_json(coins: &Coins) -> Vec<JsonCoin> {
    coins
        .to_proto()
        .into_iter()
        .map(|c| JsonCoin {
            denom: c.denom,
            amount: c.amount,
        })
        .collect()
}

impl BankGenesis {
    pub fn validate_and_apply(&self, state: &mut impl StateWrite) -> Result<(), GenesisError> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, bal) in self.balances.iter().enumerate() {
            let field = format!("bank.balances[{i}]");
            let address: Address = bal
                .address
                .parse()
                .map_err(|e| GenesisError::new(format!("{field}.address"), e))?;
            if !seen.insert(address) {
                return Err(GenesisError::new(
                    format!("{field}.address"),
                    format!("duplicate balance entry for {address}"),
                ));
            }
            let coins = Coins::from_proto(&to_proto(&bal.coins), &format!("{field}.coins"))
                .map_err(|e| GenesisError::new(format!("{field}.coins"), e))?;
            // Every funded address has an account, as on first receipt of funds.
            AuthKeeper::get_or_create(state, &address);
            BankKeeper::mint(state, &address, &coins);
        }
        if !self.supply.is_empty() {
            let declared = Coins::from_proto(&to_proto(&self.supply), "bank.supply")
                .map_err(|e| GenesisError::new("bank.supply", e))?;
            let actual = Self::total_supply(state);
            if declared != actual {
                return Err(GenesisError::new(
                    "bank.supply",
                    format!(
                        "declared supply {declared} does not equal the sum of balances {actual}"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn total_supply(state: &impl StateRead) -> Coins {
        let mut out = Coins::new();
        for (k, v) in state.prefix(supply_prefix(), usize::MAX) {
            let denom = std::str::from_utf8(&k[supply_prefix().len()..]).expect("corrupt denom");
            out = out.plus(&Coins::single(denom, parse_amount(&v)));
        }
        out
    }

    pub fn export(state: &impl StateRead) -> Self {
        let mut balances = Vec::new();
        for account in AuthKeeper::all_accounts(state) {
            let address: Address = account.address.parse().expect("stored addresses are valid");
            let coins = BankKeeper::all_balances(state, &address);
            if !coins.is_empty() {
                balances.push(GenesisBalance {
                    address: account.address,
                    coins: to_json(&coins),
                });
            }
        }
        Self {
            balances,
            supply: to_json(&Self::total_supply(state)),
        }
    }
}
