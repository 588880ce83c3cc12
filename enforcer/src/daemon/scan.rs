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

async fn scan_once(shared: &Shared) -> anyhow::Result<()> {
    for job in shared.scheduler.jobs().await? {
        let ours = shared.scheduler.job_dir(&job.name).is_some();
        if ours || !job.state.is_active() || !is_chain_job_id(&job.name) {
            continue;
        }
        if shared
            .store
            .attempt(&job.name, &foreign_key(&job))?
            .is_some()
        {
            continue;
        }
        handle_foreign(shared, &job).await?;
    }
    Ok(())
}

/// Evaluates a foreign job as placed on this cluster; reports its violations (the audit
/// record belongs to the decision's provider, so none is written) and, when the mode table
/// rejects the placement, cancels the job.
async fn handle_foreign(shared: &Shared, job: &LocalJobInfo) -> anyhow::Result<()> {
    let placement = Placement::OnCluster(shared.config.hpc.cluster_id.clone());
    let eval = shared.evaluate_job(&job.name, None, placement, None).await;
    let outcome = match &eval.outcome {
        Outcome::Reject { .. } => "foreign_rejected",
        _ => "foreign_allowed",
    };
    if !eval.violations.is_empty() {
        tracing::warn!(job_id = %job.name, local_id = %job.local_id, violations = eval.violations.len(), "job placed in the local scheduler outside its decision");
        let eval = decision::Evaluation {
            audit: None,
            ..eval
        };
        super::attempt::record(shared, &eval, &job.name, "", "")?;
        if outcome == "foreign_rejected" {
            shared
                .scheduler
                .cancel(&job.local_id)
                .await
                .map_err(|e| anyhow!("cancelling foreign job {}: {e}", job.local_id))?;
        }
    }
    shared
        .store
        .set_attempt(&job.name, &foreign_key(job), outcome)?;
    Ok(())
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
