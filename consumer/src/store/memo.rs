//! What an isolate keeps between jobs: answers that change rarely and would otherwise cost requests
//! on every alert. The runtime keeps one [`Memo`] for the isolate's life; native tests make one per
//! run, so that a test's request sequence does not depend on the tests before it.

use std::cell::RefCell;
use std::collections::VecDeque;

use futures_channel::oneshot;

use bugbot_shared::packet::SimilarIssue;
use bugbot_shared::runbook::Runbook;

use crate::clients::linear::LabelCache;

/// How long the repository's runbooks (the listing of `RUNBOOKS_DIR` and each file's front matter)
/// are reused before they are read again: a runbook added or edited is used by the alerts that come
/// at most this long after.
pub const RUNBOOKS_TTL_MS: u64 = 5 * 60 * 1000;

/// How long a GitHub code search's answer (the files that mention a phrase) is reused. GitHub
/// allows 10 code searches a minute: an error storm whose alerts share a message would spend them
/// in a second and leave every later alert without related files.
pub const CODE_SEARCH_TTL_MS: u64 = 5 * 60 * 1000;

/// How long the similar issues found for an error type are reused (GitHub allows 30 issue searches
/// a minute). Short, so that an issue resolved meanwhile soon shows as resolved.
pub const SIMILAR_TTL_MS: u64 = 60 * 1000;

/// The most repositories whose runbooks are kept (`GITHUB_REPO` and the `REPO_ROUTES` ones).
const MAX_RUNBOOK_REPOS: usize = 16;
/// The most search answers kept of each kind.
const MAX_SEARCHES: usize = 64;
/// The longest a rate-limited API is left alone, whatever it asked (an hour: GitHub's primary limits
/// reset within one).
pub const MAX_BACKOFF_MS: u64 = 60 * 60 * 1000;

/// Answers by key, each reused for `ttl_ms` after it was kept; past `max` keys the oldest goes.
///
/// A key is looked up once at a time: the jobs of a batch run together, and those that ask for a
/// key while its answer is on the way wait for that answer ([`Recent::flight`]) rather than each
/// asking the service.
#[derive(Debug)]
pub struct Recent<T> {
    ttl_ms: u64,
    max: usize,
    kept: RefCell<VecDeque<(String, u64, T)>>,
    /// Keys being looked up, and who waits for each.
    waiting: RefCell<Vec<(String, Vec<oneshot::Sender<T>>)>>,
}

/// Who looks a key up: this job ([`Flight::Lead`]) or one already on it ([`Flight::Follow`]).
#[derive(Debug)]
pub enum Flight<'a, T> {
    /// Nobody is: look it up, and [`Leader::land`] the answer.
    Lead(Leader<'a, T>),
    /// Another job is: its answer, or `Canceled` when it got none (the lookup failed, or the job
    /// gave up and dropped it).
    Follow(oneshot::Receiver<T>),
}

/// The job looking a key up. Dropped without [`Leader::land`], it leaves the waiting jobs to look
/// it up themselves.
#[derive(Debug)]
pub struct Leader<'a, T> {
    recent: &'a Recent<T>,
    key: String,
}

impl<T: Clone> Leader<'_, T> {
    /// Keeps the answer, read at `now_ms`, and hands it to the jobs waiting for it.
    pub fn land(self, now_ms: u64, value: T) {
        let waiting = self.recent.take_waiting(&self.key);
        for waiter in waiting {
            // A waiter gone (its job timed out) wants nothing.
            let _ = waiter.send(value.clone());
        }
        self.recent.keep(&self.key, now_ms, value);
    }
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        // Without an answer the senders go with the entry, and each waiter sees `Canceled`.
        drop(self.recent.take_waiting(&self.key));
    }
}

impl<T> Recent<T> {
    fn take_waiting(&self, key: &str) -> Vec<oneshot::Sender<T>> {
        let mut waiting = self.waiting.borrow_mut();
        match waiting.iter().position(|(k, _)| k == key) {
            Some(i) => waiting.swap_remove(i).1,
            None => Vec::new(),
        }
    }
}

impl<T: Clone> Recent<T> {
    pub const fn new(ttl_ms: u64, max: usize) -> Self {
        Self { ttl_ms, max, kept: RefCell::new(VecDeque::new()), waiting: RefCell::new(Vec::new()) }
    }

    /// Who looks `key` up: this job, unless another one already is.
    pub fn flight(&self, key: &str) -> Flight<'_, T> {
        let mut waiting = self.waiting.borrow_mut();
        if let Some((_, waiters)) = waiting.iter_mut().find(|(k, _)| k == key) {
            let (sender, receiver) = oneshot::channel();
            waiters.push(sender);
            return Flight::Follow(receiver);
        }
        waiting.push((key.to_owned(), Vec::new()));
        Flight::Lead(Leader { recent: self, key: key.to_owned() })
    }

    /// What was kept for `key` less than the TTL before `now_ms`.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<T> {
        self.kept
            .borrow()
            .iter()
            .find(|(k, at, _)| k == key && now_ms.saturating_sub(*at) < self.ttl_ms)
            .map(|(_, _, value)| value.clone())
    }

    /// Keeps `value` for `key`, read at `now_ms`.
    pub fn keep(&self, key: &str, now_ms: u64, value: T) {
        let mut kept = self.kept.borrow_mut();
        kept.retain(|(k, _, _)| k != key);
        if kept.len() >= self.max {
            kept.pop_front();
        }
        kept.push_back((key.to_owned(), now_ms, value));
    }
}

/// Until when a rate-limited API is not asked again, by API (its base URL and resource).
#[derive(Debug, Default)]
pub struct Backoff(RefCell<Vec<(String, u64)>>);

impl Backoff {
    /// The time (epoch ms) `api` may be asked again, if that is after `now_ms`.
    pub fn until(&self, api: &str, now_ms: u64) -> Option<u64> {
        self.0.borrow().iter().find(|(a, until)| a == api && *until > now_ms).map(|(_, until)| *until)
    }

    /// `api` answered "rate limited, wait `delay_ms`" at `now_ms` (at most [`MAX_BACKOFF_MS`]).
    pub fn wait(&self, api: &str, now_ms: u64, delay_ms: u64) {
        let mut waits = self.0.borrow_mut();
        waits.retain(|(a, until)| a != api && *until > now_ms);
        waits.push((api.to_owned(), now_ms.saturating_add(delay_ms.min(MAX_BACKOFF_MS))));
    }
}

/// The isolate's caches.
#[derive(Debug)]
pub struct Memo {
    /// Linear's label ids by team and name.
    pub linear_labels: LabelCache,
    /// Runbooks read from a repository, by where (API base, repository, directory).
    pub runbooks: Recent<Vec<Runbook>>,
    /// GitHub code search: the paths found, by API base, repository and phrase.
    pub code_search: Recent<Vec<String>>,
    /// Similar issues found in the trackers, by trackers and search term.
    pub similar: Recent<Vec<SimilarIssue>>,
    /// Search APIs that answered "rate limited": not asked again before they said.
    pub search_backoff: Backoff,
}

impl Default for Memo {
    fn default() -> Self {
        Self {
            linear_labels: LabelCache::default(),
            runbooks: Recent::new(RUNBOOKS_TTL_MS, MAX_RUNBOOK_REPOS),
            code_search: Recent::new(CODE_SEARCH_TTL_MS, MAX_SEARCHES),
            similar: Recent::new(SIMILAR_TTL_MS, MAX_SEARCHES),
            search_backoff: Backoff::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_reused_until_its_ttl_and_the_oldest_key_goes_first() {
        let recent = Recent::new(1_000, 2);
        recent.keep("a", 10, 1);
        assert_eq!(recent.get("a", 1_009), Some(1));
        assert_eq!(recent.get("a", 1_010), None, "expired");
        recent.keep("b", 20, 2);
        recent.keep("a", 30, 3);
        recent.keep("c", 40, 4);
        assert_eq!((recent.get("a", 50), recent.get("b", 50), recent.get("c", 50)), (Some(3), None, Some(4)));
    }

    #[test]
    fn a_key_in_flight_is_looked_up_once_and_its_answer_shared() {
        use futures::executor::block_on;
        let recent = Recent::new(1_000, 2);
        let Flight::Lead(leader) = recent.flight("a") else { panic!("nobody was looking a up") };
        let (Flight::Follow(first), Flight::Follow(second)) = (recent.flight("a"), recent.flight("a")) else {
            panic!("a is in flight")
        };
        let Flight::Lead(other) = recent.flight("b") else { panic!("b is another key") };
        leader.land(10, 7);
        assert_eq!((block_on(first), block_on(second)), (Ok(7), Ok(7)));
        assert_eq!(recent.get("a", 20), Some(7), "kept for the jobs after");
        drop(other);
        assert!(matches!(recent.flight("a"), Flight::Lead(_)), "landed: the next lookup leads");
    }

    #[test]
    fn a_lookup_dropped_without_an_answer_releases_its_waiters() {
        use futures::executor::block_on;
        let recent: Recent<u32> = Recent::new(1_000, 2);
        let Flight::Lead(leader) = recent.flight("a") else { panic!("nobody was looking a up") };
        let Flight::Follow(waiter) = recent.flight("a") else { panic!("a is in flight") };
        drop(leader);
        assert!(block_on(waiter).is_err(), "the waiter looks it up itself");
        assert!(matches!(recent.flight("a"), Flight::Lead(_)), "nobody is looking a up any more");
        assert_eq!(recent.get("a", 0), None);
    }

    #[test]
    fn a_backoff_holds_until_the_time_asked() {
        let backoff = Backoff::default();
        backoff.wait("github search", 100, 60_000);
        assert_eq!(backoff.until("github search", 60_099), Some(60_100));
        assert_eq!(backoff.until("github search", 60_100), None);
        assert_eq!(backoff.until("github code_search", 200), None, "another API");
        backoff.wait("github search", 0, u64::MAX);
        assert_eq!(backoff.until("github search", 0), Some(MAX_BACKOFF_MS), "at most an hour");
    }
}
