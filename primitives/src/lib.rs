//! Primitive chain types shared by every crate: bech32 account addresses, coins with
//! integer amounts, and gas prices in 18-digit fixed point (never floating point).

pub mod address;
pub mod coins;

pub use address::{Address, AddressError, BECH32_PREFIX};
pub use coins::{Coins, CoinsError, Dec, GasPrices, FEE_DENOM};
