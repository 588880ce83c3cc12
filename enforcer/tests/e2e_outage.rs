//! "The chain is down for minutes: nothing lost, nothing duplicated", end to end against
//! real CometBFT + hpcd + hpc-enforcer processes.
//!
//! A validator V and a full node F of the same chain; provider1's enforcer (strict,
//! embedded scheduler) reads blocks and sends txs through F only, as a provider running
//! its own RPC node would. Jobs are scheduled onto provider1's cluster while the enforcer
//! is down, then V is killed: the chain is halted, F still serves reads and accepts txs
//! into its mempool, nothing commits. The enforcer starts, evaluates the jobs, runs them
//! locally and keeps their audit records in its outbox for longer than the outbox's
//! backoff ceiling and in-flight timeout; meanwhile F itself goes away and comes back
//! (losing its mempool). When V returns, every job has exactly one audit record and one
//! `hpc_job_routed` event, each job is COMPLETED, and the outbox is empty with no dead
//! letters.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{eventually_within, query, register_cluster, submit_job};
use hpc_client::events::BlockFollower;
use hpc_testkit::enforcer::{embedded, try_http_get, Enforcer, EnforcerSpec, DEBUG_LOG};
use hpc_testkit::TestNode;
use serde_json::Value;

/// Jobs scheduled onto provider1's cluster before the outage.
const JOBS: usize = 3;

/// How long the chain stays halted, counted from the enforcer's start against the halted
/// chain. `DelivererConfig::default()` (enforcer/outbox/src/deliver.rs) caps the
/// deliverer's backoff at `backoff_max` = 60 s and gives up on an in-flight tx that is
/// still not found after `inflight_timeout_secs` = 60 s (the items are then re-checked on
/// chain and re-sent); the block follower's reconnect backoff is capped at 30 s
/// (enforcer/src/daemon/follow.rs). 70 s outlasts all of them, so the records go through the
/// timeout-and-resend path while the chain is still halted.
const HALT: Duration = Duration::from_secs(70);

/// Waits until `/readyz` answers 200 with the chain reachable.
async fn ready_within(what: &str, enforcer: &Enforcer, timeout: Duration) {
    eventually_within(what, enforcer, timeout, || {
        match enforcer.admin_json("/readyz") {
            Some((200, body)) if body["chain_reachable"] == true => Some(()),
            _ => None,
        }
    })
    .await;
}

/// A numeric field of the enforcer's `/status`.
fn status_u64(status: &Value, field: &str) -> u64 {
    status[field]
        .as_u64()
        .unwrap_or_else(|| panic!("/status.{field} missing: {status}"))
}

/// Samples until `until`: the records are all still waiting in the outbox (nothing can
/// be confirmed while the chain is halted), none is dead, the enforcer is alive, and, if
/// F is up, F's height has not moved (the chain is really halted).
async fn hold_halted(
    until: Instant,
    enforcer: &mut Enforcer,
    full: Option<&TestNode>,
    halted_at: u64,
) {
    while Instant::now() < until {
        assert!(
            enforcer.is_running(),
            "the enforcer exited during the halt\n{}",
            enforcer.log_tail()
        );
        let status = enforcer.status().expect("the admin API answers /status");
        assert_eq!(
            status_u64(&status, "outbox_pending"),
            JOBS as u64,
            "records left the outbox while the chain is halted: {status}"
        );
        assert_eq!(status_u64(&status, "outbox_dead"), 0, "{status}");
        if let Some(full) = full {
            let h = full.height().await.expect("F answers while it is up");
            assert_eq!(h, halted_at, "the chain is not halted: F moved to {h}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `node`'s height once it has not moved for 2 s (a block V committed just before it
/// died may still be reaching F).
async fn stable_height(node: &TestNode) -> u64 {
    let mut last = node.height().await.expect("the node answers");
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = node.height().await.expect("the node answers");
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Whether the outbox gave up on an in-flight tx that stayed unknown past its timeout.
fn inflight_timed_out(enforcer: &Enforcer) -> bool {
    enforcer
        .log_text()
        .contains("outbox: tx not found after timeout")
}

/// Per job id of `jobs`, the `kind` events (their attributes) in blocks `from..=to` of
/// `node`, read from `/block_results`.
async fn events_by_job(
    node: &TestNode,
    kind: &str,
    jobs: &[String],
    from: u64,
    to: u64,
) -> BTreeMap<String, Vec<(u64, BTreeMap<String, String>)>> {
    let mut follower = BlockFollower::new(&node.rpc_url(), None, from).unwrap();
    let mut found: BTreeMap<String, Vec<_>> = jobs.iter().map(|j| (j.clone(), vec![])).collect();
    while follower.next_height() <= to {
        let block = follower.next().await.unwrap();
        for event in block.events.into_iter().filter(|e| e.kind == kind) {
            if let Some(list) = event
                .attributes
                .get("job_id")
                .and_then(|j| found.get_mut(j))
            {
                list.push((block.head.height, event.attributes));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_halted_for_minutes_nothing_lost_nothing_duplicated() {
    let t0 = Instant::now();
    let mut validator = TestNode::init("e2e-outage-1");
    let mut full = validator.init_full_node();
    validator.start(2).await;
    full.start(0).await;
    full.wait_synced_with(&validator, Duration::from_secs(60))
        .await;
    let p1 = validator.key_address("provider1");
    register_cluster(&validator, "provider1", "cluster-p1", 10);

    // provider1's enforcer, on F's RPC and gRPC (the keyring is V's home).
    let dir = tempfile::tempdir().unwrap();
    let mut enforcer = Enforcer::write(
        &EnforcerSpec {
            keys: &validator,
            chain: &full,
            provider_key: "provider1",
            cluster: "cluster-p1",
            scheduler: embedded(4),
            mode: "strict",
            max_age_blocks: 100,
            log_level: DEBUG_LOG,
        },
        dir.path(),
    );
    enforcer.start();
    ready_within(
        "the enforcer ready on F",
        &enforcer,
        Duration::from_secs(60),
    )
    .await;
    enforcer.kill();

    // JOBS jobs scheduled onto cluster-p1 (through V) while the enforcer is down.
    let jobs: Vec<String> = (0..JOBS)
        .map(|_| {
            let (job, cluster) = submit_job(&validator, 1);
            assert_eq!(cluster, "cluster-p1", "job {job} scheduled elsewhere");
            job
        })
        .collect();
    full.wait_synced_with(&validator, Duration::from_secs(60))
        .await;

    // The chain halts: its only validator crashes. F still serves what was committed.
    validator.kill();
    let halted_at = stable_height(&full).await;
    for job in &jobs {
        assert_eq!(
            query(&full, &["job", job])["job"]["state"],
            "JOB_STATE_SCHEDULED",
            "F has job {job} scheduled"
        );
    }
    eprintln!(
        "[{:?}] V killed; chain halted at {halted_at}; jobs {jobs:?}",
        t0.elapsed()
    );

    // The enforcer starts against the halted chain: it evaluates the jobs from F, runs
    // them, and its JOBS audit records (approved, no violation) wait in the outbox.
    enforcer.start();
    let halt_started = Instant::now();
    let halt_ends = halt_started + HALT;
    eventually_within(
        "all audit records waiting in the outbox",
        &enforcer,
        Duration::from_secs(30),
        || {
            let status = enforcer.status()?;
            (status["outbox_pending"] == JOBS as u64).then_some(())
        },
    )
    .await;
    let audit_log = std::fs::read_to_string(dir.path().join("state/audit.log")).unwrap();
    for job in &jobs {
        assert!(
            audit_log
                .lines()
                .any(|l| l.contains(job.as_str()) && l.contains("\"event\":\"routing_enforced\"")),
            "job {job} not enforced locally during the halt:\n{audit_log}"
        );
    }
    hold_halted(
        Instant::now() + Duration::from_secs(5),
        &mut enforcer,
        Some(&full),
        halted_at,
    )
    .await;

    // The provider's own RPC node goes away too: not ready, chain unreachable.
    full.stop();
    eprintln!("[{:?}] F stopped", t0.elapsed());
    let body = eventually_within(
        "/readyz 503 while F is down",
        &enforcer,
        Duration::from_secs(20),
        || match enforcer.admin_json("/readyz") {
            Some((503, body)) => Some(body),
            _ => None,
        },
    )
    .await;
    assert_eq!(body["chain_reachable"], false, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    hold_halted(
        Instant::now() + Duration::from_secs(8),
        &mut enforcer,
        None,
        halted_at,
    )
    .await;
    let (code, body) = enforcer.admin_json("/readyz").expect("/readyz answers");
    assert_eq!(code, 503, "still unreachable while F is down: {body}");

    // F returns, with an empty mempool (the txs it had accepted are gone); the chain is
    // still halted. The enforcer reaches F again (ready: F answers and the enforcer is not
    // behind it): only its txs (heartbeats, and the records once their in-flight tx times
    // out) can be in F's fresh mempool.
    full.start(halted_at).await;
    eprintln!("[{:?}] F restarted", t0.elapsed());
    ready_within(
        "/readyz 200 once F answers again, the chain still halted",
        &enforcer,
        Duration::from_secs(30),
    )
    .await;
    let rpc_addr = full.rpc_url().trim_start_matches("http://").to_string();
    eventually_within(
        "the enforcer's txs in F's mempool after F's restart",
        &enforcer,
        Duration::from_secs(30),
        || {
            let response = try_http_get(&rpc_addr, "/num_unconfirmed_txs")?;
            let body: Value = serde_json::from_str(response.split_once("\r\n\r\n")?.1).ok()?;
            let n: u64 = body["result"]["n_txs"].as_str()?.parse().ok()?;
            (n > 0).then_some(())
        },
    )
    .await;
    hold_halted(halt_ends, &mut enforcer, Some(&full), halted_at).await;
    // The in-flight txs of the records were lost with F's mempool: the deliverer gives up
    // on them after its in-flight timeout, finds the records absent on chain and re-sends
    // them, all while the chain is halted. (Due about 10 s before HALT ends; on a loaded
    // machine the halt is extended by up to 20 s, still checking that it is a halt.)
    let extended_until = Instant::now() + Duration::from_secs(20);
    while !inflight_timed_out(&enforcer) && Instant::now() < extended_until {
        let next = Instant::now() + Duration::from_secs(1);
        hold_halted(next, &mut enforcer, Some(&full), halted_at).await;
    }
    assert!(
        inflight_timed_out(&enforcer),
        "the in-flight timeout did not fire during the halt\n{}",
        enforcer.log_tail()
    );
    for job in &jobs {
        let records = query(&full, &["audit-records", "--job", job]);
        assert_eq!(
            records["records"].as_array().map_or(0, Vec::len),
            0,
            "an audit record of {job} committed during the halt: {records}"
        );
    }

    // The chain comes back after HALT.
    validator.start(halted_at + 1).await;
    eprintln!(
        "[{:?}] V restarted after a {:?} halt",
        t0.elapsed(),
        halt_started.elapsed()
    );
    ready_within(
        "/readyz 200 once blocks flow again",
        &enforcer,
        Duration::from_secs(60),
    )
    .await;
    for job in &jobs {
        let j = eventually_within(
            &format!("job {job} COMPLETED"),
            &enforcer,
            Duration::from_secs(90),
            || {
                let j = query(&validator, &["job", job]);
                (j["job"]["state"] == "JOB_STATE_COMPLETED").then_some(j)
            },
        )
        .await;
        assert_eq!(j["job"]["routed_cluster_id"], "cluster-p1", "{j}");
    }
    let status = eventually_within(
        "the outbox empty",
        &enforcer,
        Duration::from_secs(60),
        || {
            let status = enforcer.status()?;
            (status["outbox_pending"] == 0).then_some(status)
        },
    )
    .await;
    eprintln!(
        "[{:?}] all delivered: outbox_pending {} outbox_dead {} head {}",
        t0.elapsed(),
        status["outbox_pending"],
        status["outbox_dead"],
        status["head_height"]
    );
    assert_eq!(
        status_u64(&status, "outbox_dead"),
        0,
        "dead letters: {status}"
    );

    // Exactly one audit record per job on chain, approved, by provider1; no violation.
    for job in &jobs {
        let records = query(&validator, &["audit-records", "--job", job]);
        let records = records["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "job {job}: {records:?}");
        assert_eq!(records[0]["status"], "AUDIT_STATUS_APPROVED");
        assert_eq!(records[0]["provider_address"], p1);
        assert_eq!(records[0]["actual_cluster_id"], "cluster-p1");
        assert!(records[0]["record_id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{p1}:ra-")));
        let violations = query(&validator, &["violations", "--job", job]);
        assert_eq!(
            violations["violations"].as_array().map_or(0, Vec::len),
            0,
            "job {job}: {violations}"
        );
    }

    // The chain's own account of it, block by block: one hpc_job_routed per job (N in
    // all), each committed after the halt, and the job reported COMPLETED once (it ran
    // and finished locally during the halt, so RUNNING may have been skipped).
    let head = validator.height().await.unwrap();
    let routed = events_by_job(&validator, "hpc_job_routed", &jobs, 1, head).await;
    let total: usize = routed.values().map(Vec::len).sum();
    assert_eq!(total, JOBS, "hpc_job_routed events: {routed:?}");
    for (job, events) in &routed {
        assert_eq!(events.len(), 1, "job {job}: {events:?}");
        let (height, attrs) = &events[0];
        assert!(*height > halted_at, "job {job} routed at {height}");
        assert_eq!(attrs["provider"], p1);
        assert_eq!(attrs["cluster_id"], "cluster-p1");
        assert_eq!(attrs["status"], "approved");
    }
    let audited = events_by_job(&validator, "hpc_routing_audit_recorded", &jobs, 1, head).await;
    for (job, events) in &audited {
        assert_eq!(events.len(), 1, "job {job} audited: {events:?}");
    }
    let reported = events_by_job(&validator, "hpc_job_status", &jobs, 1, head).await;
    for (job, events) in &reported {
        let statuses: Vec<&str> = events.iter().map(|(_, a)| a["status"].as_str()).collect();
        assert!(
            statuses == ["JOB_STATE_COMPLETED"]
                || statuses == ["JOB_STATE_RUNNING", "JOB_STATE_COMPLETED"],
            "job {job} statuses: {statuses:?}"
        );
        assert!(
            events.iter().all(|(h, _)| *h > routed[job][0].0),
            "job {job} reported before it was routed: {events:?}"
        );
    }

    // This enforcer process evaluated each job once and is still running.
    let metrics = enforcer.http_get(&enforcer.metrics, "/metrics");
    assert!(
        metrics.contains(&format!(
            "routing_enforcement_total{{outcome=\"run\"}} {JOBS}"
        )),
        "{metrics}"
    );
    assert!(
        enforcer.is_running(),
        "the enforcer exited\n{}",
        enforcer.log_tail()
    );
    let log = enforcer.log_text();
    eprintln!(
        "[{:?}] done; enforcer log: {} 'tx not found after timeout', {} 'batch broadcast', {} 'tx failed on chain'",
        t0.elapsed(),
        log.matches("tx not found after timeout").count(),
        log.matches("outbox: batch broadcast").count(),
        log.matches("tx failed on chain").count(),
    );
}
