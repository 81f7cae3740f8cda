//! Clients: one per external service the consumer calls, each generic over [`http::HttpPort`] (the
//! Worker plugs in [`fetch::FetchPort`]), mapping every failure to a [`SinkError`] that says whether
//! retrying can help.

pub mod discord;
pub mod fetch;
pub mod github;
pub mod http;
pub mod linear;
pub mod posthog;
pub mod sentry_api;
pub mod tracker;

use bugbot_shared::backoff::RetryAfter;

use self::http::TransportError;

/// Why a call to an external service failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    /// 429, 5xx, timeouts: retrying later can succeed. `retry_after` is what the service asked for.
    #[error("{service}: transient failure: {reason}")]
    Transient { service: &'static str, reason: String, retry_after: Option<RetryAfter> },
    /// Other 4xx, bad configuration, unexpected answers: retrying cannot help.
    #[error("{service}: {reason}")]
    Permanent { service: &'static str, reason: String },
}

impl SinkError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    pub fn transport(service: &'static str, e: &TransportError) -> Self {
        Self::Transient { service, reason: e.to_string(), retry_after: None }
    }
}
