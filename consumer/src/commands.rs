//! `/bugbot` commands and message commands (issue: Discord commands and the context packet).
//! Placeholder: records the job; the commands work fills this module in.

use bugbot_shared::job::Job;
use bugbot_shared::status::JobState;

use crate::http::HttpPort;
use crate::pipeline::{Deps, Outcome};

/// Handles a `DiscordCommand` or `DiscordComponent` job.
#[expect(clippy::unused_async, reason = "placeholder until this module is filled in")]
pub async fn process<P: HttpPort>(deps: &Deps<'_, P>, job: &Job) -> Outcome {
    let _ = (deps, job);
    Outcome::Done { state: JobState::Received, reason: None, links: Vec::new(), fingerprint: None }
}
