//! The outbox's dead letters through the admin API: the plain functions behind the
//! routes, the routes served over HTTP, and the `hpc-enforcer dead-letters` CLI against
//! them. Dead letters are made the way the daemon makes them: a [`Deliverer`] pass
//! against a chain that refuses every item. The routes are served behind
//! [`protect`]: requeue needs the bearer token, JSON and no `Origin`; every request a
//! loopback `Host` (security review, issue 8).

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use hpc_enforcer::admin::{
    dead_letter_list, dead_letter_routes, protect, requeue_dead_letters, AdminToken,
    DeadLetterInfo, Requeued,
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

    async fn stored(&self, _item: &ItemRef) -> Result<Option<OutboxItem>, SubmitError> {
        Ok(None)
    }

    fn signer(&self) -> String {
        "virtengine1refused".into()
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

/// A token file in `dir` (created as the daemon creates it) and its token.
fn token_in(dir: &tempfile::TempDir) -> (String, AdminToken) {
    let path = dir.path().join("admin.token");
    let token = AdminToken::load_or_create(&path).unwrap();
    (path.to_str().unwrap().to_string(), token)
}

/// The dead-letter routes of `outbox` behind the admin API's checks; their address.
async fn serve_protected(outbox: Arc<Outbox>, token: AdminToken) -> String {
    serve(protect(
        dead_letter_routes::<Outbox>().with_state(outbox),
        token,
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_dead_letters_cli_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(outbox_with_dead_letters(&dir).await);
    let (token_file, token) = token_in(&dir);
    let admin = serve_protected(outbox.clone(), token).await;

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

    let requeue = ["dead-letters", "requeue", "--admin", &admin];
    let text = stdout(&cli(&[&requeue[..], &["--token-file", &token_file]].concat()).await);
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
    let dir = tempfile::tempdir().unwrap();
    let (token_file, _) = token_in(&dir);
    let out = cli(&["dead-letters", "list", "--admin", &admin]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 500: outbox storage: disk on fire") && stderr.contains(&admin),
        "{stderr}"
    );
    // No requeue route there: axum's 404 is an error too, not "requeued 0".
    let requeue = ["dead-letters", "requeue", "--admin", &admin];
    let out = cli(&[&requeue[..], &["--token-file", &token_file]].concat()).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 404"), "{stderr}");
}

#[tokio::test]
async fn admin_dead_letters_cli_names_an_unreachable_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (token_file, _) = token_in(&dir);
    for args in [
        &["dead-letters", "list", "--admin", "127.0.0.1:1"][..],
        &[
            "dead-letters",
            "requeue",
            "--admin",
            "127.0.0.1:1",
            "--token-file",
            &token_file,
        ],
    ] {
        let out = cli(args).await;
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot reach the admin API at 127.0.0.1:1"),
            "{stderr}"
        );
    }
}

/// One raw HTTP/1.1 request (headers as given, no others but Connection: close and the
/// body's length): the status code and the body.
async fn http(addr: &str, head: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let code = response.split(' ').nth(1).unwrap().parse().unwrap();
    (code, response.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// The one-line `error` of an admin API refusal.
fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let error = v["error"].as_str().unwrap().to_string();
    assert!(!error.contains('\n') && error.len() < 200, "{error}");
    error
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_requeue_needs_token_json_no_origin_and_a_loopback_host() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(outbox_with_dead_letters(&dir).await);
    let (_, token) = token_in(&dir);
    let bearer = format!("Authorization: Bearer {}", token.as_str());
    let admin = serve_protected(outbox.clone(), token).await;
    let post = |host: &str, headers: &[&str]| {
        let mut head = format!("POST /outbox/dead-letters/requeue HTTP/1.1\r\nHost: {host}");
        for h in headers {
            head.push_str("\r\n");
            head.push_str(h);
        }
        head
    };
    let json = "Content-Type: application/json";
    let refused = [
        // A web page's form or fetch without the token: 401.
        (post(&admin, &[json]), 401, "missing or wrong token"),
        (
            post(&admin, &["Authorization: Bearer 00", json]),
            401,
            "wrong token",
        ),
        (
            post(&admin, &["Content-Type: text/plain"]),
            401,
            "wrong token",
        ),
        // The browser's Origin header, even with the token: 403.
        (
            post(&admin, &[&bearer, json, "Origin: http://evil.example"]),
            403,
            "cross-origin",
        ),
        // Not declared JSON: 415.
        (
            post(&admin, &[&bearer, "Content-Type: text/plain"]),
            415,
            "application/json",
        ),
        (post(&admin, &[&bearer]), 415, "application/json"),
        // DNS rebinding: a page's own name as Host, even with the token: 421.
        (
            post("evil.example:8081", &[&bearer, json]),
            421,
            "evil.example",
        ),
    ];
    for (head, code, needle) in refused {
        let (got, body) = http(&admin, &head, "{}").await;
        assert_eq!(got, code, "{head}: {body}");
        assert!(error_of(&body).contains(needle), "{head}: {body}");
        assert_eq!(outbox.dead_letters().unwrap().len(), 2, "{head} requeued");
    }

    let (code, body) = http(&admin, &post("localhost", &[&bearer, json]), "{}").await;
    assert_eq!((code, body.as_str()), (200, r#"{"requeued":2}"#));
    assert!(outbox.dead_letters().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_reads_need_a_loopback_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(outbox_with_dead_letters(&dir).await);
    let (_, token) = token_in(&dir);
    let admin = serve_protected(outbox, token).await;
    let port = admin.rsplit(':').next().unwrap();
    let get = |host: String| format!("GET /outbox/dead-letters HTTP/1.1\r\nHost: {host}");
    for host in [
        admin.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (code, body) = http(&admin, &get(host.clone()), "").await;
        assert_eq!(code, 200, "{host}: {body}");
    }
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("10.0.0.5:{port}"),
    ] {
        let (code, body) = http(&admin, &get(host.clone()), "").await;
        assert_eq!(code, 421, "{host}: {body}");
        assert!(error_of(&body).contains("is not localhost"), "{body}");
    }
    // No Host at all (HTTP/1.0).
    let (code, _) = http(&admin, "GET /outbox/dead-letters HTTP/1.0", "").await;
    assert_eq!(code, 421);
}

/// A valid configuration whose admin API is `admin` with the token in `token_file`.
fn config_file(dir: &tempfile::TempDir, admin: &str, token_file: &str) -> String {
    let path = dir.path().join("enforcer.yaml");
    let yaml = format!(
        "hpc:\n  cluster_id: cluster-a\n  provider_address: virtengine1ldl9qrqrzexzp29udzx9h437zx9g2zy9caleyg\n\
         chain:\n  chain_id: test-1\n\
         key:\n  keyring_backend: test\n  keyring_dir: {dir}/keys\n  name: p1\n\
         admin:\n  listen: \"{admin}\"\n  token_file: {token_file}\n\
         state_dir: {dir}/state\n",
        dir = dir.path().display(),
    );
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_requeue_cli_sends_the_token_of_the_config_or_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(outbox_with_dead_letters(&dir).await);
    let (token_file, token) = token_in(&dir);
    let admin = serve_protected(outbox.clone(), token).await;

    // No token: the CLI says how to give it, and sends nothing.
    let out = cli(&["dead-letters", "requeue", "--admin", &admin]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--token-file"), "{stderr}");

    // Another token: the API's 401.
    let other = tempfile::tempdir().unwrap();
    let (other_file, _) = token_in(&other);
    let out = cli(&[
        "dead-letters",
        "requeue",
        "--admin",
        &admin,
        "--token-file",
        &other_file,
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("HTTP 401"),
        "{stderr}"
    );

    // A token file others may read: refused by name, nothing sent.
    use std::os::unix::fs::PermissionsExt;
    let perms = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(&other_file, perms).unwrap();
    let out = cli(&[
        "dead-letters",
        "requeue",
        "--admin",
        &admin,
        "--token-file",
        &other_file,
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("admin.token_file {other_file}: open to group or others");
    assert!(
        !out.status.success() && stderr.contains(&expected),
        "{stderr}"
    );
    assert_eq!(outbox.dead_letters().unwrap().len(), 2);

    // The config's admin.listen and admin.token_file.
    let config = config_file(&dir, &admin, &token_file);
    let text = stdout(&cli(&["dead-letters", "requeue", "--config", &config]).await);
    assert_eq!(text.trim(), "requeued 2 dead letter(s)");
    let text = stdout(&cli(&["dead-letters", "list", "--config", &config]).await);
    assert_eq!(text.trim(), "no dead letters");
}

#[tokio::test]
async fn admin_start_refuses_a_token_file_open_to_others_and_creates_a_missing_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = config_file(&dir, "127.0.0.1:1", token_file.to_str().unwrap());
    let out = cli(&["start", "--config", &config]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "admin.token_file {}: open to group or others (mode 640)",
        token_file.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    // Refused before anything else: no state written.
    assert!(!dir.path().join("state").exists());

    // Missing: created with a fresh token, mode 0600, before the daemon goes on (and
    // here fails on the key, which does not exist).
    std::fs::remove_file(&token_file).unwrap();
    let out = cli(&["start", "--config", &config]).await;
    assert!(!out.status.success());
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.trim().len(), 64);
    assert!(
        token.trim().bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
}
