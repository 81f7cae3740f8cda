//! `CloudWatch` Logs scans: the `FilterLogEvents` wire types
//! (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html>),
//! the per-log-group cursor, and log events grouped into error events.
//!
//! # No gap, no repeat
//! A scan covers the window `[from_ms, to_ms)` of one log group. `to_ms` is fixed (and stored in the
//! cursor as `pending_to_ms`) *before* the first request, so a scan that fails half-way and is run
//! again reads exactly the same window, groups the same events the same way and so queues jobs with
//! the same ids, which the consumer's delivery claim drops. Only when every job of the window is
//! queued does the cursor move to `from_ms = to_ms`. Windows are contiguous, so nothing is skipped;
//! `to_ms` lags the clock by [`DEFAULT_LAG_MS`] so that events still being ingested are not missed.

use serde::{Deserialize, Serialize};

use crate::event::{ErrorEvent, Fingerprint, Level, Source};
use crate::job::{CloudwatchGroupJob, Job, JobId, JobKind};
use crate::report::clip;
use crate::stacktrace;
use crate::verify::sha256_hex;

/// `X-Amz-Target` of the call.
pub const TARGET: &str = "Logs_20140328.FilterLogEvents";
/// Its content type (AWS JSON 1.1).
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The default filter: any of the words (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html>).
pub const DEFAULT_FILTER_PATTERN: &str = "?ERROR ?Exception ?Traceback";
/// How far behind the clock a window ends: `CloudWatch` may take a while to make events searchable.
pub const DEFAULT_LAG_MS: u64 = 5 * 60 * 1000;
/// The first scan of a log group looks back this far.
pub const FIRST_LOOKBACK_MS: u64 = 60 * 60 * 1000;
/// Pages read per window before the scan gives up (and tries the same window next time).
pub const MAX_PAGES: usize = 50;
/// Groups (jobs) queued per window at most; the rest are counted in the last one.
pub const MAX_GROUPS: usize = 50;

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsRequest {
    pub log_group_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_pattern: Option<String>,
    pub start_time: u64,
    pub end_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub limit: u32,
}

/// The response body (lenient).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsResponse {
    #[serde(default)]
    pub events: Vec<LogEvent>,
    #[serde(default)]
    pub next_token: Option<String>,
}

/// One matched event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    #[serde(default)]
    pub event_id: String,
    #[serde(default)]
    pub log_stream_name: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub timestamp: u64,
}

/// Where a log group's scans stand, kept in KV as [`cursor_key`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Everything before this (unix ms) has been scanned.
    pub from_ms: u64,
    /// The end of a window that was started but not finished: the next scan repeats it exactly.
    #[serde(default)]
    pub pending_to_ms: Option<u64>,
}

/// The KV key of a log group's cursor.
pub fn cursor_key(log_group: &str) -> String {
    format!("cwcursor:{}", &sha256_hex(log_group.as_bytes())[..32])
}

impl Cursor {
    /// The window to scan now: the pending one if a scan was interrupted, else from the cursor (or an
    /// hour back, the first time) to `now - lag`. `None` when there is nothing new yet.
    pub fn window(stored: Option<&Self>, now_ms: u64, lag_ms: u64) -> Option<(u64, u64)> {
        let end = now_ms.saturating_sub(lag_ms);
        match stored {
            Some(Self { from_ms, pending_to_ms: Some(to) }) => Some((*from_ms, *to)),
            Some(Self { from_ms, pending_to_ms: None }) => (*from_ms < end).then_some((*from_ms, end)),
            None => Some((end.saturating_sub(FIRST_LOOKBACK_MS), end)),
        }
    }
}

/// Events of one window grouped by what they say: one error event each, the first occurrence's
/// stack trace parsed into frames, with the count of events in the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub event: ErrorEvent,
    /// Event ids in the group (sorted), for the job id.
    pub event_ids: Vec<String>,
}

/// Groups a window's events. Deterministic: the same events give the same groups in the same order.
pub fn group(log_group: &str, region: &str, events: &[LogEvent]) -> Vec<Group> {
    let mut sorted: Vec<&LogEvent> = events.iter().collect();
    sorted.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
    sorted.dedup_by(|a, b| a.event_id == b.event_id && !a.event_id.is_empty());
    let mut groups: Vec<(Fingerprint, Group)> = Vec::new();
    for event in sorted {
        let built = to_event(log_group, region, event);
        if let Some((_, existing)) = groups.iter_mut().find(|(fp, _)| *fp == built.fingerprint) {
            existing.event.count = Some(existing.event.count.unwrap_or(1) + 1);
            existing.event.last_seen_ms = existing.event.last_seen_ms.max(event.timestamp);
            existing.event_ids.push(event.event_id.clone());
            continue;
        }
        if groups.len() == MAX_GROUPS {
            // Past the cap: counted in the last group rather than lost.
            if let Some((_, last)) = groups.last_mut() {
                last.event.count = Some(last.event.count.unwrap_or(1) + 1);
                last.event_ids.push(event.event_id.clone());
            }
            continue;
        }
        groups.push((built.fingerprint.clone(), Group { event: built, event_ids: vec![event.event_id.clone()] }));
    }
    groups
        .into_iter()
        .map(|(_, mut g)| {
            g.event_ids.sort();
            g
        })
        .collect()
}

/// One log event as an error event: the title is the exception line when a stack trace is found,
/// else the message's first line without its log prefix (timestamp, request id, level).
fn to_event(log_group: &str, region: &str, event: &LogEvent) -> ErrorEvent {
    let message = event.message.replace('\r', "\n");
    let trace = stacktrace::parse(&message);
    let first_line = message.lines().map(strip_prefix).find(|l| !l.is_empty()).unwrap_or("(empty log event)");
    let exception = trace.as_ref().and_then(|t| t.exception.clone());
    let title = match &exception {
        Some(e) => match (&e.kind, &e.value) {
            (Some(kind), Some(value)) => format!("{kind}: {value}"),
            (Some(kind), None) => kind.clone(),
            _ => first_line.to_owned(),
        },
        None => first_line.to_owned(),
    };
    let title = clip(&title, 200);
    let frames = trace.as_ref().map(|t| t.frames.clone()).unwrap_or_default();
    let material = stacktrace::fingerprint_material(&title, exception.as_ref(), &frames);
    let fingerprint = Fingerprint::from_hash(&format!("cloudwatch:{log_group}"), material.as_bytes());
    let lower = first_line.to_ascii_lowercase();
    let level = if lower.contains("critical") || lower.contains("fatal") {
        Level::Fatal
    } else if lower.contains("warn") && trace.is_none() && !lower.contains("error") {
        Level::Warning
    } else {
        Level::Error
    };
    let link = format!(
        "https://console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}",
        console_escape(log_group)
    );
    ErrorEvent {
        level,
        culprit: (first_line != title).then(|| clip(first_line, 200)),
        platform: trace.as_ref().map(|t| t.platform.to_owned()),
        project: Some(log_group.to_owned()),
        event_id: Some(event.event_id.clone()).filter(|e| !e.is_empty()),
        first_seen_ms: Some(event.timestamp),
        count: Some(1),
        tags: vec![
            ("log_group".to_owned(), log_group.to_owned()),
            ("log_stream".to_owned(), clip(&event.log_stream_name, 200)),
        ],
        exception,
        frames,
        ..ErrorEvent::bare(Source::Cloudwatch, fingerprint, title, Some(link), event.timestamp)
    }
}

/// Drops what log libraries put before the message: Lambda's `[ERROR]\t2024-…Z\t<request id>\t`,
/// an ISO timestamp, a level word.
fn strip_prefix(line: &str) -> &str {
    let mut rest = line.trim();
    loop {
        let before = rest;
        if let Some(r) = rest.strip_prefix('[').and_then(|r| r.split_once(']')).map(|(_, r)| r) {
            rest = r.trim_start();
        }
        let first = rest.split(['\t', ' ']).next().unwrap_or_default();
        let is_time =
            first.len() >= 10 && first.as_bytes()[4] == b'-' && first[..4].bytes().all(|b| b.is_ascii_digit());
        let is_uuid = first.len() == 36 && first.bytes().filter(|b| *b == b'-').count() == 4;
        let is_level =
            matches!(first.trim_end_matches(':'), "ERROR" | "WARN" | "WARNING" | "INFO" | "CRITICAL" | "FATAL");
        if !first.is_empty() && (is_time || is_uuid || is_level) && first.len() < rest.len() {
            rest = rest[first.len()..].trim_start();
        }
        if rest == before {
            return rest;
        }
    }
}

/// The console's escaping of a log group name in its URL fragment (`/` → `$252F`).
fn console_escape(name: &str) -> String {
    name.replace('$', "$2524").replace('/', "$252F")
}

/// A window's groups as queue jobs, with ids fixed by the log group, the window and the events, so
/// a repeated window queues the same ids.
pub fn jobs(log_group: &str, window: (u64, u64), groups: Vec<Group>, now_ms: u64) -> Vec<Job> {
    groups
        .into_iter()
        .map(|g| {
            let material = format!("{log_group}\n{}\n{}\n{}", window.0, window.1, g.event_ids.join(","));
            let id = JobId::hashed("cloudwatch", &sha256_hex(material.as_bytes()), 0);
            Job::new(id, now_ms, None, JobKind::CloudwatchGroup(CloudwatchGroupJob { event: g.event }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_dropped() {
        assert_eq!(
            strip_prefix("[ERROR]\t2024-05-09T10:00:00.123Z\t3f1c2b9e-1d2a-4c5b-9e8f-0a1b2c3d4e5f\tKeyError: 'id'"),
            "KeyError: 'id'"
        );
        assert_eq!(strip_prefix("2024-05-09 10:00:00,123 ERROR payment failed"), "10:00:00,123 ERROR payment failed");
        assert_eq!(strip_prefix("ERROR: payment failed"), "payment failed");
        assert_eq!(strip_prefix("plain"), "plain");
    }

    #[test]
    fn windows_are_contiguous_and_a_pending_one_is_repeated() {
        let lag = DEFAULT_LAG_MS;
        let now = 10 * FIRST_LOOKBACK_MS;
        assert_eq!(Cursor::window(None, now, lag), Some((now - lag - FIRST_LOOKBACK_MS, now - lag)));
        let done = Cursor { from_ms: now - lag, pending_to_ms: None };
        assert_eq!(Cursor::window(Some(&done), now, lag), None, "nothing new yet");
        assert_eq!(Cursor::window(Some(&done), now + 1000, lag), Some((now - lag, now - lag + 1000)));
        let pending = Cursor { from_ms: 5, pending_to_ms: Some(9) };
        assert_eq!(Cursor::window(Some(&pending), now + 99_999, lag), Some((5, 9)));
    }
}
