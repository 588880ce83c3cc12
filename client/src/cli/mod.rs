//! The `tx` and `query` command trees of `hpcd`, as a library so the binary stays thin.

mod hpc;
mod logging;
mod output;
mod query;
mod tx;
mod verify;

pub use logging::init_logging;
pub use output::OutputFormat;
pub use query::{run_query, QueryCommand};
pub use tx::{run_tx, sign_broadcast_print, TxArgs, TxCommand};
pub use verify::{run_verify, VerifyArgs};

use clap::Args;

use cosmrs::crypto::secp256k1::SigningKey;

use crate::error::Result;
use crate::keys::Keyring;
use crate::transport::Transport;

/// Where to reach the node (Cosmos CLI habits).
#[derive(Args, Clone, Debug)]
pub struct ConnectionArgs {
    /// CometBFT RPC endpoint. When given, queries go through `abci_query` and txs through
    /// CometBFT's broadcast_tx_sync; otherwise everything uses gRPC.
    #[arg(long, global = true, env = "HPCD_NODE")]
    pub node: Option<String>,
    /// The node's gRPC endpoint.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9090",
        env = "HPCD_GRPC_ADDR"
    )]
    pub grpc_addr: String,
    /// Output format: text or json.
    #[arg(long, short = 'o', global = true, default_value = "text")]
    pub output: OutputFormat,
}

impl ConnectionArgs {
    /// A client for queries (no chain id needed).
    pub fn query_client(&self) -> Result<crate::chain::ChainClient> {
        Ok(crate::chain::ChainClient {
            transport: self.transport()?,
            chain_id: String::new(),
            query_height: 0,
        })
    }

    pub fn transport(&self) -> Result<Transport> {
        match &self.node {
            Some(node) => Transport::rpc(node),
            None => Transport::grpc(&self.grpc_addr),
        }
    }
}

/// Where tx commands get signing keys: a key name, or the address of a key.
pub trait KeySource {
    fn signing_key(&self, name_or_address: &str) -> Result<SigningKey>;
}

impl KeySource for Keyring {
    fn signing_key(&self, name_or_address: &str) -> Result<SigningKey> {
        let info = self.show(name_or_address)?;
        Ok(Keyring::signing_key(self, &info.name)?)
    }
}
