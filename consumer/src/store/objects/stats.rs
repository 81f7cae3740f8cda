//! Daily counters for the digest, `/bugbot stats` and the dashboard chart: the `StatsStore`
//! Durable Object keeps one [`DayStats`] per UTC day (storage key `day:{YYYY-MM-DD}`), and the
//! consumer-side client records into it.
//!
//! Why a Durable Object and not KV: KV allows one write per second per key and has no atomic
//! read-modify-write, so a burst of alerts would lose counts. One object serializes every update;
//! at bugbot's volume (a few events per second at most) one instance is plenty. Recording is best
//! effort: a failure is logged and never fails or retries the job.

use bugbot_shared::digest::{DAY_MS, DayStats, Occurrence, StatsOp, day_of};
use bugbot_shared::event::Signal;
use bugbot_shared::job::Job;
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::normalize::normalize;
use bugbot_shared::status::JobState;
use serde::{Deserialize, Serialize};
use worker::{DurableObject, Env, Method, Request, RequestInit, Response, Result, State, durable_object};

use crate::clients::http::HttpPort;
use crate::runtime::{Ctx, Outcome};

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
    let stub = env.durable_object(STATS_DO)?.id_from_name(INSTANCE)?.get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let resp = stub.fetch_with_request(Request::new_with_init(&format!("https://stats{path}"), &init)?).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!("stats store answered {}", resp.status_code())));
    }
    Ok(resp)
}

async fn apply(env: &Env, now_ms: u64, op: StatsOp, job_id: Option<&str>) {
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

/// What a finished job adds to the day's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Event(Occurrence),
    Resolved,
    Failed,
}

/// Reads an [`Outcome`] as the pipeline writes it (state + reason).
pub fn classify(outcome: &Outcome, max_attempts: u32) -> Option<Counted> {
    match outcome {
        Outcome::Retry { attempt, .. } => (*attempt >= max_attempts).then_some(Counted::Failed),
        Outcome::Done { state, reason, .. } => {
            let reason = reason.as_deref().unwrap_or("");
            match state {
                JobState::Failed => Some(Counted::Failed),
                JobState::Filed if reason.is_empty() => Some(Counted::Event(Occurrence::New)),
                JobState::Filed if reason.starts_with("regression") => Some(Counted::Event(Occurrence::Regressed)),
                // Repeats, including ones counted while another job was still filing the issue.
                JobState::Filed | JobState::Duplicate if reason.starts_with("occurrence") => {
                    Some(Counted::Event(Occurrence::Repeat))
                }
                JobState::Done if reason == "resolved" => Some(Counted::Resolved),
                _ => None,
            }
        }
    }
}

/// Counts a job once its [`Outcome`] is known (best effort, never fails the job).
pub async fn record<P: HttpPort>(ctx: &Ctx<'_, P>, job: &Job, outcome: &Outcome) {
    let op = match classify(outcome, ctx.config.retry.max_attempts) {
        None => return,
        Some(Counted::Failed) => StatsOp::JobFailed,
        Some(Counted::Resolved) => StatsOp::Resolved,
        Some(Counted::Event(occurrence)) => {
            let event = match normalize(&job.kind, job.received_at_ms) {
                Ok(Signal::Occurrence(e) | Signal::Regressed(e)) => e,
                Ok(Signal::MetricAlert(a)) => a.to_event(),
                Ok(Signal::Uptime(a)) => a.to_event(),
                _ => return,
            };
            let url = match outcome {
                Outcome::Done { links, .. } => links.first().cloned(),
                Outcome::Retry { .. } => None,
            };
            StatsOp::Event {
                fingerprint: event.fingerprint.as_str().to_owned(),
                title: event.title,
                project: event.project,
                level: event.level.as_str().to_owned(),
                url,
                occurrence,
            }
        }
    };
    apply(ctx.env, ctx.now_ms, op, Some(job.id.as_str())).await;
}

/// Counts a finished fix run: `outcome_name` is a `FixOutcome` name (`fixed`, `no_change`,
/// `blocked`, `failed`, `timed_out`) or `pr_opened`; `cost_usd` the model spend.
pub async fn record_fix_run(env: &Env, outcome_name: &str, cost_usd: f64, now_ms: u64) {
    apply(env, now_ms, StatsOp::FixRun { outcome: outcome_name.to_owned(), cost_usd }, None).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(state: JobState, reason: Option<&str>) -> Outcome {
        Outcome::Done { state, reason: reason.map(Into::into), links: Vec::new(), fingerprint: None }
    }

    #[test]
    fn outcomes_are_counted_as_the_pipeline_words_them() {
        let cases = [
            (done(JobState::Filed, None), Some(Counted::Event(Occurrence::New))),
            (
                done(JobState::Filed, Some("regression (occurrence 3): reopened")),
                Some(Counted::Event(Occurrence::Regressed)),
            ),
            (done(JobState::Filed, Some("occurrence 2: commented")), Some(Counted::Event(Occurrence::Repeat))),
            (
                done(JobState::Duplicate, Some("occurrence 4 counted; the issue is being filed by another job")),
                Some(Counted::Event(Occurrence::Repeat)),
            ),
            (done(JobState::Duplicate, Some("delivery already processed (Filed)")), None),
            (done(JobState::Done, Some("resolved")), Some(Counted::Resolved)),
            (done(JobState::Ignored, Some("filtered: level")), None),
            (done(JobState::Failed, Some("linear: HTTP 401")), Some(Counted::Failed)),
            (Outcome::Retry { delay_secs: 1, reason: "x".into(), attempt: 1 }, None),
            (Outcome::Retry { delay_secs: 1, reason: "x".into(), attempt: 3 }, Some(Counted::Failed)),
        ];
        for (outcome, expected) in cases {
            assert_eq!(classify(&outcome, 3), expected, "{outcome:?}");
        }
    }
}
