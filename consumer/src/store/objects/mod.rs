//! The consumer's Durable Objects and their clients: [`claims`] (exactly-once claims), [`stats`]
//! (per-day counters), [`executor_container`] (the executor on Cloudflare Containers).

pub mod claims;
pub mod executor_container;
pub mod stats;

use std::cell::Cell;

use bugbot_shared::claim::Layout;

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
