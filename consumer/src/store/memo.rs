//! What an isolate keeps between jobs: answers that change rarely and would otherwise cost requests
//! on every alert. The runtime keeps one [`Memo`] for the isolate's life; native tests make one per
//! run, so that a test's request sequence does not depend on the tests before it.

use std::cell::RefCell;

use bugbot_shared::runbook::Runbook;

use crate::clients::linear::LabelCache;

/// How long the repository's runbooks (the listing of `RUNBOOKS_DIR` and each file's front matter)
/// are reused before they are read again: a runbook added or edited is used by the alerts that come
/// at most this long after.
pub const RUNBOOKS_TTL_MS: u64 = 5 * 60 * 1000;

/// The most repositories whose runbooks are kept (`GITHUB_REPO` and the `REPO_ROUTES` ones).
const MAX_RUNBOOK_REPOS: usize = 16;

/// The isolate's caches.
#[derive(Debug, Default)]
pub struct Memo {
    /// Linear's label ids by team and name.
    pub linear_labels: LabelCache,
    /// Runbooks read from a repository: where (API base, repository, directory), when, and what.
    runbooks: RefCell<Vec<(String, u64, Vec<Runbook>)>>,
}

impl Memo {
    /// The runbooks read from `place` less than [`RUNBOOKS_TTL_MS`] before `now_ms`.
    pub fn runbooks(&self, place: &str, now_ms: u64) -> Option<Vec<Runbook>> {
        self.runbooks
            .borrow()
            .iter()
            .find(|(at, read_ms, _)| at == place && now_ms.saturating_sub(*read_ms) < RUNBOOKS_TTL_MS)
            .map(|(_, _, books)| books.clone())
    }

    /// Keeps what was read from `place` at `now_ms`.
    pub fn keep_runbooks(&self, place: &str, now_ms: u64, books: &[Runbook]) {
        let mut kept = self.runbooks.borrow_mut();
        kept.retain(|(at, _, _)| at != place);
        if kept.len() >= MAX_RUNBOOK_REPOS {
            kept.remove(0);
        }
        kept.push((place.to_owned(), now_ms, books.to_vec()));
    }
}
