//! The `ClaimStore` Durable Object, applying [`bugbot_shared::claim`] atomically, and the
//! consumer-side client for it. Its instances:
//! - `delivery:{job id}` (and `fix:{target}`, `caps:{day}`): one record each (`/delivery`, `/caps`);
//! - `fingerprints:{n}`: the records of the fingerprints whose [`shard_of`] is `n`, one storage key
//!   each (`/shard`), and beside each filed one its issue record (`issue:{fingerprint}`, written by
//!   the op that ends the filing, read by `/issue`);
//! - `fp:{fingerprint}`: one fingerprint's record, as versions before the shards kept it
//!   (`/fingerprint`). Only a shard of an install that ran such a version reads one, to move its
//!   record in ([`Layout::ShardsAfterObjects`]).
//!
//! A Durable Object delivers no other event while it awaits its own storage, so the read → decide
//! → write below cannot interleave with another request for the same key. Moving a record in awaits
//! another object, so that runs under `blockConcurrencyWhile`, and reads the key again first.

use bugbot_shared::caps::{self, CapsOp, CapsRecord, CapsReply};
use std::cell::Cell;

use bugbot_shared::claim::{
    self, DeliveryOp, DeliveryRecord, DeliveryReply, FingerprintOp, FingerprintRecord, FingerprintReply, Layout,
    ShardIssue, ShardOp, shard_of,
};
use serde::Serialize;

use bugbot_shared::dashboard::IssueRow;
use bugbot_shared::digest::DayStats;
use bugbot_shared::status::JobStatus;

use super::{get_record, put_record, stats};
use crate::store::ports::{ClaimPort, Settlement};
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use worker::{Date, DurableObject, Env, ObjectNamespace, Request, Response, Result, State, durable_object};

/// The Durable Object binding.
pub const CLAIMS_DO: &str = "CLAIMS";
const RECORD: &str = "record";
/// A shard's copy of the install's [`Layout`] (asked of the ledger once).
const LAYOUT: &str = "layout";

#[durable_object]
pub struct ClaimStore {
    state: State,
    env: Env,
    /// The install's layout, once known (shards only).
    layout: Cell<Option<Layout>>,
    /// Whether this shard's daily look-over of its issue records is known to be scheduled.
    sweeping: Cell<bool>,
}

impl std::fmt::Debug for ClaimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimStore").finish_non_exhaustive()
    }
}

impl DurableObject for ClaimStore {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, layout: Cell::new(None), sweeping: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        let body = req.text().await?;
        match req.path().as_str() {
            "/delivery" => {
                let op: DeliveryOp = serde_json::from_str(&body)?;
                let current: Option<DeliveryRecord> = get_record(&storage, RECORD).await?;
                let (next, reply) = claim::delivery(current, op);
                if let Some(next) = next {
                    put_record(&storage, RECORD, &next).await?;
                    // A finished delivery is forgotten once its dedupe window is over.
                    if let Some(at) = next.expires_at_ms() {
                        let offset = i64::try_from(at.saturating_sub(Date::now().as_millis())).unwrap_or(i64::MAX);
                        storage.set_alarm(offset.max(1)).await?;
                    }
                }
                Response::from_json(&reply)
            }
            "/caps" => {
                let op: CapsOp = serde_json::from_str(&body)?;
                let current: Option<CapsRecord> = get_record(&storage, RECORD).await?;
                let (next, reply) = caps::caps(current, op);
                if let Some(next) = next {
                    put_record(&storage, RECORD, &next).await?;
                }
                Response::from_json(&reply)
            }
            "/shard" => {
                let ShardOp { fingerprint, op, issue } = serde_json::from_str(&body)?;
                let key = format!("fp:{fingerprint}");
                // Kept only with the op that ends the filing.
                let issue = issue.filter(|_| matches!(op, FingerprintOp::Filed { .. }));
                // First: its first call may ask the ledger, and other requests run meanwhile, so
                // the record must be read after it.
                let layout = self.layout().await?;
                if issue.is_some() {
                    self.sweep_daily().await?;
                }
                let current: Option<FingerprintRecord> = get_record(&storage, &key).await?;
                if current.is_none()
                    && layout == Layout::ShardsAfterObjects
                    && storage.get::<bool>(&looked_key(&fingerprint)).await?.is_none()
                {
                    let objects = self.env.durable_object(CLAIMS_DO)?;
                    let moved = move_in_then_apply(storage, objects, key, fingerprint, op, issue);
                    return Response::from_json(&self.state.block_concurrency_while(moved).await?);
                }
                let issue = issue.map(|text| (issue_key(&fingerprint), text));
                Response::from_json(&apply(&storage, &key, current, op, issue).await?)
            }
            // An issue record an earlier version kept in KV, kept here unless there is one already.
            "/keep" => {
                let ShardIssueKept { fingerprint, issue } = serde_json::from_str(&body)?;
                let key = issue_key(&fingerprint);
                if storage.get::<String>(&key).await?.is_none() {
                    self.sweep_daily().await?;
                    storage.put(&key, issue).await?;
                }
                Response::from_json(&())
            }
            // A fingerprint's issue: its record and the issue record kept when it was filed.
            "/issue" => {
                let fingerprint: String = serde_json::from_str(&body)?;
                let record: Option<FingerprintRecord> = get_record(&storage, &format!("fp:{fingerprint}")).await?;
                let issue: Option<String> = storage.get(&issue_key(&fingerprint)).await?;
                Response::from_json(&ShardIssue { record, issue })
            }
            // A fingerprint's own object (versions before the shards).
            "/fingerprint" => {
                let op: FingerprintOp = serde_json::from_str(&body)?;
                let current: Option<FingerprintRecord> = get_record(&storage, RECORD).await?;
                Response::from_json(&apply(&storage, RECORD, current, op, None).await?)
            }
            _ => Response::error("not found", 404),
        }
    }

    /// A delivery's object: the dedupe window of its finished delivery is over, so it is deleted,
    /// unless it was begun again since. A shard: its daily look-over of issue records
    /// ([`ClaimStore::forget_old_issues`]).
    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let current: Option<DeliveryRecord> = get_record(&storage, RECORD).await.ok().flatten();
        if current.and_then(|r| r.expires_at_ms()).is_some_and(|at| at <= Date::now().as_millis()) {
            storage.delete_all().await?;
            return Response::ok("");
        }
        self.forget_old_issues().await?;
        Response::ok("")
    }
}

/// Fingerprint records read at a time by the look-over (and so at most this many issue records
/// deleted in one call: Durable Object storage takes at most 128 keys per call).
const LOOK_OVER_PAGE: usize = 128;

impl ClaimStore {
    /// Deletes the issue records of the fingerprints no alert reached for [`ISSUE_KEEP_MS`], going
    /// over the fingerprints' records (small; the issue records hold whole events) a page at a
    /// time, and looks again in a day while the shard holds any fingerprint. Should this fail for
    /// good, the next issue record stored schedules it again (`sweeping` is cleared first).
    async fn forget_old_issues(&self) -> Result<()> {
        self.sweeping.set(false);
        let storage = self.state.storage();
        let now = Date::now().as_millis();
        let mut after: Option<String> = None;
        let mut any = false;
        loop {
            let from = after.as_deref().map(|key| format!("{key}\0"));
            let mut options = worker::ListOptions::new().prefix("fp:").limit(LOOK_OVER_PAGE);
            if let Some(from) = from.as_deref() {
                options = options.start(from);
            }
            let page = storage.list_with_options(options).await?;
            let mut keys = Vec::with_capacity(page.size() as usize);
            let mut records = Vec::with_capacity(keys.capacity());
            for entry in page.entries() {
                let entry: js_sys::Array = entry?.unchecked_into();
                let Some(key) = entry.get(0).as_string() else { continue };
                let record: FingerprintRecord = super::decoded(&entry.get(1))?;
                records.push((key.trim_start_matches("fp:").to_owned(), record));
                keys.push(key);
            }
            any |= !records.is_empty();
            let expired = claim::expired_issues(records.iter().map(|(f, r)| (f.as_str(), r)), now, ISSUE_KEEP_MS);
            let expired: Vec<String> = expired.iter().map(|f| issue_key(f)).collect();
            if !expired.is_empty() {
                storage.delete_multiple(expired.iter().map(String::as_str).collect()).await?;
            }
            match keys.last() {
                Some(last) if keys.len() >= LOOK_OVER_PAGE => after = Some(last.clone()),
                _ => break,
            }
        }
        if any {
            storage.set_alarm(DAY_MS_I64).await?;
            self.sweeping.set(true);
        }
        Ok(())
    }
}

impl ClaimStore {
    /// Makes sure the shard looks over its issue records daily ([`ClaimStore::alarm`]), before one
    /// is stored: asked of storage once per instance.
    async fn sweep_daily(&self) -> Result<()> {
        if !self.sweeping.get() {
            if self.state.storage().get_alarm().await?.is_none() {
                self.state.storage().set_alarm(DAY_MS_I64).await?;
            }
            self.sweeping.set(true);
        }
        Ok(())
    }

    /// The install's layout: this shard's copy, or the ledger's answer (kept).
    async fn layout(&self) -> Result<Layout> {
        let storage = self.state.storage();
        super::layout_once(&self.layout, &storage, LAYOUT, async || {
            let ledger = self.env.durable_object(stats::STATS_DO)?;
            json(&post(&ledger, stats::INSTANCE, "stats", "/layout", &()).await?)
        })
        .await
    }
}

/// Applies `op` to the record under `key` and stores what changed, with `issue` (its key and the
/// issue record) when the op changed the record.
async fn apply(
    storage: &worker::Storage,
    key: &str,
    current: Option<FingerprintRecord>,
    op: FingerprintOp,
    issue: Option<(String, String)>,
) -> Result<FingerprintReply> {
    let (next, reply) = claim::fingerprint(current, op);
    if let Some(next) = next {
        put_record(storage, key, &next).await?;
        if let Some((issue_key, text)) = issue {
            storage.put(&issue_key, text).await?;
        }
    }
    Ok(reply)
}

/// A fingerprint this shard has no record of, in an install that may have kept it in an object of
/// its own: the record moved in from there (when there is one), then `op` applied. Runs with no
/// other event delivered to the shard, and reads the key again first (a request that got here
/// meanwhile may have moved it already). The old object keeps its copy, which nothing reads again.
async fn move_in_then_apply(
    storage: worker::Storage,
    objects: ObjectNamespace,
    key: String,
    fingerprint: String,
    op: FingerprintOp,
    issue: Option<String>,
) -> Result<FingerprintReply> {
    let mut current: Option<FingerprintRecord> = get_record(&storage, &key).await?;
    let looked = looked_key(&fingerprint);
    if current.is_none() && storage.get::<bool>(&looked).await?.is_none() {
        let name = format!("fp:{fingerprint}");
        let old: FingerprintReply = json(&post(&objects, &name, "claims", "/fingerprint", &FingerprintOp::Get).await?)?;
        match old {
            FingerprintReply::Record { record: Some(record) } => {
                put_record(&storage, &key, &*record).await?;
                current = Some(*record);
            }
            // Nothing there: remembered, so that an operation that makes no record (a card's
            // state read, a resolve of an issue never filed) does not look again.
            _ => storage.put(&looked, true).await?,
        }
    }
    let issue = issue.map(|text| (issue_key(&fingerprint), text));
    apply(&storage, &key, current, op, issue).await
}

/// An issue record is kept this long after an alert last reached its fingerprint (as KV kept it).
const ISSUE_KEEP_MS: u64 = 90 * 24 * 3_600_000;
/// The issue records are looked over daily.
const DAY_MS_I64: i64 = 24 * 3_600_000;

/// The body of `/keep`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ShardIssueKept {
    fingerprint: String,
    issue: String,
}

/// The key of a fingerprint's issue record in its shard.
fn issue_key(fingerprint: &str) -> String {
    format!("issue:{fingerprint}")
}

/// The key marking a fingerprint as looked for in its old object and not found there.
fn looked_key(fingerprint: &str) -> String {
    format!("looked:{fingerprint}")
}

/// Client for the consumer's Durable Objects: the claims, and the ledger (`StatsStore`).
#[derive(Debug)]
pub struct Claims {
    namespace: ObjectNamespace,
    ledger: ObjectNamespace,
}

impl Claims {
    pub fn new(env: &Env) -> Result<Self> {
        Ok(Self { namespace: env.durable_object(CLAIMS_DO)?, ledger: env.durable_object(stats::STATS_DO)? })
    }

    async fn call<Op: Serialize, Reply: DeserializeOwned>(&self, name: &str, path: &str, op: &Op) -> Result<Reply> {
        crate::store::counters::durable_object_call();
        json(&post(&self.namespace, name, "claims", path, op).await?)
    }
}

/// One round trip to the object `name` of `namespace` (claims and settlements are counted by the
/// callers, reads for people — `/admin/jobs`, the dashboard — are not): the answer's body, read in
/// one `arrayBuffer()` (`bugbot_edge::fetch`).
async fn post<Op: Serialize>(
    namespace: &ObjectNamespace,
    name: &str,
    what: &str,
    path: &str,
    op: &Op,
) -> Result<Vec<u8>> {
    let stub = namespace.id_from_name(name)?.get_stub()?.into_rpc();
    let init = worker::web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&serde_json::to_string(op)?));
    let resp = bugbot_edge::fetch::fetch_object(&stub, &format!("https://{what}{path}"), &init).await?;
    if resp.status() != 200 {
        return Err(worker::Error::RustError(format!("{what} store answered {}", resp.status())));
    }
    Ok(bugbot_edge::fetch::body_bytes(&resp).await?)
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(worker::Error::from)
}

impl ClaimPort for Claims {
    async fn delivery(&self, job_id: &str, op: &DeliveryOp) -> Result<DeliveryReply> {
        self.call(&format!("delivery:{job_id}"), "/delivery", op).await
    }

    /// The auto-fix caps of one UTC day (`2026-12-06`).
    async fn caps(&self, day: &str, op: &CapsOp) -> Result<CapsReply> {
        self.call(&format!("caps:{day}"), "/caps", op).await
    }

    async fn fingerprint(&self, fingerprint: &str, op: &FingerprintOp) -> Result<FingerprintReply> {
        let sharded = ShardOp { fingerprint: fingerprint.to_owned(), op: op.clone(), issue: None };
        self.call(&format!("fingerprints:{}", shard_of(fingerprint)), "/shard", &sharded).await
    }

    async fn filed(&self, fingerprint: &str, op: &FingerprintOp, issue: String) -> Result<FingerprintReply> {
        let sharded = ShardOp { fingerprint: fingerprint.to_owned(), op: op.clone(), issue: Some(issue) };
        self.call(&format!("fingerprints:{}", shard_of(fingerprint)), "/shard", &sharded).await
    }

    async fn keep_issue(&self, fingerprint: &str, issue: String) -> Result<()> {
        let kept = ShardIssueKept { fingerprint: fingerprint.to_owned(), issue };
        self.call(&format!("fingerprints:{}", shard_of(fingerprint)), "/keep", &kept).await
    }

    async fn issue(&self, fingerprint: &str) -> Result<ShardIssue> {
        self.call(&format!("fingerprints:{}", shard_of(fingerprint)), "/issue", &fingerprint).await
    }

    async fn settle(&self, settlement: &Settlement) -> Result<()> {
        crate::store::counters::durable_object_call();
        post(&self.ledger, stats::INSTANCE, "stats", "/settle", settlement).await.map(|_| ())
    }

    async fn job_status(&self, job_id: &str) -> Result<Option<JobStatus>> {
        let query = stats::JobQuery { job_id: job_id.to_owned() };
        json(&post(&self.ledger, stats::INSTANCE, "stats", "/job", &query).await?)
    }

    async fn recent_jobs(&self, limit: u64) -> Result<(Vec<JobStatus>, bool)> {
        let query = stats::Recent { limit };
        json(&post(&self.ledger, stats::INSTANCE, "stats", "/recent", &query).await?)
    }

    async fn recent_issues(&self, limit: u64) -> Result<(Vec<IssueRow>, bool)> {
        let query = stats::Recent { limit };
        json(&post(&self.ledger, stats::INSTANCE, "stats", "/issues", &query).await?)
    }

    async fn days(&self, days: &[String]) -> Result<Vec<DayStats>> {
        json(&post(&self.ledger, stats::INSTANCE, "stats", "/days", &stats::Days { days: days.to_vec() }).await?)
    }
}
