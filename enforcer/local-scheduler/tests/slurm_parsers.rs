//! The Slurm output parsers against recorded outputs (tests/fixtures).

use hpc_local_scheduler::jobdir::outcome_from_exit_file;
use hpc_local_scheduler::slurm::parse::{
    count_records, map_slurm_state, parse_named_jobs, parse_sacct_state, parse_sbatch_parsable,
    parse_scontrol_ping, parse_sinfo_aiot, parse_squeue_jobs, parse_squeue_state, resolve_state,
    NamedJob, NodeCounts, TIME_LIMIT_EXCEEDED,
};
use hpc_local_scheduler::{LocalJobId, LocalJobInfo, LocalJobState, SchedulerError};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn failed(reason: &str) -> LocalJobState {
    LocalJobState::failed(reason, None)
}

#[test]
fn sbatch_parsable() {
    assert_eq!(
        parse_sbatch_parsable(&fixture("sbatch_parsable.out")).unwrap(),
        "4829173"
    );
    assert_eq!(
        parse_sbatch_parsable(&fixture("sbatch_parsable_cluster.out")).unwrap(),
        "4829174"
    );
    let err = parse_sbatch_parsable(&fixture("sbatch_not_parsable.out")).unwrap_err();
    assert_eq!(err.line, "Submitted batch job 4829173");
    assert!(parse_sbatch_parsable("").is_err());
    assert!(parse_sbatch_parsable("12a45\n").is_err());
    // Unparsable output becomes a typed error naming the command and the line.
    match err.into_error("sbatch --parsable") {
        SchedulerError::Unparsable { command, line, .. } => {
            assert_eq!(command, "sbatch --parsable");
            assert_eq!(line, "Submitted batch job 4829173");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sinfo_node_counts() {
    assert_eq!(
        parse_sinfo_aiot(&fixture("sinfo_F.out")).unwrap(),
        NodeCounts {
            allocated: 2,
            idle: 6,
            other: 0,
            total: 8
        }
    );
    assert_eq!(
        parse_sinfo_aiot(&fixture("sinfo_F_two_partitions.out")).unwrap(),
        NodeCounts {
            allocated: 48,
            idle: 28,
            other: 4,
            total: 80
        }
    );
    assert_eq!(
        parse_sinfo_aiot(&fixture("sinfo_F_all_drained.out")).unwrap(),
        NodeCounts {
            allocated: 0,
            idle: 0,
            other: 8,
            total: 8
        }
    );
    assert_eq!(parse_sinfo_aiot("").unwrap(), NodeCounts::default());
    let err = parse_sinfo_aiot(&fixture("sinfo_default_header.out")).unwrap_err();
    assert_eq!(
        err.line,
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST"
    );
    let err = parse_sinfo_aiot("2/x/0/8\n").unwrap_err();
    assert_eq!(err.line, "2/x/0/8");
}

#[test]
fn squeue_ids_and_counts() {
    assert_eq!(count_records(&fixture("squeue_pending_ids.out")), 4);
    assert_eq!(count_records(""), 0);
    assert_eq!(count_records("\n  \n"), 0);
    // Slurm matched the name case-insensitively; only the exact name counts, with its origin.
    let ids = |jobs: Vec<NamedJob>| -> Vec<(String, String)> {
        jobs.into_iter().map(|j| (j.id, j.origin)).collect()
    };
    assert_eq!(
        ids(parse_named_jobs(&fixture("squeue_name_found.out"), "hpc-job-456").unwrap()),
        [
            ("4829171".to_string(), "/home/mallory/fake.sh".to_string()),
            (
                "4829173".to_string(),
                "JOBS_DIR/hpc-job-456/run.sh".to_string()
            ),
        ]
    );
    assert!(
        parse_named_jobs(&fixture("squeue_name_found.out"), "hpc-job-4")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(parse_named_jobs(&fixture("sacct_name_found.out"), "hpc-job-456").unwrap()),
        [
            ("4829172".to_string(), "/home/mallory".to_string()),
            ("4829173".to_string(), "JOBS_DIR/hpc-job-456".to_string()),
        ]
    );
    // An origin may contain the separator.
    assert_eq!(
        ids(parse_named_jobs("7|x|/a|b/run.sh\n", "x").unwrap()),
        [("7".to_string(), "/a|b/run.sh".to_string())]
    );
    assert!(parse_named_jobs("", "x").unwrap().is_empty());
    let err = parse_named_jobs("4829173|x|/o\nJOBID|NAME|COMMAND\n", "x").unwrap_err();
    assert_eq!(err.line, "JOBID|NAME|COMMAND");
    let err = parse_named_jobs("4829173|x\n", "x").unwrap_err();
    assert_eq!(err.line, "4829173|x");
}

#[test]
fn squeue_states() {
    let cases = [
        ("squeue_T_running.out", LocalJobState::Running),
        ("squeue_T_pending.out", LocalJobState::Pending),
        ("squeue_T_completing.out", LocalJobState::Running),
        ("squeue_T_completed.out", LocalJobState::Completed),
        ("squeue_T_timeout.out", failed(TIME_LIMIT_EXCEEDED)),
        (
            "squeue_T_out_of_memory.out",
            failed("slurm state OUT_OF_MEMORY"),
        ),
    ];
    for (file, want) in cases {
        assert_eq!(
            parse_squeue_state(&fixture(file)).unwrap(),
            Some(want),
            "{file}"
        );
    }
    assert_eq!(parse_squeue_state("").unwrap(), None);
    assert_eq!(parse_squeue_state("\n").unwrap(), None);
    // A state name from a newer Slurm is Unknown, garbage is an error.
    assert_eq!(
        parse_squeue_state("SOME_NEW_STATE\n").unwrap(),
        Some(LocalJobState::Unknown)
    );
    let err = parse_squeue_state("slurm_load_jobs: oops\n").unwrap_err();
    assert_eq!(err.line, "slurm_load_jobs: oops");
}

#[test]
fn every_documented_job_state_maps() {
    use LocalJobState::*;
    let table = [
        ("PENDING", Pending),
        ("CONFIGURING", Pending),
        ("REQUEUED", Pending),
        ("REQUEUE_FED", Pending),
        ("REQUEUE_HOLD", Pending),
        ("RESV_DEL_HOLD", Pending),
        ("SPECIAL_EXIT", Pending),
        ("RUNNING", Running),
        ("COMPLETING", Running),
        ("SIGNALING", Running),
        ("STAGE_OUT", Running),
        ("RESIZING", Running),
        ("SUSPENDED", Running),
        ("STOPPED", Running),
        ("COMPLETED", Completed),
        ("CANCELLED", Cancelled),
        ("FAILED", failed("slurm state FAILED")),
        ("NODE_FAIL", failed("slurm state NODE_FAIL")),
        ("BOOT_FAIL", failed("slurm state BOOT_FAIL")),
        ("DEADLINE", failed("slurm state DEADLINE")),
        ("PREEMPTED", failed("slurm state PREEMPTED")),
        ("REVOKED", failed("slurm state REVOKED")),
        ("OUT_OF_MEMORY", failed("slurm state OUT_OF_MEMORY")),
        ("TIMEOUT", failed(TIME_LIMIT_EXCEEDED)),
    ];
    for (slurm, want) in table {
        assert_eq!(map_slurm_state(slurm, None), Some(want), "{slurm}");
    }
    assert_eq!(map_slurm_state("running", None), Some(Running));
    assert_eq!(map_slurm_state("BOGUS", None), None);
}

#[test]
fn sacct_states() {
    assert_eq!(
        parse_sacct_state(&fixture("sacct_completed.out")).unwrap(),
        Some(LocalJobState::Completed)
    );
    assert_eq!(
        parse_sacct_state(&fixture("sacct_failed.out")).unwrap(),
        Some(LocalJobState::failed(
            "slurm state FAILED, exit code 3",
            Some(3)
        ))
    );
    assert_eq!(
        parse_sacct_state(&fixture("sacct_cancelled.out")).unwrap(),
        Some(LocalJobState::Cancelled)
    );
    assert_eq!(
        parse_sacct_state(&fixture("sacct_out_of_memory.out")).unwrap(),
        Some(failed("slurm state OUT_OF_MEMORY, signal 125"))
    );
    assert_eq!(
        parse_sacct_state(&fixture("sacct_timeout.out")).unwrap(),
        Some(failed(TIME_LIMIT_EXCEEDED))
    );
    assert_eq!(
        parse_sacct_state(&fixture("sacct_fixed_width.out")).unwrap(),
        Some(LocalJobState::Cancelled)
    );
    assert_eq!(
        parse_sacct_state("    FAILED      2:0 \n").unwrap(),
        Some(LocalJobState::failed(
            "slurm state FAILED, exit code 2",
            Some(2)
        ))
    );
    assert_eq!(parse_sacct_state("").unwrap(), None);
    let err = parse_sacct_state("sacct: error: Problem talking to the database\n").unwrap_err();
    assert_eq!(err.line, "sacct: error: Problem talking to the database");
}

#[test]
fn scontrol_ping() {
    assert!(parse_scontrol_ping(&fixture("scontrol_ping_up.out")).unwrap());
    assert!(!parse_scontrol_ping(&fixture("scontrol_ping_down.out")).unwrap());
    assert!(parse_scontrol_ping(&fixture("scontrol_ping_legacy.out")).unwrap());
    assert!(parse_scontrol_ping("").is_err());
    let err = parse_scontrol_ping("Slurmctld(primary) at x is MAYBE\n").unwrap_err();
    assert_eq!(err.line, "Slurmctld(primary) at x is MAYBE");
}

#[test]
fn squeue_job_list() {
    let info = |id: &str, name: &str, comment: &str, state: LocalJobState| LocalJobInfo {
        local_id: LocalJobId::new(id),
        name: name.into(),
        comment: comment.into(),
        state,
    };
    assert_eq!(
        parse_squeue_jobs(&fixture("squeue_all_jobs.out")).unwrap(),
        vec![
            info("4829173", "hpc-job-456", "corr-789", LocalJobState::Running),
            // squeue prints `(null)` for a job without a comment.
            info("4829170", "HPC-JOB-456", "", LocalJobState::Completed),
            info("4829174", "interactive", "", LocalJobState::Pending),
            // The comment is the rest of the line.
            info(
                "4829175",
                "hpc-job-457",
                "corr|with|pipes",
                failed("slurm state FAILED")
            ),
            info("4829180_3", "array-task", "", LocalJobState::Running),
            info("4829181_[4-10%2]", "array-task", "", LocalJobState::Pending),
            // A name with `|` ends at the state field.
            info("4829190+0", "name|with|pipes", "", LocalJobState::Cancelled),
        ]
    );
    assert!(parse_squeue_jobs("").unwrap().is_empty());
    // A state name from a newer Slurm is Unknown.
    assert_eq!(
        parse_squeue_jobs("12|x|SOME_NEW_STATE|c\n").unwrap()[0].state,
        LocalJobState::Unknown
    );
    for bad in [
        "JOBID|NAME|STATE|COMMENT",
        "12|x|RUNNING",
        "12 x RUNNING c",
        "x12|x|RUNNING|c",
        "12|x|no state|c",
    ] {
        let err = parse_squeue_jobs(&format!("12|ok|PENDING|c\n{bad}\n")).unwrap_err();
        assert_eq!(err.line, bad);
    }
}

#[test]
fn recorded_exit_status_and_slurm_state_combine() {
    use LocalJobState::*;
    let exit3 = || outcome_from_exit_file("3\n");
    let timeout = || outcome_from_exit_file("timeout 90\n");
    assert_eq!(exit3(), LocalJobState::failed("exit code 3", Some(3)));
    assert_eq!(
        timeout(),
        LocalJobState::failed("time limit of 90 s exceeded", None)
    );
    let slurm_failed = || LocalJobState::failed("slurm state FAILED", None);
    let cases = [
        // Slurm still holds the allocation: its word, whatever is recorded.
        (Some(Running), Some(Completed), Running),
        (Some(Pending), None, Pending),
        // Cancelled stays cancelled.
        (Some(Cancelled), Some(exit3()), Cancelled),
        // Terminal: the recorded outcome is the workload's own.
        (Some(Completed), Some(Completed), Completed),
        (Some(slurm_failed()), Some(exit3()), exit3()),
        (
            Some(failed(TIME_LIMIT_EXCEEDED)),
            Some(timeout()),
            timeout(),
        ),
        (Some(Unknown), Some(exit3()), exit3()),
        // Purged: recorded, else unknown.
        (None, Some(exit3()), exit3()),
        (None, None, Unknown),
        // Nothing recorded (the wrapper was killed): Slurm's terminal state.
        (Some(slurm_failed()), None, slurm_failed()),
        (
            Some(failed(TIME_LIMIT_EXCEEDED)),
            None,
            failed(TIME_LIMIT_EXCEEDED),
        ),
        (Some(Completed), None, Completed),
    ];
    for (slurm, recorded, want) in cases {
        assert_eq!(
            resolve_state(slurm.clone(), recorded.clone()),
            want,
            "{slurm:?} {recorded:?}"
        );
    }
}
