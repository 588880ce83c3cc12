//! Routing violations: reported by providers' enforcers or the authority, detected by the
//! chain on audit records, and resolved by the authority. Each counts against its
//! provider (alerting past a threshold) and its cluster's reputation.

use hpc_primitives::contract::{attrs, events, submission};
use hpc_proto::virtengine::hpc::v1::{
    MsgReportRoutingViolation, MsgReportRoutingViolationResponse, MsgResolveRoutingViolation,
    MsgResolveRoutingViolationResponse, Params, ProviderViolationCount, RoutingViolation,
};
use hpc_store::StateWrite;

use super::{
    at_index, check_batch, default_severity, job_of, now, provider_cluster, refresh_reputation,
    require_authority, violation_type_name,
};
use crate::address::Address;
use crate::context::ExecCtx;
use crate::errors::{hpc_codes as code, TxError};
use crate::events::Event;
use crate::hpc::keeper::Keeper;
use crate::hpc::params::HpcKeeper;

pub(super) fn report_routing_violation(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgReportRoutingViolation,
) -> Result<MsgReportRoutingViolationResponse, TxError> {
    let params = HpcKeeper::params(state);
    check_batch("violations", m.violations.len(), &params)?;
    let authority = HpcKeeper::authority(state);
    let mut ids = Vec::new();
    for (i, v) in m.violations.iter().enumerate() {
        let id = report_violation(state, ctx, &m.reporter, &authority, v, &params)
            .map_err(at_index("violations", i))?;
        ids.push(id);
    }
    Ok(MsgReportRoutingViolationResponse { violation_ids: ids })
}

/// One reported violation: the reporter must be the provider itself or the authority.
fn report_violation(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    reporter: &str,
    authority: &str,
    v: &RoutingViolation,
    params: &Params,
) -> Result<String, TxError> {
    if reporter != v.provider_address && reporter != authority {
        return Err(TxError::hpc(
            code::NOT_RESOURCE_OWNER,
            format!(
                "reporter {reporter} must be the provider {} itself or the authority",
                v.provider_address
            ),
        ));
    }
    // A report must be about a real job, and the cluster it counts against
    // (for reputation) must be the reported provider's own.
    job_of(state, &v.job_id)?;
    let counted = counted_cluster_id(v);
    if !counted.is_empty() {
        provider_cluster(state, counted, &v.provider_address)?;
    }
    let mut v = v.clone();
    v.reporter = reporter.to_string();
    record_violation(state, ctx, v, params)
}

/// The cluster a violation counts against: the one the job actually ran on, else the one
/// it should have run on (either may be empty).
fn counted_cluster_id(v: &RoutingViolation) -> &str {
    if v.actual_cluster_id.is_empty() {
        &v.expected_cluster_id
    } else {
        &v.actual_cluster_id
    }
}

/// Records a violation (reported or chain-detected), updates the provider's count and
/// emits the violation event plus, on crossing the threshold, the alert event once.
pub(super) fn record_violation(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    mut v: RoutingViolation,
    params: &Params,
) -> Result<String, TxError> {
    claim_violation_id(state, &mut v)?;
    stamp_new_violation(state, ctx, &mut v);
    Keeper::set_violation(state, &v);

    // The signer (chain-detected) or a field ValidateBasic checked (reported).
    let provider: Address = v
        .provider_address
        .parse()
        .map_err(|e| TxError::logic(format!("provider_address: {e} (it passed ValidateBasic)")))?;
    let mut count = Keeper::violation_count(state, &provider);
    count.unresolved_count += 1;
    count.total_count += 1;
    ctx.emit(
        Event::new(events::ROUTING_VIOLATION)
            .attr(attrs::VIOLATION_ID, &v.violation_id)
            .attr(attrs::JOB_ID, &v.job_id)
            .attr(attrs::DECISION_ID, &v.decision_id)
            .attr(
                attrs::VIOLATION_TYPE,
                violation_type_name(v.violation_type()),
            )
            .attr(attrs::SEVERITY, v.severity)
            .attr(attrs::PROVIDER_ADDRESS, &v.provider_address)
            .attr(attrs::REPORTER, &v.reporter)
            .attr(attrs::CORRELATION_ID, &v.correlation_id),
    );
    raise_alert_on_crossing(ctx, &mut count, &v.provider_address, params);
    Keeper::set_violation_count(state, &count);
    // The violation counts against the cluster's reputation at once.
    refresh_counted_cluster(state, ctx, &v, params)?;
    Ok(v.violation_id)
}

/// Assigns the next chain id to a violation without one; a taken id fails.
fn claim_violation_id(
    state: &mut impl StateWrite,
    v: &mut RoutingViolation,
) -> Result<(), TxError> {
    if v.violation_id.is_empty() {
        v.violation_id = format!("hpc-violation-{}", Keeper::next_seq(state, "violation"));
    }
    // "Already recorded" means this very violation from this reporter: anything else under
    // the id is a conflict, never mistaken for a delivered report.
    let Some(stored) = Keeper::violation(state, &v.violation_id) else {
        return Ok(());
    };
    Err(if submission::same_violation(&stored, v, &v.reporter) {
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
    })
}

/// The chain's fields of a new, unresolved violation: default severity, creation time
/// and, when not given, the job's correlation id.
fn stamp_new_violation(state: &impl StateWrite, ctx: &ExecCtx, v: &mut RoutingViolation) {
    if v.severity == 0 {
        v.severity = default_severity(v.violation_type());
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
}

/// One alert per crossing from below the threshold to at or above it (so a threshold
/// raised by governance alerts again when the new value is reached), for a count that was
/// just incremented.
fn raise_alert_on_crossing(
    ctx: &mut ExecCtx,
    count: &mut ProviderViolationCount,
    provider_address: &str,
    params: &Params,
) {
    let threshold = params.violation_alert_threshold as u64;
    let crossed = count.unresolved_count - 1 < threshold && count.unresolved_count >= threshold;
    count.alert_active = count.unresolved_count >= threshold;
    if crossed {
        ctx.emit(
            Event::new(events::ROUTING_VIOLATION_THRESHOLD_EXCEEDED)
                .attr(attrs::PROVIDER_ADDRESS, provider_address)
                .attr(attrs::UNRESOLVED_COUNT, count.unresolved_count)
                .attr(attrs::THRESHOLD, params.violation_alert_threshold),
        );
    }
}

/// Recomputes the reputation of the cluster a violation counts against, if it exists.
fn refresh_counted_cluster(
    state: &mut impl StateWrite,
    ctx: &ExecCtx,
    v: &RoutingViolation,
    params: &Params,
) -> Result<(), TxError> {
    if let Some(mut cluster) = Keeper::cluster(state, counted_cluster_id(v)) {
        refresh_reputation(state, &mut cluster, params, ctx)?;
        Keeper::set_cluster(state, &cluster);
    }
    Ok(())
}

pub(super) fn resolve_routing_violation(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgResolveRoutingViolation,
) -> Result<MsgResolveRoutingViolationResponse, TxError> {
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
    refresh_counted_cluster(state, ctx, &v, &params)?;
    ctx.emit(
        Event::new(events::ROUTING_VIOLATION_RESOLVED)
            .attr(attrs::VIOLATION_ID, &v.violation_id)
            .attr(attrs::JOB_ID, &v.job_id)
            .attr(attrs::PROVIDER_ADDRESS, &v.provider_address)
            .attr(attrs::RESOLUTION, &v.resolution)
            .attr(attrs::UNRESOLVED_COUNT, count.unresolved_count)
            .attr(attrs::CORRELATION_ID, &v.correlation_id),
    );
    Ok(MsgResolveRoutingViolationResponse {})
}
