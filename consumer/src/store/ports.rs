//! The ports of the consumer's own state, beside [`HttpPort`](crate::clients::http::HttpPort): the
//! claims (a Durable Object in the Worker) and the KV namespace. Handlers are generic over them,
//! so they run natively in tests over the in-memory implementations in [`memory`].

use bugbot_shared::caps::{CapsOp, CapsReply};
use bugbot_shared::claim::{DeliveryOp, DeliveryReply, FingerprintOp, FingerprintReply};

/// The exactly-once claims: one call is one Durable Object round trip in the Worker.
#[expect(async_fn_in_trait, reason = "single-threaded Workers runtime; no Send bound wanted")]
pub trait ClaimPort {
    async fn delivery(&self, job_id: &str, op: &DeliveryOp) -> worker::Result<DeliveryReply>;
    async fn fingerprint(&self, fingerprint: &str, op: &FingerprintOp) -> worker::Result<FingerprintReply>;
    /// The auto-fix caps of one UTC day (`2026-12-06`).
    async fn caps(&self, day: &str, op: &CapsOp) -> worker::Result<CapsReply>;
}

/// A KV namespace, as text (values are JSON).
#[expect(async_fn_in_trait, reason = "single-threaded Workers runtime; no Send bound wanted")]
pub trait KvPort {
    async fn get_text(&self, key: &str) -> Option<String>;
    async fn put_text(&self, key: &str, value: String, ttl_secs: u64) -> worker::Result<()>;
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
}

/// In-memory ports for native tests: the claims apply [`bugbot_shared::claim`] as the Durable
/// Object does, and both count the round trips and writes they serve.
pub mod memory {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    use bugbot_shared::caps::{self, CapsOp, CapsRecord, CapsReply};
    use bugbot_shared::claim::{
        self, DeliveryOp, DeliveryRecord, DeliveryReply, FingerprintOp, FingerprintRecord, FingerprintReply,
    };

    use super::{ClaimPort, KvPort};

    #[derive(Debug, Default)]
    pub struct MemoryClaims {
        deliveries: RefCell<BTreeMap<String, DeliveryRecord>>,
        fingerprints: RefCell<BTreeMap<String, FingerprintRecord>>,
        caps: RefCell<BTreeMap<String, CapsRecord>>,
        /// Durable Object round trips served.
        pub calls: Cell<u32>,
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
            self.calls.set(self.calls.get() + 1);
            let current = self.fingerprints.borrow().get(fingerprint).cloned();
            let (next, reply) = claim::fingerprint(current, op.clone());
            if let Some(next) = next {
                self.fingerprints.borrow_mut().insert(fingerprint.to_owned(), next);
            }
            Ok(reply)
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
    }
}
