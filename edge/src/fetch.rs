//! Outbound calls on the runtime's own objects. worker's `Fetch` and `Stub::fetch_with_request` wrap
//! the answer in a `worker::Response`, whose `bytes()`, `text()` and `json()` read a body chunk by
//! chunk through a `ReadableStreamDefaultReader`: a promise per chunk and, at the end, `releaseLock`,
//! for which workerd builds a `TypeError` with a captured stack trace (wasm frames included) on every
//! response. Here a body is read with one `arrayBuffer()` call, as a JavaScript Worker reads it.

use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{RequestInit, Response, WorkerGlobalScope};

/// `fetch(url, init)`: the runtime builds the one `Request` (a `Request` made first, then passed
/// with an init, is copied into a second).
pub async fn fetch_url(url: &str, init: &RequestInit) -> Result<Response, JsValue> {
    let global: WorkerGlobalScope = js_sys::global().unchecked_into();
    JsFuture::from(global.fetch_with_str_and_init(url, init)).await?.dyn_into()
}

/// A Durable Object's stub as the runtime gives it (`worker::Stub::into_rpc`).
pub type ObjectStub = worker::worker_sys::DurableObject;

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A Durable Object's stub seen as what it is called for here: worker-sys binds its
    /// `fetch(request)` and `fetch(url)`, not `fetch(url, init)`.
    type ObjectFetch;

    #[wasm_bindgen(method, catch, js_name = fetch)]
    fn fetch_with_str_and_init(this: &ObjectFetch, url: &str, init: &RequestInit) -> Result<js_sys::Promise, JsValue>;
}

/// `stub.fetch(url, init)` on a Durable Object: the runtime builds the one `Request`, as
/// [`fetch_url`] has it build outbound ones.
pub async fn fetch_object(stub: &ObjectStub, url: &str, init: &RequestInit) -> Result<Response, JsValue> {
    let stub: &ObjectFetch = stub.unchecked_ref();
    JsFuture::from(stub.fetch_with_str_and_init(url, init)?).await?.dyn_into()
}

/// Why a call failed, from what the runtime threw: an `Error`'s message, or the thrown string.
pub fn js_reason(thrown: &JsValue) -> String {
    thrown
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| thrown.as_string())
        .unwrap_or_else(|| "the call failed".to_owned())
}

/// A response's whole body, in one `arrayBuffer()` call.
pub async fn body_bytes(response: &Response) -> Result<Vec<u8>, JsValue> {
    let buffer = JsFuture::from(response.array_buffer()?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// A response's headers, as (name, value) pairs (names lower case, as the runtime gives them).
pub fn header_pairs(response: &Response) -> Vec<(String, String)> {
    worker::Headers(response.headers()).entries().collect()
}
