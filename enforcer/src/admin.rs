//! The metrics listener (`GET /metrics`) and the local admin API:
//! `GET /healthz`, `GET /readyz`, `GET /status`, `GET /violations/{provider}`,
//! `POST /validate-placement` (`{"job_id", "cluster_id"}` → allowed, or the violation),
//! `GET /outbox/dead-letters` (the items the chain refused for good: [`DeadLetterList`])
//! and `POST /outbox/dead-letters/requeue` (puts them all back in the queue and wakes the
//! deliverer: `{"requeued": N}`); their storage errors are 500 `{"error": "..."}`.
//!
//! The outbox's redb file is locked by the running daemon, so these routes are the only
//! way for an operator (`hpc-enforcer dead-letters list|requeue`) to reach it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hpc_outbox::{DeadLetter, Outbox, OutboxError, OutboxItem};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::daemon::Shared;
use crate::decision::{self, ChainHead, Outcome, Placement};

/// Blocks behind the chain head at which the enforcer reports not ready.
const READY_MAX_LAG_BLOCKS: u64 = 5;

async fn serve(
    addr: &str,
    what: &str,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{what}.listen: cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "{what} listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await?;
    Ok(())
}

pub async fn serve_metrics(
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let addr = shared.config.metrics.listen.clone();
    let router = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Arc<Shared>>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    s.metrics.render(),
                )
            }),
        )
        .with_state(shared);
    serve(&addr, "metrics", router, stop).await
}

pub async fn serve_admin(
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let addr = shared.config.admin.listen.clone();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/status",
            get(|State(s): State<Arc<Shared>>| async move {
                Json(s.status.lock().expect("status lock").clone())
            }),
        )
        .route("/violations/{provider}", get(violations))
        .route("/validate-placement", post(validate_placement))
        .merge(dead_letter_routes::<Shared>())
        .with_state(shared);
    serve(&addr, "admin", router, stop).await
}

/// What holds the outbox the dead-letter routes serve: the daemon's [`Shared`], or a bare
/// [`Outbox`] (tests serve the routes without a chain gateway).
pub trait HasOutbox: Send + Sync + 'static {
    fn outbox(&self) -> &Outbox;
}

impl HasOutbox for Shared {
    fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

impl HasOutbox for Outbox {
    fn outbox(&self) -> &Outbox {
        self
    }
}

/// `GET /outbox/dead-letters` and `POST /outbox/dead-letters/requeue`.
pub fn dead_letter_routes<T: HasOutbox>() -> Router<Arc<T>> {
    Router::new()
        .route(
            "/outbox/dead-letters",
            get(|State(s): State<Arc<T>>| async move {
                json_or_500(dead_letter_list(s.outbox()))
            }),
        )
        .route(
            "/outbox/dead-letters/requeue",
            post(|State(s): State<Arc<T>>| async move {
                json_or_500(requeue_dead_letters(s.outbox()))
            }),
        )
}

fn json_or_500<T: Serialize>(result: Result<T, OutboxError>) -> axum::response::Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Body of `GET /outbox/dead-letters`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterList {
    pub count: usize,
    /// Oldest first.
    pub dead_letters: Vec<DeadLetterInfo>,
}

/// One dead letter as the admin API shows it (the item's payload is left out: its kind,
/// id and job are what an operator needs to look it up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterInfo {
    /// Original FIFO position in the outbox.
    pub seq: u64,
    /// `"audit"` or `"violation"`.
    pub kind: String,
    /// `record_id` or `violation_id`.
    pub id: String,
    pub job_id: String,
    /// Submissions made before the item was given up on.
    pub attempts: u32,
    /// The chain's refusal.
    pub code: u32,
    pub codespace: String,
    pub log: String,
    /// Wall clock seconds.
    pub enqueued_at: u64,
    pub dead_at: u64,
}

impl From<DeadLetter> for DeadLetterInfo {
    fn from(d: DeadLetter) -> Self {
        let job_id = match &d.item {
            OutboxItem::Audit(r) => r.job_id.clone(),
            OutboxItem::Violation(v) => v.job_id.clone(),
        };
        DeadLetterInfo {
            seq: d.seq,
            kind: d.item.kind().as_str().to_string(),
            id: d.item.id().to_string(),
            job_id,
            attempts: d.attempts,
            code: d.code,
            codespace: d.codespace,
            log: d.log,
            enqueued_at: d.enqueued_at,
            dead_at: d.at,
        }
    }
}

/// Body of `POST /outbox/dead-letters/requeue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requeued {
    pub requeued: usize,
}

/// The outbox's dead letters, oldest first.
pub fn dead_letter_list(outbox: &Outbox) -> Result<DeadLetterList, OutboxError> {
    let dead_letters: Vec<DeadLetterInfo> = outbox
        .dead_letters()?
        .into_iter()
        .map(DeadLetterInfo::from)
        .collect();
    Ok(DeadLetterList {
        count: dead_letters.len(),
        dead_letters,
    })
}

/// Moves every dead letter back to the queue. [`Outbox::requeue_dead_letters`] wakes the
/// deliverer itself (its loop waits on [`Outbox::notified`]), so they go out at once.
pub fn requeue_dead_letters(outbox: &Outbox) -> Result<Requeued, OutboxError> {
    let requeued = outbox.requeue_dead_letters()?;
    if requeued > 0 {
        tracing::info!(requeued, "outbox: dead letters requeued by an operator");
    }
    Ok(Requeued { requeued })
}

async fn readyz(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let st = s.status.lock().expect("status lock").clone();
    let lag = st
        .head_height
        .saturating_sub(st.next_height.saturating_sub(1));
    let ready = st.chain_reachable && st.next_height > 0 && lag <= READY_MAX_LAG_BLOCKS;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(
            json!({"ready": ready, "chain_reachable": st.chain_reachable, "lag_blocks": lag, "cluster_healthy": st.cluster_healthy}),
        ),
    )
}

async fn violations(
    State(s): State<Arc<Shared>>,
    Path(provider): Path<String>,
) -> impl IntoResponse {
    if provider.parse::<hpc_primitives::Address>().is_err() {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": format!("provider: {provider:?} is not a virtengine1... address")}),
            ),
        );
    }
    let local = match s.store.violation_count(&provider) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": e.to_string()})),
            )
        }
    };
    (
        StatusCode::OK,
        Json(json!({
            "provider": provider,
            "count": local.total,
            "threshold": s.config.hpc.routing.violation_alert_threshold,
            "threshold_exceeded": local.alerted,
        })),
    )
}

#[derive(Deserialize)]
struct PlacementRequest {
    job_id: String,
    cluster_id: String,
}

async fn validate_placement(
    State(s): State<Arc<Shared>>,
    Json(req): Json<PlacementRequest>,
) -> impl IntoResponse {
    let head = {
        let st = s.status.lock().expect("status lock");
        (st.head_height > 0).then_some(ChainHead {
            height: st.head_height,
            time_seconds: st.head_time_seconds,
        })
    };
    let eval = s
        .evaluate_job(
            &req.job_id,
            None,
            Placement::OnCluster(req.cluster_id.clone()),
            head,
        )
        .await;
    let violations: Vec<_> = eval
        .violations
        .iter()
        .map(|v| json!({"type": decision::violation_type_name(v.violation_type), "severity": v.severity, "details": v.details}))
        .collect();
    let (allowed, detail) = match &eval.outcome {
        Outcome::Run { cluster_id } => (true, format!("job may run on {cluster_id}")),
        Outcome::Reject { reason } => (false, reason.clone()),
        Outcome::RequestNewDecision { reason, .. } => {
            (false, format!("a new decision is needed: {reason}"))
        }
        Outcome::NotForUs { reason } => (false, reason.clone()),
    };
    Json(
        json!({"job_id": req.job_id, "cluster_id": req.cluster_id, "allowed": allowed, "detail": detail, "violations": violations}),
    )
}
