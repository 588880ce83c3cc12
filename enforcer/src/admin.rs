//! The metrics listener (`GET /metrics`) and the local admin API:
//! `GET /healthz`, `GET /readyz`, `GET /status`, `GET /violations/{provider}`,
//! `POST /validate-placement` (`{"job_id", "cluster_id"}` → allowed, or the violation).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
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
        .with_state(shared);
    serve(&addr, "admin", router, stop).await
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
