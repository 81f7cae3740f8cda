//! # bugbot consumer
//!
//! The queue consumer Worker. Each message is one [`Job`](bugbot_shared::job::Job); it is acked only
//! after its effects are recorded, retried with a delay (honouring the services' `Retry-After`) on
//! transient failures, and moved by the queue to the dead-letter queue after `max_retries`, where
//! this Worker records it for inspection and replay.
//!
//! This file holds the three event shells (fetch, scheduled, queue) and nothing else.
//!
//! # Layout
//! - [`runtime`] — decode → dispatch → settle (the one failure → retry/ack mapping) → record → log;
//!   [`runtime::Ctx`] (what a handler gets), [`runtime::Outcome`]; dead letters.
//! - [`handlers`] — one module per job kind: [`handlers::alert`] (claim, normalize, filter,
//!   file/update, announce), [`handlers::command`] (`/bugbot` commands), [`handlers::fix`] (executor
//!   dispatch and results; [`handlers::fix::actions`] the GitHub Actions backend), [`handlers::cloudwatch`]
//!   (`CloudWatch` Logs scans, cron and `/admin/trigger-scan`), and the cron digest, the dashboard and `/admin/*`.
//! - [`clients`] — Linear, GitHub, Discord, the Sentry-compatible API and PostHog, generic over
//!   [`clients::http::HttpPort`]; [`clients::fetch`] is that port over Workers `fetch`.
//! - [`store`] — job status, issue records and dead letters in KV; [`store::objects`] the Durable
//!   Objects (`ClaimStore` exactly-once claims, `StatsStore` per-day counters, `ExecutorContainer`);
//!   [`store::memo`] what an isolate keeps between jobs.
//! - [`config`] — bindings, read once per isolate.

pub mod clients;
pub mod config;
pub mod handlers;
pub mod runtime;
pub mod store;

use bugbot_shared::log::{Level, LogLine};
use worker::wasm_bindgen::{JsValue, prelude::wasm_bindgen};
use worker::{Context, Env, Request, Response, Result, event};

pub use store::objects::claims::ClaimStore;

/// Not public: reached only through the gateway's `CONSUMER` service binding.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let config = config::load(&env);
    if req.path() == "/health" {
        return Ok(handlers::health::serve(&env, &config));
    }
    if req.path().starts_with("/admin/") {
        return handlers::admin::serve(&req, &env, &config).await;
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
        config::binding(&env, "CLOUDWATCH_SCAN_CRON").unwrap_or_else(|| handlers::cloudwatch::DEFAULT_SCAN_CRON.into());
    if event.cron() == scan_cron {
        handlers::cloudwatch::run(&env, scheduled_ms, config.log_level).await;
        return;
    }
    if let Err(e) = handlers::digest::run(&env, &config, scheduled_ms).await {
        let mut line = LogLine::new(Level::Error, "consumer", "cron");
        let reason = e.to_string();
        line.reason = Some(&reason);
        worker::console_error!("{}", line.to_json());
    }
}

/// Both queues: the jobs, and the dead letters the queue gave up on.
///
/// Exported by hand, as `#[event(queue)]` would (same name and arguments), but keeping the
/// runtime's own batch: each message's delivery count (`attempts`) is read from it, which
/// `worker::RawMessage` does not expose. A failed batch rejects, and the queue retries it.
#[wasm_bindgen(wasm_bindgen = ::worker::wasm_bindgen, wasm_bindgen_futures = ::worker::wasm_bindgen_futures, js_sys = ::worker::js_sys)]
pub async fn queue(
    batch: worker::worker_sys::MessageBatch,
    env: Env,
    _ctx: JsValue,
) -> std::result::Result<JsValue, JsValue> {
    console_error_panic_hook::set_once();
    match Box::pin(runtime::run_batch(batch, env)).await {
        Ok(()) => Ok(JsValue::UNDEFINED),
        Err(e) => {
            worker::console_error!("{e}");
            Err(JsValue::from_str(&e.to_string()))
        }
    }
}
