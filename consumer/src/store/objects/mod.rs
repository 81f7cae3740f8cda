//! The consumer's Durable Objects and their clients: [`claims`] (exactly-once claims), [`stats`]
//! (per-day counters), [`executor_container`] (the executor on Cloudflare Containers).

pub mod claims;
pub mod executor_container;
pub mod stats;

use std::cell::Cell;

use bugbot_shared::claim::Layout;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A record as the objects store it: JSON text, one string across the boundary between the wasm
/// and the runtime each way. Values stored as structured-clone objects (versions before this one)
/// are still read. An object took a crossing per field each way (`serde_wasm_bindgen`), which is
/// what a claim's read and write cost most of in the wasm.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored<T> {
    Text(String),
    Value(T),
}

impl<T: DeserializeOwned> Stored<T> {
    fn into_value(self) -> worker::Result<T> {
        match self {
            Self::Text(text) => serde_json::from_str(&text).map_err(worker::Error::from),
            Self::Value(value) => Ok(value),
        }
    }
}

/// The record under `key`, whichever way it was stored ([`Stored`]).
pub(crate) async fn get_record<T: DeserializeOwned>(storage: &worker::Storage, key: &str) -> worker::Result<Option<T>> {
    storage.get::<Stored<T>>(key).await?.map(Stored::into_value).transpose()
}

/// A record a listing gave, whichever way it was stored ([`Stored`]).
pub(crate) fn listed_record<T: DeserializeOwned>(value: wasm_bindgen::JsValue) -> worker::Result<T> {
    serde_wasm_bindgen::from_value::<Stored<T>>(value)
        .map_err(|e| worker::Error::RustError(e.to_string()))?
        .into_value()
}

/// Stores `record` under `key` as JSON text ([`Stored`]).
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
