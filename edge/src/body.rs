//! Reading a request body with a limit. A declared `Content-Length` over the limit is refused before
//! anything is read; a body without one (`Transfer-Encoding: chunked`) is read chunk by chunk and
//! refused as soon as it passes the limit, so a sender cannot make the Worker buffer more than
//! `limit` bytes plus one chunk. (`Request::bytes` reads the whole body first, however long.) A body
//! with a declared length within the limit is read in one `arrayBuffer()` call, and checked again.

use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{ReadableStreamDefaultReader, Request};

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Over `limit` bytes, declared or counted.
    TooLarge { limit: usize },
    /// The stream failed (the client went away).
    Unreadable,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "body is larger than {limit} bytes"),
            Self::Unreadable => f.write_str("could not read body"),
        }
    }
}

impl std::error::Error for BodyError {}

/// The body of `req`, at most `limit` bytes. `declared` is the request's `Content-Length`, if any.
pub async fn read_limited(req: &Request, declared: Option<usize>, limit: usize) -> Result<Vec<u8>, BodyError> {
    if declared.is_some_and(|l| l > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    if declared.is_some() {
        // The runtime holds a body with a `Content-Length` to exactly that length (HTTP framing), and
        // it is within the limit: one call reads it all, as a JavaScript Worker would.
        let promise = req.array_buffer().map_err(|_| BodyError::Unreadable)?;
        let buffer = JsFuture::from(promise).await.map_err(|_| BodyError::Unreadable)?;
        let bytes = js_sys::Uint8Array::new(&buffer);
        if bytes.length() as usize > limit {
            return Err(BodyError::TooLarge { limit });
        }
        return Ok(bytes.to_vec());
    }
    let Some(stream) = req.body() else { return Ok(Vec::new()) };
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|_| BodyError::Unreadable)?;
        if js_sys::Reflect::get(&chunk, &JsValue::from_str("done")).is_ok_and(|d| d.is_truthy()) {
            return Ok(body);
        }
        let Ok(value) = js_sys::Reflect::get(&chunk, &JsValue::from_str("value")) else {
            return Err(BodyError::Unreadable);
        };
        let bytes: js_sys::Uint8Array = value.unchecked_into();
        let len = bytes.length() as usize;
        if body.len() + len > limit {
            // Stop the sender here: nothing past the limit is read.
            let _ = reader.cancel();
            return Err(BodyError::TooLarge { limit });
        }
        let start = body.len();
        body.resize(start + len, 0);
        bytes.copy_to(&mut body[start..]);
    }
}
