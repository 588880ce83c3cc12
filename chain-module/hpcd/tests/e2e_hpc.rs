//! x/hpc end to end against a real CometBFT node, driven through the `hpcd` CLI:
//! clusters from two providers, a job scheduled in its submit tx, audit records checked
//! by the chain (right provider accepted → hpc_job_routed, wrong provider refused), a
//! violation reported and resolved, params guarded by the authority, and an export that
//! re-imports to the same app hash.

use hpc_testkit::{self as support, TestNode};
use serde_json::Value;
use tendermint_rpc::Client;

/// Runs an hpc tx through the CLI; returns the JSON result and whether the command
/// succeeded. `--gas` is fixed so refused txs reach a block instead of failing in
/// simulation.
fn hpc_tx(node: &TestNode, from: &str, args: &[&str]) -> (Value, bool) {
    let out = node.hpc_tx_output(from, args, &["--gas", "2000000"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "hpcd tx hpc {args:?}: {e}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out.status.success())
}

fn query(node: &TestNode, args: &[&str]) -> Value {
    node.hpc_query(args)
}

fn attr<'a>(result: &'a Value, kind: &str, key: &str) -> Option<&'a str> {
    support::event_attr(result, kind, key)
}

fn write_json(node: &TestNode, name: &str, value: Value) -> String {
    let path = node.dir.path().join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpc_routing_end_to_end_through_the_cli() {
    let mut node = TestNode::init("e2e-hpc-1");
    node.start(2).await;
    let (p1, p2) = (node.key_address("provider1"), node.key_address("provider2"));

    let (r, ok) = hpc_tx(
        &node,
        "provider1",
        &[
            "register-cluster",
            "cluster-a",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--gpus-per-node",
            "4",
            "--gpu-type",
            "a100",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "10",
        ],
    );
    assert!(ok, "{r}");
    assert_eq!(
        attr(&r, "hpc_cluster_registered", "provider"),
        Some(p1.as_str())
    );
    let (r, ok) = hpc_tx(
        &node,
        "provider2",
        &[
            "register-cluster",
            "cluster-b",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--gpus-per-node",
            "4",
            "--gpu-type",
            "a100",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "150",
        ],
    );
    assert!(ok, "{r}");

    // alice's job is scheduled in the submit tx, onto the lower-latency cluster.
    let policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/policies/balanced.json"
    );
    let (r, ok) = hpc_tx(
        &node,
        "alice",
        &[
            "submit-job",
            "--nodes",
            "2",
            "--gpus-per-node",
            "1",
            "--gpu-type",
            "a100",
            "--policy",
            policy,
            "--correlation-id",
            "order-42",
            "--script",
            &node.write_script("job.sh", "#!/bin/sh\necho hello\n"),
        ],
    );
    assert!(ok, "{r}");
    let job = attr(&r, "hpc_job_scheduled", "job_id").unwrap().to_string();
    let decision = attr(&r, "hpc_job_scheduled", "decision_id")
        .unwrap()
        .to_string();
    assert_eq!(
        attr(&r, "hpc_job_scheduled", "cluster_id"),
        Some("cluster-a")
    );
    assert_eq!(
        attr(&r, "hpc_job_scheduled", "correlation_id"),
        Some("order-42")
    );
    // The block follower (the enforcer's source of truth) finds the event from height 1,
    // and the typed queries return the job and decision.
    let mut follower = hpc_client::events::BlockFollower::new(
        &node.rpc_url(),
        Some(&format!("ws://127.0.0.1:{}/websocket", node.base_port + 1)),
        1,
    )
    .unwrap();
    let scheduled = loop {
        let block = follower.next().await.unwrap();
        let found = block
            .matching("hpc_job_scheduled", "provider", &p1)
            .next()
            .map(|e| e.attributes["job_id"].clone());
        if let Some(job_id) = found {
            break (block.head.height, job_id);
        }
    };
    assert_eq!(scheduled.1, job);
    assert_eq!(r["height"].as_i64().unwrap() as u64, scheduled.0);
    let chain = hpc_client::ChainClient::new(
        hpc_client::Transport::grpc(&node.grpc_addr()).unwrap(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        chain
            .hpc_job(&job)
            .await
            .unwrap()
            .unwrap()
            .current_decision_id,
        decision
    );
    assert!(chain.hpc_job("hpc-job-999").await.unwrap().is_none());
    assert!(!chain.hpc_audit_exists("routing-audit-1").await.unwrap());
    let by_job = query(&node, &["decision-by-job", &job]);
    assert_eq!(by_job["current"]["decision_id"], decision);
    assert_eq!(by_job["current"]["selected_provider"], p1);
    let explain = query(&node, &["explain", "--job", &job]);
    assert_eq!(
        explain["decision"]["candidates"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        explain["effective_weights"]["latency_bps"], 2500,
        "the policy file's weights"
    );

    // provider2 cannot record a placement on provider1's cluster.
    let record = |record_id: &str, cluster: &str| {
        serde_json::json!([{
            "record_id": record_id, "job_id": job, "scheduling_decision_id": decision,
            "actual_cluster_id": cluster, "status": "AUDIT_STATUS_APPROVED",
            "reason": "Job routed to scheduled cluster", "is_fallback": false,
            "enforcement_mode": "ENFORCEMENT_MODE_STRICT"
        }])
    };
    let wrong = write_json(&node, "wrong.json", record("routing-audit-1", "cluster-a"));
    let (r, ok) = hpc_tx(&node, "provider2", &["record-audit", &wrong]);
    assert!(!ok);
    assert_eq!(
        (r["codespace"].as_str(), r["code"].as_u64()),
        (Some("hpc"), Some(4)),
        "{r}"
    );
    assert!(
        r["height"].as_i64().unwrap() > 0,
        "refused in a block, not just by the CLI"
    );

    // provider1's approved record routes the job.
    let right = write_json(&node, "right.json", record("routing-audit-1", "cluster-a"));
    let (r, ok) = hpc_tx(&node, "provider1", &["record-audit", &right]);
    assert!(ok, "{r}");
    assert!(chain.hpc_audit_exists("routing-audit-1").await.unwrap());
    assert_eq!(
        attr(&r, "hpc_job_routed", "record_id"),
        Some("routing-audit-1")
    );
    assert_eq!(attr(&r, "hpc_job_routed", "status"), Some("approved"));
    assert_eq!(
        attr(&r, "hpc_job_routed", "correlation_id"),
        Some("order-42")
    );
    let found = node
        .rpc()
        .tx_search(
            tendermint_rpc::query::Query::eq("hpc_job_routed.job_id", job.as_str()),
            false,
            1,
            10,
            tendermint_rpc::Order::Ascending,
        )
        .await
        .unwrap();
    assert_eq!(
        found.total_count, 1,
        "hpc_job_routed is indexed for tx_search"
    );
    assert_eq!(
        query(&node, &["job", &job])["job"]["state"],
        "JOB_STATE_ROUTED"
    );
    let (r, ok) = hpc_tx(&node, "provider1", &["record-audit", &right]);
    assert!(!ok && r["code"] == 9, "a record id is accepted once: {r}");

    // A self-reported violation, then resolved by the authority.
    let v = write_json(
        &node,
        "violation.json",
        serde_json::json!([{
            "job_id": job, "decision_id": decision, "violation_type": "VIOLATION_TYPE_STALE_DECISION",
            "provider_address": p1, "expected_cluster_id": "cluster-a", "details": "decision 120 blocks old"
        }]),
    );
    let (r, ok) = hpc_tx(&node, "provider1", &["report-violation", &v]);
    assert!(ok, "{r}");
    assert_eq!(
        attr(&r, "hpc_routing_violation", "violation_type"),
        Some("stale_decision")
    );
    assert_eq!(attr(&r, "hpc_routing_violation", "severity"), Some("2"));
    let violation_id = attr(&r, "hpc_routing_violation", "violation_id")
        .unwrap()
        .to_string();
    let (r, ok) = hpc_tx(&node, "provider2", &["report-violation", &v]);
    assert!(
        !ok && r["code"] == 4,
        "providers cannot report each other: {r}"
    );
    assert_eq!(
        query(&node, &["violation-count", &p1])["unresolved_count"],
        "1"
    );
    let (r, ok) = hpc_tx(
        &node,
        "alice",
        &[
            "resolve-violation",
            &violation_id,
            "--resolution",
            "refreshed",
        ],
    );
    assert!(!ok && r["code"] == 4, "only the authority resolves: {r}");
    let (r, ok) = hpc_tx(
        &node,
        "authority",
        &[
            "resolve-violation",
            &violation_id,
            "--resolution",
            "refreshed",
        ],
    );
    assert!(ok, "{r}");
    assert!(attr(&r, "hpc_routing_violation_resolved", "violation_id").is_some());
    assert_eq!(
        query(&node, &["violation-count", &p1])["unresolved_count"],
        "0"
    );
    let violations = query(&node, &["violations", "--provider", &p1]);
    assert_eq!(violations["violations"][0]["resolved"], true);

    // Params: refused for alice, accepted for the authority.
    let mut params = query(&node, &["params"])["params"].clone();
    params["max_decision_age_blocks"] = Value::String("42".into());
    let file = write_json(&node, "params.json", params);
    let (r, ok) = hpc_tx(&node, "alice", &["update-params", &file]);
    assert!(!ok && r["code"] == 4, "{r}");
    let (r, ok) = hpc_tx(&node, "authority", &["update-params", &file]);
    assert!(ok, "{r}");
    assert_eq!(
        query(&node, &["params"])["params"]["max_decision_age_blocks"],
        "42"
    );
    // A partial file changes only what it names.
    let before = query(&node, &["params"])["params"].clone();
    let file = write_json(
        &node,
        "params-partial.json",
        serde_json::json!({"max_batch_size": 25}),
    );
    let (r, ok) = hpc_tx(&node, "authority", &["update-params", &file]);
    assert!(ok, "{r}");
    let mut expected = before;
    expected["max_batch_size"] = serde_json::json!(25);
    assert_eq!(query(&node, &["params"])["params"], expected);
    assert_eq!(
        query(&node, &["audit-records", "--provider", &p1])["records"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        query(&node, &["clusters", "--provider", &p2])["clusters"][0]["cluster_id"] == "cluster-b"
    );

    // The whole module state survives export → import with the same app hash.
    let imported = support::export_and_reimport(&mut node).await;
    let grpc = imported.grpc_addr();
    let job_again: Value = serde_json::from_str(&imported.cli_ok(&[
        "query",
        "hpc",
        "job",
        &job,
        "--grpc-addr",
        &grpc,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(job_again["job"]["state"], "JOB_STATE_ROUTED");
}
