//! What the consumer keeps in KV (eventually consistent; for status, dashboards and re-rendering —
//! never for exactly-once decisions, which are the Durable Object's).
//!
//! Every key is spelled in [`keys`].

use bugbot_shared::claim::TrackedRefs;
use bugbot_shared::event::ErrorEvent;
use bugbot_shared::job::Job;
use bugbot_shared::status::{JobState, JobStatus};
use serde::{Deserialize, Serialize};
use worker::kv::KvStore;

pub mod counters;
pub mod fix_runs;
pub mod keys;
pub mod memo;
pub mod objects;
pub mod ports;

use self::ports::{ClaimPort, KvPort, Settlement};

/// A job's status record as of `now_ms`.
pub fn job_status_of(
    job: &Job,
    state: JobState,
    reason: Option<String>,
    links: Vec<String>,
    attempts: u32,
    now_ms: u64,
) -> JobStatus {
    JobStatus {
        job_id: job.id.to_string(),
        kind: job.kind.name().to_owned(),
        state,
        received_at_ms: job.received_at_ms,
        updated_at_ms: now_ms,
        attempts,
        reason,
        request_id: job.request_id.clone(),
        links,
    }
}

/// A job's status record: the ledger's, else one KV kept from before job records moved there.
pub async fn job_status<C: ClaimPort, K: KvPort>(claims: &C, state: &State<K>, job_id: &str) -> Option<JobStatus> {
    match claims.job_status(job_id).await {
        Ok(Some(status)) => Some(status),
        _ => state.legacy_job_status(job_id).await,
    }
}

/// Writes job status records now, outside a batch's settlement (a step inside a job).
pub async fn record_jobs<C: ClaimPort>(claims: &C, jobs: Vec<JobStatus>) -> worker::Result<()> {
    claims.settle(&Settlement { stats: Vec::new(), jobs }).await
}

/// Job status, issue records and dead letters.
pub const STATE_KV: &str = "STATE";

/// Dead letters expire after 30 days; issue records after 90.
const JOB_TTL_SECS: u64 = 30 * 24 * 3600;
const ISSUE_TTL_SECS: u64 = 90 * 24 * 3600;

/// The KV record of a tracked fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueRecord {
    pub fingerprint: String,
    pub title: String,
    pub level: String,
    pub source: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    pub tracked: TrackedRefs,
    pub occurrences: u64,
    pub last_seen_ms: u64,
    /// The last normalized event, for re-rendering (kept here so that filing is one KV write).
    #[serde(default)]
    pub event: Option<ErrorEvent>,
    /// The Sentry integration installation that reported it (`installation.uuid` of the webhook),
    /// for a later write-back (the PR's link) from a job that is not the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
}

/// A dead letter, as kept for inspection and replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub job_id: String,
    pub kind: String,
    pub reason: String,
    pub dead_at_ms: u64,
    /// The message as it was queued (JSON text of the job), for replay.
    pub message: String,
}

/// The consumer's KV records, over any [`KvPort`] (the Worker's is the `STATE` namespace).
#[derive(Debug)]
pub struct State<K: KvPort = KvStore> {
    kv: K,
}

impl<K: KvPort> State<K> {
    pub fn new(kv: K) -> Self {
        Self { kv }
    }

    /// The namespace itself, for modules that keep their own records (`fixrun:`, `thread:`, ...).
    pub fn kv(&self) -> &K {
        &self.kv
    }

    async fn put<T: Serialize>(&self, key: &str, value: &T, ttl: u64) -> worker::Result<()> {
        self.kv.put_text(key, serde_json::to_string(value)?, ttl).await
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Option<T> {
        serde_json::from_str(&self.kv.get_text(key).await?).ok()
    }

    /// A status record KV still holds from before job records moved to the ledger.
    async fn legacy_job_status(&self, job_id: &str) -> Option<JobStatus> {
        self.get(&keys::job(job_id)).await
    }

    /// Keeps the filed issue and its event (best effort: KV is not the source of truth).
    pub async fn remember_issue(&self, event: &ErrorEvent, tracked: &TrackedRefs, installation: Option<String>) {
        let fp = event.fingerprint.as_str();
        let record = IssueRecord {
            fingerprint: fp.to_owned(),
            title: event.title.clone(),
            level: event.level.as_str().to_owned(),
            source: event.source.as_str().to_owned(),
            project: event.project.clone(),
            environment: event.environment.clone(),
            tracked: tracked.clone(),
            occurrences: 1,
            last_seen_ms: event.last_seen_ms,
            event: Some(event.clone()),
            installation,
        };
        let _ = self.put(&keys::issue(fp), &record, ISSUE_TTL_SECS).await;
    }

    /// Updates the counters of a tracked fingerprint (best effort; KV allows one write per second per key).
    pub async fn count_occurrence(&self, event: &ErrorEvent, occurrences: u64) {
        let key = keys::issue(event.fingerprint.as_str());
        if let Some(mut record) = self.get::<IssueRecord>(&key).await {
            record.occurrences = record.occurrences.max(occurrences);
            record.last_seen_ms = record.last_seen_ms.max(event.last_seen_ms);
            let _ = self.put(&key, &record, ISSUE_TTL_SECS).await;
        }
    }

    /// The remembered issue with its event (and the Sentry installation that reported it).
    pub async fn remembered_source(&self, fingerprint: &str) -> Option<IssueRecord> {
        self.get::<IssueRecord>(&keys::issue(fingerprint)).await.filter(|r| r.event.is_some())
    }

    pub async fn remembered_event(&self, fingerprint: &str) -> Option<ErrorEvent> {
        if let Some(event) = self.get::<IssueRecord>(&keys::issue(fingerprint)).await.and_then(|r| r.event) {
            return Some(event);
        }
        // Issues filed before the event moved into the issue record.
        self.get(&keys::legacy_event(fingerprint)).await
    }

    pub async fn record_dead_letter(&self, letter: &DeadLetter) -> worker::Result<()> {
        self.put(&keys::dead_letter(&letter.job_id), letter, JOB_TTL_SECS).await
    }
}
