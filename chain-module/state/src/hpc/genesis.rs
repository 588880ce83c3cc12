//! Import and export of the whole module: params, authority, every record, the violation
//! counts and the id sequences, so `hpcd export` → `InitChain` reproduces the same state
//! (and app hash).

use std::collections::BTreeSet;

use hpc_proto::virtengine::hpc::v1::{
    Cluster, GenesisState, Job, PruneCursor, RoutingAuditRecord, RoutingViolation,
    SchedulingDecision,
};
use hpc_store::{StateRead, StateWrite};

use super::keeper::{self as keys, Keeper};
use super::msgs::{validate_cluster_id, validate_id, validate_own_id};
use super::params::{default_params, validate_params, workload_limits, HpcKeeper};
use crate::address::Address;
use crate::serde_util::GenesisError;

const SEQUENCES: [&str; 3] = ["job", "decision", "violation"];

/// Default `app_state.hpc`: default params, no authority (set one with
/// `hpcd genesis set-hpc-authority` so params can be changed later).
pub fn default_genesis() -> GenesisState {
    GenesisState {
        params: Some(default_params()),
        ..Default::default()
    }
}

fn check_address(field: String, value: &str) -> Result<(), GenesisError> {
    value
        .parse::<Address>()
        .map(|_| ())
        .map_err(|e| GenesisError::new(field, e))
}

fn unique<'a>(field: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), GenesisError> {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            return Err(GenesisError::new(
                format!("hpc.{field}[{i}]"),
                format!("duplicate id {id:?}"),
            ));
        }
    }
    Ok(())
}

fn id(field: String, value: &str) -> Result<(), GenesisError> {
    validate_id(&field, value).map_err(|e| GenesisError::new(field, e.log))
}

/// An id that may be empty (a record without a decision, a violation without a cluster).
fn optional_id(field: String, value: &str) -> Result<(), GenesisError> {
    if value.is_empty() {
        return Ok(());
    }
    id(field, value)
}

fn optional_cluster_id(field: String, value: &str) -> Result<(), GenesisError> {
    if value.is_empty() {
        return Ok(());
    }
    validate_cluster_id(&field, value).map_err(|e| GenesisError::new(field, e.log))
}

/// Validates and writes `app_state.hpc`.
pub fn import_genesis(state: &mut impl StateWrite, g: &GenesisState) -> Result<(), GenesisError> {
    let params = g.params.unwrap_or_else(default_params);
    validate_params(&params)
        .map_err(|e| GenesisError::new(format!("hpc.{}", e.field), e.reason))?;
    if !g.authority.is_empty() {
        check_address("hpc.authority".into(), &g.authority)?;
    }
    unique("clusters", g.clusters.iter().map(|c| c.cluster_id.as_str()))?;
    unique("jobs", g.jobs.iter().map(|j| j.job_id.as_str()))?;
    unique(
        "decisions",
        g.decisions.iter().map(|d| d.decision_id.as_str()),
    )?;
    unique(
        "audit_records",
        g.audit_records.iter().map(|r| r.record_id.as_str()),
    )?;
    unique(
        "violations",
        g.violations.iter().map(|v| v.violation_id.as_str()),
    )?;
    HpcKeeper::set_params(state, &params);
    HpcKeeper::set_authority(state, &g.authority);
    for (i, c) in g.clusters.iter().enumerate() {
        validate_cluster_id(&format!("hpc.clusters[{i}].cluster_id"), &c.cluster_id)
            .map_err(|e| GenesisError::new(format!("hpc.clusters[{i}].cluster_id"), e.log))?;
        check_address(
            format!("hpc.clusters[{i}].provider_address"),
            &c.provider_address,
        )?;
        Keeper::set_cluster(state, c);
    }
    for (i, j) in g.jobs.iter().enumerate() {
        id(format!("hpc.jobs[{i}].job_id"), &j.job_id)?;
        optional_id(
            format!("hpc.jobs[{i}].current_decision_id"),
            &j.current_decision_id,
        )?;
        check_address(format!("hpc.jobs[{i}].owner"), &j.owner)?;
        if !j.provider_address.is_empty() {
            check_address(
                format!("hpc.jobs[{i}].provider_address"),
                &j.provider_address,
            )?;
        }
        if let Some(w) = &j.workload {
            hpc_primitives::contract::workload::validate(w, &workload_limits(&params))
                .map_err(|e| GenesisError::new(format!("hpc.jobs[{i}].{}", e.field), e.reason))?;
        }
        Keeper::set_job(state, j);
    }
    for (i, d) in g.decisions.iter().enumerate() {
        id(format!("hpc.decisions[{i}].decision_id"), &d.decision_id)?;
        id(format!("hpc.decisions[{i}].job_id"), &d.job_id)?;
        optional_cluster_id(
            format!("hpc.decisions[{i}].selected_cluster_id"),
            &d.selected_cluster_id,
        )?;
        Keeper::insert_decision(state, d);
    }
    for (i, r) in g.audit_records.iter().enumerate() {
        check_address(
            format!("hpc.audit_records[{i}].provider_address"),
            &r.provider_address,
        )?;
        // A namespaced id belongs to the provider that recorded it.
        let field = format!("hpc.audit_records[{i}].record_id");
        validate_own_id(&field, &r.record_id, &r.provider_address)
            .map_err(|e| GenesisError::new(field, e.log))?;
        // Every id that goes into an index key is checked, not only the record's own.
        id(format!("hpc.audit_records[{i}].job_id"), &r.job_id)?;
        optional_id(
            format!("hpc.audit_records[{i}].scheduling_decision_id"),
            &r.scheduling_decision_id,
        )?;
        optional_cluster_id(
            format!("hpc.audit_records[{i}].actual_cluster_id"),
            &r.actual_cluster_id,
        )?;
        Keeper::insert_audit(state, r);
    }
    for (i, v) in g.violations.iter().enumerate() {
        // A namespaced id belongs to its reporter.
        let field = format!("hpc.violations[{i}].violation_id");
        validate_own_id(&field, &v.violation_id, &v.reporter)
            .map_err(|e| GenesisError::new(field, e.log))?;
        check_address(
            format!("hpc.violations[{i}].provider_address"),
            &v.provider_address,
        )?;
        id(format!("hpc.violations[{i}].job_id"), &v.job_id)?;
        optional_id(format!("hpc.violations[{i}].decision_id"), &v.decision_id)?;
        optional_cluster_id(
            format!("hpc.violations[{i}].expected_cluster_id"),
            &v.expected_cluster_id,
        )?;
        optional_cluster_id(
            format!("hpc.violations[{i}].actual_cluster_id"),
            &v.actual_cluster_id,
        )?;
        Keeper::set_violation(state, v);
    }
    for (i, c) in g.provider_violation_counts.iter().enumerate() {
        check_address(
            format!("hpc.provider_violation_counts[{i}].provider_address"),
            &c.provider_address,
        )?;
        Keeper::set_violation_count(state, c);
    }
    for (i, c) in g.prune_cursors.iter().enumerate() {
        let Some((name, queue)) = super::retention::QUEUES
            .into_iter()
            .find(|(name, _)| *name == c.queue)
        else {
            return Err(GenesisError::new(
                format!("hpc.prune_cursors[{i}].queue"),
                format!(
                    "{:?} is not one of decisions, audit_records, violations",
                    c.queue
                ),
            ));
        };
        if !c.next_key.starts_with(queue) {
            return Err(GenesisError::new(
                format!("hpc.prune_cursors[{i}].next_key"),
                format!("not a key of the {name} queue"),
            ));
        }
        Keeper::set_prune_cursor(state, name, Some(&c.next_key));
    }
    for (name, value) in SEQUENCES.iter().zip([
        g.next_job_sequence,
        g.next_decision_sequence,
        g.next_violation_sequence,
    ]) {
        // Stored is the last value used; genesis carries the next one (0 = fresh).
        if value > 1 {
            Keeper::set_seq(state, name, value - 1);
        }
    }
    Ok(())
}

pub fn export_genesis(state: &impl StateRead) -> GenesisState {
    let [job, decision, violation] = SEQUENCES.map(|name| {
        let used = Keeper::seq(state, name);
        if used == 0 {
            0
        } else {
            used + 1
        }
    });
    GenesisState {
        params: Some(HpcKeeper::params(state)),
        authority: HpcKeeper::authority(state),
        clusters: Keeper::all::<Cluster>(state, keys::CLUSTER),
        jobs: Keeper::all::<Job>(state, keys::JOB)
            .into_iter()
            .map(|job| Keeper::attach_workload(state, job))
            .collect(),
        decisions: Keeper::all::<SchedulingDecision>(state, keys::DECISION),
        audit_records: Keeper::all::<RoutingAuditRecord>(state, keys::AUDIT),
        violations: Keeper::all::<RoutingViolation>(state, keys::VIOLATION),
        next_job_sequence: job,
        next_decision_sequence: decision,
        next_violation_sequence: violation,
        provider_violation_counts: Keeper::all_violation_counts(state),
        prune_cursors: Keeper::all_prune_cursors(state)
            .into_iter()
            .map(|(queue, next_key)| PruneCursor { queue, next_key })
            .collect(),
    }
}
