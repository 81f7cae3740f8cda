//! The per-day counters and the ledger's issue list observe what a job did: its typed [`Effect`],
//! never its reason text.

use bugbot_shared::backoff::RetryPolicy;
use bugbot_shared::digest::StatsOp;
use bugbot_shared::status::JobState;

use super::outcome::{Effect, Outcome};
use super::settle;

/// What a settled job adds to the day's counters, if anything.
pub fn stats_op(outcome: &Outcome, policy: &RetryPolicy) -> Option<StatsOp> {
    if settle::is_last(policy, outcome) {
        return Some(StatsOp::JobFailed);
    }
    let Outcome::Done { state, effect, .. } = outcome else { return None };
    if *state == JobState::Failed {
        return Some(StatsOp::JobFailed);
    }
    match effect {
        Effect::Filed { occurrence, alert } => Some(StatsOp::Event {
            fingerprint: alert.fingerprint.clone(),
            title: alert.title.clone(),
            project: alert.project.clone(),
            level: alert.level.clone(),
            url: alert.url(),
            occurrence: *occurrence,
        }),
        Effect::Resolved => Some(StatsOp::Resolved),
        Effect::FixFinished { outcome, cost_usd } => {
            Some(StatsOp::FixRun { outcome: outcome.clone(), cost_usd: *cost_usd })
        }
        Effect::None | Effect::FixStarted | Effect::Skipped { .. } => None,
    }
}

/// The issue a settled job saw, for the ledger's issue list (the dashboard's), if any.
pub fn issue_row(outcome: &Outcome) -> Option<bugbot_shared::dashboard::IssueRow> {
    match outcome {
        Outcome::Done { effect: Effect::Filed { alert, .. }, .. } => Some(alert.row()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use bugbot_shared::digest::Occurrence;

    use super::*;
    use crate::runtime::outcome::AlertSummary;

    fn done(state: JobState, effect: Effect) -> Outcome {
        Outcome::done(state, None).with_effect(effect)
    }

    fn alert() -> AlertSummary {
        AlertSummary {
            fingerprint: "fp".into(),
            title: "TypeError".into(),
            project: Some("web".into()),
            level: "error".into(),
            source: "sentry".into(),
            links: vec!["https://linear.app/x/issue/ENG-1".into()],
            occurrences: 1,
            last_seen_ms: 0,
        }
    }

    #[test]
    fn the_counters_follow_the_typed_effect() {
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        let filed = |occurrence| done(JobState::Filed, Effect::Filed { occurrence, alert: Box::new(alert()) });
        for occurrence in [Occurrence::New, Occurrence::Repeat, Occurrence::Regressed] {
            let op = stats_op(&filed(occurrence), &policy);
            assert!(matches!(op, Some(StatsOp::Event { occurrence: o, .. }) if o == occurrence), "{op:?}");
        }
        // A repeat counted while another job files the issue is still a repeat.
        let pending =
            done(JobState::Duplicate, Effect::Filed { occurrence: Occurrence::Repeat, alert: Box::new(alert()) });
        assert!(matches!(stats_op(&pending, &policy), Some(StatsOp::Event { occurrence: Occurrence::Repeat, .. })));
        assert_eq!(stats_op(&done(JobState::Done, Effect::Resolved), &policy), Some(StatsOp::Resolved));
        assert_eq!(stats_op(&done(JobState::Duplicate, Effect::None), &policy), None);
        let skipped = done(JobState::Ignored, Effect::Skipped { reason: "filtered: level".into() });
        assert_eq!(stats_op(&skipped, &policy), None);
        assert_eq!(stats_op(&done(JobState::Failed, Effect::None), &policy), Some(StatsOp::JobFailed));
        let fix = done(JobState::PrOpened, Effect::FixFinished { outcome: "pr_opened".into(), cost_usd: 0.5 });
        assert_eq!(stats_op(&fix, &policy), Some(StatsOp::FixRun { outcome: "pr_opened".into(), cost_usd: 0.5 }));
        let retry = |attempt| Outcome::Retry { delay_secs: 1, reason: "x".into(), attempt };
        assert_eq!(stats_op(&retry(1), &policy), None);
        assert_eq!(stats_op(&retry(3), &policy), Some(StatsOp::JobFailed));
    }
}
