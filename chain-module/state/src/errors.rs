//! Cosmos-style error codes: a `(codespace, code)` pair plus a log line, returned in
//! `CheckTx` / `FinalizeBlock` results exactly as the Cosmos SDK reports them, so clients
//! that branch on `code == 32` (sequence mismatch) and friends keep working.

use std::fmt;

pub const SDK: &str = "sdk";

/// A failed tx or message: codespace, code and a human-readable log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxError {
    pub codespace: &'static str,
    pub code: u32,
    pub log: String,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.log,
            hpc_primitives::contract::code_text(self.codespace, self.code)
        )
    }
}

impl std::error::Error for TxError {}

macro_rules! sdk_errors {
    ($($name:ident = $code:literal, $doc:literal;)*) => {
        impl TxError {
            $(
                #[doc = $doc]
                pub fn $name(log: impl Into<String>) -> Self {
                    Self { codespace: SDK, code: $code, log: log.into() }
                }
            )*
        }
    };
}

// Codes and meanings of cosmos-sdk `types/errors`.
sdk_errors! {
    tx_decode = 2, "The tx bytes could not be decoded.";
    unauthorized = 4, "Signature verification failed or the signer is not allowed.";
    insufficient_funds = 5, "An account does not hold enough coins.";
    unknown_request = 6, "Unknown message type or query path.";
    invalid_address = 7, "A malformed bech32 address.";
    invalid_pubkey = 8, "A missing or mismatched public key.";
    unknown_address = 9, "The account does not exist.";
    invalid_coins = 10, "Malformed, unsorted, duplicate or non-positive coins.";
    out_of_gas = 11, "The tx ran out of gas.";
    memo_too_large = 12, "The memo exceeds the limit.";
    insufficient_fee = 13, "The fee is below the node's minimum gas price.";
    too_many_signatures = 14, "More signatures than allowed.";
    no_signatures = 15, "The tx carries no signatures.";
    invalid_request = 18, "A field of the request is invalid.";
    tx_too_large = 21, "The tx exceeds the size limit.";
    not_found = 22, "The requested item does not exist.";
    invalid_height = 26, "An invalid height.";
    invalid_chain_id = 28, "The chain id is wrong or missing.";
    tx_timeout_height = 30, "The tx timed out (timeout_height passed).";
    wrong_sequence = 32, "Account sequence mismatch.";
    logic = 35, "An internal logic error.";
    not_supported = 37, "The feature is not supported.";
    invalid_gas_limit = 41, "The gas limit is invalid.";
}

/// x/hpc's codespace and codes (stateful failures; stateless ones use `sdk` codes): the
/// shared contract of `hpc_primitives::contract::codes`, which the client and the enforcer
/// read too.
pub mod hpc_codes {
    pub use hpc_primitives::contract::codes::*;
}

impl TxError {
    /// An x/hpc error.
    pub fn hpc(code: u32, log: impl Into<String>) -> Self {
        Self {
            codespace: hpc_codes::CODESPACE,
            code,
            log: log.into(),
        }
    }
}

/// A query failure, mapped to a gRPC status by the gRPC server and to an ABCI code by
/// `abci_query`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("unknown query path {0}; paths are /<package.Service>/<Method>")]
    UnknownPath(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// The Cosmos SDK code that `abci_query` reports for this error.
    pub fn abci_code(&self) -> u32 {
        match self {
            QueryError::NotFound(_) => 22,
            QueryError::InvalidArgument(_) => 18,
            QueryError::UnknownPath(_) => 6,
            QueryError::Internal(_) => 1,
        }
    }
}

impl From<hpc_primitives::CoinsError> for TxError {
    fn from(e: hpc_primitives::CoinsError) -> Self {
        TxError::invalid_coins(e.0)
    }
}
