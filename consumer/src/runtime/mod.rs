//! The job runtime: decode each queue message → dispatch it to its handler → settle it (ack, or
//! retry with a delay, the queue dead-lettering it after `max_retries`) → record its status and
//! counters → log one line. Handlers return an [`Outcome`]; nothing else acks or retries.

pub mod ctx;
pub mod outcome;
pub mod record;
pub mod settle;

pub use ctx::{Ctx, begin_delivery};
pub use outcome::{AlertSummary, Effect, FollowUp, Outcome, StepError};

use std::cell::RefCell;
use std::rc::Rc;

use bugbot_shared::claim::DeliveryOp;
use bugbot_shared::digest::day_of;
use bugbot_shared::event::Signal;
use bugbot_shared::job::{Job, JobKind};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::normalize::normalize;
use bugbot_shared::status::{JobState, JobStatus};
use futures_util::StreamExt as _;
use worker::{Date, Env, MessageExt, QueueRetryOptionsBuilder, RawMessage, wasm_bindgen::JsValue};

use crate::clients::fetch::FetchPort;
use crate::clients::http::HttpPort;
use crate::config::{self, Config, DEAD_LETTER_QUEUE};
use crate::handlers;
use crate::store::memo::Memo;
use crate::store::objects::claims::Claims;
use crate::store::ports::{ClaimPort, KvPort, Settlement};
use crate::store::{DeadLetter, STATE_KV, State, job_status_of};

/// One queue message, decoded once.
struct Delivered {
    message: RawMessage,
    /// The queue's delivery count of this message (1 the first time).
    attempts: u32,
    job: Result<Job, String>,
    /// An alert's normalized signal (computed once: it orders the batch and feeds the handler).
    signal: Option<Result<Signal, String>>,
}

impl Delivered {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a delivery count, checked to be in range"
    )]
    fn new(value: JsValue) -> Self {
        let attempts = js_sys::Reflect::get(&value, &JsValue::from_str("attempts"))
            .ok()
            .and_then(|a| a.as_f64())
            .map_or(1, |a| if a >= 1.0 && a < f64::from(u32::MAX) { a as u32 } else { 1 });
        let message = RawMessage::from(worker::worker_sys::Message::from(value));
        let job = match message.body().as_string() {
            None => Err("message body is not text".to_owned()),
            Some(text) => match Job::from_message(&text) {
                Ok(job) if job.kind != JobKind::Unknown => Ok(job),
                Ok(_) => Err("unknown job kind (newer gateway?)".to_owned()),
                Err(e) => Err(format!("undecodable job: {e}")),
            },
        };
        let signal = job
            .as_ref()
            .ok()
            .filter(|job| is_alert(&job.kind))
            .map(|job| normalize(&job.kind, job.received_at_ms).map_err(|e| e.to_string()));
        Self { message, attempts, job, signal }
    }

    /// Alerts about the same issue share a key (their fingerprint); every other job is its own.
    fn ordering_key(&self) -> String {
        match (&self.signal, &self.job) {
            (Some(Ok(signal)), _) => format!("fp:{}", signal.fingerprint().as_str()),
            (_, Ok(job)) => format!("job:{}", job.id.as_str()),
            (_, Err(_)) => format!("message:{}", self.message.id()),
        }
    }
}

/// Whether the job is an alert (its delivery claim is its fingerprint's, asked by the handler).
fn is_alert(kind: &JobKind) -> bool {
    matches!(
        kind,
        JobKind::SentryWebhook(_)
            | JobKind::SentryLegacy(_)
            | JobKind::GlitchtipIssue(_)
            | JobKind::GlitchtipUptime(_)
            | JobKind::SlackMessage(_)
            | JobKind::CloudwatchGroup(_)
    )
}

/// One batch from either queue: each message handled (concurrently, bounded; the same issue's in
/// order), then the whole batch's status records and counters settled in one ledger round trip,
/// then each message acked or retried and logged, then the follow-ups run.
pub async fn run_batch(batch: worker::worker_sys::MessageBatch, env: Env) -> worker::Result<()> {
    let config = config::load(&env);
    let state = State::new(env.kv(STATE_KV)?);
    let claims = Claims::new(&env)?;
    let queue: String = batch.queue()?.into();
    let delivered: Vec<Delivered> = batch.messages()?.iter().map(Delivered::new).collect();
    if queue == DEAD_LETTER_QUEUE {
        for d in &delivered {
            dead_letter(&state, &claims, d, &config).await;
        }
        return Ok(());
    }
    let port = FetchPort::new(config.log_level);
    let memo = MEMO.with(Rc::clone);
    let settled = RefCell::new(Vec::with_capacity(delivered.len()));
    futures_util::stream::iter(ordered_groups(&delivered))
        .for_each_concurrent(CONCURRENCY, |group| async {
            for d in group {
                let message_id = d.message.id();
                let ctx = Ctx {
                    env: &env,
                    config: &config,
                    port: &port,
                    claims: &claims,
                    state: &state,
                    now_ms: Date::now().as_millis(),
                    jitter: js_sys::Math::random(),
                    message_id: &message_id,
                    attempt: d.attempts,
                    memo: &memo,
                };
                let done = Box::pin(handle(&ctx, d)).await;
                settled.borrow_mut().push(done);
            }
        })
        .await;
    let settled = settled.into_inner();

    // One ledger round trip for the batch: every job's status record, the day's counters and the
    // issues its alerts reached.
    let mut settlement = Settlement::default();
    for done in &settled {
        settlement.jobs.extend(done.status.clone());
        settlement.stats.extend(done.stats.clone().map(|op| (day_of(done.started), op)));
        settlement.issues.extend(done.issue.clone());
    }
    let recorded = if settlement.is_empty() { Ok(()) } else { claims.settle(&settlement).await };
    let unrecorded = recorded.err().map(|e| format!("status not recorded: {e}"));

    let mut follow_ups = Vec::new();
    for done in settled {
        follow_ups.extend(conclude(done, unrecorded.as_deref(), &config));
    }
    futures_util::stream::iter(follow_ups)
        .for_each_concurrent(CONCURRENCY, |(job, message_id, follow_up)| {
            let (env, config, port, claims, state, memo) = (&env, &config, &port, &claims, &state, &*memo);
            async move {
                let ctx = Ctx {
                    env,
                    config,
                    port,
                    claims,
                    state,
                    now_ms: Date::now().as_millis(),
                    jitter: js_sys::Math::random(),
                    message_id: &message_id,
                    attempt: 1,
                    memo,
                };
                run_follow_up(&ctx, &job, follow_up).await;
            }
        })
        .await;
    Ok(())
}

thread_local! {
    /// The isolate's caches, for its life (`store::memo`).
    static MEMO: Rc<Memo> = Rc::new(Memo::default());
}

/// How many messages of a batch are in flight at once.
const CONCURRENCY: usize = 4;

/// The batch's messages grouped by what must stay in order (an alert's fingerprint; anything else
/// is its own group), groups in the order of their first message.
fn ordered_groups(delivered: &[Delivered]) -> Vec<Vec<&Delivered>> {
    if delivered.len() < 2 {
        return vec![delivered.iter().collect()];
    }
    let mut groups: Vec<(String, Vec<&Delivered>)> = Vec::new();
    for d in delivered {
        let key = d.ordering_key();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(d),
            None => groups.push((key, vec![d])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// A handled message, waiting for its batch's settlement.
struct Handled<'m> {
    message: &'m RawMessage,
    started: u64,
    job: Option<&'m Job>,
    verdict: Verdict,
    /// Its status record and counters, for the batch's settlement.
    status: Option<JobStatus>,
    stats: Option<bugbot_shared::digest::StatsOp>,
    issue: Option<bugbot_shared::dashboard::IssueRow>,
    follow_up: Option<FollowUp>,
}

/// What becomes of a handled message once its batch is settled.
enum Verdict {
    /// Finished: acked once its status record is written (else retried shortly).
    Done {
        state: JobState,
        reason: Option<String>,
        fingerprint: Option<String>,
    },
    Retry {
        delay_secs: u32,
        reason: String,
        last: bool,
    },
    /// Never dropped: retried until the queue dead-letters it, where it is kept for inspection.
    Undecodable {
        reason: String,
    },
}

async fn handle<'m>(ctx: &Ctx<'_, FetchPort>, d: &'m Delivered) -> Handled<'m> {
    let started = ctx.now_ms;
    let mut handled = Handled {
        message: &d.message,
        started,
        job: None,
        verdict: Verdict::Undecodable { reason: String::new() },
        status: None,
        stats: None,
        issue: None,
        follow_up: None,
    };
    let job = match &d.job {
        Ok(job) => job,
        Err(reason) => {
            handled.verdict = Verdict::Undecodable { reason: reason.clone() };
            return handled;
        }
    };
    let (outcome, follow_up) = match &d.signal {
        // An alert's delivery claim is its fingerprint's: one round trip, asked by the handler.
        Some(signal) => handlers::alert::process_signal(ctx, job, signal.clone()).await,
        None => claimed(ctx, job, async |ctx, job| dispatch(ctx, job).await).await,
    };
    crate::store::counters::job();
    handled.stats = record::stats_op(&outcome, &ctx.config.retry);
    handled.issue = record::issue_row(&outcome);
    let now = Date::now().as_millis();
    match outcome {
        Outcome::Done { state, reason, links, fingerprint, .. } => {
            handled.status = Some(job_status_of(job, state, reason.clone(), links, 1, now));
            handled.verdict = Verdict::Done { state, reason, fingerprint };
            handled.follow_up = follow_up;
        }
        Outcome::Retry { delay_secs, reason: why, attempt } => {
            let last = attempt >= ctx.config.retry.max_attempts;
            let reason = if last {
                format!("{why} (attempt {attempt}, giving up: dead-lettered)")
            } else {
                format!("{why} (attempt {attempt}, retry in {delay_secs} s)")
            };
            handled.status =
                Some(job_status_of(job, JobState::Retrying, Some(reason.clone()), Vec::new(), attempt, now));
            handled.verdict = Verdict::Retry { delay_secs, reason, last };
        }
    }
    handled.job = Some(job);
    handled
}

/// Acks or retries a handled message now that its batch is settled (`unrecorded`: why the status
/// records could not be written), logs its one line, and hands back its follow-up.
fn conclude(handled: Handled<'_>, unrecorded: Option<&str>, config: &Config) -> Option<(Job, String, FollowUp)> {
    let Handled { message, started, job, verdict, follow_up, .. } = handled;
    let mut line = LogLine::new(Level::Info, "consumer", "job");
    if let Some(job) = job {
        line.job_id = Some(job.id.as_str());
        line.kind = Some(job.kind.name());
        line.request_id = job.request_id.as_deref();
    }
    match &verdict {
        Verdict::Undecodable { reason } => {
            message.retry();
            line.level = Level::Error;
            line.outcome = Some("retry");
            finish(&mut line, started, Some(reason), config.log_level);
            None
        }
        Verdict::Done { .. } if unrecorded.is_some() => {
            // Without a status record the job is not finished: retry (its effects are idempotent).
            message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(2).build());
            line.level = Level::Warn;
            line.outcome = Some("retry");
            finish(&mut line, started, unrecorded, config.log_level);
            None
        }
        Verdict::Done { state, reason, fingerprint } => {
            message.ack();
            line.outcome = Some(state_name(*state));
            if *state == JobState::Failed {
                line.level = Level::Error;
            }
            line.fingerprint = fingerprint.as_deref();
            finish(&mut line, started, reason.as_deref(), config.log_level);
            // Cloned only for a follow-up, which runs after the batch.
            follow_up.zip(job).map(|(f, job)| (job.clone(), message.id(), f))
        }
        Verdict::Retry { delay_secs, reason, last } => {
            message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(*delay_secs).build());
            line.level = if *last { Level::Error } else { Level::Warn };
            line.outcome = Some("retry");
            finish(&mut line, started, Some(reason), config.log_level);
            None
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
async fn dead_letter(state: &State, claims: &Claims, d: &Delivered, config: &Config) {
    let started = Date::now().as_millis();
    let message = &d.message;
    let text = message.body().as_string().unwrap_or_default();
    let job = Job::from_message(&text).ok();
    let job_id = job.as_ref().map_or_else(|| format!("message:{}", message.id()), |j| j.id.to_string());
    let last = match &job {
        Some(j) => crate::store::job_status(claims, state, j.id.as_str()).await,
        None => None,
    };
    if last.as_ref().is_some_and(|s| s.state.finished_ok()) {
        // Another copy of the delivery finished the job while this one kept finding it busy:
        // nothing is lost, so there is no dead letter, and the job's record keeps its outcome.
        message.ack();
        let mut line = LogLine::new(Level::Info, "consumer", "dead_letter");
        line.job_id = Some(&job_id);
        line.outcome = Some("superseded");
        finish(&mut line, started, Some("another copy of the delivery finished the job"), config.log_level);
        return;
    }
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
        // Free the delivery so that a replay is not held back by the last attempt's lease (an
        // alert's delivery is remembered by its fingerprint's claim).
        match d.signal.as_ref().and_then(|s| s.as_ref().ok()) {
            Some(signal) => {
                let forget = bugbot_shared::claim::FingerprintOp::Forget {
                    job: job.id.to_string(),
                    message: Some(message.id()),
                };
                let _ = claims.fingerprint(signal.fingerprint().as_str(), &forget).await;
            }
            None => {
                let _ = claims.delivery(job.id.as_str(), &DeliveryOp::Release { holder: Some(message.id()) }).await;
            }
        }
        let failed =
            job_status_of(job, JobState::Failed, Some(format!("dead-lettered: {reason}")), Vec::new(), 0, started);
        let _ = crate::store::record_jobs(claims, vec![failed]).await;
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
