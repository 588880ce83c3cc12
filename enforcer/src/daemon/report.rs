//! Local job progress reported to the chain, and the chain's word on jobs that run here:
//! a job cancelled on chain, or moved to another provider while it runs here, is stopped.

use super::*;
use crate::chain::{refused_by, refused_with};
use cosmos_sdk_proto::Any;
use hpc_primitives::contract::{codes, limits, reason_codes};
use hpc_proto::virtengine::hpc::v1::Job;
use std::collections::HashMap;

/// Most status reports in one tx: one tx per report, each simulated and broadcast in turn
/// under the provider's account sequence, left a busy provider's reports minutes behind.
const REPORTS_PER_TX: usize = limits::MAX_MSGS_PER_TX;

/// Report txs in flight at the same time (each waits for its block).
const CONCURRENT_REPORT_TXS: usize = 4;

/// Longest a local job goes without its state on chain being read when no block event
/// named it: the safety net under the events (a follower placed past them, a restart).
const CHAIN_RECHECK: Duration = Duration::from_secs(30);

/// Reports local job progress to the chain, once the job's audit record is on chain (the
/// chain routes a job only while it is SCHEDULED, so status must not overtake it).
pub(super) async fn report_jobs(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut checks = ChainChecks::default();
    loop {
        let due = due_reports(&shared, &mut checks).await?;
        send_reports(&shared, due).await;
        if stopped(&mut stop, Duration::from_secs(1)).await {
            return Ok(());
        }
    }
}

/// A state change the chain is to be told about, for one local job.
struct DueReport {
    job: LocalJob,
    report: Report,
}

impl DueReport {
    fn msg(&self, shared: &Shared) -> Any {
        to_any(&MsgReportJobStatus {
            provider: shared.gateway.provider.to_string(),
            job_id: self.job.job_id.clone(),
            status: self.report.state as i32,
            message: self.report.message.clone(),
            exit_code: self.report.exit_code,
            local_job_id: self.job.local_id.clone(),
        })
    }
}

/// When this process last read each local job's state on chain. Reading every job every
/// round cost a query per running job per second: on a busy provider, more than its
/// routing.
#[derive(Default)]
struct ChainChecks(HashMap<String, Instant>);

impl ChainChecks {
    /// Whether `job_id`'s state on chain is read this round: never read by this process,
    /// cancelled or rescheduled since (`changed`), or last read [`CHAIN_RECHECK`] ago.
    fn due(&self, job_id: &str, changed: &BTreeSet<String>, now: Instant) -> bool {
        changed.contains(job_id)
            || self
                .0
                .get(job_id)
                .is_none_or(|at| now.duration_since(*at) >= CHAIN_RECHECK)
    }

    /// Records the outcome of a round over the local jobs: a read at `now` for the jobs
    /// read, none for a job whose round failed (read next round), nothing for jobs no
    /// longer local.
    fn record<'a>(&mut self, jobs: impl Iterator<Item = (&'a str, RoundOutcome)>, now: Instant) {
        let mut kept = HashMap::with_capacity(self.0.len());
        for (job_id, outcome) in jobs {
            let at = match outcome {
                RoundOutcome::Failed => continue,
                RoundOutcome::Done { read_chain: true } => Some(now),
                RoundOutcome::Done { read_chain: false } => self.0.get(job_id).copied(),
            };
            kept.extend(at.map(|at| (job_id.to_string(), at)));
        }
        self.0 = kept;
    }
}

/// How one job's part of a round went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoundOutcome {
    Done { read_chain: bool },
    Failed,
}

/// One round over the local jobs, concurrently: each whose state on chain is due to be
/// read is stopped if the chain no longer wants it here; each yields the report its
/// local state calls for, if any.
async fn due_reports(shared: &Shared, checks: &mut ChainChecks) -> anyhow::Result<Vec<DueReport>> {
    use futures::StreamExt;
    let changed = shared.take_changed_on_chain();
    let now = Instant::now();
    let checks_now = &*checks;
    let rounds: Vec<(String, RoundOutcome, Option<DueReport>)> =
        futures::stream::iter(shared.store.local_jobs()?)
            .map(|job| {
                let read_chain = checks_now.due(&job.job_id, &changed, now);
                async move {
                    let job_id = job.job_id.clone();
                    match next_report(shared, job, read_chain).await {
                        Ok(due) => (job_id, RoundOutcome::Done { read_chain }, due),
                        Err(e) => {
                            shared.note_error(e);
                            (job_id, RoundOutcome::Failed, None)
                        }
                    }
                }
            })
            .buffer_unordered(CONCURRENT_JOBS)
            .collect()
            .await;
    checks.record(rounds.iter().map(|(id, o, _)| (id.as_str(), *o)), now);
    Ok(rounds.into_iter().filter_map(|(_, _, due)| due).collect())
}

/// Sends the due reports, many per tx, a few txs at a time.
async fn send_reports(shared: &Shared, due: Vec<DueReport>) {
    use futures::StreamExt;
    futures::stream::iter(due.chunks(REPORTS_PER_TX))
        .for_each_concurrent(CONCURRENT_REPORT_TXS, |chunk| async move {
            if let Err(e) = send_chunk(shared, chunk).await {
                shared.note_error(e);
            }
        })
        .await;
}

/// One tx of reports. A tx is all-or-nothing, so a chunk x/hpc refuses (one job's report
/// no longer applies) is sent again one report per tx: that job must not hold back the
/// others. Other refusals (sequence, fees, mempool) are the tx's, retried next round.
async fn send_chunk(shared: &Shared, chunk: &[DueReport]) -> anyhow::Result<()> {
    if let [due] = chunk {
        return send_one(shared, due).await;
    }
    let msgs = chunk.iter().map(|d| d.msg(shared)).collect();
    match send_and_wait(shared, msgs).await {
        Ok(()) => {}
        Err(e) if refused_by(&e, codes::CODESPACE) => {
            tracing::info!(reports = chunk.len(), error = %e, "a tx of job status reports was refused; sending them one per tx");
            // A few at a time: in series, 64 singles would hold the round (and the stops
            // of cancelled jobs behind it) for a block each.
            use futures::StreamExt;
            futures::stream::iter(chunk)
                .for_each_concurrent(CONCURRENT_REPORT_TXS, |due| async move {
                    if let Err(e) = send_one(shared, due).await {
                        shared.note_error(e);
                    }
                })
                .await;
            return Ok(());
        }
        Err(e) => bail!("reporting the status of {} jobs: {e}", chunk.len()),
    }
    for due in chunk {
        reported(shared, due)?;
    }
    Ok(())
}

/// One report in its own tx; a report the chain is already past counts as sent.
async fn send_one(shared: &Shared, due: &DueReport) -> anyhow::Result<()> {
    match send_and_wait(shared, vec![due.msg(shared)]).await {
        Ok(()) => {}
        // The chain is already past this state (reported before a crash, or cancelled):
        // by code, in a block or in simulation.
        Err(e) if refused_with(&e, codes::CODESPACE, codes::INVALID_JOB_STATE) => {}
        Err(e) => {
            if refused_by(&e, codes::CODESPACE) {
                // x/hpc says the report does not apply (the job moved, for one): read the
                // job on chain next round rather than at the next safety-net read.
                shared.note_changed_on_chain([due.job.job_id.clone()]);
            }
            bail!(
                "reporting {} for {}: {e}",
                due.report.state.as_str_name(),
                due.job.job_id
            )
        }
    }
    reported(shared, due)
}

async fn send_and_wait(shared: &Shared, msgs: Vec<Any>) -> Result<(), hpc_client::ClientError> {
    shared
        .gateway
        .send_and_wait(msgs, TX_INCLUSION_WAIT)
        .await
        .map(|_| ())
}

/// The chain has the report: RUNNING is remembered, a final state ends the local job.
fn reported(shared: &Shared, due: &DueReport) -> anyhow::Result<()> {
    if due.report.state == JobState::Running {
        let mut job = due.job.clone();
        job.reported = due.report.state.as_str_name().to_string();
        shared.store.put_local_job(&job)?;
    } else {
        shared.store.remove_local_job(&due.job.job_id)?;
    }
    Ok(())
}

/// One round for one local job: stop it if the chain no longer wants it here (read when
/// `read_chain`), else the report of a state change, if any.
async fn next_report(
    shared: &Shared,
    mut job: LocalJob,
    read_chain: bool,
) -> anyhow::Result<Option<DueReport>> {
    // The chain's word first: a job cancelled or moved before our record landed (the
    // record is then refused) must still be stopped here.
    if read_chain {
        let on_chain = shared.gateway.client.hpc_job(&job.job_id).await?;
        if let Some((code, why)) = on_chain.as_ref().and_then(|c| unwanted_here(c, &job)) {
            stop_job(shared, &job, code, why).await?;
            return Ok(None);
        }
    }
    if let Some(record_id) = job.reported.strip_prefix("after:") {
        // Our record: the id is in our namespace, and the chain set the signer.
        let me = shared.gateway.provider.to_string();
        match shared.gateway.client.hpc_audit_record(record_id).await {
            Ok(Some(r)) if r.provider_address == me => job.reported.clear(),
            _ => return Ok(None),
        }
    }
    let state = match &job.submit_error {
        Some(reason) => LocalJobState::Failed {
            reason: reason.clone(),
            exit_code: None,
        },
        None => shared
            .scheduler
            .job_state(&LocalJobId::new(job.local_id.clone()))
            .await
            .map_err(|e| anyhow!("local job {}: {e}", job.job_id))?,
    };
    Ok(report_of(&state, job.reported.is_empty()).map(|report| DueReport { job, report }))
}

/// Why the chain no longer wants this job to run here, if it does not: cancelled by its
/// owner, or moved to another decision (owner reschedule, fallback) while it runs here,
/// whether or not it has already ended there (a copy left waiting here would run late).
fn unwanted_here(on_chain: &Job, local: &LocalJob) -> Option<(&'static str, String)> {
    match on_chain.state() {
        JobState::Cancelled => Some((
            reason_codes::CANCELLED_ON_CHAIN,
            "cancelled on chain by its owner".into(),
        )),
        _ if on_chain.current_decision_id != local.decision_id => Some((
            reason_codes::MOVED_ELSEWHERE,
            format!(
                "moved to decision {} (provider {}) while it ran here",
                on_chain.current_decision_id, on_chain.provider_address
            ),
        )),
        _ => None,
    }
}

/// Cancels the local job and logs why; the chain already shows where the job is now.
async fn stop_job(shared: &Shared, job: &LocalJob, code: &str, why: String) -> anyhow::Result<()> {
    if job.submit_error.is_none() {
        shared
            .scheduler
            .cancel(&LocalJobId::new(job.local_id.clone()))
            .await
            .map_err(|e| anyhow!("cancelling local job {} ({why}): {e}", job.job_id))?;
    }
    tracing::warn!(job_id = %job.job_id, local_id = %job.local_id, reason = %why, "local job stopped");
    shared.audit_log.write(&AuditEntry {
        ts: rfc3339_now(),
        event: decision::events::ROUTING_JOB_STOPPED,
        job_id: &job.job_id,
        decision_id: &job.decision_id,
        cluster_id: &job.cluster_id,
        provider: &shared.gateway.provider.to_string(),
        correlation_id: "",
        reason: &format!("{code}: {why}"),
    })?;
    Ok(shared.store.remove_local_job(&job.job_id)?)
}

/// What to tell the chain about a local state.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    state: JobState,
    message: String,
    exit_code: Option<i32>,
}

/// The report of a local state: RUNNING once (`first` = nothing reported yet), then the
/// terminal state with its exit code. A job the local scheduler cancelled or lost (not
/// through the chain) failed.
fn report_of(state: &LocalJobState, first: bool) -> Option<Report> {
    let report = |state, message: &str, exit_code| Report {
        state,
        message: message.to_string(),
        exit_code,
    };
    match state {
        LocalJobState::Pending => None,
        LocalJobState::Running => first.then(|| report(JobState::Running, "", None)),
        LocalJobState::Completed => Some(report(JobState::Completed, "completed", Some(0))),
        // The chain refuses longer text; a scheduler error can be long (command + stderr).
        LocalJobState::Failed { reason, exit_code } => Some(report(
            JobState::Failed,
            &decision::clip(reason.clone()),
            *exit_code,
        )),
        LocalJobState::Cancelled => Some(report(
            JobState::Failed,
            "cancelled in the local scheduler",
            None,
        )),
        LocalJobState::Unknown => Some(report(
            JobState::Failed,
            "the local scheduler lost the job",
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(decision: &str) -> LocalJob {
        LocalJob {
            job_id: "hpc-job-1".into(),
            decision_id: decision.into(),
            cluster_id: "c".into(),
            local_id: "17".into(),
            reported: String::new(),
            submit_error: None,
        }
    }

    fn chain(state: JobState, decision: &str) -> Job {
        Job {
            job_id: "hpc-job-1".into(),
            state: state as i32,
            current_decision_id: decision.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_jobs_state_on_chain_is_read_when_new_changed_stale_or_after_a_failed_round() {
        let t0 = Instant::now();
        let none = BTreeSet::new();
        let changed: BTreeSet<String> = ["b".to_string()].into();
        let mut checks = ChainChecks::default();
        assert!(checks.due("a", &none, t0), "never read by this process");
        let read = RoundOutcome::Done { read_chain: true };
        let skipped = RoundOutcome::Done { read_chain: false };
        checks.record([("a", read), ("b", read), ("c", read)].into_iter(), t0);
        let t1 = t0 + Duration::from_secs(1);
        assert!(!checks.due("a", &none, t1), "read a second ago, no event");
        assert!(
            checks.due("b", &changed, t1),
            "cancelled or rescheduled since"
        );
        let stale = t0 + CHAIN_RECHECK;
        assert!(checks.due("a", &none, stale), "the safety net");
        // A skipped read keeps the last one; a failed round forgets it; a job no longer
        // local is dropped.
        checks.record(
            [("a", skipped), ("b", RoundOutcome::Failed)].into_iter(),
            t1,
        );
        assert!(!checks.due("a", &none, t1));
        assert!(checks.due("a", &none, stale));
        assert!(checks.due("b", &none, t1));
        assert_eq!(checks.0.len(), 1);
    }

    #[test]
    fn the_chain_decides_whether_a_job_may_go_on_here() {
        let here = local("d1");
        let table = [
            (JobState::Running, "d1", false),
            (JobState::Routed, "d1", false),
            (JobState::Cancelled, "d1", true),
            (JobState::Scheduled, "d2", true),
            (JobState::Running, "d2", true),
            (JobState::Completed, "d1", false),
            (JobState::Failed, "d1", false),
            // Moved, and already ended on the other provider before this one looked.
            (JobState::Completed, "d2", true),
            (JobState::Failed, "d2", true),
            (JobState::Rejected, "d2", true),
        ];
        for (state, decision, stop) in table {
            assert_eq!(
                unwanted_here(&chain(state, decision), &here).is_some(),
                stop,
                "{state:?} on {decision}"
            );
        }
    }

    #[test]
    fn local_states_become_reports_with_exit_codes() {
        assert_eq!(report_of(&LocalJobState::Pending, true), None);
        assert_eq!(
            report_of(&LocalJobState::Running, true).map(|r| r.state),
            Some(JobState::Running)
        );
        assert_eq!(report_of(&LocalJobState::Running, false), None);
        assert_eq!(
            report_of(&LocalJobState::Completed, false),
            Some(Report {
                state: JobState::Completed,
                message: "completed".into(),
                exit_code: Some(0)
            })
        );
        let failed = LocalJobState::Failed {
            reason: "exit code 3".into(),
            exit_code: Some(3),
        };
        assert_eq!(
            report_of(&failed, true),
            Some(Report {
                state: JobState::Failed,
                message: "exit code 3".into(),
                exit_code: Some(3)
            })
        );
        for lost in [LocalJobState::Cancelled, LocalJobState::Unknown] {
            let r = report_of(&lost, false).unwrap();
            assert_eq!((r.state, r.exit_code), (JobState::Failed, None));
        }
    }

    #[test]
    fn a_long_scheduler_error_is_clipped_to_what_the_chain_accepts() {
        let failed = LocalJobState::Failed {
            reason: format!("local scheduler: sbatch {}", "--x ".repeat(2000)),
            exit_code: None,
        };
        let r = report_of(&failed, false).unwrap();
        assert_eq!(r.message.len(), decision::MAX_TEXT_LEN);
        assert!(r.message.starts_with("local scheduler: sbatch"));
    }

    #[test]
    fn the_audit_log_says_whether_a_job_was_cancelled_or_moved() {
        let here = local("d1");
        let code = |state, decision| unwanted_here(&chain(state, decision), &here).map(|u| u.0);
        assert_eq!(
            code(JobState::Cancelled, "d1"),
            Some(reason_codes::CANCELLED_ON_CHAIN)
        );
        assert_eq!(
            code(JobState::Routed, "d2"),
            Some(reason_codes::MOVED_ELSEWHERE)
        );
    }
}
