//! Jobs: submission (scheduling), cancellation, rescheduling and status reports, and the
//! scheduling step that submission and rescheduling share.

use hpc_primitives::contract::{attrs, events, reschedule};
use hpc_proto::virtengine::hpc::v1::{
    Job, JobRequirements, JobState, MsgCancelJob, MsgCancelJobResponse, MsgReportJobStatus,
    MsgReportJobStatusResponse, MsgRequestReschedule, MsgRequestRescheduleResponse, MsgSubmitJob,
    MsgSubmitJobResponse, Params, RequesterRole, RescheduleKind, SchedulingDecision,
};
use hpc_store::StateWrite;
use prost::Message;
use sha2::{Digest, Sha256};

use super::{adjust_reservation, holds_reservation, job_of, now, refresh_reputation, transition};
use crate::context::ExecCtx;
use crate::errors::{hpc_codes as code, TxError};
use crate::events::Event;
use crate::hpc::keeper::Keeper;
use crate::hpc::msgs::validate_workload;
use crate::hpc::params::{workload_limits, HpcKeeper};
use crate::hpc::scheduler::{self, ScheduleOutcome, ScheduleRequest, Selected};

pub(super) fn submit_job(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgSubmitJob,
) -> Result<MsgSubmitJobResponse, TxError> {
    let params = HpcKeeper::params(state);
    validate_workload(m.workload.as_ref(), &workload_limits(&params))?;
    let seq = Keeper::next_seq(state, "job");
    let mut job = new_job(m, format!("hpc-job-{seq}"), ctx);
    let decision = schedule_job(state, ctx, &job, &[], None, "")?;
    job.current_decision_id = decision.decision_id.clone();
    job.provider_address = decision.selected_provider.clone();
    Keeper::set_job(state, &job);
    ctx.emit(
        Event::new(events::JOB_SCHEDULED)
            .attr(attrs::JOB_ID, &job.job_id)
            .attr(attrs::DECISION_ID, &decision.decision_id)
            .attr(attrs::CLUSTER_ID, &decision.selected_cluster_id)
            .attr(attrs::PROVIDER, &decision.selected_provider)
            .attr(attrs::SCORE, decision.score_bps)
            .attr(attrs::IS_FALLBACK, decision.is_fallback)
            .attr(attrs::CORRELATION_ID, &job.correlation_id),
    );
    Ok(MsgSubmitJobResponse {
        job_id: job.job_id,
        decision_id: decision.decision_id,
        cluster_id: decision.selected_cluster_id,
        provider: decision.selected_provider,
        score_bps: decision.score_bps,
        is_fallback: decision.is_fallback,
        correlation_id: job.correlation_id,
    })
}

/// A SCHEDULED job as submitted (its decision still to be attached); the correlation id
/// defaults to one derived from the job id.
fn new_job(m: &MsgSubmitJob, job_id: String, ctx: &ExecCtx) -> Job {
    let correlation_id = if m.correlation_id.is_empty() {
        format!("corr-{job_id}")
    } else {
        m.correlation_id.clone()
    };
    Job {
        job_id,
        owner: m.owner.clone(),
        requirements: m.requirements.clone(),
        policy: m.policy,
        workload: m.workload.clone(),
        state: JobState::Scheduled as i32,
        correlation_id,
        created_height: ctx.block.height,
        created_time: Some(now(ctx)),
        updated_height: ctx.block.height,
        updated_time: Some(now(ctx)),
        ..Default::default()
    }
}

pub(super) fn cancel_job(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgCancelJob,
) -> Result<MsgCancelJobResponse, TxError> {
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
        Event::new(events::JOB_CANCELLED)
            .attr(attrs::JOB_ID, &job.job_id)
            .attr(attrs::CORRELATION_ID, &job.correlation_id),
    );
    Ok(MsgCancelJobResponse {})
}

pub(super) fn request_reschedule(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgRequestReschedule,
) -> Result<MsgRequestRescheduleResponse, TxError> {
    let mut job = job_of(state, &m.job_id)?;
    let old = Keeper::decision(state, &job.current_decision_id).ok_or_else(|| {
        TxError::hpc(
            code::DECISION_NOT_FOUND,
            format!("job {} has no current decision", m.job_id),
        )
    })?;
    let (kind, role) = reschedule_kind(m, &job, &old)?;
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
    ctx.emit(rescheduled_event(m, &job, &old, &decision, kind, role));
    Ok(MsgRequestRescheduleResponse {
        decision_id: decision.decision_id,
        previous_decision_id: old.decision_id,
        cluster_id: decision.selected_cluster_id,
        provider: decision.selected_provider,
        score_bps: decision.score_bps,
        is_fallback: decision.is_fallback,
    })
}

/// Who may reschedule: the job's owner or the provider of its current decision, with the
/// kind of reschedule its role allows.
fn reschedule_kind(
    m: &MsgRequestReschedule,
    job: &Job,
    old: &SchedulingDecision,
) -> Result<(RescheduleKind, RequesterRole), TxError> {
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
    reschedule::resolve(stated, is_owner, is_provider).map_err(|why| {
        TxError::hpc(
            code::NOT_RESOURCE_OWNER,
            format!("{} on job {}: {why}", m.requester, m.job_id),
        )
    })
}

fn rescheduled_event(
    m: &MsgRequestReschedule,
    job: &Job,
    old: &SchedulingDecision,
    decision: &SchedulingDecision,
    kind: RescheduleKind,
    role: RequesterRole,
) -> Event {
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
        .attr(attrs::CORRELATION_ID, &job.correlation_id)
}

pub(super) fn report_job_status(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgReportJobStatus,
) -> Result<MsgReportJobStatusResponse, TxError> {
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
    let next = reported_state(m, &job)?;
    job.status_message = m.message.clone();
    if m.exit_code.is_some() {
        job.exit_code = m.exit_code;
    }
    if !m.local_job_id.is_empty() {
        job.local_job_id = m.local_job_id.clone();
    }
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
        Event::new(events::JOB_STATUS)
            .attr(attrs::JOB_ID, &job.job_id)
            .attr(attrs::STATUS, next.as_str_name())
            .attr(attrs::CLUSTER_ID, &cluster_id)
            .attr(attrs::CORRELATION_ID, &job.correlation_id)
            .attr(
                attrs::EXIT_CODE,
                m.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            )
            .attr(attrs::LOCAL_JOB_ID, &m.local_job_id),
    );
    Ok(MsgReportJobStatusResponse {})
}

/// The state a provider reports, if the job can move there: RUNNING from a reserving state,
/// COMPLETED or FAILED from those or from RUNNING.
fn reported_state(m: &MsgReportJobStatus, job: &Job) -> Result<JobState, TxError> {
    let next = JobState::try_from(m.status).map_err(|_| {
        TxError::logic(format!(
            "status: unknown job state {} (it passed ValidateBasic)",
            m.status
        ))
    })?;
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
    Ok(next)
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
    let decision = SchedulingDecision {
        decision_id: format!("hpc-decision-{seq}"),
        previous_decision_id: previous.map(|d| d.decision_id.clone()).unwrap_or_default(),
        reschedule_reason: reason.to_string(),
        excluded_cluster_ids: excluded.to_vec(),
        ..new_decision(ctx, job, &requirements, &params, selected, outcome)
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

/// The decision for a job that the scheduler's outcome makes, with `selected` its choice
/// (its id, predecessor, reason and exclusions are left to the caller).
fn new_decision(
    ctx: &ExecCtx,
    job: &Job,
    requirements: &JobRequirements,
    params: &Params,
    selected: Selected,
    outcome: ScheduleOutcome,
) -> SchedulingDecision {
    let mut policy_bytes = requirements.encode_to_vec();
    if let Some(policy) = &job.policy {
        policy_bytes.extend(policy.encode_to_vec());
    }
    SchedulingDecision {
        job_id: job.job_id.clone(),
        selected_cluster_id: selected.cluster_id,
        selected_provider: selected.provider_address,
        score_bps: selected.score_bps,
        candidates: outcome.candidates,
        policy_hash: Sha256::digest(&policy_bytes).to_vec(),
        created_height: ctx.block.height,
        created_time: Some(now(ctx)),
        is_fallback: selected.is_fallback,
        fallback_reason: selected.fallback_reason,
        relaxed_constraints: selected.relaxed_constraints,
        total_candidates: outcome.total_candidates,
        weights: Some(scheduler::effective_weights(job.policy.as_ref(), params)),
        ..Default::default()
    }
}
