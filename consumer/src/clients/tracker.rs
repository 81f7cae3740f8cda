//! The trackers as one: what bugbot does to any tracked issue ([`IssueRef`]), whichever tracker
//! holds it. Built by [`Ctx::tracker`](crate::runtime::Ctx::tracker), which picks the client for the
//! issue's tracker (and, for GitHub, the repository its URL names when `REPO_ROUTES` knows it).

use bugbot_shared::tracked::IssueRef;

use super::SinkError;
use super::github::GitHub;
use super::http::HttpPort;
use super::linear::Linear;

/// A configured tracker's client.
#[derive(Debug)]
pub enum Tracker<'a, P: HttpPort> {
    Linear { client: Linear<'a, P>, team_id: &'a str },
    GitHub(GitHub<'a, P>),
}

impl<P: HttpPort> Tracker<'_, P> {
    /// Comments on `issue`.
    ///
    /// # Errors
    /// The tracker's failure; a GitHub issue without a number is a permanent one.
    pub async fn comment(&self, issue: &IssueRef, body: &str) -> Result<(), SinkError> {
        match self {
            Self::Linear { client, .. } => client.comment(&issue.id, body).await,
            Self::GitHub(client) => client.comment(number(issue)?, body).await,
        }
    }

    /// Reopens (`open`) or closes `issue` as completed.
    ///
    /// # Errors
    /// The tracker's failure; a GitHub issue without a number is a permanent one.
    pub async fn set_open(&self, issue: &IssueRef, open: bool) -> Result<(), SinkError> {
        match self {
            Self::Linear { client, team_id } => client
                .set_state_type(&issue.id, team_id, if open { "unstarted" } else { "completed" })
                .await
                .map(|_| ()),
            Self::GitHub(client) => client
                .set_state(number(issue)?, open, Some(if open { "reopened" } else { "completed" }))
                .await
                .map(|_| ()),
        }
    }
}

fn number(issue: &IssueRef) -> Result<u64, SinkError> {
    issue
        .github_number()
        .ok_or_else(|| SinkError::Permanent { service: "github", reason: format!("bad issue number {}", issue.id) })
}
