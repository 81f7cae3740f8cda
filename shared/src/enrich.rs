//! Enrichment before filing (issue 16.1): deliveries that carry no stack trace (GlitchTip alerts,
//! Sentry `issue` webhooks, a pruned legacy-plugin event) are completed from the issue's latest
//! event and its details in the Sentry-compatible REST API (`GET /api/0/issues/{id}/events/latest/`
//! and `GET /api/0/issues/{id}/`, served by Sentry and GlitchTip alike). The consumer fetches;
//! this module decides whether to, and merges what came back into the [`ErrorEvent`], bounded.
//!
//! The API's event shape is camelCase with `entries[]` (`exception`, `breadcrumbs`, `request`) and
//! `tags[]` of `{key, value}`; [`crate::frames::event_frames`] reads its frames. Everything in it is
//! untrusted: every string is clipped here and escaped where it is rendered.

use std::fmt::Write as _;

use serde_json::Value;

use crate::event::{ErrorEvent, ExceptionInfo, Frame, Source, parse_rfc3339_ms};
use crate::frames::event_frames;
use crate::packet::inline;
use crate::report::clip;

/// At most this many frames are kept (the crash end), as normalization keeps.
const MAX_FRAMES: usize = 100;
const MAX_TAGS: usize = 50;
/// The last breadcrumbs shown in the issue.
pub const MAX_BREADCRUMBS: usize = 10;

/// Whether a delivery lacks what the latest event would add: an error source the REST API knows
/// (Sentry, the legacy plugin, GlitchTip) and no frames.
pub fn needs_latest_event(event: &ErrorEvent) -> bool {
    matches!(event.source, Source::Sentry | Source::SentryLegacy | Source::Glitchtip)
        && event.frames.is_empty()
        && source_issue_id(event).is_some()
}

/// The source's issue id: the number after `/issues/` in the issue link, else the id of a
/// `sentry:<digits>` fingerprint. Only digits: it goes into an API path.
pub fn source_issue_id(event: &ErrorEvent) -> Option<String> {
    let from_link = event.link.as_deref().and_then(|link| {
        let (_, rest) = link.split_once("/issues/")?;
        let id = rest.split(['/', '?', '#']).next()?;
        Some(id.to_owned())
    });
    let from_fingerprint = || {
        let fp = event.fingerprint.as_str();
        fp.strip_prefix("sentry:").map(str::to_owned)
    };
    from_link
        .or_else(from_fingerprint)
        .filter(|id| !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
}

/// The origin (`https://host[:port]`) of the issue link: the default API base of a self-hosted
/// GlitchTip.
pub fn link_origin(event: &ErrorEvent) -> Option<String> {
    let link = event.link.as_deref()?;
    let (scheme, rest) = link.split_once("://")?;
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    matches!(scheme, "http" | "https").then(|| format!("{scheme}://{host}"))
}

/// What the issue's details add: counts and times (RFC 3339 text as the API gives it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueFacts {
    pub count: Option<u64>,
    pub user_count: Option<u64>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub short_id: Option<String>,
    pub culprit: Option<String>,
}

/// Fills what the delivery did not say from the issue's details.
pub fn apply_issue_facts(event: &mut ErrorEvent, facts: &IssueFacts) {
    event.count = event.count.or(facts.count);
    event.user_count = event.user_count.or(facts.user_count);
    if event.first_seen_ms.is_none() {
        event.first_seen_ms = facts.first_seen.as_deref().and_then(parse_rfc3339_ms);
    }
    if let Some(last) = facts.last_seen.as_deref().and_then(parse_rfc3339_ms) {
        event.last_seen_ms = event.last_seen_ms.max(last);
    }
    if event.short_id.is_none() {
        event.short_id = facts.short_id.as_deref().map(|s| clip(s.trim(), 64)).filter(|s| !s.is_empty());
    }
    if event.culprit.is_none() {
        event.culprit = facts.culprit.as_deref().map(|c| clip(c.trim(), 500)).filter(|c| !c.is_empty());
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The raised exception (the last value of a chain) of an API or SDK event.
fn exception_of(latest: &Value) -> Option<ExceptionInfo> {
    let mut values: Vec<&Value> = Vec::new();
    values.extend(latest.pointer("/exception/values").and_then(Value::as_array).into_iter().flatten());
    for entry in latest.get("entries").and_then(Value::as_array).into_iter().flatten() {
        if entry.get("type").and_then(Value::as_str) == Some("exception") {
            values.extend(entry.pointer("/data/values").and_then(Value::as_array).into_iter().flatten());
        }
    }
    let raised = values.iter().rev().find(|v| v.get("type").is_some() || v.get("value").is_some());
    let (kind, value, module) = match raised {
        Some(v) => (text(v.get("type")), text(v.get("value")), text(v.get("module"))),
        None => (text(latest.pointer("/metadata/type")), text(latest.pointer("/metadata/value")), None),
    };
    (kind.is_some() || value.is_some()).then(|| ExceptionInfo {
        kind: kind.map(|k| clip(&k, 200)),
        value: value.map(|v| clip(&v, 1_000)),
        module: module.map(|m| clip(&m, 300)),
    })
}

/// `[{key, value}]` (API), `[[k, v]]` (stored) or `{k: v}` (SDK).
fn tags_of(latest: &Value) -> Vec<(String, String)> {
    let pairs: Vec<(Option<String>, Option<String>)> = match latest.get("tags") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Array(pair) => (text(pair.first()), text(pair.get(1))),
                Value::Object(_) => (text(item.get("key")), text(item.get("value"))),
                _ => (None, None),
            })
            .collect(),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (Some(k.clone()), text(Some(v)))).collect(),
        _ => Vec::new(),
    };
    pairs.into_iter().filter_map(|(k, v)| Some((clip(&k?, 64), clip(&v?, 200)))).take(MAX_TAGS).collect()
}

fn bounded(mut frame: Frame) -> Frame {
    let c = |s: Option<String>, n: usize| s.map(|s| clip(&s, n));
    frame.filename = c(frame.filename, 500);
    frame.abs_path = c(frame.abs_path, 500);
    frame.function = c(frame.function, 300);
    frame.module = c(frame.module, 300);
    frame.context_line = c(frame.context_line, 300);
    let keep = frame.pre_context.len().saturating_sub(5);
    frame.pre_context = frame.pre_context.split_off(keep).iter().map(|s| clip(s, 300)).collect();
    frame.post_context.truncate(5);
    frame.post_context = frame.post_context.iter().map(|s| clip(s, 300)).collect();
    frame
}

/// Merges the latest event into `event`: frames (when the delivery had none), the exception,
/// platform, release, environment, event id, and tags the delivery did not carry. What the
/// delivery said wins.
pub fn apply_latest_event(event: &mut ErrorEvent, latest: &Value) {
    if event.frames.is_empty() {
        let frames = event_frames(latest);
        let skip = frames.len().saturating_sub(MAX_FRAMES);
        event.frames = frames.into_iter().skip(skip).map(bounded).collect();
    }
    if event.exception.is_none() {
        event.exception = exception_of(latest);
    }
    let tags = tags_of(latest);
    let tag = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    if event.platform.is_none() {
        event.platform = text(latest.get("platform")).map(|p| clip(&p, 40));
    }
    if event.release.is_none() {
        // The API gives `release` as an object (`{version, ...}`) or null; SDK events as text.
        let release = text(latest.pointer("/release/version")).or_else(|| text(latest.get("release")));
        event.release = release.or_else(|| tag("release")).map(|r| clip(&r, 200));
    }
    if event.environment.is_none() {
        event.environment = text(latest.get("environment")).or_else(|| tag("environment")).map(|e| clip(&e, 200));
    }
    if event.event_id.is_none() {
        event.event_id = text(latest.get("eventID")).or_else(|| text(latest.get("event_id"))).map(|e| clip(&e, 64));
    }
    if event.culprit.is_none() {
        event.culprit = text(latest.get("culprit")).map(|c| clip(&c, 500));
    }
    for (k, v) in tags {
        if event.tags.len() >= MAX_TAGS {
            break;
        }
        if !event.tags.iter().any(|(key, _)| *key == k) {
            event.tags.push((k, v));
        }
    }
}

/// One breadcrumb, clipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breadcrumb {
    pub timestamp: Option<String>,
    pub category: Option<String>,
    pub level: Option<String>,
    pub message: String,
}

/// The last `max` breadcrumbs of an API or SDK event, oldest first.
pub fn breadcrumbs(latest: &Value, max: usize) -> Vec<Breadcrumb> {
    let mut values: Vec<&Value> = Vec::new();
    values.extend(latest.pointer("/breadcrumbs/values").and_then(Value::as_array).into_iter().flatten());
    for entry in latest.get("entries").and_then(Value::as_array).into_iter().flatten() {
        if entry.get("type").and_then(Value::as_str) == Some("breadcrumbs") {
            values.extend(entry.pointer("/data/values").and_then(Value::as_array).into_iter().flatten());
        }
    }
    let skip = values.len().saturating_sub(max);
    values
        .into_iter()
        .skip(skip)
        .map(|b| {
            let message = text(b.get("message"))
                .or_else(|| b.get("data").filter(|d| d.is_object()).map(|d| clip(&d.to_string(), 200)))
                .unwrap_or_default();
            let timestamp = match b.get("timestamp") {
                Some(Value::Number(n)) => n.as_f64().map(|s| format!("{s:.3}")),
                other => text(other),
            };
            Breadcrumb {
                timestamp: timestamp.map(|t| clip(&t, 40)),
                category: text(b.get("category")).map(|c| clip(&c, 60)),
                level: text(b.get("level")).map(|l| clip(&l, 20)),
                message: clip(&message, 200),
            }
        })
        .collect()
}

/// Whether the breadcrumbs are logs about this error (confidence's "matching logs"): a log or
/// error-level breadcrumb, or one naming the exception type or its message.
pub fn logs_match(crumbs: &[Breadcrumb], event: &ErrorEvent) -> bool {
    let needles: Vec<String> = event
        .exception
        .iter()
        .flat_map(|e| [e.kind.as_deref(), e.value.as_deref()])
        .flatten()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| t.len() >= 4)
        .collect();
    crumbs.iter().any(|b| {
        let message = b.message.to_lowercase();
        matches!(b.level.as_deref(), Some("error" | "fatal" | "critical"))
            || (b.category.as_deref() == Some("log") && matches!(b.level.as_deref(), Some("warning" | "error")))
            || needles.iter().any(|n| message.contains(n.as_str()))
    })
}

/// The "Breadcrumbs" section of the issue body (empty when there are none): one escaped line each.
pub fn breadcrumbs_markdown(crumbs: &[Breadcrumb]) -> String {
    if crumbs.is_empty() {
        return String::new();
    }
    let mut out = format!("\n### Last breadcrumbs (oldest first, at most {MAX_BREADCRUMBS})\n");
    for b in crumbs {
        let mut head: Vec<String> = Vec::new();
        head.extend(b.timestamp.as_deref().map(inline));
        head.extend(b.level.as_deref().map(inline));
        head.extend(b.category.as_deref().map(|c| format!("**{}**", inline(c))));
        let _ = writeln!(out, "- {} {}", head.join(" "), inline(&b.message));
    }
    out
}

/// The line the issue carries when the latest event could not be fetched.
pub fn not_enriched_markdown(source: Source, reason: &str) -> String {
    format!(
        "\n> bugbot could not fetch the latest event from {} ({}): this issue was filed without it.\n",
        source.product(),
        inline(&clip(reason, 200))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Fingerprint;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../fixtures/sentry_events/glitchtip_test_data/oss_sentry_events/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn glitchtip_alert() -> ErrorEvent {
        ErrorEvent {
            link: Some("https://glitchtip.example.com/acme/issues/1234?project=2".into()),
            ..ErrorEvent::bare(
                Source::Glitchtip,
                Fingerprint::from_id("glitchtip:glitchtip.example.com", "1234"),
                "ZeroDivisionError: division by zero".into(),
                None,
                5,
            )
        }
    }

    #[test]
    fn which_events_are_enriched_and_from_where() {
        let event = glitchtip_alert();
        assert!(needs_latest_event(&event));
        assert_eq!(source_issue_id(&event).as_deref(), Some("1234"));
        assert_eq!(link_origin(&event).as_deref(), Some("https://glitchtip.example.com"));
        let sentry = ErrorEvent::bare(Source::Sentry, Fingerprint::from_id("sentry", "42"), "t".into(), None, 0);
        assert_eq!(source_issue_id(&sentry).as_deref(), Some("42"));
        // An id that is not a number never reaches an API path.
        let hostile = ErrorEvent {
            link: Some("https://x/issues/..%2f..%2fadmin/".into()),
            ..ErrorEvent::bare(Source::Glitchtip, Fingerprint::from_hash("glitchtip", b"x"), "t".into(), None, 0)
        };
        assert_eq!(source_issue_id(&hostile), None);
        assert!(!needs_latest_event(&hostile));
        let slack = ErrorEvent::bare(Source::Slack, Fingerprint::from_id("sentry", "42"), "t".into(), None, 0);
        assert!(!needs_latest_event(&slack));
    }

    #[test]
    fn the_latest_event_fills_the_stack_tags_and_facts() {
        let mut event = glitchtip_alert();
        let latest = fixture("python_zero_division");
        apply_latest_event(&mut event, &latest);
        apply_issue_facts(
            &mut event,
            &IssueFacts {
                count: Some(12),
                user_count: Some(3),
                first_seen: Some("2020-05-01T10:00:00Z".into()),
                last_seen: Some("2020-05-02T16:54:20Z".into()),
                short_id: Some("BACKEND-7".into()),
                culprit: None,
            },
        );
        let top = event.top_in_app_frames(1);
        assert_eq!(top[0].location(), "errors/views.py:18", "{:?}", event.frames);
        assert_eq!(event.exception.as_ref().and_then(|e| e.kind.as_deref()), Some("ZeroDivisionError"));
        assert_eq!(event.tag("browser.name"), Some("Firefox"));
        assert_eq!((event.count, event.user_count, event.short_id.as_deref()), (Some(12), Some(3), Some("BACKEND-7")));
        assert_eq!(event.first_seen_ms, Some(1_588_327_200_000));
        assert!(!needs_latest_event(&event), "a second fetch is never needed");
        let body = crate::report::issue_body_markdown(&event);
        assert!(body.contains("errors/views.py:18"), "{body}");
        assert!(!body.contains("sent no stack trace"), "{body}");
    }

    #[test]
    fn breadcrumbs_are_bounded_and_escaped() {
        let values: Vec<Value> = (0..30)
            .map(|i| {
                serde_json::json!({"timestamp": "2020-05-02T16:54:20Z", "category": "http", "level": "info",
                    "message": format!("GET /x/{i} <script>alert(1)</script> @everyone [a](http://evil) {}", "y".repeat(500))})
            })
            .collect();
        let latest = serde_json::json!({"entries": [{"type": "breadcrumbs", "data": {"values": values}}]});
        let crumbs = breadcrumbs(&latest, MAX_BREADCRUMBS);
        assert_eq!(crumbs.len(), MAX_BREADCRUMBS);
        assert!(crumbs[0].message.starts_with("GET /x/20"), "the last ten, oldest first");
        let md = breadcrumbs_markdown(&crumbs);
        assert!(!md.contains("<script>") && !md.contains(" [a](http") && !md.contains(" @everyone"), "{md}");
        assert!(md.lines().all(|l| l.chars().count() < 300), "{md}");
        assert_eq!(breadcrumbs_markdown(&[]), "");
        let note = not_enriched_markdown(Source::Glitchtip, "timed out after 3000 ms");
        assert!(note.contains("GlitchTip") && note.contains("filed without it"), "{note}");
    }
}
