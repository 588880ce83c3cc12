//! Running scheduler command-line tools.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;

use crate::SchedulerError;

/// One invocation of a scheduler tool.
pub(crate) struct Invocation<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    /// Prefixes of inherited variables removed from the child's environment (for
    /// example `SQUEUE_` so that `SQUEUE_FORMAT` / `SQUEUE_STATES` set for the
    /// enforcer's user cannot change the output we parse).
    pub scrub_env_prefixes: &'static [&'static str],
    /// Variables set for the child (after scrubbing).
    pub env: Vec<(&'static str, &'a OsStr)>,
    pub timeout: Duration,
}

pub(crate) struct Output {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The failure as a [`SchedulerError::CommandFailed`].
    pub fn failed(&self) -> SchedulerError {
        SchedulerError::CommandFailed {
            command: self.command.clone(),
            status: describe_status(self.status),
            stderr: self.stderr.trim().to_string(),
        }
    }
}

impl Invocation<'_> {
    /// Human-readable command line for errors and logs.
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&shell_quote(a));
        }
        s
    }

    /// Run to completion, capturing output. A non-zero exit is *not* an error here;
    /// callers decide (some failures, like "Invalid job id specified", are answers).
    pub async fn run(self) -> Result<Output, SchedulerError> {
        let command = self.display();
        let mut cmd = Command::new(self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !self.scrub_env_prefixes.is_empty() {
            for (key, _) in std::env::vars_os() {
                if let Some(k) = key.to_str() {
                    if self.scrub_env_prefixes.iter().any(|p| k.starts_with(p)) {
                        cmd.env_remove(&key);
                    }
                }
            }
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        tracing::debug!(%command, "running scheduler command");
        let child = cmd.spawn().map_err(|e| spawn_error(self.program, e))?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| SchedulerError::io(format!("waiting for `{command}`"), e))?,
            // Dropping the future drops the child, which kills it (kill_on_drop).
            Err(_) => {
                return Err(SchedulerError::CommandTimeout {
                    command,
                    timeout: self.timeout,
                })
            }
        };
        Ok(Output {
            command,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

pub(crate) fn spawn_error(program: &Path, e: std::io::Error) -> SchedulerError {
    if e.kind() == std::io::ErrorKind::NotFound {
        SchedulerError::BinaryMissing {
            path: PathBuf::from(program),
        }
    } else {
        SchedulerError::Spawn {
            path: PathBuf::from(program),
            source: e,
        }
    }
}

/// `exit code N` / `killed by signal N`.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "unknown exit status".to_string(),
    }
}

/// Quote one word for a POSIX shell (`sh`): plain words stay as they are, anything else
/// goes in single quotes with embedded quotes escaped (`'\''`).
pub(crate) fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("/usr/bin/python3"), "/usr/bin/python3");
        assert_eq!(shell_quote("--x=1"), "--x=1");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME;rm"), "'$HOME;rm'");
        assert_eq!(shell_quote("a\nb"), "'a\nb'");
    }

    #[tokio::test]
    async fn quoted_words_round_trip_through_sh() {
        let words: Vec<String> = vec![
            "printf".into(),
            "%s|".into(),
            "a b".into(),
            "it's".into(),
            "$HOME".into(),
            "".into(),
            "\"q\"".into(),
            "back\\slash".into(),
            "new\nline".into(),
        ];
        let line: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        let line = line.join(" ");
        let out = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "a b|it's|$HOME||\"q\"|back\\slash|new\nline|"
        );
    }
}
