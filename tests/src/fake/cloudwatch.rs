//! A fake `CloudWatch` Logs API: `FilterLogEvents` only
//! (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html>),
//! AWS JSON 1.1 over `POST /` with `X-Amz-Target: Logs_20140328.FilterLogEvents`.
//!
//! Every request must carry a valid AWS Signature Version 4 for service `logs`, which this fake checks
//! with its own implementation ([`sigv4`], written here from the AWS documentation and checked against
//! AWS's test suite in `fixtures/aws/sigv4/`), independent of the `aws-sigv4` crate the consumer signs
//! with: a wrong key id is `UnrecognizedClientException`, a wrong secret or altered bytes
//! `InvalidSignatureException`, a date more than 5 minutes off `InvalidSignatureException` ("Signature
//! expired"), all `400` as AWS answers them.
//!
//! Events are held per log group; a filter pattern of `?A ?B` terms matches events containing any
//! term (a bare `A B` needs all). Pages hold [`FakeCloudWatchLogs::set_page_size`] events and carry a
//! `nextToken` while more remain; scripted failures answer `ThrottlingException` (400) or
//! `ServiceUnavailableException` (503).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Failure, Incoming, Server, SharedRecorder, hang, intake, lock, now_ms, scripted_fake};

/// One stored log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_id: String,
    pub log_stream_name: String,
    pub message: String,
    pub timestamp: u64,
}

#[derive(Debug)]
struct Data {
    access_key_id: String,
    secret: String,
    region: String,
    groups: BTreeMap<String, Vec<StoredEvent>>,
    page_size: usize,
    next_id: u64,
}

type Shared = Arc<Mutex<Data>>;

#[derive(Clone)]
struct AppState {
    data: Shared,
    recorder: SharedRecorder,
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeCloudWatchLogs {
    server: Server,
    data: Shared,
    recorder: SharedRecorder,
}

scripted_fake!(FakeCloudWatchLogs);

impl FakeCloudWatchLogs {
    /// Starts the fake for one set of credentials in `region`.
    pub async fn start(access_key_id: &str, secret: &str, region: &str) -> Self {
        let data = Arc::new(Mutex::new(Data {
            access_key_id: access_key_id.to_owned(),
            secret: secret.to_owned(),
            region: region.to_owned(),
            groups: BTreeMap::new(),
            page_size: 100,
            next_id: 1,
        }));
        let recorder = SharedRecorder::default();
        let app =
            Router::new().fallback(handle).with_state(AppState { data: data.clone(), recorder: recorder.clone() });
        Self { server: super::serve(app).await, data, recorder }
    }

    /// `CLOUDWATCH_API_BASE`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Creates an empty log group.
    pub fn create_group(&self, name: &str) {
        lock(&self.data).groups.entry(name.to_owned()).or_default();
    }

    /// Adds an event to `group` (created if needed); returns its id (56 digits, like AWS's).
    pub fn put(&self, group: &str, stream: &str, timestamp: u64, message: &str) -> String {
        let mut data = lock(&self.data);
        let id = format!("{:056}", u128::from(timestamp) * 1_000_000 + u128::from(data.next_id));
        data.next_id += 1;
        data.groups.entry(group.to_owned()).or_default().push(StoredEvent {
            event_id: id.clone(),
            log_stream_name: stream.to_owned(),
            message: message.to_owned(),
            timestamp,
        });
        id
    }

    /// Events per page (default 100).
    pub fn set_page_size(&self, n: usize) {
        lock(&self.data).page_size = n.max(1);
    }
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({"__type": kind, "message": message}))).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1"));
    response.headers_mut().insert("x-amzn-requestid", HeaderValue::from_static("00000000-0000-4000-8000-000000000000"));
    response
}

async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let incoming = intake(&app.recorder, request).await;
    match &incoming.failure {
        Some(Failure::Hang) => return hang().await,
        Some(Failure::ServerError) => {
            return aws_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", "Service Unavailable");
        }
        Some(Failure::RateLimited { .. }) => {
            return aws_error(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded");
        }
        None => {}
    }
    let data = lock(&app.data);
    if let Err(response) = authenticate(&data, &incoming) {
        return response;
    }
    if incoming.header("x-amz-target") != Some("Logs_20140328.FilterLogEvents") {
        return aws_error(StatusCode::BAD_REQUEST, "UnknownOperationException", "");
    }
    if incoming.header("content-type") != Some("application/x-amz-json-1.1") {
        return aws_error(StatusCode::BAD_REQUEST, "SerializationException", "content type");
    }
    let Some(body) = incoming.json() else {
        return aws_error(StatusCode::BAD_REQUEST, "SerializationException", "body is not JSON");
    };
    filter_log_events(&data, &body)
}

#[expect(clippy::result_large_err, reason = "the refusal is the fake's answer, built once per request")]
fn authenticate(data: &Data, incoming: &Incoming) -> Result<(), Response> {
    let invalid = |message: &str| aws_error(StatusCode::BAD_REQUEST, "InvalidSignatureException", message);
    let auth = incoming.header("authorization").ok_or_else(|| {
        aws_error(StatusCode::BAD_REQUEST, "MissingAuthenticationTokenException", "Missing Authentication Token")
    })?;
    let parsed = sigv4::parse_authorization(auth).ok_or_else(|| invalid("Authorization header is malformed"))?;
    if parsed.access_key_id != data.access_key_id {
        return Err(aws_error(
            StatusCode::BAD_REQUEST,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if parsed.region != data.region || parsed.service != "logs" {
        return Err(invalid("Credential should be scoped to a valid region and service 'logs'."));
    }
    let amz_date = incoming.header("x-amz-date").ok_or_else(|| invalid("x-amz-date missing"))?;
    let signed_at = sigv4::parse_amz_date(amz_date).ok_or_else(|| invalid("x-amz-date malformed"))?;
    if signed_at.abs_diff(now_ms() / 1000) > 300 || !amz_date.starts_with(&parsed.date) {
        return Err(invalid("Signature expired: the request date is outside the allowed window"));
    }
    if !parsed.signed_headers.iter().any(|h| h == "host") || !parsed.signed_headers.iter().any(|h| h == "x-amz-date") {
        return Err(invalid("host and x-amz-date must be signed"));
    }
    let mut headers = Vec::new();
    for name in &parsed.signed_headers {
        let value = incoming.header(name).ok_or_else(|| invalid("a signed header is missing"))?;
        headers.push((name.clone(), value.to_owned()));
    }
    let creq = sigv4::canonical_request("POST", "/", "", &headers, &incoming.body);
    let sts = sigv4::string_to_sign(amz_date, &parsed.scope(), &creq);
    let expected = sigv4::signature(&data.secret, &parsed.date, &data.region, "logs", &sts);
    if !sigv4::equal(&expected, &parsed.signature) {
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

fn filter_log_events(data: &Data, body: &Value) -> Response {
    let group = body["logGroupName"].as_str().unwrap_or_default();
    let Some(events) = data.groups.get(group) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "The specified log group does not exist.",
        );
    };
    let start = body["startTime"].as_u64().unwrap_or(0);
    let end = body["endTime"].as_u64().unwrap_or(u64::MAX);
    let pattern = body["filterPattern"].as_str().unwrap_or_default();
    let limit = body["limit"].as_u64().map_or(10_000, |l| usize::try_from(l).unwrap_or(10_000));
    let offset: usize = body["nextToken"]
        .as_str()
        .and_then(|t| t.strip_prefix("fake-token-"))
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let mut matching: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.timestamp >= start && e.timestamp <= end && matches_pattern(pattern, &e.message))
        .collect();
    matching.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(data.page_size.min(limit))
        .map(|e| {
            json!({"logStreamName": e.log_stream_name, "timestamp": e.timestamp, "message": e.message,
                   "ingestionTime": e.timestamp + 350, "eventId": e.event_id})
        })
        .collect();
    let next = offset + page.len();
    let mut answer = json!({"events": page, "searchedLogStreams": []});
    if next < matching.len() {
        answer["nextToken"] = json!(format!("fake-token-{next}"));
    }
    let mut response = (StatusCode::OK, axum::Json(answer)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1"));
    response
}

/// `?A ?B`: any of the terms; `A B`: all of them; empty: everything.
fn matches_pattern(pattern: &str, message: &str) -> bool {
    let terms: Vec<&str> = pattern.split_whitespace().collect();
    if terms.is_empty() {
        return true;
    }
    let optional: Vec<&str> = terms.iter().filter_map(|t| t.strip_prefix('?')).collect();
    let required: Vec<&&str> = terms.iter().filter(|t| !t.starts_with('?')).collect();
    required.iter().all(|t| message.contains(**t))
        && (optional.is_empty() || optional.iter().any(|t| message.contains(t)))
}

/// AWS Signature Version 4, from <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>,
/// for the verifying side (no `aws-sigv4` here, on purpose).
pub mod sigv4 {
    use std::fmt::Write as _;

    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    /// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Authorization {
        pub access_key_id: String,
        /// `YYYYMMDD`.
        pub date: String,
        pub region: String,
        pub service: String,
        pub signed_headers: Vec<String>,
        pub signature: String,
    }

    impl Authorization {
        pub fn scope(&self) -> String {
            format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
        }
    }

    pub fn parse_authorization(header: &str) -> Option<Authorization> {
        let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
        let mut credential = None;
        let mut signed = None;
        let mut signature = None;
        for part in rest.split(',') {
            let (key, value) = part.trim().split_once('=')?;
            match key {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed = Some(value),
                "Signature" => signature = Some(value),
                _ => return None,
            }
        }
        let mut scope = credential?.split('/');
        let (akid, date, region, service, terminator) =
            (scope.next()?, scope.next()?, scope.next()?, scope.next()?, scope.next()?);
        if terminator != "aws4_request" || scope.next().is_some() {
            return None;
        }
        Some(Authorization {
            access_key_id: akid.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            signed_headers: signed?.split(';').map(str::to_owned).collect(),
            signature: signature?.to_owned(),
        })
    }

    /// The canonical request: method, URI, query, the signed headers (lowercase, values trimmed and
    /// inner spaces collapsed, sorted), the signed header list and the payload's SHA-256.
    pub fn canonical_request(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> String {
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
            .collect();
        headers.sort();
        let canonical = headers.iter().fold(String::new(), |mut out, (k, v)| {
            let _ = writeln!(out, "{k}:{v}");
            out
        });
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        format!("{method}\n{path}\n{query}\n{canonical}\n{}\n{}", signed.join(";"), hex::encode(Sha256::digest(body)))
    }

    pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())))
    }

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Hex signature of `string_to_sign` with the key derived from `secret`, date, region and service.
    pub fn signature(secret: &str, date: &str, region: &str, service: &str, string_to_sign: &str) -> String {
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
        let k_region = hmac(&k_date, region);
        let k_service = hmac(&k_region, service);
        let k_signing = hmac(&k_service, "aws4_request");
        hex::encode(hmac(&k_signing, string_to_sign))
    }

    /// Constant-time comparison of two hex signatures.
    pub fn equal(a: &str, b: &str) -> bool {
        a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// `20150830T123600Z` → unix seconds.
    pub fn parse_amz_date(raw: &str) -> Option<u64> {
        if raw.len() != 16 || raw.as_bytes()[8] != b'T' || !raw.ends_with('Z') {
            return None;
        }
        let n = |r: std::ops::Range<usize>| raw.get(r)?.parse::<u32>().ok();
        let rfc = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            n(0..4)?,
            n(4..6)?,
            n(6..8)?,
            n(9..11)?,
            n(11..13)?,
            n(13..15)?
        );
        bugbot_shared::event::parse_rfc3339_ms(&rfc).map(|ms| ms / 1000)
    }
}
