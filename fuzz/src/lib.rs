//! Shared setup of the fuzz targets: a small chain state seeded once through the real
//! pipeline (InitChain with funded accounts and an x/hpc authority, then signed txs that
//! register two clusters, submit jobs, record an audit and report a violation), the keys
//! that signed them, and the x/hpc message table of the `hpc_messages` target.
//!
//! The keys are public test keys (`[seed; 32]`), as in chain-module/state/tests.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cosmos_sdk_proto::Any;
use cosmrs::crypto::secp256k1::SigningKey;
use cosmrs::tx::{Body, Fee, SignDoc, SignerInfo};
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::{
    AuditStatus, EnforcementMode, JobRequirements, MsgRecordRoutingAudit, MsgRegisterCluster,
    MsgReportRoutingViolation, MsgSubmitJob, RoutingAuditRecord, RoutingViolation,
    ViolationType,
};
use hpc_state::address::Address;
use hpc_state::auth::AuthKeeper;
use hpc_state::consensus::BlockLimits;
use hpc_state::hpc::QueryClock;
use hpc_state::tx::Mode;
use hpc_state::{App, BlockInfo, TxOutcome};
use hpc_store::Changes;

pub use hpc_state;
pub use hpc_store;

pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

pub const CHAIN: &str = "hpc-fuzz-1";
pub const T0: i64 = 1_700_000_000;
/// Gas limit of the seeding txs and of the messages run by `hpc_messages`.
pub const GAS: u64 = 5_000_000;

/// A public test key: the secret is `[seed; 32]`.
#[derive(Clone, Debug)]
pub struct Key {
    pub seed: u8,
    pub addr: Address,
}

impl Key {
    pub fn new(seed: u8) -> Self {
        let addr = Address::from_secp256k1_pubkey(&Self::signing_key(seed).public_key().to_bytes());
        Self { seed, addr }
    }

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).expect("valid test key")
    }

    pub fn sk(&self) -> SigningKey {
        Self::signing_key(self.seed)
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}

/// `app_state` of the seeded chain: four funded accounts and `authority` as the x/hpc
/// authority, default params.
pub fn genesis_value(funded: &[&Key], authority: &Key) -> serde_json::Value {
    let balances: Vec<_> = funded
        .iter()
        .map(|k| serde_json::json!({"address": k.address(), "coins": [{"denom": "uvirt", "amount": "1000000000"}]}))
        .collect();
    let mut hpc = serde_json::to_value(hpc_state::hpc::default_genesis()).expect("serialize");
    hpc["authority"] = serde_json::json!(authority.address());
    serde_json::json!({"bank": {"balances": balances}, "hpc": hpc})
}

/// Signs `msgs` as one SIGN_MODE_DIRECT tx of `signer` with its current account number and
/// sequence in `state` (a fixed sequence with `seq`).
pub fn sign_tx(state: &State, signer: &Key, msgs: Vec<Any>, seq: Option<u64>) -> Vec<u8> {
    let account = AuthKeeper::account(state, &signer.addr).expect("signer is funded");
    let msgs: Vec<cosmrs::Any> = msgs
        .into_iter()
        .map(|m| cosmrs::Any {
            type_url: m.type_url,
            value: m.value,
        })
        .collect();
    let body = Body::new(msgs, "", 0u32);
    let fee = Fee::from_amount_and_gas(
        cosmrs::Coin {
            denom: "uvirt".parse().expect("denom"),
            amount: 50_000,
        },
        GAS,
    );
    let auth = SignerInfo::single_direct(
        Some(signer.sk().public_key()),
        seq.unwrap_or(account.sequence),
    )
    .auth_info(fee);
    let doc = SignDoc::new(
        &body,
        &auth,
        &CHAIN.parse().expect("chain id"),
        account.account_number,
    )
    .expect("sign doc");
    doc.sign(&signer.sk())
        .expect("sign")
        .to_bytes()
        .expect("encode")
}

pub fn register(provider: &Key, id: &str, nodes: u32, latency_ms: u32) -> Any {
    to_any(&MsgRegisterCluster {
        provider: provider.address(),
        cluster_id: id.into(),
        region: "eu-west".into(),
        total_nodes: nodes,
        available_nodes: nodes,
        gpus_per_node: 4,
        gpu_type: "a100".into(),
        price_per_node_hour: 1_000_000,
        queue_depth: 5,
        latency_ms,
        jitter_ms: 2,
        packet_loss_bps: 0,
    })
}

pub fn submit(owner: &Key, nodes: u32) -> Any {
    to_any(&MsgSubmitJob {
        owner: owner.address(),
        requirements: Some(JobRequirements {
            nodes,
            gpus_per_node: 1,
            gpu_type: "a100".into(),
            max_runtime_seconds: 3600,
            allowed_regions: vec![],
        }),
        policy: None,
        correlation_id: String::new(),
        workload: Some(hpc_proto::virtengine::hpc::v1::JobWorkload { source: Some(hpc_proto::virtengine::hpc::v1::job_workload::Source::InlineScript(b"#!/bin/sh\necho hello\n".to_vec())), ..Default::default() }),
    })
}

/// The seeded chain, built once per fuzzing process.
pub struct World {
    pub app: App,
    pub state: State,
    /// The block the fuzz inputs execute in (the one after the seeding blocks).
    pub block: BlockInfo,
    pub clock: QueryClock,
    pub alice: Key,
    pub p1: Key,
    pub p2: Key,
    pub authority: Key,
    /// job 1: scheduled, audited (routed) by its provider.
    pub job1: String,
    pub decision1: String,
    /// job 2: scheduled, with a violation reported against its provider.
    pub job2: String,
    pub decision2: String,
    pub record_id: String,
    pub violation_id: String,
    /// The provider (and cluster) each job was scheduled on.
    pub job1_provider: String,
    pub job1_cluster: String,
    pub job2_provider: String,
    pub job2_cluster: String,
    /// The seeding txs (signed, in order) and their outcomes.
    pub history: Vec<(String, Vec<u8>, TxOutcome)>,
}

fn attr(out: &TxOutcome, kind: &str, key: &str) -> String {
    out.events
        .iter()
        .find(|e| e.kind == kind)
        .and_then(|e| e.get(key))
        .unwrap_or_else(|| panic!("seeding: no {kind}.{key} in {:?}", out.events))
        .to_string()
}

impl World {
    fn build() -> Self {
        let (alice, p1, p2, authority) = (Key::new(1), Key::new(2), Key::new(3), Key::new(4));
        let app = App::default();
        let mut state = State::new();
        app.init_chain(
            &mut state,
            CHAIN,
            &BlockLimits::default(),
            genesis_value(&[&alice, &p1, &p2, &authority], &authority)
                .to_string()
                .as_bytes(),
        )
        .expect("seeding: genesis");
        let mut history = Vec::new();
        let mut height = 1u64;
        let mut run = |state: &mut State, name: &str, signer: &Key, msgs: Vec<Any>| {
            let tx = sign_tx(state, signer, msgs, None);
            let block = BlockInfo {
                chain_id: CHAIN.into(),
                height,
                time_seconds: T0 + 5 * height as i64,
                time_nanos: 0,
            };
            let out = app.execute_tx(state, &block, &tx, Mode::Deliver);
            assert_eq!(out.code, 0, "seeding tx {name}: {}", out.log);
            app.end_block(state, &block);
            height += 1;
            history.push((name.to_string(), tx, out.clone()));
            out
        };
        run(&mut state, "register_cluster_a", &p1, vec![register(&p1, "cluster-a", 8, 10)]);
        run(&mut state, "register_cluster_b", &p2, vec![register(&p2, "cluster-b", 8, 150)]);
        let out = run(&mut state, "submit_job_1", &alice, vec![submit(&alice, 1)]);
        let (job1, decision1) = (
            attr(&out, "hpc_job_scheduled", "job_id"),
            attr(&out, "hpc_job_scheduled", "decision_id"),
        );
        let job1_provider = attr(&out, "hpc_job_scheduled", "provider");
        let job1_cluster = attr(&out, "hpc_job_scheduled", "cluster_id");
        let out = run(&mut state, "submit_job_2", &alice, vec![submit(&alice, 2)]);
        let (job2, decision2) = (
            attr(&out, "hpc_job_scheduled", "job_id"),
            attr(&out, "hpc_job_scheduled", "decision_id"),
        );
        let job2_provider = attr(&out, "hpc_job_scheduled", "provider");
        let job2_cluster = attr(&out, "hpc_job_scheduled", "cluster_id");
        let key_of = |addr: &str| {
            [&p1, &p2]
                .into_iter()
                .find(|k| k.address() == addr)
                .expect("seeding: a job was scheduled on a known provider")
                .clone()
        };
        let prov1 = key_of(&job1_provider);
        let record_id = "rec-seed-1".to_string();
        run(
            &mut state,
            "record_routing_audit",
            &prov1,
            vec![to_any(&MsgRecordRoutingAudit {
                provider: prov1.address(),
                records: vec![RoutingAuditRecord {
                    record_id: record_id.clone(),
                    job_id: job1.clone(),
                    scheduling_decision_id: decision1.clone(),
                    actual_cluster_id: job1_cluster.clone(),
                    status: AuditStatus::Approved as i32,
                    is_fallback: false,
                    reason: "seed".into(),
                    enforcement_mode: EnforcementMode::Strict as i32,
                    ..Default::default()
                }],
            })],
        );
        let violation_id = "vio-seed-1".to_string();
        run(
            &mut state,
            "report_routing_violation",
            &authority,
            vec![to_any(&MsgReportRoutingViolation {
                reporter: authority.address(),
                violations: vec![RoutingViolation {
                    violation_id: violation_id.clone(),
                    job_id: job2.clone(),
                    violation_type: ViolationType::ClusterMismatch as i32,
                    provider_address: job2_provider.clone(),
                    details: "seed".into(),
                    ..Default::default()
                }],
            })],
        );
        let block = BlockInfo {
            chain_id: CHAIN.into(),
            height,
            time_seconds: T0 + 5 * height as i64,
            time_nanos: 0,
        };
        let clock = QueryClock {
            height: height - 1,
            block_time_seconds: T0 + 5 * (height as i64 - 1),
        };
        Self {
            app,
            state,
            block,
            clock,
            alice,
            p1,
            p2,
            authority,
            job1,
            decision1,
            job2,
            decision2,
            record_id,
            violation_id,
            job1_provider,
            job1_cluster,
            job2_provider,
            job2_cluster,
            history,
        }
    }

    /// The key of a seeded provider address.
    pub fn provider_key(&self, addr: &str) -> &Key {
        [&self.p1, &self.p2]
            .into_iter()
            .find(|k| k.address() == addr)
            .expect("a seeded provider")
    }
}

/// The seeded chain (built on first use).
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::build)
}

/// Whether any write touches x/hpc state.
pub fn touches_hpc(changes: &Changes) -> bool {
    changes.keys().any(|k| k.starts_with(b"hpc/"))
}

/// `base` with `changes` applied.
pub fn merged(base: &State, changes: &Changes) -> State {
    let mut out = base.clone();
    for (k, v) in changes {
        match v {
            Some(v) => {
                out.insert(k.clone(), v.clone());
            }
            None => {
                out.remove(k);
            }
        }
    }
    out
}

/// The x/hpc message types, in the order the first byte of an `hpc_messages` input selects.
pub const HPC_MSG_TYPES: [&str; 11] = [
    "/virtengine.hpc.v1.MsgRegisterCluster",
    "/virtengine.hpc.v1.MsgUpdateClusterStatus",
    "/virtengine.hpc.v1.MsgDeregisterCluster",
    "/virtengine.hpc.v1.MsgSubmitJob",
    "/virtengine.hpc.v1.MsgCancelJob",
    "/virtengine.hpc.v1.MsgRequestReschedule",
    "/virtengine.hpc.v1.MsgRecordRoutingAudit",
    "/virtengine.hpc.v1.MsgReportRoutingViolation",
    "/virtengine.hpc.v1.MsgResolveRoutingViolation",
    "/virtengine.hpc.v1.MsgReportJobStatus",
    "/virtengine.hpc.v1.MsgUpdateParams",
];

/// Every gRPC method path `App::query` routes (the `query_router` dictionary).
pub const QUERY_PATHS: [&str; 21] = [
    "/cosmos.auth.v1beta1.Query/Account",
    "/cosmos.auth.v1beta1.Query/Params",
    "/cosmos.bank.v1beta1.Query/Balance",
    "/cosmos.bank.v1beta1.Query/AllBalances",
    "/cosmos.bank.v1beta1.Query/TotalSupply",
    "/cosmos.tx.v1beta1.Service/Simulate",
    "/virtengine.hpc.v1.Query/Params",
    "/virtengine.hpc.v1.Query/Cluster",
    "/virtengine.hpc.v1.Query/Clusters",
    "/virtengine.hpc.v1.Query/Job",
    "/virtengine.hpc.v1.Query/Jobs",
    "/virtengine.hpc.v1.Query/SchedulingDecision",
    "/virtengine.hpc.v1.Query/SchedulingDecisionByJob",
    "/virtengine.hpc.v1.Query/ExplainDecision",
    "/virtengine.hpc.v1.Query/SimulateSchedule",
    "/virtengine.hpc.v1.Query/RoutingAuditRecord",
    "/virtengine.hpc.v1.Query/RoutingAuditRecords",
    "/virtengine.hpc.v1.Query/RoutingViolation",
    "/virtengine.hpc.v1.Query/RoutingViolations",
    "/virtengine.hpc.v1.Query/ViolationCount",
    // A path no module routes, to keep the fallback branch in the dictionary.
    "/cosmos.staking.v1beta1.Query/Validators",
];
