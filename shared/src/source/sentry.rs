//! Sentry integration-platform webhooks and the legacy `WebHooks` plugin.
//!
//! See <https://docs.sentry.io/organization/integrations/integration-platform/webhooks/>.
//! The gateway reads only the routing facts (resource header, `action`); the payload travels on
//! untouched (or pruned, when too large for a queue message) for the consumer to normalize.

use serde::{Deserialize, Serialize};

/// The `Sentry-Hook-Resource` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resource {
    Issue,
    EventAlert,
    Error,
    MetricAlert,
    Comment,
    Installation,
    Seer,
    /// A resource this version does not know; acknowledged, never enqueued.
    #[serde(untagged)]
    Other(String),
}

impl Resource {
    pub fn from_header(value: &str) -> Self {
        match value.trim() {
            "issue" => Self::Issue,
            "event_alert" => Self::EventAlert,
            "error" => Self::Error,
            "metric_alert" => Self::MetricAlert,
            "comment" => Self::Comment,
            "installation" => Self::Installation,
            "seer" => Self::Seer,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Resources that can become or change a tracked issue.
    pub fn is_actionable(&self) -> bool {
        matches!(self, Self::Issue | Self::EventAlert | Self::Error | Self::MetricAlert)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Issue => "issue",
            Self::EventAlert => "event_alert",
            Self::Error => "error",
            Self::MetricAlert => "metric_alert",
            Self::Comment => "comment",
            Self::Installation => "installation",
            Self::Seer => "seer",
            Self::Other(s) => s,
        }
    }
}

/// The integration-platform envelope: `{action, installation, data, actor}`. Only `action` is
/// read at the gateway; `data` must be an object for actionable resources.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub data: Option<serde::de::IgnoredAny>,
}

/// The legacy `WebHooks` plugin body (`{id, project, project_name, culprit, message, url, level, event}`).
#[derive(Debug, Deserialize)]
pub struct LegacyPluginPayload {
    pub id: serde_json::Value,
    #[serde(default)]
    pub url: Option<String>,
}

impl LegacyPluginPayload {
    /// The Sentry group id, whether sent as a string or a number.
    pub fn group_id(&self) -> Option<String> {
        match &self.id {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}
