//! Every KV key the consumer writes or reads, in one place.
//!
//! - `job:{id}` a job's status record, read only: written before job records moved to the ledger
//!   (`objects::stats`), they expire within 30 days;
//! - `fp:{fingerprint}` the tracked issue of a fingerprint, with its last event, read only: written
//!   before issue records moved into the fingerprints' shards (`objects::claims`), they expire
//!   within 90 days;
//! - `event:{fingerprint}` the last event of issues filed before it moved into `fp:`;
//! - `dead:{job id}` dead letters;
//! - `thread:{channel id}` and `issue:{label}` a conversation's tracked issue (commands);
//! - `mute:{fingerprint}` the index of active mutes (the mute itself is in the fingerprint's claim);
//! - `fixrun:{id}`, `fixissue:{issue key}` fix runs; `fixcaps:{day}` the auto-fix caps.

/// The prefix of the issue records earlier versions kept (the dashboard lists them beside the ledger's).
pub const ISSUE_PREFIX: &str = "fp:";
/// The prefix of dead letters (`/admin/dead-letters` lists them).
pub const DEAD_LETTER_PREFIX: &str = "dead:";

pub fn job(job_id: &str) -> String {
    bugbot_shared::status::job_key(job_id)
}

pub fn issue(fingerprint: &str) -> String {
    format!("{ISSUE_PREFIX}{fingerprint}")
}

/// The prefix of the last events of issues filed before they moved into `fp:`.
pub const LEGACY_EVENT_PREFIX: &str = "event:";

pub fn legacy_event(fingerprint: &str) -> String {
    format!("{LEGACY_EVENT_PREFIX}{fingerprint}")
}

pub fn dead_letter(job_id: &str) -> String {
    format!("{DEAD_LETTER_PREFIX}{job_id}")
}

/// The prefix of the mute index (`/bugbot status` lists it).
pub const MUTE_PREFIX: &str = "mute:";

pub fn mute(fingerprint: &str) -> String {
    format!("{MUTE_PREFIX}{fingerprint}")
}

pub fn thread(channel_id: &str) -> String {
    format!("thread:{channel_id}")
}

pub fn issue_label(label: &str) -> String {
    format!("issue:{}", label.trim())
}

pub fn fix_run(fix_job_id: &str) -> String {
    format!("fixrun:{fix_job_id}")
}

pub fn fix_issue(key: &str) -> String {
    format!("fixissue:{key}")
}

pub fn fix_caps(day: &str) -> String {
    format!("fixcaps:{day}")
}
