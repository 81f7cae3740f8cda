//! Per-isolate counts of the consumer's own round trips: Durable Object calls and KV writes, by
//! what made them. Cheap (two cells), always on; `GET /admin/counters` (through the gateway, bearer
//! `ADMIN_TOKEN`) returns them, so `make bench` can count what an alert costs in workerd rather than
//! estimate it: read them before and after a run and divide by the alerts sent.

use std::cell::Cell;

use serde::Serialize;

thread_local! {
    static COUNTS: Counts = const { Counts { durable_object_calls: Cell::new(0), kv_writes: Cell::new(0), jobs: Cell::new(0) } };
}

struct Counts {
    durable_object_calls: Cell<u64>,
    kv_writes: Cell<u64>,
    jobs: Cell<u64>,
}

/// What `GET /admin/counters` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub durable_object_calls: u64,
    pub kv_writes: u64,
    /// Jobs this isolate settled.
    pub jobs: u64,
}

pub fn durable_object_call() {
    COUNTS.with(|c| c.durable_object_calls.set(c.durable_object_calls.get() + 1));
}

pub fn kv_write() {
    COUNTS.with(|c| c.kv_writes.set(c.kv_writes.get() + 1));
}

pub fn job() {
    COUNTS.with(|c| c.jobs.set(c.jobs.get() + 1));
}

pub fn snapshot() -> Snapshot {
    COUNTS.with(|c| Snapshot {
        durable_object_calls: c.durable_object_calls.get(),
        kv_writes: c.kv_writes.get(),
        jobs: c.jobs.get(),
    })
}
