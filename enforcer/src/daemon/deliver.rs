//! The outbox delivery loop ([`hpc_outbox::Deliverer::run`]) and what it reports to the
//! daemon: outages once each, storage errors, the outbox depth.

use super::*;

/// Runs the outbox deliverer until `stop`; while the chain is unavailable it backs off
/// (1 s doubling to 60 s) and says so once per outage rather than on every pass.
pub(super) async fn deliver(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let deliverer = Deliverer::new(DelivererConfig::default());
    let stopped = async move {
        let _ = stop.changed().await;
    };
    deliverer
        .run(
            &shared.outbox,
            &shared.gateway,
            wall_seconds,
            &*shared,
            stopped,
        )
        .await;
    Ok(())
}

impl DeliveryObserver for Shared {
    fn chain_unavailable(&self, first: bool) {
        if first {
            self.note_error("outbox: chain unavailable, retrying with backoff");
        }
    }

    fn chain_reachable_again(&self) {
        tracing::info!("outbox: chain reachable again");
    }

    fn storage_failed(&self, error: &hpc_outbox::OutboxError) {
        self.note_error(format!("outbox: {error}"));
    }

    fn after_pass(&self, outbox: &Outbox) {
        if let Ok(depth) = outbox.depth() {
            let pending = depth.total();
            self.metrics.outbox_depth.set(pending as i64);
            let mut s = self.status.lock().expect("status lock");
            s.outbox_pending = pending;
            s.outbox_dead = depth.dead;
        }
    }
}
