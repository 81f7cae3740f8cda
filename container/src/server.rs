//! The HTTP API:
//! - `POST /v1/jobs` — a signed [`FixJob`] → `202 {"job_id"}` (idempotent by job id);
//! - `GET /v1/jobs/{id}` — signed (the path stands in for the body) → [`FixJobStatus`];
//! - `GET /health` — liveness, load and which settings are present (never their values).
//!
//! Signatures are checked on the raw bytes before any parsing; a request whose signature was already
//! accepted (a replay inside the freshness window) is refused.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bugbot_shared::executor::{self, Accepted, FixJob, FixJobId, SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER};
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::{Config, Secret};
use crate::jobs::{JobBoard, SubmitError, Submitted};

/// Largest job body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// Every way a request can fail, mapped to a status in exactly one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("EXECUTOR_SECRET is not configured")]
    NotConfigured,
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("replayed request")]
    Replayed,
    #[error("invalid job: {0}")]
    BadJob(String),
    #[error("no such job")]
    NotFound,
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::NotConfigured | Self::Submit(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Signature(_) | Self::Replayed => StatusCode::UNAUTHORIZED,
            Self::BadJob(_) => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
        };
        (status, axum::Json(json!({"error": self.to_string()}))).into_response()
    }
}

/// Signatures accepted within the window, with the unix time they stop being fresh.
#[derive(Debug, Default)]
struct SeenSignatures(HashMap<String, u64>);

impl SeenSignatures {
    /// Records `signature`; `false` if it was already there (a replay).
    fn first_time(&mut self, signature: &str, expires: u64, now: u64) -> bool {
        self.0.retain(|_, until| *until >= now);
        self.0.insert(signature.to_ascii_lowercase(), expires).is_none()
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    board: JobBoard,
    secret: Option<Secret>,
    window: Duration,
    seen: Mutex<SeenSignatures>,
    configured: serde_json::Value,
}

impl AppState {
    pub fn new(board: JobBoard, config: &Config) -> Self {
        Self {
            board,
            secret: config.secret.clone(),
            window: config.signature_window,
            seen: Mutex::new(SeenSignatures::default()),
            configured: json!({
                "executor_secret": config.secret.is_some(),
                "anthropic_api_key": config.anthropic_api_key.is_some(),
                "git_token": config.git_token.is_some(),
                "max_concurrent_jobs": config.max_concurrent_jobs,
                "sandbox": config.sandbox.enabled,
            }),
        }
    }

    /// Verifies the signature headers over `signed` and refuses replays.
    fn authenticate(&self, headers: &HeaderMap, signed: &[u8]) -> Result<(), ApiError> {
        let secret = self.secret.as_ref().ok_or(ApiError::NotConfigured)?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let (timestamp, signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
        let now = crate::unix_now();
        let window = self.window.as_secs();
        executor::verify(secret.expose().as_bytes(), timestamp, signature, signed, now, window)?;
        let expires = timestamp.trim().parse::<u64>().unwrap_or(now).saturating_add(window);
        if !self.seen.lock().expect("seen lock").first_time(signature.trim(), expires, now) {
            return Err(ApiError::Replayed);
        }
        Ok(())
    }
}

/// The router (exposed for tests that drive it without a socket).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/jobs", post(submit))
        .route("/v1/jobs/{id}", get(status))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves; then stops every agent, lets every job report
/// (`failed: interrupted` for unfinished ones), and returns.
pub async fn serve(
    listener: TcpListener,
    board: JobBoard,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(AppState::new(board.clone(), config));
    let on_shutdown = board.clone();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "executor listening");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: stopping running jobs");
            on_shutdown.interrupt();
        })
        .await?;
    board.shutdown().await;
    tracing::info!("all jobs reported; bye");
    Ok(())
}

async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let load = state.board.load();
    axum::Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "queued": load.queued,
        "running": load.running,
        "configured": state.configured,
    }))
}

async fn submit(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    state.authenticate(&headers, &body)?;
    let job: FixJob = serde_json::from_slice(&body).map_err(|e| ApiError::BadJob(e.to_string()))?;
    let job_id = job.job_id.clone();
    match state.board.submit(job)? {
        Submitted::Accepted => {}
        Submitted::Duplicate => tracing::info!(%job_id, "duplicate submission; not run again"),
    }
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted { job_id })).into_response())
}

async fn status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authenticate(&headers, format!("/v1/jobs/{id}").as_bytes())?;
    let id = FixJobId::new(id).map_err(|_| ApiError::NotFound)?;
    let status = state.board.status(&id).ok_or(ApiError::NotFound)?;
    Ok(axum::Json(status).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_remembered_until_they_expire() {
        let mut seen = SeenSignatures::default();
        assert!(seen.first_time("AB", 1300, 1000));
        assert!(!seen.first_time("ab", 1300, 1100));
        assert!(seen.first_time("cd", 1400, 1100));
        // Expired entries are forgotten (the freshness check refuses such requests anyway).
        assert!(seen.first_time("ab", 1700, 1400));
        assert_eq!(seen.0.len(), 2);
    }
}
