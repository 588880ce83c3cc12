//! The durable store: a redb file with the queue, the id index and the dead letters.
//!
//! Tables:
//!
//! | table    | key        | value                                  |
//! |----------|------------|----------------------------------------|
//! | `items`  | seq (u64)  | [`StoredItem`]: kind, payload, state   |
//! | `ids`    | `kind:id`  | seq of the item (queued or dead)       |
//! | `dead`   | seq (u64)  | [`StoredDead`]: item plus the error    |
//! | `meta`   | name       | counters (`next_seq`)                  |
//!
//! Every public mutation is one redb write transaction committed with the default
//! [`redb::Durability::Immediate`], so it is on disk (fsync) when the call returns and a
//! crash leaves either all of it or none of it.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::error::OutboxError;
use crate::item::{ItemKind, OutboxItem};

const ITEMS: TableDefinition<u64, &[u8]> = TableDefinition::new("items");
const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids");
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";

/// Persisted form of a queued item.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredItem {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(string, tag = "2")]
    id: String,
    /// The protobuf encoding of the record or violation.
    #[prost(bytes = "vec", tag = "3")]
    payload: Vec<u8>,
    #[prost(uint64, tag = "4")]
    enqueued_at: u64,
    #[prost(bool, tag = "5")]
    in_flight: bool,
    #[prost(string, optional, tag = "6")]
    txhash: Option<String>,
    #[prost(uint32, tag = "7")]
    attempt: u32,
    #[prost(uint64, tag = "8")]
    since: u64,
    #[prost(bool, tag = "9")]
    isolated: bool,
}

/// Persisted form of a dead letter.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredDead {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(string, tag = "2")]
    id: String,
    #[prost(bytes = "vec", tag = "3")]
    payload: Vec<u8>,
    #[prost(uint64, tag = "4")]
    enqueued_at: u64,
    #[prost(uint32, tag = "5")]
    attempts: u32,
    #[prost(uint32, tag = "6")]
    code: u32,
    #[prost(string, tag = "7")]
    codespace: String,
    #[prost(string, tag = "8")]
    log: String,
    #[prost(uint64, tag = "9")]
    at: u64,
}

/// Delivery state of a queued item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemState {
    /// Waiting to be submitted.
    Pending,
    /// Part of a tx that was (or was about to be) broadcast.
    InFlight {
        /// Hash of the tx, once the mempool accepted it. `None` means the process stopped
        /// between marking the item in flight and recording the hash: whether the tx
        /// reached the chain is unknown until [`ChainSink::stored`](crate::ChainSink::stored)
        /// says so.
        txhash: Option<String>,
        /// How many times the item has been submitted, this attempt included.
        attempt: u32,
        /// Caller clock (seconds) when the item was marked in flight.
        since: u64,
    },
}

/// A queued item with its sequence number and state (for inspection and for the
/// deliverer).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// FIFO position, unique and increasing over the life of the file.
    pub seq: u64,
    /// The record or violation.
    pub item: OutboxItem,
    /// Pending or in flight.
    pub state: ItemState,
    /// Caller clock (seconds) at enqueue.
    pub enqueued_at: u64,
    /// Whether the item must be sent alone: it was in a batch the chain rejected for a
    /// reason that may be one item's fault, and is being retried one by one to find it.
    pub isolated: bool,
}

/// An item the chain refused for good. Never dropped silently: it stays here until an
/// operator calls [`Outbox::requeue_dead_letters`].
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// Original FIFO position.
    pub seq: u64,
    /// The record or violation.
    pub item: OutboxItem,
    /// Caller clock (seconds) at enqueue.
    pub enqueued_at: u64,
    /// Submissions made before giving up.
    pub attempts: u32,
    /// Code of the refusal.
    pub code: u32,
    /// Codespace of the refusal.
    pub codespace: String,
    /// Log of the refusal.
    pub log: String,
    /// Caller clock (seconds) when the item was moved here.
    pub at: u64,
}

/// Queue depth of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindDepth {
    /// Items waiting to be submitted.
    pub pending: u64,
    /// Items in a broadcast tx whose result is not known yet.
    pub in_flight: u64,
}

impl KindDepth {
    /// Pending plus in flight: items not yet confirmed on chain.
    pub fn total(&self) -> u64 {
        self.pending + self.in_flight
    }
}

/// Queue depth per kind, plus the dead letters (the `outbox_depth` gauges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Audit records.
    pub audits: KindDepth,
    /// Violations.
    pub violations: KindDepth,
    /// Items in the dead-letter table (both kinds).
    pub dead: u64,
}

impl Depth {
    /// The depth of one kind.
    pub fn of(&self, kind: ItemKind) -> KindDepth {
        match kind {
            ItemKind::Audit => self.audits,
            ItemKind::Violation => self.violations,
        }
    }

    /// Items not yet confirmed on chain, both kinds (dead letters excluded).
    pub fn total(&self) -> u64 {
        self.audits.total() + self.violations.total()
    }
}

/// The durable outbox. See the [crate docs](crate) for the state machine.
///
/// Cheap to share behind an `Arc`: every method takes `&self`. redb locks the file, so
/// one process at a time opens it; run one [`Deliverer`](crate::Deliverer) per outbox.
/// The calls are synchronous (a commit is an fsync, typically well under a few ms).
pub struct Outbox {
    db: Database,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

fn id_key(kind: ItemKind, id: &str) -> String {
    format!("{}:{id}", kind.as_str())
}

fn corrupt(seq: u64, reason: impl std::fmt::Display) -> OutboxError {
    OutboxError::Corrupt {
        seq,
        reason: reason.to_string(),
    }
}

fn decode_item(seq: u64, bytes: &[u8]) -> Result<StoredItem, OutboxError> {
    <StoredItem as prost::Message>::decode(bytes).map_err(|e| corrupt(seq, e))
}

fn kind_of(seq: u64, tag: u32) -> Result<ItemKind, OutboxError> {
    ItemKind::from_tag(tag).ok_or_else(|| corrupt(seq, format!("unknown kind tag {tag}")))
}

impl StoredItem {
    fn to_entry(&self, seq: u64) -> Result<Entry, OutboxError> {
        let kind = kind_of(seq, self.kind)?;
        let item = OutboxItem::decode_payload(kind, &self.payload).map_err(|e| corrupt(seq, e))?;
        let state = if self.in_flight {
            ItemState::InFlight {
                txhash: self.txhash.clone(),
                attempt: self.attempt,
                since: self.since,
            }
        } else {
            ItemState::Pending
        };
        Ok(Entry {
            seq,
            item,
            state,
            enqueued_at: self.enqueued_at,
            isolated: self.isolated,
        })
    }
}

impl Outbox {
    /// Opens the outbox at `path`, creating the file and its tables if needed. Items left
    /// in flight by a previous process keep their state; the next delivery pass resolves
    /// them against the chain.
    pub fn open(path: impl AsRef<Path>) -> Result<Outbox, OutboxError> {
        let db = Database::create(path.as_ref())?;
        let tx = db.begin_write()?;
        {
            tx.open_table(ITEMS)?;
            tx.open_table(IDS)?;
            tx.open_table(DEAD)?;
            tx.open_table(META)?;
        }
        tx.commit()?;
        Ok(Outbox {
            db,
            notify: Arc::new(Notify::new()),
        })
    }

    /// Appends `items` in FIFO order in one atomic, durable transaction and wakes the
    /// deliverer. Call it before any side effect the items describe: once it returns, the
    /// items survive a crash. An item whose id is already queued or dead-lettered (or
    /// repeated within `items`) is skipped, so enqueueing is idempotent. `now` is the
    /// caller's clock in seconds (for [`Outbox::oldest_pending_age`]).
    ///
    /// Returns how many items were new. Fails without writing anything if an item has an
    /// empty id (the chain would assign its own id, which defeats deduplication).
    pub fn enqueue(&self, items: Vec<OutboxItem>, now: u64) -> Result<usize, OutboxError> {
        if let Some((index, item)) = items.iter().enumerate().find(|(_, i)| i.id().is_empty()) {
            return Err(OutboxError::MissingId {
                kind: item.kind(),
                index,
            });
        }
        let tx = self.db.begin_write()?;
        let mut added = 0;
        {
            let mut table = tx.open_table(ITEMS)?;
            let mut ids = tx.open_table(IDS)?;
            let mut meta = tx.open_table(META)?;
            let mut next = meta.get(NEXT_SEQ)?.map_or(1, |v| v.value());
            for item in items {
                let key = id_key(item.kind(), item.id());
                if ids.get(key.as_str())?.is_some() {
                    tracing::debug!(kind = %item.kind(), id = item.id(), "already in the outbox");
                    continue;
                }
                let stored = StoredItem {
                    kind: item.kind().tag(),
                    id: item.id().to_string(),
                    payload: item.encode_payload(),
                    enqueued_at: now,
                    ..Default::default()
                };
                table.insert(next, prost::Message::encode_to_vec(&stored).as_slice())?;
                ids.insert(key.as_str(), next)?;
                next += 1;
                added += 1;
            }
            meta.insert(NEXT_SEQ, next)?;
        }
        tx.commit()?;
        if added > 0 {
            self.notify.notify_one();
        }
        Ok(added)
    }

    /// Pending and in-flight counts per kind, and the number of dead letters.
    pub fn depth(&self) -> Result<Depth, OutboxError> {
        let tx = self.db.begin_read()?;
        let mut depth = Depth {
            dead: tx.open_table(DEAD)?.len()?,
            ..Default::default()
        };
        for row in tx.open_table(ITEMS)?.iter()? {
            let (seq, bytes) = row?;
            let seq = seq.value();
            let stored = decode_item(seq, bytes.value())?;
            let d = match kind_of(seq, stored.kind)? {
                ItemKind::Audit => &mut depth.audits,
                ItemKind::Violation => &mut depth.violations,
            };
            if stored.in_flight {
                d.in_flight += 1;
            } else {
                d.pending += 1;
            }
        }
        Ok(depth)
    }

    /// Whether no item awaits delivery (dead letters aside).
    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.db.begin_read()?.open_table(ITEMS)?.is_empty()?)
    }

    /// Seconds since the oldest undelivered item (pending or in flight) was enqueued, by
    /// the caller's clock `now`; `None` when the queue is empty.
    pub fn oldest_pending_age(&self, now: u64) -> Result<Option<u64>, OutboxError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ITEMS)?;
        let oldest = table
            .first()?
            .map(|(seq, bytes)| decode_item(seq.value(), bytes.value()))
            .transpose()?;
        Ok(oldest.map(|s| now.saturating_sub(s.enqueued_at)))
    }

    /// Every queued item in FIFO order.
    pub fn entries(&self) -> Result<Vec<Entry>, OutboxError> {
        self.scan(|_| true, usize::MAX)
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, OutboxError> {
        let tx = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in tx.open_table(DEAD)?.iter()? {
            let (seq, bytes) = row?;
            let seq = seq.value();
            let d = <StoredDead as prost::Message>::decode(bytes.value())
                .map_err(|e| corrupt(seq, e))?;
            let kind = kind_of(seq, d.kind)?;
            out.push(DeadLetter {
                seq,
                item: OutboxItem::decode_payload(kind, &d.payload).map_err(|e| corrupt(seq, e))?,
                enqueued_at: d.enqueued_at,
                attempts: d.attempts,
                code: d.code,
                codespace: d.codespace,
                log: d.log,
                at: d.at,
            });
        }
        Ok(out)
    }

    /// Puts every dead letter back in the queue as pending, at its original FIFO place
    /// (e.g. after the cause was fixed on chain). Returns how many were requeued.
    pub fn requeue_dead_letters(&self) -> Result<usize, OutboxError> {
        let tx = self.db.begin_write()?;
        let mut n = 0;
        {
            let mut dead = tx.open_table(DEAD)?;
            let mut items = tx.open_table(ITEMS)?;
            while let Some((seq, bytes)) = dead.pop_first()? {
                let seq = seq.value();
                let d = <StoredDead as prost::Message>::decode(bytes.value())
                    .map_err(|e| corrupt(seq, e))?;
                let stored = StoredItem {
                    kind: d.kind,
                    id: d.id,
                    payload: d.payload,
                    enqueued_at: d.enqueued_at,
                    attempt: d.attempts,
                    ..Default::default()
                };
                items.insert(seq, prost::Message::encode_to_vec(&stored).as_slice())?;
                n += 1;
            }
        }
        tx.commit()?;
        if n > 0 {
            self.notify.notify_one();
        }
        Ok(n)
    }

    /// Resolves when items were enqueued since the last wake-up (a stored permit makes an
    /// enqueue between two waits count too).
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    // ----- deliverer operations (each one durable transaction) -----

    /// Up to `limit` entries matching `keep`, in FIFO order.
    fn scan(
        &self,
        keep: impl Fn(&StoredItem) -> bool,
        limit: usize,
    ) -> Result<Vec<Entry>, OutboxError> {
        let tx = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in tx.open_table(ITEMS)?.iter()? {
            if out.len() >= limit {
                break;
            }
            let (seq, bytes) = row?;
            let seq = seq.value();
            let stored = decode_item(seq, bytes.value())?;
            if keep(&stored) {
                out.push(stored.to_entry(seq)?);
            }
        }
        Ok(out)
    }

    /// Every in-flight entry, FIFO.
    pub(crate) fn in_flight(&self) -> Result<Vec<Entry>, OutboxError> {
        self.scan(|s| s.in_flight, usize::MAX)
    }

    /// The next batch of `kind`: the oldest pending item alone if it is isolated, else up
    /// to `max` pending non-isolated items in FIFO order.
    pub(crate) fn next_batch(&self, kind: ItemKind, max: usize) -> Result<Vec<Entry>, OutboxError> {
        let tag = kind.tag();
        let head = self.scan(|s| s.kind == tag && !s.in_flight, 1)?;
        match head.first() {
            None => Ok(head),
            Some(e) if e.isolated => Ok(head),
            Some(_) => self.scan(|s| s.kind == tag && !s.in_flight && !s.isolated, max),
        }
    }

    /// Applies `f` to each listed item that still exists, in one transaction.
    fn update(&self, seqs: &[u64], mut f: impl FnMut(&mut StoredItem)) -> Result<(), OutboxError> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(ITEMS)?;
            for &seq in seqs {
                let Some(bytes) = table.get(seq)?.map(|b| b.value().to_vec()) else {
                    continue;
                };
                let mut stored = decode_item(seq, &bytes)?;
                f(&mut stored);
                table.insert(seq, prost::Message::encode_to_vec(&stored).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Pending → InFlight { txhash: None, attempt + 1, since: now }.
    pub(crate) fn mark_in_flight(&self, seqs: &[u64], now: u64) -> Result<(), OutboxError> {
        self.update(seqs, |s| {
            s.in_flight = true;
            s.txhash = None;
            s.attempt += 1;
            s.since = now;
        })
    }

    /// Records the hash of the tx the in-flight items went out in.
    pub(crate) fn record_txhash(&self, seqs: &[u64], txhash: &str) -> Result<(), OutboxError> {
        self.update(seqs, |s| s.txhash = Some(txhash.to_string()))
    }

    /// InFlight → Pending; `isolate` makes the items go out one per tx from now on.
    pub(crate) fn release(&self, seqs: &[u64], isolate: bool) -> Result<(), OutboxError> {
        self.update(seqs, |s| {
            s.in_flight = false;
            s.txhash = None;
            s.isolated |= isolate;
        })
    }

    /// Confirmed on chain: removes the items and their ids.
    pub(crate) fn confirm(&self, seqs: &[u64]) -> Result<(), OutboxError> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(ITEMS)?;
            let mut ids = tx.open_table(IDS)?;
            for &seq in seqs {
                let Some(bytes) = table.remove(seq)?.map(|b| b.value().to_vec()) else {
                    continue;
                };
                let stored = decode_item(seq, &bytes)?;
                ids.remove(id_key(kind_of(seq, stored.kind)?, &stored.id).as_str())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Moves the items to the dead-letter table with the chain's refusal. Their ids stay
    /// indexed, so enqueueing them again is a no-op.
    pub(crate) fn bury(
        &self,
        seqs: &[u64],
        code: u32,
        codespace: &str,
        log: &str,
        now: u64,
    ) -> Result<(), OutboxError> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(ITEMS)?;
            let mut dead = tx.open_table(DEAD)?;
            for &seq in seqs {
                let Some(bytes) = table.remove(seq)?.map(|b| b.value().to_vec()) else {
                    continue;
                };
                let s = decode_item(seq, &bytes)?;
                let d = StoredDead {
                    kind: s.kind,
                    id: s.id,
                    payload: s.payload,
                    enqueued_at: s.enqueued_at,
                    attempts: s.attempt,
                    code,
                    codespace: codespace.to_string(),
                    log: log.to_string(),
                    at: now,
                };
                dead.insert(seq, prost::Message::encode_to_vec(&d).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
