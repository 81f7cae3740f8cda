//! The one mapping from a failed step to what happens to the job, used by every handler (alerts,
//! commands, the fix flow): a transient failure (429, 5xx, timeouts, our own Durable Object or KV)
//! is retried after the retry policy's delay, honouring the service's `Retry-After`, with the
//! delivery's attempt number, so that the runtime says when it gives up and the queue moves the
//! job to the dead-letter queue; anything else finishes the job as failed, with its reason.

use bugbot_shared::backoff::RetryPolicy;
use bugbot_shared::status::JobState;

use super::outcome::{Outcome, StepError};
use crate::clients::SinkError;

/// What becomes of a job whose step failed on its `attempt`-th delivery.
pub fn failure(policy: &RetryPolicy, jitter: f64, attempt: u32, error: StepError) -> Outcome {
    match error {
        StepError::Sink(SinkError::Transient { retry_after, .. }) => {
            let reason = error.to_string();
            Outcome::Retry { delay_secs: policy.retry_delay_secs(attempt, retry_after, jitter), reason, attempt }
        }
        StepError::Platform(reason) => {
            Outcome::Retry { delay_secs: policy.retry_delay_secs(attempt, None, jitter), reason, attempt }
        }
        StepError::Sink(e @ SinkError::Permanent { .. }) => Outcome::done(JobState::Failed, e.to_string()),
    }
}

/// [`failure`], its reason prefixed with what the handler was doing.
pub fn failure_while(policy: &RetryPolicy, jitter: f64, attempt: u32, what: &str, error: StepError) -> Outcome {
    match failure(policy, jitter, attempt, error) {
        Outcome::Retry { delay_secs, reason, attempt } => {
            Outcome::Retry { delay_secs, reason: format!("{what}: {reason}"), attempt }
        }
        Outcome::Done { state, reason, links, fingerprint, effect } => {
            Outcome::Done { state, reason: reason.map(|r| format!("{what}: {r}")), links, fingerprint, effect }
        }
    }
}

/// Whether a retry is the last one the policy allows (the queue dead-letters the job after it).
pub fn is_last(policy: &RetryPolicy, outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Retry { attempt, .. } if *attempt >= policy.max_attempts)
}

#[cfg(test)]
mod tests {
    use bugbot_shared::backoff::RetryAfter;

    use super::*;

    fn transient(retry_after: Option<RetryAfter>) -> StepError {
        StepError::Sink(SinkError::Transient { service: "linear", reason: "HTTP 500".into(), retry_after })
    }

    #[test]
    fn transient_failures_retry_with_the_delivery_attempt_and_permanent_ones_fail() {
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        let retry = failure(&policy, 0.5, 2, transient(None));
        assert!(matches!(retry, Outcome::Retry { attempt: 2, .. }), "{retry:?}");
        assert!(!is_last(&policy, &retry));
        let last = failure(&policy, 0.5, 3, StepError::Platform("claim store unavailable".into()));
        assert!(is_last(&policy, &last), "{last:?}");
        let permanent = failure(
            &policy,
            0.5,
            1,
            StepError::Sink(SinkError::Permanent { service: "github", reason: "HTTP 404".into() }),
        );
        assert!(matches!(permanent, Outcome::Done { state: JobState::Failed, .. }), "{permanent:?}");
    }

    #[test]
    fn a_retry_after_the_service_asked_for_is_honoured() {
        let policy = RetryPolicy::default();
        let Outcome::Retry { delay_secs, .. } = failure(&policy, 0.0, 1, transient(Some(RetryAfter::from_ms(120_000))))
        else {
            panic!("not a retry")
        };
        assert!(delay_secs >= 120, "{delay_secs}");
    }
}
