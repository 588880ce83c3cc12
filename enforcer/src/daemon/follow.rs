//! Following the chain: where to start, the block loop, the sweep of waiting jobs and the
//! check that `state_dir` belongs to this chain.

use super::*;
use std::collections::HashMap;

use hpc_primitives::contract::{attrs, events};

/// How long the block follower waits for a new block before checking that the node still
/// answers (a halted chain produces no blocks but its nodes serve reads).
const QUIET_CHAIN_CHECK: Duration = Duration::from_secs(5);

/// How often the jobs waiting for this provider are looked up by query, besides the start:
/// a safety net for jobs whose handling failed and whose block is already behind us.
const SWEEP_INTERVAL: Duration = Duration::from_secs(300);

pub(super) async fn follow_blocks(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let chain = &shared.config.chain;
    let ws = chain.websocket_url().ok().map(|u| u.to_string());
    let mut follower = BlockFollower::new(&chain.rpc_url, ws.as_deref(), 1)?;
    let me = shared.gateway.provider.to_string();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut started = false;
    let mut last_sweep = Instant::now();
    loop {
        if !started {
            match start_following(&shared, &mut follower).await {
                Ok(()) => {
                    started = true;
                    last_sweep = Instant::now();
                }
                Err(e) if e.downcast_ref::<WrongChain>().is_some() => return Err(e),
                Err(e) => {
                    shared.note_error(format!("starting to follow the chain: {e:#}"));
                    if stopped(&mut stop, backoff.next_delay()).await {
                        return Ok(());
                    }
                    continue;
                }
            }
        }
        if last_sweep.elapsed() >= SWEEP_INTERVAL {
            let swept = match follower.head().await {
                Ok(h) => sweep_waiting_jobs(&shared, chain_head(h)).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = swept {
                shared.note_error(format!("periodic sweep: {e:#}"));
            }
            last_sweep = Instant::now();
        }
        let block = tokio::select! {
            _ = stop.changed() => return Ok(()),
            block = follower.next_within(QUIET_CHAIN_CHECK) => block,
        };
        let block = match block {
            // No new block for a while (a halted or idle chain): say whether the node still
            // answers, for /readyz and the head in /status.
            Ok(None) => {
                match follower.head().await {
                    Ok(h) => shared.note_head(h),
                    Err(e) => {
                        shared.note_unreachable();
                        shared.note_error(format!("reading the chain head: {e}"));
                    }
                }
                continue;
            }
            Ok(Some(b)) => {
                backoff.reset();
                shared.status.lock().expect("status lock").chain_reachable = true;
                b
            }
            Err(e) => {
                shared.note_unreachable();
                shared.note_error(format!("reading blocks: {e}"));
                // A node pruned (or state-synced) past our cursor: place the follower again.
                if let Ok(earliest) = follower.earliest_height().await {
                    if follower.next_height() < earliest {
                        started = false;
                    }
                }
                if stopped(&mut stop, backoff.next_delay()).await {
                    return Ok(());
                }
                continue;
            }
        };
        let head = follower.head().await.ok();
        if let Some(h) = head {
            shared
                .metrics
                .event_lag_blocks
                .set(h.height.saturating_sub(block.head.height) as i64);
            shared.note_head(h);
        }
        let mut work: Vec<(String, String)> = Vec::new();
        for kind in [events::JOB_SCHEDULED, events::JOB_RESCHEDULED] {
            for e in block.matching(kind, attrs::PROVIDER, &me) {
                if let (Some(job), Some(decision)) = (
                    e.attributes.get(attrs::JOB_ID),
                    e.attributes.get(attrs::DECISION_ID),
                ) {
                    work.push((job.clone(), decision.clone()));
                }
            }
        }
        note_changed_jobs(&shared, &block);
        if block
            .events
            .iter()
            .any(|e| e.kind == events::PARAMS_UPDATED)
        {
            refresh_params(&shared).await;
        }
        let failures = handle_attempts(&shared, work, head.map(chain_head)).await;
        for (job, decision, e) in &failures {
            shared.note_error(format!("job {job} decision {decision}: {e:#}"));
        }
        if !failures.is_empty() {
            // The cursor stays on this block: it is read again after a pause (attempts
            // already handled are skipped).
            follower.seek(block.head.height);
            if stopped(&mut stop, backoff.next_delay()).await {
                return Ok(());
            }
            continue;
        }
        shared.store.set_next_height(block.head.height + 1)?;
        shared.status.lock().expect("status lock").next_height = block.head.height + 1;
    }
}

/// Hands the report loop the jobs `block` cancelled or rescheduled, whichever provider
/// they were on (it reads only those that run here).
fn note_changed_jobs(shared: &Shared, block: &BlockEvents) {
    let changed = block
        .events
        .iter()
        .filter(|e| e.kind == events::JOB_CANCELLED || e.kind == events::JOB_RESCHEDULED)
        .filter_map(|e| e.attributes.get(attrs::JOB_ID).cloned());
    shared.note_changed_on_chain(changed);
}

fn chain_head(h: FollowerHead) -> ChainHead {
    ChainHead {
        height: h.height,
        time_seconds: h.time_seconds,
    }
}

/// Places the follower — at the persisted cursor, else at `chain.start_height`, never below
/// the first block the node still has — after checking that `state_dir` belongs to this
/// chain, then handles every job already waiting for this provider. That query finds the
/// jobs scheduled in blocks the follower will not read (a later start height, a pruned
/// node); jobs already handled are skipped.
async fn start_following(shared: &Shared, follower: &mut BlockFollower) -> anyhow::Result<()> {
    refresh_params(shared).await;
    let earliest = follower.earliest_height().await?;
    let head = follower.head().await?;
    shared.note_head(head);
    let cursor = shared.store.next_height()?;
    check_same_chain(shared, follower, earliest, head.height, cursor).await?;
    let wanted = match cursor {
        Some(cursor) => cursor,
        None => match shared.config.chain.start_height {
            StartHeight::Earliest => earliest,
            StartHeight::Latest => head.height + 1,
            StartHeight::Height(h) => h,
        },
    };
    if wanted < earliest {
        shared.note_error(format!(
            "blocks {wanted}..{} are no longer served by {} (pruned): reading from {earliest}; \
             jobs still waiting are found by query",
            earliest - 1,
            shared.config.chain.rpc_url
        ));
    }
    if wanted > head.height + 1 {
        shared.note_error(format!(
            "waiting for block {wanted}: {} is at height {} (still syncing?)",
            shared.config.chain.rpc_url, head.height
        ));
    }
    let start = wanted.max(earliest);
    follower.seek(start);
    shared.store.set_next_height(start)?;
    shared.status.lock().expect("status lock").next_height = start;
    let waiting = sweep_waiting_jobs(shared, chain_head(head)).await?;
    tracing::info!(start, head = head.height, waiting, "following the chain");
    Ok(())
}

/// A `state_dir` of another chain: fatal, retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WrongChain(String);

/// Refuses a `state_dir` written for another chain (a reset devnet keeps its chain id, and
/// job ids repeat across chains, so its cursor and handled attempts would be wrong): the
/// first block this state read must have the same hash on this node.
async fn check_same_chain(
    shared: &Shared,
    follower: &BlockFollower,
    earliest: u64,
    head: u64,
    cursor: Option<u64>,
) -> anyhow::Result<()> {
    match shared.store.chain_anchor()? {
        Some((height, hash)) if (earliest..=head).contains(&height) => {
            let here = follower.block_hash(height).await?;
            if here != hash {
                return Err(WrongChain(format!(
                    "state_dir {} belongs to another chain: block {height} has hash {hash} \
                     there and {here} on {}; use a fresh state_dir for this chain",
                    shared.config.state_dir().display(),
                    shared.config.chain.rpc_url
                ))
                .into());
            }
        }
        // The anchor block is no longer (or not yet) served here: nothing to compare.
        Some(_) => {}
        None if head > 0 => {
            // The anchor is the first block this state reads from (or the head).
            let height = cursor.unwrap_or(earliest).clamp(earliest, head);
            let hash = follower.block_hash(height).await?;
            shared.store.set_chain_anchor(height, &hash)?;
        }
        None => {}
    }
    Ok(())
}

/// Handles every job in state SCHEDULED on this provider's clusters; returns how many were
/// waiting. A job whose handling fails is reported and left for the next sweep (or its
/// block); only the lookup itself failing is an error.
async fn sweep_waiting_jobs(shared: &Shared, head: ChainHead) -> anyhow::Result<usize> {
    let provider = shared.gateway.provider.to_string();
    let waiting = shared
        .gateway
        .client
        .hpc_jobs_of_provider(&provider, JobState::Scheduled)
        .await
        .with_context(|| format!("looking up the jobs waiting for {provider}"))?;
    let work = waiting
        .iter()
        .map(|job| (job.job_id.clone(), job.current_decision_id.clone()))
        .collect();
    for (job, _, e) in handle_attempts(shared, work, Some(head)).await {
        shared.note_error(format!("waiting job {job}: {e:#}"));
    }
    Ok(waiting.len())
}

/// Handles the `(job, decision)` attempts, different jobs concurrently and one job's
/// attempts in their order; returns the attempts that failed (handled ones are skipped when
/// they are tried again).
async fn handle_attempts(
    shared: &Shared,
    work: Vec<(String, String)>,
    head: Option<ChainHead>,
) -> Vec<(String, String, anyhow::Error)> {
    use futures::StreamExt;
    let mut by_job: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (job, decision) in work {
        match index.get(&job) {
            Some(&i) => by_job[i].1.push(decision),
            None => {
                index.insert(job.clone(), by_job.len());
                by_job.push((job, vec![decision]));
            }
        }
    }
    futures::stream::iter(by_job)
        .map(|(job, decisions)| async move {
            for decision in decisions {
                if let Err(e) = handle_attempt(shared, &job, &decision, head).await {
                    return Some((job, decision, e));
                }
            }
            None
        })
        .buffer_unordered(super::CONCURRENT_JOBS)
        .filter_map(|failure| async move { failure })
        .collect()
        .await
}
