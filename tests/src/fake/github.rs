//! A fake GitHub REST API for one repository
//! (<https://docs.github.com/en/rest?apiVersion=2022-11-28>).
//!
//! Routes: issues (create, get, update, list), issue comments, `/search/issues` (qualifiers
//! `repo:`, `is:issue`/`is:pr`, `is:open`/`is:closed`, `in:title`/`in:body`/`in:comments`,
//! `label:`, quoted phrases and bare words), file contents (preloaded, served base64-wrapped like
//! the real API), commits for a path (preloaded), pull requests (create with GitHub's 422 on a
//! duplicate head, list), git refs and `repository_dispatch` events (recorded), and GraphQL `blame`
//! from the backing repository's real history (`POST /graphql`). Issues and pull requests share one number sequence.
//!
//! Requests must carry `User-Agent` (403 with GitHub's text without one), `Authorization: Bearer
//! <token>` (401 `Bad credentials`), `Accept: application/vnd.github+json` and
//! `X-GitHub-Api-Version: 2022-11-28`; the fake answers 400 to a wrong `Accept` or version, where
//! GitHub would tolerate their absence, so a client that forgets them is caught.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::index::TrigramIndex;
use super::{
    Failure, Incoming, Server, SharedRecorder, Term, ceil_secs, hang, intake, lock, now_ms, rfc3339, scripted_fake,
};

const DOCS: &str = "https://docs.github.com/rest";
const NO_USER_AGENT: &str = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n";

/// An issue the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub labels: Vec<String>,
    /// `open` or `closed`.
    pub state: String,
    /// `completed`, `not_planned`, `reopened`, or `None`.
    pub state_reason: Option<String>,
    pub created_at: String,
}

/// An issue comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub issue_number: u64,
    pub body: String,
}

/// A pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub head: String,
    pub base: String,
    pub body: Option<String>,
    pub draft: bool,
    pub state: String,
}

/// A `repository_dispatch` event created through `POST /repos/{o}/{r}/dispatches`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub event_type: String,
    pub client_payload: Value,
}

/// A commit to serve from `GET /repos/{o}/{r}/commits?path=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    /// The paths it touched.
    pub paths: Vec<String>,
    pub author: String,
    /// RFC 3339.
    pub date: String,
    pub message: String,
}

#[derive(Debug)]
struct Data {
    token: String,
    owner: String,
    name: String,
    default_branch: String,
    issues: Vec<Issue>,
    /// The issues' titles and bodies, for `/search/issues` ([`TrigramIndex`]).
    search: TrigramIndex,
    comments: Vec<Comment>,
    pulls: Vec<Pull>,
    /// Newest first.
    commits: Vec<Commit>,
    /// (ref, path) → content.
    files: BTreeMap<(String, String), String>,
    /// `refs/heads/main` → sha.
    refs: BTreeMap<String, String>,
    /// A real bare repository standing for this one's git data (what an executor pushed to).
    backing_repo: Option<std::path::PathBuf>,
    dispatches: Vec<Dispatch>,
    next_number: u64,
    next_id: u64,
}

type Shared = Arc<Mutex<Data>>;

#[derive(Clone)]
struct AppState {
    data: Shared,
    recorder: SharedRecorder,
}

/// A running fake GitHub API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeGitHub {
    server: Server,
    data: Shared,
    recorder: SharedRecorder,
}

scripted_fake!(FakeGitHub);

impl FakeGitHub {
    /// Starts the fake serving `repo` (`owner/name`, default branch `main`) to `token`.
    pub async fn start(token: &str, repo: &str) -> Self {
        let (owner, name) = repo.split_once('/').expect("repo is owner/name");
        let mut refs = BTreeMap::new();
        refs.insert("refs/heads/main".to_owned(), "0000000000000000000000000000000000000001".to_owned());
        let data = Arc::new(Mutex::new(Data {
            token: token.to_owned(),
            owner: owner.to_owned(),
            name: name.to_owned(),
            default_branch: "main".to_owned(),
            issues: Vec::new(),
            search: TrigramIndex::default(),
            comments: Vec::new(),
            pulls: Vec::new(),
            backing_repo: None,
            dispatches: Vec::new(),
            commits: Vec::new(),
            files: BTreeMap::new(),
            refs,
            next_number: 1,
            next_id: 1_000,
        }));
        let recorder = SharedRecorder::default();
        let app =
            Router::new().fallback(handle).with_state(AppState { data: data.clone(), recorder: recorder.clone() });
        Self { server: super::serve(app).await, data, recorder }
    }

    /// The API base, for `GITHUB_API_BASE`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Serves `content` at `path` on the default branch.
    pub fn put_file(&self, path: &str, content: &str) {
        let mut data = lock(&self.data);
        let branch = data.default_branch.clone();
        data.files.insert((branch, path.trim_start_matches('/').to_owned()), content.to_owned());
    }

    /// Serves `content` at `path` on `git_ref` (a branch, tag or sha).
    pub fn put_file_at(&self, git_ref: &str, path: &str, content: &str) {
        lock(&self.data)
            .files
            .insert((git_ref.to_owned(), path.trim_start_matches('/').to_owned()), content.to_owned());
    }

    /// Adds a commit (the newest so far).
    pub fn add_commit(&self, commit: Commit) {
        lock(&self.data).commits.insert(0, commit);
    }

    /// Adds an existing issue; returns its number.
    pub fn add_issue(&self, title: &str, body: &str, labels: &[&str]) -> u64 {
        let mut data = lock(&self.data);
        let number = data.take_number();
        data.push_issue(Issue {
            number,
            title: title.to_owned(),
            body: Some(body.to_owned()),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            state: "open".to_owned(),
            state_reason: None,
            created_at: rfc3339(now_ms()),
        });
        number
    }

    pub fn issues(&self) -> Vec<Issue> {
        lock(&self.data).issues.clone()
    }

    /// How many issues it holds (without copying them, for polling).
    pub fn issue_count(&self) -> usize {
        lock(&self.data).issues.len()
    }

    pub fn comments(&self) -> Vec<Comment> {
        lock(&self.data).comments.clone()
    }

    /// Serves branches from a real bare repository too, as GitHub knows what was pushed to it.
    pub fn set_backing_repo(&self, bare: &std::path::Path) {
        lock(&self.data).backing_repo = Some(bare.to_path_buf());
    }

    /// The `repository_dispatch` events created, oldest first.
    pub fn dispatches(&self) -> Vec<Dispatch> {
        lock(&self.data).dispatches.clone()
    }

    pub fn pulls(&self) -> Vec<Pull> {
        lock(&self.data).pulls.clone()
    }

    /// `refs/heads/...` → sha.
    pub fn refs(&self) -> BTreeMap<String, String> {
        lock(&self.data).refs.clone()
    }
}

impl Data {
    /// Adds `issue`, indexed for search.
    fn push_issue(&mut self, issue: Issue) {
        let at = self.issues.len();
        self.search.add(at, &issue.title);
        self.search.add(at, issue.body.as_deref().unwrap_or_default());
        self.issues.push(issue);
    }

    fn take_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn api(&self) -> String {
        format!("https://api.github.com/repos/{}/{}", self.owner, self.name)
    }

    fn issue_json(&self, issue: &Issue) -> Value {
        let api = self.api();
        let n = issue.number;
        let comments = self.comments.iter().filter(|c| c.issue_number == n).count();
        json!({
            "url": format!("{api}/issues/{n}"),
            "repository_url": api,
            "comments_url": format!("{api}/issues/{n}/comments"),
            "html_url": format!("https://github.com/{}/{}/issues/{n}", self.owner, self.name),
            "id": 100_000 + n,
            "node_id": format!("I_fake{n}"),
            "number": n,
            "title": issue.title,
            "user": {"login": "bugbot[bot]", "id": 1, "type": "Bot"},
            "labels": issue.labels.iter().map(|l| json!({"name": l, "color": "ededed", "default": false})).collect::<Vec<_>>(),
            "state": issue.state,
            "state_reason": issue.state_reason,
            "locked": false,
            "assignee": null,
            "assignees": [],
            "comments": comments,
            "created_at": issue.created_at,
            "updated_at": issue.created_at,
            "closed_at": if issue.state == "closed" { json!(issue.created_at) } else { Value::Null },
            "author_association": "NONE",
            "body": issue.body,
        })
    }

    fn pull_json(&self, pull: &Pull) -> Value {
        let n = pull.number;
        json!({
            "url": format!("{}/pulls/{n}", self.api()),
            "html_url": format!("https://github.com/{}/{}/pull/{n}", self.owner, self.name),
            "id": 200_000 + n,
            "number": n,
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "draft": pull.draft,
            "head": {"ref": pull.head, "label": format!("{}:{}", self.owner, pull.head)},
            "base": {"ref": pull.base, "label": format!("{}:{}", self.owner, pull.base)},
        })
    }

    fn ref_json(&self, name: &str, sha: &str) -> Value {
        json!({"ref": name, "node_id": "REF_fake", "url": format!("{}/git/{name}", self.api()),
               "object": {"sha": sha, "type": "commit", "url": format!("{}/git/commits/{sha}", self.api())}})
    }
}

// --- HTTP ----------------------------------------------------------------------------------------

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert("x-github-api-version-selected", HeaderValue::from_static("2022-11-28"));
    headers.insert("x-ratelimit-limit", 5_000.into());
    headers.insert("x-ratelimit-remaining", 4_999.into());
    headers.insert("x-ratelimit-used", 1.into());
    headers.insert("x-ratelimit-reset", (now_ms() / 1_000 + 3_600).into());
    headers.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    response
}

fn message(status: StatusCode, text: &str) -> Response {
    json_response(status, &json!({"message": text, "documentation_url": DOCS, "status": status.as_u16().to_string()}))
}

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

fn validation_failed(errors: &Value) -> Response {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({"message": "Validation Failed", "errors": errors, "documentation_url": DOCS, "status": "422"}),
    )
}

fn failure_response(failure: &Failure) -> Option<Response> {
    match failure {
        Failure::Hang => None,
        Failure::ServerError => Some(json_response(StatusCode::BAD_GATEWAY, &json!({"message": "Server Error"}))),
        // A secondary rate limit: 403 (GitHub also uses 429) with `retry-after`, while the primary
        // limit still has requests left.
        Failure::RateLimited { retry_after_secs } => {
            let mut response = message(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
            );
            response.headers_mut().insert(header::RETRY_AFTER, ceil_secs(*retry_after_secs).into());
            Some(response)
        }
    }
}

async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let incoming = intake(&app.recorder, request).await;
    if let Some(failure) = &incoming.failure {
        return match failure_response(failure) {
            Some(response) => response,
            None => hang().await,
        };
    }
    if incoming.header("user-agent").is_none_or(str::is_empty) {
        return (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], NO_USER_AGENT)
            .into_response();
    }
    let mut data = lock(&app.data);
    match incoming.header("authorization") {
        None => return message(StatusCode::UNAUTHORIZED, "Requires authentication"),
        Some(auth) if auth != format!("Bearer {}", data.token) => {
            return message(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        Some(_) => {}
    }
    if incoming.header("accept") != Some("application/vnd.github+json") {
        return message(StatusCode::BAD_REQUEST, "FakeGitHub requires Accept: application/vnd.github+json");
    }
    if let Some(version) = incoming.header("x-github-api-version").filter(|v| *v != "2022-11-28") {
        return message(StatusCode::BAD_REQUEST, &format!("API version '{version}' is not supported."));
    }
    if incoming.header("x-github-api-version").is_none() {
        return message(StatusCode::BAD_REQUEST, "FakeGitHub requires X-GitHub-Api-Version: 2022-11-28");
    }
    route(&mut data, &incoming)
}

fn route(data: &mut Data, incoming: &Incoming) -> Response {
    let segments: Vec<&str> = incoming.segments.iter().map(String::as_str).collect();
    let method = &incoming.method;
    match segments.as_slice() {
        ["search", "issues"] if method == Method::GET => search_issues(data, incoming),
        ["search", "code"] if method == Method::GET => search_code(data, incoming),
        ["graphql"] if method == Method::POST => graphql(data, incoming),
        ["repos", owner, name, rest @ ..] => {
            if *owner != data.owner || *name != data.name {
                return not_found();
            }
            repo_route(data, incoming, rest)
        }
        _ => not_found(),
    }
}

fn repo_route(data: &mut Data, incoming: &Incoming, rest: &[&str]) -> Response {
    let method = incoming.method.clone();
    let body = incoming.json().unwrap_or(Value::Null);
    match (method, rest) {
        (Method::POST, ["issues"]) => create_issue(data, &body),
        (Method::GET, ["issues"]) => {
            let state = incoming.query("state").unwrap_or("open");
            let items: Vec<Value> = data
                .issues
                .iter()
                .rev()
                .filter(|i| state == "all" || i.state == state)
                .map(|i| data.issue_json(i))
                .collect();
            json_response(StatusCode::OK, &Value::Array(items))
        }
        (Method::GET, ["issues", n]) => match find_issue(data, n) {
            Some(i) => json_response(StatusCode::OK, &data.issue_json(&data.issues[i])),
            None => not_found(),
        },
        (Method::PATCH, ["issues", n]) => match find_issue(data, n) {
            Some(i) => update_issue(data, i, &body),
            None => not_found(),
        },
        (Method::POST, ["issues", n, "comments"]) => {
            let Some(i) = find_issue(data, n) else { return not_found() };
            let Some(text) = body.get("body").and_then(Value::as_str).filter(|b| !b.is_empty()) else {
                return validation_failed(
                    &json!([{"resource": "IssueComment", "code": "missing_field", "field": "body"}]),
                );
            };
            let comment = Comment { id: data.take_id(), issue_number: data.issues[i].number, body: text.to_owned() };
            data.comments.push(comment.clone());
            let n = comment.issue_number;
            json_response(
                StatusCode::CREATED,
                &json!({"id": comment.id, "body": comment.body,
                        "html_url": format!("https://github.com/{}/{}/issues/{n}#issuecomment-{}", data.owner, data.name, comment.id),
                        "issue_url": format!("{}/issues/{n}", data.api()), "created_at": rfc3339(now_ms())}),
            )
        }
        (Method::GET, ["issues", n, "comments"]) => {
            let Some(i) = find_issue(data, n) else { return not_found() };
            let number = data.issues[i].number;
            let items: Vec<Value> = data
                .comments
                .iter()
                .filter(|c| c.issue_number == number)
                .map(|c| json!({"id": c.id, "body": c.body}))
                .collect();
            json_response(StatusCode::OK, &Value::Array(items))
        }
        (Method::GET, ["contents", path @ ..]) => contents(data, incoming, &path.join("/")),
        (Method::GET, ["commits"]) => {
            let path = incoming.query("path");
            let per_page = incoming.query("per_page").and_then(|p| p.parse().ok()).unwrap_or(30_usize);
            let items: Vec<Value> = data
                .commits
                .iter()
                .filter(|c| path.is_none_or(|p| c.paths.iter().any(|cp| cp == p || cp.starts_with(&format!("{p}/")))))
                .take(per_page)
                .map(|c| {
                    let who = json!({"name": c.author, "email": format!("{}@example.com", c.author.to_lowercase().replace(' ', ".")), "date": c.date});
                    json!({"sha": c.sha, "commit": {"author": who, "committer": who, "message": c.message},
                           "html_url": format!("https://github.com/{}/{}/commit/{}", data.owner, data.name, c.sha),
                           "author": null, "committer": null})
                })
                .collect();
            json_response(StatusCode::OK, &Value::Array(items))
        }
        (Method::POST, ["pulls"]) => create_pull(data, &body),
        (Method::GET, ["pulls"]) => {
            let state = incoming.query("state").unwrap_or("open");
            let items: Vec<Value> = data
                .pulls
                .iter()
                .rev()
                .filter(|p| state == "all" || p.state == state)
                .map(|p| data.pull_json(p))
                .collect();
            json_response(StatusCode::OK, &Value::Array(items))
        }
        (Method::POST, ["dispatches"]) => dispatch(data, &body),
        (method, ["git", rest @ ..]) => refs_route(data, &method, rest, &body),
        _ => not_found(),
    }
}

/// `POST /repos/{o}/{r}/dispatches` (<https://docs.github.com/en/rest/repos/repos#create-a-repository-dispatch-event>):
/// `event_type` 1–100 characters, `client_payload` an object of at most 10 top-level properties and
/// under 64 KB; `204` with no body.
fn dispatch(data: &mut Data, body: &Value) -> Response {
    let event_type = body.get("event_type").and_then(Value::as_str).unwrap_or_default();
    if event_type.is_empty() || event_type.chars().count() > 100 {
        return validation_failed(&json!([{"resource": "Repository", "code": "invalid", "field": "event_type"}]));
    }
    let client_payload = body.get("client_payload").cloned().unwrap_or_else(|| json!({}));
    let too_big = client_payload.to_string().len() >= 64 * 1024;
    if !client_payload.is_object() || client_payload.as_object().is_some_and(|o| o.len() > 10) || too_big {
        return validation_failed(&json!([{"resource": "Repository", "code": "invalid", "field": "client_payload"}]));
    }
    data.dispatches.push(Dispatch { event_type: event_type.to_owned(), client_payload });
    StatusCode::NO_CONTENT.into_response()
}

/// `/repos/{o}/{r}/git/...`: refs (<https://docs.github.com/en/rest/git/refs>).
fn refs_route(data: &mut Data, method: &Method, rest: &[&str], body: &Value) -> Response {
    match (method, rest) {
        (&Method::POST, ["refs"]) => {
            let name = body.get("ref").and_then(Value::as_str).unwrap_or_default().to_owned();
            let sha = body.get("sha").and_then(Value::as_str).unwrap_or_default().to_owned();
            if !name.starts_with("refs/") || name.matches('/').count() < 2 {
                return unprocessable("Reference name must start with 'refs/' and have at least two slashes.");
            }
            if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return unprocessable("Object does not exist");
            }
            if data.refs.contains_key(&name) {
                return unprocessable("Reference already exists");
            }
            data.refs.insert(name.clone(), sha.clone());
            json_response(StatusCode::CREATED, &data.ref_json(&name, &sha))
        }
        (&Method::GET, ["refs", prefix @ ..]) => {
            let prefix = if prefix.is_empty() { "refs/".to_owned() } else { format!("refs/{}", prefix.join("/")) };
            let items: Vec<Value> =
                data.refs.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(k, v)| data.ref_json(k, v)).collect();
            if items.is_empty() { not_found() } else { json_response(StatusCode::OK, &Value::Array(items)) }
        }
        (&Method::GET, ["ref", name @ ..]) => {
            let name = format!("refs/{}", name.join("/"));
            match data.refs.get(&name) {
                Some(sha) => json_response(StatusCode::OK, &data.ref_json(&name, sha)),
                None => not_found(),
            }
        }
        (&Method::PATCH, ["refs", name @ ..]) => {
            let name = format!("refs/{}", name.join("/"));
            let Some(sha) = body.get("sha").and_then(Value::as_str).map(str::to_owned) else {
                return validation_failed(&json!([{"resource": "Reference", "code": "missing_field", "field": "sha"}]));
            };
            if !data.refs.contains_key(&name) {
                return unprocessable("Reference does not exist");
            }
            data.refs.insert(name.clone(), sha.clone());
            json_response(StatusCode::OK, &data.ref_json(&name, &sha))
        }
        _ => not_found(),
    }
}

/// A 422 whose `message` is the specific reason (GitHub answers refs errors this way).
fn unprocessable(text: &str) -> Response {
    message(StatusCode::UNPROCESSABLE_ENTITY, text)
}

fn find_issue(data: &Data, number: &str) -> Option<usize> {
    let number: u64 = number.parse().ok()?;
    data.issues.iter().position(|i| i.number == number)
}

fn create_issue(data: &mut Data, body: &Value) -> Response {
    let Some(title) = body.get("title").and_then(Value::as_str).filter(|t| !t.trim().is_empty()) else {
        return validation_failed(&json!([{"resource": "Issue", "code": "missing_field", "field": "title"}]));
    };
    let labels = match body.get("labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let names: Option<Vec<String>> = items
                .iter()
                .map(|l| l.as_str().or_else(|| l.get("name").and_then(Value::as_str)).map(str::to_owned))
                .collect();
            let Some(names) = names else {
                return validation_failed(&json!([{"resource": "Issue", "code": "invalid", "field": "labels"}]));
            };
            names
        }
        Some(_) => return validation_failed(&json!([{"resource": "Issue", "code": "invalid", "field": "labels"}])),
    };
    let number = data.take_number();
    let issue = Issue {
        number,
        title: title.to_owned(),
        body: body.get("body").and_then(Value::as_str).map(str::to_owned),
        labels,
        state: "open".to_owned(),
        state_reason: None,
        created_at: rfc3339(now_ms()),
    };
    data.push_issue(issue.clone());
    let mut response = json_response(StatusCode::CREATED, &data.issue_json(&issue));
    if let Ok(location) = HeaderValue::from_str(&format!("{}/issues/{number}", data.api())) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn update_issue(data: &mut Data, index: usize, body: &Value) -> Response {
    let Some(fields) = body.as_object() else {
        return message(StatusCode::BAD_REQUEST, "Problems parsing JSON");
    };
    let issue = &mut data.issues[index];
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("state", Value::String(s)) if s == "open" || s == "closed" => {
                if *s != issue.state {
                    issue.state_reason = if s == "open" { Some("reopened".into()) } else { Some("completed".into()) };
                }
                issue.state.clone_from(s);
            }
            ("state_reason", Value::String(r)) if ["completed", "not_planned", "reopened"].contains(&r.as_str()) => {
                issue.state_reason = Some(r.clone());
            }
            ("state_reason", Value::Null) => {}
            ("title", Value::String(t)) => {
                issue.title.clone_from(t);
                data.search.add(index, t);
            }
            ("body", Value::String(b)) => {
                issue.body = Some(b.clone());
                data.search.add(index, b);
            }
            ("labels", Value::Array(items)) => {
                issue.labels = items.iter().filter_map(Value::as_str).map(str::to_owned).collect();
            }
            _ => return validation_failed(&json!([{"resource": "Issue", "code": "invalid", "field": key}])),
        }
    }
    let issue = data.issues[index].clone();
    json_response(StatusCode::OK, &data.issue_json(&issue))
}

fn create_pull(data: &mut Data, body: &Value) -> Response {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(title), Some(head), Some(base)) = (text("title"), text("head"), text("base")) else {
        return validation_failed(&json!([{"resource": "PullRequest", "code": "missing_field", "field": "head"}]));
    };
    // `head` may be `owner:branch`.
    let branch = head.rsplit(':').next().unwrap_or(&head).to_owned();
    let pushed = |name: &str| {
        data.backing_repo.as_ref().is_some_and(|bare| {
            std::process::Command::new("git")
                .arg("--git-dir")
                .arg(bare)
                .args(["rev-parse", "--verify", "--quiet", &format!("refs/heads/{name}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    };
    if !data.refs.contains_key(&format!("refs/heads/{branch}")) && !pushed(&branch) {
        return validation_failed(&json!([{"resource": "PullRequest", "code": "invalid", "field": "head"}]));
    }
    if !data.refs.contains_key(&format!("refs/heads/{base}")) && !pushed(&base) {
        return validation_failed(&json!([{"resource": "PullRequest", "code": "invalid", "field": "base"}]));
    }
    if data.pulls.iter().any(|p| p.state == "open" && p.head == branch && p.base == base) {
        let text = format!("A pull request already exists for {}:{branch}.", data.owner);
        return validation_failed(&json!([{"resource": "PullRequest", "code": "custom", "message": text}]));
    }
    let pull = Pull {
        number: data.take_number(),
        title,
        head: branch,
        base,
        body: text("body"),
        draft: body.get("draft").and_then(Value::as_bool).unwrap_or(false),
        state: "open".to_owned(),
    };
    data.pulls.push(pull.clone());
    json_response(StatusCode::CREATED, &data.pull_json(&pull))
}

fn contents(data: &Data, incoming: &Incoming, path: &str) -> Response {
    let git_ref = incoming.query("ref").unwrap_or(&data.default_branch).to_owned();
    let Some(content) = data.files.get(&(git_ref.clone(), path.to_owned())) else {
        // A directory: list what is under it.
        let prefix = format!("{path}/");
        let entries: Vec<Value> = data
            .files
            .keys()
            .filter(|(r, p)| *r == git_ref && p.starts_with(&prefix))
            .map(|(_, p)| json!({"type": "file", "name": p.rsplit('/').next(), "path": p}))
            .collect();
        return if entries.is_empty() || path.is_empty() {
            not_found()
        } else {
            json_response(StatusCode::OK, &Value::Array(entries))
        };
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    // GitHub wraps the base64 at 60 columns, with a trailing newline.
    let mut wrapped: String = encoded
        .as_bytes()
        .chunks(60)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    wrapped.push('\n');
    let sha = format!("{:040x}", content.len());
    json_response(
        StatusCode::OK,
        &json!({
            "type": "file", "encoding": "base64", "size": content.len(),
            "name": path.rsplit('/').next(), "path": path, "sha": sha, "content": wrapped,
            "url": format!("{}/contents/{path}?ref={git_ref}", data.api()),
            "html_url": format!("https://github.com/{}/{}/blob/{git_ref}/{path}", data.owner, data.name),
            "download_url": format!("https://raw.githubusercontent.com/{}/{}/{git_ref}/{path}", data.owner, data.name),
        }),
    )
}

/// `POST /graphql`: the one query bugbot sends, `repository.object(expression).blame(path)`,
/// answered from the backing repository's real history (`git blame --porcelain`), in GitHub's
/// shape: `{"data": {"repository": {"object": {"blame": {"ranges": [...]}}}}}`, `object: null`
/// for an unknown expression, and GitHub's `NOT_FOUND` error for an unknown repository.
fn graphql(data: &Data, incoming: &Incoming) -> Response {
    let body = incoming.json().unwrap_or(Value::Null);
    let query = body["query"].as_str().unwrap_or_default();
    let vars = &body["variables"];
    if !query.contains("blame(path:") {
        return json_response(
            StatusCode::OK,
            &json!({"errors": [{"message": "FakeGitHub serves only blame queries"}]}),
        );
    }
    if vars["owner"] != data.owner.as_str() || vars["name"] != data.name.as_str() {
        let message = format!("Could not resolve to a Repository with the name '{}/{}'.", vars["owner"], vars["name"]);
        return json_response(
            StatusCode::OK,
            &json!({"data": {"repository": null}, "errors": [{"type": "NOT_FOUND", "path": ["repository"], "message": message}]}),
        );
    }
    let (expression, path) = (vars["expression"].as_str().unwrap_or("HEAD"), vars["path"].as_str().unwrap_or(""));
    let ranges = data.backing_repo.as_deref().and_then(|repo| blame_ranges(repo, expression, path));
    let object = match ranges {
        Some(ranges) => json!({"blame": {"ranges": ranges}}),
        None => Value::Null,
    };
    json_response(StatusCode::OK, &json!({"data": {"repository": {"object": object}}}))
}

/// `git blame --porcelain` of `path` at `expression` as GitHub's `BlameRange` list; `None` when
/// git cannot (unknown revision or path).
fn blame_ranges(repo: &std::path::Path, expression: &str, path: &str) -> Option<Vec<Value>> {
    if expression.starts_with('-') || path.starts_with('-') {
        return None;
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["blame", "--porcelain", expression, "--", path])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut commits: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    let mut ranges: Vec<(String, u32, u32)> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with('\t') {
            continue;
        }
        let words: Vec<&str> = line.split(' ').collect();
        if words.len() >= 3 && words[0].len() == 40 && words[0].bytes().all(|b| b.is_ascii_hexdigit()) {
            words[0].clone_into(&mut current);
            let final_line: u32 = words[2].parse().ok()?;
            match ranges.last_mut() {
                Some((sha, _, end)) if *sha == current && *end + 1 == final_line => *end = final_line,
                _ => ranges.push((current.clone(), final_line, final_line)),
            }
            commits.entry(current.clone()).or_default();
            continue;
        }
        let entry = commits.entry(current.clone()).or_default();
        if let Some(name) = line.strip_prefix("author ") {
            name.clone_into(&mut entry.0);
        } else if let Some(time) = line.strip_prefix("author-time ") {
            entry.1 = time.parse::<u64>().map(|t| rfc3339(t * 1_000)).unwrap_or_default();
        } else if let Some(summary) = line.strip_prefix("summary ") {
            summary.clone_into(&mut entry.2);
        }
    }
    Some(
        ranges
            .into_iter()
            .map(|(sha, start, end)| {
                let (author, date, summary) = commits.get(&sha).cloned().unwrap_or_default();
                json!({"startingLine": start, "endingLine": end, "age": 1,
                       "commit": {"oid": sha, "abbreviatedOid": &sha[..7], "committedDate": date, "message": summary,
                                  "messageHeadline": summary, "author": {"name": author, "date": date}}})
            })
            .collect(),
    )
}

/// The search qualifiers bugbot uses; anything else is answered with GitHub's 422.
/// `GET /search/code` (<https://docs.github.com/en/rest/search/search#search-code>): the default
/// branch's files containing every term (quoted phrases whole, case-insensitive); `repo:` is required
/// here, as bugbot always scopes its searches.
fn search_code(data: &Data, incoming: &Incoming) -> Response {
    let Some(q) = incoming.query("q").filter(|q| !q.trim().is_empty()) else {
        return validation_failed(&json!([{"resource": "Search", "field": "q", "code": "missing"}]));
    };
    let mut repo = None;
    let mut terms = Vec::new();
    for token in tokenize(q) {
        match token.split_once(':').filter(|_| !token.starts_with('"')) {
            Some(("repo", r)) => repo = Some(r.to_owned()),
            Some((qualifier, _)) => {
                let text = format!("FakeGitHub does not implement the qualifier {qualifier}:");
                return validation_failed(
                    &json!([{"message": text, "resource": "Search", "field": "q", "code": "invalid"}]),
                );
            }
            None => terms.push(Term::new(&token.trim_matches('"').to_lowercase())),
        }
    }
    let own = format!("{}/{}", data.owner, data.name);
    if repo.as_deref() != Some(own.as_str()) {
        return validation_failed(&json!([{"message": "repo: must be this repository", "resource": "Search"}]));
    }
    let per_page = incoming.query("per_page").and_then(|p| p.parse().ok()).unwrap_or(30_usize);
    let items: Vec<Value> = data
        .files
        .iter()
        .filter(|((r, _), content)| *r == data.default_branch && terms.iter().all(|t| t.found_in(content)))
        .take(per_page)
        .map(|((_, path), _)| {
            json!({"name": path.rsplit('/').next(), "path": path, "sha": "0".repeat(40),
                   "html_url": format!("https://github.com/{own}/blob/{}/{path}", data.default_branch),
                   "repository": {"full_name": own}, "score": 1.0})
        })
        .collect();
    json_response(StatusCode::OK, &json!({"total_count": items.len(), "incomplete_results": false, "items": items}))
}

fn search_issues(data: &Data, incoming: &Incoming) -> Response {
    let Some(q) = incoming.query("q").filter(|q| !q.trim().is_empty()) else {
        return validation_failed(&json!([{"resource": "Search", "field": "q", "code": "missing"}]));
    };
    let mut repo = None;
    let (mut kind, mut state) = (None, None);
    let mut scopes = Vec::new();
    let mut labels = Vec::new();
    let mut terms = Vec::new();
    for token in tokenize(q) {
        match token.split_once(':').filter(|_| !token.starts_with('"')) {
            Some(("repo", r)) => repo = Some(r.to_owned()),
            Some(("is" | "type", "issue")) => kind = Some("issue"),
            Some(("is" | "type", "pr")) => kind = Some("pr"),
            Some(("is" | "state", s @ ("open" | "closed"))) => state = Some(s.to_owned()),
            Some(("in", scope)) => scopes.extend(scope.split(',').map(str::to_owned)),
            Some(("label", l)) => labels.push(l.trim_matches('"').to_owned()),
            Some((qualifier, _)) => {
                let text = format!("FakeGitHub does not implement the qualifier {qualifier}:");
                return validation_failed(
                    &json!([{"message": text, "resource": "Search", "field": "q", "code": "invalid"}]),
                );
            }
            None => terms.push(Term::new(&token.trim_matches('"').to_lowercase())),
        }
    }
    let own = format!("{}/{}", data.owner, data.name);
    if repo.as_deref().is_some_and(|r| !r.eq_ignore_ascii_case(&own)) {
        return json_response(StatusCode::OK, &json!({"total_count": 0, "incomplete_results": false, "items": []}));
    }
    if scopes.is_empty() {
        scopes = vec!["title".into(), "body".into()];
    }
    // An issue's comments are gathered only when the search covers comments.
    let matches_terms = |title: &str, body: &str, number: Option<u64>| {
        let comments = || data.comments.iter().filter(move |c| Some(c.issue_number) == number);
        terms.iter().all(|term| {
            (scopes.iter().any(|s| s == "title") && term.found_in(title))
                || (scopes.iter().any(|s| s == "body") && term.found_in(body))
                || (scopes.iter().any(|s| s == "comments") && comments().any(|c| term.found_in(&c.body)))
        })
    };
    // The index covers titles and bodies: a search of comments checks every issue.
    let candidates = if scopes.iter().all(|s| s == "title" || s == "body") {
        data.search.candidates_for_all(terms.iter().map(Term::text))
    } else {
        None
    };
    let issues: Box<dyn Iterator<Item = &Issue>> = match &candidates {
        Some(found) => Box::new(found.iter().rev().filter_map(|&at| data.issues.get(at))),
        None => Box::new(data.issues.iter().rev()),
    };
    let mut items = Vec::new();
    if kind != Some("pr") {
        for issue in issues {
            let ok = state.as_ref().is_none_or(|s| *s == issue.state)
                && labels.iter().all(|l| issue.labels.iter().any(|il| il.eq_ignore_ascii_case(l)))
                && matches_terms(&issue.title, issue.body.as_deref().unwrap_or_default(), Some(issue.number));
            if ok {
                let mut item = data.issue_json(issue);
                item["score"] = json!(1.0);
                items.push(item);
            }
        }
    }
    if kind != Some("issue") {
        for pull in data.pulls.iter().rev() {
            if state.as_ref().is_none_or(|s| *s == pull.state)
                && labels.is_empty()
                && matches_terms(&pull.title, pull.body.as_deref().unwrap_or_default(), None)
            {
                let mut item = data.pull_json(pull);
                item["pull_request"] = json!({"url": item["url"].clone()});
                item["score"] = json!(1.0);
                items.push(item);
            }
        }
    }
    let total = items.len();
    let per_page = incoming.query("per_page").and_then(|p| p.parse().ok()).unwrap_or(30_usize).clamp(1, 100);
    let page = incoming.query("page").and_then(|p| p.parse().ok()).unwrap_or(1_usize).max(1);
    let items: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let mut response =
        json_response(StatusCode::OK, &json!({"total_count": total, "incomplete_results": false, "items": items}));
    response.headers_mut().insert("x-ratelimit-resource", HeaderValue::from_static("search"));
    response.headers_mut().insert("x-ratelimit-limit", 30.into());
    response
}

/// Splits a search query on spaces, keeping `"quoted phrases"` (also after a qualifier) whole.
fn tokenize(q: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_quoted_phrases() {
        assert_eq!(
            tokenize(r#"repo:o/r is:issue in:body "<!-- bugbot:fingerprint=ab c -->"  label:"a b""#),
            ["repo:o/r", "is:issue", "in:body", "\"<!-- bugbot:fingerprint=ab c -->\"", "label:\"a b\""]
        );
    }
}
