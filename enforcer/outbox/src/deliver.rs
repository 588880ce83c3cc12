//! The delivery engine: moves items from the outbox to the chain through a [`ChainSink`].

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use hpc_primitives::contract::{codes, sdk_codes};

use crate::error::{OutboxError, SubmitError};
use crate::item::{Batch, ItemKind, ItemRef, OutboxItem};
use crate::store::{Entry, ItemState, Outbox};

/// x/hpc codespace.
pub const HPC_CODESPACE: &str = codes::CODESPACE;
/// x/hpc: the signer already recorded one of the batch's audit records, with the same
/// content (the whole tx is refused).
pub const CODE_DUPLICATE_RECORD: u32 = codes::DUPLICATE_RECORD;
/// x/hpc: the signer already reported one of the batch's violations, with the same content.
pub const CODE_DUPLICATE_VIOLATION: u32 = codes::DUPLICATE_VIOLATION;
/// x/hpc: a different audit record is stored under a `record_id` of the batch.
pub const CODE_RECORD_ID_CONFLICT: u32 = codes::RECORD_ID_CONFLICT;
/// x/hpc: a different violation is stored under a `violation_id` of the batch.
pub const CODE_VIOLATION_ID_CONFLICT: u32 = codes::VIOLATION_ID_CONFLICT;
/// x/hpc: the batch exceeds `params.max_batch_size`.
pub const CODE_BATCH_TOO_LARGE: u32 = codes::BATCH_TOO_LARGE;
/// Cosmos SDK codespace.
pub const SDK_CODESPACE: &str = sdk_codes::CODESPACE;
/// sdk: account sequence mismatch.
pub const CODE_WRONG_SEQUENCE: u32 = sdk_codes::WRONG_SEQUENCE;

/// Final result of a broadcast tx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// In a committed block, with its DeliverTx result (code 0 = success; a failed tx
    /// stored none of its items, x/hpc batches being all-or-nothing).
    Included {
        /// ABCI code.
        code: u32,
        /// Codespace of the code.
        codespace: String,
        /// Log line.
        log: String,
    },
    /// Not in a block (yet), or dropped from the mempool.
    NotFound,
}

/// The chain as the deliverer sees it; the enforcer implements it with its signer and
/// RPC / gRPC clients, tests with an in-memory chain.
///
/// Implementations may write the methods as `async fn`; the futures must be `Send`.
pub trait ChainSink: Send + Sync {
    /// Signs and broadcasts one batch (all audits, or all violations) as one tx;
    /// `Ok(txhash)` once the mempool accepted it (CheckTx passed).
    fn submit(&self, batch: &Batch) -> impl Future<Output = Result<String, SubmitError>> + Send;

    /// Final result of a broadcast tx.
    fn tx_result(&self, txhash: &str)
        -> impl Future<Output = Result<TxStatus, SubmitError>> + Send;

    /// What the chain stores under this item's id (query `RoutingAuditRecord` /
    /// `RoutingViolation` by id at the latest height), `None` if nothing. The deliverer
    /// decides whether it is *this* item ([`OutboxItem::is_delivered_as`]): an id that
    /// exists with other content, or from another signer, is not a delivery.
    fn stored(
        &self,
        item: &ItemRef,
    ) -> impl Future<Output = Result<Option<OutboxItem>, SubmitError>> + Send;

    /// The address that signs the batches (the `provider` / `reporter` of the messages).
    fn signer(&self) -> String;

    /// Largest batch the chain accepts (`params.max_batch_size`); at least 1 is used.
    fn max_batch_size(&self) -> usize;
}

/// Tuning of a [`Deliverer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelivererConfig {
    /// Caller-clock seconds after which an in-flight tx that is still not found (or whose
    /// hash was never recorded) is given up on: items the chain does not have go back to
    /// pending.
    pub inflight_timeout_secs: u64,
    /// Most txs broadcast in one pass.
    pub max_txs_per_pass: usize,
    /// How often [`Deliverer::run`] passes while items wait and nothing fails (new items
    /// wake it at once).
    pub poll_interval: Duration,
    /// How often it passes while the outbox is empty.
    pub idle_interval: Duration,
    /// How long a pass waits after new items woke it, so that the items of the jobs handled
    /// together go out in one batch rather than one tx each.
    pub linger: Duration,
    /// Least time between two checks of the in-flight txs: woken by every new item, the
    /// loop would ask the node for each in-flight tx's result many times per block.
    pub resolve_interval: Duration,
    /// First backoff delay after the chain was unavailable (or the outbox failed).
    pub backoff_min: Duration,
    /// Backoff ceiling.
    pub backoff_max: Duration,
}

impl Default for DelivererConfig {
    fn default() -> Self {
        DelivererConfig {
            inflight_timeout_secs: 60,
            max_txs_per_pass: 8,
            poll_interval: Duration::from_millis(300),
            idle_interval: Duration::from_secs(1),
            linger: Duration::from_millis(50),
            resolve_interval: Duration::from_millis(500),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// What [`Deliverer::run`] tells its owner (logs, metrics, health). Every method has a
/// default that does nothing.
pub trait DeliveryObserver: Send + Sync {
    /// The chain was unavailable; `first` on the first pass of an outage.
    fn chain_unavailable(&self, _first: bool) {}
    /// The chain answered again after an outage.
    fn chain_reachable_again(&self) {}
    /// The outbox storage failed; the loop backs off and tries again.
    fn storage_failed(&self, _error: &OutboxError) {}
    /// After every pass (e.g. to publish the outbox depth).
    fn after_pass(&self, _outbox: &Outbox) {}
}

/// Observes nothing.
impl DeliveryObserver for () {}

/// What one delivery pass did (counters for metrics), and what the loop should do next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Items confirmed on chain and removed from the outbox.
    pub confirmed: u64,
    /// Items broadcast (in `txs` txs).
    pub submitted: u64,
    /// Txs broadcast.
    pub txs: u64,
    /// Items put back to pending for another attempt.
    pub retried: u64,
    /// Items moved to the dead letters.
    pub dead: u64,
    /// A sink call failed transiently: back off before the next pass.
    pub unavailable: bool,
    /// The pass stopped at [`DelivererConfig::max_txs_per_pass`]: run again at once.
    pub more: bool,
}

impl Report {
    /// Adds another report's counters (flags are OR-ed).
    pub fn merge(&mut self, other: &Report) {
        self.confirmed += other.confirmed;
        self.submitted += other.submitted;
        self.txs += other.txs;
        self.retried += other.retried;
        self.dead += other.dead;
        self.unavailable |= other.unavailable;
        self.more |= other.more;
    }
}

/// Deterministic exponential backoff: `min`, `2·min`, `4·min`, … capped at `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff starting at `min` and doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min.min(max),
        }
    }

    /// The delay to wait now; doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = d.saturating_mul(2).min(self.max);
        d
    }

    /// Back to `min` (after a pass that reached the chain).
    pub fn reset(&mut self) {
        self.next = self.min.min(self.max);
    }
}

/// How the chain's refusal of a batch is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Some item of the batch is already on chain, from us, with the same content (x/hpc
    /// 9 / 13): confirm those the chain has as they are, resend the rest.
    Duplicate,
    /// Stale account sequence: resend at once.
    Sequence,
    /// Not the items' fault (fees, gas, mempool full, signer setup...): resend later.
    Transient,
    /// Possibly one item's fault (or the batch too large): isolate, then dead-letter.
    Invalid,
}

fn classify(code: u32, codespace: &str) -> Failure {
    match (codespace, code) {
        // Only "the same item is already recorded" may confirm anything. An id taken by
        // another item (18 / 19) is the item's own failure: isolated, then dead-lettered.
        (HPC_CODESPACE, CODE_DUPLICATE_RECORD | CODE_DUPLICATE_VIOLATION) => Failure::Duplicate,
        (SDK_CODESPACE, CODE_WRONG_SEQUENCE) => Failure::Sequence,
        // unauthorized, insufficient funds, invalid pubkey, unknown address, out of gas,
        // insufficient fee, tx in mempool cache, mempool full, wrong chain id, timeout
        // height, invalid gas limit.
        (SDK_CODESPACE, 4 | 5 | 8 | 9 | 11 | 13 | 19 | 20 | 28 | 30 | 41) => Failure::Transient,
        _ => Failure::Invalid,
    }
}

/// Result of asking the chain which items it has.
#[derive(Default)]
struct Probe {
    /// On chain as they are (same content, signed by us): delivered.
    present: Vec<u64>,
    absent: Vec<u64>,
    /// Their id holds another item on chain: never deliverable under that id.
    conflict: Vec<u64>,
    /// Not asked because the sink failed.
    unknown: Vec<u64>,
    failed: bool,
}

async fn probe<S: ChainSink>(sink: &S, entries: &[&Entry]) -> Probe {
    let mut p = Probe::default();
    let signer = sink.signer();
    for e in entries {
        if p.failed {
            p.unknown.push(e.seq);
            continue;
        }
        match sink.stored(&e.item.item_ref()).await {
            Ok(None) => p.absent.push(e.seq),
            Ok(Some(stored)) if e.item.is_delivered_as(&stored, &signer) => p.present.push(e.seq),
            Ok(Some(_)) => {
                tracing::warn!(item = %e.item.item_ref(), "outbox: another item is stored on chain under this id");
                p.conflict.push(e.seq);
            }
            Err(err) => {
                tracing::warn!(error = %err, "outbox: existence check failed");
                p.failed = true;
                p.unknown.push(e.seq);
            }
        }
    }
    p
}

/// Runs delivery passes. Holds only configuration: all state is in the [`Outbox`], so a
/// deliverer can be dropped at any await point (a crash) and a new one resumes.
#[derive(Clone, Debug, Default)]
pub struct Deliverer {
    config: DelivererConfig,
}

/// Dead-letters items whose id holds another item on chain (probe conflicts).
fn bury_conflicts(
    outbox: &Outbox,
    entries: &[&Entry],
    conflict: &[u64],
    now: u64,
    report: &mut Report,
) -> Result<(), OutboxError> {
    let Some(first) = entries.iter().find(|e| conflict.contains(&e.seq)) else {
        return Ok(());
    };
    let code = match first.item.kind() {
        ItemKind::Audit => CODE_RECORD_ID_CONFLICT,
        ItemKind::Violation => CODE_VIOLATION_ID_CONFLICT,
    };
    let log = format!(
        "another {} is stored on chain under this id",
        first.item.kind()
    );
    outbox.bury(conflict, code, HPC_CODESPACE, &log, now)?;
    report.dead += conflict.len() as u64;
    Ok(())
}

impl Deliverer {
    /// A deliverer with `config`.
    pub fn new(config: DelivererConfig) -> Self {
        Deliverer { config }
    }

    /// The configuration.
    pub fn config(&self) -> &DelivererConfig {
        &self.config
    }

    /// One delivery pass at caller-clock `now` (seconds): (a) resolve in-flight items,
    /// then (b) broadcast pending ones. Errors only on outbox storage failures; chain
    /// failures are reported in [`Report::unavailable`] and retried by later passes.
    pub async fn run_once<S: ChainSink>(
        &self,
        outbox: &Outbox,
        sink: &S,
        now: u64,
    ) -> Result<Report, OutboxError> {
        self.run_pass(outbox, sink, now, true).await
    }

    /// [`Self::run_once`], with step (a) only when `resolve_in_flight`: a caller woken by
    /// new items many times per block need not ask the chain about every in-flight tx each
    /// time (each answer is a tx result the node encodes again).
    pub async fn run_pass<S: ChainSink>(
        &self,
        outbox: &Outbox,
        sink: &S,
        now: u64,
        resolve_in_flight: bool,
    ) -> Result<Report, OutboxError> {
        let mut report = Report::default();
        if resolve_in_flight {
            self.resolve_in_flight(outbox, sink, now, &mut report)
                .await?;
        }
        if !report.unavailable {
            self.submit_pending(outbox, sink, now, &mut report).await?;
        }
        if report != Report::default() {
            tracing::debug!(?report, "outbox pass");
        }
        Ok(report)
    }

    /// Delivery loop: passes until `shutdown` resolves. After a pass that hit an
    /// unavailable chain or a failing outbox it sleeps with [`Backoff`] (1 s doubling to
    /// 60 s by default; new items end the wait, the backoff keeps growing while the chain
    /// stays unavailable); otherwise it sleeps [`DelivererConfig::poll_interval`] (idle:
    /// [`DelivererConfig::idle_interval`]) or until items are enqueued, then lingers.
    /// In-flight txs are checked at most every [`DelivererConfig::resolve_interval`].
    /// `clock` gives the caller's time in seconds.
    pub async fn run<S: ChainSink>(
        &self,
        outbox: &Outbox,
        sink: &S,
        clock: impl Fn() -> u64,
        observer: &impl DeliveryObserver,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut in_outage = false;
        let mut last_resolved: Option<std::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let resolve = last_resolved.is_none_or(|t| t.elapsed() >= self.config.resolve_interval);
            if resolve {
                last_resolved = Some(std::time::Instant::now());
            }
            let pass = tokio::select! {
                _ = &mut shutdown => return,
                pass = self.run_pass(outbox, sink, clock(), resolve) => pass,
            };
            let pause = match pass {
                Ok(report) if report.unavailable => {
                    observer.chain_unavailable(!in_outage);
                    in_outage = true;
                    Some(backoff.next_delay())
                }
                Ok(report) => {
                    if in_outage {
                        observer.chain_reachable_again();
                        in_outage = false;
                    }
                    backoff.reset();
                    report.more.then_some(Duration::ZERO)
                }
                Err(e) => {
                    observer.storage_failed(&e);
                    Some(backoff.next_delay())
                }
            };
            observer.after_pass(outbox);
            let wait = pause.unwrap_or_else(|| {
                if outbox.is_empty().unwrap_or(true) {
                    self.config.idle_interval
                } else {
                    self.config.poll_interval
                }
            });
            tokio::select! {
                _ = &mut shutdown => return,
                _ = outbox.notified() => tokio::time::sleep(self.config.linger).await,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn expired(&self, state: &ItemState, now: u64) -> bool {
        match state {
            ItemState::Pending => false,
            // A clock that went backwards means a restart with another clock origin:
            // resolve rather than wait (resolving is always safe, waiting only saves txs).
            ItemState::InFlight { since, .. } => {
                now < *since || now - since >= self.config.inflight_timeout_secs
            }
        }
    }

    /// (a) In-flight items, grouped by tx.
    async fn resolve_in_flight<S: ChainSink>(
        &self,
        outbox: &Outbox,
        sink: &S,
        now: u64,
        report: &mut Report,
    ) -> Result<(), OutboxError> {
        let mut by_tx: BTreeMap<Option<String>, Vec<Entry>> = BTreeMap::new();
        for e in outbox.in_flight()? {
            let ItemState::InFlight { txhash, .. } = &e.state else {
                continue;
            };
            by_tx.entry(txhash.clone()).or_default().push(e);
        }
        for (txhash, group) in by_tx {
            let Some(txhash) = txhash else {
                // The process stopped between marking and recording the hash: the tx may
                // or may not exist. Once timed out, trust the chain's state.
                let expired: Vec<&Entry> = group
                    .iter()
                    .filter(|e| self.expired(&e.state, now))
                    .collect();
                self.resolve_unknown(outbox, sink, &expired, now, report)
                    .await?;
                if report.unavailable {
                    return Ok(());
                }
                continue;
            };
            match sink.tx_result(&txhash).await {
                Err(err) => {
                    tracing::warn!(%txhash, error = %err, "outbox: tx result query failed");
                    report.unavailable = true;
                    return Ok(());
                }
                Ok(TxStatus::Included { code: 0, .. }) => {
                    let seqs: Vec<u64> = group.iter().map(|e| e.seq).collect();
                    outbox.confirm(&seqs)?;
                    report.confirmed += seqs.len() as u64;
                }
                Ok(TxStatus::Included {
                    code,
                    codespace,
                    log,
                }) => {
                    tracing::info!(%txhash, code, %codespace, %log, "outbox: tx failed on chain");
                    let refs: Vec<&Entry> = group.iter().collect();
                    self.resolve_failed(outbox, sink, &refs, code, &codespace, &log, now, report)
                        .await?;
                }
                Ok(TxStatus::NotFound) => {
                    if group.iter().any(|e| self.expired(&e.state, now)) {
                        tracing::info!(%txhash, "outbox: tx not found after timeout");
                        let refs: Vec<&Entry> = group.iter().collect();
                        self.resolve_unknown(outbox, sink, &refs, now, report)
                            .await?;
                    }
                }
            }
            if report.unavailable {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Items whose tx fate is unknown: confirm those the chain has as they are, resend
    /// the absent ones, dead-letter those whose id holds another item.
    async fn resolve_unknown<S: ChainSink>(
        &self,
        outbox: &Outbox,
        sink: &S,
        entries: &[&Entry],
        now: u64,
        report: &mut Report,
    ) -> Result<(), OutboxError> {
        if entries.is_empty() {
            return Ok(());
        }
        let p = probe(sink, entries).await;
        outbox.confirm(&p.present)?;
        report.confirmed += p.present.len() as u64;
        bury_conflicts(outbox, entries, &p.conflict, now, report)?;
        if p.failed {
            // Leave the unasked ones in flight: the next pass asks again.
            report.unavailable = true;
        }
        outbox.release(&p.absent, false)?;
        report.retried += p.absent.len() as u64;
        Ok(())
    }

    /// A batch the chain refused as a whole (at CheckTx or in the block): none of its
    /// items was stored by that tx.
    #[allow(clippy::too_many_arguments)]
    async fn resolve_failed<S: ChainSink>(
        &self,
        outbox: &Outbox,
        sink: &S,
        group: &[&Entry],
        code: u32,
        codespace: &str,
        log: &str,
        now: u64,
        report: &mut Report,
    ) -> Result<(), OutboxError> {
        let seqs: Vec<u64> = group.iter().map(|e| e.seq).collect();
        let mut failure = classify(code, codespace);
        if failure == Failure::Duplicate {
            let p = probe(sink, group).await;
            outbox.confirm(&p.present)?;
            report.confirmed += p.present.len() as u64;
            bury_conflicts(outbox, group, &p.conflict, now, report)?;
            if p.failed {
                outbox.release(&p.unknown, false)?;
                outbox.release(&p.absent, false)?;
                report.retried += (p.unknown.len() + p.absent.len()) as u64;
                report.unavailable = true;
                return Ok(());
            }
            if !p.present.is_empty() || !p.conflict.is_empty() {
                outbox.release(&p.absent, false)?;
                report.retried += p.absent.len() as u64;
                return Ok(());
            }
            // "Duplicate", yet the chain has none of them: do not loop on it.
            failure = Failure::Invalid;
        }
        match failure {
            Failure::Duplicate => unreachable!("handled above"),
            Failure::Sequence | Failure::Transient => {
                outbox.release(&seqs, false)?;
                report.retried += seqs.len() as u64;
                report.unavailable |= failure == Failure::Transient;
            }
            Failure::Invalid if group.len() > 1 => {
                tracing::info!(
                    kind = %group[0].item.kind(),
                    items = group.len(),
                    code, codespace, log,
                    "outbox: batch refused, retrying its items one by one"
                );
                outbox.release(&seqs, true)?;
                report.retried += seqs.len() as u64;
            }
            Failure::Invalid => {
                // One item, refused on its own. Unless the chain has it (as it is) after
                // all, it is a dead letter.
                let p = probe(sink, group).await;
                outbox.confirm(&p.present)?;
                report.confirmed += p.present.len() as u64;
                if p.failed {
                    outbox.release(&p.unknown, false)?;
                    report.retried += p.unknown.len() as u64;
                    report.unavailable = true;
                }
                let mut refused = p.absent;
                refused.extend(p.conflict);
                if !refused.is_empty() {
                    tracing::warn!(
                        item = %group[0].item.item_ref(),
                        code, codespace, log,
                        "outbox: item refused by the chain, moved to dead letters"
                    );
                    outbox.bury(&refused, code, codespace, log, now)?;
                    report.dead += refused.len() as u64;
                }
            }
        }
        Ok(())
    }

    /// (b) Pending items, in batches of one kind, kinds alternating.
    async fn submit_pending<S: ChainSink>(
        &self,
        outbox: &Outbox,
        sink: &S,
        now: u64,
        report: &mut Report,
    ) -> Result<(), OutboxError> {
        let max = sink.max_batch_size().max(1);
        let mut turn = 0;
        let mut txs = 0;
        while txs < self.config.max_txs_per_pass {
            let mut next = None;
            for i in 0..ItemKind::ALL.len() {
                let kind = ItemKind::ALL[(turn + i) % ItemKind::ALL.len()];
                let entries = outbox.next_batch(kind, max)?;
                if !entries.is_empty() {
                    turn = (turn + i + 1) % ItemKind::ALL.len();
                    next = Some((kind, entries));
                    break;
                }
            }
            let Some((kind, entries)) = next else {
                return Ok(());
            };
            txs += 1;
            self.submit_batch(outbox, sink, kind, &entries, now, report)
                .await?;
            if report.unavailable {
                return Ok(());
            }
        }
        report.more = true;
        Ok(())
    }

    async fn submit_batch<S: ChainSink>(
        &self,
        outbox: &Outbox,
        sink: &S,
        kind: ItemKind,
        entries: &[Entry],
        now: u64,
        report: &mut Report,
    ) -> Result<(), OutboxError> {
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        let batch = Batch::of(kind, entries.iter().map(|e| e.item.clone()).collect());
        // Durably in flight before anything leaves the process.
        outbox.mark_in_flight(&seqs, now)?;
        let mut sequence_retry = true;
        loop {
            match sink.submit(&batch).await {
                Ok(txhash) => {
                    outbox.record_txhash(&seqs, &txhash)?;
                    report.submitted += seqs.len() as u64;
                    report.txs += 1;
                    tracing::debug!(%kind, items = seqs.len(), %txhash, "outbox: batch broadcast");
                    return Ok(());
                }
                Err(SubmitError::SequenceMismatch(log)) if sequence_retry => {
                    tracing::info!(%log, "outbox: sequence mismatch, resending at once");
                    sequence_retry = false;
                    report.retried += seqs.len() as u64;
                }
                Err(err @ (SubmitError::Unavailable(_) | SubmitError::SequenceMismatch(_))) => {
                    tracing::warn!(error = %err, "outbox: broadcast failed");
                    outbox.release(&seqs, false)?;
                    report.retried += seqs.len() as u64;
                    report.unavailable = true;
                    return Ok(());
                }
                Err(SubmitError::Rejected {
                    code,
                    codespace,
                    log,
                }) => {
                    tracing::info!(%kind, code, %codespace, %log, "outbox: batch rejected at broadcast");
                    let refs: Vec<&Entry> = entries.iter().collect();
                    return self
                        .resolve_failed(outbox, sink, &refs, code, &codespace, &log, now, report)
                        .await;
                }
            }
        }
    }
}
