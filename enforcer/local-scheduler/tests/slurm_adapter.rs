//! The whole Slurm adapter against fake `sbatch`/`squeue`/`sinfo`/`sacct`/`scancel`/
//! `scontrol` shell scripts that log their argv and replay recorded outputs from
//! tests/fixtures.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hpc_local_scheduler::{
    ClusterStatus, JobSpec, LocalJobId, LocalJobState, LocalScheduler, SchedulerError, SlurmConfig,
    SlurmScheduler,
};

/// Writing an executable while another test thread forks can make exec fail with
/// ETXTBSY; these tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOOLS: [&str; 6] = ["sbatch", "squeue", "sinfo", "sacct", "scancel", "scontrol"];

const EXPORT: &str = "--export=HPC_JOB_ID,HPC_CORRELATION_ID,HPC_NODES,HPC_GPUS_PER_NODE";

struct FakeSlurm {
    dir: tempfile::TempDir,
}

impl FakeSlurm {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for tool in TOOLS {
            let script = format!(
                r#"#!/bin/sh
# fake {tool}: log argv, replay the recorded response chosen by the arguments
dir='{dir}'
tool='{tool}'
{{
  printf '%s' "$tool"
  for a in "$@"; do printf '\037%s' "$a"; done
  printf '\n'
}} >> "$dir/calls.log"
key="$tool"
case "$tool:$*" in
  squeue:*--name=*) key=squeue_name ;;
  squeue:*--job=*) key=squeue_job ;;
  squeue:*--states=PENDING*) key=squeue_pending ;;
  sacct:*--name=*) key=sacct_name ;;
  sacct:*--jobs=*) key=sacct_job ;;
esac
if [ "$tool" = sbatch ]; then
  printf 'HPC_JOB_ID=%s HPC_CORRELATION_ID=%s HPC_NODES=%s HPC_GPUS_PER_NODE=%s\n' \
    "$HPC_JOB_ID" "$HPC_CORRELATION_ID" "$HPC_NODES" "$HPC_GPUS_PER_NODE" >> "$dir/sbatch_env.log"
fi
# A hanging command (replaced by sleep so the timeout kill reaches it).
if [ -f "$dir/$key.sleep" ]; then exec sleep "$(cat "$dir/$key.sleep")"; fi
if [ -f "$dir/$key.out" ]; then cat "$dir/$key.out"; fi
if [ -f "$dir/$key.err" ]; then cat "$dir/$key.err" >&2; fi
if [ -f "$dir/$key.exit" ]; then exit "$(cat "$dir/$key.exit")"; fi
exit 0
"#,
                dir = dir.path().display()
            );
            let path = dir.path().join(tool);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        FakeSlurm { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replay a recorded fixture as stdout (`.out`) or stderr (`.err`) for `key`.
    fn replay(&self, key: &str, fixture: &str) {
        let ext = Path::new(fixture).extension().unwrap().to_str().unwrap();
        let src = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(&src, self.path(&format!("{key}.{ext}"))).unwrap();
    }

    fn exit(&self, key: &str, code: i32) {
        std::fs::write(self.path(&format!("{key}.exit")), code.to_string()).unwrap();
    }

    fn sleep(&self, key: &str, secs: &str) {
        std::fs::write(self.path(&format!("{key}.sleep")), secs).unwrap();
    }

    /// Reset the response for `key` to "no output, exit 0".
    fn reset(&self, key: &str) {
        for ext in ["out", "err", "exit", "sleep"] {
            let _ = std::fs::remove_file(self.path(&format!("{key}.{ext}")));
        }
    }

    /// Every invocation so far: tool name followed by its arguments.
    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.path("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\x1f').map(str::to_string).collect())
            .collect()
    }

    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.path("calls.log"));
    }

    fn sbatch_env(&self) -> String {
        std::fs::read_to_string(self.path("sbatch_env.log")).unwrap_or_default()
    }

    /// All tools, partition `gpu`.
    fn config(&self) -> SlurmConfig {
        SlurmConfig {
            partition: Some("gpu".into()),
            ..SlurmConfig::in_dir(self.dir.path())
        }
    }

    /// Only the required tools: no partition, no sacct, no scontrol.
    fn minimal_config(&self) -> SlurmConfig {
        SlurmConfig {
            partition: None,
            sbatch: self.path("sbatch"),
            squeue: self.path("squeue"),
            sinfo: self.path("sinfo"),
            scontrol: None,
            scancel: self.path("scancel"),
            sacct: None,
            command_timeout: Duration::from_secs(10),
        }
    }
}

fn call(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn spec() -> JobSpec {
    JobSpec {
        job_id: "hpc-job-456".into(),
        nodes: 2,
        gpus_per_node: 4,
        max_runtime_seconds: 90,
        command: vec![
            "python3".into(),
            "/opt/train.py".into(),
            "--epochs".into(),
            "3".into(),
            "a b".into(),
        ],
        correlation_id: "corr-789".into(),
    }
}

#[tokio::test]
async fn submit_new_job_passes_exact_arguments_and_environment() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("sbatch", "sbatch_parsable.out");
    let slurm = SlurmScheduler::new(fake.config()).unwrap();
    assert_eq!(slurm.name(), "slurm");

    let id = slurm.submit(&spec()).await.unwrap();
    assert_eq!(id, LocalJobId::new("4829173"));
    assert_eq!(
        fake.calls(),
        vec![
            call(&[
                "squeue",
                "--noheader",
                "--all",
                "--states=all",
                "--name=hpc-job-456",
                "--format=%i|%j"
            ]),
            call(&[
                "sacct",
                "--noheader",
                "--allocations",
                "--parsable2",
                "--name=hpc-job-456",
                "--starttime=now-7days",
                "--format=JobID,JobName"
            ]),
            call(&[
                "sbatch",
                "--parsable",
                "--job-name=hpc-job-456",
                "--nodes=2",
                "--time=2",
                "--gres=gpu:4",
                "--partition=gpu",
                "--comment=corr-789",
                EXPORT,
                "--wrap=python3 /opt/train.py --epochs 3 'a b'",
            ]),
        ]
    );
    assert_eq!(
        fake.sbatch_env(),
        "HPC_JOB_ID=hpc-job-456 HPC_CORRELATION_ID=corr-789 HPC_NODES=2 HPC_GPUS_PER_NODE=4\n"
    );

    // Idempotent: the second submit returns the same handle without touching Slurm.
    fake.clear_calls();
    assert_eq!(slurm.submit(&spec()).await.unwrap(), id);
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn submit_minimal_config_and_cluster_suffix() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("sbatch", "sbatch_parsable_cluster.out");
    let slurm = SlurmScheduler::new(fake.minimal_config()).unwrap();
    let spec = JobSpec {
        job_id: "job-1".into(),
        nodes: 1,
        gpus_per_node: 0,
        max_runtime_seconds: 0,
        command: vec!["sh".into(), "-c".into(), "echo $HPC_JOB_ID; exit 0".into()],
        correlation_id: String::new(),
    };
    assert_eq!(
        slurm.submit(&spec).await.unwrap(),
        LocalJobId::new("4829174")
    );
    assert_eq!(
        fake.calls(),
        vec![
            call(&[
                "squeue",
                "--noheader",
                "--all",
                "--states=all",
                "--name=job-1",
                "--format=%i|%j"
            ]),
            call(&[
                "sbatch",
                "--parsable",
                "--job-name=job-1",
                "--nodes=1",
                EXPORT,
                "--wrap=sh -c 'echo $HPC_JOB_ID; exit 0'",
            ]),
        ]
    );

    // 61 s rounds up to 2 minutes.
    fake.clear_calls();
    let spec = JobSpec {
        job_id: "job-2".into(),
        max_runtime_seconds: 61,
        ..spec
    };
    slurm.submit(&spec).await.unwrap();
    assert!(fake.calls()[1].contains(&"--time=2".to_string()));
}

#[tokio::test]
async fn submit_finds_job_already_in_slurm() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("sbatch", "sbatch_parsable.out");

    // A restarted enforcer: fresh adapter, but squeue knows the job name.
    fake.replay("squeue_name", "squeue_name_found.out");
    let slurm = SlurmScheduler::new(fake.config()).unwrap();
    assert_eq!(
        slurm.submit(&spec()).await.unwrap(),
        LocalJobId::new("4829173")
    );
    assert!(fake.calls().iter().all(|c| c[0] != "sbatch"));

    // Purged from slurmctld, still in accounting.
    fake.reset("squeue_name");
    fake.replay("sacct_name", "sacct_name_found.out");
    fake.clear_calls();
    let slurm = SlurmScheduler::new(fake.config()).unwrap();
    assert_eq!(
        slurm.submit(&spec()).await.unwrap(),
        LocalJobId::new("4829173")
    );
    let tools: Vec<String> = fake.calls().into_iter().map(|c| c[0].clone()).collect();
    assert_eq!(tools, ["squeue", "sacct"]);
}

#[tokio::test]
async fn submit_fails_closed_when_lookup_fails() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("squeue_name", "squeue_socket_timeout.err");
    fake.exit("squeue_name", 1);
    let slurm = SlurmScheduler::new(fake.config()).unwrap();
    let err = slurm.submit(&spec()).await.unwrap_err();
    match &err {
        SchedulerError::CommandFailed {
            command,
            status,
            stderr,
        } => {
            assert!(command.contains("squeue"), "{command}");
            assert_eq!(status, "exit code 1");
            assert_eq!(
                stderr,
                "slurm_load_jobs error: Socket timed out on send/recv operation"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
    assert!(fake.calls().iter().all(|c| c[0] != "sbatch"));
}

#[tokio::test]
async fn sbatch_errors_are_typed() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("sbatch", "sbatch_rejected.err");
    fake.exit("sbatch", 1);
    let slurm = SlurmScheduler::new(fake.minimal_config()).unwrap();
    match slurm.submit(&spec()).await.unwrap_err() {
        SchedulerError::CommandFailed { status, stderr, .. } => {
            assert_eq!(status, "exit code 1");
            assert_eq!(
                stderr,
                "sbatch: error: Batch job submission failed: Requested node configuration is not available"
            );
        }
        other => panic!("{other:?}"),
    }

    fake.reset("sbatch");
    fake.replay("sbatch", "sbatch_not_parsable.out");
    match slurm.submit(&spec()).await.unwrap_err() {
        SchedulerError::Unparsable { command, line, .. } => {
            assert!(command.starts_with(&fake.path("sbatch").display().to_string()));
            assert_eq!(line, "Submitted batch job 4829173");
        }
        other => panic!("{other:?}"),
    }

    // The Slurm adapter has no default command.
    let empty = JobSpec {
        command: vec![],
        ..spec()
    };
    assert!(matches!(
        slurm.submit(&empty).await,
        Err(SchedulerError::InvalidSpec {
            field: "command",
            ..
        })
    ));
}

#[tokio::test]
async fn job_state_from_squeue_then_sacct() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    let slurm = SlurmScheduler::new(fake.config()).unwrap();
    let id = LocalJobId::new("4829173");

    fake.replay("squeue_job", "squeue_T_running.out");
    assert_eq!(slurm.job_state(&id).await.unwrap(), LocalJobState::Running);
    assert_eq!(
        fake.calls(),
        vec![call(&[
            "squeue",
            "--noheader",
            "--states=all",
            "--job=4829173",
            "--format=%T"
        ])]
    );

    fake.reset("squeue_job");
    fake.replay("squeue_job", "squeue_T_timeout.out");
    assert_eq!(
        slurm.job_state(&id).await.unwrap(),
        LocalJobState::Failed {
            reason: "max runtime exceeded (slurm state TIMEOUT)".into()
        }
    );

    // Purged from slurmctld: squeue fails with "Invalid job id specified" -> sacct.
    fake.reset("squeue_job");
    fake.replay("squeue_job", "squeue_invalid_job.err");
    fake.exit("squeue_job", 1);
    fake.replay("sacct_job", "sacct_failed.out");
    fake.clear_calls();
    assert_eq!(
        slurm.job_state(&id).await.unwrap(),
        LocalJobState::Failed {
            reason: "slurm state FAILED, exit code 3".into()
        }
    );
    assert_eq!(
        fake.calls()[1],
        call(&[
            "sacct",
            "--noheader",
            "--allocations",
            "--parsable2",
            "--jobs=4829173",
            "--format=State,ExitCode"
        ])
    );

    // squeue prints nothing (finished, filtered) -> sacct too.
    fake.reset("squeue_job");
    fake.reset("sacct_job");
    fake.replay("sacct_job", "sacct_completed.out");
    assert_eq!(
        slurm.job_state(&id).await.unwrap(),
        LocalJobState::Completed
    );

    // Nothing anywhere -> Unknown.
    fake.reset("sacct_job");
    assert_eq!(slurm.job_state(&id).await.unwrap(), LocalJobState::Unknown);

    // Without sacct a purged job is Unknown.
    let minimal = SlurmScheduler::new(fake.minimal_config()).unwrap();
    fake.replay("squeue_job", "squeue_invalid_job.err");
    fake.exit("squeue_job", 1);
    fake.clear_calls();
    assert_eq!(
        minimal.job_state(&id).await.unwrap(),
        LocalJobState::Unknown
    );
    assert_eq!(fake.calls().len(), 1);

    // Any other squeue failure is an error.
    fake.reset("squeue_job");
    fake.replay("squeue_job", "squeue_socket_timeout.err");
    fake.exit("squeue_job", 1);
    assert!(matches!(
        slurm.job_state(&id).await,
        Err(SchedulerError::CommandFailed { .. })
    ));

    // Not a Slurm job id.
    assert!(matches!(
        slurm.job_state(&LocalJobId::new("4829173;x")).await,
        Err(SchedulerError::InvalidSpec { .. })
    ));
}

#[tokio::test]
async fn cancel_is_idempotent() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    let slurm = SlurmScheduler::new(fake.config()).unwrap();
    let id = LocalJobId::new("4829173");

    slurm.cancel(&id).await.unwrap();
    assert_eq!(fake.calls(), vec![call(&["scancel", "4829173"])]);

    fake.replay("scancel", "scancel_already_completed.err");
    fake.exit("scancel", 1);
    slurm.cancel(&id).await.unwrap();

    fake.reset("scancel");
    fake.replay("scancel", "scancel_invalid_job.err");
    fake.exit("scancel", 1);
    slurm.cancel(&id).await.unwrap();

    fake.reset("scancel");
    fake.replay("scancel", "scancel_denied.err");
    fake.exit("scancel", 1);
    match slurm.cancel(&id).await.unwrap_err() {
        SchedulerError::CommandFailed { stderr, .. } => {
            assert!(stderr.ends_with("Access/permission denied"), "{stderr}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn status_reports_capacity_and_queue() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("scontrol", "scontrol_ping_up.out");
    fake.replay("sinfo", "sinfo_F.out");
    fake.replay("squeue_pending", "squeue_pending_ids.out");
    let slurm = SlurmScheduler::new(fake.config()).unwrap();

    let status = slurm.status().await.unwrap();
    assert_eq!(
        status,
        ClusterStatus {
            reachable: true,
            total_nodes: 8,
            free_nodes: 6,
            queue_depth: 4,
            healthy: true,
            detail:
                "slurm partition gpu: 2 allocated, 6 idle, 0 other, 8 total nodes; 4 pending job(s)"
                    .into(),
        }
    );
    assert!(status.can_fit(6) && !status.can_fit(7));
    assert_eq!(
        fake.calls(),
        vec![
            call(&["scontrol", "ping"]),
            call(&["sinfo", "--noheader", "--format=%F", "--partition=gpu"]),
            call(&[
                "squeue",
                "--noheader",
                "--states=PENDING",
                "--format=%i",
                "--partition=gpu"
            ]),
        ]
    );

    // Without a partition or scontrol.
    fake.clear_calls();
    let minimal = SlurmScheduler::new(fake.minimal_config()).unwrap();
    let status = minimal.status().await.unwrap();
    assert_eq!((status.total_nodes, status.free_nodes), (8, 6));
    assert_eq!(
        fake.calls(),
        vec![
            call(&["sinfo", "--noheader", "--format=%F"]),
            call(&["squeue", "--noheader", "--states=PENDING", "--format=%i"]),
        ]
    );

    // Every node drained: reachable but unhealthy.
    fake.reset("sinfo");
    fake.replay("sinfo", "sinfo_F_all_drained.out");
    let status = minimal.status().await.unwrap();
    assert!(status.reachable && !status.healthy);
    assert_eq!((status.total_nodes, status.free_nodes), (8, 0));
}

#[tokio::test]
async fn status_when_controller_is_down() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("sinfo", "sinfo_controller_down.err");
    fake.exit("sinfo", 1);
    let minimal = SlurmScheduler::new(fake.minimal_config()).unwrap();
    let status = minimal.status().await.unwrap();
    assert!(!status.reachable && !status.healthy);
    assert_eq!(status.free_nodes, 0);
    assert!(
        status
            .detail
            .contains("Unable to contact slurm controller (connect failure)"),
        "{}",
        status.detail
    );

    // scontrol ping says DOWN: sinfo is not even asked.
    fake.replay("scontrol", "scontrol_ping_down.out");
    fake.exit("scontrol", 1);
    fake.clear_calls();
    let slurm = SlurmScheduler::new(fake.config()).unwrap();
    let status = slurm.status().await.unwrap();
    assert!(!status.reachable);
    assert!(status.detail.contains("is DOWN"), "{}", status.detail);
    assert_eq!(fake.calls(), vec![call(&["scontrol", "ping"])]);

    // A hanging sinfo is killed after the command timeout.
    fake.reset("sinfo");
    fake.sleep("sinfo", "5");
    let quick = SlurmScheduler::new(SlurmConfig {
        command_timeout: Duration::from_millis(300),
        ..fake.minimal_config()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let status = quick.status().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!status.reachable);
    assert!(
        status.detail.contains("did not finish"),
        "{}",
        status.detail
    );
}

#[tokio::test]
async fn missing_binaries_are_named() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    let missing = fake.path("no-such-dir/sinfo");
    let slurm = SlurmScheduler::new(SlurmConfig {
        sinfo: missing.clone(),
        ..fake.minimal_config()
    })
    .unwrap();
    match slurm.status().await.unwrap_err() {
        SchedulerError::BinaryMissing { path } => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }

    let slurm = SlurmScheduler::new(SlurmConfig {
        squeue: PathBuf::from("hpc-no-such-squeue-binary"),
        ..fake.minimal_config()
    })
    .unwrap();
    let err = slurm.submit(&spec()).await.unwrap_err();
    assert!(
        matches!(&err, SchedulerError::BinaryMissing { path } if path == Path::new("hpc-no-such-squeue-binary"))
    );
    assert!(err.to_string().contains("hpc-no-such-squeue-binary"));
}

#[test]
fn config_validation() {
    assert!(SlurmScheduler::new(SlurmConfig::default()).is_ok());
    assert!(matches!(
        SlurmScheduler::new(SlurmConfig {
            partition: Some("a b".into()),
            ..SlurmConfig::default()
        }),
        Err(SchedulerError::InvalidConfig {
            field: "partition",
            ..
        })
    ));
    assert!(SlurmScheduler::new(SlurmConfig {
        command_timeout: Duration::ZERO,
        ..SlurmConfig::default()
    })
    .is_err());
}
