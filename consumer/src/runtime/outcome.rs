//! What became of a job ([`Outcome`], with the typed [`Effect`] the counters observe), and why a
//! step failed ([`StepError`]).

use bugbot_shared::claim::TrackedRefs;
use bugbot_shared::digest::Occurrence;
use bugbot_shared::event::ErrorEvent;
use bugbot_shared::status::JobState;

use crate::clients::SinkError;

/// What became of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished (successfully or not): ack.
    Done { state: JobState, reason: Option<String>, links: Vec<String>, fingerprint: Option<String>, effect: Effect },
    /// A transient failure: retry after the delay (seconds).
    Retry { delay_secs: u32, reason: String, attempt: u32 },
}

impl Outcome {
    pub(crate) fn done(state: JobState, reason: impl Into<Option<String>>) -> Self {
        Self::Done { state, reason: reason.into(), links: Vec::new(), fingerprint: None, effect: Effect::None }
    }

    /// The same outcome, saying what it did.
    #[must_use]
    pub fn with_effect(self, effect: Effect) -> Self {
        match self {
            Self::Done { state, reason, links, fingerprint, .. } => {
                Self::Done { state, reason, links, fingerprint, effect }
            }
            retry @ Self::Retry { .. } => retry,
        }
    }

    /// What the job did (nothing, for a retry).
    pub fn effect(&self) -> &Effect {
        match self {
            Self::Done { effect, .. } => effect,
            Self::Retry { .. } => &Effect::None,
        }
    }
}

/// What a finished job did, as the counters (`StatsStore`) and the log see it: typed, so nothing
/// downstream parses a reason string or normalizes the event again.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing worth counting (a duplicate delivery, a command's answer, ...).
    None,
    /// An error event reached a tracker: a new issue, a repeat, or a regression.
    Filed { occurrence: Occurrence, alert: Box<AlertSummary> },
    /// An issue was resolved at its source.
    Resolved,
    /// A fix run was dispatched to the executor.
    FixStarted,
    /// A fix run ended: `outcome` is a `FixOutcome` name or `pr_opened`.
    FixFinished { outcome: String, cost_usd: f64 },
    /// Dropped on purpose (filtered, or no action for this kind).
    Skipped { reason: String },
}

/// Work a handler leaves for the runtime to start once its job is settled.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    /// A new issue was filed: start a fix when the auto-fix policy allows it, else leave a note.
    /// `evidence` is what the context packet found (confidence, issue 16.3); `context` the packet
    /// itself as Markdown, for the fix job (issue 16.4).
    AutoFix {
        event: Box<ErrorEvent>,
        tracked: TrackedRefs,
        evidence: bugbot_shared::confidence::Evidence,
        context: String,
        /// The repository `REPO_ROUTES` chose for the event (issue 16.6); `None`: the default.
        /// A fix still needs it in `FIX_REPOS`.
        repo: Option<String>,
    },
}

/// What the counters and the ledger's issue list keep about an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSummary {
    pub fingerprint: String,
    pub title: String,
    pub project: Option<String>,
    pub level: String,
    pub source: String,
    /// The tracked issues' URLs (Linear's first).
    pub links: Vec<String>,
    /// The fingerprint's occurrences as its claim counted them.
    pub occurrences: u64,
    pub last_seen_ms: u64,
}

impl AlertSummary {
    pub fn of(event: &ErrorEvent, tracked: &TrackedRefs, occurrences: u64) -> Self {
        Self {
            fingerprint: event.fingerprint.as_str().to_owned(),
            title: event.title.clone(),
            project: event.project.clone(),
            level: event.level.as_str().to_owned(),
            source: event.source.as_str().to_owned(),
            links: tracked.urls(),
            occurrences,
            last_seen_ms: event.last_seen_ms,
        }
    }

    /// The tracked issue's URL.
    pub fn url(&self) -> Option<String> {
        self.links.first().cloned()
    }

    /// The issue as the ledger lists it.
    pub fn row(&self) -> bugbot_shared::dashboard::IssueRow {
        bugbot_shared::dashboard::IssueRow {
            fingerprint: self.fingerprint.clone(),
            title: self.title.clone(),
            level: self.level.clone(),
            project: self.project.clone(),
            source: self.source.clone(),
            occurrences: self.occurrences,
            last_seen_ms: self.last_seen_ms,
            links: self.links.clone(),
        }
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

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sink(e) => e.fmt(f),
            Self::Platform(reason) => f.write_str(reason),
        }
    }
}
