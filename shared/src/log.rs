//! The one-JSON-line log record. Every request, job and outbound call prints exactly one, so
//! `wrangler tail --format json | jq` can follow a delivery end to end. Never put a secret in one.

use serde::Serialize;

/// Severity, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// Parses `LOG_LEVEL` (default info).
    pub fn parse(s: Option<&str>) -> Self {
        match s.map(str::trim).map(str::to_ascii_lowercase).as_deref() {
            Some("debug") => Self::Debug,
            Some("warn" | "warning") => Self::Warn,
            Some("error") => Self::Error,
            _ => Self::Info,
        }
    }
}

/// One log line. Fields that do not apply are left out of the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine<'a> {
    pub level: Level,
    /// `gateway`, `consumer`, `executor`.
    pub component: &'static str,
    /// `request`, `job`, `outbound`, `config`, `cron`.
    pub event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub job_ids: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
}

impl LogLine<'_> {
    pub fn new(level: Level, component: &'static str, event: &'static str) -> Self {
        Self {
            level,
            component,
            event,
            route: None,
            status: None,
            outcome: None,
            reason: None,
            request_id: None,
            job_id: None,
            job_ids: Vec::new(),
            kind: None,
            fingerprint: None,
            duration_ms: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a log line always serializes")
    }
}
