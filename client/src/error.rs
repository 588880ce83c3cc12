use std::time::Duration;

use hpc_primitives::contract::{code_in, sdk_codes};

/// Errors of the client library; each says what failed and, where it can, how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Keys(#[from] crate::keys::KeysError),
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error(
        "cannot connect to gRPC endpoint {addr}: {reason} (is the node running? see --grpc-addr)"
    )]
    Connect { addr: String, reason: String },
    #[error("{path}: {}: {}", status.code(), status.message())]
    // Boxed: tonic::Status is large and errors are rare; every Result<_, ClientError> stays small.
    Grpc {
        path: String,
        status: Box<tonic::Status>,
    },
    #[error("{path}: query failed with code {code}: {log}")]
    AbciQuery {
        path: String,
        code: u32,
        log: String,
    },
    // The detail only: tendermint-rpc's Display appends a backtrace when RUST_BACKTRACE is set.
    #[error("CometBFT RPC {url}: {} (is the node running? see --node)", .source.detail())]
    Rpc {
        url: String,
        #[source]
        source: Box<tendermint_rpc::Error>,
    },
    #[error("tx {txhash} failed (codespace {codespace}, code {code}): {log}")]
    TxFailed {
        txhash: String,
        code: u32,
        codespace: String,
        log: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("account {0} does not exist on chain yet; it must first receive funds")]
    AccountNotFound(String),
    #[error("tx {hash} was not included within {timeout:?}")]
    Timeout { hash: String, timeout: Duration },
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: prost::DecodeError,
    },
}

impl ClientError {
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// True when the chain rejected a tx for its account sequence (Cosmos code 32), the
    /// one rejection a sender recovers from by re-reading the account.
    pub fn is_sequence_mismatch(&self) -> bool {
        matches!(self, ClientError::TxFailed { code, codespace, .. }
            if *code == sdk_codes::WRONG_SEQUENCE && codespace == sdk_codes::CODESPACE)
    }

    /// True when the gRPC status or ABCI query code means "not found".
    pub fn is_not_found(&self) -> bool {
        match self {
            ClientError::Grpc { status, .. } => status.code() == tonic::Code::NotFound,
            ClientError::AbciQuery { code, .. } => *code == sdk_codes::NOT_FOUND || *code == 38,
            _ => false,
        }
    }

    /// The `(codespace, code)` the chain refused a tx with: from the result of a tx that
    /// failed in a block or at CheckTx, or from a failed simulation, which carries it only
    /// in its message (`hpc_primitives::contract::code_text`). `None` for any other error.
    pub fn tx_code(&self) -> Option<(String, u32)> {
        match self {
            ClientError::TxFailed {
                code, codespace, ..
            } => Some((codespace.clone(), *code)),
            ClientError::Grpc { status, .. } if status.code() == tonic::Code::InvalidArgument => {
                code_in(status.message()).map(|(cs, code)| (cs.to_string(), code))
            }
            ClientError::AbciQuery { log, .. } => {
                code_in(log).map(|(cs, code)| (cs.to_string(), code))
            }
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
