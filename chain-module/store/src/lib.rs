// Code every validator runs: no unwrap outside tests (errors are typed).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
//! The typed store layer under the state machine.
//!
//! * [`StateRead`] / [`StateWrite`]: the only way modules touch state.
//! * [`Delta`]: a copy-on-write overlay (per block, per tx, per message) that is either
//!   applied to its parent or dropped, so a failed tx changes nothing.
//! * [`Storage`]: the persistent, versioned, authenticated store. Each committed height is a
//!   Jellyfish Merkle tree version; the app hash is its root. An ordered `(key, version)`
//!   index beside the tree answers point reads and range scans at any retained height.

mod delta;
mod kv;
mod storage;

pub use delta::{Changes, Delta};
pub use kv::{key_after, prefix_end, BoundedRange, Entries, StateRead, StateWrite};
pub use storage::{PreparedCommit, Snapshot, Storage, StoreError, DEFAULT_CACHE_BYTES};
