// The state machine runs on every validator: no unwrap outside tests (errors are typed).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
//! The hpcd state machine: deterministic functions of state and block facts.
//!
//! Layout follows the Cosmos SDK: one folder per module (`auth`, `bank`, `hpc`) with its
//! keeper (typed state access), message handlers, queries and genesis; `tx` holds the
//! ante pipeline; [`app::App`] ties them together for the node. Nothing here does I/O,
//! reads a clock, uses floating point, randomness or unordered iteration.

pub mod app;
pub mod auth;
pub mod bank;
pub mod codec;
pub mod consensus;
pub mod context;
pub mod errors;
pub mod events;
pub mod gas;
pub mod hpc;
pub mod query;
pub mod serde_util;
pub mod tx;

pub use hpc_primitives::{address, coins};

pub use app::{App, AppState, TxOutcome};
pub use context::BlockInfo;
pub use events::Event;
