//! The job runtime: decode each queue message → dispatch it to its handler → settle it (ack, or
//! retry with a delay, the queue dead-lettering it after `max_retries`) → record its status and
//! counters → log one line. Handlers return an [`Outcome`]; nothing else acks or retries.

pub mod ctx;
pub mod outcome;
pub mod record;
pub mod settle;

pub use ctx::{Ctx, begin_delivery};
pub use outcome::{AlertSummary, Effect, FollowUp, Outcome, StepError};

use bugbot_shared::claim::DeliveryOp;
use bugbot_shared::job::{Job, JobKind};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::status::JobState;
use futures_util::StreamExt as _;
use worker::{Date, Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder, RawMessage, wasm_bindgen::JsValue};

use crate::clients::fetch::FetchPort;
use crate::clients::http::HttpPort;
use crate::config::{self, Config, DEAD_LETTER_QUEUE};
use crate::handlers;
use crate::store::objects::claims::Claims;
use crate::store::ports::{ClaimPort, KvPort};
use crate::store::{DeadLetter, STATE_KV, State};

/// One batch from either queue.
pub async fn run_batch(batch: MessageBatch<JsValue>, env: Env) -> worker::Result<()> {
    let config = config::load(&env);
    let state = State::new(env.kv(STATE_KV)?);
    let claims = Claims::new(&env)?;
    if batch.queue() == DEAD_LETTER_QUEUE {
        for message in batch.raw_iter() {
            dead_letter(&state, &claims, &message, &config).await;
        }
        return Ok(());
    }
    let port = FetchPort::default();
    let messages: Vec<RawMessage> = batch.raw_iter().collect();
    // Messages of one batch run concurrently (bounded); those about the same issue stay in order.
    futures_util::stream::iter(ordered_groups(&messages))
        .for_each_concurrent(CONCURRENCY, |group| async {
            for message in group {
                let started = Date::now().as_millis();
                let message_id = message.id();
                let ctx = Ctx {
                    env: &env,
                    config: &config,
                    port: &port,
                    claims: &claims,
                    state: &state,
                    now_ms: started,
                    jitter: js_sys::Math::random(),
                    message_id: &message_id,
                    attempt: 1,
                };
                Box::pin(handle(&ctx, message, started)).await;
            }
        })
        .await;
    Ok(())
}

/// How many messages of a batch are in flight at once.
const CONCURRENCY: usize = 4;

/// The batch's messages grouped by what must stay in order (an alert's fingerprint; anything else
/// is its own group), groups in the order of their first message.
fn ordered_groups(messages: &[RawMessage]) -> Vec<Vec<&RawMessage>> {
    if messages.len() < 2 {
        return vec![messages.iter().collect()];
    }
    let mut groups: Vec<(String, Vec<&RawMessage>)> = Vec::new();
    for message in messages {
        let key = message
            .body()
            .as_string()
            .and_then(|text| Job::from_message(&text).ok())
            .map_or_else(|| format!("message:{}", message.id()), |job| ordering_key(&job));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(message),
            None => groups.push((key, vec![message])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// Alerts about the same issue share a key (their fingerprint); every other job is its own.
fn ordering_key(job: &Job) -> String {
    match &job.kind {
        JobKind::SentryWebhook(_)
        | JobKind::SentryLegacy(_)
        | JobKind::GlitchtipIssue(_)
        | JobKind::GlitchtipUptime(_)
        | JobKind::SlackMessage(_)
        | JobKind::CloudwatchGroup(_) => bugbot_shared::normalize::normalize(&job.kind, job.received_at_ms)
            .map_or_else(
                |_| format!("job:{}", job.id.as_str()),
                |signal| format!("fp:{}", signal.fingerprint().as_str()),
            ),
        _ => format!("job:{}", job.id.as_str()),
    }
}

async fn handle(ctx: &Ctx<'_, FetchPort>, message: &RawMessage, started: u64) {
    let mut line = LogLine::new(Level::Info, "consumer", "job");
    let Some(text) = message.body().as_string() else {
        // Never dropped: retried until the queue dead-letters it, where it is kept for inspection.
        message.retry();
        line.level = Level::Error;
        line.outcome = Some("retry");
        finish(&mut line, started, Some("message body is not text"), ctx.config.log_level);
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
            finish(&mut line, started, Some(&reason), ctx.config.log_level);
            return;
        }
    };
    line.job_id = Some(job.id.as_str());
    line.kind = Some(job.kind.name());
    line.request_id = job.request_id.as_deref();

    let (outcome, follow_up) = claimed(ctx, &job, async |ctx, job| dispatch(ctx, job).await).await;
    crate::store::counters::job();
    if let Some(op) = record::stats_op(&outcome, &ctx.config.retry) {
        crate::store::objects::stats::apply(ctx.env, ctx.now_ms, op, Some(job.id.as_str())).await;
    }

    let now = Date::now().as_millis();
    let reason;
    match outcome {
        Outcome::Done { state, reason: why, links, fingerprint, .. } => {
            reason = why;
            let recorded = ctx.state.record(&job, state, reason.clone(), links, 1, now).await;
            if let Err(e) = recorded {
                // Without a status record the job is not finished: retry (its effects are idempotent).
                message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(2).build());
                line.level = Level::Warn;
                line.outcome = Some("retry");
                let why = format!("status not recorded: {e}");
                finish(&mut line, started, Some(&why), ctx.config.log_level);
                return;
            }
            message.ack();
            line.outcome = Some(state_name(state));
            if state == JobState::Failed {
                line.level = Level::Error;
            }
            line.fingerprint = fingerprint.as_deref();
            finish(&mut line, started, reason.as_deref(), ctx.config.log_level);
            if let Some(follow_up) = follow_up {
                run_follow_up(ctx, &job, follow_up).await;
            }
        }
        Outcome::Retry { delay_secs, reason: why, attempt } => {
            let last = attempt >= ctx.config.retry.max_attempts;
            reason = Some(if last {
                format!("{why} (attempt {attempt}, giving up: dead-lettered)")
            } else {
                format!("{why} (attempt {attempt}, retry in {delay_secs} s)")
            });
            let _ = ctx.state.record(&job, JobState::Retrying, reason.clone(), Vec::new(), attempt, now).await;
            message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay_secs).build());
            line.level = if last { Level::Error } else { Level::Warn };
            line.outcome = Some("retry");
            finish(&mut line, started, reason.as_deref(), ctx.config.log_level);
        }
    }
}

/// Claims the job's delivery, runs `handler` with the delivery's attempt, and marks the delivery
/// finished once the job is (a retry comes back as the same holder and must proceed). Best effort:
/// if marking fails, the lease expires and a redelivered copy redoes idempotent work.
pub async fn claimed<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    handler: impl AsyncFn(&Ctx<'_, P, C, K>, &Job) -> (Outcome, Option<FollowUp>),
) -> (Outcome, Option<FollowUp>) {
    let attempt = match begin_delivery(ctx, job).await {
        Ok(attempt) => attempt,
        Err(outcome) => return (outcome, None),
    };
    let ctx = &Ctx { attempt, ..*ctx };
    let (outcome, follow_up) = handler(ctx, job).await;
    if let Outcome::Done { state, .. } = &outcome {
        let finish = DeliveryOp::Finish {
            holder: ctx.message_id.to_owned(),
            outcome: format!("{state:?}"),
            now_ms: ctx.now_ms,
            window_ms: ctx.config.dedupe_window_ms,
        };
        let _ = ctx.claims.delivery(job.id.as_str(), &finish).await;
    }
    (outcome, follow_up)
}

/// The handler for the job's kind.
async fn dispatch<P: HttpPort>(ctx: &Ctx<'_, P>, job: &Job) -> (Outcome, Option<FollowUp>) {
    match &job.kind {
        JobKind::SentryWebhook(_)
        | JobKind::SentryLegacy(_)
        | JobKind::GlitchtipIssue(_)
        | JobKind::GlitchtipUptime(_)
        | JobKind::SlackMessage(_)
        | JobKind::CloudwatchGroup(_) => handlers::alert::process(ctx, job).await,
        JobKind::DiscordCommand(_) => (handlers::command::process(ctx, job).await, None),
        // Boxed: a click nests a whole command's future.
        JobKind::DiscordComponent(click) => (Box::pin(handlers::component::process(ctx, job, click)).await, None),
        JobKind::ExecutorResult(_) => (handlers::fix::on_result(ctx, job).await, None),
        JobKind::Unknown => (Outcome::done(JobState::Failed, "unknown job kind".to_owned()), None),
    }
}

/// Work a settled job left behind (best effort: the job is already acked).
async fn run_follow_up<P: HttpPort>(ctx: &Ctx<'_, P>, job: &Job, follow_up: FollowUp) {
    match follow_up {
        FollowUp::AutoFix { event, tracked, evidence, context, repo } => {
            handlers::fix::maybe_auto_fix(ctx, job, &event, &tracked, evidence, &context, repo).await;
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
async fn dead_letter(state: &State, claims: &Claims, message: &RawMessage, config: &Config) {
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
