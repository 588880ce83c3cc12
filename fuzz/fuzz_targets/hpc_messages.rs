//! Every x/hpc message, decoded from the fuzz bytes as its protobuf, run through the same
//! steps the tx pipeline takes after the signature checks: `HpcMsg::decode` →
//! `HpcMsg::validate` (ValidateBasic) → `hpc::execute` on a gas-metered overlay over the
//! seeded chain (two clusters, two scheduled jobs, an audit record, a violation).
//! Signatures are bypassed: the signer is whatever the message names.
//!
//! Input: `[kind][flags][protobuf bytes of the message]`.
//! - `kind % 11` picks the type in `hpc_fuzz::HPC_MSG_TYPES`;
//! - `flags` optionally overwrite fields with ids that exist in the seeded state, so the
//!   stateful checks get past "not found": bits 0-2 the signer (keep, alice, provider1,
//!   provider2, authority, job 1's provider, job 2's provider, keep), bits 3-4 job ids
//!   (keep, job 1, job 2, keep), bit 5 cluster ids (job 1's cluster), bit 6 decision,
//!   violation and provider-address fields (those of the chosen job), bit 7 runs the
//!   end-of-block retention sweep far in the future after a successful message.
//!
//! Properties besides "never panics":
//! - decode ∘ encode is the identity on the decoded message;
//! - execution is deterministic (same result, events and writes twice);
//! - after a successful message, genesis export → InitChain reproduces the state exactly.
#![no_main]

use hpc_fuzz::hpc_state::consensus::BlockLimits;
use hpc_fuzz::hpc_state::context::ExecCtx;
use hpc_fuzz::hpc_state::gas::{GasMeter, Metered};
use hpc_fuzz::hpc_state::hpc::{self, HpcMsg};
use hpc_fuzz::hpc_state::tx::Validated;
use hpc_fuzz::hpc_store::Delta;
use hpc_fuzz::{merged, world, State, World, CHAIN, GAS, HPC_MSG_TYPES};
use libfuzzer_sys::fuzz_target;

fn fix_signer(w: &World, msg: &mut HpcMsg, choice: u8) {
    let who = match choice {
        1 => w.alice.address(),
        2 => w.p1.address(),
        3 => w.p2.address(),
        4 => w.authority.address(),
        5 => w.job1_provider.clone(),
        6 => w.job2_provider.clone(),
        _ => return,
    };
    let field = match msg {
        HpcMsg::RegisterCluster(m) => &mut m.provider,
        HpcMsg::UpdateClusterStatus(m) => &mut m.provider,
        HpcMsg::DeregisterCluster(m) => &mut m.provider,
        HpcMsg::SubmitJob(m) => &mut m.owner,
        HpcMsg::CancelJob(m) => &mut m.owner,
        HpcMsg::RequestReschedule(m) => &mut m.requester,
        HpcMsg::RecordRoutingAudit(m) => &mut m.provider,
        HpcMsg::ReportRoutingViolation(m) => &mut m.reporter,
        HpcMsg::ResolveRoutingViolation(m) => &mut m.authority,
        HpcMsg::ReportJobStatus(m) => &mut m.provider,
        HpcMsg::UpdateParams(m) => &mut m.authority,
    };
    *field = who;
}

fn fix_ids(w: &World, msg: &mut HpcMsg, flags: u8) {
    let job = match (flags >> 3) & 3 {
        1 => Some((&w.job1, &w.decision1, &w.job1_provider)),
        2 => Some((&w.job2, &w.decision2, &w.job2_provider)),
        _ => None,
    };
    let cluster = (flags & 0x20 != 0).then_some(&w.job1_cluster);
    let refs = flags & 0x40 != 0;
    let (decision, provider) = match job {
        Some((_, d, p)) => (d, p),
        None => (&w.decision1, &w.job1_provider),
    };
    let set = |field: &mut String, value: Option<&String>| {
        if let Some(v) = value {
            field.clone_from(v);
        }
    };
    let job_id = job.map(|(j, _, _)| j);
    match msg {
        HpcMsg::RegisterCluster(m) => set(&mut m.cluster_id, cluster),
        HpcMsg::UpdateClusterStatus(m) => set(&mut m.cluster_id, cluster),
        HpcMsg::DeregisterCluster(m) => set(&mut m.cluster_id, cluster),
        HpcMsg::SubmitJob(_) | HpcMsg::UpdateParams(_) => {}
        HpcMsg::CancelJob(m) => set(&mut m.job_id, job_id),
        HpcMsg::RequestReschedule(m) => {
            set(&mut m.job_id, job_id);
            if let Some(c) = cluster {
                m.excluded_cluster_ids.push(c.clone());
            }
        }
        HpcMsg::RecordRoutingAudit(m) => {
            for r in &mut m.records {
                set(&mut r.job_id, job_id);
                set(&mut r.actual_cluster_id, cluster);
                if refs {
                    r.scheduling_decision_id.clone_from(decision);
                    r.provider_address.clone_from(provider);
                }
            }
        }
        HpcMsg::ReportRoutingViolation(m) => {
            for v in &mut m.violations {
                set(&mut v.job_id, job_id);
                set(&mut v.actual_cluster_id, cluster);
                if refs {
                    v.decision_id.clone_from(decision);
                    v.provider_address.clone_from(provider);
                }
            }
        }
        HpcMsg::ResolveRoutingViolation(m) => {
            if refs {
                m.violation_id.clone_from(&w.violation_id);
            }
        }
        HpcMsg::ReportJobStatus(m) => set(&mut m.job_id, job_id),
    }
}

/// Runs the message as the tx pipeline's message loop does; returns the result, the
/// events and the writes.
fn run(
    w: &World,
    msg: &Validated<HpcMsg>,
) -> (
    Result<cosmos_sdk_proto::Any, hpc_fuzz::hpc_state::errors::TxError>,
    Vec<hpc_fuzz::hpc_state::Event>,
    hpc_fuzz::hpc_store::Changes,
) {
    let meter = GasMeter::new(GAS);
    let mut ctx = ExecCtx::new(&w.block, &meter);
    let mut state = Metered::new(Delta::new(&w.state), &meter);
    let result = hpc::execute(&mut state, &mut ctx, msg.borrowed());
    (result, ctx.events, state.into_inner().into_changes())
}

/// `App::init_chain(export(state))` must rebuild `state` key for key.
fn assert_genesis_round_trip(w: &World, state: &State) {
    let exported = w.app.export(state);
    let json = serde_json::to_vec(&exported).expect("exported genesis serializes");
    let mut fresh = State::new();
    if let Err(e) = w
        .app
        .init_chain(&mut fresh, CHAIN, &BlockLimits::default(), &json)
    {
        panic!("the exported genesis does not import: {e}");
    }
    if &fresh != state {
        let only_old: Vec<_> = state
            .iter()
            .filter(|(k, v)| fresh.get(*k) != Some(*v))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        let only_new: Vec<_> = fresh
            .iter()
            .filter(|(k, v)| state.get(*k) != Some(*v))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        panic!("export → InitChain changed the state: differing keys before {only_old:?}, after {only_new:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let [kind, flags, body @ ..] = data else {
        return;
    };
    let any = cosmos_sdk_proto::Any {
        type_url: HPC_MSG_TYPES[*kind as usize % HPC_MSG_TYPES.len()].to_string(),
        value: body.to_vec(),
    };
    let Some(Ok(mut msg)) = HpcMsg::decode(&any) else {
        return;
    };
    fix_signer(w, &mut msg, flags & 7);
    fix_ids(w, &mut msg, *flags);

    let reencoded = match &msg {
        HpcMsg::RegisterCluster(m) => hpc_proto::to_any(m),
        HpcMsg::UpdateClusterStatus(m) => hpc_proto::to_any(m),
        HpcMsg::DeregisterCluster(m) => hpc_proto::to_any(m),
        HpcMsg::SubmitJob(m) => hpc_proto::to_any(m),
        HpcMsg::CancelJob(m) => hpc_proto::to_any(m),
        HpcMsg::RequestReschedule(m) => hpc_proto::to_any(m),
        HpcMsg::RecordRoutingAudit(m) => hpc_proto::to_any(m),
        HpcMsg::ReportRoutingViolation(m) => hpc_proto::to_any(m),
        HpcMsg::ResolveRoutingViolation(m) => hpc_proto::to_any(m),
        HpcMsg::ReportJobStatus(m) => hpc_proto::to_any(m),
        HpcMsg::UpdateParams(m) => hpc_proto::to_any(m),
    };
    assert_eq!(reencoded.type_url, msg.type_url());
    match HpcMsg::decode(&reencoded) {
        Some(Ok(again)) => assert_eq!(again, msg, "decode(encode(msg)) != msg"),
        other => panic!("a re-encoded message does not decode: {other:?}"),
    }

    let Ok(msg) = msg.validate() else {
        return;
    };
    let (result, events, changes) = run(w, &msg);
    let (result2, events2, changes2) = run(w, &msg);
    assert_eq!(result, result2, "execution is not deterministic");
    assert_eq!(events, events2, "events are not deterministic");
    assert_eq!(changes, changes2, "writes are not deterministic");
    if result.is_err() {
        return;
    }
    let mut after = merged(&w.state, &changes);
    assert_genesis_round_trip(w, &after);
    if flags & 0x80 != 0 {
        w.app.end_block(
            &mut after,
            &hpc_fuzz::hpc_state::BlockInfo {
                height: w.block.height + 1_000_000,
                time_seconds: w.block.time_seconds + 5_000_000,
                ..w.block.clone()
            },
        );
        // Pruning keeps the state exportable.
        assert_genesis_round_trip(w, &after);
    }
});
