//! How sure bugbot is that an agent can fix an error unaided, and whether an alert may start a fix
//! run on its own. A person may always ask for a fix; alerts only start one when auto-fix is on,
//! the score clears the threshold and the daily caps allow it.
//!
//! # The formula (0–100, additive, capped at 100)
//! | signal | points | why |
//! |---|---|---|
//! | at least one in-app frame | 25 | the failure is in the team's code, not a library |
//! | the top in-app frame has a file and a line | 20 | the agent knows where to look |
//! | the code at that line is known (event context, or fetched) | 15 | the agent sees what failed |
//! | a well-known error class (`TypeError`, `KeyError`, `ZeroDivisionError`, …) | 15 | local, usually mechanical fixes |
//! | a matching runbook | 10 | the team wrote down how to handle it |
//! | a similar issue that was resolved | 15 | it was fixed before |
//!
//! With the default threshold of 70 an alert needs the location, the code and the error class, or a
//! precedent; a bare message without a stack trace never starts a run by itself.

use serde::{Deserialize, Serialize};

use crate::event::ErrorEvent;

/// Error classes whose fixes are usually local and mechanical.
const KNOWN_CLASSES: &[&str] = &[
    "AttributeError",
    "IndexError",
    "KeyError",
    "NameError",
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
    "UnboundLocalError",
    "ReferenceError",
    "RangeError",
    "NullPointerException",
    "ArrayIndexOutOfBoundsException",
    "ClassCastException",
    "NumberFormatException",
    "IllegalArgumentException",
    "NoMethodError",
    "ArgumentError",
    "TemplateSyntaxError",
];

/// What context gathering found beyond the event itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Code around the top in-app frame was fetched from the repository.
    pub code_fetched: bool,
    pub runbook_matched: bool,
    pub similar_resolved: bool,
}

/// A score and the signals that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confidence {
    pub score: u8,
    pub reasons: Vec<String>,
}

/// Scores an event with the formula in the module docs.
pub fn score(event: &ErrorEvent, evidence: Evidence) -> Confidence {
    let mut score = 0u8;
    let mut reasons = Vec::new();
    let mut add = |points: u8, reason: &str| {
        score = score.saturating_add(points);
        reasons.push(format!("+{points} {reason}"));
    };
    let top = event.top_in_app_frames(1).into_iter().next();
    if let Some(frame) = top {
        add(25, "in-app frame");
        if frame.path().is_some() && frame.lineno.is_some() {
            add(20, "file and line known");
        }
        if evidence.code_fetched || frame.context_line.as_deref().is_some_and(|l| !l.trim().is_empty()) {
            add(15, "code at the line known");
        }
    }
    let class = event.exception.as_ref().and_then(|e| e.kind.as_deref()).unwrap_or_default();
    let class = class.rsplit(['.', ':']).next().unwrap_or(class);
    if KNOWN_CLASSES.contains(&class) {
        add(15, "well-known error class");
    }
    if evidence.runbook_matched {
        add(10, "matching runbook");
    }
    if evidence.similar_resolved {
        add(15, "similar issue resolved before");
    }
    Confidence { score: score.min(100), reasons }
}

/// The auto-fix policy, from configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoFixPolicy {
    pub enabled: bool,
    /// Minimum score (0–100).
    pub threshold: u8,
    pub max_runs_per_day: u32,
    pub max_usd_per_day: f64,
}

impl Default for AutoFixPolicy {
    fn default() -> Self {
        Self { enabled: false, threshold: 70, max_runs_per_day: 5, max_usd_per_day: 20.0 }
    }
}

impl AutoFixPolicy {
    /// From `AUTO_FIX` (`on`/`true`/`1`), `AUTO_FIX_THRESHOLD`, `AUTO_FIX_MAX_RUNS_PER_DAY`, `AUTO_FIX_MAX_USD_PER_DAY`.
    pub fn from_vars(enabled: Option<&str>, threshold: Option<&str>, runs: Option<&str>, usd: Option<&str>) -> Self {
        let d = Self::default();
        Self {
            enabled: enabled
                .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "on" | "true" | "1" | "yes")),
            threshold: threshold.and_then(|v| v.trim().parse().ok()).map_or(d.threshold, |t: u8| t.min(100)),
            max_runs_per_day: runs.and_then(|v| v.trim().parse().ok()).unwrap_or(d.max_runs_per_day),
            max_usd_per_day: usd
                .and_then(|v| v.trim().parse().ok())
                .filter(|v: &f64| v.is_finite())
                .unwrap_or(d.max_usd_per_day),
        }
    }
}

/// Whether an alert starts a fix run.
#[derive(Debug, Clone, PartialEq)]
pub enum AutoFix {
    Run,
    /// Not run; the reason goes on the issue as a note.
    Skip(String),
}

/// Applies the policy to a score and today's usage.
pub fn decide(policy: &AutoFixPolicy, confidence: &Confidence, runs_today: u32, usd_today: f64) -> AutoFix {
    if !policy.enabled {
        return AutoFix::Skip("auto-fix is off".into());
    }
    if confidence.score < policy.threshold {
        return AutoFix::Skip(format!(
            "confidence {} is below the auto-fix threshold {} ({})",
            confidence.score,
            policy.threshold,
            confidence.reasons.join(", ")
        ));
    }
    if runs_today >= policy.max_runs_per_day {
        return AutoFix::Skip(format!("the daily cap of {} auto-fix runs is reached", policy.max_runs_per_day));
    }
    if usd_today >= policy.max_usd_per_day {
        return AutoFix::Skip(format!("the daily auto-fix budget of ${:.2} is spent", policy.max_usd_per_day));
    }
    AutoFix::Run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExceptionInfo, Fingerprint, Frame, Source};

    fn event(frames: Vec<Frame>, class: Option<&str>) -> ErrorEvent {
        ErrorEvent {
            exception: class.map(|c| ExceptionInfo { kind: Some(c.into()), value: None, module: None }),
            frames,
            ..ErrorEvent::bare(Source::Sentry, Fingerprint::from_id("sentry", "1"), "t".into(), None, 0)
        }
    }

    fn frame(in_app: bool, context: Option<&str>) -> Frame {
        Frame {
            filename: Some("app/views.py".into()),
            abs_path: Some("/app/app/views.py".into()),
            lineno: Some(12),
            colno: None,
            function: Some("checkout".into()),
            module: Some("app.views".into()),
            in_app,
            context_line: context.map(Into::into),
            pre_context: Vec::new(),
            post_context: Vec::new(),
        }
    }

    #[test]
    fn the_formula() {
        let full = event(vec![frame(true, Some("total / count"))], Some("builtins.ZeroDivisionError"));
        let c = score(&full, Evidence::default());
        assert_eq!(c.score, 75, "{:?}", c.reasons);
        let c = score(&full, Evidence { runbook_matched: true, similar_resolved: true, code_fetched: true });
        assert_eq!(c.score, 100);
        let library_only = event(vec![frame(false, Some("x"))], Some("KeyError"));
        assert_eq!(score(&library_only, Evidence::default()).score, 15);
        let bare = event(Vec::new(), None);
        assert_eq!(score(&bare, Evidence::default()).score, 0);
        let fetched = event(vec![frame(true, None)], Some("CustomError"));
        assert_eq!(score(&fetched, Evidence { code_fetched: true, ..Evidence::default() }).score, 60);
    }

    #[test]
    fn the_policy() {
        let high = Confidence { score: 80, reasons: vec![] };
        let low = Confidence { score: 40, reasons: vec!["+25 in-app frame".into()] };
        let on = AutoFixPolicy::from_vars(Some("on"), Some("70"), Some("2"), Some("5"));
        assert_eq!(decide(&AutoFixPolicy::default(), &high, 0, 0.0), AutoFix::Skip("auto-fix is off".into()));
        assert_eq!(decide(&on, &high, 0, 0.0), AutoFix::Run);
        assert!(matches!(decide(&on, &low, 0, 0.0), AutoFix::Skip(r) if r.contains("below") && r.contains("in-app")));
        assert!(matches!(decide(&on, &high, 2, 0.0), AutoFix::Skip(r) if r.contains("cap")));
        assert!(matches!(decide(&on, &high, 0, 5.0), AutoFix::Skip(r) if r.contains("budget")));
        assert_eq!(AutoFixPolicy::from_vars(Some("nope"), Some("250"), None, Some("NaN")).threshold, 100);
    }
}
