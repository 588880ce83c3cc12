//! Chain-wide facts fixed at genesis and needed by the tx pipeline: the chain id and the
//! block limits of CometBFT's consensus params. Stored in state so a restarted node and
//! an exported genesis agree on them.

use hpc_store::{StateRead, StateWrite};
use serde::{Deserialize, Serialize};

const CHAIN_ID: &[u8] = b"consensus/chain_id";
const LIMITS: &[u8] = b"consensus/block_limits";

/// Largest tx the app accepts, independent of the block size.
pub const MAX_TX_BYTES: u64 = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockLimits {
    /// CometBFT `block.max_bytes` (-1 = unlimited, capped by CometBFT at 100 MiB).
    pub max_bytes: i64,
    /// CometBFT `block.max_gas` (-1 = unlimited).
    pub max_gas: i64,
}

impl Default for BlockLimits {
    fn default() -> Self {
        Self {
            max_bytes: 22_020_096,
            max_gas: -1,
        }
    }
}

impl BlockLimits {
    /// The max gas a single tx (or a whole block) may use, `None` when unlimited.
    pub fn max_gas(&self) -> Option<u64> {
        u64::try_from(self.max_gas).ok()
    }
}

pub struct ConsensusKeeper;

impl ConsensusKeeper {
    pub fn chain_id(state: &impl StateRead) -> Option<String> {
        state
            .get(CHAIN_ID)
            .map(|b| String::from_utf8(b).expect("corrupt chain id"))
    }

    pub fn set_chain_id(state: &mut impl StateWrite, chain_id: &str) {
        state.put(CHAIN_ID.to_vec(), chain_id.as_bytes().to_vec());
    }

    pub fn limits(state: &impl StateRead) -> BlockLimits {
        state
            .get(LIMITS)
            .map(|b| serde_json::from_slice(&b).expect("corrupt block limits"))
            .unwrap_or_default()
    }

    pub fn set_limits(state: &mut impl StateWrite, limits: &BlockLimits) {
        state.put(
            LIMITS.to_vec(),
            serde_json::to_vec(limits).expect("limits serialize"),
        );
    }
}

/// `cosmos.consensus.v1.Query`: the block limits clients size txs by (cosmpy reads
/// `block.max_gas`). Evidence, validator and version params live in CometBFT only (its
/// `consensus_params` RPC), so they are absent here.
pub fn route_query(
    method: &str,
    data: &[u8],
    state: &dyn StateRead,
) -> Option<Result<Vec<u8>, crate::errors::QueryError>> {
    use cosmos_sdk_proto::tendermint::types::{BlockParams, ConsensusParams};
    match method {
        "Params" => Some(crate::query::handle(data, |_: QueryParamsRequest| {
            let limits = ConsensusKeeper::limits(&state);
            Ok(QueryParamsResponse {
                params: Some(ConsensusParams {
                    block: Some(BlockParams {
                        max_bytes: limits.max_bytes,
                        max_gas: limits.max_gas,
                    }),
                    ..Default::default()
                }),
            })
        })),
        _ => None,
    }
}

/// `cosmos.consensus.v1.QueryParamsRequest` (not exported by cosmos-sdk-proto 0.27).
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryParamsRequest {}

/// `cosmos.consensus.v1.QueryParamsResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryParamsResponse {
    #[prost(message, optional, tag = "1")]
    pub params: Option<cosmos_sdk_proto::tendermint::types::ConsensusParams>,
}
