//! In-process figures (no network, no CometBFT):
//!
//! * (a) `App::execute_tx` on signed bank `MsgSend`s: on an in-memory `BTreeMap` state, and
//!   on a real `hpc_store::Storage` (redb + Jellyfish Merkle tree) with one
//!   `prepare` + `commit` per block of `--block-txs` txs, as hpcd's FinalizeBlock/Commit do.
//!   Same-run baselines: sha256 of the tx bytes, a raw `BTreeMap` insert of exactly the
//!   key/value writes the txs make, and one secp256k1 signature verification per tx.
//! * (b) the x/hpc scheduler (`hpc::scheduler::schedule`) over 10, 100 and 1000 clusters.
//! * (c) the store: `prepare` + `commit` of 1000 key writes per block, and ICS-23 proof
//!   generation per key (`Storage::get_with_proof`).
//! * (d) a signed SubmitJob through `App::execute_tx` while deregistered clusters and
//!   stored violations grow 100×: gas and time must stay flat.
//!
//! Every figure is the median and the minimum of `--reps` timed repetitions after a warm-up
//! run; setup (cloning state, opening a fresh store) is outside the timed section.
//!
//! ```text
//! cargo build --release -p hpc-bench
//! target/release/state_machine
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Parser;
use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{SignDoc, TxRaw};
use cosmrs::crypto::secp256k1::SigningKey;
use hpc_bench::accounts::key as bench_key;
use hpc_client::tx::{address_of, sign_tx, to_any, SignerAccount};
use hpc_primitives::contract::{attrs, events};
use hpc_primitives::{Address, Coins};
use hpc_proto::cosmos_sdk_proto::Timestamp;
use hpc_proto::virtengine::hpc::v1::{
    Cluster, ClusterHealth, ClusterState, JobRequirements, PlacementPolicy, PolicyMode,
    RoutingViolation,
};
use hpc_state::auth::GenesisAccount;
use hpc_state::bank::{GenesisBalance, JsonCoin};
use hpc_state::consensus::BlockLimits;
use hpc_state::hpc::keeper::Keeper;
use hpc_state::hpc::scheduler::{schedule, ScheduleRequest};
use hpc_state::tx::Mode;
use hpc_state::{App, AppState, BlockInfo};
use hpc_store::{Changes, Delta, StateWrite, Storage};
use k256::ecdsa::signature::Verifier;
use prost::Message;
use sha2::{Digest, Sha256};

use hpc_bench::summary::{self, Figure};

const CHAIN_ID: &str = "hpc-bench-1";
const BLOCK_TIME: i64 = 1_700_000_000;
/// What `hpcd init` writes into the genesis (CometBFT's default max_bytes, hpcd's max_gas).
const LIMITS: BlockLimits = BlockLimits {
    max_bytes: 22_020_096,
    max_gas: 100_000_000,
};

#[derive(Parser, Debug)]
#[command(about = "In-process benchmarks of the hpcd state machine, scheduler and store")]
struct Args {
    /// MsgSend txs per repetition.
    #[arg(long, default_value_t = 2000)]
    txs: usize,
    /// Sending accounts (each signs txs/accounts sequential txs).
    #[arg(long, default_value_t = 20)]
    accounts: usize,
    /// Txs per block for the real-storage run (one prepare+commit per block).
    #[arg(long, default_value_t = 100)]
    block_txs: usize,
    /// Timed repetitions per figure (after one warm-up run).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Append the headline figures (JSON lines) to this file (scripts/bench.sh gathers
    /// them into docs/benchmarks/summary.json).
    #[arg(long)]
    summary: Option<std::path::PathBuf>,
    /// Run only some sections: any of a,b,c,d,e,f (comma-separated).
    #[arg(long, default_value = "a,b,c,d,e,f")]
    sections: String,
    /// Section (f): audit records recorded per repetition (in batches of params.max_batch_size);
    /// the disk per record is measured over as many (10 000 overstated it 1.6-fold).
    #[arg(long, default_value_t = 100_000)]
    audit_records: usize,
    /// Section (e): stored audit records per run (comma-separated, smallest first).
    #[arg(long, default_value = "10000,100000,1000000")]
    list_records: String,
}

/// Median and minimum of a set of timings.
#[derive(Clone, Copy)]
struct Stats {
    median: Duration,
    min: Duration,
}

/// Runs `f` once as warm-up, then `reps` times; `f` returns the duration of its timed part.
fn bench(reps: usize, mut f: impl FnMut() -> Duration) -> Stats {
    black_box(f());
    let mut samples: Vec<Duration> = (0..reps.max(1)).map(|_| f()).collect();
    samples.sort();
    Stats {
        median: samples[samples.len() / 2],
        min: samples[0],
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn block(height: u64) -> BlockInfo {
    BlockInfo {
        chain_id: CHAIN_ID.into(),
        height,
        time_seconds: BLOCK_TIME + height as i64,
        time_nanos: 0,
    }
}

/// Genesis as `hpcd genesis add-account` builds it: account numbers 0..k, funded.
fn app_state(addrs: &[Address]) -> Vec<u8> {
    let mut state = AppState::default();
    for (i, a) in addrs.iter().enumerate() {
        state.auth.accounts.push(GenesisAccount {
            type_url: "/cosmos.auth.v1beta1.BaseAccount".into(),
            address: a.to_string(),
            pub_key: None,
            account_number: i as u64,
            sequence: 0,
        });
        state.bank.balances.push(GenesisBalance {
            address: a.to_string(),
            coins: vec![JsonCoin {
                denom: "uvirt".into(),
                amount: "1000000000000".into(),
            }],
        });
    }
    serde_json::to_vec(&state).expect("app state serializes")
}

struct Workload {
    app: App,
    genesis: BTreeMap<Vec<u8>, Vec<u8>>,
    genesis_changes: Changes,
    txs: Vec<Vec<u8>>,
    /// (pubkey, sign bytes, signature) per tx, for the signature-verification reference.
    sig_inputs: Vec<(k256::ecdsa::VerifyingKey, Vec<u8>, k256::ecdsa::Signature)>,
}

fn workload(args: &Args) -> Workload {
    let app = App::new("0.025uvirt".parse().expect("gas price"));
    let k = args.accounts.max(2);
    let keys: Vec<SigningKey> = (0..k).map(bench_key).collect();
    let addrs: Vec<Address> = keys.iter().map(address_of).collect();
    let app_state = app_state(&addrs);
    let mut genesis = BTreeMap::new();
    app.init_chain(&mut genesis, CHAIN_ID, &LIMITS, &app_state)
        .expect("genesis");
    let mut genesis_delta = Delta::new(Storage::empty_snapshot());
    app.init_chain(&mut genesis_delta, CHAIN_ID, &LIMITS, &app_state)
        .expect("genesis");
    let genesis_changes = genesis_delta.into_changes();

    // Same fee/gas as hpcd's e2e tests: 200k gas, 5000uvirt (= 0.025 x gas).
    let fee = Coins::single("uvirt", 5_000);
    let mut txs = Vec::with_capacity(args.txs);
    let mut sig_inputs = Vec::with_capacity(args.txs);
    'outer: for seq in 0.. {
        for i in 0..k {
            if txs.len() == args.txs {
                break 'outer;
            }
            let account = SignerAccount {
                address: addrs[i],
                account_number: i as u64,
                sequence: seq,
            };
            let msg = to_any(&MsgSend {
                from_address: addrs[i].to_string(),
                to_address: addrs[(i + 1) % k].to_string(),
                amount: vec![Coin {
                    denom: "uvirt".into(),
                    amount: "1".into(),
                }],
            });
            let tx = sign_tx(
                &keys[i],
                CHAIN_ID,
                &account,
                vec![msg],
                "",
                0,
                &fee,
                200_000,
                false,
            )
            .expect("signs");
            let raw = TxRaw::decode(tx.as_slice()).expect("decodes");
            let doc = SignDoc {
                body_bytes: raw.body_bytes.clone(),
                auth_info_bytes: raw.auth_info_bytes.clone(),
                chain_id: CHAIN_ID.into(),
                account_number: i as u64,
            }
            .encode_to_vec();
            let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&keys[i].public_key().to_bytes())
                .expect("pubkey");
            let sig = k256::ecdsa::Signature::from_slice(&raw.signatures[0]).expect("sig");
            sig_inputs.push((vk, doc, sig));
            txs.push(tx);
        }
    }
    Workload {
        app,
        genesis,
        genesis_changes,
        txs,
        sig_inputs,
    }
}

fn print_row(name: &str, s: Stats, per: usize, unit: &str, reference: Option<Stats>) {
    let per_f = per as f64;
    let ratio = reference.map_or("".into(), |r| {
        format!("{:.1}", s.median.as_secs_f64() / r.median.as_secs_f64())
    });
    println!(
        "| {name} | {:.2} | {:.2} | {:.0} | {ratio} |",
        us(s.median) / per_f,
        us(s.min) / per_f,
        per_f / s.median.as_secs_f64(),
    );
    let _ = unit;
}

/// Delivers every tx of the workload on a copy of its genesis, `block_txs` per block.
fn time_deliver(app: &App, w: &Workload, block_txs: usize) -> Duration {
    let mut state = w.genesis.clone();
    let t = Instant::now();
    for (i, tx) in w.txs.iter().enumerate() {
        let out = app.execute_tx(
            &mut state,
            &block(2 + (i / block_txs) as u64),
            tx,
            Mode::Deliver,
        );
        debug_assert!(out.is_ok());
        black_box(out);
    }
    t.elapsed()
}

fn section_a(args: &Args) -> Vec<Figure> {
    let w = workload(args);
    let n = w.txs.len();
    let avg_bytes = w.txs.iter().map(Vec::len).sum::<usize>() / n;
    println!("## (a) tx execution: {n} signed MsgSend txs ({avg_bytes} B avg), {} accounts, {} reps (+1 warm-up)\n", args.accounts.max(2), args.reps);

    // Check every tx succeeds once, and record the exact writes of each (for the baseline).
    let mut writes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    {
        let mut state = w.genesis.clone();
        for (i, tx) in w.txs.iter().enumerate() {
            let mut delta = Delta::new(&state);
            let out = w.app.execute_tx(
                &mut delta,
                &block(2 + (i / args.block_txs) as u64),
                tx,
                Mode::Deliver,
            );
            assert!(out.is_ok(), "tx {i} failed: {}", out.log);
            let changes = delta.into_changes();
            for (k, v) in changes {
                let v = v.expect("MsgSend only writes");
                writes.push((k.clone(), v.clone()));
                state.put(k, v);
            }
        }
    }
    let write_bytes: usize = writes.iter().map(|(k, v)| k.len() + v.len()).sum();
    println!(
        "Each tx writes {:.1} keys / {:.0} B on average (what the BTreeMap baseline inserts).\n",
        writes.len() as f64 / n as f64,
        write_bytes as f64 / n as f64
    );

    // Same-run references.
    let sha = bench(args.reps, || {
        let t = Instant::now();
        for tx in &w.txs {
            black_box(Sha256::digest(tx));
        }
        t.elapsed()
    });
    let btree = bench(args.reps, || {
        let mut state = w.genesis.clone();
        let t = Instant::now();
        for (k, v) in &writes {
            state.insert(k.clone(), v.clone());
        }
        let d = t.elapsed();
        black_box(&state);
        d
    });
    let verify = bench(args.reps, || {
        let t = Instant::now();
        for (vk, doc, sig) in &w.sig_inputs {
            assert!(vk.verify(doc, sig).is_ok());
        }
        t.elapsed()
    });

    // execute_tx, Deliver, BTreeMap state. A fresh App per repetition: its verified-signature
    // cache is empty, as for txs a node first sees in a proposal.
    let deliver_mem = bench(args.reps, || {
        time_deliver(&App::default(), &w, args.block_txs)
    });
    // execute_tx, Deliver after the same node checked every tx (CheckTx filled its
    // verified-signature cache): what FinalizeBlock costs for txs from the node's mempool.
    let deliver_after_check = bench(args.reps, || {
        let app = App::default();
        let mut check_state = w.genesis.clone();
        for tx in &w.txs {
            black_box(app.execute_tx(&mut check_state, &block(2), tx, Mode::Check));
        }
        time_deliver(&app, &w, args.block_txs)
    });
    // execute_tx, Check (the ante handler only: what CheckTx costs), fresh cache.
    let check_mem = bench(args.reps, || {
        let app = App::default();
        let mut state = w.genesis.clone();
        let t = Instant::now();
        for tx in &w.txs {
            let out = app.execute_tx(&mut state, &block(2), tx, Mode::Check);
            debug_assert!(out.is_ok());
            black_box(out);
        }
        t.elapsed()
    });

    // Real storage: blocks of block_txs txs, each executed on a Delta over the committed
    // snapshot, then end_block, prepare (JMT root) and commit (redb write + fsync).
    let mut exec_total = Duration::ZERO;
    let mut prepare_total = Duration::ZERO;
    let mut commit_total = Duration::ZERO;
    let mut runs = 0u32;
    let storage_stats = bench(args.reps, || {
        let app = App::default();
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&dir.path().join("application.redb")).expect("store opens");
        let prepared = storage
            .prepare(w.genesis_changes.clone(), 1)
            .expect("genesis root");
        storage.commit(prepared).expect("genesis commit");
        let (mut e, mut p, mut c) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let t = Instant::now();
        for (b, chunk) in w.txs.chunks(args.block_txs).enumerate() {
            let height = 2 + b as u64;
            let info = block(height);
            let t_exec = Instant::now();
            let mut state = Delta::new(storage.snapshot(None).expect("snapshot"));
            for tx in chunk {
                let out = app.execute_tx(&mut state, &info, tx, Mode::Deliver);
                debug_assert!(out.is_ok(), "{}", out.log);
                black_box(out);
            }
            app.end_block(&mut state, &info);
            let (_, changes) = state.into_parts();
            let t_prep = Instant::now();
            let prepared = storage.prepare(changes, height).expect("prepare");
            let t_commit = Instant::now();
            storage.commit(prepared).expect("commit");
            e += t_prep - t_exec;
            p += t_commit - t_prep;
            c += t_commit.elapsed();
        }
        let d = t.elapsed();
        exec_total += e;
        prepare_total += p;
        commit_total += c;
        runs += 1;
        d
    });

    println!("| operation ({n} txs per repetition) | median µs/tx | min µs/tx | txs/s (median) | × sha256 baseline |");
    println!("|---|---|---|---|---|");
    print_row("baseline: sha256(tx bytes)", sha, n, "tx", None);
    print_row(
        "baseline: BTreeMap insert of the txs' writes",
        btree,
        n,
        "tx",
        Some(sha),
    );
    print_row(
        "reference: secp256k1 verify (k256), 1 per tx",
        verify,
        n,
        "tx",
        Some(sha),
    );
    print_row(
        "execute_tx Deliver, BTreeMap state (txs first seen in the block)",
        deliver_mem,
        n,
        "tx",
        Some(sha),
    );
    print_row(
        "execute_tx Deliver after CheckTx of the same txs (signatures verified once)",
        deliver_after_check,
        n,
        "tx",
        Some(sha),
    );
    print_row(
        "execute_tx Check (ante only), BTreeMap state",
        check_mem,
        n,
        "tx",
        Some(sha),
    );
    print_row(
        &format!(
            "execute_tx Deliver + prepare + commit per {} txs, redb Storage",
            args.block_txs
        ),
        storage_stats,
        n,
        "tx",
        Some(sha),
    );
    println!();
    let r = |a: Stats, b: Stats| a.median.as_secs_f64() / b.median.as_secs_f64();
    println!("Ratios (medians): execute_tx Deliver (BTreeMap) / BTreeMap insert of the same writes = {:.1}; / sha256 = {:.1}; secp256k1 verify share of execute_tx = {:.0}%; Deliver after CheckTx / Deliver of unseen txs = {:.2}; Storage pipeline / in-memory execute_tx = {:.2}",
        r(deliver_mem, btree), r(deliver_mem, sha), 100.0 * r(verify, deliver_mem), r(deliver_after_check, deliver_mem), r(storage_stats, deliver_mem));
    let total = exec_total + prepare_total + commit_total;
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64();
    let per_block =
        |d: Duration| us(d) / 1000.0 / (runs as f64 * n.div_ceil(args.block_txs) as f64);
    println!(
        "Storage pipeline breakdown (all {runs} runs incl. warm-up): execute+end_block {:.0}% ({:.2} ms/block), prepare (JMT) {:.0}% ({:.2} ms/block), commit (redb) {:.0}% ({:.2} ms/block)\n",
        pct(exec_total), per_block(exec_total),
        pct(prepare_total), per_block(prepare_total),
        pct(commit_total), per_block(commit_total)
    );
    let per_tx = |s: Stats| us(s.median) / n as f64;
    vec![Figure::new(
        "execute_tx Deliver of a MsgSend after CheckTx (signature verified once)",
        per_tx(deliver_after_check),
        "µs/tx",
        "execute_tx Deliver of a MsgSend first seen in the block",
        per_tx(deliver_mem),
    )
    .goal("lever of goal 1: the ratio is the FinalizeBlock cost left per mempool tx")]
}

fn clusters(n: usize) -> Vec<Cluster> {
    let regions = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"];
    let gpus = ["a100", "h100", "l40s"];
    (0..n)
        .map(|i| {
            // Deterministic spread of attributes; most clusters pass the hard filters.
            let h = Sha256::digest((i as u64).to_le_bytes());
            Cluster {
                cluster_id: format!("cluster-{i:05}"),
                provider_address: format!("provider-{}", i % 37),
                region: regions[h[0] as usize % regions.len()].into(),
                state: if h[1] % 20 == 0 {
                    ClusterState::Draining
                } else {
                    ClusterState::Active
                } as i32,
                total_nodes: 64,
                available_nodes: 8 + (h[2] % 56) as u32,
                reserved_nodes: (h[3] % 8) as u32,
                gpus_per_node: 4 + 4 * (h[4] % 2) as u32,
                gpu_type: gpus[h[5] as usize % gpus.len()].into(),
                queue_depth: (h[6] % 50) as u32,
                latency_ms: 5 + (h[7] % 150) as u32,
                jitter_ms: (h[8] % 20) as u32,
                packet_loss_bps: (h[9] % 50) as u32,
                price_per_node_hour: 500_000 + 10_000 * h[10] as u64,
                health: if h[11] % 10 == 0 {
                    ClusterHealth::Degraded
                } else {
                    ClusterHealth::Healthy
                } as i32,
                reputation_bps: 5_000 + (h[12] as u32 * 19),
                last_heartbeat_height: 1,
                last_heartbeat_time: Some(Timestamp {
                    seconds: BLOCK_TIME - (h[13] % 60) as i64,
                    nanos: 0,
                }),
                registered_height: 1,
                completed_jobs: h[14] as u64,
            }
        })
        .collect()
}

fn section_b(args: &Args) -> Vec<Figure> {
    println!("## (b) x/hpc scheduler: schedule() per decision, default params (candidate cap 64), {} reps (+1 warm-up)\n", args.reps);
    let params = hpc_state::hpc::default_params();
    let requirements = JobRequirements {
        nodes: 2,
        gpus_per_node: 4,
        gpu_type: "a100".into(),
        max_runtime_seconds: 3_600,
        allowed_regions: vec!["eu-west".into(), "eu-central".into(), "us-east".into()],
    };
    let permissive = PlacementPolicy {
        mode: PolicyMode::Permissive as i32,
        max_latency_ms: Some(100),
        max_price_per_node_hour: Some(2_000_000),
        ..Default::default()
    };
    let reference_sort = |cs: &[Cluster]| {
        let mut v = cs.to_vec();
        v.sort_by(|a, b| a.cluster_id.cmp(&b.cluster_id));
        black_box(v);
    };
    let mut figures = Vec::new();
    println!("| clusters | policy | median µs/decision | min µs/decision | decisions/s | eligible rows | baseline: clone+sort input µs | × baseline |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in [10usize, 100, 1000, 10_000] {
        let cs = clusters(n);
        let excluded = vec!["cluster-00003".to_string()];
        for (label, policy) in [
            ("none (enforce)", None),
            ("permissive + soft limits", Some(&permissive)),
        ] {
            let req = ScheduleRequest {
                requirements: &requirements,
                policy,
                params: &params,
                clusters: &cs,
                excluded_cluster_ids: &excluded,
                block_time_seconds: BLOCK_TIME,
            };
            let outcome = schedule(&req);
            let eligible = outcome.candidates.iter().filter(|c| c.eligible).count();
            // Enough decisions per sample for ~20 ms.
            let probe = Instant::now();
            black_box(schedule(&req));
            let one = probe.elapsed().max(Duration::from_nanos(100));
            let iters = ((Duration::from_millis(20).as_nanos() / one.as_nanos()) as usize)
                .clamp(1, 100_000);
            let s = bench(args.reps, || {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(schedule(black_box(&req)));
                }
                t.elapsed()
            });
            let base = bench(args.reps, || {
                let t = Instant::now();
                for _ in 0..iters {
                    reference_sort(black_box(&cs));
                }
                t.elapsed()
            });
            if n == 10_000 && policy.is_none() {
                figures.push(
                    Figure::new(
                        "scheduler: schedule() over 10 000 clusters, per decision",
                        us(s.median) / iters as f64,
                        "µs",
                        "cloning and sorting those 10 000 clusters",
                        us(base.median) / iters as f64,
                    )
                    .goal("goal 4: <= 5 000 µs per decision at 10 000 clusters"),
                );
            }
            println!(
                "| {n} | {label} | {:.1} | {:.1} | {:.0} | {eligible} of {} | {:.1} | {:.1} |",
                us(s.median) / iters as f64,
                us(s.min) / iters as f64,
                iters as f64 / s.median.as_secs_f64(),
                outcome.candidates.len(),
                us(base.median) / iters as f64,
                s.median.as_secs_f64() / base.median.as_secs_f64(),
            );
        }
    }
    println!();
    figures
}

fn section_c(args: &Args) {
    const KEYS_PER_BLOCK: usize = 1000;
    const BLOCKS: usize = 10;
    const VALUE_BYTES: usize = 100;
    println!("## (c) store: {BLOCKS} blocks x {KEYS_PER_BLOCK} new keys ({VALUE_BYTES} B values) per repetition, fresh redb store each, {} reps (+1 warm-up)\n", args.reps);
    let key_of = |b: usize, i: usize| -> Vec<u8> {
        let mut k = b"bench/".to_vec();
        k.extend_from_slice(&Sha256::digest(((b * KEYS_PER_BLOCK + i) as u64).to_le_bytes())[..20]);
        k
    };
    let blocks: Vec<Changes> = (0..BLOCKS)
        .map(|b| {
            (0..KEYS_PER_BLOCK)
                .map(|i| (key_of(b, i), Some(vec![(i % 251) as u8; VALUE_BYTES])))
                .collect()
        })
        .collect();

    let mut prepare_samples = Vec::new();
    let mut commit_samples = Vec::new();
    let mut kept: Option<(tempfile::TempDir, Storage)> = None;
    let total = bench(args.reps, || {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&dir.path().join("s.redb")).expect("open");
        let t = Instant::now();
        for (b, changes) in blocks.iter().enumerate() {
            let t_p = Instant::now();
            let prepared = storage
                .prepare(changes.clone(), 1 + b as u64)
                .expect("prepare");
            let t_c = Instant::now();
            storage.commit(prepared).expect("commit");
            prepare_samples.push(t_c - t_p);
            commit_samples.push(t_c.elapsed());
        }
        let d = t.elapsed();
        kept = Some((dir, storage));
        d
    });
    let stats_of = |mut v: Vec<Duration>| {
        v.sort();
        Stats {
            median: v[v.len() / 2],
            min: v[0],
        }
    };
    let prep = stats_of(prepare_samples);
    let comm = stats_of(commit_samples);

    // Baselines for the same volume: BTreeMap insert and sha256 of the 1000 key+values.
    let btree = bench(args.reps, || {
        let mut m: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let t = Instant::now();
        for (k, v) in &blocks[0] {
            m.insert(k.clone(), v.clone().expect("set"));
        }
        let d = t.elapsed();
        black_box(m);
        d
    });
    let sha = bench(args.reps, || {
        let t = Instant::now();
        for (k, v) in &blocks[0] {
            let mut h = Sha256::new();
            h.update(k);
            h.update(v.as_deref().expect("set"));
            black_box(h.finalize());
        }
        t.elapsed()
    });

    println!("| operation | median | min | per key (median) | × BTreeMap baseline |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, s: Stats, per_keys: usize| {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} µs | {:.0} |",
            us(s.median) / 1000.0,
            us(s.min) / 1000.0,
            us(s.median) / per_keys as f64,
            s.median.as_secs_f64() / btree.median.as_secs_f64()
        );
    };
    row(
        "baseline: BTreeMap insert, 1000 keys",
        btree,
        KEYS_PER_BLOCK,
    );
    row("baseline: sha256 of 1000 key+value", sha, KEYS_PER_BLOCK);
    row(
        "prepare (JMT put_value_set → root), per 1000-key block",
        prep,
        KEYS_PER_BLOCK,
    );
    row(
        "commit (redb write txn + durable commit), per 1000-key block",
        comm,
        KEYS_PER_BLOCK,
    );
    let per_block_total = Stats {
        median: total.median / BLOCKS as u32,
        min: total.min / BLOCKS as u32,
    };
    row(
        "prepare + commit, per block (10-block run / 10)",
        per_block_total,
        KEYS_PER_BLOCK,
    );

    // Proofs against the last store of the run (10 000 keys, version 10).
    let (_dir, storage) = kept.expect("a store");
    let version = BLOCKS as u64;
    let present: Vec<Vec<u8>> = (0..200)
        .map(|j| key_of(j % BLOCKS, (j * 37) % KEYS_PER_BLOCK))
        .collect();
    let absent: Vec<Vec<u8>> = (0..200)
        .map(|j| format!("bench/absent/{j}").into_bytes())
        .collect();
    for (label, keys) in [
        ("existence proof (key present)", &present),
        ("non-existence proof (key absent)", &absent),
    ] {
        let s = bench(args.reps, || {
            let t = Instant::now();
            for k in keys.iter() {
                black_box(storage.get_with_proof(k, version).expect("proof"));
            }
            t.elapsed()
        });
        let (_, proof) = storage.get_with_proof(&keys[0], version).expect("proof");
        println!(
            "| get_with_proof: {label}, 10 000-key tree | {:.2} µs/proof | {:.2} µs/proof | ({} B proof) | {:.0} |",
            us(s.median) / keys.len() as f64,
            us(s.min) / keys.len() as f64,
            proof.encode_to_vec().len(),
            (s.median.as_secs_f64() / keys.len() as f64) / (btree.median.as_secs_f64() / KEYS_PER_BLOCK as f64)
        );
    }
    println!();
}

/// A chain with `active` schedulable clusters, `deregistered` others and `violations`
/// violations recorded against each active cluster (history the scheduler must not pay
/// for), plus one funded submitter.
fn history_state(
    app: &App,
    submitter: &Address,
    active: usize,
    deregistered: usize,
    violations: usize,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    app.init_chain(&mut state, CHAIN_ID, &LIMITS, &app_state(&[*submitter]))
        .expect("genesis");
    let provider = address_of(&bench_key(9_999)).to_string();
    for (i, mut c) in clusters(active + deregistered).into_iter().enumerate() {
        c.provider_address = provider.clone();
        c.state = if i < active {
            ClusterState::Active
        } else {
            ClusterState::Deregistered
        } as i32;
        if i < active {
            for v in 0..violations {
                Keeper::set_violation(
                    &mut state,
                    &RoutingViolation {
                        violation_id: format!("v-{i}-{v}"),
                        job_id: format!("old-job-{v}"),
                        decision_id: format!("old-decision-{v}"),
                        provider_address: provider.clone(),
                        actual_cluster_id: c.cluster_id.clone(),
                        severity: 1,
                        created_height: 1,
                        ..Default::default()
                    },
                );
            }
        }
        Keeper::set_cluster(&mut state, &c);
    }
    state
}

/// A signed SubmitJob of one node running an inline script.
fn submit_job_tx(owner_key: &SigningKey, account_number: u64, sequence: u64) -> Vec<u8> {
    let account = SignerAccount {
        address: address_of(owner_key),
        account_number,
        sequence,
    };
    let fee = hpc_bench::txs::Fee {
        gas_limit: 4_000_000,
        uvirt: 100_000,
    };
    hpc_bench::txs::submit_job(
        owner_key,
        CHAIN_ID,
        &account,
        b"#!/bin/sh\necho bench\n",
        3_600,
        &[],
        fee,
    )
}

fn section_d(args: &Args) -> Vec<Figure> {
    println!("## (d) SubmitJob through execute_tx as clusters and history grow (default params: at most {} clusters evaluated per decision), {} reps (+1 warm-up)
", hpc_state::hpc::default_params().max_clusters_evaluated, args.reps);
    println!("| active clusters | deregistered clusters | violations per active cluster | gas per SubmitJob | median µs/SubmitJob | min µs/SubmitJob | × first row (time) |");
    println!("|---|---|---|---|---|---|---|");
    let app = App::default();
    let submitter_key = bench_key(0);
    let submitter = address_of(&submitter_key);
    let jobs = 50u64;
    let txs: Vec<Vec<u8>> = (0..jobs)
        .map(|seq| submit_job_tx(&submitter_key, 0, seq))
        .collect();
    let mut first: Option<Stats> = None;
    let mut figures = Vec::new();
    let rows = [
        (50, 20, 1),
        (50, 2_000, 1),
        (50, 20, 100),
        (50, 2_000, 100),
        (1_000, 0, 1),
        (10_000, 0, 1),
    ];
    for (active, deregistered, violations) in rows {
        let base = history_state(&app, &submitter, active, deregistered, violations);
        let mut gas = 0;
        let s = bench(args.reps, || {
            // Fresh signature cache: every repetition verifies, as for txs first seen in a block.
            let app = App::default();
            let mut state = base.clone();
            let t = Instant::now();
            for tx in &txs {
                let out = app.execute_tx(&mut state, &block(2), tx, Mode::Deliver);
                assert!(out.is_ok(), "{}", out.log);
                gas = out.gas_used;
            }
            t.elapsed()
        });
        let ratio = first.map_or(1.0, |f| s.median.as_secs_f64() / f.median.as_secs_f64());
        let first_row = *first.get_or_insert(s);
        if active == 10_000 {
            figures.push(
                Figure::new(
                    "SubmitJob (execute_tx) with 10 000 active clusters",
                    us(s.median) / jobs as f64,
                    "µs",
                    "SubmitJob with 50 active clusters",
                    us(first_row.median) / jobs as f64,
                )
                .goal("goal 4: <= 5 000 µs, bounded by params.max_clusters_evaluated, not by clusters registered"),
            );
        }
        println!(
            "| {active} | {deregistered} | {violations} | {gas} | {:.1} | {:.1} | {ratio:.2} |",
            us(s.median) / jobs as f64,
            us(s.min) / jobs as f64,
        );
    }
    println!();
    figures
}

/// A state with `records` audit records (two per job, jobs alternately ROUTED and
/// COMPLETED) and one violation per ten records, over two providers.
fn listing_state(records: usize) -> (BTreeMap<Vec<u8>, Vec<u8>>, [String; 2]) {
    use hpc_proto::virtengine::hpc::v1::{Job, JobState, RoutingAuditRecord};
    let providers = [0, 1].map(|i| address_of(&bench_key(9_000 + i)).to_string());
    let mut state = BTreeMap::new();
    for i in 0..records {
        let job = i / 2;
        let provider = &providers[job % 2];
        if i % 2 == 0 {
            Keeper::set_job(
                &mut state,
                &Job {
                    job_id: format!("job-{job:08}"),
                    owner: provider.clone(),
                    provider_address: provider.clone(),
                    state: if job % 4 < 2 {
                        JobState::Routed
                    } else {
                        JobState::Completed
                    } as i32,
                    ..Default::default()
                },
            );
        }
        Keeper::insert_audit(
            &mut state,
            &RoutingAuditRecord {
                record_id: format!("{provider}:ra-{i:08}"),
                job_id: format!("job-{job:08}"),
                scheduling_decision_id: format!("decision-{job:08}"),
                actual_cluster_id: "cluster-a".into(),
                provider_address: provider.clone(),
                created_height: 1 + (i / 1000) as u64,
                ..Default::default()
            },
        );
        if i % 10 == 0 {
            Keeper::set_violation(
                &mut state,
                &RoutingViolation {
                    violation_id: format!("v-{i:08}"),
                    job_id: format!("job-{job:08}"),
                    provider_address: provider.clone(),
                    actual_cluster_id: "cluster-a".into(),
                    severity: 1,
                    created_height: 1,
                    ..Default::default()
                },
            );
        }
    }
    (state, providers)
}

fn section_e(args: &Args) -> Vec<Figure> {
    use hpc_proto::cosmos_sdk_proto::cosmos::base::query::v1beta1::PageRequest;
    use hpc_proto::virtengine::hpc::v1::{
        JobState, QueryJobsRequest, QueryRoutingAuditRecordsRequest, QueryRoutingViolationsRequest,
    };
    let sizes: Vec<usize> = args
        .list_records
        .split(',')
        .map(|n| n.trim().parse().expect("--list-records: numbers"))
        .collect();
    println!("## (e) list queries as stored records grow: a page of 100 (or one job's records), median of {} reps (+1 warm-up)\n", args.reps);
    println!("| stored audit records | jobs by provider+state | audit records by job | audit records by provider | unresolved violations by provider | build s |");
    println!("|---|---|---|---|---|---|");
    let app = App::default();
    let clock = hpc_state::hpc::QueryClock {
        height: 1_000,
        block_time_seconds: BLOCK_TIME,
    };
    let page = || {
        Some(PageRequest {
            limit: 100,
            ..Default::default()
        })
    };
    let mut worst_per_size = Vec::new();
    for &records in &sizes {
        let built = Instant::now();
        let (state, providers) = listing_state(records);
        let build_secs = built.elapsed().as_secs_f64();
        let middle_job = format!("job-{:08}", records / 4);
        let queries: Vec<(&str, Vec<u8>)> = vec![
            (
                "Jobs",
                QueryJobsRequest {
                    provider_address: providers[0].clone(),
                    state: JobState::Routed as i32,
                    pagination: page(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                "RoutingAuditRecords",
                QueryRoutingAuditRecordsRequest {
                    job_id: middle_job,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                "RoutingAuditRecords",
                QueryRoutingAuditRecordsRequest {
                    provider_address: providers[1].clone(),
                    pagination: page(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                "RoutingViolations",
                QueryRoutingViolationsRequest {
                    provider_address: providers[0].clone(),
                    unresolved_only: true,
                    pagination: page(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ];
        let mut cells = Vec::new();
        for (method, request) in &queries {
            let path = format!("/virtengine.hpc.v1.Query/{method}");
            let answer = app
                .query(&path, request, &state, clock)
                .expect("the query answers");
            assert!(!answer.is_empty(), "{method} found nothing");
            let s = bench(args.reps, || {
                let t = Instant::now();
                for _ in 0..100 {
                    black_box(
                        app.query(&path, black_box(request), &state, clock)
                            .expect("answers"),
                    );
                }
                t.elapsed()
            });
            cells.push(us(s.median) / 100.0);
        }
        println!(
            "| {records} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {build_secs:.1} |",
            cells[0], cells[1], cells[2], cells[3]
        );
        worst_per_size.push(cells.into_iter().fold(0.0, f64::max));
    }
    println!();
    let (Some(first), Some(last)) = (worst_per_size.first(), worst_per_size.last()) else {
        return Vec::new();
    };
    vec![Figure::new(
        &format!(
            "slowest list query at {} stored audit records",
            sizes.last().copied().unwrap_or(0)
        ),
        *last,
        "µs",
        &format!(
            "the same at {} stored audit records",
            sizes.first().copied().unwrap_or(0)
        ),
        *first,
    )
    .goal("goal 5: flat (ratio near 1): index range scans, no full prefix scans")]
}

/// An in-memory state, as the state machine tests use.
type MemState = BTreeMap<Vec<u8>, Vec<u8>>;

/// A chain where `jobs` SubmitJob txs scheduled one job each onto the provider's only
/// cluster; returns it with each job's (job id, decision id).
fn routed_jobs_state(
    app: &App,
    owner_key: &SigningKey,
    provider: &Address,
    jobs: usize,
) -> (MemState, Vec<(String, String)>) {
    let mut state = BTreeMap::new();
    let owner = address_of(owner_key);
    app.init_chain(
        &mut state,
        CHAIN_ID,
        &LIMITS,
        &app_state(&[owner, *provider]),
    )
    .expect("genesis");
    let mut cluster = clusters(1).remove(0);
    cluster.cluster_id = "cluster-audit".into();
    cluster.provider_address = provider.to_string();
    cluster.state = ClusterState::Active as i32;
    cluster.health = ClusterHealth::Healthy as i32;
    cluster.total_nodes = 1_000_000;
    cluster.available_nodes = 1_000_000;
    cluster.reserved_nodes = 0;
    Keeper::set_cluster(&mut state, &cluster);
    let scheduled = (0..jobs as u64)
        .map(|seq| {
            let out = app.execute_tx(
                &mut state,
                &block(2),
                &submit_job_tx(owner_key, 0, seq),
                Mode::Deliver,
            );
            assert!(out.is_ok(), "{}", out.log);
            let attr = |name: &str| {
                out.events
                    .iter()
                    .filter(|e| e.kind == events::JOB_SCHEDULED)
                    .flat_map(|e| e.attributes.iter())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .expect("hpc_job_scheduled names the job and decision")
            };
            (attr(attrs::JOB_ID), attr(attrs::DECISION_ID))
        })
        .collect();
    (state, scheduled)
}

/// Grows a redb store from `base` with `txs` in blocks of `per_block` txs (each prepared
/// and committed like hpcd's Commit); returns the growth of its allocated pages per record.
fn disk_per_record(
    app: &App,
    base: &MemState,
    txs: &[Vec<u8>],
    per_block: usize,
    keep_recent: u64,
) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("application.redb");
    let storage = Storage::open(&path)
        .expect("store opens")
        .with_keep_recent(keep_recent);
    let genesis: Changes = base
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    storage
        .commit(storage.prepare(genesis, 1).expect("genesis root"))
        .expect("genesis commit");
    let size = || storage.allocated_bytes().expect("store stats") as f64;
    let before = size();
    for (b, chunk) in txs.chunks(per_block).enumerate() {
        let height = 2 + b as u64;
        let mut state = Delta::new(storage.snapshot(None).expect("snapshot"));
        for tx in chunk {
            let out = app.execute_tx(&mut state, &block(height), tx, Mode::Deliver);
            assert!(out.is_ok(), "{}", out.log);
        }
        let (_, changes) = state.into_parts();
        storage
            .commit(storage.prepare(changes, height).expect("prepare"))
            .expect("commit");
    }
    let records: usize = txs.len() * hpc_state::hpc::default_params().max_batch_size as usize;
    (size() - before) / records as f64
}

/// MsgRecordRoutingAudit batches, as an enforcer sends them (params.max_batch_size records,
/// one approved record per job), through execute_tx: the state machine's ceiling for
/// goal 2, without CometBFT.
fn section_f(args: &Args) -> Vec<Figure> {
    use hpc_proto::virtengine::hpc::v1::{
        AuditStatus, EnforcementMode, MsgRecordRoutingAudit, RoutingAuditRecord,
    };
    let batch = hpc_state::hpc::default_params().max_batch_size as usize;
    let records = args.audit_records.max(batch);
    println!("## (f) audit records: MsgRecordRoutingAudit batches of {batch} (params.max_batch_size) through execute_tx, {records} records, {} reps (+1 warm-up)\n", args.reps);
    let app = App::default();
    let (owner_key, provider_key) = (bench_key(0), bench_key(1));
    let provider = address_of(&provider_key);
    let (base, jobs) = routed_jobs_state(&app, &owner_key, &provider, records);
    let txs: Vec<Vec<u8>> = jobs
        .chunks(batch)
        .enumerate()
        .map(|(seq, chunk)| {
            let msg = to_any(&MsgRecordRoutingAudit {
                provider: provider.to_string(),
                records: chunk
                    .iter()
                    .map(|(job, decision)| RoutingAuditRecord {
                        record_id: format!("{provider}:ra-{job}"),
                        job_id: job.clone(),
                        scheduling_decision_id: decision.clone(),
                        actual_cluster_id: "cluster-audit".into(),
                        status: AuditStatus::Approved as i32,
                        reason: "job routed to scheduled cluster".into(),
                        enforcement_mode: EnforcementMode::Strict as i32,
                        ..Default::default()
                    })
                    .collect(),
            });
            let account = SignerAccount {
                address: provider,
                account_number: 1,
                sequence: seq as u64,
            };
            sign_tx(
                &provider_key,
                CHAIN_ID,
                &account,
                vec![msg],
                "",
                0,
                &Coins::single("uvirt", 1_000_000),
                100_000_000,
                false,
            )
            .expect("signs")
        })
        .collect();
    let mut gas = 0;
    let deliver = bench(args.reps, || {
        let app = App::default();
        let mut state = base.clone();
        let t = Instant::now();
        for tx in &txs {
            let out = app.execute_tx(&mut state, &block(3), tx, Mode::Deliver);
            assert!(out.is_ok(), "{}", out.log);
            gas = out.gas_used;
        }
        t.elapsed()
    });
    let per_second = records as f64 / deliver.median.as_secs_f64();
    let tx_bytes = txs.iter().map(Vec::len).sum::<usize>() as f64 / records as f64;
    let per_block = usize::try_from(LIMITS.max_gas as u64 / gas.max(1))
        .unwrap_or(1)
        .max(1);
    let archive = disk_per_record(&app, &base, &txs, per_block, 0);
    let pruned = disk_per_record(&app, &base, &txs, per_block, 2);
    println!("| figure | value |");
    println!("|---|---|");
    println!("| records/s through execute_tx (one core, signatures verified, BTreeMap state) | {per_second:.0} |");
    println!(
        "| µs per record (median) | {:.1} |",
        us(deliver.median) / records as f64
    );
    println!(
        "| gas per record (a full batch's gas / {batch}) | {} |",
        gas / batch as u64
    );
    println!("| tx bytes per record | {tx_bytes:.0} |");
    println!(
        "| batches per block under hpcd init's max_gas {} | {per_block} ({} records/block) |",
        LIMITS.max_gas,
        per_block * batch
    );
    for (node, bytes) in [
        ("archive node (keep-recent 0)", archive),
        ("keep-recent 2", pruned),
    ] {
        println!("| disk bytes per record, {node} (growth of redb's allocated pages over {records} records in blocks of {per_block} batches) | {bytes:.0} ({:.2} GB per 1 000 000, extrapolated) |", bytes * 1e6 / 1e9);
    }
    println!();
    vec![
        Figure::new(
            "disk per 1 000 000 audit records, keep-recent 2 (extrapolated from the run)",
            pruned * 1e6 / 1e9,
            "GB",
            "the same on an archive node (keep-recent 0)",
            archive * 1e6 / 1e9,
        )
        .goal("goal 6: disk grows with live state, not with history"),
        Figure::new(
        "audit records/s through execute_tx (batches of params.max_batch_size, one core)",
        per_second,
        "records/s",
        "goal 2's 10 000 records/s committed",
        10_000.0,
    )
    .goal("goal 2: >= 10 000 records/s committed through the real enforcer path (this is the state machine's ceiling, without CometBFT)"),
    ]
}

fn main() {
    let args = Args::parse();
    println!(
        "state_machine: profile={} txs={} accounts={} block_txs={} reps={}\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        args.txs,
        args.accounts,
        args.block_txs,
        args.reps
    );
    println!(
        "machine: {} CPUs, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let sections: Vec<&str> = args.sections.split(',').map(str::trim).collect();
    let mut figures = Vec::new();
    if sections.contains(&"a") {
        figures.extend(section_a(&args));
    }
    if sections.contains(&"b") {
        figures.extend(section_b(&args));
    }
    if sections.contains(&"c") {
        section_c(&args);
    }
    if sections.contains(&"d") {
        figures.extend(section_d(&args));
    }
    if sections.contains(&"e") {
        figures.extend(section_e(&args));
    }
    if sections.contains(&"f") {
        figures.extend(section_f(&args));
    }
    if let Some(path) = &args.summary {
        summary::append(path, &figures).expect("writes the summary");
    }
}
