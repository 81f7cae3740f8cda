//! The queue contract between the gateway and the consumer.
//!
//! Gateway and consumer deploy separately, so messages in flight cross versions: fields are only
//! ever added (with serde defaults), never repurposed, and a kind this version does not know
//! deserializes to [`JobKind::Unknown`] (retried, then dead-lettered — never silently dropped).
//! A job travels as JSON text (not a structured-clone object) so that it reads the same in a
//! dead-letter queue, in logs and across versions.

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::event::ErrorEvent;
use crate::source::discord::{Snowflake, User};
use crate::source::glitchtip::{GlitchtipIssue, GlitchtipUptime};
use crate::source::sentry::Resource;

/// Current version of the contract.
pub const JOB_VERSION: u16 = 1;

/// Cloudflare Queues take messages up to 128 KB; leave room for the envelope.
pub const MAX_JOB_BYTES: usize = 120 * 1024;

/// A job's id. Deterministic from the delivery (Discord interaction id, Sentry `Request-ID`, or a
/// hash of an unsigned body), so a redelivered webhook maps to the same id and the consumer's
/// claim drops it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub fn discord(interaction: Snowflake) -> Self {
        Self(format!("discord:{interaction}"))
    }

    /// From Sentry's `Request-ID`, unique per delivery and repeated on retries.
    pub fn sentry(request_id: &str) -> Self {
        Self(format!("sentry:{}", sanitize(request_id)))
    }

    /// From the hash of an unsigned body and the item's index in it.
    pub fn hashed(source: &str, body_sha256_hex: &str, index: usize) -> Self {
        Self(format!("{source}:{}:{index}", &body_sha256_hex[..32.min(body_sha256_hex.len())]))
    }

    /// From a Slack Events API `event_id`, unique per event and repeated on retries.
    pub fn slack(event_id: &str) -> Self {
        Self(format!("slack:{}", sanitize(event_id)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keeps ids printable and short enough for KV keys (≤ 512 bytes) whatever a header carried.
fn sanitize(raw: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).take(100).collect()
}

/// One unit of work on the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    #[serde(default = "version_one")]
    pub v: u16,
    pub id: JobId,
    /// When the gateway received the request (unix ms).
    pub received_at_ms: u64,
    /// The gateway's request id, for following one delivery through the logs.
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(flatten)]
    pub kind: JobKind,
}

fn version_one() -> u16 {
    1
}

/// What the job is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// A well-formed `/bugbot` slash or message command.
    DiscordCommand(DiscordCommandJob),
    /// A button, select or modal submit on one of bugbot's messages.
    DiscordComponent(DiscordComponentJob),
    /// A Sentry integration-platform webhook for an actionable resource.
    SentryWebhook(SentryWebhookJob),
    /// A legacy Sentry `WebHooks` plugin post (token URL).
    SentryLegacy(SentryLegacyJob),
    /// One issue reported by a GlitchTip alert.
    GlitchtipIssue(GlitchtipIssueJob),
    /// A GlitchTip uptime monitor alert.
    GlitchtipUptime(GlitchtipUptimeJob),
    /// The signed result of a fix run, from the executor.
    ExecutorResult(ExecutorResultJob),
    /// A message in a Slack alert channel (Events API).
    SlackMessage(SlackMessageJob),
    /// Errors found by a `CloudWatch` Logs scan (one group of log events).
    CloudwatchGroup(CloudwatchGroupJob),
    /// A kind from a newer gateway. Retried (the new consumer may be rolling out), then dead-lettered.
    #[serde(other)]
    Unknown,
}

impl JobKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::DiscordCommand(_) => "discord_command",
            Self::DiscordComponent(_) => "discord_component",
            Self::SentryWebhook(_) => "sentry_webhook",
            Self::SentryLegacy(_) => "sentry_legacy",
            Self::GlitchtipIssue(_) => "glitchtip_issue",
            Self::GlitchtipUptime(_) => "glitchtip_uptime",
            Self::ExecutorResult(_) => "executor_result",
            Self::SlackMessage(_) => "slack_message",
            Self::CloudwatchGroup(_) => "cloudwatch_group",
            Self::Unknown => "unknown",
        }
    }
}

/// Who invoked an interaction and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractionContext {
    pub interaction_id: Snowflake,
    pub application_id: Snowflake,
    /// The interaction token: valid 15 minutes for follow-ups and editing the deferred reply.
    /// Never logged.
    pub token: String,
    #[serde(default)]
    pub guild_id: Option<Snowflake>,
    #[serde(default)]
    pub channel_id: Option<Snowflake>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub roles: Vec<Snowflake>,
    /// The deferred "original" is a message that must stay as it is (a button click answered with a
    /// deferred update: the original is the alert card), so replies go in follow-up messages.
    /// Set by the consumer when a click runs a command, never taken from the wire.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reply_in_followup: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscordCommandJob {
    pub interaction: InteractionContext,
    pub command: Command,
    /// Extra guidance for a fix, from the "Fix with instructions" modal: untrusted text, fenced
    /// wherever it goes (the agent's prompt, the PR body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<String>,
    /// The fingerprint whose alert card's button asked for this command (set by the consumer
    /// from its own state, never from the wire): a fix run edits that card when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscordComponentJob {
    pub interaction: InteractionContext,
    pub custom_id: String,
    #[serde(default)]
    pub values: Vec<String>,
    /// Modal submits: `(custom_id, value)` of each input.
    #[serde(default)]
    pub fields: Vec<(String, String)>,
    #[serde(default)]
    pub message_id: Option<Snowflake>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentryWebhookJob {
    pub resource: Resource,
    pub action: String,
    /// The webhook body as JSON text (verified; pruned of bulky event fields if it was too large).
    /// On the queue it follows the job's line as it is ([`Job::to_message`]); it is only a field of
    /// the job's JSON in messages written before that.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload: String,
    #[serde(default)]
    pub pruned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentryLegacyJob {
    pub payload: String,
    #[serde(default)]
    pub pruned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlitchtipIssueJob {
    pub issue: GlitchtipIssue,
    /// How many issues the whole alert reported (the "(N issues)" headline may say more than it lists).
    #[serde(default)]
    pub alert_headline: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlitchtipUptimeJob {
    pub uptime: GlitchtipUptime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorResultJob {
    /// The executor's signed report as JSON text (`executor::FixReport`).
    pub report: String,
}

/// A message in a Slack alert channel, normalized by the gateway ([`crate::slack`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackMessageJob {
    pub channel: String,
    pub event: ErrorEvent,
}

/// A group of `CloudWatch` log events, normalized by the scan ([`crate::cloudwatch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudwatchGroupJob {
    pub event: ErrorEvent,
}

/// Why a job could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("job is {0} bytes, over the queue's message limit even after pruning")]
    TooLarge(usize),
}

impl Job {
    pub fn new(id: JobId, received_at_ms: u64, request_id: Option<String>, kind: JobKind) -> Self {
        Self { v: JOB_VERSION, id, received_at_ms, request_id, kind }
    }

    /// Encodes for the queue, refusing anything over [`MAX_JOB_BYTES`]: the job as one line of JSON.
    /// A Sentry webhook's payload, which is JSON text already, follows that line as it is, after a
    /// newline, rather than going inside it as a string: escaping it would double every `"` and `\\`
    /// of it (Sentry's payloads are full of both), and in the gateway's wasm that was most of an
    /// alert's cost (`docs/GATEWAY_FLOOR.md`); the consumer reads it without unescaping it either.
    /// Compact JSON has no raw newline, so the first one ends the job's line.
    pub fn to_message(&self) -> Result<String, EncodeError> {
        let text = match &self.kind {
            JobKind::SentryWebhook(hook) if !hook.payload.is_empty() => {
                let head = Job {
                    v: self.v,
                    id: self.id.clone(),
                    received_at_ms: self.received_at_ms,
                    request_id: self.request_id.clone(),
                    kind: JobKind::SentryWebhook(SentryWebhookJob {
                        resource: hook.resource.clone(),
                        action: hook.action.clone(),
                        payload: String::new(),
                        pruned: hook.pruned,
                    }),
                };
                let mut text = serde_json::to_string(&head).expect("a Job always serializes");
                text.reserve(1 + hook.payload.len());
                text.push('\n');
                text.push_str(&hook.payload);
                text
            }
            _ => serde_json::to_string(self).expect("a Job always serializes"),
        };
        if text.len() > MAX_JOB_BYTES {
            return Err(EncodeError::TooLarge(text.len()));
        }
        Ok(text)
    }

    /// Reads a message [`Self::to_message`] wrote, or one written before payloads followed their
    /// job (the whole message one JSON document).
    pub fn from_message(text: &str) -> Result<Self, serde_json::Error> {
        if let Some((head, payload)) = text.split_once('\n')
            && let Ok(mut job) = serde_json::from_str::<Job>(head)
            && let JobKind::SentryWebhook(hook) = &mut job.kind
            && hook.payload.is_empty()
        {
            payload.clone_into(&mut hook.payload);
            return Ok(job);
        }
        serde_json::from_str(text)
    }
}

/// Keys of a Sentry event that are bulky and not needed to file an issue, dropped in order until
/// a payload fits in a queue message.
const PRUNE_ORDER: &[&[&str]] = &[
    &["breadcrumbs", "_meta", "debug_meta", "modules", "packages", "sdk", "_metrics"],
    &["vars", "extra", "contexts", "request", "user"],
    &["pre_context", "post_context", "spans", "threads"],
];

/// Returns the payload as JSON text that fits `budget` bytes once embedded in a job as a JSON
/// string (escaped), pruning bulky event fields in stages.
/// `Ok((text, pruned))`, or `Err` if even the most aggressive stage is too large.
pub fn fit_payload(raw: &[u8], value: Option<serde_json::Value>, budget: usize) -> Result<(String, bool), EncodeError> {
    // No byte takes more than six once escaped: a payload that fits even so is not scanned (the
    // gateway's case for every Sentry delivery under ~20 KB; the scan is a pass over each byte in wasm).
    if let Ok(text) = std::str::from_utf8(raw)
        && (raw.len().saturating_mul(6).saturating_add(2) <= budget || embedded_len(text) <= budget)
    {
        return Ok((text.to_owned(), false));
    }
    let Some(mut value) = value.or_else(|| serde_json::from_slice(raw).ok()) else {
        return Err(EncodeError::TooLarge(raw.len()));
    };
    let mut len = raw.len();
    for stage in PRUNE_ORDER {
        remove_keys(&mut value, stage);
        let text = value.to_string();
        len = embedded_len(&text);
        if len <= budget {
            return Ok((text, true));
        }
    }
    Err(EncodeError::TooLarge(len))
}

/// Bytes `text` takes as a JSON string value, quotes included. A payload travels inside the job
/// this way, so every `"` and `\\` of it counts twice (Sentry's ASCII-escaped JSON is full of both).
fn embedded_len(text: &str) -> usize {
    // serde_json's escapes: two bytes for `"`, `\\` and \b \t \n \f \r, six (\u00XX) for other controls.
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | b'\t' | b'\n' | 0x0c | b'\r' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

fn remove_keys(value: &mut serde_json::Value, keys: &[&str]) {
    match value {
        serde_json::Value::Object(map) => {
            for key in keys {
                map.remove(*key);
            }
            map.values_mut().for_each(|v| remove_keys(v, keys));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| remove_keys(v, keys)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_from_a_newer_gateway() {
        let job =
            Job::from_message(r#"{"v":7,"id":"x","received_at_ms":1,"kind":"telepathy","mind":"blown"}"#).unwrap();
        assert_eq!(job.kind, JobKind::Unknown);
        assert_eq!(job.v, 7);
    }

    #[test]
    fn older_message_without_new_fields() {
        let job = Job::from_message(r#"{"id":"x","received_at_ms":1,"kind":"sentry_legacy","payload":"{}"}"#).unwrap();
        assert_eq!(job.v, 1);
        assert_eq!(job.request_id, None);
        assert!(matches!(job.kind, JobKind::SentryLegacy(SentryLegacyJob { pruned: false, .. })));
    }

    /// A Sentry payload follows its job's line unescaped; a message from before (the payload as a
    /// string in the job) and a pretty-printed one (a newline inside the JSON) still read.
    #[test]
    fn a_sentry_payload_follows_its_job_as_it_is() {
        let payload = r#"{"action":"triggered","data":{"event":{"title":"a \"quoted\" \\ path","n":1}}}"#;
        let job = Job::new(
            JobId::sentry("p"),
            5,
            None,
            JobKind::SentryWebhook(SentryWebhookJob {
                resource: Resource::EventAlert,
                action: "triggered".into(),
                payload: payload.into(),
                pruned: false,
            }),
        );
        let text = job.to_message().unwrap();
        let (head, rest) = text.split_once('\n').unwrap();
        assert_eq!(rest, payload, "the payload as it came");
        assert!(!head.contains("payload"), "{head}");
        assert_eq!(Job::from_message(&text).unwrap(), job);

        let older = serde_json::to_string(&serde_json::json!({"v": 1, "id": "sentry:p", "received_at_ms": 5,
            "kind": "sentry_webhook", "resource": "event_alert", "action": "triggered", "payload": payload}))
        .unwrap();
        assert_eq!(Job::from_message(&older).unwrap(), job);
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&older).unwrap()).unwrap();
        assert!(pretty.contains('\n'));
        assert_eq!(Job::from_message(&pretty).unwrap(), job);
    }

    #[test]
    fn roundtrip() {
        let job = Job::new(
            JobId::sentry("abc-123/../x"),
            5,
            Some("r".into()),
            JobKind::SentryWebhook(SentryWebhookJob {
                resource: Resource::EventAlert,
                action: "triggered".into(),
                payload: "{\"a\":\"\\u00e9\"}".into(),
                pruned: false,
            }),
        );
        assert_eq!(job.id.as_str(), "sentry:abc-123..x");
        assert_eq!(Job::from_message(&job.to_message().unwrap()).unwrap(), job);
    }

    #[test]
    fn pruning_keeps_what_matters() {
        let big = "x".repeat(2_000);
        let raw = serde_json::json!({"action":"triggered","data":{"event":{"title":"T","breadcrumbs":{"values":[big.clone()]},
            "exception":{"values":[{"stacktrace":{"frames":[{"filename":"a.py","lineno":3,"vars":{"v":big}}]}}]}}}})
        .to_string();
        let (small, pruned) = fit_payload(raw.as_bytes(), None, 1_000).unwrap();
        assert!(pruned);
        let v: serde_json::Value = serde_json::from_str(&small).unwrap();
        assert_eq!(v["data"]["event"]["title"], "T");
        assert_eq!(v["data"]["event"]["exception"]["values"][0]["stacktrace"]["frames"][0]["lineno"], 3);
        let (same, pruned) = fit_payload(raw.as_bytes(), None, embedded_len(&raw)).unwrap();
        assert!(!pruned);
        assert_eq!(same, raw);
        assert!(fit_payload(raw.as_bytes(), None, 10).is_err());
    }

    #[test]
    fn embedded_len_matches_serde_json() {
        for text in
            ["", "plain", r#"{"a":"\u00e9\\"}"#, "caf\u{e9} \u{1f41b}", "\u{0}\u{1f}\u{7f}\u{8}\t\n\u{c}\r\"\\/"]
        {
            assert_eq!(embedded_len(text), serde_json::to_string(text).unwrap().len(), "{text:?}");
        }
    }
}
