//! Jobs that reached the local scheduler around the enforcer: a job named after a chain job
//! (`hpc-job-N`) that this enforcer did not submit is placed here by hand. The mode table's
//! placement-mismatch row decides: a decision naming another cluster (or no decision, with
//! `require_decision_for_submission`) is a violation on chain, and in strict mode the job
//! is cancelled.

use super::*;
use hpc_local_scheduler::LocalJobInfo;

/// Chain-assigned job ids (`hpc-job-<sequence>`).
fn is_chain_job_id(name: &str) -> bool {
    name.strip_prefix("hpc-job-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The attempt key under which a foreign local job is remembered as handled.
fn foreign_key(job: &LocalJobInfo) -> String {
    format!("local:{}", job.local_id)
}

pub(super) async fn scan_local_jobs(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let every = Duration::from_secs(shared.config.health.probe_interval_seconds.max(1));
    loop {
        if let Err(e) = scan_once(&shared).await {
            shared.note_error(format!("scanning the local scheduler: {e}"));
        }
        if stopped(&mut stop, every).await {
            return Ok(());
        }
    }
}

/// Attempt outcome of a foreign job whose violations are recorded but whose cancel has not
/// succeeded yet (retried at the next scan, without recording again).
const CANCEL_PENDING: &str = "foreign_cancel_pending";
/// Attempt outcomes of a handled foreign job.
const ALLOWED: &str = "foreign_allowed";
const REJECTED: &str = "foreign_rejected";

async fn scan_once(shared: &Shared) -> anyhow::Result<()> {
    // Ours: the local ids this enforcer submitted (a copy under the same name is not).
    let ours: BTreeSet<(String, String)> = shared
        .store
        .local_jobs()?
        .into_iter()
        .map(|j| (j.job_id, j.local_id))
        .collect();
    for job in shared.scheduler.jobs().await? {
        let key = (job.name.clone(), job.local_id.as_str().to_string());
        if ours.contains(&key) || !job.state.is_active() || !is_chain_job_id(&job.name) {
            continue;
        }
        match shared
            .store
            .attempt(&job.name, &foreign_key(&job))?
            .as_deref()
        {
            None => handle_foreign(shared, &job).await?,
            Some(CANCEL_PENDING) => cancel_foreign(shared, &job).await?,
            Some(_) => {}
        }
    }
    Ok(())
}

/// Evaluates a foreign job as placed on this cluster; reports its violations (the audit
/// record belongs to the decision's provider, so none is written) and, when the mode table
/// rejects the placement, cancels the job.
async fn handle_foreign(shared: &Shared, job: &LocalJobInfo) -> anyhow::Result<()> {
    let placement = Placement::OnCluster(shared.config.hpc.cluster_id.clone());
    let eval = shared.evaluate_job(&job.name, None, placement, None).await;
    let rejected = matches!(eval.outcome, Outcome::Reject { .. });
    if eval.violations.is_empty() {
        return Ok(shared
            .store
            .set_attempt(&job.name, &foreign_key(job), ALLOWED)?);
    }
    tracing::warn!(job_id = %job.name, local_id = %job.local_id, violations = eval.violations.len(), "job placed in the local scheduler outside its decision");
    let eval = decision::Evaluation {
        audit: None,
        ..eval
    };
    super::attempt::record(shared, &eval, &job.name, "", "")?;
    if !rejected {
        return Ok(shared
            .store
            .set_attempt(&job.name, &foreign_key(job), ALLOWED)?);
    }
    shared
        .store
        .set_attempt(&job.name, &foreign_key(job), CANCEL_PENDING)?;
    cancel_foreign(shared, job).await
}

async fn cancel_foreign(shared: &Shared, job: &LocalJobInfo) -> anyhow::Result<()> {
    shared
        .scheduler
        .cancel(&job.local_id)
        .await
        .map_err(|e| anyhow!("cancelling foreign job {}: {e}", job.local_id))?;
    Ok(shared
        .store
        .set_attempt(&job.name, &foreign_key(job), REJECTED)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chain_assigned_job_ids_are_considered() {
        for (name, want) in [
            ("hpc-job-1", true),
            ("hpc-job-4711", true),
            ("hpc-job-", false),
            ("hpc-job-1a", false),
            ("my-own-job", false),
            ("hpc-decision-3", false),
        ] {
            assert_eq!(is_chain_job_id(name), want, "{name}");
        }
    }
}
