//! Slurm through its command-line tools.
//!
//! Commands run (no shell; `<P>` = the configured partition):
//!
//! | operation | command |
//! |---|---|
//! | submit: find an existing job | `squeue --noheader --all --states=all --name=<job_id> --format=%i\|%j` |
//! | … then, if `sacct` is configured | `sacct --noheader --allocations --parsable2 --name=<job_id> --starttime=now-7days --format=JobID,JobName` |
//! | submit | `sbatch --parsable --job-name=<job_id> --nodes=<n> [--time=<minutes>] [--gres=gpu:<g>] [--partition=<P>] [--comment=<correlation_id>] --export=HPC_JOB_ID,HPC_CORRELATION_ID,HPC_NODES,HPC_GPUS_PER_NODE --wrap=<command>` |
//! | job state | `squeue --noheader --states=all --job=<id> --format=%T` |
//! | … when squeue no longer knows the job, if `sacct` is configured | `sacct --noheader --allocations --parsable2 --jobs=<id> --format=State,ExitCode` |
//! | cancel | `scancel <id>` |
//! | status: controller up (if `scontrol` is configured) | `scontrol ping` |
//! | status: nodes | `sinfo --noheader --format=%F [--partition=<P>]` |
//! | status: queue depth | `squeue --noheader --states=PENDING --format=%i [--partition=<P>]` |
//!
//! Notes:
//! * `--states=all`: without it squeue hides finished jobs that slurmctld still holds
//!   (for `MinJobAge`, 300 s by default), so a finished job would be resubmitted and its
//!   final state missed.
//! * Idempotency: an in-memory map (job id → Slurm id), then the job name in squeue
//!   (all partitions, all states), then (with `sacct`) accounting for the last 7 days;
//!   submits are serialised. Names are compared exactly on our side because Slurm
//!   matches `--name` case-insensitively. If a lookup fails the submit fails (fail
//!   closed) rather than risk a second copy.
//! * A purged job (squeue prints nothing or "Invalid job id specified") is looked up in
//!   `sacct` when configured, else reported `Unknown`.
//! * The job gets only `SLURM_*` and the `HPC_*` variables (`--export` without `ALL`):
//!   the enforcer's own environment (which may hold key material) never reaches tenant
//!   jobs. `PATH` is the shell default on the compute node; use absolute paths if needed.
//! * `--time` is `max_runtime_seconds` rounded up to whole minutes (omitted when 0).
//! * `SQUEUE_*`, `SINFO_*`, `SACCT_*`, `SCANCEL_*` and `SLURM_CLUSTERS` from the
//!   enforcer's environment are removed for the query commands so they cannot change
//!   the output that is parsed.

pub mod parse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::{shell_join, Invocation, Output};
use crate::{ClusterStatus, JobSpec, LocalJobId, LocalJobState, LocalScheduler, SchedulerError};

use parse::{
    count_records, parse_named_job_ids, parse_sacct_state, parse_sbatch_parsable,
    parse_scontrol_ping, parse_sinfo_aiot, parse_squeue_state,
};

/// Default time limit for one Slurm command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How far back `sacct` is searched for an existing job with the same name.
pub const SACCT_NAME_LOOKBACK: &str = "now-7days";

const QUERY_SCRUB: &[&str] = &["SQUEUE_", "SINFO_", "SACCT_", "SLURM_CLUSTERS"];
const SCANCEL_SCRUB: &[&str] = &["SCANCEL_", "SLURM_CLUSTERS"];
const JOB_ENV: &str = "HPC_JOB_ID,HPC_CORRELATION_ID,HPC_NODES,HPC_GPUS_PER_NODE";

/// Configuration of the [`SlurmScheduler`]. Paths may be bare names (looked up in
/// `PATH`) or absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmConfig {
    /// Partition to submit to and to report on (all partitions when `None`).
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
}

impl Default for SlurmConfig {
    /// Bare command names from `PATH`, no partition, no `scontrol`/`sacct`, 30 s.
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            sinfo: "sinfo".into(),
            scontrol: None,
            scancel: "scancel".into(),
            sacct: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

impl SlurmConfig {
    /// All six tools (including `scontrol` and `sacct`) from one directory.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        SlurmConfig {
            partition: None,
            sbatch: dir.join("sbatch"),
            squeue: dir.join("squeue"),
            sinfo: dir.join("sinfo"),
            scontrol: Some(dir.join("scontrol")),
            scancel: dir.join("scancel"),
            sacct: Some(dir.join("sacct")),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

/// Drives a Slurm cluster through `sbatch` / `squeue` / `sinfo` / `scancel`; see the
/// [module documentation](self).
pub struct SlurmScheduler {
    config: SlurmConfig,
    /// job id → Slurm job id of jobs this process submitted or found. The async mutex
    /// also serialises submits, so two submits of one job cannot race.
    submitted: tokio::sync::Mutex<HashMap<String, LocalJobId>>,
}

impl SlurmScheduler {
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
        Ok(SlurmScheduler {
            config,
            submitted: tokio::sync::Mutex::new(HashMap::new()),
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
        env: Vec<(&'static str, String)>,
    ) -> Result<Output, SchedulerError> {
        Invocation {
            program,
            args,
            env,
            scrub_env_prefixes: scrub,
            timeout: self.config.command_timeout,
        }
        .run()
        .await
    }

    fn partition_arg(&self) -> Option<String> {
        self.config
            .partition
            .as_ref()
            .map(|p| format!("--partition={p}"))
    }

    /// An existing Slurm job named `job_id`, from squeue and then sacct.
    async fn find_by_name(&self, job_id: &str) -> Result<Option<String>, SchedulerError> {
        let args = vec![
            "--noheader".into(),
            "--all".into(),
            "--states=all".into(),
            format!("--name={job_id}"),
            "--format=%i|%j".into(),
        ];
        let out = self
            .run(&self.config.squeue, args, QUERY_SCRUB, vec![])
            .await?;
        if !out.success() {
            return Err(out.failed());
        }
        let ids =
            parse_named_job_ids(&out.stdout, job_id).map_err(|e| e.into_error(&out.command))?;
        if let Some(first) = ids.first() {
            if ids.len() > 1 {
                tracing::warn!(%job_id, ?ids, "several Slurm jobs carry this job name; using the first");
            }
            return Ok(Some(first.clone()));
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
            "--format=JobID,JobName".into(),
        ];
        let out = self.run(sacct, args, QUERY_SCRUB, vec![]).await?;
        if !out.success() {
            return Err(out.failed());
        }
        let ids =
            parse_named_job_ids(&out.stdout, job_id).map_err(|e| e.into_error(&out.command))?;
        Ok(ids.into_iter().next())
    }

    fn sbatch_args(&self, spec: &JobSpec) -> Vec<String> {
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
        args.extend(self.partition_arg());
        if !spec.correlation_id.is_empty() {
            args.push(format!("--comment={}", spec.correlation_id));
        }
        args.push(format!("--export={JOB_ENV}"));
        args.push(format!("--wrap={}", shell_join(&spec.command)));
        args
    }

    async fn status_inner(&self) -> Result<ClusterStatus, SchedulerError> {
        if let Some(scontrol) = &self.config.scontrol {
            let out = self.run(scontrol, vec!["ping".into()], &[], vec![]).await?;
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
        let out = self
            .run(&self.config.sinfo, args, QUERY_SCRUB, vec![])
            .await?;
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
        let out = self
            .run(&self.config.squeue, args, QUERY_SCRUB, vec![])
            .await?;
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
            field: "local_job_id",
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
        if spec.command.is_empty() {
            return Err(SchedulerError::InvalidSpec {
                field: "command",
                reason: "must not be empty (the Slurm adapter has no default command)".into(),
            });
        }
        let mut submitted = self.submitted.lock().await;
        if let Some(id) = submitted.get(&spec.job_id) {
            return Ok(id.clone());
        }
        if let Some(existing) = self.find_by_name(&spec.job_id).await? {
            tracing::info!(job_id = %spec.job_id, slurm_job_id = %existing, "job already in Slurm; not submitting again");
            let id = LocalJobId::new(existing);
            submitted.insert(spec.job_id.clone(), id.clone());
            return Ok(id);
        }
        let env = vec![
            ("HPC_JOB_ID", spec.job_id.clone()),
            ("HPC_CORRELATION_ID", spec.correlation_id.clone()),
            ("HPC_NODES", spec.nodes.to_string()),
            ("HPC_GPUS_PER_NODE", spec.gpus_per_node.to_string()),
        ];
        let out = self
            .run(&self.config.sbatch, self.sbatch_args(spec), &[], env)
            .await?;
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
        let id = LocalJobId::new(slurm_id);
        submitted.insert(spec.job_id.clone(), id.clone());
        Ok(id)
    }

    async fn job_state(&self, id: &LocalJobId) -> Result<LocalJobState, SchedulerError> {
        let job = slurm_job_id(id)?;
        let args = vec![
            "--noheader".into(),
            "--states=all".into(),
            format!("--job={job}"),
            "--format=%T".into(),
        ];
        let out = self
            .run(&self.config.squeue, args, QUERY_SCRUB, vec![])
            .await?;
        if out.success() {
            if let Some(state) =
                parse_squeue_state(&out.stdout).map_err(|e| e.into_error(&out.command))?
            {
                return Ok(state);
            }
        } else if !is_invalid_job_id(&out.stderr) {
            return Err(out.failed());
        }
        // slurmctld no longer holds the job: ask accounting, if configured.
        let Some(sacct) = &self.config.sacct else {
            return Ok(LocalJobState::Unknown);
        };
        let args = vec![
            "--noheader".into(),
            "--allocations".into(),
            "--parsable2".into(),
            format!("--jobs={job}"),
            "--format=State,ExitCode".into(),
        ];
        let out = self.run(sacct, args, QUERY_SCRUB, vec![]).await?;
        if !out.success() {
            return Err(out.failed());
        }
        Ok(parse_sacct_state(&out.stdout)
            .map_err(|e| e.into_error(&out.command))?
            .unwrap_or(LocalJobState::Unknown))
    }

    async fn cancel(&self, id: &LocalJobId) -> Result<(), SchedulerError> {
        let job = slurm_job_id(id)?;
        let out = self
            .run(
                &self.config.scancel,
                vec![job.to_string()],
                SCANCEL_SCRUB,
                vec![],
            )
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
}
