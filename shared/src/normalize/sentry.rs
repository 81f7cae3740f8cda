//! Sentry: integration-platform webhooks (`issue`, `event_alert`, `error`, `metric_alert`) and the
//! legacy `WebHooks` plugin, from lenient raw payloads to events.

#[allow(clippy::wildcard_imports)]
use super::*;

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
