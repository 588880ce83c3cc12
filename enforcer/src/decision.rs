//! The routing decision logic of SPEC §5 as one pure function: no I/O, no clock.
//!
//! [`evaluate`] takes everything the I/O layer learned about one job (the job, the decision
//! the chain returned for it and how the lookup went, the latest committed block, this
//! provider's identity, the local scheduler's view of its cluster, the routing config and
//! the chain params) and says what to do ([`Outcome`]), which terminal audit record to write
//! ([`AuditDraft`]) and which violations to self-report ([`ViolationDraft`]). Ages are always
//! computed from the chain head's height and block time, never from a local clock; record
//! and violation ids are hashes of the attempt in the provider's own id namespace
//! (`<provider>:ra-…`, which the chain lets nobody else use), so re-evaluating after a crash
//! produces the same ids and the chain's duplicate check (same id, same content, same
//! signer) makes resubmission idempotent.
//!
//! # Order of evaluation
//!
//! 1. **Usable decision.** `lookup = Failed` → the lookup failed (whatever `decision` holds);
//!    no decision → missing; a decision whose `job_id` is not the job's → treated as
//!    *missing* (it is not this job's decision; the audit record must not reference it,
//!    because the chain refuses a record whose decision belongs to another job).
//! 2. **Relevance** ([`Placement`]). `FollowDecision` (the job was learned from the chain):
//!    a decision for a cluster this enforcer does not run → [`Outcome::NotForUs`]; without a
//!    usable decision the job is ours when the chain lists this provider as the job's
//!    provider (`job.provider_address`), else `NotForUs`. `OnCluster(c)` (someone asks to
//!    place the job here, e.g. the admin API's ValidateJobPlacement): `c` must be one of this
//!    enforcer's clusters; a decision naming another cluster is a **mismatch**.
//!    An `Original` decision that is not the job's current decision
//!    (`job.current_decision_id`) is superseded → `NotForUs` (the newer decision is
//!    evaluated from its own event).
//! 3. **Job.** No job (unknown to the chain, or its lookup failed) → `Reject` without an
//!    audit record: there is nothing to run and the chain refuses records for unknown jobs.
//! 4. **`routing.enabled = false`** → `Run` on the target cluster, no checks, no violations;
//!    the record is `approved` when the job follows its decision, else `fallback`, with the
//!    reason "routing enforcement disabled".
//! 5. **The mode table.** Checks in order: decision missing / lookup failed → mismatch →
//!    local cluster unavailable (not available or not healthy) → capacity (free nodes below
//!    the job's nodes) → chain head known (strict) → staleness.
//!
//! # The mode table as implemented
//!
//! | situation | strict | permissive | audit_only |
//! |---|---|---|---|
//! | lookup failed | reject, no violation (fail closed) | request a decision (`Missing`), no violation | run off-decision (`fallback` record) |
//! | missing decision (or another job's) | reject, `missing_decision` 4 | request a decision (`Missing`); `missing_decision` 4 only if `require_decision_for_submission` | run off-decision, `missing_decision` 4 |
//! | mismatch (`OnCluster`) | reject, `cluster_mismatch` 5, no record | authorised: run here (`fallback` record); else reject, `unauthorized_fallback` 4, no record | run here (`fallback` record), `cluster_mismatch` 5 |
//! | cluster unavailable | reject, `cluster_unavailable` 3 | authorised: request a decision (`Fallback`, excluding this enforcer's clusters); else reject, `unauthorized_fallback` 4 | run (warning in the record's reason) |
//! | capacity exceeded | reject, `capacity_exceeded` 3 | as unavailable | run (warning) |
//! | chain head unknown | reject, no violation (fail closed) | ages unknown: not stale, noted in the reason | same as permissive |
//! | stale | auto_refresh: request (`Refresh`), no violation; else reject, `stale_decision` 2 | auto_refresh: request (`Refresh`); else run, `stale_decision` **1** | run, `stale_decision` 2 |
//!
//! "Authorised" = config `allow_automatic_fallback` **and** chain param
//! `allow_provider_fallback`. In audit_only, running off the decision is a fallback too: if
//! it is not authorised, `unauthorized_fallback` 4 is recorded as well (the table's
//! "record"); audit_only never records `unauthorized_fallback` for a fallback it did not use.
//! `require_decision_for_submission` only matters in permissive mode: strict always rejects
//! a missing decision and audit_only always records it.
//!
//! # Replacement decisions
//!
//! After a `RequestNewDecision` the I/O layer calls RequestReschedule, stating the kind
//! ([`RequestKind::to_proto`]), and evaluates the new decision with `attempt = Replacement
//! { previous_decision_id, kind }`; an enforcer that learns of a decision from the chain
//! takes the attempt from [`attempt_of`], i.e. from the kind and requester role the chain
//! recorded on the decision, never from its free-text reason. The same checks
//! apply, but a replacement never asks for another one: in strict every failure rejects; in
//! permissive a stale / unavailable / over-capacity replacement is recorded (`stale_decision`
//! 1, `cluster_unavailable` 3, `capacity_exceeded` 3) and the job runs, a missing replacement
//! is rejected with `missing_decision`, a failed lookup is rejected. A replacement that moved
//! the job to a cluster this enforcer does not run is `NotForUs`, but closes our attempt with
//! a `rescheduled` record (decision = the replacement, actual cluster = ours).
//!
//! # Audit records (exactly one terminal record per decision attempt)
//!
//! * `Run` → `approved` when the job runs on its decision's cluster in an `Original`
//!   attempt; `fallback` (is_fallback, with fallback_reason) for a `Replacement` of kind
//!   `Fallback` or whenever the job runs off its decision; `rescheduled` for a `Replacement`
//!   of kind `Refresh` or `Missing` (SPEC: "audit rescheduled").
//! * `Reject` → `rejected`, except when the job is not this provider's (mismatch, a target
//!   that is not ours, a job the chain lists under another provider) or unknown: the chain
//!   moves a job to REJECTED on a rejected record, so refusing someone else's placement must
//!   not write one.
//! * `RequestNewDecision` for a decision of ours (refresh, fallback) → a `rescheduled`
//!   record on the decision given up (reason code `stale_decision`, or the local problem
//!   for a fallback, with is_fallback and fallback_reason), sent in the RequestReschedule
//!   tx after that message so the chain takes it as informational; the replacement's
//!   evaluation writes the record of the new attempt. Without a usable decision
//!   (`Missing`) there is nothing to close. Violations may be recorded now.
//! * `NotForUs` → nothing, except for a replacement as described above.
//!
//! The drafts pass the chain's cross-checks in RecordRoutingAudit: the decision is the
//! job's and its cluster is `expected_cluster_id`; `actual_cluster_id` is always one of this
//! enforcer's clusters; `approved` only on the decision's cluster (else the chain detects
//! `cluster_mismatch`); a superseded decision is never routed (the chain only routes a
//! SCHEDULED job by its current decision). What the chain may still refuse in its strict
//! mode is what it should: a `fallback` record while `allow_provider_fallback` is false
//! (only audit_only or `routing.enabled = false` produce one).
//!
//! The I/O layer is expected to skip jobs that are no longer SCHEDULED (cancelled,
//! completed, already routed by us) before calling [`evaluate`], which does not look at
//! `job.state`, and to retry failed lookups before passing `LookupStatus::Failed`.

use std::collections::BTreeSet;

use hpc_primitives::contract::{ids, reason_codes, reschedule};
use hpc_proto::virtengine::hpc::v1::{
    AuditStatus, EnforcementMode as ProtoMode, Job, Params, RescheduleKind, RoutingAuditRecord,
    RoutingViolation, SchedulingDecision, ViolationType,
};
use sha2::{Digest, Sha256};

use crate::config::{EnforcementMode, RoutingConfig};

/// Names of the JSON audit-log events (`log_event`). The first five are the seed's.
pub mod events {
    /// A job was handed to the local scheduler on its decision's cluster.
    pub const ROUTING_ENFORCED: &str = "routing_enforced";
    /// A job was rejected.
    pub const ROUTING_ENFORCEMENT_FAILED: &str = "routing_enforcement_failed";
    /// A job runs through fallback routing (or off its decision in audit_only).
    pub const ROUTING_FALLBACK_USED: &str = "routing_fallback_used";
    /// A refreshed (or newly requested) decision was used.
    pub const ROUTING_DECISION_REFRESHED: &str = "routing_decision_refreshed";
    /// The count of a provider's violations crossed `violation_alert_threshold` (not
    /// produced by [`super::evaluate`]; listed for completeness).
    pub const ROUTING_VIOLATION_THRESHOLD_EXCEEDED: &str = "routing_violation_threshold_exceeded";
    /// Not a seed name: a new decision is being requested (RequestReschedule).
    pub const ROUTING_DECISION_REQUESTED: &str = "routing_decision_requested";
    /// Not a seed name: the job is not for this enforcer; nothing to do.
    pub const ROUTING_NOT_FOR_US: &str = "routing_not_for_us";
    /// Not a seed name: a job running here was stopped because the chain cancelled it or
    /// moved it to another provider.
    pub const ROUTING_JOB_STOPPED: &str = "routing_job_stopped";
}

/// Longest reason / details text the chain accepts (the x/hpc contract's).
pub use hpc_primitives::contract::limits::MAX_TEXT_LEN;

/// The latest committed block as the chain reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Block height.
    pub height: u64,
    /// Block header time, seconds since the Unix epoch.
    pub time_seconds: i64,
}

/// How the decision lookup went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupStatus {
    /// The chain returned the decision (in `EvaluationInput::decision`).
    Found,
    /// The chain answered that there is none.
    Missing,
    /// The lookup failed (unreachable node, timeout, …): we do not know. The I/O layer
    /// should retry before evaluating with this; strict mode fails closed on it.
    Failed(String),
}

/// This provider as this enforcer knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// Bech32 address of the provider (the signer of the enforcer's transactions).
    pub address: String,
    /// The clusters this enforcer runs, all served by its local scheduler (normally just
    /// `hpc.cluster_id`).
    pub cluster_ids: BTreeSet<String>,
}

/// The local scheduler adapter's view of the cluster (from its last probe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The scheduler answers and accepts jobs.
    pub available: bool,
    /// Nodes free right now.
    pub free_nodes: u32,
    /// The health monitor's verdict (seed 002: unhealthy after N consecutive failed probes).
    pub healthy: bool,
}

/// The chain params that matter to the enforcer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainRoutingParams {
    /// `allow_provider_fallback`: whether providers may use fallback routing at all.
    pub allow_provider_fallback: bool,
    /// The chain's `max_decision_age_blocks`, if known (the stricter of this and the
    /// config's limit applies).
    pub max_decision_age_blocks: Option<u64>,
    /// The chain's `max_decision_age_seconds`, if known.
    pub max_decision_age_seconds: Option<u64>,
}

impl From<&Params> for ChainRoutingParams {
    fn from(p: &Params) -> Self {
        Self {
            allow_provider_fallback: p.allow_provider_fallback,
            max_decision_age_blocks: (p.max_decision_age_blocks > 0)
                .then_some(p.max_decision_age_blocks),
            max_decision_age_seconds: (p.max_decision_age_seconds > 0)
                .then_some(p.max_decision_age_seconds),
        }
    }
}

/// Why a new decision is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// The decision is stale.
    Refresh,
    /// The scheduled cluster cannot take the job; the new decision excludes it.
    Fallback,
    /// There was no usable decision.
    Missing,
}

impl RequestKind {
    /// Lower-case name, used in reasons and ids.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Refresh => "refresh",
            RequestKind::Fallback => "fallback",
            RequestKind::Missing => "missing",
        }
    }

    /// The kind stated in MsgRequestReschedule (and recorded by the chain on the decision).
    pub fn to_proto(self) -> RescheduleKind {
        match self {
            RequestKind::Refresh => RescheduleKind::Refresh,
            RequestKind::Fallback => RescheduleKind::ProviderFallback,
            RequestKind::Missing => RescheduleKind::MissingDecision,
        }
    }

    /// The request kind of a provider kind (`None` for the others).
    pub fn from_proto(kind: RescheduleKind) -> Option<Self> {
        match kind {
            RescheduleKind::Refresh => Some(RequestKind::Refresh),
            RescheduleKind::ProviderFallback => Some(RequestKind::Fallback),
            RescheduleKind::MissingDecision => Some(RequestKind::Missing),
            RescheduleKind::Unspecified | RescheduleKind::OwnerRequest => None,
        }
    }
}

/// The attempt a decision learned from the chain is: a replacement of the kind the chain
/// recorded when the provider of the previous decision asked for it
/// ([`reschedule::provider_kind`]), else an original decision (a job's first, an owner's
/// reschedule, or a provider's without a kind). `reschedule_reason` is free text and is
/// never read: an owner writing "fallback: …" there gets an original decision audited.
pub fn attempt_of(decision: Option<&SchedulingDecision>) -> Attempt {
    decision
        .and_then(|d| {
            let kind = RequestKind::from_proto(reschedule::provider_kind(d)?)?;
            Some(Attempt::Replacement {
                previous_decision_id: d.previous_decision_id.clone(),
                kind,
            })
        })
        .unwrap_or(Attempt::Original)
}

/// Which decision attempt this evaluation is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attempt {
    /// The decision the chain made (SubmitJob, or a reschedule someone else requested).
    Original,
    /// The decision our own `RequestNewDecision` produced.
    Replacement {
        /// The decision it replaces (empty when the original was missing).
        previous_decision_id: String,
        /// Why it was requested.
        kind: RequestKind,
    },
}

impl Attempt {
    fn key(&self) -> String {
        match self {
            Attempt::Original => "original".into(),
            Attempt::Replacement {
                previous_decision_id,
                kind,
            } => format!("replacement:{}:{previous_decision_id}", kind.as_str()),
        }
    }
}

/// Where the job is being placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Learned from the chain: the job goes where its decision says, if that is one of this
    /// enforcer's clusters; otherwise it is not for us.
    FollowDecision,
    /// An explicit request to place the job on this cluster of ours (admin API
    /// ValidateJobPlacement, or a job handed to the local scheduler directly). A decision
    /// naming another cluster is a mismatch.
    OnCluster(String),
}

/// Everything [`evaluate`] looks at.
#[derive(Clone, Debug)]
pub struct EvaluationInput {
    /// The job's id (from the event or request; used when `job` is absent).
    pub job_id: String,
    /// The job as the chain stores it (`None`: unknown or lookup failed). A job with another
    /// id than `job_id` is treated as absent.
    pub job: Option<Job>,
    /// The decision the chain returned for the job.
    pub decision: Option<SchedulingDecision>,
    /// How the decision lookup went; `Failed` wins over `decision`.
    pub lookup: LookupStatus,
    /// The latest committed block (`None`: unknown).
    pub head: Option<ChainHead>,
    /// This provider.
    pub provider: ProviderIdentity,
    /// The local scheduler's view of its cluster.
    pub cluster_status: ClusterStatus,
    /// `hpc.routing` of the config.
    pub routing: RoutingConfig,
    /// The chain params that matter.
    pub chain: ChainRoutingParams,
    /// Which attempt this is.
    pub attempt: Attempt,
    /// Where the job is being placed.
    pub placement: Placement,
}

/// What to do with the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Hand the job to the local scheduler on this cluster.
    Run { cluster_id: String },
    /// Do not run the job.
    Reject { reason: String },
    /// Call RequestReschedule with this reason and exclusions, then evaluate the new
    /// decision with `Attempt::Replacement { previous_decision_id, kind }`.
    RequestNewDecision {
        reason: String,
        exclude_cluster_ids: Vec<String>,
        kind: RequestKind,
    },
    /// The job is not for this enforcer: ignore it (the reason is for debug logs).
    NotForUs { reason: String },
}

impl Outcome {
    /// The reason of a refusal, request or skip ("" for a run).
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Run { .. } => "",
            Outcome::Reject { reason }
            | Outcome::RequestNewDecision { reason, .. }
            | Outcome::NotForUs { reason } => reason,
        }
    }
}

/// The fields of a [`RoutingAuditRecord`] the enforcer fills (the chain sets
/// `created_at`/`created_height` and recomputes the ages at inclusion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditDraft {
    /// `"<provider>:ra-"` + 16 hex digits of SHA-256 over (job, decision, attempt,
    /// provider): in the provider's id namespace.
    pub record_id: String,
    pub job_id: String,
    /// The decision the record is about (empty when there was no usable decision).
    pub scheduling_decision_id: String,
    /// The decision's cluster (empty without a usable decision).
    pub expected_cluster_id: String,
    /// The cluster of ours the job went to (or would have gone to).
    pub actual_cluster_id: String,
    pub status: AuditStatus,
    pub reason: String,
    pub is_fallback: bool,
    pub fallback_reason: String,
    /// Chain head height − decision height (0 when either is unknown).
    pub decision_age_blocks: u64,
    /// Chain head time − decision time in seconds (0 when either is unknown).
    pub decision_age_seconds: u64,
    pub provider_address: String,
    pub enforcement_mode: ProtoMode,
    /// The first violation recorded together with this record (empty if none), for the
    /// local audit log. The chain clears this field and sets it only for violations it
    /// detects itself.
    pub violation_id: String,
    /// Machine-readable reason (`hpc_primitives::contract::reason_codes`): the first
    /// violation's type, or the workload refusal; empty when none applies.
    pub reason_code: String,
}

impl AuditDraft {
    /// The record to put in MsgRecordRoutingAudit.
    pub fn to_proto(&self) -> RoutingAuditRecord {
        RoutingAuditRecord {
            record_id: self.record_id.clone(),
            job_id: self.job_id.clone(),
            scheduling_decision_id: self.scheduling_decision_id.clone(),
            expected_cluster_id: self.expected_cluster_id.clone(),
            actual_cluster_id: self.actual_cluster_id.clone(),
            status: self.status as i32,
            reason: self.reason.clone(),
            is_fallback: self.is_fallback,
            decision_age_blocks: self.decision_age_blocks,
            decision_age_seconds: self.decision_age_seconds,
            provider_address: self.provider_address.clone(),
            created_at: None,
            enforcement_mode: self.enforcement_mode as i32,
            fallback_reason: self.fallback_reason.clone(),
            violation_id: self.violation_id.clone(),
            created_height: 0,
            reason_code: self.reason_code.clone(),
        }
    }
}

/// A violation to self-report with MsgReportRoutingViolation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViolationDraft {
    /// `"<provider>:rv-"` + 16 hex digits of SHA-256 over (job, decision, attempt,
    /// provider, type): in the provider's id namespace.
    pub violation_id: String,
    pub job_id: String,
    /// Empty without a usable decision.
    pub decision_id: String,
    pub violation_type: ViolationType,
    /// 1 (lowest) to 5; the seed's table, except 1 for permissive proceeding on a stale
    /// decision.
    pub severity: u32,
    pub expected_cluster_id: String,
    pub actual_cluster_id: String,
    pub provider_address: String,
    pub details: String,
}

impl ViolationDraft {
    /// The violation to put in MsgReportRoutingViolation (reporter = the provider).
    pub fn to_proto(&self) -> RoutingViolation {
        RoutingViolation {
            violation_id: self.violation_id.clone(),
            job_id: self.job_id.clone(),
            decision_id: self.decision_id.clone(),
            violation_type: self.violation_type as i32,
            severity: self.severity,
            expected_cluster_id: self.expected_cluster_id.clone(),
            actual_cluster_id: self.actual_cluster_id.clone(),
            provider_address: self.provider_address.clone(),
            details: self.details.clone(),
            reporter: self.provider_address.clone(),
            ..Default::default()
        }
    }
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub outcome: Outcome,
    /// The terminal audit record of this attempt, if it ends here (for a request of a new
    /// decision: the record closing the decision given up).
    pub audit: Option<AuditDraft>,
    /// Violations to self-report.
    pub violations: Vec<ViolationDraft>,
    /// The audit-log event name ([`events`]).
    pub log_event: &'static str,
}

impl Evaluation {
    /// Whether the attempt asks the chain for a new decision (its record, if any, closes
    /// the decision given up and goes in the RequestReschedule tx).
    pub fn requests_new_decision(&self) -> bool {
        matches!(self.outcome, Outcome::RequestNewDecision { .. })
    }

    /// This evaluation with its run refused because of the job's workload (digest mismatch,
    /// unreachable URI, the provider's policy): the attempt ends in a REJECTED record with
    /// `code`, in every mode, since running what the owner did not submit (or what this
    /// provider does not run) is never a routing choice. Other outcomes are unchanged.
    pub fn refuse_workload(self, code: &str, reason: &str) -> Evaluation {
        let Evaluation {
            outcome,
            audit,
            violations,
            log_event,
        } = self;
        let (Outcome::Run { .. }, Some(mut audit)) = (&outcome, audit.clone()) else {
            return Evaluation {
                outcome,
                audit,
                violations,
                log_event,
            };
        };
        let reason = clip(format!("workload refused: {reason}"));
        audit.status = AuditStatus::Rejected;
        audit.is_fallback = false;
        audit.fallback_reason.clear();
        audit.reason = reason.clone();
        audit.reason_code = code.to_string();
        Evaluation {
            outcome: Outcome::Reject { reason },
            audit: Some(audit),
            violations,
            log_event: events::ROUTING_ENFORCEMENT_FAILED,
        }
    }
}

/// The seed's severity table (the chain's `default_severity`).
pub fn default_severity(t: ViolationType) -> u32 {
    t.default_severity()
}

/// The seed's name of a violation type (`cluster_mismatch`).
pub fn violation_type_name(t: ViolationType) -> &'static str {
    t.snake_name()
}

/// Severity of `stale_decision` when permissive mode proceeds on a stale decision.
pub const PERMISSIVE_STALE_SEVERITY: u32 = 1;

fn short_hash(kind: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// The deterministic audit record id of an attempt, in the provider's namespace (only the
/// provider can record under it, so nobody can take it first).
pub fn record_id(job_id: &str, decision_id: &str, attempt: &Attempt, provider: &str) -> String {
    let hash = short_hash(
        "hpc-enforcer/audit/v1",
        &[job_id, decision_id, &attempt.key(), provider],
    );
    ids::scoped(provider, &format!("ra-{hash}"))
}

/// The deterministic id of a violation of an attempt.
pub fn violation_id(
    job_id: &str,
    decision_id: &str,
    attempt: &Attempt,
    provider: &str,
    t: ViolationType,
) -> String {
    let hash = short_hash(
        "hpc-enforcer/violation/v1",
        &[
            job_id,
            decision_id,
            &attempt.key(),
            provider,
            violation_type_name(t),
        ],
    );
    ids::scoped(provider, &format!("rv-{hash}"))
}

/// Cuts `s` to the chain's text limit on a character boundary.
/// `s` cut to the chain's longest text (at a char boundary).
pub fn clip(mut s: String) -> String {
    if s.len() > MAX_TEXT_LEN {
        let mut end = MAX_TEXT_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The decision after step 1.
enum Usable<'a> {
    Valid(&'a SchedulingDecision),
    /// No decision, or another job's (the description says which).
    Missing(String),
    Failed(String),
}

/// Decision ages from the chain head, as the chain computes them.
#[derive(Clone, Copy)]
struct Ages {
    blocks: u64,
    seconds: u64,
}

/// Everything established before the mode is applied, plus the builders of the result.
struct Ctx<'a> {
    input: &'a EvaluationInput,
    job_id: &'a str,
    decision: Option<&'a SchedulingDecision>,
    target: String,
    ages: Option<Ages>,
}

impl Ctx<'_> {
    fn decision_id(&self) -> &str {
        self.decision.map_or("", |d| d.decision_id.as_str())
    }

    fn expected(&self) -> &str {
        self.decision.map_or("", |d| d.selected_cluster_id.as_str())
    }

    fn on_decision(&self) -> bool {
        self.decision
            .is_some_and(|d| d.selected_cluster_id == self.target)
    }

    fn mode(&self) -> EnforcementMode {
        self.input.routing.enforcement_mode
    }

    fn violation(&self, t: ViolationType, severity: u32, details: String) -> ViolationDraft {
        let provider = &self.input.provider.address;
        ViolationDraft {
            violation_id: violation_id(
                self.job_id,
                self.decision_id(),
                &self.input.attempt,
                provider,
                t,
            ),
            job_id: self.job_id.to_string(),
            decision_id: self.decision_id().to_string(),
            violation_type: t,
            severity,
            expected_cluster_id: self.expected().to_string(),
            actual_cluster_id: self.target.clone(),
            provider_address: provider.clone(),
            details: clip(details),
        }
    }

    fn audit(
        &self,
        status: AuditStatus,
        reason: &str,
        fallback_reason: &str,
        violations: &[ViolationDraft],
    ) -> AuditDraft {
        let provider = &self.input.provider.address;
        let ages = self.ages.unwrap_or(Ages {
            blocks: 0,
            seconds: 0,
        });
        AuditDraft {
            record_id: record_id(
                self.job_id,
                self.decision_id(),
                &self.input.attempt,
                provider,
            ),
            job_id: self.job_id.to_string(),
            scheduling_decision_id: self.decision_id().to_string(),
            expected_cluster_id: self.expected().to_string(),
            actual_cluster_id: self.target.clone(),
            status,
            reason: clip(reason.to_string()),
            is_fallback: status == AuditStatus::Fallback,
            fallback_reason: clip(fallback_reason.to_string()),
            decision_age_blocks: ages.blocks,
            decision_age_seconds: ages.seconds,
            provider_address: provider.clone(),
            enforcement_mode: self.mode().to_proto(),
            violation_id: violations
                .first()
                .map(|v| v.violation_id.clone())
                .unwrap_or_default(),
            reason_code: violations
                .first()
                .map(|v| violation_type_name(v.violation_type).to_string())
                .unwrap_or_default(),
        }
    }

    /// Run on the target. `off_decision_reason` explains a run off the decision (it becomes
    /// the fallback reason); `notes` are appended to the record's reason.
    fn run(
        &self,
        off_decision_reason: Option<String>,
        notes: &[String],
        violations: Vec<ViolationDraft>,
    ) -> Evaluation {
        let (status, fallback_reason, event) = match (&off_decision_reason, &self.input.attempt) {
            (Some(why), _) => (
                AuditStatus::Fallback,
                why.clone(),
                events::ROUTING_FALLBACK_USED,
            ),
            (None, Attempt::Original) => (
                AuditStatus::Approved,
                String::new(),
                events::ROUTING_ENFORCED,
            ),
            (
                None,
                Attempt::Replacement {
                    kind: RequestKind::Fallback,
                    previous_decision_id,
                },
            ) => {
                let why = self
                    .decision
                    .map(|d| d.reschedule_reason.as_str())
                    .filter(|r| !r.is_empty())
                    .unwrap_or("the previously scheduled cluster could not take the job");
                (
                    AuditStatus::Fallback,
                    format!("fallback from decision {previous_decision_id:?}: {why}"),
                    events::ROUTING_FALLBACK_USED,
                )
            }
            (None, Attempt::Replacement { .. }) => (
                AuditStatus::Rescheduled,
                String::new(),
                events::ROUTING_DECISION_REFRESHED,
            ),
        };
        let mut reason = match status {
            AuditStatus::Approved => "job routed to scheduled cluster".to_string(),
            AuditStatus::Rescheduled => format!(
                "job routed to cluster {} of the replacement decision ({})",
                self.target,
                match &self.input.attempt {
                    Attempt::Replacement {
                        kind,
                        previous_decision_id,
                    } => format!("{} of {previous_decision_id:?}", kind.as_str()),
                    Attempt::Original => String::new(),
                }
            ),
            _ => format!(
                "job routed to cluster {} by fallback: {fallback_reason}",
                self.target
            ),
        };
        for n in notes {
            reason.push_str("; ");
            reason.push_str(n);
        }
        let audit = self.audit(status, &reason, &fallback_reason, &violations);
        Evaluation {
            outcome: Outcome::Run {
                cluster_id: self.target.clone(),
            },
            audit: Some(audit),
            violations,
            log_event: event,
        }
    }

    /// Reject; with a `rejected` record when `record` (the job is ours).
    fn reject(&self, reason: String, violations: Vec<ViolationDraft>, record: bool) -> Evaluation {
        let reason = clip(reason);
        let audit = record.then(|| self.audit(AuditStatus::Rejected, &reason, "", &violations));
        Evaluation {
            outcome: Outcome::Reject { reason },
            audit,
            violations,
            log_event: events::ROUTING_ENFORCEMENT_FAILED,
        }
    }

    /// Ask for a new decision. When the job's decision is ours (refresh, fallback), the
    /// attempt is closed with a `rescheduled` record on it, sent in the RequestReschedule
    /// tx after that message: the chain then takes it as informational, as the decision
    /// it names is superseded by then.
    fn request(
        &self,
        kind: RequestKind,
        reason: String,
        reason_code: &str,
        violations: Vec<ViolationDraft>,
    ) -> Evaluation {
        let reason = clip(reason);
        let exclude_cluster_ids = match kind {
            // The local scheduler serves all of this enforcer's clusters.
            RequestKind::Fallback => self.input.provider.cluster_ids.iter().cloned().collect(),
            RequestKind::Refresh | RequestKind::Missing => Vec::new(),
        };
        let closing = (kind != RequestKind::Missing && self.on_decision()).then(|| {
            let fallback_reason = if kind == RequestKind::Fallback {
                reason.as_str()
            } else {
                ""
            };
            AuditDraft {
                is_fallback: kind == RequestKind::Fallback,
                reason_code: reason_code.to_string(),
                ..self.audit(
                    AuditStatus::Rescheduled,
                    &format!("gave the decision up ({}): {reason}", kind.as_str()),
                    fallback_reason,
                    &violations,
                )
            }
        });
        Evaluation {
            outcome: Outcome::RequestNewDecision {
                reason,
                exclude_cluster_ids,
                kind,
            },
            audit: closing,
            violations,
            log_event: match kind {
                RequestKind::Fallback => events::ROUTING_FALLBACK_USED,
                RequestKind::Refresh | RequestKind::Missing => events::ROUTING_DECISION_REQUESTED,
            },
        }
    }
}

fn not_for_us(reason: String) -> Evaluation {
    Evaluation {
        outcome: Outcome::NotForUs { reason },
        audit: None,
        violations: Vec::new(),
        log_event: events::ROUTING_NOT_FOR_US,
    }
}

fn reject_without_record(reason: String) -> Evaluation {
    Evaluation {
        outcome: Outcome::Reject {
            reason: clip(reason),
        },
        audit: None,
        violations: Vec::new(),
        log_event: events::ROUTING_ENFORCEMENT_FAILED,
    }
}

/// Decides what to do with one job. Pure: the same input always gives the same output.
pub fn evaluate(input: &EvaluationInput) -> Evaluation {
    let job_id = input.job_id.as_str();
    let job = input.job.as_ref().filter(|j| j.job_id == input.job_id);
    let provider = &input.provider;
    let replacement = matches!(input.attempt, Attempt::Replacement { .. });

    // 1. Usable decision.
    let usable = match (&input.lookup, &input.decision) {
        (LookupStatus::Failed(e), _) => Usable::Failed(e.clone()),
        (_, None) => Usable::Missing(format!("no scheduling decision found for job {job_id}")),
        (_, Some(d)) if d.job_id != job_id => Usable::Missing(format!(
            "decision {} returned for job {job_id} belongs to job {}",
            d.decision_id, d.job_id
        )),
        (_, Some(d)) => Usable::Valid(d),
    };
    let decision = match &usable {
        Usable::Valid(d) => Some(*d),
        _ => None,
    };

    // Ages as the chain computes them at inclusion (head − decision; a decision newer than
    // our head is 0 old).
    let ages = match (decision, input.head) {
        (Some(d), Some(h)) => {
            let created = d.created_time.as_ref().map_or(0, |t| t.seconds);
            Some(Ages {
                blocks: h.height.saturating_sub(d.created_height),
                seconds: u64::try_from(h.time_seconds.saturating_sub(created)).unwrap_or(0),
            })
        }
        _ => None,
    };

    // 2. Relevance and the target cluster.
    let ours = |c: &str| provider.cluster_ids.contains(c);
    // The cluster a job without a usable decision would run on.
    let default_cluster = || {
        job.map(|j| j.routed_cluster_id.as_str())
            .filter(|c| ours(c))
            .or_else(|| provider.cluster_ids.iter().next().map(String::as_str))
            .map(str::to_string)
    };
    // Whether a rejected record may be written: the job is this provider's.
    let job_is_ours;
    let target = match &input.placement {
        Placement::OnCluster(c) => {
            if !ours(c) {
                return reject_without_record(format!(
                    "cluster {c} is not run by this enforcer (its clusters: {})",
                    provider
                        .cluster_ids
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            job_is_ours = match decision {
                Some(d) => ours(&d.selected_cluster_id),
                None => job.is_some_and(|j| j.provider_address == provider.address),
            };
            c.clone()
        }
        Placement::FollowDecision => match decision {
            Some(d) if ours(&d.selected_cluster_id) => {
                job_is_ours = true;
                d.selected_cluster_id.clone()
            }
            Some(d) => {
                let reason = format!(
                    "decision {} places job {job_id} on cluster {} of provider {}, not on a cluster of this enforcer",
                    d.decision_id, d.selected_cluster_id, d.selected_provider
                );
                return match &input.attempt {
                    Attempt::Original => not_for_us(reason),
                    Attempt::Replacement { kind, .. } => {
                        // Close our attempt: the job was rescheduled away from us.
                        let Some(ours) = default_cluster() else {
                            return not_for_us(reason);
                        };
                        let ctx = Ctx {
                            input,
                            job_id,
                            decision,
                            target: ours,
                            ages,
                        };
                        let fallback_reason = if *kind == RequestKind::Fallback {
                            reason.clone()
                        } else {
                            String::new()
                        };
                        let mut audit =
                            ctx.audit(AuditStatus::Rescheduled, &reason, &fallback_reason, &[]);
                        audit.is_fallback = *kind == RequestKind::Fallback;
                        Evaluation {
                            outcome: Outcome::NotForUs { reason },
                            audit: Some(audit),
                            violations: Vec::new(),
                            log_event: if *kind == RequestKind::Fallback {
                                events::ROUTING_FALLBACK_USED
                            } else {
                                events::ROUTING_DECISION_REFRESHED
                            },
                        }
                    }
                };
            }
            None => {
                // Our own replacement request is ours whatever the job says.
                let involved =
                    replacement || job.is_some_and(|j| j.provider_address == provider.address);
                if !involved {
                    return not_for_us(format!(
                        "job {job_id} has no usable decision and its provider is {}, not {}",
                        job.map_or("unknown", |j| j.provider_address.as_str()),
                        provider.address
                    ));
                }
                job_is_ours = true;
                match default_cluster() {
                    Some(c) => c,
                    None => {
                        return reject_without_record(
                            "this enforcer runs no cluster (provider.cluster_ids is empty)".into(),
                        )
                    }
                }
            }
        },
    };

    // A decision that is no longer the job's current one was superseded.
    if let (Some(d), Some(j), Attempt::Original) = (decision, job, &input.attempt) {
        if !j.current_decision_id.is_empty() && j.current_decision_id != d.decision_id {
            return not_for_us(format!(
                "decision {} of job {job_id} was superseded by {}",
                d.decision_id, j.current_decision_id
            ));
        }
    }

    // 3. Nothing to run without the job.
    let Some(job) = job else {
        return reject_without_record(format!(
            "job {job_id} is unknown to the chain (or could not be read): nothing to run"
        ));
    };

    let ctx = Ctx {
        input,
        job_id,
        decision,
        target,
        ages,
    };

    // 4. Enforcement disabled.
    if !input.routing.enabled {
        let note = "routing enforcement disabled (hpc.routing.enabled=false)".to_string();
        let off = (!ctx.on_decision()).then(|| match &usable {
            Usable::Valid(d) => format!(
                "{note}: decision selected cluster {}",
                d.selected_cluster_id
            ),
            Usable::Missing(why) | Usable::Failed(why) => format!("{note}: {why}"),
        });
        let notes = if off.is_none() {
            vec![note]
        } else {
            Vec::new()
        };
        return ctx.run(off, &notes, Vec::new());
    }

    // Facts for the mode table.
    let mode = ctx.mode();
    let routing = &input.routing;
    let fallback_denied = match (
        routing.allow_automatic_fallback,
        input.chain.allow_provider_fallback,
    ) {
        (true, true) => None,
        (false, true) => Some("hpc.routing.allow_automatic_fallback is false"),
        (true, false) => Some("chain param allow_provider_fallback is false"),
        (false, false) => Some(
            "hpc.routing.allow_automatic_fallback and chain param allow_provider_fallback are false",
        ),
    };
    let status = input.cluster_status;
    let nodes = job.requirements.as_ref().map_or(1, |r| r.nodes.max(1));
    let unavailable = if !status.available {
        Some(format!(
            "cluster {} is not available in the local scheduler",
            ctx.target
        ))
    } else if !status.healthy {
        Some(format!("cluster {} is unhealthy", ctx.target))
    } else {
        None
    };
    let short = (unavailable.is_none() && status.free_nodes < nodes).then(|| {
        format!(
            "cluster {} has {} free node(s), job {job_id} needs {nodes}",
            ctx.target, status.free_nodes
        )
    });
    let max_blocks = min_limit(
        routing.max_decision_age_blocks,
        input.chain.max_decision_age_blocks,
    );
    let max_seconds = min_limit(
        routing.max_decision_age_seconds,
        input.chain.max_decision_age_seconds,
    );
    let stale = ctx.ages.and_then(|a| {
        let mut why = Vec::new();
        if a.blocks > max_blocks {
            why.push(format!("{} blocks old (max {max_blocks})", a.blocks));
        }
        if a.seconds > max_seconds {
            why.push(format!("{} s old (max {max_seconds})", a.seconds));
        }
        (!why.is_empty()).then(|| {
            format!(
                "decision {} is stale: {}",
                ctx.decision_id(),
                why.join(", ")
            )
        })
    });
    let head_note = (decision.is_some() && input.head.is_none())
        .then(|| "chain head unknown: decision age not checked".to_string());
    let v = |t: ViolationType, details: String| ctx.violation(t, default_severity(t), details);

    match mode {
        EnforcementMode::Strict => {
            let d = match &usable {
                Usable::Failed(e) => {
                    return ctx.reject(
                        format!("decision lookup failed ({e}); strict mode fails closed"),
                        Vec::new(),
                        job_is_ours,
                    )
                }
                Usable::Missing(why) => {
                    return ctx.reject(
                        format!("missing scheduling decision: {why}"),
                        vec![v(ViolationType::MissingDecision, why.clone())],
                        job_is_ours,
                    )
                }
                Usable::Valid(d) => d,
            };
            if !ctx.on_decision() {
                let why = format!(
                    "cluster mismatch: decision {} selected cluster {}, not {}",
                    d.decision_id, d.selected_cluster_id, ctx.target
                );
                // Never a rejected record for a mismatch: the decision's cluster may run it.
                return ctx.reject(
                    why.clone(),
                    vec![v(ViolationType::ClusterMismatch, why)],
                    false,
                );
            }
            if let Some(why) = unavailable {
                return ctx.reject(
                    why.clone(),
                    vec![v(ViolationType::ClusterUnavailable, why)],
                    true,
                );
            }
            if let Some(why) = short {
                return ctx.reject(
                    format!("capacity exceeded: {why}"),
                    vec![v(ViolationType::CapacityExceeded, why)],
                    true,
                );
            }
            if input.head.is_none() {
                return ctx.reject(
                    "chain head unknown: cannot check the decision's age; strict mode fails closed"
                        .into(),
                    Vec::new(),
                    true,
                );
            }
            if let Some(why) = stale {
                if routing.auto_refresh_stale_decisions && !replacement {
                    return ctx.request(
                        RequestKind::Refresh,
                        why,
                        reason_codes::STALE_DECISION,
                        Vec::new(),
                    );
                }
                let reason = if replacement {
                    format!("replacement {why}")
                } else {
                    format!("{why} (auto_refresh_stale_decisions is off)")
                };
                return ctx.reject(reason, vec![v(ViolationType::StaleDecision, why)], true);
            }
            ctx.run(None, &[], Vec::new())
        }

        EnforcementMode::Permissive => {
            let d = match &usable {
                Usable::Failed(e) if !replacement => {
                    return ctx.request(
                        RequestKind::Missing,
                        format!("decision lookup failed: {e}"),
                        "",
                        Vec::new(),
                    )
                }
                Usable::Failed(e) => {
                    return ctx.reject(
                        format!("replacement decision lookup failed ({e})"),
                        Vec::new(),
                        job_is_ours,
                    )
                }
                Usable::Missing(why) if !replacement => {
                    let violations = if routing.require_decision_for_submission {
                        vec![v(ViolationType::MissingDecision, why.clone())]
                    } else {
                        Vec::new()
                    };
                    return ctx.request(
                        RequestKind::Missing,
                        format!("missing scheduling decision: {why}"),
                        "",
                        violations,
                    );
                }
                Usable::Missing(why) => {
                    return ctx.reject(
                        format!("missing replacement decision: {why}"),
                        vec![v(ViolationType::MissingDecision, why.clone())],
                        job_is_ours,
                    )
                }
                Usable::Valid(d) => d,
            };
            if !ctx.on_decision() {
                let why = format!(
                    "decision {} selected cluster {}, placement requested on {}",
                    d.decision_id, d.selected_cluster_id, ctx.target
                );
                if let Some(denied) = fallback_denied {
                    return ctx.reject(
                        format!("cluster mismatch and fallback not authorised ({denied}): {why}"),
                        vec![v(
                            ViolationType::UnauthorizedFallback,
                            format!("{why}; {denied}"),
                        )],
                        false,
                    );
                }
                if let Some(local) = unavailable.or(short) {
                    return ctx.reject(
                        format!("cannot take the job as a fallback: {local}"),
                        Vec::new(),
                        false,
                    );
                }
                return ctx.run(
                    Some(format!("authorised provider fallback: {why}")),
                    &[],
                    Vec::new(),
                );
            }
            let local_problem = unavailable
                .as_ref()
                .map(|w| (ViolationType::ClusterUnavailable, w.clone()))
                .or_else(|| {
                    short
                        .as_ref()
                        .map(|w| (ViolationType::CapacityExceeded, w.clone()))
                });
            if let Some((t, why)) = &local_problem {
                if !replacement {
                    if let Some(denied) = fallback_denied {
                        return ctx.reject(
                            format!("{why}; fallback not authorised ({denied})"),
                            vec![v(
                                ViolationType::UnauthorizedFallback,
                                format!("fallback needed ({why}) but {denied}"),
                            )],
                            true,
                        );
                    }
                    return ctx.request(
                        RequestKind::Fallback,
                        why.clone(),
                        violation_type_name(*t),
                        Vec::new(),
                    );
                }
                // A replacement never asks again: record and proceed.
                let mut violations = vec![v(*t, format!("replacement decision: {why}"))];
                let mut notes = vec![why.clone()];
                if let Some(s) = &stale {
                    violations.push(ctx.violation(
                        ViolationType::StaleDecision,
                        PERMISSIVE_STALE_SEVERITY,
                        s.clone(),
                    ));
                    notes.push(s.clone());
                }
                return ctx.run(None, &notes, violations);
            }
            if let Some(why) = stale {
                if routing.auto_refresh_stale_decisions && !replacement {
                    return ctx.request(
                        RequestKind::Refresh,
                        why,
                        reason_codes::STALE_DECISION,
                        Vec::new(),
                    );
                }
                let violations = vec![ctx.violation(
                    ViolationType::StaleDecision,
                    PERMISSIVE_STALE_SEVERITY,
                    why.clone(),
                )];
                return ctx.run(None, &[format!("proceeding on a {why}")], violations);
            }
            ctx.run(None, head_note.as_slice(), Vec::new())
        }

        EnforcementMode::AuditOnly => {
            // Nothing is enforced; everything observed is recorded.
            let mut notes: Vec<String> = Vec::new();
            let mut violations = Vec::new();
            if let Some(w) = unavailable.as_ref().or(short.as_ref()) {
                notes.push(format!("warning: {w}"));
            }
            let off = match &usable {
                Usable::Failed(e) => Some(format!(
                    "audit_only: decision lookup failed ({e}); proceeding without a decision"
                )),
                Usable::Missing(why) => {
                    violations.push(v(ViolationType::MissingDecision, why.clone()));
                    Some(format!("audit_only: {why}; proceeding without a decision"))
                }
                Usable::Valid(d) if !ctx.on_decision() => {
                    let why = format!(
                        "decision {} selected cluster {}, placed on {}",
                        d.decision_id, d.selected_cluster_id, ctx.target
                    );
                    violations.push(v(ViolationType::ClusterMismatch, why.clone()));
                    Some(format!("audit_only: {why}"))
                }
                Usable::Valid(_) => {
                    if let Some(why) = &stale {
                        violations.push(v(ViolationType::StaleDecision, why.clone()));
                        notes.push(format!("proceeding on a {why}"));
                    }
                    notes.extend(head_note);
                    None
                }
            };
            if let (Some(why), Some(denied)) = (&off, fallback_denied) {
                violations.push(v(
                    ViolationType::UnauthorizedFallback,
                    format!("{why}; {denied}"),
                ));
            }
            ctx.run(off, &notes, violations)
        }
    }
}

/// The stricter of the config's limit and the chain's (when known).
fn min_limit(config: u64, chain: Option<u64>) -> u64 {
    chain.map_or(config, |c| c.min(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_valid_chain_ids() {
        let a = record_id(
            "hpc-job-1",
            "hpc-decision-1",
            &Attempt::Original,
            "virtengine1x",
        );
        assert_eq!(
            a,
            record_id(
                "hpc-job-1",
                "hpc-decision-1",
                &Attempt::Original,
                "virtengine1x"
            )
        );
        assert!(a.starts_with("virtengine1x:ra-") && a.len() == "virtengine1x:".len() + 19);
        assert!(ids::is_valid(&a) && ids::usable_by(&a, "virtengine1x"));
        assert!(!ids::usable_by(&a, "virtengine1y"));
        let replacement = Attempt::Replacement {
            previous_decision_id: "hpc-decision-1".into(),
            kind: RequestKind::Refresh,
        };
        assert_ne!(
            a,
            record_id("hpc-job-1", "hpc-decision-1", &replacement, "virtengine1x")
        );
        assert_ne!(
            a,
            record_id(
                "hpc-job-1",
                "hpc-decision-1",
                &Attempt::Original,
                "virtengine1y"
            )
        );
        // Field boundaries matter.
        assert_ne!(
            record_id("hpc-job-1", "1", &Attempt::Original, "p"),
            record_id("hpc-job-", "11", &Attempt::Original, "p")
        );
        let v1 = violation_id(
            "j",
            "d",
            &Attempt::Original,
            "p",
            ViolationType::StaleDecision,
        );
        let v2 = violation_id(
            "j",
            "d",
            &Attempt::Original,
            "p",
            ViolationType::ClusterMismatch,
        );
        assert_ne!(v1, v2);
        assert!(v1.starts_with("p:rv-") && v1.len() == "p:".len() + 19);
    }

    #[test]
    fn severities_are_the_seed_table() {
        for (t, s, name) in [
            (ViolationType::MissingDecision, 4, "missing_decision"),
            (ViolationType::StaleDecision, 2, "stale_decision"),
            (ViolationType::ClusterMismatch, 5, "cluster_mismatch"),
            (ViolationType::ClusterUnavailable, 3, "cluster_unavailable"),
            (ViolationType::CapacityExceeded, 3, "capacity_exceeded"),
            (
                ViolationType::UnauthorizedFallback,
                4,
                "unauthorized_fallback",
            ),
        ] {
            assert_eq!(default_severity(t), s);
            assert_eq!(violation_type_name(t), name);
        }
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let s = "é".repeat(MAX_TEXT_LEN);
        let c = clip(s);
        assert!(c.len() <= MAX_TEXT_LEN);
        assert!(c.chars().all(|ch| ch == 'é'));
    }

    #[test]
    fn chain_params_zero_limits_are_unknown() {
        let p = Params {
            allow_provider_fallback: true,
            max_decision_age_blocks: 0,
            max_decision_age_seconds: 300,
            ..Default::default()
        };
        let c = ChainRoutingParams::from(&p);
        assert_eq!(c.max_decision_age_blocks, None);
        assert_eq!(c.max_decision_age_seconds, Some(300));
        assert_eq!(min_limit(100, None), 100);
        assert_eq!(min_limit(100, Some(50)), 50);
        assert_eq!(min_limit(100, Some(500)), 100);
    }
}
