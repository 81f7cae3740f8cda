//! A fake PostHog API: `GET /api/projects/{id}/persons/?email=`,
//! `GET /api/projects/{id}/session_recordings/?person_uuid=&date_from=` (default window `-3d`, as
//! PostHog's) and `GET /api/projects/{id}/session_recordings/{session_id}/`, in the shapes of
//! `fixtures/posthog`. `Authorization: Bearer <key>` or 401. Failures are scripted with
//! [`Failure`](super::Failure).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Failure, Server, SharedRecorder, ceil_secs, hang, intake, lock, now_ms, rfc3339, scripted_fake};

/// The project the fake serves.
pub const PROJECT_ID: &str = "4242";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub uuid: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub session_id: String,
    pub person_uuid: String,
    pub start_ms: u64,
    pub duration_secs: u64,
    pub console_errors: u64,
}

#[derive(Debug, Default)]
struct Data {
    key: String,
    people: Vec<Person>,
    recordings: Vec<Recording>,
    next: u64,
}

type Shared = Arc<Mutex<Data>>;

#[derive(Clone)]
struct AppState {
    data: Shared,
    recorder: SharedRecorder,
}

/// A running fake PostHog. Dropping it stops the server.
#[derive(Debug)]
pub struct FakePostHog {
    server: Server,
    data: Shared,
    recorder: SharedRecorder,
}

scripted_fake!(FakePostHog);

impl FakePostHog {
    pub async fn start(key: &str) -> Self {
        let data = Arc::new(Mutex::new(Data { key: key.to_owned(), ..Data::default() }));
        let recorder = SharedRecorder::default();
        let app =
            Router::new().fallback(handle).with_state(AppState { data: data.clone(), recorder: recorder.clone() });
        Self { server: super::serve(app).await, data, recorder }
    }

    /// The API host, for `POSTHOG_API_BASE`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    fn uuid(data: &mut Data) -> String {
        data.next += 1;
        format!("0190a000-0000-7000-8000-{:012x}", data.next)
    }

    /// A person with this email; returns their UUID.
    pub fn add_person(&self, email: &str) -> String {
        let mut data = lock(&self.data);
        let uuid = Self::uuid(&mut data);
        data.people.push(Person { uuid: uuid.clone(), email: email.to_owned() });
        uuid
    }

    /// A recording of the person, `age_days` ago; returns the session id.
    pub fn add_recording(&self, person_uuid: &str, age_days: u64, console_errors: u64) -> String {
        let mut data = lock(&self.data);
        let session_id = Self::uuid(&mut data);
        data.recordings.push(Recording {
            session_id: session_id.clone(),
            person_uuid: person_uuid.to_owned(),
            start_ms: now_ms() - age_days * 86_400_000,
            duration_secs: 95,
            console_errors,
        });
        session_id
    }

    /// The replay page of a session, as linked.
    pub fn replay_url(&self, session_id: &str) -> String {
        format!("{}/project/{PROJECT_ID}/replay/{session_id}", self.url())
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn recording_json(r: &Recording, data: &Data) -> Value {
    let person = data.people.iter().find(|p| p.uuid == r.person_uuid);
    json!({
        "id": r.session_id, "distinct_id": r.person_uuid, "viewed": false, "recording_duration": r.duration_secs,
        "active_seconds": r.duration_secs / 2, "inactive_seconds": r.duration_secs / 2,
        "start_time": rfc3339(r.start_ms), "end_time": rfc3339(r.start_ms + r.duration_secs * 1000),
        "click_count": 3, "keypress_count": 1, "mouse_activity_count": 10, "console_log_count": 4,
        "console_warn_count": 0, "console_error_count": r.console_errors, "start_url": "https://shop.example.com/checkout",
        "person": person.map(|p| json!({"id": 1, "name": p.email, "distinct_ids": [p.uuid], "properties": {"email": p.email}, "uuid": p.uuid})),
        "storage": "object_storage", "snapshot_source": "web",
    })
}

/// `-30d`, `-3d`, `-12h` → ms ago.
fn relative_ms(s: &str) -> Option<u64> {
    let s = s.strip_prefix('-')?;
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    match unit {
        "d" => Some(n * 86_400_000),
        "h" => Some(n * 3_600_000),
        _ => None,
    }
}

async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let incoming = intake(&app.recorder, request).await;
    match &incoming.failure {
        Some(Failure::Hang) => return hang().await,
        Some(Failure::ServerError) => {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"type": "server_error", "detail": "unavailable"}),
            );
        }
        Some(Failure::RateLimited { retry_after_secs }) => {
            let mut r = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"type": "throttled_error", "detail": "Request was throttled."}),
            );
            r.headers_mut().insert("retry-after", ceil_secs(*retry_after_secs).into());
            return r;
        }
        None => {}
    }
    let data = lock(&app.data);
    if incoming.header("authorization") != Some(&format!("Bearer {}", data.key)) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"type": "authentication_error", "code": "not_authenticated", "detail": "Authentication credentials were not provided."}),
        );
    }
    let segments: Vec<&str> = incoming.segments.iter().map(String::as_str).collect();
    let not_found = || {
        json_response(
            StatusCode::NOT_FOUND,
            &json!({"type": "invalid_request", "code": "not_found", "detail": "Not found."}),
        )
    };
    match (&incoming.method, segments.as_slice()) {
        (&Method::GET, ["api", "projects", project, "persons"]) if *project == PROJECT_ID => {
            let email = incoming.query("email").unwrap_or_default().to_lowercase();
            let results: Vec<Value> = data
                .people
                .iter()
                .filter(|p| email.is_empty() || p.email.to_lowercase() == email)
                .map(|p| {
                    json!({"id": 1, "name": p.email, "distinct_ids": [p.uuid], "properties": {"email": p.email},
                                "created_at": rfc3339(now_ms()), "uuid": p.uuid, "last_seen_at": rfc3339(now_ms())})
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"next": null, "previous": null, "count": results.len(), "results": results}),
            )
        }
        (&Method::GET, ["api", "projects", project, "session_recordings"]) if *project == PROJECT_ID => {
            let person = incoming.query("person_uuid");
            let window = incoming.query("date_from").and_then(relative_ms).unwrap_or(3 * 86_400_000);
            let since = now_ms().saturating_sub(window);
            let mut hits: Vec<&Recording> = data
                .recordings
                .iter()
                .filter(|r| person.is_none_or(|p| r.person_uuid == p) && r.start_ms >= since)
                .collect();
            hits.sort_by_key(|r| std::cmp::Reverse(r.start_ms));
            let limit: usize = incoming.query("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
            let results: Vec<Value> = hits.into_iter().take(limit).map(|r| recording_json(r, &data)).collect();
            json_response(
                StatusCode::OK,
                &json!({"count": results.len(), "next": null, "previous": null, "results": results}),
            )
        }
        (&Method::GET, ["api", "projects", project, "session_recordings", id]) if *project == PROJECT_ID => {
            match data.recordings.iter().find(|r| r.session_id == *id) {
                Some(r) => json_response(StatusCode::OK, &recording_json(r, &data)),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}
