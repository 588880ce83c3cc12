//! The embedded scheduler with real processes (no fakes): scripts, exit codes,
//! environment, time limit, cancel, container runtime, and enforcer restarts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hpc_local_scheduler::embedded::{INDEX_FILE, PROCESS_LOST};
use hpc_local_scheduler::{
    EmbeddedConfig, EmbeddedScheduler, JobSpec, LocalJobId, LocalJobState, LocalScheduler,
    SchedulerError, Workload, DEFAULT_JOB_NICE, MAX_JOB_NICE,
};

fn scheduler(nodes: u32, dir: &Path) -> EmbeddedScheduler {
    EmbeddedScheduler::new(EmbeddedConfig::new(nodes, dir)).unwrap()
}

/// A job running `body` as a `#!/bin/sh` script.
fn sh(job_id: &str, nodes: u32, body: &str) -> JobSpec {
    JobSpec {
        nodes,
        correlation_id: format!("corr-{job_id}"),
        ..JobSpec::new(
            job_id,
            Workload::Script {
                bytes: format!("#!/bin/sh\n{body}\n").into_bytes(),
            },
        )
    }
}

async fn wait_terminal(s: &dyn LocalScheduler, id: &LocalJobId) -> LocalJobState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = s.job_state(id).await.unwrap();
        if state.is_terminal() {
            return state;
        }
        assert!(Instant::now() < deadline, "job {id} still {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
}

fn invalid_field<T>(r: Result<T, SchedulerError>) -> String {
    match r {
        Err(SchedulerError::InvalidSpec { field, .. }) => field,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted"),
    }
}

/// The job table on disk, read as its format is documented: the snapshot's jobs, then
/// the changes of the journal the snapshot names.
fn indexed_jobs(workdir: &Path) -> Vec<serde_json::Value> {
    let snapshot: serde_json::Value = std::fs::read_to_string(workdir.join(INDEX_FILE))
        .map(|s| serde_json::from_str(&s).unwrap())
        .unwrap_or_else(|_| serde_json::json!({"journal": 0, "jobs": []}));
    let mut table: std::collections::BTreeMap<String, serde_json::Value> = snapshot["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job_id"].as_str().unwrap().to_string(), j.clone()))
        .collect();
    let generation = snapshot["journal"].as_u64().unwrap_or(0);
    let journal = workdir.join(INDEX_FILE.replace(".json", &format!(".{generation}.journal")));
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    // A line still being appended (no newline yet) is not a change yet.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    for line in complete.lines() {
        let change: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = change["job_id"].as_str().unwrap().to_string();
        match change["record"].clone() {
            serde_json::Value::Null => table.remove(&id),
            record => table.insert(id, record),
        };
    }
    table.into_values().collect()
}

/// The wrapper pid the index recorded for `job_id`.
fn recorded_pid(workdir: &Path, job_id: &str) -> u32 {
    let jobs = indexed_jobs(workdir);
    let job = jobs.iter().find(|j| j["job_id"] == job_id).unwrap();
    assert_eq!(job["pgid"], job["pid"]);
    u32::try_from(job["pid"].as_u64().unwrap()).unwrap()
}

/// Live (not zombie) processes of session `sid`.
fn session_members(sid: u32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            (fields[0] != "Z" && fields[3] == sid.to_string()).then(|| stat.clone())
        })
        .collect()
}

#[tokio::test]
async fn script_runs_with_outputs_and_only_its_environment() {
    // Something the enforcer holds in its environment that tenant jobs must not see.
    std::env::set_var("HPC_TEST_SECRET", "key-material");
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(2, dir.path());
    assert_eq!(s.name(), "embedded");
    let spec = JobSpec {
        gpus_per_node: 1,
        output_name: "train".into(),
        env: vec![
            ("GREETING".into(), "hello 'world' $HOME".into()),
            ("MULTI".into(), "a\nb".into()),
        ],
        ..sh(
            "job-ok",
            2,
            r#"echo "$HPC_JOB_ID $HPC_CORRELATION_ID $HPC_NODES $HPC_GPUS_PER_NODE $(pwd)"
echo "$GREETING"
printf '%s\n' "$MULTI"
echo "secret=${HPC_TEST_SECRET:-unset}"
echo oops >&2
exit 0"#,
        )
    };
    let id = s.submit(&spec).await.unwrap();
    assert_eq!(id, LocalJobId::new("job-ok"));
    assert_eq!(wait_terminal(&s, &id).await, LocalJobState::Completed);

    let job_dir = s.job_dir("job-ok").unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    assert_eq!(job_dir, workdir.join("jobs/job-ok"));
    assert_eq!(
        read(&job_dir, "train.out"),
        format!(
            "job-ok corr-job-ok 2 1 {}\nhello 'world' $HOME\na\nb\nsecret=unset\n",
            job_dir.display()
        )
    );
    assert_eq!(read(&job_dir, "train.err"), "oops\n");
    assert_eq!(read(&job_dir, "exit_code"), "0\n");
    assert!(read(&job_dir, "run.sh").starts_with("#!/bin/sh\n"));
    for (file, mode) in [("script", 0o700), ("run.sh", 0o700), ("environment", 0o600)] {
        let meta = std::fs::metadata(job_dir.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    assert_eq!(
        std::fs::metadata(&job_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let status = s.status().await.unwrap();
    assert_eq!((status.total_nodes, status.free_nodes), (2, 2));
    assert_eq!(s.job_dir("never-submitted"), None);
}

#[tokio::test]
async fn exit_codes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(3, dir.path());
    let three = s.submit(&sh("job-3", 1, "exit 3")).await.unwrap();
    // A workload's own exit 124 under a time limit is not taken for a timeout.
    let own_124 = JobSpec {
        max_runtime_seconds: 30,
        ..sh("job-124", 1, "exit 124")
    };
    let own_124 = s.submit(&own_124).await.unwrap();
    // A script whose interpreter does not exist: the shell's 127.
    let missing = JobSpec::new(
        "no-interpreter",
        Workload::Script {
            bytes: b"#!/nonexistent/interpreter\n".to_vec(),
        },
    );
    let missing = s.submit(&missing).await.unwrap();

    assert_eq!(
        wait_terminal(&s, &three).await,
        LocalJobState::failed("exit code 3", Some(3))
    );
    assert_eq!(
        wait_terminal(&s, &own_124).await,
        LocalJobState::failed("exit code 124", Some(124))
    );
    assert_eq!(
        wait_terminal(&s, &missing).await,
        LocalJobState::failed("exit code 127", Some(127))
    );
    let err = read(&s.job_dir("no-interpreter").unwrap(), "job.err");
    assert!(err.contains("not found"), "{err}");
    assert_eq!(s.status().await.unwrap().free_nodes, 3);
}

/// The niceness `nice` prints, run by this process or by a job.
fn niceness(text: &str) -> i32 {
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[tokio::test]
async fn jobs_run_at_the_configured_niceness_above_the_enforcers() {
    let own = niceness(
        &String::from_utf8(std::process::Command::new("nice").output().unwrap().stdout).unwrap(),
    );
    for (job_nice, expected) in [(DEFAULT_JOB_NICE, (own + 10).min(19)), (0, own), (19, 19)] {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedScheduler::new(EmbeddedConfig {
            job_nice,
            ..EmbeddedConfig::new(1, dir.path())
        })
        .unwrap();
        let id = s.submit(&sh("job-nice", 1, "nice")).await.unwrap();
        assert_eq!(wait_terminal(&s, &id).await, LocalJobState::Completed);
        let job = niceness(&read(&s.job_dir("job-nice").unwrap(), "job.out"));
        assert_eq!(job, expected, "job_nice {job_nice}");
    }
    let dir = tempfile::tempdir().unwrap();
    let refused = EmbeddedScheduler::new(EmbeddedConfig {
        job_nice: MAX_JOB_NICE + 1,
        ..EmbeddedConfig::new(1, dir.path())
    });
    assert!(
        matches!(
            refused,
            Err(SchedulerError::InvalidConfig {
                field: "job_nice",
                ..
            })
        ),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn runtime_limit_kills_the_workload_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(1, dir.path());
    let spec = JobSpec {
        max_runtime_seconds: 1,
        // A background child too: the limit stops the whole workload.
        ..sh("slow", 1, "sleep 60 & sleep 30")
    };
    let started = Instant::now();
    let id = s.submit(&spec).await.unwrap();
    let pid = recorded_pid(dir.path(), "slow");
    assert_eq!(
        wait_terminal(&s, &id).await,
        LocalJobState::failed("time limit of 1 s exceeded", None)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert_eq!(
        read(&s.job_dir("slow").unwrap(), "exit_code"),
        "timeout 1\n"
    );
    assert_eq!(session_members(pid), Vec::<String>::new());
    assert_eq!(s.status().await.unwrap().free_nodes, 1);
}

#[tokio::test]
async fn cancel_kills_every_process_of_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(2, dir.path());
    // Under a time limit the workload runs in timeout's own process group, and the
    // markers would be written by a grandchild: cancel must reach all of them.
    let spec = JobSpec {
        max_runtime_seconds: 60,
        ..sh(
            "victim",
            2,
            "sh -c 'sleep 0.5; touch marker' & sleep 0.7; touch marker2",
        )
    };
    let id = s.submit(&spec).await.unwrap();
    let pid = recorded_pid(dir.path(), "victim");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        session_members(pid).len() >= 4,
        "{:?}",
        session_members(pid)
    );
    assert_eq!(s.status().await.unwrap().free_nodes, 0);

    let started = Instant::now();
    s.cancel(&id).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    // cancel returns once the processes are gone and the state recorded.
    assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Cancelled);
    assert_eq!(session_members(pid), Vec::<String>::new());
    assert_eq!(s.status().await.unwrap().free_nodes, 2);

    tokio::time::sleep(Duration::from_millis(900)).await;
    let job_dir = s.job_dir("victim").unwrap();
    assert!(!job_dir.join("marker").exists());
    assert!(!job_dir.join("marker2").exists());
    assert!(!job_dir.join("exit_code").exists());

    // Cancelling a finished job is a no-op; an unknown one is an error.
    s.cancel(&id).await.unwrap();
    assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Cancelled);
    assert!(matches!(
        s.cancel(&LocalJobId::new("nope")).await,
        Err(SchedulerError::JobNotFound { .. })
    ));
}

#[tokio::test]
async fn capacity_is_accounted_while_jobs_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(3, dir.path());
    let first = s.submit(&sh("first", 2, "sleep 0.4")).await.unwrap();
    assert_eq!(s.job_state(&first).await.unwrap(), LocalJobState::Running);

    let status = s.status().await.unwrap();
    assert!(status.reachable && status.healthy);
    assert_eq!(
        (status.total_nodes, status.free_nodes, status.queue_depth),
        (3, 1, 0)
    );
    assert!(status.can_fit(1) && !status.can_fit(2));

    match s.submit(&sh("second", 2, "exit 0")).await.unwrap_err() {
        SchedulerError::CapacityExceeded {
            requested,
            free,
            total,
        } => assert_eq!((requested, free, total), (2, 1, 3)),
        other => panic!("{other:?}"),
    }
    // The refused job left no trace.
    assert!(matches!(
        s.job_state(&LocalJobId::new("second")).await,
        Err(SchedulerError::JobNotFound { .. })
    ));

    assert_eq!(wait_terminal(&s, &first).await, LocalJobState::Completed);
    assert_eq!(s.status().await.unwrap().free_nodes, 3);
    let second = s.submit(&sh("second", 2, "exit 0")).await.unwrap();
    assert_eq!(wait_terminal(&s, &second).await, LocalJobState::Completed);
}

#[tokio::test]
async fn submit_is_idempotent_by_job_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(1, dir.path());
    let spec = sh("once", 1, "echo ran >> ../runs.txt; sleep 0.2");
    let a = s.submit(&spec).await.unwrap();
    // Still running and the scheduler is full: the same job id is not refused, and not
    // started again.
    let b = s.submit(&spec).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(wait_terminal(&s, &a).await, LocalJobState::Completed);
    // After it finished, too.
    assert_eq!(s.submit(&spec).await.unwrap(), a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.job_state(&a).await.unwrap(), LocalJobState::Completed);
    let runs = std::fs::read_to_string(dir.path().join("jobs/runs.txt")).unwrap();
    assert_eq!(runs, "ran\n");
}

#[tokio::test]
async fn concurrent_submits_start_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(4, dir.path());
    let spec = sh("racy", 1, "echo ran >> runs.txt");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            let spec = spec.clone();
            tokio::spawn(async move { s.submit(&spec).await.unwrap() })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), LocalJobId::new("racy"));
    }
    assert_eq!(
        wait_terminal(&s, &LocalJobId::new("racy")).await,
        LocalJobState::Completed
    );
    assert_eq!(read(&s.job_dir("racy").unwrap(), "runs.txt"), "ran\n");
}

/// Index writes are shared by the submits waiting for one (written once per group, not once
/// per job): every submit that returned is still in the index on disk.
#[tokio::test]
async fn concurrent_submits_are_each_durable_when_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(64, dir.path());
    let handles: Vec<_> = (0..48)
        .map(|i| {
            let s = s.clone();
            let (dir, spec) = (
                dir.path().to_path_buf(),
                sh(&format!("job-{i}"), 1, "sleep 5"),
            );
            tokio::spawn(async move {
                s.submit(&spec).await.unwrap();
                let on_disk = indexed_jobs(&dir)
                    .iter()
                    .any(|j| j["job_id"] == spec.job_id.as_str());
                assert!(on_disk, "{} returned but is not in the index", spec.job_id);
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    for i in 0..48 {
        s.cancel(&LocalJobId::new(format!("job-{i}")))
            .await
            .unwrap();
    }
    drop(s);
    let after = scheduler(64, dir.path());
    for i in 0..48 {
        let state = after.job_state(&LocalJobId::new(format!("job-{i}"))).await;
        assert!(
            state.is_ok(),
            "job-{i} forgotten after a restart: {state:?}"
        );
    }
}

#[tokio::test]
async fn container_workloads_run_through_the_configured_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let container = JobSpec {
        env: vec![("FOO".into(), "bar baz".into())],
        ..JobSpec::new(
            "boxed",
            Workload::Container {
                image: "alpine:3".into(),
                command: vec!["echo".into(), "a b".into()],
            },
        )
    };

    // No runtime configured: refused, nothing recorded.
    let plain = scheduler(1, &dir.path().join("plain"));
    assert_eq!(
        invalid_field(plain.submit(&container).await),
        "workload.container"
    );
    assert!(plain.jobs().await.unwrap().is_empty());

    // A stand-in runtime that prints its arguments and whether the job's variable
    // reached its own (host) environment.
    let runtime = dir.path().join("fake-runtime");
    std::fs::write(
        &runtime,
        "for a in \"$@\"; do printf '<%s>\\n' \"$a\"; done\necho \"host FOO=${FOO:-unset}\"\n",
    )
    .unwrap();
    let s = EmbeddedScheduler::new(EmbeddedConfig {
        container_runtime: Some(vec![
            "/bin/sh".into(),
            runtime.display().to_string(),
            "run".into(),
            "--rm".into(),
        ]),
        ..EmbeddedConfig::new(1, dir.path().join("work"))
    })
    .unwrap();
    let id = s.submit(&container).await.unwrap();
    assert_eq!(wait_terminal(&s, &id).await, LocalJobState::Completed);
    assert_eq!(
        read(&s.job_dir("boxed").unwrap(), "job.out"),
        "<run>\n<--rm>\n<--env>\n<HPC_JOB_ID=boxed>\n<--env>\n<HPC_CORRELATION_ID=>\n\
         <--env>\n<HPC_NODES=1>\n<--env>\n<HPC_GPUS_PER_NODE=0>\n<--env>\n<FOO=bar baz>\n\
         <alpine:3>\n<echo>\n<a b>\nhost FOO=unset\n"
    );

    assert!(matches!(
        EmbeddedScheduler::new(EmbeddedConfig {
            container_runtime: Some(vec![]),
            ..EmbeddedConfig::new(1, dir.path().join("bad"))
        }),
        Err(SchedulerError::InvalidConfig {
            field: "container_runtime",
            ..
        })
    ));
}

/// Run `f` on a runtime of its own, then drop that runtime with whatever it still runs:
/// the supervisor tasks go away as they would when the enforcer process dies, while the
/// detached job processes keep running.
fn in_runtime_then_crash<T>(f: impl std::future::Future<Output = T>) -> T {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(f);
    rt.shutdown_background();
    out
}

#[test]
fn restart_reattaches_to_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sh(
        "live",
        2,
        "echo ran >> runs.txt; sleep 2; echo done; exit 0",
    );
    let id = in_runtime_then_crash(async {
        let s = scheduler(3, dir.path());
        let id = s.submit(&spec).await.unwrap();
        assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Running);
        id
    });

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = scheduler(3, dir.path());
        assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Running);
        // It still holds its nodes, is listed, and is not started again.
        assert_eq!(s.status().await.unwrap().free_nodes, 1);
        assert_eq!(s.submit(&spec).await.unwrap(), id);
        let jobs = s.jobs().await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (
                jobs[0].name.as_str(),
                jobs[0].comment.as_str(),
                &jobs[0].state
            ),
            ("live", "corr-live", &LocalJobState::Running)
        );

        assert_eq!(wait_terminal(&s, &id).await, LocalJobState::Completed);
        let job_dir = s.job_dir("live").unwrap();
        assert_eq!(read(&job_dir, "job.out"), "done\n");
        assert_eq!(read(&job_dir, "runs.txt"), "ran\n");
        assert_eq!(s.status().await.unwrap().free_nodes, 3);
    });
    // Dropping the runtime waits for the index write that follows the end of the job.
    drop(rt);

    // The outcome is persisted for the next restart.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = scheduler(3, dir.path());
        assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Completed);
    });
}

#[test]
fn restart_reports_jobs_that_ended_or_were_lost_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (ended, lost) = in_runtime_then_crash(async {
        let s = scheduler(2, dir.path());
        let ended = s
            .submit(&sh("ended", 1, "sleep 0.3; exit 4"))
            .await
            .unwrap();
        let lost = s.submit(&sh("lost", 1, "sleep 30")).await.unwrap();
        (ended, lost)
    });
    // While no scheduler runs: "ended" finishes on its own, "lost" is killed from
    // outside before its wrapper can record anything.
    let pid = recorded_pid(dir.path(), "lost");
    let killed = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -9 -{pid}"))
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(800));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = scheduler(2, dir.path());
        assert_eq!(
            s.job_state(&ended).await.unwrap(),
            LocalJobState::failed("exit code 4", Some(4))
        );
        assert_eq!(
            s.job_state(&lost).await.unwrap(),
            LocalJobState::failed(PROCESS_LOST, None)
        );
        assert_eq!(s.status().await.unwrap().free_nodes, 2);
        // Cancelling a job that ended is a no-op.
        s.cancel(&lost).await.unwrap();
        let mut states: Vec<_> = s
            .jobs()
            .await
            .unwrap()
            .into_iter()
            .map(|j| (j.local_id.0, j.state.is_terminal()))
            .collect();
        states.sort();
        assert_eq!(
            states,
            [("ended".to_string(), true), ("lost".to_string(), true)]
        );
    });
}

#[test]
fn cancel_reaches_a_reattached_job() {
    let dir = tempfile::tempdir().unwrap();
    let id = in_runtime_then_crash(async {
        let s = scheduler(1, dir.path());
        let id = s
            .submit(&sh("stubborn", 1, "trap '' TERM; touch trapped; sleep 30"))
            .await
            .unwrap();
        let trapped = s.job_dir("stubborn").unwrap().join("trapped");
        while !trapped.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        id
    });
    let pid = recorded_pid(dir.path(), "stubborn");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = scheduler(1, dir.path());
        assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Running);
        // The workload ignores SIGTERM: it gets SIGKILL after the grace period.
        let started = Instant::now();
        s.cancel(&id).await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(10),
            "{took:?}"
        );
        assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Cancelled);
        assert_eq!(session_members(pid), Vec::<String>::new());
    });
}

#[tokio::test]
async fn restart_keeps_finished_states_and_refuses_a_bad_index() {
    let dir = tempfile::tempdir().unwrap();
    let before = scheduler(3, dir.path());
    let ok = before.submit(&sh("done-ok", 1, "exit 0")).await.unwrap();
    let bad = before.submit(&sh("done-bad", 1, "exit 7")).await.unwrap();
    wait_terminal(&before, &ok).await;
    wait_terminal(&before, &bad).await;
    drop(before);

    let after = scheduler(3, dir.path());
    assert_eq!(
        after.job_state(&ok).await.unwrap(),
        LocalJobState::Completed
    );
    assert_eq!(
        after.job_state(&bad).await.unwrap(),
        LocalJobState::failed("exit code 7", Some(7))
    );
    assert_eq!(
        after.job_dir("done-ok"),
        Some(dir.path().canonicalize().unwrap().join("jobs/done-ok"))
    );

    // A corrupt index, or one from a newer version, is refused rather than silently
    // forgotten.
    let escaping = r#"{"version": 2, "jobs": [{"job_id": "../x", "correlation_id": "",
        "nodes": 1, "state": {"state": "running"}, "pid": null, "submitted_at_ms": 0,
        "finished_at_ms": null}]}"#;
    for content in ["{not json", r#"{"version": 4, "jobs": []}"#, escaping] {
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(INDEX_FILE), content).unwrap();
        match EmbeddedScheduler::new(EmbeddedConfig::new(1, other.path())) {
            Err(SchedulerError::Io { context, .. }) => {
                assert!(context.contains("corrupt job index"), "{context}")
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn invalid_specs_and_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(1, dir.path());
    assert_eq!(
        invalid_field(s.submit(&sh("zero", 0, "true")).await),
        "nodes"
    );
    assert_eq!(
        invalid_field(s.submit(&sh("../escape", 1, "true")).await),
        "job_id"
    );
    let no_shebang = JobSpec::new(
        "plain",
        Workload::Script {
            bytes: b"echo hi\n".to_vec(),
        },
    );
    assert_eq!(
        invalid_field(s.submit(&no_shebang).await),
        "workload.script"
    );
    let reserved = JobSpec {
        env: vec![("SLURM_JOB_ID".into(), "1".into())],
        ..sh("reserved", 1, "true")
    };
    assert_eq!(invalid_field(s.submit(&reserved).await), "env[0].name");
    assert!(s.jobs().await.unwrap().is_empty());
    assert!(matches!(
        EmbeddedScheduler::new(EmbeddedConfig::new(0, dir.path())),
        Err(SchedulerError::InvalidConfig { field: "nodes", .. })
    ));
}

#[tokio::test]
async fn usable_as_trait_object() {
    let dir = tempfile::tempdir().unwrap();
    let s: Box<dyn LocalScheduler> = Box::new(scheduler(1, dir.path()));
    let status = s.status().await.unwrap();
    assert_eq!(status.queue_depth, 0);
    assert!(
        status.detail.contains("1/1 nodes free"),
        "{}",
        status.detail
    );
    let id = s.submit(&sh("boxed", 1, "true")).await.unwrap();
    assert_eq!(
        wait_terminal(s.as_ref(), &id).await,
        LocalJobState::Completed
    );
    let dir_of: Option<PathBuf> = s.job_dir("boxed");
    assert!(dir_of.unwrap().join("exit_code").exists());
}
