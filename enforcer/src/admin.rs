//! The metrics listener (`GET /metrics`) and the local admin API:
//! `GET /healthz`, `GET /readyz`, `GET /status`, `GET /violations/{provider}`,
//! `POST /validate-placement` (`{"job_id", "cluster_id"}` → allowed, or the violation),
//! `GET /outbox/dead-letters` (the items the chain refused for good: [`DeadLetterList`])
//! and `POST /outbox/dead-letters/requeue` (puts them all back in the queue and wakes the
//! deliverer: `{"requeued": N}`).
//!
//! The outbox's redb file is locked by the running daemon, so these routes are the only
//! way for an operator (`hpc-enforcer dead-letters list|requeue`) to reach it.
//!
//! Every request passes [`protect`]'s checks (config validation keeps `admin.listen` on
//! loopback): a `Host` that is not a loopback name is 421 (DNS rebinding); a request
//! other than GET/HEAD with an `Origin` header is 403 (a web page's request), without
//! `Authorization: Bearer <admin.token_file>` 401, without `Content-Type:
//! application/json` 415. Errors are [`AdminError`]s: one line of JSON `{"error": "..."}`,
//! never a backtrace.

use std::fmt;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hpc_outbox::{DeadLetter, Outbox, OutboxError, OutboxItem};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::daemon::{Shared, StatusInfo};
use crate::decision::{self, ChainHead, Outcome, Placement};
use hpc_proto::virtengine::hpc::v1::Job;

/// Longest error message an admin response carries (longer ones are cut).
pub const MAX_ERROR_LEN: usize = 512;

/// Most `last_errors` entries `GET /status` shows (the newest).
const MAX_STATUS_ERRORS: usize = 10;

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

/// Serves the admin API on `admin.listen`; fails at once when the token file cannot be
/// read or created ([`AdminToken::load_or_create`]).
pub async fn serve_admin(
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let addr = shared.config.admin.listen.clone();
    let token = AdminToken::load_or_create(&shared.config.admin_token_file())?;
    let router = Router::new()
        .route("/readyz", get(readyz))
        .route("/violations/{provider}", get(violations))
        .route("/validate-placement", post(validate_placement))
        .merge(status_routes::<Shared>())
        .merge(dead_letter_routes::<Shared>())
        .with_state(shared);
    serve(&addr, "admin", protect(router, token), stop).await
}

/// Why an admin request was refused or failed. Typed (never `anyhow`): no backtrace is
/// captured or shown, and the answer is one line of JSON, `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// 421: the `Host` header is not a loopback name (DNS rebinding).
    #[error("Host {0:?} is not localhost, 127.0.0.1 or [::1]")]
    ForeignHost(String),
    /// 403: a request that changes something came with an `Origin` header (a browser).
    #[error("cross-origin requests are refused (the request has an Origin header)")]
    CrossOrigin,
    /// 401: a request that changes something without the right bearer token.
    #[error("missing or wrong token: send Authorization: Bearer <the admin.token_file contents>")]
    Unauthorized,
    /// 415: a request that changes something whose body is not declared JSON.
    #[error("Content-Type must be application/json")]
    NotJson,
    /// 400: an unreadable request.
    #[error("{0}")]
    BadRequest(String),
    /// 500: storage failed.
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::ForeignHost(_) => StatusCode::MISDIRECTED_REQUEST,
            AdminError::CrossOrigin => StatusCode::FORBIDDEN,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": one_line(&self.to_string())}));
        if matches!(self, AdminError::Unauthorized) {
            return (self.status(), [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (self.status(), body).into_response()
    }
}

/// `message` on one line of at most [`MAX_ERROR_LEN`] bytes: its lines joined up to the
/// first that starts a backtrace or a source location (`Stack backtrace:`, `Location:`,
/// as anyhow and eyre print them), which never reaches an answer.
pub fn one_line(message: &str) -> String {
    let kept: Vec<&str> = message
        .lines()
        .map(str::trim)
        .take_while(|l| !starts_trace(l))
        .filter(|l| !l.is_empty())
        .collect();
    let line = kept.join(" ");
    if line.len() <= MAX_ERROR_LEN {
        return line;
    }
    let mut end = MAX_ERROR_LEN;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

fn starts_trace(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    ["stack backtrace", "backtrace:", "location:"]
        .iter()
        .any(|marker| line.starts_with(marker))
}

/// Why the admin token file could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("admin.token_file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("admin.token_file {}: open to group or others (mode {mode:03o}); run chmod 600 on it", path.display())]
    Exposed { path: PathBuf, mode: u32 },
    #[error("admin.token_file {}: not a token (32 to 256 visible ASCII characters)", path.display())]
    Malformed { path: PathBuf },
}

/// The admin API's bearer token (its `Debug` does not show it).
#[derive(Clone)]
pub struct AdminToken(String);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(redacted)")
    }
}

impl AdminToken {
    /// Reads `path`, or creates it (mode 0600, 32 random bytes as hex) when missing.
    pub fn load_or_create(path: &FsPath) -> Result<Self, TokenFileError> {
        match Self::read(path) {
            Err(TokenFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Self::create(path)
            }
            read => read,
        }
    }

    /// Reads the token in `path`; refuses a file group or others may access.
    pub fn read(path: &FsPath) -> Result<Self, TokenFileError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| TokenFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let path = path.to_path_buf();
            return Err(TokenFileError::Exposed { path, mode });
        }
        let mut text = String::new();
        file.take(4096).read_to_string(&mut text).map_err(io)?;
        let token = text.trim();
        let visible = token.bytes().all(|b| b.is_ascii_graphic());
        if !(32..=256).contains(&token.len()) || !visible {
            let path = path.to_path_buf();
            return Err(TokenFileError::Malformed { path });
        }
        Ok(Self(token.to_string()))
    }

    fn create(path: &FsPath) -> Result<Self, TokenFileError> {
        use rand_core::RngCore;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| TokenFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut secret = [0u8; 32];
        rand_core::OsRng
            .try_fill_bytes(&mut secret)
            .map_err(|e| io(std::io::Error::other(e)))?;
        let token = hex::encode(secret);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(format!("{token}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        tracing::info!(path = %path.display(), "admin API token created");
        Ok(Self(token))
    }

    /// The token, for a client's `Authorization` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in constant time (over SHA-256 digests, so lengths leak nothing either).
    pub fn matches(&self, presented: &str) -> bool {
        let (ours, theirs) = (Sha256::digest(&self.0), Sha256::digest(presented));
        let diff = ours
            .iter()
            .zip(theirs.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        diff == 0
    }
}

/// `router` behind the admin API's checks (see the module documentation).
pub fn protect(router: Router, token: AdminToken) -> Router {
    router.layer(axum::middleware::from_fn_with_state(Arc::new(token), guard))
}

async fn guard(State(token): State<Arc<AdminToken>>, req: Request, next: Next) -> Response {
    match admit(&token, req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(method = %req.method(), path = %req.uri().path(), "admin API request refused: {e}");
            e.into_response()
        }
    }
}

/// Host for every request; for anything but GET/HEAD also no Origin, the token, JSON.
fn admit(token: &AdminToken, method: &Method, headers: &HeaderMap) -> Result<(), AdminError> {
    let host = header_str(headers, header::HOST);
    if !is_loopback_host(host) {
        return Err(AdminError::ForeignHost(host.to_string()));
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    if headers.contains_key(header::ORIGIN) {
        return Err(AdminError::CrossOrigin);
    }
    let bearer = header_str(headers, header::AUTHORIZATION)
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    if !token.matches(bearer) {
        return Err(AdminError::Unauthorized);
    }
    let mime = header_str(headers, header::CONTENT_TYPE).split(';').next();
    if !mime.is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
        return Err(AdminError::NotJson);
    }
    Ok(())
}

/// A header's value, or "" when absent or not text.
fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// `localhost`, a loopback IPv4 address or `[::1]`, each with an optional port.
pub fn is_loopback_host(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some(split) => split,
            None => return false,
        },
        None => host.find(':').map_or((host, ""), |i| host.split_at(i)),
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && (name.eq_ignore_ascii_case("localhost")
            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

/// What holds the status `GET /status` shows: the daemon's [`Shared`], or a bare
/// `Mutex<StatusInfo>` (tests).
pub trait HasStatus: Send + Sync + 'static {
    fn status_info(&self) -> StatusInfo;
}

impl HasStatus for Shared {
    fn status_info(&self) -> StatusInfo {
        self.status.lock().expect("status lock").clone()
    }
}

impl HasStatus for Mutex<StatusInfo> {
    fn status_info(&self) -> StatusInfo {
        self.lock().expect("status lock").clone()
    }
}

/// `GET /healthz` and `GET /status`.
pub fn status_routes<T: HasStatus>() -> Router<Arc<T>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/status",
            get(|State(s): State<Arc<T>>| async move { Json(status_view(s.status_info())) }),
        )
}

/// The status as `GET /status` shows it: the newest errors, each on one bounded line.
pub fn status_view(mut status: StatusInfo) -> StatusInfo {
    let skip = status.last_errors.len().saturating_sub(MAX_STATUS_ERRORS);
    status.last_errors = status.last_errors[skip..]
        .iter()
        .map(|e| one_line(e))
        .collect();
    status
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

fn json_or_500<T: Serialize>(result: Result<T, OutboxError>) -> Result<Json<T>, AdminError> {
    result
        .map(Json)
        .map_err(|e| AdminError::Internal(e.to_string()))
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
) -> Result<Json<serde_json::Value>, AdminError> {
    if provider.parse::<hpc_primitives::Address>().is_err() {
        return Err(AdminError::BadRequest(format!(
            "provider: {provider:?} is not a virtengine1... address"
        )));
    }
    let local = s
        .store
        .violation_count(&provider)
        .map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok(Json(json!({
        "provider": provider,
        "count": local.total,
        "threshold": s.config.hpc.routing.violation_alert_threshold,
        "threshold_exceeded": local.alerted,
    })))
}

#[derive(Deserialize)]
struct PlacementRequest {
    job_id: String,
    cluster_id: String,
}

async fn validate_placement(
    State(s): State<Arc<Shared>>,
    body: Result<Json<PlacementRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let Json(req) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
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
    let job = s.gateway.client.hpc_job(&req.job_id).await.ok().flatten();
    let verdict = placement_verdict(&eval, job.as_ref(), &s.gateway.provider.to_string());
    Ok(Json(
        json!({"job_id": req.job_id, "cluster_id": req.cluster_id, "allowed": verdict.allowed, "fallback": verdict.fallback, "detail": verdict.detail, "violations": violations}),
    ))
}

/// The answer of `POST /validate-placement`.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    allowed: bool,
    /// Allowed only as a fallback (off the decision's cluster, permissive mode).
    fallback: bool,
    detail: String,
}

/// The evaluation's answer, with what the job's state adds: a job already routed to (or
/// running at) another provider may not also run here, and a permissive "allowed" off the
/// decision's cluster is a fallback.
fn placement_verdict(eval: &decision::Evaluation, job: Option<&Job>, me: &str) -> Verdict {
    use hpc_proto::virtengine::hpc::v1::JobState;
    if let Some(j) = job {
        let placed = matches!(j.state(), JobState::Routed | JobState::Running);
        if placed && j.provider_address != me {
            return Verdict {
                allowed: false,
                fallback: false,
                detail: format!(
                    "job {} is already {} on cluster {} of provider {}",
                    j.job_id,
                    j.state().as_str_name(),
                    j.routed_cluster_id,
                    j.provider_address
                ),
            };
        }
    }
    let fallback = eval.audit.as_ref().is_some_and(|a| a.is_fallback);
    let (allowed, detail) = match &eval.outcome {
        Outcome::Run { cluster_id } if fallback => (
            true,
            format!("job may run on {cluster_id} only as a fallback (off its decision's cluster)"),
        ),
        Outcome::Run { cluster_id } => (true, format!("job may run on {cluster_id}")),
        Outcome::Reject { reason } => (false, reason.clone()),
        Outcome::RequestNewDecision { reason, .. } => {
            (false, format!("a new decision is needed: {reason}"))
        }
        Outcome::NotForUs { reason } => (false, reason.clone()),
    };
    Verdict {
        allowed,
        fallback,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_placement_is_judged_with_the_jobs_state() {
        use hpc_proto::virtengine::hpc::v1::JobState;
        let run = decision::Evaluation {
            outcome: Outcome::Run {
                cluster_id: "mine".into(),
            },
            audit: None,
            violations: Vec::new(),
            log_event: decision::events::ROUTING_ENFORCED,
        };
        let job = |state: JobState, provider: &str| Job {
            job_id: "hpc-job-1".into(),
            state: state as i32,
            provider_address: provider.into(),
            routed_cluster_id: "theirs".into(),
            ..Default::default()
        };
        let v = placement_verdict(&run, Some(&job(JobState::Running, "other")), "me");
        assert!(
            !v.allowed
                && v.detail
                    .contains("already JOB_STATE_RUNNING on cluster theirs"),
            "{v:?}"
        );
        let v = placement_verdict(&run, Some(&job(JobState::Scheduled, "other")), "me");
        assert!(v.allowed && !v.fallback, "{v:?}");
        let v = placement_verdict(&run, Some(&job(JobState::Routed, "me")), "me");
        assert!(v.allowed, "{v:?}");
    }

    #[test]
    fn admin_host_must_be_loopback() {
        for host in [
            "localhost",
            "LOCALHOST:8081",
            "127.0.0.1",
            "127.0.0.1:8081",
            "127.9.9.9:1",
            "[::1]",
            "[::1]:8081",
        ] {
            assert!(is_loopback_host(host), "{host} refused");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8081",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8081",
            "0.0.0.0:8081",
            "10.0.0.5:8081",
            "[::]:8081",
            "::1",
            "[::1",
            "127.0.0.1:",
            "127.0.0.1:http",
            "127.0.0.1:123456",
            "localhost:8081:1",
        ] {
            assert!(!is_loopback_host(host), "{host} accepted");
        }
    }

    fn token() -> AdminToken {
        AdminToken("a".repeat(64))
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(name.clone(), value.parse().unwrap());
        }
        h
    }

    #[test]
    fn admin_checks_in_order_host_origin_token_json() {
        let bearer = format!("Bearer {}", "a".repeat(64));
        let ok = [
            (header::HOST, "127.0.0.1:8081"),
            (header::AUTHORIZATION, bearer.as_str()),
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
        ];
        let check = |method: Method, pairs: &[(header::HeaderName, &str)]| {
            admit(&token(), &method, &headers(pairs)).map_err(|e| e.status().as_u16())
        };
        assert_eq!(check(Method::POST, &ok), Ok(()));
        // Reads need the Host only.
        assert_eq!(check(Method::GET, &ok[..1]), Ok(()));
        assert_eq!(check(Method::HEAD, &ok[..1]), Ok(()));
        assert_eq!(
            check(Method::GET, &[(header::HOST, "evil.example")]),
            Err(421)
        );
        assert_eq!(check(Method::GET, &[]), Err(421));
        let with = |name: header::HeaderName, value: &'static str| {
            let mut pairs = ok.to_vec();
            pairs.retain(|(n, _)| *n != name);
            pairs.push((name, value));
            pairs
        };
        assert_eq!(
            check(Method::POST, &with(header::HOST, "evil.example:8081")),
            Err(421)
        );
        assert_eq!(
            check(Method::POST, &with(header::ORIGIN, "http://evil.example")),
            Err(403)
        );
        assert_eq!(check(Method::POST, &with(header::ORIGIN, "null")), Err(403));
        assert_eq!(
            check(Method::POST, &with(header::AUTHORIZATION, "Bearer nope")),
            Err(401)
        );
        assert_eq!(
            check(Method::POST, &with(header::AUTHORIZATION, "Basic YTph")),
            Err(401)
        );
        assert_eq!(check(Method::POST, &ok[..1]), Err(401));
        assert_eq!(
            check(Method::POST, &with(header::CONTENT_TYPE, "text/plain")),
            Err(415)
        );
        assert_eq!(check(Method::POST, &ok[..2]), Err(415));
        // Any method that is not a read is held to the same rules.
        assert_eq!(check(Method::DELETE, &ok[..1]), Err(401));
        assert_eq!(check(Method::PUT, &ok), Ok(()));
    }

    #[test]
    fn admin_token_matches_only_itself() {
        let t = token();
        assert!(t.matches(&"a".repeat(64)));
        for other in ["", "a", &"a".repeat(63), &"a".repeat(65), &"b".repeat(64)] {
            assert!(!t.matches(other), "{other}");
        }
        assert_eq!(format!("{t:?}"), "AdminToken(redacted)");
    }

    #[test]
    fn admin_token_file_is_created_private_and_refused_when_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.token");
        let created = AdminToken::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(created.as_str().len(), 64);
        assert!(hex::decode(created.as_str()).is_ok());
        // Read back, not replaced.
        let again = AdminToken::load_or_create(&path).unwrap();
        assert_eq!(again.as_str(), created.as_str());
        assert_ne!(
            AdminToken::load_or_create(&dir.path().join("other"))
                .unwrap()
                .as_str(),
            created.as_str()
        );

        for mode in [0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = AdminToken::load_or_create(&path).unwrap_err().to_string();
            let expected = format!(
                "admin.token_file {}: open to group or others (mode {mode:03o})",
                path.display()
            );
            assert!(err.starts_with(&expected), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "short\n").unwrap();
        let err = AdminToken::read(&path).unwrap_err().to_string();
        assert!(err.contains("not a token"), "{err}");
    }

    #[test]
    fn admin_errors_are_one_bounded_line() {
        let anyhow_debug =
            "reading blocks: refused\n\nCaused by:\n    os error 111\n\nStack backtrace:\n   0: x";
        assert_eq!(
            one_line(anyhow_debug),
            "reading blocks: refused Caused by: os error 111"
        );
        let eyre = "HTTP error\n\nLocation:\n    src/tracer_impl/eyre.rs:10:9: HTTP error";
        assert_eq!(one_line(eyre), "HTTP error");
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = one_line(&long);
        assert!(cut.len() <= MAX_ERROR_LEN + '…'.len_utf8(), "{}", cut.len());
        assert!(cut.ends_with('…'));

        let status = StatusInfo {
            last_errors: (0..15)
                .map(|i| format!("e{i}\nStack backtrace:\n  0: x"))
                .collect(),
            ..Default::default()
        };
        let view = status_view(status);
        let expected: Vec<String> = (5..15).map(|i| format!("e{i}")).collect();
        assert_eq!(view.last_errors, expected);
    }
}
