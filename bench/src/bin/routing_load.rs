//! Routing under load, through real processes: one validator (`hpcd start` supervising
//! cometbft, with the block settings `hpcd init` writes), two providers each running an
//! `hpc-enforcer` (embedded executor) for its own cluster, and SubmitJob txs signed by
//! bench accounts and sent over CometBFT RPC.
//!
//! 1. **idle** (the baselines): routing latency of jobs sent one at a time, and gRPC point
//!    queries (`Query/Job`) with nothing else going on;
//! 2. **load**: RATE jobs/s for SECS seconds while point queries run and the RSS of hpcd
//!    and cometbft and the node's disk are sampled. Routing latency of a job = the height
//!    of its `hpc_job_routed` event (the enforcer's approved audit record) minus the
//!    height of its `hpc_job_scheduled` event (its SubmitJob), in blocks;
//! 3. **backlog**: both enforcers stopped, BACKLOG jobs submitted, enforcers started:
//!    audit records committed per second while they drain, against the ceiling the block
//!    gas limit sets for the gas a record was measured to take.
//!
//! `--secs 1800` is the 30-minute soak (RSS and disk samples over time).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use cosmrs::crypto::secp256k1::SigningKey;
use hpc_bench::accounts::key as bench_key;
use hpc_bench::proc::{children_of, cpu_secs, disk_bytes, reaped_children_cpu_secs, rss_bytes};
use hpc_bench::stats::percentile;
use hpc_bench::summary::Figure;
use hpc_bench::txs::{submit_job, Fee};
use hpc_client::tx::{address_of, SignerAccount};
use hpc_client::{ChainClient, Transport};
use hpc_primitives::contract::{attrs, events};
use hpc_testkit::enforcer::{embedded, Enforcer, EnforcerSpec};
use hpc_testkit::TestNode;
use sha2::{Digest, Sha256};
use tendermint_rpc::{Client, HttpClient};

const CHAIN_ID: &str = "hpc-routing-load-1";
/// Every bench account gets this much at genesis (far more than the fees of a run).
const GENESIS_FUNDS: &str = "1000000000000uvirt";
/// What each job runs: nothing, so the figures are the chain's and the enforcers'.
const JOB_SCRIPT: &[u8] = b"#!/bin/sh\ntrue\n";
/// (provider key, cluster, region). Both clusters score the same, so jobs alternate between
/// the two regions to load both providers evenly.
const PROVIDERS: [(&str, &str, &str); 2] = [
    ("provider1", "cluster-a", "eu-west"),
    ("provider2", "cluster-b", "us-east"),
];
/// Concurrent senders; each owns the accounts `i ≡ lane (mod LANES)`, so every account's
/// txs leave in sequence order.
const LANES: usize = 4;

#[derive(Parser, Debug)]
#[command(
    about = "Routing latency, point-query latency, audit records/s and node growth under SubmitJob load"
)]
struct Args {
    /// Jobs submitted per second in the load phase.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds of load (1800 = the 30-minute soak).
    #[arg(long, default_value_t = 300)]
    secs: u64,
    /// Jobs submitted while the enforcers are stopped, then drained (0 = skip).
    #[arg(long, default_value_t = 5000)]
    backlog: usize,
    /// Funded bench accounts the jobs are spread over.
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// Jobs routed one at a time on the idle chain (the latency baseline).
    #[arg(long, default_value_t = 5)]
    idle_jobs: usize,
    /// consensus.timeout_commit (default: what `hpcd init` writes).
    #[arg(long, default_value = "1s")]
    timeout_commit: String,
    /// Nodes of each cluster, on chain and in its embedded executor.
    #[arg(long, default_value_t = 100_000)]
    cluster_nodes: u32,
    /// Override consensus_params.block.max_gas (default: what `hpcd init` writes).
    #[arg(long)]
    block_max_gas: Option<i64>,
    /// Override app.toml `[store] cache-mib` of the node (default: what `hpcd init` writes):
    /// how much of hpcd's RSS is its state store's page cache.
    #[arg(long)]
    store_cache_mib: Option<u64>,
    /// Seconds between RSS / disk samples.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Give up waiting for jobs to be routed this many seconds after the last send.
    #[arg(long, default_value_t = 300)]
    wait_secs: u64,
    /// Append this run's figures (JSON lines) to this file.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Appended to every figure's name as " [LABEL]", so that a second run in the same
    /// summary (the soak) keeps its own figures.
    #[arg(long)]
    label: Option<String>,
}

/// Signs SubmitJob txs for the bench accounts, tracking each account's sequence.
struct Submitter {
    keys: Vec<SigningKey>,
    accounts: Vec<SignerAccount>,
    chain_id: String,
    fee: Fee,
}

impl Submitter {
    async fn new(node: &TestNode, keys: Vec<SigningKey>) -> anyhow::Result<Self> {
        let client = ChainClient::new(Transport::grpc(&node.grpc_addr())?, None).await?;
        let mut accounts = Vec::new();
        for key in &keys {
            accounts.push(client.signer_account(&address_of(key)).await?);
        }
        // Gas as `--gas auto` takes it (simulated), with room for the scheduler's work
        // growing with reserved nodes; fee at hpcd's default minimum gas price (0.025).
        let mut probe = Self {
            keys,
            accounts,
            chain_id: client.chain_id.clone(),
            fee: Fee {
                gas_limit: 0,
                uvirt: 1,
            },
        };
        let simulated = client.simulate(probe.sign(0, PROVIDERS[0].2)).await?;
        let gas_limit = simulated * 2;
        probe.fee = Fee {
            gas_limit,
            uvirt: (u128::from(gas_limit) * 25).div_ceil(1000),
        };
        Ok(probe)
    }

    /// The tx of account `i` at its current sequence, for a cluster in `region`.
    fn sign(&self, i: usize, region: &str) -> Vec<u8> {
        submit_job(
            &self.keys[i],
            &self.chain_id,
            &self.accounts[i],
            JOB_SCRIPT,
            600,
            &[region],
            self.fee,
        )
    }

    /// `count` signed txs, account after account, each account's in sequence order, split
    /// into [`LANES`] lanes by account.
    fn batch(&mut self, count: usize) -> Vec<Vec<Vec<u8>>> {
        let mut lanes = vec![Vec::new(); LANES];
        for n in 0..count {
            let i = n % self.keys.len();
            let tx = self.sign(i, PROVIDERS[n % PROVIDERS.len()].2);
            self.accounts[i].sequence += 1;
            lanes[i % LANES].push(tx);
        }
        lanes
    }
}

#[derive(Default)]
struct SendReport {
    accepted: usize,
    /// Hashes (hex, upper case) of the txs CheckTx accepted.
    accepted_hashes: HashSet<String>,
    refused: usize,
    first_refusal: Option<String>,
}

/// Broadcasts every lane (in order within a lane, lanes concurrently), each lane at
/// `rate / LANES` txs/s, or as fast as CheckTx answers without a rate.
async fn broadcast(rpc: &HttpClient, lanes: Vec<Vec<Vec<u8>>>, rate: Option<u32>) -> SendReport {
    let report = Arc::new(Mutex::new(SendReport::default()));
    let mut tasks = Vec::new();
    for lane in lanes {
        let (rpc, report) = (rpc.clone(), report.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = rate.map(|r| {
                let mut t = tokio::time::interval(Duration::from_secs_f64(
                    LANES as f64 / f64::from(r.max(1)),
                ));
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            for tx in lane {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let outcome = rpc.broadcast_tx_sync(tx).await;
                let mut r = report.lock().expect("report lock");
                match outcome {
                    Ok(resp) if resp.code.is_ok() => {
                        r.accepted += 1;
                        r.accepted_hashes.insert(resp.hash.to_string());
                    }
                    Ok(resp) => {
                        r.refused += 1;
                        r.first_refusal.get_or_insert(resp.log);
                    }
                    Err(e) => {
                        r.refused += 1;
                        r.first_refusal.get_or_insert(e.to_string());
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(report)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default()
}

/// What one block did for x/hpc: jobs scheduled, jobs routed, audit records and the gas of
/// the txs that stored them.
#[derive(Default)]
struct BlockHpc {
    /// Txs that failed in the block: (hash, log).
    failed: Vec<(String, String)>,
    /// (job id, provider address) of every job scheduled.
    scheduled: Vec<(String, String)>,
    routed: Vec<String>,
    audit_records: usize,
    audit_tx_gas: u64,
}

async fn block_hpc(rpc: &HttpClient, h: u64) -> anyhow::Result<BlockHpc> {
    let height = tendermint::block::Height::try_from(h)?;
    let results = rpc
        .block_results(height)
        .await
        .with_context(|| format!("block_results at height {h}"))?;
    let block = rpc
        .block(height)
        .await
        .with_context(|| format!("block at height {h}"))?;
    let hashes: Vec<String> = block
        .block
        .data
        .iter()
        .map(|tx| hex::encode_upper(Sha256::digest(tx)))
        .collect();
    let mut out = BlockHpc::default();
    for (i, tx) in results
        .txs_results
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if tx.code.is_err() {
            let hash = hashes.get(i).cloned().unwrap_or_default();
            out.failed.push((hash, tx.log));
            continue;
        }
        let mut records = 0;
        for event in &tx.events {
            let attr = |key: &str| {
                event
                    .attributes
                    .iter()
                    .find(|a| a.key_str().ok() == Some(key))
                    .and_then(|a| a.value_str().ok())
                    .map(str::to_string)
            };
            match event.kind.as_str() {
                events::JOB_SCHEDULED => out
                    .scheduled
                    .extend(attr(attrs::JOB_ID).zip(attr(attrs::PROVIDER))),
                events::JOB_ROUTED => out.routed.extend(attr(attrs::JOB_ID)),
                events::ROUTING_AUDIT_RECORDED => records += 1,
                _ => {}
            }
        }
        if records > 0 {
            out.audit_records += records;
            out.audit_tx_gas += u64::try_from(tx.gas_used).unwrap_or(0);
        }
    }
    Ok(out)
}

async fn height(rpc: &HttpClient) -> anyhow::Result<u64> {
    Ok(rpc.abci_info().await?.last_block_height.value())
}

async fn block_time_secs(rpc: &HttpClient, h: u64) -> anyhow::Result<f64> {
    let header = rpc
        .header(tendermint::block::Height::try_from(h)?)
        .await?
        .header;
    let since = header
        .time
        .duration_since(tendermint::Time::unix_epoch())
        .map_err(|e| anyhow::anyhow!("block {h} time: {e}"))?;
    Ok(since.as_secs_f64())
}

/// Heights at which each job was scheduled and routed, read from the blocks after `from`
/// until `expected` jobs scheduled since `from` are all routed or `wait` passes.
struct Routing {
    scheduled_at: HashMap<String, u64>,
    /// Jobs scheduled per provider address.
    scheduled_per_provider: HashMap<String, usize>,
    routed_at: HashMap<String, u64>,
    /// Txs that failed in a block: hash → log.
    failed: HashMap<String, String>,
    /// Audit records and the gas of their txs, per block.
    audit_blocks: Vec<(u64, usize, u64)>,
    next_height: u64,
}

impl Routing {
    fn new(from: u64) -> Self {
        Self {
            scheduled_at: HashMap::new(),
            scheduled_per_provider: HashMap::new(),
            routed_at: HashMap::new(),
            failed: HashMap::new(),
            audit_blocks: Vec::new(),
            next_height: from + 1,
        }
    }

    /// Reads every committed block not read yet.
    async fn catch_up(&mut self, rpc: &HttpClient) -> anyhow::Result<()> {
        let top = height(rpc).await?;
        while self.next_height <= top {
            let h = self.next_height;
            let b = block_hpc(rpc, h).await?;
            self.failed.extend(b.failed);
            for (id, provider) in b.scheduled {
                self.scheduled_at.insert(id, h);
                *self.scheduled_per_provider.entry(provider).or_default() += 1;
            }
            for id in b.routed {
                self.routed_at.entry(id).or_insert(h);
            }
            if b.audit_records > 0 {
                self.audit_blocks.push((h, b.audit_records, b.audit_tx_gas));
            }
            self.next_height += 1;
        }
        Ok(())
    }

    fn unrouted(&self) -> usize {
        self.scheduled_at
            .keys()
            .filter(|id| !self.routed_at.contains_key(*id))
            .count()
    }

    /// How many of the `sent` txs failed in a block, and the first one's log.
    fn failed_of(&self, sent: &HashSet<String>) -> (usize, Option<&str>) {
        let mut failed = self.failed.iter().filter(|(hash, _)| sent.contains(*hash));
        let first = failed.next().map(|(_, log)| log.as_str());
        (first.map_or(0, |_| 1 + failed.count()), first)
    }

    /// Reads blocks until every one of the `sent` SubmitJob txs is in a block (scheduled or
    /// failed) and every job scheduled is routed.
    async fn wait_all_routed(
        &mut self,
        rpc: &HttpClient,
        sent: &HashSet<String>,
        wait: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            self.catch_up(rpc).await?;
            let (failed, _) = self.failed_of(sent);
            if self.scheduled_at.len() + failed >= sent.len() && self.unrouted() == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "after {wait:?}: of {} jobs sent, {} scheduled, {failed} failed in a block, {} not routed",
                    sent.len(),
                    self.scheduled_at.len(),
                    self.unrouted()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Routing latency in blocks of every routed job.
    fn latencies(&self) -> Vec<f64> {
        let mut out: Vec<f64> = self
            .scheduled_at
            .iter()
            .filter_map(|(id, s)| Some((self.routed_at.get(id)? - s) as f64))
            .collect();
        out.sort_by(f64::total_cmp);
        out
    }
}

/// Point queries between two probes of the newest job.
const QUERIES_PER_PROBE: usize = 64;

/// gRPC `Query/Job` latencies (ms) of jobs `hpc-job-1..=N`, until `stop`. N starts at
/// `known` and follows the chain by probing the next ids now and then, so the load phase
/// need not read every block while it runs: that reading made this harness a third
/// reader of every block's results beside the two enforcers.
async fn point_queries(
    grpc: String,
    known: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<f64>> {
    let client = ChainClient::new(Transport::grpc(&grpc)?, None).await?;
    let mut samples = Vec::new();
    let mut frontier = known.max(1);
    let mut pick: u64 = 0x9e37_79b9;
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if i % QUERIES_PER_PROBE == 0 {
            // Not samples: probes past the newest job are misses.
            while !stop.load(Ordering::Relaxed)
                && client
                    .hpc_job(&format!("hpc-job-{}", frontier + 1))
                    .await?
                    .is_some()
            {
                frontier += 1;
            }
        }
        // A fixed LCG: any job, old or new, without an RNG crate.
        pick = pick.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let n = (pick >> 33) as usize % frontier + 1;
        let start = Instant::now();
        let job = client.hpc_job(&format!("hpc-job-{n}")).await?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        if job.is_none() {
            bail!("hpc-job-{n} is not found");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

/// One reading of the node: seconds since the phase began, height, RSS of hpcd and of
/// cometbft, bytes of the node's data directory.
struct Sample {
    secs: u64,
    height: u64,
    hpcd_rss: u64,
    cometbft_rss: u64,
    data_bytes: u64,
}

/// Takes a sample and prints it to stderr at once, so a soak that ends early (or is
/// stopped) still shows how the node grew.
async fn sample_node(node: &TestNode, rpc: &HttpClient, since: Instant) -> Sample {
    let pid = node.pid().unwrap_or(0);
    let cometbft = children_of(pid).first().copied().unwrap_or(0);
    let sample = Sample {
        secs: since.elapsed().as_secs(),
        height: height(rpc).await.unwrap_or(0),
        hpcd_rss: rss_bytes(pid).unwrap_or(0),
        cometbft_rss: rss_bytes(cometbft).unwrap_or(0),
        data_bytes: disk_bytes(&node.home.join("data")),
    };
    eprintln!(
        "sample: {} s, height {}, hpcd RSS {:.1} MiB, cometbft RSS {:.1} MiB, data {:.1} MiB",
        sample.secs,
        sample.height,
        mib(sample.hpcd_rss),
        mib(sample.cometbft_rss),
        mib(sample.data_bytes)
    );
    sample
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn fmt_p(sorted: &[f64], p: f64) -> String {
    percentile(sorted, p).map_or("-".into(), |v| format!("{v:.2}"))
}

async fn start_network(args: &Args) -> anyhow::Result<(TestNode, Vec<Enforcer>, Vec<SigningKey>)> {
    let mut node = TestNode::init_with_timeout_commit(CHAIN_ID, &args.timeout_commit);
    let keys: Vec<SigningKey> = (0..args.accounts.max(1)).map(bench_key).collect();
    for key in &keys {
        node.cli_ok(&[
            "genesis",
            "add-account",
            &address_of(key).to_string(),
            GENESIS_FUNDS,
            "--keyring-backend",
            "test",
        ]);
    }
    if let Some(gas) = args.block_max_gas {
        let path = node.home.join("config/genesis.json");
        let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        doc["consensus_params"]["block"]["max_gas"] = serde_json::json!(gas.to_string());
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    }
    if let Some(mib) = args.store_cache_mib {
        let path = node.home.join("config/app.toml");
        let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&path)?.parse()?;
        doc["store"]["cache-mib"] = toml_edit::value(i64::try_from(mib)?);
        std::fs::write(&path, doc.to_string())?;
    }
    node.start(2).await;
    let nodes = args.cluster_nodes.to_string();
    let mut enforcers = Vec::new();
    for (provider, cluster, region) in PROVIDERS {
        let out = node.hpc_tx_output(
            provider,
            &[
                "register-cluster",
                cluster,
                "--region",
                region,
                "--total-nodes",
                &nodes,
                "--price-per-node-hour",
                "1000000",
                "--latency-ms",
                "10",
            ],
            &[],
        );
        if !out.status.success() {
            bail!(
                "register-cluster {cluster}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let dir = node.dir.path().join(format!("enforcer-{provider}"));
        std::fs::create_dir_all(&dir)?;
        let mut enforcer = Enforcer::write(
            &EnforcerSpec {
                keys: &node,
                chain: &node,
                provider_key: provider,
                cluster,
                scheduler: embedded(args.cluster_nodes),
                mode: "strict",
                max_age_blocks: 100,
                log_level: "info",
            },
            &dir,
        );
        enforcer.start();
        enforcers.push(enforcer);
    }
    Ok((node, enforcers, keys))
}

/// Phase 1: jobs routed one at a time, and point queries on the idle chain.
async fn idle_phase(
    args: &Args,
    node: &TestNode,
    submitter: &mut Submitter,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let rpc = node.rpc();
    let mut routing = Routing::new(height(&rpc).await?);
    let mut all_sent = HashSet::new();
    for _ in 0..args.idle_jobs.max(1) {
        let sent = broadcast(&rpc, submitter.batch(1), None).await;
        if sent.accepted != 1 {
            bail!("idle job refused: {:?}", sent.first_refusal);
        }
        all_sent.extend(sent.accepted_hashes);
        routing
            .wait_all_routed(&rpc, &all_sent, Duration::from_secs(60))
            .await?;
    }
    if let (n @ 1.., log) = routing.failed_of(&all_sent) {
        bail!("{n} idle jobs failed in their block: {log:?}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let queries = tokio::spawn(point_queries(
        node.grpc_addr(),
        args.idle_jobs,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    Ok((routing.latencies(), queries.await??))
}

struct LoadResult {
    sent: SendReport,
    /// Accepted SubmitJobs that failed in their block, and the first one's log.
    failed_in_block: usize,
    first_failure: Option<String>,
    latencies: Vec<f64>,
    queries: Vec<f64>,
    samples: Vec<Sample>,
    jobs_per_provider: Vec<(String, usize)>,
    /// CPU seconds of each process from the first job sent to the last.
    cpu: Vec<(String, f64)>,
}

/// The processes whose CPU a load phase accounts, each with its reading: hpcd, cometbft,
/// each enforcer and the job processes it has reaped, and this load client.
fn cpu_readings(node: &TestNode, enforcers: &[Enforcer]) -> Vec<(String, Option<f64>)> {
    let hpcd = node.pid().unwrap_or(0);
    let cometbft = children_of(hpcd).first().copied().unwrap_or(0);
    let mut readings = vec![
        ("hpcd".to_string(), cpu_secs(hpcd)),
        ("cometbft".to_string(), cpu_secs(cometbft)),
    ];
    for (e, (provider, ..)) in enforcers.iter().zip(PROVIDERS) {
        let pid = e.pid().unwrap_or(0);
        readings.push((format!("enforcer of {provider}"), cpu_secs(pid)));
        readings.push((
            format!("jobs of {provider} (reaped)"),
            reaped_children_cpu_secs(pid),
        ));
    }
    readings.push(("load client".to_string(), cpu_secs(std::process::id())));
    readings
}

/// CPU seconds between two [`cpu_readings`] (processes unreadable at either end left out).
fn cpu_used(
    before: &[(String, Option<f64>)],
    after: &[(String, Option<f64>)],
) -> Vec<(String, f64)> {
    before
        .iter()
        .zip(after)
        .filter_map(|((name, b), (_, a))| Some((name.clone(), (*a)? - (*b)?)))
        .collect()
}

/// Phase 2: `rate` jobs/s for `secs` with point queries and samples alongside.
async fn load_phase(
    args: &Args,
    node: &TestNode,
    enforcers: &[Enforcer],
    submitter: &mut Submitter,
    jobs_before: usize,
) -> anyhow::Result<LoadResult> {
    let rpc = node.rpc();
    let count = args.rate as usize * args.secs as usize;
    let lanes = submitter.batch(count);
    let mut routing = Routing::new(height(&rpc).await?);
    let stop = Arc::new(AtomicBool::new(false));
    let queries = tokio::spawn(point_queries(node.grpc_addr(), jobs_before, stop.clone()));
    let cpu_before = cpu_readings(node, enforcers);
    let started = Instant::now();
    let send = tokio::spawn({
        let rpc = rpc.clone();
        let rate = args.rate;
        async move { broadcast(&rpc, lanes, Some(rate)).await }
    });
    let mut samples = vec![sample_node(node, &rpc, started).await];
    let mut next_sample = started + Duration::from_secs(args.sample_secs.max(1));
    // The blocks are read after the load (wait_all_routed), not while it runs.
    while !send.is_finished() {
        if Instant::now() >= next_sample {
            samples.push(sample_node(node, &rpc, started).await);
            next_sample += Duration::from_secs(args.sample_secs.max(1));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sent = send.await?;
    // Before the blocks are read: that reading is the harness's work, not the chain's.
    let cpu = cpu_used(&cpu_before, &cpu_readings(node, enforcers));
    stop.store(true, Ordering::Relaxed);
    let queries = queries.await??;
    routing
        .wait_all_routed(
            &rpc,
            &sent.accepted_hashes,
            Duration::from_secs(args.wait_secs),
        )
        .await?;
    samples.push(sample_node(node, &rpc, started).await);
    let (failed_in_block, first_failure) = routing.failed_of(&sent.accepted_hashes);
    let first_failure = first_failure.map(str::to_string);
    let jobs_per_provider = PROVIDERS
        .iter()
        .map(|(provider, ..)| {
            let address = node.key_address(provider);
            let n = routing.scheduled_per_provider.get(&address).copied();
            (provider.to_string(), n.unwrap_or(0))
        })
        .collect();
    Ok(LoadResult {
        sent,
        failed_in_block,
        first_failure,
        latencies: routing.latencies(),
        queries,
        samples,
        jobs_per_provider,
        cpu,
    })
}

struct DrainResult {
    jobs: usize,
    records: usize,
    records_per_sec: f64,
    blocks: u64,
    max_records_per_block: usize,
    gas_per_record: f64,
    ceiling_per_sec: f64,
}

/// Phase 3: enforcers stopped, `backlog` jobs submitted, enforcers started; the drain.
async fn backlog_phase(
    args: &Args,
    node: &TestNode,
    enforcers: &mut [Enforcer],
    submitter: &mut Submitter,
) -> anyhow::Result<DrainResult> {
    let rpc = node.rpc();
    for e in enforcers.iter_mut() {
        e.kill();
    }
    let mut routing = Routing::new(height(&rpc).await?);
    let sent = broadcast(&rpc, submitter.batch(args.backlog), None).await;
    if sent.refused > 0 {
        bail!(
            "{} backlog jobs refused, first: {:?}",
            sent.refused,
            sent.first_refusal
        );
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    while routing.scheduled_at.len() + routing.failed_of(&sent.accepted_hashes).0 < sent.accepted {
        if Instant::now() > deadline {
            bail!(
                "backlog: only {} jobs scheduled",
                routing.scheduled_at.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        routing.catch_up(&rpc).await?;
    }
    for e in enforcers.iter_mut() {
        e.start();
    }
    routing
        .wait_all_routed(
            &rpc,
            &sent.accepted_hashes,
            Duration::from_secs(args.wait_secs),
        )
        .await?;
    let (first, last) = match (routing.audit_blocks.first(), routing.audit_blocks.last()) {
        (Some(f), Some(l)) => (f.0, l.0),
        _ => bail!("backlog: no audit record seen"),
    };
    let records: usize = routing.audit_blocks.iter().map(|b| b.1).sum();
    let gas: u64 = routing.audit_blocks.iter().map(|b| b.2).sum();
    let secs = block_time_secs(&rpc, last).await? - block_time_secs(&rpc, first - 1).await?;
    let blocks = last - first + 1;
    let gas_per_record = gas as f64 / records.max(1) as f64;
    let max_gas = block_max_gas(node)?;
    let blocks_per_sec = blocks as f64 / secs;
    let ceiling_per_sec = if max_gas > 0 {
        max_gas as f64 / gas_per_record * blocks_per_sec
    } else {
        f64::INFINITY
    };
    Ok(DrainResult {
        jobs: routing.scheduled_at.len(),
        records,
        records_per_sec: records as f64 / secs,
        blocks,
        max_records_per_block: routing.audit_blocks.iter().map(|b| b.1).max().unwrap_or(0),
        gas_per_record,
        ceiling_per_sec,
    })
}

/// consensus_params.block.max_gas of the node's genesis (-1 = unlimited).
fn block_max_gas(node: &TestNode) -> anyhow::Result<i64> {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.home.join("config/genesis.json"))?)?;
    let value = &doc["consensus_params"]["block"]["max_gas"];
    value
        .as_i64()
        .or_else(|| value.as_str()?.parse().ok())
        .context("genesis consensus_params.block.max_gas")
}

fn print_report(
    args: &Args,
    idle: &(Vec<f64>, Vec<f64>),
    load: &LoadResult,
    drain: Option<&DrainResult>,
) {
    let (idle_latency, idle_queries) = idle;
    println!("## Routing under load (routing_load)\n");
    println!(
        "{} jobs/s for {} s from {} accounts over 2 providers; timeout_commit {}; block max_gas {}\n",
        args.rate,
        args.secs,
        args.accounts,
        args.timeout_commit,
        args.block_max_gas
            .map_or("as hpcd init writes".to_string(), |g| g.to_string())
    );
    println!(
        "jobs accepted {} refused {}{}; failed in their block {}{}; routed per provider {:?}\n",
        load.sent.accepted,
        load.sent.refused,
        load.sent
            .first_refusal
            .as_deref()
            .map_or(String::new(), |r| format!(" (first: {r})")),
        load.failed_in_block,
        load.first_failure
            .as_deref()
            .map_or(String::new(), |r| format!(" (first: {r})")),
        load.jobs_per_provider
    );
    println!("| figure | p50 | p99 | max | samples |");
    println!("|---|---|---|---|---|");
    for (name, v) in [
        ("routing latency, idle (blocks)", idle_latency),
        ("routing latency under load (blocks)", &load.latencies),
        ("gRPC Query/Job, idle (ms)", idle_queries),
        ("gRPC Query/Job under load (ms)", &load.queries),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            fmt_p(v, 50.0),
            fmt_p(v, 99.0),
            fmt_p(v, 100.0),
            v.len()
        );
    }
    let jobs = load.sent.accepted_hashes.len().max(1) as f64;
    println!("\nCPU from the first job sent to the last (user+system, /proc):\n");
    println!("| process | CPU s | CPU ms per job |");
    println!("|---|---|---|");
    for (name, secs) in &load.cpu {
        println!("| {name} | {secs:.1} | {:.2} |", secs * 1000.0 / jobs);
    }
    let total: f64 = load.cpu.iter().map(|(_, secs)| secs).sum();
    println!("| all | {total:.1} | {:.2} |", total * 1000.0 / jobs);
    println!("\n| s | height | hpcd RSS MiB | cometbft RSS MiB | data MiB |");
    println!("|---|---|---|---|---|");
    for s in &load.samples {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            s.secs,
            s.height,
            mib(s.hpcd_rss),
            mib(s.cometbft_rss),
            mib(s.data_bytes)
        );
    }
    if let Some(d) = drain {
        println!(
            "\nbacklog: {} jobs drained: {} audit records in {} blocks = {:.0} records/s \
             (max {} per block, {:.0} gas per record; the block gas limit allows {:.0} records/s)",
            d.jobs,
            d.records,
            d.blocks,
            d.records_per_sec,
            d.max_records_per_block,
            d.gas_per_record,
            d.ceiling_per_sec
        );
    }
}

fn figures(
    idle: &(Vec<f64>, Vec<f64>),
    load: &LoadResult,
    drain: Option<&DrainResult>,
) -> Vec<Figure> {
    let p = |v: &[f64], q: f64| percentile(v, q).unwrap_or(f64::NAN);
    let (idle_latency, idle_queries) = idle;
    let first = load.samples.first();
    let last = load.samples.last();
    let rss = |s: Option<&Sample>| s.map_or(f64::NAN, |s| mib(s.hpcd_rss + s.cometbft_rss));
    let halfway = last.and_then(|last| {
        load.samples
            .iter()
            .min_by_key(|s| s.secs.abs_diff(last.secs / 2))
    });
    let hpcd_rss = |s: Option<&Sample>| s.map_or(f64::NAN, |s| mib(s.hpcd_rss));
    let mut out = vec![
        Figure::new(
            "routing latency p50 under load (SubmitJob block to hpc_job_routed block)",
            p(&load.latencies, 50.0),
            "blocks",
            "routing latency p50 of jobs sent one at a time on the idle chain",
            p(idle_latency, 50.0),
        )
        .goal("3: p50 <= 1 block at 100 jobs/s over 2 providers"),
        Figure::new(
            "routing latency p99 under load",
            p(&load.latencies, 99.0),
            "blocks",
            "routing latency p99 of jobs sent one at a time on the idle chain",
            p(idle_latency, 99.0),
        )
        .goal("3: p99 <= 2 blocks at 100 jobs/s over 2 providers"),
        Figure::new(
            "gRPC Query/Job p99 under load",
            p(&load.queries, 99.0),
            "ms",
            "gRPC Query/Job p99 on the idle chain",
            p(idle_queries, 99.0),
        )
        .goal("5a: point queries p99 <= 5 ms while the chain commits at full speed"),
        Figure::new(
            "RSS of hpcd + cometbft at the end of the load",
            rss(last),
            "MiB",
            "RSS of hpcd + cometbft at its start",
            rss(first),
        )
        .goal("6: flat RSS over a 30-minute soak (--secs 1800)"),
        Figure::new(
            "hpcd RSS growth over the second half of the load",
            hpcd_rss(last) - hpcd_rss(halfway),
            "MiB",
            "hpcd RSS at the halfway sample",
            hpcd_rss(halfway),
        )
        .goal("6: flat RSS over a 30-minute soak (--secs 1800)"),
    ];
    if let Some(d) = drain {
        out.push(
            Figure::new(
                "audit records committed per second through 2 enforcers (backlog drain)",
                d.records_per_sec,
                "records/s",
                "records/s the block gas limit allows at the measured gas per record",
                d.ceiling_per_sec,
            )
            .goal("2: >= 10 000 records/s through the real enforcer path"),
        );
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (node, mut enforcers, keys) = start_network(&args).await?;
    let mut submitter = Submitter::new(&node, keys).await?;
    let idle = idle_phase(&args, &node, &mut submitter).await?;
    let load = load_phase(
        &args,
        &node,
        &enforcers,
        &mut submitter,
        args.idle_jobs.max(1),
    )
    .await?;
    let drain = if args.backlog > 0 {
        Some(backlog_phase(&args, &node, &mut enforcers, &mut submitter).await?)
    } else {
        None
    };
    print_report(&args, &idle, &load, drain.as_ref());
    if let Some(path) = &args.summary {
        let mut figures = figures(&idle, &load, drain.as_ref());
        if let Some(label) = &args.label {
            for figure in &mut figures {
                figure.name = format!("{} [{label}]", figure.name);
            }
        }
        hpc_bench::summary::append(path, &figures)?;
    }
    Ok(())
}
