//! The enforcer end to end against real CometBFT + hpcd + hpc-enforcer processes: a job
//! scheduled onto provider1's cluster is validated, run by the embedded scheduler, audited
//! `approved` on chain (hpc_job_routed) and reported COMPLETED; a job the local cluster
//! cannot hold (scheduled before the enforcer's heartbeats corrected the chain's view) is rejected in strict mode with a capacity_exceeded violation on chain; a
//! job submitted while the enforcer is down is handled after its restart, and no record
//! is ever duplicated.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{attr, eventually, hpc_tx, query, register_cluster, submit_job};
use hpc_primitives::contract::workload::sha256_hex;
use hpc_testkit::enforcer::{embedded, Enforcer};
use hpc_testkit::{workspace_bin, TestNode};
use serde_json::Value;
use tendermint_rpc::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcer_routes_runs_rejects_and_survives_restart() {
    let mut node = TestNode::init("e2e-enforcer-1");
    node.start(2).await;
    let p1 = node.key_address("provider1");
    register_cluster(&node, "provider1", "cluster-p1", 10);
    register_cluster(&node, "provider2", "cluster-p2", 150);

    // A job scheduled before the enforcer runs, while the chain still believes the
    // registered 8 nodes are free; the local scheduler has only 2.
    let (big, cluster) = submit_job(&node, 4);
    assert_eq!(cluster, "cluster-p1");

    let dir = tempfile::tempdir().unwrap();
    let mut enforcer = Enforcer::write_config(&node, dir.path(), "provider1", "cluster-p1", 2);
    enforcer.start();

    // 1. A job the cluster can hold: validated, run, audited approved, reported COMPLETED.
    let (job, cluster) = submit_job(&node, 1);
    assert_eq!(cluster, "cluster-p1");
    let state = eventually("job 1 completed", &enforcer, || {
        let j = query(&node, &["job", &job]);
        (j["job"]["state"] == "JOB_STATE_COMPLETED").then_some(j)
    })
    .await;
    assert_eq!(state["job"]["routed_cluster_id"], "cluster-p1");
    let records = query(&node, &["audit-records", "--job", &job]);
    let records = records["records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        1,
        "exactly one audit record per decision attempt"
    );
    assert_eq!(records[0]["status"], "AUDIT_STATUS_APPROVED");
    assert_eq!(records[0]["provider_address"], p1);
    // In provider1's own id namespace, which nobody else can record under.
    assert!(records[0]["record_id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{p1}:ra-")));

    // 2. The job larger than the local cluster: strict rejects it with a
    //    capacity_exceeded violation on chain.
    eventually("job 2 rejected", &enforcer, || {
        (query(&node, &["job", &big])["job"]["state"] == "JOB_STATE_REJECTED").then_some(())
    })
    .await;
    let violations = query(&node, &["violations", "--job", &big]);
    assert_eq!(
        violations["violations"][0]["violation_type"],
        "VIOLATION_TYPE_CAPACITY_EXCEEDED"
    );
    assert_eq!(violations["violations"][0]["severity"], 3);
    let records = query(&node, &["audit-records", "--job", &big]);
    assert_eq!(records["records"][0]["status"], "AUDIT_STATUS_REJECTED");

    // Observability: metrics, admin API, audit log, status command.
    let metrics = enforcer.http_get(&enforcer.metrics, "/metrics");
    assert!(
        metrics.contains("routing_enforcement_total{outcome=\"run\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("routing_violations_total{type=\"capacity_exceeded\"} 1"),
        "{metrics}"
    );
    assert!(enforcer
        .http_get(&enforcer.admin, "/healthz")
        .ends_with("ok"));
    let count = enforcer.http_get(&enforcer.admin, &format!("/violations/{p1}"));
    assert!(count.contains("\"count\":1"), "{count}");
    let log = std::fs::read_to_string(dir.path().join("state/audit.log")).unwrap();
    assert!(
        log.contains("\"event\":\"routing_enforced\"")
            && log.contains("\"event\":\"routing_enforcement_failed\""),
        "{log}"
    );
    let status = Command::new(workspace_bin("hpc-enforcer"))
        .args(["status", "--admin", &enforcer.admin])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["head_height"].as_u64().unwrap() > 0);
    assert_eq!(status["outbox_pending"], 0);

    // 3. Crash the enforcer; a job submitted meanwhile is handled after the restart, once.
    enforcer.kill();
    let (late, _) = submit_job(&node, 1);
    enforcer.start();
    eventually("job 3 completed after restart", &enforcer, || {
        (query(&node, &["job", &late])["job"]["state"] == "JOB_STATE_COMPLETED").then_some(())
    })
    .await;
    for j in [&job, &big, &late] {
        let n = query(&node, &["audit-records", "--job", j])["records"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(n, 1, "job {j} has {n} audit records");
    }
    // Heartbeats reached the chain.
    let cluster = query(&node, &["cluster", "cluster-p1"]);
    assert!(
        cluster["cluster"]["last_heartbeat_height"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_fallback_to_another_provider_and_stale_refresh() {
    let mut node = TestNode::init("e2e-enforcer-2");
    node.start(2).await;
    let p1 = node.key_address("provider1");
    register_cluster(&node, "provider1", "cluster-p1", 10);
    register_cluster(&node, "provider2", "cluster-p2", 150);

    // Scheduled onto cluster-p1 before any enforcer runs: one job too big for provider1's
    // local cluster (fallback), one that will be stale by the time it is seen (refresh).
    let r = hpc_tx(
        &node,
        "alice",
        &[
            "submit-job",
            "--nodes",
            "4",
            "--max-runtime-seconds",
            "60",
            "--script",
            &node.write_script("big.sh", common::SHORT_JOB),
        ],
    );
    let big = attr(&r, "hpc_job_scheduled", "job_id").unwrap();
    let first_decision = attr(&r, "hpc_job_scheduled", "decision_id").unwrap();
    let (stale, _) = submit_job(&node, 1);
    let h = node.height().await.unwrap();
    node.wait_for_height(h + 4, Duration::from_secs(30)).await;

    let dir1 = tempfile::tempdir().unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let mut e1 = Enforcer::write_config_with(
        &node,
        dir1.path(),
        "provider1",
        "cluster-p1",
        &embedded(2),
        "permissive",
        3,
    );
    let mut e2 = Enforcer::write_config_with(
        &node,
        dir2.path(),
        "provider2",
        "cluster-p2",
        &embedded(8),
        "permissive",
        100,
    );
    e1.start();
    e2.start();

    // Fallback: provider1 asks for a decision excluding its cluster; provider2's enforcer
    // runs the job and audits it as a fallback.
    let done = eventually("fallback job completed on cluster-p2", &e1, || {
        let j = query(&node, &["job", &big]);
        (j["job"]["state"] == "JOB_STATE_COMPLETED").then_some(j)
    })
    .await;
    assert_eq!(
        done["job"]["routed_cluster_id"],
        "cluster-p2",
        "{}",
        e2.log_tail()
    );
    let history = query(&node, &["decision-by-job", &big]);
    assert_eq!(history["current"]["previous_decision_id"], first_decision);
    // The kind and the requester are typed fields the chain set from provider1's request
    // (the reason is only text).
    assert_eq!(
        history["current"]["reschedule_kind"], "RESCHEDULE_KIND_PROVIDER_FALLBACK",
        "{history}"
    );
    assert_eq!(
        history["current"]["requester_role"],
        "REQUESTER_ROLE_PROVIDER"
    );
    assert_eq!(history["current"]["requested_by"], p1);
    let records = query(&node, &["audit-records", "--job", &big]);
    let mut statuses: Vec<&str> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    statuses.sort_unstable();
    // provider1 closed the decision it gave up; provider2 routed the fallback.
    assert_eq!(
        statuses,
        ["AUDIT_STATUS_FALLBACK", "AUDIT_STATUS_RESCHEDULED"],
        "{records}"
    );
    let routed = node
        .rpc()
        .tx_search(
            tendermint_rpc::query::Query::eq("hpc_job_routed.job_id", big.as_str()),
            false,
            1,
            10,
            tendermint_rpc::Order::Ascending,
        )
        .await
        .unwrap();
    assert_eq!(routed.total_count, 1);

    // Refresh: the decision is older than 3 blocks when provider1 sees it; it asks for a
    // fresh one, runs the job on it and audits "rescheduled".
    eventually("stale job completed", &e1, || {
        (query(&node, &["job", &stale])["job"]["state"] == "JOB_STATE_COMPLETED").then_some(())
    })
    .await;
    // One terminal record per attempt: the stale decision closed (stale_decision), the
    // fresh one routed; both "rescheduled", only the second routes the job.
    let history = query(&node, &["decision-by-job", &stale]);
    assert_eq!(history["history"].as_array().unwrap().len(), 2);
    let fresh = history["current"]["decision_id"].as_str().unwrap();
    let given_up = history["current"]["previous_decision_id"].as_str().unwrap();
    let records = query(&node, &["audit-records", "--job", &stale]);
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    let on = |decision: &str| {
        records
            .iter()
            .find(|r| r["scheduling_decision_id"] == decision)
            .unwrap_or_else(|| panic!("no record on {decision}: {records:?}"))
    };
    assert_eq!(on(given_up)["status"], "AUDIT_STATUS_RESCHEDULED");
    assert_eq!(on(given_up)["reason_code"], "stale_decision");
    assert_eq!(on(fresh)["status"], "AUDIT_STATUS_RESCHEDULED");
    assert_eq!(
        history["current"]["reschedule_kind"], "RESCHEDULE_KIND_REFRESH",
        "{history}"
    );
    assert_eq!(history["current"]["requested_by"], p1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_rejects_a_job_when_the_local_cluster_is_unavailable() {
    let mut node = TestNode::init("e2e-enforcer-3");
    node.start(2).await;
    let p1 = node.key_address("provider1");
    register_cluster(&node, "provider1", "cluster-p1", 10);
    let (job, _) = submit_job(&node, 1);

    // A Slurm cluster whose controller does not answer: sinfo and squeue fail.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("slurm-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["sbatch", "squeue", "sinfo"] {
        let path = bin.join(tool);
        std::fs::write(&path, "#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let slurm = format!(
        "scheduler:\n  adapter: slurm\n  slurm:\n    sbatch_path: \"{0}/sbatch\"\n    squeue_path: \"{0}/squeue\"\n    sinfo_path: \"{0}/sinfo\"",
        bin.display()
    );
    let mut enforcer = Enforcer::write_config_with(
        &node,
        dir.path(),
        "provider1",
        "cluster-p1",
        &slurm,
        "strict",
        100,
    );
    enforcer.start();

    eventually("job rejected", &enforcer, || {
        (query(&node, &["job", &job])["job"]["state"] == "JOB_STATE_REJECTED").then_some(())
    })
    .await;
    // The record and the violation may land in different txs.
    let violations = eventually("violation on chain", &enforcer, || {
        let v = query(&node, &["violations", "--job", &job]);
        v["violations"].as_array()?.first()?;
        Some(v)
    })
    .await;
    assert_eq!(
        violations["violations"][0]["violation_type"],
        "VIOLATION_TYPE_CLUSTER_UNAVAILABLE"
    );
    assert_eq!(violations["violations"][0]["severity"], 3);
    assert_eq!(violations["violations"][0]["provider_address"], p1);
    let records = query(&node, &["audit-records", "--job", &job]);
    assert_eq!(records["records"][0]["status"], "AUDIT_STATUS_REJECTED");
    // The heartbeat tells the chain the cluster is offline, so it stops scheduling there.
    eventually("cluster offline on chain", &enforcer, || {
        (query(&node, &["cluster", "cluster-p1"])["cluster"]["state"] == "CLUSTER_STATE_OFFLINE")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_only_runs_every_job_and_records_what_strict_would_refuse() {
    let mut node = TestNode::init("e2e-enforcer-audit-only");
    node.start(2).await;
    let p1 = node.key_address("provider1");
    register_cluster(&node, "provider1", "cluster-p1", 10);
    // Decided before the enforcer runs and older than its 3-block limit when it sees it.
    let (stale, _) = submit_job(&node, 1);
    let h = node.height().await.unwrap();
    node.wait_for_height(h + 4, Duration::from_secs(30)).await;

    let dir = tempfile::tempdir().unwrap();
    let mut enforcer = Enforcer::write_config_with(
        &node,
        dir.path(),
        "provider1",
        "cluster-p1",
        &embedded(2),
        "audit_only",
        3,
    );
    enforcer.start();
    let (fresh, _) = submit_job(&node, 1);
    for job in [&stale, &fresh] {
        eventually("audit_only job completed", &enforcer, || {
            (query(&node, &["job", job])["job"]["state"] == "JOB_STATE_COMPLETED").then_some(())
        })
        .await;
        let records = query(&node, &["audit-records", "--job", job]);
        let records = records["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["status"], "AUDIT_STATUS_APPROVED");
        assert_eq!(
            records[0]["enforcement_mode"],
            "ENFORCEMENT_MODE_AUDIT_ONLY"
        );
    }
    // The stale decision ran (strict would have refused it) and is on chain as a
    // stale_decision violation of severity 2, linked from its record; the fresh one is
    // clean.
    let violations = query(&node, &["violations", "--job", &stale]);
    let v = &violations["violations"][0];
    assert_eq!(
        v["violation_type"], "VIOLATION_TYPE_STALE_DECISION",
        "{violations}"
    );
    assert_eq!(v["severity"], 2);
    assert_eq!(v["provider_address"], p1);
    let records = query(&node, &["audit-records", "--job", &stale]);
    assert_eq!(records["records"][0]["reason_code"], "stale_decision");
    let clean = query(&node, &["violations", "--job", &fresh]);
    assert!(
        clean["violations"].as_array().is_none_or(|v| v.is_empty()),
        "{clean}"
    );
}

/// Attempts are handled concurrently (a sweep of waiting jobs at start), yet each sees the
/// nodes the others already took: of six one-node jobs waiting for a 2-node local cluster,
/// two run and the others are rejected with capacity_exceeded — none is approved and then
/// refused by the local scheduler. The scripts are content-addressed `file://` URIs, so
/// each attempt waits on its fetch between its evaluation and its submission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attempts_never_promise_the_same_nodes_twice() {
    let mut node = TestNode::init("e2e-enforcer-capacity");
    node.start(2).await;
    register_cluster(&node, "provider1", "cluster-p1", 10);
    let body = "#!/bin/sh\nsleep 60\n";
    let script = format!("file://{}", node.write_script("long.sh", body));
    let (sha256, size) = (sha256_hex(body.as_bytes()), body.len().to_string());
    let jobs: Vec<String> = (0..6)
        .map(|_| {
            let r = hpc_tx(
                &node,
                "alice",
                &[
                    "submit-job",
                    "--nodes",
                    "1",
                    "--max-runtime-seconds",
                    "120",
                    "--script-uri",
                    &script,
                    "--script-sha256",
                    &sha256,
                    "--script-size",
                    &size,
                ],
            );
            attr(&r, "hpc_job_scheduled", "job_id").unwrap()
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let scheduler = format!("{}\nworkload:\n  allowed_uri_schemes: [file]", embedded(2));
    let mut enforcer = Enforcer::write_config_with(
        &node,
        dir.path(),
        "provider1",
        "cluster-p1",
        &scheduler,
        "strict",
        100,
    );
    enforcer.start();
    let statuses = eventually("an audit record for every job", &enforcer, || {
        let mut statuses = Vec::new();
        for job in &jobs {
            let records = query(&node, &["audit-records", "--job", job]);
            statuses.push(records["records"][0]["status"].as_str()?.to_string());
        }
        Some(statuses)
    })
    .await;
    let approved = statuses
        .iter()
        .filter(|s| *s == "AUDIT_STATUS_APPROVED")
        .count();
    assert_eq!(approved, 2, "{statuses:?}");
    for (job, _) in jobs
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| *s != "AUDIT_STATUS_APPROVED")
    {
        // Violations travel in their own batches: possibly a block after the records.
        let violation = eventually(
            "the capacity violation of a rejected job",
            &enforcer,
            || {
                let violations = query(&node, &["violations", "--job", job]);
                violations["violations"][0]["violation_type"]
                    .as_str()
                    .map(str::to_string)
            },
        )
        .await;
        assert_eq!(
            violation, "VIOLATION_TYPE_CAPACITY_EXCEEDED",
            "{job}: {statuses:?}"
        );
    }
    // The two approved jobs run in the local scheduler: none was refused there.
    for (job, _) in jobs
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| *s == "AUDIT_STATUS_APPROVED")
    {
        eventually("an approved job running", &enforcer, || {
            (query(&node, &["job", job])["job"]["state"] == "JOB_STATE_RUNNING").then_some(())
        })
        .await;
    }
}
