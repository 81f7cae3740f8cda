//! What an isolate keeps between jobs: answers that change rarely and would otherwise cost requests
//! on every alert. The runtime keeps one [`Memo`] for the isolate's life; native tests make one per
//! run, so that a test's request sequence does not depend on the tests before it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use futures_channel::oneshot;

use bugbot_shared::packet::SimilarIssue;
use bugbot_shared::runbook::Runbook;

use crate::clients::SinkError;
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

/// The longest a lookup stays in flight. Every lookup runs under its source's timebox and the
/// HTTP timeout, far shorter; one older than this was abandoned without being dropped (its
/// invocation cancelled while the isolate lives on) and will not land, so the next job leads.
pub const FLIGHT_MAX_MS: u64 = 60 * 1000;

/// What a lookup in flight hands the jobs waiting for it: its answer, or its failure.
pub type Answer<T> = Result<T, SinkError>;

/// Answers by key, each reused for `ttl_ms` after it was kept; past `max` keys the oldest goes.
///
/// A key is looked up once at a time: the jobs running together in the isolate (a batch's, and
/// any other invocation's) that ask for a key while its lookup is on the way wait for that lookup
/// ([`Recent::flight`]) and share its answer or its failure, rather than each asking the service.
#[derive(Debug)]
pub struct Recent<T> {
    ttl_ms: u64,
    max: usize,
    kept: RefCell<VecDeque<(String, u64, T)>>,
    flying: RefCell<Vec<Flying<T>>>,
    flights: Cell<u64>,
}

/// A lookup on the way, and who waits for it.
#[derive(Debug)]
struct Flying<T> {
    key: String,
    /// Which lookup (a key's later lookup, after an abandoned one, has another).
    id: u64,
    since_ms: u64,
    waiters: Vec<oneshot::Sender<Answer<T>>>,
}

/// Who looks a key up: this job ([`Flight::Lead`]) or one already on it ([`Flight::Follow`]).
#[derive(Debug)]
pub enum Flight<'a, T> {
    /// Nobody is: look it up, and [`Leader::land`] the answer.
    Lead(Leader<'a, T>),
    /// Another job is: its answer, or `Canceled` when it will give none (its job gave up and
    /// dropped it).
    Follow(oneshot::Receiver<Answer<T>>),
}

/// The job looking a key up. Dropped without [`Leader::land`], it leaves the waiting jobs to look
/// it up again.
#[derive(Debug)]
pub struct Leader<'a, T> {
    recent: &'a Recent<T>,
    key: String,
    id: u64,
}

impl<T: Clone> Leader<'_, T> {
    /// Hands the answer to the jobs waiting for it, and keeps it (read at `now_ms`) if it is one.
    pub fn land(self, now_ms: u64, answer: &Answer<T>) {
        // None when the lookup outlived `FLIGHT_MAX_MS` and was taken over: its answer is still good.
        let waiters = self.recent.take_flight(self.id).map(|f| f.waiters).unwrap_or_default();
        for waiter in waiters {
            // A waiter gone (its job timed out) wants nothing.
            let _ = waiter.send(answer.clone());
        }
        if let Ok(value) = answer {
            self.recent.keep(&self.key, now_ms, value.clone());
        }
    }
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        // Without an answer the senders go with the entry, and each waiter sees `Canceled`.
        drop(self.recent.take_flight(self.id));
    }
}

impl<T> Recent<T> {
    fn take_flight(&self, id: u64) -> Option<Flying<T>> {
        let mut flying = self.flying.borrow_mut();
        let i = flying.iter().position(|f| f.id == id)?;
        Some(flying.swap_remove(i))
    }
}

impl<T: Clone> Recent<T> {
    pub const fn new(ttl_ms: u64, max: usize) -> Self {
        Self {
            ttl_ms,
            max,
            kept: RefCell::new(VecDeque::new()),
            flying: RefCell::new(Vec::new()),
            flights: Cell::new(0),
        }
    }

    /// Who looks `key` up at `now_ms`: this job, unless another one already is (for less than
    /// [`FLIGHT_MAX_MS`]).
    pub fn flight(&self, key: &str, now_ms: u64) -> Flight<'_, T> {
        let mut flying = self.flying.borrow_mut();
        // Abandoned lookups go, and with them their senders: their waiters look it up again.
        flying.retain(|f| now_ms.saturating_sub(f.since_ms) < FLIGHT_MAX_MS);
        if let Some(f) = flying.iter_mut().find(|f| f.key == key) {
            let (sender, receiver) = oneshot::channel();
            f.waiters.push(sender);
            return Flight::Follow(receiver);
        }
        let id = self.flights.get() + 1;
        self.flights.set(id);
        flying.push(Flying { key: key.to_owned(), id, since_ms: now_ms, waiters: Vec::new() });
        Flight::Lead(Leader { recent: self, key: key.to_owned(), id })
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
    use futures::executor::block_on;

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

    fn failed(reason: &str) -> SinkError {
        SinkError::Transient { service: "github", reason: reason.to_owned(), retry_after: None }
    }

    #[test]
    fn a_key_in_flight_is_looked_up_once_and_its_answer_shared() {
        let recent = Recent::new(1_000, 2);
        let Flight::Lead(leader) = recent.flight("a", 0) else { panic!("nobody was looking a up") };
        let (Flight::Follow(first), Flight::Follow(second)) = (recent.flight("a", 1), recent.flight("a", 2)) else {
            panic!("a is in flight")
        };
        let Flight::Lead(other) = recent.flight("b", 3) else { panic!("b is another key") };
        leader.land(10, &Ok(7));
        assert_eq!((block_on(first), block_on(second)), (Ok(Ok(7)), Ok(Ok(7))));
        assert_eq!(recent.get("a", 20), Some(7), "kept for the jobs after");
        drop(other);
        assert!(matches!(recent.flight("a", 30), Flight::Lead(_)), "landed: the next lookup leads");
    }

    #[test]
    fn a_failed_lookup_is_shared_and_not_kept() {
        let recent: Recent<u32> = Recent::new(1_000, 2);
        let Flight::Lead(leader) = recent.flight("a", 0) else { panic!("nobody was looking a up") };
        let Flight::Follow(waiter) = recent.flight("a", 1) else { panic!("a is in flight") };
        leader.land(10, &Err(failed("HTTP 500")));
        assert_eq!(block_on(waiter), Ok(Err(failed("HTTP 500"))), "the waiter does not ask again");
        assert_eq!(recent.get("a", 20), None);
    }

    #[test]
    fn a_lookup_dropped_without_an_answer_releases_its_waiters() {
        let recent: Recent<u32> = Recent::new(1_000, 2);
        let Flight::Lead(leader) = recent.flight("a", 0) else { panic!("nobody was looking a up") };
        let Flight::Follow(waiter) = recent.flight("a", 1) else { panic!("a is in flight") };
        drop(leader);
        assert!(block_on(waiter).is_err(), "the waiter looks it up again");
        assert!(matches!(recent.flight("a", 2), Flight::Lead(_)), "nobody is looking a up any more");
        assert_eq!(recent.get("a", 2), None);
    }

    #[test]
    fn a_lookup_abandoned_without_being_dropped_is_taken_over() {
        let recent: Recent<u32> = Recent::new(1_000, 2);
        let Flight::Lead(abandoned) = recent.flight("a", 0) else { panic!("nobody was looking a up") };
        let Flight::Follow(waiter) = recent.flight("a", FLIGHT_MAX_MS - 1) else { panic!("a is in flight") };
        let Flight::Lead(next) = recent.flight("a", FLIGHT_MAX_MS) else { panic!("the old lookup is abandoned") };
        assert!(block_on(waiter).is_err(), "the old lookup's waiter looks it up again");
        abandoned.land(FLIGHT_MAX_MS, &Ok(2));
        assert_eq!(recent.get("a", FLIGHT_MAX_MS), Some(2), "a late answer is still kept");
        let Flight::Follow(waiter) = recent.flight("a", FLIGHT_MAX_MS + 1) else {
            panic!("the abandoned lookup's landing leaves the new one in flight")
        };
        next.land(FLIGHT_MAX_MS + 2, &Ok(3));
        assert_eq!(block_on(waiter), Ok(Ok(3)));
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
