//! One decision attempt: evaluate, record first (outbox, audit log, counts), then act.

use super::*;
use crate::workload;
use hpc_proto::virtengine::hpc::v1::{Job, MsgRecordRoutingAudit};

/// Evaluates one decision attempt, once: records first (outbox), then acts.
pub(super) async fn handle_attempt(
    shared: &Shared,
    job_id: &str,
    decision_id: &str,
    head: Option<ChainHead>,
) -> anyhow::Result<()> {
    if shared.store.attempt(job_id, decision_id)?.is_some() {
        return Ok(());
    }
    let seen = Instant::now();
    let job = shared
        .gateway
        .client
        .hpc_job(job_id)
        .await?
        .ok_or_else(|| anyhow!("job {job_id} not found"))?;
    if job.state() != JobState::Scheduled || job.current_decision_id != decision_id {
        shared
            .store
            .set_attempt(job_id, decision_id, "superseded")?;
        return Ok(());
    }
    // Held until the local scheduler has the job (it then counts its nodes) or refused it.
    let (eval, promise) = shared
        .evaluate_attempt(job.clone(), decision_id, head)
        .await;
    if let Outcome::NotForUs { reason } = &eval.outcome {
        tracing::debug!(job_id, decision_id, reason, "not for this enforcer");
    }
    // The workload is checked (and a content-addressed script fetched and verified) before
    // the record: a refusal is the attempt's REJECTED record, and nothing runs.
    let (eval, prepared) = match &eval.outcome {
        Outcome::Run { .. } => match workload::prepare(&job, &shared.config.workload).await {
            Ok(prepared) => (eval, Some(prepared)),
            Err(refusal) => {
                tracing::warn!(job_id, code = refusal.code, reason = %refusal.reason, "workload refused");
                (eval.refuse_workload(refusal.code, &refusal.reason), None)
            }
        },
        _ => (eval, None),
    };
    record(shared, &eval, job_id, decision_id, &job.correlation_id)?;
    let outcome = match (&eval.outcome, prepared) {
        (Outcome::Run { cluster_id }, Some(prepared)) => {
            let spec = job_spec(&job, prepared);
            // The routing is recorded already; a job the local scheduler refuses (after a
            // few tries) fails rather than holding up the blocks behind it.
            let (local_id, submit_error) = match submit_with_retries(shared, &spec, promise).await {
                Ok(local) => (local.as_str().to_string(), None),
                Err(e) => {
                    shared.note_error(format!("local scheduler refused job {job_id}: {e}"));
                    (String::new(), Some(format!("local scheduler: {e}")))
                }
            };
            shared.store.put_local_job(&LocalJob {
                job_id: job_id.to_string(),
                decision_id: decision_id.to_string(),
                cluster_id: cluster_id.clone(),
                local_id,
                reported: eval
                    .audit
                    .as_ref()
                    .map(|a| format!("after:{}", a.record_id))
                    .unwrap_or_default(),
                submit_error,
            })?;
            "run"
        }
        (Outcome::Run { .. }, None) => "reject",
        (Outcome::Reject { .. }, _) => "reject",
        (Outcome::NotForUs { .. }, _) => "not_for_us",
        (
            Outcome::RequestNewDecision {
                reason,
                exclude_cluster_ids,
                kind,
            },
            _,
        ) => {
            let provider = shared.gateway.provider.to_string();
            let mut msgs = vec![to_any(&MsgRequestReschedule {
                requester: provider.clone(),
                job_id: job_id.to_string(),
                reason: reason.clone(),
                excluded_cluster_ids: exclude_cluster_ids.clone(),
                kind: kind.to_proto() as i32,
            })];
            // The record closing this attempt, after the request in the same tx: both land
            // or neither, and the decision it names is superseded when it is checked.
            msgs.extend(eval.audit.as_ref().map(|closing| {
                to_any(&MsgRecordRoutingAudit {
                    provider,
                    records: vec![closing.to_proto()],
                })
            }));
            if let Err(e) = shared.gateway.send_and_wait(msgs, TX_INCLUSION_WAIT).await {
                // No replacement: close the attempt with the evaluation of a missing one.
                shared.note_error(format!("requesting a new decision for {job_id}: {e}"));
                let failed = evaluate(&EvaluationInput {
                    job_id: job_id.to_string(),
                    job: Some(job.clone()),
                    decision: None,
                    lookup: LookupStatus::Failed(format!("RequestReschedule failed: {e}")),
                    head,
                    provider: shared.identity(),
                    cluster_status: shared.cluster_status().await,
                    routing: shared.config.hpc.routing.clone(),
                    chain: ChainRoutingParams::from(&*shared.params.lock().expect("params lock")),
                    attempt: Attempt::Replacement {
                        previous_decision_id: decision_id.to_string(),
                        kind: *kind,
                    },
                    placement: Placement::FollowDecision,
                });
                record(shared, &failed, job_id, decision_id, &job.correlation_id)?;
            }
            "request_new_decision"
        }
    };
    shared
        .metrics
        .enforcement_total
        .get_or_create(&OutcomeLabel {
            outcome: outcome.into(),
        })
        .inc();
    shared
        .metrics
        .enforcement_latency_ms
        .observe(seen.elapsed().as_millis() as f64);
    // Without a chain head the age is unknown (0 in the record): not observed.
    if let (Some(audit), Some(_)) = (&eval.audit, head) {
        shared
            .metrics
            .decision_age_seconds
            .observe(audit.decision_age_seconds as f64);
    }
    shared.store.set_attempt(job_id, decision_id, outcome)?;
    Ok(())
}

/// The local scheduler's job for a chain job and its prepared workload.
fn job_spec(job: &Job, prepared: workload::Prepared) -> JobSpec {
    let requirements = job.requirements.clone().unwrap_or_default();
    JobSpec {
        job_id: job.job_id.clone(),
        nodes: requirements.nodes,
        gpus_per_node: requirements.gpus_per_node,
        max_runtime_seconds: requirements.max_runtime_seconds,
        workload: prepared.workload,
        env: prepared.env,
        partition: prepared.partition,
        output_name: prepared.output_name,
        correlation_id: job.correlation_id.clone(),
    }
}

/// Submissions tried before a job is given up as FAILED.
const SUBMIT_ATTEMPTS: u32 = 3;

async fn submit_with_retries(
    shared: &Shared,
    spec: &JobSpec,
    promise: NodePromise<'_>,
) -> Result<LocalJobId, hpc_local_scheduler::SchedulerError> {
    // The local scheduler counts the job's nodes from the first poll of its submit: the
    // promise ends in that same poll (no await in between), so no concurrent attempt sees
    // the nodes twice or not at all.
    drop(promise);
    let mut attempt = 1;
    loop {
        match shared.scheduler.submit(spec).await {
            Ok(id) => return Ok(id),
            Err(e) if attempt >= SUBMIT_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(job_id = %spec.job_id, attempt, error = %e, "local submission failed, retrying");
                tokio::time::sleep(Duration::from_secs(2 * u64::from(attempt))).await;
                attempt += 1;
            }
        }
    }
}

/// Writes an evaluation's records to the outbox (durably, before anything else), then the
/// audit log line, metrics and the local violation count. Every log line names the job,
/// decision, cluster and reason: from the record, else the first violation, else the
/// attempt and the outcome's reason.
pub(super) fn record(
    shared: &Shared,
    eval: &decision::Evaluation,
    job_id: &str,
    decision_id: &str,
    correlation_id: &str,
) -> anyhow::Result<()> {
    let mut items: Vec<OutboxItem> = Vec::new();
    // A request's closing record travels in its RequestReschedule tx (handle_attempt).
    if let Some(a) = eval
        .audit
        .as_ref()
        .filter(|_| !eval.requests_new_decision())
    {
        items.push(OutboxItem::Audit(a.to_proto()));
    }
    for v in &eval.violations {
        items.push(OutboxItem::Violation(v.to_proto()));
    }
    if !items.is_empty() {
        shared.outbox.enqueue(items, wall_seconds())?;
    }
    let provider = shared.gateway.provider.to_string();
    let (decision_id, cluster_id, reason) = match (&eval.audit, eval.violations.first()) {
        (Some(a), _) => (
            a.scheduling_decision_id.as_str(),
            a.actual_cluster_id.as_str(),
            a.reason.as_str(),
        ),
        (None, Some(v)) => (
            v.decision_id.as_str(),
            v.actual_cluster_id.as_str(),
            v.details.as_str(),
        ),
        (None, None) => (
            decision_id,
            shared.config.hpc.cluster_id.as_str(),
            eval.outcome.reason(),
        ),
    };
    if !matches!(eval.outcome, Outcome::NotForUs { .. }) {
        shared.audit_log.write(&AuditEntry {
            ts: rfc3339_now(),
            event: eval.log_event,
            job_id,
            decision_id,
            cluster_id,
            provider: &provider,
            correlation_id,
            reason,
        })?;
    }
    if eval.audit.as_ref().is_some_and(|a| a.is_fallback) {
        shared.metrics.fallbacks_total.inc();
    }
    for v in &eval.violations {
        shared
            .metrics
            .violations_total
            .get_or_create(&TypeLabel {
                r#type: decision::violation_type_name(v.violation_type).into(),
            })
            .inc();
    }
    if !eval.violations.is_empty() {
        let threshold = shared.config.hpc.routing.violation_alert_threshold as u64;
        let (count, crossed) =
            shared
                .store
                .add_violations(&provider, eval.violations.len() as u64, threshold)?;
        if crossed {
            alert_threshold(
                shared,
                count.total,
                threshold,
                Some((job_id, decision_id, cluster_id, correlation_id)),
            )?;
        }
    }
    Ok(())
}

/// Seed 001's threshold alert: a warning and an audit log line (naming the job whose
/// violation crossed it, when one did).
pub(super) fn alert_threshold(
    shared: &Shared,
    total: u64,
    threshold: u64,
    job: Option<(&str, &str, &str, &str)>,
) -> anyhow::Result<()> {
    let provider = shared.gateway.provider.to_string();
    tracing::warn!(provider, total, threshold, "violation threshold exceeded");
    let (job_id, decision_id, cluster_id, correlation_id) = job.unwrap_or_default();
    shared.audit_log.write(&AuditEntry {
        ts: rfc3339_now(),
        event: decision::events::ROUTING_VIOLATION_THRESHOLD_EXCEEDED,
        job_id,
        decision_id,
        cluster_id,
        provider: &provider,
        correlation_id,
        reason: &format!("{total} unresolved violations (threshold {threshold})"),
    })?;
    Ok(())
}
