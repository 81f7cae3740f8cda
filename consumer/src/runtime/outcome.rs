//! What became of a job, and why a step failed.

use bugbot_shared::status::JobState;

use crate::clients::SinkError;

/// What became of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished (successfully or not): ack.
    Done { state: JobState, reason: Option<String>, links: Vec<String>, fingerprint: Option<String> },
    /// A transient failure: retry after the delay (seconds).
    Retry { delay_secs: u32, reason: String, attempt: u32 },
}

impl Outcome {
    pub(crate) fn done(state: JobState, reason: impl Into<Option<String>>) -> Self {
        Self::Done { state, reason: reason.into(), links: Vec::new(), fingerprint: None }
    }
}

/// A step failed; says whether to retry.
#[derive(Debug)]
pub enum StepError {
    Sink(SinkError),
    /// Our own infrastructure (Durable Object, KV): always worth a retry.
    Platform(String),
}

impl From<SinkError> for StepError {
    fn from(e: SinkError) -> Self {
        Self::Sink(e)
    }
}

impl From<worker::Error> for StepError {
    fn from(e: worker::Error) -> Self {
        Self::Platform(e.to_string())
    }
}
