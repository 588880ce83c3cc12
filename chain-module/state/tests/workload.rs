//! Job workloads (issue 9): what a job runs travels with it, every field is checked with an
//! error naming it, limits are params, inline script bytes are paid for in gas, and the
//! provider's final report (exit code, local job id) is kept on the job.

mod common;

use common::*;
use hpc_primitives::contract::workload::sha256_hex;
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::job_workload::Source;
use hpc_proto::virtengine::hpc::v1::*;

const SCRIPT: &[u8] = b"#!/bin/sh\necho hello\n";

fn inline(script: &[u8]) -> JobWorkload {
    JobWorkload {
        source: Some(Source::InlineScript(script.to_vec())),
        ..Default::default()
    }
}

fn submit_with(owner: &Key, workload: Option<JobWorkload>) -> cosmos_sdk_proto::Any {
    to_any(&MsgSubmitJob {
        owner: owner.addr.to_string(),
        requirements: Some(JobRequirements {
            nodes: 1,
            max_runtime_seconds: 600,
            ..Default::default()
        }),
        workload,
        ..Default::default()
    })
}

fn job(chain: &Chain, id: &str) -> Job {
    chain
        .query::<_, QueryJobResponse>("Job", QueryJobRequest { job_id: id.into() })
        .job
        .unwrap()
}

/// provider1 routes the job on cluster-a as its decision says.
fn approve(chain: &mut Chain, p1: &Key, id: &str, decision: &str) {
    chain.ok(
        p1,
        vec![audit(
            p1,
            "r1",
            id,
            decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
    );
}

fn status(
    provider: &Key,
    job_id: &str,
    s: JobState,
    exit: Option<i32>,
    local: &str,
) -> cosmos_sdk_proto::Any {
    to_any(&MsgReportJobStatus {
        provider: provider.addr.to_string(),
        job_id: job_id.into(),
        status: s as i32,
        message: String::new(),
        exit_code: exit,
        local_job_id: local.into(),
    })
}

#[test]
fn a_job_carries_its_workload_and_the_job_query_returns_it() {
    let World {
        mut chain, alice, ..
    } = world();
    let workload = JobWorkload {
        env: vec![EnvVar {
            name: "GREETING".into(),
            value: "hi, there".into(),
        }],
        partition: "debug".into(),
        output_name: "result".into(),
        ..inline(SCRIPT)
    };
    let out = chain.ok(&alice, vec![submit_with(&alice, Some(workload.clone()))]);
    let id = scheduled(&out, "job_id");
    assert_eq!(job(&chain, &id).workload, Some(workload));
    // Lists stay small: workloads are only in the single-job query.
    let jobs: QueryJobsResponse = chain.query(
        "Jobs",
        QueryJobsRequest {
            owner: alice.addr.to_string(),
            ..Default::default()
        },
    );
    assert_eq!(jobs.jobs.len(), 1);
    assert_eq!(jobs.jobs[0].workload, None);
}

#[test]
fn content_addressed_and_container_workloads_are_accepted() {
    let World {
        mut chain, alice, ..
    } = world();
    for source in [
        Source::ScriptRef(ContentAddress {
            uri: "https://scripts.example/job.sh".into(),
            sha256: sha256_hex(SCRIPT),
            size_bytes: SCRIPT.len() as u64,
        }),
        Source::Container(ContainerWorkload {
            image: "registry.example/app:1.0".into(),
            command: vec!["python3".into(), "-c".into(), "print(1)".into()],
        }),
    ] {
        let w = JobWorkload {
            source: Some(source),
            ..Default::default()
        };
        let out = chain.ok(&alice, vec![submit_with(&alice, Some(w.clone()))]);
        assert_eq!(job(&chain, &scheduled(&out, "job_id")).workload, Some(w));
    }
}

#[test]
fn every_bad_workload_field_is_refused_naming_it() {
    let World {
        mut chain, alice, ..
    } = world();
    let env = |name: &str, value: &str| JobWorkload {
        env: vec![EnvVar {
            name: name.into(),
            value: value.into(),
        }],
        ..inline(SCRIPT)
    };
    let script_ref = |uri: &str, sha: &str, size: u64| JobWorkload {
        source: Some(Source::ScriptRef(ContentAddress {
            uri: uri.into(),
            sha256: sha.into(),
            size_bytes: size,
        })),
        ..Default::default()
    };
    let good_sha = sha256_hex(SCRIPT);
    let cases: Vec<(Option<JobWorkload>, &str)> = vec![
        (None, "workload: must be set"),
        (Some(JobWorkload::default()), "workload.source"),
        (
            Some(inline(b"echo no interpreter line\n")),
            "workload.inline_script",
        ),
        (Some(inline(b"#!/bin/sh\n\0")), "workload.inline_script"),
        (Some(env("HPC_JOB_ID", "x")), "workload.env[0].name"),
        (Some(env("SLURM_JOB_ID", "x")), "workload.env[0].name"),
        (Some(env("1BAD", "x")), "workload.env[0].name"),
        (Some(env("A-B", "x")), "workload.env[0].name"),
        (Some(env("OK", "a\0b")), "workload.env[0].value"),
        (
            Some(script_ref("no-scheme", &good_sha, 5)),
            "workload.script_ref.uri",
        ),
        (
            Some(script_ref("https://x/a b", &good_sha, 5)),
            "workload.script_ref.uri",
        ),
        (
            Some(script_ref("https://x/s", &good_sha.to_uppercase(), 5)),
            "workload.script_ref.sha256",
        ),
        (
            Some(script_ref("https://x/s", "abc", 5)),
            "workload.script_ref.sha256",
        ),
        (
            Some(script_ref("https://x/s", &good_sha, 0)),
            "workload.script_ref.size_bytes",
        ),
        (
            Some(JobWorkload {
                partition: "../etc".into(),
                ..inline(SCRIPT)
            }),
            "workload.partition",
        ),
        (
            Some(JobWorkload {
                output_name: "..".into(),
                ..inline(SCRIPT)
            }),
            "workload.output_name",
        ),
        (
            Some(JobWorkload {
                source: Some(Source::Container(ContainerWorkload {
                    image: "has space".into(),
                    command: vec![],
                })),
                ..Default::default()
            }),
            "workload.container.image",
        ),
    ];
    for (workload, needle) in cases {
        chain.fails(
            &alice,
            vec![submit_with(&alice, workload)],
            "sdk",
            18,
            needle,
        );
    }
    let twice = JobWorkload {
        env: vec![
            EnvVar {
                name: "A".into(),
                value: "1".into(),
            },
            EnvVar {
                name: "A".into(),
                value: "2".into(),
            },
        ],
        ..inline(SCRIPT)
    };
    chain.fails(
        &alice,
        vec![submit_with(&alice, Some(twice))],
        "sdk",
        18,
        "workload.env[1].name",
    );
}

#[test]
fn workload_limits_are_params_checked_at_their_boundary() {
    let World {
        mut chain,
        alice,
        authority,
        ..
    } = world();
    let params = hpc_state::hpc::default_params();
    let limit = params.max_inline_script_bytes as usize;
    let script_of = |len: usize| {
        let mut s = b"#!/bin/sh\n".to_vec();
        s.resize(len, b'#');
        s
    };
    chain.ok(
        &alice,
        vec![submit_with(&alice, Some(inline(&script_of(limit))))],
    );
    chain.fails(
        &alice,
        vec![submit_with(&alice, Some(inline(&script_of(limit + 1))))],
        "sdk",
        18,
        "max_inline_script_bytes",
    );
    // The authority lowers the env limit: the message that passed before is refused.
    let two_vars = JobWorkload {
        env: vec![
            EnvVar {
                name: "A".into(),
                value: "1".into(),
            },
            EnvVar {
                name: "B".into(),
                value: "2".into(),
            },
        ],
        ..inline(SCRIPT)
    };
    chain.ok(&alice, vec![submit_with(&alice, Some(two_vars.clone()))]);
    chain.ok(
        &authority,
        vec![update_params(
            &authority,
            Params {
                max_workload_env_vars: 1,
                ..params
            },
        )],
    );
    chain.fails(
        &alice,
        vec![submit_with(&alice, Some(two_vars))],
        "sdk",
        18,
        "max_workload_env_vars",
    );
    // Params themselves are bounded.
    chain.fails(
        &authority,
        vec![update_params(
            &authority,
            Params {
                max_inline_script_bytes: 0,
                ..params
            },
        )],
        "sdk",
        18,
        "params.max_inline_script_bytes",
    );
}

#[test]
fn inline_script_bytes_are_paid_for_in_gas() {
    let World {
        mut chain, alice, ..
    } = world();
    let small = chain.ok(&alice, vec![submit_with(&alice, Some(inline(SCRIPT)))]);
    let mut big = SCRIPT.to_vec();
    big.resize(SCRIPT.len() + 10_000, b'#');
    let large = chain.ok(&alice, vec![submit_with(&alice, Some(inline(&big)))]);
    // 10 000 more bytes: at least tx size (10/byte) + store write (30/byte).
    assert!(
        large.gas_used >= small.gas_used + 400_000,
        "small {} large {}",
        small.gas_used,
        large.gas_used
    );
}

#[test]
fn a_status_report_is_not_charged_for_the_script_again() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let mut big = SCRIPT.to_vec();
    big.resize(10_000, b'#');
    let out = chain.ok(&alice, vec![submit_with(&alice, Some(inline(&big)))]);
    let id = scheduled(&out, "job_id");
    assert_eq!(scheduled(&out, "provider"), p1.addr.to_string());
    let decision = scheduled(&out, "decision_id");
    approve(&mut chain, &p1, &id, &decision);
    let running = chain.ok(&p1, vec![status(&p1, &id, JobState::Running, None, "4711")]);
    // The job record rewritten without the 10 KB script (30 gas per byte written).
    assert!(
        running.gas_used < 200_000,
        "RUNNING report used {}",
        running.gas_used
    );
    assert_eq!(
        job(&chain, &id).workload.unwrap().source,
        Some(Source::InlineScript(big))
    );
}

#[test]
fn the_final_report_keeps_exit_code_and_local_job_id() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit_with(&alice, Some(inline(SCRIPT)))]);
    let id = scheduled(&out, "job_id");
    let decision = scheduled(&out, "decision_id");
    approve(&mut chain, &p1, &id, &decision);
    chain.fails(
        &p1,
        vec![status(&p1, &id, JobState::Running, Some(0), "17")],
        "sdk",
        18,
        "exit_code",
    );
    chain.fails(
        &p1,
        vec![status(&p1, &id, JobState::Running, None, &"9".repeat(129))],
        "sdk",
        18,
        "local_job_id",
    );
    chain.ok(&p1, vec![status(&p1, &id, JobState::Running, None, "17")]);
    chain.fails(
        &p1,
        vec![status(&p1, &id, JobState::Completed, Some(3), "17")],
        "sdk",
        18,
        "exit_code",
    );
    let out = chain.ok(&p1, vec![status(&p1, &id, JobState::Failed, Some(3), "17")]);
    let ev = event(&out, "hpc_job_status");
    assert_eq!(ev.get("exit_code"), Some("3"));
    assert_eq!(ev.get("local_job_id"), Some("17"));
    let j = job(&chain, &id);
    assert_eq!(
        (j.state(), j.exit_code, j.local_job_id.as_str()),
        (JobState::Failed, Some(3), "17")
    );
}

#[test]
fn an_audit_reason_code_must_be_a_short_identifier() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit_with(&alice, Some(inline(SCRIPT)))]);
    let id = scheduled(&out, "job_id");
    let decision = scheduled(&out, "decision_id");
    let record = |code: &str| {
        to_any(&MsgRecordRoutingAudit {
            provider: p1.addr.to_string(),
            records: vec![RoutingAuditRecord {
                record_id: format!("{}:r-{}", p1.addr, code.len()),
                job_id: id.clone(),
                scheduling_decision_id: decision.clone(),
                actual_cluster_id: "cluster-a".into(),
                status: AuditStatus::Rejected as i32,
                reason: "digest mismatch".into(),
                reason_code: code.into(),
                enforcement_mode: EnforcementMode::Strict as i32,
                ..Default::default()
            }],
        })
    };
    chain.fails(
        &p1,
        vec![record("Digest Mismatch")],
        "sdk",
        18,
        "records[0].reason_code",
    );
    chain.fails(
        &p1,
        vec![record(&"a".repeat(65))],
        "sdk",
        18,
        "records[0].reason_code",
    );
    let out = chain.ok(&p1, vec![record("workload_digest_mismatch")]);
    assert_eq!(
        event(&out, "hpc_routing_audit_recorded").get("reason_code"),
        Some("workload_digest_mismatch")
    );
    assert_eq!(job(&chain, &id).state(), JobState::Rejected);
}

#[test]
fn genesis_export_keeps_workloads() {
    let World {
        mut chain, alice, ..
    } = world();
    let out = chain.ok(&alice, vec![submit_with(&alice, Some(inline(SCRIPT)))]);
    let id = scheduled(&out, "job_id");
    let exported = hpc_state::hpc::export_genesis(&chain.state);
    let j = exported.jobs.iter().find(|j| j.job_id == id).unwrap();
    assert_eq!(j.workload, Some(inline(SCRIPT)));
}
