//! Limits at the edge (issue 8), each tested at its boundary: the last allowed value
//! passes, the next is refused with an error naming the limit or field.

mod common;

use common::*;
use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmos_sdk_proto::Any;
use hpc_primitives::contract::ids;
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::*;
use hpc_state::tx::MAX_MSGS_PER_TX;

fn send(from: &Key, to: &Key) -> Any {
    to_any(&MsgSend {
        from_address: from.addr.to_string(),
        to_address: to.addr.to_string(),
        amount: vec![Coin {
            denom: "uvirt".into(),
            amount: "1".into(),
        }],
    })
}

fn refused(out: &hpc_state::TxOutcome, code: u32, needle: &str) {
    assert_eq!(
        (out.codespace.as_str(), out.code),
        ("sdk", code),
        "{}",
        out.log
    );
    assert!(
        out.log.contains(needle),
        "{:?} should name {needle:?}",
        out.log
    );
}

#[test]
fn messages_per_tx() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    chain.ok(&alice, vec![send(&alice, &p1); MAX_MSGS_PER_TX]);
    let out = chain.tx(&alice, vec![send(&alice, &p1); MAX_MSGS_PER_TX + 1]);
    refused(
        &out,
        18,
        &format!("exceeds the limit of {MAX_MSGS_PER_TX} per tx"),
    );
}

#[test]
fn gas_limit_fits_a_signed_64_bit_field() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let out = chain.tx_with_gas(&alice, vec![send(&alice, &p1)], i64::MAX as u64 + 1);
    refused(&out, 41, "auth_info.fee.gas_limit");
}

fn reschedule(owner: &Key, job: &str, excluded: usize, reason_len: usize) -> Any {
    to_any(&MsgRequestReschedule {
        requester: owner.addr.to_string(),
        job_id: job.into(),
        reason: "r".repeat(reason_len),
        excluded_cluster_ids: (0..excluded).map(|i| format!("excluded-{i}")).collect(),
        kind: RescheduleKind::Unspecified as i32,
    })
}

#[test]
fn excluded_clusters_and_free_text() {
    let World {
        mut chain, alice, ..
    } = world();
    let job = scheduled(&chain.ok(&alice, vec![submit(&alice, 1)]), "job_id");
    chain.ok(&alice, vec![reschedule(&alice, &job, 64, 1_024)]);
    let out = chain.tx(&alice, vec![reschedule(&alice, &job, 65, 10)]);
    refused(&out, 18, "excluded_cluster_ids: more than 64 entries");
    let out = chain.tx(&alice, vec![reschedule(&alice, &job, 0, 1_025)]);
    refused(&out, 18, "reason");
}

#[test]
fn record_ids_up_to_128_bytes() {
    let World {
        mut chain,
        alice,
        p1,
        ..
    } = world();
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let (job, decision) = (scheduled(&out, "job_id"), scheduled(&out, "decision_id"));
    let prefix = ids::scoped(&p1.addr.to_string(), "");
    let id = |len: usize| format!("{prefix}{}", "r".repeat(len - prefix.len()));
    let out = chain.tx(
        &p1,
        vec![audit(
            &p1,
            &id(129),
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
    );
    refused(&out, 18, "records[0].record_id");
    chain.ok(
        &p1,
        vec![audit(
            &p1,
            &id(128),
            &job,
            &decision,
            "cluster-a",
            AuditStatus::Approved,
        )],
    );
}
