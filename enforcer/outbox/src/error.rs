//! Errors of the outbox itself (storage) and of the chain sink.

use crate::item::ItemKind;

/// A failure of the outbox's own storage. The deliverer stops on it (the daemon should
/// treat it as fatal: the enforcer must not act on work it cannot record).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The redb file could not be opened, read or written (boxed: redb's error is large).
    #[error("outbox storage: {0}")]
    Storage(Box<redb::Error>),
    /// A stored row could not be decoded.
    #[error("outbox item {seq} is corrupt: {reason}")]
    Corrupt {
        /// Sequence number of the row.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An enqueued item had an empty `record_id` / `violation_id`.
    #[error("{kind} at index {index} has an empty id; outbox items need deterministic ids")]
    MissingId {
        /// Kind of the item.
        kind: ItemKind,
        /// Position in the enqueued vector.
        index: usize,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for OutboxError {
            fn from(e: $t) -> Self {
                OutboxError::Storage(Box::new(e.into()))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why a [`ChainSink`](crate::ChainSink) call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The node could not be reached or did not answer (retry with backoff). A broadcast
    /// that ends like this may still have reached the mempool; that is fine, see the
    /// exactly-once argument in the crate docs.
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// The account sequence used to sign was stale (sdk code 32): re-read the account
    /// and retry at once.
    #[error("account sequence mismatch: {0}")]
    SequenceMismatch(String),
    /// The node refused the tx (CheckTx failed); nothing of it was stored.
    #[error("tx rejected (codespace {codespace}, code {code}): {log}")]
    Rejected {
        /// ABCI code.
        code: u32,
        /// Codespace of the code.
        codespace: String,
        /// Log line.
        log: String,
    },
}
