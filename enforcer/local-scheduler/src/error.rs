use std::path::PathBuf;
use std::time::Duration;

/// What went wrong talking to the local scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A configured scheduler program does not exist (or is not on `PATH`).
    #[error("scheduler binary {} not found (check the local scheduler adapter configuration)", path.display())]
    BinaryMissing { path: PathBuf },

    /// A scheduler program exists but could not be started.
    #[error("cannot run {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A scheduler command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        /// `exit code N` or `killed by signal N`.
        status: String,
        /// Trimmed standard error of the command.
        stderr: String,
    },

    /// A scheduler command did not finish in time (it was killed).
    #[error("`{command}` did not finish within {timeout:?}")]
    CommandTimeout { command: String, timeout: Duration },

    /// A scheduler command printed something this adapter does not understand.
    #[error("cannot parse output of `{command}`: {reason}: offending line {line:?}")]
    Unparsable {
        command: String,
        line: String,
        reason: String,
    },

    /// The embedded scheduler does not have enough free nodes for the job.
    #[error("capacity exceeded: job needs {requested} node(s), {free} of {total} free")]
    CapacityExceeded {
        requested: u32,
        free: u32,
        total: u32,
    },

    /// The job spec cannot be submitted as given (also: a container workload on an
    /// adapter without a container runtime, `field` = `workload.container`). `field`
    /// names the offending field, with its index for list entries (`env[3].name`).
    #[error("invalid job spec: {field}: {reason}")]
    InvalidSpec { field: String, reason: String },

    /// The adapter configuration is unusable.
    #[error("invalid local scheduler configuration: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    /// No job with this local id was submitted through this adapter.
    #[error("no such local job: {id}")]
    JobNotFound { id: String },

    /// Local file-system failure (work directory, job directory, job index).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl SchedulerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SchedulerError::Io {
            context: context.into(),
            source,
        }
    }

    /// Errors that may go away by retrying later (scheduler busy or briefly down).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SchedulerError::CommandFailed { .. }
                | SchedulerError::CommandTimeout { .. }
                | SchedulerError::CapacityExceeded { .. }
                | SchedulerError::Io { .. }
        )
    }
}
