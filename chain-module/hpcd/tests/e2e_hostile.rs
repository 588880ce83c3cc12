//! Hostile requests against a real CometBFT + hpcd node: each of these once stopped the
//! node (issue 8). Each must get an error naming the field while the node keeps making
//! blocks.

use std::time::Duration;

use hpc_testkit::TestNode;

async fn assert_still_committing(node: &mut TestNode) {
    assert!(node.is_running(), "node stopped:\n{}", node.log_tail(40));
    let height = node.height().await.expect("the node answers");
    node.wait_for_height(height + 2, Duration::from_secs(30))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_get_errors_and_the_node_keeps_running() {
    let mut node = TestNode::init("e2e-hostile");
    node.start(2).await;

    // A negative abci_query height (tower-abci's conversion panicked on it), twice.
    for _ in 0..2 {
        let reply =
            node.rpc_get("/abci_query?path=%22/virtengine.hpc.v1.Query/Params%22&height=-1");
        assert!(reply.contains("\"code\":26"), "{reply}");
        assert!(reply.contains("height: must not be negative"), "{reply}");
    }
    assert_still_committing(&mut node).await;

    // Ids longer than any stored id, through abci_query (--node) and through gRPC.
    let long_id = "j".repeat(129);
    let rpc = node.rpc_url();
    let grpc = node.grpc_addr();
    let cases: [(&[&str], &str); 4] = [
        (&["audit-records", "--job", &long_id], "job_id"),
        (&["violations", "--job", &long_id], "job_id"),
        (&["violations", "--decision", &long_id], "decision_id"),
        (&["audit-records", "--decision", &long_id], "decision_id"),
    ];
    for (args, field) in cases {
        for transport in [["--node", rpc.as_str()], ["--grpc-addr", grpc.as_str()]] {
            let mut full = vec!["query", "hpc"];
            full.extend_from_slice(args);
            full.extend_from_slice(&transport);
            let out = node.cli(&full);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{full:?} succeeded");
            assert!(
                stderr.contains(field) && stderr.contains("must be 1-128 characters"),
                "{full:?}: {stderr}"
            );
            assert!(!stderr.contains("panic"), "{full:?}: {stderr}");
        }
    }
    assert_still_committing(&mut node).await;
}

/// The node dies between accepting a tx and its block: the CLI prints the tx hash and says
/// the tx may be committed (never "failed"), so nobody pays twice by retrying blindly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_whose_node_dies_after_the_broadcast_is_reported_by_its_hash_not_as_failed() {
    let mut node = TestNode::init("e2e-node-dies");
    node.start(2).await;
    let bob = node.key_address("bob");
    // The node must die while the tx waits in the mempool (blocks come every second); if
    // a block beats the kill, the CLI rightly reports success and we try again.
    for attempt in 1..=5 {
        let cli = std::process::Command::new(hpc_testkit::hpcd_bin())
            .args(["tx", "bank", "send", "alice", &bob, "5uvirt"])
            .args(["--keyring-backend", "test", "--home"])
            .arg(&node.home)
            .args(["--grpc-addr", &node.grpc_addr(), "--yes", "-o", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !node
            .rpc_get("/num_unconfirmed_txs")
            .contains("\"n_txs\":\"1\"")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the tx never reached the mempool"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        node.kill();
        let out = cli.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            eprintln!("attempt {attempt}: the block beat the kill; again");
            let height = node_height_after_restart(&mut node).await;
            node.wait_for_height(height + 1, Duration::from_secs(30))
                .await;
            continue;
        }
        let printed: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("the tx is printed first ({e}): {stdout}\n{stderr}"));
        let hash = printed["txhash"].as_str().unwrap();
        assert_eq!(hash.len(), 64, "{stdout}");
        assert!(
            stderr.contains(&format!("tx {hash} was accepted by the node")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("hpcd query tx {hash}")),
            "{stderr}"
        );
        assert!(!stderr.contains("failed"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        return;
    }
    panic!("in 5 attempts a block always committed the tx before the node was killed");
}

async fn node_height_after_restart(node: &mut TestNode) -> u64 {
    node.start(1).await;
    node.height().await.unwrap()
}

/// A node that keeps 5 heights: queries of older ones get an error naming the oldest kept
/// height, kept ones answer, and the chain goes on (pruning runs in every commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruning_node_refuses_pruned_heights_by_name_and_keeps_committing() {
    let mut node = TestNode::init("e2e-pruning");
    let app_toml = node.home.join("config/app.toml");
    let config = std::fs::read_to_string(&app_toml).unwrap();
    assert!(config.contains("keep-recent = 100000"), "{config}");
    std::fs::write(
        &app_toml,
        config.replace("keep-recent = 100000", "keep-recent = 5"),
    )
    .unwrap();
    node.start(12).await;
    let latest = node.height().await.unwrap();
    let params = "/abci_query?path=%22/virtengine.hpc.v1.Query/Params%22&height=";
    let old = node.rpc_get(&format!("{params}2"));
    assert!(old.contains("\"code\":26"), "{old}");
    assert!(
        old.contains("height 2 is pruned: this node keeps heights"),
        "{old}"
    );
    let kept = node.rpc_get(&format!("{params}{}", latest - 2));
    assert!(kept.contains("\"code\":0"), "{kept}");
    assert_still_committing(&mut node).await;
}
