//! The job directory and the wrapper script, shared by both adapters.
//!
//! Every job gets `<jobs dir>/<job_id>/` (embedded: `<workdir>/jobs`; Slurm: the
//! configured `jobs_dir`), mode 0700:
//!
//! | file | written by | content |
//! |---|---|---|
//! | `script` (0700) | adapter | the workload script; for a container workload a generated launcher, `exec <runtime...> --env NAME=VALUE... <image> <command...>` |
//! | `environment` (0600) | adapter | `export NAME='value'` lines: `HPC_JOB_ID`, `HPC_CORRELATION_ID`, `HPC_NODES`, `HPC_GPUS_PER_NODE`, then (script workloads) the job's `env` |
//! | `run.sh` (0700) | adapter | the wrapper ([`wrapper_script`]): what the embedded scheduler starts and what `sbatch` submits |
//! | `<output_name>.out`, `<output_name>.err` | wrapper | the workload's stdout and stderr |
//! | `workload_exit` | wrapper (inner shell) | the workload's own exit status, read by the wrapper |
//! | `exit_code` | wrapper, one line when the workload ended (a file without its final newline is a write that did not finish, read as no status) | `N`: the workload exited with N; `timeout N`: the time limit of N s killed it ([`outcome_from_exit_file`]) |
//! | `run.log` | embedded only | the wrapper's own stdout/stderr (normally empty) |
//! | `slurm-<id>.log` | Slurm only | the batch step's stdout/stderr (`--output`, normally empty) |
//!
//! Why the wrapper looks the way it does:
//! * `exit_code` lets an adapter report the true outcome after an enforcer restart or
//!   after Slurm purged the job; the wrapper exits with the workload's status as well, so
//!   Slurm's own state agrees.
//! * The job's variables are set only in the shell that runs the workload (it sources
//!   `environment`), so a job's `PATH` or `LD_PRELOAD` cannot replace the wrapper's own
//!   `timeout` and escape its time limit, nor change how it records the status.
//! * Time limit: `timeout --kill-after=10s <N>s` sends TERM to the workload's process
//!   group after N s and KILL 10 s later. The wrapper enforces it, so it holds while the
//!   enforcer is down. The inner shell records the workload's own status in
//!   `workload_exit`; only when that is missing *and* `timeout` answered 124 (timed out)
//!   or 137 (killed after the grace) is the job recorded as `timeout N`, so a workload
//!   that exits 124 itself is reported as exit code 124.
//! * Container workloads: the job's variables are passed as `--env NAME=VALUE` to the
//!   runtime (docker, podman and apptainer accept that before the image) instead of
//!   being exported on the host, where `DOCKER_HOST` or `LD_PRELOAD` would change what
//!   the runtime itself does. The values are visible in the host's process list while
//!   the runtime runs.
//! * A requeued Slurm job runs the wrapper again: it clears the previous status first
//!   (with `rm` only when one is there: `[ -e ]` is a shell builtin, and most jobs start
//!   in a fresh directory, so most jobs start one process fewer).
//! * The status is written by the shell's own `printf` (no `mv` of a temp file: one
//!   process fewer per job). Every adapter reads it only after the wrapper ended, and a
//!   write cut short by a crash lacks the final newline, so it reads as no status, never
//!   as a wrong one.
//!
//! Jobs run as the adapter's Unix user: a workload can read and write the other job
//! directories of that user. Separating tenants needs separate users or containers.

use std::borrow::Cow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::command::shell_quote;
use crate::{JobSpec, LocalJobState, SchedulerError, Workload};

pub const SCRIPT_FILE: &str = "script";
pub const ENV_FILE: &str = "environment";
pub const WRAPPER_FILE: &str = "run.sh";
pub const EXIT_FILE: &str = "exit_code";
/// Grace between TERM and KILL when the time limit is reached (`timeout --kill-after`).
pub const KILL_AFTER: &str = "10s";

/// Files a previous attempt may have left and the wrapper rewrites.
const STALE_FILES: [&str; 2] = ["exit_code", "workload_exit"];

/// Reason of a job killed by its time limit.
pub fn time_limit_reason(limit_seconds: u64) -> String {
    format!("time limit of {limit_seconds} s exceeded")
}

/// Reason of a non-zero exit code. A shell reports a workload killed by signal S as
/// 128 + S, which the reason spells out.
pub fn exit_code_reason(code: i32) -> String {
    match code {
        129..=192 => format!("exit code {code} (128 + signal {})", code - 128),
        _ => format!("exit code {code}"),
    }
}

/// The outcome recorded in a job's `exit_code` file: `0` → `Completed`; `N` →
/// `Failed { exit_code: Some(N) }`; `timeout N` → `Failed { "time limit of N s
/// exceeded", None }`; anything else → `Failed { "unreadable exit status ..." }`.
pub fn outcome_from_exit_file(text: &str) -> LocalJobState {
    let text = text.trim();
    if let Some(limit) = text
        .strip_prefix("timeout ")
        .and_then(|n| n.parse::<u64>().ok())
    {
        return LocalJobState::failed(time_limit_reason(limit), None);
    }
    match text.parse::<i32>() {
        Ok(0) => LocalJobState::Completed,
        Ok(code) => LocalJobState::failed(exit_code_reason(code), Some(code)),
        Err(_) => LocalJobState::failed(format!("unreadable exit status {text:?}"), None),
    }
}

/// The recorded outcome of the job in `dir`; `None` while (or if) the wrapper has not
/// written one, or did not finish writing it (no final newline).
pub(crate) fn read_outcome(dir: &Path) -> Result<Option<LocalJobState>, SchedulerError> {
    let path = dir.join(EXIT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) if !bytes.ends_with(b"\n") => Ok(None),
        Ok(bytes) => Ok(Some(outcome_from_exit_file(&String::from_utf8_lossy(
            &bytes,
        )))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SchedulerError::io(
            format!("cannot read {}", path.display()),
            e,
        )),
    }
}

/// `HPC_*` variables every job gets.
fn scheduler_variables(spec: &JobSpec) -> [(&'static str, String); 4] {
    [
        ("HPC_JOB_ID", spec.job_id.clone()),
        ("HPC_CORRELATION_ID", spec.correlation_id.clone()),
        ("HPC_NODES", spec.nodes.to_string()),
        ("HPC_GPUS_PER_NODE", spec.gpus_per_node.to_string()),
    ]
}

/// The `environment` file: the `HPC_*` variables, plus the job's own for a script
/// workload (a container gets them through `--env`, see the module documentation).
pub fn environment_file(spec: &JobSpec) -> String {
    let mut text = format!(
        "# Environment of job {} (sourced by the shell that runs ./script).\n",
        spec.job_id
    );
    let own: &[(String, String)] = match spec.workload {
        Workload::Script { .. } => &spec.env,
        Workload::Container { .. } => &[],
    };
    let scheduler = scheduler_variables(spec);
    let all = scheduler
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(own.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (name, value) in all {
        text.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    text
}

/// The `script` of a container workload: the runtime with the job's variables as
/// `--env NAME=VALUE`, the image and the command.
pub fn container_launcher(
    runtime: &[String],
    spec: &JobSpec,
    image: &str,
    command: &[String],
) -> String {
    let mut words: Vec<String> = runtime.to_vec();
    let scheduler = scheduler_variables(spec);
    let vars = scheduler
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (name, value) in vars {
        words.push("--env".into());
        words.push(format!("{name}={value}"));
    }
    words.push(image.to_string());
    words.extend(command.iter().cloned());
    let line: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    format!(
        "#!/bin/sh\n# Container workload of job {} (generated by hpc-local-scheduler).\nexec {}\n",
        spec.job_id,
        line.join(" ")
    )
}

/// The wrapper `run.sh` of a job whose directory is `dir` (absolute). See the module
/// documentation for why it is built this way.
pub fn wrapper_script(dir: &str, spec: &JobSpec) -> String {
    let out = shell_quote(&format!("{}.out", spec.output_base()));
    let err = shell_quote(&format!("{}.err", spec.output_base()));
    let limit = spec.max_runtime_seconds;
    let (launcher, timed_out) = if limit > 0 {
        (
            format!("timeout --kill-after={KILL_AFTER} {limit}s "),
            format!(
                "elif [ \"$rc\" -eq 124 ] || [ \"$rc\" -eq 137 ]; then status='timeout {limit}'\n"
            ),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        r#"#!/bin/sh
# Wrapper of job {job} (generated by hpc-local-scheduler): runs ./script with the
# variables of ./environment, its output in {out} and {err}, and records its exit
# status in ./exit_code ("N", or "timeout N" when the time limit of N s stopped it).
cd {dir} || exit 1
if {any_stale}; then rm -f {stale}; fi
{launcher}/bin/sh -c '. ./environment && ./script; echo $? > workload_exit' </dev/null >{out} 2>{err}
rc=$?
if [ -f workload_exit ]; then read -r status < workload_exit
{timed_out}else status=$rc
fi
printf '%s\n' "$status" > exit_code
# The scheduler sees the workload's own status (Slurm: FAILED with its exit code).
case "$status" in timeout*) exit "$rc" ;; *) exit "$status" ;; esac
"#,
        job = spec.job_id,
        dir = shell_quote(dir),
        // `-h` too: `-e` is false for a dangling symlink, which `rm` must still remove.
        any_stale = STALE_FILES
            .map(|f| format!("[ -e {f} ] || [ -h {f} ]"))
            .join(" || "),
        stale = STALE_FILES.join(" "),
    )
}

/// The bytes of `script` for `spec`; a container workload needs `runtime`.
pub(crate) fn script_bytes<'a>(
    spec: &'a JobSpec,
    runtime: Option<&[String]>,
) -> Result<Cow<'a, [u8]>, SchedulerError> {
    match &spec.workload {
        Workload::Script { bytes } => Ok(Cow::Borrowed(bytes)),
        Workload::Container { image, command } => match runtime {
            Some(runtime) => Ok(Cow::Owned(
                container_launcher(runtime, spec, image, command).into_bytes(),
            )),
            None => Err(SchedulerError::InvalidSpec {
                field: "workload.container".into(),
                reason: "this local scheduler has no container runtime configured".into(),
            }),
        },
    }
}

/// Check a configured container runtime command (`["docker", "run", "--rm"]`).
pub(crate) fn validate_runtime(runtime: Option<&[String]>) -> Result<(), SchedulerError> {
    match runtime {
        Some(words) if words.first().is_none_or(String::is_empty) => {
            Err(SchedulerError::InvalidConfig {
                field: "container_runtime",
                reason: "must name a program".into(),
            })
        }
        Some(words) if words.iter().any(|w| w.contains('\0')) => {
            Err(SchedulerError::InvalidConfig {
                field: "container_runtime",
                reason: "must not contain NUL bytes".into(),
            })
        }
        _ => Ok(()),
    }
}

/// Create (if needed) the directory holding the job directories and return its
/// absolute path. It must be valid UTF-8 (it is written into the wrapper) and free of
/// `%` (Slurm expands it in `--output`).
pub(crate) fn jobs_root(path: &Path, field: &'static str) -> Result<PathBuf, SchedulerError> {
    std::fs::create_dir_all(path).map_err(|e| {
        SchedulerError::io(format!("cannot create directory {}", path.display()), e)
    })?;
    let abs = path.canonicalize().map_err(|e| {
        SchedulerError::io(format!("cannot resolve directory {}", path.display()), e)
    })?;
    match abs.to_str() {
        Some(s) if !s.contains('%') && !s.chars().any(char::is_control) => Ok(abs),
        _ => Err(SchedulerError::InvalidConfig {
            field,
            reason: format!(
                "{} must be valid UTF-8 without '%' or control characters",
                abs.display()
            ),
        }),
    }
}

/// Create the job directory `dir` (absolute, inside a [`jobs_root`]) with its `script`,
/// `environment` and `run.sh`, removing a status left by an earlier attempt.
pub(crate) fn prepare(dir: &Path, spec: &JobSpec, script: &[u8]) -> Result<(), SchedulerError> {
    let ctx = |what: &str| format!("cannot {what} job directory {}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| SchedulerError::io(ctx("create"), e))?;
    set_mode(dir, 0o700)?;
    for stale in STALE_FILES {
        match std::fs::remove_file(dir.join(stale)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(SchedulerError::io(ctx("clean"), e))
            }
            _ => {}
        }
    }
    let dir_text = dir.to_string_lossy();
    write_file(&dir.join(SCRIPT_FILE), script, 0o700)?;
    write_file(
        &dir.join(ENV_FILE),
        environment_file(spec).as_bytes(),
        0o600,
    )?;
    write_file(
        &dir.join(WRAPPER_FILE),
        wrapper_script(&dir_text, spec).as_bytes(),
        0o700,
    )
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SchedulerError> {
    std::fs::write(path, bytes)
        .map_err(|e| SchedulerError::io(format!("cannot write {}", path.display()), e))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SchedulerError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| SchedulerError::io(format!("cannot set permissions of {}", path.display()), e))
}

/// Replace `path` with `bytes` atomically (temp file, fsync, rename), so a crash leaves
/// either the old or the new content. Each write has its own temp file, so concurrent
/// writers (a scheduler that is shutting down and its successor) cannot take each
/// other's; the last rename wins.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SchedulerError> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let ctx = |what: &str| format!("cannot {what} {}", path.display());
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}.{n}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| SchedulerError::io(ctx("write"), e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| SchedulerError::io(ctx("sync"), e))?;
    std::fs::rename(&tmp, path).map_err(|e| SchedulerError::io(ctx("replace"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prepare a job directory for a script that exits 0 only when no status of an
    /// earlier attempt is there, leave `stale` files and `dangling` symlinks in it (a
    /// requeued Slurm job), run its wrapper and return the recorded outcome.
    fn rerun_with_stale(stale: &[&str], dangling: &[&str]) -> LocalJobState {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("job-1");
        let checks: Vec<String> = STALE_FILES
            .iter()
            .map(|f| format!("[ ! -e {f} ] && [ ! -h {f} ]"))
            .collect();
        let script = format!("#!/bin/sh\n{}\n", checks.join(" && "));
        let spec = JobSpec::new("job-1", Workload::Script { bytes: Vec::new() });
        prepare(&dir, &spec, script.as_bytes()).unwrap();
        for file in stale {
            std::fs::write(dir.join(file), "7\n").unwrap();
        }
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        for file in dangling {
            std::os::unix::fs::symlink(elsewhere.join(file), dir.join(file)).unwrap();
        }
        let status = std::process::Command::new("/bin/sh")
            .arg(dir.join(WRAPPER_FILE))
            .status()
            .unwrap();
        let outcome = read_outcome(&dir)
            .unwrap()
            .expect("the wrapper recorded a status");
        assert_eq!(status.success(), outcome == LocalJobState::Completed);
        let written_through_links = std::fs::read_dir(&elsewhere).unwrap().count();
        assert_eq!(written_through_links, 0, "written through a stale link");
        outcome
    }

    #[test]
    fn the_wrapper_clears_an_earlier_attempts_status_before_the_workload_runs() {
        assert_eq!(rerun_with_stale(&[], &[]), LocalJobState::Completed);
        for stale in STALE_FILES {
            assert_eq!(
                rerun_with_stale(&[stale], &[]),
                LocalJobState::Completed,
                "{stale}"
            );
            // A link left by an earlier attempt, to a file that is not there.
            assert_eq!(
                rerun_with_stale(&[], &[stale]),
                LocalJobState::Completed,
                "{stale}"
            );
        }
        assert_eq!(
            rerun_with_stale(&STALE_FILES, &[]),
            LocalJobState::Completed
        );
    }

    #[test]
    fn a_status_without_its_final_newline_is_a_write_that_did_not_finish() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_outcome(dir.path()).unwrap(), None);
        for (text, outcome) in [
            ("", None),
            ("0", None),
            ("timeout 9", None),
            ("0\n", Some(LocalJobState::Completed)),
            ("3\n", Some(LocalJobState::failed("exit code 3", Some(3)))),
        ] {
            std::fs::write(dir.path().join(EXIT_FILE), text).unwrap();
            assert_eq!(read_outcome(dir.path()).unwrap(), outcome, "{text:?}");
        }
    }

    #[test]
    fn exit_file_outcomes() {
        assert_eq!(outcome_from_exit_file("0\n"), LocalJobState::Completed);
        assert_eq!(
            outcome_from_exit_file("3\n"),
            LocalJobState::failed("exit code 3", Some(3))
        );
        assert_eq!(
            outcome_from_exit_file("124\n"),
            LocalJobState::failed("exit code 124", Some(124))
        );
        assert_eq!(
            outcome_from_exit_file("137\n"),
            LocalJobState::failed("exit code 137 (128 + signal 9)", Some(137))
        );
        assert_eq!(
            outcome_from_exit_file("timeout 90\n"),
            LocalJobState::failed("time limit of 90 s exceeded", None)
        );
        for garbage in ["", "timeout", "timeout x", "ok", "1 2"] {
            assert!(
                matches!(
                    outcome_from_exit_file(garbage),
                    LocalJobState::Failed { exit_code: None, ref reason } if reason.starts_with("unreadable exit status")
                ),
                "{garbage:?}"
            );
        }
    }
}
