//! Deterministic pruning of old decisions, audit records and resolved violations at the
//! end of each block, oldest first, with bounded work per block. A retention of 0 keeps
//! everything.

use hpc_proto::virtengine::hpc::v1::{
    JobState, RoutingAuditRecord, RoutingViolation, SchedulingDecision,
};
use hpc_store::StateWrite;

use super::keeper::{self as keys, Keeper};
use super::params::HpcKeeper;

/// Most records of each kind removed in one block.
pub const MAX_PRUNED_PER_BLOCK: usize = 100;
/// Most queue entries examined per kind and block (entries still in use are skipped).
const MAX_EXAMINED_PER_BLOCK: usize = 4 * MAX_PRUNED_PER_BLOCK;

/// Queue entries `<height be8><id>` created at or before `cutoff`, oldest first.
fn expired(state: &impl StateWrite, queue: &[u8], cutoff: u64) -> Vec<String> {
    let end = [queue, &(cutoff + 1).to_be_bytes()].concat();
    state
        .range(queue, Some(&end), MAX_EXAMINED_PER_BLOCK)
        .into_iter()
        .map(|(k, _)| String::from_utf8(k[queue.len() + 8..].to_vec()).expect("ids are utf-8"))
        .collect()
}

/// A decision is still in use while it is the current decision of a job that can act on it.
fn decision_in_use(state: &impl StateWrite, d: &SchedulingDecision) -> bool {
    Keeper::job(state, &d.job_id).is_some_and(|job| {
        job.current_decision_id == d.decision_id
            && matches!(
                job.state(),
                JobState::Scheduled | JobState::Routed | JobState::Running
            )
    })
}

/// Returns how many records were pruned.
pub fn end_block(state: &mut impl StateWrite, height: u64) -> usize {
    let params = HpcKeeper::params(state);
    let mut pruned = 0;
    if params.decision_retention_blocks > 0 && height > params.decision_retention_blocks {
        let cutoff = height - params.decision_retention_blocks;
        let mut n = 0;
        for id in expired(state, keys::PRUNE_DECISIONS, cutoff) {
            if n == MAX_PRUNED_PER_BLOCK {
                break;
            }
            let d: SchedulingDecision =
                Keeper::decision(state, &id).expect("queued decision exists");
            if !decision_in_use(state, &d) {
                Keeper::delete_decision(state, &d);
                n += 1;
            }
        }
        pruned += n;
    }
    if params.audit_retention_blocks > 0 && height > params.audit_retention_blocks {
        let cutoff = height - params.audit_retention_blocks;
        for id in expired(state, keys::PRUNE_AUDITS, cutoff)
            .into_iter()
            .take(MAX_PRUNED_PER_BLOCK)
        {
            let r: RoutingAuditRecord = Keeper::audit(state, &id).expect("queued record exists");
            Keeper::delete_audit(state, &r);
            pruned += 1;
        }
        // Violations follow the audit retention, but only once resolved: an open
        // violation stays visible (and counted) until the authority resolves it.
        let mut n = 0;
        for id in expired(state, keys::PRUNE_VIOLATIONS, cutoff) {
            if n == MAX_PRUNED_PER_BLOCK {
                break;
            }
            let v: RoutingViolation =
                Keeper::violation(state, &id).expect("queued violation exists");
            if v.resolved {
                Keeper::delete_violation(state, &v);
                n += 1;
            }
        }
        pruned += n;
    }
    pruned
}
