//! Discord, over the REST API (<https://discord.com/developers/docs/reference>).
//!
//! Channel messages are bot calls (`Authorization: Bot <token>`); the deferred interaction reply
//! and its follow-ups are webhook calls authenticated by the interaction token in the path, which
//! lives 15 minutes (<https://discord.com/developers/docs/interactions/receiving-and-responding#followup-messages>).
//! Every call carries the `User-Agent: DiscordBot (<url>, <version>)` Discord requires.
//! A 429 tells how long to wait in its JSON body (`retry_after`, float seconds)
//! (<https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit>).

use std::fmt;

use bugbot_shared::backoff::{RetryAfter, parse_retry_after};
use bugbot_shared::source::discord::{Message, Snowflake};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use worker::Url;

use super::SinkError;
use crate::clients::http::{HttpPort, HttpRequest, HttpResponse, Method};

const SERVICE: &str = "discord";

/// Where the API lives unless `DISCORD_API_BASE` says otherwise.
pub const DEFAULT_API_BASE: &str = "https://discord.com/api/v10";

const USER_AGENT: &str = concat!("DiscordBot (https://github.com/bugbot-dev/bugbot, ", env!("CARGO_PKG_VERSION"), ")");

/// A Discord client: bot calls need `bot_token`, interaction webhooks do not.
pub struct Discord<'a, P> {
    pub port: &'a P,
    /// `DISCORD_API_BASE`, default [`DEFAULT_API_BASE`].
    pub api_base: String,
    /// `DISCORD_BOT_TOKEN`.
    pub bot_token: Option<String>,
}

impl<P> fmt::Debug for Discord<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discord")
            .field("api_base", &self.api_base)
            .field("bot_token", &self.bot_token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// Where a message lives, to edit it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef {
    pub channel_id: Snowflake,
    pub message_id: Snowflake,
}

/// Who a call authenticates as.
enum Auth<'t> {
    Bot,
    /// The interaction token is in the path; it must not show up in errors either.
    Interaction(&'t str),
}

impl<'a, P: HttpPort> Discord<'a, P> {
    /// A client for the production API.
    pub fn new(port: &'a P, bot_token: Option<String>) -> Self {
        Self { port, api_base: DEFAULT_API_BASE.to_owned(), bot_token }
    }

    /// The same client against another API base (`DISCORD_API_BASE`).
    #[must_use]
    pub fn with_api_base(mut self, api_base: impl Into<String>) -> Self {
        self.api_base = api_base.into();
        self
    }

    /// `POST /channels/{channel_id}/messages` (<https://discord.com/developers/docs/resources/message#create-message>).
    pub async fn create_message(&self, channel_id: &str, body: &Value) -> Result<MessageRef, SinkError> {
        let channel = snowflake("channel id", channel_id)?;
        let url = self.url(&["channels", &channel.to_string(), "messages"])?;
        let message: Message = self.call(Method::Post, url, Some(body), &Auth::Bot).await?;
        Ok(message_ref(&message, channel))
    }

    /// `PATCH /channels/{channel_id}/messages/{message_id}` (<https://discord.com/developers/docs/resources/message#edit-message>).
    pub async fn edit_message(
        &self,
        channel_id: &str,
        message_id: &str,
        body: &Value,
    ) -> Result<MessageRef, SinkError> {
        let channel = snowflake("channel id", channel_id)?;
        let id = snowflake("message id", message_id)?;
        let url = self.url(&["channels", &channel.to_string(), "messages", &id.to_string()])?;
        let message: Message = self.call(Method::Patch, url, Some(body), &Auth::Bot).await?;
        Ok(message_ref(&message, channel))
    }

    /// Edits the deferred reply in place: `PATCH /webhooks/{application_id}/{token}/messages/@original`
    /// (<https://discord.com/developers/docs/interactions/receiving-and-responding#edit-original-interaction-response>).
    pub async fn edit_original(
        &self,
        application_id: &str,
        interaction_token: &str,
        body: &Value,
    ) -> Result<MessageRef, SinkError> {
        let app = snowflake("application id", application_id)?;
        let url = self.url(&["webhooks", &app.to_string(), interaction_token, "messages", "@original"])?;
        let message: Message = self.call(Method::Patch, url, Some(body), &Auth::Interaction(interaction_token)).await?;
        message_ref_of(&message)
    }

    /// `POST /webhooks/{application_id}/{token}` (<https://discord.com/developers/docs/interactions/receiving-and-responding#create-followup-message>).
    /// Deletes the deferred reply, <https://discord.com/developers/docs/interactions/receiving-and-responding#delete-original-interaction-response>
    /// (`204 No Content`). Used when the answer must be ephemeral after a public deferral.
    pub async fn delete_original(&self, application_id: &str, interaction_token: &str) -> Result<(), SinkError> {
        let app = snowflake("application id", application_id)?;
        let url = self.url(&["webhooks", &app.to_string(), interaction_token, "messages", "@original"])?;
        let request = HttpRequest::new(Method::Delete, url.as_str()).header("user-agent", USER_AGENT);
        let result = match self.port.send(request).await {
            Ok(response) => check(&response),
            Err(e) => Err(SinkError::transport(SERVICE, &e)),
        };
        result.map_err(|e| redact(e, interaction_token))
    }

    pub async fn followup(
        &self,
        application_id: &str,
        interaction_token: &str,
        body: &Value,
    ) -> Result<MessageRef, SinkError> {
        let app = snowflake("application id", application_id)?;
        let url = self.url(&["webhooks", &app.to_string(), interaction_token])?;
        let message: Message = self.call(Method::Post, url, Some(body), &Auth::Interaction(interaction_token)).await?;
        message_ref_of(&message)
    }

    /// The latest `limit` (1–100) messages of a channel, newest first
    /// (<https://discord.com/developers/docs/resources/message#get-channel-messages>).
    pub async fn channel_messages(&self, channel_id: &str, limit: u8) -> Result<Vec<Message>, SinkError> {
        let channel = snowflake("channel id", channel_id)?;
        let mut url = self.url(&["channels", &channel.to_string(), "messages"])?;
        url.query_pairs_mut().append_pair("limit", &limit.clamp(1, 100).to_string());
        self.call(Method::Get, url, None, &Auth::Bot).await
    }

    fn url(&self, segments: &[&str]) -> Result<Url, SinkError> {
        let mut url = Url::parse(&self.api_base).map_err(|e| permanent(format!("DISCORD_API_BASE: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| permanent("DISCORD_API_BASE cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        auth: &Auth<'_>,
    ) -> Result<T, SinkError> {
        let mut request = HttpRequest::new(method, url.as_str()).header("user-agent", USER_AGENT);
        let secret = match auth {
            Auth::Bot => {
                let token = self.bot_token.as_deref().filter(|t| !t.is_empty());
                let token = token.ok_or_else(|| permanent("DISCORD_BOT_TOKEN not configured"))?;
                request = request.header("authorization", format!("Bot {token}"));
                token
            }
            Auth::Interaction(token) => token,
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let result = match self.port.send(request).await {
            Ok(response) => check(&response).and_then(|()| {
                serde_json::from_slice(&response.body).map_err(|e| permanent(format!("unexpected answer: {e}")))
            }),
            Err(e) => Err(SinkError::transport(SERVICE, &e)),
        };
        result.map_err(|e| redact(e, secret))
    }
}

fn permanent(reason: impl Into<String>) -> SinkError {
    SinkError::Permanent { service: SERVICE, reason: reason.into() }
}

fn snowflake(what: &str, raw: &str) -> Result<Snowflake, SinkError> {
    raw.trim().parse().map(Snowflake).map_err(|_| permanent(format!("{what} is not a snowflake: {raw:?}")))
}

fn message_ref(message: &Message, channel: Snowflake) -> MessageRef {
    MessageRef { channel_id: message.channel_id.unwrap_or(channel), message_id: message.id }
}

fn message_ref_of(message: &Message) -> Result<MessageRef, SinkError> {
    let channel = message.channel_id.ok_or_else(|| permanent("message has no channel_id"))?;
    Ok(MessageRef { channel_id: channel, message_id: message.id })
}

/// Discord's error body (<https://discord.com/developers/docs/topics/opcodes-and-status-codes#json>).
#[derive(Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<u64>,
}

fn check(response: &HttpResponse) -> Result<(), SinkError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let error = serde_json::from_slice::<ErrorBody>(&response.body).unwrap_or_default();
    let message = match (error.message.is_empty(), error.code) {
        (true, _) => format!("HTTP {status}"),
        (false, Some(code)) if code != 0 => format!("HTTP {status}: {} ({code})", short(&error.message)),
        (false, _) => format!("HTTP {status}: {}", short(&error.message)),
    };
    if status == 429 || status >= 500 {
        let retry_after = (status == 429).then(|| retry_after(response)).flatten();
        return Err(SinkError::Transient { service: SERVICE, reason: message, retry_after });
    }
    Err(permanent(message))
}

/// The body's `retry_after` (float seconds, exact) or else the `Retry-After` header (whole
/// seconds, rounded up) or `X-RateLimit-Reset-After`.
fn retry_after(response: &HttpResponse) -> Option<RetryAfter> {
    let body = std::str::from_utf8(&response.body).ok();
    body.and_then(RetryAfter::from_discord_body).or_else(|| {
        ["retry-after", "x-ratelimit-reset-after"]
            .into_iter()
            .filter_map(|name| response.header(name))
            // Both are relative seconds here; no date form to read against a clock.
            .find_map(|value| parse_retry_after(value, u64::MAX))
    })
}

fn short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn redact(error: SinkError, secret: &str) -> SinkError {
    let scrub = |reason: String| if secret.is_empty() { reason } else { reason.replace(secret, "[redacted]") };
    match error {
        SinkError::Transient { service, reason, retry_after } => {
            SinkError::Transient { service, reason: scrub(reason), retry_after }
        }
        SinkError::Permanent { service, reason } => SinkError::Permanent { service, reason: scrub(reason) },
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use serde_json::json;

    use super::*;
    use crate::clients::http::TransportError;
    use crate::clients::linear::recording::{RecordingPort, answer, answer_with, body_json, header, secret};

    fn bot_token() -> String {
        secret("bot.")
    }

    fn discord(port: &RecordingPort) -> Discord<'_, RecordingPort> {
        Discord::new(port, Some(bot_token())).with_api_base("http://discord.test/api/v10")
    }

    fn message(id: u64, channel: u64) -> String {
        json!({"id": id.to_string(), "channel_id": channel.to_string(), "content": "hi", "type": 0,
               "author": {"id": "11", "username": "bugbot", "bot": true}, "timestamp": "2024-05-01T10:00:00.000000+00:00",
               "embeds": [], "edited_timestamp": null})
        .to_string()
    }

    #[test]
    fn create_and_edit_channel_messages_as_the_bot() {
        let port = RecordingPort::new([answer(200, &message(1001, 42)), answer(200, &message(1001, 42))]);
        let d = discord(&port);
        let body = json!({"embeds": [{"title": "ZeroDivisionError"}]});
        let sent = block_on(d.create_message("42", &body)).unwrap();
        assert_eq!(sent, MessageRef { channel_id: Snowflake(42), message_id: Snowflake(1001) });
        let edited = block_on(d.edit_message("42", "1001", &json!({"content": "resolved"}))).unwrap();
        assert_eq!(edited, sent);

        let requests = port.requests();
        assert_eq!(
            (requests[0].method, requests[0].url.as_str()),
            (Method::Post, "http://discord.test/api/v10/channels/42/messages")
        );
        assert_eq!(body_json(&requests[0]), body);
        assert_eq!(
            (requests[1].method, requests[1].url.as_str()),
            (Method::Patch, "http://discord.test/api/v10/channels/42/messages/1001")
        );
        for request in &requests {
            assert_eq!(header(request, "authorization"), Some(format!("Bot {}", bot_token()).as_str()));
            let agent = header(request, "user-agent").unwrap();
            assert!(agent.starts_with("DiscordBot (https://github.com/bugbot-dev/bugbot, "), "{agent}");
            assert_eq!(header(request, "content-type"), Some("application/json"));
        }
    }

    #[test]
    fn interaction_webhooks_use_the_token_not_the_bot() {
        let port = RecordingPort::new([answer(200, &message(2002, 42)), answer(200, &message(2003, 42))]);
        let d = Discord::new(&port, None).with_api_base("http://discord.test/api/v10");
        let token = secret("aW50ZXJhY3Rpb24");
        let edited = block_on(d.edit_original("777", &token, &json!({"content": "Filed ENG-1"}))).unwrap();
        assert_eq!(edited.message_id, Snowflake(2002));
        let followup = block_on(d.followup("777", &token, &json!({"content": "more", "flags": 64}))).unwrap();
        assert_eq!(followup.message_id, Snowflake(2003));

        let requests = port.requests();
        assert_eq!(requests[0].method, Method::Patch);
        assert_eq!(requests[0].url, format!("http://discord.test/api/v10/webhooks/777/{token}/messages/@original"));
        assert_eq!(requests[1].method, Method::Post);
        assert_eq!(requests[1].url, format!("http://discord.test/api/v10/webhooks/777/{token}"));
        for request in &requests {
            assert_eq!(header(request, "authorization"), None);
            assert!(header(request, "user-agent").unwrap().starts_with("DiscordBot"));
        }
    }

    #[test]
    fn channel_messages_reads_the_shared_model() {
        let list = format!("[{},{}]", message(3, 42), message(2, 42));
        let port = RecordingPort::new([answer(200, &list)]);
        let messages = block_on(discord(&port).channel_messages("42", 20)).unwrap();
        assert_eq!(messages.iter().map(|m| m.id).collect::<Vec<_>>(), [Snowflake(3), Snowflake(2)]);
        assert_eq!(messages[0].author.as_ref().unwrap().username, "bugbot");
        let request = port.only();
        assert_eq!(
            (request.method, request.url.as_str()),
            (Method::Get, "http://discord.test/api/v10/channels/42/messages?limit=20")
        );
        assert!(request.body.is_none());
    }

    #[test]
    fn bot_calls_without_a_token_fail_permanently_and_send_nothing() {
        let port = RecordingPort::new([]);
        let d = Discord::new(&port, None);
        for e in [
            block_on(d.create_message("42", &json!({}))).unwrap_err(),
            block_on(d.channel_messages("42", 5)).unwrap_err(),
            block_on(d.edit_message("42", "1", &json!({}))).unwrap_err(),
        ] {
            assert_eq!(
                e,
                SinkError::Permanent { service: "discord", reason: "DISCORD_BOT_TOKEN not configured".into() }
            );
        }
        assert!(block_on(discord(&port).create_message("general", &json!({}))).is_err_and(|e| !e.is_transient()));
        assert!(port.requests().is_empty());
    }

    fn failure(answer: Result<HttpResponse, TransportError>) -> SinkError {
        let port = RecordingPort::new([answer]);
        block_on(discord(&port).create_message("42", &json!({"content": "x"}))).unwrap_err()
    }

    fn delay(error: &SinkError) -> Option<u64> {
        match error {
            SinkError::Transient { retry_after, .. } => retry_after.map(|r| r.delay_ms),
            SinkError::Permanent { .. } => panic!("expected transient, got {error}"),
        }
    }

    #[test]
    fn rate_limits_take_the_bodys_exact_delay_then_the_header() {
        let body = r#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#;
        let headers = [("retry-after", "2"), ("x-ratelimit-reset-after", "1.500"), ("x-ratelimit-scope", "user")];
        let e = failure(answer_with(429, &headers, body));
        assert_eq!(delay(&e), Some(1_500));
        assert!(e.to_string().contains("You are being rate limited."), "{e}");
        assert_eq!(delay(&failure(answer_with(429, &[("retry-after", "3")], "error code: 1015"))), Some(3_000));
        assert_eq!(delay(&failure(answer_with(429, &[("x-ratelimit-reset-after", "0.25")], ""))), Some(250));
        assert_eq!(delay(&failure(answer(429, ""))), None);
    }

    #[test]
    fn server_errors_and_timeouts_are_transient() {
        assert_eq!(delay(&failure(answer(500, r#"{"message": "500: Internal Server Error", "code": 0}"#))), None);
        assert_eq!(delay(&failure(answer(502, "<html>"))), None);
        assert!(failure(Err(TransportError::Timeout(5_000))).is_transient());
    }

    #[test]
    fn auth_and_missing_resources_are_permanent_without_secrets() {
        let e = failure(answer(401, r#"{"message": "401: Unauthorized", "code": 0}"#));
        assert_eq!(e.to_string(), "discord: HTTP 401: 401: Unauthorized");
        assert!(!failure(answer(403, r#"{"message": "Missing Access", "code": 50001}"#)).is_transient());
        let e = failure(answer(404, r#"{"message": "Unknown Channel", "code": 10003}"#));
        assert_eq!(e.to_string(), "discord: HTTP 404: Unknown Channel (10003)");
        let e = failure(answer(400, &json!({"message": format!("bad {}", bot_token()), "code": 50035}).to_string()));
        assert!(!e.is_transient() && !e.to_string().contains(&bot_token()), "{e}");

        let token = secret("aW50ZXJhY3Rpb24");
        let port =
            RecordingPort::new([Err(TransportError::Connect(format!("https://discord.test/webhooks/1/{token}")))]);
        let e = block_on(discord(&port).followup("1", &token, &json!({}))).unwrap_err();
        assert!(e.is_transient() && !e.to_string().contains(&token), "{e}");
        assert!(!format!("{:?}", discord(&port)).contains(&bot_token()));
    }
}
