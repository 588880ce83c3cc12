//! Typed state access for x/hpc: every record and every secondary index goes through
//! here, so indexes can never drift from the records they point to. List queries are
//! range scans over these indexes, never full scans.
//!
//! Layout (all under `hpc/`; `addr` = 20 address bytes, `lp(x)` = one length byte + x,
//! so variable-length ids never collide as prefixes):
//!
//! | key | value |
//! |---|---|
//! | `c/<cluster_id>` | Cluster |
//! | `cp/<addr><cluster_id>` | index: clusters by provider |
//! | `j/<job_id>` | Job |
//! | `jo/<addr><job_id>` | index: jobs by owner |
//! | `jp/<addr><state><job_id>` | index: jobs by provider and state |
//! | `d/<decision_id>` | SchedulingDecision |
//! | `dj/<lp(job_id)><decision_id>` | index: decisions of a job (history) |
//! | `a/<record_id>` | RoutingAuditRecord |
//! | `aj/<lp(job_id)><record_id>`, `ap/<addr><record_id>`, `ad/<lp(decision_id)><record_id>` | audit indexes |
//! | `v/<violation_id>` | RoutingViolation |
//! | `vj/…`, `vp/<addr>…`, `vd/…`, `vu/<addr><id>` (unresolved), `vt/<type><id>`, `vc/<lp(cluster)><id>` | violation indexes |
//! | `n/<addr>` | ProviderViolationCount |
//! | `seq/<name>` | u64 sequences |
//! | `px/<kind>/<height be8><id>` | retention queues, oldest first |

use hpc_proto::virtengine::hpc::v1::{
    Cluster, Job, ProviderViolationCount, RoutingAuditRecord, RoutingViolation, SchedulingDecision,
};
use hpc_store::{StateRead, StateWrite};

use crate::address::Address;
use crate::codec::{get_proto, get_u64, put_proto, put_u64};

pub const CLUSTER: &[u8] = b"hpc/c/";
pub const CLUSTERS_BY_PROVIDER: &[u8] = b"hpc/cp/";
pub const JOB: &[u8] = b"hpc/j/";
pub const JOBS_BY_OWNER: &[u8] = b"hpc/jo/";
pub const JOBS_BY_PROVIDER_STATE: &[u8] = b"hpc/jp/";
pub const DECISION: &[u8] = b"hpc/d/";
pub const DECISIONS_BY_JOB: &[u8] = b"hpc/dj/";
pub const AUDIT: &[u8] = b"hpc/a/";
pub const AUDIT_BY_JOB: &[u8] = b"hpc/aj/";
pub const AUDIT_BY_PROVIDER: &[u8] = b"hpc/ap/";
pub const AUDIT_BY_DECISION: &[u8] = b"hpc/ad/";
pub const VIOLATION: &[u8] = b"hpc/v/";
pub const VIOLATIONS_BY_JOB: &[u8] = b"hpc/vj/";
pub const VIOLATIONS_BY_PROVIDER: &[u8] = b"hpc/vp/";
pub const VIOLATIONS_BY_DECISION: &[u8] = b"hpc/vd/";
pub const VIOLATIONS_UNRESOLVED: &[u8] = b"hpc/vu/";
pub const VIOLATIONS_BY_TYPE: &[u8] = b"hpc/vt/";
pub const VIOLATIONS_BY_CLUSTER: &[u8] = b"hpc/vc/";
const VIOLATION_COUNT: &[u8] = b"hpc/n/";
const SEQ: &[u8] = b"hpc/seq/";
pub const PRUNE_DECISIONS: &[u8] = b"hpc/px/d/";
pub const PRUNE_AUDITS: &[u8] = b"hpc/px/a/";
pub const PRUNE_VIOLATIONS: &[u8] = b"hpc/px/v/";
/// `<queue name>` → the queue key the retention sweep examines next.
const PRUNE_CURSOR: &[u8] = b"hpc/pc/";

/// Longest id accepted anywhere (ids are length-prefixed with one byte in keys).
pub const MAX_ID_LEN: usize = 128;

/// One length byte, then the bytes: a key component that cannot be a prefix of another.
pub fn lp(id: &str) -> Vec<u8> {
    debug_assert!(id.len() <= MAX_ID_LEN);
    let mut out = Vec::with_capacity(id.len() + 1);
    out.push(id.len() as u8);
    out.extend_from_slice(id.as_bytes());
    out
}

fn k(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn addr_bytes(address: &str) -> [u8; 20] {
    address
        .parse::<Address>()
        .map(|a| a.0)
        .unwrap_or_else(|_| panic!("stored address {address:?} is valid"))
}

/// Ids from an index whose keys end with the id after a fixed-length prefix.
fn ids_after(state: &impl StateRead, prefix: &[u8], limit: usize) -> Vec<String> {
    state
        .prefix(prefix, limit)
        .into_iter()
        .map(|(key, _)| String::from_utf8(key[prefix.len()..].to_vec()).expect("ids are utf-8"))
        .collect()
}

pub struct Keeper;

impl Keeper {
    // ----- sequences

    /// Returns the next value of a named sequence (starting at 1) and advances it.
    pub fn next_seq(state: &mut impl StateWrite, name: &str) -> u64 {
        let key = k(&[SEQ, name.as_bytes()]);
        let next = get_u64(state, &key).unwrap_or(0) + 1;
        put_u64(state, key, next);
        next
    }

    pub fn seq(state: &impl StateRead, name: &str) -> u64 {
        get_u64(state, &k(&[SEQ, name.as_bytes()])).unwrap_or(0)
    }

    pub fn set_seq(state: &mut impl StateWrite, name: &str, value: u64) {
        put_u64(state, k(&[SEQ, name.as_bytes()]), value);
    }

    // ----- retention sweep positions

    pub fn prune_cursor(state: &impl StateRead, queue: &str) -> Option<Vec<u8>> {
        state.get(&k(&[PRUNE_CURSOR, queue.as_bytes()]))
    }

    /// Sets (`Some`) or clears the position; clearing an absent one writes nothing.
    pub fn set_prune_cursor(state: &mut impl StateWrite, queue: &str, next_key: Option<&[u8]>) {
        let key = k(&[PRUNE_CURSOR, queue.as_bytes()]);
        match next_key {
            Some(next) => {
                if state.get(&key).as_deref() != Some(next) {
                    state.put(key, next.to_vec());
                }
            }
            None => {
                if state.get(&key).is_some() {
                    state.delete(&key);
                }
            }
        }
    }

    /// Every sweep position, by queue name (genesis export).
    pub fn all_prune_cursors(state: &impl StateRead) -> Vec<(String, Vec<u8>)> {
        state
            .prefix(PRUNE_CURSOR, usize::MAX)
            .into_iter()
            .map(|(key, v)| {
                let name = String::from_utf8(key[PRUNE_CURSOR.len()..].to_vec())
                    .expect("queue names are utf-8");
                (name, v)
            })
            .collect()
    }

    // ----- clusters

    pub fn cluster(state: &impl StateRead, id: &str) -> Option<Cluster> {
        get_proto(state, &k(&[CLUSTER, id.as_bytes()]))
    }

    pub fn set_cluster(state: &mut impl StateWrite, cluster: &Cluster) {
        let provider = addr_bytes(&cluster.provider_address);
        put_proto(state, k(&[CLUSTER, cluster.cluster_id.as_bytes()]), cluster);
        state.put(
            k(&[
                CLUSTERS_BY_PROVIDER,
                &provider,
                cluster.cluster_id.as_bytes(),
            ]),
            Vec::new(),
        );
    }

    /// Every cluster in cluster_id order (the scheduler's candidate set).
    pub fn all_clusters(state: &impl StateRead) -> Vec<Cluster> {
        state
            .prefix(CLUSTER, usize::MAX)
            .into_iter()
            .map(|(_, v)| prost::Message::decode(v.as_slice()).expect("corrupt cluster"))
            .collect()
    }

    pub fn cluster_ids_by_provider(state: &impl StateRead, provider: &Address) -> Vec<String> {
        ids_after(
            state,
            &k(&[CLUSTERS_BY_PROVIDER, provider.as_bytes()]),
            usize::MAX,
        )
    }

    // ----- jobs

    pub fn job(state: &impl StateRead, id: &str) -> Option<Job> {
        get_proto(state, &k(&[JOB, id.as_bytes()]))
    }

    fn provider_state_key(job: &Job) -> Option<Vec<u8>> {
        if job.provider_address.is_empty() {
            return None;
        }
        Some(k(&[
            JOBS_BY_PROVIDER_STATE,
            &addr_bytes(&job.provider_address),
            &[job.state as u8],
            job.job_id.as_bytes(),
        ]))
    }

    /// Writes a job and moves its provider/state index entry if either changed.
    pub fn set_job(state: &mut impl StateWrite, job: &Job) {
        if let Some(old) = Self::job(state, &job.job_id) {
            if let Some(old_key) = Self::provider_state_key(&old) {
                state.delete(&old_key);
            }
        }
        if let Some(key) = Self::provider_state_key(job) {
            state.put(key, Vec::new());
        }
        state.put(
            k(&[
                JOBS_BY_OWNER,
                &addr_bytes(&job.owner),
                job.job_id.as_bytes(),
            ]),
            Vec::new(),
        );
        put_proto(state, k(&[JOB, job.job_id.as_bytes()]), job);
    }

    // ----- decisions

    pub fn decision(state: &impl StateRead, id: &str) -> Option<SchedulingDecision> {
        get_proto(state, &k(&[DECISION, id.as_bytes()]))
    }

    pub fn insert_decision(state: &mut impl StateWrite, d: &SchedulingDecision) {
        put_proto(state, k(&[DECISION, d.decision_id.as_bytes()]), d);
        state.put(
            k(&[DECISIONS_BY_JOB, &lp(&d.job_id), d.decision_id.as_bytes()]),
            Vec::new(),
        );
        state.put(
            k(&[
                PRUNE_DECISIONS,
                &d.created_height.to_be_bytes(),
                d.decision_id.as_bytes(),
            ]),
            Vec::new(),
        );
    }

    pub fn delete_decision(state: &mut impl StateWrite, d: &SchedulingDecision) {
        state.delete(&k(&[DECISION, d.decision_id.as_bytes()]));
        state.delete(&k(&[
            DECISIONS_BY_JOB,
            &lp(&d.job_id),
            d.decision_id.as_bytes(),
        ]));
        state.delete(&k(&[
            PRUNE_DECISIONS,
            &d.created_height.to_be_bytes(),
            d.decision_id.as_bytes(),
        ]));
    }

    pub fn decision_ids_of_job(state: &impl StateRead, job_id: &str) -> Vec<String> {
        ids_after(state, &k(&[DECISIONS_BY_JOB, &lp(job_id)]), usize::MAX)
    }

    // ----- audit records

    pub fn audit(state: &impl StateRead, id: &str) -> Option<RoutingAuditRecord> {
        get_proto(state, &k(&[AUDIT, id.as_bytes()]))
    }

    pub fn insert_audit(state: &mut impl StateWrite, r: &RoutingAuditRecord) {
        let id = r.record_id.as_bytes();
        put_proto(state, k(&[AUDIT, id]), r);
        state.put(k(&[AUDIT_BY_JOB, &lp(&r.job_id), id]), Vec::new());
        state.put(
            k(&[AUDIT_BY_PROVIDER, &addr_bytes(&r.provider_address), id]),
            Vec::new(),
        );
        state.put(
            k(&[AUDIT_BY_DECISION, &lp(&r.scheduling_decision_id), id]),
            Vec::new(),
        );
        state.put(
            k(&[PRUNE_AUDITS, &r.created_height.to_be_bytes(), id]),
            Vec::new(),
        );
    }

    pub fn delete_audit(state: &mut impl StateWrite, r: &RoutingAuditRecord) {
        let id = r.record_id.as_bytes();
        state.delete(&k(&[AUDIT, id]));
        state.delete(&k(&[AUDIT_BY_JOB, &lp(&r.job_id), id]));
        state.delete(&k(&[
            AUDIT_BY_PROVIDER,
            &addr_bytes(&r.provider_address),
            id,
        ]));
        state.delete(&k(&[AUDIT_BY_DECISION, &lp(&r.scheduling_decision_id), id]));
        state.delete(&k(&[PRUNE_AUDITS, &r.created_height.to_be_bytes(), id]));
    }

    // ----- violations

    pub fn violation(state: &impl StateRead, id: &str) -> Option<RoutingViolation> {
        get_proto(state, &k(&[VIOLATION, id.as_bytes()]))
    }

    fn violation_index_keys(v: &RoutingViolation) -> Vec<Vec<u8>> {
        let id = v.violation_id.as_bytes();
        let provider = addr_bytes(&v.provider_address);
        let mut keys = vec![
            k(&[VIOLATIONS_BY_JOB, &lp(&v.job_id), id]),
            k(&[VIOLATIONS_BY_PROVIDER, &provider, id]),
            k(&[VIOLATIONS_BY_DECISION, &lp(&v.decision_id), id]),
            k(&[VIOLATIONS_BY_TYPE, &[v.violation_type as u8], id]),
            k(&[PRUNE_VIOLATIONS, &v.created_height.to_be_bytes(), id]),
        ];
        // The cluster the violation counts against for reputation: where the job went.
        let cluster = if v.actual_cluster_id.is_empty() {
            &v.expected_cluster_id
        } else {
            &v.actual_cluster_id
        };
        if !cluster.is_empty() {
            keys.push(k(&[VIOLATIONS_BY_CLUSTER, &lp(cluster), id]));
        }
        if !v.resolved {
            keys.push(k(&[VIOLATIONS_UNRESOLVED, &provider, id]));
        }
        keys
    }

    /// Writes a violation, keeping every index (including "unresolved") in step.
    pub fn set_violation(state: &mut impl StateWrite, v: &RoutingViolation) {
        if let Some(old) = Self::violation(state, &v.violation_id) {
            for key in Self::violation_index_keys(&old) {
                state.delete(&key);
            }
        }
        for key in Self::violation_index_keys(v) {
            state.put(key, Vec::new());
        }
        put_proto(state, k(&[VIOLATION, v.violation_id.as_bytes()]), v);
    }

    pub fn delete_violation(state: &mut impl StateWrite, v: &RoutingViolation) {
        for key in Self::violation_index_keys(v) {
            state.delete(&key);
        }
        state.delete(&k(&[VIOLATION, v.violation_id.as_bytes()]));
    }

    /// The violations counted against a cluster's reputation.
    pub fn violations_of_cluster(
        state: &impl StateRead,
        cluster_id: &str,
    ) -> Vec<RoutingViolation> {
        ids_after(
            state,
            &k(&[VIOLATIONS_BY_CLUSTER, &lp(cluster_id)]),
            usize::MAX,
        )
        .iter()
        .filter_map(|id| Self::violation(state, id))
        .collect()
    }

    pub fn violation_count(state: &impl StateRead, provider: &Address) -> ProviderViolationCount {
        get_proto(state, &k(&[VIOLATION_COUNT, provider.as_bytes()])).unwrap_or_else(|| {
            ProviderViolationCount {
                provider_address: provider.to_string(),
                ..Default::default()
            }
        })
    }

    pub fn set_violation_count(state: &mut impl StateWrite, count: &ProviderViolationCount) {
        let provider = addr_bytes(&count.provider_address);
        put_proto(state, k(&[VIOLATION_COUNT, &provider]), count);
    }

    pub fn all_violation_counts(state: &impl StateRead) -> Vec<ProviderViolationCount> {
        state
            .prefix(VIOLATION_COUNT, usize::MAX)
            .into_iter()
            .map(|(_, v)| prost::Message::decode(v.as_slice()).expect("corrupt count"))
            .collect()
    }

    /// Every record under a primary prefix, decoded (genesis export).
    pub fn all<M: prost::Message + Default>(state: &impl StateRead, prefix: &[u8]) -> Vec<M> {
        state
            .prefix(prefix, usize::MAX)
            .into_iter()
            .map(|(_, v)| M::decode(v.as_slice()).expect("corrupt hpc record"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn length_prefix_keeps_ids_apart() {
        // "job-1" must not see entries of "job-10" in its index range.
        let mut state = BTreeMap::new();
        state.put(k(&[DECISIONS_BY_JOB, &lp("job-1"), b"d1"]), vec![]);
        state.put(k(&[DECISIONS_BY_JOB, &lp("job-10"), b"d2"]), vec![]);
        assert_eq!(
            Keeper::decision_ids_of_job(&state, "job-1"),
            vec!["d1".to_string()]
        );
        assert_eq!(
            Keeper::decision_ids_of_job(&state, "job-10"),
            vec!["d2".to_string()]
        );
    }

    #[test]
    fn resolving_a_violation_moves_it_out_of_the_unresolved_index() {
        let provider = Address([3; 20]);
        let mut v = RoutingViolation {
            violation_id: "v-1".into(),
            job_id: "job-1".into(),
            decision_id: "d-1".into(),
            provider_address: provider.to_string(),
            actual_cluster_id: "c-1".into(),
            ..Default::default()
        };
        let mut state = BTreeMap::new();
        Keeper::set_violation(&mut state, &v);
        let unresolved = k(&[VIOLATIONS_UNRESOLVED, provider.as_bytes()]);
        assert_eq!(state.prefix(&unresolved, 10).len(), 1);
        v.resolved = true;
        Keeper::set_violation(&mut state, &v);
        assert_eq!(state.prefix(&unresolved, 10).len(), 0);
        assert_eq!(Keeper::violations_of_cluster(&state, "c-1").len(), 1);
        Keeper::delete_violation(&mut state, &v);
        assert!(state.is_empty(), "every index entry removed: {state:?}");
    }
}
