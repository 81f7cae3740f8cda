//! PostHog's REST API (<https://posthog.com/docs/api>): a person by email, and a person's or a
//! session's recordings. Auth `Authorization: Bearer <personal API key>`. Settings:
//! `POSTHOG_API_BASE` (e.g. `https://us.posthog.com`, also where replays are linked),
//! `POSTHOG_API_KEY`, `POSTHOG_PROJECT_ID`.
//!
//! The recordings list defaults to the last 3 days; bugbot asks for a wider window.

use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use worker::Url;

use super::SinkError;
use crate::clients::http::{HttpPort, HttpRequest, Method};

const SERVICE: &str = "posthog";

/// How far back recordings are searched (PostHog's own default is `-3d`).
pub const RECORDINGS_WINDOW: &str = "-30d";

pub struct PostHog<'a, P> {
    pub port: &'a P,
    pub api_base: String,
    pub api_key: String,
    pub project_id: String,
}

impl<P> fmt::Debug for PostHog<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostHog").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

/// A person (<https://posthog.com/docs/api/persons>).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Person {
    pub uuid: String,
    pub distinct_ids: Vec<String>,
}

/// A session recording (<https://posthog.com/docs/api/session-recordings>).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionRecording {
    pub id: String,
    pub start_time: Option<String>,
    pub recording_duration: Option<f64>,
    pub console_error_count: Option<u64>,
    pub start_url: Option<String>,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
}

impl<P: HttpPort> PostHog<'_, P> {
    /// `GET /api/projects/{id}/persons/?email=…`: the first match.
    pub async fn person_by_email(&self, email: &str) -> Result<Option<Person>, SinkError> {
        let url = self.url(&["persons"], &[("email", email)])?;
        let page: Option<Page<Person>> = self.get(url).await?;
        Ok(page.and_then(|p| p.results.into_iter().next()))
    }

    /// `GET /api/projects/{id}/session_recordings/?person_uuid=…&date_from=-30d`.
    pub async fn recordings_of(&self, person_uuid: &str, limit: u8) -> Result<Vec<SessionRecording>, SinkError> {
        let limit = limit.clamp(1, 100).to_string();
        let url = self.url(
            &["session_recordings"],
            &[("person_uuid", person_uuid), ("date_from", RECORDINGS_WINDOW), ("limit", &limit)],
        )?;
        let page: Option<Page<SessionRecording>> = self.get(url).await?;
        Ok(page.map(|p| p.results).unwrap_or_default())
    }

    /// `GET /api/projects/{id}/session_recordings/{session_id}/`.
    pub async fn recording(&self, session_id: &str) -> Result<Option<SessionRecording>, SinkError> {
        let url = self.url(&["session_recordings", session_id], &[])?;
        self.get(url).await
    }

    /// The replay's page.
    pub fn replay_url(&self, session_id: &str) -> String {
        format!("{}/project/{}/replay/{session_id}", self.api_base.trim_end_matches('/'), self.project_id)
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, SinkError> {
        let mut url = Url::parse(&self.api_base).map_err(|e| permanent(format!("POSTHOG_API_BASE: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| permanent("POSTHOG_API_BASE cannot be a base URL"))?
            .pop_if_empty()
            .extend(["api", "projects", &self.project_id])
            .extend(segments)
            .push("");
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>, SinkError> {
        let request = HttpRequest::new(Method::Get, url.as_str())
            .header("authorization", format!("Bearer {}", self.api_key))
            .header("accept", "application/json");
        let response = self.port.send(request).await.map_err(|e| SinkError::transport(SERVICE, &e))?;
        match response.status {
            404 => Ok(None),
            s if s == 429 || s >= 500 => {
                Err(SinkError::Transient { service: SERVICE, reason: format!("HTTP {s}"), retry_after: None })
            }
            s if !(200..300).contains(&s) => Err(permanent(format!("HTTP {s}"))),
            _ => serde_json::from_slice(&response.body)
                .map(Some)
                .map_err(|e| permanent(format!("unexpected answer: {e}"))),
        }
    }
}

fn permanent(reason: impl Into<String>) -> SinkError {
    SinkError::Permanent { service: SERVICE, reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::clients::linear::recording::{RecordingPort, answer, fixture, header};

    #[test]
    fn person_then_recordings_with_a_wide_window() {
        let port = RecordingPort::new([
            answer(200, &fixture("posthog/persons_list.docs_example_response.json")),
            answer(200, &fixture("posthog/session_recordings_list.docs_example_response.json")),
        ]);
        let ph =
            PostHog { port: &port, api_base: "http://ph.test".into(), api_key: "k".into(), project_id: "7".into() };
        let person = block_on(ph.person_by_email("a+b@x.io")).unwrap().unwrap();
        assert_eq!(person.uuid, "095be615-a8ad-4c33-8e9c-c7612fbf6c9f");
        let recordings = block_on(ph.recordings_of(&person.uuid, 5)).unwrap();
        assert_eq!(recordings[0].console_error_count, Some(0));
        let requests = port.requests();
        assert_eq!(requests[0].url, "http://ph.test/api/projects/7/persons/?email=a%2Bb%40x.io");
        assert_eq!(
            requests[1].url,
            "http://ph.test/api/projects/7/session_recordings/?person_uuid=095be615-a8ad-4c33-8e9c-c7612fbf6c9f&date_from=-30d&limit=5"
        );
        assert_eq!(header(&requests[1], "authorization"), Some("Bearer k"));
        assert_eq!(ph.replay_url("s1"), "http://ph.test/project/7/replay/s1");
    }
}
