//! Signatures checked through the runtime's WebCrypto (native code) rather than in wasm, with the
//! same verdicts; where WebCrypto cannot answer, the ingress verifies in wasm as before.
//!
//! A Sentry HMAC-SHA256 is deterministic: WebCrypto's answer is the one the `hmac` crate gives.
//!
//! A Discord signature gets `verify_strict`'s verdict with most of its cost in WebCrypto:
//! [`DiscordKey::precheck`] makes the checks `verify_strict` adds to the Ed25519 equation that come
//! first (a weak key, a non-canonical `S`), the runtime's `crypto.subtle.verify` (BoringSSL, native)
//! checks the equation, and `Prechecked::settle` the last one (an `R` of small order). Where WebCrypto cannot answer, the
//! ingress verifies with ed25519-dalek's `verify_strict` as before. `tests/tests/gateway_ed25519.rs`
//! runs every vector of `fixtures/ed25519` through [`probe`] inside workerd and compares
//! (`docs/GATEWAY_FLOOR.md`).

use bugbot_shared::verify::{self, DiscordKey, SignatureError};
use wasm_bindgen::prelude::*;

/// Which check gave the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Refused by the strict checks before any curve arithmetic in WebCrypto.
    Precheck,
    /// WebCrypto's answer on the equation.
    WebCrypto,
    /// No answer here: the ingress runs `verify_strict`.
    Fallback,
}

/// The verdict on `signature_hex` over `timestamp || body`, or `None` (with [`Via::Fallback`]) for
/// the ingress to verify itself.
pub async fn verdict(
    key: &DiscordKey,
    timestamp: &str,
    body: &[u8],
    signature_hex: &str,
) -> (Option<Result<(), SignatureError>>, Via) {
    let prechecked = match key.precheck(timestamp, body, signature_hex) {
        Ok(p) => p,
        Err(e) => return (Some(Err(e)), Via::Precheck),
    };
    match bugbot_edge::webcrypto::ed25519_verify(key.public_bytes(), prechecked.signature(), prechecked.message()).await
    {
        Some(holds) => (Some(prechecked.settle(holds)), Via::WebCrypto),
        None => (None, Via::Fallback),
    }
}

/// The verdict on a Sentry `signature_hex` (HMAC-SHA256 of `body` under `secret`), or `None` for the
/// ingress to check itself (a malformed header included: it answers that).
pub async fn sentry_verdict(secret: &str, body: &[u8], signature_hex: &str) -> Option<Result<(), SignatureError>> {
    let mac = verify::hmac_sha256_hex_decode(signature_hex).ok()?;
    let matches = bugbot_edge::webcrypto::hmac_sha256_verify(secret.as_bytes(), &mac, body).await?;
    Some(if matches { Ok(()) } else { Err(SignatureError::Mismatch) })
}

/// For the parity test only (no route reaches it; `gateway/entry.mjs` exports `fetch` alone): the
/// gateway's verdict on one vector — `public_key_hex` parsed as `DISCORD_PUBLIC_KEY` is, `message`
/// as the body under an empty timestamp — as `"<valid|invalid> <via>"`, via `key` (the key itself is
/// refused), `precheck`, `webcrypto` or `fallback` (then `verify_strict` decided).
#[wasm_bindgen(js_name = ed25519Probe)]
pub async fn probe(public_key_hex: String, message: Vec<u8>, signature_hex: String) -> String {
    let Ok(key) = DiscordKey::from_hex(&public_key_hex) else { return "invalid key".into() };
    let (verdict, via) = verdict(&key, "", &message, &signature_hex).await;
    let valid = verdict.unwrap_or_else(|| key.verify("", &message, &signature_hex)).is_ok();
    let via = match via {
        Via::Precheck => "precheck",
        Via::WebCrypto => "webcrypto",
        Via::Fallback => "fallback",
    };
    format!("{} {via}", if valid { "valid" } else { "invalid" })
}
