//! `/status` errors with `RUST_BACKTRACE=1` (security review, issue 8): every error the
//! admin API shows is one short line, never a backtrace, and a daemon whose chain is down
//! neither fills `/status` with backtraces nor grows to hundreds of MB resolving them.
//!
//! This binary sets `RUST_BACKTRACE=1` for itself, once, before any test thread reads the
//! environment (each test starts with [`backtraces_on`]; tests build their own runtime).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use hpc_enforcer::admin::{protect, status_routes, AdminToken, MAX_ERROR_LEN};
use hpc_enforcer::daemon::StatusInfo;
use serde_json::Value;

/// Upper bound of a whole `/status` body: 10 errors of at most [`MAX_ERROR_LEN`] bytes plus
/// the other fields. One error with a backtrace was ~10 KB.
const STATUS_BODY_LIMIT: usize = 8 * 1024;

fn backtraces_on() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("RUST_BACKTRACE", "1");
        std::env::remove_var("RUST_LIB_BACKTRACE");
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `GET path` with `Host: host` on `addr`: the status code and the body.
fn get(addr: &str, host: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split(' ').nth(1).unwrap().parse().unwrap();
    (code, out.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// Every `last_errors` entry of a `/status` body is one short line without a trace.
fn assert_short_errors(body: &str) -> Vec<String> {
    assert!(
        body.len() < STATUS_BODY_LIMIT,
        "{} bytes: {body}",
        body.len()
    );
    let status: Value = serde_json::from_str(body).unwrap();
    let errors: Vec<String> = status["last_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    for e in &errors {
        assert!(!e.contains('\n'), "{e}");
        assert!(e.len() <= MAX_ERROR_LEN + '…'.len_utf8(), "{e}");
        assert!(!e.to_lowercase().contains("backtrace"), "{e}");
    }
    errors
}

#[test]
fn admin_status_errors_are_short_lines_with_rust_backtrace() {
    backtraces_on();
    // What the daemon used to keep: errors formatted with their backtrace.
    let traced = format!(
        "reading blocks: {:?}",
        anyhow::anyhow!("connection refused").context("CometBFT RPC http://127.0.0.1:1")
    );
    assert!(
        traced.contains("Stack backtrace:") && traced.len() > 1000,
        "RUST_BACKTRACE=1 should give anyhow errors a backtrace: {traced}"
    );
    let status = StatusInfo {
        last_errors: vec![traced; 12],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let token = AdminToken::load_or_create(&dir.path().join("admin.token")).unwrap();
    let router = protect(
        status_routes::<Mutex<StatusInfo>>().with_state(Arc::new(Mutex::new(status))),
        token,
    );
    let rt = runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });

    let (code, body) = get(&addr, &addr, "/status");
    assert_eq!(code, 200, "{body}");
    let errors = assert_short_errors(&body);
    assert_eq!(errors.len(), 10, "the newest 10 only");
    assert!(
        errors[0].starts_with("reading blocks: CometBFT RPC http://127.0.0.1:1"),
        "{}",
        errors[0]
    );
    // The admin API's own errors: one line of JSON.
    let (code, body) = get(&addr, "evil.example", "/status");
    assert_eq!(code, 421);
    assert!(body.len() < 200 && !body.contains('\n'), "{body}");
}

/// A free local port (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `hpc-enforcer start` with a mnemonic key and a chain that refuses every connection;
/// its config is `dir/enforcer.yaml`.
fn start_without_chain(dir: &tempfile::TempDir, admin: &str) -> Child {
    let mnemonic = hpc_client::keys::generate_mnemonic().unwrap();
    let phrase = mnemonic.phrase();
    let key = hpc_client::keys::derive_from_phrase(&phrase, "", Default::default()).unwrap();
    let address = hpc_client::tx::address_of(&key.signing_key());
    let mnemonic_file = dir.path().join("mnemonic");
    std::fs::write(&mnemonic_file, phrase.as_bytes()).unwrap();
    let yaml = format!(
        "hpc:\n  cluster_id: cluster-a\n  provider_address: {address}\n\
         chain:\n  rpc_url: http://127.0.0.1:1\n  grpc_addr: http://127.0.0.1:2\n  chain_id: test-1\n\
         key:\n  mnemonic_file: {}\n\
         metrics:\n  listen: \"127.0.0.1:{}\"\n\
         admin:\n  listen: \"{admin}\"\n\
         state_dir: {}\n",
        mnemonic_file.display(),
        free_port(),
        dir.path().join("state").display(),
    );
    let config = dir.path().join("enforcer.yaml");
    std::fs::write(&config, yaml).unwrap();
    let log = std::fs::File::create(dir.path().join("enforcer.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hpc-enforcer"))
        .args(["start", "--config"])
        .arg(&config)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Kills the daemon when the test ends, passed or not.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn admin_status_of_a_daemon_without_chain_stays_small() {
    backtraces_on();
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon(start_without_chain(&dir, &admin));
    let pid = daemon.0.id();

    // Until the follower has failed at least twice (it retries with backoff).
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let log = || std::fs::read_to_string(dir.path().join("enforcer.log")).unwrap();
        assert!(
            Instant::now() < deadline,
            "no chain errors in /status: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(500));
        if std::net::TcpStream::connect(&admin).is_err() {
            continue; // not listening yet
        }
        let (code, body) = get(&admin, &admin, "/status");
        assert_eq!(code, 200, "{body}");
        if body.matches("starting to follow the chain").count() >= 2 {
            break body;
        }
    };
    let errors = assert_short_errors(&body);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("CometBFT RPC http://127.0.0.1:1")),
        "{errors:?}"
    );
    // The error says why (the client's one-line text of tendermint-rpc's error, not only
    // the admin API's trimming), and the daemon's own log has it as one line too: no
    // eyre report (Caused by, Location with a library path, backtrace).
    assert!(
        errors.iter().any(|e| e.contains("Connection refused")),
        "{errors:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("enforcer.log")).unwrap();
    assert!(log.contains("Connection refused"), "{log}");
    for marker in ["Caused by", "Location:", "Stack backtrace", "eyre.rs"] {
        assert!(
            !log.contains(marker),
            "{marker:?} in the daemon's log:\n{log}"
        );
    }

    // Repeated failing polls: memory stays flat and far below the ~220 MB that resolving
    // backtraces cost.
    let before = rss_kib(pid);
    for _ in 0..200 {
        let (_, body) = get(&admin, &admin, "/status");
        assert_short_errors(&body);
    }
    let after = rss_kib(pid);
    assert!(after < 100 * 1024, "{after} KiB resident");
    assert!(after < before + 16 * 1024, "{before} KiB → {after} KiB");

    // The CLI finds the daemon through its config.
    let out = hpc_testkit::run_ok(
        Command::new(env!("CARGO_BIN_EXE_hpc-enforcer"))
            .args(["status", "--config"])
            .arg(dir.path().join("enforcer.yaml")),
    );
    assert_short_errors(&out);
}
