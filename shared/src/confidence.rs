//! How sure bugbot is that an agent can fix an error unaided, from the evidence gathered, and
//! whether an alert may start a fix run on its own. A person may always ask for a fix; alerts only
//! start one when auto-fix is on, the score clears the threshold and the daily caps allow it.
//!
//! # The formula (issue 16.3; 0–100, shown as 0.00–1.00)
//! One base from what points at the code, then additions, capped at 100:
//!
//! | evidence | points | why |
//! |---|---|---|
//! | a stack trace (an in-app frame with file and line) **and** the code at that line | base 80 | the agent sees where and what failed |
//! | code only: a stack without the code, or files found without a stack (code search) | base 60 | the agent knows where to look |
//! | nothing | base 30 | a message alone |
//! | matching logs (breadcrumbs or log lines naming the error) | +10 | the sequence that led to it |
//! | a suspect commit from blame of the crash line | +5 | the change that likely introduced it |
//! | a matching runbook | +5 | the team wrote down how to handle it |
//! | a similar issue that was resolved before | +5 | it was fixed before |
//!
//! The base is the seed's rule (stack + code 0.8, code only 0.6, nothing 0.3, +0.1 for matching
//! logs); the last three are bugbot's. The default auto-fix threshold is 80: stack and code at
//! least. `docs/CONFIDENCE.md` explains it for users.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::event::ErrorEvent;

/// What evidence gathering found beyond the event itself: independent yes/no findings, one per
/// row of the formula.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[expect(clippy::struct_excessive_bools, reason = "one independent finding per row of the formula")]
pub struct Evidence {
    /// Code around the top in-app frame was fetched from the repository.
    pub code_fetched: bool,
    /// Without a stack: repository files found for the error (code search).
    #[serde(default)]
    pub files_found: bool,
    /// Breadcrumbs or log lines that name the error.
    #[serde(default)]
    pub logs_matched: bool,
    /// Blame named the commit that last changed the crash line.
    #[serde(default)]
    pub suspect_commit: bool,
    pub runbook_matched: bool,
    pub similar_resolved: bool,
}

/// A score and the signals that made it, in order (`80 stack trace and code at the line`, `+5 …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confidence {
    pub score: u8,
    pub reasons: Vec<String>,
}

/// Scores an event with the formula in the module docs.
pub fn score(event: &ErrorEvent, evidence: Evidence) -> Confidence {
    let top = event.top_in_app_frames(1).into_iter().next().filter(|f| f.path().is_some() && f.lineno.is_some());
    let stack = top.is_some();
    let code_at_line =
        evidence.code_fetched || top.is_some_and(|f| f.context_line.as_deref().is_some_and(|l| !l.trim().is_empty()));
    let (base, why): (u8, &str) = match (stack, code_at_line || evidence.files_found) {
        (true, true) if code_at_line => (80, "stack trace and the code at the crash line"),
        (true, _) => (60, "stack trace, code not found"),
        (false, true) => (60, "code found without a stack trace"),
        (false, false) => (30, "no stack trace, no code found"),
    };
    let mut score = base;
    let mut reasons = vec![format!("{base} {why}")];
    let mut add = |yes: bool, points: u8, reason: &str| {
        if yes {
            score = score.saturating_add(points);
            reasons.push(format!("+{points} {reason}"));
        }
    };
    add(evidence.logs_matched, 10, "matching logs");
    add(evidence.suspect_commit, 5, "suspect commit from blame");
    add(evidence.runbook_matched, 5, "matching runbook");
    add(evidence.similar_resolved, 5, "similar issue resolved before");
    Confidence { score: score.min(100), reasons }
}

/// `0.85`: a score as the seed writes it.
pub fn as_fraction(score: u8) -> String {
    format!("{}.{:02}", score / 100, score % 100)
}

/// The breakdown as a Markdown section for the filed issue.
pub fn breakdown_markdown(confidence: &Confidence) -> String {
    let mut md = format!("### Confidence {}\n", as_fraction(confidence.score));
    for r in &confidence.reasons {
        let (points, what) = r.split_once(' ').unwrap_or((r, ""));
        let points = points.trim_start_matches('+').parse::<u8>().map_or_else(|_| points.to_owned(), as_fraction);
        let sign = if r.starts_with('+') { "+" } else { "" };
        let _ = writeln!(md, "- {sign}{points} {what}");
    }
    md
}

/// One line for the Discord card: `Confidence 0.85 (stack trace and the code at the crash line 0.80, +0.05 suspect commit from blame)`.
pub fn card_line(confidence: &Confidence) -> String {
    let parts: Vec<String> = confidence
        .reasons
        .iter()
        .map(|r| {
            let (points, what) = r.split_once(' ').unwrap_or((r, ""));
            let value = points.trim_start_matches('+').parse::<u8>().map_or_else(|_| points.to_owned(), as_fraction);
            if r.starts_with('+') { format!("+{value} {what}") } else { format!("{what} {value}") }
        })
        .collect();
    format!("Confidence {} ({})", as_fraction(confidence.score), parts.join(", "))
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
        Self { enabled: false, threshold: 80, max_runs_per_day: 5, max_usd_per_day: 20.0 }
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
        assert_eq!(c.score, 80, "stack + code at the line (the event's own context): {:?}", c.reasons);
        let all = Evidence {
            code_fetched: true,
            files_found: false,
            logs_matched: true,
            suspect_commit: true,
            runbook_matched: true,
            similar_resolved: true,
        };
        assert_eq!(score(&full, all).score, 100, "capped");
        let logs = Evidence { logs_matched: true, ..Evidence::default() };
        assert_eq!(score(&full, logs).score, 90, "+0.1 for matching logs");
        let no_code = event(vec![frame(true, None)], Some("CustomError"));
        assert_eq!(score(&no_code, Evidence::default()).score, 60, "a stack without the code");
        let fetched = Evidence { code_fetched: true, ..Evidence::default() };
        assert_eq!(score(&no_code, fetched).score, 80, "the code fetched from the repository counts");
        let bare = event(Vec::new(), None);
        assert_eq!(score(&bare, Evidence::default()).score, 30, "nothing");
        let searched = Evidence { files_found: true, ..Evidence::default() };
        assert_eq!(score(&bare, searched).score, 60, "code only");
        assert_eq!(score(&bare, logs).score, 40);
        let library_only = event(vec![frame(false, Some("x"))], Some("KeyError"));
        assert_eq!(score(&library_only, Evidence::default()).score, 30, "a library frame is no stack of ours");
    }

    #[test]
    fn the_breakdown_is_shown() {
        let full = event(vec![frame(true, Some("total / count"))], Some("ZeroDivisionError"));
        let c = score(&full, Evidence { suspect_commit: true, ..Evidence::default() });
        assert_eq!(
            breakdown_markdown(&c),
            "### Confidence 0.85\n- 0.80 stack trace and the code at the crash line\n- +0.05 suspect commit from blame\n"
        );
        assert_eq!(
            card_line(&c),
            "Confidence 0.85 (stack trace and the code at the crash line 0.80, +0.05 suspect commit from blame)"
        );
        assert_eq!(as_fraction(100), "1.00");
    }

    #[test]
    fn the_policy() {
        let high = Confidence { score: 80, reasons: vec![] };
        let low = Confidence {
            score: 40,
            reasons: vec!["30 no stack trace, no code found".into(), "+10 matching logs".into()],
        };
        let on = AutoFixPolicy::from_vars(Some("on"), Some("70"), Some("2"), Some("5"));
        assert_eq!(AutoFixPolicy::default().threshold, 80, "the seed: a fix above 0.8");
        assert_eq!(decide(&AutoFixPolicy::default(), &high, 0, 0.0), AutoFix::Skip("auto-fix is off".into()));
        assert_eq!(decide(&on, &high, 0, 0.0), AutoFix::Run);
        assert!(
            matches!(decide(&on, &low, 0, 0.0), AutoFix::Skip(r) if r.contains("below") && r.contains("matching logs"))
        );
        assert!(matches!(decide(&on, &high, 2, 0.0), AutoFix::Skip(r) if r.contains("cap")));
        assert!(matches!(decide(&on, &high, 0, 5.0), AutoFix::Skip(r) if r.contains("budget")));
        assert_eq!(AutoFixPolicy::from_vars(Some("nope"), Some("250"), None, Some("NaN")).threshold, 100);
    }
}
