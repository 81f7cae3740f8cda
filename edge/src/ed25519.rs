//! The Ed25519 equation through the runtime's WebCrypto (`crypto.subtle.verify` with
//! `{name: "Ed25519"}`; BoringSSL in workerd), the public key imported once per isolate. This is the
//! bare check — `S < L` and `R` compared as given — without the small-order and point checks of
//! ed25519-dalek's `verify_strict`: callers make those first (`bugbot_shared::verify::DiscordKey::precheck`),
//! and `docs/GATEWAY_FLOOR.md` says why the two together give `verify_strict`'s verdict.

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
    /// The data are copied by the runtime before the call returns, so views into wasm memory will do.
    #[wasm_bindgen(method, catch)]
    fn verify(
        this: &Subtle,
        algorithm: &JsValue,
        key: &JsValue,
        signature: &[u8],
        data: &[u8],
    ) -> Result<js_sys::Promise, JsValue>;
}

/// Per isolate: `crypto.subtle` and `{name: "Ed25519"}` (None: no WebCrypto at all), and the last
/// imported key with its bytes (the gateway has one key; None: the runtime refused to import it).
struct State {
    subtle: Option<(Subtle, JsValue)>,
    key: Option<([u8; 32], Option<JsValue>)>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn subtle() -> Option<(Subtle, JsValue)> {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let state = state.get_or_insert_with(|| {
            let subtle = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())
                .ok()
                .filter(JsValue::is_object)
                .and_then(|crypto| js_sys::Reflect::get(&crypto, &"subtle".into()).ok())
                .filter(JsValue::is_object)
                .map(|subtle| {
                    let algorithm = js_sys::Object::new();
                    let _ = js_sys::Reflect::set(&algorithm, &"name".into(), &"Ed25519".into());
                    (subtle.unchecked_into::<Subtle>(), JsValue::from(algorithm))
                });
            State { subtle, key: None }
        });
        state.subtle.clone()
    })
}

fn cached_key(public_key: &[u8; 32]) -> Option<Option<JsValue>> {
    STATE.with(|state| {
        let state = state.borrow();
        match state.as_ref()?.key.as_ref() {
            Some((bytes, key)) if bytes == public_key => Some(key.clone()),
            _ => None,
        }
    })
}

async fn import(subtle: &Subtle, algorithm: &JsValue, public_key: &[u8; 32]) -> Option<JsValue> {
    if let Some(known) = cached_key(public_key) {
        return known;
    }
    let usages = js_sys::Array::of1(&"verify".into());
    let promise = subtle.import_key("raw", &js_sys::Uint8Array::from(&public_key[..]), algorithm, false, &usages);
    let key = match promise {
        Ok(promise) => JsFuture::from(promise).await.ok(),
        Err(_) => None,
    };
    STATE.with(|state| {
        if let Some(state) = state.borrow_mut().as_mut() {
            state.key = Some((*public_key, key.clone()));
        }
    });
    key
}

/// Whether `signature` (`R || S`) satisfies the Ed25519 equation for `message` under `public_key`,
/// by WebCrypto. `None` when the runtime cannot say (no WebCrypto Ed25519, the key refused, the call
/// failed): the caller verifies another way.
pub async fn verify(public_key: &[u8; 32], signature: &[u8; 64], message: &[u8]) -> Option<bool> {
    let (subtle, algorithm) = subtle()?;
    let key = import(&subtle, &algorithm, public_key).await?;
    let promise = subtle.verify(&algorithm, &key, signature, message).ok()?;
    JsFuture::from(promise).await.ok()?.as_bool()
}
