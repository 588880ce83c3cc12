//! The whole Slurm adapter against fake `sbatch`/`squeue`/`sinfo`/`sacct`/`scancel`/
//! `scontrol` shell scripts that log their argv and replay recorded outputs from
//! tests/fixtures. The fake sbatch runs nothing: tests write a job directory's
//! `exit_code` themselves where the wrapper would.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hpc_local_scheduler::slurm::parse::TIME_LIMIT_EXCEEDED;
use hpc_local_scheduler::slurm::INDEX_FILE;
use hpc_local_scheduler::{
    ClusterStatus, JobSpec, LocalJobId, LocalJobInfo, LocalJobState, LocalScheduler,
    SchedulerError, SlurmConfig, SlurmScheduler, Workload,
};

/// Writing an executable while another test thread forks can make exec fail with
/// ETXTBSY; these tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOOLS: [&str; 6] = ["sbatch", "squeue", "sinfo", "sacct", "scancel", "scontrol"];

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
printf '%s\n' "${{SLURM_CONF:-unset}}" >> "$dir/slurm_conf.log"
key="$tool"
case "$tool:$*" in
  squeue:*%k*) key=squeue_all ;;
  squeue:*--name=*) key=squeue_name ;;
  squeue:*--job=*) key=squeue_job ;;
  squeue:*--states=PENDING*) key=squeue_pending ;;
  sacct:*--name=*) key=sacct_name ;;
  sacct:*--jobs=*) key=sacct_job ;;
esac
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

    /// [`FakeSlurm::replay`] with `JOBS_DIR` in the fixture replaced by `jobs_dir`.
    fn replay_in(&self, key: &str, fixture: &str, jobs_dir: &Path) {
        let src = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(src).unwrap();
        let ext = Path::new(fixture).extension().unwrap().to_str().unwrap();
        std::fs::write(
            self.path(&format!("{key}.{ext}")),
            text.replace("JOBS_DIR", jobs_dir.to_str().unwrap()),
        )
        .unwrap();
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

    /// `SLURM_CONF` as each invocation saw it (`unset` when absent).
    fn slurm_confs(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("slurm_conf.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.path("calls.log"));
    }

    /// The jobs directory of [`FakeSlurm::config`] and [`FakeSlurm::minimal_config`].
    fn jobs_dir(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap().join("jobs")
    }

    /// All tools, partition `gpu`.
    fn config(&self) -> SlurmConfig {
        SlurmConfig {
            partition: Some("gpu".into()),
            ..SlurmConfig::in_dir(self.dir.path(), self.jobs_dir())
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
            jobs_dir: self.jobs_dir(),
            container_runtime: None,
            slurm_conf: None,
        }
    }
}

fn call(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn spec() -> JobSpec {
    JobSpec {
        nodes: 2,
        gpus_per_node: 4,
        max_runtime_seconds: 90,
        env: vec![("EPOCHS".into(), "3 'quick'".into())],
        output_name: "train".into(),
        correlation_id: "corr-789".into(),
        ..JobSpec::new(
            "hpc-job-456",
            Workload::Script {
                bytes: b"#!/usr/bin/env python3\nprint('hi')\n".to_vec(),
            },
        )
    }
}

/// The sbatch call for job `job_id` in `jobs_dir`, with `options` between the fixed
/// leading and trailing ones.
fn sbatch_call(jobs_dir: &Path, job_id: &str, options: &[&str]) -> Vec<String> {
    let dir = jobs_dir.join(job_id).display().to_string();
    let mut words = vec![
        "sbatch".to_string(),
        "--parsable".into(),
        format!("--job-name={job_id}"),
    ];
    words.extend(options.iter().map(|o| o.to_string()));
    words.extend([
        format!("--chdir={dir}"),
        format!("--output={dir}/slurm-%j.log"),
        "--export=NONE".into(),
        format!("{dir}/run.sh"),
    ]);
    words
}

#[tokio::test]
async fn submit_new_job_writes_the_job_dir_and_passes_exact_arguments() {
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
                "--format=%i|%j|%o"
            ]),
            call(&[
                "sacct",
                "--noheader",
                "--allocations",
                "--parsable2",
                "--name=hpc-job-456",
                "--starttime=now-7days",
                "--format=JobID,JobName,WorkDir"
            ]),
            sbatch_call(
                &fake.jobs_dir(),
                "hpc-job-456",
                &[
                    "--nodes=2",
                    "--time=2",
                    "--gres=gpu:4",
                    "--partition=gpu",
                    "--comment=corr-789"
                ]
            ),
        ]
    );

    // The job directory: the verified script, the environment, the wrapper.
    let dir = slurm.job_dir("hpc-job-456").unwrap();
    assert_eq!(dir, fake.jobs_dir().join("hpc-job-456"));
    assert_eq!(
        std::fs::read(dir.join("script")).unwrap(),
        b"#!/usr/bin/env python3\nprint('hi')\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("environment")).unwrap(),
        "# Environment of job hpc-job-456 (sourced by the shell that runs ./script).\n\
         export HPC_JOB_ID=hpc-job-456\nexport HPC_CORRELATION_ID=corr-789\n\
         export HPC_NODES=2\nexport HPC_GPUS_PER_NODE=4\nexport EPOCHS='3 '\\''quick'\\'''\n"
    );
    let wrapper = std::fs::read_to_string(dir.join("run.sh")).unwrap();
    assert!(
        wrapper.contains("timeout --kill-after=10s 90s /bin/sh -c")
            && wrapper.contains(">train.out 2>train.err"),
        "{wrapper}"
    );
    assert_eq!(
        std::fs::metadata(dir.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    // The Slurm id is recorded for restarts.
    let index = std::fs::read_to_string(fake.jobs_dir().join(INDEX_FILE)).unwrap();
    assert!(index.contains(r#""4829173": "hpc-job-456""#), "{index}");

    // Idempotent: the second submit returns the same handle without touching Slurm.
    fake.clear_calls();
    assert_eq!(slurm.submit(&spec()).await.unwrap(), id);
    assert!(fake.calls().is_empty());
    // So does a restarted adapter on the same jobs directory.
    let restarted = SlurmScheduler::new(fake.config()).unwrap();
    assert_eq!(restarted.submit(&spec()).await.unwrap(), id);
    assert!(fake.calls().is_empty());
    assert_eq!(restarted.job_dir("hpc-job-456"), Some(dir));
    assert_eq!(restarted.job_dir("other"), None);
}

#[tokio::test]
async fn submit_minimal_config_partition_hint_and_cluster_suffix() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("sbatch", "sbatch_parsable_cluster.out");
    let slurm = SlurmScheduler::new(fake.minimal_config()).unwrap();
    let spec = JobSpec::new(
        "job-1",
        Workload::Script {
            bytes: b"#!/bin/sh\necho $HPC_JOB_ID\n".to_vec(),
        },
    );
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
                "--format=%i|%j|%o"
            ]),
            sbatch_call(&fake.jobs_dir(), "job-1", &["--nodes=1"]),
        ]
    );
    let wrapper = std::fs::read_to_string(fake.jobs_dir().join("job-1/run.sh")).unwrap();
    assert!(!wrapper.contains("timeout --kill-after"), "{wrapper}");

    // 61 s rounds up to 2 minutes; the job's partition hint is passed.
    fake.clear_calls();
    let spec = JobSpec {
        job_id: "job-2".into(),
        max_runtime_seconds: 61,
        partition: Some("a100".into()),
        ..spec
    };
    slurm.submit(&spec).await.unwrap();
    assert_eq!(
        fake.calls()[1],
        sbatch_call(
            &fake.jobs_dir(),
            "job-2",
            &["--nodes=1", "--time=2", "--partition=a100"]
        )
    );

    // ... and overrides the configured partition.
    fake.clear_calls();
    let configured = SlurmScheduler::new(fake.config()).unwrap();
    let spec = JobSpec {
        job_id: "job-3".into(),
        ..spec
    };
    configured.submit(&spec).await.unwrap();
    let sbatch = fake.calls().pop().unwrap();
    assert!(
        sbatch.contains(&"--partition=a100".to_string()),
        "{sbatch:?}"
    );
    assert!(
        !sbatch.contains(&"--partition=gpu".to_string()),
        "{sbatch:?}"
    );
}

#[tokio::test]
async fn submit_finds_job_already_in_slurm() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("sbatch", "sbatch_parsable.out");
    // Restarted enforcers whose index was lost: only Slurm knows the job.
    let jobs_dir = |name: &str| fake.dir.path().canonicalize().unwrap().join(name);
    let fresh = |name: &str| SlurmConfig {
        jobs_dir: jobs_dir(name),
        ..fake.config()
    };

    // Ours: its batch script is this job's run.sh. Another job with the same name but
    // someone else's script is not adopted.
    fake.replay_in("squeue_name", "squeue_name_found.out", &jobs_dir("jobs-a"));
    let slurm = SlurmScheduler::new(fresh("jobs-a")).unwrap();
    assert_eq!(
        slurm.submit(&spec()).await.unwrap(),
        LocalJobId::new("4829173")
    );
    assert!(fake.calls().iter().all(|c| c[0] != "sbatch"));
    // Found jobs are recorded too.
    assert!(slurm.job_dir("hpc-job-456").is_some());

    // Purged from slurmctld, still in accounting (working directory = the job directory).
    fake.reset("squeue_name");
    fake.replay_in("sacct_name", "sacct_name_found.out", &jobs_dir("jobs-b"));
    fake.clear_calls();
    let slurm = SlurmScheduler::new(fresh("jobs-b")).unwrap();
    assert_eq!(
        slurm.submit(&spec()).await.unwrap(),
        LocalJobId::new("4829173")
    );
    let tools: Vec<String> = fake.calls().into_iter().map(|c| c[0].clone()).collect();
    assert_eq!(tools, ["squeue", "sacct"]);

    // Only jobs that carry the name (submitted by someone else into Slurm): ours is
    // submitted.
    fake.replay_in(
        "squeue_name",
        "squeue_name_found.out",
        &jobs_dir("elsewhere"),
    );
    fake.replay_in("sacct_name", "sacct_name_found.out", &jobs_dir("elsewhere"));
    fake.clear_calls();
    let slurm = SlurmScheduler::new(fresh("jobs-c")).unwrap();
    assert_eq!(
        slurm.submit(&spec()).await.unwrap(),
        LocalJobId::new("4829173") // sbatch's answer
    );
    let tools: Vec<String> = fake.calls().into_iter().map(|c| c[0].clone()).collect();
    assert_eq!(tools, ["squeue", "sacct", "sbatch"]);
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
async fn sbatch_errors_are_typed_and_containers_need_a_runtime() {
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
    // Nothing recorded: a later submit tries again.
    assert_eq!(slurm.job_dir("hpc-job-456"), None);

    fake.reset("sbatch");
    fake.replay("sbatch", "sbatch_not_parsable.out");
    match slurm.submit(&spec()).await.unwrap_err() {
        SchedulerError::Unparsable { command, line, .. } => {
            assert!(command.starts_with(&fake.path("sbatch").display().to_string()));
            assert_eq!(line, "Submitted batch job 4829173");
        }
        other => panic!("{other:?}"),
    }

    // A container workload needs a configured runtime.
    let container = JobSpec {
        workload: Workload::Container {
            image: "ghcr.io/acme/train:1".into(),
            command: vec!["python3".into(), "train.py".into()],
        },
        ..spec()
    };
    match slurm.submit(&container).await {
        Err(SchedulerError::InvalidSpec { field, .. }) => {
            assert_eq!(field, "workload.container")
        }
        other => panic!("{other:?}"),
    }

    fake.reset("sbatch");
    fake.replay("sbatch", "sbatch_parsable.out");
    let with_runtime = SlurmScheduler::new(SlurmConfig {
        container_runtime: Some(vec!["apptainer".into(), "exec".into()]),
        ..fake.minimal_config()
    })
    .unwrap();
    with_runtime.submit(&container).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(fake.jobs_dir().join("hpc-job-456/script")).unwrap(),
        "#!/bin/sh\n# Container workload of job hpc-job-456 (generated by hpc-local-scheduler).\n\
         exec apptainer exec --env HPC_JOB_ID=hpc-job-456 --env HPC_CORRELATION_ID=corr-789 \
         --env HPC_NODES=2 --env HPC_GPUS_PER_NODE=4 --env 'EPOCHS=3 '\\''quick'\\''' \
         ghcr.io/acme/train:1 python3 train.py\n"
    );
    // The job's variables reach the container only, not the runtime's environment.
    assert!(
        !std::fs::read_to_string(fake.jobs_dir().join("hpc-job-456/environment"))
            .unwrap()
            .contains("EPOCHS")
    );
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
        LocalJobState::failed(TIME_LIMIT_EXCEEDED, None)
    );

    // Purged from slurmctld: squeue fails with "Invalid job id specified" -> sacct.
    fake.reset("squeue_job");
    fake.replay("squeue_job", "squeue_invalid_job.err");
    fake.exit("squeue_job", 1);
    fake.replay("sacct_job", "sacct_failed.out");
    fake.clear_calls();
    assert_eq!(
        slurm.job_state(&id).await.unwrap(),
        LocalJobState::failed("slurm state FAILED, exit code 3", Some(3))
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

    // Nothing anywhere (and no job directory: not submitted through this adapter)
    // -> Unknown.
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
async fn job_state_uses_the_recorded_exit_status() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("sbatch", "sbatch_parsable.out");
    let slurm = SlurmScheduler::new(fake.config()).unwrap();
    let id = slurm.submit(&spec()).await.unwrap();
    let dir = slurm.job_dir("hpc-job-456").unwrap();
    let record = |text: &str| std::fs::write(dir.join("exit_code"), text).unwrap();
    let squeue_says = |fixture: &str| {
        fake.reset("squeue_job");
        fake.replay("squeue_job", fixture);
    };

    // Slurm's word while the job holds its allocation, even with a status written.
    squeue_says("squeue_T_completing.out");
    record("0\n");
    assert_eq!(slurm.job_state(&id).await.unwrap(), LocalJobState::Running);

    squeue_says("squeue_T_completed.out");
    assert_eq!(
        slurm.job_state(&id).await.unwrap(),
        LocalJobState::Completed
    );

    // FAILED: the workload's own exit code.
    squeue_says("squeue_T_failed.out");
    record("3\n");
    assert_eq!(
        slurm.job_state(&id).await.unwrap(),
        LocalJobState::failed("exit code 3", Some(3))
    );
    // The wrapper's time limit fired before Slurm's.
    record("timeout 90\n");
    assert_eq!(
        slurm.job_state(&id).await.unwrap(),
        LocalJobState::failed("time limit of 90 s exceeded", None)
    );
    // A cancel stays a cancel.
    squeue_says("squeue_T_cancelled.out");
    assert_eq!(
        slurm.job_state(&id).await.unwrap(),
        LocalJobState::Cancelled
    );

    // Purged from slurmctld: the recorded status, without asking sacct, also after a
    // restart.
    squeue_says("squeue_invalid_job.err");
    fake.exit("squeue_job", 1);
    record("0\n");
    fake.clear_calls();
    let restarted = SlurmScheduler::new(fake.config()).unwrap();
    assert_eq!(
        restarted.job_state(&id).await.unwrap(),
        LocalJobState::Completed
    );
    assert_eq!(fake.calls().len(), 1);

    // No status (killed before the wrapper could write one): Slurm's state.
    std::fs::remove_file(dir.join("exit_code")).unwrap();
    fake.replay("sacct_job", "sacct_timeout.out");
    assert_eq!(
        restarted.job_state(&id).await.unwrap(),
        LocalJobState::failed(TIME_LIMIT_EXCEEDED, None)
    );
    squeue_says("squeue_T_failed.out");
    assert_eq!(
        restarted.job_state(&id).await.unwrap(),
        LocalJobState::failed("slurm state FAILED", None)
    );
}

#[tokio::test]
async fn jobs_lists_every_job_in_slurm() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("squeue_all", "squeue_all_jobs.out");
    let slurm = SlurmScheduler::new(fake.minimal_config()).unwrap();
    let jobs = slurm.jobs().await.unwrap();
    assert_eq!(
        fake.calls(),
        vec![call(&[
            "squeue",
            "--noheader",
            "--all",
            "--states=all",
            "--format=%i|%j|%T|%k"
        ])]
    );
    assert_eq!(jobs.len(), 7);
    assert_eq!(
        jobs[0],
        LocalJobInfo {
            local_id: LocalJobId::new("4829173"),
            name: "hpc-job-456".into(),
            comment: "corr-789".into(),
            state: LocalJobState::Running,
        }
    );

    fake.reset("squeue_all");
    fake.replay("squeue_all", "squeue_socket_timeout.err");
    fake.exit("squeue_all", 1);
    assert!(matches!(
        slurm.jobs().await,
        Err(SchedulerError::CommandFailed { .. })
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
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    assert!(SlurmScheduler::new(SlurmConfig::new(&jobs)).is_ok());
    assert!(jobs.is_dir());
    let refused = |config: SlurmConfig| match SlurmScheduler::new(config) {
        Err(SchedulerError::InvalidConfig { field, .. }) => field,
        other => panic!("{:?}", other.map(|_| ())),
    };
    assert_eq!(
        refused(SlurmConfig {
            partition: Some("a b".into()),
            ..SlurmConfig::new(&jobs)
        }),
        "partition"
    );
    assert_eq!(
        refused(SlurmConfig {
            command_timeout: Duration::ZERO,
            ..SlurmConfig::new(&jobs)
        }),
        "command_timeout"
    );
    assert_eq!(
        refused(SlurmConfig {
            container_runtime: Some(vec![String::new()]),
            ..SlurmConfig::new(&jobs)
        }),
        "container_runtime"
    );
    // `%` would be expanded by Slurm in --output.
    assert_eq!(
        refused(SlurmConfig::new(dir.path().join("100%"))),
        "jobs_dir"
    );
    // A corrupt job index is refused rather than forgotten.
    for content in [
        "{}",
        r#"{"version": 1, "jobs": {"12": "../escape"}}"#,
        r#"{"version": 1, "jobs": {"12;x": "job"}}"#,
    ] {
        std::fs::write(jobs.join(INDEX_FILE), content).unwrap();
        assert!(
            matches!(
                SlurmScheduler::new(SlurmConfig::new(&jobs)),
                Err(SchedulerError::Io { .. })
            ),
            "{content}"
        );
    }
    std::fs::write(
        jobs.join(INDEX_FILE),
        r#"{"version": 1, "jobs": {"12": "job-1"}}"#,
    )
    .unwrap();
    let s = SlurmScheduler::new(SlurmConfig::new(&jobs)).unwrap();
    assert_eq!(
        s.job_dir("job-1"),
        Some(jobs.canonicalize().unwrap().join("job-1"))
    );
}

#[tokio::test]
async fn every_command_gets_the_configured_slurm_conf() {
    let _serial = SERIAL.lock().await;
    let fake = FakeSlurm::new();
    fake.replay("scontrol", "scontrol_ping_up.out");
    fake.replay("sinfo", "sinfo_F.out");
    fake.replay("squeue_pending", "squeue_pending_ids.out");
    let conf = fake.path("cluster-a.conf");
    let slurm = SlurmScheduler::new(SlurmConfig {
        slurm_conf: Some(conf.clone()),
        ..fake.config()
    })
    .unwrap();
    slurm.status().await.unwrap();
    let _ = slurm.cancel(&LocalJobId::new("41")).await;

    let seen = fake.slurm_confs();
    assert_eq!(seen.len(), fake.calls().len());
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.iter().all(|c| c == &conf.display().to_string()),
        "{seen:?}"
    );

    // Without the setting, the tools inherit the enforcer's environment unchanged.
    let before = fake.slurm_confs().len();
    let plain = SlurmScheduler::new(fake.minimal_config()).unwrap();
    plain.status().await.unwrap();
    let inherited = std::env::var("SLURM_CONF").unwrap_or_else(|_| "unset".into());
    assert!(fake.slurm_confs()[before..].iter().all(|c| c == &inherited));
}
