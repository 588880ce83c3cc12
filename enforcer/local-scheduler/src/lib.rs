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
//!   configured node capacity, and keeps a small JSON index in its work directory so a
//!   restarted enforcer still knows which jobs finished and never starts a job twice.
//! * [`SlurmScheduler`]: drives a Slurm cluster through its command-line tools
//!   (`sbatch`, `squeue`, `sinfo`, `scancel`, optionally `sacct` and `scontrol`).
//!
//! Both are used through the object-safe [`LocalScheduler`] trait
//! (`Box<dyn LocalScheduler>` / `Arc<dyn LocalScheduler>`).

mod command;
pub mod embedded;
mod error;
pub mod slurm;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use embedded::{EmbeddedConfig, EmbeddedScheduler};
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The on-chain job id; also the idempotency key. 1-128 characters of
    /// `[A-Za-z0-9._:-]`.
    pub job_id: String,
    /// Nodes the job occupies (at least 1).
    pub nodes: u32,
    /// GPUs needed on each node (0 = none).
    pub gpus_per_node: u32,
    /// Wall-clock limit; 0 = no limit set by the enforcer.
    pub max_runtime_seconds: u64,
    /// Program and arguments. Empty = the adapter's default command (embedded only).
    pub command: Vec<String>,
    /// Correlation id carried into the job (environment / Slurm comment) and logs.
    pub correlation_id: String,
}

impl JobSpec {
    /// Check the fields every adapter relies on.
    pub fn validate(&self) -> Result<(), SchedulerError> {
        validate_job_id(&self.job_id)?;
        if self.nodes == 0 {
            return Err(SchedulerError::InvalidSpec {
                field: "nodes",
                reason: "must be at least 1".into(),
            });
        }
        if self.correlation_id.chars().any(char::is_control) {
            return Err(SchedulerError::InvalidSpec {
                field: "correlation_id",
                reason: "must not contain control characters".into(),
            });
        }
        if let Some(i) = self.command.iter().position(|a| a.contains('\0')) {
            return Err(SchedulerError::InvalidSpec {
                field: "command",
                reason: format!("argument {i} contains a NUL byte"),
            });
        }
        Ok(())
    }
}

fn validate_job_id(id: &str) -> Result<(), SchedulerError> {
    if id.is_empty()
        || id.len() > MAX_JOB_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(SchedulerError::InvalidSpec {
            field: "job_id",
            reason: format!(
                "{id:?} must be 1-{MAX_JOB_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ),
        });
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
    /// Finished successfully.
    Completed,
    /// Finished unsuccessfully; `reason` says why (exit code, signal, timeout, ...).
    Failed { reason: String },
    /// Cancelled on request.
    Cancelled,
    /// The scheduler no longer knows (e.g. the job ran across an enforcer restart, or
    /// Slurm purged it and accounting is not configured).
    Unknown,
}

impl LocalJobState {
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
            LocalJobState::Failed { reason } => write!(f, "FAILED ({reason})"),
            LocalJobState::Cancelled => f.write_str("CANCELLED"),
            LocalJobState::Unknown => f.write_str("UNKNOWN"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            job_id: "hpc-job-456".into(),
            nodes: 1,
            ..Default::default()
        }
    }

    #[test]
    fn validates_job_spec() {
        assert!(spec().validate().is_ok());
        for bad in ["", "a/b", "../x", "a b", &"x".repeat(129)] {
            let s = JobSpec {
                job_id: bad.to_string(),
                ..spec()
            };
            assert!(
                matches!(
                    s.validate(),
                    Err(SchedulerError::InvalidSpec {
                        field: "job_id",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        let s = JobSpec { nodes: 0, ..spec() };
        assert!(matches!(
            s.validate(),
            Err(SchedulerError::InvalidSpec { field: "nodes", .. })
        ));
        let s = JobSpec {
            correlation_id: "a\nb".into(),
            ..spec()
        };
        assert!(s.validate().is_err());
        let s = JobSpec {
            command: vec!["a\0".into()],
            ..spec()
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn state_serde_and_helpers() {
        let s = LocalJobState::Failed {
            reason: "exit code 3".into(),
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"{"state":"failed","reason":"exit code 3"}"#);
        assert_eq!(serde_json::from_str::<LocalJobState>(&j).unwrap(), s);
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
