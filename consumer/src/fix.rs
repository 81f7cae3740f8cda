//! The fix flow: dispatch to the executor, and act on its signed results.
//! Placeholder: records the job; the fix-flow work fills this module in.

use bugbot_shared::job::Job;
use bugbot_shared::status::JobState;

use crate::http::HttpPort;
use crate::pipeline::{Deps, Outcome};

/// Handles an `ExecutorResult` job.
#[expect(clippy::unused_async, reason = "placeholder until this module is filled in")]
pub async fn on_result<P: HttpPort>(deps: &Deps<'_, P>, job: &Job) -> Outcome {
    let _ = (deps, job);
    Outcome::Done { state: JobState::Received, reason: None, links: Vec::new(), fingerprint: None }
}
