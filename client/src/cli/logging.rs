//! Log setup shared by the binaries (`hpcd`, `hpc-enforcer`): `tracing` to stderr, the
//! level from `RUST_LOG` or the configured filter, text or JSON lines.

use std::io::IsTerminal;

/// Installs the global subscriber. Colours only on a terminal: redirected logs (files,
/// journald, the devnet's `hpcd.log`) stay plain text that grep and parsers can read.
pub fn init_logging(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
