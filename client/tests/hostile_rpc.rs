//! The node the enforcer follows is not trusted to answer well: answers that panic the RPC
//! library's decoder (fuzz/regressions/block_events) are errors of that call, and the
//! follower keeps working.

use std::path::PathBuf;

use hpc_client::events::BlockFollower;
use hpc_client::ClientError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `body` as the answer to every HTTP request.
async fn canned_rpc(body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn an_answer_that_panics_the_rpc_decoder_is_an_error_not_a_crash() {
    let input = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/block_events/status-latest_app_hash-5A3B0D6-space-eq.json");
    let url = canned_rpc(std::fs::read(&input).unwrap()).await;
    let follower = BlockFollower::new(&url, None, 1).unwrap();
    for _ in 0..2 {
        match follower.earliest_height().await {
            Err(e @ ClientError::MalformedRpcAnswer { .. }) => {
                let text = e.to_string();
                assert!(text.contains("malformed answer to status"), "{text}");
            }
            other => panic!("expected a malformed-answer error, got {other:?}"),
        }
    }
}
