//! x/hpc message handlers: the stateful checks, state changes and events of SPEC §3.
//!
//! As in a Cosmos SDK msg server, each message has its own handler taking the message and
//! returning its response; [`execute`] only dispatches. Handlers are reached through
//! `execute` alone, which takes validated messages, so they may rely on `ValidateBasic`.
//!
//! - `cluster`: register, heartbeat (status update) and deregister a cluster;
//! - `job`: submit, cancel, reschedule and report the status of a job, and the scheduling
//!   they share;
//! - `audit`: the enforcers' routing audit records, cross-checked against the decisions;
//! - `violation`: reported and chain-detected violations and their resolution;
//! - `params`: governance of the module's parameters.

mod audit;
mod cluster;
mod job;
mod params;
mod violation;

use cosmos_sdk_proto::{Any, Timestamp};
use hpc_proto::virtengine::hpc::v1::{AuditStatus, Cluster, Job, JobState, Params, ViolationType};
use hpc_store::StateWrite;

use super::keeper::Keeper;
use super::msgs::HpcMsg;
use super::params::HpcKeeper;
use super::reputation;
use crate::context::ExecCtx;
use crate::errors::{hpc_codes as code, TxError};
use crate::gas::OutOfGas;
use crate::tx::{to_any, Validated};

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

/// Executes a validated x/hpc message, returning its packed response.
pub fn execute(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    msg: Validated<&HpcMsg>,
) -> Result<Any, TxError> {
    match *msg.msg() {
        HpcMsg::RegisterCluster(m) => cluster::register_cluster(state, ctx, m).map(packed),
        HpcMsg::UpdateClusterStatus(m) => cluster::update_cluster_status(state, ctx, m).map(packed),
        HpcMsg::DeregisterCluster(m) => cluster::deregister_cluster(state, ctx, m).map(packed),
        HpcMsg::SubmitJob(m) => job::submit_job(state, ctx, m).map(packed),
        HpcMsg::CancelJob(m) => job::cancel_job(state, ctx, m).map(packed),
        HpcMsg::RequestReschedule(m) => job::request_reschedule(state, ctx, m).map(packed),
        HpcMsg::RecordRoutingAudit(m) => audit::record_routing_audit(state, ctx, m).map(packed),
        HpcMsg::ReportRoutingViolation(m) => {
            violation::report_routing_violation(state, ctx, m).map(packed)
        }
        HpcMsg::ResolveRoutingViolation(m) => {
            violation::resolve_routing_violation(state, ctx, m).map(packed)
        }
        HpcMsg::ReportJobStatus(m) => job::report_job_status(state, ctx, m).map(packed),
        HpcMsg::UpdateParams(m) => params::update_params(state, ctx, m).map(packed),
    }
}

fn packed<R: prost::Message + prost::Name>(response: R) -> Any {
    to_any(&response)
}

fn now(ctx: &ExecCtx) -> Timestamp {
    Timestamp {
        seconds: ctx.block.time_seconds,
        nanos: ctx.block.time_nanos,
    }
}

/// Prefixes an error's log with the batch entry it is about (`records[3]: …`).
fn at_index(field: &'static str, i: usize) -> impl Fn(TxError) -> TxError {
    move |e| TxError {
        log: format!("{field}[{i}]: {}", e.log),
        ..e
    }
}

fn job_of(state: &impl StateWrite, id: &str) -> Result<Job, TxError> {
    Keeper::job(state, id)
        .ok_or_else(|| TxError::hpc(code::JOB_NOT_FOUND, format!("job {id} not found")))
}

/// The cluster `id`, which must be `signer`'s.
fn provider_cluster(state: &impl StateWrite, id: &str, signer: &str) -> Result<Cluster, TxError> {
    let cluster = Keeper::cluster(state, id)
        .ok_or_else(|| TxError::hpc(code::CLUSTER_NOT_FOUND, format!("cluster {id} not found")))?;
    if cluster.provider_address != signer {
        return Err(TxError::hpc(
            code::NOT_RESOURCE_OWNER,
            format!(
                "{signer} is not the provider of cluster {} (provider {})",
                cluster.cluster_id, cluster.provider_address
            ),
        ));
    }
    Ok(cluster)
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
