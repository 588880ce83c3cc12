//! `hpcd init`: a complete node home — CometBFT's config, genesis and keys (written by
//! `cometbft init`, then adjusted) plus hpcd's `app.toml`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::json;
use toml_edit::{value, DocumentMut};

use crate::config::{AppConfig, Home};
use crate::genesis::GenesisFile;

/// Block gas limit written into new genesis files.
pub const DEFAULT_BLOCK_MAX_GAS: i64 = 100_000_000;

pub struct InitOptions<'a> {
    pub moniker: &'a str,
    pub chain_id: &'a str,
    pub overwrite: bool,
    /// When set, every listen port is derived from it (p2p, rpc, grpc = +0, +1, +3; +2 for
    /// ABCI only when the home is too deep for a unix socket), all on 127.0.0.1, so several
    /// nodes can share one host.
    pub base_port: Option<u16>,
    pub timeout_commit: &'a str,
    pub cometbft_binary: &'a str,
}

pub fn validate_chain_id(chain_id: &str) -> anyhow::Result<()> {
    if chain_id.is_empty()
        || chain_id.len() > 50
        || !chain_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!("--chain-id: {chain_id:?} must be 1-50 characters of [A-Za-z0-9._-] (e.g. virtengine-dev-1)");
    }
    Ok(())
}

pub fn init(home: &Home, opts: &InitOptions) -> anyhow::Result<()> {
    validate_chain_id(opts.chain_id)?;
    if opts.moniker.trim().is_empty() {
        bail!("MONIKER: must not be empty");
    }
    if home.genesis().exists() && !opts.overwrite {
        bail!(
            "{} already exists; pass --overwrite to replace the genesis and configs (keys are kept)",
            home.genesis().display()
        );
    }
    if opts.overwrite {
        for file in [home.genesis(), home.comet_toml()] {
            if file.exists() {
                std::fs::remove_file(&file)
                    .with_context(|| format!("removing {}", file.display()))?;
            }
        }
    }
    let status = Command::new(opts.cometbft_binary)
        .args(["init", "--home"])
        .arg(&home.0)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| {
            format!(
                "cannot run {:?}; install it with scripts/install-cometbft.sh or pass --cometbft-bin",
                opts.cometbft_binary
            )
        })?;
    if !status.success() {
        bail!("`{} init` failed with {status}", opts.cometbft_binary);
    }
    edit_comet_config(home, opts)?;

    let mut genesis = GenesisFile::load(&home.genesis())?;
    genesis.doc["chain_id"] = json!(opts.chain_id);
    genesis.doc["consensus_params"]["block"]["max_gas"] = json!(DEFAULT_BLOCK_MAX_GAS.to_string());
    genesis.set_app_state(&hpc_state::AppState::default())?;
    genesis.save(&home.genesis())?;

    let mut app = AppConfig::default();
    if let Some(base) = opts.base_port {
        app.grpc.address = format!("127.0.0.1:{}", base + 3);
    }
    write_app_toml(&home.app_toml(), &app)?;
    Ok(())
}

/// The ABCI address for a CometBFT on the same host: a unix socket in the home's data
/// directory (no TCP Nagle delays, no port to allocate), or a loopback TCP port when the
/// home's path is too long for a socket.
fn local_abci_address(home: &Home, base_port: Option<u16>) -> anyhow::Result<String> {
    let data = home.0.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let socket = data
        .canonicalize()
        .with_context(|| format!("resolving {}", data.display()))?
        .join("abci.sock");
    let socket = socket.to_string_lossy();
    Ok(if socket.len() <= crate::config::MAX_UNIX_SOCKET_PATH {
        format!("unix://{socket}")
    } else {
        format!("tcp://127.0.0.1:{}", base_port.map_or(26658, |b| b + 2))
    })
}

/// The request limits CometBFT enforces before a byte reaches hpcd, written out so an
/// operator sees them: the mempool takes no tx the app would refuse for its size, an RPC
/// body carries at most one such tx (base64 in JSON is 4/3 of it), and WebSocket
/// subscriptions stay bounded per client.
fn set_rpc_and_mempool_limits(doc: &mut DocumentMut) {
    let max_tx_bytes = i64::try_from(hpc_state::consensus::MAX_TX_BYTES).unwrap_or(i64::MAX);
    doc["mempool"]["max_tx_bytes"] = value(max_tx_bytes);
    doc["rpc"]["max_body_bytes"] = value(max_tx_bytes * 2);
    doc["rpc"]["max_header_bytes"] = value(1_i64 << 20);
    doc["rpc"]["max_open_connections"] = value(900_i64);
    doc["rpc"]["max_subscription_clients"] = value(100_i64);
    doc["rpc"]["max_subscriptions_per_client"] = value(5_i64);
}

fn edit_comet_config(home: &Home, opts: &InitOptions) -> anyhow::Result<()> {
    let path = &home.comet_toml();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    doc["moniker"] = value(opts.moniker);
    doc["consensus"]["timeout_commit"] = value(opts.timeout_commit);
    doc["proxy_app"] = value(local_abci_address(home, opts.base_port)?);
    set_rpc_and_mempool_limits(&mut doc);
    if let Some(base) = opts.base_port {
        doc["p2p"]["laddr"] = value(format!("tcp://127.0.0.1:{base}"));
        doc["rpc"]["laddr"] = value(format!("tcp://127.0.0.1:{}", base + 1));
        doc["p2p"]["allow_duplicate_ip"] = value(true);
        doc["p2p"]["addr_book_strict"] = value(false);
    }
    std::fs::write(path, doc.to_string()).with_context(|| format!("writing {}", path.display()))
}

/// A TOML array of strings, one per line.
fn toml_string_array(items: &[String]) -> String {
    if items.is_empty() {
        return "[]".into();
    }
    let lines: Vec<String> = items
        .iter()
        .map(|item| format!("  {},", toml::Value::String(item.clone())))
        .collect();
    format!("[\n{}\n]", lines.join("\n"))
}

pub fn write_app_toml(path: &Path, config: &AppConfig) -> anyhow::Result<()> {
    let text = format!(
        r#"# hpcd application configuration. CometBFT's settings (ports, peers, consensus
# timeouts, the ABCI address hpcd listens on = proxy_app) are in config.toml.

# Minimum gas prices this node accepts into its mempool, e.g. "0.025uvirt".
# A tx must pay fee >= gas_limit x price. Node-local: blocks are not affected.
minimum-gas-prices = "{gas}"

# Event attributes CometBFT's tx indexer keeps for tx_search, as "type.key" (the Cosmos
# SDK's form) or "type" (every attribute of that event type). Each indexed attribute is a
# write CometBFT makes per tx; an empty list indexes every attribute (the SDK's default).
# Node-local: nodes with different lists agree on every block.
index-events = {index_events}

[grpc]
# Cosmos gRPC query/tx services (with reflection) on this address.
enable = {grpc_enable}
address = "{grpc_addr}"

[cometbft]
# The cometbft binary `hpcd start` supervises: a path or a name on PATH.
binary = "{binary}"

[log]
# "text" or "json"
format = "{log_format}"
# A tracing filter, e.g. "info" or "hpcd=debug,info". RUST_LOG overrides it.
level = "{log_level}"

[pruning]
# How many recent heights stay queryable and provable; older state is deleted at each
# commit, so the store grows with live state, not with history. 0 keeps every height
# (an archive node); otherwise at least 2.
keep-recent = {keep_recent}

[store]
# MiB of memory the state store may use to cache pages (16 to 65536); more keeps more of
# the state in memory for queries and block execution.
cache-mib = {cache_mib}
"#,
        gas = config.minimum_gas_prices,
        index_events = toml_string_array(&config.index_events),
        grpc_enable = config.grpc.enable,
        grpc_addr = config.grpc.address,
        binary = config.cometbft.binary,
        log_format = config.log.format,
        log_level = config.log.level,
        keep_recent = config.pruning.keep_recent,
        cache_mib = config.store.cache_mib,
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_app_toml_reads_back_as_the_config_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.toml");
        for index_events in [crate::event_index::default_entries(), Vec::new()] {
            let config = AppConfig {
                index_events,
                ..AppConfig::default()
            };
            write_app_toml(&path, &config).unwrap();
            let read: AppConfig = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(read, config);
            assert!(read.validate().is_ok());
        }
    }
}
