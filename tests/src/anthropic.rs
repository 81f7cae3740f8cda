//! A fake Anthropic Messages API that the real Claude Code CLI can talk to, fully offline.
//!
//! It mirrors what `claude -p` needs (see `docs/CLAUDE_CODE_HEADLESS.md`):
//! - `POST /v1/messages` (the CLI adds `?beta=true`): requests that carry `tools` are agent turns and are
//!   answered with the next scripted [`Turn`]; requests without tools (title generation and similar side
//!   requests) get a small JSON text answer and do not consume a turn.
//! - Answers stream as SSE with `event:` lines in the order `message_start` → `content_block_start` →
//!   `content_block_delta` → `content_block_stop` → `message_delta` → `message_stop`; requests with
//!   `stream:false` (the CLI's fallback) get the same message as plain JSON.
//! - `HEAD /` and `HEAD /api/hello` answer 200 (connectivity probes).
//! - Every request is recorded (method, path, headers, body) for assertions.
//!
//! Upstream reference: <https://docs.anthropic.com/en/api/messages-streaming>.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The placeholder that scripted tool inputs use for the agent's working directory; it is replaced by the
/// `Working directory:` the CLI reports in its system prompt (tool paths must be absolute).
pub const CWD: &str = "{cwd}";

/// Model name reported in answers.
const MODEL: &str = "claude-sonnet-4-5-20250929";

/// One scripted answer to an agent request (a request that carries `tools`).
#[derive(Debug, Clone)]
pub enum Turn {
    /// A final text answer (`stop_reason: end_turn`).
    Text(String),
    /// A tool call (`stop_reason: tool_use`), optionally preceded by text. String values in `input`
    /// have [`CWD`] replaced by the agent's working directory.
    ToolUse { text: Option<String>, name: String, input: Value },
    /// An HTTP error with an Anthropic error body (`500` → `api_error`, `529` → `overloaded_error`, …).
    Error { status: u16, message: String },
    /// Never answer (the connection stays open until the client goes away).
    Hang,
}

impl Turn {
    /// A final text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// A tool call without preceding text.
    pub fn tool(name: impl Into<String>, input: Value) -> Self {
        Self::ToolUse { text: None, name: name.into(), input }
    }

    /// An `Edit` of `path` (relative to the working directory).
    pub fn edit(path: &str, old: &str, new: &str) -> Self {
        Self::tool("Edit", json!({"file_path": format!("{CWD}/{path}"), "old_string": old, "new_string": new}))
    }

    /// A `Read` of `path` (relative to the working directory). The CLI refuses to `Edit` a file it has
    /// not read in the session, so scripts read first.
    pub fn read(path: &str) -> Self {
        Self::tool("Read", json!({"file_path": format!("{CWD}/{path}")}))
    }

    /// A `Write` of `path` (relative to the working directory).
    pub fn write(path: &str, content: &str) -> Self {
        Self::tool("Write", json!({"file_path": format!("{CWD}/{path}"), "content": content}))
    }

    /// A `Bash` call.
    pub fn bash(command: &str) -> Self {
        Self::tool("Bash", json!({"command": command, "description": "run a command"}))
    }

    /// An HTTP error turn.
    pub fn error(status: u16) -> Self {
        Self::Error { status, message: format!("scripted failure {status}") }
    }
}

/// What the fake does once the script is used up.
#[derive(Debug, Clone)]
pub enum WhenExhausted {
    /// Answer with a final text (the default: the run ends cleanly).
    Text(String),
    /// Keep answering with this turn (e.g. a permanent `Turn::error(500)` or `Turn::Hang`).
    Repeat(Turn),
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Header names are lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Whether this is an agent turn (a Messages request that carries tools).
    pub fn is_agent_turn(&self) -> bool {
        self.uri.starts_with("/v1/messages")
            && self.json().get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty())
    }

    /// The body as (lossy) text, for `contains` assertions.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug)]
struct Inner {
    turns: VecDeque<Turn>,
    when_exhausted: WhenExhausted,
    requests: Vec<RecordedRequest>,
    served_turns: usize,
    next_id: u64,
    /// Open unless the test holds the agent's turns ([`FakeAnthropic::hold`]).
    gate: watch::Receiver<bool>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake Anthropic API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeAnthropic {
    addr: SocketAddr,
    inner: Shared,
    gate: watch::Sender<bool>,
    _server: crate::fake::Server,
}

impl FakeAnthropic {
    /// Starts the fake on `127.0.0.1:0` with a script; once used up it answers "Done.".
    pub async fn start(turns: Vec<Turn>) -> Self {
        Self::start_with(turns, WhenExhausted::Text("Done.".into())).await
    }

    /// Starts the fake with an explicit behaviour for when the script is used up.
    pub async fn start_with(turns: Vec<Turn>, when_exhausted: WhenExhausted) -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into(), turns, when_exhausted).await
    }

    /// Starts the fake on `ip` (port 0): a container reaches it on the Docker bridge's gateway address.
    pub async fn start_on(ip: std::net::IpAddr, turns: Vec<Turn>, when_exhausted: WhenExhausted) -> Self {
        let (gate, open) = watch::channel(true);
        let inner: Shared = Arc::new(Mutex::new(Inner {
            turns: turns.into(),
            when_exhausted,
            requests: Vec::new(),
            served_turns: 0,
            next_id: 1,
            gate: open,
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let server = crate::fake::serve_on(ip, app).await;
        Self { addr: server.addr, inner, gate, _server: server }
    }

    /// Holds every agent turn (recorded, but neither answered nor counted as served) until
    /// [`FakeAnthropic::release`]: a run then stays in progress for as long as a test needs, like one
    /// waiting on a slow model.
    pub fn hold(&self) {
        self.gate.send_replace(false);
    }

    /// Lets held and later agent turns through.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    /// The base URL to give the CLI as `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().expect("lock").requests.clone()
    }

    /// The Messages requests that carried tools (the agent's turns), in order.
    pub fn agent_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(RecordedRequest::is_agent_turn).collect()
    }

    /// How many scripted turns have been served (including error and hang turns).
    pub fn served_turns(&self) -> usize {
        self.inner.lock().expect("lock").served_turns
    }
}

async fn handle(State(inner): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 32 * 1024 * 1024).await.unwrap_or_default();
    let uri = parts.uri.to_string();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: header_pairs(&parts.headers),
        body: body.clone(),
    };
    let is_agent_turn = recorded.is_agent_turn();
    let mut gate = {
        let mut state = inner.lock().expect("lock");
        state.requests.push(recorded);
        state.gate.clone()
    };
    if is_agent_turn {
        // Closed only while a test holds the run; a dropped fake answers nothing anyway.
        let _ = gate.wait_for(|open| *open).await;
    }

    if parts.method == Method::HEAD || parts.method == Method::GET && !uri.starts_with("/v1/") {
        return StatusCode::OK.into_response();
    }
    if parts.method != Method::POST || !uri.starts_with("/v1/messages") {
        return error_response(404, "not_found_error", "no such route in the fake");
    }
    if uri.starts_with("/v1/messages/count_tokens") {
        return axum::Json(json!({"input_tokens": 100})).into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error_response(400, "invalid_request_error", "body is not JSON");
    };
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);

    let (turn, id) = {
        let mut state = inner.lock().expect("lock");
        state.next_id += 1;
        let id = state.next_id;
        if is_agent_turn {
            state.served_turns += 1;
            let turn = match state.turns.pop_front() {
                Some(turn) => turn,
                None => match &state.when_exhausted {
                    WhenExhausted::Text(text) => Turn::Text(text.clone()),
                    WhenExhausted::Repeat(turn) => turn.clone(),
                },
            };
            (turn, id)
        } else {
            // Side requests (title generation, summaries) expect a small JSON answer.
            (Turn::Text(r#"{"title": "Fix the bug", "isNewTopic": false}"#.into()), id)
        }
    };

    match turn {
        Turn::Hang => {
            futures::future::pending::<()>().await;
            unreachable!("pending never resolves")
        }
        Turn::Error { status, message } => {
            let kind = match status {
                529 => "overloaded_error",
                429 => "rate_limit_error",
                401 => "authentication_error",
                400 => "invalid_request_error",
                _ => "api_error",
            };
            error_response(status, kind, &message)
        }
        Turn::Text(text) => reply(stream, id, &[Block::Text(text)], "end_turn"),
        Turn::ToolUse { text, name, input } => {
            let cwd = working_directory(&request).unwrap_or_default();
            let input = substitute(input, &cwd);
            let mut blocks = Vec::new();
            if let Some(text) = text {
                blocks.push(Block::Text(text));
            }
            blocks.push(Block::Tool { id: format!("toolu_fake{id:06}"), name, input });
            reply(stream, id, &blocks, "tool_use")
        }
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

fn error_response(status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// The agent's working directory as the CLI states it in its system prompt (`Primary working directory:`
/// in 2.1.x) or first user message.
fn working_directory(request: &Value) -> Option<String> {
    let haystack = request.to_string();
    ["Primary working directory: /", "Working directory: /"].iter().find_map(|marker| {
        let start = haystack.find(marker)? + marker.len() - 1;
        let rest = &haystack[start..];
        let end = rest.find(['\\', '"', '<']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_string())
    })
}

fn substitute(value: Value, cwd: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(CWD, cwd)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| substitute(v, cwd)).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, substitute(v, cwd))).collect()),
        other => other,
    }
}

enum Block {
    Text(String),
    Tool { id: String, name: String, input: Value },
}

fn usage() -> Value {
    json!({"input_tokens": 120, "output_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

fn reply(stream: bool, id: u64, blocks: &[Block], stop_reason: &str) -> Response {
    let message_id = format!("msg_fake{id:08}");
    if !stream {
        let content: Vec<Value> = blocks
            .iter()
            .map(|b| match b {
                Block::Text(text) => json!({"type": "text", "text": text}),
                Block::Tool { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
            })
            .collect();
        let body = json!({
            "id": message_id, "type": "message", "role": "assistant", "model": MODEL,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage(),
        });
        return axum::Json(body).into_response();
    }

    let mut sse = String::new();
    let mut event = |name: &str, data: Value| {
        let _ = write!(sse, "event: {name}\ndata: {data}\n\n");
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": MODEL, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 120, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }}),
    );
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(text) => {
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                );
                event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
                );
            }
            Block::Tool { id, name, input } => {
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                );
                event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
                );
            }
        }
        event("content_block_stop", json!({"type": "content_block_stop", "index": index}));
    }
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 30}}),
    );
    event("message_stop", json!({"type": "message_stop"}));

    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(sse))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(fake: &FakeAnthropic, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/messages?beta=true", fake.base_url()))
            .header("x-api-key", "k")
            .json(&body)
            .send()
            .await
            .expect("fake reachable")
    }

    fn agent_request(stream: bool) -> Value {
        json!({
            "model": "m", "stream": stream, "max_tokens": 10,
            "system": [{"type": "text", "text": "env\n - Primary working directory: /srv/clone\n - Platform: linux"}],
            "tools": [{"name": "Edit", "input_schema": {}}],
            "messages": [{"role": "user", "content": "fix it"}],
        })
    }

    #[tokio::test]
    async fn streams_scripted_turns_as_sse_with_event_lines() {
        let fake = FakeAnthropic::start(vec![Turn::edit("src/a.rs", "x", "y")]).await;
        let response = post(&fake, agent_request(true)).await;
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let text = response.text().await.unwrap();
        let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(
            events,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(text.contains(r#"\"file_path\":\"/srv/clone/src/a.rs\""#), "{text}");
        assert!(text.contains(r#""stop_reason":"tool_use""#));
        assert_eq!(fake.served_turns(), 1);
    }

    #[tokio::test]
    async fn answers_plain_json_side_requests_and_probes() {
        let fake = FakeAnthropic::start(vec![Turn::text("final")]).await;
        // A title request (no tools) does not use the turn.
        let title = post(&fake, json!({"model": "m", "max_tokens": 5, "messages": []})).await;
        let title: Value = title.json().await.unwrap();
        assert_eq!(title["content"][0]["type"], "text");
        assert_eq!(fake.served_turns(), 0);
        // Non-streaming agent turn: the same message as JSON.
        let answer: Value = post(&fake, agent_request(false)).await.json().await.unwrap();
        assert_eq!(answer["content"][0]["text"], "final");
        assert_eq!(answer["stop_reason"], "end_turn");
        let head = reqwest::Client::new().head(format!("{}/api/hello", fake.base_url())).send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(fake.requests().len(), 3);
        assert_eq!(fake.agent_requests().len(), 1);
    }

    #[tokio::test]
    async fn scripted_failures_carry_anthropic_error_bodies() {
        let fake = FakeAnthropic::start(vec![Turn::error(529), Turn::error(500)]).await;
        let overloaded = post(&fake, agent_request(true)).await;
        assert_eq!(overloaded.status(), 529);
        assert_eq!(overloaded.json::<Value>().await.unwrap()["error"]["type"], "overloaded_error");
        assert_eq!(post(&fake, agent_request(true)).await.status(), 500);
        assert_eq!(fake.served_turns(), 2);
    }
}
