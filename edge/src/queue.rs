//! Sending already-encoded jobs to a queue binding, straight through its JavaScript API: one
//! `send(text, {contentType: "text"})` for one job, one `sendBatch` for several. (`worker::Queue`'s
//! `send_raw_batch` runs `serde_wasm_bindgen` over the options of the batch and of every message.)

use std::cell::OnceCell;

use wasm_bindgen::prelude::*;
use worker::Env;
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// A queue producer binding.
    type QueueBinding;
    #[wasm_bindgen(method, catch)]
    fn send(this: &QueueBinding, body: &str, options: &JsValue) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(method, catch, js_name = sendBatch)]
    fn send_batch(this: &QueueBinding, messages: &js_sys::Array) -> Result<js_sys::Promise, JsValue>;
}

thread_local! {
    /// `{contentType: "text"}`, made once per isolate (the runtime only reads it).
    static TEXT: OnceCell<JsValue> = const { OnceCell::new() };
}

fn text_options() -> JsValue {
    TEXT.with(|cell| {
        cell.get_or_init(|| {
            let options = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&options, &"contentType".into(), &"text".into());
            options.into()
        })
        .clone()
    })
}

/// Why jobs were not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// No queue is bound under this name.
    NoBinding(String),
    /// The runtime refused the send; its reason.
    Refused(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoBinding(binding) => write!(f, "no queue binding {binding}"),
            Self::Refused(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for SendError {}

/// Sends `texts` (JSON jobs) as text messages to the queue bound as `binding`, in one call. Nothing to
/// send is a success.
pub async fn send_texts(env: &Env, binding: &str, texts: &[String]) -> Result<(), SendError> {
    if texts.is_empty() {
        return Ok(());
    }
    let queue = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(binding))
        .ok()
        .filter(JsValue::is_object)
        .ok_or_else(|| SendError::NoBinding(binding.to_owned()))?
        .unchecked_into::<QueueBinding>();
    let promise = if let [text] = texts {
        queue.send(text, &text_options())
    } else {
        let messages: js_sys::Array = texts
            .iter()
            .map(|text| {
                let message = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&message, &"body".into(), &JsValue::from_str(text));
                let _ = js_sys::Reflect::set(&message, &"contentType".into(), &"text".into());
                JsValue::from(message)
            })
            .collect();
        queue.send_batch(&messages)
    };
    JsFuture::from(promise.map_err(refusal)?).await.map(drop).map_err(refusal)
}

/// The error a `send` or `sendBatch` threw or rejected with, as a [`SendError::Refused`].
pub fn refusal(error: JsValue) -> SendError {
    SendError::Refused(
        error
            .as_string()
            .or_else(|| error.dyn_into::<js_sys::Error>().ok().map(|e| String::from(e.message())))
            .unwrap_or_else(|| "the send was refused".to_owned()),
    )
}
