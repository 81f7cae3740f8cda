//! One delivery to an ingress route, as a state machine that never awaits: it is told the body, then
//! WebCrypto's answer, then how the queue send went, and says at each step what to do next
//! ([`Next`]). Two drivers make the awaits in between, with the same checks in the same order:
//!
//! - `gateway/entry.mjs`, for a body with a `Content-Length` within the limit (every sender bugbot
//!   serves in practice): it reads the body, calls `crypto.subtle.verify` and sends the jobs itself,
//!   between calls to synchronous exports (`fetchNow`, which [`begin`]s it, then
//!   [`Delivery::received`], [`Delivery::verified`], [`Delivery::sent`], ...), so the request pays for
//!   no Rust future;
//! - the `async` export `fetch` (`receive` in `lib.rs`), for everything else: a chunked body read
//!   with the limit, and a missing queue binding.
//!
//! `docs/GATEWAY_FLOOR.md` ("the awaits in the entry module") has the figures.

use std::rc::Rc;

use bugbot_edge::queue::SendError;
use bugbot_shared::ingress::{self, IngressError, IngressRequest, Route};
use bugbot_shared::log::Level;
use wasm_bindgen::prelude::*;
use worker::web_sys;

use crate::config::Config;
use crate::signature::{self, Plan, Verification};
use crate::{Handled, HeaderView};

/// What the driver does next.
#[derive(Debug)]
pub enum Next {
    /// Answer with this (the delivery is over).
    Answer(Handled),
    /// Ask WebCrypto (the call [`Delivery::verify`] makes), then call [`Delivery::verified`].
    Verify,
    /// Send these jobs to the queue, then call [`Delivery::sent`].
    Send(Vec<String>),
}

/// A delivery in progress.
#[derive(Debug)]
#[wasm_bindgen]
pub struct Delivery {
    cfg: Rc<Config>,
    route: Route,
    started: f64,
    request_id: String,
    headers: HeaderView,
    body: Vec<u8>,
    verification: Option<Verification>,
    /// The reply once the ingress accepted: status, body, and the log line's reason.
    reply: Option<(u16, String, Option<String>)>,
}

impl Delivery {
    pub fn new(cfg: Rc<Config>, route: Route, started: f64, request_id: String, headers: HeaderView) -> Self {
        Self { cfg, route, started, request_id, headers, body: Vec::new(), verification: None, reply: None }
    }

    /// The body (or why it could not be read).
    pub fn received(&mut self, body: Result<Vec<u8>, IngressError>) -> Next {
        let limit = self.cfg.ingress.max_body_bytes;
        match body {
            Err(e) => Next::Answer(refused(&e)),
            Ok(body) if body.len() > limit => Next::Answer(refused(&IngressError::PayloadTooLarge { limit })),
            Ok(body) => {
                self.body = body;
                match signature::plan(&self.cfg.ingress, &self.route, &self.headers, &self.body) {
                    Plan::Decided(verdict, _) => self.decide(verdict),
                    Plan::Verify(verification) => {
                        self.verification = Some(verification);
                        Next::Verify
                    }
                }
            }
        }
    }

    /// The body limit, and the `Content-Length` the sender declared (if it is a number), for the
    /// driver that reads the body.
    pub fn body_limits(&self) -> (usize, Option<usize>) {
        (self.cfg.ingress.max_body_bytes, declared_length(&self.headers))
    }

    /// Makes that call from the wasm.
    pub async fn verify(&self) -> Option<bool> {
        self.verification.as_ref()?.run(&self.body).await
    }

    /// WebCrypto's answer (`None`: it had none, and the ingress verifies in wasm).
    pub fn verified(&mut self, holds: Option<bool>) -> Next {
        let verdict = self.verification.take().and_then(|v| v.settle(holds).0);
        self.decide(verdict)
    }

    fn decide(&mut self, verdict: Option<Result<(), bugbot_shared::verify::SignatureError>>) -> Next {
        let request = IngressRequest {
            headers: &self.headers,
            body: &self.body,
            now_ms: crate::now_ms(),
            request_id: &self.request_id,
        };
        let accepted = match ingress::handle_checked(&self.cfg.ingress, &self.route, request, verdict) {
            Ok(accepted) => accepted,
            Err(e) => return Next::Answer(refused(&e)),
        };
        // Info lines (an accepted request) are printed only at LOG_LEVEL=info or below.
        let reason = if self.cfg.log_level <= Level::Info {
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
        if accepted.messages.is_empty() {
            return Next::Answer((bugbot_edge::json_response(accepted.status, &accepted.body), reason));
        }
        self.reply = Some((accepted.status, accepted.body, reason));
        Next::Send(accepted.messages)
    }

    /// How the send after [`Next::Send`] went: the reply, or the only server error the gateway gives
    /// (the sender retries, and nothing is lost).
    pub fn sent(&mut self, result: Result<(), SendError>) -> Handled {
        match (result, self.reply.take()) {
            (Ok(()), Some((status, body, reason))) => (bugbot_edge::json_response(status, &body), reason),
            (Err(e), _) => {
                let body = bugbot_edge::respond::error_body("queue unavailable, retry later");
                (bugbot_edge::json_response(503, &body), Some(format!("queue unavailable: {e}")))
            }
            // A driver that reports a send it was not asked for.
            (Ok(()), None) => {
                let body = bugbot_edge::respond::error_body("internal error");
                (bugbot_edge::json_response(500, &body), Some("sent without jobs".to_owned()))
            }
        }
    }

    /// The response, with the request's log line printed.
    pub fn answer(&self, handled: Handled) -> web_sys::Response {
        crate::logged(&self.cfg, &self.headers, self.started, self.route.name(), handled, Some(&self.request_id))
    }
}

impl Delivery {
    /// [`Next`] as the entry module reads it.
    fn next_js(&mut self, next: Next) -> JsValue {
        match next {
            Next::Answer(handled) => self.answer(handled).into(),
            Next::Send(texts) => texts.into_iter().map(JsValue::from).collect::<js_sys::Array>().into(),
            Next::Verify => {
                let Some(v) = &self.verification else { return JsValue::UNDEFINED };
                let check = js_sys::Object::new();
                let set = |name: &str, value: &JsValue| js_sys::Reflect::set(&check, &name.into(), value);
                let _ = set("algorithm", &v.key.algorithm);
                let _ = set("key", &v.key.key);
                let _ = set("signature", &js_sys::Uint8Array::from(v.signature()));
                if let Some(message) = v.message() {
                    let _ = set("data", &js_sys::Uint8Array::from(message));
                }
                check.into()
            }
        }
    }
}

/// The request's `Content-Length`, when it is a number.
fn declared_length(headers: &HeaderView) -> Option<usize> {
    ingress::Headers::get(headers, "content-length")?.parse().ok()
}

/// The answer to a refused request: its status and `{"error": …}`, with `Allow` on a 405 (RFC 9110
/// §15.5.6 requires it).
pub fn refused(e: &IngressError) -> Handled {
    let response = bugbot_edge::json_response(e.status(), &e.body());
    if let IngressError::MethodNotAllowed { allow } = e {
        let _ = response.headers().set("allow", allow);
    }
    (response, Some(e.to_string()))
}

/// A delivery to `route` the entry module can drive: a `Content-Length` within the limit (one
/// `arrayBuffer()` reads it, as [`bugbot_edge::read_limited`] would), and a queue to send to. `None`
/// for anything else, which goes to the `async` `fetch`.
pub fn begin(req: &web_sys::Request, cfg: Rc<Config>, route: Route, started: f64) -> Option<Delivery> {
    if !cfg.has_jobs_queue {
        return None;
    }
    let headers = HeaderView(req.headers());
    let declared = declared_length(&headers)?;
    if declared > cfg.ingress.max_body_bytes {
        return None;
    }
    console_error_panic_hook::set_once();
    let request_id = crate::request_id(&headers);
    Some(Delivery::new(cfg, route, started, request_id, headers))
}

/// The entry module's side. Each method answers a `Response` when the delivery is over (its log line
/// printed), and otherwise what to do next.
#[wasm_bindgen]
impl Delivery {
    /// The body as read: a `Response`, or `{algorithm, key, signature, data}` for
    /// `crypto.subtle.verify(algorithm, await key, signature, data ?? body)`, or the jobs to send
    /// (an array of strings).
    #[wasm_bindgen(js_name = received)]
    pub fn received_js(&mut self, body: Vec<u8>) -> JsValue {
        let next = self.received(Ok(body));
        self.next_js(next)
    }

    /// The body could not be read (the client went away).
    pub fn unreadable(&mut self) -> web_sys::Response {
        let handled = refused(&IngressError::BadRequest("could not read body".into()));
        self.answer(handled)
    }

    /// WebCrypto's answer: `true`, `false`, or `undefined` when the call failed. A `Response` or the
    /// jobs to send.
    #[wasm_bindgen(js_name = verified)]
    pub fn verified_js(&mut self, holds: Option<bool>) -> JsValue {
        let next = self.verified(holds);
        self.next_js(next)
    }

    /// The jobs were sent.
    #[wasm_bindgen(js_name = sent)]
    pub fn sent_js(&mut self) -> web_sys::Response {
        let handled = self.sent(Ok(()));
        self.answer(handled)
    }

    /// The send failed with `error`.
    pub fn unsent(&mut self, error: JsValue) -> web_sys::Response {
        let handled = self.sent(Err(bugbot_edge::queue::refusal(error)));
        self.answer(handled)
    }
}
