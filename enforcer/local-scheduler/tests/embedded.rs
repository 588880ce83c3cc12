//! The embedded scheduler with real processes.

use std::path::Path;
use std::time::{Duration, Instant};

use hpc_local_scheduler::embedded::INDEX_FILE;
use hpc_local_scheduler::{
    EmbeddedConfig, EmbeddedScheduler, JobSpec, LocalJobId, LocalJobState, LocalScheduler,
    SchedulerError,
};

fn scheduler(nodes: u32, dir: &Path) -> EmbeddedScheduler {
    EmbeddedScheduler::new(EmbeddedConfig::new(nodes, dir)).unwrap()
}

fn sh(job_id: &str, nodes: u32, script: &str) -> JobSpec {
    JobSpec {
        job_id: job_id.into(),
        nodes,
        gpus_per_node: 0,
        max_runtime_seconds: 0,
        command: vec!["sh".into(), "-c".into(), script.into()],
        correlation_id: format!("corr-{job_id}"),
    }
}

async fn wait_terminal(s: &dyn LocalScheduler, id: &LocalJobId) -> LocalJobState {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = s.job_state(id).await.unwrap();
        if state.is_terminal() {
            return state;
        }
        assert!(Instant::now() < deadline, "job {id} still {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exit_zero_completes_with_environment_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(2, dir.path());
    assert_eq!(s.name(), "embedded");
    let spec = JobSpec {
        gpus_per_node: 1,
        ..sh(
            "job-ok",
            2,
            "echo \"$HPC_JOB_ID $HPC_CORRELATION_ID $HPC_NODES $HPC_GPUS_PER_NODE $(pwd)\"; echo oops >&2; exit 0",
        )
    };
    let id = s.submit(&spec).await.unwrap();
    assert_eq!(id, LocalJobId::new("job-ok"));
    assert_eq!(wait_terminal(&s, &id).await, LocalJobState::Completed);
    let log_path = s.log_path(&id);
    assert_eq!(log_path, dir.path().join("job-ok.log"));
    let log = std::fs::read_to_string(log_path).unwrap();
    assert_eq!(
        log,
        format!(
            "job-ok corr-job-ok 2 1 {}\noops\n",
            dir.path().canonicalize().unwrap().display()
        )
    );
    let status = s.status().await.unwrap();
    assert_eq!((status.total_nodes, status.free_nodes), (2, 2));
}

#[tokio::test]
async fn non_zero_exit_fails_with_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(1, dir.path());
    let id = s.submit(&sh("job-3", 1, "exit 3")).await.unwrap();
    assert_eq!(
        wait_terminal(&s, &id).await,
        LocalJobState::Failed {
            reason: "exit code 3".into()
        }
    );
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
    let spec = sh("once", 1, "echo ran >> runs.txt; sleep 0.2");
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
    let runs = std::fs::read_to_string(dir.path().join("runs.txt")).unwrap();
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
    let runs = std::fs::read_to_string(dir.path().join("runs.txt")).unwrap();
    assert_eq!(runs, "ran\n");
}

#[tokio::test]
async fn cancel_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(2, dir.path());
    // The marker would be written by a grandchild: cancel must kill the whole group.
    let id = s
        .submit(&sh(
            "victim",
            2,
            "sh -c 'sleep 0.5; touch marker'; touch marker2",
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.status().await.unwrap().free_nodes, 0);

    let started = Instant::now();
    s.cancel(&id).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    // cancel returns once the process is gone and the state recorded.
    assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Cancelled);
    assert_eq!(s.status().await.unwrap().free_nodes, 2);

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!dir.path().join("marker").exists());
    assert!(!dir.path().join("marker2").exists());

    // Cancelling a finished job is a no-op; an unknown one is an error.
    s.cancel(&id).await.unwrap();
    assert_eq!(s.job_state(&id).await.unwrap(), LocalJobState::Cancelled);
    assert!(matches!(
        s.cancel(&LocalJobId::new("nope")).await,
        Err(SchedulerError::JobNotFound { .. })
    ));
}

#[tokio::test]
async fn runtime_limit_kills_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(1, dir.path());
    let spec = JobSpec {
        max_runtime_seconds: 1,
        ..sh("slow", 1, "sleep 30")
    };
    let started = Instant::now();
    let id = s.submit(&spec).await.unwrap();
    assert_eq!(
        wait_terminal(&s, &id).await,
        LocalJobState::Failed {
            reason: "max runtime exceeded".into()
        }
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(s.status().await.unwrap().free_nodes, 1);
}

#[tokio::test]
async fn default_command_and_spawn_failures() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedScheduler::new(EmbeddedConfig {
        nodes: 1,
        workdir: dir.path().join("work"),
        default_command: vec!["sh".into(), "-c".into(), "echo default > out.txt".into()],
    })
    .unwrap();
    let spec = JobSpec {
        command: vec![],
        ..sh("dflt", 1, "")
    };
    let id = s.submit(&spec).await.unwrap();
    assert_eq!(wait_terminal(&s, &id).await, LocalJobState::Completed);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("work/out.txt")).unwrap(),
        "default\n"
    );

    // A program that does not exist: typed error, nothing recorded, nodes released.
    let missing = JobSpec {
        command: vec!["/nonexistent/hpc-job-binary".into()],
        ..sh("missing", 1, "")
    };
    match s.submit(&missing).await.unwrap_err() {
        SchedulerError::BinaryMissing { path } => {
            assert_eq!(path, Path::new("/nonexistent/hpc-job-binary"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.job_state(&LocalJobId::new("missing")).await,
        Err(SchedulerError::JobNotFound { .. })
    ));
    assert_eq!(s.status().await.unwrap().free_nodes, 1);

    // Invalid specs and configs.
    assert!(matches!(
        s.submit(&sh("zero", 0, "true")).await,
        Err(SchedulerError::InvalidSpec { field: "nodes", .. })
    ));
    assert!(matches!(
        s.submit(&sh("../escape", 1, "true")).await,
        Err(SchedulerError::InvalidSpec {
            field: "job_id",
            ..
        })
    ));
    assert!(matches!(
        EmbeddedScheduler::new(EmbeddedConfig::new(0, dir.path())),
        Err(SchedulerError::InvalidConfig { field: "nodes", .. })
    ));
    assert!(matches!(
        EmbeddedScheduler::new(EmbeddedConfig {
            default_command: vec![],
            ..EmbeddedConfig::new(1, dir.path())
        }),
        Err(SchedulerError::InvalidConfig {
            field: "default_command",
            ..
        })
    ));
}

#[tokio::test]
async fn restart_keeps_finished_states_and_never_restarts_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let before = scheduler(3, dir.path());
    let ok = before.submit(&sh("done-ok", 1, "exit 0")).await.unwrap();
    let bad = before.submit(&sh("done-bad", 1, "exit 7")).await.unwrap();
    wait_terminal(&before, &ok).await;
    wait_terminal(&before, &bad).await;
    let live_spec = sh("live", 2, "echo ran >> runs.txt; sleep 0.5");
    let live = before.submit(&live_spec).await.unwrap();
    assert!(dir.path().join(INDEX_FILE).exists());

    // An enforcer restart while "live" runs: a new scheduler on the same work directory.
    let after = scheduler(3, dir.path());
    assert_eq!(
        after.job_state(&ok).await.unwrap(),
        LocalJobState::Completed
    );
    assert_eq!(
        after.job_state(&bad).await.unwrap(),
        LocalJobState::Failed {
            reason: "exit code 7".into()
        }
    );
    assert_eq!(
        after.job_state(&live).await.unwrap(),
        LocalJobState::Unknown
    );
    // Its nodes are not counted, it cannot be cancelled, and it is never started again.
    assert_eq!(after.status().await.unwrap().free_nodes, 3);
    assert!(matches!(
        after.cancel(&live).await,
        Err(SchedulerError::NotCancellable { .. })
    ));
    assert_eq!(after.submit(&live_spec).await.unwrap(), live);
    assert_eq!(
        after.job_state(&live).await.unwrap(),
        LocalJobState::Unknown
    );

    wait_terminal(&before, &live).await;
    let runs = std::fs::read_to_string(dir.path().join("runs.txt")).unwrap();
    assert_eq!(runs, "ran\n");

    // A corrupt index is refused rather than silently forgotten.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join(INDEX_FILE), "{not json").unwrap();
    match EmbeddedScheduler::new(EmbeddedConfig::new(1, other.path())) {
        Err(SchedulerError::Io { context, .. }) => {
            assert!(context.contains("corrupt job index"), "{context}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
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
}
