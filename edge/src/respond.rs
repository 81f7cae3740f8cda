//! JSON responses. The body crosses to JavaScript once, as bytes, with one header set.

use worker::{Headers, Response};

/// A JSON response with a status. Never fails: the header value is a constant.
pub fn json(status: u16, body: &str) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    Response::builder().with_status(status).with_headers(headers).fixed(body.as_bytes().to_vec())
}

/// `{"error": reason}` with a status: every client error either Worker gives.
pub fn error_json(status: u16, reason: &str) -> Response {
    json(status, &error_body(reason))
}

/// The body of [`error_json`].
pub fn error_body(reason: &str) -> String {
    format!("{{\"error\":{}}}", serde_json::to_string(reason).expect("a string serializes"))
}
