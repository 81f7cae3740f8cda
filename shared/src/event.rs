//! The normalized error event: one shape for every source, and the [`Signal`] a delivery means.
//!
//! [`crate::normalize`] builds these from the raw payloads of [`crate::source`]; everything after
//! it (filter, claim, file, announce) reads only these types. Times are unix milliseconds (UTC):
//! they compare and subtract without parsing, and [`format_rfc3339_ms`] renders them.
//!
//! Modelled on Sentry's event and issue payloads:
//! <https://develop.sentry.dev/sdk/data-model/event-payloads/> and
//! <https://docs.sentry.io/organization/integrations/integration-platform/webhooks/issues/>.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Sentry integration-platform webhooks (`issue`, `event_alert`, `error`, `metric_alert`).
    Sentry,
    /// Sentry's legacy unsigned `WebHooks` plugin.
    SentryLegacy,
    /// A `GlitchTip` issue alert.
    Glitchtip,
    /// A `GlitchTip` uptime monitor alert.
    GlitchtipUptime,
    /// A message in a Slack alert channel.
    Slack,
    /// Errors found in `CloudWatch` Logs.
    Cloudwatch,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sentry => "sentry",
            Self::SentryLegacy => "sentry_legacy",
            Self::Glitchtip => "glitchtip",
            Self::GlitchtipUptime => "glitchtip_uptime",
            Self::Slack => "slack",
            Self::Cloudwatch => "cloudwatch",
        }
    }

    /// The product name, for links and labels ("View in Sentry").
    pub fn product(self) -> &'static str {
        match self {
            Self::Sentry | Self::SentryLegacy => "Sentry",
            Self::Glitchtip | Self::GlitchtipUptime => "GlitchTip",
            Self::Slack => "Slack",
            Self::Cloudwatch => "CloudWatch",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity, ordered from least to most severe, as Sentry names it
/// (<https://develop.sentry.dev/sdk/data-model/event-payloads/#optional-attributes>).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    #[default]
    Error,
    Fatal,
}

impl Level {
    /// Lenient: any case, common aliases (`warn`, `err`, `critical`, `trace`, `log`) and Python's
    /// numeric logging levels (`10`..`50`). `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim().to_ascii_lowercase().as_str() {
            "fatal" | "critical" | "crit" | "emergency" | "emerg" | "alert" | "panic" | "50" => Self::Fatal,
            "error" | "err" | "exception" | "40" => Self::Error,
            "warning" | "warn" | "30" => Self::Warning,
            "info" | "information" | "informational" | "notice" | "log" | "20" => Self::Info,
            "debug" | "trace" | "verbose" | "10" => Self::Debug,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level `{0}` (expected debug, info, warning, error or fatal)")]
pub struct UnknownLevel(pub String);

impl std::str::FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

/// The identity of one tracked problem: every delivery about it maps to the same fingerprint, and
/// one fingerprint maps to exactly one issue.
///
/// Shape: `<namespace>:<id>` from the source's own issue id (`sentry:1170820242`,
/// `glitchtip:app.glitchtip.com:1234`, `sentry:metric-rule:7`), or `<namespace>:h:<32 hex>` from a
/// hash when the source has no id. At most [`Fingerprint::MAX_LEN`] characters of
/// `[a-z0-9._:-]` with no `--`, so it is safe as a KV key, in a URL path and inside the hidden
/// HTML comment marker of an issue body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

/// Why a string is not a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a fingerprint: {0}")]
pub struct InvalidFingerprint(&'static str);

impl Fingerprint {
    pub const MAX_LEN: usize = 100;

    /// Validates a fingerprint read back from KV or from an issue marker.
    pub fn parse(raw: &str) -> Result<Self, InvalidFingerprint> {
        if raw.is_empty() {
            return Err(InvalidFingerprint("empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(InvalidFingerprint("longer than 100 characters"));
        }
        if !raw.bytes().all(is_fingerprint_byte) {
            return Err(InvalidFingerprint("only a-z, 0-9, '.', '_', ':' and '-' are allowed"));
        }
        if raw.contains("--") {
            return Err(InvalidFingerprint("`--` would end an HTML comment early"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// From a source's issue id: `<namespace>:<id>`. `namespace` is bugbot's own constant (it may
    /// hold `:`); `id` is untrusted, so anything that does not look like a plain id (or would make
    /// the result too long) is hashed instead of copied.
    pub fn from_id(namespace: &str, id: &str) -> Self {
        let namespace = sanitize(namespace);
        let id = id.trim().to_ascii_lowercase();
        let plain = !id.is_empty()
            && id.len() <= 40
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !id.contains("--");
        if plain && namespace.len() + 1 + id.len() <= Self::MAX_LEN {
            Self(format!("{namespace}:{id}"))
        } else {
            Self::from_hash(&namespace, id.as_bytes())
        }
    }

    /// From a hash of `material`: `<namespace>:h:<first 32 hex digits of SHA-256>`.
    pub fn from_hash(namespace: &str, material: &[u8]) -> Self {
        let digest = Sha256::digest(material);
        let mut namespace = sanitize(namespace);
        namespace.truncate(Self::MAX_LEN - 35);
        let namespace = namespace.trim_end_matches(['-', ':']);
        Self(format!("{namespace}:h:{}", &hex::encode(digest)[..32]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_fingerprint_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b':' | b'-')
}

/// Lowercases and maps every other byte to `-`, collapsing runs so no `--` survives.
fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii() && is_fingerprint_byte(c as u8) { c } else { '-' };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() { "x".to_owned() } else { trimmed.to_owned() }
}

impl TryFrom<String> for Fingerprint {
    type Error = InvalidFingerprint;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Fingerprint> for String {
    fn from(value: Fingerprint) -> Self {
        value.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stack frame, as Sentry's stack trace interface describes it
/// (<https://develop.sentry.dev/sdk/data-model/event-payloads/stacktrace/#frame-attributes>),
/// except that `in_app` is bugbot's own judgement (see [`crate::normalize::judge_in_app`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colno: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// bugbot's judgement, not the SDK's flag.
    #[serde(default)]
    pub in_app: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_line: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_context: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_context: Vec<String>,
}

impl Frame {
    /// The path to show: the (often project-relative) `filename`, else `abs_path`, else `module`.
    pub fn path(&self) -> Option<&str> {
        self.filename.as_deref().or(self.abs_path.as_deref()).or(self.module.as_deref())
    }

    /// `path:line[:col]`, e.g. `errors/views.py:18`.
    pub fn location(&self) -> String {
        let mut out = self.path().unwrap_or("<unknown>").to_owned();
        if let Some(line) = self.lineno {
            let _ = write!(out, ":{line}");
            if let Some(col) = self.colno {
                let _ = write!(out, ":{col}");
            }
        }
        out
    }
}

/// The exception an event carries (the last, outermost one of a chain).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionInfo {
    /// `type` upstream, e.g. `ZeroDivisionError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// One error, from any source, in one shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub source: Source,
    pub fingerprint: Fingerprint,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culprit: Option<String>,
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The project slug where the source names it (else its numeric id, as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// `python`, `javascript`, `node`, ... as the SDK reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The source's human issue id (`FRONT-END-9`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_id: Option<String>,
    /// The id of the event that triggered the delivery, if it was about one event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// When the source first saw the problem (unix ms), if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_ms: Option<u64>,
    /// When it last happened (unix ms): the source's last-seen or event time, else when bugbot
    /// received the delivery.
    pub last_seen_ms: u64,
    /// The source's total event count for the issue, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,
    /// The page in the source (not an API URL, no per-event suffix, no query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionInfo>,
    /// Oldest first, crash frame last, as Sentry sends them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Frame>,
}

impl ErrorEvent {
    /// An event with only what every source has — the rest empty, level error — for signals that
    /// are not error events themselves (metric and uptime alerts, a status change of an issue bugbot
    /// has no event for). Fill in more with struct update syntax.
    pub fn bare(source: Source, fingerprint: Fingerprint, title: String, link: Option<String>, at_ms: u64) -> Self {
        Self {
            source,
            fingerprint,
            title,
            culprit: None,
            level: Level::Error,
            environment: None,
            release: None,
            project: None,
            platform: None,
            short_id: None,
            event_id: None,
            first_seen_ms: None,
            last_seen_ms: at_ms,
            count: None,
            user_count: None,
            link,
            tags: Vec::new(),
            exception: None,
            frames: Vec::new(),
        }
    }

    /// Up to `n` in-app frames, crash frame first.
    pub fn top_in_app_frames(&self, n: usize) -> Vec<&Frame> {
        self.frames.iter().rev().filter(|f| f.in_app).take(n).collect()
    }

    /// Up to `n` frames, crash frame first, whatever their in-app judgement.
    pub fn top_frames(&self, n: usize) -> Vec<&Frame> {
        self.frames.iter().rev().take(n).collect()
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A change of state the source reports about an issue without a new occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub source: Source,
    pub fingerprint: Fingerprint,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Who changed it in the source (the webhook's `actor.name`), if a person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When bugbot received it (unix ms).
    pub at_ms: u64,
}

/// A Sentry metric alert's state (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/metric-alerts/>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricStatus {
    Critical,
    Warning,
    Resolved,
}

/// A metric alert: a threshold on an aggregate (error count, latency) crossed or recovered.
/// Tracked per alert rule, so the next incident of the same rule reopens the same issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricAlert {
    pub fingerprint: Fingerprint,
    /// The alert rule's name.
    pub title: String,
    pub status: MetricStatus,
    /// Sentry's `description_text`, e.g. "1000 events in the last 10 minutes".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// When bugbot received it (unix ms).
    pub at_ms: u64,
}

impl MetricAlert {
    /// The alert as a status change (for the "resolved" comment).
    pub fn to_change(&self) -> StatusChange {
        StatusChange {
            source: Source::Sentry,
            fingerprint: self.fingerprint.clone(),
            title: self.title.clone(),
            link: self.link.clone(),
            actor: None,
            at_ms: self.at_ms,
        }
    }

    /// The alert as an [`ErrorEvent`], so filing and announcing treat it like any other
    /// problem: critical → error, warning → warning.
    pub fn to_event(&self) -> ErrorEvent {
        ErrorEvent {
            culprit: self.description.clone(),
            level: if self.status == MetricStatus::Warning { Level::Warning } else { Level::Error },
            environment: self.environment.clone(),
            project: self.projects.first().cloned(),
            ..ErrorEvent::bare(
                Source::Sentry,
                self.fingerprint.clone(),
                format!("Metric alert: {}", self.title),
                self.link.clone(),
                self.at_ms,
            )
        }
    }
}

impl StatusChange {
    /// The least an announcement needs when bugbot kept no event for this issue.
    pub fn to_event(&self) -> ErrorEvent {
        ErrorEvent::bare(self.source, self.fingerprint.clone(), self.title.clone(), self.link.clone(), self.at_ms)
    }
}

/// Whether a monitored site is down or back up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UptimeState {
    Down,
    Up,
}

/// A `GlitchTip` uptime monitor alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UptimeAlert {
    pub fingerprint: Fingerprint,
    pub monitor: String,
    pub state: UptimeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// When bugbot received it (unix ms).
    pub at_ms: u64,
}

impl UptimeAlert {
    /// The alert as a status change (for the "back up" comment).
    pub fn to_change(&self) -> StatusChange {
        StatusChange {
            source: Source::GlitchtipUptime,
            fingerprint: self.fingerprint.clone(),
            title: self.monitor.clone(),
            link: self.link.clone(),
            actor: None,
            at_ms: self.at_ms,
        }
    }

    /// The outage as an [`ErrorEvent`] (level error), for filing and announcing.
    pub fn to_event(&self) -> ErrorEvent {
        ErrorEvent {
            culprit: self.message.clone(),
            ..ErrorEvent::bare(
                Source::GlitchtipUptime,
                self.fingerprint.clone(),
                format!("Uptime: {} is down", self.monitor),
                self.link.clone(),
                self.at_ms,
            )
        }
    }
}

/// What one delivery means for the tracked issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
// Exhaustive on purpose: the consumer matches every variant, so a new one is a compile error
// there rather than a silent fall-through.
pub enum Signal {
    /// The error happened (first time or again): create the issue, or update the existing one.
    Occurrence(ErrorEvent),
    /// The source marked the issue unresolved again (a regression, or by hand): reopen the
    /// existing issue, or create it if bugbot never filed one.
    Regressed(ErrorEvent),
    /// The source marked the issue resolved: close or annotate the existing issue.
    Resolved(StatusChange),
    /// The source archived/ignored the issue: a note at most, never a new issue.
    Ignored(StatusChange),
    /// The source assigned the issue: a note at most, never a new issue.
    Assigned {
        #[serde(flatten)]
        change: StatusChange,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<String>,
    },
    /// A metric alert fired or recovered.
    MetricAlert(MetricAlert),
    /// An uptime monitor went down or came back.
    Uptime(UptimeAlert),
}

impl Signal {
    /// The tracked problem this signal is about.
    pub fn fingerprint(&self) -> &Fingerprint {
        match self {
            Self::Occurrence(e) | Self::Regressed(e) => &e.fingerprint,
            Self::Resolved(c) | Self::Ignored(c) | Self::Assigned { change: c, .. } => &c.fingerprint,
            Self::MetricAlert(m) => &m.fingerprint,
            Self::Uptime(u) => &u.fingerprint,
        }
    }

    /// A short, stable name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Occurrence(_) => "occurrence",
            Self::Regressed(_) => "regressed",
            Self::Resolved(_) => "resolved",
            Self::Ignored(_) => "ignored",
            Self::Assigned { .. } => "assigned",
            Self::MetricAlert(_) => "metric_alert",
            Self::Uptime(_) => "uptime",
        }
    }
}

// --- UTC calendar arithmetic (no clock is read; callers pass times in) -------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if month <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, month, day)
}

/// Unix ms of a UTC wall-clock time, `None` before 1970 or for an impossible date.
pub(crate) fn unix_ms(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32, ms: u32) -> Option<u64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(secs).ok().map(|s| s * 1_000 + u64::from(ms.min(999)))
}

/// Parses an RFC 3339 timestamp (`2019-08-19T20:58:37.391000Z`, `...+02:00`, a space for `T`)
/// to unix ms.
pub fn parse_rfc3339_ms(raw: &str) -> Option<u64> {
    let s = raw.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = s.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') || !matches!(s.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if s.get(13) != Some(&b':') || s.get(16) != Some(&b':') {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        for k in 0..3 {
            ms = ms * 10 + digits.get(k).map_or(0, |d| u32::from(d - b'0'));
        }
    }
    let offset_secs: i64 = match s.get(i) {
        None | Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            let secs = i64::from(h) * 3_600 + i64::from(m) * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        Some(_) => return None,
    };
    let local = unix_ms(i64::from(year), month, day, hour, minute, second, ms)?;
    u64::try_from(i64::try_from(local).ok()? - offset_secs * 1_000).ok()
}

/// `2019-08-19T20:58:37.391Z`.
pub fn format_rfc3339_ms(ms: u64) -> String {
    let (date, secs, millis) = split_ms(ms);
    format!("{date}T{}.{millis:03}Z", clock(secs))
}

/// `2019-08-19 20:58:37 UTC`, for people.
pub fn format_utc_ms(ms: u64) -> String {
    let (date, secs, _) = split_ms(ms);
    format!("{date} {} UTC", clock(secs))
}

fn split_ms(ms: u64) -> (String, u64, u64) {
    let secs = ms / 1_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), secs % 86_400, ms % 1_000)
}

fn clock(secs_of_day: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs_of_day / 3_600, secs_of_day / 60 % 60, secs_of_day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_lenient() {
        assert!(Level::Debug < Level::Info && Level::Info < Level::Warning);
        assert!(Level::Warning < Level::Error && Level::Error < Level::Fatal);
        assert_eq!(Level::parse(" WARN "), Some(Level::Warning));
        assert_eq!(Level::parse("critical"), Some(Level::Fatal));
        assert_eq!(Level::parse("40"), Some(Level::Error));
        assert_eq!(Level::parse("sample"), None);
        assert_eq!("Info".parse::<Level>(), Ok(Level::Info));
        assert!("nope".parse::<Level>().is_err());
    }

    #[test]
    fn fingerprints_are_safe() {
        assert_eq!(Fingerprint::from_id("sentry", "1170820242").as_str(), "sentry:1170820242");
        assert_eq!(
            Fingerprint::from_id("glitchtip:App.GlitchTip.com:8000", "12").as_str(),
            "glitchtip:app.glitchtip.com:8000:12"
        );
        // An id that is not a plain id is hashed, never copied.
        let odd = Fingerprint::from_id("sentry", "--> <script>");
        assert!(odd.as_str().starts_with("sentry:h:"), "{odd}");
        let long = Fingerprint::from_id(&"n".repeat(200), &"9".repeat(40));
        assert!(long.as_str().len() <= Fingerprint::MAX_LEN);
        for fp in [odd, long, Fingerprint::from_hash("a b--c", b"x")] {
            assert_eq!(Fingerprint::parse(fp.as_str()), Ok(fp.clone()), "{fp}");
        }
        assert!(Fingerprint::parse("a--b").is_err());
        assert!(Fingerprint::parse("A").is_err());
        assert!(Fingerprint::parse("").is_err());
        assert!(Fingerprint::parse(&"a".repeat(101)).is_err());
        assert!(serde_json::from_str::<Fingerprint>("\"x y\"").is_err());
        assert_eq!(serde_json::to_string(&Fingerprint::from_id("sentry", "1")).unwrap(), "\"sentry:1\"");
    }

    #[test]
    fn rfc3339_roundtrip() {
        assert_eq!(parse_rfc3339_ms("2019-08-19T20:58:37.391000Z"), Some(1_566_248_317_391));
        assert_eq!(parse_rfc3339_ms("2019-08-19T22:58:37.391+02:00"), Some(1_566_248_317_391));
        assert_eq!(parse_rfc3339_ms("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_rfc3339_ms("2020-02-29T12:00:00Z"), Some(1_582_977_600_000));
        assert_eq!(parse_rfc3339_ms("2019-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
        assert_eq!(format_rfc3339_ms(1_566_248_317_391), "2019-08-19T20:58:37.391Z");
        assert_eq!(format_utc_ms(1_582_977_600_000), "2020-02-29 12:00:00 UTC");
        for ms in [0, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms));
        }
    }

    #[test]
    fn top_frames_are_crash_first() {
        let frame = |name: &str, in_app| Frame { function: Some(name.into()), in_app, ..Frame::default() };
        let event = ErrorEvent {
            source: Source::Sentry,
            fingerprint: Fingerprint::from_id("sentry", "1"),
            title: "t".into(),
            culprit: None,
            level: Level::Error,
            environment: None,
            release: None,
            project: None,
            platform: None,
            short_id: None,
            event_id: None,
            first_seen_ms: None,
            last_seen_ms: 0,
            count: None,
            user_count: None,
            link: None,
            tags: vec![],
            exception: None,
            frames: vec![frame("main", true), frame("lib", false), frame("handler", true), frame("raise", false)],
        };
        let names = |v: Vec<&Frame>| v.iter().map(|f| f.function.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(event.top_in_app_frames(5)), ["handler", "main"]);
        assert_eq!(names(event.top_in_app_frames(1)), ["handler"]);
        assert_eq!(names(event.top_frames(2)), ["raise", "handler"]);
    }
}
