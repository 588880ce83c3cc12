//! Account addresses: 20 bytes, shown as bech32 with the chain's prefix.

use std::fmt;
use std::str::FromStr;

use bech32::{Bech32, Hrp};
use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

pub const BECH32_PREFIX: &str = "virtengine";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 20]);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("invalid bech32 address {0:?}: {1}")]
    Bech32(String, String),
    #[error("address {address:?} has prefix {found:?}, expected {BECH32_PREFIX:?}")]
    WrongPrefix { address: String, found: String },
    #[error("address {0:?} must decode to 20 bytes, got {1}")]
    WrongLength(String, usize),
}

impl Address {
    /// The Cosmos account address of a compressed secp256k1 key:
    /// ripemd160(sha256(pubkey)).
    pub fn from_secp256k1_pubkey(compressed: &[u8]) -> Self {
        let sha = Sha256::digest(compressed);
        let rip = Ripemd160::digest(sha);
        Self(rip.into())
    }

    /// A module account address: sha256(module name)[..20], as `authtypes.NewModuleAddress`.
    pub fn module(name: &str) -> Self {
        let hash = Sha256::digest(name.as_bytes());
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[..20]);
        Self(out)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let (hrp, data) =
            bech32::decode(s).map_err(|e| AddressError::Bech32(s.to_string(), e.to_string()))?;
        if hrp.as_str() != BECH32_PREFIX {
            return Err(AddressError::WrongPrefix {
                address: s.to_string(),
                found: hrp.to_string(),
            });
        }
        let bytes: [u8; 20] = data
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::WrongLength(s.to_string(), data.len()))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(BECH32_PREFIX);
        let s = bech32::encode::<Bech32>(hrp, &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

/// Bech32 prefix of validator consensus addresses (`<prefix>valcons`, as in the Cosmos SDK).
pub const VALCONS_PREFIX: &str = "virtenginevalcons";

/// A validator's consensus address (CometBFT's 20-byte proposer address) in bech32, as
/// the Cosmos SDK writes it into `sdk_block` headers.
pub fn consensus_address(bytes: &[u8]) -> String {
    // Encoding fails only beyond bech32's length limit, far above 20 bytes.
    bech32::encode::<Bech32>(Hrp::parse_unchecked(VALCONS_PREFIX), bytes).unwrap_or_default()
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_addresses_use_the_valcons_prefix() {
        let encoded = consensus_address(&[7u8; 20]);
        let (hrp, data) = bech32::decode(&encoded).unwrap();
        assert_eq!((hrp.as_str(), data), (VALCONS_PREFIX, vec![7u8; 20]));
    }

    #[test]
    fn bech32_round_trip_and_errors_name_the_problem() {
        let addr = Address([7u8; 20]);
        let s = addr.to_string();
        assert!(s.starts_with("virtengine1"));
        assert_eq!(s.parse::<Address>().unwrap(), addr);
        let cosmos = bech32::encode::<Bech32>(Hrp::parse("cosmos").unwrap(), &[7u8; 20]).unwrap();
        assert!(matches!(
            cosmos.parse::<Address>(),
            Err(AddressError::WrongPrefix { .. })
        ));
        assert!(matches!("".parse::<Address>(), Err(AddressError::Empty)));
        let mut broken = s.clone();
        broken.pop();
        broken.push(if s.ends_with('q') { 'p' } else { 'q' });
        assert!(matches!(
            broken.parse::<Address>(),
            Err(AddressError::Bech32(..))
        ));
    }

    #[test]
    fn fee_collector_module_address_matches_cosmos() {
        // cosmos-sdk: authtypes.NewModuleAddress("fee_collector") =
        // cosmos17xpfvakm2amg962yls6f84z3kell8c5lserqta
        let cosmos = "cosmos17xpfvakm2amg962yls6f84z3kell8c5lserqta";
        let (_, bytes) = bech32::decode(cosmos).unwrap();
        assert_eq!(Address::module("fee_collector").0.to_vec(), bytes);
    }
}
