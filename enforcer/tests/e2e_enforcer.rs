//! The enforcer end to end against real CometBFT + hpcd + hpc-enforcer processes: a job
//! scheduled onto provider1's cluster is validated, run by the embedded scheduler, audited
//! `approved` on chain (hpc_job_routed) and reported COMPLETED; a job the local cluster
//! cannot hold (scheduled before the enforcer's heartbeats corrected the chain's view) is rejected in strict mode with a capacity_exceeded violation on chain; a
//! job submitted while the enforcer is down is handled after its restart, and no record
//! is ever duplicated.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hpc_testkit::{free_base_port, workspace_bin, TestNode};
use serde_json::Value;
use tendermint_rpc::Client;

fn hpc_tx(node: &TestNode, from: &str, args: &[&str]) -> Value {
    let grpc = node.grpc_addr();
    let mut full = vec!["tx", "hpc"];
    full.extend_from_slice(args);
    full.extend_from_slice(&[
        "--from",
        from,
        "--keyring-backend",
        "test",
        "--grpc-addr",
        &grpc,
        "--yes",
        "-o",
        "json",
    ]);
    serde_json::from_str(&node.cli_ok(&full)).unwrap()
}

fn query(node: &TestNode, args: &[&str]) -> Value {
    let grpc = node.grpc_addr();
    let mut full = vec!["query", "hpc"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--grpc-addr", &grpc, "-o", "json"]);
    serde_json::from_str(&node.cli_ok(&full)).unwrap()
}

fn attr(result: &Value, kind: &str, key: &str) -> Option<String> {
    result["events"]
        .as_array()?
        .iter()
        .filter(|e| e["type"] == kind)
        .flat_map(|e| e["attributes"].as_array().unwrap())
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"].as_str().map(str::to_string))
}

/// The `scheduler:` section for the embedded scheduler with `nodes` nodes.
fn embedded(nodes: u32) -> String {
    format!("scheduler:\n  adapter: embedded\n  embedded:\n    nodes: {nodes}")
}

struct Enforcer {
    child: Option<Child>,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    metrics: String,
    admin: String,
}

impl Enforcer {
    fn write_config(
        node: &TestNode,
        dir: &Path,
        provider_key: &str,
        cluster: &str,
        nodes: u32,
    ) -> Self {
        Self::write_config_with(
            node,
            dir,
            provider_key,
            cluster,
            &embedded(nodes),
            "strict",
            100,
        )
    }

    fn write_config_with(
        node: &TestNode,
        dir: &Path,
        provider_key: &str,
        cluster: &str,
        scheduler: &str,
        mode: &str,
        max_age_blocks: u64,
    ) -> Self {
        let base = free_base_port();
        let (metrics, admin) = (
            format!("127.0.0.1:{base}"),
            format!("127.0.0.1:{}", base + 1),
        );
        let yaml = format!(
            r#"hpc:
  enabled: true
  cluster_id: "{cluster}"
  provider_address: "{provider}"
  routing:
    enforcement_mode: "{mode}"
    max_decision_age_blocks: {max_age_blocks}
    max_decision_age_seconds: 600
chain:
  rpc_url: "{rpc}"
  grpc_addr: "http://{grpc}"
  chain_id: "{chain_id}"
key:
  keyring_backend: test
  keyring_dir: "{home}"
  name: {provider_key}
{scheduler}
health:
  probe_interval_seconds: 1
  failure_threshold: 3
  heartbeat_interval_seconds: 2
metrics:
  listen: "{metrics}"
admin:
  listen: "{admin}"
state_dir: "{state}"
log:
  level: "info,hpc_enforcer=debug"
"#,
            provider = node.key_address(provider_key),
            rpc = node.rpc_url(),
            grpc = node.grpc_addr(),
            chain_id = node.chain_id,
            home = node.home.display(),
            state = dir.join("state").display(),
        );
        let config = dir.join("enforcer.yaml");
        std::fs::write(&config, yaml).unwrap();
        let out = Command::new(workspace_bin("hpc-enforcer"))
            .arg("validate-config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            child: None,
            config,
            log: dir.join("enforcer.log"),
            metrics,
            admin,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(workspace_bin("hpc-enforcer"))
                .args(["start", "--config"])
                .arg(&self.config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn http_get(&self, addr: &str, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` until it returns Some, or fails with the enforcer's log.
async fn eventually<T>(what: &str, enforcer: &Enforcer, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcer_routes_runs_rejects_and_survives_restart() {
    let mut node = TestNode::init("e2e-enforcer-1");
    node.start(2).await;
    let p1 = node.key_address("provider1");
    hpc_tx(
        &node,
        "provider1",
        &[
            "register-cluster",
            "cluster-p1",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "10",
        ],
    );
    hpc_tx(
        &node,
        "provider2",
        &[
            "register-cluster",
            "cluster-p2",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "150",
        ],
    );

    // A job scheduled before the enforcer runs, while the chain still believes the
    // registered 8 nodes are free; the local scheduler has only 2.
    let r = hpc_tx(
        &node,
        "alice",
        &["submit-job", "--nodes", "4", "--max-runtime-seconds", "60"],
    );
    let big = attr(&r, "hpc_job_scheduled", "job_id").unwrap();
    assert_eq!(
        attr(&r, "hpc_job_scheduled", "cluster_id").as_deref(),
        Some("cluster-p1")
    );

    let dir = tempfile::tempdir().unwrap();
    let mut enforcer = Enforcer::write_config(&node, dir.path(), "provider1", "cluster-p1", 2);
    enforcer.start();

    // 1. A job the cluster can hold: validated, run, audited approved, reported COMPLETED.
    let r = hpc_tx(
        &node,
        "alice",
        &["submit-job", "--nodes", "1", "--max-runtime-seconds", "60"],
    );
    let job = attr(&r, "hpc_job_scheduled", "job_id").unwrap();
    assert_eq!(
        attr(&r, "hpc_job_scheduled", "cluster_id").as_deref(),
        Some("cluster-p1")
    );
    let state = eventually("job 1 completed", &enforcer, || {
        let j = query(&node, &["job", &job]);
        (j["job"]["state"] == "JOB_STATE_COMPLETED").then(|| j)
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
    assert!(records[0]["record_id"].as_str().unwrap().starts_with("ra-"));

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
    let r = hpc_tx(
        &node,
        "alice",
        &["submit-job", "--nodes", "1", "--max-runtime-seconds", "60"],
    );
    let late = attr(&r, "hpc_job_scheduled", "job_id").unwrap();
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
    hpc_tx(
        &node,
        "provider1",
        &[
            "register-cluster",
            "cluster-p1",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "10",
        ],
    );
    hpc_tx(
        &node,
        "provider2",
        &[
            "register-cluster",
            "cluster-p2",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "150",
        ],
    );

    // Scheduled onto cluster-p1 before any enforcer runs: one job too big for provider1's
    // local cluster (fallback), one that will be stale by the time it is seen (refresh).
    let r = hpc_tx(
        &node,
        "alice",
        &["submit-job", "--nodes", "4", "--max-runtime-seconds", "60"],
    );
    let big = attr(&r, "hpc_job_scheduled", "job_id").unwrap();
    let first_decision = attr(&r, "hpc_job_scheduled", "decision_id").unwrap();
    let r = hpc_tx(
        &node,
        "alice",
        &["submit-job", "--nodes", "1", "--max-runtime-seconds", "60"],
    );
    let stale = attr(&r, "hpc_job_scheduled", "job_id").unwrap();
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
    assert!(history["current"]["reschedule_reason"]
        .as_str()
        .unwrap()
        .starts_with("fallback:"));
    let records = query(&node, &["audit-records", "--job", &big]);
    let statuses: Vec<&str> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"AUDIT_STATUS_FALLBACK"), "{statuses:?}");
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
    let records = query(&node, &["audit-records", "--job", &stale]);
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["status"], "AUDIT_STATUS_RESCHEDULED");
    let history = query(&node, &["decision-by-job", &stale]);
    assert_eq!(history["history"].as_array().unwrap().len(), 2);
    assert!(history["current"]["reschedule_reason"]
        .as_str()
        .unwrap()
        .starts_with("refresh:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_rejects_a_job_when_the_local_cluster_is_unavailable() {
    let mut node = TestNode::init("e2e-enforcer-3");
    node.start(2).await;
    let p1 = node.key_address("provider1");
    hpc_tx(
        &node,
        "provider1",
        &[
            "register-cluster",
            "cluster-p1",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "10",
        ],
    );
    let r = hpc_tx(
        &node,
        "alice",
        &["submit-job", "--nodes", "1", "--max-runtime-seconds", "60"],
    );
    let job = attr(&r, "hpc_job_scheduled", "job_id").unwrap();

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
    let violations = query(&node, &["violations", "--job", &job]);
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
