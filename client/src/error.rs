use std::time::Duration;

use hpc_primitives::contract::{code_in, sdk_codes};

/// Errors of the client library; each says what failed and, where it can, how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Keys(#[from] crate::keys::KeysError),
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// Writing the command's output failed (e.g. a closed pipe: `hpcd … | head`).
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
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
    /// A CometBFT RPC call failed. Shown as one line ([`rpc_error_text`]): the
    /// tendermint-rpc error is deliberately not the `source()` of this one, since its Display
    /// is an eyre report (`Caused by`, `Location`, and a backtrace under `RUST_BACKTRACE`)
    /// that `{:#}` of an `anyhow` chain would print. [`ClientError::rpc_error`] returns it.
    #[error("CometBFT RPC {url}: {}{}", rpc_error_text(.error), rpc_hint(.error))]
    Rpc {
        url: String,
        error: Box<tendermint_rpc::Error>,
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
    /// The node accepted the tx, then waiting for its block failed: it may well be
    /// committed, so it must not be sent again blindly.
    #[error(
        "tx {txhash} was accepted by the node, but its inclusion could not be confirmed ({reason}); \
         check with `hpcd query tx {txhash}` before sending it again"
    )]
    Unconfirmed { txhash: String, reason: String },
    #[error(
        "CometBFT RPC {url}: malformed answer to {call} (the RPC library could not decode it)"
    )]
    MalformedRpcAnswer { url: String, call: &'static str },
    #[error(transparent)]
    Proof(#[from] crate::proof::ProofError),
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: prost::DecodeError,
    },
}

impl ClientError {
    /// A failed CometBFT RPC call to `url`.
    pub fn rpc(url: impl Into<String>, error: tendermint_rpc::Error) -> Self {
        Self::Rpc {
            url: url.into(),
            error: Box::new(error),
        }
    }

    /// The tendermint-rpc error of a failed RPC call, for callers that inspect it. Do not
    /// format it for people: its Display is a multi-line report; use [`rpc_error_text`].
    pub fn rpc_error(&self) -> Option<&tendermint_rpc::Error> {
        match self {
            ClientError::Rpc { error, .. } => Some(error),
            _ => None,
        }
    }

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

/// Longest text [`rpc_error_text`] and [`error_chain_text`] return (bytes, before `…`).
pub const MAX_CAUSE_LEN: usize = 300;

/// A tendermint-rpc error as one line: its detail and the causes its trace records (e.g.
/// `HTTP error: error sending request for url (…): … Connection refused (os error 111)`),
/// at most [`MAX_CAUSE_LEN`] bytes. Never the eyre report its Display prints (`Caused by`,
/// `Location` with a library source path, and a backtrace under `RUST_BACKTRACE`), and
/// without formatting that report, so no backtrace is ever resolved.
pub fn rpc_error_text(error: &tendermint_rpc::Error) -> String {
    let causes = error.trace().chain().map(|cause| cause.to_string());
    let text = join_causes(causes);
    if text.is_empty() {
        join_causes(std::iter::once(error.detail().to_string()))
    } else {
        text
    }
}

/// An error and its `source()` chain as one line (`outer: inner: …`), at most
/// [`MAX_CAUSE_LEN`] bytes; a cause whose text the line already holds is not repeated.
pub fn error_chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let causes = std::iter::successors(Some(error), |e| e.source()).map(|e| e.to_string());
    join_causes(causes)
}

/// Joins the first line of each cause with `": "`, skipping empty causes and ones the
/// line already holds, and bounds the result to [`MAX_CAUSE_LEN`] bytes.
fn join_causes(causes: impl Iterator<Item = String>) -> String {
    let mut line = String::new();
    for cause in causes {
        let first = cause.lines().next().unwrap_or_default().trim();
        if first.is_empty() || line.contains(first) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(first);
        if line.len() > MAX_CAUSE_LEN {
            break;
        }
    }
    if line.len() <= MAX_CAUSE_LEN {
        return line;
    }
    let mut end = MAX_CAUSE_LEN;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// The hint an RPC error gets when the node could not be reached at all (not when it
/// answered with an error).
fn rpc_hint(error: &tendermint_rpc::Error) -> &'static str {
    use tendermint_rpc::error::ErrorDetail;
    match error.detail() {
        ErrorDetail::Http(_)
        | ErrorDetail::Io(_)
        | ErrorDetail::Timeout(_)
        | ErrorDetail::WebSocket(_)
        | ErrorDetail::WebSocketTimeout(_) => " (is the node running? see --node)",
        _ => "",
    }
}
