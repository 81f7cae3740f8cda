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

use crate::store::ports::ClaimPort;
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

/// Client for the claims, from the consumer.
#[derive(Debug)]
pub struct Claims {
    namespace: ObjectNamespace,
}

impl Claims {
    pub fn new(env: &Env) -> Result<Self> {
        Ok(Self { namespace: env.durable_object(CLAIMS_DO)? })
    }

    async fn call<Op: Serialize, Reply: DeserializeOwned>(&self, name: &str, path: &str, op: &Op) -> Result<Reply> {
        crate::store::counters::durable_object_call();
        let stub = self.namespace.id_from_name(name)?.get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(serde_json::to_string(op)?.into()));
        let req = Request::new_with_init(&format!("https://claims{path}"), &init)?;
        let mut resp = stub.fetch_with_request(req).await?;
        if resp.status_code() != 200 {
            return Err(worker::Error::RustError(format!("claim store answered {}", resp.status_code())));
        }
        resp.json().await
    }
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
}
