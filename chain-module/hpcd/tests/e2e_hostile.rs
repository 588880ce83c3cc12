//! Hostile requests against a real CometBFT + hpcd node: each of these once stopped the
//! node (issue 8). Each must get an error naming the field while the node keeps making
//! blocks.

use std::io::{Read, Write};
use std::time::Duration;

use hpc_testkit::TestNode;

/// A raw HTTP GET to the CometBFT RPC (no client library validates what is sent).
fn rpc_get(node: &TestNode, path_and_query: &str) -> String {
    let address = node.rpc_url().trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path_and_query} HTTP/1.0\r\nHost: {address}\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

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
        let reply = rpc_get(
            &node,
            "/abci_query?path=%22/virtengine.hpc.v1.Query/Params%22&height=-1",
        );
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
