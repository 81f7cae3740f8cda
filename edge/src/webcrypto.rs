//! Signature checks through the runtime's WebCrypto (`crypto.subtle`; BoringSSL in workerd), native
//! code where the same checks in wasm cost the gateway most of a request's CPU. Each key is imported
//! once per isolate (the gateway has one of each kind).
//!
//! - [`ed25519_key`]: for the bare Ed25519 equation (`S < L`, and `R` compared as given), without the
//!   small-order and point checks of ed25519-dalek's `verify_strict`: callers make those around it
//!   (`bugbot_shared::verify::DiscordKey::precheck`); `docs/GATEWAY_FLOOR.md` says why the two
//!   together give `verify_strict`'s verdict.
//! - [`hmac_sha256_key`]: for an HMAC-SHA256 tag over some bytes, compared in constant time by the
//!   runtime.
//!
//! A [`Key`] is what `crypto.subtle.verify` needs, got without an await, so that either the wasm
//! ([`verify`]) or the gateway's entry module can make the call. Each step answers `None` when the
//! runtime cannot say (no WebCrypto or no such algorithm, the key refused, the call failed): the
//! caller then verifies in wasm as before.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// `crypto.subtle`.
    #[derive(Clone)]
    type Subtle;
    #[wasm_bindgen(method, catch, js_name = importKey)]
    fn import_key(
        this: &Subtle,
        format: &str,
        key: &js_sys::Uint8Array,
        algorithm: &JsValue,
        extractable: bool,
        usages: &js_sys::Array,
    ) -> Result<js_sys::Promise, JsValue>;
    /// The runtime copies `signature` and `data` before the call returns, so views into wasm
    /// memory will do.
    #[wasm_bindgen(method, catch)]
    fn verify(
        this: &Subtle,
        algorithm: &JsValue,
        key: &JsValue,
        signature: &[u8],
        data: &[u8],
    ) -> Result<js_sys::Promise, JsValue>;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ed25519,
    HmacSha256,
}

/// Per isolate: `crypto.subtle` (None: no WebCrypto at all), the two algorithm objects, and the last
/// key imported of each kind with its bytes: the import's promise (None: the call threw). A refused
/// key is a rejected promise, kept, so it is not imported again on every request.
struct State {
    subtle: Option<Subtle>,
    ed25519: JsValue,
    hmac: JsValue,
    keys: Vec<(Kind, Vec<u8>, Option<js_sys::Promise>)>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn object(entries: &[(&str, &str)]) -> JsValue {
    let object = js_sys::Object::new();
    for (k, v) in entries {
        let _ = js_sys::Reflect::set(&object, &(*k).into(), &(*v).into());
    }
    object.into()
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let state = state.get_or_insert_with(|| State {
            subtle: js_sys::Reflect::get(&js_sys::global(), &"crypto".into())
                .ok()
                .filter(JsValue::is_object)
                .and_then(|crypto| js_sys::Reflect::get(&crypto, &"subtle".into()).ok())
                .filter(JsValue::is_object)
                .map(JsCast::unchecked_into),
            ed25519: object(&[("name", "Ed25519")]),
            hmac: object(&[("name", "HMAC"), ("hash", "SHA-256")]),
            keys: Vec::new(),
        });
        f(state)
    })
}

/// What `crypto.subtle.verify` needs, without an await: the algorithm, and the key as the promise of
/// its import (started on the first call for these bytes, kept for the isolate's life: awaiting a
/// settled promise costs a microtask). `None` when there is no WebCrypto or `importKey` threw.
#[derive(Debug, Clone)]
pub struct Key {
    pub algorithm: JsValue,
    pub key: js_sys::Promise,
}

fn key(kind: Kind, bytes: &[u8]) -> Option<Key> {
    with_state(|s| {
        let subtle = s.subtle.clone()?;
        let algorithm = if kind == Kind::Ed25519 { s.ed25519.clone() } else { s.hmac.clone() };
        if let Some((_, _, known)) = s.keys.iter().find(|(k, b, _)| *k == kind && b == bytes) {
            return known.clone().map(|key| Key { algorithm, key });
        }
        let usages = js_sys::Array::of1(&"verify".into());
        let imported = subtle.import_key("raw", &bytes.into(), &algorithm, false, &usages).ok();
        s.keys.retain(|(k, _, _)| *k != kind);
        s.keys.push((kind, bytes.to_vec(), imported.clone()));
        imported.map(|key| Key { algorithm, key })
    })
}

/// The Ed25519 key `public_key`, for [`verify`] or for the entry module's own `crypto.subtle.verify`.
pub fn ed25519_key(public_key: &[u8; 32]) -> Option<Key> {
    key(Kind::Ed25519, public_key)
}

/// The HMAC-SHA256 key `secret`, likewise.
pub fn hmac_sha256_key(secret: &[u8]) -> Option<Key> {
    key(Kind::HmacSha256, secret)
}

/// `crypto.subtle.verify` under `key`: `None` when the runtime cannot say (the key was refused, the
/// call failed).
pub async fn verify(key: &Key, signature: &[u8], data: &[u8]) -> Option<bool> {
    let subtle = with_state(|s| s.subtle.clone())?;
    let crypto_key = JsFuture::from(key.key.clone()).await.ok()?;
    let promise = subtle.verify(&key.algorithm, &crypto_key, signature, data).ok()?;
    JsFuture::from(promise).await.ok()?.as_bool()
}
