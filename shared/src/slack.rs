//! Slack alerts: the Events API delivery at `POST /webhooks/slack`, and a message in an alert
//! channel turned into an [`ErrorEvent`].
//!
//! - Authentication (<https://docs.slack.dev/authentication/verifying-requests-from-slack/>):
//!   `X-Slack-Signature` is `v0=` + hex HMAC-SHA256 under the app's signing secret of
//!   `v0:{X-Slack-Request-Timestamp}:{raw body}`; the timestamp must be within 5 minutes.
//! - `url_verification` (<https://docs.slack.dev/reference/events/url_verification>) is answered with
//!   its `challenge`; `event_callback` `message` events
//!   (<https://docs.slack.dev/reference/events/message>) from the channels in `SLACK_ALERT_CHANNELS`
//!   become jobs, bot and app posts included (AWS Chatbot, Datadog, Sentry post that way).
//! - A retry (`X-Slack-Retry-Num`, <https://docs.slack.dev/apis/events-api/#retries>) repeats the
//!   body byte for byte, so its `event_id` gives the same job id and the consumer's delivery claim
//!   drops it.
//!
//! The gateway decides from the envelope's head ([`Head`]) and, for an alert, normalizes the whole
//! message ([`Envelope`] → [`to_event`]): the queued job carries the error event, like every alert
//! after normalization.

use serde::Deserialize;

use crate::event::{ErrorEvent, Fingerprint, Level, Source};
use crate::report::clip;
use crate::stacktrace;
use crate::verify::{self, SignatureError};

/// Slack's replay window: 5 minutes.
pub const REPLAY_WINDOW_SECS: u64 = 5 * 60;
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
pub const RETRY_HEADER: &str = "x-slack-retry-num";

/// Checks `X-Slack-Signature` over the raw body, in constant time, and the timestamp's freshness.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_secs: u64,
) -> Result<(), SignatureError> {
    let hex = signature.trim().strip_prefix("v0=").ok_or(SignatureError::Malformed)?;
    let timestamp = timestamp.trim();
    let mut base = Vec::with_capacity(timestamp.len() + body.len() + 4);
    base.extend_from_slice(b"v0:");
    base.extend_from_slice(timestamp.as_bytes());
    base.push(b':');
    base.extend_from_slice(body);
    verify::hmac_sha256_hex_matches(secret, &base, hex)?;
    verify::check_fresh(timestamp, now_secs, REPLAY_WINDOW_SECS).map(|_| ())
}

/// `v0=` + hex HMAC: what Slack sends (for tests and tools).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut base = format!("v0:{timestamp}:").into_bytes();
    base.extend_from_slice(body);
    format!("v0={}", verify::hmac_sha256_hex(secret, &base))
}

/// The part of a delivery the gateway needs to decide.
#[derive(Debug, Default, Deserialize)]
pub struct Head {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub challenge: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub event: Option<EventHead>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EventHead {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub subtype: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub thread_ts: Option<String>,
}

/// Message subtypes that are posts (<https://docs.slack.dev/reference/events/message#subtypes>);
/// edits, deletions, joins and the like are not alerts.
const POST_SUBTYPES: &[&str] = &["bot_message", "thread_broadcast", "file_share", "me_message"];

/// What a verified delivery means.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// `url_verification`: answer with this challenge.
    Challenge(String),
    /// Not an alert (another event type, an edit, a thread reply, another channel): `200`, nothing queued.
    Ignored(&'static str),
    /// A message in an alert channel, normalized.
    Alert { event_id: String, channel: String, event: Box<ErrorEvent> },
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthorized(SignatureError),
    BadRequest(String),
}

/// The gateway's decision for `POST /webhooks/slack`: authenticate the raw bytes, then read them.
pub fn decide(
    secret: &[u8],
    alert_channels: &[String],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_ms: u64,
) -> Result<Decision, Refusal> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refusal::Unauthorized(SignatureError::Missing));
    };
    verify(secret, timestamp, signature, body, now_ms / 1000).map_err(Refusal::Unauthorized)?;
    let bad = |what: &str, e: serde_json::Error| Refusal::BadRequest(format!("{what}: {e}"));
    let head: Head = serde_json::from_slice(body).map_err(|e| bad("body is not an Events API JSON object", e))?;
    match head.kind.as_str() {
        "url_verification" => {
            head.challenge.map(Decision::Challenge).ok_or_else(|| Refusal::BadRequest("no challenge".into()))
        }
        "event_callback" => {
            let event = head.event.unwrap_or_default();
            if event.kind != "message" {
                return Ok(Decision::Ignored("not a message event"));
            }
            if event.subtype.as_deref().is_some_and(|s| !POST_SUBTYPES.contains(&s)) {
                return Ok(Decision::Ignored("message subtype is not a post"));
            }
            if event.thread_ts.is_some()
                && event.thread_ts != event.ts
                && event.subtype.as_deref() != Some("thread_broadcast")
            {
                return Ok(Decision::Ignored("a reply in a thread"));
            }
            let Some(channel) = event.channel.filter(|c| !c.is_empty()) else {
                return Err(Refusal::BadRequest("message event without a channel".into()));
            };
            if alert_channels.is_empty() {
                return Ok(Decision::Ignored("SLACK_ALERT_CHANNELS is not set"));
            }
            if !alert_channels.iter().any(|c| c.eq_ignore_ascii_case(&channel)) {
                return Ok(Decision::Ignored("channel not in SLACK_ALERT_CHANNELS"));
            }
            let Some(event_id) = head.event_id.filter(|e| !e.trim().is_empty()) else {
                return Err(Refusal::BadRequest("event_callback without event_id".into()));
            };
            let envelope: Envelope = serde_json::from_slice(body).map_err(|e| bad("message event", e))?;
            let event = Box::new(to_event(&envelope, &channel, now_ms));
            Ok(Decision::Alert { event_id, channel, event })
        }
        _ => Ok(Decision::Ignored("event type not handled")),
    }
}

// --- the message -------------------------------------------------------

/// An `event_callback` envelope (<https://docs.slack.dev/apis/events-api/#callback-field>). Lenient:
/// unknown fields are ignored, missing ones default.
#[derive(Debug, Default, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub event_time: Option<u64>,
    #[serde(default)]
    pub event: Message,
}

/// A `message` event (<https://docs.slack.dev/reference/events/message>).
#[derive(Debug, Default, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub subtype: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub bot_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub bot_profile: Option<BotProfile>,
    /// mrkdwn, with `&`, `<`, `>` escaped.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "lenient_vec")]
    pub attachments: Vec<Attachment>,
    #[serde(default, deserialize_with = "lenient_vec")]
    pub blocks: Vec<Block>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BotProfile {
    #[serde(default)]
    pub name: Option<String>,
}

/// A legacy attachment (<https://docs.slack.dev/messaging/formatting-message-text#attachments>).
#[derive(Debug, Default, Deserialize)]
pub struct Attachment {
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub title_link: Option<String>,
    #[serde(default)]
    pub pretext: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub fallback: Option<String>,
    #[serde(default, deserialize_with = "lenient_vec")]
    pub fields: Vec<AttachmentField>,
    #[serde(default, deserialize_with = "lenient_vec")]
    pub blocks: Vec<Block>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AttachmentField {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// A Block Kit block or rich-text element (<https://docs.slack.dev/reference/block-kit/blocks>),
/// reduced to what carries text.
#[derive(Debug, Default, Deserialize)]
pub struct Block {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default, deserialize_with = "lenient_vec")]
    pub fields: Vec<Text>,
    #[serde(default, deserialize_with = "lenient_vec")]
    pub elements: Vec<Block>,
    #[serde(default)]
    pub url: Option<String>,
}

/// A text object (`{"type":"mrkdwn","text":…}`) or a rich-text element's plain `text` string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Plain(String),
    Object {
        #[serde(default)]
        text: String,
    },
}

impl Text {
    fn as_str(&self) -> &str {
        match self {
            Self::Plain(s) | Self::Object { text: s } => s,
        }
    }
}

fn lenient_vec<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::Array(items) => items.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect(),
        _ => Vec::new(),
    })
}

/// What a message says, gathered from its text, attachments and blocks.
#[derive(Debug, Default)]
struct Gathered {
    /// Text lines (mrkdwn unescaped, links reduced to their labels), in reading order.
    lines: Vec<String>,
    /// Code blocks: triple-backtick fences in mrkdwn and `rich_text_preformatted` blocks.
    code: Vec<String>,
    attachment_title: Option<String>,
    header: Option<String>,
    colors: Vec<String>,
    urls: Vec<String>,
}

impl Gathered {
    fn mrkdwn(&mut self, raw: &str) {
        let text = unescape(raw);
        let mut rest = text.as_str();
        while let Some((before, after)) = rest.split_once("```") {
            self.prose(before);
            let (code, tail) = after.split_once("```").unwrap_or((after, ""));
            self.code.push(code.trim_matches('\n').to_owned());
            rest = tail;
        }
        self.prose(rest);
    }

    fn prose(&mut self, text: &str) {
        for line in text.lines() {
            let line = plain(line, &mut self.urls);
            if !line.is_empty() {
                self.lines.push(line);
            }
        }
    }

    fn block(&mut self, block: &Block) {
        match block.kind.as_str() {
            "rich_text_preformatted" => {
                let code: String = block.elements.iter().map(inline_text).collect();
                self.code.push(code);
            }
            "rich_text_section" | "rich_text_quote" | "rich_text_list" => {
                let text: String = block.elements.iter().map(inline_text).collect();
                self.prose(&text);
            }
            _ => {
                if let Some(text) = &block.text {
                    if block.kind == "header" && self.header.is_none() {
                        self.header = Some(text.as_str().trim().to_owned());
                    }
                    if block.kind != "button" {
                        self.mrkdwn(text.as_str());
                    }
                }
                for field in &block.fields {
                    self.mrkdwn(field.as_str());
                }
                if let Some(url) = &block.url {
                    self.urls.push(url.clone());
                }
                for element in &block.elements {
                    self.block(element);
                }
            }
        }
    }
}

fn inline_text(element: &Block) -> String {
    match element.kind.as_str() {
        "text" => element.text.as_ref().map(|t| t.as_str().to_owned()).unwrap_or_default(),
        "link" => {
            element.text.as_ref().map(|t| t.as_str().to_owned()).or_else(|| element.url.clone()).unwrap_or_default()
        }
        _ => element.elements.iter().map(inline_text).collect(),
    }
}

/// `&amp;` `&lt;` `&gt;` back to characters (<https://docs.slack.dev/messaging/formatting-message-text#escaping>).
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// One mrkdwn line as a person reads it: `<url|label>` → `label` (the URL is kept aside), `<url>` →
/// `url`, `<@U123>` → `@U123`, and bold/italic/strike markers and emoji codes dropped.
fn plain(line: &str, urls: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &rest[start + 1..start + end];
        let (target, label) = inner.split_once('|').map_or((inner, None), |(t, l)| (t, Some(l)));
        if target.starts_with("http://") || target.starts_with("https://") {
            urls.push(target.to_owned());
        }
        let shown = match target.chars().next() {
            Some('@' | '#') => label.map_or_else(|| target.to_owned(), |l| format!("{}{l}", &target[..1])),
            Some('!') => format!("@{}", label.map_or(&target[1..], |l| l.trim_start_matches('@'))),
            _ => label.unwrap_or(target).to_owned(),
        };
        out.push_str(&shown);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    // Bold markers go; `_` and `~` only at the ends (they are common inside identifiers).
    let out = strip_emoji_codes(&out.replace('*', ""));
    out.trim_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '_' | '~' | '>' | '`')).to_owned()
}

/// `:rotating_light: ALARM` → `ALARM`.
fn strip_emoji_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(':') {
        let after = &rest[start + 1..];
        let code_len = after.find(':').filter(|&n| {
            n > 0
                && after[..n]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '+' | '-'))
        });
        if let Some(n) = code_len {
            out.push_str(&rest[..start]);
            rest = &after[n + 1..];
        } else {
            out.push_str(&rest[..=start]);
            rest = after;
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn gather(message: &Message) -> Gathered {
    let mut g = Gathered::default();
    // Blocks hold the same words as `text` unescaped; prefer them when present, `text` otherwise.
    if message.blocks.is_empty() {
        if let Some(text) = &message.text {
            g.mrkdwn(text);
        }
    } else {
        let first_line =
            message.text.as_deref().map(|t| plain(unescape(t).lines().next().unwrap_or(""), &mut Vec::new()));
        for block in &message.blocks {
            g.block(block);
        }
        // A bot's `text` is often a summary the blocks do not repeat: keep its first line first.
        if let Some(first) = first_line.filter(|f| !f.is_empty() && !g.lines.contains(f)) {
            g.lines.insert(0, first);
        }
    }
    for attachment in &message.attachments {
        if let Some(color) = &attachment.color {
            g.colors.push(color.clone());
        }
        if let Some(title) =
            attachment.title.as_deref().map(|t| plain(&unescape(t), &mut g.urls)).filter(|t| !t.is_empty())
        {
            g.attachment_title.get_or_insert_with(|| title.clone());
            g.lines.push(title);
        }
        if let Some(link) = &attachment.title_link {
            g.urls.push(link.clone());
        }
        for text in [&attachment.pretext, &attachment.text].into_iter().flatten() {
            g.mrkdwn(text);
        }
        for field in &attachment.fields {
            let line = format!(
                "{}: {}",
                field.title.as_deref().unwrap_or_default(),
                field.value.as_deref().unwrap_or_default()
            );
            g.mrkdwn(&line);
        }
        for block in &attachment.blocks {
            g.block(block);
        }
        if attachment.text.is_none()
            && attachment.title.is_none()
            && attachment.blocks.is_empty()
            && let Some(fallback) = &attachment.fallback
        {
            g.mrkdwn(fallback);
        }
    }
    g
}

/// Level from an attachment colour: Slack's names and the usual red/amber/green hex values.
fn level_from_color(color: &str) -> Option<Level> {
    let color = color.trim().trim_start_matches('#').to_ascii_lowercase();
    match color.as_str() {
        "danger" => return Some(Level::Error),
        "warning" => return Some(Level::Warning),
        "good" => return Some(Level::Info),
        _ => {}
    }
    let rgb = u32::from_str_radix(&color, 16).ok().filter(|_| color.len() == 6)?;
    let (r, g, b) = ((rgb >> 16) & 0xff, (rgb >> 8) & 0xff, rgb & 0xff);
    if r > 150 && g < 100 {
        Some(Level::Error)
    } else if r > 180 && g >= 100 && b < 100 {
        Some(Level::Warning)
    } else if g > 130 && r < 120 && b < 150 {
        Some(Level::Info)
    } else {
        None
    }
}

/// Level from words: a recovery (`OK`, `resolved`) is info; then fatal, error and warning words.
fn level_from_words(text: &str) -> Option<Level> {
    let lower = text.to_lowercase();
    let words: Vec<&str> =
        lower.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let has = |set: &[&str]| words.iter().any(|w| set.contains(w));
    if lower.contains("state to ok") || has(&["resolved", "recovered", "recovery"]) {
        return Some(Level::Info);
    }
    if has(&["fatal", "critical", "crit", "panic", "panicked", "emergency", "sev1", "p1"]) {
        return Some(Level::Fatal);
    }
    // `SyntaxError`, `KeyError`, `NullPointerException` count as the word.
    if words.iter().any(|w| w.ends_with("error") || w.ends_with("exception"))
        || has(&["errors", "traceback", "failed", "failure", "alarm", "down", "crash", "crashed", "5xx", "triggered"])
    {
        return Some(Level::Error);
    }
    if has(&["warn", "warning", "insufficient_data", "degraded", "slow"]) {
        return Some(Level::Warning);
    }
    None
}

/// A Slack message's link: `https://slack.com/archives/{channel}/p{ts without the dot}`, which
/// opens the message in the reader's workspace.
pub fn message_link(channel: &str, ts: &str) -> String {
    format!("https://slack.com/archives/{channel}/p{}", ts.replace('.', ""))
}

/// The error event a message means. Title: the first line, else the attachment title or header;
/// level: the attachment colour, else words (title first); a stack trace from a code block.
pub fn to_event(envelope: &Envelope, channel: &str, received_at_ms: u64) -> ErrorEvent {
    let message = &envelope.event;
    let g = gather(message);
    let title = g
        .lines
        .first()
        .cloned()
        .or_else(|| g.attachment_title.clone())
        .or_else(|| g.header.clone())
        .unwrap_or_else(|| "Slack message".to_owned());
    let title = clip(&title, 200);
    let trace = g.code.iter().find_map(|c| stacktrace::parse(c)).or_else(|| stacktrace::parse(&g.lines.join("\n")));
    let all_text = g.lines.join("\n");
    let level = g
        .colors
        .iter()
        .find_map(|c| level_from_color(c))
        .or_else(|| level_from_words(&title))
        .or_else(|| level_from_words(&all_text))
        .or_else(|| trace.as_ref().map(|_| Level::Error))
        .unwrap_or(Level::Warning);
    let sender = message
        .bot_profile
        .as_ref()
        .and_then(|b| b.name.clone())
        .or_else(|| message.username.clone())
        .or_else(|| message.bot_id.clone())
        .or_else(|| message.user.clone());
    let (exception, frames, platform) = match trace {
        Some(t) => (t.exception, t.frames, Some(t.platform.to_owned())),
        None => (None, Vec::new(), None),
    };
    let material = stacktrace::fingerprint_material(&title, exception.as_ref(), &frames);
    let fingerprint = Fingerprint::from_hash(&format!("slack:{}", channel.to_ascii_lowercase()), material.as_bytes());
    let ts = message.ts.clone().unwrap_or_default();
    let at_ms = ts.split('.').next().and_then(|s| s.parse::<u64>().ok()).map_or(received_at_ms, |s| s * 1000);
    let mut tags = vec![("slack_channel".to_owned(), channel.to_owned())];
    if let Some(sender) = &sender {
        tags.push(("slack_sender".to_owned(), clip(sender, 100)));
    }
    if let Some(url) = g.urls.first() {
        tags.push(("alert_url".to_owned(), clip(url, 500)));
    }
    let culprit = g.lines.get(1).map(|l| clip(l, 200));
    ErrorEvent {
        culprit,
        level,
        platform,
        event_id: envelope.event_id.clone(),
        tags,
        exception,
        frames,
        ..ErrorEvent::bare(
            Source::Slack,
            fingerprint,
            title,
            (!ts.is_empty()).then(|| message_link(channel, &ts)),
            at_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_read_like_slack_shows_them() {
        let mut urls = Vec::new();
        assert_eq!(
            plain("*State:* <https://x.test/a|see the alarm> :rotating_light:", &mut urls),
            "State: see the alarm"
        );
        assert_eq!(urls, ["https://x.test/a"]);
        assert_eq!(plain("<!here> deploy 12:30 failed", &mut Vec::new()), "@here deploy 12:30 failed");
        assert_eq!(plain("cc <!subteam^S0123|@oncall>", &mut Vec::new()), "cc @oncall");
    }

    #[test]
    fn colours_and_words() {
        assert_eq!(level_from_color("danger"), Some(Level::Error));
        assert_eq!(level_from_color("#E01E5A"), Some(Level::Error));
        assert_eq!(level_from_color("#ecb22e"), Some(Level::Warning));
        assert_eq!(level_from_color("#2eb67d"), Some(Level::Info));
        assert_eq!(level_from_color("#439FE0"), None);
        assert_eq!(level_from_words("The alarm x changed state to OK: Threshold Crossed."), Some(Level::Info));
        assert_eq!(level_from_words("CRITICAL: Freeable Memory"), Some(Level::Fatal));
        assert_eq!(level_from_words("The alarm x changed state to ALARM"), Some(Level::Error));
        assert_eq!(level_from_words("Lunch is ready"), None);
    }
}
