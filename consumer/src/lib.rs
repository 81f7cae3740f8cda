//! # bugbot consumer
//!
//! The queue consumer Worker. Each message is one [`Job`]; it is acked only after its effects are
//! recorded, retried with a delay on transient failures, and dead-lettered after `max_retries`.
//!
//! # Layout
//! - `queue` — the entrypoint: decode each message, process it, ack or retry it, log one line.
//! - [`state`] — job status records in KV.

mod state;

use bugbot_shared::job::{Job, JobKind};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::status::JobState;
use worker::{Context, Date, Env, MessageBatch, MessageExt, Result, event, wasm_bindgen::JsValue};

/// Job status and mappings.
pub const STATE_KV: &str = "STATE";

#[event(queue)]
async fn queue(batch: MessageBatch<JsValue>, env: Env, _ctx: Context) -> Result<()> {
    console_error_panic_hook::set_once();
    let kv = env.kv(STATE_KV)?;
    for message in batch.raw_iter() {
        let started = Date::now().as_millis();
        let body = message.body().as_string();
        let mut line = LogLine::new(Level::Info, "consumer", "job");
        let decoded = body.as_deref().map(Job::from_message);
        match decoded {
            Some(Ok(job)) if job.kind != JobKind::Unknown => {
                let outcome = state::record(&kv, &job, JobState::Received, None, started).await;
                line.job_id = Some(job.id.as_str());
                line.kind = Some(job.kind.name());
                line.request_id = job.request_id.as_deref();
                match outcome {
                    Ok(()) => {
                        message.ack();
                        line.outcome = Some("ack");
                    }
                    Err(e) => {
                        message.retry();
                        line.level = Level::Warn;
                        line.outcome = Some("retry");
                        let reason = e.to_string();
                        log_done(&mut line, started, Some(&reason));
                        continue;
                    }
                }
                log_done(&mut line, started, None);
            }
            // Unknown kinds (a newer gateway) and undecodable bodies are never dropped: retried
            // until the queue moves them to the dead-letter queue, where they can be inspected.
            other => {
                message.retry();
                line.level = Level::Error;
                line.outcome = Some("retry");
                let reason = match other {
                    None => "message body is not text".to_owned(),
                    Some(Err(e)) => format!("undecodable job: {e}"),
                    Some(Ok(_)) => "unknown job kind (newer gateway?)".to_owned(),
                };
                log_done(&mut line, started, Some(&reason));
            }
        }
    }
    Ok(())
}

fn log_done<'a>(line: &mut LogLine<'a>, started: u64, reason: Option<&'a str>) {
    #[expect(clippy::cast_precision_loss, reason = "durations are small")]
    let duration = (Date::now().as_millis() - started) as f64;
    line.duration_ms = Some(duration);
    line.reason = reason;
    worker::console_log!("{}", line.to_json());
}
