//! Waiting for asynchronous effects: poll with a deadline, never a fixed sleep or an immediate read.
//!
//! Almost everything a test observes happens asynchronously to the call that caused it: a Worker's
//! log line crosses workerd's and Node's pipes after the request that caused it was answered (and the
//! consumer logs a job only after recording its status); a fake records a request when the queue
//! consumer gets to it; the executor reports through a callback; a process started by a test writes
//! its files when the scheduler lets it. On a busy 2-core machine any of these can take seconds. So a
//! test never reads such an effect at once, nor after a fixed sleep (a guess at how busy the machine
//! is): it polls with [`until`], [`until_async`] or [`until_blocking`], or awaits a future with
//! [`within`], and fails with [`TimedOut`], which says what was awaited and, through
//! [`TimedOut::showing`], what the test knows (the Workers' logs, the last status seen).
//!
//! The deadline bounds a failure; it is not an expectation. Make it generous ([`PATIENCE`] unless a
//! test has a reason): a passing test returns as soon as the effect is there, whatever the bound.
//!
//! # Absence
//! "Nothing happened" cannot be polled for: it holds at once and may stop holding a moment later. A
//! test that asserts an absence (no second comment, nothing sent, no second pull request) first waits
//! for a positive event proving the system has finished with everything that could have caused the
//! effect, and only then reads:
//! - the job's settled status (the consumer records it after every effect of the job);
//! - a later marker job, processed after the one whose absence of effect is asserted;
//! - every job involved settled (for effects that several jobs race for);
//! - the executor's shutdown, which returns once every job has reported (callbacks included).
//!
//! This file has no dependency but `std` and `tokio`, so that test crates that cannot depend on
//! `bugbot-e2e` (the executor's own tests: `bugbot-e2e` depends on the executor) include it by path.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// The default bound on a wait: long enough for a 2-core machine that is busy with other work.
pub const PATIENCE: Duration = Duration::from_mins(2);

/// The first pause between two probes; pauses double up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Long waits poll gently: a probe may be a request to the Workers, which share the machine's cores.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// A wait that reached its deadline.
#[derive(Debug)]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    pub within: Duration,
    /// What the test knew when it gave up.
    pub context: Vec<String>,
}

impl TimedOut {
    fn new(what: &str, within: Duration) -> Self {
        Self { what: what.to_owned(), within, context: Vec::new() }
    }

    /// Adds what the test knows to the failure (evaluated only on failure when used in `map_err`).
    #[must_use]
    pub fn showing(mut self, context: impl fmt::Display) -> Self {
        self.context.push(context.to_string());
        self
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} did not happen within {:?}", self.what, self.within)?;
        for context in &self.context {
            write!(f, "\n{context}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TimedOut {}

/// The pauses between probes: short at first, then gentler.
#[derive(Debug)]
struct Pauses {
    next: Duration,
    deadline: Instant,
}

impl Pauses {
    fn new(within: Duration) -> Self {
        Self { next: FIRST_PAUSE, deadline: Instant::now() + within }
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The next pause, or `None` once the deadline has passed (after one last probe at the deadline).
    fn next_pause(&mut self) -> Option<Duration> {
        let remaining = self.remaining();
        if remaining.is_zero() {
            return None;
        }
        let pause = self.next.min(remaining);
        self.next = (self.next * 2).min(MAX_PAUSE);
        Some(pause)
    }
}

/// Polls `probe` until it returns `Some`, for at most `within`.
pub async fn until<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T, TimedOut> {
    until_async(within, what, || std::future::ready(probe())).await
}

/// Polls an asynchronous `probe` (e.g. a request to an admin route) until it returns `Some`, for at
/// most `within`. A probe still running at the deadline is abandoned.
pub async fn until_async<T, F>(within: Duration, what: &str, mut probe: impl FnMut() -> F) -> Result<T, TimedOut>
where
    F: Future<Output = Option<T>>,
{
    let mut pauses = Pauses::new(within);
    loop {
        // At least a moment for the last probe, even at the deadline.
        let budget = pauses.remaining().max(FIRST_PAUSE);
        if let Ok(Some(value)) = tokio::time::timeout(budget, probe()).await {
            return Ok(value);
        }
        let Some(pause) = pauses.next_pause() else {
            return Err(TimedOut::new(what, within));
        };
        tokio::time::sleep(pause).await;
    }
}

/// Polls `probe` until it returns `Some`, for at most `within`, blocking the thread between probes
/// (for synchronous tests and `Drop`).
pub fn until_blocking<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T, TimedOut> {
    let mut pauses = Pauses::new(within);
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        let Some(pause) = pauses.next_pause() else {
            return Err(TimedOut::new(what, within));
        };
        std::thread::sleep(pause);
    }
}

/// Awaits `future` (an event that is delivered rather than polled: a callback on a channel, a task
/// ending), for at most `within`.
pub async fn within<T>(within: Duration, what: &str, future: impl Future<Output = T>) -> Result<T, TimedOut> {
    tokio::time::timeout(within, future).await.map_err(|_| TimedOut::new(what, within))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn returns_as_soon_as_the_probe_succeeds() {
        let calls = Cell::new(0);
        let value = until(PATIENCE, "the third probe", || {
            calls.set(calls.get() + 1);
            (calls.get() == 3).then_some("ready")
        })
        .await
        .unwrap();
        assert_eq!((value, calls.get()), ("ready", 3));
    }

    #[tokio::test]
    async fn fails_with_what_was_awaited_and_the_context() {
        let error = until(Duration::from_millis(30), "the log line", || None::<()>)
            .await
            .map_err(|e| e.showing("logs:\nnothing yet"))
            .unwrap_err();
        assert_eq!(error.to_string(), "the log line did not happen within 30ms\nlogs:\nnothing yet");
    }

    #[tokio::test]
    async fn probes_once_more_at_the_deadline() {
        let started = Instant::now();
        let value = until(Duration::from_millis(40), "the deadline", || {
            (started.elapsed() >= Duration::from_millis(40)).then_some(())
        })
        .await;
        assert!(value.is_ok(), "a probe that succeeds at the deadline counts");
    }

    #[tokio::test]
    async fn a_probe_that_hangs_is_abandoned_at_the_deadline() {
        let error = until_async(Duration::from_millis(30), "a hanging probe", std::future::pending::<Option<()>>).await;
        assert!(error.is_err());
    }

    #[tokio::test]
    async fn within_bounds_a_future() {
        assert_eq!(within(PATIENCE, "a ready future", async { 7 }).await.unwrap(), 7);
        let error = within(Duration::from_millis(10), "a callback", std::future::pending::<()>()).await.unwrap_err();
        assert_eq!(error.what, "a callback");
    }

    #[test]
    fn blocking_flavour() {
        let calls = Cell::new(0);
        until_blocking(PATIENCE, "two probes", || {
            calls.set(calls.get() + 1);
            (calls.get() == 2).then_some(())
        })
        .unwrap();
        assert!(until_blocking(Duration::from_millis(20), "never", || None::<()>).is_err());
    }
}
