// Code every validator runs: no unwrap outside tests (errors are typed).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
//! Primitive chain types shared by every crate: bech32 account addresses, coins with
//! integer amounts, gas prices in 18-digit fixed point (never floating point), and the
//! x/hpc contract between the chain and its clients ([`contract`]).

pub mod address;
pub mod coins;
pub mod contract;

pub use address::{consensus_address, Address, AddressError, BECH32_PREFIX, VALCONS_PREFIX};
pub use coins::{Coins, CoinsError, Dec, GasPrices, FEE_DENOM};
