//! Job status records in KV (eventually consistent; one writer per job at a time).

use bugbot_shared::job::Job;
use bugbot_shared::status::{self, JobState, JobStatus};
use worker::kv::KvStore;

/// Job records expire after 30 days.
const JOB_TTL_SECS: u64 = 30 * 24 * 3600;

pub async fn record(
    kv: &KvStore,
    job: &Job,
    state: JobState,
    reason: Option<String>,
    now_ms: u64,
) -> worker::Result<()> {
    let record = JobStatus {
        job_id: job.id.to_string(),
        kind: job.kind.name().to_owned(),
        state,
        received_at_ms: job.received_at_ms,
        updated_at_ms: now_ms,
        attempts: 1,
        reason,
        request_id: job.request_id.clone(),
        links: Vec::new(),
    };
    kv.put(&status::job_key(job.id.as_str()), serde_json::to_string(&record)?)?
        .expiration_ttl(JOB_TTL_SECS)
        .execute()
        .await?;
    Ok(())
}
