//! Signatures checked through the runtime's WebCrypto (native code) rather than in wasm, with the
//! same verdicts; where WebCrypto cannot answer, the ingress verifies in wasm as before.
//!
//! A Sentry HMAC-SHA256 is deterministic: WebCrypto's answer is the one the `hmac` crate gives.
//!
//! A Discord signature gets `verify_strict`'s verdict with most of its cost in WebCrypto:
//! [`DiscordKey::precheck`] makes the checks `verify_strict` adds to the Ed25519 equation that come
//! first (a weak key, a non-canonical `S`), the runtime's `crypto.subtle.verify` (BoringSSL, native)
//! checks the equation, and `Prechecked::settle` the last one (an `R` of small order). Where WebCrypto
//! cannot answer, the ingress verifies with ed25519-dalek's `verify_strict` as before.
//! `tests/tests/gateway_ed25519.rs` runs every vector of `fixtures/ed25519` through [`probe`] inside
//! workerd and compares (`docs/GATEWAY_FLOOR.md`).
//!
//! Nothing here awaits: [`plan`] says what `crypto.subtle.verify` must be asked (a [`Verification`]),
//! and [`Verification::settle`] turns its answer into the verdict. Whoever holds the request makes
//! the call in between: the wasm ([`Verification::run`]) or the gateway's entry module.

use bugbot_edge::webcrypto::{self, Key};
use bugbot_shared::ingress::{self, Headers, IngressConfig, Route};
use bugbot_shared::verify::{self, DiscordKey, Prechecked, SignatureError};
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

/// What a route's signature still needs before the ingress decides.
#[derive(Debug)]
pub enum Plan {
    /// Known now: a refusal before the equation, or `None` (no WebCrypto, no key, no signature
    /// header, another route: the ingress verifies, or refuses, itself).
    Decided(Option<Result<(), SignatureError>>, Via),
    /// Ask WebCrypto.
    Verify(Verification),
}

/// One `crypto.subtle.verify` call to make, and what its answer means.
#[derive(Debug)]
pub struct Verification {
    pub key: Key,
    kind: Pending,
}

#[derive(Debug)]
enum Pending {
    Discord(Prechecked),
    Sentry([u8; 32]),
}

impl Verification {
    /// The signature bytes to pass.
    pub fn signature(&self) -> &[u8] {
        match &self.kind {
            Pending::Discord(prechecked) => prechecked.signature(),
            Pending::Sentry(mac) => mac,
        }
    }

    /// The signed bytes when they are not the body itself: a Discord signature covers
    /// `timestamp || body`; a Sentry HMAC, the body (`None`).
    pub fn message(&self) -> Option<&[u8]> {
        match &self.kind {
            Pending::Discord(prechecked) => Some(prechecked.message()),
            Pending::Sentry(_) => None,
        }
    }

    /// The verdict, given WebCrypto's answer (`None`: it had none, and the ingress verifies itself).
    pub fn settle(&self, holds: Option<bool>) -> (Option<Result<(), SignatureError>>, Via) {
        match (holds, &self.kind) {
            (None, _) => (None, Via::Fallback),
            (Some(holds), Pending::Discord(prechecked)) => (Some(prechecked.settle(holds)), Via::WebCrypto),
            (Some(holds), Pending::Sentry(_)) => {
                (Some(if holds { Ok(()) } else { Err(SignatureError::Mismatch) }), Via::WebCrypto)
            }
        }
    }

    /// Makes the call from the wasm: WebCrypto's answer on `body` (or [`Self::message`]).
    pub async fn run(&self, body: &[u8]) -> Option<bool> {
        webcrypto::verify(&self.key, self.signature(), self.message().unwrap_or(body)).await
    }
}

/// What the signature of a request to `route` needs.
pub fn plan(cfg: &IngressConfig, route: &Route, headers: &dyn Headers, body: &[u8]) -> Plan {
    match route {
        Route::DiscordInteractions => {
            match (&cfg.discord_key, headers.get("x-signature-ed25519"), headers.get("x-signature-timestamp")) {
                (Some(key), Some(signature), Some(timestamp)) => discord(key, &timestamp, body, &signature),
                _ => Plan::Decided(None, Via::Fallback),
            }
        }
        Route::SentryWebhook => match (&cfg.sentry_client_secret, ingress::sentry_signature(headers)) {
            (Some(secret), Some(signature)) => sentry(secret, &signature),
            _ => Plan::Decided(None, Via::Fallback),
        },
        _ => Plan::Decided(None, Via::Fallback),
    }
}

/// A Discord signature on `timestamp || body`.
pub fn discord(key: &DiscordKey, timestamp: &str, body: &[u8], signature_hex: &str) -> Plan {
    let prechecked = match key.precheck(timestamp, body, signature_hex) {
        Ok(p) => p,
        Err(e) => return Plan::Decided(Some(Err(e)), Via::Precheck),
    };
    match webcrypto::ed25519_key(key.public_bytes()) {
        Some(key) => Plan::Verify(Verification { key, kind: Pending::Discord(prechecked) }),
        None => Plan::Decided(None, Via::Fallback),
    }
}

/// A Sentry `signature_hex` (HMAC-SHA256 of the body under `secret`); a malformed header is left to
/// the ingress, which answers it.
fn sentry(secret: &str, signature_hex: &str) -> Plan {
    match (verify::hmac_sha256_hex_decode(signature_hex), webcrypto::hmac_sha256_key(secret.as_bytes())) {
        (Ok(mac), Some(key)) => Plan::Verify(Verification { key, kind: Pending::Sentry(mac) }),
        _ => Plan::Decided(None, Via::Fallback),
    }
}

/// For the parity test only (no route reaches it; `gateway/entry.mjs` does not call it): the
/// gateway's verdict on one vector — `public_key_hex` parsed as `DISCORD_PUBLIC_KEY` is, `message`
/// as the body under an empty timestamp — as `"<valid|invalid> <via>"`, via `key` (the key itself is
/// refused), `precheck`, `webcrypto` or `fallback` (then `verify_strict` decided).
#[wasm_bindgen(js_name = ed25519Probe)]
pub async fn probe(public_key_hex: String, message: Vec<u8>, signature_hex: String) -> String {
    let Ok(key) = DiscordKey::from_hex(&public_key_hex) else { return "invalid key".into() };
    let (verdict, via) = match discord(&key, "", &message, &signature_hex) {
        Plan::Decided(verdict, via) => (verdict, via),
        Plan::Verify(verification) => verification.settle(verification.run(&message).await),
    };
    let valid = verdict.unwrap_or_else(|| key.verify("", &message, &signature_hex)).is_ok();
    let via = match via {
        Via::Precheck => "precheck",
        Via::WebCrypto => "webcrypto",
        Via::Fallback => "fallback",
    };
    format!("{} {via}", if valid { "valid" } else { "invalid" })
}
