//! Exactly-once decisions, as a pure state machine. The consumer's `ClaimStore` Durable Object
//! holds one [`DeliveryRecord`] or [`FingerprintRecord`] per key and applies these functions
//! atomically (a Durable Object handles one event at a time while it awaits its own storage), so a
//! redelivered message, a Sentry retry and a burst of identical alerts all resolve here.
//!
//! Two kinds of claim:
//! - **delivery** (key = job id): the work of one delivery runs once. The holder is the queue
//!   message id, so the same message's own retry proceeds, while a second copy waits, then is dropped.
//!   A finished delivery is remembered for the dedupe window only (`DEDUPE_WINDOW_SECS`): a job id
//!   can be a hash of the body (GlitchTip sends no timestamp), and the same monitor going down again
//!   next week is a new outage, not a duplicate.
//! - **fingerprint** (key = error fingerprint): the first occurrence creates the tracked issue; while
//!   it is being created, other occurrences are only counted; afterwards they update it, commenting at
//!   most once per cooldown window; a resolved issue that recurs is a regression.
//!
//! Where the records live ([`shard_of`], [`Layout`]): a delivery record has an object of its own; the
//! fingerprint records are spread over [`FINGERPRINT_SHARDS`] objects, each holding many. A new
//! error then starts no object of its own: starting one (and its storage) was the largest single
//! cost of a new alert (`docs/CLAIMS.md`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::tracked::IssueRef;

/// The Discord alert message announcing the issue (edited in place on resolve/regress).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscordRef {
    pub channel_id: String,
    pub message_id: String,
}

/// Everything filed for one fingerprint. Filled in step by step, so a retry skips what exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedRefs {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::tracked::linear_compat")]
    pub linear: Option<IssueRef>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::tracked::github_compat")]
    pub github: Option<IssueRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discord: Option<DiscordRef>,
}

impl TrackedRefs {
    /// Adds what `other` knows and `self` does not.
    pub fn merge(&mut self, other: TrackedRefs) {
        if self.linear.is_none() {
            self.linear = other.linear;
        }
        if self.github.is_none() {
            self.github = other.github;
        }
        if self.discord.is_none() {
            self.discord = other.discord;
        }
    }

    /// The filed Linear and GitHub issues, Linear first.
    pub fn issues(&self) -> impl Iterator<Item = &IssueRef> {
        self.linear.iter().chain(self.github.iter())
    }

    /// The URL to show people: Linear first, then GitHub.
    pub fn primary_url(&self) -> Option<&str> {
        self.linear.as_ref().map(|l| l.url.as_str()).or(self.github.as_ref().map(|g| g.url.as_str()))
    }

    /// The tracked issues' URLs: Linear's, then GitHub's.
    pub fn urls(&self) -> Vec<String> {
        self.linear.iter().map(|l| l.url.clone()).chain(self.github.iter().map(|g| g.url.clone())).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.linear.is_none() && self.github.is_none() && self.discord.is_none()
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery claims

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryRecord {
    InProgress {
        holder: String,
        lease_until_ms: u64,
        /// Deliveries of this job so far (the queue's own count is not exposed to Rust Workers).
        #[serde(default)]
        attempts: u32,
    },
    Done {
        outcome: String,
        /// Until when an identical delivery is a duplicate; afterwards the record is expired (and
        /// the Durable Object deletes it). `0` (records written before the window existed): expired.
        #[serde(default)]
        expires_at_ms: u64,
    },
}

impl DeliveryRecord {
    /// When a finished record may be deleted: `Some(at)` for a `Done` record.
    pub fn expires_at_ms(&self) -> Option<u64> {
        match self {
            Self::Done { expires_at_ms, .. } => Some(*expires_at_ms),
            Self::InProgress { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DeliveryOp {
    Begin {
        holder: String,
        now_ms: u64,
        lease_ms: u64,
    },
    Finish {
        holder: String,
        outcome: String,
        /// When it finished, and how long an identical delivery stays a duplicate (the dedupe window).
        #[serde(default)]
        now_ms: u64,
        #[serde(default)]
        window_ms: u64,
    },
    /// The queue gave up on the job (dead-lettered): free it so a replay starts afresh. With the
    /// dead-lettered message (`holder`), only that message's own lease is freed: a copy of the job
    /// that the queue gave up on while another message held it (it kept finding the job busy)
    /// leaves the holder its lease. `None` (an older consumer) frees it whoever holds it.
    Release {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<String>,
    },
    /// The holder is done with the claim (a fix run's result arrived): free it — only if `holder`
    /// still holds it. A run whose lease ran out and was taken over must not free its successor's.
    Relinquish {
        holder: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum DeliveryReply {
    /// Do the work; this is delivery number `attempt` (1-based) of the job.
    Proceed {
        attempt: u32,
    },
    /// Another copy is being processed: retry later (it will then be a duplicate, or be retaken).
    Busy {
        lease_until_ms: u64,
    },
    /// Already done: drop this copy.
    Duplicate {
        outcome: String,
    },
    Finished,
}

/// Applies `op`; returns the record to store (if changed) and the reply.
pub fn delivery(record: Option<DeliveryRecord>, op: DeliveryOp) -> (Option<DeliveryRecord>, DeliveryReply) {
    match (record, op) {
        (Some(DeliveryRecord::Done { outcome, expires_at_ms }), DeliveryOp::Begin { now_ms, .. })
            if now_ms < expires_at_ms =>
        {
            (None, DeliveryReply::Duplicate { outcome })
        }
        (
            Some(DeliveryRecord::InProgress { holder, lease_until_ms, .. }),
            DeliveryOp::Begin { holder: me, now_ms, .. },
        ) if holder != me && now_ms < lease_until_ms => (None, DeliveryReply::Busy { lease_until_ms }),
        (current, DeliveryOp::Begin { holder, now_ms, lease_ms }) => {
            // An expired `Done` record is a new delivery: attempt 1.
            let attempt = match current {
                Some(DeliveryRecord::InProgress { attempts, .. }) => attempts + 1,
                _ => 1,
            };
            (
                Some(DeliveryRecord::InProgress {
                    holder,
                    lease_until_ms: now_ms.saturating_add(lease_ms),
                    attempts: attempt,
                }),
                DeliveryReply::Proceed { attempt },
            )
        }
        (_, DeliveryOp::Finish { outcome, now_ms, window_ms, .. }) => (
            Some(DeliveryRecord::Done { outcome, expires_at_ms: now_ms.saturating_add(window_ms) }),
            DeliveryReply::Finished,
        ),
        (Some(DeliveryRecord::InProgress { holder, .. }), DeliveryOp::Relinquish { holder: me }) if holder == me => (
            Some(DeliveryRecord::InProgress { holder: String::new(), lease_until_ms: 0, attempts: 0 }),
            DeliveryReply::Finished,
        ),
        (_, DeliveryOp::Relinquish { .. }) => (None, DeliveryReply::Finished),
        (record, DeliveryOp::Release { holder: Some(me) }) => match record {
            Some(DeliveryRecord::InProgress { holder, .. }) if holder == me => (
                Some(DeliveryRecord::InProgress { holder: String::new(), lease_until_ms: 0, attempts: 0 }),
                DeliveryReply::Finished,
            ),
            // Another message holds it, or it is finished: nothing of this message's to free.
            _ => (None, DeliveryReply::Finished),
        },
        (_, DeliveryOp::Release { holder: None }) => (
            Some(DeliveryRecord::InProgress { holder: String::new(), lease_until_ms: 0, attempts: 0 }),
            DeliveryReply::Finished,
        ),
    }
}

/// The id bugbot gives the Linear issue it files for `fingerprint` in `team_id`: a UUID (version 4
/// format, as `issueCreate`'s client-chosen `id` must be) derived from both, so a retry whose create
/// response was lost looks the issue up by this id instead of creating a second one.
pub fn linear_issue_id(team_id: &str, fingerprint: &str) -> String {
    let digest = crate::verify::sha256_hex(format!("bugbot:linear:{team_id}:{fingerprint}").as_bytes());
    let mut hex: Vec<char> = digest.chars().take(32).collect();
    hex[12] = '4';
    // The variant nibble: 8, 9, a or b.
    hex[16] = ['8', '9', 'a', 'b'][hex[16].to_digit(16).map_or(0, |d| (d % 4) as usize)];
    let s: String = hex.into_iter().collect();
    format!("{}-{}-{}-{}-{}", &s[..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

/// The lease of a fix claim (`fix:{issue}`): long enough to cover the executor's queue as well as
/// the run, so that no second run of the same branch can start while the first may still push.
/// The executor runs jobs one at a time behind a bounded queue (`MAX_QUEUED_JOBS`, default 16), each
/// bounded by the agent's and the test command's time limits; a few minutes per job cover the clone,
/// the push and the callback.
pub fn fix_lease_ms(limits: &crate::executor::FixLimits, executor_queue: u64) -> u64 {
    const PER_JOB_MARGIN_SECS: u64 = 5 * 60;
    let per_job = limits.timeout_secs.saturating_add(limits.test_timeout_secs).saturating_add(PER_JOB_MARGIN_SECS);
    per_job.saturating_mul(executor_queue.saturating_add(1)).saturating_mul(1_000)
}

// ---------------------------------------------------------------------------------------------
// Fingerprint claims

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueState {
    /// The first occurrence's job is filing it.
    Creating,
    Filed,
}

/// What a repeat occurrence must do (remembered so a retry of the same job repeats the decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatDecision {
    pub comment: bool,
    pub regressed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerprintRecord {
    pub state: IssueState,
    #[serde(default)]
    pub holder: Option<String>,
    #[serde(default)]
    pub lease_until_ms: u64,
    #[serde(default)]
    pub tracked: TrackedRefs,
    pub occurrences: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    #[serde(default)]
    pub last_comment_ms: u64,
    #[serde(default)]
    pub resolved: bool,
    /// The queue message carrying the holder's delivery: another copy of the same job (a second
    /// message) waits while the lease holds, instead of filing beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_message: Option<String>,
    /// The deliveries of this fingerprint seen within the dedupe window, newest last and at most
    /// [`MAX_RECENT`]: a second copy of one of them is a duplicate, its own retry repeats its
    /// decision. This is the alert's delivery claim, folded into the claim every alert asks anyway
    /// (one Durable Object round trip instead of three).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<Seen>,
    /// Records written before `recent`: the last counted occurrence's job and decision.
    #[serde(default, skip_serializing)]
    pub last_occurrence: Option<(String, RepeatDecision)>,
    /// Muted until (unix ms; 0: not muted): repeats are counted but not commented on. A
    /// regression ends the mute. Kept here, in the claim every repeat already asks, so a mute
    /// costs a repeat no extra round trip.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub muted_until_ms: u64,
    /// Who muted it (a Discord user id), for `/bugbot status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_by: Option<String>,
    /// Write-backs to the source issue (`issue`, `pr:<url>`) that failed for a passing reason
    /// (429, 5xx) and wait for a later occurrence to try again. A write-back that worked, or failed
    /// for good, is not here: each is tried once (the filing job is the only one that writes first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writeback_pending: Vec<String>,
    /// Write-backs made after filing, each once (`pr:<url>`: the PR's link), newest last and at
    /// most [`MAX_WRITEBACKS_DONE`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writeback_done: Vec<String>,
}

/// A delivery a fingerprint's claim has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The job id (the same for every copy of one webhook delivery).
    pub job: String,
    /// The queue message that carried it (a message's own retries share it); `None` in records
    /// written before messages were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A repeat's decision, replayed to its own retry; `None` for the filing job and for an
    /// occurrence counted while the issue was being filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<RepeatDecision>,
    pub at_ms: u64,
}

/// How many recent deliveries a fingerprint's claim remembers. A copy of an older one than these
/// (a burst of more than this many distinct alerts in between) is counted once more: a count off
/// by one, never a second issue (filing is the claim's `Creating` state, not this list).
pub const MAX_RECENT: usize = 32;

/// How many later write-backs a fingerprint's claim remembers.
pub const MAX_WRITEBACKS_DONE: usize = 8;

#[cfg_attr(
    not(target_arch = "wasm32"),
    expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FingerprintRecord {
    /// Whether a mute holds at `now_ms`.
    pub fn is_muted(&self, now_ms: u64) -> bool {
        self.muted_until_ms > now_ms
    }
}

/// How many objects hold the fingerprint records. **Never change it**: a fingerprint's object is
/// [`shard_of`] it, so another count would lose every record (its issue would be filed again).
pub const FINGERPRINT_SHARDS: u8 = 64;

/// The shard holding `fingerprint`'s record (`0..FINGERPRINT_SHARDS`): the first byte of its SHA-256.
/// Fixed forever, like [`FINGERPRINT_SHARDS`] (`shard_of_is_fixed` pins it).
pub fn shard_of(fingerprint: &str) -> u8 {
    Sha256::digest(fingerprint.as_bytes())[0] % FINGERPRINT_SHARDS
}

/// Where an install's fingerprint records may be. Decided once per install, by the ledger, at its
/// first operation after the upgrade that brought the shards ([`Layout::decide`]), and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Every record is in the shards: a fingerprint a shard has no record of is new.
    Shards,
    /// The install filed issues before the shards, each fingerprint's record in an object of its
    /// own (`fp:{fingerprint}`). A fingerprint a shard has no record of is looked up there once,
    /// and its record moved into the shard.
    ShardsAfterObjects,
}

impl Layout {
    /// The layout of an install whose ledger holds nothing yet (`ledger_empty`: no day counted, no
    /// job recorded) — a new install, which has made no per-fingerprint object — or holds what an
    /// earlier version recorded, which may have made them.
    pub fn decide(ledger_empty: bool) -> Self {
        if ledger_empty { Self::Shards } else { Self::ShardsAfterObjects }
    }
}

/// A fingerprint operation sent to its shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardOp {
    pub fingerprint: String,
    pub op: FingerprintOp,
    /// With a [`FingerprintOp::Filed`]: what the consumer keeps of the filed issue (its issue
    /// record, JSON text the shard does not read), stored beside the fingerprint's record when the
    /// op is applied. The issue's record is then written in the round trip that ends its filing,
    /// not in a KV write of its own, and read back with [`ShardIssue`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
}

/// The fingerprints of `records` whose issue record a shard no longer keeps at `now_ms`: no alert
/// reached them for `keep_ms` (their record's `last_seen_ms`). Issue records hold a whole event, so
/// they go as KV's copies did, while the fingerprint's claim stays.
pub fn expired_issues<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a FingerprintRecord)>,
    now_ms: u64,
    keep_ms: u64,
) -> Vec<String> {
    records
        .into_iter()
        .filter(|(_, record)| record.last_seen_ms.saturating_add(keep_ms) < now_ms)
        .map(|(fingerprint, _)| fingerprint.to_owned())
        .collect()
}

/// What a shard keeps of one fingerprint's issue (its `/issue` answer): the fingerprint's record,
/// whose tracked issues and counters are current, and the issue record stored when it was filed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardIssue {
    #[serde(default)]
    pub record: Option<FingerprintRecord>,
    #[serde(default)]
    pub issue: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FingerprintOp {
    /// An alert's delivery: `holder` is its job id, `message` the queue message carrying it.
    Occurrence {
        holder: String,
        message: String,
        now_ms: u64,
        lease_ms: u64,
        cooldown_ms: u64,
        /// How long a delivery stays a duplicate of itself (`DEDUPE_WINDOW_SECS`).
        window_ms: u64,
    },
    /// Record what has been filed so far (any holder may add facts).
    Progress {
        tracked: TrackedRefs,
    },
    /// The creator finished filing; `tracked` (merged like `Progress`) saves a round trip.
    Filed {
        holder: String,
        now_ms: u64,
        #[serde(default)]
        tracked: TrackedRefs,
    },
    /// The creator gave up (permanent failure): the next occurrence tries again.
    Abandon {
        holder: String,
    },
    /// The queue gave up on job `job` (dead-lettered): forget its delivery, and free the filing
    /// if it held it, so that a replay starts afresh. With the dead-lettered queue `message`, only
    /// what that message did is forgotten: a copy of the job that kept finding the filing busy
    /// (another message holds it) neither frees the holder's lease nor unmakes its work. `None`
    /// (an older consumer) forgets every copy of the job.
    Forget {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The source says resolved (`true`) or unresolved/regressed (`false`).
    SetResolved {
        resolved: bool,
        now_ms: u64,
    },
    Get,
    /// Mute a filed issue until `until_ms` (or until it regresses). Replies with the record.
    Mute {
        until_ms: u64,
        by: Option<String>,
    },
    /// End a mute now. Replies with the record.
    Unmute,
    /// Take a pending write-back `key`: `WriteBack { go: true }` when it was pending (it no longer
    /// is), else `go: false`.
    WriteBack {
        key: String,
    },
    /// The write-back of `key` failed for a passing reason: a later occurrence may try again.
    WriteBackFailed {
        key: String,
    },
    /// Take a one-time write-back `key` (`pr:<url>`): `WriteBack { go: true }` the first time for a
    /// filed issue (it is then recorded as written), else `go: false`.
    WriteBackOnce {
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum FingerprintReply {
    /// File the issue; `tracked` is what a previous attempt already filed.
    Create {
        tracked: TrackedRefs,
        occurrences: u64,
        /// The fingerprint's first delivery, on its first attempt: no attempt before it can have
        /// filed anything (not even a create whose response was lost), so the trackers need not
        /// be searched first.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fresh: bool,
    },
    /// Another job is filing it; this occurrence was counted.
    Pending {
        occurrences: u64,
    },
    /// Another copy of this very delivery (another queue message) is filing it: retry later, when
    /// it will be a duplicate or can be taken over.
    Busy {
        lease_until_ms: u64,
    },
    /// This delivery was already processed (a second copy): drop it.
    Duplicate,
    /// Already filed: update it.
    Repeat {
        tracked: TrackedRefs,
        occurrences: u64,
        decision: RepeatDecision,
    },
    /// `SetResolved`: `changed` is false when it already was in that state.
    Status {
        tracked: TrackedRefs,
        changed: bool,
    },
    NotTracked,
    Record {
        record: Option<Box<FingerprintRecord>>,
    },
    Ok,
    /// `WriteBack`: whether this caller writes it.
    WriteBack {
        go: bool,
    },
}

/// Applies `op`; returns the record to store (if changed) and the reply.
pub fn fingerprint(
    record: Option<FingerprintRecord>,
    op: FingerprintOp,
) -> (Option<FingerprintRecord>, FingerprintReply) {
    match op {
        FingerprintOp::Occurrence { holder, message, now_ms, lease_ms, cooldown_ms, window_ms } => {
            let delivery = Delivery { job: holder, message, now_ms, lease_ms, window_ms };
            occurrence(record, delivery, cooldown_ms)
        }
        FingerprintOp::Forget { job, message } => forget(record, &job, message.as_deref()),
        FingerprintOp::Progress { tracked } => match record {
            Some(mut r) => {
                r.tracked.merge(tracked);
                (Some(r), FingerprintReply::Ok)
            }
            None => (None, FingerprintReply::NotTracked),
        },
        FingerprintOp::Filed { holder, now_ms, tracked } => match record {
            Some(mut r) if r.state == IssueState::Creating && r.holder.as_deref() == Some(holder.as_str()) => {
                r.tracked.merge(tracked);
                r.state = IssueState::Filed;
                r.holder = None;
                r.lease_until_ms = 0;
                r.last_comment_ms = now_ms;
                let message = r.holder_message.take();
                remember(&mut r, Seen { job: holder, message, decision: None, at_ms: now_ms });
                (Some(r), FingerprintReply::Ok)
            }
            Some(_) => (None, FingerprintReply::Ok),
            None => (None, FingerprintReply::NotTracked),
        },
        FingerprintOp::Abandon { holder } => match record {
            Some(mut r) if r.state == IssueState::Creating && r.holder.as_deref() == Some(holder.as_str()) => {
                r.holder = None;
                r.holder_message = None;
                r.lease_until_ms = 0;
                (Some(r), FingerprintReply::Ok)
            }
            _ => (None, FingerprintReply::Ok),
        },
        FingerprintOp::SetResolved { resolved, now_ms } => match record {
            Some(mut r) if r.state == IssueState::Filed => {
                let changed = r.resolved != resolved;
                r.resolved = resolved;
                r.last_seen_ms = r.last_seen_ms.max(now_ms);
                let tracked = r.tracked.clone();
                (changed.then_some(r), FingerprintReply::Status { tracked, changed })
            }
            _ => (None, FingerprintReply::NotTracked),
        },
        FingerprintOp::Get => (None, FingerprintReply::Record { record: record.map(Box::new) }),
        FingerprintOp::Mute { until_ms, by } => match record {
            Some(mut r) if r.state == IssueState::Filed => {
                r.muted_until_ms = until_ms;
                r.muted_by = by;
                (Some(r.clone()), FingerprintReply::Record { record: Some(Box::new(r)) })
            }
            _ => (None, FingerprintReply::NotTracked),
        },
        FingerprintOp::WriteBack { key } => match record {
            Some(mut r) if r.writeback_pending.contains(&key) => {
                r.writeback_pending.retain(|k| *k != key);
                (Some(r), FingerprintReply::WriteBack { go: true })
            }
            Some(_) => (None, FingerprintReply::WriteBack { go: false }),
            None => (None, FingerprintReply::NotTracked),
        },
        FingerprintOp::WriteBackOnce { key } => match record {
            Some(mut r) if r.state == IssueState::Filed && !r.writeback_done.contains(&key) => {
                r.writeback_done.push(key);
                let over = r.writeback_done.len().saturating_sub(MAX_WRITEBACKS_DONE);
                r.writeback_done.drain(..over);
                (Some(r), FingerprintReply::WriteBack { go: true })
            }
            Some(_) => (None, FingerprintReply::WriteBack { go: false }),
            None => (None, FingerprintReply::NotTracked),
        },
        FingerprintOp::WriteBackFailed { key } => match record {
            Some(mut r) if r.state == IssueState::Filed && !r.writeback_pending.contains(&key) => {
                r.writeback_pending.push(key);
                (Some(r), FingerprintReply::Ok)
            }
            _ => (None, FingerprintReply::Ok),
        },
        FingerprintOp::Unmute => match record {
            Some(mut r) if r.state == IssueState::Filed => {
                let changed = r.muted_until_ms != 0;
                r.muted_until_ms = 0;
                r.muted_by = None;
                (changed.then(|| r.clone()), FingerprintReply::Record { record: Some(Box::new(r)) })
            }
            _ => (None, FingerprintReply::NotTracked),
        },
    }
}

/// The queue gave up on `job`: forget its delivery, and free the filing if it held it.
fn forget(
    record: Option<FingerprintRecord>,
    job: &str,
    message: Option<&str>,
) -> (Option<FingerprintRecord>, FingerprintReply) {
    let Some(mut r) = record else { return (None, FingerprintReply::NotTracked) };
    // What the dead-lettered message did (a record or a forget without messages: any copy's).
    let its = |carried: Option<&str>| message.is_none() || carried.is_none() || carried == message;
    r.recent.retain(|seen| seen.job != job || !its(seen.message.as_deref()));
    if r.last_occurrence.as_ref().is_some_and(|(last, _)| last == job) {
        r.last_occurrence = None;
    }
    if r.state == IssueState::Creating && r.holder.as_deref() == Some(job) && its(r.holder_message.as_deref()) {
        r.holder = None;
        r.holder_message = None;
        r.lease_until_ms = 0;
    }
    (Some(r), FingerprintReply::Ok)
}

/// One delivery of an alert, as the fingerprint's claim sees it.
struct Delivery {
    job: String,
    message: String,
    now_ms: u64,
    lease_ms: u64,
    window_ms: u64,
}

fn remember(r: &mut FingerprintRecord, seen: Seen) {
    r.recent.push(seen);
    let over = r.recent.len().saturating_sub(MAX_RECENT);
    r.recent.drain(..over);
}

fn occurrence(
    record: Option<FingerprintRecord>,
    d: Delivery,
    cooldown_ms: u64,
) -> (Option<FingerprintRecord>, FingerprintReply) {
    let Delivery { job, message, now_ms, lease_ms, window_ms } = d;
    let lease_until_ms = now_ms.saturating_add(lease_ms);
    let Some(mut r) = record else {
        let r = FingerprintRecord {
            state: IssueState::Creating,
            holder: Some(job),
            holder_message: Some(message),
            lease_until_ms,
            tracked: TrackedRefs::default(),
            occurrences: 1,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            last_comment_ms: 0,
            resolved: false,
            recent: Vec::new(),
            last_occurrence: None,
            muted_until_ms: 0,
            muted_by: None,
            writeback_pending: Vec::new(),
            writeback_done: Vec::new(),
        };
        return (Some(r), FingerprintReply::Create { tracked: TrackedRefs::default(), occurrences: 1, fresh: true });
    };
    if let Some((last, decision)) = r.last_occurrence.take() {
        let at_ms = r.last_seen_ms;
        r.recent.insert(0, Seen { job: last, message: None, decision: Some(decision), at_ms });
    }
    r.recent.retain(|seen| now_ms < seen.at_ms.saturating_add(window_ms));
    if let Some(seen) = r.recent.iter().find(|seen| seen.job == job) {
        // A delivery seen before: its own retry repeats its decision; another copy is dropped.
        let own = seen.message.as_deref().is_none_or(|m| m == message);
        let reply = match seen.decision {
            Some(decision) if own => {
                FingerprintReply::Repeat { tracked: r.tracked.clone(), occurrences: r.occurrences, decision }
            }
            _ => FingerprintReply::Duplicate,
        };
        return (None, reply);
    }
    match r.state {
        IssueState::Creating if r.holder.as_deref() == Some(job.as_str()) => {
            let own = r.holder_message.as_deref().is_none_or(|m| m == message);
            if !own && now_ms < r.lease_until_ms {
                // Another copy of this delivery is filing it.
                return (None, FingerprintReply::Busy { lease_until_ms: r.lease_until_ms });
            }
            // The creator's own retry (or a copy taking over an expired lease): resume, without
            // counting it again.
            r.holder_message = Some(message);
            r.lease_until_ms = lease_until_ms;
            let reply =
                FingerprintReply::Create { tracked: r.tracked.clone(), occurrences: r.occurrences, fresh: false };
            (Some(r), reply)
        }
        IssueState::Creating if r.holder.is_none() || now_ms >= r.lease_until_ms => {
            // The creator gave up or vanished: take over, keeping what it filed.
            r.holder = Some(job);
            r.holder_message = Some(message);
            r.lease_until_ms = lease_until_ms;
            r.occurrences += 1;
            r.last_seen_ms = r.last_seen_ms.max(now_ms);
            let reply =
                FingerprintReply::Create { tracked: r.tracked.clone(), occurrences: r.occurrences, fresh: false };
            (Some(r), reply)
        }
        IssueState::Creating => {
            r.occurrences += 1;
            r.last_seen_ms = r.last_seen_ms.max(now_ms);
            let occurrences = r.occurrences;
            remember(&mut r, Seen { job, message: Some(message), decision: None, at_ms: now_ms });
            (Some(r), FingerprintReply::Pending { occurrences })
        }
        IssueState::Filed => {
            r.occurrences += 1;
            r.last_seen_ms = r.last_seen_ms.max(now_ms);
            let regressed = r.resolved;
            if regressed {
                // A regression ends a mute: it is announced like any regression.
                r.muted_until_ms = 0;
                r.muted_by = None;
            }
            let muted = r.is_muted(now_ms);
            let comment = regressed || (!muted && now_ms.saturating_sub(r.last_comment_ms) >= cooldown_ms);
            if comment {
                r.last_comment_ms = now_ms;
            }
            r.resolved = false;
            let decision = RepeatDecision { comment, regressed };
            remember(&mut r, Seen { job, message: Some(message), decision: Some(decision), at_ms: now_ms });
            let reply = FingerprintReply::Repeat { tracked: r.tracked.clone(), occurrences: r.occurrences, decision };
            (Some(r), reply)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change here moves records out of reach (their issues would be filed again): the shard of a
    /// fingerprint is fixed forever.
    #[test]
    fn shard_of_is_fixed() {
        assert_eq!(FINGERPRINT_SHARDS, 64);
        assert_eq!(shard_of("sentry:1170820242"), 42);
        assert_eq!(shard_of("glitchtip:app.glitchtip.com:1234"), 45);
        assert_eq!(shard_of("sentry:h:0123456789abcdef0123456789abcdef"), 29);
        assert_eq!(shard_of("sentry:metric-rule:7"), 62);
    }

    /// Fingerprints spread over every shard (none holds far more than its share).
    #[test]
    fn fingerprints_spread_over_the_shards() {
        let mut per_shard = [0_u32; FINGERPRINT_SHARDS as usize];
        for i in 0..6_400 {
            per_shard[usize::from(shard_of(&format!("sentry:{i}")))] += 1;
        }
        assert!(per_shard.iter().all(|&n| (60..=140).contains(&n)), "{per_shard:?}");
    }

    /// Only an install whose ledger holds nothing yet (one that never ran an earlier version) skips
    /// looking for per-fingerprint objects.
    #[test]
    fn a_ledger_with_history_means_records_may_be_in_objects() {
        assert_eq!(Layout::decide(true), Layout::Shards);
        assert_eq!(Layout::decide(false), Layout::ShardsAfterObjects);
        let op = ShardOp { fingerprint: "sentry:1".into(), op: FingerprintOp::Get, issue: None };
        let text = serde_json::to_string(&op).unwrap();
        assert_eq!(text, r#"{"fingerprint":"sentry:1","op":{"op":"get"}}"#);
        assert_eq!(serde_json::from_str::<ShardOp>(&text).unwrap(), op);
        assert_eq!(serde_json::to_string(&Layout::ShardsAfterObjects).unwrap(), r#""shards_after_objects""#);
    }

    /// An issue record goes once no alert reached its fingerprint for the keeping time, not before.
    #[test]
    fn issue_records_expire_after_the_last_alert() {
        let (seen, _) = run(vec![occ("a", 1_000)]);
        let seen = seen.unwrap();
        assert_eq!(seen.last_seen_ms, 1_000);
        let records = [("sentry:1", &seen)];
        assert!(expired_issues(records, 1_000 + 500, 500).is_empty(), "kept for exactly the keeping time");
        assert_eq!(expired_issues(records, 1_000 + 501, 500), vec!["sentry:1".to_owned()]);
    }

    const LEASE: u64 = 60_000;
    const COOLDOWN: u64 = 3_600_000;

    /// An occurrence delivered by its first queue message.
    fn occ(holder: &str, now_ms: u64) -> FingerprintOp {
        copy(holder, &format!("msg-{holder}"), now_ms)
    }

    /// A delivery of job `holder` carried by queue message `message`.
    fn copy(holder: &str, message: &str, now_ms: u64) -> FingerprintOp {
        FingerprintOp::Occurrence {
            holder: holder.into(),
            message: message.into(),
            now_ms,
            lease_ms: LEASE,
            cooldown_ms: COOLDOWN,
            window_ms: WINDOW,
        }
    }

    /// Applies ops in sequence like the Durable Object does, keeping the stored record.
    fn run(ops: Vec<FingerprintOp>) -> (Option<FingerprintRecord>, Vec<FingerprintReply>) {
        let mut stored = None;
        let mut replies = Vec::new();
        for op in ops {
            let (new, reply) = fingerprint(stored.clone(), op);
            if new.is_some() {
                stored = new;
            }
            replies.push(reply);
        }
        (stored, replies)
    }

    fn linear() -> TrackedRefs {
        TrackedRefs { linear: Some(IssueRef::linear("u", "ENG-1", "https://l/ENG-1")), ..Default::default() }
    }

    #[test]
    fn a_burst_creates_once_and_counts_the_rest() {
        let mut ops = vec![occ("job-0", 1_000)];
        ops.extend((1..20).map(|i| occ(&format!("job-{i}"), 1_000 + i)));
        let (record, replies) = run(ops);
        assert!(matches!(replies[0], FingerprintReply::Create { fresh: true, .. }));
        assert_eq!(replies.iter().filter(|r| matches!(r, FingerprintReply::Create { .. })).count(), 1);
        assert!(matches!(replies[19], FingerprintReply::Pending { occurrences: 20 }));
        assert_eq!(record.unwrap().occurrences, 20);
    }

    #[test]
    fn the_creators_retry_resumes_with_what_was_filed() {
        let (record, replies) = run(vec![occ("a", 0), FingerprintOp::Progress { tracked: linear() }, occ("a", 5_000)]);
        assert_eq!(replies[2], FingerprintReply::Create { tracked: linear(), occurrences: 1, fresh: false });
        assert_eq!(record.unwrap().occurrences, 1);
    }

    #[test]
    fn an_expired_or_abandoned_lease_is_taken_over() {
        let (_, replies) = run(vec![occ("a", 0), occ("b", LEASE + 1)]);
        assert!(matches!(replies[1], FingerprintReply::Create { occurrences: 2, .. }));
        let (_, replies) = run(vec![occ("a", 0), FingerprintOp::Abandon { holder: "a".into() }, occ("b", 10)]);
        assert!(matches!(replies[2], FingerprintReply::Create { .. }));
        // Only the holder can abandon or finish.
        let (record, _) = run(vec![
            occ("a", 0),
            FingerprintOp::Abandon { holder: "b".into() },
            FingerprintOp::Filed { holder: "b".into(), now_ms: 1, tracked: TrackedRefs::default() },
        ]);
        assert_eq!(record.unwrap().state, IssueState::Creating);
    }

    #[test]
    fn repeats_comment_once_per_cooldown_and_retries_are_idempotent() {
        let (record, replies) = run(vec![
            occ("a", 0),
            FingerprintOp::Progress { tracked: linear() },
            FingerprintOp::Filed { holder: "a".into(), now_ms: 10, tracked: TrackedRefs::default() },
            occ("b", 1_000),
            occ("b", 2_000),
            occ("c", COOLDOWN + 10),
            occ("d", COOLDOWN + 20),
        ]);
        let decision = |i: usize| match &replies[i] {
            FingerprintReply::Repeat { decision, occurrences, .. } => (*decision, *occurrences),
            other => panic!("{other:?}"),
        };
        assert_eq!(decision(3), (RepeatDecision { comment: false, regressed: false }, 2));
        assert_eq!(decision(4), decision(3), "a retry of the same job repeats the decision");
        assert_eq!(decision(5), (RepeatDecision { comment: true, regressed: false }, 3));
        assert_eq!(decision(6), (RepeatDecision { comment: false, regressed: false }, 4));
        assert_eq!(record.unwrap().occurrences, 4);
    }

    #[test]
    fn resolve_then_recur_is_a_regression() {
        let (record, replies) = run(vec![
            occ("a", 0),
            FingerprintOp::Filed { holder: "a".into(), now_ms: 0, tracked: TrackedRefs::default() },
            FingerprintOp::SetResolved { resolved: true, now_ms: 5 },
            FingerprintOp::SetResolved { resolved: true, now_ms: 6 },
            occ("b", 10),
        ]);
        assert!(matches!(replies[2], FingerprintReply::Status { changed: true, .. }));
        assert!(matches!(replies[3], FingerprintReply::Status { changed: false, .. }));
        assert!(matches!(
            replies[4],
            FingerprintReply::Repeat { decision: RepeatDecision { comment: true, regressed: true }, .. }
        ));
        assert!(!record.unwrap().resolved);
        assert_eq!(
            fingerprint(None, FingerprintOp::SetResolved { resolved: true, now_ms: 0 }).1,
            FingerprintReply::NotTracked
        );
    }

    fn decision(reply: &FingerprintReply) -> RepeatDecision {
        let FingerprintReply::Repeat { decision, .. } = reply else { panic!("{reply:?}") };
        *decision
    }

    #[test]
    fn a_mute_holds_repeats_silent_until_it_ends() {
        let filed = FingerprintOp::Filed { holder: "a".into(), now_ms: 0, tracked: TrackedRefs::default() };
        let (record, replies) = run(vec![
            occ("a", 0),
            filed,
            FingerprintOp::Mute { until_ms: 3 * COOLDOWN, by: Some("7".into()) },
            occ("b", COOLDOWN + 1),
            occ("c", 2 * COOLDOWN + 2),
            // The mute is over: the next repeat outside the cooldown comments again.
            occ("d", 3 * COOLDOWN + 1),
        ]);
        assert!(matches!(&replies[2], FingerprintReply::Record { record: Some(r) } if r.is_muted(1)));
        assert_eq!(decision(&replies[3]), RepeatDecision { comment: false, regressed: false });
        assert_eq!(decision(&replies[4]), RepeatDecision { comment: false, regressed: false });
        assert_eq!(decision(&replies[5]), RepeatDecision { comment: true, regressed: false });
        let record = record.unwrap();
        assert_eq!(record.occurrences, 4, "muted repeats are still counted");
    }

    #[test]
    fn a_regression_ends_a_mute() {
        let (record, replies) = run(vec![
            occ("a", 0),
            FingerprintOp::Filed { holder: "a".into(), now_ms: 0, tracked: TrackedRefs::default() },
            FingerprintOp::Mute { until_ms: 10 * COOLDOWN, by: None },
            FingerprintOp::SetResolved { resolved: true, now_ms: 5 },
            occ("b", 10),
            occ("c", COOLDOWN + 20),
        ]);
        assert_eq!(decision(&replies[4]), RepeatDecision { comment: true, regressed: true });
        assert_eq!(decision(&replies[5]), RepeatDecision { comment: true, regressed: false }, "no longer muted");
        assert!(!record.unwrap().is_muted(11));
    }

    #[test]
    fn unmute_and_mute_of_what_is_not_filed() {
        assert_eq!(fingerprint(None, FingerprintOp::Mute { until_ms: 9, by: None }).1, FingerprintReply::NotTracked);
        let (record, replies) = run(vec![
            occ("a", 0),
            FingerprintOp::Mute { until_ms: 9, by: None },
            FingerprintOp::Filed { holder: "a".into(), now_ms: 0, tracked: TrackedRefs::default() },
            FingerprintOp::Mute { until_ms: 9, by: None },
            FingerprintOp::Unmute,
        ]);
        assert_eq!(replies[1], FingerprintReply::NotTracked, "an issue being filed has no card to mute");
        assert!(matches!(&replies[4], FingerprintReply::Record { record: Some(r) } if !r.is_muted(0)));
        assert_eq!(record.unwrap().muted_until_ms, 0);
    }

    #[test]
    fn a_failed_write_back_is_taken_once_by_a_later_occurrence() {
        let wb = |k: &str| FingerprintOp::WriteBack { key: k.into() };
        let failed = |k: &str| FingerprintOp::WriteBackFailed { key: k.into() };
        let (_, replies) = run(vec![
            wb("issue"),
            occ("a", 0),
            FingerprintOp::Filed { holder: "a".into(), now_ms: 0, tracked: TrackedRefs::default() },
            wb("issue"),
            failed("issue"),
            failed("issue"),
            wb("issue"),
            wb("issue"),
        ]);
        assert_eq!(replies[0], FingerprintReply::NotTracked);
        let go: Vec<_> = [3, 6, 7].iter().map(|&i| replies[i] == FingerprintReply::WriteBack { go: true }).collect();
        assert_eq!(go, [false, true, false], "nothing pending, then the failed one once");
    }

    #[test]
    fn a_later_write_back_is_made_once() {
        let once = |k: &str| FingerprintOp::WriteBackOnce { key: k.into() };
        let (record, replies) = run(vec![
            once("pr:a"),
            occ("a", 0),
            once("pr:a"),
            FingerprintOp::Filed { holder: "a".into(), now_ms: 0, tracked: TrackedRefs::default() },
            once("pr:a"),
            once("pr:a"),
            once("pr:b"),
        ]);
        assert_eq!(replies[0], FingerprintReply::NotTracked);
        let go: Vec<_> = [2, 4, 5, 6].iter().map(|&i| replies[i] == FingerprintReply::WriteBack { go: true }).collect();
        assert_eq!(go, [false, true, false, true], "not while filing, then each key once");
        let mut record = record.unwrap();
        for i in 0..20 {
            record = fingerprint(Some(record), once(&format!("pr:{i}"))).0.unwrap();
        }
        assert_eq!(record.writeback_done.len(), MAX_WRITEBACKS_DONE);
        assert_eq!(record.writeback_done.last().map(String::as_str), Some("pr:19"));
    }

    #[test]
    fn delivery_claims() {
        let begin = |h: &str, now_ms| DeliveryOp::Begin { holder: h.into(), now_ms, lease_ms: LEASE };
        let (rec, reply) = delivery(None, begin("m1", 0));
        assert_eq!(reply, DeliveryReply::Proceed { attempt: 1 });
        // The same message's retry proceeds (and is counted); another copy waits.
        let (rec, reply) = delivery(rec, begin("m1", 10));
        assert_eq!(reply, DeliveryReply::Proceed { attempt: 2 });
        assert_eq!(delivery(rec.clone(), begin("m2", 10)).1, DeliveryReply::Busy { lease_until_ms: LEASE + 10 });
        assert_eq!(delivery(rec.clone(), begin("m2", LEASE + 10)).1, DeliveryReply::Proceed { attempt: 3 });
        // A dead-lettered job is released: its replay starts again at attempt 1.
        let (released, _) = delivery(rec.clone(), DeliveryOp::Release { holder: None });
        assert_eq!(delivery(released, begin("m9", 11)).1, DeliveryReply::Proceed { attempt: 1 });
        let (done, _) = delivery(rec, finish("m1", 15));
        assert_eq!(delivery(done, begin("m3", 20)).1, DeliveryReply::Duplicate { outcome: "filed".into() });
    }

    fn finish(holder: &str, now_ms: u64) -> DeliveryOp {
        DeliveryOp::Finish { holder: holder.into(), outcome: "filed".into(), now_ms, window_ms: WINDOW }
    }

    const WINDOW: u64 = 600_000;

    #[test]
    fn only_the_fix_run_holding_the_claim_releases_it() {
        // Issue 15: run A's lease ran out and run B took the claim; A's late result must not free
        // B's claim, or a run C would push the same branch while B still runs.
        let begin = |h: &str, now_ms| DeliveryOp::Begin { holder: h.into(), now_ms, lease_ms: LEASE };
        let (rec, _) = delivery(None, begin("fix-a", 0));
        let (rec, reply) = delivery(rec, begin("fix-b", LEASE + 1));
        assert_eq!(reply, DeliveryReply::Proceed { attempt: 2 });
        let (after_a, _) = delivery(rec.clone(), DeliveryOp::Relinquish { holder: "fix-a".into() });
        assert_eq!(after_a, None, "A's release changes nothing");
        assert!(matches!(delivery(rec.clone(), begin("fix-c", LEASE + 2)).1, DeliveryReply::Busy { .. }));
        let (freed, _) = delivery(rec, DeliveryOp::Relinquish { holder: "fix-b".into() });
        assert_eq!(delivery(freed, begin("fix-c", LEASE + 3)).1, DeliveryReply::Proceed { attempt: 1 });
    }

    #[test]
    fn linear_issue_ids_are_stable_uuids_per_team_and_fingerprint() {
        let id = linear_issue_id("team-1", "sentry:42");
        assert_eq!(id, linear_issue_id("team-1", "sentry:42"), "a retry finds the same id");
        assert_ne!(id, linear_issue_id("team-1", "sentry:43"));
        assert_ne!(id, linear_issue_id("team-2", "sentry:42"));
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(groups[2].starts_with('4') && "89ab".contains(&groups[3][..1]), "UUID v4 format: {id}");
    }

    #[test]
    fn the_fix_lease_covers_the_executor_queue_and_the_run() {
        let limits = crate::executor::FixLimits::default();
        let one_job_ms = (limits.timeout_secs + limits.test_timeout_secs) * 1_000;
        let lease = fix_lease_ms(&limits, 16);
        assert!(lease >= 17 * one_job_ms, "16 queued jobs ahead, then this one: {lease} ms");
        assert!(fix_lease_ms(&limits, 0) > one_job_ms, "even with no queue, the run and its push");
    }

    #[test]
    fn identical_deliveries_are_duplicates_only_within_the_window() {
        // Issue 15: a GlitchTip body has no timestamp, so next week's identical outage has the same job id.
        let begin = |h: &str, now_ms| DeliveryOp::Begin { holder: h.into(), now_ms, lease_ms: LEASE };
        let (rec, _) = delivery(None, begin("m1", 0));
        let (done, _) = delivery(rec, finish("m1", 1_000));
        assert_eq!(done.as_ref().and_then(DeliveryRecord::expires_at_ms), Some(1_000 + WINDOW));
        assert_eq!(
            delivery(done.clone(), begin("m2", WINDOW)).1,
            DeliveryReply::Duplicate { outcome: "filed".into() },
            "within the window: a duplicate"
        );
        let (again, reply) = delivery(done, begin("m3", 1_000 + WINDOW));
        assert_eq!(reply, DeliveryReply::Proceed { attempt: 1 }, "after the window: processed again");
        assert!(matches!(again, Some(DeliveryRecord::InProgress { ref holder, .. }) if holder == "m3"));
        // A record from before the window existed is expired.
        let legacy: DeliveryRecord = serde_json::from_str(r#"{"state":"done","outcome":"filed"}"#).unwrap();
        assert_eq!(delivery(Some(legacy), begin("m4", 5)).1, DeliveryReply::Proceed { attempt: 1 });
    }

    #[test]
    fn wire_format_is_stable() {
        let op = FingerprintOp::Occurrence {
            holder: "h".into(),
            message: "m".into(),
            now_ms: 1,
            lease_ms: 2,
            cooldown_ms: 3,
            window_ms: 4,
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"op":"occurrence","holder":"h","message":"m","now_ms":1,"lease_ms":2,"cooldown_ms":3,"window_ms":4}"#
        );
        let reply: FingerprintReply = serde_json::from_str(r#"{"reply":"pending","occurrences":3}"#).unwrap();
        assert_eq!(reply, FingerprintReply::Pending { occurrences: 3 });
    }

    // The alert's delivery claim, folded into the fingerprint's (issue 18: one round trip per alert).

    fn filed(holder: &str, now_ms: u64) -> FingerprintOp {
        FingerprintOp::Filed { holder: holder.into(), now_ms, tracked: linear() }
    }

    #[test]
    fn a_second_copy_of_the_filing_delivery_waits_then_is_a_duplicate() {
        let (_, replies) = run(vec![
            occ("job-a", 0),
            copy("job-a", "msg-copy", 10),
            occ("job-a", 20),
            filed("job-a", 30),
            copy("job-a", "msg-copy", 40),
        ]);
        assert!(matches!(replies[0], FingerprintReply::Create { .. }));
        assert_eq!(replies[1], FingerprintReply::Busy { lease_until_ms: LEASE }, "the copy waits for the filing");
        assert!(
            matches!(replies[2], FingerprintReply::Create { occurrences: 1, fresh: false, .. }),
            "its own retry resumes"
        );
        assert_eq!(replies[4], FingerprintReply::Duplicate, "once filed, the copy is dropped");
    }

    #[test]
    fn a_copy_whose_filing_vanished_takes_over_without_counting_twice() {
        let (record, replies) = run(vec![occ("job-a", 0), copy("job-a", "msg-copy", LEASE + 1)]);
        assert!(matches!(replies[1], FingerprintReply::Create { occurrences: 1, fresh: false, .. }), "{replies:?}");
        assert_eq!(record.unwrap().holder_message.as_deref(), Some("msg-copy"));
    }

    #[test]
    fn a_repeats_own_retry_replays_its_decision_and_a_copy_is_dropped() {
        let (record, replies) = run(vec![
            occ("a", 0),
            filed("a", 1),
            occ("b", 2 * COOLDOWN),
            occ("b", 2 * COOLDOWN + 5),
            copy("b", "msg-copy", 2 * COOLDOWN + 6),
            occ("c", 2 * COOLDOWN + 7),
        ]);
        let decision = RepeatDecision { comment: true, regressed: false };
        assert_eq!(replies[2], FingerprintReply::Repeat { tracked: linear(), occurrences: 2, decision });
        assert_eq!(replies[3], replies[2], "its own retry: the same decision, not counted again");
        assert_eq!(replies[4], FingerprintReply::Duplicate);
        let quiet = RepeatDecision { comment: false, regressed: false };
        assert_eq!(replies[5], FingerprintReply::Repeat { tracked: linear(), occurrences: 3, decision: quiet });
        assert_eq!(record.unwrap().occurrences, 3);
    }

    #[test]
    fn an_occurrence_counted_while_filing_is_not_counted_again() {
        let (record, replies) =
            run(vec![occ("a", 0), occ("b", 1), copy("b", "msg-copy", 2), occ("b", 3), filed("a", 4), occ("b", 5)]);
        assert_eq!(replies[1], FingerprintReply::Pending { occurrences: 2 });
        assert!(replies[2..].iter().all(|r| matches!(r, FingerprintReply::Duplicate | FingerprintReply::Ok)));
        assert_eq!(record.unwrap().occurrences, 2);
    }

    #[test]
    fn the_same_delivery_after_the_window_is_a_new_occurrence() {
        // A GlitchTip uptime body has no timestamp: next week's identical outage has the same job id.
        let (_, replies) = run(vec![occ("a", 0), filed("a", 1), copy("a", "msg-later", 1 + WINDOW)]);
        assert!(matches!(replies[2], FingerprintReply::Repeat { occurrences: 2, .. }), "{replies:?}");
    }

    #[test]
    fn the_recent_deliveries_stay_bounded() {
        let mut ops = vec![occ("a", 0), filed("a", 1)];
        ops.extend((0..100).map(|i| occ(&format!("job-{i}"), 2 + i)));
        let (record, _) = run(ops);
        let record = record.unwrap();
        assert_eq!(record.recent.len(), MAX_RECENT);
        assert_eq!(record.recent.last().map(|s| s.job.as_str()), Some("job-99"));
    }

    #[test]
    fn a_dead_lettered_copy_leaves_the_filing_delivery_its_lease() {
        let forget = |message: &str| FingerprintOp::Forget { job: "a".into(), message: Some(message.into()) };
        // msg-a files; a copy (msg-copy) keeps finding it busy until the queue gives up on it.
        let (_, replies) =
            run(vec![occ("a", 0), copy("a", "msg-copy", 10), forget("msg-copy"), copy("a", "msg-third", 20)]);
        assert!(matches!(replies[1], FingerprintReply::Busy { .. }), "{replies:?}");
        assert!(matches!(replies[3], FingerprintReply::Busy { .. }), "still held by msg-a: {replies:?}");
        // The filing message itself dead-lettered: its lease is freed, and the replay files.
        let (_, replies) = run(vec![occ("a", 0), forget("msg-a"), copy("a", "msg-replay", 20)]);
        assert!(matches!(replies[2], FingerprintReply::Create { .. }), "{replies:?}");
        // A copy dead-lettered after the filing finished does not unmake it: its replay is a duplicate.
        let (_, replies) = run(vec![occ("a", 0), filed("a", 1), forget("msg-copy"), copy("a", "msg-replay", 20)]);
        assert_eq!(replies[3], FingerprintReply::Duplicate, "{replies:?}");
    }

    #[test]
    fn a_dead_lettered_copy_leaves_the_holding_message_its_delivery() {
        let begin = |holder: &str, now_ms| DeliveryOp::Begin { holder: holder.into(), now_ms, lease_ms: LEASE };
        let release = |holder: &str| DeliveryOp::Release { holder: Some(holder.into()) };
        let (held, _) = delivery(None, begin("m1", 0));
        let (unchanged, _) = delivery(held.clone(), release("m2"));
        assert_eq!(unchanged, None, "m2 does not hold it");
        assert!(matches!(delivery(held.clone(), begin("m3", 10)).1, DeliveryReply::Busy { .. }));
        let (released, _) = delivery(held, release("m1"));
        assert_eq!(delivery(released, begin("m3", 10)).1, DeliveryReply::Proceed { attempt: 1 });
        let (done, _) = delivery(None, finish("m1", 15));
        assert_eq!(delivery(done, release("m2")).0, None, "a finished delivery stays finished");
    }

    #[test]
    fn a_dead_lettered_delivery_is_forgotten_so_its_replay_runs() {
        let forget = |job: &str| FingerprintOp::Forget { job: job.into(), message: None };
        // The filing job dead-lettered: its lease is freed, and the replay files.
        let (_, replies) = run(vec![occ("a", 0), forget("a"), copy("a", "msg-replay", 10)]);
        assert!(matches!(replies[2], FingerprintReply::Create { .. }), "{replies:?}");
        // A repeat dead-lettered (its comment kept failing): the replay comments again.
        let (_, replies) =
            run(vec![occ("a", 0), filed("a", 1), occ("b", COOLDOWN + 1), forget("b"), copy("b", "msg-replay", 10)]);
        assert!(matches!(replies[4], FingerprintReply::Repeat { .. }), "{replies:?}");
    }

    #[test]
    fn a_record_from_before_recent_deliveries_still_replays_its_last_decision() {
        let legacy = r#"{"state":"filed","occurrences":2,"first_seen_ms":0,"last_seen_ms":5,
            "last_occurrence":["job-b",{"comment":true,"regressed":false}]}"#;
        let record: FingerprintRecord = serde_json::from_str(legacy).unwrap();
        let (next, reply) = fingerprint(Some(record), copy("job-b", "any", 10));
        assert!(matches!(reply, FingerprintReply::Repeat { occurrences: 2, .. }), "{reply:?}");
        assert_eq!(next, None);
        let (next, _) = fingerprint(Some(serde_json::from_str(legacy).unwrap()), occ("job-c", 10));
        let next = next.unwrap();
        assert_eq!(next.recent.iter().map(|s| s.job.as_str()).collect::<Vec<_>>(), ["job-b", "job-c"]);
        assert!(!serde_json::to_string(&next).unwrap().contains("last_occurrence"), "migrated");
    }
}
