//! The enforcer daemon: the I/O around [`crate::decision::evaluate`].
//!
//! - a block follower reads `/block_results` of every height from a persisted cursor and
//!   finds the jobs scheduled or rescheduled onto this provider's clusters;
//! - each decision attempt is evaluated once; its audit record and violations are written
//!   to the durable outbox *before* anything else happens, then the job is handed to the
//!   local scheduler, rejected, or a new decision is requested;
//! - the outbox deliverer puts records on chain exactly once; the job reporter tells the
//!   chain RUNNING / COMPLETED / FAILED once the job's audit record is on chain;
//! - the health monitor probes the local cluster and sends heartbeats;
//! - metrics and the admin API are served on their own listeners.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use hpc_client::events::{BlockFollower, ChainHead as FollowerHead};
use hpc_client::keys::{EnvOrPrompt, Keyring};
use hpc_client::tx::{GasSetting, TxOptions};
use hpc_client::{ChainClient, Transport};
use hpc_local_scheduler::{
    EmbeddedConfig, EmbeddedScheduler, JobSpec, LocalJobId, LocalJobState, LocalScheduler,
    SlurmConfig, SlurmScheduler,
};
use hpc_outbox::{Backoff, Deliverer, DelivererConfig, Outbox, OutboxItem};
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::{
    ClusterHealth, ClusterState, JobState, MsgReportJobStatus, MsgRequestReschedule,
    MsgUpdateClusterStatus, Params,
};

use crate::audit_log::{AuditEntry, AuditLog};
use crate::chain::ChainGateway;
use crate::config::{Config, KeyringBackend, SchedulerAdapter, StartHeight};
use crate::decision::{
    self, evaluate, Attempt, ChainHead, ChainRoutingParams, ClusterStatus, EvaluationInput,
    LookupStatus, Outcome, Placement, ProviderIdentity, RequestKind,
};
use crate::metrics::{Metrics, OutcomeLabel, TypeLabel};
use crate::store::{EnforcerStore, LocalJob};

/// The first word of the reschedule reasons this enforcer writes; other enforcers read
/// it back from the replacement decision to audit it with the right status.
fn reason_with_kind(kind: RequestKind, reason: &str) -> String {
    format!("{}: {reason}", kind.as_str())
}

fn kind_of_reason(reason: &str) -> Option<RequestKind> {
    match reason.split(':').next()? {
        "refresh" => Some(RequestKind::Refresh),
        "fallback" => Some(RequestKind::Fallback),
        "missing" => Some(RequestKind::Missing),
        _ => None,
    }
}

fn wall_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rfc3339_now() -> String {
    tendermint::Time::now().to_rfc3339()
}

/// What `status` and the admin API report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StatusInfo {
    pub provider: String,
    pub cluster_id: String,
    pub head_height: u64,
    pub head_time_seconds: i64,
    pub next_height: u64,
    pub outbox_pending: u64,
    pub outbox_dead: u64,
    pub cluster_healthy: bool,
    pub consecutive_probe_failures: u32,
    pub last_errors: Vec<String>,
    pub chain_reachable: bool,
}

pub struct Shared {
    pub config: Config,
    pub gateway: ChainGateway,
    pub outbox: Outbox,
    pub store: EnforcerStore,
    pub scheduler: Arc<dyn LocalScheduler>,
    pub metrics: Metrics,
    pub audit_log: AuditLog,
    pub status: Mutex<StatusInfo>,
    pub params: Mutex<Params>,
}

impl Shared {
    fn note_error(&self, e: impl std::fmt::Display) {
        let msg = format!("{}: {e}", rfc3339_now());
        tracing::warn!("{msg}");
        let mut s = self.status.lock().expect("status lock");
        s.last_errors.push(msg);
        let excess = s.last_errors.len().saturating_sub(10);
        s.last_errors.drain(..excess);
    }

    fn identity(&self) -> ProviderIdentity {
        ProviderIdentity {
            address: self.gateway.provider.to_string(),
            cluster_ids: BTreeSet::from([self.config.hpc.cluster_id.clone()]),
        }
    }

    /// The local cluster as the health monitor and the scheduler see it.
    pub async fn cluster_status(&self) -> ClusterStatus {
        let healthy = self.status.lock().expect("status lock").cluster_healthy;
        match self.scheduler.status().await {
            Ok(s) => ClusterStatus {
                available: s.reachable,
                free_nodes: s.free_nodes,
                healthy: healthy && s.healthy,
            },
            Err(e) => {
                self.note_error(format!("local scheduler status: {e}"));
                ClusterStatus {
                    available: false,
                    free_nodes: 0,
                    healthy: false,
                }
            }
        }
    }

    /// Evaluates a decision for this provider (shared by the block loop and the admin API).
    pub async fn evaluate_job(
        &self,
        job_id: &str,
        decision_id: Option<&str>,
        placement: Placement,
        head: Option<ChainHead>,
    ) -> decision::Evaluation {
        let client = &self.gateway.client;
        let (job, decision, lookup) = match client.hpc_job(job_id).await {
            Err(e) => (None, None, LookupStatus::Failed(e.to_string())),
            Ok(None) => (None, None, LookupStatus::Missing),
            Ok(Some(job)) => {
                let id = decision_id
                    .map(str::to_string)
                    .unwrap_or_else(|| job.current_decision_id.clone());
                match client.hpc_decision(&id).await {
                    Err(e) => (Some(job), None, LookupStatus::Failed(e.to_string())),
                    Ok(None) => (Some(job), None, LookupStatus::Missing),
                    Ok(Some(d)) => (Some(job), Some(d), LookupStatus::Found),
                }
            }
        };
        // A decision another enforcer requested as a replacement is audited as one.
        let attempt = match &decision {
            Some(d) if !d.previous_decision_id.is_empty() => {
                match kind_of_reason(&d.reschedule_reason) {
                    Some(kind) => Attempt::Replacement {
                        previous_decision_id: d.previous_decision_id.clone(),
                        kind,
                    },
                    None => Attempt::Original,
                }
            }
            _ => Attempt::Original,
        };
        let params = *self.params.lock().expect("params lock");
        evaluate(&EvaluationInput {
            job_id: job_id.to_string(),
            job,
            decision,
            lookup,
            head,
            provider: self.identity(),
            cluster_status: self.cluster_status().await,
            routing: self.config.hpc.routing.clone(),
            chain: ChainRoutingParams::from(&params),
            attempt,
            placement,
        })
    }
}

/// Loads the provider key from the keyring or a mnemonic file.
fn load_key(config: &Config) -> anyhow::Result<cosmrs::crypto::secp256k1::SigningKey> {
    if let Some(path) = &config.key.mnemonic_file {
        let phrase = std::fs::read_to_string(path)
            .with_context(|| format!("key.mnemonic_file: cannot read {}", path.display()))?;
        let key = hpc_client::keys::derive_from_phrase(phrase.trim(), "", Default::default())
            .map_err(|e| anyhow!("key.mnemonic_file: {e}"))?;
        return Ok(key.signing_key());
    }
    let dir = config
        .key
        .keyring_dir
        .clone()
        .ok_or_else(|| anyhow!("key.keyring_dir: required with key.name"))?;
    let name = config
        .key
        .name
        .clone()
        .ok_or_else(|| anyhow!("key.name: required"))?;
    let ring = match config.key.keyring_backend {
        KeyringBackend::Test => Keyring::test(&dir),
        KeyringBackend::File => Keyring::file(&dir, Arc::new(EnvOrPrompt::default())),
    };
    ring.signing_key(&name)
        .map_err(|e| anyhow!("key.name {name:?}: {e}"))
}

fn scheduler_of(config: &Config) -> anyhow::Result<Arc<dyn LocalScheduler>> {
    Ok(match config.scheduler.adapter {
        SchedulerAdapter::Embedded => {
            let nodes = config.scheduler.embedded.as_ref().map_or(1, |e| e.nodes);
            Arc::new(
                EmbeddedScheduler::new(EmbeddedConfig::new(nodes, config.embedded_workdir()))
                    .map_err(|e| anyhow!("scheduler.embedded: {e}"))?,
            )
        }
        SchedulerAdapter::Slurm => {
            let s = config
                .scheduler
                .slurm
                .as_ref()
                .ok_or_else(|| anyhow!("scheduler.slurm: required with adapter slurm"))?;
            Arc::new(
                SlurmScheduler::new(SlurmConfig {
                    partition: s.partition.clone(),
                    sbatch: s.sbatch_path.clone(),
                    squeue: s.squeue_path.clone(),
                    sinfo: s.sinfo_path.clone(),
                    sacct: s.sacct_path.clone(),
                    scontrol: s.scontrol_path.clone(),
                    command_timeout: Duration::from_secs(s.command_timeout_seconds),
                    ..SlurmConfig::default()
                })
                .map_err(|e| anyhow!("scheduler.slurm: {e}"))?,
            )
        }
    })
}

/// Builds everything and runs until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if !config.hpc.enabled {
        // The seed's switch for the whole HPC side of the provider: nothing to enforce.
        tracing::warn!("hpc.enabled is false: the enforcer has nothing to do and exits");
        return Ok(());
    }
    let key = load_key(&config)?;
    let address = hpc_client::tx::address_of(&key);
    if address.to_string() != config.hpc.provider_address {
        bail!(
            "hpc.provider_address: {} is not the address of the configured key ({address})",
            config.hpc.provider_address
        );
    }
    let state_dir = config.state_dir().to_path_buf();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("state_dir: cannot create {}", state_dir.display()))?;
    let transport =
        Transport::grpc(&config.chain.grpc_addr).map_err(|e| anyhow!("chain.grpc_addr: {e}"))?;
    let client = ChainClient {
        transport,
        chain_id: config.chain.chain_id.clone(),
    };
    let prices = config.gas.prices().map_err(|e| anyhow!("gas.price: {e}"))?;
    let opts = TxOptions {
        gas: GasSetting::Auto,
        gas_adjustment: format!("{}", config.gas.adjustment)
            .parse()
            .map_err(|e| anyhow!("gas.adjustment: {e}"))?,
        gas_prices: prices,
        ..TxOptions::default()
    };
    let shared = Arc::new(Shared {
        gateway: ChainGateway::new(client, key, opts, 50),
        outbox: Outbox::open(state_dir.join("outbox.redb")).context("opening the outbox")?,
        store: EnforcerStore::open(&state_dir)?,
        scheduler: scheduler_of(&config)?,
        metrics: Metrics::new(),
        audit_log: AuditLog::open(&state_dir.join("audit.log")).context("opening audit.log")?,
        status: Mutex::new(StatusInfo {
            provider: address.to_string(),
            cluster_id: config.hpc.cluster_id.clone(),
            cluster_healthy: true,
            ..Default::default()
        }),
        params: Mutex::new(Params::default()),
        config,
    });
    tracing::info!(provider = %address, cluster = %shared.config.hpc.cluster_id, "hpc-enforcer starting");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(crate::admin::serve_metrics(shared.clone(), stop_rx.clone()));
    tasks.spawn(crate::admin::serve_admin(shared.clone(), stop_rx.clone()));
    tasks.spawn(follow_blocks(shared.clone(), stop_rx.clone()));
    tasks.spawn(deliver(shared.clone(), stop_rx.clone()));
    tasks.spawn(report_jobs(shared.clone(), stop_rx.clone()));
    tasks.spawn(monitor_health(shared.clone(), stop_rx.clone()));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        done = tasks.join_next() => Err(match done {
            Some(Ok(Err(e))) => e,
            other => anyhow!("a daemon task stopped: {other:?}"),
        }),
    };
    tracing::info!("hpc-enforcer stopping");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    result
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(wait) => *stop.borrow(),
    }
}

async fn refresh_params(shared: &Shared) {
    match shared.gateway.client.hpc_params().await {
        Ok((params, _)) => {
            shared
                .gateway
                .set_max_batch_size(params.max_batch_size as usize);
            *shared.params.lock().expect("params lock") = params;
        }
        Err(e) => shared.note_error(format!("fetching x/hpc params: {e}")),
    }
}

/// How long the block follower waits for a new block before checking that the node still
/// answers (a halted chain produces no blocks but its nodes serve reads).
const QUIET_CHAIN_CHECK: Duration = Duration::from_secs(5);

/// How often the jobs waiting for this provider are looked up by query, besides the start:
/// a safety net for jobs whose handling failed and whose block is already behind us.
const SWEEP_INTERVAL: Duration = Duration::from_secs(300);

async fn follow_blocks(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let chain = &shared.config.chain;
    let ws = chain.websocket_url().ok().map(|u| u.to_string());
    let mut follower = BlockFollower::new(&chain.rpc_url, ws.as_deref(), 1)?;
    let me = shared.gateway.provider.to_string();
    let mut backoff = Duration::from_millis(500);
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
                    if stopped(&mut stop, backoff).await {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
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
                    Ok(h) => {
                        let mut st = shared.status.lock().expect("status lock");
                        st.chain_reachable = true;
                        st.head_height = h.height;
                        st.head_time_seconds = h.time_seconds;
                    }
                    Err(e) => {
                        shared.status.lock().expect("status lock").chain_reachable = false;
                        shared.note_error(format!("reading the chain head: {e}"));
                    }
                }
                continue;
            }
            Ok(Some(b)) => {
                backoff = Duration::from_millis(500);
                shared.status.lock().expect("status lock").chain_reachable = true;
                b
            }
            Err(e) => {
                shared.status.lock().expect("status lock").chain_reachable = false;
                shared.note_error(format!("reading blocks: {e}"));
                // A node pruned (or state-synced) past our cursor: place the follower again.
                if let Ok(earliest) = follower.earliest_height().await {
                    if follower.next_height() < earliest {
                        started = false;
                    }
                }
                if stopped(&mut stop, backoff).await {
                    return Ok(());
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let head = follower.head().await.ok();
        if let Some(h) = head {
            shared
                .metrics
                .event_lag_blocks
                .set(h.height.saturating_sub(block.head.height) as i64);
            let mut st = shared.status.lock().expect("status lock");
            st.head_height = h.height;
            st.head_time_seconds = h.time_seconds;
        }
        let mut work: Vec<(String, String)> = Vec::new();
        for kind in ["hpc_job_scheduled", "hpc_job_rescheduled"] {
            for e in block.matching(kind, "provider", &me) {
                if let (Some(job), Some(decision)) =
                    (e.attributes.get("job_id"), e.attributes.get("decision_id"))
                {
                    work.push((job.clone(), decision.clone()));
                }
            }
        }
        if block.events.iter().any(|e| e.kind == "hpc_params_updated") {
            refresh_params(&shared).await;
        }
        let mut failed = false;
        for (job, decision) in work {
            if let Err(e) = handle_attempt(&shared, &job, &decision, head.map(chain_head)).await {
                shared.note_error(format!("job {job} decision {decision}: {e:#}"));
                failed = true;
                break;
            }
        }
        if failed {
            // The cursor stays on this block: it is read again after a pause (attempts
            // already handled are skipped).
            follower.seek(block.head.height);
            if stopped(&mut stop, backoff).await {
                return Ok(());
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
            continue;
        }
        shared.store.set_next_height(block.head.height + 1)?;
        shared.status.lock().expect("status lock").next_height = block.head.height + 1;
    }
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
    shared.status.lock().expect("status lock").chain_reachable = true;
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
    {
        let mut st = shared.status.lock().expect("status lock");
        st.next_height = start;
        st.head_height = head.height;
        st.head_time_seconds = head.time_seconds;
    }
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
        Some(anchor) => {
            let (height, hash) = anchor
                .split_once(':')
                .and_then(|(h, hash)| Some((h.parse::<u64>().ok()?, hash)))
                .ok_or_else(|| anyhow!("state_dir: unreadable chain anchor {anchor:?}"))?;
            if (earliest..=head).contains(&height) {
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
        }
        None if head > 0 => {
            // The anchor is the first block this state reads from (or the head).
            let height = cursor.unwrap_or(earliest).clamp(earliest, head);
            let hash = follower.block_hash(height).await?;
            shared.store.set_chain_anchor(&format!("{height}:{hash}"))?;
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
    for job in &waiting {
        if let Err(e) =
            handle_attempt(shared, &job.job_id, &job.current_decision_id, Some(head)).await
        {
            shared.note_error(format!("waiting job {}: {e:#}", job.job_id));
        }
    }
    Ok(waiting.len())
}

/// Evaluates one decision attempt, once: records first (outbox), then acts.
async fn handle_attempt(
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
    let eval = shared
        .evaluate_job(job_id, Some(decision_id), Placement::FollowDecision, head)
        .await;
    if let Outcome::NotForUs { reason } = &eval.outcome {
        tracing::debug!(job_id, decision_id, reason, "not for this enforcer");
    }
    record(shared, &eval, &job.correlation_id)?;
    let outcome = match &eval.outcome {
        Outcome::Run { cluster_id } => {
            let requirements = job.requirements.clone().unwrap_or_default();
            let spec = JobSpec {
                job_id: job_id.to_string(),
                nodes: requirements.nodes,
                gpus_per_node: requirements.gpus_per_node,
                max_runtime_seconds: requirements.max_runtime_seconds,
                command: Vec::new(),
                correlation_id: job.correlation_id.clone(),
            };
            // The routing is recorded already; a job the local scheduler refuses (after a
            // few tries) fails rather than holding up the blocks behind it.
            let (local_id, submit_error) = match submit_with_retries(shared, &spec).await {
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
        Outcome::Reject { .. } => "reject",
        Outcome::NotForUs { .. } => "not_for_us",
        Outcome::RequestNewDecision {
            reason,
            exclude_cluster_ids,
            kind,
        } => {
            let msg = to_any(&MsgRequestReschedule {
                requester: shared.gateway.provider.to_string(),
                job_id: job_id.to_string(),
                reason: reason_with_kind(*kind, reason),
                excluded_cluster_ids: exclude_cluster_ids.clone(),
            });
            if let Err(e) = shared
                .gateway
                .send_and_wait(vec![msg], Duration::from_secs(60))
                .await
            {
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
                record(shared, &failed, &job.correlation_id)?;
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

/// Submissions tried before a job is given up as FAILED.
const SUBMIT_ATTEMPTS: u32 = 3;

async fn submit_with_retries(
    shared: &Shared,
    spec: &JobSpec,
) -> Result<LocalJobId, hpc_local_scheduler::SchedulerError> {
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
/// audit log line, metrics and the local violation count.
fn record(
    shared: &Shared,
    eval: &decision::Evaluation,
    correlation_id: &str,
) -> anyhow::Result<()> {
    let mut items: Vec<OutboxItem> = Vec::new();
    if let Some(a) = &eval.audit {
        items.push(OutboxItem::Audit(a.to_proto()));
    }
    for v in &eval.violations {
        items.push(OutboxItem::Violation(v.to_proto()));
    }
    if !items.is_empty() {
        shared.outbox.enqueue(items, wall_seconds())?;
    }
    let provider = shared.gateway.provider.to_string();
    let (job_id, decision_id, cluster_id, reason) = match &eval.audit {
        Some(a) => (
            a.job_id.as_str(),
            a.scheduling_decision_id.as_str(),
            a.actual_cluster_id.as_str(),
            a.reason.as_str(),
        ),
        None => ("", "", "", ""),
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
            tracing::warn!(
                provider,
                total = count.total,
                threshold,
                "violation threshold exceeded"
            );
            shared.audit_log.write(&AuditEntry {
                ts: rfc3339_now(),
                event: decision::events::ROUTING_VIOLATION_THRESHOLD_EXCEEDED,
                job_id,
                decision_id,
                cluster_id,
                provider: &provider,
                correlation_id,
                reason: &format!(
                    "{} violations recorded (threshold {threshold})",
                    count.total
                ),
            })?;
        }
    }
    Ok(())
}

/// Runs the outbox deliverer; while the chain is unavailable it backs off (1 s doubling
/// to 60 s) and says so once per outage rather than on every pass.
async fn deliver(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let config = DelivererConfig::default();
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let deliverer = Deliverer::new(config);
    let mut in_outage = false;
    loop {
        let pause = match deliverer
            .run_once(&shared.outbox, &shared.gateway, wall_seconds())
            .await
        {
            Ok(report) if report.unavailable => {
                if !in_outage {
                    shared.note_error("outbox: chain unavailable, retrying with backoff");
                    in_outage = true;
                }
                Some(backoff.next_delay())
            }
            Ok(report) => {
                if in_outage {
                    tracing::info!("outbox: chain reachable again");
                    in_outage = false;
                }
                backoff.reset();
                report.more.then_some(Duration::ZERO)
            }
            Err(e) => {
                shared.note_error(format!("outbox: {e}"));
                Some(backoff.next_delay())
            }
        };
        if let Ok(depth) = shared.outbox.depth() {
            let pending = depth.total();
            shared.metrics.outbox_depth.set(pending as i64);
            let mut s = shared.status.lock().expect("status lock");
            s.outbox_pending = pending;
            s.outbox_dead = depth.dead;
        }
        if let Some(pause) = pause {
            // New or requeued items end a backoff early (one try; the backoff keeps growing
            // while the chain stays unavailable).
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                _ = shared.outbox.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
            continue;
        }
        // In-flight txs are checked often; an idle outbox waits for new items.
        let poll = if shared.outbox.is_empty().unwrap_or(true) {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(300)
        };
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = shared.outbox.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Reports local job progress to the chain, once the job's audit record is on chain (the
/// chain routes a job only while it is SCHEDULED, so status must not overtake it).
async fn report_jobs(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        for mut job in shared.store.local_jobs()? {
            if let Some(record_id) = job.reported.strip_prefix("after:") {
                match shared.gateway.client.hpc_audit_exists(record_id).await {
                    Ok(true) => job.reported.clear(),
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
                });
                match shared
                    .gateway
                    .send_and_wait(vec![msg], Duration::from_secs(60))
                    .await
                {
                    Ok(_) => {}
                    // hpc 7: the chain is already past this state (reported before a crash, or cancelled).
                    Err(hpc_client::ClientError::TxFailed {
                        code: 7, codespace, ..
                    }) if codespace == "hpc" => {}
                    Err(e) if e.to_string().contains("(codespace hpc, code 7)") => {}
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

/// Seed 002: probe every interval; `failure_threshold` consecutive failures → unhealthy.
/// Heartbeats carry the free nodes, queue depth and health to the chain.
async fn monitor_health(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let health = &shared.config.health;
    let probe = Duration::from_secs(health.probe_interval_seconds.max(1));
    let heartbeat_every = Duration::from_secs(health.heartbeat_interval_seconds.max(1));
    let mut failures = 0u32;
    let mut last_heartbeat: Option<Instant> = None;
    loop {
        let status = shared.scheduler.status().await;
        let ok = matches!(&status, Ok(s) if s.reachable && s.healthy);
        failures = if ok { 0 } else { failures + 1 };
        let healthy = failures < health.failure_threshold.max(1);
        {
            let mut s = shared.status.lock().expect("status lock");
            s.cluster_healthy = healthy;
            s.consecutive_probe_failures = failures;
        }
        if last_heartbeat.is_none_or(|t| t.elapsed() >= heartbeat_every) {
            if let Err(e) = heartbeat(&shared, status.ok(), healthy, failures).await {
                shared.note_error(format!("heartbeat: {e}"));
            } else {
                last_heartbeat = Some(Instant::now());
            }
        }
        if stopped(&mut stop, probe).await {
            return Ok(());
        }
    }
}

async fn heartbeat(
    shared: &Shared,
    status: Option<hpc_local_scheduler::ClusterStatus>,
    healthy: bool,
    failures: u32,
) -> anyhow::Result<()> {
    let cluster_id = &shared.config.hpc.cluster_id;
    // Keep the network metrics the provider registered; report what the scheduler knows.
    let current = shared
        .gateway
        .client
        .transport
        .query::<_, hpc_proto::virtengine::hpc::v1::QueryClusterResponse>(
            "/virtengine.hpc.v1.Query/Cluster",
            &hpc_proto::virtengine::hpc::v1::QueryClusterRequest {
                cluster_id: cluster_id.clone(),
            },
            0,
        )
        .await?
        .cluster
        .ok_or_else(|| {
            anyhow!(
                "cluster {cluster_id} is not registered on chain (hpcd tx hpc register-cluster)"
            )
        })?;
    let health = match (healthy, failures) {
        (false, _) => ClusterHealth::Unhealthy,
        (true, 0) => ClusterHealth::Healthy,
        (true, _) => ClusterHealth::Degraded,
    };
    let (state, free, queue) = match &status {
        Some(s) if s.reachable => (
            ClusterState::Active,
            s.free_nodes.min(current.total_nodes),
            s.queue_depth,
        ),
        _ => (ClusterState::Offline, 0, current.queue_depth),
    };
    let msg = to_any(&MsgUpdateClusterStatus {
        provider: shared.gateway.provider.to_string(),
        cluster_id: cluster_id.clone(),
        state: state as i32,
        available_nodes: free,
        queue_depth: queue,
        latency_ms: current.latency_ms,
        jitter_ms: current.jitter_ms,
        packet_loss_bps: current.packet_loss_bps,
        health: health as i32,
        price_per_node_hour: None,
        total_nodes: None,
    });
    shared.gateway.send(vec![msg]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reschedule_reasons_carry_their_kind() {
        for kind in [
            RequestKind::Refresh,
            RequestKind::Fallback,
            RequestKind::Missing,
        ] {
            assert_eq!(
                kind_of_reason(&reason_with_kind(kind, "cluster_unavailable: down")),
                Some(kind)
            );
        }
        assert_eq!(kind_of_reason("owner asked"), None);
    }
}
