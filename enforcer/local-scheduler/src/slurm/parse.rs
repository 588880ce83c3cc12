//! Parsers for the output of Slurm's command-line tools.
//!
//! They are public so they can be tested directly against recorded outputs.

use crate::{LocalJobId, LocalJobInfo, LocalJobState, SchedulerError};

/// Output a parser rejected: the offending line and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: String,
    pub reason: String,
}

impl ParseError {
    fn new(line: &str, reason: impl Into<String>) -> Self {
        ParseError {
            line: line.to_string(),
            reason: reason.into(),
        }
    }

    /// As a [`SchedulerError::Unparsable`] naming the command that printed the output.
    pub fn into_error(self, command: &str) -> SchedulerError {
        SchedulerError::Unparsable {
            command: command.to_string(),
            line: self.line,
            reason: self.reason,
        }
    }
}

fn lines(stdout: &str) -> impl DoubleEndedIterator<Item = &str> {
    stdout.lines().map(str::trim).filter(|l| !l.is_empty())
}

fn is_job_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `sbatch --parsable` prints `<jobid>` or `<jobid>;<cluster>`. Returns the job id.
pub fn parse_sbatch_parsable(stdout: &str) -> Result<String, ParseError> {
    let line = lines(stdout)
        .next_back()
        .ok_or_else(|| ParseError::new("", "sbatch printed no job id"))?;
    let id = line.split(';').next().unwrap_or_default().trim();
    if !is_job_number(id) {
        return Err(ParseError::new(
            line,
            "expected `<jobid>` or `<jobid>;<cluster>`",
        ));
    }
    Ok(id.to_string())
}

/// Node counts from `sinfo --format=%F` (`allocated/idle/other/total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounts {
    pub allocated: u32,
    pub idle: u32,
    /// Down, drained, failed, ... (neither allocated nor idle).
    pub other: u32,
    pub total: u32,
}

/// Parse `sinfo --noheader --format=%F`: one `A/I/O/T` line per sinfo record (one
/// record per partition when several are listed; sinfo never counts a node twice in one
/// record). The lines are summed; no output means no nodes.
pub fn parse_sinfo_aiot(stdout: &str) -> Result<NodeCounts, ParseError> {
    let mut counts = NodeCounts::default();
    for line in lines(stdout) {
        let fields: Vec<&str> = line.split('/').map(str::trim).collect();
        let [a, i, o, t] = fields[..] else {
            return Err(ParseError::new(
                line,
                "expected `allocated/idle/other/total`",
            ));
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| ParseError::new(line, format!("{s:?} is not a node count")))
        };
        counts.allocated = counts.allocated.saturating_add(num(a)?);
        counts.idle = counts.idle.saturating_add(num(i)?);
        counts.other = counts.other.saturating_add(num(o)?);
        counts.total = counts.total.saturating_add(num(t)?);
    }
    Ok(counts)
}

/// A Slurm job found by its name, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedJob {
    pub id: String,
    /// squeue: the batch script's path (`%o`); sacct: the working directory (`WorkDir`).
    pub origin: String,
}

/// Parse `squeue --noheader --format=%i|%j|%o` (or `sacct --noheader --parsable2
/// --format=JobID,JobName,WorkDir`): `<jobid>|<name>|<origin>` per line (the origin may
/// contain `|`). Returns the jobs named exactly `name` (squeue and slurmdbd match `--name`
/// case-insensitively; job ids are case-sensitive).
pub fn parse_named_jobs(stdout: &str, name: &str) -> Result<Vec<NamedJob>, ParseError> {
    let mut jobs = Vec::new();
    for line in lines(stdout) {
        let mut fields = line.splitn(3, '|');
        let (Some(id), Some(job_name), Some(origin)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(ParseError::new(
                line,
                "expected `<jobid>|<job name>|<origin>`",
            ));
        };
        if !is_job_number(id) {
            return Err(ParseError::new(line, "expected a numeric job id"));
        }
        if job_name == name {
            jobs.push(NamedJob {
                id: id.to_string(),
                origin: origin.to_string(),
            });
        }
    }
    Ok(jobs)
}

/// Number of records (non-empty lines), e.g. pending jobs from
/// `squeue --noheader --states=PENDING --format=%i` (a pending job array counts once).
pub fn count_records(stdout: &str) -> u32 {
    u32::try_from(lines(stdout).count()).unwrap_or(u32::MAX)
}

const PENDING_STATES: &[&str] = &[
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
];
const RUNNING_STATES: &[&str] = &[
    "RUNNING",
    "COMPLETING",
    "SIGNALING",
    "STAGE_OUT",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
];
const FAILED_STATES: &[&str] = &[
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "REVOKED",
];

fn known_states() -> impl Iterator<Item = &'static str> {
    PENDING_STATES
        .iter()
        .chain(RUNNING_STATES)
        .chain(FAILED_STATES)
        .chain(&["COMPLETED", "CANCELLED"])
        .copied()
}

/// Map a Slurm job state (long form, as printed by `squeue %T` or `sacct State`) to a
/// [`LocalJobState`]. Accepts `CANCELLED by 1000` (sacct) and names truncated by a
/// fixed-width sacct column (`OUT_OF_ME+`). `exit_code` is sacct's `ExitCode`
/// (`code:signal`), used in failure reasons and as the failure's exit code (when
/// non-zero and not a signal). Returns `None` for a state this adapter does not know.
///
/// | Slurm | local |
/// |---|---|
/// | PENDING, CONFIGURING, REQUEUED, REQUEUE_FED, REQUEUE_HOLD, RESV_DEL_HOLD, SPECIAL_EXIT | Pending |
/// | RUNNING, COMPLETING, SIGNALING, STAGE_OUT, RESIZING, SUSPENDED, STOPPED | Running |
/// | COMPLETED | Completed |
/// | CANCELLED | Cancelled |
/// | TIMEOUT | Failed { "time limit exceeded (slurm state TIMEOUT)" } |
/// | FAILED, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE, PREEMPTED, REVOKED | Failed { "slurm state X[, exit code N][, signal N]", exit_code: N if non-zero } |
pub fn map_slurm_state(state: &str, exit_code: Option<&str>) -> Option<LocalJobState> {
    let word = state.split_whitespace().next()?.to_ascii_uppercase();
    let name: &str = match word.strip_suffix('+') {
        Some(prefix) => {
            let mut matches = known_states().filter(|s| s.starts_with(prefix));
            match (matches.next(), matches.next()) {
                (Some(only), None) => only,
                _ => return None,
            }
        }
        None => known_states().find(|s| *s == word)?,
    };
    Some(if PENDING_STATES.contains(&name) {
        LocalJobState::Pending
    } else if RUNNING_STATES.contains(&name) {
        LocalJobState::Running
    } else if name == "COMPLETED" {
        LocalJobState::Completed
    } else if name == "CANCELLED" {
        LocalJobState::Cancelled
    } else if name == "TIMEOUT" {
        LocalJobState::failed(TIME_LIMIT_EXCEEDED, None)
    } else {
        let mut reason = format!("slurm state {name}");
        let mut code_of_exit = None;
        if let Some((code, signal)) = exit_code.and_then(parse_exit_code) {
            if code != 0 {
                reason.push_str(&format!(", exit code {code}"));
                code_of_exit = Some(code);
            }
            if signal != 0 {
                reason.push_str(&format!(", signal {signal}"));
            }
        }
        LocalJobState::failed(reason, code_of_exit)
    })
}

/// Reason of a job Slurm stopped at its time limit (the wrapper's own limit, which fires
/// first, records the exact number of seconds instead).
pub const TIME_LIMIT_EXCEEDED: &str = "time limit exceeded (slurm state TIMEOUT)";

/// sacct's `ExitCode` field: `code:signal`.
fn parse_exit_code(s: &str) -> Option<(i32, i32)> {
    let (code, signal) = s.trim().split_once(':')?;
    Some((code.parse().ok()?, signal.parse().ok()?))
}

fn map_state_line(
    line: &str,
    state: &str,
    exit: Option<&str>,
) -> Result<LocalJobState, ParseError> {
    match map_slurm_state(state, exit) {
        Some(s) => Ok(s),
        // A well-formed state name from a newer Slurm: report Unknown rather than fail.
        None if !state.is_empty()
            && state
                .split_whitespace()
                .next()
                .is_some_and(|w| w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')) =>
        {
            tracing::warn!(line, "unknown Slurm job state; reporting Unknown");
            Ok(LocalJobState::Unknown)
        }
        None => Err(ParseError::new(line, "not a Slurm job state")),
    }
}

/// Parse `squeue --noheader --format=%T` for one job. `None` when squeue printed nothing
/// (the job is no longer in the controller's memory).
pub fn parse_squeue_state(stdout: &str) -> Result<Option<LocalJobState>, ParseError> {
    match lines(stdout).next() {
        None => Ok(None),
        Some(line) => map_state_line(line, line, None).map(Some),
    }
}

/// Parse `sacct --noheader --allocations [--parsable2] --format=State,ExitCode` (or
/// `--format=State`) for one job. `None` when sacct printed nothing.
pub fn parse_sacct_state(stdout: &str) -> Result<Option<LocalJobState>, ParseError> {
    let Some(line) = lines(stdout).next() else {
        return Ok(None);
    };
    let (state, exit) = match line.split_once('|') {
        Some((state, rest)) => (state.trim(), rest.split('|').next().map(str::trim)),
        None => {
            // Fixed-width columns: "  COMPLETED      0:0 " or "CANCELLED by 1000".
            let last = line.split_whitespace().next_back();
            let exit = last.filter(|w| parse_exit_code(w).is_some());
            (line, exit)
        }
    };
    map_state_line(line, state, exit).map(Some)
}

/// The state of a Slurm job from what Slurm says (`slurm`: squeue's state, or sacct's
/// when squeue no longer knows the job) and what the wrapper recorded in the job
/// directory (`recorded`: [`crate::jobdir::outcome_from_exit_file`]):
///
/// 1. Pending / Running as Slurm says (the wrapper may have written its status while
///    Slurm still holds the allocation), and Cancelled as Slurm says (cancelling kills
///    the wrapper; a status it wrote on the way does not undo the cancel);
/// 2. else the recorded outcome: the workload's own exit code, or its time limit;
/// 3. else Slurm's terminal state (Completed, Failed with sacct's exit code, TIMEOUT);
/// 4. else Unknown.
pub fn resolve_state(
    slurm: Option<LocalJobState>,
    recorded: Option<LocalJobState>,
) -> LocalJobState {
    match (slurm, recorded) {
        (Some(s), _) if s.is_active() || s == LocalJobState::Cancelled => s,
        (_, Some(recorded)) => recorded,
        (Some(s), None) => s,
        (None, None) => LocalJobState::Unknown,
    }
}

/// Parse `squeue --noheader --all --states=all --format=%i|%j|%T|%k`: one job per line,
/// `<jobid>|<name>|<state>|<comment>`. The comment (`%k`, free text) is the rest of the
/// line and may contain `|`; squeue prints `(null)` for none, which becomes empty. A job
/// name containing `|` is split at the first field that is a known Slurm state name.
/// Job ids of array and heterogeneous jobs (`123_4`, `123_[5-9%2]`, `124+0`) are kept as
/// printed.
pub fn parse_squeue_jobs(stdout: &str) -> Result<Vec<LocalJobInfo>, ParseError> {
    lines(stdout).map(parse_squeue_job_line).collect()
}

fn parse_squeue_job_line(line: &str) -> Result<LocalJobInfo, ParseError> {
    let fields: Vec<&str> = line.split('|').collect();
    if fields.len() < 4 {
        return Err(ParseError::new(
            line,
            "expected `<jobid>|<name>|<state>|<comment>`",
        ));
    }
    let id = fields[0];
    let id_ok = id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b"_[]-,+%".contains(&b));
    if !id_ok {
        return Err(ParseError::new(line, "expected a Slurm job id"));
    }
    // The state is the first field (after the name's first part) that names a known
    // state; without one, the third field (a state of a newer Slurm, or an error below).
    let last_state = fields.len() - 2;
    let at = (2..=last_state)
        .find(|&i| known_states().any(|k| k == fields[i]))
        .unwrap_or(2);
    let state = map_state_line(line, fields[at], None)?;
    let comment = fields[at + 1..].join("|");
    Ok(LocalJobInfo {
        local_id: LocalJobId::new(id),
        name: fields[1..at].join("|"),
        comment: if comment == "(null)" {
            String::new()
        } else {
            comment
        },
        state,
    })
}

/// Parse `scontrol ping`: `Slurmctld(primary) at ctl01 is UP`, one line per controller
/// (older releases: `Slurmctld(primary/backup) at ctl01/ctl02 are UP/DOWN`). True when
/// a controller is up.
pub fn parse_scontrol_ping(stdout: &str) -> Result<bool, ParseError> {
    let mut seen = None;
    for line in lines(stdout) {
        if !line.starts_with("Slurmctld") {
            continue;
        }
        let status = line
            .rsplit_once(" is ")
            .or_else(|| line.rsplit_once(" are "))
            .map(|(_, s)| s.trim())
            .ok_or_else(|| ParseError::new(line, "expected `... is UP` or `... is DOWN`"))?;
        let primary = status.split('/').next().unwrap_or_default();
        let up = match primary {
            "UP" => true,
            "DOWN" => false,
            _ => return Err(ParseError::new(line, "expected UP or DOWN")),
        };
        seen = Some(seen.unwrap_or(false) || up);
    }
    seen.ok_or_else(|| {
        ParseError::new(
            lines(stdout).next().unwrap_or_default(),
            "no Slurmctld status line",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_states() {
        assert_eq!(
            map_slurm_state("CANCELLED+", None),
            Some(LocalJobState::Cancelled)
        );
        assert_eq!(
            map_slurm_state("OUT_OF_ME+", Some("0:125")),
            Some(LocalJobState::failed(
                "slurm state OUT_OF_MEMORY, signal 125",
                None
            ))
        );
        // Ambiguous prefix.
        assert_eq!(map_slurm_state("RE+", None), None);
        assert_eq!(map_slurm_state("", None), None);
    }
}
