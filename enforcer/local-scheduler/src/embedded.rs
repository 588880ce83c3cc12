//! The embedded local scheduler: every job is a local process.
//!
//! * Capacity: the scheduler has `EmbeddedConfig::nodes` nodes; a job occupies
//!   `spec.nodes` of them from submit until its process exits. A submit that does not fit
//!   fails with [`SchedulerError::CapacityExceeded`]; nothing is queued (`queue_depth` is
//!   always 0).
//! * Process: `spec.command` (or `default_command` when empty) is started directly (no
//!   shell) in `workdir`, in its own process group, stdin from `/dev/null`, stdout and
//!   stderr to `<workdir>/<job_id>.log`, with `HPC_JOB_ID`, `HPC_CORRELATION_ID`,
//!   `HPC_NODES` and `HPC_GPUS_PER_NODE` added to the enforcer's environment.
//! * End of a job: exit 0 → `Completed`; non-zero → `Failed { "exit code N" }`; killed by
//!   a signal → `Failed { "killed by signal N" }`; over `max_runtime_seconds` (0 = no
//!   limit) → the process group gets SIGTERM, then SIGKILL after [`KILL_GRACE`], and the
//!   job is `Failed { "max runtime exceeded" }`; [`LocalScheduler::cancel`] does the same
//!   and the job is `Cancelled`. When the main process ends, whatever it left running in
//!   its process group is killed (as Slurm does).
//!
//! # Restarts
//!
//! The job table is persisted as JSON in `<workdir>/embedded-jobs.json` (written
//! atomically: temp file, fsync, rename) *before* a job's process is started and after
//! every state change. A scheduler opened on the same work directory after an enforcer
//! restart therefore:
//!
//! * reports `Completed` / `Failed` / `Cancelled` for jobs that finished before;
//! * reports `Unknown` for jobs that were pending or running (their processes are no
//!   longer supervised: they may still be running as orphans or may have died with the
//!   enforcer), does not count their nodes as occupied, and refuses to cancel them;
//! * keeps idempotency: submitting a job id that is in the index returns the existing
//!   handle and never starts the job again, whatever its state.
//!
//! Job processes are not killed when the enforcer stops. The index is never pruned
//! (one small record per job). Use one scheduler per work directory: two live
//! schedulers on the same directory would overwrite each other's index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::sync::{watch, Notify};

use crate::command::spawn_error;
use crate::{ClusterStatus, JobSpec, LocalJobId, LocalJobState, LocalScheduler, SchedulerError};

/// File name of the persisted job index inside the work directory.
pub const INDEX_FILE: &str = "embedded-jobs.json";

/// Time between SIGTERM and SIGKILL when a job is cancelled or runs out of time.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Reason of a job killed for running longer than `max_runtime_seconds`.
pub const MAX_RUNTIME_EXCEEDED: &str = "max runtime exceeded";

const INDEX_VERSION: u32 = 1;

/// Configuration of the [`EmbeddedScheduler`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedConfig {
    /// Node capacity of this "cluster" (at least 1).
    pub nodes: u32,
    /// Directory for job logs and the job index (created if missing).
    pub workdir: PathBuf,
    /// Command of jobs whose `spec.command` is empty (must not be empty).
    pub default_command: Vec<String>,
}

impl EmbeddedConfig {
    /// `nodes` nodes, `workdir`, default command `sh -c "sleep 1"`.
    pub fn new(nodes: u32, workdir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            nodes,
            workdir: workdir.into(),
            default_command: vec!["sh".into(), "-c".into(), "sleep 1".into()],
        }
    }
}

/// Runs jobs as local processes; see the [module documentation](self).
#[derive(Clone)]
pub struct EmbeddedScheduler {
    inner: Arc<Inner>,
}

struct Inner {
    config: EmbeddedConfig,
    index_path: PathBuf,
    jobs: Mutex<BTreeMap<String, Entry>>,
    /// Serialises index writes; the snapshot is taken while holding it, so the last
    /// write always carries the newest table.
    persist_lock: tokio::sync::Mutex<()>,
}

struct Entry {
    record: JobRecord,
    /// Present while a supervisor task owns the job's process.
    control: Option<Control>,
}

struct Control {
    cancel: Arc<Notify>,
    done: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobRecord {
    job_id: String,
    correlation_id: String,
    nodes: u32,
    state: LocalJobState,
    pid: Option<u32>,
    log: PathBuf,
    submitted_at_ms: u64,
    finished_at_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    jobs: Vec<JobRecord>,
}

impl EmbeddedScheduler {
    /// Open the scheduler on `config.workdir` (created if missing), loading the job index
    /// left by a previous run. Jobs that were pending or running become `Unknown`.
    pub fn new(config: EmbeddedConfig) -> Result<Self, SchedulerError> {
        if config.nodes == 0 {
            return Err(SchedulerError::InvalidConfig {
                field: "nodes",
                reason: "must be at least 1".into(),
            });
        }
        if config.default_command.is_empty() || config.default_command[0].is_empty() {
            return Err(SchedulerError::InvalidConfig {
                field: "default_command",
                reason: "must name a program".into(),
            });
        }
        std::fs::create_dir_all(&config.workdir).map_err(|e| {
            SchedulerError::io(
                format!("cannot create work directory {}", config.workdir.display()),
                e,
            )
        })?;
        let index_path = config.workdir.join(INDEX_FILE);
        let mut jobs = BTreeMap::new();
        let mut orphaned = 0usize;
        match std::fs::read(&index_path) {
            Ok(bytes) => {
                let index: IndexFile = serde_json::from_slice(&bytes).map_err(|e| {
                    SchedulerError::io(
                        format!("corrupt job index {}", index_path.display()),
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    )
                })?;
                for mut record in index.jobs {
                    if record.state.is_active() {
                        tracing::warn!(
                            job_id = %record.job_id,
                            pid = ?record.pid,
                            "embedded job was {} when the scheduler stopped; its state is now unknown",
                            record.state
                        );
                        record.state = LocalJobState::Unknown;
                        orphaned += 1;
                    }
                    jobs.insert(
                        record.job_id.clone(),
                        Entry {
                            record,
                            control: None,
                        },
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SchedulerError::io(
                    format!("cannot read job index {}", index_path.display()),
                    e,
                ))
            }
        }
        let inner = Inner {
            config,
            index_path,
            jobs: Mutex::new(jobs),
            persist_lock: tokio::sync::Mutex::new(()),
        };
        if orphaned > 0 {
            write_index_sync(&inner.index_path, &inner.snapshot()?)?;
        }
        Ok(EmbeddedScheduler {
            inner: Arc::new(inner),
        })
    }

    pub fn config(&self) -> &EmbeddedConfig {
        &self.inner.config
    }

    /// Where the output of a job goes (`<workdir>/<job_id>.log`).
    pub fn log_path(&self, id: &LocalJobId) -> PathBuf {
        self.inner.log_path(id.as_str())
    }

    /// Start a reserved job (called with the reservation persisted). Returns `None` if
    /// the job was cancelled before it could start.
    fn start(&self, spec: &JobSpec) -> Result<Option<Started>, SchedulerError> {
        let inner = &self.inner;
        let mut jobs = inner.lock();
        let Some(entry) = jobs.get_mut(&spec.job_id) else {
            return Ok(None);
        };
        if entry.record.state != LocalJobState::Pending || entry.control.is_some() {
            return Ok(None);
        }
        let command = if spec.command.is_empty() {
            &inner.config.default_command
        } else {
            &spec.command
        };
        let log_path = inner.log_path(&spec.job_id);
        let log = std::fs::File::create(&log_path).map_err(|e| {
            SchedulerError::io(format!("cannot create job log {}", log_path.display()), e)
        })?;
        let log_err = log.try_clone().map_err(|e| {
            SchedulerError::io(format!("cannot open job log {}", log_path.display()), e)
        })?;
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..])
            .current_dir(&inner.config.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .env("HPC_JOB_ID", &spec.job_id)
            .env("HPC_CORRELATION_ID", &spec.correlation_id)
            .env("HPC_NODES", spec.nodes.to_string())
            .env("HPC_GPUS_PER_NODE", spec.gpus_per_node.to_string())
            // Own process group, so cancel / timeout reach the job's children too.
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd
            .spawn()
            .map_err(|e| spawn_error(Path::new(&command[0]), e))?;
        let cancel = Arc::new(Notify::new());
        let (done_tx, done_rx) = watch::channel(false);
        entry.record.state = LocalJobState::Running;
        entry.record.pid = child.id();
        entry.control = Some(Control {
            cancel: cancel.clone(),
            done: done_rx,
        });
        tracing::info!(
            job_id = %spec.job_id,
            correlation_id = %spec.correlation_id,
            pid = ?entry.record.pid,
            nodes = spec.nodes,
            "embedded job started"
        );
        Ok(Some(Started {
            child,
            cancel,
            done: done_tx,
        }))
    }
}

struct Started {
    child: Child,
    cancel: Arc<Notify>,
    done: watch::Sender<bool>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log_path(&self, job_id: &str) -> PathBuf {
        self.config.workdir.join(format!("{job_id}.log"))
    }

    fn snapshot(&self) -> Result<Vec<u8>, SchedulerError> {
        let jobs = self.lock();
        let index = IndexFile {
            version: INDEX_VERSION,
            jobs: jobs.values().map(|e| e.record.clone()).collect(),
        };
        serde_json::to_vec_pretty(&index).map_err(|e| {
            SchedulerError::io(
                "cannot encode job index",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Write the current table to the index file (atomically).
    async fn persist(&self) -> Result<(), SchedulerError> {
        let _guard = self.persist_lock.lock().await;
        let bytes = self.snapshot()?;
        let tmp = self.index_path.with_extension("json.tmp");
        let ctx = |what: &str| format!("cannot {what} job index {}", self.index_path.display());
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| SchedulerError::io(ctx("write"), e))?;
        tokio::fs::File::open(&tmp)
            .await
            .map_err(|e| SchedulerError::io(ctx("reopen"), e))?
            .sync_all()
            .await
            .map_err(|e| SchedulerError::io(ctx("sync"), e))?;
        tokio::fs::rename(&tmp, &self.index_path)
            .await
            .map_err(|e| SchedulerError::io(ctx("replace"), e))
    }

    async fn persist_or_warn(&self, job_id: &str) {
        if let Err(e) = self.persist().await {
            tracing::warn!(%job_id, error = %e, "cannot persist embedded job index");
        }
    }
}

fn write_index_sync(path: &Path, bytes: &[u8]) -> Result<(), SchedulerError> {
    let ctx = |what: &str| format!("cannot {what} job index {}", path.display());
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| SchedulerError::io(ctx("write"), e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| SchedulerError::io(ctx("sync"), e))?;
    std::fs::rename(&tmp, path).map_err(|e| SchedulerError::io(ctx("replace"), e))
}

fn used_nodes(jobs: &BTreeMap<String, Entry>) -> u32 {
    jobs.values()
        .filter(|e| e.record.state.is_active())
        .map(|e| e.record.nodes)
        .fold(0u32, u32::saturating_add)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn state_from_exit(status: ExitStatus) -> LocalJobState {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        LocalJobState::Completed
    } else if let Some(code) = status.code() {
        LocalJobState::Failed {
            reason: format!("exit code {code}"),
        }
    } else if let Some(sig) = status.signal() {
        LocalJobState::Failed {
            reason: format!("killed by signal {sig}"),
        }
    } else {
        LocalJobState::Failed {
            reason: "unknown exit status".into(),
        }
    }
}

/// Send `sig` to the process group led by `pid`.
fn signal_group(pid: Option<u32>, sig: libc::c_int) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    // Never signal pid 0 / 1 groups or "every process" (-1).
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; the group id is the pid of a
    // child we spawned with process_group(0) and have not reaped yet (or just reaped).
    #[allow(unsafe_code)] // process control through libc, see SAFETY
    unsafe {
        libc::kill(-pid, sig);
    }
}

/// SIGTERM the job's process group, SIGKILL it after [`KILL_GRACE`], reap the leader.
async fn terminate(pid: Option<u32>, child: &mut Child) {
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

enum Ended {
    Exited(std::io::Result<ExitStatus>),
    Cancelled,
    TimedOut,
}

/// Owns a job's process until it ends, then records the final state.
async fn supervise(inner: Arc<Inner>, job_id: String, limit: Option<Duration>, started: Started) {
    let Started {
        mut child,
        cancel,
        done,
    } = started;
    let pid = child.id();
    let ended = tokio::select! {
        r = child.wait() => Ended::Exited(r),
        _ = cancel.notified() => Ended::Cancelled,
        _ = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        } => Ended::TimedOut,
    };
    let state = match ended {
        Ended::Exited(Ok(status)) => state_from_exit(status),
        Ended::Exited(Err(e)) => LocalJobState::Failed {
            reason: format!("cannot wait for the job process: {e}"),
        },
        ended => match child.try_wait() {
            // The process ended on its own at the same moment: report what it did.
            Ok(Some(status)) => state_from_exit(status),
            _ => {
                terminate(pid, &mut child).await;
                if matches!(ended, Ended::Cancelled) {
                    LocalJobState::Cancelled
                } else {
                    LocalJobState::Failed {
                        reason: MAX_RUNTIME_EXCEEDED.into(),
                    }
                }
            }
        },
    };
    // Whatever the job left behind in its process group goes with it.
    signal_group(pid, libc::SIGKILL);
    tracing::info!(%job_id, state = %state, "embedded job ended");
    {
        let mut jobs = inner.lock();
        if let Some(entry) = jobs.get_mut(&job_id) {
            entry.record.state = state;
            entry.record.finished_at_ms = Some(now_ms());
            entry.control = None;
        }
    }
    inner.persist_or_warn(&job_id).await;
    done.send_replace(true);
}

#[async_trait::async_trait]
impl LocalScheduler for EmbeddedScheduler {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn status(&self) -> Result<ClusterStatus, SchedulerError> {
        let total = self.inner.config.nodes;
        let (used, running) = {
            let jobs = self.inner.lock();
            let running = jobs.values().filter(|e| e.record.state.is_active()).count();
            (used_nodes(&jobs), running)
        };
        let free = total.saturating_sub(used);
        let workdir = &self.inner.config.workdir;
        let workdir_ok = tokio::fs::metadata(workdir)
            .await
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let mut detail = format!("embedded: {free}/{total} nodes free, {running} job(s) running");
        if !workdir_ok {
            detail.push_str(&format!(
                "; work directory {} is missing",
                workdir.display()
            ));
        }
        Ok(ClusterStatus {
            reachable: true,
            total_nodes: total,
            free_nodes: free,
            queue_depth: 0,
            healthy: workdir_ok,
            detail,
        })
    }

    async fn submit(&self, spec: &JobSpec) -> Result<LocalJobId, SchedulerError> {
        spec.validate()?;
        let id = LocalJobId::new(&spec.job_id);
        // 1. Reserve the nodes (or return the existing handle).
        {
            let mut jobs = self.inner.lock();
            if jobs.contains_key(&spec.job_id) {
                tracing::debug!(job_id = %spec.job_id, "embedded job already submitted");
                return Ok(id);
            }
            let total = self.inner.config.nodes;
            let free = total.saturating_sub(used_nodes(&jobs));
            if spec.nodes > free {
                return Err(SchedulerError::CapacityExceeded {
                    requested: spec.nodes,
                    free,
                    total,
                });
            }
            jobs.insert(
                spec.job_id.clone(),
                Entry {
                    record: JobRecord {
                        job_id: spec.job_id.clone(),
                        correlation_id: spec.correlation_id.clone(),
                        nodes: spec.nodes,
                        state: LocalJobState::Pending,
                        pid: None,
                        log: self.inner.log_path(&spec.job_id),
                        submitted_at_ms: now_ms(),
                        finished_at_ms: None,
                    },
                    control: None,
                },
            );
        }
        // 2. Make the reservation durable before anything runs, so that a restarted
        //    enforcer can never start the job a second time.
        if let Err(e) = self.inner.persist().await {
            self.inner.lock().remove(&spec.job_id);
            return Err(e);
        }
        // 3. Start the process and hand it to a supervisor task.
        match self.start(spec) {
            Ok(Some(started)) => {
                let limit = (spec.max_runtime_seconds > 0)
                    .then(|| Duration::from_secs(spec.max_runtime_seconds));
                tokio::spawn(supervise(
                    self.inner.clone(),
                    spec.job_id.clone(),
                    limit,
                    started,
                ));
                self.inner.persist_or_warn(&spec.job_id).await;
                Ok(id)
            }
            // Cancelled between reservation and start: nothing ran.
            Ok(None) => Ok(id),
            Err(e) => {
                // Nothing ran: forget the reservation so a later submit may retry.
                self.inner.lock().remove(&spec.job_id);
                self.inner.persist_or_warn(&spec.job_id).await;
                Err(e)
            }
        }
    }

    async fn job_state(&self, id: &LocalJobId) -> Result<LocalJobState, SchedulerError> {
        self.inner
            .lock()
            .get(id.as_str())
            .map(|e| e.record.state.clone())
            .ok_or_else(|| SchedulerError::JobNotFound { id: id.0.clone() })
    }

    async fn cancel(&self, id: &LocalJobId) -> Result<(), SchedulerError> {
        let running = {
            let mut jobs = self.inner.lock();
            let entry = jobs
                .get_mut(id.as_str())
                .ok_or_else(|| SchedulerError::JobNotFound { id: id.0.clone() })?;
            if entry.record.state.is_terminal() {
                return Ok(());
            }
            if entry.record.state == LocalJobState::Unknown {
                return Err(SchedulerError::NotCancellable {
                    id: id.0.clone(),
                    reason:
                        "it was running when the enforcer restarted and is no longer supervised"
                            .into(),
                });
            }
            match &entry.control {
                Some(control) => {
                    control.cancel.notify_one();
                    Some(control.done.clone())
                }
                None => {
                    // Reserved but not started yet: it never will be.
                    entry.record.state = LocalJobState::Cancelled;
                    entry.record.finished_at_ms = Some(now_ms());
                    None
                }
            }
        };
        match running {
            // Wait until the supervisor has killed the process and recorded the state.
            // An error means the supervisor is gone, which only happens after it
            // finished.
            Some(mut done) => {
                let _ = done.wait_for(|finished| *finished).await;
            }
            None => self.inner.persist_or_warn(id.as_str()).await,
        }
        Ok(())
    }
}
