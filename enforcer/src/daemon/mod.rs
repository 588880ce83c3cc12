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
//! - the local scheduler is scanned for jobs placed around the enforcer (placement
//!   mismatches become violations on chain);
//! - metrics and the admin API are served on their own listeners.

mod attempt;
mod deliver;
mod follow;
mod health;
mod report;
mod scan;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use hpc_client::events::{BlockEvents, BlockFollower, ChainHead as FollowerHead};
use hpc_client::keys::{EnvOrPrompt, Keyring};
use hpc_client::tx::{GasSetting, TxOptions};
use hpc_client::{ChainClient, Transport};
use hpc_local_scheduler::{
    EmbeddedConfig, EmbeddedScheduler, JobSpec, LocalJobId, LocalJobState, LocalScheduler,
    SlurmConfig, SlurmScheduler,
};
use hpc_outbox::{Backoff, Deliverer, DelivererConfig, DeliveryObserver, Outbox, OutboxItem};
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::{
    ClusterHealth, ClusterState, Job, JobState, MsgReportJobStatus, MsgRequestReschedule,
    MsgUpdateClusterStatus, Params, SchedulingDecision,
};

use crate::audit_log::{AuditEntry, AuditLog};
use crate::chain::ChainGateway;
use crate::config::{Config, KeyringBackend, SchedulerAdapter, StartHeight};
use crate::decision::{
    self, evaluate, Attempt, ChainHead, ChainRoutingParams, ClusterStatus, EvaluationInput,
    LookupStatus, Outcome, Placement, ProviderIdentity,
};
use crate::metrics::{Metrics, OutcomeLabel, TypeLabel};
use crate::store::{EnforcerStore, LocalJob};
use attempt::handle_attempt;

/// Jobs handled at the same time (attempts, status reports): each waits mostly on queries,
/// the local scheduler, fsyncs and blocks, so one at a time left a busy provider far
/// behind the chain.
const CONCURRENT_JOBS: usize = 32;

/// How long a tx sent directly (a reschedule request, job status reports) may take to be
/// committed before its sending counts as failed.
const TX_INCLUSION_WAIT: Duration = Duration::from_secs(60);
use deliver::deliver;
use follow::follow_blocks;
use health::monitor_health;
use report::report_jobs;
use scan::scan_local_jobs;

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
    /// The cluster's state on chain at the last heartbeat (`CLUSTER_STATE_DRAINING`, ...).
    pub chain_cluster_state: String,
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
    /// Nodes of attempts evaluated to run here whose local submission has not started:
    /// attempts run concurrently, and each must see the nodes the others already took.
    promised: Mutex<Promised>,
    /// Serialises reading the free nodes with promising them.
    capacity_gate: tokio::sync::Mutex<()>,
    /// Jobs cancelled or rescheduled on chain (on any provider) since the report loop last
    /// looked: the local ones among them have their state on chain read first.
    changed_on_chain: Mutex<BTreeSet<String>>,
}

#[derive(Clone, Copy, Default)]
struct Promised {
    nodes: u32,
    /// Promises given back so far: a reading of the local scheduler is consistent with
    /// `nodes` only if none was given back while it was taken.
    releases: u64,
}

/// Nodes promised to one attempt, given back when it is dropped (just as the local
/// scheduler starts counting the job's nodes itself).
pub(super) struct NodePromise<'a> {
    shared: &'a Shared,
    nodes: u32,
}

impl<'a> NodePromise<'a> {
    fn new(shared: &'a Shared, nodes: u32) -> Self {
        let mut promised = shared.promised.lock().expect("promised nodes lock");
        promised.nodes = promised.nodes.saturating_add(nodes);
        Self { shared, nodes }
    }
}

impl Drop for NodePromise<'_> {
    fn drop(&mut self) {
        let mut promised = self.shared.promised.lock().expect("promised nodes lock");
        promised.nodes = promised.nodes.saturating_sub(self.nodes);
        promised.releases += 1;
    }
}

impl Shared {
    /// Jobs whose state on chain the report loop should read at its next round.
    fn note_changed_on_chain(&self, job_ids: impl IntoIterator<Item = String>) {
        self.changed_on_chain
            .lock()
            .expect("changed jobs lock")
            .extend(job_ids);
    }

    /// The jobs noted since the last call.
    fn take_changed_on_chain(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.changed_on_chain.lock().expect("changed jobs lock"))
    }

    fn note_error(&self, e: impl std::fmt::Display) {
        let msg = format!("{}: {e}", rfc3339_now());
        tracing::warn!("{msg}");
        let mut s = self.status.lock().expect("status lock");
        s.last_errors.push(msg);
        let excess = s.last_errors.len().saturating_sub(10);
        s.last_errors.drain(..excess);
    }

    /// The node answered with its head: reachable, and the head `status` reports.
    fn note_head(&self, head: FollowerHead) {
        let mut s = self.status.lock().expect("status lock");
        s.chain_reachable = true;
        s.head_height = head.height;
        s.head_time_seconds = head.time_seconds;
    }

    fn note_unreachable(&self) {
        self.status.lock().expect("status lock").chain_reachable = false;
    }

    fn identity(&self) -> ProviderIdentity {
        ProviderIdentity {
            address: self.gateway.provider.to_string(),
            cluster_ids: BTreeSet::from([self.config.hpc.cluster_id.clone()]),
        }
    }

    /// The local cluster as the health monitor and the scheduler see it.
    /// A cluster DRAINING or OFFLINE on chain takes no new jobs, whatever its scheduler says.
    pub async fn cluster_status(&self) -> ClusterStatus {
        let (healthy, chain_state) = {
            let s = self.status.lock().expect("status lock");
            (s.cluster_healthy, s.chain_cluster_state.clone())
        };
        let closed_on_chain = chain_state == ClusterState::Draining.as_str_name()
            || chain_state == ClusterState::Offline.as_str_name();
        match self.scheduler.status().await {
            Ok(s) => ClusterStatus {
                available: s.reachable && !closed_on_chain,
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
        let job = self.gateway.client.hpc_job(job_id).await;
        let found = self.lookup_decision(job, decision_id).await;
        let status = self.cluster_status().await;
        self.evaluate_found(job_id, found, placement, head, status)
    }

    /// Evaluates a decision attempt on a job already looked up; when it is to run here, its
    /// nodes stay promised until the returned promise is dropped, so attempts handled at
    /// the same time never count the same free nodes twice.
    pub(super) async fn evaluate_attempt(
        &self,
        job: Job,
        decision_id: &str,
        head: Option<ChainHead>,
    ) -> (decision::Evaluation, NodePromise<'_>) {
        let (job_id, nodes) = (
            job.job_id.clone(),
            job.requirements.as_ref().map_or(0, |r| r.nodes),
        );
        let found = self.lookup_decision(Ok(Some(job)), Some(decision_id)).await;
        let _gate = self.capacity_gate.lock().await;
        let promised = || *self.promised.lock().expect("promised nodes lock");
        let status = loop {
            // A promise given back while the scheduler was read may be counted by neither.
            let before = promised();
            let status = self.cluster_status().await;
            let after = promised();
            if after.releases == before.releases {
                break ClusterStatus {
                    free_nodes: status.free_nodes.saturating_sub(after.nodes),
                    ..status
                };
            }
        };
        let eval = self.evaluate_found(&job_id, found, Placement::FollowDecision, head, status);
        let nodes = if matches!(eval.outcome, Outcome::Run { .. }) {
            nodes
        } else {
            0
        };
        (eval, NodePromise::new(self, nodes))
    }

    /// The job lookup's outcome and, for a job found, its decision (`decision_id`, else the
    /// job's current one).
    async fn lookup_decision(
        &self,
        job: Result<Option<Job>, hpc_client::ClientError>,
        decision_id: Option<&str>,
    ) -> (Option<Job>, Option<SchedulingDecision>, LookupStatus) {
        match job {
            Err(e) => (None, None, LookupStatus::Failed(e.to_string())),
            Ok(None) => (None, None, LookupStatus::Missing),
            Ok(Some(job)) => {
                let id = decision_id
                    .map(str::to_string)
                    .unwrap_or_else(|| job.current_decision_id.clone());
                match self.gateway.client.hpc_decision(&id).await {
                    Err(e) => (Some(job), None, LookupStatus::Failed(e.to_string())),
                    Ok(None) => (Some(job), None, LookupStatus::Missing),
                    Ok(Some(d)) => (Some(job), Some(d), LookupStatus::Found),
                }
            }
        }
    }

    fn evaluate_found(
        &self,
        job_id: &str,
        (job, decision, lookup): (Option<Job>, Option<SchedulingDecision>, LookupStatus),
        placement: Placement,
        head: Option<ChainHead>,
        cluster_status: ClusterStatus,
    ) -> decision::Evaluation {
        // A decision another enforcer requested as a replacement is audited as one: by the
        // kind and requester role the chain recorded, never by its free-text reason.
        let attempt = decision::attempt_of(decision.as_ref());
        let params = *self.params.lock().expect("params lock");
        evaluate(&EvaluationInput {
            job_id: job_id.to_string(),
            job,
            decision,
            lookup,
            head,
            provider: self.identity(),
            cluster_status,
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
    let container_runtime = config.workload.container_runtime();
    Ok(match config.scheduler.adapter {
        SchedulerAdapter::Embedded => {
            let embedded = config.scheduler.embedded.clone().unwrap_or_default();
            Arc::new(
                EmbeddedScheduler::new(EmbeddedConfig {
                    container_runtime,
                    job_nice: embedded.job_nice,
                    ..EmbeddedConfig::new(embedded.nodes, config.jobs_dir())
                })
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
                    scancel: s.scancel_path.clone(),
                    slurm_conf: s.slurm_conf.clone(),
                    command_timeout: Duration::from_secs(s.command_timeout_seconds),
                    container_runtime,
                    ..SlurmConfig::new(config.jobs_dir())
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
        query_height: 0,
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
        promised: Mutex::new(Promised::default()),
        capacity_gate: tokio::sync::Mutex::new(()),
        changed_on_chain: Mutex::new(BTreeSet::new()),
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
    tasks.spawn(scan_local_jobs(shared.clone(), stop_rx.clone()));

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
