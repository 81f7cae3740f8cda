//! The one seam between the consumer's logic and the network: a small HTTP port. Sinks are generic
//! over it; the Worker plugs in `FetchPort` (Workers `fetch`, wasm only), native tests a recording fake.

use std::fmt;

/// HTTP methods the sinks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// An outbound request.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl fmt::Debug for HttpRequest {
    // Headers carry credentials: never print their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &names)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// Interaction webhook URLs carry the interaction token as a path segment
/// (`/webhooks/{application}/{token}/...`): keep it out of any printout.
fn redact_url(url: &str) -> String {
    match url.split_once("/webhooks/") {
        Some((base, rest)) => {
            let mut parts = rest.splitn(3, '/');
            let app = parts.next().unwrap_or_default();
            let tail = parts.nth(1).map(|t| format!("/{t}")).unwrap_or_default();
            format!("{base}/webhooks/{app}/<token>{tail}")
        }
        None => url.to_owned(),
    }
}

impl HttpRequest {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self { method, url: url.into(), headers: Vec::new(), body: None }
    }

    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    #[must_use]
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.headers.push(("content-type".into(), "application/json".into()));
        self.body = Some(body.to_string().into_bytes());
        self
    }
}

/// A response, fully read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The request never produced a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("connection failed: {0}")]
    Connect(String),
}

/// Sends one request. Not `Send`: Workers futures are `!Send`.
#[expect(async_fn_in_trait, reason = "single-threaded Workers runtime; no Send bound wanted")]
pub trait HttpPort {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_credentials() {
        let req =
            HttpRequest::new(Method::Patch, "https://discord.com/api/v10/webhooks/123/SECRET-TOKEN/messages/@original")
                .header("authorization", "Bot SECRET-BOT");
        let printed = format!("{req:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("/webhooks/123/<token>/messages/@original"), "{printed}");
        assert!(printed.contains("authorization"));
    }
}
