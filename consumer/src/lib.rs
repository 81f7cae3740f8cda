//! # bugbot consumer
//!
//! The queue consumer Worker. Each message is one [`Job`]; it is acked only after its effects are
//! recorded, retried with a delay (honouring the services' `Retry-After`) on transient failures,
//! and moved by the queue to the dead-letter queue after `max_retries`, where this Worker records
//! it for inspection and replay.
//!
//! # Layout
//! - `queue` — the entrypoint: decode each message, dispatch, ack or retry it, log one line.
//! - [`pipeline`] — an alert job end to end: claim, normalize, filter, file/update, announce.
//! - [`claims`] — the `ClaimStore` Durable Object (exactly-once) and its client.
//! - [`sink`] — Linear, GitHub and Discord, generic over [`http::HttpPort`].
//! - [`fetch`] — the `HttpPort` over Workers `fetch`, with timeouts.
//! - [`state`] — job status, issue records and dead letters in KV.
//! - [`commands`] — `/bugbot` commands: context packets, status, errors, stats, resolve.
//! - [`fix`] — the fix flow: executor dispatch and results.
//! - [`actions`] — fix jobs sent to GitHub Actions as a `repository_dispatch` (`FIX_BACKEND=actions`).
//! - [`executor_container`] — the `ExecutorContainer` Durable Object that runs the executor on Cloudflare Containers.
//! - [`digest`] — the daily digest (cron).
//! - [`stats`] — per-day counters (the `StatsStore` Durable Object) for the digest, stats and the chart.
//! - [`dashboard`] — the status page (server-rendered HTML + SVG), behind `/admin/dashboard`.
//! - [`cloudwatch`] — `CloudWatch` Logs scans (cron and `/admin/trigger-scan`), signed with AWS Signature Version 4.
//! - [`admin`] — `/admin/*` (job status, dead letters, replay), reached through the gateway.
//! - [`config`] — bindings, read once per isolate.

pub mod actions;
pub mod admin;
pub mod claims;
pub mod cloudwatch;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod digest;
pub mod executor_container;
pub mod fetch;
pub mod fix;
pub mod http;
pub mod pipeline;
pub mod sink;
pub mod state;
pub mod stats;

use bugbot_shared::job::{Job, JobKind};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::status::JobState;
use worker::{
    Context, Date, Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder, RawMessage, Request, Response, Result,
    event, wasm_bindgen::JsValue,
};

pub use claims::ClaimStore;

use crate::pipeline::{Deps, Outcome};
use crate::state::{DeadLetter, State};

/// Job status, issue records and dead letters.
pub const STATE_KV: &str = "STATE";
/// The job queue (this Worker produces onto it only to replay dead letters).
pub const JOBS_QUEUE: &str = "JOBS";
/// The dead-letter queue this Worker also consumes.
pub const DEAD_LETTER_QUEUE: &str = "bugbot-jobs-dlq";

/// Not public: reached only through the gateway's `CONSUMER` service binding.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let config = config::load(&env);
    if req.path().starts_with("/admin/") {
        return admin::serve(&req, &env, &config).await;
    }
    Response::error("not found", 404)
}

/// The daily digest, and the `CloudWatch` Logs scan on its own cron.
#[event(scheduled)]
async fn scheduled(event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    console_error_panic_hook::set_once();
    let config = config::load(&env);
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a positive Unix time in ms")]
    let scheduled_ms = event.schedule() as u64;
    let scan_cron =
        config::binding(&env, "CLOUDWATCH_SCAN_CRON").unwrap_or_else(|| cloudwatch::DEFAULT_SCAN_CRON.into());
    if event.cron() == scan_cron {
        cloudwatch::run(&env, scheduled_ms, config.log_level).await;
        return;
    }
    if let Err(e) = digest::run(&env, &config, scheduled_ms).await {
        let mut line = LogLine::new(Level::Error, "consumer", "cron");
        let reason = e.to_string();
        line.reason = Some(&reason);
        worker::console_error!("{}", line.to_json());
    }
}

#[event(queue)]
async fn queue(batch: MessageBatch<JsValue>, env: Env, _ctx: Context) -> Result<()> {
    console_error_panic_hook::set_once();
    let config = config::load(&env);
    let state = State::new(env.kv(STATE_KV)?);
    let claims = claims::Claims::new(&env)?;
    if batch.queue() == DEAD_LETTER_QUEUE {
        for message in batch.raw_iter() {
            dead_letter(&state, &claims, &message, &config).await;
        }
        return Ok(());
    }
    let port = fetch::FetchPort::default();
    for message in batch.raw_iter() {
        let started = Date::now().as_millis();
        let message_id = message.id();
        let deps = Deps {
            env: &env,
            config: &config,
            port: &port,
            claims: &claims,
            state: &state,
            now_ms: started,
            jitter: js_sys::Math::random(),
            message_id: &message_id,
        };
        handle(&deps, &message, started).await;
    }
    Ok(())
}

async fn handle(deps: &Deps<'_, fetch::FetchPort>, message: &RawMessage, started: u64) {
    let mut line = LogLine::new(Level::Info, "consumer", "job");
    let Some(text) = message.body().as_string() else {
        // Never dropped: retried until the queue dead-letters it, where it is kept for inspection.
        message.retry();
        line.level = Level::Error;
        line.outcome = Some("retry");
        finish(&mut line, started, Some("message body is not text"), deps.config.log_level);
        return;
    };
    let job = match Job::from_message(&text) {
        Ok(job) if job.kind != JobKind::Unknown => job,
        decoded => {
            message.retry();
            line.level = Level::Error;
            line.outcome = Some("retry");
            let reason = match decoded {
                Err(e) => format!("undecodable job: {e}"),
                Ok(_) => "unknown job kind (newer gateway?)".to_owned(),
            };
            finish(&mut line, started, Some(&reason), deps.config.log_level);
            return;
        }
    };
    line.job_id = Some(job.id.as_str());
    line.kind = Some(job.kind.name());
    line.request_id = job.request_id.as_deref();

    let outcome = match &job.kind {
        JobKind::SentryWebhook(_)
        | JobKind::SentryLegacy(_)
        | JobKind::GlitchtipIssue(_)
        | JobKind::GlitchtipUptime(_)
        | JobKind::SlackMessage(_)
        | JobKind::CloudwatchGroup(_) => pipeline::process_alert(deps, &job).await,
        JobKind::DiscordCommand(_) | JobKind::DiscordComponent(_) => commands::process(deps, &job).await,
        JobKind::ExecutorResult(_) => fix::on_result(deps, &job).await,
        JobKind::Unknown => unreachable!("filtered above"),
    };
    stats::record(deps, &job, &outcome).await;

    let now = Date::now().as_millis();
    let reason;
    match outcome {
        Outcome::Done { state, reason: why, links, fingerprint } => {
            reason = why;
            let recorded = deps.state.record(&job, state, reason.clone(), links, 1, now).await;
            if let Err(e) = recorded {
                // Without a status record the job is not finished: retry (its effects are idempotent).
                message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(2).build());
                line.level = Level::Warn;
                line.outcome = Some("retry");
                let why = format!("status not recorded: {e}");
                finish(&mut line, started, Some(&why), deps.config.log_level);
                return;
            }
            message.ack();
            line.outcome = Some(state_name(state));
            if state == JobState::Failed {
                line.level = Level::Error;
            }
            line.fingerprint = fingerprint.as_deref();
            finish(&mut line, started, reason.as_deref(), deps.config.log_level);
        }
        Outcome::Retry { delay_secs, reason: why, attempt } => {
            let last = attempt >= deps.config.retry.max_attempts;
            reason = Some(if last {
                format!("{why} (attempt {attempt}, giving up: dead-lettered)")
            } else {
                format!("{why} (attempt {attempt}, retry in {delay_secs} s)")
            });
            let _ = deps.state.record(&job, JobState::Retrying, reason.clone(), Vec::new(), attempt, now).await;
            message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay_secs).build());
            line.level = if last { Level::Error } else { Level::Warn };
            line.outcome = Some("retry");
            finish(&mut line, started, reason.as_deref(), deps.config.log_level);
        }
    }
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Received => "received",
        JobState::Gathering => "gathering",
        JobState::Filed => "filed",
        JobState::Fixing => "fixing",
        JobState::PrOpened => "pr_opened",
        JobState::Done => "done",
        JobState::Duplicate => "duplicate",
        JobState::Ignored => "ignored",
        JobState::Retrying => "retrying",
        _ => "failed",
    }
}

/// A message the queue gave up on: keep it, with the last known reason, for inspection and replay.
async fn dead_letter(state: &State, claims: &claims::Claims, message: &RawMessage, config: &config::Config) {
    let started = Date::now().as_millis();
    let text = message.body().as_string().unwrap_or_default();
    let job = Job::from_message(&text).ok();
    let job_id = job.as_ref().map_or_else(|| format!("message:{}", message.id()), |j| j.id.to_string());
    let last = match &job {
        Some(j) => state.job_status(j.id.as_str()).await,
        None => None,
    };
    let reason = last.and_then(|s| s.reason).unwrap_or_else(|| "undecodable or unknown job".to_owned());
    let letter = DeadLetter {
        job_id: job_id.clone(),
        kind: job.as_ref().map_or("unknown", |j| j.kind.name()).to_owned(),
        reason: reason.clone(),
        dead_at_ms: started,
        message: text,
    };
    let mut line = LogLine::new(Level::Error, "consumer", "dead_letter");
    line.job_id = Some(&job_id);
    if state.record_dead_letter(&letter).await.is_err() {
        message.retry();
        line.outcome = Some("retry");
        finish(&mut line, started, Some("could not store the dead letter"), config.log_level);
        return;
    }
    if let Some(job) = &job {
        // Free the delivery so that a replay is not held back by the last attempt's lease.
        let _ = claims.delivery(job.id.as_str(), &bugbot_shared::claim::DeliveryOp::Release).await;
        let _ =
            state.record(job, JobState::Failed, Some(format!("dead-lettered: {reason}")), Vec::new(), 0, started).await;
    }
    message.ack();
    line.outcome = Some("dead_lettered");
    finish(&mut line, started, Some(&reason), config.log_level);
}

fn finish<'a>(line: &mut LogLine<'a>, started: u64, reason: Option<&'a str>, min: Level) {
    #[expect(clippy::cast_precision_loss, reason = "durations are small")]
    let duration = (Date::now().as_millis() - started) as f64;
    line.duration_ms = Some(duration);
    line.reason = reason;
    if line.level >= min {
        worker::console_log!("{}", line.to_json());
    }
}
