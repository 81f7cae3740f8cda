//! A fake Sentry-compatible REST API (`/api/0/`, as Sentry and GlitchTip serve it):
//! `GET /api/0/organizations/{org}/issues/?query=&statsPeriod=&limit=`, `GET /api/0/issues/{id}/`,
//! `GET /api/0/issues/{id}/events/latest/` and `PUT /api/0/issues/{id}/ {"status"}`; and the
//! write-back routes: Sentry's integration-platform external issues
//! (`POST /api/0/sentry-app-installations/{uuid}/external-issues/` with `issueId`, `webUrl`,
//! `project`, `identifier`, all required; create or update per issue and installation; an unknown
//! installation or issue is 404) and their list (`GET /api/0/groups/{id}/external-issues/`), and
//! GlitchTip's comments (`POST /api/0/issues/{id}/comments/ {"data": {"text"}}`, 201).
//! `Authorization: Bearer <token>` or 401 `{"detail": "Invalid token"}`.
//!
//! It starts with one issue per event in `fixtures/sentry_events/glitchtip_test_data/oss_sentry_events`
//! (ids from 1001 in file-name order; [`FakeSentry::issue_id`] finds one by fixture name). The query
//! understands `is:unresolved|resolved`, `level:`, `project:` and free words (title/culprit);
//! `statsPeriod` (`24h`, `14d`) filters on `lastSeen`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Failure, Server, SharedRecorder, Term, ceil_secs, hang, intake, lock, now_ms, rfc3339, scripted_fake};
use crate::workers::workspace_root;

/// The organization the fake serves.
pub const ORG: &str = "acme";

/// An issue the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub id: String,
    /// The fixture it came from (`python_zero_division`), if any.
    pub fixture: Option<String>,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: String,
    pub project: String,
    pub count: u64,
    pub user_count: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// The latest event (API shape).
    pub event: Value,
}

/// A link Sentry shows on an issue page, made by an integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIssue {
    pub installation: String,
    pub issue_id: String,
    pub web_url: String,
    pub project: String,
    pub identifier: String,
}

#[derive(Debug)]
struct Data {
    token: String,
    base: String,
    issues: Vec<Issue>,
    installations: Vec<String>,
    external_issues: Vec<ExternalIssue>,
    comments: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Data>>;

#[derive(Clone)]
struct AppState {
    data: Shared,
    recorder: SharedRecorder,
}

/// A running fake Sentry API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeSentry {
    server: Server,
    data: Shared,
    recorder: SharedRecorder,
}

scripted_fake!(FakeSentry);

impl FakeSentry {
    pub async fn start(token: &str) -> Self {
        let data = Arc::new(Mutex::new(Data {
            token: token.to_owned(),
            base: String::new(),
            issues: Vec::new(),
            installations: Vec::new(),
            external_issues: Vec::new(),
            comments: Vec::new(),
        }));
        let recorder = SharedRecorder::default();
        let app =
            Router::new().fallback(handle).with_state(AppState { data: data.clone(), recorder: recorder.clone() });
        let server = super::serve(app).await;
        let fake = Self { server, data, recorder };
        lock(&fake.data).base = fake.url();
        fake.seed();
        fake
    }

    /// The API host, for `SENTRY_API_BASE`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    fn seed(&self) {
        let dir = workspace_root().join("fixtures/sentry_events/glitchtip_test_data/oss_sentry_events");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("event fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        let now = now_ms();
        for (i, path) in names.iter().enumerate() {
            let event: Value = serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
            let level = event["tags"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["key"] == "level"))
                .and_then(|t| t["value"].as_str())
                .unwrap_or("error")
                .to_owned();
            let id = (1001 + i).to_string();
            self.add_issue(Issue {
                id,
                fixture: path.file_stem().map(|s| s.to_string_lossy().into_owned()),
                title: event["title"].as_str().unwrap_or("error").to_owned(),
                culprit: event["culprit"].as_str().unwrap_or_default().to_owned(),
                level,
                status: "unresolved".into(),
                project: if event["platform"] == "python" { "backend".into() } else { "web".into() },
                count: 10 * (i as u64 + 1),
                user_count: i as u64 + 1,
                first_seen_ms: now - (i as u64) * 2 * 86_400_000,
                last_seen_ms: now - 60_000,
                event,
            });
        }
    }

    /// Adds (or replaces, by id) an issue.
    pub fn add_issue(&self, issue: Issue) {
        let mut data = lock(&self.data);
        data.issues.retain(|i| i.id != issue.id);
        data.issues.push(issue);
    }

    /// An integration installation (its `uuid`, as webhooks carry it in `installation.uuid`).
    pub fn add_installation(&self, uuid: &str) {
        let mut data = lock(&self.data);
        if !data.installations.iter().any(|i| i == uuid) {
            data.installations.push(uuid.to_owned());
        }
    }

    /// What a Sentry alert webhook (`event_alert`: `data.event`, `installation`) refers to, as the
    /// Sentry that sent it has them: the event's issue (`issue_id`, with its title, culprit, level
    /// and project; the webhook's event as its latest, in the webhook's shape) and the installation
    /// it came through. Returns the issue's id, `None` when the body names no issue.
    pub fn add_alert_source(&self, webhook: &Value) -> Option<String> {
        let event = &webhook["data"]["event"];
        let id = match &event["issue_id"] {
            Value::String(id) => id.clone(),
            Value::Number(id) => id.to_string(),
            _ => return None,
        };
        let text = |key: &str, default: &str| event[key].as_str().unwrap_or(default).to_owned();
        let project = match &event["project"] {
            Value::Number(n) => n.to_string(),
            other => other.as_str().unwrap_or("unknown").to_owned(),
        };
        let now = now_ms();
        self.add_issue(Issue {
            id: id.clone(),
            fixture: None,
            title: text("title", "error"),
            culprit: text("culprit", ""),
            level: text("level", "error"),
            status: "unresolved".into(),
            project,
            count: 1,
            user_count: 1,
            first_seen_ms: now,
            last_seen_ms: now,
            event: event.clone(),
        });
        if let Some(uuid) = webhook["installation"]["uuid"].as_str() {
            self.add_installation(uuid);
        }
        Some(id)
    }

    /// External issue links made so far.
    pub fn external_issues(&self) -> Vec<ExternalIssue> {
        lock(&self.data).external_issues.clone()
    }

    /// Comments `(issue id, text)` made so far (GlitchTip).
    pub fn comments(&self) -> Vec<(String, String)> {
        lock(&self.data).comments.clone()
    }

    pub fn issues(&self) -> Vec<Issue> {
        lock(&self.data).issues.clone()
    }

    /// The id of the issue seeded from a fixture (`python_zero_division`).
    pub fn issue_id(&self, fixture: &str) -> String {
        lock(&self.data).issues.iter().find(|i| i.fixture.as_deref() == Some(fixture)).expect("seeded").id.clone()
    }

    /// The issue's page, as a user would paste it.
    pub fn issue_url(&self, id: &str) -> String {
        format!("{}/organizations/{ORG}/issues/{id}/", self.url())
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn detail(status: StatusCode, text: &str) -> Response {
    json_response(status, &json!({"detail": text}))
}

impl Data {
    fn issue_json(&self, i: &Issue) -> Value {
        json!({
            "id": i.id, "shortId": format!("{}-{}", i.project.to_uppercase(), i.id), "title": i.title,
            "culprit": i.culprit, "level": i.level, "status": i.status, "count": i.count.to_string(),
            "userCount": i.user_count, "firstSeen": rfc3339(i.first_seen_ms), "lastSeen": rfc3339(i.last_seen_ms),
            "permalink": format!("{}/organizations/{ORG}/issues/{}/", self.base, i.id),
            "project": {"slug": i.project, "name": i.project}, "metadata": {"title": i.title},
        })
    }
}

fn period_ms(p: &str) -> Option<u64> {
    let (n, unit) = p.split_at(p.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    match unit {
        "h" => Some(n * 3_600_000),
        "d" => Some(n * 86_400_000),
        "w" => Some(n * 7 * 86_400_000),
        _ => None,
    }
}

async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let incoming = intake(&app.recorder, request).await;
    match &incoming.failure {
        Some(Failure::Hang) => return hang().await,
        Some(Failure::ServerError) => return detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Error"),
        Some(Failure::RateLimited { retry_after_secs }) => {
            let mut r = detail(StatusCode::TOO_MANY_REQUESTS, "Request was throttled.");
            r.headers_mut().insert("retry-after", ceil_secs(*retry_after_secs).into());
            return r;
        }
        None => {}
    }
    let mut data = lock(&app.data);
    if incoming.header("authorization") != Some(&format!("Bearer {}", data.token)) {
        return detail(StatusCode::UNAUTHORIZED, "Invalid token");
    }
    let segments: Vec<&str> = incoming.segments.iter().map(String::as_str).collect();
    if let Some(response) = writeback(&mut data, &incoming, &segments) {
        return response;
    }
    match (&incoming.method, segments.as_slice()) {
        (&Method::GET, ["api", "0", "organizations", org, "issues"]) => {
            if *org != ORG {
                return detail(StatusCode::NOT_FOUND, "The requested resource does not exist");
            }
            let query = incoming.query("query").unwrap_or("is:unresolved");
            let window = incoming.query("statsPeriod").filter(|p| !p.is_empty()).and_then(period_ms);
            let limit: usize = incoming.query("limit").and_then(|l| l.parse().ok()).unwrap_or(25);
            let now = now_ms();
            // Each free word of the query, with the term searched for it (qualifiers have none).
            let words: Vec<(&str, Option<Term>)> = query
                .split_whitespace()
                .map(|word| (word, (!word.contains(':')).then(|| Term::new(&word.to_lowercase()))))
                .collect();
            let mut hits: Vec<&Issue> = data
                .issues
                .iter()
                .filter(|i| window.is_none_or(|w| i.last_seen_ms + w >= now))
                .filter(|i| {
                    words.iter().all(|(word, folded)| match (word.split_once(':'), folded) {
                        (Some(("is", s)), _) => i.status == s,
                        (Some(("level", l)), _) => i.level == l,
                        (Some(("project", p)), _) => i.project == p,
                        (_, Some(term)) => term.found_in(&i.title) || term.found_in(&i.culprit),
                        (_, None) => true,
                    })
                })
                .collect();
            hits.sort_by_key(|i| std::cmp::Reverse(i.count));
            let items: Vec<Value> = hits.into_iter().take(limit).map(|i| data.issue_json(i)).collect();
            json_response(StatusCode::OK, &Value::Array(items))
        }
        (&Method::GET, ["api", "0", "issues", id]) => match data.issues.iter().find(|i| i.id == *id) {
            Some(i) => json_response(StatusCode::OK, &data.issue_json(i)),
            None => detail(StatusCode::NOT_FOUND, "The requested resource does not exist"),
        },
        (&Method::GET, ["api", "0", "issues", id, "events", "latest"]) => {
            match data.issues.iter().find(|i| i.id == *id) {
                Some(i) => json_response(StatusCode::OK, &i.event),
                None => detail(StatusCode::NOT_FOUND, "The requested resource does not exist"),
            }
        }
        (&Method::PUT, ["api", "0", "issues", id]) => {
            let status = incoming.json().and_then(|b| b["status"].as_str().map(str::to_owned));
            let Some(status) = status.filter(|s| matches!(s.as_str(), "resolved" | "unresolved" | "ignored")) else {
                return detail(StatusCode::BAD_REQUEST, "status must be resolved, unresolved or ignored");
            };
            let Some(index) = data.issues.iter().position(|i| i.id == *id) else {
                return detail(StatusCode::NOT_FOUND, "The requested resource does not exist");
            };
            data.issues[index].status = status;
            let body = data.issue_json(&data.issues[index]);
            json_response(StatusCode::OK, &body)
        }
        _ => detail(StatusCode::NOT_FOUND, "The requested resource does not exist"),
    }
}

/// The write-back routes: Sentry's external issues and GlitchTip's comments.
fn writeback(data: &mut Data, incoming: &super::Incoming, segments: &[&str]) -> Option<Response> {
    Some(match (&incoming.method, segments) {
        (&Method::POST, ["api", "0", "sentry-app-installations", uuid, "external-issues"]) => {
            if !data.installations.iter().any(|i| i == uuid) {
                return Some(detail(StatusCode::NOT_FOUND, "The requested resource does not exist"));
            }
            let body = incoming.json().unwrap_or(Value::Null);
            let text = |k: &str| body[k].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
            let issue_id = match &body["issueId"] {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => Some(s.clone()),
                _ => None,
            };
            let (Some(issue_id), Some(web_url), Some(project), Some(identifier)) =
                (issue_id, text("webUrl"), text("project"), text("identifier"))
            else {
                return Some(detail(StatusCode::BAD_REQUEST, "issueId, webUrl, project and identifier are required"));
            };
            if !data.issues.iter().any(|i| i.id == issue_id) {
                return Some(detail(StatusCode::NOT_FOUND, "The requested resource does not exist"));
            }
            let link = ExternalIssue { installation: (*uuid).to_owned(), issue_id, web_url, project, identifier };
            data.external_issues.retain(|e| !(e.installation == link.installation && e.issue_id == link.issue_id));
            let reply = json!({"id": (data.external_issues.len() + 1).to_string(), "issueId": link.issue_id,
                "serviceType": "bugbot", "displayName": link.identifier, "webUrl": link.web_url});
            data.external_issues.push(link);
            json_response(StatusCode::OK, &reply)
        }
        (&Method::GET, ["api", "0", "groups", id, "external-issues"]) => {
            let items: Vec<Value> = data
                .external_issues
                .iter()
                .filter(|e| e.issue_id == *id)
                .map(|e| json!({"issueId": e.issue_id, "displayName": e.identifier, "webUrl": e.web_url}))
                .collect();
            json_response(StatusCode::OK, &Value::Array(items))
        }
        (&Method::POST, ["api", "0", "issues", id, "comments"]) => {
            let Some(text) = incoming.json().and_then(|b| b["data"]["text"].as_str().map(str::to_owned)) else {
                return Some(detail(StatusCode::BAD_REQUEST, "data.text is required"));
            };
            if !data.issues.iter().any(|i| i.id == *id) {
                return Some(detail(StatusCode::NOT_FOUND, "The requested resource does not exist"));
            }
            data.comments.push(((*id).to_owned(), text.clone()));
            let reply = json!({"id": data.comments.len(), "issue": id, "data": {"text": text}, "type": "note",
                "dateCreated": rfc3339(now_ms())});
            json_response(StatusCode::CREATED, &reply)
        }
        _ => return None,
    })
}
