//! Routing audit records: what a provider's enforcer did with a job, cross-checked
//! against the chain's decision. A record can route the job, turn it down, or be
//! informational; what the chain can tell is wrong is recorded as a violation (or, in
//! strict mode, refused).

use hpc_primitives::contract::{attrs, events, submission};
use hpc_proto::virtengine::hpc::v1::{
    AuditStatus, EnforcementMode, Job, JobState, MsgRecordRoutingAudit,
    MsgRecordRoutingAuditResponse, Params, RequesterRole, RoutingAuditRecord, RoutingViolation,
    SchedulingDecision, ViolationType,
};
use hpc_store::StateWrite;

use super::violation::record_violation;
use super::{
    at_index, audit_status_name, check_batch, holds_reservation, job_of, now, provider_cluster,
    transition, violation_type_name, CHAIN_REPORTER,
};
use crate::context::ExecCtx;
use crate::errors::{hpc_codes as code, TxError};
use crate::events::Event;
use crate::hpc::keeper::Keeper;
use crate::hpc::params::HpcKeeper;

pub(super) fn record_routing_audit(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgRecordRoutingAudit,
) -> Result<MsgRecordRoutingAuditResponse, TxError> {
    let params = HpcKeeper::params(state);
    check_batch("records", m.records.len(), &params)?;
    let mut record_ids = Vec::new();
    let mut violation_ids = Vec::new();
    for (i, r) in m.records.iter().enumerate() {
        let admitted =
            admit_record(state, ctx, &m.provider, r, &params).map_err(at_index("records", i))?;
        let (record_id, violation_id) = store_record(state, ctx, &m.provider, admitted, &params)?;
        record_ids.push(record_id);
        violation_ids.extend(violation_id);
    }
    Ok(MsgRecordRoutingAuditResponse {
        record_ids,
        violation_ids,
    })
}

/// A record that passed every check, with what it does.
struct Admitted {
    record: RoutingAuditRecord,
    job: Job,
    status: AuditStatus,
    /// Whether the record routes the job.
    routes: bool,
    /// The violation the chain detects on it, if any.
    detected: Option<ViolationType>,
}

/// Checks a record against the state (its id, cluster, job and decision, who may audit,
/// what it may do) without changing anything; errors are about the record.
fn admit_record(
    state: &impl StateWrite,
    ctx: &ExecCtx,
    provider: &str,
    r: &RoutingAuditRecord,
    params: &Params,
) -> Result<Admitted, TxError> {
    check_record_id(state, r, provider)?;
    provider_cluster(state, &r.actual_cluster_id, provider)?;
    let job = job_of(state, &r.job_id)?;
    let mut record = r.clone();
    record.provider_address = provider.to_string();
    record.created_height = ctx.block.height;
    record.created_at = Some(now(ctx));
    // Set only by the chain below.
    record.violation_id.clear();
    let decision = named_decision(state, ctx, &mut record)?;
    let status = record.status();
    let off_decision = decision
        .as_ref()
        .is_some_and(|d| d.selected_cluster_id != record.actual_cluster_id);
    require_auditor(decision.as_ref(), &job, provider, status, off_decision)?;
    // Approved and fallback records route the job; so does a rescheduled one
    // placed exactly as the job's current (replacement) decision says. Anything
    // else is informational, such as a provider's rescheduled record closing its
    // attempt on the decision it gave up.
    let routes = match status {
        AuditStatus::Approved | AuditStatus::Fallback => true,
        AuditStatus::Rescheduled => {
            !off_decision
                && decision
                    .as_ref()
                    .is_some_and(|d| d.decision_id == job.current_decision_id)
        }
        _ => false,
    };
    if routes {
        require_routable(&job, decision.as_ref(), &record)?;
    }
    let detected = detected_violation(status, decision.is_some(), off_decision, params);
    if let Some(vtype) = detected {
        refuse_if_strict(&record, status, vtype, params)?;
    }
    Ok(Admitted {
        record,
        job,
        status,
        routes,
        detected,
    })
}

/// "Already recorded" (9) means this very record from this signer, which an
/// enforcer may take as delivered; anything else under the id is a conflict.
fn check_record_id(
    state: &impl StateWrite,
    r: &RoutingAuditRecord,
    provider: &str,
) -> Result<(), TxError> {
    let Some(stored) = Keeper::audit(state, &r.record_id) else {
        return Ok(());
    };
    Err(if submission::same_audit(&stored, r, provider) {
        TxError::hpc(
            code::DUPLICATE_RECORD,
            format!("record_id {} is already recorded", r.record_id),
        )
    } else {
        TxError::hpc(
            code::RECORD_ID_CONFLICT,
            format!(
                "record_id {} is taken by a different record (provider {})",
                r.record_id, stored.provider_address
            ),
        )
    })
}

/// The decision the record names, which must be the job's and agree with the record's
/// expected cluster; the record's expected cluster and decision ages become the chain's.
fn named_decision(
    state: &impl StateWrite,
    ctx: &ExecCtx,
    record: &mut RoutingAuditRecord,
) -> Result<Option<SchedulingDecision>, TxError> {
    if record.scheduling_decision_id.is_empty() {
        // Without a decision the chain cannot know the ages.
        record.decision_age_blocks = 0;
        record.decision_age_seconds = 0;
        return Ok(None);
    }
    let d = Keeper::decision(state, &record.scheduling_decision_id).ok_or_else(|| {
        TxError::hpc(
            code::DECISION_NOT_FOUND,
            format!("decision {} not found", record.scheduling_decision_id),
        )
    })?;
    if d.job_id != record.job_id {
        return Err(TxError::hpc(
            code::DECISION_MISMATCH,
            format!(
                "decision {} belongs to job {}, not {}",
                d.decision_id, d.job_id, record.job_id
            ),
        ));
    }
    if !record.expected_cluster_id.is_empty() && record.expected_cluster_id != d.selected_cluster_id
    {
        return Err(TxError::hpc(
            code::DECISION_MISMATCH,
            format!(
                "expected_cluster_id {} is not decision {}'s cluster {}",
                record.expected_cluster_id, d.decision_id, d.selected_cluster_id
            ),
        ));
    }
    // Ages are the chain's, recomputed at inclusion.
    record.expected_cluster_id = d.selected_cluster_id.clone();
    record.decision_age_blocks = ctx.block.height.saturating_sub(d.created_height);
    let created = d.created_time.as_ref().map_or(0, |t| t.seconds);
    record.decision_age_seconds =
        u64::try_from(ctx.block.time_seconds.saturating_sub(created)).unwrap_or(0);
    Ok(Some(d))
}

/// Only the provider the chain placed the job with audits it: the provider of
/// the named decision (or, without one, of the job's current decision). The
/// one exception is the provider that asked for the decision, closing its own
/// attempt with an informational RESCHEDULED record off the new cluster.
fn require_auditor(
    decision: Option<&SchedulingDecision>,
    job: &Job,
    provider: &str,
    status: AuditStatus,
    off_decision: bool,
) -> Result<(), TxError> {
    let authorised = match decision {
        Some(d) => {
            d.selected_provider == provider
                || (status == AuditStatus::Rescheduled
                    && off_decision
                    && d.requested_by == provider
                    && d.requester_role() == RequesterRole::Provider)
        }
        None => job.provider_address == provider,
    };
    if authorised {
        return Ok(());
    }
    Err(TxError::hpc(
        code::NOT_RESOURCE_OWNER,
        match decision {
            Some(d) => format!(
                "{provider} is not the provider of decision {} (provider {})",
                d.decision_id, d.selected_provider
            ),
            None => format!(
                "{provider} is not the provider of job {} ({})",
                job.job_id, job.provider_address
            ),
        },
    ))
}

/// Routing is decided by the job's current decision, once: it needs a
/// SCHEDULED job and, when the record names a decision, the current one.
fn require_routable(
    job: &Job,
    decision: Option<&SchedulingDecision>,
    record: &RoutingAuditRecord,
) -> Result<(), TxError> {
    if job.state() != JobState::Scheduled {
        return Err(TxError::hpc(
            code::INVALID_JOB_STATE,
            format!(
                "job {} is {}; only a SCHEDULED job can be routed",
                job.job_id,
                job.state().as_str_name()
            ),
        ));
    }
    if decision.is_some_and(|d| d.decision_id != job.current_decision_id) {
        return Err(TxError::hpc(
            code::DECISION_MISMATCH,
            format!(
                "decision {} is not the current decision of job {} ({})",
                record.scheduling_decision_id, job.job_id, job.current_decision_id
            ),
        ));
    }
    Ok(())
}

/// What the chain can tell is wrong with a record: an approval off (or without) the
/// decision, or a fallback the params do not allow.
fn detected_violation(
    status: AuditStatus,
    has_decision: bool,
    off_decision: bool,
    params: &Params,
) -> Option<ViolationType> {
    match status {
        AuditStatus::Approved if off_decision || !has_decision => {
            Some(ViolationType::ClusterMismatch)
        }
        AuditStatus::Fallback if !params.allow_provider_fallback => {
            Some(ViolationType::UnauthorizedFallback)
        }
        _ => None,
    }
}

/// Whether the chain itself refuses what it can cross-check (strict, enabled).
fn chain_is_strict(params: &Params) -> bool {
    params.routing_enforcement_enabled
        && params.routing_enforcement_mode == EnforcementMode::Strict as i32
}

/// In strict mode a record with a detected violation is refused instead of recorded.
fn refuse_if_strict(
    record: &RoutingAuditRecord,
    status: AuditStatus,
    vtype: ViolationType,
    params: &Params,
) -> Result<(), TxError> {
    if !chain_is_strict(params) {
        return Ok(());
    }
    Err(TxError::hpc(
        code::CLUSTER_MISMATCH_REFUSED,
        format!(
            "{} record for job {} on cluster {} refused in strict mode: {}",
            audit_status_name(status),
            record.job_id,
            record.actual_cluster_id,
            violation_type_name(vtype)
        ),
    ))
}

/// Stores an admitted record with its detected violation, routes or rejects the job as
/// it says, and returns the record's id and the violation's.
fn store_record(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    provider: &str,
    admitted: Admitted,
    params: &Params,
) -> Result<(String, Option<String>), TxError> {
    let Admitted {
        mut record,
        mut job,
        status,
        routes,
        detected,
    } = admitted;
    let violation_id = match detected {
        Some(vtype) => {
            let v = chain_detected_violation(&record, vtype, provider);
            let id = record_violation(state, ctx, v, params)?;
            record.violation_id = id.clone();
            Some(id)
        }
        None => None,
    };
    Keeper::insert_audit(state, &record);
    // Only the job's own provider can turn it down.
    let rejects = status == AuditStatus::Rejected
        && holds_reservation(job.state())
        && job.provider_address == provider;
    if routes {
        job.routed_cluster_id = record.actual_cluster_id.clone();
        transition(state, &mut job, JobState::Routed, ctx);
        ctx.emit(routed_event(&record, &job, provider, status));
    } else if rejects {
        transition(state, &mut job, JobState::Rejected, ctx);
    }
    ctx.emit(
        Event::new(events::ROUTING_AUDIT_RECORDED)
            .attr(attrs::RECORD_ID, &record.record_id)
            .attr(attrs::JOB_ID, &record.job_id)
            .attr(attrs::STATUS, audit_status_name(status))
            .attr(attrs::PROVIDER, provider)
            .attr(attrs::CORRELATION_ID, &job.correlation_id)
            .attr(attrs::REASON_CODE, &record.reason_code),
    );
    Ok((record.record_id, violation_id))
}

fn chain_detected_violation(
    record: &RoutingAuditRecord,
    vtype: ViolationType,
    provider: &str,
) -> RoutingViolation {
    RoutingViolation {
        job_id: record.job_id.clone(),
        decision_id: record.scheduling_decision_id.clone(),
        violation_type: vtype as i32,
        expected_cluster_id: record.expected_cluster_id.clone(),
        actual_cluster_id: record.actual_cluster_id.clone(),
        provider_address: provider.to_string(),
        details: format!("detected by the chain on audit record {}", record.record_id),
        reporter: CHAIN_REPORTER.to_string(),
        ..Default::default()
    }
}

fn routed_event(
    record: &RoutingAuditRecord,
    job: &Job,
    provider: &str,
    status: AuditStatus,
) -> Event {
    Event::new(events::JOB_ROUTED)
        .attr(attrs::JOB_ID, &record.job_id)
        .attr(attrs::DECISION_ID, &record.scheduling_decision_id)
        .attr(attrs::CLUSTER_ID, &record.actual_cluster_id)
        .attr(attrs::PROVIDER, provider)
        .attr(attrs::STATUS, audit_status_name(status))
        .attr(attrs::IS_FALLBACK, record.is_fallback)
        .attr(attrs::RECORD_ID, &record.record_id)
        .attr(attrs::CORRELATION_ID, &job.correlation_id)
}
