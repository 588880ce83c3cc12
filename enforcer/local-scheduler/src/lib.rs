//! Local scheduler adapters for the provider-side routing enforcer.
//!
//! The enforcer hands an HPC job to the provider's *local* scheduler only after the
//! on-chain routing decision allowed it. To validate a decision it needs the local
//! cluster's availability and free capacity ([`LocalScheduler::status`]); to report
//! RUNNING / COMPLETED / FAILED back to the chain it needs the job's state
//! ([`LocalScheduler::job_state`]).
//!
//! Two adapters are provided:
//!
//! * [`EmbeddedScheduler`] (the default): runs each job as a local process with a
//!   configured node capacity, and keeps a small job index in its work directory so a
//!   restarted enforcer re-attaches to running jobs, still knows which jobs finished and
//!   never starts a job twice.
//! * [`SlurmScheduler`]: drives a Slurm cluster through its command-line tools
//!   (`sbatch`, `squeue`, `sinfo`, `scancel`, optionally `sacct` and `scontrol`).
//!
//! Both run a job's [`Workload`] (a verified batch script, or a container image through a
//! configured runtime) from a job directory with the same layout and the same generated
//! wrapper (see [`jobdir`]). The wrapper records the workload's exit status in the job
//! directory, so the true outcome survives an enforcer restart and Slurm purging the job.
//!
//! Both are used through the object-safe [`LocalScheduler`] trait
//! (`Box<dyn LocalScheduler>` / `Arc<dyn LocalScheduler>`).

mod command;
pub mod embedded;
mod error;
pub mod jobdir;
mod journal;
pub mod slurm;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use embedded::{EmbeddedConfig, EmbeddedScheduler, DEFAULT_JOB_NICE, MAX_JOB_NICE};
pub use error::SchedulerError;
pub use slurm::{SlurmConfig, SlurmScheduler};

/// Maximum length of a job id (same rule as the chain's client-chosen ids).
pub const MAX_JOB_ID_LEN: usize = 128;

/// A provider's local scheduler, as seen by the routing enforcer.
///
/// Object safe (through `async_trait`): use `Box<dyn LocalScheduler>` or
/// `Arc<dyn LocalScheduler>`.
#[async_trait::async_trait]
pub trait LocalScheduler: Send + Sync {
    /// Short adapter name for logs and metrics (`"embedded"`, `"slurm"`).
    fn name(&self) -> &'static str;

    /// Cluster availability and free capacity right now (used for validation and
    /// heartbeats).
    ///
    /// A cluster that answered "I am down" (controller unreachable, command failed or
    /// timed out) is reported as `Ok` with `reachable: false` / `healthy: false` and the
    /// reason in `detail`. `Err` means the adapter itself is broken (binary missing,
    /// output it cannot parse); callers should treat it as unavailable as well.
    async fn status(&self) -> Result<ClusterStatus, SchedulerError>;

    /// Submit a job; idempotent by `spec.job_id` (a second submit of the same job id
    /// returns the existing handle, never starts it twice).
    async fn submit(&self, spec: &JobSpec) -> Result<LocalJobId, SchedulerError>;

    /// Current state of a job submitted through this adapter.
    async fn job_state(&self, id: &LocalJobId) -> Result<LocalJobState, SchedulerError>;

    /// Cancel a job. Cancelling a job that already finished is a no-op (`Ok`).
    async fn cancel(&self, id: &LocalJobId) -> Result<(), SchedulerError>;

    /// Every job the local scheduler knows right now, whoever submitted it (the
    /// enforcer looks for jobs that carry a chain job id as their name but were not
    /// submitted by it). Embedded: its job index. Slurm: everything squeue lists.
    async fn jobs(&self) -> Result<Vec<LocalJobInfo>, SchedulerError>;

    /// The directory of a job submitted through this adapter (`<jobs dir>/<job_id>`,
    /// holding its script, wrapper, outputs and `exit_code`; see [`jobdir`]), or `None`
    /// for a job id the adapter has no record of. Known across restarts (both adapters
    /// persist their job index).
    fn job_dir(&self, job_id: &str) -> Option<PathBuf>;
}

/// Availability and free capacity of the local cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The scheduler answered.
    pub reachable: bool,
    /// Nodes the scheduler manages (in the configured partition, if any).
    pub total_nodes: u32,
    /// Nodes free to take a new job right now.
    pub free_nodes: u32,
    /// Jobs waiting in the local queue.
    pub queue_depth: u32,
    /// Reachable and able to run jobs (at least one usable node).
    pub healthy: bool,
    /// Human-readable detail (counts, or why the cluster is unavailable).
    pub detail: String,
}

impl ClusterStatus {
    /// A status for a cluster that could not be reached.
    pub fn unreachable(detail: impl Into<String>) -> Self {
        ClusterStatus {
            reachable: false,
            total_nodes: 0,
            free_nodes: 0,
            queue_depth: 0,
            healthy: false,
            detail: detail.into(),
        }
    }

    /// Whether a job needing `nodes` nodes can start right now.
    pub fn can_fit(&self, nodes: u32) -> bool {
        self.reachable && self.healthy && self.free_nodes >= nodes
    }
}

/// A job to hand to the local scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The on-chain job id; also the idempotency key and the name of the job directory.
    /// 1-128 characters of `[A-Za-z0-9._:-]`.
    pub job_id: String,
    /// Nodes the job occupies (at least 1).
    pub nodes: u32,
    /// GPUs needed on each node (0 = none).
    pub gpus_per_node: u32,
    /// Wall-clock limit; 0 = no limit set by the enforcer.
    pub max_runtime_seconds: u64,
    /// What the job runs.
    pub workload: Workload,
    /// Variables set for the workload. Names are `[A-Za-z_][A-Za-z0-9_]*`, at most
    /// [`MAX_ENV_NAME_LEN`] characters, and must not start with one of
    /// [`RESERVED_ENV_PREFIXES`]; values must not contain NUL.
    pub env: Vec<(String, String)>,
    /// Partition hint of the job (Slurm `--partition`, overriding the adapter's
    /// configured partition; ignored by the embedded scheduler).
    /// `[A-Za-z0-9._-]{1,64}`.
    pub partition: Option<String>,
    /// Base name of the output files `<job dir>/<output_name>.out` and `.err`; empty =
    /// [`DEFAULT_OUTPUT_NAME`]. `[A-Za-z0-9._-]{1,64}`, not `.` or `..`.
    pub output_name: String,
    /// Correlation id carried into the job (`HPC_CORRELATION_ID`, Slurm comment) and
    /// logs.
    pub correlation_id: String,
}

/// The program of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Workload {
    /// A batch script, run as `./script` in the job directory. The enforcer fetched it
    /// and verified its sha256 before it got here; it must start with `#!`.
    Script { bytes: Vec<u8> },
    /// A container image run with the adapter's configured container runtime (adapters
    /// without one refuse it). `image` is non-empty, without whitespace or control
    /// characters, and does not start with `-` (it is passed as an argument to the
    /// runtime); `command` (empty = the image's default) has no NUL.
    Container { image: String, command: Vec<String> },
}

/// Output base name used when [`JobSpec::output_name`] is empty.
pub const DEFAULT_OUTPUT_NAME: &str = "job";

/// Maximum length of an environment variable name in [`JobSpec::env`].
pub const MAX_ENV_NAME_LEN: usize = 64;

/// Variable name prefixes a job may not set: the scheduler's own (`HPC_JOB_ID`, ...) and
/// Slurm's.
pub const RESERVED_ENV_PREFIXES: [&str; 2] = ["HPC_", "SLURM_"];

impl JobSpec {
    /// A one-node job without limits, environment, partition or correlation id.
    pub fn new(job_id: impl Into<String>, workload: Workload) -> Self {
        JobSpec {
            job_id: job_id.into(),
            nodes: 1,
            gpus_per_node: 0,
            max_runtime_seconds: 0,
            workload,
            env: Vec::new(),
            partition: None,
            output_name: String::new(),
            correlation_id: String::new(),
        }
    }

    /// [`JobSpec::output_name`], or [`DEFAULT_OUTPUT_NAME`] when empty.
    pub fn output_base(&self) -> &str {
        if self.output_name.is_empty() {
            DEFAULT_OUTPUT_NAME
        } else {
            &self.output_name
        }
    }

    /// Check the fields every adapter relies on. The error names the offending field
    /// (`env[3].name`, `workload.script`, ...).
    pub fn validate(&self) -> Result<(), SchedulerError> {
        validate_job_id(&self.job_id)?;
        if self.nodes == 0 {
            return Err(invalid("nodes", "must be at least 1"));
        }
        if self.correlation_id.chars().any(char::is_control) {
            return Err(invalid(
                "correlation_id",
                "must not contain control characters",
            ));
        }
        self.workload.validate()?;
        validate_env(&self.env)?;
        if let Some(p) = &self.partition {
            if !is_simple_name(p) {
                return Err(invalid(
                    "partition",
                    format!("{p:?} must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"),
                ));
            }
        }
        if !self.output_name.is_empty()
            && (!is_simple_name(&self.output_name)
                || matches!(self.output_name.as_str(), "." | ".."))
        {
            return Err(invalid(
                "output_name",
                format!(
                    "{:?} must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-', not '.' or '..'",
                    self.output_name
                ),
            ));
        }
        Ok(())
    }
}

impl Workload {
    fn validate(&self) -> Result<(), SchedulerError> {
        match self {
            Workload::Script { bytes } => {
                if !bytes.starts_with(b"#!") {
                    return Err(invalid(
                        "workload.script",
                        "must start with `#!` (an interpreter line)",
                    ));
                }
            }
            Workload::Container { image, command } => {
                if image.is_empty()
                    || image.starts_with('-')
                    || image.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(invalid(
                        "workload.image",
                        format!("{image:?} is not an image reference (empty, starts with '-', or has whitespace or control characters)"),
                    ));
                }
                if let Some(i) = command.iter().position(|a| a.contains('\0')) {
                    return Err(invalid(
                        format!("workload.command[{i}]"),
                        "contains a NUL byte",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn validate_env(env: &[(String, String)]) -> Result<(), SchedulerError> {
    for (i, (name, value)) in env.iter().enumerate() {
        let mut bytes = name.bytes();
        let well_formed = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && name.len() <= MAX_ENV_NAME_LEN;
        if !well_formed {
            return Err(invalid(
                format!("env[{i}].name"),
                format!("{name:?} must match [A-Za-z_][A-Za-z0-9_]* and have at most {MAX_ENV_NAME_LEN} characters"),
            ));
        }
        if let Some(prefix) = RESERVED_ENV_PREFIXES.iter().find(|p| name.starts_with(*p)) {
            return Err(invalid(
                format!("env[{i}].name"),
                format!("{name:?}: the prefix {prefix} is reserved for the scheduler"),
            ));
        }
        if env[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(invalid(
                format!("env[{i}].name"),
                format!("{name:?} is set twice"),
            ));
        }
        if value.contains('\0') {
            return Err(invalid(format!("env[{i}].value"), "contains a NUL byte"));
        }
    }
    Ok(())
}

/// `[A-Za-z0-9._-]{1,64}` (partition and output names).
fn is_simple_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SchedulerError {
    SchedulerError::InvalidSpec {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(crate) fn validate_job_id(id: &str) -> Result<(), SchedulerError> {
    if id.is_empty()
        || id.len() > MAX_JOB_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(invalid(
            "job_id",
            format!(
                "{id:?} must be 1-{MAX_JOB_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ),
        ));
    }
    Ok(())
}

/// The local scheduler's handle for a submitted job (the embedded scheduler uses the
/// job id itself; Slurm uses its numeric job id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocalJobId(pub String);

impl LocalJobId {
    pub fn new(id: impl Into<String>) -> Self {
        LocalJobId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocalJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// State of a job in the local scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LocalJobState {
    /// Accepted, not yet executing.
    Pending,
    /// Executing (or holding its allocation).
    Running,
    /// Finished with exit code 0.
    Completed,
    /// Finished unsuccessfully. `exit_code` is the workload's exit code when it exited
    /// with one; `None` when it was killed by its time limit, lost, or the scheduler
    /// reported a failure without a code. `reason` says what happened
    /// (`exit code 3`, `time limit of 60 s exceeded`, ...).
    Failed {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
    /// Cancelled on request.
    Cancelled,
    /// The scheduler no longer knows (Slurm purged the job, accounting is not configured
    /// and the job directory has no exit status).
    Unknown,
}

impl LocalJobState {
    /// `Failed { reason, exit_code }`.
    pub fn failed(reason: impl Into<String>, exit_code: Option<i32>) -> Self {
        LocalJobState::Failed {
            reason: reason.into(),
            exit_code,
        }
    }

    /// Completed, Failed or Cancelled.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            LocalJobState::Completed | LocalJobState::Failed { .. } | LocalJobState::Cancelled
        )
    }

    /// Pending or Running.
    pub fn is_active(&self) -> bool {
        matches!(self, LocalJobState::Pending | LocalJobState::Running)
    }
}

impl fmt::Display for LocalJobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalJobState::Pending => f.write_str("PENDING"),
            LocalJobState::Running => f.write_str("RUNNING"),
            LocalJobState::Completed => f.write_str("COMPLETED"),
            LocalJobState::Failed { reason, .. } => write!(f, "FAILED ({reason})"),
            LocalJobState::Cancelled => f.write_str("CANCELLED"),
            LocalJobState::Unknown => f.write_str("UNKNOWN"),
        }
    }
}

/// A job the local scheduler knows, whoever submitted it (see
/// [`LocalScheduler::jobs`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalJobInfo {
    pub local_id: LocalJobId,
    /// Job name; jobs submitted through these adapters carry the chain job id.
    pub name: String,
    /// Slurm comment (the correlation id for jobs submitted through these adapters).
    pub comment: String,
    pub state: LocalJobState,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec::new(
            "hpc-job-456",
            Workload::Script {
                bytes: b"#!/bin/sh\necho hi\n".to_vec(),
            },
        )
    }

    /// The field named by an `InvalidSpec` error.
    fn bad_field(s: &JobSpec) -> String {
        match s.validate() {
            Err(SchedulerError::InvalidSpec { field, .. }) => field,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn validates_job_id_nodes_and_correlation_id() {
        assert!(spec().validate().is_ok());
        for bad in ["", "a/b", "../x", "a b", &"x".repeat(129)] {
            let s = JobSpec {
                job_id: bad.to_string(),
                ..spec()
            };
            assert_eq!(bad_field(&s), "job_id", "{bad:?}");
        }
        assert_eq!(bad_field(&JobSpec { nodes: 0, ..spec() }), "nodes");
        let s = JobSpec {
            correlation_id: "a\nb".into(),
            ..spec()
        };
        assert_eq!(bad_field(&s), "correlation_id");
    }

    #[test]
    fn validates_workload() {
        let script = |b: &[u8]| JobSpec {
            workload: Workload::Script { bytes: b.to_vec() },
            ..spec()
        };
        for bad in [
            &b""[..],
            b"echo hi\n",
            b" #!/bin/sh\n",
            b"\xef\xbb\xbf#!/bin/sh\n",
        ] {
            assert_eq!(bad_field(&script(bad)), "workload.script", "{bad:?}");
        }
        assert!(script(b"#!/usr/bin/env python3\nprint(1)\n")
            .validate()
            .is_ok());

        let container = |image: &str, command: &[&str]| JobSpec {
            workload: Workload::Container {
                image: image.into(),
                command: command.iter().map(|a| a.to_string()).collect(),
            },
            ..spec()
        };
        assert!(container("ghcr.io/acme/train@sha256:ab12", &[])
            .validate()
            .is_ok());
        assert!(container("alpine:3", &["sh", "-c", "echo 'a b'"])
            .validate()
            .is_ok());
        for bad in ["", "alpine 3", "alpine\n", "--privileged", "-v/:/host"] {
            assert_eq!(bad_field(&container(bad, &[])), "workload.image", "{bad:?}");
        }
        assert_eq!(
            bad_field(&container("alpine", &["ok", "a\0b"])),
            "workload.command[1]"
        );
    }

    #[test]
    fn validates_env() {
        let with_env = |pairs: &[(&str, &str)]| JobSpec {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..spec()
        };
        let ok = with_env(&[
            ("A", ""),
            ("_x1", "it's \"quoted\"\nand multi-line"),
            ("OMP_NUM_THREADS", "8"),
            ("hpc_lower_is_fine", "1"),
            (&"N".repeat(64), "x"),
        ]);
        assert!(ok.validate().is_ok());
        let cases: [(&[(&str, &str)], &str); 9] = [
            (&[("A", "1"), ("", "x")], "env[1].name"),
            (&[("1A", "x")], "env[0].name"),
            (&[("A-B", "x")], "env[0].name"),
            (&[("A B", "x")], "env[0].name"),
            (&[("É", "x")], "env[0].name"),
            (
                &[("A", "1"), ("B", "2"), ("C", "3"), ("HPC_JOB_ID", "x")],
                "env[3].name",
            ),
            (&[("SLURM_JOB_ID", "x")], "env[0].name"),
            (&[("A", "1"), ("A", "2")], "env[1].name"),
            (&[("A", "nul\0")], "env[0].value"),
        ];
        for (pairs, field) in cases {
            assert_eq!(bad_field(&with_env(pairs)), field, "{pairs:?}");
        }
        let long = "N".repeat(65);
        assert_eq!(bad_field(&with_env(&[(&long, "x")])), "env[0].name");
        // The error message names the field and the rule.
        let err = with_env(&[("HPC_X", "1")])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("env[0].name") && err.contains("reserved"),
            "{err}"
        );
    }

    #[test]
    fn validates_partition_and_output_name() {
        for good in ["gpu", "a100-80g", "x.y_z", &"p".repeat(64)] {
            let s = JobSpec {
                partition: Some(good.to_string()),
                output_name: good.to_string(),
                ..spec()
            };
            assert!(s.validate().is_ok(), "{good:?}");
        }
        for bad in ["", "a b", "gpu,cpu", "a/b", "ü", &"p".repeat(65)] {
            let s = JobSpec {
                partition: Some(bad.to_string()),
                ..spec()
            };
            assert_eq!(bad_field(&s), "partition", "{bad:?}");
        }
        for bad in [".", "..", "a/b", "../x", "a b", &"o".repeat(65)] {
            let s = JobSpec {
                output_name: bad.to_string(),
                ..spec()
            };
            assert_eq!(bad_field(&s), "output_name", "{bad:?}");
        }
        assert_eq!(spec().output_base(), "job");
        let named = JobSpec {
            output_name: "train".into(),
            ..spec()
        };
        assert_eq!(named.output_base(), "train");
    }

    #[test]
    fn state_serde_and_helpers() {
        let s = LocalJobState::failed("exit code 3", Some(3));
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(
            j,
            r#"{"state":"failed","reason":"exit code 3","exit_code":3}"#
        );
        assert_eq!(serde_json::from_str::<LocalJobState>(&j).unwrap(), s);
        // Without a code (and as written before exit codes were recorded).
        let lost = LocalJobState::failed("lost", None);
        let j = serde_json::to_string(&lost).unwrap();
        assert_eq!(j, r#"{"state":"failed","reason":"lost"}"#);
        assert_eq!(serde_json::from_str::<LocalJobState>(&j).unwrap(), lost);
        assert_eq!(s.to_string(), "FAILED (exit code 3)");
        assert!(s.is_terminal() && !s.is_active());
        assert!(LocalJobState::Running.is_active());
        assert!(!LocalJobState::Unknown.is_terminal());
        assert_eq!(
            serde_json::to_string(&LocalJobId::new("42")).unwrap(),
            "\"42\""
        );
    }

    #[test]
    fn object_safe() {
        fn _takes(_: Box<dyn LocalScheduler>) {}
    }
}
