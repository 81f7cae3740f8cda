//! The ports of the consumer's own state, beside [`HttpPort`](crate::clients::http::HttpPort): the
//! Durable Objects (the claims and the ledger) and the KV namespace. Handlers are generic over
//! them, so they run natively in tests over the in-memory implementations in [`memory`].

use bugbot_shared::caps::{CapsOp, CapsReply};
use bugbot_shared::claim::{DeliveryOp, DeliveryReply, FingerprintOp, FingerprintReply, ShardIssue};
use bugbot_shared::dashboard::IssueRow;
use bugbot_shared::digest::{DayStats, StatsOp};
use bugbot_shared::status::JobStatus;
use serde::{Deserialize, Serialize};

/// What a settled batch adds to the ledger, in one round trip: each job's status record and the
/// day's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    /// The counters, each with its UTC day (`2026-12-06`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<(String, StatsOp)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobStatus>,
    /// The issues its alerts reached (filed, counted or reopened), for the ledger's issue list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<IssueRow>,
}

impl Settlement {
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty() && self.jobs.is_empty() && self.issues.is_empty()
    }
}

/// The consumer's Durable Objects: one call is one round trip in the Worker.
#[expect(async_fn_in_trait, reason = "single-threaded Workers runtime; no Send bound wanted")]
pub trait ClaimPort {
    /// The delivery claim of a job that is not an alert (an alert's is its fingerprint's).
    async fn delivery(&self, job_id: &str, op: &DeliveryOp) -> worker::Result<DeliveryReply>;
    async fn fingerprint(&self, fingerprint: &str, op: &FingerprintOp) -> worker::Result<FingerprintReply>;
    /// [`FingerprintOp::Filed`] with the filed issue's record (JSON text), kept beside the
    /// fingerprint's record when the op applies: one round trip ends the filing and records it.
    async fn filed(&self, fingerprint: &str, op: &FingerprintOp, issue: String) -> worker::Result<FingerprintReply>;
    /// The fingerprint's record and the issue record kept when it was filed.
    async fn issue(&self, fingerprint: &str) -> worker::Result<ShardIssue>;
    /// Keeps `issue` (an issue record an earlier version kept in KV) in the fingerprint's shard,
    /// unless the shard has one.
    async fn keep_issue(&self, fingerprint: &str, issue: String) -> worker::Result<()>;
    /// The auto-fix caps of one UTC day (`2026-12-06`).
    async fn caps(&self, day: &str, op: &CapsOp) -> worker::Result<CapsReply>;
    /// Adds a settled batch's job status records and counters to the ledger.
    async fn settle(&self, settlement: &Settlement) -> worker::Result<()>;
    /// A job's status record, from the ledger.
    async fn job_status(&self, job_id: &str) -> worker::Result<Option<JobStatus>>;
    /// The `limit` most recently changed job records, newest first, and whether there are more.
    async fn recent_jobs(&self, limit: u64) -> worker::Result<(Vec<JobStatus>, bool)>;
    /// The counters of `days` (UTC, `2026-12-06`), in that order; empty days included.
    async fn days(&self, days: &[String]) -> worker::Result<Vec<DayStats>>;
    /// The `limit` issues an alert reached most recently, newest first, and whether there are more.
    async fn recent_issues(&self, limit: u64) -> worker::Result<(Vec<IssueRow>, bool)>;
}

/// A KV namespace, as text (values are JSON).
#[expect(async_fn_in_trait, reason = "single-threaded Workers runtime; no Send bound wanted")]
pub trait KvPort {
    async fn get_text(&self, key: &str) -> Option<String>;
    async fn put_text(&self, key: &str, value: String, ttl_secs: u64) -> worker::Result<()>;
    /// At most `limit` key names starting with `prefix`, in key order; none when listing fails.
    async fn list_keys(&self, prefix: &str, limit: u64) -> Vec<String>;
}

impl KvPort for worker::kv::KvStore {
    async fn get_text(&self, key: &str) -> Option<String> {
        self.get(key).text().await.ok().flatten()
    }

    async fn put_text(&self, key: &str, value: String, ttl_secs: u64) -> worker::Result<()> {
        super::counters::kv_write();
        self.put(key, value)?.expiration_ttl(ttl_secs).execute().await?;
        Ok(())
    }

    async fn list_keys(&self, prefix: &str, limit: u64) -> Vec<String> {
        match self.list().prefix(prefix.to_owned()).limit(limit).execute().await {
            Ok(listed) => listed.keys.into_iter().map(|k| k.name).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// In-memory ports for native tests: the claims apply [`bugbot_shared::claim`] as the Durable
/// Object does, and both count the round trips and writes they serve.
pub mod memory {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    use bugbot_shared::caps::{self, CapsOp, CapsRecord, CapsReply};
    use bugbot_shared::claim::{
        self, DeliveryOp, DeliveryRecord, DeliveryReply, FingerprintOp, FingerprintRecord, FingerprintReply, ShardIssue,
    };
    use bugbot_shared::dashboard::IssueRow;
    use bugbot_shared::digest::DayStats;
    use bugbot_shared::status::JobStatus;

    use super::{ClaimPort, KvPort, Settlement};

    #[derive(Debug, Default)]
    pub struct MemoryClaims {
        deliveries: RefCell<BTreeMap<String, DeliveryRecord>>,
        fingerprints: RefCell<BTreeMap<String, FingerprintRecord>>,
        issues: RefCell<BTreeMap<String, String>>,
        caps: RefCell<BTreeMap<String, CapsRecord>>,
        jobs: RefCell<BTreeMap<String, JobStatus>>,
        /// The ledger's issue list, each row with the order it was last written in.
        issue_rows: RefCell<BTreeMap<String, (u64, IssueRow)>>,
        settled: Cell<u64>,
        stats: RefCell<BTreeMap<String, DayStats>>,
        /// Durable Object round trips served.
        pub calls: Cell<u32>,
    }

    impl MemoryClaims {
        /// One round trip to a fingerprint's shard: `op` applied, and `issue` kept when it changed
        /// the record (as the Durable Object does).
        fn apply(&self, fingerprint: &str, op: &FingerprintOp, issue: Option<String>) -> FingerprintReply {
            self.calls.set(self.calls.get() + 1);
            let current = self.fingerprints.borrow().get(fingerprint).cloned();
            let (next, reply) = claim::fingerprint(current, op.clone());
            if let Some(next) = next {
                self.fingerprints.borrow_mut().insert(fingerprint.to_owned(), next);
                if let Some(issue) = issue {
                    self.issues.borrow_mut().insert(fingerprint.to_owned(), issue);
                }
            }
            reply
        }
    }

    impl ClaimPort for MemoryClaims {
        async fn delivery(&self, job_id: &str, op: &DeliveryOp) -> worker::Result<DeliveryReply> {
            self.calls.set(self.calls.get() + 1);
            let current = self.deliveries.borrow().get(job_id).cloned();
            let (next, reply) = claim::delivery(current, op.clone());
            if let Some(next) = next {
                self.deliveries.borrow_mut().insert(job_id.to_owned(), next);
            }
            Ok(reply)
        }

        async fn fingerprint(&self, fingerprint: &str, op: &FingerprintOp) -> worker::Result<FingerprintReply> {
            Ok(self.apply(fingerprint, op, None))
        }

        async fn filed(
            &self,
            fingerprint: &str,
            op: &FingerprintOp,
            issue: String,
        ) -> worker::Result<FingerprintReply> {
            Ok(self.apply(fingerprint, op, Some(issue)))
        }

        async fn issue(&self, fingerprint: &str) -> worker::Result<ShardIssue> {
            self.calls.set(self.calls.get() + 1);
            Ok(ShardIssue {
                record: self.fingerprints.borrow().get(fingerprint).cloned(),
                issue: self.issues.borrow().get(fingerprint).cloned(),
            })
        }

        async fn keep_issue(&self, fingerprint: &str, issue: String) -> worker::Result<()> {
            self.calls.set(self.calls.get() + 1);
            self.issues.borrow_mut().entry(fingerprint.to_owned()).or_insert(issue);
            Ok(())
        }

        async fn caps(&self, day: &str, op: &CapsOp) -> worker::Result<CapsReply> {
            self.calls.set(self.calls.get() + 1);
            let current = self.caps.borrow().get(day).cloned();
            let (next, reply) = caps::caps(current, op.clone());
            if let Some(next) = next {
                self.caps.borrow_mut().insert(day.to_owned(), next);
            }
            Ok(reply)
        }

        async fn settle(&self, settlement: &Settlement) -> worker::Result<()> {
            self.calls.set(self.calls.get() + 1);
            for (day, op) in &settlement.stats {
                self.stats.borrow_mut().entry(day.clone()).or_insert_with(|| DayStats::new(day.clone())).apply(op);
            }
            for status in &settlement.jobs {
                self.jobs.borrow_mut().insert(status.job_id.clone(), status.clone());
            }
            let mut rows = self.issue_rows.borrow_mut();
            for row in &settlement.issues {
                let held = rows.remove(&row.fingerprint).map(|(_, held)| held);
                if let Some(listed) = IssueRow::listed(held, row.clone()) {
                    self.settled.set(self.settled.get() + 1);
                    rows.insert(row.fingerprint.clone(), (self.settled.get(), listed));
                }
            }
            Ok(())
        }

        async fn job_status(&self, job_id: &str) -> worker::Result<Option<JobStatus>> {
            self.calls.set(self.calls.get() + 1);
            Ok(self.jobs.borrow().get(job_id).cloned())
        }

        async fn recent_jobs(&self, limit: u64) -> worker::Result<(Vec<JobStatus>, bool)> {
            self.calls.set(self.calls.get() + 1);
            Ok(newest(self.jobs.borrow().values().cloned().collect(), |j| j.updated_at_ms, limit))
        }

        async fn days(&self, days: &[String]) -> worker::Result<Vec<DayStats>> {
            self.calls.set(self.calls.get() + 1);
            let stats = self.stats.borrow();
            Ok(days.iter().map(|day| stats.get(day).cloned().unwrap_or_else(|| DayStats::new(day.clone()))).collect())
        }

        async fn recent_issues(&self, limit: u64) -> worker::Result<(Vec<IssueRow>, bool)> {
            self.calls.set(self.calls.get() + 1);
            let (rows, more) = newest(self.issue_rows.borrow().values().cloned().collect(), |(at, _)| *at, limit);
            Ok((rows.into_iter().map(|(_, row)| row).collect(), more))
        }
    }

    /// The first `limit` of `items`, newest (by `at`) first, and whether there are more.
    fn newest<T>(mut items: Vec<T>, at: impl Fn(&T) -> u64, limit: u64) -> (Vec<T>, bool) {
        items.sort_by_key(|item| std::cmp::Reverse(at(item)));
        let more = items.len() as u64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        (items, more)
    }

    #[derive(Debug, Default)]
    pub struct MemoryKv {
        pub entries: RefCell<BTreeMap<String, String>>,
        /// Writes served (KV bills and rate-limits writes).
        pub writes: Cell<u32>,
    }

    impl KvPort for MemoryKv {
        async fn get_text(&self, key: &str) -> Option<String> {
            self.entries.borrow().get(key).cloned()
        }

        async fn put_text(&self, key: &str, value: String, _ttl_secs: u64) -> worker::Result<()> {
            self.writes.set(self.writes.get() + 1);
            self.entries.borrow_mut().insert(key.to_owned(), value);
            Ok(())
        }

        async fn list_keys(&self, prefix: &str, limit: u64) -> Vec<String> {
            let entries = self.entries.borrow();
            let keys = entries.range(prefix.to_owned()..).map(|(k, _)| k).take_while(|k| k.starts_with(prefix));
            keys.take(usize::try_from(limit).unwrap_or(usize::MAX)).cloned().collect()
        }
    }
}
