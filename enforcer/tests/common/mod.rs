//! The harness shared by the enforcer's end-to-end tests: `hpcd` CLI txs and queries, and
//! an `hpc-enforcer` process with its YAML config, log and admin API.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use hpc_testkit::enforcer::Enforcer;
use hpc_testkit::TestNode;
use serde_json::Value;

/// `hpcd tx hpc ARGS --from FROM` through `node`'s gRPC, signed with `node`'s test keyring.
pub fn hpc_tx(node: &TestNode, from: &str, args: &[&str]) -> Value {
    let out = node.hpc_tx_output(from, args, &[]);
    assert!(
        out.status.success(),
        "hpcd tx hpc {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `hpcd query hpc ARGS` through `node`'s gRPC.
pub fn query(node: &TestNode, args: &[&str]) -> Value {
    node.hpc_query(args)
}

/// The first `key` attribute of a `kind` event of a tx result.
pub fn attr(result: &Value, kind: &str, key: &str) -> Option<String> {
    hpc_testkit::event_attr(result, kind, key).map(str::to_string)
}

/// `provider_key` registers `cluster`: 8 nodes in eu-west at 1000000 uvirt per node-hour,
/// with the given network latency.
pub fn register_cluster(node: &TestNode, provider_key: &str, cluster: &str, latency_ms: u32) {
    hpc_tx(
        node,
        provider_key,
        &[
            "register-cluster",
            cluster,
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            &latency_ms.to_string(),
        ],
    );
}

/// The script of [`submit_job`]'s jobs: a second of work.
pub const SHORT_JOB: &str = "#!/bin/sh\necho started\nsleep 1\necho done\n";

/// alice submits a job of `nodes` nodes running [`SHORT_JOB`]; returns `(job_id, cluster_id)` of the
/// `hpc_job_scheduled` event.
pub fn submit_job(node: &TestNode, nodes: u32) -> (String, String) {
    let script = node.write_script("e2e-job.sh", SHORT_JOB);
    let r = hpc_tx(
        node,
        "alice",
        &[
            "submit-job",
            "--nodes",
            &nodes.to_string(),
            "--max-runtime-seconds",
            "60",
            "--script",
            &script,
        ],
    );
    (
        attr(&r, "hpc_job_scheduled", "job_id").expect("hpc_job_scheduled.job_id"),
        attr(&r, "hpc_job_scheduled", "cluster_id").expect("hpc_job_scheduled.cluster_id"),
    )
}

/// Polls `check` until it returns Some (at most 90 s), or fails with the enforcer's log.
pub async fn eventually<T>(what: &str, enforcer: &Enforcer, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(what, enforcer, Duration::from_secs(90), check).await
}

/// Polls `check` every 300 ms until it returns Some, or fails after `timeout` with the
/// enforcer's log.
pub async fn eventually_within<T>(
    what: &str,
    enforcer: &Enforcer,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- enforcer log ---\n{}",
            enforcer.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
