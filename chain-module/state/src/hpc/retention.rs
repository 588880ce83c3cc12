//! Deterministic pruning of old decisions, audit records and resolved violations at the
//! end of each block, oldest first, with bounded work per block. A retention of 0 keeps
//! everything.

use hpc_proto::virtengine::hpc::v1::{
    JobState, RoutingAuditRecord, RoutingViolation, SchedulingDecision,
};
use hpc_store::{key_after, StateWrite};

use super::keeper::{self as keys, Keeper};
use super::params::HpcKeeper;

/// Most records of each kind removed in one block.
pub const MAX_PRUNED_PER_BLOCK: usize = 100;
/// Most queue entries examined per kind and block (entries still in use are skipped).
const MAX_EXAMINED_PER_BLOCK: usize = 4 * MAX_PRUNED_PER_BLOCK;

/// The retention queues: (name in genesis and the cursor key, key prefix).
pub const QUEUES: [(&str, &[u8]); 3] = [
    ("decisions", keys::PRUNE_DECISIONS),
    ("audit_records", keys::PRUNE_AUDITS),
    ("violations", keys::PRUNE_VIOLATIONS),
];

/// One block's pass over a queue of `<height be8><id>` entries created at or before
/// `cutoff`: examines at most [`MAX_EXAMINED_PER_BLOCK`] entries from where the previous
/// block stopped and prunes at most [`MAX_PRUNED_PER_BLOCK`] (`try_prune` says whether it
/// pruned the entry's record). Entries still in use are passed over, so they cannot stall
/// the queue; once the end of the expired part is reached the next pass starts again from
/// the oldest. The position is state (and genesis), so every node sweeps alike.
fn sweep<S: StateWrite>(
    state: &mut S,
    (name, queue): (&str, &[u8]),
    cutoff: u64,
    mut try_prune: impl FnMut(&mut S, &str) -> bool,
) -> usize {
    let end = [queue, &(cutoff + 1).to_be_bytes()].concat();
    let from = Keeper::prune_cursor(state, name)
        .filter(|k| k.starts_with(queue) && k.as_slice() < end.as_slice())
        .unwrap_or_else(|| queue.to_vec());
    let entries = state.range(&from, Some(&end), MAX_EXAMINED_PER_BLOCK);
    let mut pruned = 0;
    let mut resume = None;
    for (key, _) in &entries {
        if pruned == MAX_PRUNED_PER_BLOCK {
            resume = Some(key.clone());
            break;
        }
        let id = std::str::from_utf8(&key[queue.len() + 8..]).expect("ids are utf-8");
        if try_prune(state, id) {
            pruned += 1;
        }
    }
    if resume.is_none() && entries.len() == MAX_EXAMINED_PER_BLOCK {
        let last = &entries.last().expect("entries examined").0;
        resume = Some(key_after(last));
    }
    Keeper::set_prune_cursor(state, name, resume.as_deref());
    pruned
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
    let [decisions, audits, violations] = QUEUES;
    let mut pruned = 0;
    if params.decision_retention_blocks > 0 && height > params.decision_retention_blocks {
        let cutoff = height - params.decision_retention_blocks;
        pruned += sweep(state, decisions, cutoff, |state, id| {
            let d: SchedulingDecision =
                Keeper::decision(state, id).expect("queued decision exists");
            let prunable = !decision_in_use(state, &d);
            if prunable {
                Keeper::delete_decision(state, &d);
            }
            prunable
        });
    }
    if params.audit_retention_blocks > 0 && height > params.audit_retention_blocks {
        let cutoff = height - params.audit_retention_blocks;
        pruned += sweep(state, audits, cutoff, |state, id| {
            let r: RoutingAuditRecord = Keeper::audit(state, id).expect("queued record exists");
            Keeper::delete_audit(state, &r);
            true
        });
        // Violations follow the audit retention, but only once resolved: an open
        // violation stays visible (and counted) until the authority resolves it.
        pruned += sweep(state, violations, cutoff, |state, id| {
            let v: RoutingViolation =
                Keeper::violation(state, id).expect("queued violation exists");
            if v.resolved {
                Keeper::delete_violation(state, &v);
            }
            v.resolved
        });
    }
    pruned
}
