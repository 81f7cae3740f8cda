//! What other handlers may read of a fix run (kept in KV by `handlers::fix`): where it stands and
//! its pull request. The alert card shows them without depending on the fix flow.

use serde::{Deserialize, Serialize};

use super::keys;
use super::ports::KvPort;

/// Where a fix run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixState {
    Queued,
    Running,
    PrOpened,
    NoChange,
    Blocked,
    Failed,
    TimedOut,
}

/// The part of a stored fix run the card needs.
#[derive(Debug, Clone, Deserialize)]
pub struct RunSummary {
    pub state: FixState,
    #[serde(default)]
    pub pr_url: Option<String>,
}

/// The latest fix run of the tracked issue `key` (`#12`, `ENG-3`), if any.
pub async fn current<K: KvPort>(kv: &K, key: &str) -> Option<RunSummary> {
    let id = kv.get_text(&keys::fix_issue(key)).await?;
    serde_json::from_str(&kv.get_text(&keys::fix_run(&id)).await?).ok()
}
