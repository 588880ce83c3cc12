//! Durable, crash-safe outbox for the enforcer's routing audit records and violations.
//!
//! The enforcer [`Outbox::enqueue`]s a [`RoutingAuditRecord`] or [`RoutingViolation`]
//! *before* any side effect it describes; a [`Deliverer`] then moves it to the chain in
//! batched txs through a [`ChainSink`] (the enforcer's signer and RPC clients). A crash or
//! a chain outage delays items, never loses or duplicates them (SPEC §5).
//!
//! # Storage
//!
//! One redb file. Items are keyed by a sequence number that only grows (FIFO), with a
//! unique index on `(kind, id)`: enqueueing an id that is already queued (or dead-lettered)
//! is a no-op. Every mutation is a single durable transaction.
//!
//! # State machine
//!
//! ```text
//!  enqueue ──► Pending ──mark (durable, before broadcast)──► InFlight{txhash: None}
//!                 ▲                                              │ submit Ok(hash)
//!                 │                                              ▼
//!                 ├─── absent on chain ◄─── resolve ◄──── InFlight{txhash: Some}
//!                 │                            │
//!                 └── isolated (sent alone) ◄──┤ batch refused, maybe one item's fault
//!                                              │
//!           removed (Confirmed) ◄── tx code 0, or stored() is this item
//!           dead letters        ◄── refused alone and absent on chain
//! ```
//!
//! A pass ([`Deliverer::run_once`]) does:
//!
//! 1. **In-flight items**, per tx: `tx_result` → included with code 0: confirm (delete);
//!    included with a non-zero code: handled like a refused batch (below); not found and
//!    older than [`DelivererConfig::inflight_timeout_secs`] (or no hash recorded, i.e. the
//!    process stopped mid-broadcast, and timed out): ask the chain what it `stored` under
//!    each id, confirm the items it holds as they are ([`OutboxItem::is_delivered_as`]:
//!    same content, signed by us), dead-letter those whose id holds another item, put the
//!    others back to pending.
//! 2. **Pending items**: up to `max_batch_size` items of one kind in FIFO order (kinds
//!    alternate), marked in flight durably, then `submit`ted; on `Ok(hash)` the hash is
//!    recorded. `Unavailable`: back to pending, back off. `SequenceMismatch`: resend at
//!    once, once. Refused batch (`Rejected` at CheckTx, or failed in the block):
//!    * duplicate (x/hpc 9 / 13: the same item from the same signer is already stored):
//!      `stored` per item, confirm the items the chain holds as they are, resend the rest;
//!    * an id taken by another item (x/hpc 18 / 19) is the item's own failure: like any
//!      other refusal below, never a delivery;
//!    * sequence / fee / gas / mempool errors (sdk codes): resend later;
//!    * anything else (an invalid item, x/hpc 14 batch too large...): the items go back
//!      *isolated* and are sent one per tx, so the good ones still land; an item refused on
//!      its own (and absent on chain) goes to the dead letters with the error
//!      ([`Outbox::dead_letters`], [`Outbox::requeue_dead_letters`]) — never dropped.
//!
//! # Exactly once
//!
//! * **At most once on chain**: ids are deterministic and chosen by the enforcer (in its
//!   own namespace, `<provider>:…`, which nobody else can use), and x/hpc refuses a whole
//!   tx containing an id it already stores (codes 9 and 13 for the same item, 18 and 19
//!   for another). Any number of resubmissions of an item, by any sequence of crashes,
//!   stores it once.
//! * **At least once**: an item leaves the outbox only when the chain has it (its tx was
//!   included with code 0, or the chain stores it under its id with the same content and
//!   signer) or as a dead letter. It is durably in
//!   flight before the broadcast, so a crash at any point leaves it queued; whatever
//!   state it is found in is resolved against the chain (`tx_result`, then `stored`), and
//!   "unknown" always resolves to "send again", which the first point makes harmless.
//!
//! The deliverer keeps no state of its own: dropping it (and the outbox) at any await
//! point is a crash, and reopening the file resumes. The tests in `tests/` crash it at
//! every sink call of a scenario against an in-memory chain enforcing x/hpc's rules.
//!
//! # Metrics
//!
//! [`Outbox::depth`] (pending / in flight per kind, dead letters) and
//! [`Outbox::oldest_pending_age`] for gauges; the [`Report`] of each pass for counters.
//!
//! [`RoutingAuditRecord`]: hpc_proto::virtengine::hpc::v1::RoutingAuditRecord
//! [`RoutingViolation`]: hpc_proto::virtengine::hpc::v1::RoutingViolation

mod deliver;
mod error;
mod item;
mod store;

pub use deliver::{
    Backoff, ChainSink, Deliverer, DelivererConfig, DeliveryObserver, Report, TxStatus,
    CODE_BATCH_TOO_LARGE, CODE_DUPLICATE_RECORD, CODE_DUPLICATE_VIOLATION, CODE_RECORD_ID_CONFLICT,
    CODE_VIOLATION_ID_CONFLICT, CODE_WRONG_SEQUENCE, HPC_CODESPACE, SDK_CODESPACE,
};
pub use error::{OutboxError, SubmitError};
pub use item::{Batch, ItemKind, ItemRef, OutboxItem};
pub use store::{DeadLetter, Depth, Entry, ItemState, KindDepth, Outbox};
