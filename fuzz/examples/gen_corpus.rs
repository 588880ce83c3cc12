//! Writes the generated part of the seed corpora under fuzz/corpus/<target>/ from the
//! seeded chain of `hpc_fuzz::world()`: real signed txs (the seeding txs, which replay
//! with a stale sequence, and txs valid on the final state), each x/hpc message, a request
//! for every query path, the genesis before and after seeding, and `/block_results`
//! answers carrying the seeding txs' events. Prints each tx's DeliverTx code on the
//! final state. Files are named `gen-*`; hand-picked seeds (configs, CometBFT fixtures)
//! are kept beside them.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus

use std::path::{Path, PathBuf};

use cosmos_sdk_proto::cosmos::auth::v1beta1::QueryAccountRequest;
use cosmos_sdk_proto::cosmos::bank::v1beta1::{
    MsgSend, QueryAllBalancesRequest, QueryBalanceRequest, QueryTotalSupplyRequest,
};
use cosmos_sdk_proto::cosmos::base::query::v1beta1::PageRequest;
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmos_sdk_proto::cosmos::tx::v1beta1::SimulateRequest;
use cosmos_sdk_proto::Any;
use hpc_fuzz::hpc_state::hpc::HpcMsg;
use hpc_fuzz::hpc_state::tx::Mode;
use hpc_fuzz::hpc_store::Delta;
use hpc_fuzz::{sign_tx, submit, world, HPC_MSG_TYPES, QUERY_PATHS};
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::*;
use prost::Message;

fn dir(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let path = dir(target).join(format!("gen-{name}"));
    std::fs::write(&path, bytes).expect("write seed");
}

fn main() {
    let w = world();
    let (alice, p1, authority) = (&w.alice, &w.p1, &w.authority);
    let prov1 = w.provider_key(&w.job1_provider);
    let prov2 = w.provider_key(&w.job2_provider);

    // x/hpc messages valid on the final state (one per type) and a bank send.
    let msgs: Vec<(&str, &hpc_fuzz::Key, Any)> = vec![
        (
            "register_cluster",
            p1,
            hpc_fuzz::register(p1, "cluster-c", 4, 40),
        ),
        (
            "update_cluster_status",
            p1,
            to_any(&MsgUpdateClusterStatus {
                provider: p1.address(),
                cluster_id: "cluster-a".into(),
                state: ClusterState::Active as i32,
                available_nodes: 6,
                queue_depth: 3,
                latency_ms: 12,
                jitter_ms: 1,
                packet_loss_bps: 10,
                health: ClusterHealth::Healthy as i32,
                price_per_node_hour: Some(900_000),
                ..Default::default()
            }),
        ),
        (
            "deregister_cluster",
            &w.p2,
            to_any(&MsgDeregisterCluster {
                provider: w.p2.address(),
                cluster_id: "cluster-b".into(),
            }),
        ),
        ("submit_job", alice, {
            let mut m = MsgSubmitJob::decode(submit(alice, 2).value.as_slice()).unwrap();
            m.policy = Some(PlacementPolicy {
                mode: PolicyMode::Enforce as i32,
                weights: Some(ScoringWeights {
                    latency_bps: 4_000,
                    price_bps: 3_000,
                    reputation_bps: 2_000,
                    queue_bps: 1_000,
                }),
                min_reputation_bps: Some(1_000),
                ..Default::default()
            });
            m.correlation_id = "corr-1".into();
            to_any(&m)
        }),
        (
            "cancel_job",
            alice,
            to_any(&MsgCancelJob {
                owner: alice.address(),
                job_id: w.job2.clone(),
            }),
        ),
        (
            "request_reschedule",
            alice,
            to_any(&MsgRequestReschedule {
                requester: alice.address(),
                job_id: w.job2.clone(),
                reason: "fuzz seed".into(),
                ..Default::default()
            }),
        ),
        (
            "record_routing_audit",
            prov2,
            to_any(&MsgRecordRoutingAudit {
                provider: prov2.address(),
                records: vec![RoutingAuditRecord {
                    record_id: "rec-seed-2".into(),
                    job_id: w.job2.clone(),
                    scheduling_decision_id: w.decision2.clone(),
                    actual_cluster_id: w.job2_cluster.clone(),
                    status: AuditStatus::Approved as i32,
                    reason: "seed".into(),
                    enforcement_mode: EnforcementMode::Strict as i32,
                    ..Default::default()
                }],
            }),
        ),
        (
            "report_routing_violation",
            authority,
            to_any(&MsgReportRoutingViolation {
                reporter: authority.address(),
                violations: vec![RoutingViolation {
                    violation_id: "vio-seed-2".into(),
                    job_id: w.job1.clone(),
                    decision_id: w.decision1.clone(),
                    violation_type: ViolationType::StaleDecision as i32,
                    provider_address: w.job1_provider.clone(),
                    details: "seed".into(),
                    ..Default::default()
                }],
            }),
        ),
        (
            "resolve_routing_violation",
            authority,
            to_any(&MsgResolveRoutingViolation {
                authority: authority.address(),
                violation_id: w.violation_id.clone(),
                resolution: "resolved by the fuzz seed".into(),
            }),
        ),
        (
            "report_job_status",
            prov1,
            to_any(&MsgReportJobStatus {
                provider: prov1.address(),
                job_id: w.job1.clone(),
                status: JobState::Running as i32,
                message: "started".into(),
                exit_code: None,
                local_job_id: String::new(),
            }),
        ),
        ("update_params", authority, {
            let (params, _) = {
                let resp = w
                    .app
                    .query(
                        "/virtengine.hpc.v1.Query/Params",
                        &[],
                        &w.state,
                        w.clock,
                    )
                    .expect("params");
                let r = QueryParamsResponse::decode(resp.as_slice()).unwrap();
                (r.params.unwrap(), r.authority)
            };
            let mut params = params;
            params.violation_alert_threshold += 1;
            to_any(&MsgUpdateParams {
                authority: authority.address(),
                params: Some(params),
            })
        }),
        (
            "bank_send",
            alice,
            to_any(&MsgSend {
                from_address: alice.address(),
                to_address: w.p2.address(),
                amount: vec![Coin {
                    denom: "uvirt".into(),
                    amount: "1234".into(),
                }],
            }),
        ),
    ];

    for (name, signer, any) in &msgs {
        let tx = sign_tx(&w.state, signer, vec![any.clone()], None);
        let mut d = Delta::new(&w.state);
        let out = w.app.execute_tx(&mut d, &w.block, &tx, Mode::Deliver);
        println!(
            "tx_pipeline gen-tx-{name}: DeliverTx code {} {}",
            out.code, out.log
        );
        write("tx_pipeline", &format!("tx-{name}"), &tx);
        if let Some(kind) = HPC_MSG_TYPES.iter().position(|t| *t == any.type_url) {
            let msg = match HpcMsg::decode(any) {
                Some(Ok(m)) => m,
                other => panic!("{name}: {other:?}"),
            };
            msg.validate_basic().expect(name);
            let mut input = vec![kind as u8, 0];
            input.extend_from_slice(&any.value);
            write("hpc_messages", name, &input);
        }
    }
    // Two messages in one tx; a tx with a stale sequence (the first seeding tx replayed).
    let multi = sign_tx(
        &w.state,
        alice,
        vec![msgs[11].2.clone(), msgs[3].2.clone()],
        None,
    );
    write("tx_pipeline", "tx-multi-send-and-submit", &multi);
    for (name, tx, _) in &w.history {
        write("tx_pipeline", &format!("tx-replayed-{name}"), tx);
    }
    // hpc_messages with the id fix-ups on: empty bodies of each type with signer = job
    // 1's provider / alice / authority and the seeded ids.
    for (kind, flags) in [
        (1u8, 0b0010_0101u8),
        (4, 0b0001_0001),
        (5, 0b0001_0001),
        (6, 0b0110_1101),
        (7, 0b0110_1100),
        (8, 0b0100_0100),
        (9, 0b0000_1101),
    ] {
        write(
            "hpc_messages",
            &format!("fixup-{kind}-{flags:08b}"),
            &[kind, flags],
        );
    }

    // One request per query path.
    let page = Some(PageRequest {
        key: vec![],
        offset: 0,
        limit: 10,
        count_total: true,
        reverse: false,
    });
    let simulate = SimulateRequest {
        tx_bytes: sign_tx(&w.state, alice, vec![msgs[3].2.clone()], None),
        ..Default::default()
    };
    let requests: Vec<(&str, Vec<u8>)> = vec![
        (
            "/cosmos.auth.v1beta1.Query/Account",
            QueryAccountRequest {
                address: alice.address(),
            }
            .encode_to_vec(),
        ),
        ("/cosmos.auth.v1beta1.Query/Params", vec![]),
        (
            "/cosmos.bank.v1beta1.Query/Balance",
            QueryBalanceRequest {
                address: alice.address(),
                denom: "uvirt".into(),
            }
            .encode_to_vec(),
        ),
        (
            "/cosmos.bank.v1beta1.Query/AllBalances",
            QueryAllBalancesRequest {
                address: alice.address(),
                pagination: page.clone(),
                resolve_denom: false,
            }
            .encode_to_vec(),
        ),
        (
            "/cosmos.bank.v1beta1.Query/TotalSupply",
            QueryTotalSupplyRequest { pagination: page.clone() }.encode_to_vec(),
        ),
        ("/cosmos.tx.v1beta1.Service/Simulate", simulate.encode_to_vec()),
        ("/virtengine.hpc.v1.Query/Params", vec![]),
        (
            "/virtengine.hpc.v1.Query/Cluster",
            QueryClusterRequest {
                cluster_id: "cluster-a".into(),
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/Clusters",
            QueryClustersRequest {
                provider_address: p1.address(),
                state: ClusterState::Active as i32,
                pagination: page.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/Job",
            QueryJobRequest {
                job_id: w.job1.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/Jobs",
            QueryJobsRequest {
                owner: alice.address(),
                provider_address: w.job1_provider.clone(),
                state: JobState::Unspecified as i32,
                pagination: page.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/SchedulingDecision",
            QuerySchedulingDecisionRequest {
                decision_id: w.decision1.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/SchedulingDecisionByJob",
            QuerySchedulingDecisionByJobRequest {
                job_id: w.job2.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/ExplainDecision",
            QueryExplainDecisionRequest {
                decision_id: w.decision1.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/SimulateSchedule",
            QuerySimulateScheduleRequest {
                requirements: Some(JobRequirements {
                    nodes: 2,
                    gpus_per_node: 1,
                    gpu_type: "a100".into(),
                    max_runtime_seconds: 60,
                    allowed_regions: vec!["eu-west".into()],
                }),
                policy: None,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/RoutingAuditRecord",
            QueryRoutingAuditRecordRequest {
                record_id: w.record_id.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/RoutingAuditRecords",
            QueryRoutingAuditRecordsRequest {
                job_id: w.job1.clone(),
                pagination: page.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/RoutingViolation",
            QueryRoutingViolationRequest {
                violation_id: w.violation_id.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/RoutingViolations",
            QueryRoutingViolationsRequest {
                provider_address: w.job2_provider.clone(),
                pagination: page.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/virtengine.hpc.v1.Query/ViolationCount",
            QueryViolationCountRequest {
                provider_address: w.job2_provider.clone(),
            }
            .encode_to_vec(),
        ),
    ];
    for (path, req) in &requests {
        let index = QUERY_PATHS.iter().position(|p| p == path).expect(path);
        let answer = w.app.query(path, req, &w.state, w.clock);
        println!(
            "query_router {path}: {}",
            match &answer {
                Ok(b) => format!("ok, {} bytes", b.len()),
                Err(e) => format!("error {e}"),
            }
        );
        let mut input = vec![index as u8];
        input.extend_from_slice(req);
        let name = path.rsplit('/').next().unwrap();
        let service = if path.contains("hpc") { "hpc" } else { "sdk" };
        write("query_router", &format!("{service}-{name}"), &input);
    }
    // A free-form path (selector 0xff, NUL, request).
    let mut free = vec![0xff];
    free.extend_from_slice(b"/virtengine.hpc.v1.Query/Job\0");
    free.extend_from_slice(
        &QueryJobRequest {
            job_id: w.job1.clone(),
        }
        .encode_to_vec(),
    );
    write("query_router", "free-path-job", &free);

    // Genesis: the seeding genesis, and the export of the seeded chain.
    let initial = hpc_fuzz::genesis_value(&[&w.alice, &w.p1, &w.p2, &w.authority], authority);
    write(
        "genesis_import",
        "initial.json",
        serde_json::to_string_pretty(&initial).unwrap().as_bytes(),
    );
    let exported = serde_json::to_string_pretty(&w.app.export(&w.state)).unwrap();
    write("genesis_import", "exported.json", exported.as_bytes());
    // Structured-mutation mode (first byte 0): a few edits of the exported genesis.
    write(
        "genesis_import",
        "mutate-1",
        &[0, 3, 17, 200, 4, 99, 1, 250, 7, 8, 9],
    );

    // /block_results of each seeding block, as CometBFT 0.38 answers it.
    for (height, (name, _, out)) in w.history.iter().enumerate() {
        let events: Vec<_> = out
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "type": e.kind,
                    "attributes": e.attributes.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v, "index": true})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let answer = serde_json::json!({
            "jsonrpc": "2.0",
            "id": 7,
            "result": {
                "height": (height + 1).to_string(),
                "txs_results": [{
                    "code": out.code,
                    "data": base64_std(&out.data),
                    "log": out.log,
                    "info": "",
                    "gas_wanted": out.gas_wanted.to_string(),
                    "gas_used": out.gas_used.to_string(),
                    "events": events,
                    "codespace": out.codespace,
                }],
                "finalize_block_events": [],
                "validator_updates": null,
                "consensus_param_updates": null,
                "app_hash": "5A3B0D6E8F1C2A4B6D8E0F1A3C5E7092B4D6F8A0C2E4061830A5C7E9F1B3D5E7",
            }
        });
        write(
            "block_events",
            &format!("block_results-{name}.json"),
            serde_json::to_string_pretty(&answer).unwrap().as_bytes(),
        );
    }
    // Chain rejections as the enforcer's outbox classifies them.
    write(
        "block_events",
        "simulate-error.txt",
        b"simulation failed (codespace sdk, code 32): account sequence mismatch, expected 7, got 6",
    );
    println!("seeds written under {}", dir("").display());
}

fn base64_std(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
