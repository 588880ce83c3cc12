//! A job table made durable as a snapshot file plus an append-only journal.
//!
//! Rewriting the whole table at every change cost time in proportion to every job the
//! scheduler ever ran: after 90 000 jobs an enforcer wrote megabytes per change and fell
//! behind. Now a change appends the changed records (one JSON line each, one `fdatasync`
//! per group of changes), and the snapshot is rewritten only when the journal has grown
//! past the table's size (so the cost per change stays bounded).
//!
//! * Snapshot `<name>.json`: `{"version": V, "journal": G, "jobs": [...]}`, replaced
//!   atomically. `journal` names the generation of the journal that continues it.
//! * Journal `<name>.<G>.journal`: one change per line, in order. A compaction writes
//!   the snapshot of generation `G + 1` and then starts an empty journal of that generation,
//!   so a crash between the two never replays an older journal over a newer snapshot.
//! * A last line without its newline is a group whose write was cut (by a crash, before the
//!   change was reported durable): it is dropped and cut from the file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::jobdir::write_atomic;
use crate::SchedulerError;

/// Journal lines always allowed before a compaction, however small the table.
const MIN_LINES_BEFORE_COMPACTION: u64 = 4_096;

/// The snapshot file; `J` is `Vec<R>` when read, `&[R]` when written.
#[derive(Serialize, Deserialize)]
struct SnapshotFile<J> {
    version: u32,
    /// Generation of the journal that continues this snapshot; absent in a snapshot written
    /// before journals (whatever journal lies beside it is not its continuation).
    #[serde(default)]
    journal: Option<u64>,
    jobs: J,
}

/// What [`Journal::open`] found on disk.
pub(crate) struct Loaded<R, C> {
    /// No snapshot of the current version names the journal: the caller should
    /// [`Journal::compact`] now, so that an older reader refuses the files rather than
    /// ignore the journal (and a missing snapshot is written once).
    pub needs_snapshot: bool,
    /// The snapshot's records.
    pub snapshot: Vec<R>,
    /// The changes journaled after it, in order.
    pub changes: Vec<C>,
}

/// The open journal of a table whose snapshot is `snapshot_path`.
pub(crate) struct Journal {
    snapshot_path: PathBuf,
    version: u32,
    generation: u64,
    file: File,
    lines: u64,
}

pub(crate) fn corrupt(path: &Path, reason: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::io(
        format!("corrupt job index {}", path.display()),
        std::io::Error::new(std::io::ErrorKind::InvalidData, reason.to_string()),
    )
}

impl Journal {
    /// Reads the snapshot (if any) and its journal, and opens the journal for appending.
    /// Snapshots are written with `version`; a newer one is refused before anything on
    /// disk is touched.
    pub fn open<R: DeserializeOwned, C: DeserializeOwned>(
        snapshot_path: &Path,
        version: u32,
    ) -> Result<(Self, Loaded<R, C>), SchedulerError> {
        let snapshot = match std::fs::read(snapshot_path) {
            Ok(bytes) => serde_json::from_slice::<SnapshotFile<Vec<R>>>(&bytes)
                .map_err(|e| corrupt(snapshot_path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SnapshotFile {
                version: 0,
                journal: None,
                jobs: Vec::new(),
            },
            Err(e) => {
                return Err(SchedulerError::io(
                    format!("cannot read job index {}", snapshot_path.display()),
                    e,
                ))
            }
        };
        if snapshot.version > version {
            return Err(corrupt(
                snapshot_path,
                format!(
                    "version {} is newer than this scheduler ({version})",
                    snapshot.version
                ),
            ));
        }
        let generation = snapshot.journal.unwrap_or(0);
        let path = journal_path(snapshot_path, generation);
        let changes = match snapshot.journal {
            Some(_) => replay(&path)?,
            None => Vec::new(),
        };
        let file = open_append(&path)?;
        let journal = Journal {
            snapshot_path: snapshot_path.to_path_buf(),
            version,
            generation,
            file,
            lines: changes.len() as u64,
        };
        journal.remove_older_journals();
        Ok((
            journal,
            Loaded {
                needs_snapshot: snapshot.version < version || snapshot.journal.is_none(),
                snapshot: snapshot.jobs,
                changes,
            },
        ))
    }

    /// Appends `changes` durably (one write and one `fdatasync` for all of them). A failed
    /// append is cut off again, so the next one does not follow half a line.
    pub fn append<C: Serialize>(&mut self, changes: &[C]) -> Result<(), SchedulerError> {
        let mut buf = Vec::new();
        for r in changes {
            serde_json::to_writer(&mut buf, r).map_err(|e| corrupt(&self.path(), e))?;
            buf.push(b'\n');
        }
        let path = self.path();
        let failed = |e| SchedulerError::io(format!("cannot append to {}", path.display()), e);
        let before = self.file.metadata().map_err(failed)?.len();
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let cut = self
                .file
                .set_len(before)
                .and_then(|()| self.file.sync_data());
            if let Err(cut) = cut {
                tracing::warn!(path = %path.display(), error = %cut, "cannot cut off a failed journal append");
            }
            return Err(failed(e));
        }
        self.lines += changes.len() as u64;
        Ok(())
    }

    /// Whether the journal has outgrown a table of `live` records.
    pub fn should_compact(&self, live: usize) -> bool {
        self.lines > MIN_LINES_BEFORE_COMPACTION.max(live as u64)
    }

    /// Writes the whole table as the next generation's snapshot and starts its journal.
    pub fn compact<R: Serialize>(&mut self, all: &[R]) -> Result<(), SchedulerError> {
        let next = self.generation + 1;
        let new_journal = journal_path(&self.snapshot_path, next);
        // Empty (a compaction cut short may have left one) and durable before the snapshot
        // names it.
        File::create(&new_journal)
            .and_then(|f| f.sync_all())
            .map_err(|e| {
                SchedulerError::io(format!("cannot create {}", new_journal.display()), e)
            })?;
        let file = open_append(&new_journal)?;
        sync_dir(&self.snapshot_path)?;
        let snapshot = SnapshotFile {
            version: self.version,
            journal: Some(next),
            jobs: all,
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|e| corrupt(&self.snapshot_path, e))?;
        write_atomic(&self.snapshot_path, &bytes)?;
        // The rename durable before the journals it replaces go.
        sync_dir(&self.snapshot_path)?;
        self.generation = next;
        self.file = file;
        self.lines = 0;
        self.remove_older_journals();
        Ok(())
    }

    fn path(&self) -> PathBuf {
        journal_path(&self.snapshot_path, self.generation)
    }

    /// Journals of earlier generations are covered by the snapshot: best effort cleanup.
    fn remove_older_journals(&self) {
        for generation in self.generation.saturating_sub(2)..self.generation {
            let _ = std::fs::remove_file(journal_path(&self.snapshot_path, generation));
        }
    }
}

/// `<dir>/<stem>.<generation>.journal` beside the snapshot `<dir>/<stem>.json`.
fn journal_path(snapshot_path: &Path, generation: u64) -> PathBuf {
    let stem = snapshot_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    snapshot_path.with_file_name(format!("{stem}.{generation}.journal"))
}

/// Makes the directory entries beside `path` (a created journal, a renamed snapshot)
/// durable.
fn sync_dir(path: &Path) -> Result<(), SchedulerError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SchedulerError::io(format!("cannot sync directory {}", dir.display()), e))
}

fn open_append(path: &Path) -> Result<File, SchedulerError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| SchedulerError::io(format!("cannot open {}", path.display()), e))
}

/// The journal's changes, one per line. A cut last line is removed from the file. A
/// missing journal is corruption: a journal is created, durably, before a snapshot names
/// it.
fn replay<C: DeserializeOwned>(path: &Path) -> Result<Vec<C>, SchedulerError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(corrupt(path, "the journal the snapshot names is missing"))
        }
        Err(e) => {
            return Err(SchedulerError::io(
                format!("cannot read {}", path.display()),
                e,
            ))
        }
    };
    let mut reader = BufReader::new(file);
    let mut changes = Vec::new();
    let mut complete_bytes = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| SchedulerError::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let change = serde_json::from_slice(&line)
            .map_err(|e| corrupt(path, format!("line {}: {e}", changes.len() + 1)))?;
        changes.push(change);
        complete_bytes += n as u64;
    }
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len > complete_bytes {
        tracing::warn!(path = %path.display(), "dropping a job index write cut by a crash");
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(complete_bytes).and_then(|()| f.sync_all()))
            .map_err(|e| SchedulerError::io(format!("cannot repair {}", path.display()), e))?;
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Rec {
        id: u32,
        state: String,
    }

    fn rec(id: u32, state: &str) -> Rec {
        Rec {
            id,
            state: state.into(),
        }
    }

    /// The journal, and the snapshot's records followed by the journaled ones; compacted
    /// at open when asked, as the embedded scheduler does.
    fn open(path: &Path) -> (Journal, Vec<Rec>) {
        let (mut j, loaded) = Journal::open::<Rec, Rec>(path, 3).unwrap();
        let mut records = loaded.snapshot;
        records.extend(loaded.changes);
        if loaded.needs_snapshot {
            j.compact(&records).unwrap();
        }
        (j, records)
    }

    #[test]
    fn appends_replay_in_order_after_the_snapshot_and_survive_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.json");
        let (mut j, records) = open(&path);
        assert!(records.is_empty());
        j.append(&[rec(1, "pending")]).unwrap();
        j.append(&[rec(1, "running"), rec(2, "pending")]).unwrap();
        drop(j);
        let (mut j, records) = open(&path);
        assert_eq!(
            records,
            [rec(1, "pending"), rec(1, "running"), rec(2, "pending")]
        );
        let before = j.path();
        j.compact(&[rec(1, "running"), rec(2, "pending")]).unwrap();
        j.append(&[rec(2, "done")]).unwrap();
        drop(j);
        let (_, records) = open(&path);
        assert_eq!(
            records,
            [rec(1, "running"), rec(2, "pending"), rec(2, "done")]
        );
        assert!(!before.exists(), "the replaced journal is removed");
    }

    #[test]
    fn a_cut_last_line_is_dropped_and_later_appends_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.json");
        let (mut j, _) = open(&path);
        j.append(&[rec(1, "pending")]).unwrap();
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        drop(j);
        f.write_all(br#"{"id":1,"sta"#).unwrap();
        drop(f);
        let (mut j, records) = open(&path);
        assert_eq!(records, [rec(1, "pending")]);
        j.append(&[rec(1, "running")]).unwrap();
        drop(j);
        assert_eq!(open(&path).1, [rec(1, "pending"), rec(1, "running")]);
    }

    #[test]
    fn garbled_missing_or_newer_files_are_refused_not_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.json");
        let refusal = |path: &Path| {
            Journal::open::<Rec, Rec>(path, 3)
                .err()
                .expect("refused")
                .to_string()
        };
        std::fs::write(&path, r#"{"version": 3, "journal": 4, "jobs": []}"#).unwrap();
        assert!(
            refusal(&path).contains("corrupt job index"),
            "missing journal"
        );
        std::fs::write(journal_path(&path, 4), "{not json}\n").unwrap();
        assert!(refusal(&path).contains("corrupt job index"), "garbled line");
        std::fs::write(&path, r#"{"version": 4, "journal": 4, "jobs": []}"#).unwrap();
        assert!(refusal(&path).contains("newer"), "newer version");
        assert!(
            journal_path(&path, 4).exists(),
            "nothing is touched before the version is checked"
        );
    }

    #[test]
    fn a_snapshot_from_before_journals_ignores_a_journal_beside_it_and_asks_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.json");
        std::fs::write(
            &path,
            r#"{"version": 2, "jobs": [{"id": 1, "state": "done"}]}"#,
        )
        .unwrap();
        // Left by a newer binary before a rollback rewrote the snapshot: stale.
        std::fs::write(journal_path(&path, 0), "{\"id\":1,\"state\":\"running\"}\n").unwrap();
        let (_, loaded) = Journal::open::<Rec, Rec>(&path, 3).unwrap();
        assert!(loaded.needs_snapshot);
        assert_eq!(loaded.snapshot, [rec(1, "done")]);
        assert!(loaded.changes.is_empty());
    }

    #[test]
    fn a_crash_between_snapshot_and_cleanup_never_replays_the_older_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.json");
        let (mut j, _) = open(&path);
        j.append(&[rec(1, "running")]).unwrap();
        let (older, stale) = (j.path(), std::fs::read(j.path()).unwrap());
        j.compact(&[rec(1, "done")]).unwrap();
        drop(j);
        // As if the old journal had not been removed yet.
        std::fs::write(older, stale).unwrap();
        assert_eq!(open(&path).1, [rec(1, "done")]);
    }

    #[test]
    fn the_journal_is_compacted_once_it_outgrows_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = open(&dir.path().join("jobs.json"));
        let batch: Vec<Rec> = (0..MIN_LINES_BEFORE_COMPACTION as u32)
            .map(|i| rec(i, "x"))
            .collect();
        j.append(&batch).unwrap();
        assert!(!j.should_compact(10));
        j.append(&[rec(0, "y")]).unwrap();
        assert!(j.should_compact(10));
        assert!(!j.should_compact(10_000));
    }
}
