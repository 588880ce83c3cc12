//! A failed CometBFT RPC call is shown as one short line, whatever `RUST_BACKTRACE` says:
//! tendermint-rpc's own Display is an eyre report (`Caused by`, `Location` with a library
//! source path, a backtrace under `RUST_BACKTRACE=1`), which the enforcer's logs and
//! `/status` and the `hpcd` CLI used to print through `{:#}` (issue 8).
//!
//! A test binary of its own: the standard library reads `RUST_BACKTRACE` once, at the first
//! backtrace captured in the process, so it is set here before anything else runs.

use hpc_client::error::{rpc_error_text, MAX_CAUSE_LEN};
use hpc_client::{ClientError, Transport};
use hpc_proto::virtengine::hpc::v1::{QueryParamsRequest, QueryParamsResponse};

/// A local port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a local port");
    l.local_addr().expect("a bound address").port()
}

fn assert_one_short_line(what: &str, text: &str) {
    assert!(!text.contains('\n'), "{what} is not one line: {text}");
    assert!(text.len() < 500, "{what}: {} bytes: {text}", text.len());
    let lower = text.to_lowercase();
    for marker in [
        "backtrace",
        "location:",
        "caused by",
        ".cargo/registry",
        ".rs:",
    ] {
        assert!(
            !lower.contains(marker),
            "{what} contains {marker:?}: {text}"
        );
    }
}

#[tokio::test]
async fn rpc_errors_are_one_line_with_their_cause_under_rust_backtrace() {
    std::env::set_var("RUST_BACKTRACE", "1");
    std::env::remove_var("RUST_LIB_BACKTRACE");

    let url = format!("http://127.0.0.1:{}", closed_port());
    let transport = Transport::rpc(&url).unwrap();
    let err = transport
        .query::<_, QueryParamsResponse>(
            "/virtengine.hpc.v1.Query/Params",
            &QueryParamsRequest {},
            0,
        )
        .await
        .expect_err("nothing listens on the port");
    assert!(matches!(err, ClientError::Rpc { .. }), "{err:?}");

    // The case this guards against is real: the library's own Display of this very error
    // is a multi-line report with a backtrace.
    let raw = err.rpc_error().unwrap().to_string();
    assert!(
        raw.contains('\n') && raw.to_lowercase().contains("backtrace"),
        "expected tendermint-rpc's report with a backtrace under RUST_BACKTRACE=1: {raw}"
    );

    let plain = format!("{err}");
    let alternate = format!("{err:#}");
    // As the enforcer and `hpcd` print it: through anyhow, with the whole source chain.
    let chained = format!("{:#}", anyhow::Error::new(err).context("reading blocks"));
    for (what, text) in [
        ("{e}", &plain),
        ("{e:#}", &alternate),
        ("anyhow {e:#}", &chained),
    ] {
        assert_one_short_line(what, text);
        assert!(text.contains(&url), "{what} names the endpoint: {text}");
        assert!(
            text.contains("Connection refused"),
            "{what} says why: {text}"
        );
        assert!(text.contains("is the node running?"), "{what}: {text}");
    }
    assert_eq!(chained, format!("reading blocks: {plain}"));
}

#[test]
fn an_invalid_rpc_url_is_one_line_naming_the_flag() {
    std::env::set_var("RUST_BACKTRACE", "1");
    let Err(err) = Transport::rpc("not a url") else {
        panic!("a url without a scheme was accepted")
    };
    let text = format!("{err:#}");
    assert_one_short_line("invalid --node", &text);
    assert!(text.starts_with("invalid --node"), "{text}");

    // The text helper: one bounded line even for a long, multi-line cause.
    let e = tendermint_rpc::Error::server(format!("{}\nsecond line", "x".repeat(2000)));
    let text = rpc_error_text(&e);
    assert_one_short_line("long cause", &text);
    assert!(text.starts_with("server error: xxx"), "{text}");
    assert!(text.len() <= MAX_CAUSE_LEN + '…'.len_utf8(), "{text}");
    assert!(!text.contains("second line"), "{text}");
}
