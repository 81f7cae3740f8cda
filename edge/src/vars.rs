//! Bindings as strings. A `[vars]` entry and a secret are both plain JavaScript strings on the `env`
//! object, so one property read answers for either. `worker::Env::var` (then `secret` on a miss)
//! checks the value's constructor name and formats an error string for every missing name: about
//! ten boundary crossings and three allocations per name, where this takes one crossing.

use wasm_bindgen::JsValue;
use worker::Env;

/// A binding's value, whether a `[vars]` entry or a secret; empty (after trimming) counts as unset.
/// A binding that is not a string (a JSON `[vars]` object, a KV namespace) is `None` too.
pub fn binding(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    let text = value.as_string()?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        None
    } else if trimmed.len() == text.len() {
        Some(text)
    } else {
        Some(trimmed.to_owned())
    }
}

/// Whether a binding of any kind (a string, a queue, a service, a Durable Object namespace) exists,
/// without the error `worker::Env` builds for a missing one.
pub fn has_binding(env: &Env, name: &str) -> bool {
    js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name)).is_ok_and(|v| !v.is_undefined() && !v.is_null())
}

/// Reads settings from one `env`: strings, flags and numbers with defaults.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a>(pub &'a Env);

impl Vars<'_> {
    /// [`binding`].
    pub fn get(&self, name: &str) -> Option<String> {
        binding(self.0, name)
    }

    /// Whether `name` is set (and not blank).
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether every one of `names` is set.
    pub fn all_set(&self, names: &[&str]) -> bool {
        names.iter().all(|n| self.is_set(n))
    }

    /// A non-negative integer, or `default` when unset or not a number.
    pub fn number(&self, name: &str, default: u64) -> u64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
    }
}
