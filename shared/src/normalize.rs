//! Every source into one [`Signal`]: the consumer's first step.
//!
//! Lenient raw structs in (a field of an unexpected type is dropped, never a rejected delivery),
//! strict [`ErrorEvent`]s out. Upstream shapes:
//! - Sentry integration platform: `issue.*` (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/issues/>),
//!   `event_alert.triggered` (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/issue-alerts/>),
//!   `error.created` (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/errors/>),
//!   `metric_alert.*` (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/metric-alerts/>);
//!   events inside them are Sentry's stored event JSON (<https://develop.sentry.dev/sdk/data-model/event-payloads/>).
//! - Sentry's legacy `WebHooks` plugin (`{id, project, culprit, message, url, level, event}`).
//! - `GlitchTip` alerts, already parsed by [`crate::source::glitchtip`].
//!
//! # Fingerprints
//! The source's own issue id wherever there is one, namespaced so ids of different systems never
//! collide: `sentry:<group id>` (from `data.issue.id`, the event's `issue_id`/`group_id`, or the
//! `/issues/<id>/` in its URLs; the legacy plugin's `id` is the same group id),
//! `glitchtip:<host>:<id>` (from the alert link `.../issues/<id>`), `sentry:metric-rule:<rule id>`,
//! `glitchtip-uptime:<host>:<monitor id>`. Sentry ids carry no host: one bugbot talks to one
//! Sentry, and `issue.*` payloads may carry no URL at all, while the same issue's
//! `event_alert` does. Without an id: a hash of project + normalized title + normalized culprit
//! + the top in-app frame's module/file and function (no line number, so it survives edits).
//!
//! # In-app
//! Sentry's `in_app` is often wrong (its server-side rules flip SDK-set `true` to `false`, see
//! `data.orig_in_app` in the fixtures), so bugbot judges each frame by its path, module and
//! function instead: [`judge_in_app`].

use crate::report::clip;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

use crate::event::{
    ErrorEvent, ExceptionInfo, Fingerprint, Frame, Level, MetricAlert, MetricStatus, Signal, Source, StatusChange,
    UptimeAlert, UptimeState, parse_rfc3339_ms,
};
use crate::job::JobKind;
use crate::source::glitchtip::{GlitchtipIssue, GlitchtipUptime};
use crate::source::sentry::Resource;

/// Frames kept per event (the crash side is kept).
const MAX_FRAMES: usize = 100;
/// Source lines kept before and after the crash line of a frame.
const MAX_CONTEXT_LINES: usize = 5;
const MAX_TAGS: usize = 50;

/// Why a job could not be normalized. All are permanent: retrying the same payload cannot help.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("payload is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{resource} payload has no `{field}`")]
    Missing { resource: &'static str, field: &'static str },
    #[error("unsupported {resource} action `{action}`")]
    UnsupportedAction { resource: String, action: String },
    #[error("Sentry resource `{0}` does not describe an error")]
    NotActionable(String),
    #[error("job kind `{0}` is not an error report")]
    NotAnErrorJob(&'static str),
}

/// Turns one queued job into what it means. `received_at_ms` stands in for times the source
/// does not give.
pub fn normalize(kind: &JobKind, received_at_ms: u64) -> Result<Signal, NormalizeError> {
    match kind {
        JobKind::SentryWebhook(job) => sentry_webhook(&job.resource, &job.action, &job.payload, received_at_ms),
        JobKind::SentryLegacy(job) => sentry_legacy(&job.payload, received_at_ms),
        JobKind::GlitchtipIssue(job) => Ok(Signal::Occurrence(glitchtip_issue(&job.issue, received_at_ms))),
        JobKind::GlitchtipUptime(job) => Ok(Signal::Uptime(glitchtip_uptime(&job.uptime, received_at_ms))),
        JobKind::SlackMessage(crate::job::SlackMessageJob { event, .. })
        | JobKind::CloudwatchGroup(crate::job::CloudwatchGroupJob { event }) => Ok(Signal::Occurrence(event.clone())),
        other => Err(NormalizeError::NotAnErrorJob(other.name())),
    }
}

/// A Sentry integration-platform webhook body (`{action, data, actor, installation}`).
pub fn sentry_webhook(
    resource: &Resource,
    action: &str,
    payload: &str,
    received_at_ms: u64,
) -> Result<Signal, NormalizeError> {
    let envelope: Envelope = serde_json::from_str(payload)?;
    let action = action.trim();
    let unsupported =
        || NormalizeError::UnsupportedAction { resource: resource.as_str().to_owned(), action: action.to_owned() };
    match resource {
        Resource::Issue => {
            let issue =
                envelope.data.issue.ok_or(NormalizeError::Missing { resource: "issue", field: "data.issue" })?;
            let actor = envelope.actor.and_then(Actor::person);
            match action {
                "created" => Ok(Signal::Occurrence(issue_event(&issue, received_at_ms))),
                "unresolved" => Ok(Signal::Regressed(issue_event(&issue, received_at_ms))),
                "resolved" => Ok(Signal::Resolved(issue_change(&issue, actor, received_at_ms))),
                "ignored" | "archived" => Ok(Signal::Ignored(issue_change(&issue, actor, received_at_ms))),
                "assigned" => {
                    let assignee = issue.assigned_to.as_ref().and_then(|a| a.name.clone());
                    Ok(Signal::Assigned { change: issue_change(&issue, actor, received_at_ms), assignee })
                }
                _ => Err(unsupported()),
            }
        }
        Resource::EventAlert | Resource::Error => {
            let (event, field) = if *resource == Resource::Error {
                (envelope.data.error, "data.error")
            } else {
                (envelope.data.event, "data.event")
            };
            let event = event.ok_or(NormalizeError::Missing { resource: resource_name(resource), field })?;
            if !matches!(action, "triggered" | "created") {
                return Err(unsupported());
            }
            Ok(Signal::Occurrence(event_event(&event, Source::Sentry, None, received_at_ms)))
        }
        Resource::MetricAlert => {
            let status = match action {
                "critical" | "open" => MetricStatus::Critical,
                "warning" => MetricStatus::Warning,
                "resolved" => MetricStatus::Resolved,
                _ => return Err(unsupported()),
            };
            let data = envelope.data;
            let alert = data
                .metric_alert
                .ok_or(NormalizeError::Missing { resource: "metric_alert", field: "data.metric_alert" })?;
            Ok(Signal::MetricAlert(metric_alert(
                alert,
                status,
                data.description_text,
                data.web_url.as_deref(),
                received_at_ms,
            )))
        }
        other => Err(NormalizeError::NotActionable(other.as_str().to_owned())),
    }
}

fn resource_name(resource: &Resource) -> &'static str {
    match resource {
        Resource::Error => "error",
        Resource::Issue => "issue",
        Resource::MetricAlert => "metric_alert",
        _ => "event_alert",
    }
}

/// A legacy Sentry `WebHooks` plugin body.
pub fn sentry_legacy(payload: &str, received_at_ms: u64) -> Result<Signal, NormalizeError> {
    let legacy: LegacyPayload = serde_json::from_str(payload)?;
    let group_id = legacy.id.ok_or(NormalizeError::Missing { resource: "sentry_legacy", field: "id" })?;
    let mut event = legacy.event.unwrap_or_default();
    // The top level describes the issue; the event may be pruned or missing.
    event.title = event.title.or(legacy.message.filter(|m| !m.trim().is_empty()));
    event.culprit = event.culprit.or(legacy.culprit);
    event.level = event.level.or(legacy.level);
    let project = legacy.project_slug.or(legacy.project).or(legacy.project_name);
    let mut out = event_event(&event, Source::SentryLegacy, project, received_at_ms);
    out.fingerprint = Fingerprint::from_id("sentry", &group_id);
    out.link = legacy.url.as_deref().map(strip_query).or(out.link);
    Ok(Signal::Occurrence(out))
}

/// One issue of a `GlitchTip` alert. `GlitchTip` alerts carry no level, times or frames: level
/// defaults to error, last seen to the receipt time.
pub fn glitchtip_issue(issue: &GlitchtipIssue, received_at_ms: u64) -> ErrorEvent {
    let link = issue.link.as_deref().map(strip_query);
    let id = link.as_deref().and_then(|l| Some((host(l)?, path_id(l, "/issues/")?)));
    let mut tags = Vec::new();
    if let Some(server) = &issue.server_name {
        tags.push(("server_name".to_owned(), clip(server, 200)));
    }
    tags.extend(issue.tags.iter().take(MAX_TAGS).map(|(k, v)| (clip(k, 64), clip(v, 200))));
    let title = clip(issue.title.trim(), 1_000);
    let culprit = issue.culprit.as_deref().map(|c| clip(c.trim(), 500));
    let project = issue.project.as_deref().map(|p| clip(p.trim(), 200));
    let fingerprint = match id {
        Some((host, id)) => Fingerprint::from_id(&format!("glitchtip:{host}"), &id),
        None => hashed_fingerprint("glitchtip", project.as_deref(), &title, culprit.as_deref(), &[]),
    };
    ErrorEvent {
        source: Source::Glitchtip,
        fingerprint,
        title,
        culprit,
        level: Level::Error,
        environment: issue.environment.as_deref().map(|e| clip(e.trim(), 200)),
        release: issue.release.as_deref().map(|r| clip(r.trim(), 200)),
        project,
        platform: None,
        short_id: None,
        event_id: None,
        first_seen_ms: None,
        last_seen_ms: received_at_ms,
        count: None,
        user_count: None,
        link,
        tags,
        exception: None,
        frames: Vec::new(),
    }
}

/// A `GlitchTip` uptime alert. `GlitchTip` says "The monitored site has gone down." or "... is back
/// up."; an unrecognised message counts as down (an alert is more useful than silence).
pub fn glitchtip_uptime(uptime: &GlitchtipUptime, received_at_ms: u64) -> UptimeAlert {
    let link = uptime.link.as_deref().map(strip_query);
    let id = link.as_deref().and_then(|l| Some((host(l)?, path_id(l, "/uptime-monitors/")?)));
    let fingerprint = match id {
        Some((host, id)) => Fingerprint::from_id(&format!("glitchtip-uptime:{host}"), &id),
        None => Fingerprint::from_hash("glitchtip-uptime", uptime.monitor.trim().as_bytes()),
    };
    let message = uptime.message.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let lower = message.unwrap_or_default().to_ascii_lowercase();
    let state = if lower.contains("back up") || (lower.contains(" up") && !lower.contains("down")) {
        UptimeState::Up
    } else {
        UptimeState::Down
    };
    UptimeAlert {
        fingerprint,
        monitor: clip(uptime.monitor.trim(), 200),
        state,
        message: message.map(|m| clip(m, 500)),
        link,
        at_ms: received_at_ms,
    }
}

// --- raw payloads --------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Envelope {
    #[serde(deserialize_with = "lenient")]
    data: Data,
    #[serde(deserialize_with = "lenient")]
    actor: Option<Actor>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Data {
    #[serde(deserialize_with = "lenient")]
    issue: Option<RawIssue>,
    #[serde(deserialize_with = "lenient")]
    event: Option<RawEvent>,
    #[serde(deserialize_with = "lenient")]
    error: Option<RawEvent>,
    #[serde(deserialize_with = "lenient")]
    metric_alert: Option<RawMetricAlert>,
    #[serde(deserialize_with = "text")]
    description_text: Option<String>,
    #[serde(deserialize_with = "text")]
    web_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Actor {
    #[serde(rename = "type", deserialize_with = "text")]
    kind: Option<String>,
    #[serde(deserialize_with = "text")]
    name: Option<String>,
}

impl Actor {
    /// The actor's name when a person acted (not Sentry itself, e.g. auto-resolve).
    fn person(self) -> Option<String> {
        (self.kind.as_deref() == Some("user")).then_some(self.name).flatten()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawIssue {
    #[serde(deserialize_with = "text")]
    id: Option<String>,
    #[serde(rename = "shortId", deserialize_with = "text")]
    short_id: Option<String>,
    #[serde(deserialize_with = "text")]
    title: Option<String>,
    #[serde(deserialize_with = "text")]
    culprit: Option<String>,
    #[serde(deserialize_with = "text")]
    level: Option<String>,
    #[serde(deserialize_with = "text")]
    platform: Option<String>,
    #[serde(deserialize_with = "lenient")]
    project: Option<RawProject>,
    #[serde(deserialize_with = "lenient")]
    metadata: Metadata,
    #[serde(deserialize_with = "text")]
    count: Option<String>,
    #[serde(rename = "userCount", deserialize_with = "text")]
    user_count: Option<String>,
    #[serde(rename = "firstSeen", deserialize_with = "text")]
    first_seen: Option<String>,
    #[serde(rename = "lastSeen", deserialize_with = "text")]
    last_seen: Option<String>,
    #[serde(deserialize_with = "text")]
    permalink: Option<String>,
    #[serde(deserialize_with = "text")]
    web_url: Option<String>,
    #[serde(deserialize_with = "text")]
    url: Option<String>,
    #[serde(rename = "assignedTo", deserialize_with = "lenient")]
    assigned_to: Option<Assignee>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawProject {
    #[serde(deserialize_with = "text")]
    id: Option<String>,
    #[serde(deserialize_with = "text")]
    slug: Option<String>,
    #[serde(deserialize_with = "text")]
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Assignee {
    #[serde(deserialize_with = "text")]
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    #[serde(rename = "type", deserialize_with = "text")]
    kind: Option<String>,
    #[serde(deserialize_with = "text")]
    value: Option<String>,
    #[serde(deserialize_with = "text")]
    title: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEvent {
    #[serde(deserialize_with = "text")]
    event_id: Option<String>,
    #[serde(deserialize_with = "text")]
    title: Option<String>,
    #[serde(deserialize_with = "text")]
    message: Option<String>,
    #[serde(deserialize_with = "lenient")]
    logentry: Option<LogEntry>,
    #[serde(deserialize_with = "text")]
    culprit: Option<String>,
    #[serde(deserialize_with = "text")]
    transaction: Option<String>,
    #[serde(deserialize_with = "text")]
    level: Option<String>,
    #[serde(deserialize_with = "text")]
    environment: Option<String>,
    #[serde(deserialize_with = "text")]
    release: Option<String>,
    #[serde(deserialize_with = "text")]
    platform: Option<String>,
    /// A number (project id) in stored events, a slug in some older payloads.
    #[serde(deserialize_with = "text")]
    project: Option<String>,
    tags: Value,
    #[serde(deserialize_with = "lenient")]
    metadata: Metadata,
    #[serde(alias = "sentry.interfaces.Exception")]
    exception: Value,
    #[serde(alias = "sentry.interfaces.Stacktrace")]
    stacktrace: Value,
    threads: Value,
    /// Seconds since the epoch (float) or RFC 3339.
    timestamp: Value,
    #[serde(deserialize_with = "text")]
    datetime: Option<String>,
    #[serde(deserialize_with = "text")]
    issue_id: Option<String>,
    #[serde(deserialize_with = "text")]
    group_id: Option<String>,
    #[serde(deserialize_with = "text")]
    web_url: Option<String>,
    /// The event's API URL: `.../api/0/projects/<org>/<project>/events/<id>/`.
    #[serde(deserialize_with = "text")]
    url: Option<String>,
    #[serde(deserialize_with = "text")]
    issue_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LogEntry {
    #[serde(deserialize_with = "text")]
    formatted: Option<String>,
    #[serde(deserialize_with = "text")]
    message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawException {
    #[serde(rename = "type", deserialize_with = "text")]
    kind: Option<String>,
    #[serde(deserialize_with = "text")]
    value: Option<String>,
    #[serde(deserialize_with = "text")]
    module: Option<String>,
    stacktrace: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFrame {
    #[serde(deserialize_with = "text")]
    filename: Option<String>,
    #[serde(deserialize_with = "text")]
    abs_path: Option<String>,
    #[serde(deserialize_with = "lenient")]
    lineno: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    colno: Option<u32>,
    #[serde(deserialize_with = "text")]
    function: Option<String>,
    #[serde(deserialize_with = "text")]
    module: Option<String>,
    #[serde(deserialize_with = "text")]
    context_line: Option<String>,
    #[serde(deserialize_with = "lines")]
    pre_context: Vec<String>,
    #[serde(deserialize_with = "lines")]
    post_context: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LegacyPayload {
    #[serde(deserialize_with = "text")]
    id: Option<String>,
    #[serde(deserialize_with = "text")]
    project: Option<String>,
    #[serde(deserialize_with = "text")]
    project_slug: Option<String>,
    #[serde(deserialize_with = "text")]
    project_name: Option<String>,
    #[serde(deserialize_with = "text")]
    culprit: Option<String>,
    #[serde(deserialize_with = "text")]
    message: Option<String>,
    #[serde(deserialize_with = "text")]
    url: Option<String>,
    #[serde(deserialize_with = "text")]
    level: Option<String>,
    #[serde(deserialize_with = "lenient")]
    event: Option<RawEvent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMetricAlert {
    #[serde(deserialize_with = "text")]
    id: Option<String>,
    #[serde(deserialize_with = "text")]
    title: Option<String>,
    #[serde(deserialize_with = "lines")]
    projects: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    alert_rule: RawAlertRule,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAlertRule {
    #[serde(deserialize_with = "text")]
    id: Option<String>,
    #[serde(deserialize_with = "text")]
    name: Option<String>,
    #[serde(deserialize_with = "text")]
    environment: Option<String>,
    #[serde(deserialize_with = "lines")]
    projects: Vec<String>,
}

/// Any value; one of an unexpected type becomes the default instead of failing the payload.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// A string, or a number/bool as text (ids arrive as both); blank and anything else is `None`.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(as_text(&Value::deserialize(d)?))
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of strings, blank ones kept (they are source lines); other items are skipped.
fn lines<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                other => as_text(other),
            })
            .collect(),
        _ => Vec::new(),
    })
}

// --- building events -----------------------------------------------------------------------------

fn issue_event(issue: &RawIssue, received_at_ms: u64) -> ErrorEvent {
    let title = issue_title(issue);
    let culprit = issue.culprit.as_deref().map(|c| clip(c.trim(), 500));
    let project = issue.project.as_ref().and_then(|p| p.slug.clone().or(p.name.clone()).or(p.id.clone()));
    let project = project.map(|p| clip(p.trim(), 200));
    let fingerprint = match &issue.id {
        Some(id) => Fingerprint::from_id("sentry", id),
        None => hashed_fingerprint("sentry", project.as_deref(), &title, culprit.as_deref(), &[]),
    };
    let exception = issue.metadata.kind.as_ref().map(|kind| ExceptionInfo {
        kind: Some(clip(kind, 200)),
        value: issue.metadata.value.as_deref().map(|v| clip(v, 1_000)),
        module: None,
    });
    ErrorEvent {
        source: Source::Sentry,
        fingerprint,
        title,
        culprit,
        level: issue.level.as_deref().and_then(Level::parse).unwrap_or_default(),
        environment: None,
        release: None,
        project,
        platform: issue.platform.clone(),
        short_id: issue.short_id.clone(),
        event_id: None,
        first_seen_ms: issue.first_seen.as_deref().and_then(parse_rfc3339_ms),
        last_seen_ms: issue.last_seen.as_deref().and_then(parse_rfc3339_ms).unwrap_or(received_at_ms),
        count: issue.count.as_deref().and_then(|c| c.trim().parse().ok()),
        user_count: issue.user_count.as_deref().and_then(|c| c.trim().parse().ok()),
        link: issue_link(issue),
        tags: Vec::new(),
        exception,
        frames: Vec::new(),
    }
}

fn issue_title(issue: &RawIssue) -> String {
    let title = issue.title.clone().or_else(|| match (&issue.metadata.kind, &issue.metadata.value) {
        (Some(kind), Some(value)) => Some(format!("{kind}: {value}")),
        (Some(kind), None) => Some(kind.clone()),
        _ => None,
    });
    clip(title.as_deref().unwrap_or("(untitled issue)").trim(), 1_000)
}

/// The issue's web page: `web_url` (current payloads), `permalink`, or the API `url` rewritten.
fn issue_link(issue: &RawIssue) -> Option<String> {
    issue
        .web_url
        .as_deref()
        .or(issue.permalink.as_deref())
        .map(strip_query)
        .or_else(|| issue.url.as_deref().and_then(web_from_api_url))
}

fn issue_change(issue: &RawIssue, actor: Option<String>, received_at_ms: u64) -> StatusChange {
    let title = issue_title(issue);
    let fingerprint = if let Some(id) = &issue.id {
        Fingerprint::from_id("sentry", id)
    } else {
        let project = issue.project.as_ref().and_then(|p| p.slug.clone());
        hashed_fingerprint("sentry", project.as_deref(), &title, issue.culprit.as_deref(), &[])
    };
    StatusChange { source: Source::Sentry, fingerprint, title, link: issue_link(issue), actor, at_ms: received_at_ms }
}

/// A stored Sentry event (from `event_alert`, `error` or the legacy plugin).
fn event_event(event: &RawEvent, source: Source, project: Option<String>, received_at_ms: u64) -> ErrorEvent {
    let tags = parse_tags(&event.tags);
    let tag = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let exceptions = values::<RawException>(&event.exception);
    let main = exceptions.iter().rev().find(|e| e.kind.is_some() || e.value.is_some());
    let exception = main
        .map(|e| ExceptionInfo {
            kind: e.kind.as_deref().map(|k| clip(k, 200)),
            value: e.value.as_deref().map(|v| clip(v, 1_000)),
            module: e.module.clone(),
        })
        .or_else(|| {
            // Pruned or simplified events still name the exception in `metadata`.
            Some(ExceptionInfo {
                kind: Some(clip(event.metadata.kind.as_deref()?, 200)),
                value: event.metadata.value.as_deref().map(|v| clip(v, 1_000)),
                module: None,
            })
        });
    let platform = event.platform.clone();
    let raw_frames = exceptions
        .iter()
        .rev()
        .map(|e| frames_of(&e.stacktrace))
        .find(|f| !f.is_empty())
        .or_else(|| Some(frames_of(&event.stacktrace)).filter(|f| !f.is_empty()))
        .unwrap_or_else(|| thread_frames(&event.threads));
    let frames = convert_frames(raw_frames, platform.as_deref());

    let title = event
        .title
        .clone()
        .or(event.metadata.title.clone())
        .or_else(|| exception.as_ref().and_then(|e| Some(format!("{}: {}", e.kind.as_ref()?, e.value.as_ref()?))))
        .or_else(|| event.logentry.as_ref().and_then(|l| l.formatted.clone().or(l.message.clone())))
        .or(event.message.clone())
        .unwrap_or_else(|| "(untitled event)".to_owned());
    let title = clip(title.trim(), 1_000);
    let culprit = event.culprit.clone().or(event.transaction.clone()).map(|c| clip(c.trim(), 500));
    let project = project
        .or_else(|| event.url.as_deref().and_then(|u| path_segment_after(u, "/projects/", 1)))
        .or(event.project.clone())
        .map(|p| clip(p.trim(), 200));
    let issue_id = event
        .issue_id
        .clone()
        .or(event.group_id.clone())
        .or_else(|| event.web_url.as_deref().and_then(|u| path_id(u, "/issues/")))
        .or_else(|| event.issue_url.as_deref().and_then(|u| path_id(u, "/issues/")));
    let fingerprint = match &issue_id {
        Some(id) => Fingerprint::from_id("sentry", id),
        None => hashed_fingerprint("sentry", project.as_deref(), &title, culprit.as_deref(), &frames),
    };
    let link =
        event.web_url.as_deref().and_then(issue_page).or_else(|| event.issue_url.as_deref().and_then(web_from_api_url));
    // `datetime` first: it is exact, where the float `timestamp` may round differently from the
    // issue's `lastSeen`.
    let last_seen_ms = event
        .datetime
        .as_deref()
        .and_then(parse_rfc3339_ms)
        .or_else(|| event_time_ms(&event.timestamp))
        .unwrap_or(received_at_ms);
    ErrorEvent {
        source,
        fingerprint,
        title,
        culprit,
        level: event.level.as_deref().or(tag("level").as_deref()).and_then(Level::parse).unwrap_or_default(),
        environment: event.environment.clone().or_else(|| tag("environment")).map(|e| clip(e.trim(), 200)),
        release: event.release.clone().or_else(|| tag("release")).map(|r| clip(r.trim(), 200)),
        project,
        platform,
        short_id: None,
        event_id: event.event_id.clone(),
        first_seen_ms: None,
        last_seen_ms,
        count: None,
        user_count: None,
        link,
        tags,
        exception,
        frames,
    }
}

fn metric_alert(
    alert: RawMetricAlert,
    status: MetricStatus,
    description: Option<String>,
    web_url: Option<&str>,
    received_at_ms: u64,
) -> MetricAlert {
    let rule = alert.alert_rule;
    let title = rule.name.or(alert.title).unwrap_or_else(|| "metric alert".to_owned());
    let title = clip(title.trim(), 500);
    let fingerprint = match (&rule.id, &alert.id) {
        (Some(rule_id), _) => Fingerprint::from_id("sentry:metric-rule", rule_id),
        (None, Some(incident)) => Fingerprint::from_id("sentry:metric-incident", incident),
        (None, None) => Fingerprint::from_hash("sentry:metric", title.as_bytes()),
    };
    // The docs' example shows a literal backslash-n where the real payload has a newline.
    let description = description.map(|d| clip(d.replace("\\n", "\n").trim(), 1_000));
    let projects = if alert.projects.is_empty() { rule.projects } else { alert.projects };
    let projects = projects.into_iter().map(|p| clip(p.trim(), 200)).filter(|p| !p.is_empty()).collect();
    MetricAlert {
        fingerprint,
        title,
        status,
        description,
        projects,
        environment: rule.environment,
        link: web_url.map(strip_query),
        at_ms: received_at_ms,
    }
}

/// `{values:[..]}` or a bare list.
fn values<T: DeserializeOwned + Default>(value: &Value) -> Vec<T> {
    let list = match value {
        Value::Object(map) => map.get("values").and_then(Value::as_array),
        Value::Array(list) => Some(list),
        _ => None,
    };
    list.map(|l| l.iter().map(|v| T::deserialize(v).unwrap_or_default()).collect()).unwrap_or_default()
}

fn frames_of(stacktrace: &Value) -> Vec<RawFrame> {
    match stacktrace.get("frames") {
        Some(Value::Array(frames)) => frames.iter().map(|f| RawFrame::deserialize(f).unwrap_or_default()).collect(),
        _ => Vec::new(),
    }
}

/// The crashed thread's frames, else the first thread's that has any.
fn thread_frames(threads: &Value) -> Vec<RawFrame> {
    let list = match threads {
        Value::Object(map) => map.get("values").and_then(Value::as_array).cloned().unwrap_or_default(),
        Value::Array(list) => list.clone(),
        _ => Vec::new(),
    };
    let crashed = list.iter().find(|t| t.get("crashed").and_then(Value::as_bool) == Some(true));
    crashed
        .into_iter()
        .chain(list.iter())
        .filter_map(|t| t.get("stacktrace"))
        .map(frames_of)
        .find(|f| !f.is_empty())
        .unwrap_or_default()
}

fn convert_frames(raw: Vec<RawFrame>, platform: Option<&str>) -> Vec<Frame> {
    let skip = raw.len().saturating_sub(MAX_FRAMES);
    raw.into_iter()
        .skip(skip)
        .map(|f| {
            let mut pre = f.pre_context;
            pre.drain(..pre.len().saturating_sub(MAX_CONTEXT_LINES));
            let mut post = f.post_context;
            post.truncate(MAX_CONTEXT_LINES);
            let mut frame = Frame {
                filename: f.filename.map(|s| clip(&s, 500)),
                abs_path: f.abs_path.map(|s| clip(&s, 500)),
                lineno: f.lineno,
                colno: f.colno,
                function: f.function.map(|s| clip(&s, 300)),
                module: f.module.map(|s| clip(&s, 300)),
                in_app: false,
                context_line: f.context_line.map(|s| clip(&s, 300)),
                pre_context: pre.iter().map(|s| clip(s, 300)).collect(),
                post_context: post.iter().map(|s| clip(s, 300)).collect(),
            };
            frame.in_app = judge_in_app(&frame, platform);
            frame
        })
        .collect()
}

/// Tags as `[[k, v], ...]` (stored events), `[{key, value}, ...]` (API) or `{k: v}` (SDK).
fn parse_tags(value: &Value) -> Vec<(String, String)> {
    let pairs: Vec<(Option<String>, Option<String>)> = match value {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Array(pair) => (pair.first().and_then(as_text), pair.get(1).and_then(as_text)),
                Value::Object(map) => (map.get("key").and_then(as_text), map.get("value").and_then(as_text)),
                _ => (None, None),
            })
            .collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (Some(k.clone()), as_text(v))).collect(),
        _ => Vec::new(),
    };
    pairs.into_iter().filter_map(|(k, v)| Some((clip(k?.trim(), 64), clip(v?.trim(), 200)))).take(MAX_TAGS).collect()
}

/// Event time: float seconds since the epoch, or RFC 3339 text.
fn event_time_ms(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_f64().filter(|s| s.is_finite() && *s >= 0.0).map(secs_to_ms),
        Value::String(s) => {
            parse_rfc3339_ms(s).or_else(|| s.trim().parse::<f64>().ok().filter(|s| *s >= 0.0).map(secs_to_ms))
        }
        _ => None,
    }
}

#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "checked non-negative; far below u64::MAX")]
fn secs_to_ms(secs: f64) -> u64 {
    (secs * 1_000.0).round() as u64
}

// --- fingerprints --------------------------------------------------------------------------------

/// The fallback fingerprint: project, normalized title and culprit, and the top in-app frame's
/// module (or file) and function; no line numbers, so it survives unrelated edits.
fn hashed_fingerprint(
    namespace: &str,
    project: Option<&str>,
    title: &str,
    culprit: Option<&str>,
    frames: &[Frame],
) -> Fingerprint {
    let top = frames.iter().rev().find(|f| f.in_app).or(frames.last());
    let top = top.map_or_else(String::new, |f| {
        format!(
            "{} {}",
            f.module.as_deref().or(f.filename.as_deref()).or(f.abs_path.as_deref()).unwrap_or_default(),
            f.function.as_deref().unwrap_or_default()
        )
    });
    let material = format!(
        "{}\n{}\n{}\n{}",
        project.unwrap_or_default().trim().to_lowercase(),
        normalize_message(title),
        normalize_message(culprit.unwrap_or_default()),
        top.trim()
    );
    Fingerprint::from_hash(namespace, material.as_bytes())
}

/// Lowercases and replaces what varies between occurrences of one problem — quoted values,
/// UUIDs, hex ids and numbers — with placeholders, collapsing whitespace:
/// `Reverse for 'nope' not found (id 42)` → `reverse for <str> not found (id <n>)`.
pub fn normalize_message(raw: &str) -> String {
    let chars: Vec<char> = raw.trim().chars().collect();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '\'' | '"' | '`')
            && !chars.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric())
            && let Some(len) = chars[i + 1..].iter().take(200).position(|&q| q == c)
        {
            out.push_str("<str>");
            i += len + 2;
            continue;
        }
        if c.is_ascii_hexdigit() && is_uuid_at(&chars, i) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        if c.is_ascii_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            out.push_str(&placeholder(&word));
            continue;
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.extend(c.to_lowercase());
        }
        i += 1;
    }
    out.trim().to_owned()
}

fn is_uuid_at(chars: &[char], start: usize) -> bool {
    let candidate: String = chars[start..].iter().take(36).collect();
    candidate.len() == 36
        && candidate
            .char_indices()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

fn placeholder(word: &str) -> String {
    let has_digit = word.bytes().any(|b| b.is_ascii_digit());
    if let Some(hex) = word.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return "<hex>".to_owned();
    }
    if has_digit
        && word.len() >= 6
        && word.bytes().all(|b| b.is_ascii_hexdigit())
        && !word.bytes().all(|b| b.is_ascii_digit())
    {
        return "<hex>".to_owned();
    }
    // Digit runs inside words too: `user42` → `user<n>`, `500` → `<n>`.
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with("<n>") {
                out.push_str("<n>");
            }
        } else {
            out.push(c);
        }
    }
    out
}

// --- in-app judgement ------------------------------------------------------------------------------

/// Whether a frame is the application's own code, judged from its path, module and function
/// rather than the SDK's `in_app` flag. Not in-app:
/// - no location at all, or a pseudo-file: `<anonymous>`, `<frozen importlib._bootstrap>`,
///   `[native code]`, `native`;
/// - third-party directories: `site-packages`, `dist-packages`, `node_modules`, `bower_components`,
///   `jspm_packages`, `.yarn`, `vendor`, `gems`, `.cargo`, `.rustup`, `pkg/mod` (Go);
/// - runtimes and standard libraries: `lib/pythonX.Y` (and Windows `PythonXY/Lib`), `/usr/lib/`,
///   node's `internal/` and `node:`, bare node core files (`events.js` on platform `node`),
///   `/rustc/<hash>/`, `rustlib`, Go's `go/src`, browser extensions, webpack's bootstrap/runtime;
/// - bundled third-party chunks: `vendor*.js`, `vendors~*`, `chunk-vendors*`, `polyfills*`,
///   `runtime~*`, Next.js `framework-*`;
/// - JVM and .NET framework modules (`java.`, `sun.`, `kotlin.`, `android.`, `org.springframework.`,
///   `System.`, `Microsoft.`, ...) and Rust's `std::`/`core::`/`alloc::` functions.
pub fn judge_in_app(frame: &Frame, platform: Option<&str>) -> bool {
    let paths: Vec<String> = [frame.abs_path.as_deref(), frame.filename.as_deref()]
        .into_iter()
        .flatten()
        .map(|p| p.trim().replace('\\', "/").to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    let module = frame.module.as_deref().map(str::trim).filter(|m| !m.is_empty());
    if paths.is_empty() && module.is_none() {
        return false;
    }
    if paths.iter().any(|p| is_library_path(p, platform)) {
        return false;
    }
    let function = frame.function.as_deref().unwrap_or_default().trim_start_matches('<');
    if ["std::", "core::", "alloc::", "__rust", "rust_begin_unwind"].iter().any(|p| function.starts_with(p)) {
        return false;
    }
    if let Some(module) = module {
        let jvm = platform.is_some_and(|p| {
            matches!(p, "java" | "kotlin" | "scala" | "groovy" | "clojure" | "android" | "csharp" | "dotnet")
        }) || paths
            .iter()
            .any(|p| [".java", ".kt", ".scala", ".groovy", ".clj", ".cs"].iter().any(|e| p.ends_with(e)));
        if jvm && FRAMEWORK_MODULES.iter().any(|prefix| module.starts_with(prefix)) {
            return false;
        }
    }
    true
}

const FRAMEWORK_MODULES: &[&str] = &[
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "groovy.",
    "clojure.",
    "android.",
    "androidx.",
    "dalvik.",
    "com.android.",
    "com.google.android.",
    "org.springframework.",
    "org.apache.",
    "org.hibernate.",
    "org.eclipse.jetty.",
    "io.netty.",
    "reactor.",
    "okhttp3.",
    "System.",
    "Microsoft.",
];

const LIBRARY_SEGMENTS: &[&str] = &[
    "site-packages",
    "dist-packages",
    "node_modules",
    "bower_components",
    "jspm_packages",
    ".yarn",
    ".pnpm",
    "vendor",
    "gems",
    ".cargo",
    ".rustup",
    "rustlib",
    "~", // webpack 1-3 spelled node_modules as `~`
];

const LIBRARY_PREFIXES: &[&str] = &[
    "<",
    "[native code]",
    "node:",
    "/usr/lib/",
    "/rustc/",
    "/usr/local/go/",
    "/usr/lib/go",
    "chrome-extension:",
    "moz-extension:",
    "safari-extension:",
    "safari-web-extension:",
    "webpack/bootstrap",
    "webpack/runtime",
    "webpack:///webpack/",
    "webpack:///(webpack)",
    "webpack-internal:///(webpack)",
    "(webpack)",
];

const BUNDLE_PREFIXES: &[&str] = &[
    "vendor.",
    "vendor-",
    "vendors.",
    "vendors~",
    "vendors-",
    "chunk-vendors",
    "polyfills",
    "runtime~",
    "framework-",
    "framework.",
];

fn is_library_path(path: &str, platform: Option<&str>) -> bool {
    if LIBRARY_PREFIXES.iter().any(|p| path.starts_with(p)) || path == "native" {
        return true;
    }
    // Node's own modules (`internal/timers.js`); Python or Go `internal/` packages are app code.
    if path.starts_with("internal/") && [".js", ".mjs", ".cjs"].iter().any(|e| path.ends_with(e)) {
        return true;
    }
    // Drop a URL's scheme and host so only the path's segments are judged.
    let local = path.split_once("://").map_or(path, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let segments: Vec<&str> = local.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| LIBRARY_SEGMENTS.contains(s)) {
        return true;
    }
    for pair in segments.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let python = |s: &str| s.starts_with("python") && s[6..].starts_with(|c: char| c.is_ascii_digit());
        // lib/python3.8/…, Python38/Lib/…, pkg/mod/… (Go modules), go/src/… (Go's standard library)
        if (a == "lib" && python(b))
            || (python(a) && b == "lib")
            || (a == "pkg" && b == "mod")
            || (a == "go" && b == "src")
        {
            return true;
        }
    }
    if let Some(file) = segments.last()
        && BUNDLE_PREFIXES.iter().any(|p| file.starts_with(p))
        && (matches!(file.rsplit_once('.'), Some((_, "js" | "mjs"))) || path.contains("://"))
    {
        return true;
    }
    // Node core modules appear as bare file names (`events.js`, `timers.js`).
    platform == Some("node") && !path.contains('/')
}

// --- URLs ------------------------------------------------------------------------------------------

fn strip_query(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    clip(url[..end].trim(), 1_000)
}

/// The lowercase `host[:port]` of an absolute URL.
fn host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host = authority.rsplit('@').next()?.to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The id right after `marker` in a URL path (`.../issues/1234/...` → `1234`).
fn path_id(url: &str, marker: &str) -> Option<String> {
    path_segment_after(url, marker, 0).filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// The `n`th path segment after `marker`.
fn path_segment_after(url: &str, marker: &str, n: usize) -> Option<String> {
    let path = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let rest = &path[path.find(marker)? + marker.len()..];
    rest.split('/').nth(n).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An event's `web_url` cut back to its issue page: `.../issues/<id>/events/<eid>/` → `.../issues/<id>/`.
fn issue_page(url: &str) -> Option<String> {
    let url = strip_query(url);
    let start = url.find("/issues/")? + "/issues/".len();
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    (end > start).then(|| format!("{}/", &url[..end]))
}

/// `https://host/api/0/organizations/<org>/issues/<id>/` → `https://host/organizations/<org>/issues/<id>/`.
/// The org-less form (`/api/0/issues/<id>/`) has no web equivalent without the org, so `None`.
fn web_from_api_url(url: &str) -> Option<String> {
    let url = strip_query(url);
    let (base, rest) = url.split_once("/api/0/")?;
    if !rest.starts_with("organizations/") || !rest.contains("/issues/") {
        return None;
    }
    issue_page(&format!("{base}/{rest}"))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::job::{GlitchtipIssueJob, GlitchtipUptimeJob, SentryLegacyJob, SentryWebhookJob};
    use crate::source::glitchtip::{GlitchtipAlert, GlitchtipItem};

    const RECEIVED: u64 = 1_700_000_000_000;

    fn fixtures(dir: &str) -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(dir);
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    fn snapshot_name(path: &Path) -> String {
        let rel = path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")).unwrap();
        rel.with_extension("").to_string_lossy().replace(['/', '\\'], "__")
    }

    /// The Sentry resource a docs/mocks/zulip fixture was delivered as, from its file name.
    fn sentry_job(path: &Path) -> JobKind {
        let name = path.file_stem().unwrap().to_string_lossy();
        let payload = std::fs::read_to_string(path).unwrap();
        if name.starts_with("webhook_event_") {
            return JobKind::SentryLegacy(SentryLegacyJob { payload, pruned: false });
        }
        let resource = ["event_alert", "metric_alert", "issue", "error", "comment", "installation", "seer"]
            .into_iter()
            .find(|r| name.starts_with(r) || (*r == "event_alert" && name.starts_with("event_for_")))
            .unwrap_or_else(|| panic!("no resource for {name}"));
        let action = serde_json::from_str::<Value>(&payload).unwrap()["action"].as_str().unwrap_or_default().to_owned();
        JobKind::SentryWebhook(SentryWebhookJob {
            resource: Resource::from_header(resource),
            action,
            payload,
            pruned: false,
        })
    }

    /// What a fixture normalizes to, serialized in the types' field order for review.
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Outcome {
        Signal(Box<Signal>),
        Error { error: String },
    }

    /// Also checks that every signal survives a JSON round trip (the consumer may store one).
    fn outcome(result: Result<Signal, NormalizeError>) -> Outcome {
        match result {
            Ok(signal) => {
                let back: Signal = serde_json::from_value(serde_json::to_value(&signal).unwrap()).unwrap();
                assert_eq!(back, signal);
                Outcome::Signal(Box::new(signal))
            }
            Err(e) => Outcome::Error { error: e.to_string() },
        }
    }

    #[test]
    fn every_sentry_fixture() {
        let paths = fixtures("sentry");
        assert!(paths.len() >= 28, "{}", paths.len());
        for path in paths {
            let signal = normalize(&sentry_job(&path), RECEIVED);
            insta::assert_json_snapshot!(snapshot_name(&path), outcome(signal));
        }
    }

    /// `GlitchTip`'s test data: stored Sentry events (`event.as_dict()`), which is what Sentry puts
    /// in `data.event`; wrapped here in an `event_alert.triggered` envelope.
    #[test]
    fn every_stored_event_as_an_event_alert() {
        let paths = fixtures("sentry_events/glitchtip_test_data/oss_sentry_json");
        assert_eq!(paths.len(), 7);
        for path in paths {
            let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let payload = serde_json::json!({
                "action": "triggered",
                "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
                "data": {"event": event, "triggered_rule": "fixture rule"},
                "installation": {"uuid": "00000000-0000-0000-0000-000000000000"},
            })
            .to_string();
            let job = JobKind::SentryWebhook(SentryWebhookJob {
                resource: Resource::EventAlert,
                action: "triggered".into(),
                payload,
                pruned: false,
            });
            insta::assert_json_snapshot!(snapshot_name(&path), outcome(normalize(&job, RECEIVED)));
        }
    }

    #[test]
    fn every_glitchtip_fixture() {
        let paths = fixtures("glitchtip");
        assert!(paths.len() >= 6);
        for path in paths {
            let alert = GlitchtipAlert::parse(&std::fs::read(&path).unwrap()).unwrap();
            let signals: Vec<Outcome> = alert
                .items
                .into_iter()
                .map(|item| match item {
                    GlitchtipItem::Issue(issue) => {
                        JobKind::GlitchtipIssue(GlitchtipIssueJob { issue, alert_headline: alert.headline.clone() })
                    }
                    GlitchtipItem::Uptime(uptime) => JobKind::GlitchtipUptime(GlitchtipUptimeJob { uptime }),
                })
                .map(|job| outcome(normalize(&job, RECEIVED)))
                .collect();
            insta::assert_json_snapshot!(snapshot_name(&path), signals);
        }
    }

    fn sentry(resource: &Resource, action: &str, payload: &Value) -> Result<Signal, NormalizeError> {
        sentry_webhook(resource, action, &payload.to_string(), RECEIVED)
    }

    #[test]
    fn one_issue_one_fingerprint_across_resources() {
        let read = |p: &str| {
            std::fs::read_to_string(format!("{}/../fixtures/sentry/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        };
        let created = normalize(
            &sentry_job(Path::new(&format!(
                "{}/../fixtures/sentry/zulip_captured/issue_created_for_exception.json",
                env!("CARGO_MANIFEST_DIR")
            ))),
            RECEIVED,
        )
        .unwrap();
        let alert = sentry_webhook(
            &Resource::EventAlert,
            "triggered",
            &read("zulip_captured/event_for_exception_python.json"),
            RECEIVED,
        )
        .unwrap();
        assert_eq!(created.fingerprint().as_str(), "sentry:1635244907");
        assert_eq!(alert.fingerprint(), created.fingerprint());

        let mock = |p: &str, r: Resource| {
            let action = serde_json::from_str::<Value>(&read(p)).unwrap()["action"].as_str().unwrap().to_owned();
            sentry_webhook(&r, &action, &read(p), RECEIVED).unwrap()
        };
        let fps: Vec<_> = [
            mock("integration_platform_example_mocks/issue_created.json", Resource::Issue),
            mock("integration_platform_example_mocks/issue_resolved.json", Resource::Issue),
            mock("integration_platform_example_mocks/issue_ignored.json", Resource::Issue),
            mock("integration_platform_example_mocks/issue_assigned.json", Resource::Issue),
            mock("integration_platform_example_mocks/event_alert_triggered.json", Resource::EventAlert),
        ]
        .iter()
        .map(|s| s.fingerprint().clone())
        .collect();
        assert!(fps.iter().all(|f| f.as_str() == "sentry:123"), "{fps:?}");
    }

    #[test]
    fn glitchtip_and_sentry_ids_never_collide() {
        let issue = GlitchtipIssue {
            title: "E".into(),
            link: Some("https://GT.example.com:8443/org/issues/123?x=1".into()),
            culprit: None,
            project: None,
            environment: None,
            release: None,
            server_name: None,
            tags: vec![],
        };
        assert_eq!(glitchtip_issue(&issue, 0).fingerprint.as_str(), "glitchtip:gt.example.com:8443:123");
        assert_eq!(glitchtip_issue(&issue, 0).link.as_deref(), Some("https://GT.example.com:8443/org/issues/123"));
        let no_link = GlitchtipIssue { link: None, ..issue };
        assert!(glitchtip_issue(&no_link, 0).fingerprint.as_str().starts_with("glitchtip:h:"));
    }

    #[test]
    fn hash_fingerprint_ignores_what_varies() {
        let event = |title: &str, line: u32| {
            serde_json::json!({"action":"triggered","data":{"event":{
            "title": title, "culprit": "app.views in get", "platform": "python",
            "exception": {"values": [{"type": "KeyError", "stacktrace": {"frames": [
                {"filename": "app/views.py", "abs_path": "/srv/app/views.py", "module": "app.views", "function": "get", "lineno": line},
                {"filename": "dict.py", "abs_path": "/usr/lib/python3.11/dict.py", "function": "getitem", "lineno": 1}
            ]}}]}}}})
        };
        let fp = |v: &Value| sentry(&Resource::EventAlert, "triggered", v).unwrap().fingerprint().clone();
        let a = fp(&event("KeyError: 'user_1f3a9c2e' missing at 0x7ffe12ab (id 42)", 10));
        let b = fp(&event("KeyError: 'user_99' missing at 0x1 (id 7)", 12));
        let c = fp(&event("KeyError: other thing", 10));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.as_str().starts_with("sentry:h:"));
    }

    #[test]
    fn message_normalization() {
        for (raw, want) in [
            ("Reverse for 'nope' not found. 'nope' is not valid", "reverse for <str> not found. <str> is not valid"),
            ("Error: A Generic Error 9371d7", "error: a generic error <hex>"),
            ("id 550e8400-e29b-41d4-a716-446655440000 gone", "id <uuid> gone"),
            ("timeout after 30s on  host-12\n", "timeout after <n>s on host-<n>"),
            ("Can't find \"x\"", "can't find <str>"),
            ("ptr 0xDEADbeef", "ptr <hex>"),
            ("café 12", "café <n>"),
        ] {
            assert_eq!(normalize_message(raw), want, "{raw}");
        }
    }

    #[test]
    fn in_app_judgement() {
        let judge = |abs: &str, platform: &str| {
            let frame = Frame { abs_path: Some(abs.into()), ..Frame::default() };
            judge_in_app(&frame, Some(platform))
        };
        for app in [
            "/code/errors/views.py",
            "/home/me/proj/trigger-exception.py",
            "webpack://small-js-error-factory/./src/index.ts",
            "https://static.jsbin.com/js/prod/runner-4.1.7.min.js",
            "file:///mnt/data/sentry/js/external.js",
            "app:///dist/server.js",
            "/srv/app/src/main.rs",
            "/home/me/liberty/python-tools/app.py",
        ] {
            let platform = if app.rsplit_once('.').is_some_and(|(_, ext)| ext == "js") { "node" } else { "python" };
            assert!(judge(app, platform), "{app}");
        }
        for lib in [
            "/usr/local/lib/python3.8/site-packages/django/core/handlers/base.py",
            "/usr/lib/python3.11/threading.py",
            "/opt/venv/lib/python3.12/json/decoder.py",
            "C:\\Python38\\Lib\\threading.py",
            "/srv/app/node_modules/express/lib/router/index.js",
            "node:internal/process/task_queues",
            "internal/timers.js",
            "<anonymous>",
            "<frozen importlib._bootstrap>",
            "[native code]",
            "webpack:///webpack/bootstrap",
            "webpack-internal:///./node_modules/react-dom/cjs/react-dom.development.js",
            "/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/panicking.rs",
            "/home/me/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.0.0/src/lib.rs",
            "/usr/local/go/src/net/http/server.go",
            "/home/app/go/pkg/mod/github.com/gin-gonic/gin@v1.9.0/context.go",
            "/app/vendor/laravel/framework/src/Illuminate/Foundation/Application.php",
            "/usr/local/bundle/gems/rack-2.2.3/lib/rack.rb",
            "http://localhost:4201/polyfills.js",
            "http://localhost:4201/vendor.js",
            "https://example.com/_next/static/chunks/framework-2c79e2a64abdb08b.js",
            "chrome-extension://abc/content.js",
        ] {
            assert!(!judge(lib, "python"), "{lib}");
        }
        assert!(!judge("events.js", "node"));
        assert!(judge("trigger-exception.py", "python"));
        let java = |module: &str| {
            let frame = Frame { module: Some(module.into()), filename: Some("X.java".into()), ..Frame::default() };
            judge_in_app(&frame, Some("java"))
        };
        assert!(!java("java.lang.Thread"));
        assert!(!java("org.springframework.web.servlet.DispatcherServlet"));
        assert!(java("com.acme.billing.Invoice"));
        let rust =
            Frame { function: Some("core::panicking::panic".into()), module: Some("core".into()), ..Frame::default() };
        assert!(!judge_in_app(&rust, Some("native")));
        assert!(!judge_in_app(&Frame { function: Some("main".into()), ..Frame::default() }, None));
    }

    #[test]
    fn lenient_about_types_strict_about_shape() {
        // Numbers where strings are expected, strings where numbers are, junk in frames.
        let odd = serde_json::json!({"action":"triggered","data":{"event":{
            "title": 42, "level": "WARN", "issue_id": 77, "timestamp": "2020-01-01T00:00:00Z",
            "tags": {"environment": "prod", "n": 3},
            "exception": [{"type": "E", "stacktrace": {"frames": [{"lineno": "x", "filename": "a.py"}, 7]}}]}}});
        let Ok(Signal::Occurrence(e)) = sentry(&Resource::EventAlert, "triggered", &odd) else { panic!() };
        assert_eq!((e.title.as_str(), e.level, e.fingerprint.as_str()), ("42", Level::Warning, "sentry:77"));
        assert_eq!(e.last_seen_ms, 1_577_836_800_000);
        assert_eq!(e.environment.as_deref(), Some("prod"));
        assert_eq!(e.frames.len(), 2);
        assert_eq!(e.frames[0].lineno, None);

        assert!(matches!(
            sentry(&Resource::Issue, "created", &serde_json::json!({"data":{}})),
            Err(NormalizeError::Missing { .. })
        ));
        assert!(matches!(
            sentry(&Resource::Issue, "exploded", &serde_json::json!({"data":{"issue":{}}})),
            Err(NormalizeError::UnsupportedAction { .. })
        ));
        assert!(matches!(sentry_webhook(&Resource::Issue, "created", "{", 0), Err(NormalizeError::Json(_))));
        assert!(matches!(
            sentry(&Resource::Comment, "created", &serde_json::json!({})),
            Err(NormalizeError::NotActionable(_))
        ));
        assert!(matches!(normalize(&JobKind::Unknown, 0), Err(NormalizeError::NotAnErrorJob("unknown"))));
        assert!(matches!(sentry_legacy("{}", 0), Err(NormalizeError::Missing { .. })));
    }

    #[test]
    fn frames_are_capped_on_the_crash_side() {
        let frames: Vec<Value> =
            (0..150).map(|i| serde_json::json!({"filename": format!("f{i}.py"), "lineno": i})).collect();
        let v = serde_json::json!({"action":"triggered","data":{"event":{"title":"t","exception":{"values":[{"stacktrace":{"frames":frames}}]}}}});
        let Ok(Signal::Occurrence(e)) = sentry(&Resource::EventAlert, "triggered", &v) else { panic!() };
        assert_eq!(e.frames.len(), MAX_FRAMES);
        assert_eq!(e.frames.last().unwrap().lineno, Some(149));
    }

    #[test]
    fn uptime_states() {
        let up = |m: &str| {
            glitchtip_uptime(&GlitchtipUptime { monitor: "M".into(), link: None, message: Some(m.into()) }, 0).state
        };
        assert_eq!(up("The monitored site has gone down."), UptimeState::Down);
        assert_eq!(up("The monitored site is back up."), UptimeState::Up);
        assert_eq!(up("???"), UptimeState::Down);
    }

    #[test]
    fn links_point_at_the_issue_page() {
        assert_eq!(
            issue_page("https://sentry.io/organizations/o/issues/1/events/abc/?q=1").as_deref(),
            Some("https://sentry.io/organizations/o/issues/1/")
        );
        assert_eq!(
            web_from_api_url("https://sentry.io/api/0/organizations/o/issues/9/").as_deref(),
            Some("https://sentry.io/organizations/o/issues/9/")
        );
        assert_eq!(web_from_api_url("https://sentry.io/api/0/issues/9/"), None);
        assert_eq!(clip("héllo", 3), "hé…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
