//! # bugbot gateway
//!
//! The public Worker. It authenticates each delivery on its raw bytes, turns it into typed jobs
//! and answers at once; everything slow happens in the consumer. The decision itself is
//! [`bugbot_shared::ingress`] (pure, natively tested); this file only moves bytes.
//!
//! # Layout
//! - `fetch` — the entrypoint: read the body (with a limit), call `ingress`, enqueue, reply, log one line.
//! - [`config`] — bindings read once per isolate into an [`IngressConfig`](bugbot_shared::ingress::IngressConfig).
//! - [`health`] — `/health`: the gateway's integrations, and the consumer's, asked over the service binding.
//! - [`admin`] — `/admin/*`, forwarded to the consumer over the service binding.
//!
//! Every request pays for what runs here, so it does only what its route needs: the configuration
//! is read once per isolate, the body is read once (and never past `MAX_BODY_BYTES`), each job is
//! serialized once, and the log line's reason is built only when the line will be printed
//! (`docs/GATEWAY_FLOOR.md`).

mod admin;
mod config;
mod health;
mod signature;

use bugbot_edge::BodyError;
use bugbot_shared::ingress::{self, IngressError, IngressRequest, Route};
use bugbot_shared::log::{Level, LogLine};
use wasm_bindgen::prelude::*;
use worker::{Env, Request, web_sys};

/// The queue every job goes to.
pub const JOBS_QUEUE: &str = "JOBS";
/// The consumer Worker, which serves `/admin/*` and tells `/health` its integrations.
pub const CONSUMER_SERVICE: &str = "CONSUMER";

struct HeaderView(web_sys::Headers);

impl ingress::Headers for HeaderView {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).ok().flatten()
    }
}

/// A response and, for the log line, why (only filled in when the line will be printed).
type Handled = (web_sys::Response, Option<String>);

/// The route of the runtime's request: its method, and its URL's path read from the serialized URL
/// (`ingress::url_path`: no `URL` object, no `cf`, no headers).
fn route_of(req: &web_sys::Request) -> Result<Route, IngressError> {
    ingress::route(&req.method(), ingress::url_path(&req.url()))
}

/// Answers, without an await, what needs none: a path or a method no route serves, and `/health`
/// when there is no consumer to ask (its body built once per isolate). Everything else is
/// `undefined`, and `gateway/entry.mjs` hands it to [`fetch`]. An `async` export costs a promise and
/// a task on every request (`docs/GATEWAY_FLOOR.md`); these answers need neither.
#[wasm_bindgen(js_name = fetchNow)]
pub fn fetch_now(req: &web_sys::Request, env: &Env) -> Option<web_sys::Response> {
    let started = js_sys::Date::now();
    let cfg = config::load(env);
    let route = route_of(req);
    let (handled, route_name) = match &route {
        Err(e) => ((bugbot_edge::json_response(e.status(), &e.body()), Some(e.to_string())), "unknown"),
        Ok(Route::Health) => {
            let body = health::alone(&cfg)?;
            let reason =
                (cfg.log_level <= Level::Info).then(|| format!("consumer unreachable: {}", health::NO_CONSUMER));
            ((bugbot_edge::json_response(200, &body), reason), "health")
        }
        Ok(_) => return None,
    };
    Some(logged(&cfg, &HeaderView(req.headers()), started, route_name, handled, None))
}

/// The Worker's `fetch`, exported as it is (not through `#[event(fetch)]`): the runtime's `Request` in,
/// the runtime's `Response` out, with no `worker::Response` and its `Headers` and `ResponseInit` in
/// between. `gateway/entry.mjs` calls it, when [`fetch_now`] did not answer, without worker-build's
/// per-request `Proxy` wrappers. A panic still aborts the instance, and wasm-bindgen's abort handler
/// (worker's `on_abort`) re-instantiates it on the next call (`docs/GATEWAY_FLOOR.md`).
#[wasm_bindgen]
pub async fn fetch(req: web_sys::Request, env: Env, _ctx: JsValue) -> Result<web_sys::Response, JsValue> {
    console_error_panic_hook::set_once();
    let started = js_sys::Date::now();
    let cfg = config::load(&env);
    let route = route_of(&req);
    let route_name = route.as_ref().map_or("unknown", Route::name);
    let headers = HeaderView(req.headers());
    let (result, request_id) = match route {
        Err(e) => (Err(e), None),
        Ok(Route::Health) => (Ok(health::serve(&env, &cfg).await), None),
        Ok(Route::Admin { .. }) => (admin::forward(Request::from(req), &env).await, None),
        Ok(route) => {
            let id = request_id(&headers);
            (receive(&req, &headers, &env, &cfg, &route, &id).await, Some(id))
        }
    };
    let handled = match result {
        Ok(ok) => ok,
        Err(e) => (bugbot_edge::json_response(e.status(), &e.body()), Some(e.to_string())),
    };
    Ok(logged(&cfg, &headers, started, route_name, handled, request_id))
}

/// The platform's request id (`cf-ray`), or a random one where there is none (locally).
fn request_id(headers: &HeaderView) -> String {
    ingress::Headers::get(headers, "cf-ray").unwrap_or_else(bugbot_edge::random_id)
}

/// Prints the request's log line when its level is at or above `LOG_LEVEL`, and returns the response.
fn logged(
    cfg: &config::Config,
    headers: &HeaderView,
    started: f64,
    route_name: &str,
    (response, reason): Handled,
    request_id: Option<String>,
) -> web_sys::Response {
    let status = response.status();
    let level = match status {
        500.. => Level::Error,
        400.. => Level::Warn,
        _ => Level::Info,
    };
    if level >= cfg.log_level {
        let mut line = LogLine::new(level, "gateway", "request");
        let request_id = request_id.unwrap_or_else(|| self::request_id(headers));
        line.request_id = Some(&request_id);
        line.route = Some(route_name);
        line.status = Some(status);
        line.reason = reason.as_deref();
        line.duration_ms = Some(js_sys::Date::now() - started);
        bugbot_edge::emit(&line, cfg.log_level);
    }
    response
}

async fn receive(
    req: &web_sys::Request,
    headers: &HeaderView,
    env: &Env,
    cfg: &config::Config,
    route: &Route,
    request_id: &str,
) -> std::result::Result<Handled, IngressError> {
    let limit = cfg.ingress.max_body_bytes;
    let declared = ingress::Headers::get(headers, "content-length").and_then(|l| l.parse::<usize>().ok());
    let body = bugbot_edge::read_limited(req, declared, limit).await.map_err(|e| match e {
        BodyError::TooLarge { limit } => IngressError::PayloadTooLarge { limit },
        BodyError::Unreadable => IngressError::BadRequest("could not read body".into()),
    })?;
    // The signature goes to WebCrypto where it can (`signature`); the ingress still makes every other
    // check, in the same order, and verifies the signature itself when there is no verdict.
    let verdict = match route {
        Route::DiscordInteractions => match (
            &cfg.ingress.discord_key,
            ingress::Headers::get(headers, "x-signature-ed25519"),
            ingress::Headers::get(headers, "x-signature-timestamp"),
        ) {
            (Some(key), Some(sig), Some(timestamp)) => signature::verdict(key, &timestamp, &body, &sig).await.0,
            _ => None,
        },
        Route::SentryWebhook => match (&cfg.ingress.sentry_client_secret, ingress::sentry_signature(headers)) {
            (Some(secret), Some(sig)) => signature::sentry_verdict(secret, &body, &sig).await,
            _ => None,
        },
        _ => None,
    };
    let accepted = ingress::handle_checked(
        &cfg.ingress,
        route,
        IngressRequest { headers, body: &body, now_ms: now_ms(), request_id },
        verdict,
    )?;
    if let Err(e) = bugbot_edge::queue::send_texts(env, JOBS_QUEUE, &accepted.messages).await {
        // The only server error the gateway gives: the sender retries and nothing is lost.
        let reason = format!("queue unavailable: {e}");
        let body = bugbot_edge::respond::error_body("queue unavailable, retry later");
        return Ok((bugbot_edge::json_response(503, &body), Some(reason)));
    }
    // Info lines (an accepted request) are printed only at LOG_LEVEL=info or below.
    let reason = if cfg.log_level <= Level::Info {
        match accepted.note {
            Some(note) => Some(note.to_owned()),
            None if accepted.jobs.is_empty() => None,
            None => {
                let ids: Vec<&str> = accepted.jobs.iter().map(|j| j.id.as_str()).collect();
                Some(format!("enqueued {}", ids.join(",")))
            }
        }
    } else {
        None
    };
    Ok((bugbot_edge::json_response(accepted.status, &accepted.body), reason))
}

/// Unix milliseconds (`Date.now()`, one call; no `Date` object).
fn now_ms() -> u64 {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "milliseconds since 1970 fit")]
    let ms = js_sys::Date::now() as u64;
    ms
}
