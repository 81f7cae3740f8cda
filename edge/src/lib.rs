//! # bugbot edge
//!
//! The wasm-side plumbing both Workers repeat, kept once: reading bindings, answering JSON, reading
//! a request body with a limit, and printing the one-JSON-line log record. Everything here runs
//! on every request, so each function crosses the wasm/JavaScript boundary as few times as it can
//! (see `docs/GATEWAY_FLOOR.md` for what that saves).
//!
//! # Layout
//! - [`vars`] — [`binding`] and [`Vars`]: a `[vars]` entry or a secret, empty counting as unset.
//! - [`respond`] — JSON responses and `{"error": …}` bodies.
//! - [`body`] — [`read_limited`]: a request body, refused past a byte limit without buffering the rest.
//! - [`fetch`] — outbound `fetch` and Durable Object calls whose bodies are read in one `arrayBuffer()`.
//! - [`log`] — [`emit`]: one [`LogLine`](bugbot_shared::log::LogLine) on the console, at or above a level.
//! - [`queue`] — [`queue::send_texts`]: encoded jobs onto a queue binding in one call.
//! - [`webcrypto`] — Ed25519 and HMAC-SHA256 checks through the runtime's WebCrypto, keys imported once.

pub mod body;
pub mod fetch;
pub mod log;
pub mod queue;
pub mod respond;
pub mod vars;
pub mod webcrypto;

pub use body::{BodyError, read_limited};
pub use log::emit;
pub use respond::{error_json, json, json_response};
pub use vars::{Vars, binding};

/// A request id when the platform gives none (`cf-ray` is absent locally): 14 hex digits.
pub fn random_id() -> String {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "random bits in [0, 2^53)")]
    let bits = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    format!("{bits:014x}")
}
