//! JSON responses. The body crosses to JavaScript once, as bytes, with one header set.

use std::cell::RefCell;

use wasm_bindgen::{JsCast, JsValue};
use worker::web_sys;
use worker::{Headers, Response};

/// A JSON response with a status. Never fails: the header value is a constant.
pub fn json(status: u16, body: &str) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    Response::builder().with_status(status).with_headers(headers).fixed(body.as_bytes().to_vec())
}

/// `{"error": reason}` with a status: every client error either Worker gives.
pub fn error_json(status: u16, reason: &str) -> Response {
    json(status, &error_body(reason))
}

/// The body of [`error_json`].
pub fn error_body(reason: &str) -> String {
    format!("{{\"error\":{}}}", serde_json::to_string(reason).expect("a string serializes"))
}

thread_local! {
    /// One `ResponseInit` per status, built once per isolate: the `Response` constructor only reads it.
    static INITS: RefCell<Vec<(u16, web_sys::ResponseInit)>> = const { RefCell::new(Vec::new()) };
}

/// [`json`] as the runtime's own `Response`, for a Worker that answers from a raw `#[wasm_bindgen]`
/// export: the body is copied out of wasm memory once, and the status and `content-type` come from an
/// init object made once per status per isolate (no `Headers` object, no `worker::Response`).
pub fn json_response(status: u16, body: &str) -> web_sys::Response {
    let bytes = js_sys::Uint8Array::from(body.as_bytes());
    INITS.with(|inits| {
        let mut inits = inits.borrow_mut();
        let at = if let Some(at) = inits.iter().position(|(s, _)| *s == status) {
            at
        } else {
            let init = web_sys::ResponseInit::new();
            init.set_status(status);
            let headers = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&headers, &"content-type".into(), &"application/json".into());
            init.set_headers(&headers);
            inits.push((status, init));
            inits.len() - 1
        };
        // Only a status outside 200–599 throws, and no caller passes one.
        web_sys::Response::new_with_opt_buffer_source_and_init(Some(&bytes), &inits[at].1)
            .unwrap_or_else(|_| JsValue::UNDEFINED.unchecked_into())
    })
}
