//! # bugbot gateway
//!
//! The public Worker. It authenticates each delivery on its raw bytes, turns it into typed jobs
//! and answers at once; everything slow happens in the consumer. The decision itself is
//! [`bugbot_shared::ingress`] (pure, natively tested); this file only moves bytes.
//!
//! # Layout
//! - `fetch` — the entrypoint: read the body, call `ingress`, enqueue, reply, log one line.
//! - [`config`] — bindings read once per isolate into an [`IngressConfig`](bugbot_shared::ingress::IngressConfig).
//! - [`admin`] — `/health`, and `/admin/*` forwarded to the consumer over a service binding.

mod admin;
mod config;

use bugbot_shared::ingress::{self, IngressError, IngressRequest, Route};
use bugbot_shared::log::{Level, LogLine};
use worker::{Context, Date, Env, Request, Response, Result, event, wasm_bindgen::JsValue};

/// The queue every job goes to.
pub const JOBS_QUEUE: &str = "JOBS";
/// The consumer Worker, which serves `/admin/*`.
pub const CONSUMER_SERVICE: &str = "CONSUMER";

struct HeaderView<'a>(&'a worker::Headers);

impl ingress::Headers for HeaderView<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).ok().flatten()
    }
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let started = Date::now().as_millis();
    let cfg = config::load(&env);
    let request_id = req.headers().get("cf-ray").ok().flatten().unwrap_or_else(config::random_id);
    let path = req.path();
    let method = req.method().to_string();

    let mut line = LogLine::new(Level::Info, "gateway", "request");
    line.request_id = Some(&request_id);
    let result = match ingress::route(&method, &path) {
        Err(e) => Err(e),
        Ok(Route::Health) => Ok(admin::health(&env)),
        Ok(Route::Admin { .. }) => admin::forward(req.clone()?, &env).await,
        Ok(route) => receive(&mut req, &env, &cfg, &route, &request_id).await,
    };
    let route = ingress::route(&method, &path).map_or("unknown", |r| r.name());
    let (response, reason) = match result {
        Ok(ok) => ok,
        Err(e) => (json_response(e.status(), &e.body()), Some(e.to_string())),
    };
    line.route = Some(route);
    line.status = Some(response.status_code());
    line.reason = reason.as_deref();
    #[expect(clippy::cast_precision_loss, reason = "durations are small")]
    let duration = (Date::now().as_millis() - started) as f64;
    line.duration_ms = Some(duration);
    line.level = match response.status_code() {
        500.. => Level::Error,
        400.. => Level::Warn,
        _ => Level::Info,
    };
    if line.level >= cfg.log_level {
        worker::console_log!("{}", line.to_json());
    }
    Ok(response)
}

type Handled = (Response, Option<String>);

async fn receive(
    req: &mut Request,
    env: &Env,
    cfg: &config::Config,
    route: &Route,
    request_id: &str,
) -> std::result::Result<Handled, IngressError> {
    let limit = cfg.ingress.max_body_bytes;
    let declared = req.headers().get("content-length").ok().flatten().and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > limit) {
        return Err(IngressError::PayloadTooLarge { limit });
    }
    let body = req.bytes().await.map_err(|_| IngressError::BadRequest("could not read body".into()))?;
    let accepted = ingress::handle(
        &cfg.ingress,
        route,
        IngressRequest {
            headers: &HeaderView(req.headers()),
            body: &body,
            now_ms: Date::now().as_millis(),
            request_id,
        },
    )?;
    if let Err(e) = enqueue_texts(env, &accepted.messages).await {
        // The only server error the gateway gives: the sender retries and nothing is lost.
        let reason = format!("queue unavailable: {e}");
        return Ok((json_response(503, r#"{"error":"queue unavailable, retry later"}"#), Some(reason)));
    }
    let note = accepted.note.map(str::to_owned);
    let ids: Vec<String> = accepted.jobs.iter().map(|j| j.id.to_string()).collect();
    let reason = match (note, ids.is_empty()) {
        (Some(n), _) => Some(n),
        (None, false) => Some(format!("enqueued {}", ids.join(","))),
        (None, true) => None,
    };
    Ok((json_response(accepted.status, &accepted.body), reason))
}

/// Sends already-encoded jobs (JSON text) in one batch.
pub(crate) async fn enqueue_texts(env: &Env, texts: &[String]) -> Result<()> {
    if texts.is_empty() {
        return Ok(());
    }
    let queue = env.queue(JOBS_QUEUE)?;
    let mut batch = worker::BatchMessageBuilder::new();
    for text in texts {
        batch = batch.message(
            worker::RawMessageBuilder::new(JsValue::from_str(text))
                .build_with_content_type(worker::QueueContentType::Text),
        );
    }
    queue.send_raw_batch(batch.build()).await
}

/// A JSON response with a status. Never fails: a bad header value is impossible here.
pub(crate) fn json_response(status: u16, body: &str) -> Response {
    let headers = worker::Headers::new();
    let _ = headers.set("content-type", "application/json");
    Response::builder().with_status(status).with_headers(headers).fixed(body.as_bytes().to_vec())
}
