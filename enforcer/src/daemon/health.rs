//! Seed 002's health monitor and the chain heartbeats.

use super::*;

/// Seed 002: probe every interval; `failure_threshold` consecutive failures → unhealthy.
/// Heartbeats carry the free nodes, queue depth and health to the chain.
pub(super) async fn monitor_health(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let health = &shared.config.health;
    let probe = Duration::from_secs(health.probe_interval_seconds.max(1));
    let heartbeat_every = Duration::from_secs(health.heartbeat_interval_seconds.max(1));
    let mut failures = 0u32;
    let mut last_heartbeat: Option<Instant> = None;
    let mut last_sent_healthy = true;
    let mut last_sent_free: Option<u32> = None;
    loop {
        let status = shared.scheduler.status().await;
        let ok = matches!(&status, Ok(s) if s.reachable && s.healthy);
        failures = if ok { 0 } else { failures + 1 };
        let healthy = failures < health.failure_threshold.max(1);
        {
            let mut s = shared.status.lock().expect("status lock");
            s.cluster_healthy = healthy;
            s.consecutive_probe_failures = failures;
        }
        // A change of health or of free nodes is sent at once (at most once per probe),
        // not at the next regular heartbeat: the chain schedules by what it was told.
        let free = status.as_ref().ok().map(|s| s.free_nodes);
        let due = last_heartbeat.is_none_or(|t| t.elapsed() >= heartbeat_every);
        let capacity_changed = free.is_some() && free != last_sent_free;
        if due || healthy != last_sent_healthy || capacity_changed {
            if let Err(e) = heartbeat(&shared, status.ok(), healthy, failures).await {
                shared.note_error(format!("heartbeat: {e}"));
            } else {
                last_heartbeat = Some(Instant::now());
                last_sent_healthy = healthy;
                last_sent_free = free.or(last_sent_free);
            }
        }
        if let Err(e) = sync_violation_count(&shared).await {
            shared.note_error(format!("violation count: {e}"));
        }
        if stopped(&mut stop, probe).await {
            return Ok(());
        }
    }
}

async fn heartbeat(
    shared: &Shared,
    status: Option<hpc_local_scheduler::ClusterStatus>,
    healthy: bool,
    failures: u32,
) -> anyhow::Result<()> {
    let cluster_id = &shared.config.hpc.cluster_id;
    // Keep the network metrics the provider registered; report what the scheduler knows.
    let current = shared
        .gateway
        .client
        .transport
        .query::<_, hpc_proto::virtengine::hpc::v1::QueryClusterResponse>(
            "/virtengine.hpc.v1.Query/Cluster",
            &hpc_proto::virtengine::hpc::v1::QueryClusterRequest {
                cluster_id: cluster_id.clone(),
            },
            0,
        )
        .await?
        .cluster
        .ok_or_else(|| {
            anyhow!(
                "cluster {cluster_id} is not registered on chain (hpcd tx hpc register-cluster)"
            )
        })?;
    let health = match (healthy, failures) {
        (false, _) => ClusterHealth::Unhealthy,
        (true, 0) => ClusterHealth::Healthy,
        (true, _) => ClusterHealth::Degraded,
    };
    let on_chain = current.state();
    // Seed 002: OFFLINE only after `failure_threshold` consecutive failed probes; before
    // that the cluster stays ACTIVE, degraded, with the free nodes last reported. DRAINING is the
    // operator's choice (hpcd tx hpc update-cluster --state draining): kept.
    let (state, free, queue) = match &status {
        _ if on_chain == ClusterState::Draining => (ClusterState::Draining, 0, current.queue_depth),
        _ if !healthy => (ClusterState::Offline, 0, current.queue_depth),
        Some(s) if s.reachable => (
            ClusterState::Active,
            s.free_nodes.min(current.total_nodes),
            s.queue_depth,
        ),
        // A failed probe below the threshold: keep what the chain last heard.
        _ => (
            ClusterState::Active,
            current.available_nodes,
            current.queue_depth,
        ),
    };
    let msg = to_any(&MsgUpdateClusterStatus {
        provider: shared.gateway.provider.to_string(),
        cluster_id: cluster_id.clone(),
        state: state as i32,
        available_nodes: free,
        queue_depth: queue,
        latency_ms: current.latency_ms,
        jitter_ms: current.jitter_ms,
        packet_loss_bps: current.packet_loss_bps,
        health: health as i32,
        price_per_node_hour: None,
        total_nodes: None,
    });
    shared.gateway.send(vec![msg]).await?;
    shared
        .status
        .lock()
        .expect("status lock")
        .chain_cluster_state = state.as_str_name().to_string();
    Ok(())
}

/// The alert follows the chain's count of this provider's unresolved violations (reports
/// of others included, resolutions re-arm it), not only this enforcer's own reports.
async fn sync_violation_count(shared: &Shared) -> anyhow::Result<()> {
    use hpc_proto::virtengine::hpc::v1::{QueryViolationCountRequest, QueryViolationCountResponse};
    let provider = shared.gateway.provider.to_string();
    let answer: QueryViolationCountResponse = shared
        .gateway
        .client
        .transport
        .query(
            "/virtengine.hpc.v1.Query/ViolationCount",
            &QueryViolationCountRequest {
                provider_address: provider.clone(),
            },
            0,
        )
        .await?;
    let threshold = u64::from(shared.config.hpc.routing.violation_alert_threshold);
    let (count, crossed) =
        shared
            .store
            .sync_violations(&provider, answer.unresolved_count, threshold)?;
    if crossed {
        super::attempt::alert_threshold(shared, count.total, threshold, None)?;
    }
    Ok(())
}
