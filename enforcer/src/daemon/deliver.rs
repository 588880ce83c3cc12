//! The outbox delivery loop around [`hpc_outbox::Deliverer`].

use super::*;

/// How long a pass waits after new items arrive, so that the records of the jobs handled
/// together go out in one batch rather than one tx each.
const LINGER: Duration = Duration::from_millis(50);

/// Least time between two checks of the in-flight txs (woken by every new item, the
/// deliverer asked the node for each in-flight tx's result dozens of times per block).
const RESOLVE_INTERVAL: Duration = Duration::from_millis(500);

/// Runs the outbox deliverer; while the chain is unavailable it backs off (1 s doubling
/// to 60 s) and says so once per outage rather than on every pass.
pub(super) async fn deliver(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let config = DelivererConfig::default();
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let deliverer = Deliverer::new(config);
    let mut in_outage = false;
    let mut last_resolved: Option<Instant> = None;
    loop {
        let resolve = last_resolved.is_none_or(|t| t.elapsed() >= RESOLVE_INTERVAL);
        if resolve {
            last_resolved = Some(Instant::now());
        }
        let pause = match deliverer
            .run_pass(&shared.outbox, &shared.gateway, wall_seconds(), resolve)
            .await
        {
            Ok(report) if report.unavailable => {
                if !in_outage {
                    shared.note_error("outbox: chain unavailable, retrying with backoff");
                    in_outage = true;
                }
                Some(backoff.next_delay())
            }
            Ok(report) => {
                if in_outage {
                    tracing::info!("outbox: chain reachable again");
                    in_outage = false;
                }
                backoff.reset();
                report.more.then_some(Duration::ZERO)
            }
            Err(e) => {
                shared.note_error(format!("outbox: {e}"));
                Some(backoff.next_delay())
            }
        };
        if let Ok(depth) = shared.outbox.depth() {
            let pending = depth.total();
            shared.metrics.outbox_depth.set(pending as i64);
            let mut s = shared.status.lock().expect("status lock");
            s.outbox_pending = pending;
            s.outbox_dead = depth.dead;
        }
        // New or requeued items end any wait early (after an unavailable chain that is one
        // try; the backoff keeps growing while it stays unavailable). Without a backoff,
        // in-flight txs are checked often and an idle outbox waits for new items.
        let wait = pause.unwrap_or_else(|| {
            if shared.outbox.is_empty().unwrap_or(true) {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(300)
            }
        });
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = shared.outbox.notified() => tokio::time::sleep(LINGER).await,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
