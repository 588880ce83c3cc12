//! SPEC §5's mode table, cell by cell, for `hpc_enforcer::decision::evaluate`.
//!
//! Each row: an enforcement mode, a list of modifiers applied to a baseline input (a fresh
//! decision of job `hpc-job-1` on this enforcer's cluster, 5 blocks / 30 s old, the local
//! cluster available, healthy, with 4 free nodes for a 2-node job; refresh, fallback,
//! chain fallback and require_decision all on), and the expected outcome, terminal audit
//! status and violations (type, severity). Every row is also checked against invariants
//! that hold for every evaluation (ids, ages, chain cross-checks, log events).

use std::collections::BTreeSet;

use hpc_enforcer::config::{EnforcementMode, RoutingConfig};
use hpc_enforcer::decision::{
    attempt_of, evaluate, events, record_id, violation_id, Attempt, ChainHead, ChainRoutingParams,
    ClusterStatus, Evaluation, EvaluationInput, LookupStatus, Outcome, Placement, ProviderIdentity,
    RequestKind,
};
use hpc_primitives::contract::ids;
use hpc_proto::cosmos_sdk_proto::Timestamp;
use hpc_proto::virtengine::hpc::v1::{
    AuditStatus as AS, Job, JobRequirements, RequesterRole, RescheduleKind, SchedulingDecision,
    ViolationType as VT,
};

const PROVIDER: &str = "virtengine1ldl9qrqrzexzp29udzx9h437zx9g2zy9caleyg";
const OTHER_PROVIDER: &str = "virtengine1mvdkzsx8x95x3939fvxgvhw0mreqv6k753s752";
const LOCAL: &str = "hpc-cluster-1";
const SIBLING: &str = "hpc-cluster-2";
const OTHER_CLUSTER: &str = "other-cluster-1";
const JOB: &str = "hpc-job-1";
const DECISION: &str = "hpc-decision-1";
const PREVIOUS: &str = "hpc-decision-0";
const CREATED_HEIGHT: u64 = 1_000;
const CREATED_TIME: i64 = 1_700_000_000;

use EnforcementMode::{AuditOnly as AUDIT, Permissive as PERM, Strict as STRICT};

/// Modifiers of the baseline input.
#[derive(Clone, Copy, Debug)]
enum M {
    /// The chain has no decision.
    Missing,
    /// The decision lookup failed.
    LookupFailed,
    /// The chain returned a decision of another job.
    OtherJob,
    /// 101 blocks old (max 100).
    Stale,
    /// 601 s old (max 600), 5 blocks.
    StaleSeconds,
    AgeBlocks(u64),
    AgeSeconds(u64),
    /// Local scheduler unavailable.
    Unavailable,
    /// Local cluster unhealthy (health monitor).
    Unhealthy,
    /// 1 free node, the job needs 2.
    Capacity,
    /// Placement requested here (OnCluster) but the decision names another provider's cluster.
    Mismatch,
    /// The decision names another provider's cluster; placement follows the decision.
    OtherProvider,
    /// No chain head.
    HeadUnknown,
    /// The head is behind the decision (decision newer than our view).
    HeadBehind,
    RefreshOff,
    FallbackConfigOff,
    FallbackChainOff,
    RequireOff,
    Disabled,
    Replacement(RequestKind),
    ChainMaxBlocks(u64),
    ChainMaxSeconds(u64),
    /// The job's current decision is a newer one.
    Superseded,
    /// The job could not be read.
    JobUnknown,
    /// Placement requested on a cluster this enforcer does not run.
    TargetNotOurs,
    /// The chain lists another provider for the job.
    ForeignJob,
    /// OnCluster(LOCAL) placement with the decision on LOCAL (explicit, matching).
    OnLocal,
    /// This enforcer also runs SIBLING, and the decision names it.
    Sibling,
}

/// Expected outcome.
#[derive(Clone, Copy, Debug)]
enum X {
    Run(&'static str),
    Reject,
    Req(RequestKind),
    NotForUs,
}

const MISSING: (VT, u32) = (VT::MissingDecision, 4);
const STALE2: (VT, u32) = (VT::StaleDecision, 2);
const STALE1: (VT, u32) = (VT::StaleDecision, 1);
const MISMATCH: (VT, u32) = (VT::ClusterMismatch, 5);
const UNAVAIL: (VT, u32) = (VT::ClusterUnavailable, 3);
const CAPACITY: (VT, u32) = (VT::CapacityExceeded, 3);
const UNAUTH: (VT, u32) = (VT::UnauthorizedFallback, 4);

use RequestKind::{Fallback as FB, Missing as MI, Refresh as RF};

type Row = (
    EnforcementMode,
    &'static [M],
    X,
    Option<AS>,
    &'static [(VT, u32)],
);

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // ---------------------------------------------------------------- strict
    (STRICT, &[], X::Run(LOCAL), Some(AS::Approved), &[]),
    (STRICT, &[M::OnLocal], X::Run(LOCAL), Some(AS::Approved), &[]),
    (STRICT, &[M::Missing], X::Reject, Some(AS::Rejected), &[MISSING]),
    (STRICT, &[M::Missing, M::RequireOff], X::Reject, Some(AS::Rejected), &[MISSING]),
    (STRICT, &[M::LookupFailed], X::Reject, Some(AS::Rejected), &[]),
    (STRICT, &[M::OtherJob], X::Reject, Some(AS::Rejected), &[MISSING]),
    (STRICT, &[M::Stale], X::Req(RF), Some(AS::Rescheduled), &[]),
    (STRICT, &[M::StaleSeconds], X::Req(RF), Some(AS::Rescheduled), &[]),
    (STRICT, &[M::Stale, M::RefreshOff], X::Reject, Some(AS::Rejected), &[STALE2]),
    (STRICT, &[M::StaleSeconds, M::RefreshOff], X::Reject, Some(AS::Rejected), &[STALE2]),
    (STRICT, &[M::Unavailable], X::Reject, Some(AS::Rejected), &[UNAVAIL]),
    (STRICT, &[M::Unhealthy], X::Reject, Some(AS::Rejected), &[UNAVAIL]),
    (STRICT, &[M::Capacity], X::Reject, Some(AS::Rejected), &[CAPACITY]),
    // Strict never falls back, whatever the fallback settings ("—" in the table).
    (STRICT, &[M::Unavailable, M::FallbackConfigOff], X::Reject, Some(AS::Rejected), &[UNAVAIL]),
    (STRICT, &[M::Unavailable, M::FallbackChainOff], X::Reject, Some(AS::Rejected), &[UNAVAIL]),
    (STRICT, &[M::Capacity, M::FallbackChainOff], X::Reject, Some(AS::Rejected), &[CAPACITY]),
    // Local checks come before staleness: no refresh for a cluster that cannot run the job.
    (STRICT, &[M::Stale, M::Unavailable], X::Reject, Some(AS::Rejected), &[UNAVAIL]),
    (STRICT, &[M::Mismatch], X::Reject, None, &[MISMATCH]),
    (STRICT, &[M::OtherProvider], X::NotForUs, None, &[]),
    (STRICT, &[M::HeadUnknown], X::Reject, Some(AS::Rejected), &[]),
    (STRICT, &[M::HeadBehind], X::Run(LOCAL), Some(AS::Approved), &[]),
    (STRICT, &[M::AgeBlocks(100)], X::Run(LOCAL), Some(AS::Approved), &[]),
    (STRICT, &[M::AgeBlocks(101), M::RefreshOff], X::Reject, Some(AS::Rejected), &[STALE2]),
    (STRICT, &[M::AgeSeconds(600)], X::Run(LOCAL), Some(AS::Approved), &[]),
    (STRICT, &[M::AgeSeconds(601), M::RefreshOff], X::Reject, Some(AS::Rejected), &[STALE2]),
    (STRICT, &[M::AgeBlocks(100), M::AgeSeconds(600)], X::Run(LOCAL), Some(AS::Approved), &[]),
    // The stricter of config and chain limits applies.
    (STRICT, &[M::ChainMaxBlocks(50), M::AgeBlocks(50)], X::Run(LOCAL), Some(AS::Approved), &[]),
    (STRICT, &[M::ChainMaxBlocks(50), M::AgeBlocks(51), M::RefreshOff], X::Reject, Some(AS::Rejected), &[STALE2]),
    (STRICT, &[M::ChainMaxSeconds(60), M::AgeSeconds(61), M::RefreshOff], X::Reject, Some(AS::Rejected), &[STALE2]),
    (STRICT, &[M::ChainMaxSeconds(6000), M::AgeSeconds(601), M::RefreshOff], X::Reject, Some(AS::Rejected), &[STALE2]),
    (STRICT, &[M::Superseded], X::NotForUs, None, &[]),
    (STRICT, &[M::JobUnknown], X::Reject, None, &[]),
    (STRICT, &[M::TargetNotOurs], X::Reject, None, &[]),
    (STRICT, &[M::ForeignJob, M::Missing], X::NotForUs, None, &[]),
    // Placed here explicitly, no decision, the chain lists another provider: refuse, but
    // no rejected record (it would reject the job on chain for its real provider).
    (STRICT, &[M::ForeignJob, M::Missing, M::OnLocal], X::Reject, None, &[MISSING]),
    (STRICT, &[M::Sibling], X::Run(SIBLING), Some(AS::Approved), &[]),
    // Replacement decisions: same rules, never a second request.
    (STRICT, &[M::Replacement(RF)], X::Run(LOCAL), Some(AS::Rescheduled), &[]),
    (STRICT, &[M::Replacement(RF), M::Stale], X::Reject, Some(AS::Rejected), &[STALE2]),
    (STRICT, &[M::Replacement(RF), M::Unavailable], X::Reject, Some(AS::Rejected), &[UNAVAIL]),
    (STRICT, &[M::Replacement(RF), M::Capacity], X::Reject, Some(AS::Rejected), &[CAPACITY]),
    (STRICT, &[M::Replacement(RF), M::Missing], X::Reject, Some(AS::Rejected), &[MISSING]),
    (STRICT, &[M::Replacement(RF), M::LookupFailed], X::Reject, Some(AS::Rejected), &[]),
    (STRICT, &[M::Replacement(RF), M::HeadUnknown], X::Reject, Some(AS::Rejected), &[]),
    (STRICT, &[M::Replacement(RF), M::OtherProvider], X::NotForUs, Some(AS::Rescheduled), &[]),
    // A replacement is evaluated even if the job snapshot still names the old decision.
    (STRICT, &[M::Replacement(RF), M::Superseded], X::Run(LOCAL), Some(AS::Rescheduled), &[]),
    // Enforcement disabled: run, no checks, no violations.
    (STRICT, &[M::Disabled], X::Run(LOCAL), Some(AS::Approved), &[]),
    (STRICT, &[M::Disabled, M::Stale, M::Unavailable, M::HeadUnknown], X::Run(LOCAL), Some(AS::Approved), &[]),
    (STRICT, &[M::Disabled, M::Missing], X::Run(LOCAL), Some(AS::Fallback), &[]),
    (STRICT, &[M::Disabled, M::Mismatch], X::Run(LOCAL), Some(AS::Fallback), &[]),
    (STRICT, &[M::Disabled, M::OtherProvider], X::NotForUs, None, &[]),
    // ------------------------------------------------------------ permissive
    (PERM, &[], X::Run(LOCAL), Some(AS::Approved), &[]),
    (PERM, &[M::Missing], X::Req(MI), None, &[MISSING]),
    (PERM, &[M::Missing, M::RequireOff], X::Req(MI), None, &[]),
    (PERM, &[M::OtherJob], X::Req(MI), None, &[MISSING]),
    (PERM, &[M::LookupFailed], X::Req(MI), None, &[]),
    (PERM, &[M::Stale], X::Req(RF), Some(AS::Rescheduled), &[]),
    (PERM, &[M::StaleSeconds], X::Req(RF), Some(AS::Rescheduled), &[]),
    (PERM, &[M::Stale, M::RefreshOff], X::Run(LOCAL), Some(AS::Approved), &[STALE1]),
    (PERM, &[M::AgeSeconds(601), M::RefreshOff], X::Run(LOCAL), Some(AS::Approved), &[STALE1]),
    (PERM, &[M::AgeBlocks(100), M::AgeSeconds(600), M::RefreshOff], X::Run(LOCAL), Some(AS::Approved), &[]),
    (PERM, &[M::Unavailable], X::Req(FB), Some(AS::Rescheduled), &[]),
    (PERM, &[M::Unhealthy], X::Req(FB), Some(AS::Rescheduled), &[]),
    (PERM, &[M::Capacity], X::Req(FB), Some(AS::Rescheduled), &[]),
    // A fallback decision is fresh too: fallback wins over refresh.
    (PERM, &[M::Stale, M::Unavailable], X::Req(FB), Some(AS::Rescheduled), &[]),
    (PERM, &[M::Unavailable, M::FallbackConfigOff], X::Reject, Some(AS::Rejected), &[UNAUTH]),
    (PERM, &[M::Unavailable, M::FallbackChainOff], X::Reject, Some(AS::Rejected), &[UNAUTH]),
    (PERM, &[M::Capacity, M::FallbackConfigOff], X::Reject, Some(AS::Rejected), &[UNAUTH]),
    (PERM, &[M::Capacity, M::FallbackChainOff], X::Reject, Some(AS::Rejected), &[UNAUTH]),
    (PERM, &[M::Mismatch], X::Run(LOCAL), Some(AS::Fallback), &[]),
    (PERM, &[M::Mismatch, M::FallbackConfigOff], X::Reject, None, &[UNAUTH]),
    (PERM, &[M::Mismatch, M::FallbackChainOff], X::Reject, None, &[UNAUTH]),
    (PERM, &[M::Mismatch, M::Unavailable], X::Reject, None, &[]),
    (PERM, &[M::OtherProvider], X::NotForUs, None, &[]),
    (PERM, &[M::HeadUnknown], X::Run(LOCAL), Some(AS::Approved), &[]),
    (PERM, &[M::Sibling], X::Run(SIBLING), Some(AS::Approved), &[]),
    (PERM, &[M::JobUnknown], X::Reject, None, &[]),
    (PERM, &[M::Replacement(MI)], X::Run(LOCAL), Some(AS::Rescheduled), &[]),
    (PERM, &[M::Replacement(RF)], X::Run(LOCAL), Some(AS::Rescheduled), &[]),
    (PERM, &[M::Replacement(FB), M::Sibling], X::Run(SIBLING), Some(AS::Fallback), &[]),
    (PERM, &[M::Replacement(FB), M::OtherProvider], X::NotForUs, Some(AS::Rescheduled), &[]),
    (PERM, &[M::Replacement(RF), M::OtherProvider], X::NotForUs, Some(AS::Rescheduled), &[]),
    (PERM, &[M::Replacement(RF), M::Stale], X::Run(LOCAL), Some(AS::Rescheduled), &[STALE1]),
    (PERM, &[M::Replacement(RF), M::Unavailable], X::Run(LOCAL), Some(AS::Rescheduled), &[UNAVAIL]),
    (PERM, &[M::Replacement(RF), M::Capacity], X::Run(LOCAL), Some(AS::Rescheduled), &[CAPACITY]),
    (PERM, &[M::Replacement(RF), M::Unavailable, M::Stale], X::Run(LOCAL), Some(AS::Rescheduled), &[UNAVAIL, STALE1]),
    (PERM, &[M::Replacement(FB), M::Sibling, M::Capacity], X::Run(SIBLING), Some(AS::Fallback), &[CAPACITY]),
    (PERM, &[M::Replacement(MI), M::Missing], X::Reject, Some(AS::Rejected), &[MISSING]),
    (PERM, &[M::Replacement(MI), M::LookupFailed], X::Reject, Some(AS::Rejected), &[]),
    (PERM, &[M::Replacement(MI), M::HeadUnknown], X::Run(LOCAL), Some(AS::Rescheduled), &[]),
    (PERM, &[M::Disabled, M::Unavailable], X::Run(LOCAL), Some(AS::Approved), &[]),
    // ------------------------------------------------------------ audit_only
    (AUDIT, &[], X::Run(LOCAL), Some(AS::Approved), &[]),
    (AUDIT, &[M::Missing], X::Run(LOCAL), Some(AS::Fallback), &[MISSING]),
    (AUDIT, &[M::Missing, M::RequireOff], X::Run(LOCAL), Some(AS::Fallback), &[MISSING]),
    (AUDIT, &[M::Missing, M::FallbackConfigOff], X::Run(LOCAL), Some(AS::Fallback), &[MISSING, UNAUTH]),
    (AUDIT, &[M::Missing, M::FallbackChainOff], X::Run(LOCAL), Some(AS::Fallback), &[MISSING, UNAUTH]),
    (AUDIT, &[M::OtherJob], X::Run(LOCAL), Some(AS::Fallback), &[MISSING]),
    (AUDIT, &[M::LookupFailed], X::Run(LOCAL), Some(AS::Fallback), &[]),
    (AUDIT, &[M::LookupFailed, M::FallbackConfigOff], X::Run(LOCAL), Some(AS::Fallback), &[UNAUTH]),
    (AUDIT, &[M::Stale], X::Run(LOCAL), Some(AS::Approved), &[STALE2]),
    (AUDIT, &[M::Stale, M::RefreshOff], X::Run(LOCAL), Some(AS::Approved), &[STALE2]),
    (AUDIT, &[M::StaleSeconds], X::Run(LOCAL), Some(AS::Approved), &[STALE2]),
    (AUDIT, &[M::AgeBlocks(100), M::AgeSeconds(600)], X::Run(LOCAL), Some(AS::Approved), &[]),
    (AUDIT, &[M::Unavailable], X::Run(LOCAL), Some(AS::Approved), &[]),
    (AUDIT, &[M::Unhealthy], X::Run(LOCAL), Some(AS::Approved), &[]),
    (AUDIT, &[M::Capacity], X::Run(LOCAL), Some(AS::Approved), &[]),
    // No fallback is used, so none is unauthorised.
    (AUDIT, &[M::Unavailable, M::FallbackConfigOff], X::Run(LOCAL), Some(AS::Approved), &[]),
    (AUDIT, &[M::Unavailable, M::FallbackChainOff], X::Run(LOCAL), Some(AS::Approved), &[]),
    (AUDIT, &[M::Stale, M::Unavailable], X::Run(LOCAL), Some(AS::Approved), &[STALE2]),
    (AUDIT, &[M::Mismatch], X::Run(LOCAL), Some(AS::Fallback), &[MISMATCH]),
    (AUDIT, &[M::Mismatch, M::FallbackChainOff], X::Run(LOCAL), Some(AS::Fallback), &[MISMATCH, UNAUTH]),
    (AUDIT, &[M::Mismatch, M::FallbackConfigOff], X::Run(LOCAL), Some(AS::Fallback), &[MISMATCH, UNAUTH]),
    (AUDIT, &[M::OtherProvider], X::NotForUs, None, &[]),
    (AUDIT, &[M::HeadUnknown], X::Run(LOCAL), Some(AS::Approved), &[]),
    (AUDIT, &[M::JobUnknown], X::Reject, None, &[]),
    (AUDIT, &[M::Replacement(RF)], X::Run(LOCAL), Some(AS::Rescheduled), &[]),
    (AUDIT, &[M::Replacement(RF), M::Stale], X::Run(LOCAL), Some(AS::Rescheduled), &[STALE2]),
];

fn baseline(mode: EnforcementMode) -> EvaluationInput {
    let job = Job {
        job_id: JOB.into(),
        owner: OTHER_PROVIDER.into(),
        requirements: Some(JobRequirements {
            nodes: 2,
            ..Default::default()
        }),
        current_decision_id: DECISION.into(),
        provider_address: PROVIDER.into(),
        correlation_id: "corr-1".into(),
        ..Default::default()
    };
    let decision = SchedulingDecision {
        decision_id: DECISION.into(),
        job_id: JOB.into(),
        selected_cluster_id: LOCAL.into(),
        selected_provider: PROVIDER.into(),
        score_bps: 9000,
        created_height: CREATED_HEIGHT,
        created_time: Some(Timestamp {
            seconds: CREATED_TIME,
            nanos: 0,
        }),
        ..Default::default()
    };
    EvaluationInput {
        job_id: JOB.into(),
        job: Some(job),
        decision: Some(decision),
        lookup: LookupStatus::Found,
        head: Some(ChainHead {
            height: CREATED_HEIGHT + 5,
            time_seconds: CREATED_TIME + 30,
        }),
        provider: ProviderIdentity {
            address: PROVIDER.into(),
            cluster_ids: BTreeSet::from([LOCAL.to_string()]),
        },
        cluster_status: ClusterStatus {
            available: true,
            free_nodes: 4,
            healthy: true,
        },
        routing: RoutingConfig {
            enforcement_mode: mode,
            ..RoutingConfig::default()
        },
        chain: ChainRoutingParams {
            allow_provider_fallback: true,
            max_decision_age_blocks: None,
            max_decision_age_seconds: None,
        },
        attempt: Attempt::Original,
        placement: Placement::FollowDecision,
    }
}

fn head(input: &mut EvaluationInput) -> &mut ChainHead {
    input.head.as_mut().expect("head set")
}

fn apply(input: &mut EvaluationInput, m: M) {
    match m {
        M::Missing => {
            input.lookup = LookupStatus::Missing;
            input.decision = None;
        }
        M::LookupFailed => {
            input.lookup = LookupStatus::Failed("grpc: deadline exceeded".into());
            input.decision = None;
        }
        M::OtherJob => input.decision.as_mut().unwrap().job_id = "hpc-job-2".into(),
        M::Stale => head(input).height = CREATED_HEIGHT + 101,
        M::StaleSeconds => head(input).time_seconds = CREATED_TIME + 601,
        M::AgeBlocks(n) => head(input).height = CREATED_HEIGHT + n,
        M::AgeSeconds(n) => head(input).time_seconds = CREATED_TIME + n as i64,
        M::Unavailable => input.cluster_status.available = false,
        M::Unhealthy => input.cluster_status.healthy = false,
        M::Capacity => input.cluster_status.free_nodes = 1,
        M::Mismatch => {
            input.placement = Placement::OnCluster(LOCAL.into());
            let d = input.decision.as_mut().unwrap();
            d.selected_cluster_id = OTHER_CLUSTER.into();
            d.selected_provider = OTHER_PROVIDER.into();
            input.job.as_mut().unwrap().provider_address = OTHER_PROVIDER.into();
        }
        M::OtherProvider => {
            let d = input.decision.as_mut().unwrap();
            d.selected_cluster_id = OTHER_CLUSTER.into();
            d.selected_provider = OTHER_PROVIDER.into();
            input.job.as_mut().unwrap().provider_address = OTHER_PROVIDER.into();
        }
        M::HeadUnknown => input.head = None,
        M::HeadBehind => {
            input.head = Some(ChainHead {
                height: CREATED_HEIGHT - 3,
                time_seconds: CREATED_TIME - 10,
            })
        }
        M::RefreshOff => input.routing.auto_refresh_stale_decisions = false,
        M::FallbackConfigOff => input.routing.allow_automatic_fallback = false,
        M::FallbackChainOff => input.chain.allow_provider_fallback = false,
        M::RequireOff => input.routing.require_decision_for_submission = false,
        M::Disabled => input.routing.enabled = false,
        M::Replacement(kind) => {
            input.attempt = Attempt::Replacement {
                previous_decision_id: PREVIOUS.into(),
                kind,
            };
            if let Some(d) = input.decision.as_mut() {
                // As the chain records our own request.
                d.previous_decision_id = PREVIOUS.into();
                d.reschedule_reason = format!("{} requested by the enforcer", kind.as_str());
                d.reschedule_kind = kind.to_proto() as i32;
                d.requested_by = PROVIDER.into();
                d.requester_role = RequesterRole::Provider as i32;
            }
        }
        M::ChainMaxBlocks(n) => input.chain.max_decision_age_blocks = Some(n),
        M::ChainMaxSeconds(n) => input.chain.max_decision_age_seconds = Some(n),
        M::Superseded => input.job.as_mut().unwrap().current_decision_id = "hpc-decision-2".into(),
        M::JobUnknown => input.job = None,
        M::TargetNotOurs => input.placement = Placement::OnCluster("not-ours-1".into()),
        M::ForeignJob => input.job.as_mut().unwrap().provider_address = OTHER_PROVIDER.into(),
        M::OnLocal => input.placement = Placement::OnCluster(LOCAL.into()),
        M::Sibling => {
            input.provider.cluster_ids.insert(SIBLING.into());
            if let Some(d) = input.decision.as_mut() {
                d.selected_cluster_id = SIBLING.into();
            }
        }
    }
}

fn input_for(mode: EnforcementMode, mods: &[M]) -> EvaluationInput {
    let mut input = baseline(mode);
    for m in mods {
        apply(&mut input, *m);
    }
    input
}

/// Properties every evaluation has, whatever the row.
fn check_invariants(what: &str, input: &EvaluationInput, e: &Evaluation) {
    // Pure and deterministic.
    assert_eq!(&evaluate(input), e, "{what}: not deterministic");

    let valid_decision = input
        .decision
        .as_ref()
        .filter(|d| d.job_id == input.job_id && input.lookup != LookupStatus::Missing)
        .filter(|_| !matches!(input.lookup, LookupStatus::Failed(_)));
    let decision_id = valid_decision.map_or("", |d| d.decision_id.as_str());

    // Log events follow the outcome.
    let expected_events: &[&str] = match &e.outcome {
        Outcome::Run { .. } => &[
            events::ROUTING_ENFORCED,
            events::ROUTING_FALLBACK_USED,
            events::ROUTING_DECISION_REFRESHED,
        ],
        Outcome::Reject { .. } => &[events::ROUTING_ENFORCEMENT_FAILED],
        // Seed 001: the provider giving a job up for a fallback logs routing_fallback_used.
        Outcome::RequestNewDecision {
            kind: RequestKind::Fallback,
            ..
        } => &[events::ROUTING_FALLBACK_USED],
        Outcome::RequestNewDecision { .. } => &[events::ROUTING_DECISION_REQUESTED],
        Outcome::NotForUs { .. } => &[
            events::ROUTING_NOT_FOR_US,
            events::ROUTING_FALLBACK_USED,
            events::ROUTING_DECISION_REFRESHED,
        ],
    };
    assert!(
        expected_events.contains(&e.log_event),
        "{what}: event {}",
        e.log_event
    );

    if let Some(a) = &e.audit {
        assert_eq!(a.job_id, JOB, "{what}");
        assert_eq!(a.provider_address, PROVIDER, "{what}");
        assert_eq!(
            a.scheduling_decision_id, decision_id,
            "{what}: audit decision id"
        );
        assert_eq!(
            a.expected_cluster_id,
            valid_decision.map_or("", |d| d.selected_cluster_id.as_str()),
            "{what}: expected cluster is the decision's (the chain refuses anything else)"
        );
        assert!(
            input.provider.cluster_ids.contains(&a.actual_cluster_id),
            "{what}: actual cluster {} must be ours (the chain checks the signer owns it)",
            a.actual_cluster_id
        );
        assert_eq!(
            a.record_id,
            record_id(JOB, decision_id, &input.attempt, PROVIDER),
            "{what}: record id"
        );
        assert_eq!(
            a.enforcement_mode,
            input.routing.enforcement_mode.to_proto(),
            "{what}"
        );
        if a.status != AS::Rescheduled {
            assert_eq!(
                a.is_fallback,
                a.status == AS::Fallback,
                "{what}: is_fallback"
            );
        }
        if a.is_fallback {
            assert!(
                !a.fallback_reason.is_empty(),
                "{what}: fallback without a reason"
            );
        }
        assert!(!a.reason.is_empty(), "{what}: empty reason");
        // The chain detects cluster_mismatch on an approved record that is off its decision.
        if a.status == AS::Approved {
            assert!(
                !decision_id.is_empty(),
                "{what}: approved without a decision"
            );
            assert_eq!(
                a.expected_cluster_id, a.actual_cluster_id,
                "{what}: approved off-decision"
            );
        }
        // Ages come from the chain head only.
        match (valid_decision, input.head) {
            (Some(d), Some(h)) => {
                assert_eq!(
                    a.decision_age_blocks,
                    h.height.saturating_sub(d.created_height),
                    "{what}"
                );
                assert_eq!(
                    a.decision_age_seconds as i64,
                    (h.time_seconds - CREATED_TIME).max(0),
                    "{what}"
                );
            }
            _ => assert_eq!(
                (a.decision_age_blocks, a.decision_age_seconds),
                (0, 0),
                "{what}"
            ),
        }
        assert_eq!(
            a.violation_id,
            e.violations
                .first()
                .map(|v| v.violation_id.clone())
                .unwrap_or_default(),
            "{what}: audit links its first violation"
        );
        let proto = a.to_proto();
        assert_eq!(proto.status, a.status as i32);
        assert_eq!(proto.record_id, a.record_id);
    }
    match &e.outcome {
        Outcome::Run { cluster_id } => {
            let a = e
                .audit
                .as_ref()
                .unwrap_or_else(|| panic!("{what}: run without audit"));
            assert_eq!(&a.actual_cluster_id, cluster_id, "{what}");
            assert!(
                matches!(a.status, AS::Approved | AS::Fallback | AS::Rescheduled),
                "{what}"
            );
        }
        Outcome::Reject { reason } => {
            assert!(!reason.is_empty(), "{what}");
            if let Some(a) = &e.audit {
                assert_eq!(a.status, AS::Rejected, "{what}");
                assert_eq!(&a.reason, reason, "{what}");
            }
        }
        Outcome::RequestNewDecision {
            reason,
            exclude_cluster_ids,
            kind,
        } => {
            // Giving up a decision of ours closes its attempt: a rescheduled record on the
            // decision, on our cluster; without a usable decision there is none.
            match (&e.audit, kind) {
                (None, RequestKind::Missing) => {}
                (Some(a), RequestKind::Refresh | RequestKind::Fallback) => {
                    assert_eq!(a.status, AS::Rescheduled, "{what}");
                    assert_eq!(a.scheduling_decision_id, DECISION, "{what}");
                    assert_eq!(a.actual_cluster_id, a.expected_cluster_id, "{what}");
                    assert_eq!(a.is_fallback, *kind == RequestKind::Fallback, "{what}");
                    assert!(a.reason.contains(reason.as_str()), "{what}");
                    assert!(!a.reason_code.is_empty(), "{what}");
                }
                (audit, _) => panic!("{what}: {kind:?} request with record {audit:?}"),
            }
            assert!(!reason.is_empty(), "{what}");
            assert!(
                matches!(input.attempt, Attempt::Original),
                "{what}: a replacement asked again"
            );
            let expected: Vec<String> = if *kind == RequestKind::Fallback {
                input.provider.cluster_ids.iter().cloned().collect()
            } else {
                Vec::new()
            };
            assert_eq!(exclude_cluster_ids, &expected, "{what}");
        }
        Outcome::NotForUs { .. } => {
            assert!(e.violations.is_empty(), "{what}");
            if let Some(a) = &e.audit {
                assert_eq!(a.status, AS::Rescheduled, "{what}");
                assert!(
                    matches!(input.attempt, Attempt::Replacement { .. }),
                    "{what}"
                );
            }
        }
    }
    let mut ids = BTreeSet::new();
    for v in &e.violations {
        assert!(
            ids.insert(v.violation_id.clone()),
            "{what}: duplicate violation id"
        );
        assert_eq!(
            v.violation_id,
            violation_id(JOB, decision_id, &input.attempt, PROVIDER, v.violation_type),
            "{what}"
        );
        assert_eq!(v.job_id, JOB, "{what}");
        assert_eq!(v.decision_id, decision_id, "{what}");
        assert_eq!(v.provider_address, PROVIDER, "{what}");
        assert!(!v.details.is_empty(), "{what}");
        assert!((1..=5).contains(&v.severity), "{what}");
        let p = v.to_proto();
        assert_eq!(p.reporter, PROVIDER);
        assert_eq!(p.violation_type, v.violation_type as i32);
    }
}

#[test]
fn mode_table() {
    let mut failures = Vec::new();
    for (mode, mods, want, want_audit, want_violations) in ROWS {
        let what = format!("{mode} {mods:?}");
        let input = input_for(*mode, mods);
        let e = evaluate(&input);
        let outcome_ok = match (want, &e.outcome) {
            (X::Run(c), Outcome::Run { cluster_id }) => cluster_id == c,
            (X::Reject, Outcome::Reject { .. }) => true,
            (X::Req(k), Outcome::RequestNewDecision { kind, .. }) => kind == k,
            (X::NotForUs, Outcome::NotForUs { .. }) => true,
            _ => false,
        };
        let got_violations: Vec<(VT, u32)> = e
            .violations
            .iter()
            .map(|v| (v.violation_type, v.severity))
            .collect();
        if !outcome_ok
            || e.audit.as_ref().map(|a| a.status) != *want_audit
            || got_violations != *want_violations
        {
            failures.push(format!(
                "{what}:\n  want {want:?} audit {want_audit:?} violations {want_violations:?}\n  got  {:?} audit {:?} violations {got_violations:?}",
                e.outcome,
                e.audit.as_ref().map(|a| a.status),
            ));
            continue;
        }
        check_invariants(&what, &input, &e);
    }
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every mode × every situation of the SPEC table appears in `ROWS`.
#[test]
fn table_covers_every_cell() {
    let situations: &[(&str, &[M])] = &[
        ("missing decision", &[M::Missing]),
        ("stale, auto_refresh on", &[M::Stale]),
        ("stale, auto_refresh off", &[M::Stale, M::RefreshOff]),
        ("cluster unavailable", &[M::Unavailable]),
        ("capacity exceeded", &[M::Capacity]),
        ("mismatch", &[M::Mismatch]),
        (
            "fallback not authorised (config)",
            &[M::Unavailable, M::FallbackConfigOff],
        ),
        (
            "fallback not authorised (chain)",
            &[M::Unavailable, M::FallbackChainOff],
        ),
        ("lookup failed", &[M::LookupFailed]),
        ("head unknown", &[M::HeadUnknown]),
        ("another provider's decision", &[M::OtherProvider]),
        ("another job's decision", &[M::OtherJob]),
    ];
    for mode in [STRICT, PERM, AUDIT] {
        for (name, mods) in situations {
            let found = ROWS
                .iter()
                .any(|(m, ms, ..)| *m == mode && format!("{ms:?}") == format!("{mods:?}"));
            assert!(found, "no row for {mode} / {name}");
        }
    }
}

#[test]
fn record_ids_are_idempotent_per_attempt_and_distinct_across_attempts() {
    // The same attempt gives the same record id whatever the outcome (a crash between
    // evaluating and sending cannot produce a second terminal record for it).
    let a = evaluate(&input_for(STRICT, &[M::Unavailable]));
    let b = evaluate(&input_for(STRICT, &[]));
    let ra = a.audit.unwrap().record_id;
    assert_eq!(ra, b.audit.unwrap().record_id);

    // Original stale → refresh → the replacement runs: a different attempt, a different id.
    let original = evaluate(&input_for(STRICT, &[M::Stale]));
    let Outcome::RequestNewDecision { kind, .. } = original.outcome else {
        panic!("{:?}", original.outcome)
    };
    assert_eq!(kind, RequestKind::Refresh);
    let mut replacement = input_for(STRICT, &[]);
    replacement.decision.as_mut().unwrap().decision_id = "hpc-decision-9".into();
    replacement.job.as_mut().unwrap().current_decision_id = "hpc-decision-9".into();
    replacement.attempt = Attempt::Replacement {
        previous_decision_id: DECISION.into(),
        kind,
    };
    let r = evaluate(&replacement);
    let audit = r.audit.unwrap();
    assert_eq!(audit.status, AS::Rescheduled);
    assert_eq!(audit.scheduling_decision_id, "hpc-decision-9");
    assert_ne!(audit.record_id, ra);

    // Same decision id, different attempt kinds / providers / jobs: all distinct.
    let mut ids = BTreeSet::new();
    for attempt in [
        Attempt::Original,
        Attempt::Replacement {
            previous_decision_id: DECISION.into(),
            kind: RequestKind::Refresh,
        },
        Attempt::Replacement {
            previous_decision_id: DECISION.into(),
            kind: RequestKind::Fallback,
        },
        Attempt::Replacement {
            previous_decision_id: "".into(),
            kind: RequestKind::Missing,
        },
    ] {
        for provider in [PROVIDER, OTHER_PROVIDER] {
            for job in [JOB, "hpc-job-2"] {
                assert!(ids.insert(record_id(job, DECISION, &attempt, provider)));
            }
        }
    }
    // Missing decision: the id hashes an empty decision id, still per attempt.
    let m1 = evaluate(&input_for(STRICT, &[M::Missing]))
        .audit
        .unwrap()
        .record_id;
    let m2 = evaluate(&input_for(STRICT, &[M::Missing, M::Replacement(MI)]))
        .audit
        .unwrap()
        .record_id;
    assert_ne!(m1, m2);
    assert!(!ids.contains(&m1));
}

#[test]
fn violation_ids_are_deterministic_and_distinct_per_attempt() {
    let a = evaluate(&input_for(AUDIT, &[M::Mismatch, M::FallbackChainOff]));
    let b = evaluate(&input_for(AUDIT, &[M::Mismatch, M::FallbackChainOff]));
    assert_eq!(a.violations, b.violations);
    assert_eq!(a.violations.len(), 2);
    assert_ne!(a.violations[0].violation_id, a.violations[1].violation_id);
    let c = evaluate(&input_for(STRICT, &[M::Replacement(RF), M::Stale]));
    let d = evaluate(&input_for(STRICT, &[M::Stale, M::RefreshOff]));
    assert_eq!(
        c.violations[0].violation_type,
        d.violations[0].violation_type
    );
    assert_ne!(c.violations[0].violation_id, d.violations[0].violation_id);
}

#[test]
fn ages_and_reasons_come_from_the_chain_head() {
    let e = evaluate(&input_for(STRICT, &[M::AgeBlocks(42), M::AgeSeconds(77)]));
    let a = e.audit.unwrap();
    assert_eq!((a.decision_age_blocks, a.decision_age_seconds), (42, 77));

    let e = evaluate(&input_for(STRICT, &[M::HeadUnknown]));
    let Outcome::Reject { reason } = &e.outcome else {
        panic!()
    };
    assert!(
        reason.contains("chain head unknown") && reason.contains("fails closed"),
        "{reason}"
    );

    let e = evaluate(&input_for(PERM, &[M::HeadUnknown]));
    assert!(e.audit.unwrap().reason.contains("decision age not checked"));

    let e = evaluate(&input_for(STRICT, &[M::LookupFailed]));
    let Outcome::Reject { reason } = &e.outcome else {
        panic!()
    };
    assert!(
        reason.contains("deadline exceeded") && reason.contains("fails closed"),
        "{reason}"
    );

    let e = evaluate(&input_for(
        STRICT,
        &[M::Stale, M::StaleSeconds, M::RefreshOff],
    ));
    let details = &e.violations[0].details;
    assert!(
        details.contains("101 blocks old (max 100)") && details.contains("601 s old (max 600)"),
        "{details}"
    );
}

#[test]
fn fallback_reasons_name_what_forbade_it() {
    let e = evaluate(&input_for(PERM, &[M::Unavailable, M::FallbackChainOff]));
    assert!(e.violations[0].details.contains("allow_provider_fallback"));
    let e = evaluate(&input_for(PERM, &[M::Capacity, M::FallbackConfigOff]));
    assert!(e.violations[0].details.contains("allow_automatic_fallback"));
    assert!(e.violations[0].details.contains("1 free node(s)"));
    let e = evaluate(&input_for(PERM, &[M::Replacement(FB), M::Sibling]));
    let a = e.audit.unwrap();
    assert!(
        a.is_fallback && a.fallback_reason.contains(PREVIOUS),
        "{}",
        a.fallback_reason
    );
    let e = evaluate(&input_for(PERM, &[M::Replacement(FB), M::OtherProvider]));
    let a = e.audit.unwrap();
    assert!(
        a.is_fallback,
        "a fallback that moved the job away is flagged on the rescheduled record"
    );
    assert_eq!(a.expected_cluster_id, OTHER_CLUSTER);
    assert_eq!(a.actual_cluster_id, LOCAL);
}

#[test]
fn another_jobs_decision_is_never_referenced() {
    for mode in [STRICT, PERM, AUDIT] {
        let e = evaluate(&input_for(mode, &[M::OtherJob]));
        if let Some(a) = &e.audit {
            assert_eq!(a.scheduling_decision_id, "");
            assert_eq!(a.expected_cluster_id, "");
        }
        assert_eq!(e.violations[0].decision_id, "");
        assert!(e.violations[0].details.contains("belongs to job hpc-job-2"));
    }
}

#[test]
fn long_failure_texts_are_clipped_to_the_chain_limit() {
    let mut input = input_for(STRICT, &[M::LookupFailed]);
    input.lookup = LookupStatus::Failed("x".repeat(5000));
    let e = evaluate(&input);
    let Outcome::Reject { reason } = &e.outcome else {
        panic!()
    };
    assert!(reason.len() <= hpc_enforcer::decision::MAX_TEXT_LEN);
    assert!(e.audit.unwrap().reason.len() <= hpc_enforcer::decision::MAX_TEXT_LEN);
}

/// Issue 8, item 1: the enforcer's ids are in its own namespace, which the chain reserves
/// to it, so nobody can record under them first.
#[test]
fn record_and_violation_ids_are_in_the_providers_namespace() {
    let e = evaluate(&input_for(STRICT, &[M::Capacity]));
    let audit = e.audit.expect("rejected record");
    assert!(audit.record_id.starts_with(&format!("{PROVIDER}:ra-")));
    assert_eq!(ids::namespace(&audit.record_id), Some(PROVIDER));
    assert!(ids::usable_by(&audit.record_id, PROVIDER));
    assert!(!ids::usable_by(&audit.record_id, OTHER_PROVIDER));
    assert!(ids::is_valid(&audit.record_id));
    let v = &e.violations[0];
    assert_eq!(ids::namespace(&v.violation_id), Some(PROVIDER));
    assert!(ids::is_valid(&v.violation_id));
}

/// Issue 8, item 2: whether a decision is a provider's replacement (and of which kind) comes
/// from the kind and requester role the chain recorded, never from `reschedule_reason`: an
/// owner's reschedule whose reason says "fallback:" is audited as an original decision
/// (approved), so the receiving provider neither files a FALLBACK record the strict chain
/// refuses (a stuck job) nor is charged an unauthorized fallback in permissive mode.
#[test]
fn a_reschedule_reason_cannot_make_a_fallback() {
    const OWNER: &str = "virtengine1owner";
    let owners = |d: &mut SchedulingDecision| {
        d.previous_decision_id = PREVIOUS.into();
        d.reschedule_reason = "fallback: cluster_unavailable: the owner says so".into();
        d.reschedule_kind = RescheduleKind::OwnerRequest as i32;
        d.requested_by = OWNER.into();
        d.requester_role = RequesterRole::Owner as i32;
    };
    for (mode, mods) in [
        (STRICT, &[M::FallbackChainOff][..]),
        (PERM, &[M::FallbackConfigOff][..]),
        (PERM, &[][..]),
    ] {
        let mut input = input_for(mode, mods);
        let d = input.decision.as_mut().unwrap();
        owners(d);
        input.attempt = attempt_of(input.decision.as_ref());
        assert_eq!(input.attempt, Attempt::Original, "{mode:?} {mods:?}");
        let e = evaluate(&input);
        assert_eq!(
            e.outcome,
            Outcome::Run {
                cluster_id: LOCAL.into()
            },
            "{mode:?} {mods:?}"
        );
        let audit = e.audit.expect("a record");
        assert_eq!(audit.status, AS::Approved, "{mode:?} {mods:?}");
        assert!(!audit.is_fallback);
        assert!(e.violations.is_empty(), "{:?}", e.violations);
    }

    // A provider kind with the owner's role is not trusted either (the chain never records
    // that; the enforcer does not rely on it).
    let mut d = baseline(PERM).decision.unwrap();
    owners(&mut d);
    d.reschedule_kind = RescheduleKind::ProviderFallback as i32;
    assert_eq!(attempt_of(Some(&d)), Attempt::Original);
    // The kind the chain recorded from the previous provider's request is.
    d.requester_role = RequesterRole::Provider as i32;
    d.requested_by = OTHER_PROVIDER.into();
    d.reschedule_reason = "anything".into();
    assert_eq!(
        attempt_of(Some(&d)),
        Attempt::Replacement {
            previous_decision_id: PREVIOUS.into(),
            kind: RequestKind::Fallback
        }
    );
    for (kind, want) in [
        (RescheduleKind::Refresh, Some(RequestKind::Refresh)),
        (RescheduleKind::MissingDecision, Some(RequestKind::Missing)),
        (RescheduleKind::Unspecified, None),
        (RescheduleKind::OwnerRequest, None),
    ] {
        d.reschedule_kind = kind as i32;
        let got = match attempt_of(Some(&d)) {
            Attempt::Replacement { kind, .. } => Some(kind),
            Attempt::Original => None,
        };
        assert_eq!(got, want, "{kind:?}");
    }
    // A first decision is original whatever it says.
    d.previous_decision_id.clear();
    d.reschedule_kind = RescheduleKind::ProviderFallback as i32;
    assert_eq!(attempt_of(Some(&d)), Attempt::Original);
    assert_eq!(attempt_of(None), Attempt::Original);
}
