//! The Slurm adapter against a real Slurm cluster. Runs only when `HPC_SLURM_CONF` names
//! a cluster's slurm.conf, e.g. one started by `scripts/slurm-local.sh up NAME` (the
//! compute node must see the test's temporary directory: a single-host cluster):
//!
//! ```sh
//! HPC_SLURM_CONF=$(scripts/slurm-local.sh up sched | sed -n 's/^conf: //p') \
//!   cargo test -p hpc-local-scheduler --test slurm_real
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use hpc_local_scheduler::slurm::INDEX_FILE;
use hpc_local_scheduler::{
    JobSpec, LocalJobId, LocalJobState, LocalScheduler, SlurmConfig, SlurmScheduler, Workload,
};

/// The adapter on the configured cluster, or `None` (with a note) when there is none.
fn slurm(jobs_dir: &Path) -> Option<SlurmScheduler> {
    let Ok(conf) = std::env::var("HPC_SLURM_CONF") else {
        println!("HPC_SLURM_CONF is not set: skipping the real-Slurm test");
        return None;
    };
    // The Slurm tools the adapter runs inherit it.
    std::env::set_var("SLURM_CONF", conf);
    Some(SlurmScheduler::new(SlurmConfig::new(jobs_dir)).unwrap())
}

fn sh(job_id: &str, body: &str) -> JobSpec {
    JobSpec {
        correlation_id: format!("corr-{job_id}"),
        ..JobSpec::new(
            job_id,
            Workload::Script {
                bytes: format!("#!/bin/sh\n{body}\n").into_bytes(),
            },
        )
    }
}

async fn wait_for(
    s: &SlurmScheduler,
    id: &LocalJobId,
    done: impl Fn(&LocalJobState) -> bool,
) -> LocalJobState {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let state = s.job_state(id).await.unwrap();
        if done(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "Slurm job {id} still {state}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn real_slurm_runs_scripts_and_reports_their_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = slurm(dir.path()) else {
        return;
    };
    let run = format!("{}", std::process::id());
    let job = |name: &str| format!("real-{run}-{name}");

    let ok = JobSpec {
        env: vec![("GREETING".into(), "hello 'slurm'".into())],
        ..sh(
            &job("ok"),
            "echo \"$HPC_JOB_ID $GREETING\"; echo oops >&2; exit 0",
        )
    };
    let three = sh(&job("three"), "exit 3");
    let slow = JobSpec {
        max_runtime_seconds: 2,
        ..sh(&job("slow"), "sleep 60")
    };
    let victim = sh(&job("victim"), "sleep 60");

    let ok_id = s.submit(&ok).await.unwrap();
    let three_id = s.submit(&three).await.unwrap();
    let slow_id = s.submit(&slow).await.unwrap();
    let victim_id = s.submit(&victim).await.unwrap();
    // Idempotent against the real squeue, too.
    assert_eq!(s.submit(&ok).await.unwrap(), ok_id);

    // Found by name and comment among every job Slurm knows.
    let listed = s.jobs().await.unwrap();
    let mine = listed
        .iter()
        .find(|j| j.local_id == ok_id)
        .expect("submitted job listed");
    assert_eq!(
        (mine.name.as_str(), mine.comment.as_str()),
        (ok.job_id.as_str(), ok.correlation_id.as_str())
    );

    assert_eq!(
        wait_for(&s, &ok_id, LocalJobState::is_terminal).await,
        LocalJobState::Completed
    );
    let ok_dir = s.job_dir(&ok.job_id).unwrap();
    assert_eq!(
        std::fs::read_to_string(ok_dir.join("job.out")).unwrap(),
        format!("{} hello 'slurm'\n", ok.job_id)
    );
    assert_eq!(
        std::fs::read_to_string(ok_dir.join("job.err")).unwrap(),
        "oops\n"
    );

    assert_eq!(
        wait_for(&s, &three_id, LocalJobState::is_terminal).await,
        LocalJobState::failed("exit code 3", Some(3))
    );
    assert_eq!(
        wait_for(&s, &slow_id, LocalJobState::is_terminal).await,
        LocalJobState::failed("time limit of 2 s exceeded", None)
    );

    wait_for(&s, &victim_id, |st| *st == LocalJobState::Running).await;
    s.cancel(&victim_id).await.unwrap();
    assert_eq!(
        wait_for(&s, &victim_id, LocalJobState::is_terminal).await,
        LocalJobState::Cancelled
    );

    // A restarted adapter on the same jobs directory reports the same outcomes.
    let restarted = SlurmScheduler::new(SlurmConfig::new(dir.path())).unwrap();
    assert_eq!(
        restarted.job_state(&three_id).await.unwrap(),
        LocalJobState::failed("exit code 3", Some(3))
    );
    assert_eq!(restarted.submit(&three).await.unwrap(), three_id);

    // The index lost (a crash between sbatch and writing it): the job is found in Slurm by
    // its batch script, this job's run.sh, and not submitted again…
    std::fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();
    let lost = SlurmScheduler::new(SlurmConfig::new(dir.path())).unwrap();
    assert_eq!(lost.submit(&three).await.unwrap(), three_id);
    // …while a job someone else put into Slurm under the name of one of ours is not
    // adopted: ours is submitted beside it.
    let mine = sh(&job("named"), "true");
    let elsewhere = tempfile::tempdir().unwrap();
    let script = elsewhere.path().join("impostor.sh");
    std::fs::write(&script, "#!/bin/sh\necho impostor\n").unwrap();
    let out = std::process::Command::new("sbatch")
        .args(["--parsable", "--output=/dev/null"])
        .arg(format!("--job-name={}", mine.job_id))
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let impostor = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let submitted = lost.submit(&mine).await.unwrap();
    assert_ne!(submitted.as_str(), impostor);
    assert_eq!(
        wait_for(&lost, &submitted, LocalJobState::is_terminal).await,
        LocalJobState::Completed
    );
}
