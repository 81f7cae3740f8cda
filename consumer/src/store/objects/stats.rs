//! Daily counters for the digest, `/bugbot stats` and the dashboard chart: the `StatsStore`
//! Durable Object keeps one [`DayStats`] per UTC day (storage key `day:{YYYY-MM-DD}`), and the
//! consumer-side client records into it (what to record is the runtime's: `runtime::record`).
//!
//! Why a Durable Object and not KV: KV allows one write per second per key and has no atomic
//! read-modify-write, so a burst of alerts would lose counts. One object serializes every update;
//! at bugbot's volume (a few events per second at most) one instance is plenty. Recording is best
//! effort: a failure is logged and never fails or retries the job.

use bugbot_shared::digest::{DAY_MS, DayStats, StatsOp, day_of};
use bugbot_shared::log::{Level, LogLine};
use serde::{Deserialize, Serialize};
use worker::{DurableObject, Env, Method, Request, RequestInit, Response, Result, State, durable_object};

/// The Durable Object binding.
pub const STATS_DO: &str = "STATS";
/// Days kept in the store (the chart shows at most this many).
pub const KEEP_DAYS: u64 = 90;
/// The single instance's name.
const INSTANCE: &str = "stats";

#[derive(Debug, Serialize, Deserialize)]
struct Apply {
    day: String,
    op: StatsOp,
}

#[derive(Debug, Serialize, Deserialize)]
struct Days {
    days: Vec<String>,
}

/// Holds the per-day counters; every update is a read → apply → write that nothing interleaves.
#[durable_object]
pub struct StatsStore {
    state: State,
}

impl std::fmt::Debug for StatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsStore").finish_non_exhaustive()
    }
}

impl StatsStore {
    async fn day(&self, day: &str) -> Result<DayStats> {
        // Stored as JSON text: structured clone would turn the maps into JS Maps.
        let text: Option<String> = self.state.storage().get(&format!("day:{day}")).await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(|| DayStats::new(day)))
    }
}

impl DurableObject for StatsStore {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let body = req.text().await?;
        match req.path().as_str() {
            "/apply" => {
                let apply: Apply = serde_json::from_str(&body)?;
                let mut day = self.day(&apply.day).await?;
                day.apply(&apply.op);
                self.state.storage().put(&format!("day:{}", apply.day), serde_json::to_string(&day)?).await?;
                Response::ok("ok")
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

async fn call(env: &Env, path: &str, body: String) -> Result<Response> {
    crate::store::counters::durable_object_call();
    let stub = env.durable_object(STATS_DO)?.id_from_name(INSTANCE)?.get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let resp = stub.fetch_with_request(Request::new_with_init(&format!("https://stats{path}"), &init)?).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!("stats store answered {}", resp.status_code())));
    }
    Ok(resp)
}

/// Adds `op` to the counters of the day of `now_ms` (best effort: a failure is logged, never raised).
pub async fn apply(env: &Env, now_ms: u64, op: StatsOp, job_id: Option<&str>) {
    let body = serde_json::to_string(&Apply { day: day_of(now_ms), op }).expect("stats ops serialize");
    if let Err(e) = call(env, "/apply", body).await {
        let reason = format!("stats not recorded: {e}");
        let mut line = LogLine::new(Level::Warn, "consumer", "stats");
        line.job_id = job_id;
        line.reason = Some(&reason);
        worker::console_warn!("{}", line.to_json());
    }
}

/// The days ending with the one containing `end_ms`, oldest first (empty days included).
pub async fn load_days(env: &Env, end_ms: u64, count: u64) -> Result<Vec<DayStats>> {
    let days = (0..count.clamp(1, KEEP_DAYS)).rev().map(|back| day_of(end_ms.saturating_sub(back * DAY_MS))).collect();
    let mut resp = call(env, "/days", serde_json::to_string(&Days { days })?).await?;
    resp.json().await
}
