//! What the consumer keeps in KV (eventually consistent; for status, dashboards and re-rendering —
//! never for exactly-once decisions, which are the Durable Object's), and the issue records its
//! fingerprints' shards keep.
//!
//! Every key is spelled in [`keys`].

use bugbot_shared::claim::{ShardIssue, TrackedRefs};
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
    claims.settle(&Settlement { jobs, ..Settlement::default() }).await
}

/// Job status, issue records and dead letters.
pub const STATE_KV: &str = "STATE";

/// Dead letters expire after 30 days.
const JOB_TTL_SECS: u64 = 30 * 24 * 3600;

/// What the consumer keeps of a tracked fingerprint's issue: in its shard, beside the fingerprint's
/// record (`objects::claims`), written by the round trip that ends the filing. Versions before kept
/// it in KV (`fp:{fingerprint}`, 90 days after its last change), where it is still read.
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
    /// The last normalized event, for re-rendering (kept here so that the issue is one record).
    #[serde(default)]
    pub event: Option<ErrorEvent>,
    /// The Sentry integration installation that reported it (`installation.uuid` of the webhook),
    /// for a later write-back (the PR's link) from a job that is not the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
}

/// The largest issue record kept with its event, in UTF-8 bytes (a value in a `SQLite`-backed
/// Durable Object's storage is at most 2 MiB, and a JavaScript string may take two bytes a
/// character): past it the record is kept without the event, and what would re-render the card
/// uses the status change's own facts instead.
const MAX_ISSUE_RECORD_BYTES: usize = 512 * 1024;

impl IssueRecord {
    /// The record of an issue just filed, as JSON text for its fingerprint's shard
    /// ([`ClaimPort::filed`]).
    pub fn filed(event: &ErrorEvent, tracked: &TrackedRefs, installation: Option<String>) -> String {
        Self {
            fingerprint: event.fingerprint.as_str().to_owned(),
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
        }
        .kept()
    }

    /// This record as a shard keeps it (JSON text), without its event past
    /// [`MAX_ISSUE_RECORD_BYTES`].
    fn kept(mut self) -> String {
        let text = serde_json::to_string(&self).unwrap_or_default();
        if text.len() <= MAX_ISSUE_RECORD_BYTES {
            return text;
        }
        self.event = None;
        serde_json::to_string(&self).unwrap_or_default()
    }
}

/// The remembered issue of `fingerprint`: the record its shard kept when it was filed, else the one
/// KV holds from an earlier version (then kept by the shard too, [`keep_earlier_issue`]); either
/// with the shard's current tracked issues and counters. An error when the shard cannot be asked
/// (what needs the record is retried, rather than done without it).
pub async fn remembered<C: ClaimPort, K: KvPort>(
    claims: &C,
    state: &State<K>,
    fingerprint: &str,
) -> worker::Result<Option<IssueRecord>> {
    let ShardIssue { record, issue } = claims.issue(fingerprint).await?;
    let mut issue = match issue.and_then(|text| serde_json::from_str::<IssueRecord>(&text).ok()) {
        Some(issue) => issue,
        None => match state.legacy_issue(fingerprint).await {
            Some(earlier) => {
                keep_earlier_issue(claims, fingerprint, &earlier).await;
                earlier
            }
            None => return Ok(None),
        },
    };
    if let Some(record) = record {
        issue.tracked = record.tracked;
        issue.occurrences = issue.occurrences.max(record.occurrences);
        issue.last_seen_ms = issue.last_seen_ms.max(record.last_seen_ms);
    }
    Ok(Some(issue))
}

/// Keeps the record an earlier version wrote to KV in the fingerprint's shard, unless it has one:
/// KV's copy expires 90 days after its last write, and nothing rewrites it any more. Best effort
/// (the next repeat or read tries again).
async fn keep_earlier_issue<C: ClaimPort>(claims: &C, fingerprint: &str, earlier: &IssueRecord) {
    let _ = claims.keep_issue(fingerprint, earlier.clone().kept()).await;
}

/// A repeat that comments (once per cooldown): the issue record an earlier version kept in KV, if
/// there is one, is kept by the fingerprint's shard from then on. One KV read, as the repeat's
/// counters update was before issue records moved out of KV.
pub async fn keep_issue_filed_earlier<C: ClaimPort, K: KvPort>(claims: &C, state: &State<K>, fingerprint: &str) {
    if let Some(earlier) = state.legacy_issue(fingerprint).await {
        keep_earlier_issue(claims, fingerprint, &earlier).await;
    }
}

/// The remembered issue with its event (and the Sentry installation that reported it).
pub async fn remembered_source<C: ClaimPort, K: KvPort>(
    claims: &C,
    state: &State<K>,
    fingerprint: &str,
) -> worker::Result<Option<IssueRecord>> {
    Ok(remembered(claims, state, fingerprint).await?.filter(|r| r.event.is_some()))
}

/// The last event of a remembered issue, for re-rendering its card.
pub async fn remembered_event<C: ClaimPort, K: KvPort>(
    claims: &C,
    state: &State<K>,
    fingerprint: &str,
) -> worker::Result<Option<ErrorEvent>> {
    if let Some(event) = remembered(claims, state, fingerprint).await?.and_then(|r| r.event) {
        return Ok(Some(event));
    }
    Ok(state.legacy_event(fingerprint).await)
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

    /// The issue record KV holds from before issue records moved into the fingerprints' shards.
    async fn legacy_issue(&self, fingerprint: &str) -> Option<IssueRecord> {
        self.get(&keys::issue(fingerprint)).await
    }

    /// The last event of an issue filed before the event moved into the issue record.
    async fn legacy_event(&self, fingerprint: &str) -> Option<ErrorEvent> {
        self.get(&keys::legacy_event(fingerprint)).await
    }

    pub async fn record_dead_letter(&self, letter: &DeadLetter) -> worker::Result<()> {
        self.put(&keys::dead_letter(&letter.job_id), letter, JOB_TTL_SECS).await
    }
}
