//! A fake Linear GraphQL API: `POST /graphql` with `{query, variables, operationName}`.
//!
//! The query is really parsed (operations, aliases, arguments with variables, nested selection
//! sets; no fragments) and answered by root field: `issues`, `issue`, `issueLabels`,
//! `searchIssues`, `workflowStates`, `issueCreate`, `issueUpdate`, `issueLabelCreate`,
//! `attachmentLinkURL`, `commentCreate`. Answers are projected onto the selection set, so a client
//! that forgets to select a field gets `null`, as from Linear. Filters understand the comparators
//! bugbot uses (`eq`, `eqIgnoreCase`, `in`, `contains`, `null`, ... with `and`/`or`); anything else
//! is an error naming what the fake lacks.
//!
//! Errors have Linear's shape (`errors[].extensions.{type, code, userPresentableMessage}`,
//! `packages/sdk/src/error.ts`): a wrong `Authorization` (personal keys are sent bare) is an
//! `authentication error` (401), an unknown id is `Entity not found: <Type>` (`invalid input`, 400).
//!
//! The document is validated before anything runs, as GraphQL does: unknown root fields, variables
//! used but not declared or declared but not used, and required variables without a value are
//! refused (no `path`, nothing done). Execution follows graphql-js: a mutation's root fields run one
//! after another, in document order; the first that fails stops it (the later ones do not run, the
//! earlier ones took effect), and since every payload is non-null its error nulls the whole `data`
//! and names the field in `path: [<alias or name>]`. (Queries stop at their first error too, where
//! graphql-js would report every failing field; queries change nothing, so only the error list
//! would differ.) [`FakeLinear::refuse_next`] scripts such a field failure.
//! Reference: <https://developers.linear.app/docs/graphql/working-with-the-graphql-api>.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::index::TrigramIndex;
use super::{
    Failure, Server, SharedRecorder, Term, ceil_secs, contains_folded, hang, intake, lock, now_ms, rfc3339,
    scripted_fake, secs_to_ms,
};

/// The team every fake starts with (the id in `fixtures/linear/requests/issueCreate.request.json`).
pub const TEAM_ID: &str = "9cfb482a-81e3-4154-b5b9-2c805e70a02d";
/// Its key: issues are `ENG-1`, `ENG-2`, ...
pub const TEAM_KEY: &str = "ENG";

/// An issue the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub id: String,
    pub identifier: String,
    pub number: u64,
    pub team_id: String,
    pub title: String,
    pub description: String,
    pub priority: u8,
    pub label_ids: Vec<String>,
    pub state_id: String,
    /// The state's type: `backlog` when created.
    pub state_type: String,
    pub created_at: String,
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: String,
    /// The issue's UUID, whatever form the client used.
    pub issue_id: String,
    pub body: String,
}

/// A link attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: String,
    pub issue_id: String,
    pub url: String,
    pub title: Option<String>,
}

/// An issue label: a team's (`team_id`) or the workspace's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub id: String,
    pub name: String,
    pub team_id: Option<String>,
    pub is_group: bool,
}

/// A workflow state of a team.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowState {
    pub id: String,
    pub name: String,
    /// `triage`, `backlog`, `unstarted`, `started`, `completed`, `canceled`.
    pub kind: String,
    pub position: f64,
    pub team_id: String,
}

#[derive(Debug, Clone)]
struct Team {
    id: String,
    key: String,
    next_number: u64,
}

#[derive(Debug)]
struct Data {
    api_key: String,
    teams: Vec<Team>,
    states: Vec<WorkflowState>,
    issues: Vec<Issue>,
    /// The issues' titles, descriptions and identifiers, for `searchIssues` ([`TrigramIndex`]).
    search: TrigramIndex,
    comments: Vec<Comment>,
    attachments: Vec<Attachment>,
    labels: Vec<Label>,
    next_id: u64,
    sync_id: u64,
    /// Mutations to carry out and then answer with a failure (a lost response), by root field.
    lose: Vec<(String, Failure)>,
    /// Root fields whose next execution is refused: `(field name, message)`.
    refusals: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Data>>;

#[derive(Clone)]
struct AppState {
    data: Shared,
    recorder: SharedRecorder,
}

/// A running fake Linear API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeLinear {
    server: Server,
    data: Shared,
    recorder: SharedRecorder,
}

scripted_fake!(FakeLinear);

impl FakeLinear {
    /// Starts the fake; requests must carry `Authorization: <api_key>`. It knows one team,
    /// [`TEAM_ID`] / [`TEAM_KEY`], with Linear's default workflow states.
    pub async fn start(api_key: &str) -> Self {
        let data = Arc::new(Mutex::new(Data::new(api_key)));
        let recorder = SharedRecorder::default();
        let app =
            Router::new().fallback(handle).with_state(AppState { data: data.clone(), recorder: recorder.clone() });
        Self { server: super::serve(app).await, data, recorder }
    }

    /// The GraphQL endpoint, for `LINEAR_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.server.addr)
    }

    /// Adds a team with the default workflow states (Backlog, Todo, In Progress, Done, Canceled).
    pub fn add_team(&self, id: &str, key: &str) {
        lock(&self.data).add_team(id, key);
    }

    /// Adds a label (a workspace label when `team_id` is `None`); returns its id.
    pub fn add_label(&self, name: &str, team_id: Option<&str>) -> String {
        let mut data = lock(&self.data);
        let id = data.new_id();
        data.labels.push(Label {
            id: id.clone(),
            name: name.to_owned(),
            team_id: team_id.map(str::to_owned),
            is_group: false,
        });
        id
    }

    /// Deletes the labels named `name` (any case), as someone in Linear's settings would.
    pub fn remove_label(&self, name: &str) {
        lock(&self.data).labels.retain(|l| !l.name.eq_ignore_ascii_case(name));
    }

    /// The next request with the `root` mutation (`issueCreate`, `attachmentLinkURL`, ...) takes
    /// effect, every field of it, but its response is lost: answered with a 500
    /// ([`Failure::ServerError`]) or never ([`Failure::Hang`]).
    pub fn lose_next_response(&self, root: &str, failure: Failure) {
        lock(&self.data).lose.push((root.to_owned(), failure));
    }

    /// The next execution of the root field `root` (`attachmentLinkURL`, `commentCreate`, ...) is
    /// refused by its resolver, with no effect: Linear's `invalid input` error saying `message`, at
    /// `path: [<alias or name>]`, with `data: null`. In a mutation the fields before it took effect
    /// and the ones after it do not run.
    pub fn refuse_next(&self, root: &str, message: &str) {
        lock(&self.data).refusals.push((root.to_owned(), message.to_owned()));
    }

    pub fn issues(&self) -> Vec<Issue> {
        lock(&self.data).issues.clone()
    }

    pub fn comments(&self) -> Vec<Comment> {
        lock(&self.data).comments.clone()
    }

    pub fn attachments(&self) -> Vec<Attachment> {
        lock(&self.data).attachments.clone()
    }

    pub fn labels(&self) -> Vec<Label> {
        lock(&self.data).labels.clone()
    }

    pub fn workflow_states(&self) -> Vec<WorkflowState> {
        lock(&self.data).states.clone()
    }

    /// The root fields of every recorded request, in order (`["issueLabels", "issueCreate", ...]`),
    /// to count what a run did.
    pub fn operations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|r| r.json().get("query").and_then(Value::as_str).map(str::to_owned))
            .filter_map(|q| parse_document(&q).ok())
            .flat_map(|document| document.fields.into_iter().map(|f| f.name))
            .collect()
    }
}

impl Data {
    /// [`TEAM_ID`] / [`TEAM_KEY`] and nothing else.
    fn new(api_key: &str) -> Self {
        let mut data = Self {
            api_key: api_key.to_owned(),
            teams: Vec::new(),
            states: Vec::new(),
            issues: Vec::new(),
            search: TrigramIndex::default(),
            comments: Vec::new(),
            attachments: Vec::new(),
            labels: Vec::new(),
            next_id: 1,
            sync_id: 1_000,
            lose: Vec::new(),
            refusals: Vec::new(),
        };
        data.add_team(TEAM_ID, TEAM_KEY);
        data
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_id)
    }

    fn next_sync(&mut self) -> u64 {
        self.sync_id += 1;
        self.sync_id
    }

    fn add_team(&mut self, id: &str, key: &str) {
        self.teams.push(Team { id: id.to_owned(), key: key.to_owned(), next_number: 1 });
        let defaults = [
            ("Backlog", "backlog"),
            ("Todo", "unstarted"),
            ("In Progress", "started"),
            ("Done", "completed"),
            ("Canceled", "canceled"),
        ];
        for (position, (name, kind)) in (0_u32..).zip(defaults) {
            let state_id = self.new_id();
            self.states.push(WorkflowState {
                id: state_id,
                name: name.to_owned(),
                kind: kind.to_owned(),
                position: f64::from(position),
                team_id: id.to_owned(),
            });
        }
    }

    fn team(&self, id_or_key: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.id == id_or_key || t.key.eq_ignore_ascii_case(id_or_key))
    }

    /// By UUID or identifier (`ENG-123`), as Linear accepts both.
    fn issue_index(&self, id: &str) -> Result<usize, GqlError> {
        self.issues
            .iter()
            .position(|i| i.id == id || i.identifier.eq_ignore_ascii_case(id))
            .ok_or_else(|| GqlError::not_found("Issue"))
    }

    fn state(&self, id: &str) -> Option<&WorkflowState> {
        self.states.iter().find(|s| s.id == id)
    }

    fn team_json(&self, id: &str) -> Value {
        self.team(id).map_or(Value::Null, |t| json!({"id": t.id, "key": t.key, "name": format!("Team {}", t.key)}))
    }

    fn state_json(&self, state: &WorkflowState) -> Value {
        json!({"id": state.id, "name": state.name, "type": state.kind, "position": state.position,
               "color": "#bec2c8", "team": self.team_json(&state.team_id)})
    }

    fn label_json(&self, label: &Label) -> Value {
        json!({"id": label.id, "name": label.name, "isGroup": label.is_group, "color": "#eb5757",
               "team": label.team_id.as_deref().map_or(Value::Null, |t| self.team_json(t))})
    }

    fn issue_json(&self, issue: &Issue) -> Value {
        let slug: String = issue
            .title
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let labels: Vec<Value> =
            self.labels.iter().filter(|l| issue.label_ids.contains(&l.id)).map(|l| self.label_json(l)).collect();
        let attachments: Vec<Value> = self
            .attachments
            .iter()
            .filter(|a| a.issue_id == issue.id)
            .map(|a| json!({"id": a.id, "url": a.url, "title": a.title}))
            .collect();
        let comments: Vec<Value> = self
            .comments
            .iter()
            .filter(|c| c.issue_id == issue.id)
            .map(|c| json!({"id": c.id, "body": c.body}))
            .collect();
        json!({
            "id": issue.id,
            "identifier": issue.identifier,
            "number": issue.number,
            "title": issue.title,
            "description": issue.description,
            "priority": issue.priority,
            "priorityLabel": PRIORITY_LABELS.get(usize::from(issue.priority)),
            "url": format!("https://linear.app/fake/issue/{}/{slug}", issue.identifier),
            "branchName": format!("{}-{slug}", issue.identifier.to_ascii_lowercase()),
            "createdAt": issue.created_at,
            "updatedAt": issue.created_at,
            "labelIds": issue.label_ids,
            "state": self.state(&issue.state_id).map_or(Value::Null, |s| self.state_json(s)),
            "team": self.team_json(&issue.team_id),
            "labels": connection(&labels),
            "attachments": connection(&attachments),
            "comments": connection(&comments),
        })
    }
}

const PRIORITY_LABELS: [&str; 5] = ["No priority", "Urgent", "High", "Medium", "Low"];

fn connection(nodes: &[Value]) -> Value {
    let end = nodes.last().and_then(|n| n.get("id")).cloned().unwrap_or(Value::Null);
    json!({"nodes": nodes, "pageInfo": {"hasNextPage": false, "endCursor": end}})
}

// --- HTTP ----------------------------------------------------------------------------------------

async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let incoming = intake(&app.recorder, request).await;
    match incoming.failure {
        Some(Failure::Hang) => return hang().await,
        Some(Failure::RateLimited { retry_after_secs }) => return rate_limited(retry_after_secs),
        Some(Failure::ServerError) => {
            return GqlError {
                status: 500,
                message: "Internal server error".into(),
                kind: "internal error",
                user: None,
                path: None,
            }
            .into_response();
        }
        None => {}
    }
    if incoming.segments != ["graphql"] {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    if incoming.method != Method::POST {
        return GqlError::graphql("GET requests are not supported; POST the query as JSON").into_response();
    }
    let (result, lost) = {
        let mut data = lock(&app.data);
        if incoming.header("authorization") != Some(data.api_key.as_str()) {
            return GqlError {
                status: 401,
                message: "Authentication required, not authenticated".into(),
                kind: "authentication error",
                user: Some("You need to authenticate to access this operation.".into()),
                path: None,
            }
            .into_response();
        }
        let Some(body) = incoming.json() else {
            return GqlError::graphql("Body must be a JSON object with a query").into_response();
        };
        let Some(query) = body.get("query").and_then(Value::as_str) else {
            return GqlError::graphql("Must provide query string.").into_response();
        };
        let variables = body.get("variables").cloned().unwrap_or_else(|| json!({}));
        let result = execute(&mut data, query, &variables);
        // A lost response: the mutation took effect, the client sees a failure.
        let lost = result.as_ref().ok().and_then(|r| {
            let i = data.lose.iter().position(|(root, _)| r.get(root).is_some())?;
            Some(data.lose.remove(i).1)
        });
        (result, lost)
    };
    match (result, lost) {
        (Ok(_), Some(Failure::Hang)) => hang().await,
        (Ok(_), Some(_)) => GqlError {
            status: 500,
            message: "Internal server error".into(),
            kind: "internal error",
            user: None,
            path: None,
        }
        .into_response(),
        (Ok(result), None) => {
            with_rate_headers((StatusCode::OK, axum::Json(json!({ "data": result }))).into_response())
        }
        (Err(e), _) => e.into_response(),
    }
}

fn with_rate_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-requests-limit", 1_500.into());
    headers.insert("x-ratelimit-requests-remaining", 1_499.into());
    headers.insert("x-ratelimit-requests-reset", (now_ms() + 3_600_000).into());
    response
}

/// Linear's rate-limit answer: HTTP 400 with a `ratelimited` error
/// (`fixtures/linear/responses_illustrative/error_ratelimited.response.json`) and the headers.
fn rate_limited(retry_after_secs: f64) -> Response {
    let body = json!({"errors": [{"message": "Rate limit exceeded", "extensions": {
        "type": "ratelimited", "code": "RATELIMITED", "statusCode": 429, "userError": true,
        "userPresentableMessage": "Rate limit exceeded. Please try again later."}}]});
    let mut response = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, ceil_secs(retry_after_secs).into());
    headers.insert("x-ratelimit-requests-limit", 1_500.into());
    headers.insert("x-ratelimit-requests-remaining", 0.into());
    headers.insert("x-ratelimit-requests-reset", (now_ms() + secs_to_ms(retry_after_secs)).into());
    response
}

/// One GraphQL error, answered alone with `data: null`.
#[derive(Debug)]
struct GqlError {
    status: u16,
    message: String,
    kind: &'static str,
    user: Option<String>,
    /// The root field (alias or name) whose resolver failed; `None` for errors outside the fields.
    path: Option<String>,
}

impl GqlError {
    fn not_found(entity: &str) -> Self {
        Self {
            status: 400,
            message: format!("Entity not found: {entity}"),
            kind: "invalid input",
            user: Some(format!("Could not find referenced {entity}.")),
            path: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        let message = message.into();
        Self { status: 400, user: Some(message.clone()), message, kind: "invalid input", path: None }
    }

    fn graphql(message: impl Into<String>) -> Self {
        Self { status: 400, message: message.into(), kind: "graphql error", user: None, path: None }
    }

    /// The fake does not implement this (a test that needs it must extend the fake).
    fn unsupported(what: impl std::fmt::Display) -> Self {
        Self::graphql(format!("FakeLinear does not implement {what}"))
    }

    /// The error of the root field `field` (its alias, if it has one).
    fn at(mut self, field: &str) -> Self {
        self.path = Some(field.to_owned());
        self
    }

    fn body(&self) -> Value {
        let code = match self.kind {
            "invalid input" => "INPUT_ERROR",
            "authentication error" => "AUTHENTICATION_ERROR",
            "internal error" => "INTERNAL_SERVER_ERROR",
            _ => "GRAPHQL_VALIDATION_FAILED",
        };
        let mut extensions =
            json!({"type": self.kind, "code": code, "statusCode": self.status, "userError": self.status < 500});
        if let Some(user) = &self.user {
            extensions["userPresentableMessage"] = json!(user);
        }
        let mut error = json!({"message": self.message, "extensions": extensions});
        if let Some(field) = &self.path {
            error["path"] = json!([field]);
        }
        json!({"errors": [error], "data": null})
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, axum::Json(self.body())).into_response()
    }
}

// --- GraphQL parsing -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Query,
    Mutation,
}

/// An operation: its type, name, declared variables and root fields.
#[derive(Debug, Clone)]
struct Document {
    operation: Operation,
    name: Option<String>,
    variables: Vec<VariableDefinition>,
    fields: Vec<Field>,
}

/// `$name: Type` (`= default`), as declared.
#[derive(Debug, Clone)]
struct VariableDefinition {
    name: String,
    /// As written: `String!`, `[ID!]`.
    type_name: String,
    has_default: bool,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    alias: Option<String>,
    args: Vec<(String, Ast)>,
    selection: Vec<Field>,
}

#[derive(Debug, Clone)]
enum Ast {
    Variable(String),
    Scalar(Value),
    List(Vec<Ast>),
    Object(Vec<(String, Ast)>),
}

struct Parser<'q> {
    src: &'q [u8],
    pos: usize,
}

fn parse_document(query: &str) -> Result<Document, String> {
    let mut p = Parser { src: query.as_bytes(), pos: 0 };
    let (mut name, mut variables) = (None, Vec::new());
    let operation = if p.peek() == Some(b'{') {
        Operation::Query
    } else {
        let operation = match p.name()?.as_str() {
            "query" => Operation::Query,
            "mutation" => Operation::Mutation,
            other => return Err(format!("unsupported operation type {other}")),
        };
        if p.peek().is_some_and(is_name_start) {
            name = Some(p.name()?);
        }
        if p.eat(b'(') {
            while !p.eat(b')') {
                p.expect(b'$')?;
                let name = p.name()?;
                p.expect(b':')?;
                let type_name = p.type_ref()?;
                let has_default = p.eat(b'=');
                if has_default {
                    p.value()?;
                }
                variables.push(VariableDefinition { name, type_name, has_default });
            }
        }
        operation
    };
    let fields = p.selection_set()?;
    if p.peek().is_some() {
        return Err("one operation per document, please".into());
    }
    Ok(Document { operation, name, variables, fields })
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

impl Parser<'_> {
    fn skip(&mut self) {
        while let Some(&b) = self.src.get(self.pos) {
            if b == b'#' {
                while self.src.get(self.pos).is_some_and(|&b| b != b'\n') {
                    self.pos += 1;
                }
            } else if b.is_ascii_whitespace() || b == b',' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.src.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) { Ok(()) } else { Err(format!("expected '{}' at {}", char::from(b), self.pos)) }
    }

    fn name(&mut self) -> Result<String, String> {
        self.skip();
        let start = self.pos;
        if !self.src.get(self.pos).copied().is_some_and(is_name_start) {
            return Err(format!("expected a name at {start}"));
        }
        while self.src.get(self.pos).is_some_and(|&b| b == b'_' || b.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        Ok(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
    }

    /// A type reference: `Name`, `[Type]`, either followed by `!`.
    fn type_ref(&mut self) -> Result<String, String> {
        let mut type_name = if self.eat(b'[') {
            let inner = self.type_ref()?;
            self.expect(b']')?;
            format!("[{inner}]")
        } else {
            self.name()?
        };
        if self.eat(b'!') {
            type_name.push('!');
        }
        Ok(type_name)
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, String> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        while !self.eat(b'}') {
            if self.src[self.pos..].starts_with(b"...") {
                return Err("fragments are not supported by the fake".into());
            }
            let first = self.name()?;
            let (alias, name) = if self.eat(b':') { (Some(first), self.name()?) } else { (None, first) };
            let mut args = Vec::new();
            if self.eat(b'(') {
                while !self.eat(b')') {
                    let arg = self.name()?;
                    self.expect(b':')?;
                    args.push((arg, self.value()?));
                }
            }
            if self.peek() == Some(b'@') {
                return Err("directives are not supported by the fake".into());
            }
            let selection = if self.peek() == Some(b'{') { self.selection_set()? } else { Vec::new() };
            fields.push(Field { name, alias, args, selection });
        }
        Ok(fields)
    }

    fn value(&mut self) -> Result<Ast, String> {
        match self.peek().ok_or("unexpected end")? {
            b'$' => {
                self.pos += 1;
                Ok(Ast::Variable(self.name()?))
            }
            b'"' => Ok(Ast::Scalar(Value::String(self.string()?))),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                while !self.eat(b']') {
                    items.push(self.value()?);
                }
                Ok(Ast::List(items))
            }
            b'{' => {
                self.pos += 1;
                let mut fields = Vec::new();
                while !self.eat(b'}') {
                    let key = self.name()?;
                    self.expect(b':')?;
                    fields.push((key, self.value()?));
                }
                Ok(Ast::Object(fields))
            }
            b if b == b'-' || b.is_ascii_digit() => {
                let start = self.pos;
                while self.src.get(self.pos).is_some_and(|&b| b"+-.eE".contains(&b) || b.is_ascii_digit()) {
                    self.pos += 1;
                }
                let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                let number = text.parse::<i64>().map(Value::from).or_else(|_| text.parse::<f64>().map(Value::from));
                number.map(Ast::Scalar).map_err(|_| format!("bad number {text}"))
            }
            _ => Ok(Ast::Scalar(match self.name()?.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                other => Value::String(other.to_owned()),
            })),
        }
    }

    /// A `"..."` string (the cursor is on the quote). Block strings are not supported.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = std::str::from_utf8(&self.src[self.pos..]).map_err(|e| e.to_string())?;
            let mut chars = rest.chars();
            let c = chars.next().ok_or("unterminated string")?;
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = chars.next().ok_or("unterminated escape")?;
                    self.pos += 1;
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'u' => {
                            let hex = rest.get(2..6).ok_or("bad \\u escape")?;
                            self.pos += 4;
                            u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).ok_or("bad \\u escape")?
                        }
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
    }
}

fn resolve(ast: &Ast, variables: &Value) -> Value {
    match ast {
        Ast::Variable(name) => variables.get(name).cloned().unwrap_or(Value::Null),
        Ast::Scalar(v) => v.clone(),
        Ast::List(items) => Value::Array(items.iter().map(|i| resolve(i, variables)).collect()),
        Ast::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), resolve(v, variables))).collect::<Map<_, _>>())
        }
    }
}

/// Keeps what the selection asks for; a field the object lacks is `null`, as in GraphQL.
fn project(value: &Value, selection: &[Field]) -> Value {
    if selection.is_empty() {
        return value.clone();
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|i| project(i, selection)).collect()),
        Value::Object(map) => Value::Object(
            selection
                .iter()
                .map(|f| {
                    let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
                    (key, project(map.get(&f.name).unwrap_or(&Value::Null), &f.selection))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

// --- Execution -----------------------------------------------------------------------------------

const QUERY_FIELDS: [&str; 5] = ["issues", "issue", "issueLabels", "searchIssues", "workflowStates"];
const MUTATION_FIELDS: [&str; 5] =
    ["issueCreate", "issueUpdate", "issueLabelCreate", "attachmentLinkURL", "commentCreate"];

fn execute(data: &mut Data, query: &str, variables: &Value) -> Result<Value, GqlError> {
    let document = parse_document(query).map_err(|e| GqlError::graphql(format!("Syntax Error: {e}")))?;
    validate(&document, variables)?;
    let mut out = Map::new();
    for field in &document.fields {
        let key = field.alias.clone().unwrap_or_else(|| field.name.clone());
        let args: Map<String, Value> = field.args.iter().map(|(k, v)| (k.clone(), resolve(v, variables))).collect();
        let refusal = data.refusals.iter().position(|(root, _)| *root == field.name);
        let result = match refusal {
            Some(i) => Err(GqlError::invalid(data.refusals.remove(i).1)),
            None => root_field(data, &field.name, &args),
        };
        // Every root field bugbot selects is non-null: its error nulls `data` and, in a mutation,
        // stops the fields after it (graphql-js `executeFieldsSerially`).
        let result = result.map_err(|e| e.at(&key))?;
        out.insert(key, project(&result, &field.selection));
    }
    Ok(Value::Object(out))
}

/// What GraphQL checks before executing anything: the root fields exist, every variable used is
/// declared and every one declared is used, and each required one has a value.
fn validate(document: &Document, variables: &Value) -> Result<(), GqlError> {
    let (known, type_name) = match document.operation {
        Operation::Query => (&QUERY_FIELDS, "Query"),
        Operation::Mutation => (&MUTATION_FIELDS, "Mutation"),
    };
    if let Some(field) = document.fields.iter().find(|f| !known.contains(&f.name.as_str())) {
        return Err(GqlError::graphql(format!("Cannot query field \"{}\" on type \"{type_name}\".", field.name)));
    }
    let operation = document.name.as_deref().map(|n| format!(" by operation \"{n}\"")).unwrap_or_default();
    let mut used = Vec::new();
    for field in &document.fields {
        field.variables_used(&mut used);
    }
    if let Some(name) = used.iter().find(|u| !document.variables.iter().any(|v| v.name == **u)) {
        return Err(GqlError::graphql(format!("Variable \"${name}\" is not defined{operation}.")));
    }
    for declared in &document.variables {
        let name = &declared.name;
        if !used.contains(name) {
            return Err(GqlError::graphql(format!("Variable \"${name}\" is never used{operation}.")));
        }
        let required = declared.type_name.ends_with('!') && !declared.has_default;
        if required && variables.get(name).is_none_or(Value::is_null) {
            let ty = &declared.type_name;
            return Err(GqlError::graphql(format!("Variable \"${name}\" of required type \"{ty}\" was not provided.")));
        }
    }
    Ok(())
}

impl Field {
    /// The variables its arguments and its selection's use.
    fn variables_used(&self, out: &mut Vec<String>) {
        fn walk(ast: &Ast, out: &mut Vec<String>) {
            match ast {
                Ast::Variable(name) => out.push(name.clone()),
                Ast::Scalar(_) => {}
                Ast::List(items) => items.iter().for_each(|i| walk(i, out)),
                Ast::Object(fields) => fields.iter().for_each(|(_, v)| walk(v, out)),
            }
        }
        for (_, arg) in &self.args {
            walk(arg, out);
        }
        for field in &self.selection {
            field.variables_used(out);
        }
    }
}

fn arg_str<'v>(args: &'v Map<String, Value>, name: &str) -> Result<&'v str, GqlError> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| GqlError::invalid(format!("Argument {name} is required")))
}

fn first(args: &Map<String, Value>) -> usize {
    args.get("first").and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok()).unwrap_or(50)
}

fn root_field(data: &mut Data, name: &str, args: &Map<String, Value>) -> Result<Value, GqlError> {
    let empty = json!({});
    let filter = args.get("filter").filter(|f| !f.is_null()).unwrap_or(&empty);
    match name {
        "issues" => {
            // Each issue's attachments, gathered once (not by a scan of every attachment per issue).
            let mut attachments: HashMap<&str, Vec<&Attachment>> = HashMap::new();
            for attachment in &data.attachments {
                attachments.entry(attachment.issue_id.as_str()).or_default().push(attachment);
            }
            let mut nodes = Vec::new();
            for issue in &data.issues {
                if issue_matches(data, &attachments, issue, filter)? {
                    nodes.push(data.issue_json(issue));
                }
            }
            nodes.truncate(first(args));
            Ok(connection(&nodes))
        }
        "issue" => {
            let index = data.issue_index(arg_str(args, "id")?)?;
            Ok(data.issue_json(&data.issues[index]))
        }
        "issueLabels" => {
            let mut nodes = Vec::new();
            for label in &data.labels {
                if label_matches(label, filter)? {
                    nodes.push(data.label_json(label));
                }
            }
            nodes.truncate(first(args));
            Ok(connection(&nodes))
        }
        "workflowStates" => {
            let mut nodes = Vec::new();
            for state in &data.states {
                if state_matches(data, state, filter)? {
                    nodes.push(data.state_json(state));
                }
            }
            nodes.truncate(first(args));
            Ok(connection(&nodes))
        }
        "searchIssues" => {
            let term = arg_str(args, "term")?.to_lowercase();
            let found = Term::new(&term);
            let comments = args.get("includeComments").and_then(Value::as_bool).unwrap_or(false);
            // The index covers titles, descriptions and identifiers: a search of comments checks
            // every issue.
            let candidates = if comments { None } else { data.search.candidates(&term) };
            let issues: Box<dyn Iterator<Item = &Issue>> = match &candidates {
                Some(at) => Box::new(at.iter().filter_map(|&at| data.issues.get(at))),
                None => Box::new(data.issues.iter()),
            };
            let hits: Vec<Value> = issues
                .filter(|i| {
                    found.found_in(&i.title)
                        || found.found_in(&i.description)
                        || i.identifier.eq_ignore_ascii_case(&term)
                        || (comments && data.comments.iter().any(|c| c.issue_id == i.id && found.found_in(&c.body)))
                })
                .map(|i| data.issue_json(i))
                .collect();
            let total = hits.len();
            let shown: Vec<Value> = hits.into_iter().take(first(args)).collect();
            let mut result = connection(&shown);
            result["totalCount"] = json!(total);
            Ok(result)
        }
        "issueCreate" => issue_create(data, args.get("input").unwrap_or(&empty)),
        "issueUpdate" => issue_update(data, arg_str(args, "id")?, args.get("input").unwrap_or(&empty)),
        "issueLabelCreate" => label_create(data, args.get("input").unwrap_or(&empty)),
        "attachmentLinkURL" => attachment_link(data, args),
        "commentCreate" => comment_create(data, args.get("input").unwrap_or(&empty)),
        other => Err(GqlError::unsupported(format!("the root field {other}"))),
    }
}

fn attachment_link(data: &mut Data, args: &Map<String, Value>) -> Result<Value, GqlError> {
    let index = data.issue_index(arg_str(args, "issueId")?)?;
    let issue_id = data.issues[index].id.clone();
    let url = arg_str(args, "url")?.to_owned();
    let title = args.get("title").and_then(Value::as_str).map(str::to_owned);
    // Linking the same URL to the same issue again updates the attachment.
    let existing = data.attachments.iter().position(|a| a.issue_id == issue_id && a.url == url);
    let attachment = if let Some(i) = existing {
        data.attachments[i].title.clone_from(&title);
        data.attachments[i].clone()
    } else {
        let attachment = Attachment { id: data.new_id(), issue_id, url, title };
        data.attachments.push(attachment.clone());
        attachment
    };
    let issue = data.issue_json(&data.issues[index]);
    let sync = data.next_sync();
    Ok(json!({"success": true, "lastSyncId": sync, "attachment":
        {"id": attachment.id, "url": attachment.url, "title": attachment.title, "issue": issue}}))
}

fn comment_create(data: &mut Data, input: &Value) -> Result<Value, GqlError> {
    let issue_ref =
        input.get("issueId").and_then(Value::as_str).ok_or_else(|| GqlError::invalid("issueId is required"))?;
    let body = input.get("body").and_then(Value::as_str).unwrap_or_default().to_owned();
    if body.trim().is_empty() {
        return Err(GqlError::invalid("body must not be empty"));
    }
    let index = data.issue_index(issue_ref)?;
    let comment = Comment { id: data.new_id(), issue_id: data.issues[index].id.clone(), body };
    data.comments.push(comment.clone());
    let issue = data.issue_json(&data.issues[index]);
    let sync = data.next_sync();
    let short_id = &comment.id[comment.id.len() - 8..];
    let url = format!("{}#comment-{short_id}", issue["url"].as_str().unwrap_or_default());
    Ok(json!({"success": true, "lastSyncId": sync, "comment":
        {"id": comment.id, "body": comment.body, "url": url, "createdAt": rfc3339(now_ms()), "issue": issue}}))
}

fn issue_create(data: &mut Data, input: &Value) -> Result<Value, GqlError> {
    let team_ref =
        input.get("teamId").and_then(Value::as_str).ok_or_else(|| GqlError::invalid("teamId is required"))?;
    let team_id = data.team(team_ref).map(|t| t.id.clone()).ok_or_else(|| GqlError::not_found("Team"))?;
    let title = input.get("title").and_then(Value::as_str).unwrap_or_default().to_owned();
    if title.trim().is_empty() {
        return Err(GqlError::invalid("title must not be empty"));
    }
    let priority = match input.get("priority") {
        None | Some(Value::Null) => 0,
        Some(p) => p
            .as_u64()
            .and_then(|p| u8::try_from(p).ok())
            .filter(|p| *p <= 4)
            .ok_or_else(|| GqlError::invalid("priority must be between 0 and 4"))?,
    };
    let label_ids = label_ids(data, &team_id, input.get("labelIds"))?;
    let state = data
        .states
        .iter()
        .filter(|s| s.team_id == team_id && s.kind == "backlog")
        .min_by(|a, b| a.position.total_cmp(&b.position))
        .cloned()
        .ok_or_else(|| GqlError::invalid("team has no backlog state"))?;
    // Like Linear, a client may choose the id (a UUID); it must be new.
    let id = match input.get("id").and_then(Value::as_str) {
        Some(id) if data.issues.iter().any(|i| i.id == id) => {
            return Err(GqlError::invalid(format!("an issue with id {id} already exists")));
        }
        Some(id) if !is_uuid(id) => return Err(GqlError::invalid("id must be a UUID")),
        Some(id) => id.to_owned(),
        None => data.new_id(),
    };
    let team = data.teams.iter_mut().find(|t| t.id == team_id).expect("team exists");
    let number = team.next_number;
    team.next_number += 1;
    let identifier = format!("{}-{number}", team.key);
    let issue = Issue {
        id,
        identifier,
        number,
        team_id,
        title,
        description: input.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
        priority,
        label_ids,
        state_id: state.id,
        state_type: state.kind,
        created_at: rfc3339(now_ms()),
    };
    let at = data.issues.len();
    for text in [&issue.title, &issue.description, &issue.identifier] {
        data.search.add(at, text);
    }
    data.issues.push(issue.clone());
    let sync = data.next_sync();
    Ok(json!({"success": true, "lastSyncId": sync, "issue": data.issue_json(&issue)}))
}

fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn issue_update(data: &mut Data, id: &str, input: &Value) -> Result<Value, GqlError> {
    let index = data.issue_index(id)?;
    let team_id = data.issues[index].team_id.clone();
    let Some(fields) = input.as_object() else { return Err(GqlError::invalid("input is required")) };
    for (key, value) in fields {
        match key.as_str() {
            "stateId" => {
                let state_id = value.as_str().unwrap_or_default();
                let state = data
                    .state(state_id)
                    .filter(|s| s.team_id == team_id)
                    .cloned()
                    .ok_or_else(|| GqlError::not_found("WorkflowState"))?;
                data.issues[index].state_id = state.id;
                data.issues[index].state_type = state.kind;
            }
            "title" => {
                value.as_str().unwrap_or_default().clone_into(&mut data.issues[index].title);
                data.search.add(index, value.as_str().unwrap_or_default());
            }
            "description" => {
                value.as_str().unwrap_or_default().clone_into(&mut data.issues[index].description);
                data.search.add(index, value.as_str().unwrap_or_default());
            }
            "priority" => {
                data.issues[index].priority = value
                    .as_u64()
                    .and_then(|p| u8::try_from(p).ok())
                    .filter(|p| *p <= 4)
                    .ok_or_else(|| GqlError::invalid("priority must be between 0 and 4"))?;
            }
            "labelIds" => data.issues[index].label_ids = label_ids(data, &team_id, Some(value))?,
            other => return Err(GqlError::unsupported(format!("issueUpdate input field {other}"))),
        }
    }
    let sync = data.next_sync();
    Ok(json!({"success": true, "lastSyncId": sync, "issue": data.issue_json(&data.issues[index])}))
}

fn label_ids(data: &Data, team_id: &str, raw: Option<&Value>) -> Result<Vec<String>, GqlError> {
    let mut ids = Vec::new();
    for id in raw.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let id = id.as_str().unwrap_or_default();
        let usable =
            data.labels.iter().any(|l| l.id == id && !l.is_group && l.team_id.as_deref().is_none_or(|t| t == team_id));
        if !usable {
            return Err(GqlError::invalid(format!("labelIds: {id} is not a label of this team or workspace")));
        }
        ids.push(id.to_owned());
    }
    Ok(ids)
}

fn label_create(data: &mut Data, input: &Value) -> Result<Value, GqlError> {
    let name = input.get("name").and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    if name.is_empty() {
        return Err(GqlError::invalid("name must not be empty"));
    }
    let team_id = match input.get("teamId").and_then(Value::as_str) {
        Some(team) => Some(data.team(team).map(|t| t.id.clone()).ok_or_else(|| GqlError::not_found("Team"))?),
        None => None,
    };
    // Names are unique per team and across the workspace, ignoring case.
    let clash = data.labels.iter().any(|l| {
        l.name.eq_ignore_ascii_case(&name) && (l.team_id.is_none() || team_id.is_none() || l.team_id == team_id)
    });
    if clash {
        return Err(GqlError::invalid(format!("Duplicate label name: {name}")));
    }
    let label = Label {
        id: data.new_id(),
        name,
        team_id,
        is_group: input.get("isGroup").and_then(Value::as_bool).unwrap_or(false),
    };
    data.labels.push(label.clone());
    let sync = data.next_sync();
    Ok(json!({"success": true, "lastSyncId": sync, "issueLabel": data.label_json(&label)}))
}

// --- Filters -------------------------------------------------------------------------------------

/// A `StringComparator` / `IDComparator` / `NullableComparator` against a value.
fn compare(value: Option<&str>, comparator: &Value) -> Result<bool, GqlError> {
    let Some(ops) = comparator.as_object() else { return Err(GqlError::invalid("a comparator must be an object")) };
    let mut all = true;
    for (op, operand) in ops {
        let s = operand.as_str().unwrap_or_default();
        let list =
            || operand.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>()).unwrap_or_default();
        let v = value.unwrap_or_default();
        let ok = match op.as_str() {
            "eq" => value == Some(s),
            "neq" => value != Some(s),
            "eqIgnoreCase" => value.is_some_and(|v| v.to_lowercase() == s.to_lowercase()),
            "neqIgnoreCase" => value.is_none_or(|v| v.to_lowercase() != s.to_lowercase()),
            "in" => value.is_some_and(|v| list().contains(&v)),
            "nin" => value.is_none_or(|v| !list().contains(&v)),
            "contains" => v.contains(s),
            "containsIgnoreCase" => contains_folded(v, &s.to_lowercase()),
            "startsWith" => v.starts_with(s),
            "endsWith" => v.ends_with(s),
            "null" => value.is_none() == operand.as_bool().unwrap_or(false),
            other => return Err(GqlError::unsupported(format!("the comparator {other}"))),
        };
        all &= ok;
    }
    Ok(all)
}

/// `and` / `or` around a per-entity matcher for the other keys.
fn filter_matches(filter: &Value, field: &dyn Fn(&str, &Value) -> Result<bool, GqlError>) -> Result<bool, GqlError> {
    let Some(keys) = filter.as_object() else { return Ok(true) };
    for (key, value) in keys {
        let ok = match key.as_str() {
            "and" => value
                .as_array()
                .into_iter()
                .flatten()
                .try_fold(true, |acc, f| Ok::<_, GqlError>(acc && filter_matches(f, field)?))?,
            "or" => value
                .as_array()
                .into_iter()
                .flatten()
                .try_fold(false, |acc, f| Ok::<_, GqlError>(acc || filter_matches(f, field)?))?,
            _ => field(key, value)?,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn team_matches(data: &Data, team_id: Option<&str>, filter: &Value) -> Result<bool, GqlError> {
    filter_matches(filter, &|key, value| match key {
        "null" => Ok(team_id.is_none() == value.as_bool().unwrap_or(false)),
        "id" => compare(team_id, value),
        "key" => compare(team_id.and_then(|t| data.team(t)).map(|t| t.key.as_str()), value),
        other => Err(GqlError::unsupported(format!("the team filter {other}"))),
    })
}

fn label_matches(label: &Label, filter: &Value) -> Result<bool, GqlError> {
    filter_matches(filter, &|key, value| match key {
        "id" => compare(Some(&label.id), value),
        "name" => compare(Some(&label.name), value),
        "isGroup" => Ok(value.get("eq").and_then(Value::as_bool).is_none_or(|eq| eq == label.is_group)),
        "team" => filter_matches(value, &|k, v| match k {
            "null" => Ok(label.team_id.is_none() == v.as_bool().unwrap_or(false)),
            "id" => compare(label.team_id.as_deref(), v),
            other => Err(GqlError::unsupported(format!("the label team filter {other}"))),
        }),
        other => Err(GqlError::unsupported(format!("the issueLabels filter {other}"))),
    })
}

fn state_matches(data: &Data, state: &WorkflowState, filter: &Value) -> Result<bool, GqlError> {
    filter_matches(filter, &|key, value| match key {
        "id" => compare(Some(&state.id), value),
        "name" => compare(Some(&state.name), value),
        "type" => compare(Some(&state.kind), value),
        "team" => team_matches(data, Some(&state.team_id), value),
        other => Err(GqlError::unsupported(format!("the workflowStates filter {other}"))),
    })
}

fn issue_matches(
    data: &Data,
    attachments: &HashMap<&str, Vec<&Attachment>>,
    issue: &Issue,
    filter: &Value,
) -> Result<bool, GqlError> {
    filter_matches(filter, &|key, value| match key {
        "id" => compare(Some(&issue.id), value),
        "title" => compare(Some(&issue.title), value),
        "description" => compare(Some(&issue.description), value),
        "team" => team_matches(data, Some(&issue.team_id), value),
        "state" => filter_matches(value, &|k, v| match k {
            "type" => compare(Some(&issue.state_type), v),
            "id" => compare(Some(&issue.state_id), v),
            other => Err(GqlError::unsupported(format!("the issue state filter {other}"))),
        }),
        // A collection filter: some attachment of the issue matches.
        "attachments" => {
            let mut any = false;
            for attachment in attachments.get(issue.id.as_str()).into_iter().flatten() {
                any |= filter_matches(value, &|k, v| match k {
                    "url" => compare(Some(&attachment.url), v),
                    "title" => compare(attachment.title.as_deref(), v),
                    other => Err(GqlError::unsupported(format!("the attachments filter {other}"))),
                })?;
            }
            Ok(any)
        }
        other => Err(GqlError::unsupported(format!("the issues filter {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fixture_requests() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/linear/requests");
        let mut roots = Vec::new();
        for entry in std::fs::read_dir(dir).expect("fixtures") {
            let body: Value = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
            let document = parse_document(body["query"].as_str().unwrap()).expect("parses");
            validate(&document, &body["variables"]).expect("valid");
            roots.extend(document.fields.into_iter().map(|f| f.name));
        }
        roots.sort();
        assert_eq!(roots, ["attachmentLinkURL", "commentCreate", "issue", "issueCreate", "issues", "searchIssues"]);
    }

    #[test]
    fn arguments_aliases_and_projection() {
        let Document { operation, fields, .. } = parse_document(
            r#"query Q($u: String!) { a: issues(first: 2, filter: { attachments: { url: { in: [$u, "x\"y"] } } }) { nodes { id } } }"#,
        )
        .unwrap();
        assert_eq!(operation, Operation::Query);
        assert_eq!(fields[0].alias.as_deref(), Some("a"));
        let args: Map<String, Value> =
            fields[0].args.iter().map(|(k, v)| (k.clone(), resolve(v, &json!({"u": "https://s"})))).collect();
        assert_eq!(
            Value::Object(args),
            json!({"first": 2, "filter": {"attachments": {"url": {"in": ["https://s", "x\"y"]}}}})
        );
        let projected = project(&json!({"nodes": [{"id": "1", "title": "t"}], "pageInfo": {}}), &fields[0].selection);
        assert_eq!(projected, json!({"nodes": [{"id": "1"}]}));
        assert!(parse_document("query { ...F }").is_err());
    }

    const FILE: &str = "mutation IssueFile($input: IssueCreateInput!, $issueId: String!, $url: String!, $title: String, $comment: CommentCreateInput!) { issueCreate(input: $input) { success issue { id identifier } } attachmentLinkURL(issueId: $issueId, url: $url, title: $title) { success } commentCreate(input: $comment) { success } }";
    const ID: &str = "2f2d8a57-3a0f-4c1e-9a6b-0d8b2a1c9e11";

    fn file_variables() -> Value {
        json!({"input": {"id": ID, "teamId": TEAM_ID, "title": "ZeroDivisionError"},
               "issueId": ID, "url": "https://sentry.io/organizations/acme/issues/42/", "title": "Sentry issue",
               "comment": {"issueId": ID, "body": "## bugbot context"}})
    }

    /// Mutation root fields run in order and stop at the first that fails: the fields before it
    /// took effect, the ones after it did not run, `data` is null and the error names its field
    /// (its alias when it has one), as graphql-js answers.
    #[test]
    fn a_failing_mutation_field_stops_the_rest_and_nulls_data() {
        let mut data = Data::new("k");
        let filed = execute(&mut data, FILE, &file_variables()).expect("filed");
        assert_eq!(filed["issueCreate"]["issue"]["id"], ID);
        assert_eq!(
            (filed["attachmentLinkURL"]["success"].clone(), filed["commentCreate"]["success"].clone()),
            (json!(true), json!(true))
        );

        let mut data = Data::new("k");
        data.refusals.push(("commentCreate".into(), "body is too long".into()));
        let error = execute(&mut data, FILE, &file_variables()).expect_err("the comment fails");
        assert_eq!(
            error.body(),
            json!({"data": null, "errors": [{"message": "body is too long", "path": ["commentCreate"], "extensions": {
                "type": "invalid input", "code": "INPUT_ERROR", "statusCode": 400, "userError": true,
                "userPresentableMessage": "body is too long"}}]})
        );
        assert_eq!((data.issues.len(), data.attachments.len(), data.comments.len()), (1, 1, 0), "create and link ran");

        let mut data = Data::new("k");
        data.refusals.push(("attachmentLinkURL".into(), "url is not allowed".into()));
        let error = execute(&mut data, FILE, &file_variables()).expect_err("the link fails");
        assert_eq!(error.body()["errors"][0]["path"], json!(["attachmentLinkURL"]));
        assert_eq!(
            (data.issues.len(), data.attachments.len(), data.comments.len()),
            (1, 0, 0),
            "the comment never ran"
        );

        // A resolver's own error (an id already taken), under an alias.
        let aliased = FILE.replace("commentCreate(", "first: commentCreate(");
        let mut variables = file_variables();
        variables["comment"]["issueId"] = json!("ENG-404");
        let error = execute(&mut data, &aliased, &variables).expect_err("the id is taken");
        assert_eq!(error.body()["errors"][0]["path"], json!(["issueCreate"]), "the create is the first to fail");
        let mut data = Data::new("k");
        let error = execute(&mut data, &aliased, &variables).expect_err("no such issue");
        assert_eq!(error.body()["errors"][0]["path"], json!(["first"]));
        assert_eq!(error.body()["errors"][0]["message"], "Entity not found: Issue");
        assert_eq!((data.issues.len(), data.attachments.len()), (1, 1));
    }

    /// Validation comes before execution: nothing runs, and the error has no `path`.
    #[test]
    fn an_invalid_document_runs_nothing() {
        let unused = FILE.replace(" commentCreate(input: $comment) { success }", "");
        let missing = {
            let mut v = file_variables();
            v.as_object_mut().unwrap().remove("url");
            v
        };
        let cases = [
            (unused.as_str(), file_variables(), "Variable \"$comment\" is never used by operation \"IssueFile\"."),
            (FILE, missing, "Variable \"$url\" of required type \"String!\" was not provided."),
            (
                "mutation M { issueCreate(input: $input) { success } }",
                file_variables(),
                "Variable \"$input\" is not defined by operation \"M\".",
            ),
            (
                "mutation { issueDelete(id: \"x\") { success } }",
                json!({}),
                "Cannot query field \"issueDelete\" on type \"Mutation\".",
            ),
        ];
        for (query, variables, message) in cases {
            let mut data = Data::new("k");
            let body = execute(&mut data, query, &variables).expect_err(message).body();
            assert_eq!(body["errors"][0]["message"], message);
            assert!(body["errors"][0].get("path").is_none(), "{body}");
            assert!(data.issues.is_empty(), "{message}");
        }
    }
}
