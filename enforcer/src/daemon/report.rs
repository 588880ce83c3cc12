//! Local job progress reported to the chain.

use super::*;
use crate::chain::refused_with;
use hpc_primitives::contract::codes;

/// Reports local job progress to the chain, once the job's audit record is on chain (the
/// chain routes a job only while it is SCHEDULED, so status must not overtake it).
pub(super) async fn report_jobs(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        for mut job in shared.store.local_jobs()? {
            if let Some(record_id) = job.reported.strip_prefix("after:") {
                // Our record: the id is in our namespace, and the chain set the signer.
                let me = shared.gateway.provider.to_string();
                match shared.gateway.client.hpc_audit_record(record_id).await {
                    Ok(Some(r)) if r.provider_address == me => job.reported.clear(),
                    _ => continue,
                }
            }
            let state = match &job.submit_error {
                Some(reason) => Ok(LocalJobState::Failed {
                    reason: reason.clone(),
                }),
                None => {
                    shared
                        .scheduler
                        .job_state(&LocalJobId::new(job.local_id.clone()))
                        .await
                }
            };
            let state = match state {
                Ok(s) => s,
                Err(e) => {
                    shared.note_error(format!("local job {}: {e}", job.job_id));
                    continue;
                }
            };
            let (next, message, done) = match &state {
                LocalJobState::Running if job.reported.is_empty() => {
                    (Some(JobState::Running), String::new(), false)
                }
                LocalJobState::Completed => {
                    (Some(JobState::Completed), "completed".to_string(), true)
                }
                LocalJobState::Failed { reason } => (Some(JobState::Failed), reason.clone(), true),
                LocalJobState::Cancelled | LocalJobState::Unknown => (
                    Some(JobState::Failed),
                    format!("local scheduler: {state:?}"),
                    true,
                ),
                _ => (None, String::new(), false),
            };
            if let Some(next) = next {
                let msg = to_any(&MsgReportJobStatus {
                    provider: shared.gateway.provider.to_string(),
                    job_id: job.job_id.clone(),
                    status: next as i32,
                    message,
                    exit_code: None,
                    local_job_id: job.local_id.clone(),
                });
                match shared
                    .gateway
                    .send_and_wait(vec![msg], Duration::from_secs(60))
                    .await
                {
                    Ok(_) => {}
                    // The chain is already past this state (reported before a crash, or
                    // cancelled): by code, in a block or in simulation.
                    Err(e) if refused_with(&e, codes::CODESPACE, codes::INVALID_JOB_STATE) => {}
                    Err(e) => {
                        shared.note_error(format!(
                            "reporting {} for {}: {e}",
                            next.as_str_name(),
                            job.job_id
                        ));
                        continue;
                    }
                }
                if done {
                    shared.store.remove_local_job(&job.job_id)?;
                } else {
                    job.reported = next.as_str_name().to_string();
                    shared.store.put_local_job(&job)?;
                }
            }
        }
        if stopped(&mut stop, Duration::from_secs(1)).await {
            return Ok(());
        }
    }
}
