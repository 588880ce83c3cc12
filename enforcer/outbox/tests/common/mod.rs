//! An in-memory "chain" implementing [`ChainSink`] with x/hpc's batch rules, plus fault
//! injection: unavailability, sequence mismatches, lost or delayed txs, poison items,
//! a stale batch size, and crashes (a sink call that never returns).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use hpc_outbox::{
    Batch, ChainSink, ItemKind, ItemRef, OutboxItem, SubmitError, TxStatus, CODE_BATCH_TOO_LARGE,
    CODE_DUPLICATE_RECORD, CODE_DUPLICATE_VIOLATION, CODE_RECORD_ID_CONFLICT,
    CODE_VIOLATION_ID_CONFLICT, HPC_CODESPACE,
};
use hpc_proto::virtengine::hpc::v1::{RoutingAuditRecord, RoutingViolation};
use tokio::sync::Notify;

/// x/hpc JOB_NOT_FOUND, what a poison item gets.
pub const CODE_JOB_NOT_FOUND: u32 = 5;

/// The address the deliverer signs with.
pub const SIGNER: &str = "virtengine1outboxsigner";

pub fn audit(id: &str) -> OutboxItem {
    OutboxItem::Audit(RoutingAuditRecord {
        record_id: id.to_string(),
        job_id: format!("job-{id}"),
        ..Default::default()
    })
}

pub fn violation(id: &str) -> OutboxItem {
    OutboxItem::Violation(RoutingViolation {
        violation_id: id.to_string(),
        job_id: format!("job-{id}"),
        ..Default::default()
    })
}

/// Where the chain makes the process "crash": the `at_call`-th sink call (1-based)
/// never returns, before or after its effect (for `submit`: before or after the tx
/// reached the mempool).
#[derive(Clone, Copy, Debug)]
pub struct Crash {
    pub at_call: usize,
    pub after_effect: bool,
}

#[derive(Default)]
pub struct ChainState {
    /// How many times each id was stored by the signer's txs (must end at 1).
    pub audits: HashMap<String, u32>,
    pub violations: HashMap<String, u32>,
    /// What the chain holds under each id, as x/hpc stores it (signer set).
    pub contents: HashMap<(ItemKind, String), OutboxItem>,
    /// Answer 9 / 13 for any stored id, as x/hpc did before issue 8 (not only for the
    /// same item from the same signer).
    pub legacy_duplicate_code: bool,
    pub mempool: Vec<(String, Batch)>,
    /// Accepted txs that enter the mempool (at its front) only on `release_held`.
    pub held: Vec<(String, Batch)>,
    pub results: HashMap<String, (u32, String, String)>,
    pub next_tx: u64,
    pub unavailable: bool,
    /// The next N submits fail with a sequence mismatch.
    pub sequence_mismatches: u32,
    /// The next N accepted txs are lost (never included).
    pub lose_next: u32,
    /// The next N accepted txs are held back until `release_held`.
    pub hold_next: u32,
    /// Run the messages at CheckTx too (as hpcd does), so refusals come from `submit`.
    pub check_executes: bool,
    /// The next submits are refused at CheckTx with this (code, codespace), N times.
    pub refuse_next: Option<(u32, &'static str, u32)>,
    /// Ids the chain refuses (JOB_NOT_FOUND).
    pub poison: HashSet<String>,
    /// The chain's params.max_batch_size.
    pub max_batch: usize,
    /// What `max_batch_size()` reports (defaults to `max_batch`).
    pub reported_max_batch: Option<usize>,
    /// Include txs at once on submit.
    pub auto_commit: bool,
    pub calls: usize,
    pub crash: Option<Crash>,
    pub crashed: bool,
    pub broadcasts: usize,
}

pub struct FakeChain {
    pub state: Mutex<ChainState>,
    crash_notify: Notify,
}

fn key_of(item: &ItemRef) -> (ItemKind, &str) {
    (item.kind, item.id.as_str())
}

/// The items of a batch.
fn items_of(batch: &Batch) -> Vec<OutboxItem> {
    match batch {
        Batch::Audits(r) => r.iter().cloned().map(OutboxItem::Audit).collect(),
        Batch::Violations(v) => v.iter().cloned().map(OutboxItem::Violation).collect(),
    }
}

/// An item as x/hpc stores it when `signer` submits it.
fn as_stored(item: &OutboxItem, signer: &str) -> OutboxItem {
    match item.clone() {
        OutboxItem::Audit(mut r) => {
            r.provider_address = signer.to_string();
            OutboxItem::Audit(r)
        }
        OutboxItem::Violation(mut v) => {
            v.reporter = signer.to_string();
            OutboxItem::Violation(v)
        }
    }
}

impl ChainState {
    fn stored(&self, kind: ItemKind, id: &str) -> Option<&OutboxItem> {
        self.contents.get(&(kind, id.to_string()))
    }

    /// Stores `item` as if `signer` had recorded it (a front-runner, say).
    pub fn store_as(&mut self, item: &OutboxItem, signer: &str) {
        self.contents.insert(
            (item.kind(), item.id().to_string()),
            as_stored(item, signer),
        );
    }

    /// x/hpc's rules: the whole batch or nothing.
    fn check(&self, batch: &Batch) -> Result<(), (u32, String, String)> {
        if batch.len() > self.max_batch {
            return Err((
                CODE_BATCH_TOO_LARGE,
                HPC_CODESPACE.into(),
                format!("{} entries exceed params.max_batch_size", batch.len()),
            ));
        }
        let kind = batch.kind();
        let dup = match kind {
            ItemKind::Audit => CODE_DUPLICATE_RECORD,
            ItemKind::Violation => CODE_DUPLICATE_VIOLATION,
        };
        let conflict = match kind {
            ItemKind::Audit => CODE_RECORD_ID_CONFLICT,
            ItemKind::Violation => CODE_VIOLATION_ID_CONFLICT,
        };
        let mut seen = HashSet::new();
        for (i, item) in items_of(batch).iter().enumerate() {
            let id = item.id();
            if let Some(stored) = self.stored(kind, id) {
                // x/hpc: 9 / 13 only for the same item from the same signer.
                let same = item.is_delivered_as(stored, SIGNER);
                return Err(if same || self.legacy_duplicate_code {
                    (
                        dup,
                        HPC_CODESPACE.into(),
                        format!("[{i}]: {id} already recorded"),
                    )
                } else {
                    (
                        conflict,
                        HPC_CODESPACE.into(),
                        format!("[{i}]: {id} is taken by a different item"),
                    )
                });
            }
            if !seen.insert(id.to_string()) {
                return Err((
                    dup,
                    HPC_CODESPACE.into(),
                    format!("[{i}]: {id} already recorded"),
                ));
            }
            if self.poison.contains(id) {
                return Err((
                    CODE_JOB_NOT_FOUND,
                    HPC_CODESPACE.into(),
                    format!("[{i}]: job of {id} not found"),
                ));
            }
        }
        Ok(())
    }

    fn execute(&mut self, batch: &Batch) -> Result<(), (u32, String, String)> {
        self.check(batch)?;
        let kind = batch.kind();
        for item in items_of(batch) {
            let map = match kind {
                ItemKind::Audit => &mut self.audits,
                ItemKind::Violation => &mut self.violations,
            };
            *map.entry(item.id().to_string()).or_default() += 1;
            self.store_as(&item, SIGNER);
        }
        Ok(())
    }

    pub fn commit_block(&mut self) {
        for (hash, batch) in std::mem::take(&mut self.mempool) {
            let result = match self.execute(&batch) {
                Ok(()) => (0, String::new(), String::new()),
                Err(e) => e,
            };
            self.results.insert(hash, result);
        }
    }

    /// Whether call number `calls` crashes at this point.
    fn crashes_now(&mut self, after_effect: bool) -> bool {
        match self.crash {
            Some(c) if c.at_call == self.calls && c.after_effect == after_effect => {
                self.crash = None;
                self.crashed = true;
                true
            }
            _ => false,
        }
    }
}

impl FakeChain {
    pub fn new(max_batch: usize) -> Self {
        FakeChain {
            state: Mutex::new(ChainState {
                max_batch,
                ..Default::default()
            }),
            crash_notify: Notify::new(),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut ChainState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn commit_block(&self) {
        self.with(|s| s.commit_block());
    }

    pub fn release_held(&self) {
        self.with(|s| {
            // They were broadcast first, so they are included first.
            let held = std::mem::take(&mut s.held);
            s.mempool.splice(0..0, held);
        });
    }

    /// Resolves once a crash was triggered.
    pub async fn crashed(&self) {
        self.crash_notify.notified().await;
    }

    /// Counts the call; crashes (never returns) if it is the chosen one.
    async fn enter(&self) {
        let crash = self.with(|s| {
            s.calls += 1;
            s.crashes_now(false)
        });
        if crash {
            self.crash_notify.notify_one();
            std::future::pending::<()>().await;
        }
    }

    async fn leave(&self) {
        if self.with(|s| s.crashes_now(true)) {
            self.crash_notify.notify_one();
            std::future::pending::<()>().await;
        }
    }

    /// Asserts every id was stored exactly once; returns (audits, violations) stored.
    pub fn assert_each_once(&self) -> (usize, usize) {
        self.with(|s| {
            for (id, n) in s.audits.iter().chain(s.violations.iter()) {
                assert_eq!(*n, 1, "{id} stored {n} times");
            }
            (s.audits.len(), s.violations.len())
        })
    }
}

impl ChainSink for FakeChain {
    async fn submit(&self, batch: &Batch) -> Result<String, SubmitError> {
        self.enter().await;
        let outcome = self.with(|s| {
            if s.unavailable {
                return Err(SubmitError::Unavailable("connection refused".into()));
            }
            if s.sequence_mismatches > 0 {
                s.sequence_mismatches -= 1;
                return Err(SubmitError::SequenceMismatch(
                    "account sequence mismatch, expected 8, got 7".into(),
                ));
            }
            if let Some((code, codespace, n)) = s.refuse_next {
                s.refuse_next = (n > 1).then_some((code, codespace, n - 1));
                return Err(SubmitError::Rejected {
                    code,
                    codespace: codespace.into(),
                    log: "refused".into(),
                });
            }
            if s.check_executes {
                s.check(batch)
                    .map_err(|(code, codespace, log)| SubmitError::Rejected {
                        code,
                        codespace,
                        log,
                    })?;
            }
            s.next_tx += 1;
            s.broadcasts += 1;
            let hash = format!("TX{:04}", s.next_tx);
            if s.lose_next > 0 {
                s.lose_next -= 1;
            } else if s.hold_next > 0 {
                s.hold_next -= 1;
                s.held.push((hash.clone(), batch.clone()));
            } else {
                s.mempool.push((hash.clone(), batch.clone()));
                if s.auto_commit {
                    s.commit_block();
                }
            }
            Ok(hash)
        });
        self.leave().await;
        outcome
    }

    async fn tx_result(&self, txhash: &str) -> Result<TxStatus, SubmitError> {
        self.enter().await;
        let outcome = self.with(|s| {
            if s.unavailable {
                return Err(SubmitError::Unavailable("connection refused".into()));
            }
            Ok(match s.results.get(txhash) {
                Some((code, codespace, log)) => TxStatus::Included {
                    code: *code,
                    codespace: codespace.clone(),
                    log: log.clone(),
                },
                None => TxStatus::NotFound,
            })
        });
        self.leave().await;
        outcome
    }

    async fn stored(&self, item: &ItemRef) -> Result<Option<OutboxItem>, SubmitError> {
        self.enter().await;
        let outcome = self.with(|s| {
            if s.unavailable {
                return Err(SubmitError::Unavailable("connection refused".into()));
            }
            let (kind, id) = key_of(item);
            Ok(s.stored(kind, id).cloned())
        });
        self.leave().await;
        outcome
    }

    fn signer(&self) -> String {
        SIGNER.to_string()
    }

    fn max_batch_size(&self) -> usize {
        self.with(|s| s.reported_max_batch.unwrap_or(s.max_batch))
    }
}
