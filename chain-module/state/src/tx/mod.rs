//! The Cosmos tx pipeline: decoding, the ante checks, message dispatch and the result.

mod ante;
mod decode;
mod msg;
pub mod unknown_fields;
mod verified;

pub use ante::{preverify_signatures, run_ante, AnteOutcome, NodeLocal, MAX_MSGS_PER_TX};
pub use decode::{decode_tx, gas_limit_of, DecodedTx};
pub use msg::{to_any, Msg, Validated, ValidatedMsg};
pub use verified::VerifiedSignatures;

/// Why a tx is being executed; decides which checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Mempool admission: ante only, with the node's minimum gas prices.
    Check,
    /// Re-admission of a mempool tx after a block: as `Check`, without verifying the
    /// signature again (it was verified when the tx entered the mempool).
    Recheck,
    /// Block execution.
    Deliver,
    /// Gas estimation: signatures are not verified and the gas limit is not enforced.
    Simulate,
}
