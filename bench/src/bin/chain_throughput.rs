//! Committed-transaction throughput of a single-validator hpcd chain, against CometBFT's
//! built-in `kvstore` app measured in the same run on the same machine.
//!
//! Chains, one after the other, each a fresh node in a temp dir on free loopback ports:
//! `kvstore` (`cometbft start --proxy_app=kvstore`, the app built into CometBFT),
//! `kvstore-socket` (the same app as a separate `abci-cli kvstore` process, reached over
//! CometBFT's socket ABCI client as hpcd is; only when abci-cli is available) and `hpcd`
//! (`hpcd init` / `genesis add-account` / `hpcd start`, as the e2e harness does).
//!
//! For each: pre-build N txs (hpcd: signed bank `MsgSend`s from K genesis-funded accounts,
//! N/K sequential sequences each; kvstore: `key<i>=value<i>`), then — clock starts — push
//! them with `broadcast_tx_sync` from a few concurrent tasks while a watcher reads every new
//! block. Throughput counts COMMITTED txs from the blocks, never the send rate; result codes
//! come from `block_results` after the clock stops. See docs/benchmarks.md.
//!
//! ```text
//! cargo build --release -p hpc-bench -p hpcd
//! target/release/chain_throughput --txs 2000 --accounts 20 --timeout-commit 1s
//! ```

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmrs::crypto::secp256k1::SigningKey;
use hpc_bench::accounts::key as bench_key;
use hpc_bench::proc::{children_of, cpu_secs};
use hpc_bench::stats::percentile;
use hpc_client::tx::{address_of, sign_tx, to_any, SignerAccount};
use hpc_client::{ChainClient, Transport};
use hpc_primitives::{Address, Coins};
use sha2::{Digest, Sha256};
use tendermint_rpc::{Client, HttpClient};
use toml_edit::{value, DocumentMut};

/// Every genesis account gets this much (far more than fees + transfers of a run).
const GENESIS_FUNDS: &str = "1000000000000uvirt";
/// `hpcd`'s default minimum gas price (app.toml), used to price the fee.
const GAS_PRICE_MILLI: u128 = 25; // 0.025 uvirt per gas unit
/// Gas adjustment applied to the simulated gas, as `hpcd tx --gas auto` does (×1.3).
const GAS_ADJUST_NUM: u64 = 13;
const GAS_ADJUST_DEN: u64 = 10;
/// CometBFT's default `consensus_params.block.max_bytes` (21 MiB), set explicitly on both.
const BLOCK_MAX_BYTES: i64 = 22_020_096;
const MEMPOOL_MAX_TXS_BYTES: i64 = 1_073_741_824;

#[derive(Parser, Debug, Clone)]
#[command(about = "Committed tx/s of hpcd vs CometBFT kvstore (same run, same settings)")]
struct Args {
    /// Transactions per chain.
    #[arg(long, default_value_t = 2000)]
    txs: usize,
    /// Funded hpcd accounts the txs are spread over (each signs txs/accounts sequences).
    #[arg(long, default_value_t = 20)]
    accounts: usize,
    /// consensus.timeout_commit of both nodes.
    #[arg(long, default_value = "1s")]
    timeout_commit: String,
    /// Concurrent broadcast tasks.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// mempool.size (and mempool.cache_size) of both nodes.
    #[arg(long, default_value_t = 50_000)]
    mempool_size: usize,
    /// Give up waiting for commits this many seconds after the last broadcast.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    /// Override consensus_params.block.max_gas of the hpcd genesis (default: what
    /// `hpcd init` writes; -1 = unlimited). kvstore does not meter gas.
    #[arg(long)]
    hpcd_block_max_gas: Option<i64>,
    /// Measure all chains this many times (kvstore, kvstore-socket, hpcd, kvstore, ...).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// abci-cli binary of CometBFT v0.38.19: adds a "kvstore-socket" baseline (the same
    /// kvstore app in its own process, behind CometBFT's socket ABCI client, like hpcd).
    /// Default: $ABCI_CLI_BIN or .bin/abci-cli when present (scripts/bench.sh builds it).
    #[arg(long)]
    abci_cli: Option<PathBuf>,
    /// Append this run's figures (JSON lines) to this file (scripts/bench.sh gathers them
    /// into docs/benchmarks/summary.json).
    #[arg(long)]
    summary: Option<std::path::PathBuf>,
    /// Only run one chain: "hpcd", "kvstore" or "kvstore-socket".
    #[arg(long)]
    only: Option<String>,
    /// CometBFT log_level of both nodes (e.g. "mempool:debug,*:info" for diagnostics).
    #[arg(long, default_value = "info")]
    comet_log_level: String,
    /// Extra environment for `hpcd start`, KEY=VALUE (repeatable; diagnostics, e.g.
    /// LD_PRELOAD of a TCP_NODELAY shim — see docs/benchmarks.md).
    #[arg(long, value_name = "KEY=VALUE")]
    hpcd_env: Vec<String>,
    /// Keep the temp node homes (and logs) and print their paths.
    #[arg(long)]
    keep: bool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

fn hpcd_bin() -> anyhow::Result<(PathBuf, &'static str)> {
    if let Ok(p) = std::env::var("HPCD_BIN") {
        return Ok((PathBuf::from(p), "HPCD_BIN"));
    }
    let root = repo_root();
    for profile in ["release", "debug"] {
        let p = root.join("target").join(profile).join("hpcd");
        if p.exists() {
            return Ok((p, profile));
        }
    }
    bail!("no target/release/hpcd or target/debug/hpcd: run `cargo build --release -p hpcd`")
}

/// `abci-cli` of the same CometBFT release, for the kvstore-socket baseline (optional).
fn abci_cli_bin(args: &Args) -> Option<PathBuf> {
    args.abci_cli
        .clone()
        .or_else(|| std::env::var_os("ABCI_CLI_BIN").map(PathBuf::from))
        .or_else(|| Some(repo_root().join(".bin/abci-cli")))
        .filter(|p| p.exists())
}

fn cometbft_bin() -> anyhow::Result<PathBuf> {
    let p = std::env::var("COMETBFT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".bin/cometbft"));
    if !p.exists() {
        bail!(
            "{} is missing: run scripts/install-cometbft.sh",
            p.display()
        );
    }
    Ok(p)
}

/// A base port with base..base+5 all free on 127.0.0.1 (as the e2e harness picks them).
fn free_base_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..200 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos());
        let base = 20_000 + (h.finish() % 40_000) as u16 / 10 * 10;
        if (base..base + 6).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range found");
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Settings both nodes get, so the comparison is like for like.
fn edit_comet_config(
    home: &Path,
    args: &Args,
    edit: impl FnOnce(&mut DocumentMut),
) -> anyhow::Result<()> {
    let path = home.join("config/config.toml");
    let mut doc: DocumentMut = std::fs::read_to_string(&path)?.parse()?;
    doc["consensus"]["timeout_commit"] = value(args.timeout_commit.as_str());
    doc["mempool"]["size"] = value(args.mempool_size as i64);
    doc["mempool"]["cache_size"] = value(args.mempool_size as i64);
    doc["mempool"]["max_txs_bytes"] = value(MEMPOOL_MAX_TXS_BYTES);
    doc["log_level"] = value(args.comet_log_level.as_str());
    edit(&mut doc);
    std::fs::write(&path, doc.to_string())?;
    Ok(())
}

fn edit_genesis(home: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> anyhow::Result<()> {
    let path = home.join("config/genesis.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    doc["consensus_params"]["block"]["max_bytes"] = serde_json::json!(BLOCK_MAX_BYTES.to_string());
    edit(&mut doc);
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    Ok(())
}

fn read_settings(home: &Path) -> anyhow::Result<String> {
    let config: DocumentMut = std::fs::read_to_string(home.join("config/config.toml"))?.parse()?;
    let genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("config/genesis.json"))?)?;
    let m = &config["mempool"];
    let b = &genesis["consensus_params"]["block"];
    Ok(format!(
        "timeout_commit={} mempool.size={} cache_size={} max_txs_bytes={} max_tx_bytes={} recheck={} | block.max_bytes={} block.max_gas={}",
        config["consensus"]["timeout_commit"].as_str().unwrap_or("?"),
        m["size"].as_integer().unwrap_or(-1),
        m["cache_size"].as_integer().unwrap_or(-1),
        m["max_txs_bytes"].as_integer().unwrap_or(-1),
        m["max_tx_bytes"].as_integer().unwrap_or(-1),
        m["recheck"].as_bool().map_or("?".into(), |b| b.to_string()),
        b["max_bytes"],
        b["max_gas"],
    ))
}

/// A running node process (hpcd supervising cometbft, or cometbft alone).
struct RunningNode {
    name: &'static str,
    dir: Option<tempfile::TempDir>,
    home: PathBuf,
    rpc_url: String,
    child: Option<Child>,
    /// A separate ABCI app process (kvstore-socket: `abci-cli kvstore`).
    app_child: Option<Child>,
    settings: String,
}

impl RunningNode {
    fn rpc(&self) -> HttpClient {
        HttpClient::new(self.rpc_url.as_str()).expect("rpc url")
    }

    fn log_path(&self) -> PathBuf {
        self.home
            .parent()
            .unwrap()
            .join(format!("{}.log", self.name))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The processes doing the chain's work, for CPU accounting.
    fn processes(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        if let Some(child) = &self.child {
            if self.name == "hpcd" {
                out.push(("hpcd".to_string(), child.id()));
                for c in children_of(child.id()) {
                    out.push(("cometbft".to_string(), c));
                }
            } else {
                out.push(("cometbft".to_string(), child.id()));
            }
        }
        if let Some(app) = &self.app_child {
            out.push(("abci-cli kvstore".to_string(), app.id()));
        }
        out.push((CLIENT_PROCESS.to_string(), std::process::id()));
        out
    }

    fn spawn(&mut self, cmd: &mut Command) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.log_path())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {cmd:?}"))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_for_height(&self, height: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let rpc = self.rpc();
        loop {
            if let Ok(info) = rpc.abci_info().await {
                if info.last_block_height.value() >= height {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not reach height {height} in {timeout:?}\n--- log tail ---\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (hpcd stops its cometbft), then SIGKILL after 20 s.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(mut app) = self.app_child.take() {
            let _ = app.kill();
            let _ = app.wait();
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        for child in [self.child.take(), self.app_child.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            if std::env::var_os("HPC_BENCH_KEEP").is_some() {
                let kept = dir.keep();
                eprintln!("kept {} home: {}", self.name, kept.display());
            }
        }
    }
}

/// `hpcd init` + genesis accounts + `hpcd start`, exactly as the e2e harness does it.
async fn start_hpcd(
    args: &Args,
    hpcd: &Path,
    comet: &Path,
    keys: &[SigningKey],
) -> anyhow::Result<RunningNode> {
    let dir = tempfile::Builder::new()
        .prefix("hpc-bench-hpcd")
        .tempdir()?;
    let home = dir.path().join("node");
    let base = free_base_port();
    let hpcd_cmd = || {
        let mut c = Command::new(hpcd);
        c.env("HPCD_COMETBFT_BIN", comet);
        c
    };
    run_ok(
        hpcd_cmd()
            .args(["init", "bench", "--chain-id", "hpc-bench-1", "--base-port"])
            .arg(base.to_string())
            .args(["--timeout-commit", &args.timeout_commit, "--cometbft-bin"])
            .arg(comet)
            .arg("--home")
            .arg(&home),
    )?;
    // `hpcd genesis add-account` per account, as the e2e harness does. Each call rewrites
    // the whole genesis, so past CLI_ACCOUNTS the rest are appended in one write, cloned
    // from the entries the CLI wrote (same shape, next account numbers, same funds).
    const CLI_ACCOUNTS: usize = 200;
    for key in keys.iter().take(CLI_ACCOUNTS) {
        run_ok(
            hpcd_cmd()
                .args(["genesis", "add-account"])
                .arg(address_of(key).to_string())
                .args([GENESIS_FUNDS, "--keyring-backend", "test", "--home"])
                .arg(&home),
        )?;
    }
    if keys.len() > CLI_ACCOUNTS {
        let path = home.join("config/genesis.json");
        let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        let auth = &doc["app_state"]["auth"]["accounts"];
        let account_tpl = auth[auth.as_array().map_or(0, Vec::len) - 1].clone();
        let balance_tpl = doc["app_state"]["bank"]["balances"][0].clone();
        let last_number = account_tpl["account_number"]
            .as_u64()
            .or_else(|| account_tpl["account_number"].as_str()?.parse().ok())
            .ok_or_else(|| anyhow!("genesis account_number has an unexpected shape"))?;
        let mut accounts = Vec::new();
        let mut balances = Vec::new();
        for (i, key) in keys.iter().enumerate().skip(CLI_ACCOUNTS) {
            let addr = address_of(key).to_string();
            let mut a = account_tpl.clone();
            a["address"] = serde_json::json!(addr);
            let number = last_number + 1 + (i - CLI_ACCOUNTS) as u64;
            a["account_number"] = if account_tpl["account_number"].is_string() {
                serde_json::json!(number.to_string())
            } else {
                serde_json::json!(number)
            };
            accounts.push(a);
            let mut b = balance_tpl.clone();
            b["address"] = serde_json::json!(addr);
            balances.push(b);
        }
        doc["app_state"]["auth"]["accounts"]
            .as_array_mut()
            .ok_or_else(|| anyhow!("genesis has no auth.accounts"))?
            .extend(accounts);
        doc["app_state"]["bank"]["balances"]
            .as_array_mut()
            .ok_or_else(|| anyhow!("genesis has no bank.balances"))?
            .extend(balances);
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    }
    edit_comet_config(&home, args, |_| {})?;
    edit_genesis(&home, |g| {
        if let Some(gas) = args.hpcd_block_max_gas {
            g["consensus_params"]["block"]["max_gas"] = serde_json::json!(gas.to_string());
        }
    })?;
    let mut node = RunningNode {
        name: "hpcd",
        settings: read_settings(&home)?,
        dir: Some(dir),
        home: home.clone(),
        rpc_url: format!("http://127.0.0.1:{}", base + 1),
        child: None,
        app_child: None,
    };
    node.spawn(
        Command::new(hpcd)
            .args(["start", "--home"])
            .arg(&home)
            .arg("--cometbft-bin")
            .arg(comet)
            .env("RUST_LOG", "info")
            .envs(args.hpcd_env.iter().filter_map(|kv| kv.split_once('='))),
    )?;
    node.wait_for_height(4, Duration::from_secs(60)).await?;
    Ok(node)
}

/// `cometbft init` + `cometbft start --proxy_app=kvstore` with the same settings. With
/// `abci_cli`, the same kvstore app runs as a separate process (`abci-cli kvstore`) that
/// CometBFT reaches over its socket ABCI client, as it reaches hpcd.
async fn start_kvstore(
    args: &Args,
    comet: &Path,
    abci_cli: Option<&Path>,
) -> anyhow::Result<RunningNode> {
    let name = if abci_cli.is_some() {
        "kvstore-socket"
    } else {
        "kvstore"
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("hpc-bench-{name}"))
        .tempdir()?;
    let home = dir.path().join("node");
    let base = free_base_port();
    // The socket baseline uses a unix socket, as `hpcd init` does for hpcd.
    let socket = dir.path().join("abci.sock");
    let proxy_app = match abci_cli {
        Some(_) => format!("unix://{}", socket.display()),
        None => "kvstore".to_string(),
    };
    run_ok(Command::new(comet).arg("init").arg("--home").arg(&home))?;
    edit_comet_config(&home, args, |doc| {
        doc["moniker"] = value("bench");
        doc["proxy_app"] = value(proxy_app.as_str());
        doc["p2p"]["laddr"] = value(format!("tcp://127.0.0.1:{base}"));
        doc["rpc"]["laddr"] = value(format!("tcp://127.0.0.1:{}", base + 1));
        doc["p2p"]["allow_duplicate_ip"] = value(true);
        doc["p2p"]["addr_book_strict"] = value(false);
    })?;
    edit_genesis(&home, |g| {
        g["chain_id"] = serde_json::json!("kvstore-bench-1")
    })?;
    let mut node = RunningNode {
        name,
        settings: read_settings(&home)?,
        dir: Some(dir),
        home: home.clone(),
        rpc_url: format!("http://127.0.0.1:{}", base + 1),
        child: None,
        app_child: None,
    };
    if let Some(cli) = abci_cli {
        let log = std::fs::File::create(home.parent().unwrap().join("abci-cli.log"))?;
        node.app_child = Some(
            Command::new(cli)
                .args(["kvstore", "--log_level", "error", "--address"])
                .arg(&proxy_app)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("spawning {}", cli.display()))?,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            if Instant::now() > deadline {
                bail!("abci-cli kvstore did not listen on {proxy_app}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node.spawn(Command::new(comet).args(["start", "--home"]).arg(&home))?;
    } else {
        node.spawn(
            Command::new(comet)
                .args(["start", "--proxy_app=kvstore", "--home"])
                .arg(&home),
        )?;
    }
    node.wait_for_height(4, Duration::from_secs(60)).await?;
    Ok(node)
}

fn send_msg(from: &Address, to: &Address) -> cosmos_sdk_proto::Any {
    to_any(&MsgSend {
        from_address: from.to_string(),
        to_address: to.to_string(),
        amount: vec![Coin {
            denom: "uvirt".into(),
            amount: "1".into(),
        }],
    })
}

/// Pre-signs `args.txs` MsgSends: account i sends 1uvirt to account i+1, sequences 0..M.
/// Returned in broadcast order per sender: `out[k]` are account k's txs by sequence.
async fn presign_hpcd(
    node: &RunningNode,
    args: &Args,
    keys: &[SigningKey],
) -> anyhow::Result<(Vec<Vec<Vec<u8>>>, u64, u128)> {
    let client = ChainClient::new(Transport::rpc(&node.rpc_url)?, None).await?;
    let chain_id = client.chain_id.clone();
    let addrs: Vec<Address> = keys.iter().map(address_of).collect();
    // Account numbers from the genesis (`hpcd genesis add-account` assigned them; sequences
    // start at 0), cross-checked against the node for the first and the last account.
    let genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.home.join("config/genesis.json"))?)?;
    let numbers: HashMap<String, u64> = genesis["app_state"]["auth"]["accounts"]
        .as_array()
        .ok_or_else(|| anyhow!("genesis has no app_state.auth.accounts"))?
        .iter()
        .filter_map(|a| {
            let n = a["account_number"]
                .as_u64()
                .or_else(|| a["account_number"].as_str()?.parse().ok())?;
            Some((a["address"].as_str()?.to_string(), n))
        })
        .collect();
    let mut accounts = Vec::new();
    for a in &addrs {
        let account_number = *numbers
            .get(&a.to_string())
            .ok_or_else(|| anyhow!("{a} is not in the genesis"))?;
        accounts.push(SignerAccount {
            address: *a,
            account_number,
            sequence: 0,
        });
    }
    for i in [0, addrs.len() - 1] {
        let on_chain = client.signer_account(&addrs[i]).await?;
        if on_chain != accounts[i] {
            bail!(
                "account {i}: genesis says {:?}, the node {on_chain:?}",
                accounts[i]
            );
        }
    }
    // Gas: simulate one tx as `--gas auto` does, then ×1.3; fee = gas × 0.025uvirt.
    let probe_fee = Coins::single("uvirt", 1);
    let probe = sign_tx(
        &keys[0],
        &chain_id,
        &accounts[0],
        vec![send_msg(&addrs[0], &addrs[1 % addrs.len()])],
        "",
        0,
        &probe_fee,
        0,
        true,
    )?;
    let simulated = client.simulate(probe).await?;
    let gas_limit = (simulated * GAS_ADJUST_NUM).div_ceil(GAS_ADJUST_DEN);
    let fee_amount = (gas_limit as u128 * GAS_PRICE_MILLI).div_ceil(1000);
    let fee = Coins::single("uvirt", fee_amount);

    let k = keys.len();
    let per_account = args.txs.div_ceil(k);
    let mut out = vec![Vec::new(); k];
    let mut made = 0;
    'outer: for seq in 0..per_account as u64 {
        for i in 0..k {
            if made == args.txs {
                break 'outer;
            }
            let account = SignerAccount {
                address: addrs[i],
                account_number: accounts[i].account_number,
                sequence: accounts[i].sequence + seq,
            };
            let tx = sign_tx(
                &keys[i],
                &chain_id,
                &account,
                vec![send_msg(&addrs[i], &addrs[(i + 1) % k])],
                "",
                0,
                &fee,
                gas_limit,
                false,
            )?;
            out[i].push(tx);
            made += 1;
        }
    }
    Ok((out, gas_limit, fee_amount))
}

fn kvstore_txs(args: &Args) -> Vec<Vec<Vec<u8>>> {
    // One "lane" per task-sized group; order inside a lane does not matter for kvstore.
    let lanes = args.accounts.max(1);
    let mut out = vec![Vec::new(); lanes];
    for i in 0..args.txs {
        out[i % lanes].push(format!("key{i}=value{i}").into_bytes());
    }
    out
}

fn unix_nanos(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_nanos() as i128
}

fn tx_hash(tx: &[u8]) -> [u8; 32] {
    Sha256::digest(tx).into()
}

struct BlockSeen {
    height: u64,
    time_nanos: i128,
    num_txs: usize,
    ok_txs: usize,
    hashes: Vec<[u8; 32]>,
    /// When the watcher had both the block and its results.
    seen_at: Instant,
}

struct SendRecord {
    sent_at: i128,
    accepted: bool,
}

struct ChainResult {
    chain: &'static str,
    n: usize,
    accepted: usize,
    first_reject: Option<String>,
    send_secs: f64,
    committed: usize,
    committed_ok: usize,
    blocks: usize,
    max_block_txs: usize,
    span_first_last: f64,
    span_first_next: f64,
    wall_secs: f64,
    lat_header: Vec<f64>,
    lat_commit: Vec<f64>,
    timed_out: bool,
    /// Accepted by CheckTx but never committed (evicted from the mempool).
    lost: usize,
    tx_bytes: usize,
    /// (height, txs, seconds since the previous block's header time).
    per_block: Vec<(u64, usize, f64)>,
    /// Mean header-time interval of the empty blocks 2..=4, before any load.
    idle_interval: f64,
    /// CPU seconds per process from the first broadcast until the watcher stopped.
    cpu: Vec<(String, f64)>,
    measured_secs: f64,
}

impl ChainResult {
    fn tps_a(&self) -> Option<f64> {
        (self.span_first_last > 0.0).then(|| self.committed as f64 / self.span_first_last)
    }
    fn tps_b(&self) -> Option<f64> {
        (self.span_first_next > 0.0).then(|| self.committed as f64 / self.span_first_next)
    }
    fn tps_wall(&self) -> f64 {
        self.committed as f64 / self.wall_secs
    }
}

/// `n_txs` of CometBFT's `/num_unconfirmed_txs` (not in tendermint-rpc's client): a raw
/// HTTP/1.0 GET on loopback.
async fn mempool_size(addr: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /num_unconfirmed_txs?limit=1 HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.ok()?;
    let mut body = Vec::new();
    conn.read_to_end(&mut body).await.ok()?;
    let text = String::from_utf8_lossy(&body);
    let json: serde_json::Value = serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()?;
    json["result"]["n_txs"].as_str()?.parse().ok()
}

/// A block as the watcher sees it. Only `block` is read while the load runs (its result
/// events, which `block_results` serialises to JSON, cost the node CPU; they are fetched
/// after the measurement by [`count_ok`]).
async fn fetch_block(rpc: &HttpClient, h: u64) -> anyhow::Result<BlockSeen> {
    let height = tendermint::block::Height::try_from(h)?;
    let block = rpc.block(height).await?.block;
    let txs = block.data;
    Ok(BlockSeen {
        height: h,
        time_nanos: block.header.time.unix_timestamp_nanos(),
        num_txs: txs.len(),
        ok_txs: 0,
        hashes: txs.iter().map(|t| tx_hash(t)).collect(),
        seen_at: Instant::now(),
    })
}

/// Txs with code 0 in a block, from `block_results` (retried until the block is executed).
async fn count_ok(rpc: &HttpClient, h: u64) -> anyhow::Result<usize> {
    let height = tendermint::block::Height::try_from(h)?;
    for _ in 0..100 {
        if let Ok(r) = rpc.block_results(height).await {
            return Ok(r
                .txs_results
                .unwrap_or_default()
                .iter()
                .filter(|r| r.code.is_ok())
                .count());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no block_results for height {h}")
}

/// Broadcasts `lanes` (each lane in order, lanes spread over `concurrency` tasks) and reads
/// blocks until every accepted tx is committed or `wait_secs` pass after the last send.
async fn measure(
    chain: &'static str,
    node: &RunningNode,
    lanes: Vec<Vec<Vec<u8>>>,
    args: &Args,
) -> anyhow::Result<ChainResult> {
    let n: usize = lanes.iter().map(Vec::len).sum();
    let tx_bytes = lanes.iter().flatten().map(Vec::len).sum::<usize>() / n.max(1);
    let rpc = node.rpc();
    let start_height = rpc.status().await?.sync_info.latest_block_height.value();
    let mut idle_times = Vec::new();
    for h in 2..=4u64 {
        idle_times.push(
            rpc.block(tendermint::block::Height::try_from(h)?)
                .await?
                .block
                .header
                .time
                .unix_timestamp_nanos(),
        );
    }
    let idle_interval = (idle_times[2] - idle_times[0]) as f64 / 2e9;

    // Index: tx hash -> position in the send log. Lanes (one per hpcd sender) are dealt to
    // tasks round-robin; each task interleaves its lanes by sequence, so every sender's
    // txs reach CheckTx in sequence order while all senders progress together.
    let mut index: HashMap<[u8; 32], usize> = HashMap::with_capacity(n);
    let tasks_n = args.concurrency.max(1);
    let mut task_lanes: Vec<Vec<Vec<Vec<u8>>>> = vec![Vec::new(); tasks_n];
    for (lane_no, lane) in lanes.into_iter().enumerate() {
        task_lanes[lane_no % tasks_n].push(lane);
    }
    let mut task_lists: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); tasks_n];
    let mut pos = 0;
    for (task, lanes) in task_lanes.into_iter().enumerate() {
        let longest = lanes.iter().map(Vec::len).max().unwrap_or(0);
        let mut iters: Vec<_> = lanes.into_iter().map(Vec::into_iter).collect();
        for _ in 0..longest {
            for it in iters.iter_mut() {
                if let Some(tx) = it.next() {
                    index.insert(tx_hash(&tx), pos);
                    task_lists[task].push((pos, tx));
                    pos += 1;
                }
            }
        }
    }
    let index = Arc::new(index);
    let sends: Arc<Mutex<Vec<Option<SendRecord>>>> =
        Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let first_reject: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));

    // Watcher: reads every block after start_height.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // usize::MAX until sending is done, then the number of accepted txs.
    let target_cell = Arc::new(AtomicUsize::new(usize::MAX));
    let watch_target = target_cell.clone();
    let watch_rpc = node.rpc();
    let watch_index = index.clone();
    let watch_addr = node.rpc_url.trim_start_matches("http://").to_string();
    let watcher = tokio::spawn(async move {
        let mut blocks: Vec<BlockSeen> = Vec::new();
        // From the last block before the load: its header time is the gap reference.
        let mut next = start_height;
        let mut ours = 0usize;
        let mut stop_rx = stop_rx;
        // Height after which to stop: one block past the last commit we wait for (its
        // header time is the commit time of the block before it).
        let mut stop_after: Option<u64> = None;
        let mut drained_early = false;
        let mut drained_at: Option<u64> = None;
        loop {
            if stop_rx.has_changed().unwrap_or(false) && *stop_rx.borrow_and_update() {
                break;
            }
            let latest = match watch_rpc.status().await {
                Ok(s) => s.sync_info.latest_block_height.value(),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            while next <= latest {
                match fetch_block(&watch_rpc, next).await {
                    Ok(b) => {
                        ours += b
                            .hashes
                            .iter()
                            .filter(|h| watch_index.contains_key(*h))
                            .count();
                        blocks.push(b);
                        next += 1;
                    }
                    Err(_) => break,
                }
            }
            let target = watch_target.load(Ordering::SeqCst);
            if target != usize::MAX && stop_after.is_none() {
                if ours >= target {
                    stop_after = Some(next);
                } else if let Some(h) = drained_at {
                    if next > h {
                        // Every block up to the drain is read and txs are still missing:
                        // they were evicted (a failed recheck). Nothing more will come.
                        stop_after = Some(next);
                        drained_early = true;
                    }
                } else if mempool_size(&watch_addr).await == Some(0) {
                    // Everything accepted is now in a committed block or was evicted;
                    // read blocks up to the current height before deciding.
                    if let Ok(s) = watch_rpc.status().await {
                        drained_at = Some(s.sync_info.latest_block_height.value());
                    }
                }
            }
            if stop_after.is_some_and(|after| next > after) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        (blocks, drained_early)
    });

    // Broadcast: the clock starts here.
    let procs = node.processes();
    let cpu_before: Vec<Option<f64>> = procs.iter().map(|(_, pid)| cpu_secs(*pid)).collect();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for list in task_lists {
        let rpc = node.rpc();
        let sends = sends.clone();
        let first_reject = first_reject.clone();
        tasks.push(tokio::spawn(async move {
            for (pos, tx) in list {
                let sent_at = unix_nanos(SystemTime::now());
                let accepted = match rpc.broadcast_tx_sync(tx).await {
                    Ok(r) if r.code.is_ok() => true,
                    Ok(r) => {
                        first_reject
                            .lock()
                            .unwrap()
                            .get_or_insert_with(|| format!("code {}: {}", r.code.value(), r.log));
                        false
                    }
                    Err(e) => {
                        first_reject
                            .lock()
                            .unwrap()
                            .get_or_insert_with(|| e.to_string());
                        false
                    }
                };
                sends.lock().unwrap()[pos] = Some(SendRecord { sent_at, accepted });
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let send_secs = t0.elapsed().as_secs_f64();
    let accepted = sends
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .filter(|s| s.accepted)
        .count();
    target_cell.store(accepted, Ordering::SeqCst);

    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let mut timed_out = false;
    while !watcher.is_finished() {
        if Instant::now() > deadline {
            timed_out = true;
            let _ = stop_tx.send(true);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut blocks, drained_early) = watcher.await?;
    let measured_secs = t0.elapsed().as_secs_f64();
    let cpu: Vec<(String, f64)> = procs
        .iter()
        .zip(&cpu_before)
        .filter_map(|((name, pid), before)| Some((name.clone(), cpu_secs(*pid)? - (*before)?)))
        .collect();
    // After the clock: result codes of every block that has txs.
    for b in blocks.iter_mut().filter(|b| b.num_txs > 0) {
        b.ok_txs = count_ok(&rpc, b.height).await?;
    }

    // Window: first block with one of our txs .. block where the last one landed.
    let ours_in = |b: &BlockSeen| b.hashes.iter().filter(|h| index.contains_key(*h)).count();
    let first = blocks.iter().position(|b| ours_in(b) > 0);
    let Some(first) = first else {
        bail!(
            "{chain}: no tx was committed (first rejection: {:?})",
            first_reject.lock().unwrap()
        );
    };
    let mut cum = 0;
    let mut last = first;
    for (i, b) in blocks.iter().enumerate().skip(first) {
        let here = ours_in(b);
        if here > 0 {
            cum += here;
            last = i;
        }
        if cum >= accepted {
            break;
        }
    }
    let ours_committed = cum;
    let window = &blocks[first..=last];
    let committed: usize = window.iter().map(|b| b.num_txs).sum();
    let committed_ok: usize = window.iter().map(|b| b.ok_txs).sum();
    let t_first = window[0].time_nanos;
    let t_last = window[window.len() - 1].time_nanos;
    let t_next = blocks.get(last + 1).map(|b| b.time_nanos);
    if std::env::var_os("HPC_BENCH_DEBUG").is_some() {
        let hs: Vec<(u64, usize)> = blocks.iter().map(|b| (b.height, b.num_txs)).collect();
        eprintln!("debug: blocks {hs:?} first={first} last={last} accepted={accepted} timed_out={timed_out} drained={drained_early}");
    }
    let span_first_last = (t_last - t_first) as f64 / 1e9;
    let span_first_next = t_next.map_or(0.0, |t| (t - t_first) as f64 / 1e9);
    let wall_secs = window[window.len() - 1]
        .seen_at
        .duration_since(t0)
        .as_secs_f64();

    // Latencies for every committed tx of ours (the "sample" is all of them).
    let sends = sends.lock().unwrap();
    let mut lat_header = Vec::new();
    let mut lat_commit = Vec::new();
    for (bi, b) in blocks.iter().enumerate() {
        let commit_time = blocks.get(bi + 1).map(|nb| nb.time_nanos);
        for h in &b.hashes {
            if let Some(pos) = index.get(h) {
                if let Some(s) = &sends[*pos] {
                    lat_header.push((b.time_nanos - s.sent_at) as f64 / 1e9);
                    if let Some(c) = commit_time {
                        lat_commit.push((c - s.sent_at) as f64 / 1e9);
                    }
                }
            }
        }
    }
    lat_header.sort_by(f64::total_cmp);
    lat_commit.sort_by(f64::total_cmp);
    let first_reject = first_reject.lock().unwrap().clone();
    Ok(ChainResult {
        chain,
        n,
        accepted,
        first_reject,
        send_secs,
        committed,
        committed_ok,
        blocks: window.len(),
        max_block_txs: window.iter().map(|b| b.num_txs).max().unwrap_or(0),
        span_first_last,
        span_first_next,
        wall_secs,
        lat_header,
        lat_commit,
        timed_out,
        lost: if drained_early || timed_out {
            accepted - ours_committed
        } else {
            0
        },
        tx_bytes,
        per_block: (first..=last)
            .map(|i| {
                let prev = if i > 0 {
                    blocks[i - 1].time_nanos
                } else {
                    blocks[i].time_nanos
                };
                (
                    blocks[i].height,
                    blocks[i].num_txs,
                    (blocks[i].time_nanos - prev) as f64 / 1e9,
                )
            })
            .collect(),
        idle_interval,
        cpu,
        measured_secs,
    })
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.digits$}"))
}

fn print_table(results: &[ChainResult]) {
    println!();
    println!("| chain | txs sent | accepted by CheckTx | lost after acceptance | committed (code 0) | blocks | max txs/block | committed tx/s (hdr first→last) | committed tx/s (hdr first→next) | wall tx/s | send s | p50 / p95 latency → header(H) s | p50 / p95 latency → commit (header(H+1)) s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        println!(
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {:.1} | {:.2} | {} / {} | {} / {} |",
            r.chain,
            r.n,
            r.accepted,
            r.lost,
            r.committed,
            r.committed_ok,
            r.blocks,
            r.max_block_txs,
            fmt_opt(r.tps_a(), 1),
            fmt_opt(r.tps_b(), 1),
            r.tps_wall(),
            r.send_secs,
            fmt_opt(percentile(&r.lat_header, 50.0), 2),
            fmt_opt(percentile(&r.lat_header, 95.0), 2),
            fmt_opt(percentile(&r.lat_commit, 50.0), 2),
            fmt_opt(percentile(&r.lat_commit, 95.0), 2),
        );
    }
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    };
    let hp = results.iter().find(|r| r.chain == "hpcd");
    for base in ["kvstore", "kvstore-socket"] {
        let (Some(h), Some(k)) = (hp, results.iter().find(|r| r.chain == base)) else {
            continue;
        };
        println!(
            "| **ratio hpcd/{base}** | | | | | | | {} | {} | {} | | {} / {} | {} / {} |",
            ratio(h.tps_a(), k.tps_a()),
            ratio(h.tps_b(), k.tps_b()),
            ratio(Some(h.tps_wall()), Some(k.tps_wall())),
            ratio(
                percentile(&h.lat_header, 50.0),
                percentile(&k.lat_header, 50.0)
            ),
            ratio(
                percentile(&h.lat_header, 95.0),
                percentile(&k.lat_header, 95.0)
            ),
            ratio(
                percentile(&h.lat_commit, 50.0),
                percentile(&k.lat_commit, 50.0)
            ),
            ratio(
                percentile(&h.lat_commit, 95.0),
                percentile(&k.lat_commit, 95.0)
            ),
        );
    }
    println!();
    for r in results {
        let blocks: Vec<String> = r
            .per_block
            .iter()
            .map(|(h, n, dt)| format!("h{h}:{n} (+{dt:.2}s)"))
            .collect();
        println!(
            "{}: txs per block (header-time gap to the previous block) [{}]; idle block interval {:.3}s; avg tx size {} B{}{}",
            r.chain,
            blocks.join(" "),
            r.idle_interval,
            r.tx_bytes,
            if r.timed_out {
                "; TIMED OUT before all accepted txs committed"
            } else {
                ""
            },
            r.first_reject
                .as_ref()
                .map_or(String::new(), |e| format!("; first CheckTx rejection: {e}"))
        );
    }
    println!();
    println!(
        "CPU used from the first broadcast until the last block was read (user+system, /proc):"
    );
    println!();
    println!("| chain | process | CPU s | CPU ms per committed tx | cores busy (CPU s / wall s) |");
    println!("|---|---|---|---|---|");
    for r in results {
        let mut total = 0.0;
        for (name, secs) in &r.cpu {
            total += secs;
            println!(
                "| {} | {name} | {secs:.2} | {:.3} | {:.2} |",
                r.chain,
                1000.0 * secs / r.committed.max(1) as f64,
                secs / r.measured_secs
            );
        }
        println!(
            "| {} | **all** | {total:.2} | {:.3} | {:.2} (of {:.1} s) |",
            r.chain,
            1000.0 * total / r.committed.max(1) as f64,
            total / r.measured_secs,
            r.measured_secs
        );
    }
}

/// How the load generator (this process) appears in the CPU table.
const CLIENT_PROCESS: &str = "bench client";

/// Goal 1 of issue 12, against kvstore-socket measured in the same round.
fn summary_figures(results: &[ChainResult]) -> Vec<hpc_bench::summary::Figure> {
    use hpc_bench::summary::Figure;
    let find = |c: &str| results.iter().find(|r| r.chain == c);
    let (Some(hpcd), Some(base)) = (find("hpcd"), find("kvstore-socket")) else {
        return Vec::new();
    };
    // The chain's processes only: not the load client.
    let cpu_ms = |r: &ChainResult| {
        let chain_secs: f64 = r
            .cpu
            .iter()
            .filter(|(name, _)| name != CLIENT_PROCESS)
            .map(|(_, s)| s)
            .sum();
        1000.0 * chain_secs / r.committed.max(1) as f64
    };
    vec![
        Figure::new(
            "committed MsgSend tx/s",
            hpcd.tps_b().unwrap_or(0.0),
            "tx/s",
            "kvstore-socket committed tx/s",
            base.tps_b().unwrap_or(0.0),
        )
        .goal("ratio >= 0.6"),
        Figure::new(
            "CPU per committed MsgSend (hpcd + cometbft)",
            cpu_ms(hpcd),
            "ms",
            "kvstore-socket CPU per committed tx (abci-cli + cometbft)",
            cpu_ms(base),
        )
        .goal("value <= 0.92 ms (half of issue 12's 1.84 ms)"),
    ]
}

fn run_one(args: &Args, chain: &str) -> anyhow::Result<ChainResult> {
    // A fresh runtime per measurement: nothing of one chain's run lingers into the next.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let comet = cometbft_bin()?;
        match chain {
            "hpcd" => {
                let (hpcd, profile) = hpcd_bin()?;
                eprintln!("hpcd binary: {} ({profile})", hpcd.display());
                let keys: Vec<SigningKey> = (0..args.accounts.max(2)).map(bench_key).collect();
                let t = Instant::now();
                let mut node = start_hpcd(args, &hpcd, &comet, &keys).await?;
                eprintln!(
                    "hpcd: init + {} x `genesis add-account` (+{} appended) + start in {:.1}s",
                    keys.len().min(200),
                    keys.len().saturating_sub(200),
                    t.elapsed().as_secs_f64()
                );
                eprintln!("hpcd settings: {}", node.settings);
                let t = Instant::now();
                let (lanes, gas, fee) = presign_hpcd(&node, args, &keys).await?;
                eprintln!("hpcd: pre-signed {} MsgSend txs from {} accounts in {:.2}s (gas limit {gas} = simulated x1.3, fee {fee}uvirt) — before the clock", args.txs, keys.len(), t.elapsed().as_secs_f64());
                let r = measure("hpcd", &node, lanes, args).await;
                if args.keep {
                    eprintln!("hpcd log: {}", node.log_path().display());
                }
                node.stop();
                r
            }
            "kvstore" | "kvstore-socket" => {
                let cli = if chain == "kvstore-socket" {
                    Some(abci_cli_bin(args).ok_or_else(|| anyhow!("kvstore-socket needs abci-cli (--abci-cli)"))?)
                } else {
                    None
                };
                let mut node = start_kvstore(args, &comet, cli.as_deref()).await?;
                eprintln!("{} settings: {}", node.name, node.settings);
                let lanes = kvstore_txs(args);
                let r = measure(node.name, &node, lanes, args).await;
                if args.keep {
                    eprintln!("{} log: {}", node.name, node.log_path().display());
                }
                node.stop();
                r
            }
            other => Err(anyhow!("unknown chain {other:?}")),
        }
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.keep {
        std::env::set_var("HPC_BENCH_KEEP", "1");
    }
    if args.txs == 0 || args.accounts == 0 {
        bail!("--txs and --accounts must be positive");
    }
    let chains: Vec<&str> = match args.only.as_deref() {
        None => match abci_cli_bin(&args) {
            Some(cli) => {
                eprintln!(
                    "abci-cli: {} (adds the kvstore-socket baseline)",
                    cli.display()
                );
                vec!["kvstore", "kvstore-socket", "hpcd"]
            }
            None => {
                eprintln!("abci-cli not found (.bin/abci-cli, ABCI_CLI_BIN or --abci-cli): skipping the kvstore-socket baseline");
                vec!["kvstore", "hpcd"]
            }
        },
        Some(c @ ("hpcd" | "kvstore" | "kvstore-socket")) => vec![c],
        Some(other) => bail!("--only: {other:?} is not hpcd, kvstore or kvstore-socket"),
    };
    println!(
        "chain_throughput: txs={} accounts={} timeout_commit={} concurrency={} mempool.size={} rounds={}",
        args.txs, args.accounts, args.timeout_commit, args.concurrency, args.mempool_size, args.rounds
    );
    println!(
        "machine: {} CPUs, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut all = Vec::new();
    for round in 1..=args.rounds {
        let mut results = Vec::new();
        for chain in &chains {
            results.push(run_one(&args, chain)?);
        }
        println!("\n## round {round}");
        print_table(&results);
        println!(
            "load average after round {round}: {}",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        all.push(results);
    }
    if let (Some(path), Some(last)) = (&args.summary, all.last()) {
        hpc_bench::summary::append(path, &summary_figures(last))?;
    }
    if all.len() > 1 {
        println!("\n## all rounds: committed tx/s (hdr first→next)");
        for (i, results) in all.iter().enumerate() {
            let get = |c: &str| {
                results
                    .iter()
                    .find(|r| r.chain == c)
                    .and_then(ChainResult::tps_b)
            };
            let line: Vec<String> = results
                .iter()
                .map(|r| format!("{} {}", r.chain, fmt_opt(r.tps_b(), 1)))
                .collect();
            let ratios: Vec<String> = ["kvstore", "kvstore-socket"]
                .iter()
                .filter(|b| results.iter().any(|r| r.chain == **b))
                .map(|b| {
                    format!(
                        "hpcd/{b} {}",
                        match (get("hpcd"), get(b)) {
                            (Some(h), Some(k)) if k > 0.0 => format!("{:.2}", h / k),
                            _ => "n/a".into(),
                        }
                    )
                })
                .collect();
            println!(
                "round {}: {}; {}",
                i + 1,
                line.join(", "),
                ratios.join(", ")
            );
        }
    }
    Ok(())
}
