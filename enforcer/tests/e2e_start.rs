//! Where a first start begins, end to end against real CometBFT + hpcd + hpc-enforcer
//! processes: with `chain.start_height: latest` the enforcer does not read the blocks
//! before it started, yet a job scheduled onto its cluster before the start is found by
//! the start-up query of waiting jobs and routed; a job scheduled after the start comes
//! through the block follower; a restart resumes from the persisted cursor (not from
//! `latest` again) and handles a job scheduled while it was down once, although both the
//! start-up query and its block find it; the same `state_dir` against another chain is
//! refused.

mod common;

use std::time::Duration;

use common::{eventually, query, register_cluster, submit_job};
use hpc_testkit::enforcer::Enforcer;
use hpc_testkit::TestNode;

/// The numbers of the enforcer's "following the chain" log lines: (start, waiting).
fn follow_lines(enforcer: &Enforcer) -> Vec<(u64, u64)> {
    let number_after = |line: &str, key: &str| -> u64 {
        let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("a number after {key} in {line}"))
    };
    enforcer
        .log_text()
        .lines()
        .filter(|l| l.contains("following the chain"))
        .map(|l| (number_after(l, " start="), number_after(l, " waiting=")))
        .collect()
}

/// Waits until job `job` is COMPLETED and checks it has exactly one (approved) audit record.
async fn completed_once(node: &TestNode, enforcer: &Enforcer, job: &str) {
    eventually(&format!("job {job} completed"), enforcer, || {
        (query(node, &["job", job])["job"]["state"] == "JOB_STATE_COMPLETED").then_some(())
    })
    .await;
    let records = query(node, &["audit-records", "--job", job]);
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "job {job}: {records:?}");
    assert_eq!(records[0]["status"], "AUDIT_STATUS_APPROVED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_at_latest_finds_waiting_jobs_and_restart_resumes_from_the_cursor() {
    let mut node = TestNode::init("e2e-start-1");
    node.start(2).await;
    register_cluster(&node, "provider1", "cluster-p1", 10);

    let (early, cluster) = submit_job(&node, 1);
    assert_eq!(cluster, "cluster-p1");
    let scheduled_by = node.height().await.unwrap();
    node.wait_for_height(scheduled_by + 3, Duration::from_secs(30))
        .await;

    let dir = tempfile::tempdir().unwrap();
    let mut enforcer = Enforcer::write_config(&node, dir.path(), "provider1", "cluster-p1", 2);
    let yaml = std::fs::read_to_string(&enforcer.config).unwrap();
    let with_latest = yaml.replacen("chain:\n", "chain:\n  start_height: latest\n", 1);
    assert_ne!(yaml, with_latest);
    std::fs::write(&enforcer.config, with_latest).unwrap();
    enforcer.start();

    completed_once(&node, &enforcer, &early).await;
    let lines = follow_lines(&enforcer);
    assert_eq!(lines.len(), 1, "{lines:?}\n{}", enforcer.log_tail());
    let (start, waiting) = lines[0];
    assert!(
        start > scheduled_by + 2,
        "started at {start}, not after the job's block {scheduled_by}"
    );
    assert_eq!(waiting, 1, "the early job was found by the start-up query");

    // After the start: the block follower finds it.
    let (late, cluster) = submit_job(&node, 1);
    assert_eq!(cluster, "cluster-p1");
    completed_once(&node, &enforcer, &late).await;

    // A restart resumes from the persisted cursor, not from `latest` again. A job
    // scheduled while the enforcer is down is found twice — by the start-up query and in
    // its block — and handled once.
    enforcer.kill();
    let killed_at = node.height().await.unwrap();
    let (during, cluster) = submit_job(&node, 1);
    assert_eq!(cluster, "cluster-p1");
    let during_block = node.height().await.unwrap();
    node.wait_for_height(killed_at + 5, Duration::from_secs(30))
        .await;
    enforcer.start();
    eventually("second start", &enforcer, || {
        (follow_lines(&enforcer).len() == 2).then_some(())
    })
    .await;
    let (restart_at, waiting) = follow_lines(&enforcer)[1];
    assert!(
        restart_at > start && restart_at <= killed_at + 1,
        "restart at {restart_at}: the cursor was at most {} (first start {start})",
        killed_at + 1
    );
    assert_eq!(waiting, 1, "the job scheduled while down is waiting");
    eventually("the blocks missed while down read", &enforcer, || {
        let next = enforcer.status()?["next_height"].as_u64()?;
        (next > during_block + 1).then_some(())
    })
    .await;
    for job in [&early, &late, &during] {
        completed_once(&node, &enforcer, job).await;
    }

    // The same state_dir against another chain (a reset network: same chain id, job ids
    // starting over) is refused, not silently mixed.
    enforcer.kill();
    let mut other = TestNode::init("e2e-start-1");
    other.start(3).await;
    let yaml = std::fs::read_to_string(&enforcer.config).unwrap();
    let moved = yaml
        .replace(&node.rpc_url(), &other.rpc_url())
        .replace(&node.grpc_addr(), &other.grpc_addr());
    assert_ne!(yaml, moved);
    std::fs::write(&enforcer.config, moved).unwrap();
    enforcer.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while enforcer.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running against another chain\n{}",
            enforcer.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log = enforcer.log_text();
    assert!(
        log.contains("belongs to another chain"),
        "{}",
        enforcer.log_tail()
    );
}
