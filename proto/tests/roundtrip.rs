//! Round-trip, JSON-mapping, `Any` and descriptor tests of the generated `virtengine.hpc.v1` code.
//!
//! Every fixture is checked against the package's own descriptor: each field of each message
//! type reached must hold a non-default value somewhere in the fixture, so a field added to a
//! `.proto` file without updating the fixtures (and thus without being round-tripped) fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use hpc_proto::cosmos_sdk_proto::cosmos::base::query::v1beta1::{PageRequest, PageResponse};
use hpc_proto::cosmos_sdk_proto::{Any, Timestamp};
use hpc_proto::virtengine::hpc::v1::*;
use hpc_proto::{from_any, to_any, type_url, FILE_DESCRIPTOR_SET};
use prost::{Message, Name};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Fixtures: every field set to a non-default value.
// ---------------------------------------------------------------------------------------------

const PROVIDER: &str = "virtengine1provider0qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq7m3k0";
const OWNER: &str = "virtengine1owner0qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqx9sd";
const AUTHORITY: &str = "virtengine1authority0qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqg5l2";

fn ts(seconds: i64, nanos: i32) -> Timestamp {
    Timestamp { seconds, nanos }
}

fn weights() -> ScoringWeights {
    ScoringWeights {
        latency_bps: 4000,
        price_bps: 3000,
        reputation_bps: 2000,
        queue_bps: 1000,
    }
}

fn requirements() -> JobRequirements {
    JobRequirements {
        nodes: 4,
        gpus_per_node: 8,
        gpu_type: "a100".into(),
        max_runtime_seconds: 86_400,
        allowed_regions: vec!["eu-west".into(), "us-east".into()],
    }
}

fn policy() -> PlacementPolicy {
    PlacementPolicy {
        mode: PolicyMode::Permissive as i32,
        max_latency_ms: Some(100),
        max_jitter_ms: Some(20),
        max_price_per_node_hour: Some(5_000_000),
        min_reputation_bps: Some(9_000),
        max_queue_depth: Some(10),
        max_packet_loss_bps: Some(50),
        weights: Some(weights()),
    }
}

fn cluster() -> Cluster {
    Cluster {
        cluster_id: "hpc-cluster-1".into(),
        provider_address: PROVIDER.into(),
        region: "eu-west".into(),
        state: ClusterState::Active as i32,
        total_nodes: 64,
        available_nodes: 40,
        reserved_nodes: 4,
        gpus_per_node: 8,
        gpu_type: "a100".into(),
        queue_depth: 3,
        latency_ms: 12,
        jitter_ms: 2,
        packet_loss_bps: 5,
        price_per_node_hour: 2_500_000,
        health: ClusterHealth::Degraded as i32,
        reputation_bps: 8_750,
        last_heartbeat_height: 1_200,
        last_heartbeat_time: Some(ts(1_705_314_600, 0)),
        registered_height: 10,
        completed_jobs: 42,
    }
}

fn workload() -> JobWorkload {
    JobWorkload {
        source: Some(job_workload::Source::InlineScript(
            b"#!/bin/sh\necho hello\n".to_vec(),
        )),
        env: vec![EnvVar {
            name: "STEPS".into(),
            value: "100".into(),
        }],
        partition: "gpu".into(),
        output_name: "train".into(),
    }
}

fn job() -> Job {
    Job {
        job_id: "hpc-job-456".into(),
        owner: OWNER.into(),
        requirements: Some(requirements()),
        policy: Some(policy()),
        state: JobState::Routed as i32,
        current_decision_id: "hpc-decision-789".into(),
        routed_cluster_id: "hpc-cluster-1".into(),
        correlation_id: "corr-0001".into(),
        created_height: 1_195,
        created_time: Some(ts(1_705_314_570, 500_000_000)),
        updated_height: 1_200,
        provider_address: PROVIDER.into(),
        status_message: "routed by enforcer".into(),
        updated_time: Some(ts(1_705_314_600, 0)),
        workload: Some(workload()),
        exit_code: Some(-1),
        local_job_id: "4711".into(),
    }
}

fn decision() -> SchedulingDecision {
    SchedulingDecision {
        decision_id: "hpc-decision-789".into(),
        job_id: "hpc-job-456".into(),
        selected_cluster_id: "hpc-cluster-1".into(),
        selected_provider: PROVIDER.into(),
        score_bps: 6_125,
        candidates: vec![
            CandidateEvaluation {
                cluster_id: "hpc-cluster-1".into(),
                provider: PROVIDER.into(),
                eligible: true,
                score_bps: 6_125,
                breakdown: Some(ScoreBreakdown {
                    latency_bps: 9_400,
                    price_bps: 7_500,
                    reputation_bps: 8_750,
                    queue_bps: 9_700,
                    health_multiplier_bps: 7_000,
                    weighted_total_bps: 8_750,
                }),
                reason: IneligibleReason::Unspecified as i32,
                observed_value: String::new(),
                threshold: String::new(),
            },
            CandidateEvaluation {
                cluster_id: "hpc-cluster-2".into(),
                provider: PROVIDER.into(),
                eligible: false,
                score_bps: 0,
                breakdown: None,
                reason: IneligibleReason::LatencyExceeded as i32,
                observed_value: "250".into(),
                threshold: "100".into(),
            },
        ],
        policy_hash: vec![0xde, 0xad, 0xbe, 0xef],
        created_height: 1_195,
        created_time: Some(ts(1_705_314_570, 500_000_000)),
        previous_decision_id: "hpc-decision-788".into(),
        is_fallback: true,
        fallback_reason: "no cluster within max_latency_ms".into(),
        relaxed_constraints: vec!["max_latency_ms".into()],
        reschedule_reason: "cluster unavailable".into(),
        excluded_cluster_ids: vec!["hpc-cluster-3".into()],
        total_candidates: 3,
        weights: Some(weights()),
        reschedule_kind: RescheduleKind::ProviderFallback as i32,
        requested_by: PROVIDER.into(),
        requester_role: RequesterRole::Provider as i32,
    }
}

fn audit_record() -> RoutingAuditRecord {
    RoutingAuditRecord {
        record_id: "routing-audit-123".into(),
        job_id: "hpc-job-456".into(),
        scheduling_decision_id: "hpc-decision-789".into(),
        expected_cluster_id: "cluster-1".into(),
        actual_cluster_id: "cluster-2".into(),
        status: AuditStatus::Fallback as i32,
        reason: "Job routed to fallback cluster".into(),
        is_fallback: true,
        decision_age_blocks: 5,
        decision_age_seconds: 30,
        provider_address: PROVIDER.into(),
        created_at: Some(ts(1_705_314_600, 0)),
        enforcement_mode: EnforcementMode::Permissive as i32,
        fallback_reason: "scheduled cluster unavailable".into(),
        violation_id: "hpc-violation-7".into(),
        created_height: 1_201,
        reason_code: "stale_decision".into(),
    }
}

fn violation() -> RoutingViolation {
    RoutingViolation {
        violation_id: "hpc-violation-7".into(),
        job_id: "hpc-job-456".into(),
        decision_id: "hpc-decision-789".into(),
        violation_type: ViolationType::ClusterMismatch as i32,
        severity: 5,
        expected_cluster_id: "cluster-1".into(),
        actual_cluster_id: "cluster-2".into(),
        provider_address: PROVIDER.into(),
        details: "approved record for a different cluster".into(),
        reporter: AUTHORITY.into(),
        created_height: 1_201,
        created_time: Some(ts(1_705_314_606, 0)),
        resolved: true,
        resolution: "operator error, acknowledged".into(),
        resolved_height: 1_300,
        resolved_time: Some(ts(1_705_315_200, 0)),
        correlation_id: "corr-0001".into(),
    }
}

fn params() -> Params {
    Params {
        routing_enforcement_enabled: true,
        routing_enforcement_mode: EnforcementMode::Strict as i32,
        max_decision_age_blocks: 100,
        max_decision_age_seconds: 600,
        allow_provider_fallback: true,
        violation_alert_threshold: 5,
        cluster_heartbeat_timeout_seconds: 120,
        default_weights: Some(weights()),
        reference_price_per_node_hour: 10_000_000,
        audit_retention_blocks: 1_000_000,
        decision_retention_blocks: 1_000_000,
        max_candidates_per_decision: 32,
        max_batch_size: 50,
        reputation_prior_bps: 7_000,
        reputation_window_blocks: 100_000,
        max_clusters_evaluated: 256,
        max_inline_script_bytes: 16_384,
        max_workload_env_vars: 32,
        max_workload_env_bytes: 8_192,
        max_workload_args: 64,
    }
}

fn genesis() -> GenesisState {
    GenesisState {
        params: Some(params()),
        authority: AUTHORITY.into(),
        clusters: vec![cluster()],
        jobs: vec![job()],
        decisions: vec![decision()],
        audit_records: vec![audit_record()],
        violations: vec![violation()],
        next_job_sequence: 457,
        next_decision_sequence: 790,
        next_violation_sequence: 8,
        provider_violation_counts: vec![ProviderViolationCount {
            provider_address: PROVIDER.into(),
            unresolved_count: 6,
            total_count: 9,
            alert_active: true,
        }],
        prune_cursors: vec![PruneCursor {
            queue: "decisions".into(),
            next_key: b"hpc/px/d/\0\0\0\0\0\0\x04\xd2hpc-decision-7".to_vec(),
        }],
    }
}

fn page_request() -> PageRequest {
    PageRequest {
        key: vec![1, 2, 3],
        offset: 0,
        limit: 50,
        count_total: false,
        reverse: true,
    }
}

fn page_response() -> PageResponse {
    PageResponse {
        next_key: vec![4, 5, 6],
        total: 120,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// All message descriptors of the package, by fully-qualified name (".virtengine.hpc.v1.X").
fn package_messages() -> BTreeMap<String, DescriptorProto> {
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let mut out = BTreeMap::new();
    for file in fds
        .file
        .iter()
        .filter(|f| f.package() == "virtengine.hpc.v1")
    {
        for msg in &file.message_type {
            assert!(
                msg.nested_type.is_empty(),
                "nested messages are not expected in {}",
                msg.name()
            );
            out.insert(format!(".virtengine.hpc.v1.{}", msg.name()), msg.clone());
        }
    }
    out
}

/// Whether a proto3-JSON value is the default of its field (absent on the wire).
fn is_default_json(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "0" || s.ends_with("_UNSPECIFIED"),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// Records which fields of which package message types hold a non-default value in `json`.
fn collect_coverage(
    messages: &BTreeMap<String, DescriptorProto>,
    type_name: &str,
    json: &Value,
    covered: &mut BTreeMap<String, BTreeSet<String>>,
) {
    let Some(desc) = messages.get(type_name) else {
        return; // extern type (PageRequest, Timestamp): not ours to check
    };
    let obj = json
        .as_object()
        .unwrap_or_else(|| panic!("{type_name} must serialize as a JSON object, got {json}"));
    covered.entry(type_name.to_string()).or_default();
    for field in &desc.field {
        let Some(value) = obj.get(field.name()) else {
            continue;
        };
        if !is_default_json(value) {
            covered
                .get_mut(type_name)
                .unwrap()
                .insert(field.name().to_string());
        }
        if field.r#type() == Type::Message {
            let nested: Vec<&Value> = if field.label() == Label::Repeated {
                value
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default()
            } else if value.is_null() {
                vec![]
            } else {
                vec![value]
            };
            for n in nested {
                collect_coverage(messages, field.type_name(), n, covered);
            }
        }
    }
}

/// Asserts that every field of every package message reached from `msg` holds a non-default
/// value somewhere in `msg` (so round-tripping `msg` exercises every field).
fn assert_fully_populated<T: Name + Serialize>(msg: &T) {
    let messages = package_messages();
    let json = serde_json::to_value(msg).expect("serialize");
    let mut covered = BTreeMap::new();
    let root = format!(".{}", T::full_name());
    assert!(messages.contains_key(&root), "{root} is a package message");
    collect_coverage(&messages, &root, &json, &mut covered);
    for (type_name, fields) in &covered {
        let all = &messages[type_name].field;
        // A oneof holds one member per message: one set member covers the oneof.
        let oneof_covered = |index: i32| {
            all.iter()
                .any(|f| f.oneof_index == Some(index) && fields.contains(f.name()))
        };
        let missing: Vec<&str> = all
            .iter()
            .filter(|f| !fields.contains(f.name()))
            .filter(|f| {
                !f.oneof_index
                    .is_some_and(|i| !f.proto3_optional() && oneof_covered(i))
            })
            .map(|f| f.name())
            .collect();
        assert!(
            missing.is_empty(),
            "fixture for {root}: fields of {type_name} never set: {missing:?}"
        );
    }
}

/// Binary encode -> decode round trip, plus stable re-encoding and full population.
fn assert_binary_roundtrip<T>(msg: &T)
where
    T: Message + Default + PartialEq + Debug + Name + Serialize,
{
    assert_fully_populated(msg);
    let bytes = msg.encode_to_vec();
    assert!(!bytes.is_empty(), "{} encodes to bytes", T::full_name());
    assert_eq!(bytes.len(), msg.encoded_len());
    let decoded = T::decode(bytes.as_slice()).expect("decode");
    assert_eq!(&decoded, msg, "{} binary round trip", T::full_name());
    assert_eq!(
        decoded.encode_to_vec(),
        bytes,
        "re-encoding is byte-identical"
    );
    assert_ne!(decoded, T::default());
}

/// JSON serialize -> deserialize round trip; returns the JSON value.
fn assert_json_roundtrip<T>(msg: &T) -> Value
where
    T: PartialEq + Debug + Name + Serialize + DeserializeOwned,
{
    let text = serde_json::to_string_pretty(msg).expect("serialize");
    let back: T = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(&back, msg, "{} JSON round trip", T::full_name());
    serde_json::from_str(&text).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Binary round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn state_types_binary_roundtrip() {
    assert_binary_roundtrip(&cluster());
    assert_binary_roundtrip(&job());
    assert_binary_roundtrip(&decision());
    assert_binary_roundtrip(&audit_record());
    assert_binary_roundtrip(&violation());
    assert_binary_roundtrip(&params());
    assert_binary_roundtrip(&genesis());
}

#[test]
fn every_msg_binary_roundtrip() {
    assert_binary_roundtrip(&MsgRegisterCluster {
        provider: PROVIDER.into(),
        cluster_id: "hpc-cluster-1".into(),
        region: "eu-west".into(),
        total_nodes: 64,
        available_nodes: 64,
        gpus_per_node: 8,
        gpu_type: "a100".into(),
        price_per_node_hour: 2_500_000,
        queue_depth: 1,
        latency_ms: 12,
        jitter_ms: 2,
        packet_loss_bps: 5,
    });
    assert_binary_roundtrip(&MsgUpdateClusterStatus {
        provider: PROVIDER.into(),
        cluster_id: "hpc-cluster-1".into(),
        state: ClusterState::Draining as i32,
        available_nodes: 10,
        queue_depth: 7,
        latency_ms: 15,
        jitter_ms: 3,
        packet_loss_bps: 9,
        health: ClusterHealth::Healthy as i32,
        price_per_node_hour: Some(2_000_000),
        total_nodes: Some(72),
    });
    assert_binary_roundtrip(&MsgDeregisterCluster {
        provider: PROVIDER.into(),
        cluster_id: "hpc-cluster-1".into(),
    });
    assert_binary_roundtrip(&MsgSubmitJob {
        owner: OWNER.into(),
        requirements: Some(requirements()),
        policy: Some(policy()),
        correlation_id: "corr-0001".into(),
        workload: Some(workload()),
    });
    for source in [
        job_workload::Source::ScriptRef(ContentAddress {
            uri: "https://scripts.example/run.sh".into(),
            sha256: "ab".repeat(32),
            size_bytes: 120,
        }),
        job_workload::Source::Container(ContainerWorkload {
            image: "registry.example/app@sha256:00".into(),
            command: vec!["python3".into(), "train.py".into()],
        }),
    ] {
        assert_binary_roundtrip(&JobWorkload {
            source: Some(source),
            ..workload()
        });
    }
    assert_binary_roundtrip(&MsgCancelJob {
        owner: OWNER.into(),
        job_id: "hpc-job-456".into(),
    });
    assert_binary_roundtrip(&MsgRequestReschedule {
        requester: OWNER.into(),
        job_id: "hpc-job-456".into(),
        reason: "decision stale".into(),
        excluded_cluster_ids: vec!["hpc-cluster-1".into(), "hpc-cluster-3".into()],
        kind: RescheduleKind::OwnerRequest as i32,
    });
    assert_binary_roundtrip(&MsgRecordRoutingAudit {
        provider: PROVIDER.into(),
        records: vec![audit_record(), audit_record()],
    });
    assert_binary_roundtrip(&MsgReportRoutingViolation {
        reporter: PROVIDER.into(),
        violations: vec![violation()],
    });
    assert_binary_roundtrip(&MsgResolveRoutingViolation {
        authority: AUTHORITY.into(),
        violation_id: "hpc-violation-7".into(),
        resolution: "false positive".into(),
    });
    assert_binary_roundtrip(&MsgReportJobStatus {
        provider: PROVIDER.into(),
        job_id: "hpc-job-456".into(),
        status: JobState::Failed as i32,
        message: "node failure".into(),
        exit_code: Some(137),
        local_job_id: "4711".into(),
    });
    assert_binary_roundtrip(&MsgUpdateParams {
        authority: AUTHORITY.into(),
        params: Some(params()),
    });
}

#[test]
fn msg_responses_binary_roundtrip() {
    assert_binary_roundtrip(&MsgRegisterClusterResponse {
        cluster_id: "hpc-cluster-1".into(),
    });
    assert_binary_roundtrip(&MsgSubmitJobResponse {
        job_id: "hpc-job-456".into(),
        decision_id: "hpc-decision-789".into(),
        cluster_id: "hpc-cluster-1".into(),
        provider: PROVIDER.into(),
        score_bps: 6_125,
        is_fallback: true,
        correlation_id: "corr-0001".into(),
    });
    assert_binary_roundtrip(&MsgRequestRescheduleResponse {
        decision_id: "hpc-decision-790".into(),
        previous_decision_id: "hpc-decision-789".into(),
        cluster_id: "hpc-cluster-2".into(),
        provider: PROVIDER.into(),
        score_bps: 5_000,
        is_fallback: true,
    });
    assert_binary_roundtrip(&MsgRecordRoutingAuditResponse {
        record_ids: vec!["routing-audit-123".into()],
        violation_ids: vec!["hpc-violation-8".into()],
    });
    assert_binary_roundtrip(&MsgReportRoutingViolationResponse {
        violation_ids: vec!["hpc-violation-7".into()],
    });
    // Empty responses encode to zero bytes and decode back to themselves.
    assert!(MsgUpdateParamsResponse {}.encode_to_vec().is_empty());
    assert_eq!(
        MsgCancelJobResponse::decode(&[][..]).unwrap(),
        MsgCancelJobResponse {}
    );
}

#[test]
fn query_types_binary_roundtrip() {
    assert_binary_roundtrip(&QueryClustersRequest {
        provider_address: PROVIDER.into(),
        state: ClusterState::Active as i32,
        pagination: Some(page_request()),
    });
    assert_binary_roundtrip(&QueryJobsResponse {
        jobs: vec![job()],
        pagination: Some(page_response()),
    });
    assert_binary_roundtrip(&QuerySchedulingDecisionByJobResponse {
        current: Some(decision()),
        history: vec![decision()],
    });
    assert_binary_roundtrip(&QueryExplainDecisionResponse {
        decision: Some(decision()),
        effective_weights: Some(weights()),
        effective_policy: Some(policy()),
        explanations: vec!["hpc-cluster-1 won with 6125 bps".into()],
    });
    assert_binary_roundtrip(&QuerySimulateScheduleRequest {
        requirements: Some(requirements()),
        policy: Some(policy()),
        excluded_cluster_ids: vec!["hpc-cluster-3".into()],
    });
    assert_binary_roundtrip(&QueryRoutingViolationsRequest {
        provider_address: PROVIDER.into(),
        violation_type: ViolationType::StaleDecision as i32,
        unresolved_only: true,
        job_id: "hpc-job-456".into(),
        decision_id: "hpc-decision-789".into(),
        pagination: Some(page_request()),
    });
    assert_binary_roundtrip(&QueryViolationCountResponse {
        provider_address: PROVIDER.into(),
        unresolved_count: 6,
        total_count: 9,
        alert_threshold: 5,
        threshold_exceeded: true,
    });
}

#[test]
fn proto3_optional_distinguishes_absent_from_zero() {
    let zero = PlacementPolicy {
        max_latency_ms: Some(0),
        ..Default::default()
    };
    let absent = PlacementPolicy::default();
    let zero_bytes = zero.encode_to_vec();
    assert!(!zero_bytes.is_empty(), "Some(0) is on the wire");
    assert!(absent.encode_to_vec().is_empty());
    assert_eq!(
        PlacementPolicy::decode(zero_bytes.as_slice())
            .unwrap()
            .max_latency_ms,
        Some(0)
    );
    let json = serde_json::to_value(zero).unwrap();
    assert_eq!(json["max_latency_ms"], 0);
    assert!(serde_json::to_value(absent)
        .unwrap()
        .get("max_latency_ms")
        .is_none());
}

// ---------------------------------------------------------------------------------------------
// JSON mapping
// ---------------------------------------------------------------------------------------------

#[test]
fn genesis_json_roundtrip() {
    let g = genesis();
    let json = assert_json_roundtrip(&g);

    // snake_case field names, every field emitted, canonical proto3 value mapping.
    assert_eq!(json["authority"], AUTHORITY);
    assert_eq!(json["next_job_sequence"], "457", "uint64 as string");
    assert_eq!(json["params"]["max_decision_age_blocks"], "100");
    assert_eq!(
        json["params"]["violation_alert_threshold"], 5,
        "uint32 as number"
    );
    assert_eq!(
        json["params"]["routing_enforcement_mode"],
        "ENFORCEMENT_MODE_STRICT"
    );
    assert_eq!(json["params"]["routing_enforcement_enabled"], true);
    assert_eq!(json["params"]["default_weights"]["latency_bps"], 4000);
    assert_eq!(json["clusters"][0]["state"], "CLUSTER_STATE_ACTIVE");
    assert_eq!(json["clusters"][0]["health"], "CLUSTER_HEALTH_DEGRADED");
    assert_eq!(
        json["clusters"][0]["last_heartbeat_time"],
        "2024-01-15T10:30:00Z"
    );
    assert_eq!(json["jobs"][0]["created_time"], "2024-01-15T10:29:30.5Z");
    assert_eq!(json["jobs"][0]["state"], "JOB_STATE_ROUTED");
    assert_eq!(json["jobs"][0]["policy"]["mode"], "POLICY_MODE_PERMISSIVE");
    assert_eq!(
        json["jobs"][0]["policy"]["max_price_per_node_hour"],
        "5000000"
    );
    assert_eq!(
        json["decisions"][0]["policy_hash"], "3q2+7w==",
        "bytes as base64"
    );
    assert_eq!(
        json["decisions"][0]["candidates"][1]["reason"],
        "INELIGIBLE_REASON_LATENCY_EXCEEDED"
    );
    // Default values are emitted too (like the seed's "is_fallback": false).
    assert_eq!(json["decisions"][0]["candidates"][0]["observed_value"], "");
    assert_eq!(
        json["decisions"][0]["candidates"][0]["reason"],
        "INELIGIBLE_REASON_UNSPECIFIED"
    );
    assert_eq!(
        json["violations"][0]["violation_type"],
        "VIOLATION_TYPE_CLUSTER_MISMATCH"
    );

    // No lowerCamelCase key anywhere.
    fn assert_snake(v: &Value, path: &str) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    assert!(
                        !k.chars().any(|c| c.is_ascii_uppercase()),
                        "key {path}.{k} is not snake_case"
                    );
                    assert_snake(child, &format!("{path}.{k}"));
                }
            }
            Value::Array(items) => items.iter().for_each(|i| assert_snake(i, path)),
            _ => {}
        }
    }
    assert_snake(&json, "$");

    // An empty genesis (all defaults) round-trips and deserializes from "{}".
    let empty: GenesisState = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, GenesisState::default());
    assert_json_roundtrip(&GenesisState::default());

    // Unknown fields are rejected (catches typos in hand-written genesis files).
    let err = serde_json::from_str::<GenesisState>(r#"{"authorty": "x"}"#).unwrap_err();
    assert!(err.to_string().contains("authorty"), "{err}");
}

/// The seed's audit record example, with the status in canonical proto3 JSON enum form.
const SEED_AUDIT_RECORD: &str = r#"{
  "record_id": "routing-audit-123",
  "job_id": "hpc-job-456",
  "scheduling_decision_id": "hpc-decision-789",
  "expected_cluster_id": "cluster-1",
  "actual_cluster_id": "cluster-1",
  "status": "AUDIT_STATUS_APPROVED",
  "reason": "Job routed to scheduled cluster",
  "is_fallback": false,
  "decision_age_blocks": 5,
  "decision_age_seconds": 30,
  "provider_address": "virtengine1...",
  "created_at": "2024-01-15T10:30:00Z"
}"#;

#[test]
fn routing_audit_record_json_matches_seed() {
    // Fully populated record round-trips.
    let full = audit_record();
    let json = assert_json_roundtrip(&full);
    assert_eq!(json["status"], "AUDIT_STATUS_FALLBACK");
    assert_eq!(json["enforcement_mode"], "ENFORCEMENT_MODE_PERMISSIVE");
    assert_eq!(json["decision_age_blocks"], "5");
    assert_eq!(json["created_at"], "2024-01-15T10:30:00Z");

    // The seed's example parses (numbers accepted for uint64) ...
    let seed: RoutingAuditRecord = serde_json::from_str(SEED_AUDIT_RECORD).unwrap();
    assert_eq!(seed.record_id, "routing-audit-123");
    assert_eq!(seed.job_id, "hpc-job-456");
    assert_eq!(seed.scheduling_decision_id, "hpc-decision-789");
    assert_eq!(seed.expected_cluster_id, "cluster-1");
    assert_eq!(seed.actual_cluster_id, "cluster-1");
    assert_eq!(seed.status(), AuditStatus::Approved);
    assert_eq!(seed.reason, "Job routed to scheduled cluster");
    assert!(!seed.is_fallback);
    assert_eq!(seed.decision_age_blocks, 5);
    assert_eq!(seed.decision_age_seconds, 30);
    assert_eq!(seed.provider_address, "virtengine1...");
    assert_eq!(seed.created_at, Some(ts(1_705_314_600, 0)));

    // ... and serializes with exactly the seed's field names (plus this chain's additions).
    let out = serde_json::to_value(&seed).unwrap();
    let keys: BTreeSet<&str> = out
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let seed_value: Value = serde_json::from_str(SEED_AUDIT_RECORD).unwrap();
    let seed_keys: BTreeSet<&str> = seed_value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let extra: BTreeSet<&str> = keys.difference(&seed_keys).copied().collect();
    assert!(
        seed_keys.is_subset(&keys),
        "missing seed keys: {:?}",
        seed_keys.difference(&keys)
    );
    assert_eq!(
        extra,
        BTreeSet::from([
            "enforcement_mode",
            "fallback_reason",
            "violation_id",
            "created_height",
            "reason_code"
        ])
    );
    for key in &seed_keys {
        let ours = &out[*key];
        let theirs = &seed_value[*key];
        match key {
            // Canonical proto3 JSON writes uint64 as strings.
            &"decision_age_blocks" | &"decision_age_seconds" => {
                assert_eq!(ours.as_str().unwrap(), theirs.to_string())
            }
            _ => assert_eq!(ours, theirs, "field {key}"),
        }
    }

    // lowerCamelCase input is accepted too (proto3 JSON parsers must accept both).
    let camel: RoutingAuditRecord =
        serde_json::from_str(r#"{"recordId": "r-1", "isFallback": true, "status": 2}"#).unwrap();
    assert_eq!(camel.record_id, "r-1");
    assert!(camel.is_fallback);
    assert_eq!(camel.status(), AuditStatus::Fallback);

    // Unknown enum names are rejected.
    assert!(serde_json::from_str::<RoutingAuditRecord>(r#"{"status": "approved"}"#).is_err());
}

// ---------------------------------------------------------------------------------------------
// Any / type URLs
// ---------------------------------------------------------------------------------------------

#[test]
fn any_type_urls() {
    let msg = MsgSubmitJob {
        owner: OWNER.into(),
        requirements: Some(requirements()),
        policy: None,
        correlation_id: "corr-1".into(),
        workload: None,
    };
    assert_eq!(MsgSubmitJob::type_url(), "/virtengine.hpc.v1.MsgSubmitJob");
    assert_eq!(
        type_url::<MsgSubmitJob>(),
        "/virtengine.hpc.v1.MsgSubmitJob"
    );
    assert_eq!(MsgSubmitJob::full_name(), "virtengine.hpc.v1.MsgSubmitJob");
    assert_eq!(MsgSubmitJob::PACKAGE, hpc_proto::PACKAGE);

    let any = to_any(&msg);
    assert_eq!(any.type_url, "/virtengine.hpc.v1.MsgSubmitJob");
    assert_eq!(any.value, msg.encode_to_vec());
    // Same result as the Any helpers that cosmrs / cosmos-sdk-proto use.
    assert_eq!(Any::from_msg(&msg).unwrap(), any);
    assert_eq!(any.to_msg::<MsgSubmitJob>().unwrap(), msg);
    assert_eq!(from_any::<MsgSubmitJob>(&any).unwrap(), msg);
    assert!(from_any::<MsgCancelJob>(&any).is_err(), "type URL mismatch");

    for (url, expected) in [
        (
            type_url::<MsgRegisterCluster>(),
            "/virtengine.hpc.v1.MsgRegisterCluster",
        ),
        (
            type_url::<MsgUpdateClusterStatus>(),
            "/virtengine.hpc.v1.MsgUpdateClusterStatus",
        ),
        (
            type_url::<MsgDeregisterCluster>(),
            "/virtengine.hpc.v1.MsgDeregisterCluster",
        ),
        (
            type_url::<MsgCancelJob>(),
            "/virtengine.hpc.v1.MsgCancelJob",
        ),
        (
            type_url::<MsgRequestReschedule>(),
            "/virtengine.hpc.v1.MsgRequestReschedule",
        ),
        (
            type_url::<MsgRecordRoutingAudit>(),
            "/virtengine.hpc.v1.MsgRecordRoutingAudit",
        ),
        (
            type_url::<MsgReportRoutingViolation>(),
            "/virtengine.hpc.v1.MsgReportRoutingViolation",
        ),
        (
            type_url::<MsgResolveRoutingViolation>(),
            "/virtengine.hpc.v1.MsgResolveRoutingViolation",
        ),
        (
            type_url::<MsgReportJobStatus>(),
            "/virtengine.hpc.v1.MsgReportJobStatus",
        ),
        (
            type_url::<MsgUpdateParams>(),
            "/virtengine.hpc.v1.MsgUpdateParams",
        ),
        (
            type_url::<GenesisState>(),
            "/virtengine.hpc.v1.GenesisState",
        ),
    ] {
        assert_eq!(url, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Descriptor set
// ---------------------------------------------------------------------------------------------

/// Minimal descriptor messages that keep the `cosmos.msg.v1` extension options, which
/// `prost_types` drops when decoding.
mod raw {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Fds {
        #[prost(message, repeated, tag = "1")]
        pub file: Vec<File>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct File {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub package: String,
        #[prost(message, repeated, tag = "4")]
        pub message_type: Vec<Msg>,
        #[prost(message, repeated, tag = "6")]
        pub service: Vec<Service>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Msg {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, repeated, tag = "2")]
        pub field: Vec<prost_types::FieldDescriptorProto>,
        #[prost(message, optional, tag = "7")]
        pub options: Option<MsgOptions>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MsgOptions {
        /// `cosmos.msg.v1.signer`
        #[prost(string, repeated, tag = "11110000")]
        pub signer: Vec<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Service {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, repeated, tag = "2")]
        pub method: Vec<prost_types::MethodDescriptorProto>,
        #[prost(message, optional, tag = "3")]
        pub options: Option<ServiceOptions>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServiceOptions {
        /// `cosmos.msg.v1.service`
        #[prost(bool, tag = "11110000")]
        pub service: bool,
    }
}

#[test]
fn file_descriptor_set_has_services_and_imports() {
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("decodes");
    let names: BTreeSet<&str> = fds.file.iter().map(|f| f.name()).collect();
    for expected in [
        "virtengine/hpc/v1/types.proto",
        "virtengine/hpc/v1/params.proto",
        "virtengine/hpc/v1/genesis.proto",
        "virtengine/hpc/v1/tx.proto",
        "virtengine/hpc/v1/query.proto",
        "cosmos/msg/v1/msg.proto",
        "cosmos/base/query/v1beta1/pagination.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/descriptor.proto",
    ] {
        assert!(names.contains(expected), "{expected} in descriptor set");
    }

    let services: BTreeMap<String, Vec<String>> = fds
        .file
        .iter()
        .flat_map(|f| {
            f.service.iter().map(move |s| {
                (
                    format!("{}.{}", f.package(), s.name()),
                    s.method.iter().map(|m| m.name().to_string()).collect(),
                )
            })
        })
        .collect();
    assert_eq!(
        services.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![
            "cosmos.auth.v1beta1.Query",
            "cosmos.bank.v1beta1.Query",
            "cosmos.base.tendermint.v1beta1.Service",
            "cosmos.consensus.v1.Query",
            "cosmos.tx.v1beta1.Service",
            // Defined by an imported file; hpcd's reflection does not list it.
            "tendermint.abci.ABCI",
            hpc_proto::MSG_SERVICE_NAME,
            hpc_proto::QUERY_SERVICE_NAME
        ]
    );
    assert_eq!(
        services["virtengine.hpc.v1.Msg"],
        [
            "RegisterCluster",
            "UpdateClusterStatus",
            "DeregisterCluster",
            "SubmitJob",
            "CancelJob",
            "RequestReschedule",
            "RecordRoutingAudit",
            "ReportRoutingViolation",
            "ResolveRoutingViolation",
            "ReportJobStatus",
            "UpdateParams"
        ]
    );
    assert_eq!(
        services["virtengine.hpc.v1.Query"],
        [
            "Params",
            "Cluster",
            "Clusters",
            "Job",
            "Jobs",
            "SchedulingDecision",
            "SchedulingDecisionByJob",
            "ExplainDecision",
            "SimulateSchedule",
            "RoutingAuditRecord",
            "RoutingAuditRecords",
            "RoutingViolation",
            "RoutingViolations",
            "ViolationCount"
        ]
    );

    // Source comments are kept (grpcurl describe / reflection clients show them).
    let types = fds
        .file
        .iter()
        .find(|f| f.name() == "virtengine/hpc/v1/types.proto")
        .unwrap();
    assert!(types.source_code_info.as_ref().is_some_and(|s| s
        .location
        .iter()
        .any(|l| l.leading_comments().contains("Cluster is an HPC cluster"))));
}

#[test]
fn msg_service_carries_cosmos_signer_options() {
    let fds = raw::Fds::decode(FILE_DESCRIPTOR_SET).expect("decodes");
    let tx = fds
        .file
        .iter()
        .find(|f| f.name == "virtengine/hpc/v1/tx.proto")
        .expect("tx.proto");
    let msg_service = tx.service.iter().find(|s| s.name == "Msg").unwrap();
    assert!(
        msg_service.options.as_ref().is_some_and(|o| o.service),
        "option (cosmos.msg.v1.service) = true"
    );

    let expected_signers = BTreeMap::from([
        ("MsgRegisterCluster", "provider"),
        ("MsgUpdateClusterStatus", "provider"),
        ("MsgDeregisterCluster", "provider"),
        ("MsgSubmitJob", "owner"),
        ("MsgCancelJob", "owner"),
        ("MsgRequestReschedule", "requester"),
        ("MsgRecordRoutingAudit", "provider"),
        ("MsgReportRoutingViolation", "reporter"),
        ("MsgResolveRoutingViolation", "authority"),
        ("MsgReportJobStatus", "provider"),
        ("MsgUpdateParams", "authority"),
    ]);
    assert_eq!(msg_service.method.len(), expected_signers.len());
    for method in &msg_service.method {
        let input = method
            .input_type()
            .strip_prefix(".virtengine.hpc.v1.")
            .unwrap();
        let msg = tx.message_type.iter().find(|m| m.name == input).unwrap();
        let signers = &msg.options.as_ref().expect("options").signer;
        assert_eq!(signers, &[expected_signers[input]], "signer of {input}");
        // The signer names a string field of the message.
        let field = msg
            .field
            .iter()
            .find(|f| f.name() == signers[0])
            .unwrap_or_else(|| panic!("{input} has field {}", signers[0]));
        assert_eq!(field.r#type(), Type::String);
        assert_eq!(
            method.output_type(),
            format!(".virtengine.hpc.v1.{input}Response")
        );
    }
}

#[test]
fn descriptor_set_registers_with_tonic_reflection() {
    let service = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1();
    assert!(service.is_ok(), "reflection: {:?}", service.err());
    let service = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    assert!(service.is_ok(), "reflection v1alpha: {:?}", service.err());
}

// ---------------------------------------------------------------------------------------------
// gRPC client <-> server over loopback
// ---------------------------------------------------------------------------------------------

mod grpc {
    use super::*;
    use hpc_proto::virtengine::hpc::v1::query_client::QueryClient;
    use hpc_proto::virtengine::hpc::v1::query_server::{Query, QueryServer};
    use tonic::{Request, Response, Status};

    struct FixedQuery;

    #[tonic::async_trait]
    impl Query for FixedQuery {
        async fn params(
            &self,
            _: Request<QueryParamsRequest>,
        ) -> Result<Response<QueryParamsResponse>, Status> {
            Ok(Response::new(QueryParamsResponse {
                params: Some(params()),
                authority: AUTHORITY.into(),
            }))
        }

        async fn cluster(
            &self,
            req: Request<QueryClusterRequest>,
        ) -> Result<Response<QueryClusterResponse>, Status> {
            let id = req.into_inner().cluster_id;
            if id == "hpc-cluster-1" {
                Ok(Response::new(QueryClusterResponse {
                    cluster: Some(cluster()),
                }))
            } else {
                Err(Status::not_found(format!("cluster {id} not found")))
            }
        }

        async fn clusters(
            &self,
            _: Request<QueryClustersRequest>,
        ) -> Result<Response<QueryClustersResponse>, Status> {
            Err(Status::unimplemented("clusters"))
        }

        async fn job(
            &self,
            _: Request<QueryJobRequest>,
        ) -> Result<Response<QueryJobResponse>, Status> {
            Err(Status::unimplemented("job"))
        }

        async fn jobs(
            &self,
            _: Request<QueryJobsRequest>,
        ) -> Result<Response<QueryJobsResponse>, Status> {
            Err(Status::unimplemented("jobs"))
        }

        async fn scheduling_decision(
            &self,
            _: Request<QuerySchedulingDecisionRequest>,
        ) -> Result<Response<QuerySchedulingDecisionResponse>, Status> {
            Err(Status::unimplemented("scheduling_decision"))
        }

        async fn scheduling_decision_by_job(
            &self,
            _: Request<QuerySchedulingDecisionByJobRequest>,
        ) -> Result<Response<QuerySchedulingDecisionByJobResponse>, Status> {
            Err(Status::unimplemented("scheduling_decision_by_job"))
        }

        async fn explain_decision(
            &self,
            _: Request<QueryExplainDecisionRequest>,
        ) -> Result<Response<QueryExplainDecisionResponse>, Status> {
            Err(Status::unimplemented("explain_decision"))
        }

        async fn simulate_schedule(
            &self,
            _: Request<QuerySimulateScheduleRequest>,
        ) -> Result<Response<QuerySimulateScheduleResponse>, Status> {
            Err(Status::unimplemented("simulate_schedule"))
        }

        async fn routing_audit_record(
            &self,
            _: Request<QueryRoutingAuditRecordRequest>,
        ) -> Result<Response<QueryRoutingAuditRecordResponse>, Status> {
            Err(Status::unimplemented("routing_audit_record"))
        }

        async fn routing_audit_records(
            &self,
            _: Request<QueryRoutingAuditRecordsRequest>,
        ) -> Result<Response<QueryRoutingAuditRecordsResponse>, Status> {
            Err(Status::unimplemented("routing_audit_records"))
        }

        async fn routing_violation(
            &self,
            _: Request<QueryRoutingViolationRequest>,
        ) -> Result<Response<QueryRoutingViolationResponse>, Status> {
            Err(Status::unimplemented("routing_violation"))
        }

        async fn routing_violations(
            &self,
            _: Request<QueryRoutingViolationsRequest>,
        ) -> Result<Response<QueryRoutingViolationsResponse>, Status> {
            Err(Status::unimplemented("routing_violations"))
        }

        async fn violation_count(
            &self,
            _: Request<QueryViolationCountRequest>,
        ) -> Result<Response<QueryViolationCountResponse>, Status> {
            Err(Status::unimplemented("violation_count"))
        }
    }

    #[tokio::test]
    async fn query_service_over_loopback() {
        let incoming =
            tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = incoming.local_addr().unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(QueryServer::new(FixedQuery))
                .serve_with_incoming(incoming),
        );

        let mut client = QueryClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let resp = client
            .params(QueryParamsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.params, Some(params()));
        assert_eq!(resp.authority, AUTHORITY);

        let resp = client
            .cluster(QueryClusterRequest {
                cluster_id: "hpc-cluster-1".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.cluster, Some(cluster()));

        let err = client
            .cluster(QueryClusterRequest {
                cluster_id: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);

        let err = client
            .job(QueryJobRequest {
                job_id: "hpc-job-456".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);

        server.abort();
    }
}
