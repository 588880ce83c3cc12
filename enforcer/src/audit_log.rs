//! The JSON-lines audit log, with the event names of the routing policy document:
//! `routing_enforced`, `routing_enforcement_failed`, `routing_fallback_used`,
//! `routing_decision_refreshed`, `routing_violation_threshold_exceeded`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct AuditEntry<'a> {
    /// Local wall-clock time of the log line (RFC 3339); routing decisions never use it.
    pub ts: String,
    pub event: &'a str,
    pub job_id: &'a str,
    pub decision_id: &'a str,
    pub cluster_id: &'a str,
    pub provider: &'a str,
    pub correlation_id: &'a str,
    pub reason: &'a str,
}

pub struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Appends one line and flushes it.
    pub fn write(&self, entry: &AuditEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut file = self.file.lock().expect("audit log lock");
        file.write_all(&line)?;
        file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        for event in ["routing_enforced", "routing_fallback_used"] {
            log.write(&AuditEntry {
                ts: "2026-01-01T00:00:00Z".into(),
                event,
                job_id: "hpc-job-1",
                decision_id: "hpc-decision-1",
                cluster_id: "c",
                provider: "p",
                correlation_id: "x",
                reason: "r",
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let events: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(events, vec!["routing_enforced", "routing_fallback_used"]);
    }
}
