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
//! | `cs/<state><cluster_id>` | index: clusters by state (one byte) |
//! | `ca/<cluster_id>`, `car/<lp(region)><cluster_id>`, `cag/<lp(gpu_type)><cluster_id>` | scheduler candidates: ACTIVE clusters, all / by region / by GPU type |
//! | `j/<job_id>` | Job |
//! | `jo/<addr><job_id>` | index: jobs by owner |
//! | `jp/<addr><state><job_id>` | index: jobs by provider and state |
//! | `js/<state><job_id>` | index: jobs by state |
//! | `d/<decision_id>` | SchedulingDecision |
//! | `dj/<lp(job_id)><decision_id>` | index: decisions of a job (history) |
//! | `a/<record_id>` | RoutingAuditRecord |
//! | `aj/<lp(job_id)><record_id>`, `ap/<addr><record_id>`, `ad/<lp(decision_id)><record_id>` | audit indexes |
//! | `v/<violation_id>` | RoutingViolation |
//! | `vj/…`, `vp/<addr>…`, `vd/…`, `vu/<addr><id>` (unresolved), `vt/<type><id>`, `vc/<lp(cluster)><id>` | violation indexes |
//! | `n/<addr>` | ProviderViolationCount |
//! | `seq/<name>` | u64 sequences |
//! | `px/<kind>/<height be8><id>` | retention queues, oldest first |

use std::collections::BTreeSet;

use hpc_primitives::contract::store;
use hpc_proto::virtengine::hpc::v1::{
    Cluster, ClusterState, Job, JobRequirements, ProviderViolationCount, RoutingAuditRecord,
    RoutingViolation, SchedulingDecision,
};
use hpc_store::{StateRead, StateWrite};

use crate::gas::cost::{REPUTATION_PER_VIOLATION, SCHEDULE_PER_CANDIDATE};
use crate::gas::{GasMeter, OutOfGas};

use crate::address::Address;
use crate::codec::{get_proto, get_u64, put_proto, put_u64};

pub const CLUSTER: &[u8] = b"hpc/c/";
pub const CLUSTERS_BY_PROVIDER: &[u8] = b"hpc/cp/";
pub const CLUSTERS_BY_STATE: &[u8] = b"hpc/cs/";
const ACTIVE_CLUSTERS: &[u8] = b"hpc/ca/";
const ACTIVE_BY_REGION: &[u8] = b"hpc/car/";
const ACTIVE_BY_GPU: &[u8] = b"hpc/cag/";
pub const JOB: &[u8] = store::JOB;
pub const JOBS_BY_OWNER: &[u8] = b"hpc/jo/";
/// A job's workload, written once at submission: status updates rewrite the job record
/// without paying again for the script's bytes.
const JOB_WORKLOAD: &[u8] = b"hpc/jw/";
pub const JOBS_BY_PROVIDER_STATE: &[u8] = b"hpc/jp/";
pub const JOBS_BY_STATE: &[u8] = b"hpc/js/";
pub const DECISION: &[u8] = store::DECISION;
pub const DECISIONS_BY_JOB: &[u8] = b"hpc/dj/";
pub const AUDIT: &[u8] = store::AUDIT_RECORD;
pub const AUDIT_BY_JOB: &[u8] = b"hpc/aj/";
pub const AUDIT_BY_PROVIDER: &[u8] = b"hpc/ap/";
pub const AUDIT_BY_DECISION: &[u8] = b"hpc/ad/";
pub const VIOLATION: &[u8] = store::VIOLATION;
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

/// The value of every index entry: its key is what matters, but ICS-23 proofs (like the
/// Cosmos SDK's stores) cannot cover an empty value, and a proof of absence fails when an
/// empty entry is a neighbour of the absent key.
fn index_entry() -> Vec<u8> {
    vec![1]
}

/// An enum state as the one byte index keys order by (states are small positive numbers;
/// an out-of-range one cannot be stored, since messages check enums).
pub(crate) fn state_byte(state: i32) -> u8 {
    u8::try_from(state).unwrap_or(u8::MAX)
}

/// Replaces the index entries `old` with `new`, touching only those that changed.
fn move_index_entries(state: &mut impl StateWrite, old: &[Vec<u8>], new: Vec<Vec<u8>>) {
    for key in old.iter().filter(|key| !new.contains(key)) {
        state.delete(key);
    }
    for key in new.into_iter().filter(|key| !old.contains(key)) {
        state.put(key, index_entry());
    }
}

/// Longest id accepted anywhere (ids are length-prefixed with one byte in keys).
pub const MAX_ID_LEN: usize = 128;

/// One length byte, then the bytes: a key component that cannot be a prefix of another.
/// Stored ids are at most [`MAX_ID_LEN`] bytes (checked where they enter); a longer one,
/// which only a lookup can bring, gets the length byte 255 that no stored key has, so it
/// finds nothing instead of aliasing a shorter id.
pub fn lp(id: &str) -> Vec<u8> {
    let len = u8::try_from(id.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_ID_LEN)
        .unwrap_or(u8::MAX);
    let mut out = Vec::with_capacity(id.len() + 1);
    out.push(len);
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

    /// The index entries that follow a cluster's state: by state, and the scheduler's
    /// candidate entries. Only ACTIVE clusters can be scheduled, so the others
    /// (deregistered ones above all) cost the scheduler nothing.
    fn state_index_keys(cluster: &Cluster) -> Vec<Vec<u8>> {
        let id = cluster.cluster_id.as_bytes();
        let by_state = k(&[CLUSTERS_BY_STATE, &[state_byte(cluster.state)], id]);
        if cluster.state != ClusterState::Active as i32 {
            return vec![by_state];
        }
        vec![
            by_state,
            k(&[ACTIVE_CLUSTERS, id]),
            k(&[ACTIVE_BY_REGION, &lp(&cluster.region), id]),
            k(&[ACTIVE_BY_GPU, &lp(&cluster.gpu_type), id]),
        ]
    }

    pub fn set_cluster(state: &mut impl StateWrite, cluster: &Cluster) {
        let old_keys = Self::cluster(state, &cluster.cluster_id)
            .map(|old| Self::state_index_keys(&old))
            .unwrap_or_default();
        move_index_entries(state, &old_keys, Self::state_index_keys(cluster));
        let provider = addr_bytes(&cluster.provider_address);
        put_proto(state, k(&[CLUSTER, cluster.cluster_id.as_bytes()]), cluster);
        state.put(
            k(&[
                CLUSTERS_BY_PROVIDER,
                &provider,
                cluster.cluster_id.as_bytes(),
            ]),
            index_entry(),
        );
    }

    /// The scheduler's candidates for a job: ACTIVE clusters, through the narrowest index
    /// the requirements allow (its allowed regions, else its GPU type, else all), at most
    /// `limit` of them in cluster_id order. Every index entry read and every cluster loaded
    /// is charged to `meter`, which stops the scan as soon as the tx's gas is spent.
    pub fn candidate_clusters(
        state: &impl StateRead,
        requirements: &JobRequirements,
        limit: usize,
        meter: &GasMeter,
    ) -> Result<Vec<Cluster>, OutOfGas> {
        let prefixes: Vec<Vec<u8>> = if !requirements.allowed_regions.is_empty() {
            let regions: BTreeSet<&str> = requirements
                .allowed_regions
                .iter()
                .map(String::as_str)
                .collect();
            regions
                .into_iter()
                .map(|r| k(&[ACTIVE_BY_REGION, &lp(r)]))
                .collect()
        } else if !requirements.gpu_type.is_empty() {
            vec![k(&[ACTIVE_BY_GPU, &lp(&requirements.gpu_type)])]
        } else {
            vec![ACTIVE_CLUSTERS.to_vec()]
        };
        let mut ids = BTreeSet::new();
        for prefix in &prefixes {
            meter.check()?;
            ids.extend(ids_after(state, prefix, limit));
        }
        let mut clusters = Vec::with_capacity(ids.len().min(limit));
        for id in ids.into_iter().take(limit) {
            meter.charge(SCHEDULE_PER_CANDIDATE)?;
            clusters.extend(Self::cluster(state, &id));
        }
        Ok(clusters)
    }

    pub fn cluster_ids_by_provider(state: &impl StateRead, provider: &Address) -> Vec<String> {
        ids_after(
            state,
            &k(&[CLUSTERS_BY_PROVIDER, provider.as_bytes()]),
            usize::MAX,
        )
    }

    // ----- jobs

    /// A job's record without its workload (what state transitions need).
    pub fn job(state: &impl StateRead, id: &str) -> Option<Job> {
        get_proto(state, &k(&[JOB, id.as_bytes()]))
    }

    /// A job with its workload attached (queries, genesis export).
    pub fn job_with_workload(state: &impl StateRead, id: &str) -> Option<Job> {
        Self::job(state, id).map(|job| Self::attach_workload(state, job))
    }

    pub fn attach_workload(state: &impl StateRead, mut job: Job) -> Job {
        job.workload = get_proto(state, &k(&[JOB_WORKLOAD, job.job_id.as_bytes()]));
        job
    }

    /// The index entries that follow a job's state (and provider, once scheduled).
    fn state_index_keys_of_job(job: &Job) -> Vec<Vec<u8>> {
        let id = job.job_id.as_bytes();
        let state = [state_byte(job.state)];
        let mut keys = vec![k(&[JOBS_BY_STATE, &state, id])];
        if !job.provider_address.is_empty() {
            keys.push(k(&[
                JOBS_BY_PROVIDER_STATE,
                &addr_bytes(&job.provider_address),
                &state,
                id,
            ]));
        }
        keys
    }

    /// Writes a job and moves its state and provider/state index entries if they changed.
    pub fn set_job(state: &mut impl StateWrite, job: &Job) {
        let old_keys = Self::job(state, &job.job_id)
            .map(|old| Self::state_index_keys_of_job(&old))
            .unwrap_or_default();
        move_index_entries(state, &old_keys, Self::state_index_keys_of_job(job));
        state.put(
            k(&[
                JOBS_BY_OWNER,
                &addr_bytes(&job.owner),
                job.job_id.as_bytes(),
            ]),
            index_entry(),
        );
        let key = k(&[JOB, job.job_id.as_bytes()]);
        match &job.workload {
            None => put_proto(state, key, job),
            Some(workload) => {
                put_proto(state, k(&[JOB_WORKLOAD, job.job_id.as_bytes()]), workload);
                put_proto(
                    state,
                    key,
                    &Job {
                        workload: None,
                        ..job.clone()
                    },
                );
            }
        }
    }

    // ----- decisions

    pub fn decision(state: &impl StateRead, id: &str) -> Option<SchedulingDecision> {
        get_proto(state, &k(&[DECISION, id.as_bytes()]))
    }

    pub fn insert_decision(state: &mut impl StateWrite, d: &SchedulingDecision) {
        put_proto(state, k(&[DECISION, d.decision_id.as_bytes()]), d);
        state.put(
            k(&[DECISIONS_BY_JOB, &lp(&d.job_id), d.decision_id.as_bytes()]),
            index_entry(),
        );
        state.put(
            k(&[
                PRUNE_DECISIONS,
                &d.created_height.to_be_bytes(),
                d.decision_id.as_bytes(),
            ]),
            index_entry(),
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
        state.put(k(&[AUDIT_BY_JOB, &lp(&r.job_id), id]), index_entry());
        state.put(
            k(&[AUDIT_BY_PROVIDER, &addr_bytes(&r.provider_address), id]),
            index_entry(),
        );
        state.put(
            k(&[AUDIT_BY_DECISION, &lp(&r.scheduling_decision_id), id]),
            index_entry(),
        );
        state.put(
            k(&[PRUNE_AUDITS, &r.created_height.to_be_bytes(), id]),
            index_entry(),
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
            state.put(key, index_entry());
        }
        put_proto(state, k(&[VIOLATION, v.violation_id.as_bytes()]), v);
    }

    pub fn delete_violation(state: &mut impl StateWrite, v: &RoutingViolation) {
        for key in Self::violation_index_keys(v) {
            state.delete(&key);
        }
        state.delete(&k(&[VIOLATION, v.violation_id.as_bytes()]));
    }

    /// The violations counted against a cluster's reputation, at most `limit` (in id
    /// order), each charged to `meter`.
    pub fn violations_of_cluster(
        state: &impl StateRead,
        cluster_id: &str,
        limit: usize,
        meter: &GasMeter,
    ) -> Result<Vec<RoutingViolation>, OutOfGas> {
        let ids = ids_after(state, &k(&[VIOLATIONS_BY_CLUSTER, &lp(cluster_id)]), limit);
        let mut violations = Vec::with_capacity(ids.len());
        for id in ids {
            meter.charge(REPUTATION_PER_VIOLATION)?;
            violations.extend(Self::violation(state, &id));
        }
        Ok(violations)
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
    fn an_overlong_lookup_id_finds_nothing_and_does_not_panic() {
        let mut state = BTreeMap::new();
        let longest = "j".repeat(MAX_ID_LEN);
        state.put(k(&[DECISIONS_BY_JOB, &lp(&longest), b"d1"]), vec![]);
        for len in [MAX_ID_LEN + 1, 255, 256, 10_000] {
            let id = "j".repeat(len);
            assert_eq!(lp(&id)[0], u8::MAX);
            assert!(Keeper::decision_ids_of_job(&state, &id).is_empty());
        }
        assert_eq!(Keeper::decision_ids_of_job(&state, &longest).len(), 1);
    }

    fn cluster(id: &str, region: &str, gpu: &str, cluster_state: ClusterState) -> Cluster {
        Cluster {
            cluster_id: id.into(),
            provider_address: Address([7; 20]).to_string(),
            region: region.into(),
            gpu_type: gpu.into(),
            state: cluster_state as i32,
            ..Default::default()
        }
    }

    fn candidate_ids(state: &BTreeMap<Vec<u8>, Vec<u8>>, req: &JobRequirements) -> Vec<String> {
        Keeper::candidate_clusters(state, req, 100, &GasMeter::infinite())
            .unwrap()
            .into_iter()
            .map(|c| c.cluster_id)
            .collect()
    }

    #[test]
    fn only_active_clusters_are_candidates_and_indexes_follow_updates() {
        let mut state = BTreeMap::new();
        Keeper::set_cluster(
            &mut state,
            &cluster("c-a", "eu", "a100", ClusterState::Active),
        );
        Keeper::set_cluster(
            &mut state,
            &cluster("c-b", "us", "h100", ClusterState::Active),
        );
        Keeper::set_cluster(
            &mut state,
            &cluster("c-c", "eu", "", ClusterState::Deregistered),
        );
        let any = JobRequirements::default();
        assert_eq!(candidate_ids(&state, &any), ["c-a", "c-b"]);
        let eu = JobRequirements {
            allowed_regions: vec!["eu".into(), "eu".into()],
            ..Default::default()
        };
        assert_eq!(candidate_ids(&state, &eu), ["c-a"]);
        let h100 = JobRequirements {
            gpu_type: "h100".into(),
            ..Default::default()
        };
        assert_eq!(candidate_ids(&state, &h100), ["c-b"]);
        // Moving region and leaving ACTIVE move the index entries with the record.
        Keeper::set_cluster(
            &mut state,
            &cluster("c-b", "eu", "h100", ClusterState::Active),
        );
        assert_eq!(candidate_ids(&state, &eu), ["c-a", "c-b"]);
        Keeper::set_cluster(
            &mut state,
            &cluster("c-a", "eu", "a100", ClusterState::Deregistered),
        );
        assert_eq!(candidate_ids(&state, &any), ["c-b"]);
        assert_eq!(candidate_ids(&state, &eu), ["c-b"]);
    }

    #[test]
    fn candidate_loading_stops_when_the_gas_runs_out() {
        let mut state = BTreeMap::new();
        for i in 0..50 {
            let id = format!("c-{i:03}");
            Keeper::set_cluster(&mut state, &cluster(&id, "eu", "", ClusterState::Active));
        }
        let meter = GasMeter::new(10_000);
        let err = Keeper::candidate_clusters(&state, &JobRequirements::default(), 50, &meter)
            .unwrap_err();
        assert!(
            err.used > 10_000 && err.used < 10_000 + SCHEDULE_PER_CANDIDATE + 1,
            "{err}"
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
        let meter = GasMeter::infinite();
        let of_cluster = Keeper::violations_of_cluster(&state, "c-1", 10, &meter).unwrap();
        assert_eq!(of_cluster.len(), 1);
        Keeper::delete_violation(&mut state, &v);
        assert!(state.is_empty(), "every index entry removed: {state:?}");
    }
}
