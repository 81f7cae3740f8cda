//! `CloudWatch` Logs scans: on the cron `CLOUDWATCH_SCAN_CRON` (default hourly) and on
//! `POST /admin/trigger-scan`, each log group of `CLOUDWATCH_LOG_GROUPS` is searched with
//! `FilterLogEvents` (`CLOUDWATCH_FILTER_PATTERN`) over the window after its cursor, following
//! `nextToken`; the matches are grouped into error events ([`bugbot_shared::cloudwatch`]) and queued as
//! jobs, which then take the same path as every alert. The cursor (KV) moves only after every job of
//! the window is queued; a failed scan repeats the same window and so the same job ids.
//!
//! Requests are signed with AWS Signature Version 4 by `aws-sigv4` (the AWS SDK's signer) with
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` if set) for `AWS_REGION`;
//! `CLOUDWATCH_API_BASE` replaces `https://logs.{region}.amazonaws.com`.

use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningError, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bugbot_shared::cloudwatch::{
    self as cw, CONTENT_TYPE, Cursor, DEFAULT_FILTER_PATTERN, DEFAULT_LAG_MS, FilterLogEventsRequest,
    FilterLogEventsResponse, MAX_PAGES, TARGET,
};
use bugbot_shared::report::clip;
use serde::Serialize;
use worker::{Env, wasm_bindgen::JsValue};

use crate::clients::fetch::FetchPort;
use crate::clients::http::{HttpPort, HttpRequest, Method, TransportError};
use crate::config::{ConfigError, JOBS_QUEUE, binding};
use crate::store::STATE_KV;

/// The default cron of the scan (`[triggers] crons` in `consumer/wrangler.toml` must list it).
pub const DEFAULT_SCAN_CRON: &str = "0 * * * *";

/// What a scan needs. Secrets never appear in `Debug`.
pub struct ScanConfig {
    pub log_groups: Vec<String>,
    pub filter_pattern: String,
    pub region: String,
    pub access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    pub api_base: String,
    pub lag_ms: u64,
}

impl std::fmt::Debug for ScanConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanConfig")
            .field("log_groups", &self.log_groups)
            .field("region", &self.region)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl ScanConfig {
    /// For tools and tests; the Worker reads [`Self::from_env`].
    pub fn new(region: &str, access_key_id: &str, secret_access_key: &str, api_base: &str) -> Self {
        Self {
            log_groups: Vec::new(),
            filter_pattern: DEFAULT_FILTER_PATTERN.into(),
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: None,
            api_base: api_base.trim_end_matches('/').to_owned(),
            lag_ms: DEFAULT_LAG_MS,
        }
    }

    /// From the bindings; `Err` says what is missing (the scan is then skipped with that line).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let var = |name: &str| binding(env, name);
        let log_groups: Vec<String> = var("CLOUDWATCH_LOG_GROUPS")
            .map(|v| v.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        if log_groups.is_empty() {
            return Err(ConfigError::NotConfigured { what: "CloudWatch", needs: "CLOUDWATCH_LOG_GROUPS" });
        }
        let (Some(access_key_id), Some(secret_access_key), Some(region)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"), var("AWS_REGION"))
        else {
            return Err(ConfigError::Incomplete {
                what: "CloudWatch",
                needs: "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION",
            });
        };
        let api_base = var("CLOUDWATCH_API_BASE").unwrap_or_else(|| format!("https://logs.{region}.amazonaws.com"));
        Ok(Self {
            log_groups,
            filter_pattern: var("CLOUDWATCH_FILTER_PATTERN").unwrap_or_else(|| DEFAULT_FILTER_PATTERN.into()),
            region,
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
            api_base: api_base.trim_end_matches('/').to_owned(),
            lag_ms: var("CLOUDWATCH_LAG_SECS").and_then(|v| v.parse::<u64>().ok()).map_or(DEFAULT_LAG_MS, |s| s * 1000),
        })
    }

    /// A signed `FilterLogEvents` request.
    pub fn signed_request(&self, body: Vec<u8>, now_ms: u64) -> Result<HttpRequest, SignError> {
        let url = format!("{}/", self.api_base);
        let host = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default().to_owned();
        let headers = [("host", host.as_str()), ("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
        let identity: Identity =
            Credentials::new(&self.access_key_id, &self.secret_access_key, self.session_token.clone(), None, "bugbot")
                .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("logs")
            .time(UNIX_EPOCH + Duration::from_millis(now_ms))
            .settings(SigningSettings::default())
            .build()
            .map_err(SignError::Params)?
            .into();
        let signable = SignableRequest::new("POST", &url, headers.iter().copied(), SignableBody::Bytes(&body))
            .map_err(SignError::Request)?;
        let (instructions, _) = sign(signable, &params).map_err(SignError::Sign)?.into_parts();
        let mut request = HttpRequest::new(Method::Post, url);
        for (name, value) in headers.iter().skip(1) {
            request = request.header(name, *value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        Ok(HttpRequest { body: Some(body), ..request })
    }
}

/// Why a request could not be signed (the signer's own errors, named by the step that failed).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing parameters: {0}")]
    Params(v4::signing_params::BuildError),
    #[error("signable request: {0}")]
    Request(SigningError),
    #[error("signing: {0}")]
    Sign(SigningError),
}

/// Why a log group's scan stopped before its window was done (the window is repeated next time).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The `STATE` namespace or the `JOBS` queue is not bound.
    #[error("{0}")]
    Binding(worker::Error),
    #[error("cursor not read: {0}")]
    CursorRead(worker::kv::KvError),
    #[error("{0}")]
    CursorWrite(worker::kv::KvError),
    #[error("cursor not saved: {0}")]
    CursorNotSaved(worker::kv::KvError),
    #[error("more than {MAX_PAGES} pages in one window")]
    TooManyPages,
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("CloudWatch Logs unreachable: {0}")]
    Unreachable(TransportError),
    /// A non-2xx answer, with the start of its body.
    #[error("CloudWatch Logs answered {status}: {body}")]
    Answered { status: u16, body: String },
    #[error("unexpected FilterLogEvents answer: {0}")]
    Unexpected(serde_json::Error),
    #[error("queue unavailable: {0}")]
    Queue(worker::Error),
}

/// How one log group's scan went (the `/admin/trigger-scan` answer and the cron's log line).
#[derive(Debug, Clone, Serialize)]
pub struct GroupScan {
    pub log_group: String,
    /// `[from, to)` in unix ms, when there was a window to scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<(u64, u64)>,
    pub pages: usize,
    pub events: usize,
    pub jobs: Vec<String>,
    /// Why the window was not finished (it is repeated next time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Scans every configured log group once.
pub async fn scan<P: HttpPort>(env: &Env, port: &P, config: &ScanConfig, now_ms: u64) -> Vec<GroupScan> {
    let mut reports = Vec::new();
    for log_group in &config.log_groups {
        let mut report = GroupScan {
            log_group: log_group.clone(),
            window: None,
            pages: 0,
            events: 0,
            jobs: Vec::new(),
            error: None,
        };
        if let Err(e) = scan_group(env, port, config, log_group, now_ms, &mut report).await {
            report.error = Some(clip(&e.to_string(), 300));
        }
        reports.push(report);
    }
    reports
}

async fn scan_group<P: HttpPort>(
    env: &Env,
    port: &P,
    config: &ScanConfig,
    log_group: &str,
    now_ms: u64,
    report: &mut GroupScan,
) -> Result<(), ScanError> {
    let kv = env.kv(STATE_KV).map_err(ScanError::Binding)?;
    let key = cw::cursor_key(log_group);
    let stored: Option<Cursor> = kv.get(&key).json().await.map_err(ScanError::CursorRead)?;
    let Some(window) = Cursor::window(stored.as_ref(), now_ms, config.lag_ms) else {
        return Ok(());
    };
    report.window = Some(window);
    if stored.as_ref().and_then(|c| c.pending_to_ms).is_none() {
        // Fix the window first: a scan that fails from here on repeats exactly this window.
        let pending = Cursor { from_ms: window.0, pending_to_ms: Some(window.1) };
        put(&kv, &key, &pending).await?;
    }
    let mut events = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        if report.pages == MAX_PAGES {
            return Err(ScanError::TooManyPages);
        }
        let body = FilterLogEventsRequest {
            log_group_name: log_group.to_owned(),
            filter_pattern: Some(config.filter_pattern.clone()),
            start_time: window.0,
            // `endTime` is inclusive; the window is not.
            end_time: window.1.saturating_sub(1),
            next_token: next_token.take(),
            limit: 1000,
        };
        let request = config.signed_request(serde_json::to_vec(&body).expect("a request serializes"), now_ms)?;
        let response = port.send(request).await.map_err(ScanError::Unreachable)?;
        if !(200..300).contains(&response.status) {
            let text = String::from_utf8_lossy(&response.body);
            return Err(ScanError::Answered { status: response.status, body: clip(text.trim(), 200) });
        }
        let page: FilterLogEventsResponse = serde_json::from_slice(&response.body).map_err(ScanError::Unexpected)?;
        report.pages += 1;
        events.extend(page.events);
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(token) => next_token = Some(token),
            None => break,
        }
    }
    report.events = events.len();
    let jobs = cw::jobs(log_group, window, cw::group(log_group, &config.region, &events), now_ms);
    let texts: Vec<String> = jobs.iter().filter_map(|j| j.to_message().ok()).collect();
    if !texts.is_empty() {
        let queue = env.queue(JOBS_QUEUE).map_err(ScanError::Binding)?;
        let mut batch = worker::BatchMessageBuilder::new();
        for text in &texts {
            batch = batch.message(
                worker::RawMessageBuilder::new(JsValue::from_str(text))
                    .build_with_content_type(worker::QueueContentType::Text),
            );
        }
        queue.send_raw_batch(batch.build()).await.map_err(ScanError::Queue)?;
    }
    report.jobs = jobs.iter().map(|j| j.id.to_string()).collect();
    put(&kv, &key, &Cursor { from_ms: window.1, pending_to_ms: None }).await
}

async fn put(kv: &worker::kv::KvStore, key: &str, cursor: &Cursor) -> Result<(), ScanError> {
    kv.put(key, serde_json::to_string(cursor).expect("a cursor serializes"))
        .map_err(ScanError::CursorWrite)?
        .execute()
        .await
        .map_err(ScanError::CursorNotSaved)
}

/// Runs a scan and logs one line (`"event":"scan"`); returns the JSON answer of `/admin/trigger-scan`
/// and its status (`503` when `CloudWatch` is not configured).
pub async fn run(env: &Env, now_ms: u64, log_level: bugbot_shared::log::Level) -> (u16, String) {
    use bugbot_shared::log::{Level, LogLine};
    let mut line = LogLine::new(Level::Info, "consumer", "scan");
    let config = match ScanConfig::from_env(env) {
        Ok(config) => config,
        Err(e) => {
            let reason = format!("{e}: scan skipped");
            line.outcome = Some("skipped");
            line.reason = Some(&reason);
            if line.level >= log_level {
                worker::console_log!("{}", line.to_json());
            }
            return (503, serde_json::json!({ "error": reason }).to_string());
        }
    };
    let reports = scan(env, &FetchPort::new(log_level), &config, now_ms).await;
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    let queued: usize = reports.iter().map(|r| r.jobs.len()).sum();
    let reason = format!(
        "{} log groups, {queued} jobs queued{}",
        reports.len(),
        reports.iter().filter_map(|r| r.error.as_ref().map(|e| format!("; {}: {e}", r.log_group))).collect::<String>()
    );
    line.outcome = Some(if failed == 0 { "done" } else { "failed" });
    line.level = if failed == 0 { Level::Info } else { Level::Warn };
    line.reason = Some(&reason);
    if line.level >= log_level {
        worker::console_log!("{}", line.to_json());
    }
    (200, serde_json::json!({ "ok": failed == 0, "log_groups": reports }).to_string())
}
