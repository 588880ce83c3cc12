//! x/hpc message handlers: the stateful checks, state changes and events of SPEC §3.

use cosmos_sdk_proto::Timestamp;
use hpc_primitives::contract::{attrs, events, reschedule, submission};
use hpc_proto::virtengine::hpc::v1::{
    AuditStatus, Cluster, ClusterHealth, ClusterState, EnforcementMode, Job, JobState,
    MsgCancelJobResponse, MsgDeregisterClusterResponse, MsgRecordRoutingAuditResponse,
    MsgRegisterClusterResponse, MsgReportJobStatusResponse, MsgReportRoutingViolationResponse,
    MsgRequestRescheduleResponse, MsgResolveRoutingViolationResponse, MsgSubmitJobResponse,
    MsgUpdateClusterStatusResponse, MsgUpdateParamsResponse, Params, RequesterRole, RescheduleKind,
    RoutingViolation, SchedulingDecision, ViolationType,
};
use hpc_store::StateWrite;
use prost::Message;
use sha2::{Digest, Sha256};

use super::keeper::Keeper;
use super::msgs::HpcMsg;
use super::params::HpcKeeper;
use super::reputation;
use super::scheduler::{self, ScheduleRequest};
use crate::address::Address;
use crate::context::ExecCtx;
use crate::errors::{hpc_codes as code, TxError};
use crate::events::Event;
use crate::gas::OutOfGas;
use crate::tx::to_any;

/// The reporter recorded on violations the chain detects itself.
pub const CHAIN_REPORTER: &str = "x/hpc";

/// Severity of each violation type, as in the seed's table.
pub fn default_severity(t: ViolationType) -> u32 {
    t.default_severity()
}

/// The snake_case name used in events and the seed (`cluster_mismatch`).
pub fn violation_type_name(t: ViolationType) -> &'static str {
    t.snake_name()
}

pub fn audit_status_name(s: AuditStatus) -> &'static str {
    s.snake_name()
}

fn now(ctx: &ExecCtx) -> Timestamp {
    Timestamp {
        seconds: ctx.block.time_seconds,
        nanos: ctx.block.time_nanos,
    }
}

fn cluster_of(state: &impl StateWrite, id: &str) -> Result<Cluster, TxError> {
    Keeper::cluster(state, id)
        .ok_or_else(|| TxError::hpc(code::CLUSTER_NOT_FOUND, format!("cluster {id} not found")))
}

fn job_of(state: &impl StateWrite, id: &str) -> Result<Job, TxError> {
    Keeper::job(state, id)
        .ok_or_else(|| TxError::hpc(code::JOB_NOT_FOUND, format!("job {id} not found")))
}

fn require_cluster_provider(cluster: &Cluster, signer: &str) -> Result<(), TxError> {
    if cluster.provider_address != signer {
        return Err(TxError::hpc(
            code::NOT_RESOURCE_OWNER,
            format!(
                "{signer} is not the provider of cluster {} (provider {})",
                cluster.cluster_id, cluster.provider_address
            ),
        ));
    }
    Ok(())
}

fn require_authority(state: &impl StateWrite, signer: &str) -> Result<(), TxError> {
    let authority = HpcKeeper::authority(state);
    if authority.is_empty() || authority != signer {
        return Err(TxError::hpc(
            code::NOT_RESOURCE_OWNER,
            format!(
                "{signer} is not the x/hpc authority ({})",
                if authority.is_empty() {
                    "none set at genesis"
                } else {
                    &authority
                }
            ),
        ));
    }
    Ok(())
}

/// A job holds a reservation on its decision's cluster while SCHEDULED or ROUTED.
fn holds_reservation(state: JobState) -> bool {
    matches!(state, JobState::Scheduled | JobState::Routed)
}

fn adjust_reservation(state: &mut impl StateWrite, cluster_id: &str, nodes: u32, reserve: bool) {
    if let Some(mut cluster) = Keeper::cluster(state, cluster_id) {
        cluster.reserved_nodes = if reserve {
            cluster.reserved_nodes.saturating_add(nodes)
        } else {
            cluster.reserved_nodes.saturating_sub(nodes)
        };
        Keeper::set_cluster(state, &cluster);
    }
}

/// Moves a job to `next`, releasing its reservation when it leaves the reserving states.
fn transition(state: &mut impl StateWrite, job: &mut Job, next: JobState, ctx: &ExecCtx) {
    let decision_cluster =
        Keeper::decision(state, &job.current_decision_id).map(|d| d.selected_cluster_id);
    if holds_reservation(job.state()) && !holds_reservation(next) {
        if let Some(cluster) = decision_cluster {
            let nodes = job.requirements.as_ref().map_or(0, |r| r.nodes);
            adjust_reservation(state, &cluster, nodes, false);
        }
    }
    job.state = next as i32;
    job.updated_height = ctx.block.height;
    job.updated_time = Some(now(ctx));
    Keeper::set_job(state, job);
}

/// Recomputes a cluster's reputation from its record at the current height. It runs when
/// the inputs change (a violation recorded or resolved, a job completed) and at every
/// heartbeat, so violations leaving the window are reflected within one heartbeat; the
/// scheduler reads the stored value and never weighs violations itself. The cluster's
/// provider pays for its own violations here.
pub fn refresh_reputation(
    state: &mut impl StateWrite,
    cluster: &mut Cluster,
    params: &Params,
    ctx: &ExecCtx,
) -> Result<(), OutOfGas> {
    let weighed = reputation::MAX_VIOLATIONS_WEIGHED;
    let violations =
        Keeper::violations_of_cluster(state, &cluster.cluster_id, weighed + 1, ctx.meter)?;
    cluster.reputation_bps = if violations.len() > weighed {
        0
    } else {
        reputation::of_cluster(cluster, &violations, params, ctx.block.height)
    };
    Ok(())
}

/// Runs the scheduler for a job against the current clusters and stores the decision.
fn schedule_job(
    state: &mut impl StateWrite,
    ctx: &ExecCtx,
    job: &Job,
    excluded: &[String],
    previous: Option<&SchedulingDecision>,
    reason: &str,
) -> Result<SchedulingDecision, TxError> {
    let params = HpcKeeper::params(state);
    let requirements = job.requirements.clone().unwrap_or_default();
    let clusters = Keeper::candidate_clusters(
        state,
        &requirements,
        params.max_clusters_evaluated as usize,
        ctx.meter,
    )?;
    let outcome = scheduler::schedule(&ScheduleRequest {
        requirements: &requirements,
        policy: job.policy.as_ref(),
        params: &params,
        clusters: &clusters,
        excluded_cluster_ids: excluded,
        block_time_seconds: ctx.block.time_seconds,
    });
    let Some(selected) = outcome.selected.clone() else {
        return Err(TxError::hpc(
            code::NO_ELIGIBLE_CLUSTER,
            format!(
                "no eligible cluster for job {}: {}",
                job.job_id,
                scheduler::no_eligible_summary(&outcome)
            ),
        ));
    };
    let seq = Keeper::next_seq(state, "decision");
    let mut policy_bytes = requirements.encode_to_vec();
    if let Some(policy) = &job.policy {
        policy_bytes.extend(policy.encode_to_vec());
    }
    let decision = SchedulingDecision {
        decision_id: format!("hpc-decision-{seq}"),
        job_id: job.job_id.clone(),
        selected_cluster_id: selected.cluster_id.clone(),
        selected_provider: selected.provider_address.clone(),
        score_bps: selected.score_bps,
        candidates: outcome.candidates,
        policy_hash: Sha256::digest(&policy_bytes).to_vec(),
        created_height: ctx.block.height,
        created_time: Some(now(ctx)),
        previous_decision_id: previous.map(|d| d.decision_id.clone()).unwrap_or_default(),
        is_fallback: selected.is_fallback,
        fallback_reason: selected.fallback_reason,
        relaxed_constraints: selected.relaxed_constraints,
        reschedule_reason: reason.to_string(),
        excluded_cluster_ids: excluded.to_vec(),
        total_candidates: outcome.total_candidates,
        weights: Some(scheduler::effective_weights(job.policy.as_ref(), &params)),
        ..Default::default()
    };
    Keeper::insert_decision(state, &decision);
    adjust_reservation(
        state,
        &decision.selected_cluster_id,
        requirements.nodes,
        true,
    );
    Ok(decision)
}

/// Records a violation (reported or chain-detected), updates the provider's count and
/// emits the violation event plus, on crossing the threshold, the alert event once.
fn record_violation(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    mut v: RoutingViolation,
    params: &Params,
) -> Result<String, TxError> {
    if v.violation_id.is_empty() {
        v.violation_id = format!("hpc-violation-{}", Keeper::next_seq(state, "violation"));
    }
    // "Already recorded" means this very violation from this reporter: anything else under
    // the id is a conflict, never mistaken for a delivered report.
    if let Some(stored) = Keeper::violation(state, &v.violation_id) {
        return Err(if submission::same_violation(&stored, &v, &v.reporter) {
            TxError::hpc(
                code::DUPLICATE_VIOLATION,
                format!("violation {} already recorded", v.violation_id),
            )
        } else {
            TxError::hpc(
                code::VIOLATION_ID_CONFLICT,
                format!(
                    "violation_id {} is taken by a different violation (reporter {})",
                    v.violation_id, stored.reporter
                ),
            )
        });
    }
    let vtype = v.violation_type();
    if v.severity == 0 {
        v.severity = default_severity(vtype);
    }
    v.created_height = ctx.block.height;
    v.created_time = Some(now(ctx));
    v.resolved = false;
    v.resolution.clear();
    v.resolved_height = 0;
    v.resolved_time = None;
    if v.correlation_id.is_empty() {
        if let Some(job) = Keeper::job(state, &v.job_id) {
            v.correlation_id = job.correlation_id;
        }
    }
    Keeper::set_violation(state, &v);

    let provider: Address = v.provider_address.parse().expect("validated");
    let mut count = Keeper::violation_count(state, &provider);
    count.unresolved_count += 1;
    count.total_count += 1;
    ctx.emit(
        Event::new(events::ROUTING_VIOLATION)
            .attr(attrs::VIOLATION_ID, &v.violation_id)
            .attr(attrs::JOB_ID, &v.job_id)
            .attr(attrs::DECISION_ID, &v.decision_id)
            .attr(attrs::VIOLATION_TYPE, violation_type_name(vtype))
            .attr(attrs::SEVERITY, v.severity)
            .attr(attrs::PROVIDER_ADDRESS, &v.provider_address)
            .attr(attrs::REPORTER, &v.reporter)
            .attr(attrs::CORRELATION_ID, &v.correlation_id),
    );
    // One alert per crossing from below the threshold to at or above it (so a threshold
    // raised by governance alerts again when the new value is reached).
    let threshold = params.violation_alert_threshold as u64;
    let crossed = count.unresolved_count - 1 < threshold && count.unresolved_count >= threshold;
    count.alert_active = count.unresolved_count >= threshold;
    if crossed {
        ctx.emit(
            Event::new(events::ROUTING_VIOLATION_THRESHOLD_EXCEEDED)
                .attr(attrs::PROVIDER_ADDRESS, &v.provider_address)
                .attr(attrs::UNRESOLVED_COUNT, count.unresolved_count)
                .attr(attrs::THRESHOLD, params.violation_alert_threshold),
        );
    }
    Keeper::set_violation_count(state, &count);
    // The violation counts against the cluster's reputation at once.
    let cluster_id = if v.actual_cluster_id.is_empty() {
        &v.expected_cluster_id
    } else {
        &v.actual_cluster_id
    };
    if let Some(mut cluster) = Keeper::cluster(state, cluster_id) {
        refresh_reputation(state, &mut cluster, params, ctx)?;
        Keeper::set_cluster(state, &cluster);
    }
    Ok(v.violation_id)
}

/// Batches are bounded by `params.max_batch_size` (the message's hard cap is checked
/// statelessly).
fn check_batch(field: &str, len: usize, params: &Params) -> Result<(), TxError> {
    if len > params.max_batch_size as usize {
        return Err(TxError::hpc(
            code::BATCH_TOO_LARGE,
            format!(
                "{field}: {len} entries exceed params.max_batch_size {}",
                params.max_batch_size
            ),
        ));
    }
    Ok(())
}

/// Whether the chain itself refuses what it can cross-check (strict, enabled).
fn chain_is_strict(params: &Params) -> bool {
    params.routing_enforcement_enabled
        && params.routing_enforcement_mode == EnforcementMode::Strict as i32
}

pub fn execute(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    msg: &HpcMsg,
) -> Result<cosmos_sdk_proto::Any, TxError> {
    match msg {
        HpcMsg::RegisterCluster(m) => {
            if Keeper::cluster(state, &m.cluster_id).is_some() {
                return Err(TxError::hpc(
                    code::CLUSTER_EXISTS,
                    format!("cluster {} is already registered", m.cluster_id),
                ));
            }
            let params = HpcKeeper::params(state);
            let cluster = Cluster {
                cluster_id: m.cluster_id.clone(),
                provider_address: m.provider.clone(),
                region: m.region.clone(),
                state: ClusterState::Active as i32,
                total_nodes: m.total_nodes,
                available_nodes: m.available_nodes,
                reserved_nodes: 0,
                gpus_per_node: m.gpus_per_node,
                gpu_type: m.gpu_type.clone(),
                queue_depth: m.queue_depth,
                latency_ms: m.latency_ms,
                jitter_ms: m.jitter_ms,
                packet_loss_bps: m.packet_loss_bps,
                price_per_node_hour: m.price_per_node_hour,
                health: ClusterHealth::Healthy as i32,
                reputation_bps: params.reputation_prior_bps,
                last_heartbeat_height: ctx.block.height,
                last_heartbeat_time: Some(now(ctx)),
                registered_height: ctx.block.height,
                completed_jobs: 0,
            };
            Keeper::set_cluster(state, &cluster);
            ctx.emit(
                Event::new("hpc_cluster_registered")
                    .attr("cluster_id", &cluster.cluster_id)
                    .attr("provider", &cluster.provider_address)
                    .attr("region", &cluster.region)
                    .attr("total_nodes", cluster.total_nodes),
            );
            Ok(to_any(&MsgRegisterClusterResponse {
                cluster_id: cluster.cluster_id,
            }))
        }
        HpcMsg::UpdateClusterStatus(m) => {
            let mut cluster = cluster_of(state, &m.cluster_id)?;
            require_cluster_provider(&cluster, &m.provider)?;
            if cluster.state() == ClusterState::Deregistered {
                return Err(TxError::hpc(
                    code::CLUSTER_DEREGISTERED,
                    format!("cluster {} is deregistered", m.cluster_id),
                ));
            }
            if let Some(total) = m.total_nodes {
                cluster.total_nodes = total;
            }
            if m.available_nodes > cluster.total_nodes {
                return Err(TxError::invalid_request(format!(
                    "available_nodes: {} exceeds the cluster's total_nodes {}",
                    m.available_nodes, cluster.total_nodes
                )));
            }
            if let Some(price) = m.price_per_node_hour {
                cluster.price_per_node_hour = price;
            }
            cluster.state = m.state;
            cluster.available_nodes = m.available_nodes;
            cluster.queue_depth = m.queue_depth;
            cluster.latency_ms = m.latency_ms;
            cluster.jitter_ms = m.jitter_ms;
            cluster.packet_loss_bps = m.packet_loss_bps;
            cluster.health = m.health;
            cluster.last_heartbeat_height = ctx.block.height;
            cluster.last_heartbeat_time = Some(now(ctx));
            refresh_reputation(state, &mut cluster, &HpcKeeper::params(state), ctx)?;
            Keeper::set_cluster(state, &cluster);
            ctx.emit(
                Event::new("hpc_cluster_updated")
                    .attr("cluster_id", &cluster.cluster_id)
                    .attr("provider", &cluster.provider_address)
                    .attr("state", cluster.state().as_str_name())
                    .attr("health", cluster.health().as_str_name())
                    .attr("available_nodes", cluster.available_nodes),
            );
            Ok(to_any(&MsgUpdateClusterStatusResponse {}))
        }
        HpcMsg::DeregisterCluster(m) => {
            let mut cluster = cluster_of(state, &m.cluster_id)?;
            require_cluster_provider(&cluster, &m.provider)?;
            if cluster.state() == ClusterState::Deregistered {
                return Err(TxError::hpc(
                    code::CLUSTER_DEREGISTERED,
                    format!("cluster {} is already deregistered", m.cluster_id),
                ));
            }
            cluster.state = ClusterState::Deregistered as i32;
            Keeper::set_cluster(state, &cluster);
            ctx.emit(
                Event::new("hpc_cluster_updated")
                    .attr("cluster_id", &cluster.cluster_id)
                    .attr("provider", &cluster.provider_address)
                    .attr("state", cluster.state().as_str_name()),
            );
            Ok(to_any(&MsgDeregisterClusterResponse {}))
        }
        HpcMsg::SubmitJob(m) => {
            let seq = Keeper::next_seq(state, "job");
            let job_id = format!("hpc-job-{seq}");
            let correlation_id = if m.correlation_id.is_empty() {
                format!("corr-{job_id}")
            } else {
                m.correlation_id.clone()
            };
            let mut job = Job {
                job_id: job_id.clone(),
                owner: m.owner.clone(),
                requirements: m.requirements.clone(),
                policy: m.policy,
                state: JobState::Scheduled as i32,
                correlation_id: correlation_id.clone(),
                created_height: ctx.block.height,
                created_time: Some(now(ctx)),
                updated_height: ctx.block.height,
                updated_time: Some(now(ctx)),
                ..Default::default()
            };
            let decision = schedule_job(state, ctx, &job, &[], None, "")?;
            job.current_decision_id = decision.decision_id.clone();
            job.provider_address = decision.selected_provider.clone();
            Keeper::set_job(state, &job);
            ctx.emit(
                Event::new("hpc_job_scheduled")
                    .attr("job_id", &job_id)
                    .attr("decision_id", &decision.decision_id)
                    .attr("cluster_id", &decision.selected_cluster_id)
                    .attr("provider", &decision.selected_provider)
                    .attr("score", decision.score_bps)
                    .attr("is_fallback", decision.is_fallback)
                    .attr("correlation_id", &correlation_id),
            );
            Ok(to_any(&MsgSubmitJobResponse {
                job_id,
                decision_id: decision.decision_id,
                cluster_id: decision.selected_cluster_id,
                provider: decision.selected_provider,
                score_bps: decision.score_bps,
                is_fallback: decision.is_fallback,
                correlation_id,
            }))
        }
        HpcMsg::CancelJob(m) => {
            let mut job = job_of(state, &m.job_id)?;
            if job.owner != m.owner {
                return Err(TxError::hpc(
                    code::NOT_RESOURCE_OWNER,
                    format!("{} is not the owner of job {}", m.owner, m.job_id),
                ));
            }
            if !matches!(
                job.state(),
                JobState::Scheduled | JobState::Routed | JobState::Running
            ) {
                return Err(TxError::hpc(
                    code::INVALID_JOB_STATE,
                    format!(
                        "job {} is {} and cannot be cancelled",
                        m.job_id,
                        job.state().as_str_name()
                    ),
                ));
            }
            transition(state, &mut job, JobState::Cancelled, ctx);
            ctx.emit(
                Event::new("hpc_job_cancelled")
                    .attr("job_id", &job.job_id)
                    .attr("correlation_id", &job.correlation_id),
            );
            Ok(to_any(&MsgCancelJobResponse {}))
        }
        HpcMsg::RequestReschedule(m) => {
            let mut job = job_of(state, &m.job_id)?;
            let old = Keeper::decision(state, &job.current_decision_id).ok_or_else(|| {
                TxError::hpc(
                    code::DECISION_NOT_FOUND,
                    format!("job {} has no current decision", m.job_id),
                )
            })?;
            let is_owner = m.requester == job.owner;
            let is_provider = m.requester == old.selected_provider;
            if !is_owner && !is_provider {
                return Err(TxError::hpc(
                    code::NOT_RESOURCE_OWNER,
                    format!(
                        "{} is neither the owner of job {} nor the provider of its cluster {}",
                        m.requester, m.job_id, old.selected_cluster_id
                    ),
                ));
            }
            // The kind is the requester's stated intent, checked against its role (never
            // read from the free-text reason): an owner cannot make a provider fallback.
            let stated = RescheduleKind::try_from(m.kind).unwrap_or_default();
            let (kind, role) =
                reschedule::resolve(stated, is_owner, is_provider).map_err(|why| {
                    TxError::hpc(
                        code::NOT_RESOURCE_OWNER,
                        format!("{} on job {}: {why}", m.requester, m.job_id),
                    )
                })?;
            if !holds_reservation(job.state()) {
                return Err(TxError::hpc(
                    code::INVALID_JOB_STATE,
                    format!(
                        "job {} is {} and cannot be rescheduled",
                        m.job_id,
                        job.state().as_str_name()
                    ),
                ));
            }
            // Release the old reservation before scheduling so the old cluster is judged fairly.
            let nodes = job.requirements.as_ref().map_or(0, |r| r.nodes);
            adjust_reservation(state, &old.selected_cluster_id, nodes, false);
            let mut decision = schedule_job(
                state,
                ctx,
                &job,
                &m.excluded_cluster_ids,
                Some(&old),
                &m.reason,
            )?;
            // Who asked and why, as the chain established it, on the decision itself.
            decision.reschedule_kind = kind as i32;
            decision.requested_by = m.requester.clone();
            decision.requester_role = role as i32;
            Keeper::insert_decision(state, &decision);
            job.current_decision_id = decision.decision_id.clone();
            job.provider_address = decision.selected_provider.clone();
            job.routed_cluster_id.clear();
            job.state = JobState::Scheduled as i32;
            job.updated_height = ctx.block.height;
            job.updated_time = Some(now(ctx));
            Keeper::set_job(state, &job);
            ctx.emit(
                Event::new(events::JOB_RESCHEDULED)
                    .attr(attrs::JOB_ID, &job.job_id)
                    .attr(attrs::OLD_DECISION_ID, &old.decision_id)
                    .attr(attrs::NEW_DECISION_ID, &decision.decision_id)
                    .attr(attrs::DECISION_ID, &decision.decision_id)
                    .attr(attrs::CLUSTER_ID, &decision.selected_cluster_id)
                    .attr(attrs::PROVIDER, &decision.selected_provider)
                    .attr(attrs::REASON, &m.reason)
                    .attr(attrs::KIND, reschedule::kind_name(kind))
                    .attr(attrs::REQUESTED_BY, &m.requester)
                    .attr(attrs::REQUESTER_ROLE, reschedule::role_name(role))
                    .attr(attrs::CORRELATION_ID, &job.correlation_id),
            );
            Ok(to_any(&MsgRequestRescheduleResponse {
                decision_id: decision.decision_id,
                previous_decision_id: old.decision_id,
                cluster_id: decision.selected_cluster_id,
                provider: decision.selected_provider,
                score_bps: decision.score_bps,
                is_fallback: decision.is_fallback,
            }))
        }
        HpcMsg::RecordRoutingAudit(m) => {
            let params = HpcKeeper::params(state);
            check_batch("records", m.records.len(), &params)?;
            let mut record_ids = Vec::new();
            let mut violation_ids = Vec::new();
            for (i, r) in m.records.iter().enumerate() {
                let at = |log: String| format!("records[{i}]: {log}");
                // "Already recorded" (9) means this very record from this signer, which an
                // enforcer may take as delivered; anything else under the id is a conflict.
                if let Some(stored) = Keeper::audit(state, &r.record_id) {
                    return Err(if submission::same_audit(&stored, r, &m.provider) {
                        TxError::hpc(
                            code::DUPLICATE_RECORD,
                            at(format!("record_id {} is already recorded", r.record_id)),
                        )
                    } else {
                        TxError::hpc(
                            code::RECORD_ID_CONFLICT,
                            at(format!(
                                "record_id {} is taken by a different record (provider {})",
                                r.record_id, stored.provider_address
                            )),
                        )
                    });
                }
                let cluster = cluster_of(state, &r.actual_cluster_id).map_err(|e| TxError {
                    log: at(e.log),
                    ..e
                })?;
                require_cluster_provider(&cluster, &m.provider).map_err(|e| TxError {
                    log: at(e.log),
                    ..e
                })?;
                let mut job = job_of(state, &r.job_id).map_err(|e| TxError {
                    log: at(e.log),
                    ..e
                })?;
                let mut record = r.clone();
                record.provider_address = m.provider.clone();
                record.created_height = ctx.block.height;
                record.created_at = Some(now(ctx));
                // Set only by the chain below.
                record.violation_id.clear();
                let decision = if r.scheduling_decision_id.is_empty() {
                    // Without a decision the chain cannot know the ages.
                    record.decision_age_blocks = 0;
                    record.decision_age_seconds = 0;
                    None
                } else {
                    let d =
                        Keeper::decision(state, &r.scheduling_decision_id).ok_or_else(|| {
                            TxError::hpc(
                                code::DECISION_NOT_FOUND,
                                at(format!("decision {} not found", r.scheduling_decision_id)),
                            )
                        })?;
                    if d.job_id != r.job_id {
                        return Err(TxError::hpc(
                            code::DECISION_MISMATCH,
                            at(format!(
                                "decision {} belongs to job {}, not {}",
                                d.decision_id, d.job_id, r.job_id
                            )),
                        ));
                    }
                    if !r.expected_cluster_id.is_empty()
                        && r.expected_cluster_id != d.selected_cluster_id
                    {
                        return Err(TxError::hpc(
                            code::DECISION_MISMATCH,
                            at(format!(
                                "expected_cluster_id {} is not decision {}'s cluster {}",
                                r.expected_cluster_id, d.decision_id, d.selected_cluster_id
                            )),
                        ));
                    }
                    // Ages are the chain's, recomputed at inclusion.
                    record.expected_cluster_id = d.selected_cluster_id.clone();
                    record.decision_age_blocks = ctx.block.height.saturating_sub(d.created_height);
                    let created = d.created_time.as_ref().map_or(0, |t| t.seconds);
                    record.decision_age_seconds =
                        u64::try_from(ctx.block.time_seconds.saturating_sub(created)).unwrap_or(0);
                    Some(d)
                };
                let status = record.status();
                let off_decision = decision
                    .as_ref()
                    .is_some_and(|d| d.selected_cluster_id != record.actual_cluster_id);
                // Only the provider the chain placed the job with audits it: the provider of
                // the named decision (or, without one, of the job's current decision). The
                // one exception is the provider that asked for the decision, closing its own
                // attempt with an informational RESCHEDULED record off the new cluster.
                let authorised = match &decision {
                    Some(d) => {
                        d.selected_provider == m.provider
                            || (status == AuditStatus::Rescheduled
                                && off_decision
                                && d.requested_by == m.provider
                                && d.requester_role() == RequesterRole::Provider)
                    }
                    None => job.provider_address == m.provider,
                };
                if !authorised {
                    return Err(TxError::hpc(
                        code::NOT_RESOURCE_OWNER,
                        at(match &decision {
                            Some(d) => format!(
                                "{} is not the provider of decision {} (provider {})",
                                m.provider, d.decision_id, d.selected_provider
                            ),
                            None => format!(
                                "{} is not the provider of job {} ({})",
                                m.provider, job.job_id, job.provider_address
                            ),
                        }),
                    ));
                }
                // Approved and fallback records route the job; so does a rescheduled one
                // placed exactly as its (replacement) decision says. Anything else is
                // informational.
                let routes = match status {
                    AuditStatus::Approved | AuditStatus::Fallback => true,
                    AuditStatus::Rescheduled => decision.is_some() && !off_decision,
                    _ => false,
                };
                // Routing is decided by the job's current decision, once: it needs a
                // SCHEDULED job and, when the record names a decision, the current one.
                if routes {
                    if job.state() != JobState::Scheduled {
                        return Err(TxError::hpc(
                            code::INVALID_JOB_STATE,
                            at(format!(
                                "job {} is {}; only a SCHEDULED job can be routed",
                                job.job_id,
                                job.state().as_str_name()
                            )),
                        ));
                    }
                    if decision
                        .as_ref()
                        .is_some_and(|d| d.decision_id != job.current_decision_id)
                    {
                        return Err(TxError::hpc(
                            code::DECISION_MISMATCH,
                            at(format!(
                                "decision {} is not the current decision of job {} ({})",
                                r.scheduling_decision_id, job.job_id, job.current_decision_id
                            )),
                        ));
                    }
                }
                let detected = match status {
                    AuditStatus::Approved if off_decision || decision.is_none() => {
                        Some(ViolationType::ClusterMismatch)
                    }
                    AuditStatus::Fallback if !params.allow_provider_fallback => {
                        Some(ViolationType::UnauthorizedFallback)
                    }
                    _ => None,
                };
                if let Some(vtype) = detected {
                    if chain_is_strict(&params) {
                        return Err(TxError::hpc(
                            code::CLUSTER_MISMATCH_REFUSED,
                            at(format!(
                                "{} record for job {} on cluster {} refused in strict mode: {}",
                                audit_status_name(status),
                                r.job_id,
                                record.actual_cluster_id,
                                violation_type_name(vtype)
                            )),
                        ));
                    }
                    let id = record_violation(
                        state,
                        ctx,
                        RoutingViolation {
                            job_id: record.job_id.clone(),
                            decision_id: record.scheduling_decision_id.clone(),
                            violation_type: vtype as i32,
                            expected_cluster_id: record.expected_cluster_id.clone(),
                            actual_cluster_id: record.actual_cluster_id.clone(),
                            provider_address: m.provider.clone(),
                            details: format!(
                                "detected by the chain on audit record {}",
                                record.record_id
                            ),
                            reporter: CHAIN_REPORTER.to_string(),
                            ..Default::default()
                        },
                        &params,
                    )?;
                    record.violation_id = id.clone();
                    violation_ids.push(id);
                }
                Keeper::insert_audit(state, &record);
                match status {
                    _ if routes => {
                        job.routed_cluster_id = record.actual_cluster_id.clone();
                        transition(state, &mut job, JobState::Routed, ctx);
                        ctx.emit(
                            Event::new(events::JOB_ROUTED)
                                .attr(attrs::JOB_ID, &record.job_id)
                                .attr(attrs::DECISION_ID, &record.scheduling_decision_id)
                                .attr(attrs::CLUSTER_ID, &record.actual_cluster_id)
                                .attr(attrs::PROVIDER, &m.provider)
                                .attr(attrs::STATUS, audit_status_name(status))
                                .attr(attrs::IS_FALLBACK, record.is_fallback)
                                .attr(attrs::RECORD_ID, &record.record_id)
                                .attr(attrs::CORRELATION_ID, &job.correlation_id),
                        );
                    }
                    // Only the job's own provider can turn it down.
                    AuditStatus::Rejected
                        if holds_reservation(job.state()) && job.provider_address == m.provider =>
                    {
                        transition(state, &mut job, JobState::Rejected, ctx);
                    }
                    _ => {}
                }
                ctx.emit(
                    Event::new(events::ROUTING_AUDIT_RECORDED)
                        .attr(attrs::RECORD_ID, &record.record_id)
                        .attr(attrs::JOB_ID, &record.job_id)
                        .attr(attrs::STATUS, audit_status_name(status))
                        .attr(attrs::PROVIDER, &m.provider)
                        .attr(attrs::CORRELATION_ID, &job.correlation_id),
                );
                record_ids.push(record.record_id);
            }
            Ok(to_any(&MsgRecordRoutingAuditResponse {
                record_ids,
                violation_ids,
            }))
        }
        HpcMsg::ReportRoutingViolation(m) => {
            let params = HpcKeeper::params(state);
            check_batch("violations", m.violations.len(), &params)?;
            let authority = HpcKeeper::authority(state);
            let mut ids = Vec::new();
            for (i, v) in m.violations.iter().enumerate() {
                if m.reporter != v.provider_address && m.reporter != authority {
                    return Err(TxError::hpc(
                        code::NOT_RESOURCE_OWNER,
                        format!("violations[{i}]: reporter {} must be the provider {} itself or the authority", m.reporter, v.provider_address),
                    ));
                }
                // A report must be about a real job, and the cluster it counts against
                // (for reputation) must be the reported provider's own.
                let at = |e: TxError| TxError {
                    log: format!("violations[{i}]: {}", e.log),
                    ..e
                };
                job_of(state, &v.job_id).map_err(at)?;
                let counted = if v.actual_cluster_id.is_empty() {
                    &v.expected_cluster_id
                } else {
                    &v.actual_cluster_id
                };
                if !counted.is_empty() {
                    let cluster = cluster_of(state, counted).map_err(at)?;
                    require_cluster_provider(&cluster, &v.provider_address).map_err(at)?;
                }
                let mut v = v.clone();
                v.reporter = m.reporter.clone();
                let id = record_violation(state, ctx, v, &params).map_err(|e| TxError {
                    log: format!("violations[{i}]: {}", e.log),
                    ..e
                })?;
                ids.push(id);
            }
            Ok(to_any(&MsgReportRoutingViolationResponse {
                violation_ids: ids,
            }))
        }
        HpcMsg::ResolveRoutingViolation(m) => {
            require_authority(state, &m.authority)?;
            let params = HpcKeeper::params(state);
            let mut v = Keeper::violation(state, &m.violation_id).ok_or_else(|| {
                TxError::hpc(
                    code::VIOLATION_NOT_FOUND,
                    format!("violation {} not found", m.violation_id),
                )
            })?;
            if v.resolved {
                return Err(TxError::hpc(
                    code::ALREADY_RESOLVED,
                    format!("violation {} is already resolved", m.violation_id),
                ));
            }
            v.resolved = true;
            v.resolution = m.resolution.clone();
            v.resolved_height = ctx.block.height;
            v.resolved_time = Some(now(ctx));
            Keeper::set_violation(state, &v);
            let provider: Address = v
                .provider_address
                .parse()
                .expect("stored addresses are valid");
            let mut count = Keeper::violation_count(state, &provider);
            count.unresolved_count = count.unresolved_count.saturating_sub(1);
            count.alert_active = count.unresolved_count >= params.violation_alert_threshold as u64;
            Keeper::set_violation_count(state, &count);
            let cluster_id = if v.actual_cluster_id.is_empty() {
                &v.expected_cluster_id
            } else {
                &v.actual_cluster_id
            };
            if let Some(mut cluster) = Keeper::cluster(state, cluster_id) {
                refresh_reputation(state, &mut cluster, &params, ctx)?;
                Keeper::set_cluster(state, &cluster);
            }
            ctx.emit(
                Event::new("hpc_routing_violation_resolved")
                    .attr("violation_id", &v.violation_id)
                    .attr("job_id", &v.job_id)
                    .attr("provider_address", &v.provider_address)
                    .attr("resolution", &v.resolution)
                    .attr("unresolved_count", count.unresolved_count)
                    .attr("correlation_id", &v.correlation_id),
            );
            Ok(to_any(&MsgResolveRoutingViolationResponse {}))
        }
        HpcMsg::ReportJobStatus(m) => {
            let mut job = job_of(state, &m.job_id)?;
            if job.provider_address != m.provider {
                return Err(TxError::hpc(
                    code::NOT_RESOURCE_OWNER,
                    format!(
                        "{} is not the provider of job {} ({})",
                        m.provider, m.job_id, job.provider_address
                    ),
                ));
            }
            let next = JobState::try_from(m.status).expect("validated");
            let allowed = match next {
                JobState::Running => holds_reservation(job.state()),
                JobState::Completed | JobState::Failed => {
                    holds_reservation(job.state()) || job.state() == JobState::Running
                }
                _ => false,
            };
            if !allowed {
                return Err(TxError::hpc(
                    code::INVALID_JOB_STATE,
                    format!(
                        "job {} cannot go from {} to {}",
                        m.job_id,
                        job.state().as_str_name(),
                        next.as_str_name()
                    ),
                ));
            }
            job.status_message = m.message.clone();
            let cluster_id = Keeper::decision(state, &job.current_decision_id)
                .map(|d| d.selected_cluster_id)
                .unwrap_or_default();
            transition(state, &mut job, next, ctx);
            if next == JobState::Completed {
                if let Some(mut cluster) = Keeper::cluster(state, &cluster_id) {
                    let params = HpcKeeper::params(state);
                    cluster.completed_jobs += 1;
                    refresh_reputation(state, &mut cluster, &params, ctx)?;
                    Keeper::set_cluster(state, &cluster);
                }
            }
            ctx.emit(
                Event::new("hpc_job_status")
                    .attr("job_id", &job.job_id)
                    .attr("status", next.as_str_name())
                    .attr("cluster_id", &cluster_id)
                    .attr("correlation_id", &job.correlation_id),
            );
            Ok(to_any(&MsgReportJobStatusResponse {}))
        }
        HpcMsg::UpdateParams(m) => {
            require_authority(state, &m.authority)?;
            let params = m.params.expect("validated");
            super::params::validate_params(&params)
                .map_err(|e| TxError::hpc(code::INVALID_PARAMS, e.to_string()))?;
            HpcKeeper::set_params(state, &params);
            ctx.emit(Event::new("hpc_params_updated").attr("authority", &m.authority));
            Ok(to_any(&MsgUpdateParamsResponse {}))
        }
    }
}
