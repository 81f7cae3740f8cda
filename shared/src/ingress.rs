//! The gateway's whole decision, as a pure function: route → authenticate the raw bytes → parse →
//! an immediate reply plus the jobs to enqueue. The Worker around it only moves bytes, reads the
//! clock and sends to the queue, so everything here is tested natively.

use serde::{Deserialize, Serialize};

use crate::chatops::{self, Action, ComponentId};
use crate::command::Command;
use crate::job::{
    self, DiscordCommandJob, DiscordComponentJob, GlitchtipIssueJob, GlitchtipUptimeJob, InteractionContext, Job,
    JobId, JobKind, SentryLegacyJob, SentryWebhookJob,
};
use crate::source::discord::{Interaction, InteractionType, callback};
use crate::source::glitchtip::{GlitchtipAlert, GlitchtipItem};
use crate::source::sentry::{Envelope, LegacyPluginPayload, Resource};
use crate::verify::{self, DiscordKey, SignatureError};

/// Default largest body accepted (far above any real interaction or alert).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default Discord replay window.
pub const DEFAULT_REPLAY_WINDOW_SECS: u64 = 300;
/// Default window within which an identical delivery is a duplicate (`DEDUPE_WINDOW_SECS`): a Sentry
/// delivery whose `Sentry-Hook-Timestamp` is older than this is refused.
pub const DEFAULT_DEDUPE_WINDOW_SECS: u64 = 600;

/// What the gateway authenticates with. Built once per isolate from the Worker's bindings.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub discord_key: Option<DiscordKey>,
    /// 0 disables the check.
    pub replay_window_secs: u64,
    pub sentry_client_secret: Option<String>,
    pub sentry_legacy_token: Option<String>,
    pub glitchtip_token: Option<String>,
    pub executor_secret: Option<String>,
    pub max_body_bytes: usize,
    /// `DEDUPE_WINDOW_SECS`; 0 disables the Sentry timestamp check.
    pub dedupe_window_secs: u64,
    /// `SLACK_SIGNING_SECRET`.
    pub slack_signing_secret: Option<String>,
    /// `SLACK_ALERT_CHANNELS`: the channel ids whose messages are alerts.
    pub slack_alert_channels: Vec<String>,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            discord_key: None,
            replay_window_secs: DEFAULT_REPLAY_WINDOW_SECS,
            sentry_client_secret: None,
            sentry_legacy_token: None,
            glitchtip_token: None,
            executor_secret: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            dedupe_window_secs: DEFAULT_DEDUPE_WINDOW_SECS,
            slack_signing_secret: None,
            slack_alert_channels: Vec::new(),
        }
    }
}

/// Every route the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    DiscordInteractions,
    SentryWebhook,
    SentryLegacy {
        token: String,
    },
    Glitchtip {
        token: String,
    },
    ExecutorCallback,
    SlackEvents,
    Health,
    /// `/admin/...` (handled by the Worker: it needs KV).
    Admin {
        rest: String,
    },
}

impl Route {
    /// A short, stable name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::DiscordInteractions => "discord",
            Self::SentryWebhook => "sentry",
            Self::SentryLegacy { .. } => "sentry_legacy",
            Self::Glitchtip { .. } => "glitchtip",
            Self::ExecutorCallback => "executor_callback",
            Self::SlackEvents => "slack",
            Self::Health => "health",
            Self::Admin { .. } => "admin",
        }
    }

    /// Routes that carry a body to authenticate and parse.
    pub fn is_ingress(&self) -> bool {
        !matches!(self, Self::Health | Self::Admin { .. })
    }
}

/// Maps method and path to a route, or the error to answer with.
pub fn route(method: &str, path: &str) -> Result<Route, IngressError> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (route, allowed) = match segments.as_slice() {
        ["discord", "interactions"] => (Route::DiscordInteractions, "POST"),
        ["webhooks", "sentry"] => (Route::SentryWebhook, "POST"),
        ["webhooks", "sentry", token] if !token.is_empty() => {
            (Route::SentryLegacy { token: (*token).to_owned() }, "POST")
        }
        ["webhooks", "glitchtip", token] if !token.is_empty() => {
            (Route::Glitchtip { token: (*token).to_owned() }, "POST")
        }
        ["executor", "callback"] => (Route::ExecutorCallback, "POST"),
        ["webhooks", "slack"] => (Route::SlackEvents, "POST"),
        ["health"] => (Route::Health, "GET"),
        ["admin", rest @ ..] => (Route::Admin { rest: rest.join("/") }, "*"),
        _ => return Err(IngressError::NotFound),
    };
    if allowed != "*" && method != allowed && !(allowed == "GET" && method == "HEAD") {
        return Err(IngressError::MethodNotAllowed { allow: allowed });
    }
    Ok(route)
}

/// The path of a serialized absolute URL, which is what the runtime's `request.url` is: what follows
/// the authority, up to the query or the fragment, and `/` when nothing does. These are the bytes
/// WHATWG `URL.pathname` gives for that URL (percent-encoding untouched), without building a `URL`.
pub fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find(['/', '?', '#']) {
        Some(start) if rest.as_bytes()[start] == b'/' => {
            let path = &rest[start..];
            path.find(['?', '#']).map_or(path, |end| &path[..end])
        }
        _ => "/",
    }
}

/// Header lookup, case-insensitive, as the platform provides it.
pub trait Headers {
    fn get(&self, name: &str) -> Option<String>;
}

impl Headers for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| (*v).to_owned())
    }
}

/// One request as the gateway sees it.
#[derive(Clone, Copy)]
pub struct IngressRequest<'a> {
    pub headers: &'a dyn Headers,
    pub body: &'a [u8],
    pub now_ms: u64,
    pub request_id: &'a str,
}

impl std::fmt::Debug for IngressRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressRequest")
            .field("body_len", &self.body.len())
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// An accepted request: the reply to send and the jobs to enqueue first.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub status: u16,
    /// JSON reply body.
    pub body: String,
    pub jobs: Vec<Job>,
    /// `jobs` encoded for the queue (filled by [`handle`], which refuses any that would not fit):
    /// the Worker sends these bytes as they are, so each job is serialized once.
    pub messages: Vec<String>,
    /// Why nothing was enqueued, when nothing was (for the log line).
    pub note: Option<&'static str>,
}

impl Accepted {
    fn json(status: u16, body: &impl Serialize, jobs: Vec<Job>, note: Option<&'static str>) -> Self {
        Self {
            status,
            body: serde_json::to_string(body).expect("replies always serialize"),
            jobs,
            messages: Vec::new(),
            note,
        }
    }

    fn enqueued(jobs: Vec<Job>) -> Self {
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        let body = serde_json::to_string(&Reply { ok: true, jobs: Some(ids), ..Reply::default() })
            .expect("replies always serialize");
        Self { status: 202, body, jobs, messages: Vec::new(), note: None }
    }

    fn ignored(note: &'static str) -> Self {
        Self::json(200, &Reply { ok: true, ignored: Some(note), ..Reply::default() }, Vec::new(), Some(note))
    }
}

/// The gateway's own JSON replies (typed rather than `serde_json::Value`: smaller wasm).
#[derive(Debug, Default, Serialize)]
struct Reply<'a> {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// An interaction callback, <https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object>.
#[derive(Debug, Serialize)]
struct Callback {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<CallbackData>,
}

#[derive(Debug, Serialize)]
struct CallbackData {
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    choices: Option<[u8; 0]>,
}

/// Every way a request is refused. Mapped to a status in one place, [`IngressError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed (use {allow})")]
    MethodNotAllowed { allow: &'static str },
    #[error("body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Unauthorized(SignatureError),
    #[error("invalid token")]
    BadToken,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{0} is not configured on this deployment")]
    NotConfigured(&'static str),
}

impl IngressError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::PayloadTooLarge { .. } => 413,
            Self::Unauthorized(_) | Self::BadToken => 401,
            Self::BadRequest(_) => 400,
            Self::NotConfigured(_) => 503,
        }
    }

    /// The JSON error body.
    pub fn body(&self) -> String {
        serde_json::to_string(&Reply { error: Some(&self.to_string()), ..Reply::default() })
            .expect("replies always serialize")
    }
}

/// Handles an ingress route (not `Health`/`Admin`, which the Worker serves itself).
pub fn handle(cfg: &IngressConfig, route: &Route, req: IngressRequest<'_>) -> Result<Accepted, IngressError> {
    handle_checked(cfg, route, req, None)
}

/// [`handle`], with the verdict on the route's signature when the caller reached it already, for the
/// same headers and body (the gateway, through WebCrypto: a Discord signature after
/// [`DiscordKey::precheck`], a Sentry HMAC). `None` verifies here (`verify_strict`, the HMAC in wasm).
/// The other routes ignore it.
pub fn handle_checked(
    cfg: &IngressConfig,
    route: &Route,
    req: IngressRequest<'_>,
    signature_verdict: Option<Result<(), SignatureError>>,
) -> Result<Accepted, IngressError> {
    if req.body.len() > cfg.max_body_bytes {
        return Err(IngressError::PayloadTooLarge { limit: cfg.max_body_bytes });
    }
    let mut accepted = match route {
        Route::DiscordInteractions => discord(cfg, req, signature_verdict),
        Route::SentryWebhook => sentry(cfg, req, signature_verdict),
        Route::SentryLegacy { token } => {
            check_token(cfg.sentry_legacy_token.as_deref(), token, "SENTRY_LEGACY_WEBHOOK_TOKEN")?;
            sentry_legacy(req)
        }
        Route::Glitchtip { token } => {
            check_token(cfg.glitchtip_token.as_deref(), token, "GLITCHTIP_WEBHOOK_TOKEN")?;
            glitchtip(req)
        }
        Route::ExecutorCallback => executor_callback(cfg, req),
        Route::SlackEvents => slack(cfg, req),
        Route::Health | Route::Admin { .. } => Err(IngressError::NotFound),
    }?;
    // A job the queue cannot take is refused here (413, which senders do not retry) rather than
    // failing at `send` as a 503 that they retry forever. Payloads are pruned to fit; other fields
    // (a Sentry `action`, GlitchTip titles, a Discord token) are bounded only by the body limit.
    accepted.messages = accepted
        .jobs
        .iter()
        .map(Job::to_message)
        .collect::<Result<_, _>>()
        .map_err(|_| IngressError::PayloadTooLarge { limit: job::MAX_JOB_BYTES })?;
    Ok(accepted)
}

fn check_token(configured: Option<&str>, presented: &str, name: &'static str) -> Result<(), IngressError> {
    let configured = configured.ok_or(IngressError::NotConfigured(name))?;
    if verify::token_matches(presented, configured) { Ok(()) } else { Err(IngressError::BadToken) }
}

fn header(req: &IngressRequest<'_>, name: &str) -> Result<String, IngressError> {
    req.headers.get(name).ok_or(IngressError::Unauthorized(SignatureError::Missing))
}

fn discord(
    cfg: &IngressConfig,
    req: IngressRequest<'_>,
    verdict: Option<Result<(), SignatureError>>,
) -> Result<Accepted, IngressError> {
    let key = cfg.discord_key.as_ref().ok_or(IngressError::NotConfigured("DISCORD_PUBLIC_KEY"))?;
    let signature = header(&req, "x-signature-ed25519")?;
    let timestamp = header(&req, "x-signature-timestamp")?;
    verdict.unwrap_or_else(|| key.verify(&timestamp, req.body, &signature)).map_err(IngressError::Unauthorized)?;
    verify::check_fresh(&timestamp, req.now_ms / 1000, cfg.replay_window_secs).map_err(IngressError::Unauthorized)?;

    let interaction: Interaction = serde_json::from_slice(req.body)
        .map_err(|e| IngressError::BadRequest(format!("interaction is not valid JSON: {e}")))?;
    let context = || InteractionContext {
        interaction_id: interaction.id,
        application_id: interaction.application_id,
        token: interaction.token.clone(),
        guild_id: interaction.guild_id,
        channel_id: interaction.channel_id,
        user: interaction.invoker().cloned(),
        roles: interaction.roles().to_vec(),
        reply_in_followup: false,
    };
    let job = |kind| Job::new(JobId::discord(interaction.id), req.now_ms, Some(req.request_id.to_owned()), kind);
    let deferred = Callback { kind: callback::DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, data: None };
    match interaction.kind {
        InteractionType::Ping => {
            Ok(Accepted::json(200, &Callback { kind: callback::PONG, data: None }, Vec::new(), Some("ping")))
        }
        InteractionType::ApplicationCommand => match Command::from_interaction(&interaction) {
            Ok(command) => {
                let job = job(JobKind::DiscordCommand(DiscordCommandJob {
                    interaction: context(),
                    command,
                    guidance: None,
                    card: None,
                }));
                Ok(Accepted::json(200, &deferred, vec![job], None))
            }
            Err(e) => Ok(Accepted::json(
                200,
                &Callback {
                    kind: callback::CHANNEL_MESSAGE_WITH_SOURCE,
                    data: Some(CallbackData {
                        content: Some(e.to_string()),
                        flags: Some(callback::EPHEMERAL),
                        choices: None,
                    }),
                },
                Vec::new(),
                Some("invalid command"),
            )),
        },
        InteractionType::MessageComponent | InteractionType::ModalSubmit => {
            let data = interaction.data.clone().unwrap_or_default();
            let custom_id =
                data.custom_id.clone().ok_or_else(|| IngressError::BadRequest("component without custom_id".into()))?;
            // "Fix with instructions" opens its modal at once: a modal can only be the first answer.
            if interaction.kind == InteractionType::MessageComponent
                && let Ok(id) = ComponentId::parse(&custom_id)
                && id.action == Action::FixWithInstructions
                && let Some(modal) = chatops::fix_modal(&id.fingerprint)
            {
                return Ok(Accepted::json(200, &modal, Vec::new(), Some("modal")));
            }
            let mut fields = Vec::new();
            data.components.iter().for_each(|c| c.fields(&mut fields));
            let job = job(JobKind::DiscordComponent(DiscordComponentJob {
                interaction: context(),
                custom_id,
                values: data.values,
                fields,
                message_id: interaction.message.as_ref().map(|m| m.id),
            }));
            // A click (or the modal it opened) is answered with a deferred update: the card itself
            // is then edited in place, and no "thinking…" message appears.
            let update = Callback { kind: callback::DEFERRED_UPDATE_MESSAGE, data: None };
            Ok(Accepted::json(200, &update, vec![job], None))
        }
        InteractionType::Autocomplete => Ok(Accepted::json(
            200,
            &Callback {
                kind: callback::AUTOCOMPLETE_RESULT,
                data: Some(CallbackData { content: None, flags: None, choices: Some([]) }),
            },
            Vec::new(),
            Some("autocomplete"),
        )),
        InteractionType::Other(n) => Err(IngressError::BadRequest(format!("unsupported interaction type {n}"))),
    }
}

/// The Sentry signature header: `Sentry-Hook-Signature`, or `Sentry-App-Signature` (older senders).
pub fn sentry_signature(headers: &dyn Headers) -> Option<String> {
    headers.get("sentry-hook-signature").or_else(|| headers.get("sentry-app-signature"))
}

fn sentry(
    cfg: &IngressConfig,
    req: IngressRequest<'_>,
    verdict: Option<Result<(), SignatureError>>,
) -> Result<Accepted, IngressError> {
    let secret = cfg.sentry_client_secret.as_deref().ok_or(IngressError::NotConfigured("SENTRY_CLIENT_SECRET"))?;
    let signature = sentry_signature(req.headers).ok_or(IngressError::Unauthorized(SignatureError::Missing))?;
    let mac = match verdict {
        Some(verdict) => verdict.and_then(|()| verify::hmac_sha256_hex_decode(&signature)),
        None => verify::hmac_sha256_hex_verified(secret.as_bytes(), req.body, &signature),
    }
    .map_err(IngressError::Unauthorized)?;
    // The timestamp is not signed, so this only stops a replay that keeps the captured headers; the
    // job id below (a hash of the signed body) stops the rest within the consumer's dedupe window.
    if let Some(timestamp) = req.headers.get("sentry-hook-timestamp") {
        check_sentry_timestamp(&timestamp, req.now_ms / 1000, cfg.dedupe_window_secs)?;
    }

    let resource = Resource::from_header(
        &req.headers
            .get("sentry-hook-resource")
            .ok_or_else(|| IngressError::BadRequest("Sentry-Hook-Resource header missing".into()))?,
    );
    if !resource.is_actionable() {
        return Ok(Accepted::ignored("resource not actionable"));
    }
    if req.body.is_empty() {
        return Err(IngressError::BadRequest(format!("empty body for resource {}", resource.as_str())));
    }
    let envelope: Envelope = serde_json::from_slice(req.body)
        .map_err(|e| IngressError::BadRequest(format!("body is not valid JSON: {e}")))?;
    if envelope.data.is_none() {
        return Err(IngressError::BadRequest("body has no `data`".into()));
    }
    let action = envelope.action.unwrap_or_default();
    // Not the `Request-ID`: it is unsigned, so a captured delivery replayed under a new one would be
    // a new job. Sentry's own retries resend the same body, so they keep this id too. The verified
    // HMAC is already a hash of the body; hashing it again keeps the header value out of the id (and
    // so out of logs) and costs one SHA-256 block, not a second pass over the body.
    let id = JobId::hashed("sentry", &verify::sha256_hex(&mac), 0);
    let (payload, pruned) = fit(req.body)?;
    let job = Job::new(
        id,
        req.now_ms,
        Some(req.request_id.to_owned()),
        JobKind::SentryWebhook(SentryWebhookJob { resource, action, payload, pruned }),
    );
    Ok(Accepted::enqueued(vec![job]))
}

/// Leaves room for the job envelope around the payload.
fn fit(body: &[u8]) -> Result<(String, bool), IngressError> {
    job::fit_payload(body, None, job::MAX_JOB_BYTES - 4 * 1024)
        .map_err(|_| IngressError::PayloadTooLarge { limit: job::MAX_JOB_BYTES })
}

/// `Sentry-Hook-Timestamp` is unix seconds (a fraction, if any, is ignored). One older than the
/// window, or too far ahead of our clock, is a replay (401); one that is not a time is malformed (400).
fn check_sentry_timestamp(timestamp: &str, now_secs: u64, window_secs: u64) -> Result<(), IngressError> {
    let whole = timestamp.trim().split('.').next().unwrap_or_default();
    match verify::check_fresh(whole, now_secs, window_secs) {
        Ok(_) => Ok(()),
        Err(SignatureError::BadTimestamp) => {
            Err(IngressError::BadRequest("Sentry-Hook-Timestamp is not a unix time".into()))
        }
        Err(e) => Err(IngressError::Unauthorized(e)),
    }
}

fn sentry_legacy(req: IngressRequest<'_>) -> Result<Accepted, IngressError> {
    let payload: LegacyPluginPayload = serde_json::from_slice(req.body)
        .map_err(|e| IngressError::BadRequest(format!("not a Sentry WebHooks plugin body: {e}")))?;
    if payload.group_id().is_none() {
        return Err(IngressError::BadRequest("Sentry WebHooks plugin body has no issue `id`".into()));
    }
    let (payload, pruned) = fit(req.body)?;
    let id = JobId::hashed("sentry-legacy", &verify::sha256_hex(req.body), 0);
    let job = Job::new(
        id,
        req.now_ms,
        Some(req.request_id.to_owned()),
        JobKind::SentryLegacy(SentryLegacyJob { payload, pruned }),
    );
    Ok(Accepted::enqueued(vec![job]))
}

fn glitchtip(req: IngressRequest<'_>) -> Result<Accepted, IngressError> {
    let alert = GlitchtipAlert::parse(req.body).map_err(|e| IngressError::BadRequest(e.to_string()))?;
    if alert.items.is_empty() {
        return Ok(Accepted::ignored("no issues in alert"));
    }
    let hash = verify::sha256_hex(req.body);
    let jobs = alert
        .items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (id, kind) = match item {
                GlitchtipItem::Issue(issue) => (
                    JobId::hashed("glitchtip", &hash, i),
                    JobKind::GlitchtipIssue(GlitchtipIssueJob { issue, alert_headline: alert.headline.clone() }),
                ),
                GlitchtipItem::Uptime(uptime) => (
                    JobId::hashed("glitchtip-uptime", &hash, i),
                    JobKind::GlitchtipUptime(GlitchtipUptimeJob { uptime }),
                ),
            };
            Job::new(id, req.now_ms, Some(req.request_id.to_owned()), kind)
        })
        .collect();
    Ok(Accepted::enqueued(jobs))
}

/// `url_verification`'s answer (<https://docs.slack.dev/reference/events/url_verification>).
#[derive(Serialize)]
struct SlackChallenge<'a> {
    challenge: &'a str,
}

/// A Slack Events API delivery ([`crate::slack::decide`]); the job id is Slack's `event_id`, so a
/// retry (`X-Slack-Retry-Num`) is the same job and the consumer drops it.
fn slack(cfg: &IngressConfig, req: IngressRequest<'_>) -> Result<Accepted, IngressError> {
    use crate::slack::{Decision, Refusal};
    let secret = cfg.slack_signing_secret.as_deref().ok_or(IngressError::NotConfigured("SLACK_SIGNING_SECRET"))?;
    let decision = crate::slack::decide(
        secret.as_bytes(),
        &cfg.slack_alert_channels,
        req.headers.get(crate::slack::TIMESTAMP_HEADER).as_deref(),
        req.headers.get(crate::slack::SIGNATURE_HEADER).as_deref(),
        req.body,
        req.now_ms,
    )
    .map_err(|refusal| match refusal {
        Refusal::Unauthorized(e) => IngressError::Unauthorized(e),
        Refusal::BadRequest(reason) => IngressError::BadRequest(reason),
    })?;
    Ok(match decision {
        Decision::Challenge(challenge) => {
            Accepted::json(200, &SlackChallenge { challenge: &challenge }, Vec::new(), Some("url_verification"))
        }
        Decision::Ignored(note) => Accepted::ignored(note),
        Decision::Alert { event_id, channel, event } => Accepted::enqueued(vec![Job::new(
            JobId::slack(&event_id),
            req.now_ms,
            Some(req.request_id.to_owned()),
            JobKind::SlackMessage(job::SlackMessageJob { channel, event: *event }),
        )]),
    })
}

/// All the gateway reads of a fix report: its job id.
#[derive(Deserialize)]
struct ReportHead {
    job_id: String,
}

/// Signed result of a fix run. The signature scheme is the executor contract's.
fn executor_callback(cfg: &IngressConfig, req: IngressRequest<'_>) -> Result<Accepted, IngressError> {
    let secret = cfg.executor_secret.as_deref().ok_or(IngressError::NotConfigured("EXECUTOR_SECRET"))?;
    let timestamp = header(&req, crate::executor::TIMESTAMP_HEADER)?;
    let signature = header(&req, crate::executor::SIGNATURE_HEADER)?;
    crate::executor::verify(
        secret.as_bytes(),
        &timestamp,
        &signature,
        req.body,
        req.now_ms / 1000,
        DEFAULT_REPLAY_WINDOW_SECS,
    )
    .map_err(IngressError::Unauthorized)?;
    let head: ReportHead = serde_json::from_slice(req.body)
        .map_err(|e| IngressError::BadRequest(format!("report is not a JSON object with a job_id: {e}")))?;
    let job_id = head.job_id.as_str();
    let (payload, _) = fit(req.body)?;
    let id = JobId::hashed(
        &format!("fix-result:{}", job_id.chars().filter(char::is_ascii_alphanumeric).take(64).collect::<String>()),
        &verify::sha256_hex(req.body),
        0,
    );
    let job = Job::new(
        id,
        req.now_ms,
        Some(req.request_id.to_owned()),
        JobKind::ExecutorResult(job::ExecutorResultJob { report: payload }),
    );
    Ok(Accepted::enqueued(vec![job]))
}

#[cfg(test)]
mod tests {
    use super::url_path;

    #[test]
    fn url_path_is_the_whatwg_pathname_of_a_serialized_url() {
        for (url, path) in [
            ("https://bugbot.example/health", "/health"),
            ("http://127.0.0.1:8787/discord/interactions", "/discord/interactions"),
            ("https://bugbot.example/webhooks/sentry?x=/y#z", "/webhooks/sentry"),
            ("https://bugbot.example/webhooks/glitchtip/a%2Fb", "/webhooks/glitchtip/a%2Fb"),
            ("https://bugbot.example/admin/jobs#frag/ment", "/admin/jobs"),
            ("https://bugbot.example/", "/"),
            ("https://bugbot.example", "/"),
            ("https://bugbot.example?q=/health", "/"),
            ("https://user:pw@bugbot.example:443/health/", "/health/"),
        ] {
            assert_eq!(url_path(url), path, "{url}");
        }
    }
}
