//! Cluster lifecycle: registration, heartbeats (status updates) and deregistration.

use hpc_primitives::contract::{attrs, events};
use hpc_proto::virtengine::hpc::v1::{
    Cluster, ClusterHealth, ClusterState, MsgDeregisterCluster, MsgDeregisterClusterResponse,
    MsgRegisterCluster, MsgRegisterClusterResponse, MsgUpdateClusterStatus,
    MsgUpdateClusterStatusResponse,
};
use hpc_store::StateWrite;

use super::{now, provider_cluster, refresh_reputation};
use crate::context::ExecCtx;
use crate::errors::{hpc_codes as code, TxError};
use crate::events::Event;
use crate::hpc::keeper::Keeper;
use crate::hpc::params::HpcKeeper;

pub(super) fn register_cluster(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgRegisterCluster,
) -> Result<MsgRegisterClusterResponse, TxError> {
    if Keeper::cluster(state, &m.cluster_id).is_some() {
        return Err(TxError::hpc(
            code::CLUSTER_EXISTS,
            format!("cluster {} is already registered", m.cluster_id),
        ));
    }
    let params = HpcKeeper::params(state);
    let cluster = new_cluster(m, params.reputation_prior_bps, ctx);
    Keeper::set_cluster(state, &cluster);
    ctx.emit(
        Event::new(events::CLUSTER_REGISTERED)
            .attr(attrs::CLUSTER_ID, &cluster.cluster_id)
            .attr(attrs::PROVIDER, &cluster.provider_address)
            .attr(attrs::REGION, &cluster.region)
            .attr(attrs::TOTAL_NODES, cluster.total_nodes),
    );
    Ok(MsgRegisterClusterResponse {
        cluster_id: cluster.cluster_id,
    })
}

/// An active, healthy cluster as registered, starting at the reputation prior.
fn new_cluster(m: &MsgRegisterCluster, reputation_bps: u32, ctx: &ExecCtx) -> Cluster {
    Cluster {
        cluster_id: m.cluster_id.clone(),
        provider_address: m.provider.clone(),
        region: m.region.clone(),
        state: ClusterState::Active as i32,
        total_nodes: m.total_nodes,
        available_nodes: m.available_nodes,
        reserved_nodes: 0,
        gpus_per_node: m.gpus_per_node,
        gpu_type: m.gpu_type.clone(),
        queue_depth: m.queue_depth,
        latency_ms: m.latency_ms,
        jitter_ms: m.jitter_ms,
        packet_loss_bps: m.packet_loss_bps,
        price_per_node_hour: m.price_per_node_hour,
        health: ClusterHealth::Healthy as i32,
        reputation_bps,
        last_heartbeat_height: ctx.block.height,
        last_heartbeat_time: Some(now(ctx)),
        registered_height: ctx.block.height,
        completed_jobs: 0,
    }
}

pub(super) fn update_cluster_status(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgUpdateClusterStatus,
) -> Result<MsgUpdateClusterStatusResponse, TxError> {
    let mut cluster = provider_cluster(state, &m.cluster_id, &m.provider)?;
    if cluster.state() == ClusterState::Deregistered {
        return Err(TxError::hpc(
            code::CLUSTER_DEREGISTERED,
            format!("cluster {} is deregistered", m.cluster_id),
        ));
    }
    apply_heartbeat(&mut cluster, m, ctx)?;
    refresh_reputation(state, &mut cluster, &HpcKeeper::params(state), ctx)?;
    Keeper::set_cluster(state, &cluster);
    ctx.emit(
        Event::new(events::CLUSTER_UPDATED)
            .attr(attrs::CLUSTER_ID, &cluster.cluster_id)
            .attr(attrs::PROVIDER, &cluster.provider_address)
            .attr(attrs::STATE, cluster.state().as_str_name())
            .attr(attrs::HEALTH, cluster.health().as_str_name())
            .attr(attrs::AVAILABLE_NODES, cluster.available_nodes),
    );
    Ok(MsgUpdateClusterStatusResponse {})
}

/// Takes the reported status into `cluster`; the available nodes must fit its (possibly
/// updated) total.
fn apply_heartbeat(
    cluster: &mut Cluster,
    m: &MsgUpdateClusterStatus,
    ctx: &ExecCtx,
) -> Result<(), TxError> {
    if let Some(total) = m.total_nodes {
        cluster.total_nodes = total;
    }
    if m.available_nodes > cluster.total_nodes {
        return Err(TxError::invalid_request(format!(
            "available_nodes: {} exceeds the cluster's total_nodes {}",
            m.available_nodes, cluster.total_nodes
        )));
    }
    if let Some(price) = m.price_per_node_hour {
        cluster.price_per_node_hour = price;
    }
    cluster.state = m.state;
    cluster.available_nodes = m.available_nodes;
    cluster.queue_depth = m.queue_depth;
    cluster.latency_ms = m.latency_ms;
    cluster.jitter_ms = m.jitter_ms;
    cluster.packet_loss_bps = m.packet_loss_bps;
    cluster.health = m.health;
    cluster.last_heartbeat_height = ctx.block.height;
    cluster.last_heartbeat_time = Some(now(ctx));
    Ok(())
}

pub(super) fn deregister_cluster(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgDeregisterCluster,
) -> Result<MsgDeregisterClusterResponse, TxError> {
    let mut cluster = provider_cluster(state, &m.cluster_id, &m.provider)?;
    if cluster.state() == ClusterState::Deregistered {
        return Err(TxError::hpc(
            code::CLUSTER_DEREGISTERED,
            format!("cluster {} is already deregistered", m.cluster_id),
        ));
    }
    cluster.state = ClusterState::Deregistered as i32;
    Keeper::set_cluster(state, &cluster);
    ctx.emit(
        Event::new(events::CLUSTER_UPDATED)
            .attr(attrs::CLUSTER_ID, &cluster.cluster_id)
            .attr(attrs::PROVIDER, &cluster.provider_address)
            .attr(attrs::STATE, cluster.state().as_str_name()),
    );
    Ok(MsgDeregisterClusterResponse {})
}
