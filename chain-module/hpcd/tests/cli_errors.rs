//! What the `hpcd` CLI prints when it cannot reach a node: one `Error:` line naming the
//! endpoint and the cause, never tendermint-rpc's eyre report (`Caused by`, `Location` with
//! a library source path, a backtrace), even with `RUST_BACKTRACE=1` (issue 8).

use std::process::{Command, Output};

/// A local port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a local port");
    l.local_addr().expect("a bound address").port()
}

fn hpcd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpcd"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("HPCD_NODE")
        .env_remove("HPCD_GRPC_ADDR")
        .output()
        .expect("running hpcd")
}

/// The command failed with exit code 1 and a single short `Error:` line on stderr; returns it.
fn one_error_line(args: &[&str]) -> String {
    let out = hpcd(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    let line = stderr.trim_end_matches('\n');
    assert!(!line.contains('\n'), "{args:?}: not one line:\n{stderr}");
    assert!(line.starts_with("Error: "), "{args:?}: {line}");
    assert!(line.len() < 500, "{args:?}: {} bytes: {line}", line.len());
    let lower = line.to_lowercase();
    for marker in [
        "backtrace",
        "location:",
        "caused by",
        ".cargo/registry",
        ".rs:",
    ] {
        assert!(!lower.contains(marker), "{args:?}: {marker:?} in {line}");
    }
    line.to_string()
}

#[test]
fn an_unreachable_node_is_one_error_line_with_the_cause() {
    let node = format!("http://127.0.0.1:{}", closed_port());
    let hash = "AB".repeat(32);
    for args in [
        vec!["query", "hpc", "params", "--node", &node],
        vec!["query", "tx", &hash, "--node", &node],
    ] {
        let line = one_error_line(&args);
        assert!(line.contains(&node), "{args:?}: {line}");
        assert!(line.contains("Connection refused"), "{args:?}: {line}");
        assert!(line.contains("see --node"), "{args:?}: {line}");
    }

    let grpc = format!("127.0.0.1:{}", closed_port());
    let line = one_error_line(&["query", "hpc", "params", "--grpc-addr", &grpc]);
    assert!(line.contains(&grpc), "{line}");
    assert!(line.contains("Connection refused"), "{line}");
    assert!(line.contains("see --grpc-addr"), "{line}");
}

#[test]
fn an_invalid_node_url_is_one_error_line_naming_the_flag() {
    let line = one_error_line(&["query", "hpc", "params", "--node", "not a url"]);
    assert!(line.starts_with("Error: invalid --node"), "{line}");
}

/// `hpcd … | head`: output into a pipe nobody reads any more ends the command quietly with
/// success, as Unix tools do, instead of `Error: … Broken pipe`.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    let home = tempfile::tempdir().expect("a temporary directory");
    let home = home.path().to_str().expect("a UTF-8 path");
    let add = Command::new(env!("CARGO_BIN_EXE_hpcd"))
        .args([
            "keys",
            "add",
            "k",
            "--keyring-backend",
            "test",
            "--home",
            home,
        ])
        .output()
        .expect("running hpcd keys add");
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader); // every write to `writer` now fails with EPIPE
    let out = Command::new(env!("CARGO_BIN_EXE_hpcd"))
        .args(["keys", "list", "--keyring-backend", "test", "--home", home])
        .stdout(writer)
        .output()
        .expect("running hpcd keys list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A malformed tx hash is refused before any node is asked (it was "not found" before).
#[test]
fn a_malformed_tx_hash_is_refused_naming_the_argument() {
    for bad in ["zzz", &"A".repeat(63), &"G".repeat(64)] {
        let out = hpcd(&["query", "tx", bad, "--grpc-addr", "127.0.0.1:1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("<HASH>") && stderr.contains("64 hex digits"),
            "{bad}: {stderr}"
        );
    }
}

/// Proofs and their verification need CometBFT's RPC: without `--node` the command says so
/// in one line naming the option, before contacting anything.
#[test]
fn proofs_without_node_name_the_option() {
    let hash = "AB".repeat(32);
    let line = one_error_line(&["query", "hpc", "audit-record", "x", "--prove"]);
    assert!(
        line.contains("--prove") && line.contains("needs --node"),
        "{line}"
    );
    let line = one_error_line(&[
        "verify",
        "audit-record",
        "x",
        "--trust-height",
        "1",
        "--trust-hash",
        &hash,
    ]);
    assert!(
        line.contains("--node") && line.contains("needs --node"),
        "{line}"
    );
}
