//! What is stored about each job in KV, for `/bugbot status`, the dashboard and tests.

use serde::{Deserialize, Serialize};

/// The KV key of a job's status record.
pub fn job_key(job_id: &str) -> String {
    format!("job:{job_id}")
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    Received,
    Gathering,
    Filed,
    Fixing,
    PrOpened,
    Done,
    /// A redelivery or a repeat of work already claimed.
    Duplicate,
    /// Filtered out by configuration.
    Ignored,
    Retrying,
    Failed,
}

impl JobState {
    /// The job's work is done, whichever copy of its delivery did it: a copy the queue gives up on
    /// afterwards (it kept finding the job busy while another copy finished it) has lost nothing.
    pub fn finished_ok(self) -> bool {
        matches!(self, Self::Filed | Self::PrOpened | Self::Done | Self::Duplicate | Self::Ignored)
    }
}

/// A job's status record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job_id: String,
    pub kind: String,
    pub state: JobState,
    pub received_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Links produced so far (tracked issue, PR, Discord message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

#[cfg(test)]
mod finished_tests {
    use super::JobState;

    #[test]
    fn only_done_work_is_finished() {
        let finished = [JobState::Filed, JobState::PrOpened, JobState::Done, JobState::Duplicate, JobState::Ignored];
        assert!(finished.iter().all(|s| s.finished_ok()));
        let open = [JobState::Received, JobState::Gathering, JobState::Fixing, JobState::Retrying, JobState::Failed];
        assert!(open.iter().all(|s| !s.finished_ok()));
    }
}
