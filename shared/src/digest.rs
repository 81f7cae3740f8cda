//! The daily numbers: per-day counters (events by project and level, new vs regressed issues,
//! resolutions, failed jobs, fix runs and their spend), the comparison with the day before, the top
//! issues, and their two renderings: the Discord digest message (cron) and the Markdown answer of
//! `/bugbot stats`. Pure: the consumer keeps one [`DayStats`] per UTC day and applies [`StatsOp`]s.

use crate::report::clip;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::event::format_rfc3339_ms;

/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;
/// Issues listed in a digest.
pub const TOP_ISSUES: usize = 5;
/// Distinct issues kept per day; past it, events still count but no new issue row is added.
pub const MAX_ISSUES_PER_DAY: usize = 200;
/// Rows of a "by project" / "by level" list.
const BREAKDOWN_ROWS: usize = 8;
/// Discord's message content limit (<https://discord.com/developers/docs/resources/message#create-message>).
const CONTENT_MAX: usize = 2_000;
/// Embed limits (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
const FIELD_VALUE_MAX: usize = 1_024;
const ZWSP: char = '\u{200B}';

/// The UTC day of a Unix time in milliseconds, `YYYY-MM-DD`.
pub fn day_of(ms: u64) -> String {
    format_rfc3339_ms(ms)[..10].to_owned()
}

/// Whether an occurrence opened an issue, repeated one, or reopened a resolved one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Occurrence {
    New,
    Repeat,
    Regressed,
}

/// One change to a day's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StatsOp {
    /// An error event that reached a tracker (filed, counted or reopened).
    Event {
        fingerprint: String,
        title: String,
        #[serde(default)]
        project: Option<String>,
        level: String,
        /// The tracked issue.
        #[serde(default)]
        url: Option<String>,
        occurrence: Occurrence,
    },
    /// An issue resolved at its source.
    Resolved,
    /// A job that ended failed (permanent error or dead-lettered).
    JobFailed,
    /// A fix run ended; `outcome` is a [`crate::executor::FixOutcome`] name or `pr_opened`.
    FixRun { outcome: String, cost_usd: f64 },
}

/// One issue's numbers for a day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IssueCount {
    pub title: String,
    pub url: Option<String>,
    pub project: Option<String>,
    pub level: String,
    pub count: u64,
    /// Filed this day.
    pub new: bool,
    /// Reopened this day.
    pub regressed: bool,
}

/// Fix runs of a day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FixStats {
    pub attempted: u64,
    pub pr_opened: u64,
    pub blocked: u64,
    pub failed: u64,
    /// Model spend in US dollars.
    pub spend_usd: f64,
}

/// Everything counted on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DayStats {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub events: u64,
    pub new_issues: u64,
    pub regressed: u64,
    pub resolved: u64,
    pub failed_jobs: u64,
    pub by_project: BTreeMap<String, u64>,
    pub by_level: BTreeMap<String, u64>,
    /// By fingerprint.
    pub issues: BTreeMap<String, IssueCount>,
    pub fixes: FixStats,
}

/// The project name counted for events that have none.
pub const NO_PROJECT: &str = "(none)";

impl DayStats {
    /// An empty day.
    pub fn new(day: impl Into<String>) -> Self {
        Self { day: day.into(), ..Self::default() }
    }

    /// Counts one operation.
    pub fn apply(&mut self, op: &StatsOp) {
        match op {
            StatsOp::Event { fingerprint, title, project, level, url, occurrence } => {
                self.events += 1;
                *self.by_project.entry(project.clone().unwrap_or_else(|| NO_PROJECT.to_owned())).or_default() += 1;
                *self.by_level.entry(level.clone()).or_default() += 1;
                match occurrence {
                    Occurrence::New => self.new_issues += 1,
                    Occurrence::Regressed => self.regressed += 1,
                    Occurrence::Repeat => {}
                }
                if !self.issues.contains_key(fingerprint) && self.issues.len() >= MAX_ISSUES_PER_DAY {
                    return;
                }
                let issue = self.issues.entry(fingerprint.clone()).or_default();
                issue.title.clone_from(title);
                issue.project.clone_from(project);
                issue.level.clone_from(level);
                if url.is_some() {
                    issue.url.clone_from(url);
                }
                issue.count += 1;
                issue.new |= *occurrence == Occurrence::New;
                issue.regressed |= *occurrence == Occurrence::Regressed;
            }
            StatsOp::Resolved => self.resolved += 1,
            StatsOp::JobFailed => self.failed_jobs += 1,
            StatsOp::FixRun { outcome, cost_usd } => {
                self.fixes.attempted += 1;
                match outcome.as_str() {
                    "fixed" | "pr_opened" => self.fixes.pr_opened += 1,
                    "blocked" => self.fixes.blocked += 1,
                    "failed" | "timed_out" => self.fixes.failed += 1,
                    _ => {}
                }
                if cost_usd.is_finite() && *cost_usd > 0.0 {
                    self.fixes.spend_usd += cost_usd;
                }
            }
        }
    }

    /// The most frequent issues of the day, ties by title.
    pub fn top_issues(&self, n: usize) -> Vec<(&str, &IssueCount)> {
        let mut all: Vec<(&str, &IssueCount)> = self.issues.iter().map(|(fp, i)| (fp.as_str(), i)).collect();
        all.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.1.title.cmp(&b.1.title)));
        all.truncate(n);
        all
    }
}

/// `12 (▲ 4)` against the previous value.
fn versus(now: u64, before: u64) -> String {
    match now.cmp(&before) {
        std::cmp::Ordering::Greater => format!("{now} (▲ {})", now - before),
        std::cmp::Ordering::Less => format!("{now} (▼ {})", before - now),
        std::cmp::Ordering::Equal => format!("{now} (=)"),
    }
}

fn breakdown(today: &BTreeMap<String, u64>, previous: &BTreeMap<String, u64>) -> String {
    let mut rows: Vec<(&String, &u64)> = today.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let mut out = String::new();
    for (name, count) in rows.iter().take(BREAKDOWN_ROWS) {
        let before = previous.get(*name).copied().unwrap_or(0);
        let _ = writeln!(out, "{}: {}", discord_text(name, 60), versus(**count, before));
    }
    if rows.len() > BREAKDOWN_ROWS {
        let _ = writeln!(out, "… and {} more", rows.len() - BREAKDOWN_ROWS);
    }
    if out.is_empty() { "none".to_owned() } else { out.trim_end().to_owned() }
}

fn top_lines(today: &DayStats) -> String {
    let mut out = String::new();
    for (i, (_, issue)) in today.top_issues(TOP_ISSUES).iter().enumerate() {
        let title = discord_text(&issue.title, 80);
        let title = match issue.url.as_deref().and_then(safe_url) {
            Some(url) => format!("[{title}]({url})"),
            None => title,
        };
        let tag = match (issue.new, issue.regressed) {
            (_, true) => " · regressed",
            (true, false) => " · new",
            _ => "",
        };
        let _ = writeln!(out, "{}. {title} × {}{tag}", i + 1, issue.count);
    }
    if out.is_empty() { "none".to_owned() } else { out.trim_end().to_owned() }
}

fn fix_line(fixes: &FixStats, previous: &FixStats) -> String {
    format!(
        "{} attempted · {} PR opened · {} blocked · {} failed · ${:.2} spent (${:.2} the day before)",
        versus(fixes.attempted, previous.attempted),
        fixes.pr_opened,
        fixes.blocked,
        fixes.failed,
        fixes.spend_usd,
        previous.spend_usd
    )
}

fn summary_line(today: &DayStats, previous: &DayStats) -> String {
    format!(
        "**{}** events vs {} the day before · **{}** new · **{}** regressed · {} resolved · {} failed jobs",
        versus(today.events, previous.events),
        previous.events,
        today.new_issues,
        today.regressed,
        today.resolved,
        today.failed_jobs
    )
}

/// The digest as a Discord create-message body: one embed, no pings.
pub fn digest_message(today: &DayStats, previous: &DayStats, dashboard_url: Option<&str>) -> Value {
    let field = |name: &str, value: String| json!({"name": name, "value": clip(&value, FIELD_VALUE_MAX)});
    let mut embed = json!({
        "title": format!("bugbot daily digest: {}", today.day),
        "description": summary_line(today, previous),
        "color": 0x0058_65F2,
        "fields": [
            field("Top issues", top_lines(today)),
            field("By project", breakdown(&today.by_project, &previous.by_project)),
            field("By level", breakdown(&today.by_level, &previous.by_level)),
            field("Fix runs", fix_line(&today.fixes, &previous.fixes)),
        ],
        "footer": {"text": format!("UTC day {} compared with {}", today.day, previous.day)},
    });
    if let Some(url) = dashboard_url.and_then(safe_url) {
        embed["url"] = Value::String(url);
    }
    // Quick actions: the top issues' tracked issues and the dashboard, one click away (each
    // issue's own card carries the buttons that act on it).
    let top: Vec<(String, &str)> = today
        .top_issues(TOP_ISSUES.min(4))
        .iter()
        .enumerate()
        .filter_map(|(i, (_, issue))| issue.url.as_deref().map(|u| (format!("#{} issue", i + 1), u)))
        .collect();
    let links: Vec<(&str, &str)> = top.iter().map(|(l, u)| (l.as_str(), *u)).collect();
    let components = crate::chatops::digest_components(dashboard_url, &links);
    json!({"embeds": [embed], "components": components, "allowed_mentions": {"parse": []}})
}

/// The same numbers as Markdown, for `/bugbot stats` (fits one Discord message).
pub fn stats_message(today: &DayStats, previous: &DayStats) -> String {
    let mut out = format!("**bugbot stats for {}** (UTC, compared with {})\n", today.day, previous.day);
    let _ = writeln!(out, "{}", summary_line(today, previous));
    let _ = writeln!(out, "\n**Top issues**\n{}", top_lines(today));
    let _ = writeln!(out, "\n**By project**\n{}", breakdown(&today.by_project, &previous.by_project));
    let _ = writeln!(out, "\n**By level**\n{}", breakdown(&today.by_level, &previous.by_level));
    let _ = write!(out, "\n**Fix runs**\n{}", fix_line(&today.fixes, &previous.fixes));
    clip(&out, CONTENT_MAX)
}

/// Untrusted text for Discord Markdown: one line, clipped, escaped, mentions broken.
fn discord_text(raw: &str, max: usize) -> String {
    let one: String = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let one = clip(&one, max);
    let mut out = String::with_capacity(one.len());
    let mut chars = one.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '\\' | '`' | '*' | '_' | '~' | '|' | '>' | '<' | '[' | ']' | '(' | ')' | '#') {
            out.push('\\');
        }
        out.push(c);
        let next = chars.peek().copied();
        if c == '@' || (c == '<' && matches!(next, Some('@' | '#' | '/' | ':' | 'a' | 't'))) {
            out.push(ZWSP);
        }
    }
    out
}

/// An `http(s)` URL safe inside `[text](url)`; `None` for anything else.
fn safe_url(raw: &str) -> Option<String> {
    let url = raw.trim();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) || url.len() > 500 {
        return None;
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(url.replace('(', "%28").replace(')', "%29").replace('<', "%3C").replace('>', "%3E"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fp: &str, title: &str, project: Option<&str>, level: &str, occurrence: Occurrence) -> StatsOp {
        StatsOp::Event {
            fingerprint: fp.into(),
            title: title.into(),
            project: project.map(Into::into),
            level: level.into(),
            url: Some(format!("https://linear.app/acme/issue/{fp}")),
            occurrence,
        }
    }

    fn sample() -> (DayStats, DayStats) {
        let mut today = DayStats::new("2026-11-02");
        for op in [
            event("a", "ZeroDivisionError: division by zero", Some("api"), "error", Occurrence::New),
            event("a", "ZeroDivisionError: division by zero", Some("api"), "error", Occurrence::Repeat),
            event("a", "ZeroDivisionError: division by zero", Some("api"), "error", Occurrence::Repeat),
            event("b", "@everyone <@123> look [here](https://evil.example)", Some("web"), "warning", Occurrence::New),
            event("c", "TimeoutError", None, "error", Occurrence::Regressed),
            StatsOp::Resolved,
            StatsOp::JobFailed,
            StatsOp::FixRun { outcome: "fixed".into(), cost_usd: 0.42 },
            StatsOp::FixRun { outcome: "blocked".into(), cost_usd: 0.10 },
            StatsOp::FixRun { outcome: "timed_out".into(), cost_usd: f64::NAN },
        ] {
            today.apply(&op);
        }
        let mut previous = DayStats::new("2026-11-01");
        previous.apply(&event("a", "ZeroDivisionError: division by zero", Some("api"), "error", Occurrence::New));
        previous.apply(&event("d", "KeyError", Some("api"), "error", Occurrence::New));
        (today, previous)
    }

    #[test]
    fn day_of_is_the_utc_date() {
        assert_eq!(day_of(1_582_977_600_000), "2020-02-29");
        assert_eq!(day_of(1_582_977_600_000 + DAY_MS), "2020-03-01");
        assert_eq!(day_of(0), "1970-01-01");
    }

    #[test]
    fn counters_split_by_project_level_and_occurrence() {
        let (today, _) = sample();
        assert_eq!((today.events, today.new_issues, today.regressed), (5, 2, 1));
        assert_eq!((today.resolved, today.failed_jobs), (1, 1));
        assert_eq!(today.by_project["api"], 3);
        assert_eq!(today.by_project[NO_PROJECT], 1);
        assert_eq!(today.by_level["warning"], 1);
        assert_eq!(
            (today.fixes.attempted, today.fixes.pr_opened, today.fixes.blocked, today.fixes.failed),
            (3, 1, 1, 1)
        );
        assert!((today.fixes.spend_usd - 0.52).abs() < 1e-9, "NaN cost ignored");
        let top = today.top_issues(2);
        assert_eq!(top[0].0, "a");
        assert_eq!(top[0].1.count, 3);
        assert!(top[0].1.new && !top[0].1.regressed);
    }

    #[test]
    fn issue_rows_are_capped_but_events_still_count() {
        let mut day = DayStats::new("2026-11-02");
        for i in 0..MAX_ISSUES_PER_DAY + 5 {
            day.apply(&event(&format!("fp{i}"), "t", None, "error", Occurrence::New));
        }
        assert_eq!(day.issues.len(), MAX_ISSUES_PER_DAY);
        assert_eq!(day.events, u64::try_from(MAX_ISSUES_PER_DAY + 5).unwrap());
    }

    #[test]
    fn day_stats_round_trip_as_json_and_tolerate_missing_fields() {
        let (today, _) = sample();
        let text = serde_json::to_string(&today).unwrap();
        assert_eq!(serde_json::from_str::<DayStats>(&text).unwrap(), today);
        let old: DayStats = serde_json::from_str(r#"{"day":"2026-01-01","events":3}"#).unwrap();
        assert_eq!(old.events, 3);
    }

    #[test]
    fn digest_message_pings_no_one_and_compares_with_the_day_before() {
        let (today, previous) = sample();
        let message = digest_message(&today, &previous, Some("https://bugbot.example/admin/dashboard"));
        assert_eq!(message["allowed_mentions"], json!({"parse": []}));
        // Quick actions: link buttons only (nothing on the digest acts without the issue's card).
        let buttons = message["components"][0]["components"].as_array().unwrap();
        assert_eq!(buttons.last().unwrap()["url"], "https://bugbot.example/admin/dashboard");
        assert!(buttons.iter().all(|b| b["style"] == 5 && b.get("custom_id").is_none()), "{buttons:?}");
        let embed = &message["embeds"][0];
        assert_eq!(embed["title"], "bugbot daily digest: 2026-11-02");
        let description = embed["description"].as_str().unwrap();
        assert!(description.starts_with("**5 (▲ 3)** events vs 2 the day before"), "{description}");
        let text = message.to_string();
        assert!(!text.contains("@everyone"), "mention broken: {text}");
        assert!(!text.contains("<@123>"), "{text}");
        assert!(!text.contains("](https://evil.example)"), "no injected link: {text}");
        let top = embed["fields"][0]["value"].as_str().unwrap();
        assert!(
            top.starts_with("1. [ZeroDivisionError: division by zero](https://linear.app/acme/issue/a) × 3 · new\n2. "),
            "{top}"
        );
        assert!(top.contains("TimeoutError](https://linear.app/acme/issue/c) × 1 · regressed"), "{top}");
        assert_eq!(embed["fields"][1]["value"], "api: 3 (▲ 1)\n\\(none\\): 1 (▲ 1)\nweb: 1 (▲ 1)");
        assert!(embed["fields"][3]["value"].as_str().unwrap().contains("$0.52 spent"));
        for field in embed["fields"].as_array().unwrap() {
            assert!(field["value"].as_str().unwrap().chars().count() <= FIELD_VALUE_MAX);
        }
    }

    #[test]
    fn stats_message_has_the_same_numbers_and_fits_a_message() {
        let (today, previous) = sample();
        let text = stats_message(&today, &previous);
        assert!(text.contains("**5 (▲ 3)** events"), "{text}");
        assert!(text.contains("3 (▲ 3) attempted · 1 PR opened · 1 blocked · 1 failed"), "{text}");
        assert!(text.chars().count() <= CONTENT_MAX);
        let empty = stats_message(&DayStats::new("2026-11-03"), &DayStats::new("2026-11-02"));
        assert!(empty.contains("**0 (=)** events vs 0"), "{empty}");
        assert!(empty.contains("**Top issues**\nnone"), "{empty}");
    }
}
