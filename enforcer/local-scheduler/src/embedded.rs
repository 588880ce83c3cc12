//! The embedded local scheduler: every job is a local process.
//!
//! * Capacity: the scheduler has `EmbeddedConfig::nodes` nodes; a job occupies
//!   `spec.nodes` of them from submit until it ends. A submit that does not fit fails
//!   with [`SchedulerError::CapacityExceeded`]; nothing is queued (`queue_depth` is
//!   always 0).
//! * Process: the job directory `<workdir>/jobs/<job_id>/` is prepared as described in
//!   [`crate::jobdir`] and its wrapper is started detached (`/bin/sh <dir>/run.sh`): in
//!   a session of its own (`setsid`), niceness raised by `EmbeddedConfig::job_nice`
//!   (default 10: on a full machine the workloads wait, not the enforcer routing and
//!   reporting the next jobs), cwd = the job directory, stdin from `/dev/null`,
//!   its own stdout/stderr to `run.log`, and an environment holding only `PATH`, `HOME`
//!   and `LANG` from the enforcer's (which may hold key material that must not reach
//!   tenant jobs). A session rather than a process group because `timeout` moves the
//!   workload into a process group of its own: the session holds every process of the
//!   job (unless one calls `setsid` itself).
//! * Container workloads need `EmbeddedConfig::container_runtime`; without it they are
//!   refused (`InvalidSpec { field: "workload.container" }`).
//! * End of a job: the outcome the wrapper recorded in `exit_code` (exit 0 →
//!   `Completed`, N → `Failed { exit_code: Some(N) }`, time limit → `Failed { "time
//!   limit of N s exceeded" }`). The time limit is enforced by the wrapper, so it holds
//!   while the enforcer is down. Whatever the job left running in its session is killed
//!   when the wrapper ends (as Slurm does).
//! * [`LocalScheduler::cancel`]: SIGTERM to every process of the job's session, SIGKILL
//!   to those still alive after [`KILL_GRACE`]; the job is `Cancelled` once they are
//!   gone.
//!
//! # Restarts
//!
//! The job table is persisted *before* a job's process is started and after every state
//! change, as a JSON snapshot `<workdir>/embedded-jobs.json` plus an append-only journal
//! of the changes since (`embedded-jobs.<G>.journal`, see the `journal` module: a change
//! costs one appended line, not a rewrite of every job ever run); it records the
//! wrapper's pid and process group (= session) id. The job directory is
//! `<workdir>/jobs/<job_id>`, derived rather than stored. A scheduler opened on the same
//! work directory (which needs a Tokio runtime when jobs were running):
//!
//! * reports `Completed` / `Failed` / `Cancelled` for jobs that finished before;
//! * re-attaches to jobs that were running: if the recorded pid is still the job's
//!   wrapper (`/proc/<pid>/cmdline` names its `run.sh`) the job is `Running`, counts
//!   against capacity, can be cancelled, and is watched every [`POLL_INTERVAL`] until the
//!   wrapper ends; else the job's `exit_code` gives its outcome; else it is
//!   `Failed { "process lost while the enforcer was down" }`. The wrapper is checked
//!   first: a running workload could write an `exit_code` file itself;
//! * keeps idempotency: submitting a job id that is in the index returns the existing
//!   handle and never starts the job again, whatever its state.
//!
//! Job processes are not killed when the enforcer stops. The index is never pruned
//! (one small record per job). Use one scheduler per work directory: two live
//! schedulers on the same directory would write over each other's index.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::sync::{watch, Notify};

use crate::command::{describe_status, spawn_error};
use crate::jobdir::{self, WRAPPER_FILE};
use crate::journal::{corrupt, Journal};
use crate::{
    ClusterStatus, JobSpec, LocalJobId, LocalJobInfo, LocalJobState, LocalScheduler, SchedulerError,
};

/// File name of the persisted job index inside the work directory.
pub const INDEX_FILE: &str = "embedded-jobs.json";

/// Directory of the job directories inside the work directory.
pub const JOBS_DIR: &str = "jobs";

/// Time between SIGTERM and SIGKILL when a job is cancelled.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How often a re-attached job's wrapper is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How often a signalled job's processes are checked.
const SESSION_POLL: Duration = Duration::from_millis(50);

/// How long processes may take to die of SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Reason of a job whose process ended, without an exit status, while no scheduler
/// watched it.
pub const PROCESS_LOST: &str = "process lost while the enforcer was down";

/// The only variables of the enforcer's environment a job's wrapper gets.
const INHERITED_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

/// Version 1 (before job directories) is still read: its running jobs come back as lost.
/// Version 3 added the journal (a version-2 reader would not read it: refused there).
const INDEX_VERSION: u32 = 3;

/// Configuration of the [`EmbeddedScheduler`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedConfig {
    /// Node capacity of this "cluster" (at least 1).
    pub nodes: u32,
    /// Directory for the job index and the job directories (created if missing).
    pub workdir: PathBuf,
    /// Command that runs a container image, e.g. `["docker", "run", "--rm"]` (the
    /// image and its command are appended, after `--env NAME=VALUE` pairs). `None`:
    /// container workloads are refused.
    #[serde(default)]
    pub container_runtime: Option<Vec<String>>,
    /// Added to the enforcer's own niceness for every job (0–19; the result is capped at
    /// 19). Jobs then yield the CPU to the enforcer and the node beside it, so a busy
    /// machine delays the workloads rather than the routing and reports of the next ones.
    #[serde(default = "default_job_nice")]
    pub job_nice: u8,
}

/// Default [`EmbeddedConfig::job_nice`].
pub const DEFAULT_JOB_NICE: u8 = 10;

/// The largest [`EmbeddedConfig::job_nice`]: the largest niceness Linux knows.
pub const MAX_JOB_NICE: u8 = 19;

fn default_job_nice() -> u8 {
    DEFAULT_JOB_NICE
}

impl EmbeddedConfig {
    /// `nodes` nodes in `workdir`, no container runtime.
    pub fn new(nodes: u32, workdir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            nodes,
            workdir: workdir.into(),
            container_runtime: None,
            job_nice: DEFAULT_JOB_NICE,
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
    /// Absolute `<workdir>/jobs`.
    jobs_dir: PathBuf,
    jobs: Mutex<Table>,
    /// The table on disk; held (by the writer) while a group of changes is written.
    journal: Arc<Mutex<Journal>>,
    /// How many of the counted changes are on disk; held while a group is written, so a
    /// group written later always carries newer records.
    persisted: tokio::sync::Mutex<u64>,
    /// Jobs changed since the last write: a write covers every change made before it
    /// took them, so callers waiting behind one write share the next (one `fdatasync` per
    /// group, not per job).
    dirty: Mutex<Dirty>,
}

/// Every job this scheduler knows, and which of them may still hold nodes: capacity is
/// read at every submit, and summing over every job ever run made each submit slower
/// than the last.
#[derive(Default)]
struct Table {
    entries: BTreeMap<String, Entry>,
    /// A superset of the active jobs: a job enters it when added active, and leaves it
    /// when a reading finds it ended (a job never becomes active again).
    maybe_active: BTreeSet<String>,
}

impl Table {
    fn insert(&mut self, entry: Entry) {
        let job_id = entry.record.job_id.clone();
        if entry.record.state.is_active() {
            self.maybe_active.insert(job_id.clone());
        }
        self.entries.insert(job_id, entry);
    }

    fn remove(&mut self, job_id: &str) {
        self.entries.remove(job_id);
        self.maybe_active.remove(job_id);
    }

    fn get_mut(&mut self, job_id: &str) -> Option<&mut Entry> {
        self.entries.get_mut(job_id)
    }

    /// The nodes the active jobs hold, and how many jobs they are.
    fn usage(&mut self) -> (u32, usize) {
        let entries = &self.entries;
        self.maybe_active
            .retain(|id| entries.get(id).is_some_and(|e| e.record.state.is_active()));
        let nodes = self
            .maybe_active
            .iter()
            .filter_map(|id| entries.get(id))
            .map(|e| e.record.nodes)
            .fold(0u32, u32::saturating_add);
        (nodes, self.maybe_active.len())
    }
}

impl std::ops::Deref for Table {
    type Target = BTreeMap<String, Entry>;

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

#[derive(Default)]
struct Dirty {
    jobs: BTreeSet<String>,
    /// Changes counted so far.
    changes: u64,
}

/// One journaled change of the table: a job's record, or `None` when the job was forgotten
/// (its start failed before anything ran).
#[derive(Serialize, Deserialize)]
struct IndexChange {
    job_id: String,
    record: Option<JobRecord>,
}

struct Entry {
    record: JobRecord,
    /// Present while a supervisor task watches the job's wrapper.
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
    /// The wrapper's pid, once started.
    pid: Option<u32>,
    /// The wrapper's process group (and session) id: equal to `pid`.
    #[serde(default)]
    pgid: Option<u32>,
    submitted_at_ms: u64,
    finished_at_ms: Option<u64>,
}

impl EmbeddedScheduler {
    /// Open the scheduler on `config.workdir` (created if missing), loading the job index
    /// left by a previous run and re-attaching to its running jobs (see the [module
    /// documentation](self)). Must be called within a Tokio runtime when the index holds
    /// running jobs.
    pub fn new(config: EmbeddedConfig) -> Result<Self, SchedulerError> {
        if config.nodes == 0 {
            return Err(SchedulerError::InvalidConfig {
                field: "nodes",
                reason: "must be at least 1".into(),
            });
        }
        if config.job_nice > MAX_JOB_NICE {
            return Err(SchedulerError::InvalidConfig {
                field: "job_nice",
                reason: format!("must be at most {MAX_JOB_NICE}"),
            });
        }
        jobdir::validate_runtime(config.container_runtime.as_deref())?;
        let workdir = jobdir::jobs_root(&config.workdir, "workdir")?;
        let jobs_dir = jobdir::jobs_root(&workdir.join(JOBS_DIR), "workdir")?;
        let (journal, records, mut changed) = load_index(&workdir.join(INDEX_FILE))?;
        let mut jobs = Table::default();
        let mut adopted = Vec::new();
        for mut record in records {
            let mut control = None;
            if record.state.is_active() {
                let dir = jobs_dir.join(&record.job_id);
                match reattach(&mut record, &dir) {
                    Some(wrapper) => {
                        let (c, supervision) = Supervision::new(&record.job_id, dir, wrapper);
                        control = Some(c);
                        adopted.push(supervision);
                    }
                    None => changed = true,
                }
            }
            jobs.insert(Entry { record, control });
        }
        let scheduler = EmbeddedScheduler {
            inner: Arc::new(Inner {
                config,
                jobs_dir,
                jobs: Mutex::new(jobs),
                journal: Arc::new(Mutex::new(journal)),
                persisted: tokio::sync::Mutex::new(0),
                dirty: Mutex::new(Dirty::default()),
            }),
        };
        if changed {
            let all = records_of(&scheduler.inner.lock());
            lock(&scheduler.inner.journal).compact(&all)?;
        }
        if !adopted.is_empty() {
            let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
                SchedulerError::InvalidConfig {
                    field: "runtime",
                    reason: "re-attaching to running jobs needs a Tokio runtime".into(),
                }
            })?;
            for supervision in adopted {
                runtime.spawn(supervise(scheduler.inner.clone(), supervision));
            }
        }
        Ok(scheduler)
    }

    pub fn config(&self) -> &EmbeddedConfig {
        &self.inner.config
    }

    /// Prepare the job directory and start the wrapper of a reserved job (the reservation
    /// is persisted). `None` if the job was cancelled before it could start.
    fn start(&self, spec: &JobSpec) -> Result<Option<Supervision>, SchedulerError> {
        let inner = &self.inner;
        let script = jobdir::script_bytes(spec, inner.config.container_runtime.as_deref())?;
        let dir = inner.jobs_dir.join(&spec.job_id);
        jobdir::prepare(&dir, spec, &script)?;
        let mut jobs = inner.lock();
        let Some(entry) = jobs.get_mut(&spec.job_id) else {
            return Ok(None);
        };
        if entry.record.state != LocalJobState::Pending {
            return Ok(None);
        }
        let child = spawn_wrapper(&dir, job_niceness(inner.config.job_nice)?)?;
        let pid = child.id().ok_or_else(|| {
            SchedulerError::io(
                format!("job {} exited before its pid was read", spec.job_id),
                std::io::Error::other("no pid"),
            )
        })?;
        entry.record.state = LocalJobState::Running;
        entry.record.pid = Some(pid);
        entry.record.pgid = Some(pid);
        tracing::info!(
            job_id = %spec.job_id,
            correlation_id = %spec.correlation_id,
            pid,
            nodes = spec.nodes,
            "embedded job started"
        );
        let wrapper = Wrapper {
            pid,
            run_sh: dir.join(WRAPPER_FILE),
            child: Some(child),
        };
        // Under the lock, so a cancel arriving now finds the control.
        let (control, supervision) = Supervision::new(&spec.job_id, dir, wrapper);
        entry.control = Some(control);
        Ok(Some(supervision))
    }
}

/// Opens the table's journal and returns it with the table it holds (a job's latest
/// record; forgotten jobs left out), and whether a snapshot must be written now.
fn load_index(path: &Path) -> Result<(Journal, Vec<JobRecord>, bool), SchedulerError> {
    let (journal, loaded) = Journal::open::<JobRecord, IndexChange>(path, INDEX_VERSION)?;
    let mut table: BTreeMap<String, JobRecord> = loaded
        .snapshot
        .into_iter()
        .map(|r| (r.job_id.clone(), r))
        .collect();
    for change in loaded.changes {
        match change.record {
            Some(record) if record.job_id == change.job_id => {
                table.insert(change.job_id, record);
            }
            Some(record) => {
                return Err(corrupt(
                    path,
                    format!(
                        "a change of {:?} holds the record of {:?}",
                        change.job_id, record.job_id
                    ),
                ))
            }
            None => {
                table.remove(&change.job_id);
            }
        }
    }
    // Job ids become paths: only well-formed ones are accepted.
    if let Some(bad) = table.keys().find(|id| crate::validate_job_id(id).is_err()) {
        return Err(corrupt(path, format!("invalid job id {bad:?}")));
    }
    Ok((
        journal,
        table.into_values().collect(),
        loaded.needs_snapshot,
    ))
}

/// Decide what became of a job that was active when the previous scheduler stopped.
/// Returns the wrapper to watch when it still runs; otherwise sets the final state.
fn reattach(record: &mut JobRecord, dir: &Path) -> Option<Wrapper> {
    let run_sh = dir.join(WRAPPER_FILE);
    if let Some(pid) = record.pid.filter(|pid| is_wrapper_alive(*pid, &run_sh)) {
        tracing::info!(job_id = %record.job_id, pid, "re-attached to running embedded job");
        record.state = LocalJobState::Running;
        return Some(Wrapper {
            pid,
            run_sh,
            child: None,
        });
    }
    record.state = match jobdir::read_outcome(dir) {
        Ok(Some(state)) => state,
        Ok(None) => LocalJobState::failed(PROCESS_LOST, None),
        Err(e) => LocalJobState::failed(format!("{PROCESS_LOST}; {e}"), None),
    };
    record.finished_at_ms = Some(now_ms());
    tracing::warn!(job_id = %record.job_id, state = %record.state, "embedded job ended while the enforcer was down");
    None
}

/// The niceness of a job started now: the enforcer's own plus `increment`, at most
/// [`MAX_JOB_NICE`]; `None` when it stays the enforcer's. Only ever raised, which needs no
/// privilege: a job can yield the CPU, never take more of it.
fn job_niceness(increment: u8) -> Result<Option<i32>, SchedulerError> {
    if increment == 0 {
        return Ok(None);
    }
    // getpriority(2) may return -1 as a niceness: errno, cleared first, tells. Linux
    // keeps a niceness per thread; the main thread's (who = pid) is the one `renice -p`
    // changes.
    // SAFETY: errno is this thread's; getpriority only reads a niceness.
    #[allow(unsafe_code)] // errno and getpriority through libc, see SAFETY
    let own = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, libc::getpid() as libc::id_t)
    };
    let error = std::io::Error::last_os_error();
    if own == -1 && error.raw_os_error().is_some_and(|e| e != 0) {
        return Err(SchedulerError::io(
            "cannot read the enforcer's niceness",
            error,
        ));
    }
    Ok(Some(
        (own + i32::from(increment)).min(i32::from(MAX_JOB_NICE)),
    ))
}

/// Start `<dir>/run.sh` detached, in its own session, at niceness `nice` (unchanged when
/// `None`), with a scrubbed environment.
fn spawn_wrapper(dir: &Path, nice: Option<i32>) -> Result<Child, SchedulerError> {
    let run_sh = dir.join(WRAPPER_FILE);
    let log = |what: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("run.log"))
            .map_err(|e| {
                SchedulerError::io(format!("cannot open {what} of {}", run_sh.display()), e)
            })
    };
    // Through sh rather than exec'ing the file just written: another thread's fork may
    // still hold it open for writing (ETXTBSY).
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(&run_sh)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(log("stdout")?)
        .stderr(log("stderr")?)
        .kill_on_drop(false);
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2)
    // (async-signal-safe) and setpriority(2) (not on POSIX's list, but a bare system call
    // in glibc and musl: no lock, no allocation); it reads a copied `nice` and touches no
    // other memory of the parent.
    #[allow(unsafe_code)] // new session and niceness through libc, see SAFETY
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(nice) = nice {
                if libc::setpriority(libc::PRIO_PROCESS, 0, nice) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| spawn_error(Path::new("/bin/sh"), e))
}

/// A job's wrapper process: our child, or adopted after a restart (then only its pid).
struct Wrapper {
    pid: u32,
    run_sh: PathBuf,
    child: Option<Child>,
}

impl Wrapper {
    /// Wait until the wrapper has ended; its exit status when it was our child.
    async fn exited(&mut self) -> Option<ExitStatus> {
        if let Some(child) = &mut self.child {
            match child.wait().await {
                Ok(status) => return Some(status),
                // Never take a failed wait for the end of the job (it would be killed
                // and reported failed): watch the pid instead.
                Err(e) => {
                    tracing::warn!(pid = self.pid, error = %e, "cannot wait for an embedded job's wrapper; watching its pid")
                }
            }
        }
        while is_wrapper_alive(self.pid, &self.run_sh) {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        None
    }

    fn has_exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => !is_wrapper_alive(self.pid, &self.run_sh),
        }
    }
}

/// Whether `pid` is alive and runs the wrapper `run_sh` (not a reused pid). A zombie
/// has an empty command line, so it counts as ended.
fn is_wrapper_alive(pid: u32, run_sh: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == run_sh.as_os_str().as_bytes())
    })
}

/// Pids of the live (not zombie) processes in session `sid`. getsid(2) picks the session's
/// processes out of `/proc` with one system call each; only their `stat` files are read (reading
/// every process's `stat` at each job end was a tenth of a busy enforcer's time).
fn session_members(sid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| session_of(pid) == Some(sid))
        .filter(|&pid| is_live_in_session(pid, sid))
        .collect()
}

/// The session id of process `pid`, if it exists.
fn session_of(pid: i32) -> Option<i32> {
    // SAFETY: getsid(2) has no memory-safety preconditions; it only reads the kernel's
    // process table.
    #[allow(unsafe_code)] // a libc call, see SAFETY
    let sid = unsafe { libc::getsid(pid) };
    (sid >= 0).then_some(sid)
}

/// Whether `pid` is a live (not zombie) process of session `sid`, by `/proc/<pid>/stat`
/// (a zombie keeps its session until it is reaped).
fn is_live_in_session(pid: i32, sid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ppid pgrp session ...`; comm may contain spaces and ')'.
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default();
    fields.first() != Some(&"Z") && fields.get(3).and_then(|s| s.parse::<i32>().ok()) == Some(sid)
}

/// Send `sig` to every process of the session led by `sid` (the wrapper's pid).
fn signal_session(sid: u32, sig: libc::c_int) {
    let Ok(sid) = libc::pid_t::try_from(sid) else {
        return;
    };
    // Never signal pid 0 / 1 groups or "every process" (-1).
    if sid <= 1 {
        return;
    }
    // The wrapper's own group first (one atomic call), then processes that moved to
    // other groups of the session (timeout's, or the workload's own).
    for target in std::iter::once(-sid).chain(session_members(sid)) {
        // SAFETY: kill(2) has no memory-safety preconditions; the targets are the
        // session's process group and members, found just above.
        #[allow(unsafe_code)] // process control through libc, see SAFETY
        unsafe {
            libc::kill(target, sig);
        }
    }
}

/// Send `sig` to the job's session and wait up to `patience` until none of its
/// processes is alive. Returns whether they are all gone.
async fn signal_and_wait(sid: u32, sig: libc::c_int, patience: Duration) -> bool {
    signal_session(sid, sig);
    let deadline = tokio::time::Instant::now() + patience;
    let Ok(sid) = i32::try_from(sid) else {
        return true;
    };
    loop {
        if session_members(sid).is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(SESSION_POLL).await;
    }
}

/// The final state of a job whose wrapper ended (with `status`, when known).
fn ended_state(dir: &Path, status: Option<ExitStatus>) -> LocalJobState {
    match jobdir::read_outcome(dir) {
        Ok(Some(state)) => state,
        Ok(None) => LocalJobState::failed(
            match status {
                Some(s) => format!(
                    "the job wrapper ended without recording an exit status ({})",
                    describe_status(s)
                ),
                None => "the job wrapper ended without recording an exit status".into(),
            },
            None,
        ),
        Err(e) => LocalJobState::failed(e.to_string(), None),
    }
}

/// What a supervisor task owns: the job's wrapper and its end of the [`Control`].
struct Supervision {
    job_id: String,
    dir: PathBuf,
    wrapper: Wrapper,
    cancel: Arc<Notify>,
    done: watch::Sender<bool>,
}

impl Supervision {
    /// The supervision of `wrapper` and the control to store in the job's entry.
    fn new(job_id: &str, dir: PathBuf, wrapper: Wrapper) -> (Control, Self) {
        let cancel = Arc::new(Notify::new());
        let (done, done_rx) = watch::channel(false);
        let control = Control {
            cancel: cancel.clone(),
            done: done_rx,
        };
        let supervision = Supervision {
            job_id: job_id.to_string(),
            dir,
            wrapper,
            cancel,
            done,
        };
        (control, supervision)
    }
}

/// Watches a job's wrapper until it ends or the job is cancelled, then records the final
/// state.
async fn supervise(inner: Arc<Inner>, supervision: Supervision) {
    let Supervision {
        job_id,
        dir,
        mut wrapper,
        cancel,
        done,
    } = supervision;
    let exited = tokio::select! {
        status = wrapper.exited() => Some(status),
        _ = cancel.notified() => None,
    };
    let state = match exited {
        Some(status) => ended_state(&dir, status),
        // The wrapper ended on its own at the same moment: report what it did.
        None if wrapper.has_exited() => ended_state(&dir, None),
        None => {
            // The grace is for the workload (which may save its work on SIGTERM), not
            // for the wrapper, which dies at once.
            signal_and_wait(wrapper.pid, libc::SIGTERM, KILL_GRACE).await;
            LocalJobState::Cancelled
        }
    };
    // Whatever the job left behind in its session goes with it (as Slurm does), and so
    // does a cancelled job that outlived its grace.
    if !signal_and_wait(wrapper.pid, libc::SIGKILL, KILL_WAIT).await {
        tracing::warn!(%job_id, "processes of the embedded job survive SIGKILL");
    }
    // Reap our child (or see the adopted wrapper gone).
    wrapper.exited().await;
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

/// A poisoned lock still holds consistent data here (every critical section is a few
/// assignments), so a panicked holder does not take the scheduler down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Table> {
        lock(&self.jobs)
    }

    /// Makes the change of `job_id` just made to the table durable, with every other
    /// change waiting (the journal is compacted when it has outgrown the table).
    async fn persist(&self, job_id: &str) -> Result<(), SchedulerError> {
        let mine = {
            let mut dirty = lock(&self.dirty);
            dirty.jobs.insert(job_id.to_string());
            dirty.changes += 1;
            dirty.changes
        };
        let mut persisted = self.persisted.lock().await;
        if *persisted >= mine {
            return Ok(());
        }
        let (ids, covered) = {
            let mut dirty = lock(&self.dirty);
            (std::mem::take(&mut dirty.jobs), dirty.changes)
        };
        // Taken after the changes were made: each is in what is written.
        let (changes, compaction) = {
            let jobs = self.lock();
            let changes: Vec<IndexChange> = ids
                .iter()
                .map(|id| IndexChange {
                    job_id: id.clone(),
                    record: jobs.get(id).map(|e| e.record.clone()),
                })
                .collect();
            let compaction = lock(&self.journal)
                .should_compact(jobs.len())
                .then(|| records_of(&jobs));
            (changes, compaction)
        };
        let journal = self.journal.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut journal = lock(&journal);
            journal.append(&changes)?;
            if let Some(all) = compaction {
                // The changes are durable already: a failed compaction is retried later.
                if let Err(e) = journal.compact(&all) {
                    tracing::warn!(error = %e, "cannot compact the embedded job index");
                }
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| {
            Err(SchedulerError::io(
                "job index writer",
                std::io::Error::other(e),
            ))
        });
        if let Err(e) = written {
            // Written by a later group, or reported again by the next caller.
            lock(&self.dirty).jobs.extend(ids);
            return Err(e);
        }
        *persisted = covered;
        Ok(())
    }

    async fn persist_or_warn(&self, job_id: &str) {
        if let Err(e) = self.persist(job_id).await {
            tracing::warn!(%job_id, error = %e, "cannot persist embedded job index");
        }
    }
}

fn records_of(jobs: &BTreeMap<String, Entry>) -> Vec<JobRecord> {
    jobs.values().map(|e| e.record.clone()).collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl LocalScheduler for EmbeddedScheduler {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn status(&self) -> Result<ClusterStatus, SchedulerError> {
        let total = self.inner.config.nodes;
        let (used, running) = self.inner.lock().usage();
        let free = total.saturating_sub(used);
        let jobs_dir = &self.inner.jobs_dir;
        let dir_ok = tokio::fs::metadata(jobs_dir)
            .await
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let mut detail = format!("embedded: {free}/{total} nodes free, {running} job(s) running");
        if !dir_ok {
            detail.push_str(&format!(
                "; jobs directory {} is missing",
                jobs_dir.display()
            ));
        }
        Ok(ClusterStatus {
            reachable: true,
            total_nodes: total,
            free_nodes: free,
            queue_depth: 0,
            healthy: dir_ok,
            detail,
        })
    }

    async fn submit(&self, spec: &JobSpec) -> Result<LocalJobId, SchedulerError> {
        spec.validate()?;
        // Refuse a container workload before anything is recorded.
        jobdir::script_bytes(spec, self.inner.config.container_runtime.as_deref())?;
        let id = LocalJobId::new(&spec.job_id);
        // 1. Reserve the nodes (or return the existing handle).
        {
            let mut jobs = self.inner.lock();
            if jobs.contains_key(&spec.job_id) {
                tracing::debug!(job_id = %spec.job_id, "embedded job already submitted");
                return Ok(id);
            }
            let total = self.inner.config.nodes;
            let free = total.saturating_sub(jobs.usage().0);
            if spec.nodes > free {
                return Err(SchedulerError::CapacityExceeded {
                    requested: spec.nodes,
                    free,
                    total,
                });
            }
            jobs.insert(Entry {
                record: JobRecord {
                    job_id: spec.job_id.clone(),
                    correlation_id: spec.correlation_id.clone(),
                    nodes: spec.nodes,
                    state: LocalJobState::Pending,
                    pid: None,
                    pgid: None,
                    submitted_at_ms: now_ms(),
                    finished_at_ms: None,
                },
                control: None,
            });
        }
        // 2. Make the reservation durable before anything runs, so that a restarted
        //    enforcer can never start the job a second time.
        if let Err(e) = self.inner.persist(&spec.job_id).await {
            // Forgotten, and the forgetting persisted (or left to the next write): a
            // group that ran meanwhile may have written the reservation.
            self.inner.lock().remove(&spec.job_id);
            self.inner.persist_or_warn(&spec.job_id).await;
            return Err(e);
        }
        // 3. Start the wrapper and hand it to a supervisor task.
        match self.start(spec) {
            Ok(Some(supervision)) => {
                tokio::spawn(supervise(self.inner.clone(), supervision));
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
            if !entry.record.state.is_active() {
                return Ok(());
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

    async fn jobs(&self) -> Result<Vec<LocalJobInfo>, SchedulerError> {
        Ok(self
            .inner
            .lock()
            .values()
            .map(|e| LocalJobInfo {
                local_id: LocalJobId::new(&e.record.job_id),
                name: e.record.job_id.clone(),
                comment: e.record.correlation_id.clone(),
                state: e.record.state.clone(),
            })
            .collect())
    }

    fn job_dir(&self, job_id: &str) -> Option<PathBuf> {
        self.inner
            .lock()
            .contains_key(job_id)
            .then(|| self.inner.jobs_dir.join(job_id))
    }
}
