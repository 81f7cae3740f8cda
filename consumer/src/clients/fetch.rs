//! [`HttpPort`] over the Workers `fetch` API, with a hard timeout (the request is aborted, so a
//! hanging API costs one timeout, not the invocation).

use std::future::Future;
use std::time::Duration;

use bugbot_edge::fetch::{ObjectStub, body_bytes, fetch_object, fetch_url, header_pairs, js_reason};
use bugbot_shared::log::{Level, LogLine};
use futures_util::future::{Either, select};
use wasm_bindgen::JsValue;
use worker::{AbortController, Date, Delay, web_sys};

use crate::clients::http::{HttpPort, HttpRequest, HttpResponse, Method, TransportError};

/// Outbound calls through `fetch`. Each prints its `outbound` line when that line's level is at
/// least `log_level` (a call that failed, or answered 429 or 5xx, is a warning; the rest are info).
#[derive(Debug, Clone, Copy)]
pub struct FetchPort {
    pub timeout_ms: u64,
    pub log_level: Level,
}

impl FetchPort {
    pub const fn new(log_level: Level) -> Self {
        Self { timeout_ms: 10_000, log_level }
    }
}

/// One `outbound` log line per call: method, host, status or failure, duration. Never the path
/// (interaction webhooks carry their token in it), the query, or any header value. Nothing is built
/// when the line's level is below `min`.
fn log_outbound(method: Method, url: &str, started: u64, result: &Result<HttpResponse, TransportError>, min: Level) {
    let level = match result {
        Ok(response) if response.status == 429 || response.status >= 500 => Level::Warn,
        Ok(_) => Level::Info,
        Err(_) => Level::Warn,
    };
    if level < min {
        return;
    }
    let host = worker::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let route = format!("{} {host}", method.as_str());
    let mut line = LogLine::new(level, "consumer", "outbound");
    line.route = Some(&route);
    let reason;
    match result {
        Ok(response) => {
            line.status = Some(response.status);
            line.outcome = Some(if response.status < 400 { "ok" } else { "error" });
        }
        Err(e) => {
            line.outcome = Some(if matches!(e, TransportError::Timeout(_)) { "timeout" } else { "unreachable" });
            // Transport errors can quote the URL: keep only their kind.
            reason = if matches!(e, TransportError::Timeout(_)) { "timed out" } else { "connection failed" };
            line.reason = Some(reason);
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "durations are small")]
    let duration = Date::now().as_millis().saturating_sub(started) as f64;
    line.duration_ms = Some(duration);
    worker::console_log!("{}", line.to_json());
}

/// `future`'s output, or `None` once `timeout_ms` have passed (the future is dropped).
pub async fn within<T>(timeout_ms: u64, future: impl Future<Output = T>) -> Option<T> {
    match select(Box::pin(future), Delay::from(Duration::from_millis(timeout_ms))).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

/// Runs one outbound call and prints its log line.
async fn logged(
    request: &HttpRequest,
    call: impl Future<Output = Result<HttpResponse, TransportError>>,
    min: Level,
) -> Result<HttpResponse, TransportError> {
    let started = Date::now().as_millis();
    let result = call.await;
    log_outbound(request.method, &request.url, started, &result, min);
    result
}

impl HttpPort for FetchPort {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        logged(&request, self.send_unlogged(&request), self.log_level).await
    }
}

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(thrown)")]
fn thrown(e: JsValue) -> TransportError {
    TransportError::Connect(js_reason(&e))
}

/// Status, headers and the whole body (one `arrayBuffer()`: `bugbot_edge::fetch`).
async fn read(resp: web_sys::Response) -> Result<HttpResponse, JsValue> {
    let status = resp.status();
    let headers = header_pairs(&resp);
    let body = body_bytes(&resp).await?;
    Ok(HttpResponse { status, headers, body })
}

/// The `fetch` init for an [`HttpRequest`]: method, headers, body and the abort signal (if any).
fn request_init(
    request: &HttpRequest,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<web_sys::RequestInit, TransportError> {
    let headers = web_sys::Headers::new().map_err(thrown)?;
    for (name, value) in &request.headers {
        headers.set(name, value).map_err(thrown)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(request.method.as_str());
    init.set_headers(&headers);
    if let Some(body) = &request.body {
        init.set_body(&js_sys::Uint8Array::from(body.as_slice()));
    }
    if signal.is_some() {
        init.set_signal(signal);
    }
    Ok(init)
}

impl FetchPort {
    async fn send_unlogged(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let controller = AbortController::default();
        let signal = controller.signal();
        let init = request_init(request, Some(&signal))?;
        let call = async { read(fetch_url(&request.url, &init).await?).await };
        within(self.timeout_ms, call).await.map_or_else(
            || {
                controller.abort();
                Err(TransportError::Timeout(self.timeout_ms))
            },
            |result| result.map_err(thrown),
        )
    }
}

/// [`HttpPort`] into a Durable Object (its `fetch`), with the same timeout and log line as
/// [`FetchPort`]. The request's URL only carries the path the object routes on.
pub struct StubPort {
    pub stub: ObjectStub,
    pub timeout_ms: u64,
    pub log_level: Level,
}

impl std::fmt::Debug for StubPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubPort").field("timeout_ms", &self.timeout_ms).finish_non_exhaustive()
    }
}

impl HttpPort for StubPort {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let call = async {
            let init = request_init(&request, None)?;
            let response = fetch_object(&self.stub, &request.url, &init).await.map_err(thrown)?;
            read(response).await.map_err(thrown)
        };
        let call =
            async { within(self.timeout_ms, call).await.unwrap_or(Err(TransportError::Timeout(self.timeout_ms))) };
        logged(&request, call, self.log_level).await
    }
}
