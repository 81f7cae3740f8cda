//! The consumer's Durable Objects and their clients: [`claims`] (exactly-once claims), [`stats`]
//! (per-day counters), [`executor_container`] (the executor on Cloudflare Containers).

pub mod claims;
pub mod executor_container;
pub mod stats;

use std::cell::Cell;

use bugbot_shared::claim::Layout;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;

/// A record as the objects store it: JSON text, one string across the boundary between the wasm
/// and the runtime each way. An object (as worker's `Storage::put` stores a value, and versions
/// before this one stored records) took a crossing per field each way (`serde_wasm_bindgen`), and
/// is still read. Also what a listing's values are read with.
pub(crate) fn decoded<T: DeserializeOwned>(value: &JsValue) -> worker::Result<T> {
    match value.as_string() {
        Some(text) => serde_json::from_str(&text).map_err(worker::Error::from),
        None => serde_wasm_bindgen::from_value(value.clone()).map_err(|e| worker::Error::RustError(e.to_string())),
    }
}

/// The record under `key`, whichever way it was stored ([`decoded`]).
pub(crate) async fn get_record<T: DeserializeOwned>(storage: &worker::Storage, key: &str) -> worker::Result<Option<T>> {
    let value = JsFuture::from(storage.as_raw().get(key)?).await?;
    if value.is_undefined() { Ok(None) } else { decoded(&value).map(Some) }
}

/// Stores `record` under `key` as JSON text ([`decoded`]).
pub(crate) async fn put_record<T: Serialize>(storage: &worker::Storage, key: &str, record: &T) -> worker::Result<()> {
    storage.put_raw(key, serde_json::to_string(record)?).await
}

/// The install's claims [`Layout`] as an object keeps it: its instance's copy (`cell`), else the one
/// stored under `key`, else `decide`'s answer, stored. `decide` may let other requests in (it asks
/// KV or another object), so the first layout stored is the one kept.
pub(crate) async fn layout_once(
    cell: &Cell<Option<Layout>>,
    storage: &worker::Storage,
    key: &str,
    decide: impl AsyncFnOnce() -> worker::Result<Layout>,
) -> worker::Result<Layout> {
    if let Some(layout) = cell.get() {
        return Ok(layout);
    }
    let layout = if let Some(layout) = storage.get::<Layout>(key).await? {
        layout
    } else {
        let decided = decide().await?;
        if let Some(first) = storage.get::<Layout>(key).await? {
            first
        } else {
            storage.put(key, decided).await?;
            decided
        }
    };
    cell.set(Some(layout));
    Ok(layout)
}
