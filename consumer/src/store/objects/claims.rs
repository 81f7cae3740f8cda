//! The `ClaimStore` Durable Object: one instance per claim key, applying
//! [`bugbot_shared::claim`] atomically, and the consumer-side client for it.
//!
//! A Durable Object delivers no other event while it awaits its own storage, so the read → decide
//! → write below cannot interleave with another request for the same key.

use bugbot_shared::caps::{self, CapsOp, CapsRecord, CapsReply};
use bugbot_shared::claim::{
    self, DeliveryOp, DeliveryRecord, DeliveryReply, FingerprintOp, FingerprintRecord, FingerprintReply,
};
use serde::Serialize;

use bugbot_shared::digest::DayStats;
use bugbot_shared::status::JobStatus;

use super::stats;
use crate::store::ports::{ClaimPort, Settlement};
use serde::de::DeserializeOwned;
use worker::{
    Date, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, Result, State, durable_object,
};

/// The Durable Object binding.
pub const CLAIMS_DO: &str = "CLAIMS";
const RECORD: &str = "record";

#[durable_object]
pub struct ClaimStore {
    state: State,
}

impl std::fmt::Debug for ClaimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimStore").finish_non_exhaustive()
    }
}

impl DurableObject for ClaimStore {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        let body = req.text().await?;
        match req.path().as_str() {
            "/delivery" => {
                let op: DeliveryOp = serde_json::from_str(&body)?;
                let current: Option<DeliveryRecord> = storage.get(RECORD).await?;
                let (next, reply) = claim::delivery(current, op);
                if let Some(next) = next {
                    storage.put(RECORD, &next).await?;
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
                let current: Option<CapsRecord> = storage.get(RECORD).await?;
                let (next, reply) = caps::caps(current, op);
                if let Some(next) = next {
                    storage.put(RECORD, &next).await?;
                }
                Response::from_json(&reply)
            }
            "/fingerprint" => {
                let op: FingerprintOp = serde_json::from_str(&body)?;
                let current: Option<FingerprintRecord> = storage.get(RECORD).await?;
                let (next, reply) = claim::fingerprint(current, op);
                if let Some(next) = next {
                    storage.put(RECORD, &next).await?;
                }
                Response::from_json(&reply)
            }
            _ => Response::error("not found", 404),
        }
    }

    /// The dedupe window of a finished delivery is over: delete it, unless it was begun again since.
    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let current: Option<DeliveryRecord> = storage.get(RECORD).await.ok().flatten();
        if current.and_then(|r| r.expires_at_ms()).is_some_and(|at| at <= Date::now().as_millis()) {
            storage.delete_all().await?;
        }
        Response::ok("")
    }
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
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(serde_json::to_string(op)?.into()));
    let req = Request::new_with_init(&format!("https://{what}{path}"), &init)?;
    let resp = bugbot_edge::fetch::fetch_object(&stub, req.inner()).await?;
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
        self.call(&format!("fp:{fingerprint}"), "/fingerprint", op).await
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

    async fn days(&self, days: &[String]) -> Result<Vec<DayStats>> {
        json(&post(&self.ledger, stats::INSTANCE, "stats", "/days", &stats::Days { days: days.to_vec() }).await?)
    }
}
