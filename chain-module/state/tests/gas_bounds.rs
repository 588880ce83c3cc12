//! Gas bounds the work of x/hpc messages (issue 8): a SubmitJob stops with out-of-gas
//! inside the scheduler as soon as it passes its limit, and its cost does not grow with
//! deregistered clusters or stored violations.

mod common;

use common::*;
use hpc_proto::cosmos_sdk_proto::Timestamp;
use hpc_proto::virtengine::hpc::v1::*;
use hpc_state::hpc::keeper::Keeper;

/// Writes clusters straight into state (registering thousands through txs is slow):
/// `active` schedulable ones, `deregistered` others, and `violations` recorded against
/// each active one.
fn add_history(
    chain: &mut Chain,
    provider: &Key,
    active: usize,
    deregistered: usize,
    violations: usize,
) {
    for i in 0..active + deregistered {
        let cluster_id = format!("hist-{i:05}");
        let state = if i < active {
            ClusterState::Active
        } else {
            ClusterState::Deregistered
        };
        for v in 0..if i < active { violations } else { 0 } {
            Keeper::set_violation(
                &mut chain.state,
                &RoutingViolation {
                    violation_id: format!("old-{i}-{v}"),
                    job_id: format!("old-job-{v}"),
                    decision_id: format!("old-decision-{v}"),
                    provider_address: provider.addr.to_string(),
                    actual_cluster_id: cluster_id.clone(),
                    severity: 1,
                    created_height: 1,
                    ..Default::default()
                },
            );
        }
        Keeper::set_cluster(
            &mut chain.state,
            &Cluster {
                cluster_id,
                provider_address: provider.addr.to_string(),
                region: "eu-west".into(),
                state: state as i32,
                total_nodes: 8,
                available_nodes: 8,
                gpus_per_node: 4,
                gpu_type: "a100".into(),
                price_per_node_hour: 1_000_000,
                latency_ms: 20,
                health: ClusterHealth::Healthy as i32,
                reputation_bps: 7_000,
                last_heartbeat_time: Some(Timestamp {
                    seconds: chain.time,
                    nanos: 0,
                }),
                ..Default::default()
            },
        );
    }
}

#[test]
fn submit_job_runs_out_of_gas_inside_the_scheduler_not_after_it() {
    let (alice, p1, authority) = (key(1), key(2), key(4));
    let mut chain = Chain::new(&[&alice, &p1, &authority], &authority);
    add_history(&mut chain, &p1, 2_002, 0, 0);
    let limit = 120_000;
    let out = chain.tx_with_gas(&alice, vec![submit(&alice, 1)], limit);
    assert_eq!(
        (out.codespace.as_str(), out.code),
        ("sdk", 11),
        "{}",
        out.log
    );
    assert!(out.log.contains("messages[0]"), "{}", out.log);
    // Before the fix the whole candidate set was loaded and scored first: 3.8M gas used.
    assert!(
        out.gas_used > limit && out.gas_used < limit + 5_000,
        "gas used {} for a limit of {limit}",
        out.gas_used
    );
}

#[test]
fn submit_job_cost_is_flat_as_deregistered_clusters_and_violations_grow_100x() {
    let gas_with = |deregistered: usize, violations: usize| {
        let (alice, p1, authority) = (key(1), key(2), key(4));
        let mut chain = Chain::new(&[&alice, &p1, &authority], &authority);
        add_history(&mut chain, &p1, 10, deregistered, violations);
        let out = chain.ok(&alice, vec![submit(&alice, 1)]);
        out.gas_used
    };
    let small = gas_with(20, 1);
    assert_eq!(gas_with(2_000, 1), small, "deregistered clusters cost gas");
    assert_eq!(gas_with(20, 100), small, "stored violations cost gas");
}

#[test]
fn max_clusters_evaluated_bounds_the_candidates_of_a_decision() {
    let (alice, p1, authority) = (key(1), key(2), key(4));
    let mut chain = Chain::new(&[&alice, &p1, &authority], &authority);
    add_history(&mut chain, &p1, 40, 0, 0);
    let mut params = hpc_state::hpc::default_params();
    params.max_clusters_evaluated = 7;
    chain.ok(&authority, vec![update_params(&authority, params)]);
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let decision = Keeper::decision(&chain.state, &scheduled(&out, "decision_id")).unwrap();
    assert_eq!(decision.total_candidates, 7);
}

#[test]
fn a_heartbeat_lets_violations_that_left_the_window_stop_counting() {
    let World {
        mut chain,
        alice,
        p1,
        authority,
        ..
    } = world();
    let mut params = hpc_state::hpc::default_params();
    params.reputation_window_blocks = 3;
    chain.ok(&authority, vec![update_params(&authority, params)]);
    let out = chain.ok(&alice, vec![submit(&alice, 1)]);
    let job = scheduled(&out, "job_id");
    let reputation = |chain: &Chain| {
        Keeper::cluster(&chain.state, "cluster-a")
            .unwrap()
            .reputation_bps
    };
    let clean = reputation(&chain);
    chain.ok(
        &p1,
        vec![violation(&p1, &p1, &job, ViolationType::StaleDecision)],
    );
    assert!(reputation(&chain) < clean, "the violation counts at once");
    for _ in 0..4 {
        chain.next_block();
    }
    chain.ok(&p1, vec![heartbeat(&p1, "cluster-a")]);
    assert_eq!(
        reputation(&chain),
        clean,
        "out of the window after a heartbeat"
    );
}
