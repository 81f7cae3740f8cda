//! The ledger: daily counters for the digest, `/bugbot stats` and the dashboard chart, every job's
//! status record (`/admin/jobs/{id}`, `/bugbot status`) and the list of tracked issues (the
//! dashboard's). The `StatsStore` Durable Object keeps one [`DayStats`] per UTC day (storage key
//! `day:{YYYY-MM-DD}`), the job records and the issue list in `SQLite` tables; the runtime settles
//! each queue batch into it in one round trip ([`ClaimPort::settle`]; what to count is
//! `runtime::record`'s).
//!
//! Why job records are here and not in KV: a KV write per job was the cost of a repeat alert,
//! and KV bills and rate-limits writes; one Durable Object call per batch carries them all.
//!
//! It also decides, once, where the install's fingerprint records may be (`/layout`, a
//! [`Layout`]: `docs/CLAIMS.md`), at its first operation of the version that brought the shards.
//!
//! Why a Durable Object and not KV: KV allows one write per second per key and has no atomic
//! read-modify-write, so a burst of alerts would lose counts. One object serializes every update;
//! at bugbot's volume (a few events per second at most) one instance is plenty. Recording is best
//! effort for the counters; a batch whose status records cannot be written is retried (its
//! effects are idempotent).

use std::cell::Cell;

use bugbot_shared::claim::Layout;
use bugbot_shared::dashboard::IssueRow;
use bugbot_shared::digest::{DAY_MS, DayStats, day_of};
use bugbot_shared::status::JobStatus;
use serde::{Deserialize, Serialize};
use worker::{DurableObject, Env, ListOptions, Request, Response, Result, SqlStorageValue, State, durable_object};

use crate::store::keys;
use crate::store::ports::{ClaimPort, Settlement};

/// The Durable Object binding.
pub const STATS_DO: &str = "STATS";
/// Days kept in the store (the chart shows at most this many).
pub const KEEP_DAYS: u64 = 90;
/// Job status records are kept 30 days after their last change.
const JOB_KEEP_MS: u64 = 30 * DAY_MS;
/// Issues stay listed 90 days after an alert last reached them (as their KV records did).
const ISSUE_KEEP_MS: u64 = 90 * DAY_MS;
/// The single instance's name.
pub(crate) const INSTANCE: &str = "stats";
/// The storage key of the install's claims [`Layout`] (decided at the ledger's first operation).
const LAYOUT: &str = "claims_layout";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Days {
    pub(crate) days: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JobQuery {
    pub(crate) job_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Recent {
    pub(crate) limit: u64,
}

/// A row's JSON text, selected `AS text`.
#[derive(Debug, Deserialize)]
struct TextRow {
    text: String,
}

#[derive(Debug, Deserialize)]
struct AnyRow {
    #[expect(dead_code, reason = "only whether a row exists is read")]
    one: i64,
}

/// Holds the per-day counters and the job status records (the ledger); every update is a
/// read → apply → write that nothing interleaves.
#[durable_object]
pub struct StatsStore {
    state: State,
    env: Env,
    /// The install's claims layout, once read or decided.
    layout: Cell<Option<Layout>>,
}

impl std::fmt::Debug for StatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsStore").finish_non_exhaustive()
    }
}

impl StatsStore {
    /// The install's claims layout. The first operation of this version decides it, from whether the
    /// ledger holds anything yet (an earlier version's counters or job records: that install may
    /// have made per-fingerprint objects), and it never changes after.
    async fn layout(&self) -> Result<Layout> {
        let storage = self.state.storage();
        super::layout_once(&self.layout, &storage, LAYOUT, async || {
            Ok(Layout::decide(self.holds_nothing().await && self.no_issue_records().await))
        })
        .await
    }

    /// Whether the ledger holds no day's counters and no job record. Anything it cannot read counts
    /// as something (the safe side: records are then looked for in per-fingerprint objects).
    async fn holds_nothing(&self) -> bool {
        let storage = self.state.storage();
        let no_days = storage
            .list_with_options(ListOptions::new().prefix("day:").limit(1))
            .await
            .is_ok_and(|days| days.size() == 0);
        let no_jobs = storage
            .sql()
            .exec("SELECT 1 AS one FROM jobs LIMIT 1", None)
            .and_then(|rows| rows.to_array::<AnyRow>())
            .is_ok_and(|rows| rows.is_empty());
        no_days && no_jobs
    }

    /// Whether KV holds no issue record (`fp:`, `event:`): versions from before the ledger filed
    /// issues too, and wrote these (kept 90 days after their last change).
    async fn no_issue_records(&self) -> bool {
        let Ok(kv) = self.env.kv(crate::store::STATE_KV) else { return false };
        for prefix in [keys::ISSUE_PREFIX, keys::LEGACY_EVENT_PREFIX] {
            match kv.list().prefix(prefix.to_owned()).limit(1).execute().await {
                Ok(listed) if listed.keys.is_empty() => {}
                _ => return false,
            }
        }
        true
    }

    async fn day(&self, day: &str) -> Result<DayStats> {
        // Stored as JSON text: structured clone would turn the maps into JS Maps.
        let text: Option<String> = self.state.storage().get(&format!("day:{day}")).await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(|| DayStats::new(day)))
    }

    /// Applies a settled batch: the counters of each day it touches (one read and one write per
    /// day), then its job status records, forgetting records older than [`JOB_KEEP_MS`].
    async fn settle(&self, settlement: Settlement) -> Result<()> {
        let mut days: Vec<DayStats> = Vec::new();
        for (day, op) in &settlement.stats {
            if !days.iter().any(|d| d.day == *day) {
                days.push(self.day(day).await?);
            }
            if let Some(stats) = days.iter_mut().find(|d| d.day == *day) {
                stats.apply(op);
            }
        }
        for stats in &days {
            self.state.storage().put(&format!("day:{}", stats.day), serde_json::to_string(stats)?).await?;
        }
        if settlement.jobs.is_empty() {
            return self.list_issues(&settlement.issues);
        }
        let sql = self.state.storage().sql();
        let mut newest = 0;
        for status in &settlement.jobs {
            newest = newest.max(status.updated_at_ms);
            sql.exec(
                "INSERT OR REPLACE INTO jobs (id, updated_at_ms, status) VALUES (?, ?, ?)",
                vec![
                    SqlStorageValue::String(status.job_id.clone()),
                    SqlStorageValue::Integer(i64::try_from(status.updated_at_ms).unwrap_or(i64::MAX)),
                    SqlStorageValue::String(serde_json::to_string(status)?),
                ],
            )?;
        }
        let horizon = i64::try_from(newest.saturating_sub(JOB_KEEP_MS)).unwrap_or(0);
        sql.exec("DELETE FROM jobs WHERE updated_at_ms < ?", vec![SqlStorageValue::Integer(horizon)])?;
        self.list_issues(&settlement.issues)
    }

    /// Adds the issues a batch's alerts reached to the issue list, merged with what it held of
    /// them, and forgets issues no alert reached for [`ISSUE_KEEP_MS`]. Kept by when bugbot saw
    /// them, not by the events' own times (a source's clock, or a replayed old event).
    fn list_issues(&self, issues: &[IssueRow]) -> Result<()> {
        if issues.is_empty() {
            return Ok(());
        }
        let sql = self.state.storage().sql();
        let now = i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX);
        for row in issues {
            let held: Vec<TextRow> = sql
                .exec(
                    "SELECT row AS text FROM issues WHERE fingerprint = ?",
                    vec![SqlStorageValue::String(row.fingerprint.clone())],
                )?
                .to_array()?;
            let held = held.first().and_then(|h| serde_json::from_str::<IssueRow>(&h.text).ok());
            let Some(row) = IssueRow::listed(held, row.clone()) else { continue };
            sql.exec(
                "INSERT OR REPLACE INTO issues (fingerprint, updated_at_ms, row) VALUES (?, ?, ?)",
                vec![
                    SqlStorageValue::String(row.fingerprint.clone()),
                    SqlStorageValue::Integer(now),
                    SqlStorageValue::String(serde_json::to_string(&row)?),
                ],
            )?;
        }
        let horizon = now.saturating_sub(i64::try_from(ISSUE_KEEP_MS).unwrap_or(i64::MAX));
        sql.exec("DELETE FROM issues WHERE updated_at_ms < ?", vec![SqlStorageValue::Integer(horizon)])?;
        Ok(())
    }

    fn job(&self, job_id: &str) -> Result<Option<JobStatus>> {
        let rows: Vec<TextRow> = self
            .state
            .storage()
            .sql()
            .exec("SELECT status AS text FROM jobs WHERE id = ?", vec![SqlStorageValue::String(job_id.to_owned())])?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(|row| serde_json::from_str(&row.text).ok()))
    }
}

impl StatsStore {
    /// The `limit` most recently changed job records, newest first, and whether there are more.
    fn recent(&self, limit: u64) -> Result<(Vec<JobStatus>, bool)> {
        self.newest("SELECT status AS text FROM jobs ORDER BY updated_at_ms DESC LIMIT ?", Vec::new(), limit)
    }

    /// The `limit` issues an alert reached most recently, newest first, and whether there are more.
    fn recent_issues(&self, limit: u64) -> Result<(Vec<IssueRow>, bool)> {
        let now = worker::Date::now().as_millis();
        let horizon = SqlStorageValue::Integer(i64::try_from(now.saturating_sub(ISSUE_KEEP_MS)).unwrap_or(0));
        let query = "SELECT row AS text FROM issues WHERE updated_at_ms >= ? ORDER BY updated_at_ms DESC LIMIT ?";
        self.newest(query, vec![horizon], limit)
    }

    /// The first `limit` JSON texts `query` (`text`; `params`, then `LIMIT ?`) selects, read, and
    /// whether there are more.
    fn newest<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        mut params: Vec<SqlStorageValue>,
        limit: u64,
    ) -> Result<(Vec<T>, bool)> {
        params.push(SqlStorageValue::Integer(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)));
        let rows: Vec<TextRow> = self.state.storage().sql().exec(query, params)?.to_array()?;
        let more = rows.len() as u64 > limit;
        let rows = rows.into_iter().take(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((rows.filter_map(|row| serde_json::from_str(&row.text).ok()).collect(), more))
    }
}

impl DurableObject for StatsStore {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        let created = sql
            .exec(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, updated_at_ms INTEGER NOT NULL, status TEXT NOT NULL)",
                None,
            )
            .and_then(|_| sql.exec("CREATE INDEX IF NOT EXISTS jobs_by_age ON jobs (updated_at_ms)", None))
            .and_then(|_| {
                sql.exec(
                    "CREATE TABLE IF NOT EXISTS issues (fingerprint TEXT PRIMARY KEY, updated_at_ms INTEGER NOT NULL, row TEXT NOT NULL)",
                    None,
                )
            })
            .and_then(|_| sql.exec("CREATE INDEX IF NOT EXISTS issues_by_age ON issues (updated_at_ms)", None));
        if let Err(e) = created {
            worker::console_error!("stats store: cannot create its tables: {e}");
        }
        Self { state, env, layout: Cell::new(None) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let body = req.text().await?;
        // Decided before anything is recorded, so that a new install's first batch finds it empty.
        let layout = self.layout().await?;
        match req.path().as_str() {
            "/layout" => Response::from_json(&layout),
            "/settle" => {
                self.settle(serde_json::from_str(&body)?).await?;
                Response::ok("ok")
            }
            "/job" => {
                let query: JobQuery = serde_json::from_str(&body)?;
                Response::from_json(&self.job(&query.job_id)?)
            }
            "/recent" => {
                let query: Recent = serde_json::from_str(&body)?;
                Response::from_json(&self.recent(query.limit)?)
            }
            "/issues" => {
                let query: Recent = serde_json::from_str(&body)?;
                Response::from_json(&self.recent_issues(query.limit)?)
            }
            "/days" => {
                let wanted: Days = serde_json::from_str(&body)?;
                let mut days = Vec::with_capacity(wanted.days.len());
                for day in &wanted.days {
                    days.push(self.day(day).await?);
                }
                Response::from_json(&days)
            }
            _ => Response::error("not found", 404),
        }
    }
}

/// The days ending with the one containing `end_ms`, oldest first (empty days included).
pub async fn load_days<C: ClaimPort>(claims: &C, end_ms: u64, count: u64) -> Result<Vec<DayStats>> {
    let days: Vec<String> =
        (0..count.clamp(1, KEEP_DAYS)).rev().map(|back| day_of(end_ms.saturating_sub(back * DAY_MS))).collect();
    claims.days(&days).await
}
