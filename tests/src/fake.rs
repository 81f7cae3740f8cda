//! Faithful fakes of the APIs the consumer writes to: [`FakeLinear`], [`FakeGitHub`],
//! [`FakeDiscord`]. Each is an axum server on `127.0.0.1:0` that speaks the real wire format
//! (paths, auth headers, JSON shapes, error and rate-limit answers), keeps what it was told in
//! memory, and records every request with its arrival time.
//!
//! Failures are scripted the same way on all three: [`Failure`] answers in the service's own
//! shape (`fail_next(n, ..)`, `fail_always(..)`, `clear_failures()`). Failed requests are recorded
//! too, with the failure they got.
//!
//! [`ReqwestPort`] is the consumer's `HttpPort` over reqwest, so native tests can drive the real
//! sinks against the fakes.

pub mod cloudwatch;
pub mod discord;
pub mod github;
pub mod index;
pub mod linear;
pub mod posthog;
pub mod sentry;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bugbot_consumer::clients::http::{self, HttpPort, HttpRequest, HttpResponse, TransportError};
use serde_json::Value;
use tokio::sync::oneshot;

pub use cloudwatch::FakeCloudWatchLogs;
pub use discord::FakeDiscord;
pub use github::FakeGitHub;
pub use linear::FakeLinear;
pub use posthog::FakePostHog;
pub use sentry::FakeSentry;

/// A scripted failure, answered in each service's real shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The service's rate-limit answer asking to wait this long: Linear `400` with a `ratelimited`
    /// error and `retry-after`; GitHub `403` secondary limit with `retry-after`; Discord `429` with
    /// `{"retry_after": <float>}` and `Retry-After`.
    RateLimited { retry_after_secs: f64 },
    /// A 5xx.
    ServerError,
    /// No answer at all (the client's timeout fires).
    Hang,
}

/// A request a fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Wall-clock arrival time.
    pub at: SystemTime,
    /// The scripted failure this request was answered with.
    pub failure: Option<Failure>,
}

impl RecordedRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A decoded query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(self.query.as_deref()).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// Recorded requests and the failure script, shared by a fake's handle and its server.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    requests: Vec<RecordedRequest>,
    next: VecDeque<Failure>,
    always: Option<Failure>,
    /// `(method, path suffix, failure)`: the next request that matches fails, once each.
    next_matching: VecDeque<(String, String, Failure)>,
}

pub(crate) type SharedRecorder = Arc<Mutex<Recorder>>;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not take every later assertion down with it.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Scripting and recording methods, the same on every fake.
macro_rules! scripted_fake {
    ($fake:ty) => {
        impl $fake {
            /// Answers the next `n` requests with `failure`.
            pub fn fail_next(&self, n: usize, failure: $crate::fake::Failure) {
                let mut recorder = $crate::fake::lock(&self.recorder);
                recorder.fail_next(n, failure);
            }

            /// Answers the next request with `method` whose path ends with `path_suffix` with
            /// `failure` (other requests are answered as usual).
            pub fn fail_next_matching(&self, method: &str, path_suffix: &str, failure: $crate::fake::Failure) {
                $crate::fake::lock(&self.recorder).next_matching.push_back((
                    method.to_owned(),
                    path_suffix.to_owned(),
                    failure,
                ));
            }

            /// Answers every request with `failure` until [`Self::clear_failures`].
            pub fn fail_always(&self, failure: $crate::fake::Failure) {
                $crate::fake::lock(&self.recorder).fail_always(failure);
            }

            /// Drops every scripted failure.
            pub fn clear_failures(&self) {
                $crate::fake::lock(&self.recorder).clear_failures();
            }

            /// Every request received so far, failed ones included, in arrival order.
            pub fn requests(&self) -> Vec<$crate::fake::RecordedRequest> {
                $crate::fake::lock(&self.recorder).requests()
            }
        }
    };
}
pub(crate) use scripted_fake;

impl Recorder {
    pub(crate) fn fail_next(&mut self, n: usize, failure: Failure) {
        self.next.extend(std::iter::repeat_n(failure, n));
    }

    pub(crate) fn fail_always(&mut self, failure: Failure) {
        self.always = Some(failure);
    }

    pub(crate) fn clear_failures(&mut self) {
        self.next.clear();
        self.always = None;
        self.next_matching.clear();
    }

    /// The failure for a request, if one is scripted: a matching one first.
    fn failure_for(&mut self, method: &str, path: &str) -> Option<Failure> {
        let matching = self.next_matching.iter().position(|(m, p, _)| m == method && path.ends_with(p.as_str()));
        if let Some(i) = matching {
            return self.next_matching.remove(i).map(|(_, _, f)| f);
        }
        self.next.pop_front().or_else(|| self.always.clone())
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.clone()
    }
}

/// One request, read and recorded, as a fake's handler sees it.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub method: Method,
    /// Percent-decoded path segments (no empty ones).
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The scripted failure to answer with, if any.
    pub failure: Option<Failure>,
}

impl Incoming {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Reads the request, records it and takes the next scripted failure.
pub(crate) async fn intake(recorder: &SharedRecorder, request: Request) -> Incoming {
    let at = SystemTime::now();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut recorder = lock(recorder);
    let failure = recorder.failure_for(parts.method.as_str(), parts.uri.path());
    recorder.requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: body.clone(),
        at,
        failure: failure.clone(),
    });
    Incoming {
        method: parts.method,
        segments: parts.uri.path().split('/').filter(|s| !s.is_empty()).map(percent_decode).collect(),
        query: query_pairs(parts.uri.query()),
        headers: parts.headers,
        body,
        failure,
    }
}

/// Never answers (the client gives up first).
pub(crate) async fn hang() -> Response {
    std::future::pending().await
}

/// A running server; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Server {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

pub(crate) async fn serve(app: Router) -> Server {
    serve_on(std::net::Ipv4Addr::LOCALHOST.into(), app).await
}

/// Serves `app` on `ip` (port 0): on the Docker bridge's gateway for servers a container must reach.
pub(crate) async fn serve_on(ip: std::net::IpAddr, app: Router) -> Server {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind a fake");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Server { addr, _stop: stop }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let uri: axum::http::Uri = format!("/?{}", query.unwrap_or("")).parse().unwrap_or_default();
    Query::<Vec<(String, String)>>::try_from_uri(&uri).map(|q| q.0).unwrap_or_default()
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis()).unwrap_or(u64::MAX)
}

/// RFC 3339 UTC with milliseconds, `2024-05-01T10:00:00.000Z`.
pub(crate) fn rfc3339(ms: u64) -> String {
    let secs = ms / 1_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        ms % 1_000
    )
}

/// Whole seconds for a `Retry-After` header: never shorter than asked.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "small positive test values")]
pub(crate) fn ceil_secs(secs: f64) -> u64 {
    secs.max(0.0).ceil() as u64
}

#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "small positive test values")]
pub(crate) fn secs_to_ms(secs: f64) -> u64 {
    (secs.max(0.0) * 1_000.0).round() as u64
}

/// The consumer's [`HttpPort`] over reqwest, for native tests against the fakes.
#[derive(Debug, Clone)]
pub struct ReqwestPort {
    client: reqwest::Client,
    timeout: Duration,
}

impl Default for ReqwestPort {
    fn default() -> Self {
        Self::new()
    }
}

impl ReqwestPort {
    /// A port whose requests time out after 10 s.
    pub fn new() -> Self {
        Self::with_timeout(Duration::from_secs(10))
    }

    pub fn with_timeout(timeout: Duration) -> Self {
        Self { client: reqwest::Client::builder().timeout(timeout).build().expect("reqwest client"), timeout }
    }
}

impl HttpPort for ReqwestPort {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match request.method {
            http::Method::Get => reqwest::Method::GET,
            http::Method::Post => reqwest::Method::POST,
            http::Method::Put => reqwest::Method::PUT,
            http::Method::Patch => reqwest::Method::PATCH,
            http::Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                TransportError::Timeout(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX))
            } else {
                TransportError::Connect(e.without_url().to_string())
            }
        };
        let response = builder.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = response.bytes().await.map_err(failed)?.to_vec();
        Ok(HttpResponse { status, headers, body })
    }
}

/// A term the fakes' text searches look for: whether a text, lower-cased, contains it (the term is
/// lower case already). Lower-casing each issue's title and body on every search made the fakes'
/// searches the largest cost in the benchmark's process (18 % of the whole machine's samples in a
/// 1,000-alert drain), competing with workerd for the cores. An ASCII term is found ignoring ASCII
/// case by `aho-corasick`, whose prefilter skips to the term's rarest byte; a term with other
/// characters lower-cases the text, as before. (The difference: a non-ASCII letter whose lower case
/// holds ASCII, the Kelvin sign `K` and the dotted `İ`, no longer matches `k` or `i`.)
#[derive(Debug)]
pub struct Term {
    text: String,
    ascii: Option<aho_corasick::AhoCorasick>,
}

impl Term {
    pub fn new(lower: &str) -> Self {
        let ascii = (lower.is_ascii() && !lower.is_empty())
            .then(|| aho_corasick::AhoCorasick::builder().ascii_case_insensitive(true).build([lower]).ok())
            .flatten();
        Self { text: lower.to_owned(), ascii }
    }

    /// The term, lower case.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn found_in(&self, haystack: &str) -> bool {
        match &self.ascii {
            Some(finder) => finder.is_match(haystack),
            None => haystack.to_lowercase().contains(&self.text),
        }
    }
}

/// [`Term::found_in`] for a term used once (no automaton built): an ASCII term compared at each
/// position ignoring ASCII case.
pub fn contains_folded(haystack: &str, needle: &str) -> bool {
    if !needle.is_ascii() || needle.is_empty() {
        return haystack.to_lowercase().contains(needle);
    }
    haystack.as_bytes().windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_folded_matches_lower_casing_then_contains() {
        let cases = [
            ("TypeError: Cannot read", "typeerror"),
            ("TypeError: Cannot read", "cannot read"),
            ("TypeError: Cannot read", "read!"),
            ("abc", ""),
            ("", "a"),
            ("ab", "abc"),
            ("xXyYx", "xyx"),
            ("xXyYxy", "yxy"),
            ("Größe: ÄRGER", "ärger"),
            ("Größe: ÄRGER", "größe"),
            ("naïve FOO…", "foo…"),
            ("naïve FOO…", "foo"),
            ("aaaaab", "aab"),
            ("BenchError 12: x", "bencherror 1"),
            ("BenchError 12: x", "bencherror 13"),
        ];
        for (haystack, needle) in cases {
            let expected = haystack.to_lowercase().contains(needle);
            assert_eq!(contains_folded(haystack, needle), expected, "{haystack:?} ∋ {needle:?}");
            assert_eq!(Term::new(needle).found_in(haystack), expected, "{haystack:?} ∋ {needle:?}");
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_445_412_480_123), "2015-10-21T07:28:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("%40original"), "@original");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
