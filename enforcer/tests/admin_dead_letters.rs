//! The outbox's dead letters through the admin API: the plain functions behind the
//! routes, the routes served over HTTP, and the `hpc-enforcer dead-letters` CLI against
//! them. Dead letters are made the way the daemon makes them: a [`Deliverer`] pass
//! against a chain that refuses every item.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use hpc_enforcer::admin::{
    dead_letter_list, dead_letter_routes, requeue_dead_letters, DeadLetterInfo, Requeued,
};
use hpc_outbox::{
    Batch, ChainSink, Deliverer, DelivererConfig, ItemRef, Outbox, OutboxItem, SubmitError,
    TxStatus, HPC_CODESPACE,
};
use hpc_proto::virtengine::hpc::v1::{RoutingAuditRecord, RoutingViolation};
use serde_json::Value;

/// x/hpc JOB_NOT_FOUND: not transient, not a duplicate, so a lone item is dead-lettered.
const CODE_JOB_NOT_FOUND: u32 = 5;

/// A chain that refuses every tx at CheckTx and stores nothing.
struct RefusingChain;

impl ChainSink for RefusingChain {
    async fn submit(&self, batch: &Batch) -> Result<String, SubmitError> {
        Err(SubmitError::Rejected {
            code: CODE_JOB_NOT_FOUND,
            codespace: HPC_CODESPACE.to_string(),
            log: format!("job not found for {}", batch.ids().join(",")),
        })
    }

    async fn tx_result(&self, _txhash: &str) -> Result<TxStatus, SubmitError> {
        Ok(TxStatus::NotFound)
    }

    async fn exists(&self, _item: &ItemRef) -> Result<bool, SubmitError> {
        Ok(false)
    }

    fn max_batch_size(&self) -> usize {
        10
    }
}

fn audit(id: &str, job: &str) -> OutboxItem {
    OutboxItem::Audit(RoutingAuditRecord {
        record_id: id.to_string(),
        job_id: job.to_string(),
        ..Default::default()
    })
}

fn violation(id: &str, job: &str) -> OutboxItem {
    OutboxItem::Violation(RoutingViolation {
        violation_id: id.to_string(),
        job_id: job.to_string(),
        ..Default::default()
    })
}

/// An outbox in `dir` holding an audit record and a violation as dead letters, enqueued
/// at 100 and buried at 160.
async fn outbox_with_dead_letters(dir: &tempfile::TempDir) -> Outbox {
    let outbox = Outbox::open(dir.path().join("outbox.redb")).unwrap();
    outbox
        .enqueue(
            vec![audit("rec-1", "job-7"), violation("vio-1", "job-8")],
            100,
        )
        .unwrap();
    let deliverer = Deliverer::new(DelivererConfig::default());
    let report = deliverer
        .run_once(&outbox, &RefusingChain, 160)
        .await
        .unwrap();
    assert_eq!(report.dead, 2, "{report:?}");
    assert_eq!(outbox.depth().unwrap().total(), 0);
    outbox
}

#[tokio::test]
async fn admin_dead_letter_list_and_requeue() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_with_dead_letters(&dir).await;

    let list = dead_letter_list(&outbox).unwrap();
    assert_eq!(list.count, 2);
    assert_eq!(
        list.dead_letters,
        [
            DeadLetterInfo {
                seq: 1,
                kind: "audit".into(),
                id: "rec-1".into(),
                job_id: "job-7".into(),
                attempts: 1,
                code: CODE_JOB_NOT_FOUND,
                codespace: "hpc".into(),
                log: "job not found for rec-1".into(),
                enqueued_at: 100,
                dead_at: 160,
            },
            DeadLetterInfo {
                seq: 2,
                kind: "violation".into(),
                id: "vio-1".into(),
                job_id: "job-8".into(),
                attempts: 1,
                code: CODE_JOB_NOT_FOUND,
                codespace: "hpc".into(),
                log: "job not found for vio-1".into(),
                enqueued_at: 100,
                dead_at: 160,
            },
        ]
    );
    // The wire names the API documents.
    let json = serde_json::to_value(&list).unwrap();
    let mut keys: Vec<&str> = json["dead_letters"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "attempts",
            "code",
            "codespace",
            "dead_at",
            "enqueued_at",
            "id",
            "job_id",
            "kind",
            "log",
            "seq"
        ]
    );

    // The enqueue's wake-up was not consumed by anyone: take it, so that the next one
    // can only come from the requeue.
    tokio::time::timeout(Duration::from_millis(50), outbox.notified())
        .await
        .expect("enqueue wakes the deliverer");
    assert!(
        tokio::time::timeout(Duration::from_millis(50), outbox.notified())
            .await
            .is_err(),
        "no pending wake-up before the requeue"
    );

    assert_eq!(
        requeue_dead_letters(&outbox).unwrap(),
        Requeued { requeued: 2 }
    );
    tokio::time::timeout(Duration::from_secs(1), outbox.notified())
        .await
        .expect("requeue wakes the deliverer");
    assert_eq!(dead_letter_list(&outbox).unwrap().count, 0);
    let depth = outbox.depth().unwrap();
    assert_eq!((depth.audits.pending, depth.violations.pending), (1, 1));
    assert_eq!(
        requeue_dead_letters(&outbox).unwrap(),
        Requeued { requeued: 0 }
    );
}

/// Serves `router` on a free local port; returns its address.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Runs the CLI off the runtime's threads (it blocks while the server answers).
async fn cli(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hpc-enforcer"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_dead_letters_cli_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(outbox_with_dead_letters(&dir).await);
    let admin = serve(dead_letter_routes::<Outbox>().with_state(outbox.clone())).await;

    let text = stdout(&cli(&["dead-letters", "list", "--admin", &admin]).await);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "audit rec-1 job=job-7 code=hpc/5 attempts=1 log=job not found for rec-1",
            "violation vio-1 job=job-8 code=hpc/5 attempts=1 log=job not found for vio-1",
        ]
    );

    let json: Value = serde_json::from_str(&stdout(
        &cli(&["dead-letters", "list", "--admin", &admin, "-o", "json"]).await,
    ))
    .unwrap();
    assert_eq!(json["count"], 2);
    assert_eq!(json["dead_letters"][1]["kind"], "violation");
    assert_eq!(json["dead_letters"][1]["id"], "vio-1");
    assert_eq!(json["dead_letters"][1]["dead_at"], 160);

    let text = stdout(&cli(&["dead-letters", "requeue", "--admin", &admin]).await);
    assert_eq!(text.trim(), "requeued 2 dead letter(s)");
    assert_eq!(outbox.depth().unwrap().total(), 2);
    assert!(outbox.dead_letters().unwrap().is_empty());

    let text = stdout(&cli(&["dead-letters", "list", "--admin", &admin]).await);
    assert_eq!(text.trim(), "no dead letters");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_dead_letters_cli_reports_api_errors() {
    // An admin API whose outbox fails: the CLI exits non-zero with the API's error.
    let router = axum::Router::new().route(
        "/outbox/dead-letters",
        axum::routing::get(|| async {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({"error": "outbox storage: disk on fire"})),
            )
        }),
    );
    let admin = serve(router).await;
    let out = cli(&["dead-letters", "list", "--admin", &admin]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 500: outbox storage: disk on fire") && stderr.contains(&admin),
        "{stderr}"
    );
    // No requeue route there: axum's 404 is an error too, not "requeued 0".
    let out = cli(&["dead-letters", "requeue", "--admin", &admin]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 404"), "{stderr}");
}

#[tokio::test]
async fn admin_dead_letters_cli_names_an_unreachable_admin() {
    for args in [
        ["dead-letters", "list", "--admin", "127.0.0.1:1"],
        ["dead-letters", "requeue", "--admin", "127.0.0.1:1"],
    ] {
        let out = cli(&args).await;
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot reach the admin API at 127.0.0.1:1"),
            "{stderr}"
        );
    }
}
