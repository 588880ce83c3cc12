//! The enforcer's own durable state (redb in `state_dir`): the block cursor, which decision
//! attempts were already handled, jobs handed to the local scheduler, and per-provider
//! violation counts. Each update is one atomic write, so a crash leaves either the old or
//! the new state.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ATTEMPTS: TableDefinition<&str, &str> = TableDefinition::new("handled_attempts");
const LOCAL_JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("local_jobs");
const VIOLATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("violation_counts");
const NEXT_HEIGHT: &str = "next_height";
const CHAIN: TableDefinition<&str, &str> = TableDefinition::new("chain");
const ANCHOR: &str = "anchor";

#[derive(Debug, thiserror::Error)]
#[error("enforcer state store: {0}")]
pub struct StoreError(String);

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A job this enforcer handed to its local scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalJob {
    pub job_id: String,
    pub decision_id: String,
    pub cluster_id: String,
    pub local_id: String,
    /// The last status reported on chain: "", "RUNNING", "COMPLETED", "FAILED".
    pub reported: String,
    /// Why the local scheduler refused the job (it is then reported FAILED, with this).
    #[serde(default)]
    pub submit_error: Option<String>,
}

/// Unresolved violations of a provider: the chain's count at the last sync plus this
/// enforcer's own reports since; surviving restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationCount {
    pub total: u64,
    /// Whether the threshold alert fired and has not been re-armed.
    pub alerted: bool,
}

pub struct EnforcerStore {
    db: Database,
}

impl EnforcerStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let db = Database::create(dir.join("enforcer.redb")).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(META).map_err(err)?;
        tx.open_table(ATTEMPTS).map_err(err)?;
        tx.open_table(LOCAL_JOBS).map_err(err)?;
        tx.open_table(VIOLATIONS).map_err(err)?;
        tx.open_table(CHAIN).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { db })
    }

    /// The next block height to process (None on first start).
    pub fn next_height(&self) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        Ok(tx
            .open_table(META)
            .map_err(err)?
            .get(NEXT_HEIGHT)
            .map_err(err)?
            .map(|v| v.value()))
    }

    /// The chain this state belongs to: the height and header hash of the first block read.
    pub fn chain_anchor(&self) -> Result<Option<(u64, String)>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let Some(stored) = tx
            .open_table(CHAIN)
            .map_err(err)?
            .get(ANCHOR)
            .map_err(err)?
        else {
            return Ok(None);
        };
        let stored = stored.value();
        stored
            .split_once(':')
            .and_then(|(h, hash)| Some((h.parse().ok()?, hash.to_string())))
            .map(Some)
            .ok_or_else(|| StoreError(format!("unreadable chain anchor {stored:?}")))
    }

    pub fn set_chain_anchor(&self, height: u64, hash: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(CHAIN)
            .map_err(err)?
            .insert(ANCHOR, format!("{height}:{hash}").as_str())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn set_next_height(&self, height: u64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(META)
            .map_err(err)?
            .insert(NEXT_HEIGHT, height)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn attempt_key(job_id: &str, decision_id: &str) -> String {
        format!("{job_id}/{decision_id}")
    }

    /// The recorded outcome of a decision attempt, if it was handled before.
    pub fn attempt(&self, job_id: &str, decision_id: &str) -> Result<Option<String>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(ATTEMPTS).map_err(err)?;
        Ok(table
            .get(Self::attempt_key(job_id, decision_id).as_str())
            .map_err(err)?
            .map(|v| v.value().to_string()))
    }

    pub fn set_attempt(
        &self,
        job_id: &str,
        decision_id: &str,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(ATTEMPTS)
            .map_err(err)?
            .insert(Self::attempt_key(job_id, decision_id).as_str(), outcome)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn put_local_job(&self, job: &LocalJob) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(job).map_err(err)?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(LOCAL_JOBS)
            .map_err(err)?
            .insert(job.job_id.as_str(), bytes.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn remove_local_job(&self, job_id: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(LOCAL_JOBS)
            .map_err(err)?
            .remove(job_id)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn local_jobs(&self) -> Result<Vec<LocalJob>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(LOCAL_JOBS).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (_, v) = entry.map_err(err)?;
            out.push(serde_json::from_slice(v.value()).map_err(err)?);
        }
        Ok(out)
    }

    pub fn violation_count(&self, provider: &str) -> Result<ViolationCount, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(VIOLATIONS).map_err(err)?;
        match table.get(provider).map_err(err)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(err),
            None => Ok(ViolationCount::default()),
        }
    }

    /// Adds `n` violations; returns the new count and whether this crossed `threshold`
    /// (true once per crossing).
    pub fn add_violations(
        &self,
        provider: &str,
        n: u64,
        threshold: u64,
    ) -> Result<(ViolationCount, bool), StoreError> {
        let count = self.violation_count(provider)?;
        self.set_violation_count(provider, count.total.saturating_add(n), threshold)
    }

    /// Takes the chain's unresolved count as the count (it holds violations others
    /// reported, and drops resolved ones); the alert re-arms once the count is below
    /// `threshold` again. Returns the count and whether this crossed `threshold`.
    pub fn sync_violations(
        &self,
        provider: &str,
        unresolved_on_chain: u64,
        threshold: u64,
    ) -> Result<(ViolationCount, bool), StoreError> {
        self.set_violation_count(provider, unresolved_on_chain, threshold)
    }

    fn set_violation_count(
        &self,
        provider: &str,
        total: u64,
        threshold: u64,
    ) -> Result<(ViolationCount, bool), StoreError> {
        let mut count = self.violation_count(provider)?;
        count.total = total;
        let crossed = !count.alerted && total >= threshold;
        count.alerted = total >= threshold;
        let bytes = serde_json::to_vec(&count).map_err(err)?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(VIOLATIONS)
            .map_err(err)?
            .insert(provider, bytes.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok((count, crossed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen_and_alerts_once_per_crossing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EnforcerStore::open(dir.path()).unwrap();
            assert_eq!(s.next_height().unwrap(), None);
            s.set_next_height(42).unwrap();
            s.set_attempt("hpc-job-1", "hpc-decision-1", "run").unwrap();
            let (c, crossed) = s.add_violations("p1", 4, 5).unwrap();
            assert_eq!((c.total, crossed), (4, false));
            let (_, crossed) = s.add_violations("p1", 1, 5).unwrap();
            assert!(crossed);
            let (_, crossed) = s.add_violations("p1", 1, 5).unwrap();
            assert!(!crossed, "alert fires once per crossing");
            s.put_local_job(&LocalJob {
                job_id: "hpc-job-1".into(),
                decision_id: "d".into(),
                cluster_id: "c".into(),
                local_id: String::new(),
                reported: String::new(),
                submit_error: Some("sbatch: error: invalid partition".into()),
            })
            .unwrap();
            s.set_chain_anchor(1, "ABCD").unwrap();
        }
        let s = EnforcerStore::open(dir.path()).unwrap();
        assert_eq!(s.next_height().unwrap(), Some(42));
        assert_eq!(
            s.attempt("hpc-job-1", "hpc-decision-1").unwrap().as_deref(),
            Some("run")
        );
        assert_eq!(s.attempt("hpc-job-1", "hpc-decision-2").unwrap(), None);
        assert_eq!(s.violation_count("p1").unwrap().total, 6);
        assert_eq!(
            s.local_jobs().unwrap()[0].submit_error.as_deref(),
            Some("sbatch: error: invalid partition")
        );
        assert_eq!(s.chain_anchor().unwrap(), Some((1, "ABCD".to_string())));
        // The chain's count replaces ours: resolutions re-arm the alert.
        let (c, crossed) = s.sync_violations("p1", 7, 5).unwrap();
        assert_eq!(
            (c.total, crossed),
            (7, false),
            "still above: no second alert"
        );
        let (_, crossed) = s.sync_violations("p1", 2, 5).unwrap();
        assert!(!crossed);
        let (c, crossed) = s.sync_violations("p1", 5, 5).unwrap();
        assert_eq!(
            (c.total, crossed),
            (5, true),
            "re-armed after falling below"
        );
        s.remove_local_job("hpc-job-1").unwrap();
        assert!(s.local_jobs().unwrap().is_empty());
    }
}
