//! Client library for the VirtEngine HPC chain: keys, tx building and signing, queries by
//! gRPC method path (over gRPC or `abci_query`), broadcasting, and the `hpcd` tx/query CLI.

pub mod chain;
pub mod cli;
pub mod error;
pub mod events;
pub mod hpc;
pub mod keys;
pub mod policy;
pub mod proof;
pub mod transport;
pub mod tx;

pub use chain::ChainClient;
pub use error::{ClientError, Result};
pub use transport::{Transport, TxResult};
pub use tx::{GasSetting, SignerAccount, TxOptions};
