//! # bugbot gateway
//!
//! The public Worker. It authenticates each delivery on its raw bytes, turns it into typed jobs
//! and answers at once; everything slow happens in the consumer. The decision itself is
//! [`bugbot_shared::ingress`] (pure, natively tested); this file only moves bytes.
//!
//! # Layout
//! - `fetchNow` and `fetch` — the entrypoints `gateway/entry.mjs` calls: an answer that needs no
//!   await or a [`delivery`] the entry module drives, else the `async` path for the rest.
//! - [`delivery`] — one delivery as a state machine that never awaits: the body, WebCrypto's answer
//!   and the queue send go in, the checks (`ingress`) and the reply come out, and one log line.
//! - [`signature`] — what to ask WebCrypto for a route's signature, and what its answer means.
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
mod delivery;
mod health;
mod signature;

use bugbot_edge::BodyError;
use bugbot_shared::ingress::{self, IngressError, Route};
use bugbot_shared::log::{Level, LogLine};
use wasm_bindgen::prelude::*;
use worker::{Env, Request, web_sys};

/// The queue every job goes to.
pub const JOBS_QUEUE: &str = "JOBS";
/// The consumer Worker, which serves `/admin/*` and tells `/health` its integrations.
pub const CONSUMER_SERVICE: &str = "CONSUMER";

/// The request's headers, read one at a time as a route needs them.
#[derive(Debug)]
pub struct HeaderView(web_sys::Headers);

impl ingress::Headers for HeaderView {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).ok().flatten()
    }
}

/// A response and, for the log line, why (only filled in when the line will be printed).
pub type Handled = (web_sys::Response, Option<String>);

/// The route of the runtime's request: its method, and its URL's path read from the serialized URL
/// (`ingress::url_path`: no `URL` object, no `cf`, no headers).
fn route_of(req: &web_sys::Request) -> Result<Route, IngressError> {
    ingress::route(&req.method(), ingress::url_path(&req.url()))
}

/// Everything the gateway can do without an await of its own: answers a path or a method no route
/// serves (404, 405), and `/health` when there is no consumer to ask (its body built once per
/// isolate); starts a [`delivery::Delivery`] for an ingress route whose body `gateway/entry.mjs` can
/// read in one call, and which it then drives. Anything else is `undefined`, and goes to [`fetch`].
/// An `async` export costs a promise, a task and two closures per await on every request
/// (`docs/GATEWAY_FLOOR.md`); none of these pay for one.
#[wasm_bindgen(js_name = fetchNow)]
pub fn fetch_now(req: &web_sys::Request, env: &Env) -> JsValue {
    let started = js_sys::Date::now();
    let cfg = config::load(env);
    let route = route_of(req);
    let (handled, route_name) = match route {
        Err(e) => (delivery::refused(&e), "unknown"),
        Ok(Route::Health) => {
            let Some(body) = health::alone(&cfg) else { return JsValue::UNDEFINED };
            let reason =
                (cfg.log_level <= Level::Info).then(|| format!("consumer unreachable: {}", health::NO_CONSUMER));
            ((bugbot_edge::json_response(200, &body), reason), "health")
        }
        Ok(Route::Admin { .. }) => return JsValue::UNDEFINED,
        Ok(route) => return delivery::begin(req, cfg, route, started).map_or(JsValue::UNDEFINED, JsValue::from),
    };
    logged(&cfg, &HeaderView(req.headers()), started, route_name, handled, None).into()
}

/// The Worker's `fetch`, exported as it is (not through `#[event(fetch)]`): the runtime's `Request` in,
/// the runtime's `Response` out, with no `worker::Response` and its `Headers` and `ResponseInit` in
/// between. `gateway/entry.mjs` calls it, when [`fetch_now`] had nothing to give, without worker-build's
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
    let result = match route {
        Err(e) => Err(e),
        Ok(Route::Health) => Ok(health::serve(&env, &cfg).await),
        Ok(Route::Admin { .. }) => admin::forward(Request::from(req), &env).await,
        Ok(route) => {
            let id = request_id(&headers);
            let mut delivery = delivery::Delivery::new(cfg, route, started, id, headers);
            let handled = receive(&req, &mut delivery, &env).await;
            return Ok(delivery.answer(handled));
        }
    };
    let handled = match result {
        Ok(ok) => ok,
        Err(e) => delivery::refused(&e),
    };
    Ok(logged(&cfg, &headers, started, route_name, handled, None))
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
    request_id: Option<&str>,
) -> web_sys::Response {
    let status = response.status();
    let level = match status {
        500.. => Level::Error,
        400.. => Level::Warn,
        _ => Level::Info,
    };
    if level >= cfg.log_level {
        let mut line = LogLine::new(level, "gateway", "request");
        let request_id = request_id.map_or_else(|| self::request_id(headers), str::to_owned);
        line.request_id = Some(&request_id);
        line.route = Some(route_name);
        line.status = Some(status);
        line.reason = reason.as_deref();
        line.duration_ms = Some(js_sys::Date::now() - started);
        bugbot_edge::emit(&line, cfg.log_level);
    }
    response
}

/// Drives `delivery` from the wasm: the body read with the limit (chunked or not), WebCrypto's
/// answer, and the queue send, each awaited here.
async fn receive(req: &web_sys::Request, delivery: &mut delivery::Delivery, env: &Env) -> Handled {
    let (limit, declared) = delivery.body_limits();
    let body = bugbot_edge::read_limited(req, declared, limit).await.map_err(|e| match e {
        BodyError::TooLarge { limit } => IngressError::PayloadTooLarge { limit },
        BodyError::Unreadable => IngressError::BadRequest("could not read body".into()),
    });
    let mut next = delivery.received(body);
    loop {
        next = match next {
            delivery::Next::Answer(handled) => return handled,
            delivery::Next::Verify => {
                let holds = delivery.verify().await;
                delivery.verified(holds)
            }
            delivery::Next::Send(texts) => {
                let sent = bugbot_edge::queue::send_texts(env, JOBS_QUEUE, &texts).await;
                return delivery.sent(sent);
            }
        };
    }
}

/// Unix milliseconds (`Date.now()`, one call; no `Date` object).
fn now_ms() -> u64 {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "milliseconds since 1970 fit")]
    let ms = js_sys::Date::now() as u64;
    ms
}
