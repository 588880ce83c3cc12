//! Delivery against an in-memory chain enforcing x/hpc's rules: every item ends on chain
//! exactly once and the outbox ends empty, whatever fails and wherever the process
//! crashes.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{audit, violation, Crash, FakeChain, CODE_JOB_NOT_FOUND};
use hpc_outbox::{
    Backoff, Deliverer, DelivererConfig, DeliveryObserver, ItemKind, ItemState, KindDepth, Outbox,
    OutboxError, OutboxItem, Report, CODE_RECORD_ID_CONFLICT, CODE_VIOLATION_ID_CONFLICT,
    HPC_CODESPACE,
};

/// Caller-clock seconds between two passes (a block is committed between them).
const STEP: u64 = 10;

struct Sim {
    _dir: tempfile::TempDir,
    path: PathBuf,
    chain: FakeChain,
    deliverer: Deliverer,
    now: u64,
    crashes: usize,
}

impl Sim {
    fn new(max_batch: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        Sim {
            _dir: dir,
            path,
            chain: FakeChain::new(max_batch),
            deliverer: Deliverer::default(),
            now: 1_000,
            crashes: 0,
        }
    }

    fn open(&self) -> Outbox {
        Outbox::open(&self.path).unwrap()
    }

    /// One pass; `None` if the process "crashed" in it (the pass future is dropped at the
    /// sink call that never returns, exactly as a killed process would stop there).
    async fn pass(&self, outbox: &Outbox) -> Option<Report> {
        tokio::select! {
            biased;
            r = self.deliverer.run_once(outbox, &self.chain, self.now) => Some(r.unwrap()),
            _ = self.chain.crashed() => None,
        }
    }

    /// Passes, a block after each and the clock moving on, until the outbox is empty and
    /// no tx waits for inclusion. After a crash the outbox is dropped and reopened from
    /// the file (and a fresh deliverer used), and the enforcer replays `replay` (it may
    /// enqueue again what it had enqueued before the crash).
    async fn drive(&mut self, mut outbox: Outbox, replay: &[OutboxItem]) -> (Outbox, Report) {
        let mut total = Report::default();
        for _ in 0..200 {
            match self.pass(&outbox).await {
                Some(r) => total.merge(&r),
                None => {
                    drop(outbox);
                    self.deliverer = Deliverer::default();
                    self.crashes += 1;
                    outbox = self.open();
                    outbox.enqueue(replay.to_vec(), self.now).unwrap();
                }
            }
            self.chain.commit_block();
            self.now += STEP;
            let chain_idle = self
                .chain
                .with(|s| s.mempool.is_empty() && s.held.is_empty());
            if outbox.is_empty().unwrap() && chain_idle {
                return (outbox, total);
            }
        }
        panic!("not drained: {:?}", outbox.entries().unwrap());
    }
}

fn ids(items: &[OutboxItem], kind: ItemKind) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .filter(|i| i.kind() == kind)
        .map(|i| i.id().to_string())
        .collect();
    v.sort();
    v
}

fn stored(chain: &FakeChain, kind: ItemKind) -> Vec<String> {
    chain.with(|s| {
        let map = match kind {
            ItemKind::Audit => &s.audits,
            ItemKind::Violation => &s.violations,
        };
        let mut v: Vec<String> = map.keys().cloned().collect();
        v.sort();
        v
    })
}

fn items() -> Vec<OutboxItem> {
    vec![
        audit("a1"),
        violation("v1"),
        audit("a2"),
        audit("a3"),
        violation("v2"),
        audit("a4"),
        audit("a5"),
        violation("v3"),
    ]
}

#[tokio::test]
async fn a_pass_without_resolution_broadcasts_new_items_and_leaves_in_flight_txs_for_later() {
    let sim = Sim::new(10);
    let outbox = sim.open();
    outbox.enqueue(vec![audit("a1")], sim.now).unwrap();
    let first = sim.pass(&outbox).await.unwrap();
    assert_eq!((first.txs, first.submitted), (1, 1));
    sim.chain.commit_block();
    outbox.enqueue(vec![audit("a2")], sim.now).unwrap();
    let quick = sim
        .deliverer
        .run_pass(&outbox, &sim.chain, sim.now, false)
        .await
        .unwrap();
    assert_eq!(
        (quick.confirmed, quick.txs, quick.submitted),
        (0, 1, 1),
        "a1's tx is committed but not asked about; a2 is broadcast"
    );
    assert_eq!(outbox.depth().unwrap().audits.in_flight, 2);
    sim.chain.commit_block();
    let full = sim.pass(&outbox).await.unwrap();
    assert_eq!(full.confirmed, 2);
    assert!(outbox.is_empty().unwrap());
    assert_eq!(sim.chain.assert_each_once(), (2, 0));
}

// ----- the four named crash boundaries -----

#[tokio::test]
async fn crash_after_enqueue_before_submit() {
    let mut sim = Sim::new(10);
    let outbox = sim.open();
    outbox.enqueue(items(), sim.now).unwrap();
    drop(outbox); // crash
    let outbox = sim.open();
    assert_eq!(outbox.depth().unwrap().total(), 8);
    let (outbox, _) = sim.drive(outbox, &[]).await;
    assert!(outbox.is_empty().unwrap());
    assert_eq!(sim.chain.assert_each_once(), (5, 3));
}

#[tokio::test]
async fn crash_after_mark_in_flight_before_submit() {
    let mut sim = Sim::new(10);
    let outbox = sim.open();
    outbox
        .enqueue(vec![audit("a1"), audit("a2")], sim.now)
        .unwrap();
    sim.chain.with(|s| {
        s.crash = Some(Crash {
            at_call: 1,
            after_effect: false,
        })
    });
    assert!(sim.pass(&outbox).await.is_none(), "crashed in submit");
    drop(outbox);
    let outbox = sim.open();
    let entries = outbox.entries().unwrap();
    assert!(entries.iter().all(|e| matches!(
        e.state,
        ItemState::InFlight {
            txhash: None,
            attempt: 1,
            ..
        }
    )));
    assert_eq!(
        outbox.depth().unwrap().audits,
        KindDepth {
            pending: 0,
            in_flight: 2
        }
    );
    assert_eq!(sim.chain.with(|s| s.broadcasts), 0);
    // Unknown fate: after the in-flight timeout, exists() says absent → sent again.
    let (outbox, report) = sim.drive(outbox, &[]).await;
    assert!(outbox.is_empty().unwrap());
    assert_eq!(report.retried, 2);
    assert_eq!(sim.chain.assert_each_once(), (2, 0));
}

#[tokio::test]
async fn crash_after_submit_before_recording_txhash() {
    let mut sim = Sim::new(10);
    let outbox = sim.open();
    outbox
        .enqueue(vec![audit("a1"), audit("a2")], sim.now)
        .unwrap();
    sim.chain.with(|s| {
        s.crash = Some(Crash {
            at_call: 1,
            after_effect: true,
        })
    });
    assert!(sim.pass(&outbox).await.is_none(), "crashed after broadcast");
    drop(outbox);
    sim.chain.commit_block(); // the tx lands while the enforcer is down
    let outbox = sim.open();
    assert!(outbox
        .entries()
        .unwrap()
        .iter()
        .all(|e| matches!(e.state, ItemState::InFlight { txhash: None, .. })));
    // exists() finds both: confirmed without a second broadcast.
    let (outbox, report) = sim.drive(outbox, &[]).await;
    assert!(outbox.is_empty().unwrap());
    assert_eq!(report.confirmed, 2);
    assert_eq!(report.submitted, 0);
    assert_eq!(sim.chain.with(|s| s.broadcasts), 1);
    assert_eq!(sim.chain.assert_each_once(), (2, 0));
}

#[tokio::test]
async fn crash_after_submit_before_confirmation() {
    let sim = Sim::new(10);
    let outbox = sim.open();
    outbox
        .enqueue(vec![violation("v1"), violation("v2")], sim.now)
        .unwrap();
    let r = sim.pass(&outbox).await.unwrap();
    assert_eq!((r.submitted, r.txs), (2, 1));
    drop(outbox); // crash with the tx hash recorded
    sim.chain.commit_block();
    let outbox = sim.open();
    assert!(outbox.entries().unwrap().iter().all(|e| matches!(
        &e.state,
        ItemState::InFlight { txhash: Some(h), .. } if h == "TX0001"
    )));
    let r = sim.pass(&outbox).await.unwrap();
    assert_eq!(r.confirmed, 2);
    assert!(outbox.is_empty().unwrap());
    assert_eq!(sim.chain.assert_each_once(), (0, 2));
}

// ----- crash at every sink call of several scenarios -----

#[derive(Clone, Copy, Debug, Default)]
struct Variant {
    check_executes: bool,
    lose_first: bool,
    hold_first: bool,
    poison: bool,
    already_on_chain: bool,
}

/// Runs the scenario, optionally crashing at one sink call; checks the end state and
/// returns how many sink calls the run made.
async fn scenario(v: Variant, crash: Option<Crash>) -> usize {
    let mut sim = Sim::new(2);
    sim.chain.with(|s| {
        s.check_executes = v.check_executes;
        s.lose_next = v.lose_first as u32;
        s.hold_next = v.hold_first as u32;
        if v.poison {
            s.poison.insert("a3".into());
        }
        if v.already_on_chain {
            // Delivered earlier; the enforcer enqueues it again (e.g. replayed a block).
            s.audits.insert("a2".into(), 1);
            s.store_as(&audit("a2"), common::SIGNER);
        }
        s.crash = crash;
    });
    let all = items();
    let outbox = sim.open();
    outbox.enqueue(all.clone(), sim.now).unwrap();
    let (outbox, _) = if v.hold_first {
        // Let the first tx time out and its items be sent again, then include it late.
        let outbox = {
            let mut outbox = outbox;
            for _ in 0..8 {
                if sim.pass(&outbox).await.is_none() {
                    drop(outbox);
                    sim.crashes += 1;
                    outbox = sim.open();
                    outbox.enqueue(all.clone(), sim.now).unwrap();
                }
                sim.now += STEP;
            }
            sim.chain.release_held();
            outbox
        };
        sim.drive(outbox, &all).await
    } else {
        sim.drive(outbox, &all).await
    };
    let label = format!("{v:?} crash {crash:?}");
    if crash.is_some() {
        assert_eq!(sim.crashes, 1, "{label}: the crash point was reached");
    }
    assert!(outbox.is_empty().unwrap(), "{label}");
    sim.chain.assert_each_once();
    let mut want_audits = ids(&all, ItemKind::Audit);
    if v.poison {
        want_audits.retain(|id| id != "a3");
        let dead = outbox.dead_letters().unwrap();
        assert_eq!(dead.len(), 1, "{label}");
        assert_eq!(dead[0].item.id(), "a3");
        assert_eq!(
            (dead[0].code, dead[0].codespace.as_str()),
            (CODE_JOB_NOT_FOUND, HPC_CODESPACE)
        );
    } else {
        assert!(outbox.dead_letters().unwrap().is_empty(), "{label}");
    }
    assert_eq!(stored(&sim.chain, ItemKind::Audit), want_audits, "{label}");
    assert_eq!(
        stored(&sim.chain, ItemKind::Violation),
        ids(&all, ItemKind::Violation),
        "{label}"
    );
    sim.chain.with(|s| s.calls)
}

async fn sweep(v: Variant) {
    let calls = scenario(v, None).await;
    assert!(calls > 0);
    for at_call in 1..=calls {
        for after_effect in [false, true] {
            scenario(
                v,
                Some(Crash {
                    at_call,
                    after_effect,
                }),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn crash_anywhere_plain() {
    sweep(Variant::default()).await;
}

#[tokio::test]
async fn crash_anywhere_refusals_at_check_tx() {
    sweep(Variant {
        check_executes: true,
        poison: true,
        already_on_chain: true,
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn crash_anywhere_refusals_in_block() {
    sweep(Variant {
        poison: true,
        already_on_chain: true,
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn crash_anywhere_lost_tx() {
    sweep(Variant {
        lose_first: true,
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn crash_anywhere_late_tx() {
    sweep(Variant {
        hold_first: true,
        ..Default::default()
    })
    .await;
    sweep(Variant {
        hold_first: true,
        check_executes: true,
        ..Default::default()
    })
    .await;
}

// ----- failure modes -----

#[tokio::test]
async fn chain_unavailable_for_n_passes_then_delivered_once() {
    let mut sim = Sim::new(10);
    let outbox = sim.open();
    outbox
        .enqueue(vec![audit("a1"), audit("a2"), violation("v1")], sim.now)
        .unwrap();
    sim.chain.with(|s| s.unavailable = true);
    for _ in 0..5 {
        let r = sim.pass(&outbox).await.unwrap();
        assert!(r.unavailable);
        assert_eq!(r.submitted, 0);
        assert!(r.retried > 0);
        let d = outbox.depth().unwrap();
        assert_eq!((d.audits.pending, d.violations.pending), (2, 1));
        sim.now += STEP;
    }
    sim.chain.with(|s| s.unavailable = false);
    let r = sim.pass(&outbox).await.unwrap();
    assert!(!r.unavailable);
    assert_eq!((r.submitted, r.txs), (3, 2), "one tx per kind");

    // Down again while the txs are in flight: the items wait in flight.
    sim.chain.commit_block();
    sim.chain.with(|s| s.unavailable = true);
    let r = sim.pass(&outbox).await.unwrap();
    assert!(r.unavailable);
    assert_eq!(outbox.depth().unwrap().total(), 3);
    sim.chain.with(|s| s.unavailable = false);
    let r = sim.pass(&outbox).await.unwrap();
    assert_eq!(r.confirmed, 3);
    assert!(outbox.is_empty().unwrap());
    assert_eq!(sim.chain.assert_each_once(), (2, 1));
    assert_eq!(sim.chain.with(|s| s.broadcasts), 2);
}

#[tokio::test]
async fn sequence_mismatch_recovers() {
    let mut sim = Sim::new(10);
    let outbox = sim.open();
    outbox
        .enqueue(vec![audit("a1"), audit("a2")], sim.now)
        .unwrap();
    // Once: resent within the same pass.
    sim.chain.with(|s| s.sequence_mismatches = 1);
    let r = sim.pass(&outbox).await.unwrap();
    assert!(!r.unavailable);
    assert_eq!((r.submitted, r.retried), (2, 2));
    // Repeatedly: back off, then succeed.
    outbox.enqueue(vec![audit("a3")], sim.now).unwrap();
    sim.chain.with(|s| s.sequence_mismatches = 3);
    let r = sim.pass(&outbox).await.unwrap();
    assert!(r.unavailable);
    assert_eq!(r.submitted, 0);
    let (outbox, _) = sim.drive(outbox, &[]).await;
    assert!(outbox.is_empty().unwrap());
    assert_eq!(sim.chain.assert_each_once(), (3, 0));
}

async fn poison_case(check_executes: bool) {
    let mut sim = Sim::new(10);
    sim.chain.with(|s| {
        s.check_executes = check_executes;
        s.poison.insert("a3".into());
    });
    let outbox = sim.open();
    let batch = vec![audit("a1"), audit("a2"), audit("a3"), audit("a4")];
    outbox.enqueue(batch, sim.now).unwrap();
    let (outbox, report) = sim.drive(outbox, &[]).await;
    assert_eq!(report.dead, 1);
    assert_eq!(stored(&sim.chain, ItemKind::Audit), ["a1", "a2", "a4"]);
    sim.chain.assert_each_once();
    let dead = outbox.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].item, audit("a3"));
    assert_eq!(dead[0].code, CODE_JOB_NOT_FOUND);
    assert!(dead[0].log.contains("a3"), "{}", dead[0].log);
    assert_eq!(outbox.depth().unwrap().dead, 1);
    // Enqueueing a dead id again is a no-op.
    assert_eq!(outbox.enqueue(vec![audit("a3")], sim.now).unwrap(), 0);

    // The cause is fixed on chain; the operator requeues.
    sim.chain.with(|s| s.poison.clear());
    assert_eq!(outbox.requeue_dead_letters().unwrap(), 1);
    assert_eq!(outbox.depth().unwrap().audits.pending, 1);
    let (outbox, _) = sim.drive(outbox, &[]).await;
    assert!(outbox.dead_letters().unwrap().is_empty());
    assert_eq!(sim.chain.assert_each_once(), (4, 0));
}

#[tokio::test]
async fn poison_item_goes_to_dead_letters_while_the_others_deliver() {
    poison_case(false).await;
    poison_case(true).await;
}

#[tokio::test]
async fn fee_and_account_errors_are_retried_not_dead_lettered() {
    let mut sim = Sim::new(10);
    let outbox = sim.open();
    outbox
        .enqueue(vec![audit("a1"), audit("a2")], sim.now)
        .unwrap();
    // sdk 5 insufficient funds, twice: back off, keep the batch whole.
    sim.chain.with(|s| s.refuse_next = Some((5, "sdk", 2)));
    for _ in 0..2 {
        let r = sim.pass(&outbox).await.unwrap();
        assert!(r.unavailable);
        assert_eq!((r.retried, r.dead), (2, 0));
        assert!(outbox.entries().unwrap().iter().all(|e| !e.isolated));
        sim.now += STEP;
    }
    // sdk 32 reported as a rejection: resent next pass without backoff.
    sim.chain.with(|s| s.refuse_next = Some((32, "sdk", 1)));
    let r = sim.pass(&outbox).await.unwrap();
    assert!(!r.unavailable);
    let (outbox, _) = sim.drive(outbox, &[]).await;
    assert!(outbox.dead_letters().unwrap().is_empty());
    assert_eq!(sim.chain.assert_each_once(), (2, 0));
    assert_eq!(sim.chain.with(|s| s.broadcasts), 1, "one tx for both");
}

#[tokio::test]
async fn lost_tx_is_resent_after_the_timeout() {
    let mut sim = Sim::new(10);
    sim.chain.with(|s| s.lose_next = 1);
    let outbox = sim.open();
    outbox
        .enqueue(vec![audit("a1"), audit("a2")], sim.now)
        .unwrap();
    let start = sim.now;
    assert_eq!(sim.pass(&outbox).await.unwrap().submitted, 2);
    // Before the timeout: only waiting.
    while sim.now + STEP < start + 60 {
        sim.now += STEP;
        sim.chain.commit_block();
        let r = sim.pass(&outbox).await.unwrap();
        assert_eq!(r, Report::default());
    }
    sim.now = start + 60;
    let r = sim.pass(&outbox).await.unwrap();
    assert_eq!((r.retried, r.submitted), (2, 2));
    let (outbox, _) = sim.drive(outbox, &[]).await;
    assert!(outbox.is_empty().unwrap());
    assert_eq!(sim.chain.with(|s| s.broadcasts), 2);
    assert_eq!(sim.chain.assert_each_once(), (2, 0));
}

#[tokio::test]
async fn late_tx_and_resend_store_each_item_once() {
    let mut sim = Sim::new(10);
    sim.chain.with(|s| s.hold_next = 1);
    let outbox = sim.open();
    outbox
        .enqueue(vec![audit("a1"), audit("a2")], sim.now)
        .unwrap();
    sim.pass(&outbox).await.unwrap(); // TX0001 [a1 a2], held
    outbox.enqueue(vec![audit("a3")], sim.now).unwrap();
    sim.now += 60;
    // Timed out, absent → resent with a3: TX0002 [a1 a2 a3].
    let r = sim.pass(&outbox).await.unwrap();
    assert_eq!((r.retried, r.submitted, r.txs), (2, 3, 1));
    // TX0001 lands first; TX0002 is refused as a whole (duplicate record).
    sim.chain.release_held();
    sim.chain.commit_block();
    sim.now += STEP;
    let r = sim.pass(&outbox).await.unwrap();
    assert_eq!(r.confirmed, 2, "a1 a2 confirmed via exists()");
    assert_eq!(r.submitted, 1, "a3 resent");
    let (outbox, _) = sim.drive(outbox, &[]).await;
    assert!(outbox.is_empty().unwrap());
    assert_eq!(sim.chain.assert_each_once(), (3, 0));
}

#[tokio::test]
async fn stale_batch_size_is_isolated_not_dead() {
    let mut sim = Sim::new(2);
    sim.chain.with(|s| s.reported_max_batch = Some(5));
    let outbox = sim.open();
    outbox
        .enqueue((1..=5).map(|i| audit(&format!("a{i}"))).collect(), sim.now)
        .unwrap();
    let (outbox, report) = sim.drive(outbox, &[]).await;
    assert_eq!(report.dead, 0);
    assert!(outbox.dead_letters().unwrap().is_empty());
    assert_eq!(sim.chain.assert_each_once(), (5, 0));
}

#[tokio::test]
async fn re_enqueued_after_delivery_is_not_stored_twice() {
    let mut sim = Sim::new(10);
    let outbox = sim.open();
    outbox.enqueue(vec![audit("a1")], sim.now).unwrap();
    let (outbox, _) = sim.drive(outbox, &[]).await;
    assert_eq!(
        outbox
            .enqueue(vec![audit("a1"), audit("a2")], sim.now)
            .unwrap(),
        2
    );
    let (outbox, _) = sim.drive(outbox, &[]).await;
    assert!(outbox.is_empty().unwrap());
    assert_eq!(sim.chain.assert_each_once(), (2, 0));
}

#[tokio::test]
async fn batches_respect_max_size_and_fifo() {
    let sim = Sim::new(3);
    let outbox = sim.open();
    outbox
        .enqueue((1..=7).map(|i| audit(&format!("a{i}"))).collect(), sim.now)
        .unwrap();
    outbox.enqueue(vec![violation("v1")], sim.now).unwrap();
    let r = sim.pass(&outbox).await.unwrap();
    assert_eq!((r.txs, r.submitted), (4, 8));
    sim.chain.with(|s| {
        let batches: Vec<Vec<&str>> = s.mempool.iter().map(|(_, b)| b.ids()).collect();
        assert_eq!(
            batches,
            vec![
                vec!["a1", "a2", "a3"],
                vec!["v1"],
                vec!["a4", "a5", "a6"],
                vec!["a7"]
            ]
        );
    });
}

#[test]
fn backoff_doubles_deterministically() {
    let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let got: Vec<u64> = (0..8).map(|_| b.next_delay().as_secs()).collect();
    assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60]);
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_loop_delivers_and_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path().join("o.redb")).unwrap());
    let chain = Arc::new(FakeChain::new(10));
    chain.with(|s| s.auto_commit = true);
    let deliverer = Deliverer::new(DelivererConfig {
        poll_interval: Duration::from_millis(20),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        ..Default::default()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let observed = Arc::new(Observed::default());
    let task = {
        let (outbox, chain, seen) = (outbox.clone(), chain.clone(), observed.clone());
        let start = std::time::Instant::now();
        tokio::spawn(async move {
            let clock = move || start.elapsed().as_secs();
            let stopped = async {
                let _ = stopped.await;
            };
            deliverer
                .run(&outbox, &*chain, clock, &*seen, stopped)
                .await
        })
    };
    async fn until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }
    outbox
        .enqueue(vec![audit("a1"), violation("v1")], 0)
        .unwrap();
    until("delivery", || outbox.is_empty().unwrap()).await;

    chain.with(|s| s.unavailable = true);
    outbox.enqueue(vec![audit("a2")], 0).unwrap();
    until("a failed broadcast", || chain.with(|s| s.calls) > 4).await;
    assert_eq!(outbox.depth().unwrap().audits.pending, 1);
    chain.with(|s| s.unavailable = false);
    until("delivery after the outage", || outbox.is_empty().unwrap()).await;

    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(chain.assert_each_once(), (2, 1));
    // One outage: its first pass told apart from the retries, its end told once.
    let events = observed.events.lock().unwrap().clone();
    let outage: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "pass")
        .collect();
    assert!(outage.len() >= 2, "{events:?}");
    assert_eq!(outage[0], "unavailable first");
    assert!(
        outage[1..outage.len() - 1]
            .iter()
            .all(|e| *e == "unavailable"),
        "{events:?}"
    );
    assert_eq!(outage[outage.len() - 1], "reachable again");
    assert!(events.iter().filter(|e| *e == "pass").count() >= outage.len());
}

/// What the delivery loop reported, in order.
#[derive(Default)]
struct Observed {
    events: std::sync::Mutex<Vec<String>>,
}

impl DeliveryObserver for Observed {
    fn chain_unavailable(&self, first: bool) {
        let event = if first {
            "unavailable first"
        } else {
            "unavailable"
        };
        self.events.lock().unwrap().push(event.into());
    }
    fn chain_reachable_again(&self) {
        self.events.lock().unwrap().push("reachable again".into());
    }
    fn storage_failed(&self, error: &OutboxError) {
        self.events
            .lock()
            .unwrap()
            .push(format!("storage: {error}"));
    }
    fn after_pass(&self, _outbox: &Outbox) {
        self.events.lock().unwrap().push("pass".into());
    }
}

/// Issue 8, item 1: an id that holds another item on chain (a front-runner's forgery, or
/// another signer's) is never taken as delivered, whether the chain answers with the
/// conflict code (18 / 19) or, as x/hpc did before, with "already recorded" (9 / 13):
/// the item is dead-lettered with the conflict and the others of its batch deliver.
#[tokio::test]
async fn an_id_holding_another_item_is_never_taken_as_delivered() {
    for legacy in [false, true] {
        let mut sim = Sim::new(10);
        let forged_audit = match audit("a1") {
            OutboxItem::Audit(mut r) => {
                r.status = 3;
                r.reason = "forged rejection".into();
                OutboxItem::Audit(r)
            }
            other => other,
        };
        sim.chain.with(|s| {
            s.legacy_duplicate_code = legacy;
            s.store_as(&forged_audit, "virtengine1mallory");
            s.store_as(&violation("v1"), "virtengine1mallory");
        });
        let outbox = sim.open();
        outbox
            .enqueue(
                vec![audit("a1"), audit("a2"), violation("v1"), violation("v2")],
                sim.now,
            )
            .unwrap();
        let (outbox, report) = sim.drive(outbox, &[]).await;
        assert_eq!(report.dead, 2, "legacy codes: {legacy}");
        assert_eq!(stored(&sim.chain, ItemKind::Audit), ["a2"]);
        assert_eq!(stored(&sim.chain, ItemKind::Violation), ["v2"]);
        let mut dead: Vec<(String, u32)> = outbox
            .dead_letters()
            .unwrap()
            .into_iter()
            .map(|d| (d.item.id().to_string(), d.code))
            .collect();
        dead.sort();
        let conflict = |audit_code, violation_code| {
            vec![
                ("a1".to_string(), audit_code),
                ("v1".to_string(), violation_code),
            ]
        };
        assert_eq!(
            dead,
            conflict(CODE_RECORD_ID_CONFLICT, CODE_VIOLATION_ID_CONFLICT),
            "legacy codes: {legacy}"
        );
        // The forgery is still what the chain holds: nothing was confirmed over it.
        sim.chain.with(|s| {
            let held = &s.contents[&(ItemKind::Audit, "a1".to_string())];
            assert_eq!(held, &forged_audit_as_stored(&forged_audit));
        });
    }
}

fn forged_audit_as_stored(item: &OutboxItem) -> OutboxItem {
    match item.clone() {
        OutboxItem::Audit(mut r) => {
            r.provider_address = "virtengine1mallory".into();
            OutboxItem::Audit(r)
        }
        other => other,
    }
}
