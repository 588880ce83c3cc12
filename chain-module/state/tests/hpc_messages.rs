//! x/hpc messages driven in-process through the real tx pipeline with cosmrs-signed txs:
//! signer rules, stateless and stateful checks, events, the audit cross-checks, the
//! violation threshold, params, reschedule, job status, retention and genesis round trip.

mod common;

use common::*;
use std::collections::BTreeMap;

use cosmos_sdk_proto::Any;
use hpc_primitives::contract::{self, ids, reschedule};
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::*;
use hpc_state::consensus::BlockLimits;
use hpc_state::hpc::keeper::{self as keys, Keeper};
use hpc_state::hpc::{default_params, HpcKeeper};
use hpc_state::{App, TxOutcome};
use prost::Message;

#[test]
fn cluster_signer_rules_and_heartbeat() {
    let World {
        mut chain, p1, p2, ..
    } = world();
    let out = chain.tx(&p1, vec![register(&p1, "cluster-a", 4, 10, 1)]);
    assert_eq!(
        (out.codespace.as_str(), out.code),
        ("hpc", 2),
        "{}",
        out.log
    );
    let heartbeat = |provider: &Key, health: ClusterHealth| {
        to_any(&MsgUpdateClusterStatus {
            provider: provider.addr.to_string(),
            cluster_id: "cluster-a".into(),
            state: ClusterState::Active as i32,
            available_nodes: 3,
            queue_depth: 1,
            latency_ms: 12,
            jitter_ms: 1,
            packet_loss_bps: 0,
            health: health as i32,
            price_per_node_hour: None,
            total_nodes: None,
        })
    };
    chain.fails(
        &p2,
        vec![heartbeat(&p2, ClusterHealth::Healthy)],
        "hpc",
        4,
        "is not the provider of cluster cluster-a",
    );
    chain.next_block();
    let out = chain.ok(&p1, vec![heartbeat(&p1, ClusterHealth::Degraded)]);
    assert_eq!(
        event(&out, "hpc_cluster_updated").get("health"),
        Some("CLUSTER_HEALTH_DEGRADED")
    );
    let c: QueryClusterResponse = chain.query(
        "Cluster",
        QueryClusterRequest {
            cluster_id: "cluster-a".into(),
        },
    );
    let c = c.cluster.unwrap();
    assert_eq!(
        (c.available_nodes, c.last_heartbeat_height, c.health()),
        (3, 2, ClusterHealth::Degraded)
    );
    chain.fails(
        &p2,
        vec![to_any(&MsgDeregisterCluster {
            provider: p2.addr.to_string(),
            cluster_id: "cluster-a".into(),
        })],
        "hpc",
        4,
        "not the provider",
    );
    chain.ok(
        &p1,
        vec![to_any(&MsgDeregisterCluster {
            provider: p1.addr.to_string(),
            cluster_id: "cluster-a".into(),
        })],
    );
    chain.fails(
        &p1,
        vec![heartbeat(&p1, ClusterHealth::Healthy)],
        "hpc",
        17,
        "deregistered",
    );
    let by_provider: QueryClustersResponse = chain.query(
        "Clusters",
        QueryClustersRequest {
            provider_address: p2.addr.to_string(),
            ..Default::default()
        },
    );
    assert_eq!(
        by_provider
            .clusters
            .iter()
            .map(|c| c.cluster_id.as_str())
            .collect::<Vec<_>>(),
        vec!["cluster-b"]
    );
}

#[test]
fn submit_schedules_in_the_same_tx_or_fails_naming_reasons() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 2)]);
    let ev = event(&out, "hpc_job_scheduled");
    assert_eq!(
        ev.get("cluster_id"),
        Some("cluster-a"),
        "lower latency wins"
    );
    assert_eq!(ev.get("provider"), Some(p1.addr.to_string().as_str()));
    let job_id = ev.get("job_id").unwrap().to_string();
    let decision_id = ev.get("decision_id").unwrap().to_string();
    assert_eq!(
        ev.get("correlation_id"),
        Some(format!("corr-{job_id}").as_str())
    );
    let job: QueryJobResponse = chain.query(
        "Job",
        QueryJobRequest {
            job_id: job_id.clone(),
        },
    );
    let job = job.job.unwrap();
    assert_eq!(
        (job.state(), job.current_decision_id.as_str()),
        (JobState::Scheduled, decision_id.as_str())
    );
    let explain: QueryExplainDecisionResponse = chain.query(
        "ExplainDecision",
        QueryExplainDecisionRequest {
            job_id: job_id.clone(),
            ..Default::default()
        },
    );
    assert_eq!(explain.decision.unwrap().candidates.len(), 2);
    assert!(explain.explanations.iter().any(|l| l.contains("selected")));
    let c: QueryClusterResponse = chain.query(
        "Cluster",
        QueryClusterRequest {
            cluster_id: "cluster-a".into(),
        },
    );
    assert_eq!(
        c.cluster.unwrap().reserved_nodes,
        2,
        "selection reserves capacity"
    );

    // 9 nodes fit nowhere: the tx fails, naming the reason, and stores nothing.
    chain.fails(
        &alice,
        vec![submit(&alice, 9)],
        "hpc",
        6,
        "INSUFFICIENT_NODES",
    );
    let jobs: QueryJobsResponse = chain.query(
        "Jobs",
        QueryJobsRequest {
            owner: alice.addr.to_string(),
            ..Default::default()
        },
    );
    assert_eq!(jobs.jobs.len(), 1);
    // ... and a dry run explains the same without a tx.
    let sim: QuerySimulateScheduleResponse = chain.query(
        "SimulateSchedule",
        QuerySimulateScheduleRequest {
            requirements: Some(JobRequirements {
                nodes: 9,
                max_runtime_seconds: 1,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    assert!(
        !sim.schedulable && sim.failure_reason.contains("INSUFFICIENT_NODES"),
        "{}",
        sim.failure_reason
    );
}

#[test]
fn audit_cross_checks_and_routing() {
    let World {
        mut chain,
        alice,
        p1,
        p2,
        authority,
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 2)]);
    let job = scheduled(&out, "job_id");
    let decision = scheduled(&out, "decision_id");
    let out2 = chain.ok(&alice, vec![submit(&alice, 1)]);
    let other_decision = scheduled(&out2, "decision_id");
    let job2 = scheduled(&out2, "job_id");
    // A second, slower cluster of provider1, registered after both decisions.
    chain.ok(&p1, vec![register(&p1, "cluster-a2", 8, 190, 9_000_000)]);
    chain.next_block();
    chain.next_block();

    // The wrong provider cannot record for cluster-a, nor on its own cluster for a decision
    // of provider1's cluster; a decision of another job is refused; approving a placement
    // on cluster-a2 (not the decision's) is refused in strict mode.
    chain.fails(
        &p2,
        vec![audit(
            &p2,
            "rec-1",
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
        "hpc",
        4,
        "not the provider",
    );
    chain.fails(
        &p2,
        vec![audit(
            &p2,
            "rec-1",
            &job,
            &decision,
            "cluster-b",
            AuditStatus::Approved,
        )],
        "hpc",
        4,
        "is not the provider of decision",
    );
    chain.fails(
        &p1,
        vec![audit(
            &p1,
            "rec-1",
            &job,
            &other_decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
        "hpc",
        10,
        "belongs to job",
    );
    chain.fails(
        &p1,
        vec![audit(
            &p1,
            "rec-1",
            &job,
            &decision,
            "cluster-a2",
            AuditStatus::Approved,
        )],
        "hpc",
        11,
        "cluster_mismatch",
    );

    let out = chain.ok(
        &p1,
        vec![audit(
            &p1,
            "rec-1",
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
    );
    let routed = event(&out, "hpc_job_routed");
    assert_eq!(routed.get("record_id"), Some("rec-1"));
    assert_eq!(routed.get("status"), Some("approved"));
    assert_eq!(routed.get("is_fallback"), Some("false"));
    let rec: QueryRoutingAuditRecordResponse = chain.query(
        "RoutingAuditRecord",
        QueryRoutingAuditRecordRequest {
            record_id: "rec-1".into(),
        },
    );
    let rec = rec.record.unwrap();
    assert_eq!(
        (rec.decision_age_blocks, rec.decision_age_seconds),
        (2, 10),
        "ages recomputed from chain height and time"
    );
    assert_eq!(rec.expected_cluster_id, "cluster-a");
    let job_state: QueryJobResponse = chain.query(
        "Job",
        QueryJobRequest {
            job_id: job.clone(),
        },
    );
    assert_eq!(job_state.job.unwrap().state(), JobState::Routed);
    // Resubmitting the same record id is refused (idempotent delivery).
    chain.fails(
        &p1,
        vec![audit(
            &p1,
            "rec-1",
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
        "hpc",
        9,
        "already recorded",
    );

    // In permissive mode the mismatch is stored with a chain-detected violation.
    let mut params = default_params();
    params.routing_enforcement_mode = EnforcementMode::Permissive as i32;
    chain.ok(&authority, vec![update_params(&authority, params)]);
    // An already routed job is not routed again.
    chain.fails(
        &p1,
        vec![audit(
            &p1,
            "rec-again",
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
        "hpc",
        7,
        "only a SCHEDULED job can be routed",
    );
    let out = chain.ok(
        &p1,
        vec![audit(
            &p1,
            "rec-2",
            &job2,
            &other_decision,
            "cluster-a2",
            AuditStatus::Approved,
        )],
    );
    let v = event(&out, "hpc_routing_violation");
    assert_eq!(v.get("violation_type"), Some("cluster_mismatch"));
    assert_eq!(v.get("severity"), Some("5"));
    assert_eq!(v.get("reporter"), Some("x/hpc"));
    let by_job: QueryRoutingAuditRecordsResponse = chain.query(
        "RoutingAuditRecords",
        QueryRoutingAuditRecordsRequest {
            job_id: job2.clone(),
            ..Default::default()
        },
    );
    assert_eq!(by_job.records.len(), 1);
    assert!(!by_job.records[0].violation_id.is_empty());
}

#[test]
fn violation_reporting_threshold_and_resolution() {
    let World {
        mut chain,
        alice,
        p1,
        p2,
        authority,
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job = scheduled(&out, "job_id");
    // Only the provider itself or the authority may report.
    chain.fails(
        &p2,
        vec![violation(&p2, &p1, &job, ViolationType::StaleDecision)],
        "hpc",
        4,
        "must be the provider",
    );
    let threshold = default_params().violation_alert_threshold as usize;
    let mut alerts = 0;
    for i in 0..threshold + 2 {
        let reporter = if i % 2 == 0 { &p1 } else { &authority };
        let out = chain.ok(
            reporter,
            vec![violation(
                reporter,
                &p1,
                &job,
                ViolationType::ClusterUnavailable,
            )],
        );
        assert_eq!(
            event(&out, "hpc_routing_violation").get("severity"),
            Some("3")
        );
        alerts += out
            .events
            .iter()
            .filter(|e| e.kind == "hpc_routing_violation_threshold_exceeded")
            .count();
    }
    assert_eq!(alerts, 1, "one alert per crossing");
    let count: QueryViolationCountResponse = chain.query(
        "ViolationCount",
        QueryViolationCountRequest {
            provider_address: p1.addr.to_string(),
        },
    );
    assert_eq!(
        (count.unresolved_count, count.threshold_exceeded),
        (threshold as u64 + 2, true)
    );

    let unresolved: QueryRoutingViolationsResponse = chain.query(
        "RoutingViolations",
        QueryRoutingViolationsRequest {
            provider_address: p1.addr.to_string(),
            unresolved_only: true,
            ..Default::default()
        },
    );
    let ids: Vec<String> = unresolved
        .violations
        .iter()
        .map(|v| v.violation_id.clone())
        .collect();
    let resolve = |id: &str, who: &Key| {
        to_any(&MsgResolveRoutingViolation {
            authority: who.addr.to_string(),
            violation_id: id.into(),
            resolution: "provider fixed its scheduler".into(),
        })
    };
    chain.fails(
        &alice,
        vec![resolve(&ids[0], &alice)],
        "hpc",
        4,
        "not the x/hpc authority",
    );
    for id in &ids[..3] {
        let out = chain.ok(&authority, vec![resolve(id, &authority)]);
        assert!(out
            .events
            .iter()
            .any(|e| e.kind == "hpc_routing_violation_resolved"));
    }
    chain.fails(
        &authority,
        vec![resolve(&ids[0], &authority)],
        "hpc",
        16,
        "already resolved",
    );
    let count: QueryViolationCountResponse = chain.query(
        "ViolationCount",
        QueryViolationCountRequest {
            provider_address: p1.addr.to_string(),
        },
    );
    assert_eq!(count.unresolved_count, threshold as u64 - 1);
    // Crossing again alerts again.
    let out = chain.ok(
        &p1,
        vec![violation(&p1, &p1, &job, ViolationType::MissingDecision)],
    );
    assert!(out
        .events
        .iter()
        .any(|e| e.kind == "hpc_routing_violation_threshold_exceeded"));
    let typed: QueryRoutingViolationsResponse = chain.query(
        "RoutingViolations",
        QueryRoutingViolationsRequest {
            violation_type: ViolationType::MissingDecision as i32,
            ..Default::default()
        },
    );
    assert_eq!(typed.violations.len(), 1);
    assert_eq!(typed.violations[0].severity, 4);
}

#[test]
fn params_only_by_authority_and_validated() {
    let World {
        mut chain,
        alice,
        authority,
        ..
    } = world();
    let mut params = default_params();
    params.max_decision_age_blocks = 7;
    chain.fails(
        &alice,
        vec![update_params(&alice, params)],
        "hpc",
        4,
        "not the x/hpc authority",
    );
    let mut bad = params;
    bad.default_weights.as_mut().unwrap().latency_bps += 1;
    chain.fails(
        &authority,
        vec![update_params(&authority, bad)],
        "sdk",
        18,
        "default_weights",
    );
    let out = chain.ok(&authority, vec![update_params(&authority, params)]);
    assert!(out.events.iter().any(|e| e.kind == "hpc_params_updated"));
    assert_eq!(HpcKeeper::params(&chain.state).max_decision_age_blocks, 7);
}

#[test]
fn reschedule_job_status_and_reservations() {
    let World {
        mut chain,
        alice,
        p1,
        p2,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 3)]);
    let job = scheduled(&out, "job_id");
    let old = scheduled(&out, "decision_id");
    let reserved =
        |chain: &Chain, id: &str| Keeper::cluster(&chain.state, id).unwrap().reserved_nodes;
    assert_eq!(
        (reserved(&chain, "cluster-a"), reserved(&chain, "cluster-b")),
        (3, 0)
    );
    let resched = |who: &Key| {
        to_any(&MsgRequestReschedule {
            requester: who.addr.to_string(),
            job_id: job.clone(),
            reason: "cluster unavailable".into(),
            excluded_cluster_ids: vec!["cluster-a".into()],
            kind: RescheduleKind::ProviderFallback as i32,
        })
    };
    chain.fails(&p2, vec![resched(&p2)], "hpc", 4, "neither the owner");
    chain.fails(
        &alice,
        vec![resched(&alice)],
        "hpc",
        4,
        "only the provider of the job's current cluster may request a provider_fallback",
    );
    let out = chain.ok(&p1, vec![resched(&p1)]);
    let ev = event(&out, "hpc_job_rescheduled");
    assert_eq!(ev.get("old_decision_id"), Some(old.as_str()));
    assert_eq!(ev.get("cluster_id"), Some("cluster-b"));
    let new = ev.get("new_decision_id").unwrap().to_string();
    assert_eq!(
        (reserved(&chain, "cluster-a"), reserved(&chain, "cluster-b")),
        (0, 3),
        "reservation moved"
    );
    let hist: QuerySchedulingDecisionByJobResponse = chain.query(
        "SchedulingDecisionByJob",
        QuerySchedulingDecisionByJobRequest {
            job_id: job.clone(),
        },
    );
    assert_eq!(hist.current.unwrap().previous_decision_id, old);
    assert_eq!(hist.history.len(), 2);

    let status = |who: &Key, s: JobState| {
        to_any(&MsgReportJobStatus {
            provider: who.addr.to_string(),
            job_id: job.clone(),
            status: s as i32,
            message: String::new(),
            exit_code: None,
            local_job_id: String::new(),
        })
    };
    chain.fails(
        &p1,
        vec![status(&p1, JobState::Running)],
        "hpc",
        4,
        "not the provider of job",
    );
    chain.ok(
        &p2,
        vec![audit(
            &p2,
            "r-1",
            &job,
            &new,
            "cluster-b",
            AuditStatus::Approved,
        )],
    );
    chain.ok(&p2, vec![status(&p2, JobState::Running)]);
    assert_eq!(
        reserved(&chain, "cluster-b"),
        0,
        "RUNNING releases the reservation"
    );
    chain.fails(
        &p2,
        vec![status(&p2, JobState::Running)],
        "hpc",
        7,
        "cannot go from JOB_STATE_RUNNING",
    );
    chain.ok(&p2, vec![status(&p2, JobState::Completed)]);
    assert_eq!(
        Keeper::cluster(&chain.state, "cluster-b")
            .unwrap()
            .completed_jobs,
        1
    );
    chain.fails(
        &alice,
        vec![cancel(&alice, job.clone())],
        "hpc",
        7,
        "cannot be cancelled",
    );
}

#[test]
fn stateless_checks_name_the_field() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let mut zero_nodes = MsgSubmitJob::decode(submit(&alice, 0).value.as_slice()).unwrap();
    zero_nodes.correlation_id = String::new();
    let mut bad_weights = MsgSubmitJob::decode(submit(&alice, 1).value.as_slice()).unwrap();
    bad_weights.policy = Some(PlacementPolicy {
        weights: Some(ScoringWeights {
            latency_bps: 5000,
            price_bps: 5000,
            reputation_bps: 1,
            queue_bps: 0,
        }),
        ..Default::default()
    });
    let cases: Vec<(&Key, Any, &str)> = vec![
        (&p1, register(&p1, "Bad_ID", 4, 1, 1), "cluster_id"),
        (&p1, register(&p1, "ok-id", 0, 1, 1), "total_nodes"),
        (&alice, to_any(&zero_nodes), "requirements.nodes"),
        (&alice, to_any(&bad_weights), "policy.weights"),
        (
            &p1,
            to_any(&MsgRecordRoutingAudit {
                provider: p1.addr.to_string(),
                records: vec![],
            }),
            "records",
        ),
        (
            &p1,
            audit(&p1, "bad id!", "j", "d", "cluster-a", AuditStatus::Approved),
            "records[0].record_id",
        ),
        (
            &p1,
            audit(&p1, "r", "j", "d", "cluster-a", AuditStatus::Unspecified),
            "records[0].status",
        ),
        (
            &p1,
            to_any(&MsgReportJobStatus {
                provider: p1.addr.to_string(),
                job_id: "j".into(),
                status: JobState::Routed as i32,
                message: String::new(),
                exit_code: None,
                local_job_id: String::new(),
            }),
            "status",
        ),
        (
            &alice,
            to_any(&MsgResolveRoutingViolation {
                authority: alice.addr.to_string(),
                violation_id: "v".into(),
                resolution: String::new(),
            }),
            "resolution",
        ),
    ];
    for (signer, msg, field) in cases {
        chain.fails(signer, vec![msg], "sdk", 18, field);
    }
    // A message whose signer field is not the tx signer: rejected by the ante handler.
    chain.fails(
        &alice,
        vec![register(&p1, "cluster-z", 4, 1, 1)],
        "sdk",
        8,
        "does not match signer",
    );
}

#[test]
fn retention_prunes_old_records_of_finished_jobs_only() {
    let World {
        mut chain,
        alice,
        p1,
        authority,
        ..
    } = world();
    let mut params = default_params();
    params.decision_retention_blocks = 3;
    params.audit_retention_blocks = 3;
    chain.ok(&authority, vec![update_params(&authority, params)]);
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let done = scheduled(&out, "job_id");
    let done_decision = scheduled(&out, "decision_id");
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let active_decision = scheduled(&out, "decision_id");
    chain.ok(
        &p1,
        vec![audit(
            &p1,
            "r-old",
            &done,
            &done_decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
    );
    chain.ok(&alice, vec![cancel(&alice, done)]);
    for _ in 0..5 {
        chain.next_block();
    }
    assert!(
        Keeper::decision(&chain.state, &done_decision).is_none(),
        "finished job's decision pruned"
    );
    assert!(
        Keeper::audit(&chain.state, "r-old").is_none(),
        "old audit record pruned"
    );
    assert!(
        Keeper::decision(&chain.state, &active_decision).is_some(),
        "an active job keeps its decision"
    );
}

#[test]
fn genesis_export_import_reproduces_module_state() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 2)]);
    let job = scheduled(&out, "job_id");
    let decision = scheduled(&out, "decision_id");
    chain.ok(
        &p1,
        vec![audit(
            &p1,
            "rec-x",
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
    );
    chain.ok(
        &p1,
        vec![violation(&p1, &p1, &job, ViolationType::StaleDecision)],
    );
    let exported = serde_json::to_vec(&chain.app.export(&chain.state)).unwrap();
    let mut imported = BTreeMap::new();
    chain
        .app
        .init_chain(&mut imported, CHAIN, &BlockLimits::default(), &exported)
        .unwrap();
    assert_eq!(
        imported, chain.state,
        "export → import must reproduce every key"
    );
    // Sequences continue where they were.
    let mut again = Chain {
        app: App::default(),
        state: imported,
        height: chain.height,
        time: chain.time,
    };
    let out = again.ok(&alice, vec![submit(&alice, 1)]);
    assert_eq!(
        event(&out, "hpc_job_scheduled").get("job_id"),
        Some("hpc-job-2")
    );
}

#[test]
fn routing_needs_the_current_decision_and_a_scheduled_job() {
    let World {
        mut chain,
        alice,
        p1,
        p2,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 2)]);
    let job = scheduled(&out, "job_id");
    let old = scheduled(&out, "decision_id");
    let out = chain.ok(
        &alice,
        vec![to_any(&MsgRequestReschedule {
            requester: alice.addr.to_string(),
            job_id: job.clone(),
            reason: "test".into(),
            excluded_cluster_ids: vec!["cluster-a".into()],
            kind: RescheduleKind::Unspecified as i32,
        })],
    );
    let new = event(&out, "hpc_job_rescheduled")
        .get("new_decision_id")
        .unwrap()
        .to_string();
    // The superseded decision cannot route the job any more.
    chain.fails(
        &p1,
        vec![audit(
            &p1,
            "r-old",
            &job,
            &old,
            "cluster-a",
            AuditStatus::Approved,
        )],
        "hpc",
        10,
        "is not the current decision",
    );
    chain.ok(
        &p2,
        vec![audit(
            &p2,
            "r-new",
            &job,
            &new,
            "cluster-b",
            AuditStatus::Approved,
        )],
    );
    let status = |s: JobState| {
        to_any(&MsgReportJobStatus {
            provider: p2.addr.to_string(),
            job_id: job.clone(),
            status: s as i32,
            message: String::new(),
            exit_code: None,
            local_job_id: String::new(),
        })
    };
    chain.ok(&p2, vec![status(JobState::Running)]);
    chain.ok(&p2, vec![status(JobState::Completed)]);
    // A finished job is not reopened by a late record, so completions count once.
    chain.fails(
        &p2,
        vec![audit(
            &p2,
            "r-late",
            &job,
            &new,
            "cluster-b",
            AuditStatus::Approved,
        )],
        "hpc",
        7,
        "only a SCHEDULED job",
    );
    assert_eq!(
        Keeper::cluster(&chain.state, "cluster-b")
            .unwrap()
            .completed_jobs,
        1
    );
}

#[test]
fn violation_reports_cannot_squat_ids_or_blame_other_clusters() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job = scheduled(&out, "job_id");
    let report = |id: &str, job: &str, cluster: &str| {
        to_any(&MsgReportRoutingViolation {
            reporter: p1.addr.to_string(),
            violations: vec![RoutingViolation {
                violation_id: id.into(),
                job_id: job.into(),
                violation_type: ViolationType::ClusterMismatch as i32,
                provider_address: p1.addr.to_string(),
                actual_cluster_id: cluster.into(),
                resolution: "pre-resolved by the reporter".into(),
                ..Default::default()
            }],
        })
    };
    chain.fails(
        &p1,
        vec![report("hpc-violation-1", &job, "cluster-a")],
        "sdk",
        18,
        "assigned by the chain",
    );
    chain.fails(
        &p1,
        vec![report("", &job, "cluster-b")],
        "hpc",
        4,
        "is not the provider of cluster cluster-b",
    );
    chain.fails(
        &p1,
        vec![report("", "no-such-job", "cluster-a")],
        "hpc",
        5,
        "job no-such-job not found",
    );
    let before = Keeper::cluster(&chain.state, "cluster-b")
        .unwrap()
        .reputation_bps;
    let out = chain.ok(&p1, vec![report("enf-v-1", &job, "cluster-a")]);
    assert_eq!(
        event(&out, "hpc_routing_violation").get("violation_id"),
        Some("enf-v-1")
    );
    let stored = Keeper::violation(&chain.state, "enf-v-1").unwrap();
    assert!(
        stored.resolution.is_empty() && !stored.resolved,
        "client-set resolution fields are ignored"
    );
    assert_eq!(
        Keeper::cluster(&chain.state, "cluster-b")
            .unwrap()
            .reputation_bps,
        before
    );
    assert!(
        Keeper::cluster(&chain.state, "cluster-a")
            .unwrap()
            .reputation_bps
            < before
    );
    // Chain-assigned ids still work after client-chosen ones.
    let out = chain.ok(&p1, vec![report("", &job, "cluster-a")]);
    assert!(event(&out, "hpc_routing_violation")
        .get("violation_id")
        .unwrap()
        .starts_with("hpc-violation-"));
}

#[test]
fn a_raised_threshold_alerts_when_the_new_value_is_crossed() {
    let World {
        mut chain,
        alice,
        p1,
        authority,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job = scheduled(&out, "job_id");
    let alerts = |out: &TxOutcome| {
        out.events
            .iter()
            .filter(|e| e.kind == "hpc_routing_violation_threshold_exceeded")
            .count()
    };
    let mut fired = 0;
    for _ in 0..6 {
        fired += alerts(&chain.ok(
            &p1,
            vec![violation(&p1, &p1, &job, ViolationType::StaleDecision)],
        ));
    }
    assert_eq!(fired, 1, "crossed 5 once");
    let mut params = default_params();
    params.violation_alert_threshold = 8;
    chain.ok(&authority, vec![update_params(&authority, params)]);
    let seventh = alerts(&chain.ok(
        &p1,
        vec![violation(&p1, &p1, &job, ViolationType::StaleDecision)],
    ));
    let eighth = alerts(&chain.ok(
        &p1,
        vec![violation(&p1, &p1, &job, ViolationType::StaleDecision)],
    ));
    assert_eq!(
        (seventh, eighth),
        (0, 1),
        "crossing the raised threshold alerts again"
    );
}

#[test]
fn rescheduled_records_route_on_their_decision_and_only_the_decisions_provider_records() {
    let World {
        mut chain,
        alice,
        p1,
        p2,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job = scheduled(&out, "job_id");
    let decision = scheduled(&out, "decision_id");
    // provider2 is not the decision's provider: its rejected record is refused.
    chain.fails(
        &p2,
        vec![audit(
            &p2,
            "p2-no",
            &job,
            &decision,
            "cluster-b",
            AuditStatus::Rejected,
        )],
        "hpc",
        4,
        "is not the provider of decision",
    );
    assert_eq!(
        Keeper::job(&chain.state, &job).unwrap().state(),
        JobState::Scheduled
    );
    // The provider gives its decision up for a fresh one and closes its attempt in the
    // same tx with a rescheduled record on the superseded decision: informational.
    let out = chain.ok(
        &p1,
        vec![
            to_any(&MsgRequestReschedule {
                requester: p1.addr.to_string(),
                job_id: job.clone(),
                reason: "stale".into(),
                excluded_cluster_ids: vec![],
                kind: RescheduleKind::Refresh as i32,
            }),
            audit(
                &p1,
                "p1-gave-up",
                &job,
                &decision,
                "cluster-a",
                AuditStatus::Rescheduled,
            ),
        ],
    );
    assert!(out.events.iter().all(|e| e.kind != "hpc_job_routed"));
    let closed = Keeper::audit(&chain.state, "p1-gave-up").unwrap();
    assert_eq!(closed.scheduling_decision_id, decision);
    assert_eq!(
        Keeper::job(&chain.state, &job).unwrap().state(),
        JobState::Scheduled
    );
    let fresh = event(&out, "hpc_job_rescheduled")
        .get("new_decision_id")
        .unwrap()
        .to_string();
    assert_ne!(fresh, decision);
    // A refreshed decision run where it says routes the job, audited "rescheduled".
    let out = chain.ok(
        &p1,
        vec![audit(
            &p1,
            "p1-re",
            &job,
            &fresh,
            "cluster-a",
            AuditStatus::Rescheduled,
        )],
    );
    assert_eq!(
        event(&out, "hpc_job_routed").get("status"),
        Some("rescheduled")
    );
    assert_eq!(
        Keeper::job(&chain.state, &job).unwrap().state(),
        JobState::Routed
    );
}

#[test]
fn explain_shows_the_weights_a_decision_was_scored_with() {
    let World {
        mut chain,
        alice,
        authority,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job_id = scheduled(&out, "job_id");
    let original = default_params().default_weights.unwrap();

    // Governance changes the default weights after the decision.
    let mut params = default_params();
    let w = params.default_weights.as_mut().unwrap();
    (w.latency_bps, w.queue_bps) = (w.latency_bps + 500, w.queue_bps - 500);
    let changed = *w;
    assert_ne!(changed, original);
    chain.ok(&authority, vec![update_params(&authority, params)]);

    let explain: QueryExplainDecisionResponse = chain.query(
        "ExplainDecision",
        QueryExplainDecisionRequest {
            job_id: job_id.clone(),
            ..Default::default()
        },
    );
    assert_eq!(explain.effective_weights, Some(original));
    assert_eq!(explain.decision.unwrap().weights, Some(original));

    // A decision made now uses (and records) the new weights.
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let later = scheduled(&out, "job_id");
    let explain: QueryExplainDecisionResponse = chain.query(
        "ExplainDecision",
        QueryExplainDecisionRequest {
            job_id: later,
            ..Default::default()
        },
    );
    assert_eq!(explain.effective_weights, Some(changed));
}

#[test]
fn decisions_still_in_use_at_the_head_of_the_queue_do_not_stall_pruning() {
    let World {
        mut chain,
        alice,
        p1,
        authority,
        ..
    } = world();
    chain.ok(&p1, vec![register(&p1, "cluster-big", 1000, 5, 1_000_000)]);
    let mut params = default_params();
    params.decision_retention_blocks = 3;
    chain.ok(&authority, vec![update_params(&authority, params)]);
    // More running jobs than one block examines (400), all older than the finished one.
    let active: Vec<String> = (0..410)
        .map(|_| scheduled(&chain.ok(&alice, vec![submit(&alice, 1)]), "decision_id"))
        .collect();
    chain.next_block();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let (done, done_decision) = (scheduled(&out, "job_id"), scheduled(&out, "decision_id"));
    chain.ok(&alice, vec![cancel(&alice, done)]);
    for _ in 0..8 {
        chain.next_block();
    }
    assert!(
        Keeper::decision(&chain.state, &done_decision).is_none(),
        "the finished job's decision is pruned behind 410 in-use ones"
    );
    assert!(active
        .iter()
        .all(|d| Keeper::decision(&chain.state, d).is_some()));

    // The sweep position is part of genesis: export → import reproduces the state.
    while Keeper::prune_cursor(&chain.state, "decisions").is_none() {
        chain.next_block();
    }
    let exported = serde_json::to_vec(&chain.app.export(&chain.state)).unwrap();
    let mut imported = BTreeMap::new();
    chain
        .app
        .init_chain(&mut imported, CHAIN, &BlockLimits::default(), &exported)
        .unwrap();
    assert_eq!(
        imported, chain.state,
        "export → import reproduces every key, the sweep positions included"
    );
}

/// Issue 8, item 1: the id an enforcer will use cannot be taken by anyone else (it is in
/// the provider's namespace, and only the decision's provider records for the decision),
/// and "already recorded" (9) means the same record from the same signer, nothing else.
#[test]
fn audit_record_ids_cannot_be_front_run() {
    let (alice, p1, p2, authority, mallory) = (key(1), key(2), key(3), key(4), key(5));
    let mut chain = Chain::new(&[&alice, &p1, &p2, &authority, &mallory], &authority);
    chain.ok(&p1, vec![register(&p1, "cluster-a", 8, 10, 1_000_000)]);
    chain.ok(&p2, vec![register(&p2, "cluster-b", 8, 150, 1_000_000)]);
    // Any account can register a (slow, expensive) cluster.
    chain.ok(
        &mallory,
        vec![register(&mallory, "cluster-m", 8, 199, 9_000_000)],
    );
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let (job, decision) = (scheduled(&out, "job_id"), scheduled(&out, "decision_id"));
    assert_eq!(scheduled(&out, "cluster_id"), "cluster-a");
    // The id provider1's enforcer will use (derived from public data).
    let id = ids::scoped(&p1.addr.to_string(), "ra-0123456789abcdef");

    // In the same block, before provider1: a forged REJECTED record under that id, on the
    // forger's cluster or on no cluster of the decision, is refused every way.
    chain.fails(
        &mallory,
        vec![audit(
            &mallory,
            &id,
            &job,
            &decision,
            "cluster-m",
            AuditStatus::Rejected,
        )],
        "sdk",
        18,
        "is in the namespace of",
    );
    chain.fails(
        &mallory,
        vec![audit(
            &mallory,
            "ra-0123456789abcdef",
            &job,
            &decision,
            "cluster-m",
            AuditStatus::Rejected,
        )],
        "hpc",
        4,
        "is not the provider of decision",
    );
    chain.fails(
        &mallory,
        vec![audit(
            &mallory,
            "ra-0123456789abcdef",
            &job,
            "",
            "cluster-m",
            AuditStatus::Rejected,
        )],
        "hpc",
        4,
        "is not the provider of job",
    );

    // provider1's record lands and routes the job; it is the job's only record.
    let out = chain.ok(
        &p1,
        vec![audit(
            &p1,
            &id,
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
    );
    assert_eq!(
        event(&out, "hpc_job_routed").get("record_id"),
        Some(id.as_str())
    );
    assert_eq!(
        Keeper::job(&chain.state, &job).unwrap().state(),
        JobState::Routed
    );
    let records: QueryRoutingAuditRecordsResponse = chain.query(
        "RoutingAuditRecords",
        QueryRoutingAuditRecordsRequest {
            job_id: job.clone(),
            ..Default::default()
        },
    );
    assert_eq!(records.records.len(), 1);
    assert_eq!(records.records[0].provider_address, p1.addr.to_string());

    // The identical record again: "already recorded" (an outbox confirms it) ...
    let again = audit(
        &p1,
        &id,
        &job,
        &decision,
        "cluster-a",
        AuditStatus::Approved,
    );
    chain.fails(
        &p1,
        vec![again],
        "hpc",
        contract::codes::DUPLICATE_RECORD,
        "already recorded",
    );
    // ... a different record under the same id is a conflict, never "already recorded".
    chain.fails(
        &p1,
        vec![audit(
            &p1,
            &id,
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Rejected,
        )],
        "hpc",
        contract::codes::RECORD_ID_CONFLICT,
        "is taken by a different record",
    );

    // Plain ids stay first come, first served, but another signer's record under one is
    // a conflict too. (provider2 gets a job by the owner's reschedule.)
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job2 = scheduled(&out, "job_id");
    let out = chain.ok(
        &alice,
        vec![to_any(&MsgRequestReschedule {
            requester: alice.addr.to_string(),
            job_id: job2.clone(),
            reason: "elsewhere".into(),
            excluded_cluster_ids: vec!["cluster-a".into()],
            kind: RescheduleKind::OwnerRequest as i32,
        })],
    );
    let ev = event(&out, "hpc_job_rescheduled");
    assert_eq!(ev.get("provider"), Some(p2.addr.to_string().as_str()));
    let decision2 = ev.get("new_decision_id").unwrap().to_string();
    chain.ok(
        &p1,
        vec![audit(
            &p1,
            "shared-1",
            &job,
            "",
            "cluster-a",
            AuditStatus::Rescheduled,
        )],
    );
    chain.fails(
        &p2,
        vec![audit(
            &p2,
            "shared-1",
            &job2,
            &decision2,
            "cluster-b",
            AuditStatus::Approved,
        )],
        "hpc",
        contract::codes::RECORD_ID_CONFLICT,
        "is taken by a different record",
    );
    // The id limits are the contract's.
    assert_eq!(
        hpc_state::hpc::keeper::MAX_ID_LEN,
        contract::ids::MAX_ID_LEN
    );
}

/// Issue 8, item 1, for violation reports (same id scheme): namespaced ids, and 13 only
/// for the same violation from the same reporter.
#[test]
fn violation_ids_are_namespaced_and_duplicates_mean_the_same_report() {
    let (alice, p1, authority, mallory) = (key(1), key(2), key(4), key(5));
    let mut chain = Chain::new(&[&alice, &p1, &authority, &mallory], &authority);
    chain.ok(&p1, vec![register(&p1, "cluster-a", 8, 10, 1_000_000)]);
    chain.ok(
        &mallory,
        vec![register(&mallory, "cluster-m", 8, 199, 9_000_000)],
    );
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job = scheduled(&out, "job_id");
    let id = ids::scoped(&p1.addr.to_string(), "rv-0123456789abcdef");
    let report = |reporter: &Key, id: &str, cluster: &str, details: &str| {
        to_any(&MsgReportRoutingViolation {
            reporter: reporter.addr.to_string(),
            violations: vec![RoutingViolation {
                violation_id: id.into(),
                job_id: job.clone(),
                violation_type: ViolationType::StaleDecision as i32,
                provider_address: reporter.addr.to_string(),
                actual_cluster_id: cluster.into(),
                details: details.into(),
                ..Default::default()
            }],
        })
    };
    // A self-report by the forger under provider1's violation id is refused.
    chain.fails(
        &mallory,
        vec![report(&mallory, &id, "cluster-m", "squat")],
        "sdk",
        18,
        "is in the namespace of",
    );
    chain.ok(
        &p1,
        vec![report(&p1, &id, "cluster-a", "decision 120 blocks old")],
    );
    chain.fails(
        &p1,
        vec![report(&p1, &id, "cluster-a", "decision 120 blocks old")],
        "hpc",
        contract::codes::DUPLICATE_VIOLATION,
        "already recorded",
    );
    chain.fails(
        &p1,
        vec![report(&p1, &id, "cluster-a", "decision 121 blocks old")],
        "hpc",
        contract::codes::VIOLATION_ID_CONFLICT,
        "is taken by a different violation",
    );
    // Plain ids: another reporter's violation under a taken one is a conflict.
    chain.ok(&p1, vec![report(&p1, "plain-1", "cluster-a", "x")]);
    chain.fails(
        &mallory,
        vec![report(&mallory, "plain-1", "cluster-m", "x")],
        "hpc",
        contract::codes::VIOLATION_ID_CONFLICT,
        "is taken by a different violation",
    );
}

/// Issue 8, item 2: the kind of a reschedule and who asked are typed fields the chain sets
/// from the signer's role, never read from `reason`; an owner cannot produce a provider
/// fallback decision.
#[test]
fn reschedule_kind_is_typed_and_owners_cannot_request_a_provider_fallback() {
    let World {
        mut chain,
        alice,
        p1,
        p2,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job = scheduled(&out, "job_id");
    let first = scheduled(&out, "decision_id");
    let resched = |who: &Key, kind: RescheduleKind, reason: &str, exclude: &[&str]| {
        to_any(&MsgRequestReschedule {
            requester: who.addr.to_string(),
            job_id: job.clone(),
            reason: reason.into(),
            excluded_cluster_ids: exclude.iter().map(|c| c.to_string()).collect(),
            kind: kind as i32,
        })
    };
    let decision = |chain: &Chain| {
        let id = Keeper::job(&chain.state, &job).unwrap().current_decision_id;
        Keeper::decision(&chain.state, &id).unwrap()
    };
    assert_eq!(
        decision(&chain).reschedule_kind(),
        RescheduleKind::Unspecified
    );
    assert!(decision(&chain).requested_by.is_empty());

    // The owner may not state a provider kind ...
    for kind in [
        RescheduleKind::ProviderFallback,
        RescheduleKind::Refresh,
        RescheduleKind::MissingDecision,
    ] {
        chain.fails(
            &alice,
            vec![resched(
                &alice,
                kind,
                "fallback: cluster-a down",
                &["cluster-a"],
            )],
            "hpc",
            4,
            "only the provider of the job's current cluster",
        );
    }
    // ... and its "fallback:" reason is only text: the decision says owner_request.
    let out = chain.ok(
        &alice,
        vec![resched(
            &alice,
            RescheduleKind::Unspecified,
            "fallback: cluster-a down",
            &["cluster-a"],
        )],
    );
    let ev = event(&out, "hpc_job_rescheduled");
    assert_eq!(ev.get("kind"), Some("owner_request"));
    assert_eq!(ev.get("requester_role"), Some("owner"));
    assert_eq!(
        ev.get("requested_by"),
        Some(alice.addr.to_string().as_str())
    );
    let d = decision(&chain);
    assert_eq!(d.previous_decision_id, first);
    assert_eq!(d.selected_cluster_id, "cluster-b");
    assert_eq!(d.reschedule_kind(), RescheduleKind::OwnerRequest);
    assert_eq!(d.requester_role(), RequesterRole::Owner);
    assert_eq!(d.requested_by, alice.addr.to_string());
    assert_eq!(
        reschedule::provider_kind(&d),
        None,
        "an enforcer must audit this decision as an original one"
    );

    // The provider of the current decision (provider2 now) may ask for a provider
    // fallback, not for an owner request; provider1 is no longer its provider.
    chain.fails(
        &p2,
        vec![resched(&p2, RescheduleKind::OwnerRequest, "", &[])],
        "hpc",
        4,
        "only the job's owner",
    );
    chain.fails(
        &p1,
        vec![resched(
            &p1,
            RescheduleKind::ProviderFallback,
            "",
            &["cluster-b"],
        )],
        "hpc",
        4,
        "neither the owner",
    );
    let out = chain.ok(
        &p2,
        vec![resched(
            &p2,
            RescheduleKind::ProviderFallback,
            "cluster_unavailable: slurmctld down",
            &["cluster-b"],
        )],
    );
    assert_eq!(
        event(&out, "hpc_job_rescheduled").get("kind"),
        Some("provider_fallback")
    );
    let d = decision(&chain);
    assert_eq!(d.selected_cluster_id, "cluster-a");
    assert_eq!(d.requester_role(), RequesterRole::Provider);
    assert_eq!(d.requested_by, p2.addr.to_string());
    assert_eq!(
        reschedule::provider_kind(&d),
        Some(RescheduleKind::ProviderFallback)
    );

    // The requesting provider may close its attempt with an informational RESCHEDULED
    // record off the new cluster, and nothing else for that decision.
    chain.fails(
        &p2,
        vec![audit(
            &p2,
            "p2-fallback",
            &job,
            &d.decision_id,
            "cluster-b",
            AuditStatus::Fallback,
        )],
        "hpc",
        4,
        "is not the provider of decision",
    );
    chain.ok(
        &p2,
        vec![audit(
            &p2,
            "p2-closed",
            &job,
            &d.decision_id,
            "cluster-b",
            AuditStatus::Rescheduled,
        )],
    );
    assert_eq!(
        Keeper::job(&chain.state, &job).unwrap().state(),
        JobState::Scheduled
    );
    // The receiving provider audits the fallback and routes the job.
    let out = chain.ok(
        &p1,
        vec![audit(
            &p1,
            "p1-fallback",
            &job,
            &d.decision_id,
            "cluster-a",
            AuditStatus::Fallback,
        )],
    );
    assert_eq!(
        event(&out, "hpc_job_routed").get("status"),
        Some("fallback")
    );
}

/// Genesis import applies the id namespaces too: a namespaced audit record id must belong
/// to the record's provider, a namespaced violation id to its reporter.
#[test]
fn genesis_refuses_ids_in_another_namespace() {
    let World {
        mut chain,
        alice,
        p1,
        p2,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let (job, decision) = (scheduled(&out, "job_id"), scheduled(&out, "decision_id"));
    let p1_addr = p1.addr.to_string();
    chain.ok(
        &p1,
        vec![audit(
            &p1,
            &ids::scoped(&p1_addr, "ra-1"),
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
    );
    chain.ok(
        &p1,
        vec![to_any(&MsgReportRoutingViolation {
            reporter: p1_addr.clone(),
            violations: vec![RoutingViolation {
                violation_id: ids::scoped(&p1_addr, "rv-1"),
                job_id: job.clone(),
                violation_type: ViolationType::StaleDecision as i32,
                provider_address: p1_addr.clone(),
                actual_cluster_id: "cluster-a".into(),
                ..Default::default()
            }],
        })],
    );
    let exported = serde_json::to_value(chain.app.export(&chain.state)).unwrap();
    let import = |app_state: &serde_json::Value| {
        App::default().init_chain(
            &mut BTreeMap::new(),
            CHAIN,
            &BlockLimits::default(),
            &serde_json::to_vec(app_state).unwrap(),
        )
    };
    import(&exported).expect("as exported");
    let mut moved = exported.clone();
    moved["hpc"]["audit_records"][0]["provider_address"] = p2.addr.to_string().into();
    let err = import(&moved).unwrap_err().to_string();
    assert!(
        err.contains("hpc.audit_records[0].record_id") && err.contains("namespace"),
        "{err}"
    );
    let mut moved = exported;
    moved["hpc"]["violations"][0]["reporter"] = p2.addr.to_string().into();
    let err = import(&moved).unwrap_err().to_string();
    assert!(
        err.contains("hpc.violations[0].violation_id") && err.contains("namespace"),
        "{err}"
    );
}

/// State-only filters read the by-state indexes, which follow every transition: the
/// answer lists exactly the items in that state, in id order, page by page.
#[test]
fn state_filters_list_exactly_the_items_in_that_state_as_they_move() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let out = chain.ok(&alice, vec![submit(&alice, 1)]);
        jobs.push(scheduled(&out, "job_id"));
    }
    chain.ok(&alice, vec![cancel(&alice, jobs[1].clone())]);
    let in_state = |chain: &Chain, state: JobState, limit: u64| -> (Vec<String>, Vec<u8>) {
        let r: QueryJobsResponse = chain.query(
            "Jobs",
            QueryJobsRequest {
                state: state as i32,
                pagination: Some(
                    cosmos_sdk_proto::cosmos::base::query::v1beta1::PageRequest {
                        limit,
                        ..Default::default()
                    },
                ),
                ..Default::default()
            },
        );
        let ids = r.jobs.into_iter().map(|j| j.job_id).collect();
        (ids, r.pagination.unwrap_or_default().next_key)
    };
    assert_eq!(
        in_state(&chain, JobState::Scheduled, 10).0,
        vec![jobs[0].clone(), jobs[2].clone()]
    );
    assert_eq!(
        in_state(&chain, JobState::Cancelled, 10).0,
        vec![jobs[1].clone()]
    );
    let (first, next) = in_state(&chain, JobState::Scheduled, 1);
    assert_eq!((first, next.is_empty()), (vec![jobs[0].clone()], false));
    assert!(in_state(&chain, JobState::Completed, 10).0.is_empty());
    // The index itself holds no stale entry (the page filter would hide one).
    let indexed = |state: JobState| -> Vec<String> {
        let prefix = [keys::JOBS_BY_STATE, &[state as u8]].concat();
        chain
            .state
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| String::from_utf8(k[prefix.len()..].to_vec()).unwrap())
            .collect()
    };
    assert_eq!(
        indexed(JobState::Scheduled),
        vec![jobs[0].clone(), jobs[2].clone()]
    );
    assert_eq!(indexed(JobState::Cancelled), vec![jobs[1].clone()]);

    chain.ok(
        &p1,
        vec![to_any(&MsgDeregisterCluster {
            provider: p1.addr.to_string(),
            cluster_id: "cluster-a".into(),
        })],
    );
    let clusters_in = |state: ClusterState| -> Vec<String> {
        let r: QueryClustersResponse = chain.query(
            "Clusters",
            QueryClustersRequest {
                state: state as i32,
                ..Default::default()
            },
        );
        r.clusters.into_iter().map(|c| c.cluster_id).collect()
    };
    assert_eq!(clusters_in(ClusterState::Deregistered), vec!["cluster-a"]);
    assert_eq!(clusters_in(ClusterState::Active), vec!["cluster-b"]);
    assert!(clusters_in(ClusterState::Offline).is_empty());
}
