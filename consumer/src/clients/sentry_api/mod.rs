//! The Sentry-compatible REST API (`/api/0/`), served by Sentry and GlitchTip alike
//! (<https://docs.sentry.io/api/events/>): issue details, an issue's latest event, the
//! organization's issue list with a search `query` and `statsPeriod`, and status updates.
//! Auth: `Authorization: Bearer <token>`. Settings: `SENTRY_API_BASE` (the host, e.g.
//! `https://sentry.io`; a trailing `/api/0` is accepted), `SENTRY_API_TOKEN`, `SENTRY_ORG`.

use std::fmt;

use bugbot_shared::backoff::parse_retry_after;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use worker::Url;

use super::SinkError;
use crate::clients::http::{HttpPort, HttpRequest, Method};

pub mod writeback;

const SERVICE: &str = "sentry_api";

/// A Sentry-compatible API client.
pub struct SentryApi<'a, P> {
    pub port: &'a P,
    pub api_base: String,
    pub token: String,
    pub org: String,
}

impl<P> fmt::Debug for SentryApi<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentryApi").field("api_base", &self.api_base).field("org", &self.org).finish_non_exhaustive()
    }
}

/// An issue as the API lists it (<https://docs.sentry.io/api/events/list-a-projects-issues/>).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiIssue {
    pub id: String,
    pub short_id: Option<String>,
    pub title: String,
    pub culprit: Option<String>,
    pub level: Option<String>,
    pub status: Option<String>,
    /// A string in Sentry's API (counts can exceed JSON's safe integers).
    #[serde(deserialize_with = "string_or_number")]
    pub count: Option<String>,
    pub user_count: Option<u64>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub permalink: Option<String>,
    pub project: Option<ApiProject>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ApiProject {
    pub slug: Option<String>,
    pub name: Option<String>,
}

impl ApiIssue {
    pub fn project_slug(&self) -> Option<&str> {
        self.project.as_ref().and_then(|p| p.slug.as_deref().or(p.name.as_deref()))
    }

    pub fn count_number(&self) -> u64 {
        self.count.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

impl<P: HttpPort> SentryApi<'_, P> {
    /// `GET /api/0/issues/{id}/`; `None` if there is no such issue.
    pub async fn issue(&self, id: &str) -> Result<Option<ApiIssue>, SinkError> {
        let url = self.url(&["issues", id], &[])?;
        self.get_optional(url).await
    }

    /// `GET /api/0/issues/{id}/events/latest/`: the full event JSON (frames, tags, user).
    pub async fn latest_event(&self, id: &str) -> Result<Option<Value>, SinkError> {
        let url = self.url(&["issues", id, "events", "latest"], &[])?;
        self.get_optional(url).await
    }

    /// `GET /api/0/organizations/{org}/issues/?query=…&statsPeriod=…&limit=…`.
    pub async fn list_issues(&self, query: &str, stats_period: &str, limit: u8) -> Result<Vec<ApiIssue>, SinkError> {
        let limit = limit.clamp(1, 100).to_string();
        let url = self.url(
            &["organizations", &self.org, "issues"],
            &[("query", query), ("statsPeriod", stats_period), ("limit", &limit), ("sort", "freq")],
        )?;
        Ok(self.get_optional(url).await?.unwrap_or_default())
    }

    /// `PUT /api/0/issues/{id}/ {"status": …}` (`resolved`, `unresolved`, `ignored`).
    pub async fn set_status(&self, id: &str, status: &str) -> Result<ApiIssue, SinkError> {
        let url = self.url(&["issues", id], &[])?;
        let request = self.request(Method::Put, &url).json(&json!({ "status": status }));
        match self.send::<ApiIssue>(request).await? {
            Some(issue) => Ok(issue),
            None => Err(permanent(format!("issue {id} not found"))),
        }
    }

    /// The issue's page, for links when the API gave no `permalink`.
    pub fn issue_page(&self, id: &str) -> String {
        format!("{}/organizations/{}/issues/{id}/", self.base(), self.org)
    }

    fn base(&self) -> &str {
        let base = self.api_base.trim_end_matches('/');
        base.strip_suffix("/api/0").unwrap_or(base)
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, SinkError> {
        let mut url = Url::parse(self.base()).map_err(|e| permanent(format!("SENTRY_API_BASE: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| permanent("SENTRY_API_BASE cannot be a base URL"))?
            .pop_if_empty()
            .extend(["api", "0"])
            .extend(segments)
            // Sentry's routes end with a slash.
            .push("");
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn request(&self, method: Method, url: &Url) -> HttpRequest {
        HttpRequest::new(method, url.as_str())
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", "application/json")
    }

    async fn get_optional<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>, SinkError> {
        self.send(self.request(Method::Get, &url)).await
    }

    async fn send<T: DeserializeOwned>(&self, request: HttpRequest) -> Result<Option<T>, SinkError> {
        let response = self.port.send(request).await.map_err(|e| SinkError::transport(SERVICE, &e))?;
        let status = response.status;
        if status == 404 {
            return Ok(None);
        }
        if status == 429 || status >= 500 {
            let retry_after = response.header("retry-after").and_then(|v| parse_retry_after(v, u64::MAX));
            return Err(SinkError::Transient { service: SERVICE, reason: format!("HTTP {status}"), retry_after });
        }
        if !(200..300).contains(&status) {
            let detail = serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            return Err(permanent(format!("HTTP {status} {detail}").trim().to_owned()));
        }
        serde_json::from_slice(&response.body).map(Some).map_err(|e| permanent(format!("unexpected answer: {e}")))
    }
}

fn permanent(reason: impl Into<String>) -> SinkError {
    SinkError::Permanent { service: SERVICE, reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::clients::linear::recording::{RecordingPort, answer, body_json, header};

    fn api(port: &RecordingPort) -> SentryApi<'_, RecordingPort> {
        SentryApi { port, api_base: "http://sentry.test/api/0/".into(), token: "tok".into(), org: "acme".into() }
    }

    #[test]
    fn list_resolve_and_missing() {
        let list = r#"[{"id":"7","title":"ZeroDivisionError","count":"12","userCount":3,"level":"error","project":{"slug":"shop"}}]"#;
        let port = RecordingPort::new([
            answer(200, list),
            answer(200, r#"{"id":"7","title":"x","status":"resolved","count":12}"#),
            answer(404, r#"{"detail":"Not found"}"#),
        ]);
        let issues = block_on(api(&port).list_issues("is:unresolved level:error", "24h", 10)).unwrap();
        assert_eq!((issues[0].count_number(), issues[0].project_slug()), (12, Some("shop")));
        let resolved = block_on(api(&port).set_status("7", "resolved")).unwrap();
        assert_eq!(resolved.status.as_deref(), Some("resolved"));
        assert_eq!(block_on(api(&port).latest_event("8")).unwrap(), None);
        let requests = port.requests();
        assert_eq!(
            requests[0].url,
            "http://sentry.test/api/0/organizations/acme/issues/?query=is%3Aunresolved+level%3Aerror&statsPeriod=24h&limit=10&sort=freq"
        );
        assert_eq!(header(&requests[0], "authorization"), Some("Bearer tok"));
        assert_eq!((requests[1].method, requests[1].url.as_str()), (Method::Put, "http://sentry.test/api/0/issues/7/"));
        assert_eq!(body_json(&requests[1]), json!({"status": "resolved"}));
        assert_eq!(requests[2].url, "http://sentry.test/api/0/issues/8/events/latest/");
    }

    #[test]
    fn failures_are_classified() {
        let port = RecordingPort::new([answer(503, ""), answer(401, r#"{"detail":"Invalid token"}"#)]);
        assert!(block_on(api(&port).issue("1")).unwrap_err().is_transient());
        let e = block_on(api(&port).issue("1")).unwrap_err();
        assert_eq!(e.to_string(), "sentry_api: HTTP 401 Invalid token");
    }
}
