//! The in-process chain the x/hpc tests drive: cosmrs-signed txs through the real tx
//! pipeline on an in-memory state, plus message builders. Shared by several test crates,
//! each of which uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use cosmos_sdk_proto::Any;
use cosmrs::crypto::secp256k1::SigningKey;
use cosmrs::tx::{Body, Fee, SignDoc, SignerInfo};
use cosmrs::Coin;
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::*;
use hpc_state::address::Address;
use hpc_state::auth::AuthKeeper;
use hpc_state::consensus::BlockLimits;
use hpc_state::hpc::QueryClock;
use hpc_state::tx::Mode;
use hpc_state::{App, BlockInfo, Event, TxOutcome};
use prost::Message;

pub const CHAIN: &str = "hpc-msg-test";
pub const T0: i64 = 1_700_000_000;

pub struct Key {
    pub sk: SigningKey,
    pub addr: Address,
}

pub fn key(seed: u8) -> Key {
    let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
    let addr = Address::from_secp256k1_pubkey(&sk.public_key().to_bytes());
    Key { sk, addr }
}

#[derive(Clone)]
pub struct Chain {
    pub app: App,
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
    pub height: u64,
    pub time: i64,
}

impl Chain {
    pub fn new(funded: &[&Key], authority: &Key) -> Self {
        let app = App::default();
        let balances: Vec<_> = funded
            .iter()
            .map(|k| serde_json::json!({"address": k.addr.to_string(), "coins": [{"denom": "uvirt", "amount": "1000000000"}]}))
            .collect();
        let mut hpc = serde_json::to_value(hpc_state::hpc::default_genesis()).unwrap();
        hpc["authority"] = serde_json::json!(authority.addr.to_string());
        let genesis = serde_json::json!({"bank": {"balances": balances}, "hpc": hpc});
        let mut state = BTreeMap::new();
        app.init_chain(
            &mut state,
            CHAIN,
            &BlockLimits::default(),
            genesis.to_string().as_bytes(),
        )
        .unwrap();
        Self {
            app,
            state,
            height: 1,
            time: T0,
        }
    }

    pub fn block(&self) -> BlockInfo {
        BlockInfo {
            chain_id: CHAIN.into(),
            height: self.height,
            time_seconds: self.time,
            time_nanos: 0,
        }
    }

    /// Advances to the next block (5 s later) and runs end-of-block work.
    pub fn next_block(&mut self) {
        let block = self.block();
        self.app.end_block(&mut self.state, &block);
        assert_provable(&self.state);
        self.height += 1;
        self.time += 5;
    }

    pub fn tx(&mut self, signer: &Key, msgs: Vec<Any>) -> TxOutcome {
        self.tx_with_gas(signer, msgs, 5_000_000)
    }

    pub fn tx_with_gas(&mut self, signer: &Key, msgs: Vec<Any>, gas: u64) -> TxOutcome {
        let account = AuthKeeper::account(&self.state, &signer.addr).expect("signer is funded");
        let msgs: Vec<cosmrs::Any> = msgs
            .into_iter()
            .map(|m| cosmrs::Any {
                type_url: m.type_url,
                value: m.value,
            })
            .collect();
        let body = Body::new(msgs, "", 0u32);
        let fee = Fee::from_amount_and_gas(
            Coin {
                denom: "uvirt".parse().unwrap(),
                amount: 50_000,
            },
            gas,
        );
        let auth = SignerInfo::single_direct(Some(signer.sk.public_key()), account.sequence)
            .auth_info(fee);
        let doc = SignDoc::new(
            &body,
            &auth,
            &CHAIN.parse().unwrap(),
            account.account_number,
        )
        .unwrap();
        let bytes = doc.sign(&signer.sk).unwrap().to_bytes().unwrap();
        let block = self.block();
        let out = self
            .app
            .execute_tx(&mut self.state, &block, &bytes, Mode::Deliver);
        assert_provable(&self.state);
        out
    }

    pub fn ok(&mut self, signer: &Key, msgs: Vec<Any>) -> TxOutcome {
        let out = self.tx(signer, msgs);
        assert_eq!(out.code, 0, "{}", out.log);
        out
    }

    /// Fails with `code` in `codespace`, mentions `needle`, and leaves x/hpc state unchanged.
    pub fn fails(
        &mut self,
        signer: &Key,
        msgs: Vec<Any>,
        codespace: &str,
        code: u32,
        needle: &str,
    ) {
        let before = hpc_state_only(&self.state);
        let out = self.tx(signer, msgs);
        assert_eq!(
            (out.codespace.as_str(), out.code),
            (codespace, code),
            "{}",
            out.log
        );
        assert!(
            out.log.contains(needle),
            "{:?} should mention {needle:?}",
            out.log
        );
        assert_eq!(
            hpc_state_only(&self.state),
            before,
            "a failed tx changed x/hpc state"
        );
    }

    pub fn query<Req: Message, Resp: Message + Default>(&self, method: &str, req: Req) -> Resp {
        let path = format!("/virtengine.hpc.v1.Query/{method}");
        let bytes = self
            .app
            .query(
                &path,
                &req.encode_to_vec(),
                &self.state,
                QueryClock {
                    height: self.height,
                    block_time_seconds: self.time,
                },
            )
            .unwrap();
        Resp::decode(bytes.as_slice()).unwrap()
    }
}

/// Every stored value can be proven: ICS-23 cannot cover an empty value, so one would
/// make its key unprovable and break proofs of absence next to it.
fn assert_provable(state: &BTreeMap<Vec<u8>, Vec<u8>>) {
    if let Some((key, _)) = state.iter().find(|(_, value)| value.is_empty()) {
        panic!("empty value stored at {}", String::from_utf8_lossy(key));
    }
}

pub fn hpc_state_only(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    state
        .iter()
        .filter(|(k, _)| k.starts_with(b"hpc/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn event<'a>(out: &'a TxOutcome, kind: &str) -> &'a Event {
    out.events
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {:?}", out.events))
}

/// An attribute of the tx's `hpc_job_scheduled` event (`job_id`, `decision_id`, …).
pub fn scheduled(out: &TxOutcome, key: &str) -> String {
    event(out, "hpc_job_scheduled")
        .get(key)
        .unwrap_or_else(|| panic!("hpc_job_scheduled has no {key}"))
        .to_string()
}

pub fn register(provider: &Key, id: &str, nodes: u32, latency_ms: u32, price: u64) -> Any {
    to_any(&MsgRegisterCluster {
        provider: provider.addr.to_string(),
        cluster_id: id.into(),
        region: "eu-west".into(),
        total_nodes: nodes,
        available_nodes: nodes,
        gpus_per_node: 4,
        gpu_type: "a100".into(),
        price_per_node_hour: price,
        queue_depth: 5,
        latency_ms,
        jitter_ms: 2,
        packet_loss_bps: 0,
    })
}

pub fn submit(owner: &Key, nodes: u32) -> Any {
    to_any(&MsgSubmitJob {
        owner: owner.addr.to_string(),
        requirements: Some(JobRequirements {
            nodes,
            gpus_per_node: 1,
            gpu_type: "a100".into(),
            max_runtime_seconds: 3600,
            allowed_regions: vec![],
        }),
        policy: None,
        correlation_id: String::new(),
        workload: Some(hpc_proto::virtengine::hpc::v1::JobWorkload {
            source: Some(
                hpc_proto::virtengine::hpc::v1::job_workload::Source::InlineScript(
                    b"#!/bin/sh\necho hello\n".to_vec(),
                ),
            ),
            ..Default::default()
        }),
    })
}

pub fn audit(
    provider: &Key,
    record_id: &str,
    job: &str,
    decision: &str,
    cluster: &str,
    status: AuditStatus,
) -> Any {
    to_any(&MsgRecordRoutingAudit {
        provider: provider.addr.to_string(),
        records: vec![RoutingAuditRecord {
            record_id: record_id.into(),
            job_id: job.into(),
            scheduling_decision_id: decision.into(),
            actual_cluster_id: cluster.into(),
            status: status as i32,
            is_fallback: status == AuditStatus::Fallback,
            reason: "test".into(),
            enforcement_mode: EnforcementMode::Strict as i32,
            ..Default::default()
        }],
    })
}

/// A heartbeat: the cluster stays ACTIVE and healthy.
pub fn heartbeat(provider: &Key, cluster_id: &str) -> Any {
    to_any(&MsgUpdateClusterStatus {
        provider: provider.addr.to_string(),
        cluster_id: cluster_id.into(),
        state: ClusterState::Active as i32,
        available_nodes: 8,
        queue_depth: 5,
        latency_ms: 10,
        jitter_ms: 2,
        packet_loss_bps: 0,
        health: ClusterHealth::Healthy as i32,
        price_per_node_hour: None,
        total_nodes: None,
    })
}

pub fn update_params(authority: &Key, params: Params) -> Any {
    to_any(&MsgUpdateParams {
        authority: authority.addr.to_string(),
        params: Some(params),
    })
}

pub fn cancel(owner: &Key, job_id: impl Into<String>) -> Any {
    to_any(&MsgCancelJob {
        owner: owner.addr.to_string(),
        job_id: job_id.into(),
    })
}

pub fn violation(reporter: &Key, provider: &Key, job: &str, vtype: ViolationType) -> Any {
    to_any(&MsgReportRoutingViolation {
        reporter: reporter.addr.to_string(),
        violations: vec![RoutingViolation {
            job_id: job.into(),
            violation_type: vtype as i32,
            provider_address: provider.addr.to_string(),
            actual_cluster_id: "cluster-a".into(),
            details: "test".into(),
            ..Default::default()
        }],
    })
}

pub struct World {
    pub chain: Chain,
    pub alice: Key,
    pub p1: Key,
    pub p2: Key,
    pub authority: Key,
}

/// Two clusters: cluster-a (provider1, fast) and cluster-b (provider2, slow).
pub fn world() -> World {
    let (alice, p1, p2, authority) = (key(1), key(2), key(3), key(4));
    let mut chain = Chain::new(&[&alice, &p1, &p2, &authority], &authority);
    chain.ok(&p1, vec![register(&p1, "cluster-a", 8, 10, 1_000_000)]);
    chain.ok(&p2, vec![register(&p2, "cluster-b", 8, 150, 1_000_000)]);
    World {
        chain,
        alice,
        p1,
        p2,
        authority,
    }
}
