//! A fake Discord REST API under `/api/v10` (<https://discord.com/developers/docs/reference>).
//!
//! Routes: channel messages (`POST` create, `GET` list newest-first with `limit`/`before`/`after`,
//! `GET`/`PATCH` one, keeping every earlier version), and the interaction webhooks
//! (`PATCH /webhooks/{app}/{token}/messages/@original`, `POST /webhooks/{app}/{token}`).
//!
//! Every request must carry a `User-Agent` starting with `DiscordBot`; channel routes need
//! `Authorization: Bot <token>` (401 otherwise), webhook routes need none but the configured
//! application id and an unexpired token (404 `Unknown Webhook` otherwise). Message bodies are
//! checked against Discord's limits (2000-character content, embed limits, no empty messages) and
//! rejected with its `50035 Invalid Form Body` / `50006` errors. Ids are real-looking snowflakes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bugbot_shared::source::discord::Snowflake;
use serde_json::{Value, json};

use super::{Failure, Incoming, Server, SharedRecorder, ceil_secs, hang, intake, lock, now_ms, rfc3339, scripted_fake};

/// Discord's epoch (2015-01-01) in unix ms, for snowflakes.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// A message the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: Snowflake,
    pub channel_id: Snowflake,
    /// The message object as served now.
    pub json: Value,
    /// Earlier versions, oldest first (one per edit).
    pub history: Vec<Value>,
    /// Sent through an interaction webhook (the deferred reply or a follow-up).
    pub via_interaction: bool,
}

impl Message {
    pub fn content(&self) -> &str {
        self.json["content"].as_str().unwrap_or_default()
    }

    pub fn embeds(&self) -> &[Value] {
        self.json["embeds"].as_array().map_or(&[], Vec::as_slice)
    }
}

/// What was done through an interaction token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InteractionCallKind {
    EditOriginal,
    Followup,
    DeleteOriginal,
}

/// One call to an interaction webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionCall {
    pub kind: InteractionCallKind,
    pub application_id: Snowflake,
    pub token: String,
    pub body: Value,
    pub message_id: Snowflake,
}

#[derive(Debug)]
struct Data {
    bot_token: String,
    application_id: Snowflake,
    /// Where interaction replies appear.
    interaction_channel: Snowflake,
    messages: Vec<Message>,
    calls: Vec<InteractionCall>,
    /// Interaction tokens of clicks answered with a deferred update: their `@original` is the
    /// message the button was on.
    clicked: std::collections::BTreeMap<String, Snowflake>,
    expired: BTreeSet<String>,
    last_id: u64,
    /// The next channel message is created but its answer is this failure (a lost response).
    lose_next_create: Option<Failure>,
}

type Shared = Arc<Mutex<Data>>;

#[derive(Clone)]
struct AppState {
    data: Shared,
    recorder: SharedRecorder,
}

/// A running fake Discord API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeDiscord {
    server: Server,
    data: Shared,
    recorder: SharedRecorder,
}

scripted_fake!(FakeDiscord);

impl FakeDiscord {
    /// Starts the fake for a bot (`Authorization: Bot <bot_token>`) of application `application_id`.
    pub async fn start(bot_token: &str, application_id: Snowflake) -> Self {
        let data = Arc::new(Mutex::new(Data {
            bot_token: bot_token.to_owned(),
            application_id,
            interaction_channel: Snowflake(0),
            messages: Vec::new(),
            calls: Vec::new(),
            clicked: std::collections::BTreeMap::new(),
            expired: BTreeSet::new(),
            last_id: 0,
            lose_next_create: None,
        }));
        {
            let mut data = lock(&data);
            data.interaction_channel = Snowflake(data.next_id());
        }
        let recorder = SharedRecorder::default();
        let app =
            Router::new().fallback(handle).with_state(AppState { data: data.clone(), recorder: recorder.clone() });
        Self { server: super::serve(app).await, data, recorder }
    }

    /// The API base, for `DISCORD_API_BASE` (`http://127.0.0.1:<port>/api/v10`).
    pub fn url(&self) -> String {
        format!("http://{}/api/v10", self.server.addr)
    }

    /// The channel interaction replies appear in.
    pub fn interaction_channel(&self) -> Snowflake {
        lock(&self.data).interaction_channel
    }

    /// Puts a message from a user (not the bot) in a channel; returns its id.
    pub fn add_message(&self, channel_id: Snowflake, username: &str, content: &str) -> Snowflake {
        let mut data = lock(&self.data);
        let id = Snowflake(data.next_id());
        let author = json!({"id": (id.0 ^ 0x5555).to_string(), "username": username, "global_name": username, "discriminator": "0"});
        let json = message_json(id, channel_id, &json!({"content": content}), &author);
        data.messages.push(Message { id, channel_id, json, history: Vec::new(), via_interaction: false });
        id
    }

    /// A click on `message_id` was answered with a deferred update (type 6): the interaction's
    /// `@original` is that message, as on Discord.
    pub fn clicked(&self, token: &str, message_id: Snowflake) {
        lock(&self.data).clicked.insert(token.to_owned(), message_id);
    }

    /// One message by id, wherever it is.
    pub fn message(&self, id: Snowflake) -> Option<Message> {
        lock(&self.data).messages.iter().find(|m| m.id == id).cloned()
    }

    /// The next `POST /channels/{id}/messages` creates its message, but the client gets `failure`
    /// instead of the answer (a 500, or no answer at all): a lost response.
    pub fn lose_next_create_response(&self, failure: Failure) {
        lock(&self.data).lose_next_create = Some(failure);
    }

    /// Makes an interaction token unusable, as after its 15 minutes.
    pub fn expire_interaction(&self, token: &str) {
        lock(&self.data).expired.insert(token.to_owned());
    }

    /// Messages of one channel, oldest first.
    pub fn messages(&self, channel_id: Snowflake) -> Vec<Message> {
        lock(&self.data).messages.iter().filter(|m| m.channel_id == channel_id).cloned().collect()
    }

    /// Every message, oldest first.
    pub fn all_messages(&self) -> Vec<Message> {
        lock(&self.data).messages.clone()
    }

    /// Every interaction webhook call, in order.
    pub fn interaction_calls(&self) -> Vec<InteractionCall> {
        lock(&self.data).calls.clone()
    }

    /// The `@original` edits, in order.
    pub fn original_edits(&self) -> Vec<InteractionCall> {
        self.calls_of(InteractionCallKind::EditOriginal)
    }

    /// The follow-ups, in order.
    pub fn followups(&self) -> Vec<InteractionCall> {
        self.calls_of(InteractionCallKind::Followup)
    }

    fn calls_of(&self, kind: InteractionCallKind) -> Vec<InteractionCall> {
        self.interaction_calls().into_iter().filter(|c| c.kind == kind).collect()
    }
}

/// How long Discord remembers a nonce ("the past few minutes").
const NONCE_WINDOW_MS: u64 = 5 * 60 * 1000;

/// When a snowflake was made (unix ms).
fn snowflake_ms(id: Snowflake) -> u64 {
    (id.0 >> 22) + DISCORD_EPOCH_MS
}

impl Data {
    /// A snowflake for now, strictly increasing.
    fn next_id(&mut self) -> u64 {
        let id = (now_ms().saturating_sub(DISCORD_EPOCH_MS) << 22).max(self.last_id + 1);
        self.last_id = id;
        id
    }

    fn bot_author(&self) -> Value {
        json!({"id": (self.application_id.0).to_string(), "username": "bugbot", "global_name": null,
               "discriminator": "0", "bot": true})
    }
}

fn message_json(id: Snowflake, channel_id: Snowflake, body: &Value, author: &Value) -> Value {
    let mut message = json!({
        "id": id.to_string(), "channel_id": channel_id.to_string(), "type": 0, "content": "",
        "embeds": [], "components": [], "attachments": [], "mentions": [], "mention_roles": [],
        "pinned": false, "mention_everyone": false, "tts": false, "flags": 0,
        "timestamp": rfc3339(now_ms()), "edited_timestamp": null, "author": author,
    });
    apply(&mut message, body);
    message
}

/// Copies the editable fields of a create/edit body onto a message object.
fn apply(message: &mut Value, body: &Value) {
    for key in ["content", "embeds", "components", "flags"] {
        if let Some(value) = body.get(key).filter(|v| !v.is_null()) {
            message[key] = value.clone();
        }
    }
}

// --- HTTP ----------------------------------------------------------------------------------------

fn error(status: StatusCode, code: u64, text: &str) -> Response {
    (status, axum::Json(json!({"message": text, "code": code}))).into_response()
}

fn invalid_form(errors: &Value) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"message": "Invalid Form Body", "code": 50035, "errors": errors})))
        .into_response()
}

fn form_error(errors: &Value) -> Result<Value, Box<Response>> {
    Err(Box::new(invalid_form(errors)))
}

fn field_error(code: &str, text: &str) -> Value {
    json!({"_errors": [{"code": code, "message": text}]})
}

/// Discord's 429 (<https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit>).
fn rate_limited(retry_after_secs: f64) -> Response {
    let body = json!({"message": "You are being rate limited.", "retry_after": retry_after_secs, "global": false});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    #[expect(clippy::cast_precision_loss, reason = "epoch ms fits an f64 exactly enough")]
    let reset = now_ms() as f64 / 1_000.0 + retry_after_secs;
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, ceil_secs(retry_after_secs).into());
    headers.insert("x-ratelimit-limit", 5.into());
    headers.insert("x-ratelimit-remaining", 0.into());
    for (name, value) in [
        ("x-ratelimit-reset", format!("{reset:.3}")),
        ("x-ratelimit-reset-after", format!("{retry_after_secs:.3}")),
        ("x-ratelimit-bucket", "fake0bucket".to_owned()),
        ("x-ratelimit-scope", "user".to_owned()),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).expect("ascii"));
    }
    response
}

async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let incoming = intake(&app.recorder, request).await;
    match incoming.failure {
        Some(Failure::Hang) => return hang().await,
        Some(Failure::RateLimited { retry_after_secs }) => return rate_limited(retry_after_secs),
        Some(Failure::ServerError) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, 0, "500: Internal Server Error");
        }
        None => {}
    }
    if !incoming.header("user-agent").is_some_and(|ua| ua.starts_with("DiscordBot")) {
        return error(StatusCode::BAD_REQUEST, 0, "FakeDiscord: User-Agent must be 'DiscordBot (<url>, <version>)'");
    }
    let segments: Vec<&str> = incoming.segments.iter().map(String::as_str).collect();
    let Some(rest) = segments.strip_prefix(&["api", "v10"]) else {
        return error(StatusCode::NOT_FOUND, 0, "404: Not Found");
    };
    let creates = incoming.method == Method::POST && matches!(rest, ["channels", _, "messages"]);
    let (response, lost) = {
        let mut data = lock(&app.data);
        let response = route(&mut data, &incoming, rest);
        let lost = if creates && response.status().is_success() { data.lose_next_create.take() } else { None };
        (response, lost)
    };
    match lost {
        Some(Failure::Hang) => hang().await,
        Some(_) => error(StatusCode::INTERNAL_SERVER_ERROR, 0, "500: Internal Server Error"),
        None => response,
    }
}

fn route(data: &mut Data, incoming: &Incoming, rest: &[&str]) -> Response {
    match rest {
        ["channels", channel, rest @ ..] => {
            if incoming.header("authorization") != Some(format!("Bot {}", data.bot_token).as_str()) {
                return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
            }
            let Ok(channel) = channel.parse::<u64>().map(Snowflake) else {
                return invalid_form(
                    &json!({"channel_id": field_error("NUMBER_TYPE_COERCE", &format!("Value \"{channel}\" is not snowflake."))}),
                );
            };
            channel_route(data, incoming, channel, rest)
        }
        ["webhooks", app_id, token, rest @ ..] => {
            if *app_id != data.application_id.to_string() || data.expired.contains(*token) {
                return error(StatusCode::NOT_FOUND, 10_015, "Unknown Webhook");
            }
            webhook_route(data, incoming, token, rest)
        }
        _ => error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    }
}

fn channel_route(data: &mut Data, incoming: &Incoming, channel: Snowflake, rest: &[&str]) -> Response {
    match (&incoming.method, rest) {
        (&Method::POST, ["messages"]) => {
            let body = match checked_body(incoming, true) {
                Ok(body) => body,
                Err(response) => return *response,
            };
            // `nonce` (at most 25 characters) with `enforce_nonce`: a message the bot created with the
            // same nonce in the last few minutes is answered again, and no new one is created.
            let nonce = body.get("nonce").filter(|n| !n.is_null()).cloned();
            if nonce.as_ref().and_then(Value::as_str).is_some_and(|n| n.chars().count() > 25) {
                return invalid_form(
                    &json!({"nonce": field_error("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")}),
                );
            }
            if let Some(nonce) = &nonce
                && body.get("enforce_nonce") == Some(&json!(true))
                && let Some(earlier) = data.messages.iter().rev().find(|m| {
                    !m.via_interaction
                        && m.json.get("nonce") == Some(nonce)
                        && m.json["author"]["id"] == data.bot_author()["id"]
                        && now_ms().saturating_sub(snowflake_ms(m.id)) < NONCE_WINDOW_MS
                })
            {
                return (StatusCode::OK, axum::Json(earlier.json.clone())).into_response();
            }
            let id = Snowflake(data.next_id());
            let mut json = message_json(id, channel, &body, &data.bot_author());
            if let Some(nonce) = nonce {
                json["nonce"] = nonce;
            }
            data.messages.push(Message {
                id,
                channel_id: channel,
                json: json.clone(),
                history: Vec::new(),
                via_interaction: false,
            });
            (StatusCode::OK, axum::Json(json)).into_response()
        }
        (&Method::GET, ["messages"]) => {
            let limit = match incoming.query("limit").map(str::parse::<usize>) {
                None => 50,
                Some(Ok(n)) if (1..=100).contains(&n) => n,
                Some(_) => {
                    return invalid_form(
                        &json!({"limit": field_error("NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")}),
                    );
                }
            };
            let before = incoming.query("before").and_then(|v| v.parse::<u64>().ok());
            let after = incoming.query("after").and_then(|v| v.parse::<u64>().ok());
            let mut items: Vec<Value> = data
                .messages
                .iter()
                .filter(|m| m.channel_id == channel)
                .filter(|m| before.is_none_or(|b| m.id.0 < b) && after.is_none_or(|a| m.id.0 > a))
                .map(|m| m.json.clone())
                .collect();
            items.reverse();
            items.truncate(limit);
            (StatusCode::OK, axum::Json(Value::Array(items))).into_response()
        }
        (method @ (&Method::GET | &Method::PATCH), ["messages", id]) => {
            let Some(index) = data.messages.iter().position(|m| m.channel_id == channel && m.id.to_string() == *id)
            else {
                return error(StatusCode::NOT_FOUND, 10_008, "Unknown Message");
            };
            if method == Method::GET {
                return (StatusCode::OK, axum::Json(data.messages[index].json.clone())).into_response();
            }
            if data.messages[index].json["author"]["bot"] != json!(true) {
                return error(StatusCode::FORBIDDEN, 50_005, "Cannot edit a message authored by another user");
            }
            let body = match checked_body(incoming, false) {
                Ok(body) => body,
                Err(response) => return *response,
            };
            (StatusCode::OK, axum::Json(edit(&mut data.messages[index], &body))).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    }
}

fn webhook_route(data: &mut Data, incoming: &Incoming, token: &str, rest: &[&str]) -> Response {
    let kind = match (&incoming.method, rest) {
        (&Method::PATCH, ["messages", "@original"]) => InteractionCallKind::EditOriginal,
        (&Method::POST, []) => InteractionCallKind::Followup,
        (&Method::DELETE, ["messages", "@original"]) => {
            // The deferred "thinking…" message goes away (whether or not it was edited).
            let original = data.calls.iter().find(|c| c.kind == InteractionCallKind::EditOriginal && c.token == token);
            let original = data.clicked.get(token).copied().or(original.map(|c| c.message_id));
            if let Some(id) = original {
                data.messages.retain(|m| m.id != id);
            }
            data.calls.push(InteractionCall {
                kind: InteractionCallKind::DeleteOriginal,
                application_id: data.application_id,
                token: token.to_owned(),
                body: Value::Null,
                message_id: Snowflake(0),
            });
            return StatusCode::NO_CONTENT.into_response();
        }
        _ => return error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    };
    let body = match checked_body(incoming, kind == InteractionCallKind::Followup) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let channel = data.interaction_channel;
    let original = data.clicked.get(token).copied().or_else(|| {
        data.calls
            .iter()
            .find(|c| c.kind == InteractionCallKind::EditOriginal && c.token == token)
            .map(|c| c.message_id)
    });
    // When the deferred reply already exists, it is edited in place.
    let json = if let (InteractionCallKind::EditOriginal, Some(id)) = (kind, original) {
        let index = data.messages.iter().position(|m| m.id == id).expect("the original was stored");
        edit(&mut data.messages[index], &body)
    } else {
        let id = Snowflake(data.next_id());
        let mut json = message_json(id, channel, &body, &data.bot_author());
        json["webhook_id"] = json!(data.application_id.to_string());
        json["type"] = json!(if kind == InteractionCallKind::EditOriginal { 20 } else { 0 });
        data.messages.push(Message {
            id,
            channel_id: channel,
            json: json.clone(),
            history: Vec::new(),
            via_interaction: true,
        });
        json
    };
    let message_id = json["id"].as_str().and_then(|id| id.parse().ok()).map_or(Snowflake(0), Snowflake);
    data.calls.push(InteractionCall {
        kind,
        application_id: data.application_id,
        token: token.to_owned(),
        body,
        message_id,
    });
    (StatusCode::OK, axum::Json(json)).into_response()
}

fn edit(message: &mut Message, body: &Value) -> Value {
    message.history.push(message.json.clone());
    apply(&mut message.json, body);
    message.json["edited_timestamp"] = json!(rfc3339(now_ms()));
    message.json.clone()
}

/// Discord's rules for buttons in a message
/// (<https://discord.com/developers/docs/components/reference#button>): at most 5 action rows of at
/// most 5 buttons; a link button (style 5) has a `url` and no `custom_id`, the others a unique
/// `custom_id` of 1–100 characters; labels at most 80 characters.
fn check_components(rows: &[Value]) -> Result<(), String> {
    if rows.len() > 5 {
        return Err("Must be 5 or fewer action rows.".into());
    }
    let mut ids = BTreeSet::new();
    for row in rows {
        let buttons = row["components"].as_array().map(Vec::as_slice).unwrap_or_default();
        if row["type"] != 1 || buttons.is_empty() || buttons.len() > 5 {
            return Err("An action row holds 1 to 5 components.".into());
        }
        for b in buttons {
            if b["type"] != 2 {
                return Err("Only buttons are expected here.".into());
            }
            if b["label"].as_str().is_some_and(|l| l.chars().count() > 80) {
                return Err("A label must be 80 or fewer in length.".into());
            }
            match (b["style"].as_u64(), b["custom_id"].as_str(), b["url"].as_str()) {
                (Some(5), None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {}
                (Some(1..=4), Some(id), None) if (1..=100).contains(&id.chars().count()) => {
                    if !ids.insert(id.to_owned()) {
                        return Err(format!("Component custom id {id} is duplicated."));
                    }
                }
                _ => return Err("A button has either a custom_id (styles 1-4) or a url (style 5).".into()),
            }
        }
    }
    Ok(())
}

/// The JSON body, checked against Discord's message limits
/// (<https://discord.com/developers/docs/resources/message#create-message-jsonform-params>).
fn checked_body(incoming: &Incoming, create: bool) -> Result<Value, Box<Response>> {
    let Some(body) = incoming.json().filter(Value::is_object) else {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, 50_109, "The request body contains invalid JSON.")));
    };
    let content = body.get("content").and_then(Value::as_str).unwrap_or_default();
    if content.chars().count() > 2_000 {
        return form_error(
            &json!({"content": field_error("BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")}),
        );
    }
    let embeds = body.get("embeds").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if embeds.len() > 10 {
        return form_error(&json!({"embeds": field_error("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")}));
    }
    let mut total = 0;
    for (i, embed) in embeds.iter().enumerate() {
        let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
        let limits = [
            ("title", len(&embed["title"]), 256),
            ("description", len(&embed["description"]), 4_096),
            ("footer.text", len(&embed["footer"]["text"]), 2_048),
            ("author.name", len(&embed["author"]["name"]), 256),
        ];
        let fields = embed["fields"].as_array().map(Vec::as_slice).unwrap_or_default();
        let field_limits = fields
            .iter()
            .flat_map(|f| [("fields.name", len(&f["name"]), 256), ("fields.value", len(&f["value"]), 1_024)]);
        for (name, length, max) in limits.into_iter().chain(field_limits) {
            if length > max {
                let text = format!("Must be {max} or fewer in length.");
                return form_error(
                    &json!({"embeds": {i.to_string(): {name: field_error("BASE_TYPE_MAX_LENGTH", &text)}}}),
                );
            }
            total += length;
        }
        if fields.len() > 25 {
            return form_error(
                &json!({"embeds": {i.to_string(): {"fields": field_error("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")}}}),
            );
        }
    }
    if total > 6_000 {
        return form_error(
            &json!({"embeds": field_error("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")}),
        );
    }
    if let Some(rows) = body.get("components").and_then(Value::as_array)
        && let Err(text) = check_components(rows)
    {
        return form_error(&json!({"components": field_error("COMPONENT_VALIDATION_FAILED", &text)}));
    }
    let components = body.get("components").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
    if create && content.is_empty() && embeds.is_empty() && !components {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, 50_006, "Cannot send an empty message")));
    }
    Ok(body)
}
