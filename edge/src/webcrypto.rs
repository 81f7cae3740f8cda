//! Signature checks through the runtime's WebCrypto (`crypto.subtle`; BoringSSL in workerd), native
//! code where the same checks in wasm cost the gateway most of a request's CPU. Each key is imported
//! once per isolate (the gateway has one of each kind).
//!
//! - [`ed25519_verify`]: the bare Ed25519 equation (`S < L`, and `R` compared as given), without the
//!   small-order and point checks of ed25519-dalek's `verify_strict`: callers make those first
//!   (`bugbot_shared::verify::DiscordKey::precheck`); `docs/GATEWAY_FLOOR.md` says why the two
//!   together give `verify_strict`'s verdict.
//! - [`hmac_sha256_verify`]: an HMAC-SHA256 tag over some bytes, compared in constant time by the runtime.
//!
//! Each returns `None` when the runtime cannot say (no WebCrypto or no such algorithm, the key
//! refused, the call failed): the caller then verifies in wasm as before.

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
/// key imported of each kind with its bytes (None: the runtime refused it).
struct State {
    subtle: Option<Subtle>,
    ed25519: JsValue,
    hmac: JsValue,
    keys: Vec<(Kind, Vec<u8>, Option<JsValue>)>,
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

/// `crypto.subtle`, the algorithm, and the key for `bytes` (imported now if it was not).
async fn key(kind: Kind, bytes: &[u8]) -> Option<(Subtle, JsValue, JsValue)> {
    let (subtle, algorithm, known) = with_state(|s| {
        let algorithm = if kind == Kind::Ed25519 { s.ed25519.clone() } else { s.hmac.clone() };
        let known = s.keys.iter().find(|(k, b, _)| *k == kind && b == bytes).map(|(_, _, key)| key.clone());
        (s.subtle.clone(), algorithm, known)
    });
    let subtle = subtle?;
    let key = if let Some(key) = known {
        key
    } else {
        let usages = js_sys::Array::of1(&"verify".into());
        let imported = match subtle.import_key("raw", &bytes.into(), &algorithm, false, &usages) {
            Ok(promise) => JsFuture::from(promise).await.ok(),
            Err(_) => None,
        };
        with_state(|s| {
            s.keys.retain(|(k, _, _)| *k != kind);
            s.keys.push((kind, bytes.to_vec(), imported.clone()));
        });
        imported
    }?;
    Some((subtle, algorithm, key))
}

async fn verify_with(kind: Kind, key_bytes: &[u8], signature: &[u8], data: &[u8]) -> Option<bool> {
    let (subtle, algorithm, key) = key(kind, key_bytes).await?;
    let promise = subtle.verify(&algorithm, &key, signature, data).ok()?;
    JsFuture::from(promise).await.ok()?.as_bool()
}

/// Whether `signature` (`R || S`) satisfies the Ed25519 equation for `message` under `public_key`.
pub async fn ed25519_verify(public_key: &[u8; 32], signature: &[u8; 64], message: &[u8]) -> Option<bool> {
    verify_with(Kind::Ed25519, public_key, signature, message).await
}

/// Whether `mac` is the HMAC-SHA256 of `data` under `secret`.
pub async fn hmac_sha256_verify(secret: &[u8], mac: &[u8; 32], data: &[u8]) -> Option<bool> {
    verify_with(Kind::HmacSha256, secret, mac, data).await
}
