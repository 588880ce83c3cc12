//! Slurm through its command-line tools.
//!
//! Commands run (no shell; `<P>` = the job's partition hint, else the configured
//! partition; `<dir>` = the job directory `<jobs_dir>/<job_id>`):
//!
//! | operation | command |
//! |---|---|
//! | submit: find an existing job of ours (batch script `<dir>/run.sh`) | `squeue --noheader --all --states=all --name=<job_id> --format=%i\|%j\|%o` |
//! | … then, if `sacct` is configured (working directory `<dir>`) | `sacct --noheader --allocations --parsable2 --name=<job_id> --starttime=now-7days --format=JobID,JobName,WorkDir` |
//! | submit | `sbatch --parsable --job-name=<job_id> --nodes=<n> [--time=<minutes>] [--gres=gpu:<g>] [--partition=<P>] [--comment=<correlation_id>] --chdir=<dir> --output=<dir>/slurm-%j.log --export=NONE <dir>/run.sh` |
//! | job state | `squeue --noheader --states=all --job=<id> --format=%T` |
//! | … when squeue no longer knows the job and `<dir>/exit_code` is missing, if `sacct` is configured | `sacct --noheader --allocations --parsable2 --jobs=<id> --format=State,ExitCode` |
//! | cancel | `scancel <id>` |
//! | list every job | `squeue --noheader --all --states=all --format=%i\|%j\|%T\|%k` |
//! | status: controller up (if `scontrol` is configured) | `scontrol ping` |
//! | status: nodes | `sinfo --noheader --format=%F [--partition=<P>]` |
//! | status: queue depth | `squeue --noheader --states=PENDING --format=%i [--partition=<P>]` |
//!
//! Notes:
//! * Job directory: before `sbatch`, the adapter writes `script`, `environment` and the
//!   wrapper `run.sh` into `<jobs_dir>/<job_id>/` (layout and wrapper in
//!   [`crate::jobdir`]). `jobs_dir` must be visible at the same path on the compute
//!   nodes (a shared file system; on a single-host cluster any local directory): the
//!   wrapper `cd`s there, writes the outputs and the `exit_code` file there, and
//!   `sbatch` itself stores a copy of `run.sh`, not its path.
//! * State: squeue's state while the job is pending or running, and `CANCELLED` as
//!   Slurm says; otherwise the job directory's `exit_code` (the workload's own status:
//!   Slurm reports the batch script, and forgets purged jobs), then squeue's or sacct's
//!   terminal state (`TIMEOUT` → `Failed { "time limit exceeded (slurm state TIMEOUT)" }`),
//!   else `Unknown` ([`parse::resolve_state`]).
//! * `<jobs_dir>/slurm-jobs.json` maps Slurm job ids to job ids (written atomically at
//!   submit and when an existing job is found by name), so the job directory, and with it
//!   the exit status, is found after an enforcer restart and after Slurm purged the job.
//! * `--states=all`: without it squeue hides finished jobs that slurmctld still holds
//!   (for `MinJobAge`, 300 s by default), so a finished job would be resubmitted and its
//!   final state missed.
//! * Idempotency: the job index (job id → Slurm id), then the job name in squeue (all
//!   partitions, all states), then (with `sacct`) accounting for the last 7 days;
//!   submits are serialised. Names are compared exactly on our side because Slurm
//!   matches `--name` case-insensitively. If a lookup fails the submit fails (fail
//!   closed) rather than risk a second copy.
//! * `--export=NONE`: the enforcer's own environment (which may hold key material) never
//!   reaches tenant jobs; the wrapper sets the job's variables. `PATH` is the default of
//!   the compute node's login environment; scripts should use absolute paths if needed.
//! * `--time` is `max_runtime_seconds` rounded up to whole minutes (omitted when 0); the
//!   wrapper enforces the exact limit itself (`timeout`).
//! * Container workloads need `SlurmConfig::container_runtime` (as for the embedded
//!   scheduler); without it they are refused.
//! * `SQUEUE_*`, `SINFO_*`, `SACCT_*`, `SCANCEL_*` and `SLURM_CLUSTERS` from the
//!   enforcer's environment are removed for the query commands so they cannot change
//!   the output that is parsed.

pub mod parse;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::{Invocation, Output};
use crate::jobdir::{self, WRAPPER_FILE};
use crate::{
    ClusterStatus, JobSpec, LocalJobId, LocalJobInfo, LocalJobState, LocalScheduler, SchedulerError,
};

use parse::{
    count_records, parse_named_jobs, parse_sacct_state, parse_sbatch_parsable, parse_scontrol_ping,
    parse_sinfo_aiot, parse_squeue_jobs, parse_squeue_state, resolve_state, NamedJob,
};

/// Default time limit for one Slurm command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How far back `sacct` is searched for an existing job with the same name.
pub const SACCT_NAME_LOOKBACK: &str = "now-7days";

const QUERY_SCRUB: &[&str] = &["SQUEUE_", "SINFO_", "SACCT_", "SLURM_CLUSTERS"];
const SCANCEL_SCRUB: &[&str] = &["SCANCEL_", "SLURM_CLUSTERS"];

/// File name of the job index (Slurm job id → job id) inside `jobs_dir`.
pub const INDEX_FILE: &str = "slurm-jobs.json";

const INDEX_VERSION: u32 = 1;

/// Configuration of the [`SlurmScheduler`]. Paths may be bare names (looked up in
/// `PATH`) or absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmConfig {
    /// Partition to submit to (unless the job names one) and to report on (all
    /// partitions when `None`).
    pub partition: Option<String>,
    pub sbatch: PathBuf,
    pub squeue: PathBuf,
    pub sinfo: PathBuf,
    /// When set, `status` first runs `scontrol ping`.
    pub scontrol: Option<PathBuf>,
    pub scancel: PathBuf,
    /// When set, accounting is used for jobs slurmctld has purged (final state, and
    /// idempotency across enforcer restarts).
    pub sacct: Option<PathBuf>,
    /// Limit for each command (the command is killed after it).
    pub command_timeout: Duration,
    /// Where job directories are created (created if missing). Must be visible at the
    /// same path on the compute nodes; on a single-host cluster any local directory.
    pub jobs_dir: PathBuf,
    /// Command that runs a container image on a compute node, e.g.
    /// `["apptainer", "exec"]` (the image and its command are appended, after
    /// `--env NAME=VALUE` pairs). `None`: container workloads are refused.
    #[serde(default)]
    pub container_runtime: Option<Vec<String>>,
    /// `slurm.conf` of the cluster, passed as `SLURM_CONF` to every command; `None`:
    /// the Slurm tools' default (or the enforcer's own `SLURM_CONF`).
    #[serde(default)]
    pub slurm_conf: Option<PathBuf>,
}

impl SlurmConfig {
    /// Bare command names from `PATH`, no partition, no `scontrol`/`sacct`, 30 s, no
    /// container runtime, job directories in `jobs_dir`.
    pub fn new(jobs_dir: impl Into<PathBuf>) -> Self {
        SlurmConfig {
            partition: None,
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            sinfo: "sinfo".into(),
            scontrol: None,
            scancel: "scancel".into(),
            sacct: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            jobs_dir: jobs_dir.into(),
            container_runtime: None,
            slurm_conf: None,
        }
    }

    /// All six tools (including `scontrol` and `sacct`) from `tools_dir`, job
    /// directories in `jobs_dir`.
    pub fn in_dir(tools_dir: impl AsRef<Path>, jobs_dir: impl Into<PathBuf>) -> Self {
        let dir = tools_dir.as_ref();
        SlurmConfig {
            sbatch: dir.join("sbatch"),
            squeue: dir.join("squeue"),
            sinfo: dir.join("sinfo"),
            scontrol: Some(dir.join("scontrol")),
            scancel: dir.join("scancel"),
            sacct: Some(dir.join("sacct")),
            ..SlurmConfig::new(jobs_dir)
        }
    }
}

/// Drives a Slurm cluster through `sbatch` / `squeue` / `sinfo` / `scancel`; see the
/// [module documentation](self).
pub struct SlurmScheduler {
    config: SlurmConfig,
    /// Absolute `config.jobs_dir`.
    jobs_dir: PathBuf,
    index_path: PathBuf,
    /// Jobs submitted or found, persisted in [`INDEX_FILE`].
    index: Mutex<JobIndex>,
    /// Serialises submits, so two submits of one job cannot race.
    submit_lock: tokio::sync::Mutex<()>,
}

/// Slurm job id ↔ job id.
#[derive(Default)]
struct JobIndex {
    by_slurm_id: BTreeMap<String, String>,
    by_job_id: HashMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    /// Slurm job id → job id.
    jobs: BTreeMap<String, String>,
}

impl JobIndex {
    fn load(path: &Path) -> Result<Self, SchedulerError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(JobIndex::default()),
            Err(e) => {
                return Err(SchedulerError::io(
                    format!("cannot read job index {}", path.display()),
                    e,
                ))
            }
        };
        // Job ids become paths: only well-formed entries are accepted.
        let file: IndexFile = serde_json::from_slice(&bytes)
            .ok()
            .filter(|f: &IndexFile| {
                f.version == INDEX_VERSION
                    && f.jobs.iter().all(|(slurm_id, job_id)| {
                        slurm_job_id(&LocalJobId::new(slurm_id)).is_ok()
                            && crate::validate_job_id(job_id).is_ok()
                    })
            })
            .ok_or_else(|| {
                SchedulerError::io(
                    format!("corrupt job index {}", path.display()),
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("expected {{\"version\": {INDEX_VERSION}, \"jobs\": {{\"<slurm job id>\": \"<job id>\", ...}}}}"),
                    ),
                )
            })?;
        let mut index = JobIndex::default();
        for (slurm_id, job_id) in file.jobs {
            index.insert(slurm_id, job_id);
        }
        Ok(index)
    }

    fn insert(&mut self, slurm_id: String, job_id: String) {
        self.by_job_id.insert(job_id.clone(), slurm_id.clone());
        self.by_slurm_id.insert(slurm_id, job_id);
    }

    fn encode(&self) -> Vec<u8> {
        let file = IndexFile {
            version: INDEX_VERSION,
            jobs: self.by_slurm_id.clone(),
        };
        // A map of strings always encodes.
        serde_json::to_vec_pretty(&file).unwrap_or_default()
    }
}

impl SlurmScheduler {
    /// Check the configuration, create `jobs_dir` and load its job index.
    pub fn new(config: SlurmConfig) -> Result<Self, SchedulerError> {
        if let Some(p) = &config.partition {
            if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(SchedulerError::InvalidConfig {
                    field: "partition",
                    reason: format!("{p:?} is not a partition name"),
                });
            }
        }
        if config.command_timeout.is_zero() {
            return Err(SchedulerError::InvalidConfig {
                field: "command_timeout",
                reason: "must be positive".into(),
            });
        }
        jobdir::validate_runtime(config.container_runtime.as_deref())?;
        let jobs_dir = jobdir::jobs_root(&config.jobs_dir, "jobs_dir")?;
        let index_path = jobs_dir.join(INDEX_FILE);
        let index = JobIndex::load(&index_path)?;
        Ok(SlurmScheduler {
            config,
            jobs_dir,
            index_path,
            index: Mutex::new(index),
            submit_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &SlurmConfig {
        &self.config
    }

    async fn run(
        &self,
        program: &Path,
        args: Vec<String>,
        scrub: &'static [&'static str],
    ) -> Result<Output, SchedulerError> {
        Invocation {
            program,
            args,
            scrub_env_prefixes: scrub,
            env: self
                .config
                .slurm_conf
                .iter()
                .map(|conf| ("SLURM_CONF", conf.as_os_str()))
                .collect(),
            timeout: self.config.command_timeout,
        }
        .run()
        .await
    }

    /// `--partition=` for the status queries.
    fn partition_arg(&self) -> Option<String> {
        self.config
            .partition
            .as_ref()
            .map(|p| format!("--partition={p}"))
    }

    /// An existing Slurm job of ours named `job_id` (a submit before a crash), from squeue
    /// and then sacct. Only a job submitted from this job's directory counts: squeue's
    /// batch script must be its `run.sh` (nobody else can have sbatch read that file),
    /// sacct's working directory the job directory. A job that only carries the name is
    /// someone else's and is not adopted.
    async fn find_by_name(
        &self,
        job_id: &str,
        dir: &Path,
    ) -> Result<Option<String>, SchedulerError> {
        let wrapper = dir.join(WRAPPER_FILE);
        let args = vec![
            "--noheader".into(),
            "--all".into(),
            "--states=all".into(),
            format!("--name={job_id}"),
            "--format=%i|%j|%o".into(),
        ];
        let out = self.run(&self.config.squeue, args, QUERY_SCRUB).await?;
        if !out.success() {
            return Err(out.failed());
        }
        let found =
            parse_named_jobs(&out.stdout, job_id).map_err(|e| e.into_error(&out.command))?;
        if let Some(ours) = self.ours(job_id, found, &wrapper) {
            return Ok(Some(ours));
        }
        let Some(sacct) = &self.config.sacct else {
            return Ok(None);
        };
        let args = vec![
            "--noheader".into(),
            "--allocations".into(),
            "--parsable2".into(),
            format!("--name={job_id}"),
            format!("--starttime={SACCT_NAME_LOOKBACK}"),
            "--format=JobID,JobName,WorkDir".into(),
        ];
        let out = self.run(sacct, args, QUERY_SCRUB).await?;
        if !out.success() {
            return Err(out.failed());
        }
        let found =
            parse_named_jobs(&out.stdout, job_id).map_err(|e| e.into_error(&out.command))?;
        Ok(self.ours(job_id, found, dir))
    }

    /// The first of `found` whose origin is `origin`; the others are logged as foreign.
    fn ours(&self, job_id: &str, found: Vec<NamedJob>, origin: &Path) -> Option<String> {
        let (ours, foreign): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|j| Path::new(&j.origin) == origin);
        if !foreign.is_empty() {
            let ids: Vec<&str> = foreign.iter().map(|j| j.id.as_str()).collect();
            tracing::warn!(%job_id, ?ids, "Slurm jobs carry this job's name but were not submitted by this enforcer; not adopted");
        }
        if ours.len() > 1 {
            tracing::warn!(%job_id, "several Slurm jobs of ours carry this job name; using the first");
        }
        ours.into_iter().next().map(|j| j.id)
    }

    fn sbatch_args(&self, spec: &JobSpec, dir: &str) -> Vec<String> {
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name={}", spec.job_id),
            format!("--nodes={}", spec.nodes),
        ];
        if spec.max_runtime_seconds > 0 {
            args.push(format!("--time={}", spec.max_runtime_seconds.div_ceil(60)));
        }
        if spec.gpus_per_node > 0 {
            args.push(format!("--gres=gpu:{}", spec.gpus_per_node));
        }
        if let Some(p) = spec.partition.as_ref().or(self.config.partition.as_ref()) {
            args.push(format!("--partition={p}"));
        }
        if !spec.correlation_id.is_empty() {
            args.push(format!("--comment={}", spec.correlation_id));
        }
        args.push(format!("--chdir={dir}"));
        args.push(format!("--output={dir}/slurm-%j.log"));
        args.push("--export=NONE".into());
        args.push(format!("{dir}/{WRAPPER_FILE}"));
        args
    }

    fn lock_index(&self) -> MutexGuard<'_, JobIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record `slurm_id` as the Slurm job of `job_id`, in memory and in the index file.
    /// A failed write is only logged: the job exists either way, and a later submit finds
    /// it by name.
    async fn remember(&self, job_id: &str, slurm_id: &str) {
        let bytes = {
            let mut index = self.lock_index();
            index.insert(slurm_id.to_string(), job_id.to_string());
            index.encode()
        };
        let path = self.index_path.clone();
        let written = tokio::task::spawn_blocking(move || jobdir::write_atomic(&path, &bytes))
            .await
            .map_err(|e| SchedulerError::io("job index writer", std::io::Error::other(e)))
            .and_then(|r| r);
        if let Err(e) = written {
            tracing::warn!(%job_id, slurm_job_id = %slurm_id, error = %e, "cannot persist Slurm job index");
        }
    }

    /// The job directory of Slurm job `slurm_id`, if it is in the index.
    fn dir_of(&self, slurm_id: &str) -> Option<PathBuf> {
        let index = self.lock_index();
        index
            .by_slurm_id
            .get(slurm_id)
            .map(|job_id| self.jobs_dir.join(job_id))
    }

    /// squeue's state of a job; `None` when slurmctld no longer holds it.
    async fn squeue_state(&self, job: &str) -> Result<Option<LocalJobState>, SchedulerError> {
        let args = vec![
            "--noheader".into(),
            "--states=all".into(),
            format!("--job={job}"),
            "--format=%T".into(),
        ];
        let out = self.run(&self.config.squeue, args, QUERY_SCRUB).await?;
        if out.success() {
            parse_squeue_state(&out.stdout).map_err(|e| e.into_error(&out.command))
        } else if is_invalid_job_id(&out.stderr) {
            Ok(None)
        } else {
            Err(out.failed())
        }
    }

    /// sacct's state of a job; `None` without sacct or when it has no record.
    async fn sacct_state(&self, job: &str) -> Result<Option<LocalJobState>, SchedulerError> {
        let Some(sacct) = &self.config.sacct else {
            return Ok(None);
        };
        let args = vec![
            "--noheader".into(),
            "--allocations".into(),
            "--parsable2".into(),
            format!("--jobs={job}"),
            "--format=State,ExitCode".into(),
        ];
        let out = self.run(sacct, args, QUERY_SCRUB).await?;
        if !out.success() {
            return Err(out.failed());
        }
        parse_sacct_state(&out.stdout).map_err(|e| e.into_error(&out.command))
    }

    async fn status_inner(&self) -> Result<ClusterStatus, SchedulerError> {
        if let Some(scontrol) = &self.config.scontrol {
            let out = self.run(scontrol, vec!["ping".into()], &[]).await?;
            match parse_scontrol_ping(&out.stdout) {
                Ok(true) => {}
                Ok(false) => {
                    return Ok(ClusterStatus::unreachable(format!(
                        "slurmctld is down: {}",
                        out.stdout.trim().replace('\n', "; ")
                    )))
                }
                Err(_) if !out.success() => {
                    return Ok(ClusterStatus::unreachable(out.failed().to_string()))
                }
                Err(e) => return Err(e.into_error(&out.command)),
            }
        }

        let mut args = vec!["--noheader".into(), "--format=%F".into()];
        args.extend(self.partition_arg());
        let out = self.run(&self.config.sinfo, args, QUERY_SCRUB).await?;
        if !out.success() {
            return Ok(ClusterStatus::unreachable(out.failed().to_string()));
        }
        let nodes = parse_sinfo_aiot(&out.stdout).map_err(|e| e.into_error(&out.command))?;

        let mut args = vec![
            "--noheader".into(),
            "--states=PENDING".into(),
            "--format=%i".into(),
        ];
        args.extend(self.partition_arg());
        let out = self.run(&self.config.squeue, args, QUERY_SCRUB).await?;
        if !out.success() {
            return Ok(ClusterStatus::unreachable(out.failed().to_string()));
        }
        let pending = count_records(&out.stdout);

        let scope = match &self.config.partition {
            Some(p) => format!("slurm partition {p}"),
            None => "slurm".to_string(),
        };
        let detail = if nodes.total == 0 {
            format!("{scope}: sinfo reported no nodes")
        } else {
            format!(
                "{scope}: {} allocated, {} idle, {} other, {} total nodes; {pending} pending job(s)",
                nodes.allocated, nodes.idle, nodes.other, nodes.total
            )
        };
        Ok(ClusterStatus {
            reachable: true,
            total_nodes: nodes.total,
            free_nodes: nodes.idle,
            queue_depth: pending,
            healthy: nodes.total > 0 && nodes.allocated.saturating_add(nodes.idle) > 0,
            detail,
        })
    }
}

fn slurm_job_id(id: &LocalJobId) -> Result<&str, SchedulerError> {
    let s = id.as_str();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SchedulerError::InvalidSpec {
            field: "local_job_id".into(),
            reason: format!("{s:?} is not a Slurm job id"),
        });
    }
    Ok(s)
}

/// squeue's / scancel's answer for a job slurmctld no longer holds.
fn is_invalid_job_id(stderr: &str) -> bool {
    stderr.contains("Invalid job id specified")
}

#[async_trait::async_trait]
impl LocalScheduler for SlurmScheduler {
    fn name(&self) -> &'static str {
        "slurm"
    }

    async fn status(&self) -> Result<ClusterStatus, SchedulerError> {
        match self.status_inner().await {
            Err(e @ SchedulerError::CommandTimeout { .. }) => {
                Ok(ClusterStatus::unreachable(e.to_string()))
            }
            other => other,
        }
    }

    async fn submit(&self, spec: &JobSpec) -> Result<LocalJobId, SchedulerError> {
        spec.validate()?;
        let script = jobdir::script_bytes(spec, self.config.container_runtime.as_deref())?;
        let _serial = self.submit_lock.lock().await;
        let known = self.lock_index().by_job_id.get(&spec.job_id).cloned();
        if let Some(slurm_id) = known {
            return Ok(LocalJobId::new(slurm_id));
        }
        let dir = self.jobs_dir.join(&spec.job_id);
        if let Some(existing) = self.find_by_name(&spec.job_id, &dir).await? {
            tracing::info!(job_id = %spec.job_id, slurm_job_id = %existing, "job already in Slurm; not submitting again");
            self.remember(&spec.job_id, &existing).await;
            return Ok(LocalJobId::new(existing));
        }
        jobdir::prepare(&dir, spec, &script)?;
        let args = self.sbatch_args(spec, &dir.to_string_lossy());
        let out = self.run(&self.config.sbatch, args, &[]).await?;
        if !out.success() {
            return Err(out.failed());
        }
        let slurm_id =
            parse_sbatch_parsable(&out.stdout).map_err(|e| e.into_error(&out.command))?;
        tracing::info!(
            job_id = %spec.job_id,
            correlation_id = %spec.correlation_id,
            slurm_job_id = %slurm_id,
            "job submitted to Slurm"
        );
        self.remember(&spec.job_id, &slurm_id).await;
        Ok(LocalJobId::new(slurm_id))
    }

    async fn job_state(&self, id: &LocalJobId) -> Result<LocalJobState, SchedulerError> {
        let job = slurm_job_id(id)?;
        let queued = self.squeue_state(job).await?;
        if let Some(active) = queued.as_ref().filter(|s| s.is_active()) {
            return Ok(active.clone());
        }
        let recorded = match self.dir_of(job) {
            Some(dir) => jobdir::read_outcome(&dir)?,
            None => None,
        };
        let slurm = match queued {
            // slurmctld no longer holds the job and it left no status: ask accounting.
            None if recorded.is_none() => self.sacct_state(job).await?,
            queued => queued,
        };
        Ok(resolve_state(slurm, recorded))
    }

    async fn cancel(&self, id: &LocalJobId) -> Result<(), SchedulerError> {
        let job = slurm_job_id(id)?;
        let out = self
            .run(&self.config.scancel, vec![job.to_string()], SCANCEL_SCRUB)
            .await?;
        if out.success()
            || out.stderr.contains("already completing or completed")
            || is_invalid_job_id(&out.stderr)
        {
            tracing::info!(slurm_job_id = %job, "Slurm job cancelled (or already finished)");
            return Ok(());
        }
        Err(out.failed())
    }

    async fn jobs(&self) -> Result<Vec<LocalJobInfo>, SchedulerError> {
        let args = vec![
            "--noheader".into(),
            "--all".into(),
            "--states=all".into(),
            "--format=%i|%j|%T|%k".into(),
        ];
        let out = self.run(&self.config.squeue, args, QUERY_SCRUB).await?;
        if !out.success() {
            return Err(out.failed());
        }
        parse_squeue_jobs(&out.stdout).map_err(|e| e.into_error(&out.command))
    }

    fn job_dir(&self, job_id: &str) -> Option<PathBuf> {
        self.lock_index()
            .by_job_id
            .contains_key(job_id)
            .then(|| self.jobs_dir.join(job_id))
    }
}
