//! The status page: one self-contained HTML document (inline CSS, an inline SVG chart of errors
//! per day; no script, no external asset), rendered from a [`DashboardModel`] the consumer reads
//! out of KV and the stats store. Every string from a payload or the store is escaped.

use crate::report::clip;
use std::fmt::Write as _;

use crate::digest::DayStats;
use crate::event::format_utc_ms;
use crate::status::JobStatus;

/// A tracked issue, as the page shows it (and as the ledger lists it: the consumer settles one per
/// alert that reached a tracker).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssueRow {
    pub fingerprint: String,
    pub title: String,
    pub level: String,
    pub project: Option<String>,
    pub source: String,
    pub occurrences: u64,
    pub last_seen_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

impl IssueRow {
    /// What the list holds of an issue once `seen` (an alert that reached it) is added to `held`:
    /// the facts of the later event, the larger counters, and links when there are any (a repeat
    /// counted while the issue was being filed has none yet). An issue with no links is not listed
    /// until it is filed (its filing may be given up).
    pub fn listed(held: Option<Self>, seen: Self) -> Option<Self> {
        let Some(held) = held else { return (!seen.links.is_empty()).then_some(seen) };
        let occurrences = held.occurrences.max(seen.occurrences);
        let last_seen_ms = held.last_seen_ms.max(seen.last_seen_ms);
        let (older, newer) = if seen.last_seen_ms >= held.last_seen_ms { (held, seen) } else { (seen, held) };
        let links = if newer.links.is_empty() { older.links } else { newer.links };
        Some(Self { occurrences, last_seen_ms, links, ..newer })
    }
}

/// A dead letter, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRow {
    pub job_id: String,
    pub kind: String,
    pub reason: String,
    pub dead_at_ms: u64,
}

/// An integration and whether this deployment has it configured (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub name: &'static str,
    pub configured: bool,
    /// Non-secret detail (a team id, `owner/repo`, a channel id).
    pub detail: Option<String>,
}

/// Everything on the page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardModel {
    pub generated_at_ms: u64,
    /// Most recent first.
    pub jobs: Vec<JobStatus>,
    /// Most recently seen first.
    pub issues: Vec<IssueRow>,
    pub dead_letters: Vec<DeadLetterRow>,
    pub integrations: Vec<Integration>,
    /// Oldest first; one per day of the chart (empty days included).
    pub days: Vec<DayStats>,
    /// Set when a listing was cut short (KV lists are paged).
    pub truncated: bool,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A link if `url` is `http(s)`, else the escaped text alone.
fn link(url: &str, text: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        format!("<a href=\"{}\" rel=\"noreferrer noopener\">{}</a>", escape(url.trim()), escape(text))
    } else {
        escape(text)
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}\
header{background:#24292f;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}\
main{padding:16px 24px;max-width:1200px}section{background:#fff;border:1px solid #d0d7de;border-radius:6px;\
padding:12px 16px;margin-bottom:16px}h2{font-size:16px;margin:0 0 8px}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}th{font-weight:600}\
.num{text-align:right}.ok{color:#1a7f37}.off{color:#8c959f}.bad{color:#cf222e}.warn{color:#9a6700}\
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;\
min-width:120px}.card b{display:block;font-size:22px}code{font-size:12px}small{color:#57606a}";

/// The whole page.
pub fn render(model: &DashboardModel) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\"><title>bugbot status</title>");
    let _ = write!(out, "<style>{STYLE}</style></head><body>");
    let _ = write!(
        out,
        "<header><h1>bugbot status</h1><small>generated {}</small></header><main>",
        escape(&format_utc_ms(model.generated_at_ms))
    );
    cards(&mut out, model);
    let _ = write!(out, "<section id=\"chart\"><h2>Errors per day</h2>{}</section>", chart_svg(&model.days));
    fix_runs(&mut out, model);
    issues(&mut out, model);
    jobs(&mut out, model);
    dead_letters(&mut out, model);
    integrations(&mut out, model);
    if model.truncated {
        out.push_str("<p><small>Some lists were cut short; the JSON routes under /admin have the rest.</small></p>");
    }
    out.push_str("</main></body></html>");
    out
}

fn cards(out: &mut String, model: &DashboardModel) {
    let today = model.days.last().cloned().unwrap_or_default();
    let week: u64 = model.days.iter().rev().take(7).map(|d| d.events).sum();
    let spend: f64 = model.days.iter().map(|d| d.fixes.spend_usd).sum();
    out.push_str("<section id=\"summary\"><div class=\"cards\">");
    for (label, value) in [
        ("events today", today.events.to_string()),
        ("new issues today", today.new_issues.to_string()),
        ("regressed today", today.regressed.to_string()),
        ("events, 7 days", week.to_string()),
        ("dead letters", model.dead_letters.len().to_string()),
        (&format!("fix spend, {} days", model.days.len()), format!("${spend:.2}")),
    ] {
        let _ = write!(out, "<div class=\"card\"><b>{}</b>{}</div>", escape(&value), escape(label));
    }
    out.push_str("</div></section>");
}

/// A bar chart of events per day (new issues darker inside each bar), as inline SVG.
pub fn chart_svg(days: &[DayStats]) -> String {
    const W: u64 = 720;
    const H: u64 = 200;
    const TOP: u64 = 20;
    const BOTTOM: u64 = 30;
    const LEFT: u64 = 40;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         role=\"img\" aria-label=\"Errors per day\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let max = days.iter().map(|d| d.events).max().unwrap_or(0).max(1);
    let plot_h = H - TOP - BOTTOM;
    let base = H - BOTTOM;
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{W}\" y2=\"{base}\" stroke=\"#8c959f\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max}</text><text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        LEFT - 4,
        TOP + 4,
        LEFT - 4
    );
    let n = u64::try_from(days.len()).unwrap_or(1).max(1);
    let slot = (W - LEFT) / n;
    let bar = (slot * 7 / 10).max(2);
    for (i, day) in (0u64..).zip(days) {
        let x = LEFT + i * slot + (slot - bar) / 2;
        let h = day.events * plot_h / max;
        let new_h = day.new_issues.min(day.events) * plot_h / max;
        let _ = write!(
            out,
            "<g><title>{}: {} events, {} new, {} regressed</title>\
             <rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{h}\" fill=\"#54aeff\"/>\
             <rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{new_h}\" fill=\"#0969da\"/>",
            escape(&day.day),
            day.events,
            day.new_issues,
            day.regressed,
            base - h,
            base - new_h
        );
        if day.events > 0 {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2,
                base - h - 3,
                day.events
            );
        }
        let label = day.day.get(5..).unwrap_or(&day.day);
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            x + bar / 2,
            base + 14,
            escape(label)
        );
    }
    let _ = write!(
        out,
        "<rect x=\"{LEFT}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#54aeff\"/><text x=\"{}\" y=\"{}\">events</text>\
         <rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#0969da\"/><text x=\"{}\" y=\"{}\">new issues</text></svg>",
        H - 11,
        LEFT + 14,
        H - 2,
        LEFT + 70,
        H - 11,
        LEFT + 84,
        H - 2
    );
    out
}

fn fix_runs(out: &mut String, model: &DashboardModel) {
    out.push_str("<section id=\"fixes\"><h2>Fix runs</h2>");
    let days: Vec<&DayStats> = model.days.iter().rev().filter(|d| d.fixes.attempted > 0).collect();
    if days.is_empty() {
        out.push_str("<p class=\"off\">No fix runs in this period.</p>");
    } else {
        out.push_str(
            "<table><tr><th>day</th><th class=\"num\">attempted</th><th class=\"num\">PRs opened</th>\
             <th class=\"num\">blocked</th><th class=\"num\">failed</th><th class=\"num\">spend</th></tr>",
        );
        for d in days {
            let f = &d.fixes;
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num ok\">{}</td><td class=\"num warn\">{}</td>\
                 <td class=\"num bad\">{}</td><td class=\"num\">${:.2}</td></tr>",
                escape(&d.day),
                f.attempted,
                f.pr_opened,
                f.blocked,
                f.failed,
                f.spend_usd
            );
        }
        out.push_str("</table>");
    }
    let runs: Vec<&JobStatus> = model
        .jobs
        .iter()
        .filter(|j| j.kind.contains("executor") || matches!(state_name(j).as_str(), "fixing" | "pr_opened"))
        .collect();
    if !runs.is_empty() {
        out.push_str("<h2>Recent fix jobs</h2>");
        job_table(out, &runs);
    }
    out.push_str("</section>");
}

fn issues(out: &mut String, model: &DashboardModel) {
    out.push_str("<section id=\"issues\"><h2>Issues</h2>");
    if model.issues.is_empty() {
        out.push_str("<p class=\"off\">No tracked issues yet.</p></section>");
        return;
    }
    out.push_str(
        "<table><tr><th>issue</th><th>level</th><th>project</th><th>source</th><th class=\"num\">seen</th>\
         <th>last seen</th><th>tracked in</th></tr>",
    );
    for issue in &model.issues {
        let links: Vec<String> = issue.links.iter().map(|u| link(u, tracker_name(u))).collect();
        let _ = write!(
            out,
            "<tr><td>{}<br><small><code>{}</code></small></td><td class=\"{}\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&clip(&issue.title, 140)),
            escape(&issue.fingerprint),
            level_class(&issue.level),
            escape(&issue.level),
            escape(issue.project.as_deref().unwrap_or("")),
            escape(&issue.source),
            issue.occurrences,
            escape(&format_utc_ms(issue.last_seen_ms)),
            links.join(" · ")
        );
    }
    out.push_str("</table></section>");
}

fn tracker_name(url: &str) -> &'static str {
    if url.contains("linear") {
        "Linear"
    } else if url.contains("github") {
        "GitHub"
    } else {
        "link"
    }
}

fn level_class(level: &str) -> &'static str {
    match level {
        "fatal" | "error" => "bad",
        "warning" => "warn",
        _ => "off",
    }
}

fn state_name(job: &JobStatus) -> String {
    serde_json::to_value(job.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn job_table(out: &mut String, jobs: &[&JobStatus]) {
    out.push_str(
        "<table><tr><th>updated</th><th>job</th><th>kind</th><th>state</th><th>reason</th><th>links</th></tr>",
    );
    for job in jobs {
        let state = state_name(job);
        let class = match state.as_str() {
            "failed" => "bad",
            "retrying" => "warn",
            "filed" | "done" | "pr_opened" => "ok",
            _ => "off",
        };
        let links: Vec<String> = job.links.iter().map(|u| link(u, tracker_name(u))).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&format_utc_ms(job.updated_at_ms)),
            escape(&clip(&job.job_id, 40)),
            escape(&job.kind),
            escape(&state),
            escape(&clip(job.reason.as_deref().unwrap_or(""), 200)),
            links.join(" · ")
        );
    }
    out.push_str("</table>");
}

fn jobs(out: &mut String, model: &DashboardModel) {
    out.push_str("<section id=\"events\"><h2>Recent events</h2>");
    if model.jobs.is_empty() {
        out.push_str("<p class=\"off\">No jobs recorded yet.</p>");
    } else {
        let jobs: Vec<&JobStatus> = model.jobs.iter().collect();
        job_table(out, &jobs);
    }
    out.push_str("</section>");
}

fn dead_letters(out: &mut String, model: &DashboardModel) {
    out.push_str("<section id=\"dead-letters\"><h2>Dead-letter queue</h2>");
    if model.dead_letters.is_empty() {
        out.push_str("<p class=\"ok\">Empty.</p></section>");
        return;
    }
    out.push_str("<table><tr><th>dead since</th><th>job</th><th>kind</th><th>reason</th></tr>");
    for letter in &model.dead_letters {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"bad\">{}</td></tr>",
            escape(&format_utc_ms(letter.dead_at_ms)),
            escape(&clip(&letter.job_id, 40)),
            escape(&letter.kind),
            escape(&clip(&letter.reason, 300))
        );
    }
    out.push_str(
        "</table><p><small>Replay one with <code>POST /admin/dead-letters/{job_id}/replay</code>.</small></p></section>",
    );
}

fn integrations(out: &mut String, model: &DashboardModel) {
    out.push_str("<section id=\"integrations\"><h2>Integrations</h2><table>");
    for i in &model.integrations {
        let (class, word) = if i.configured { ("ok", "configured") } else { ("off", "not configured") };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td></tr>",
            escape(i.name),
            escape(i.detail.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table></section>");
}

#[cfg(test)]
mod listed_tests {
    use super::IssueRow;

    fn row(title: &str, occurrences: u64, last_seen_ms: u64, links: &[&str]) -> IssueRow {
        IssueRow {
            fingerprint: "sentry:1".into(),
            title: title.into(),
            level: "error".into(),
            project: None,
            source: "sentry".into(),
            occurrences,
            last_seen_ms,
            links: links.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    /// The list keeps the later event's facts whatever order batches settle in, the larger
    /// counters, the links once known, and no issue that was never filed.
    #[test]
    fn an_issue_is_listed_once_filed_with_its_latest_facts() {
        assert_eq!(IssueRow::listed(None, row("counted while filing", 2, 5, &[])), None);
        let filed = IssueRow::listed(None, row("first", 1, 10, &["https://linear.app/x/issue/ENG-1"])).unwrap();
        let later = IssueRow::listed(Some(filed.clone()), row("renamed", 3, 20, &[])).unwrap();
        assert_eq!(later, row("renamed", 3, 20, &["https://linear.app/x/issue/ENG-1"]));
        // A retried older batch settling late changes no fact, only what it counted more of.
        let late = IssueRow::listed(Some(later.clone()), row("first", 4, 10, &[])).unwrap();
        assert_eq!(late, row("renamed", 4, 20, &["https://linear.app/x/issue/ENG-1"]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Occurrence, StatsOp};
    use crate::status::JobState;

    fn model() -> DashboardModel {
        let mut days: Vec<DayStats> = (1..=3).map(|d| DayStats::new(format!("2026-11-0{d}"))).collect();
        for _ in 0..4 {
            days[2].apply(&StatsOp::Event {
                fingerprint: "fp1".into(),
                title: "boom".into(),
                project: Some("api".into()),
                level: "error".into(),
                url: None,
                occurrence: Occurrence::New,
            });
        }
        days[2].apply(&StatsOp::FixRun { outcome: "fixed".into(), cost_usd: 1.5 });
        DashboardModel {
            generated_at_ms: 1_793_577_600_000,
            jobs: vec![JobStatus {
                job_id: "sentry-1".into(),
                kind: "sentry_webhook".into(),
                state: JobState::Filed,
                received_at_ms: 1,
                updated_at_ms: 2,
                attempts: 1,
                reason: Some("<script>alert(1)</script>".into()),
                request_id: None,
                links: vec!["https://linear.app/x".into(), "javascript:alert(1)".into()],
            }],
            issues: vec![IssueRow {
                fingerprint: "fp1".into(),
                title: "\"><img src=x onerror=alert(1)>".into(),
                level: "error".into(),
                project: Some("api".into()),
                source: "sentry".into(),
                occurrences: 4,
                last_seen_ms: 3,
                links: vec!["https://github.com/acme/shop/issues/1".into()],
            }],
            dead_letters: vec![DeadLetterRow {
                job_id: "doomed".into(),
                kind: "sentry_webhook".into(),
                reason: "linear: HTTP 500 & more".into(),
                dead_at_ms: 4,
            }],
            integrations: vec![
                Integration { name: "Linear", configured: true, detail: Some("team-1".into()) },
                Integration { name: "PostHog", configured: false, detail: None },
            ],
            days,
            truncated: false,
        }
    }

    #[test]
    fn escapes_every_untrusted_string() {
        let html = render(&model());
        assert!(!html.contains("<script"), "no script at all");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("href=\"javascript:"), "only http(s) links");
        assert!(html.contains("linear: HTTP 500 &amp; more"));
        assert!(!html.contains("src=\"http") && !html.contains("<link"), "no external assets");
    }

    #[test]
    fn has_every_section_and_the_chart() {
        let html = render(&model());
        for id in ["summary", "chart", "fixes", "issues", "events", "dead-letters", "integrations"] {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(html.contains("<svg") && html.contains("2026-11-03: 4 events, 4 new, 0 regressed"));
        assert!(html.contains("<td class=\"ok\">configured</td><td>team-1</td>"));
        assert!(html.contains("<td class=\"num\">$1.50</td>"));
    }

    #[test]
    fn chart_scales_to_the_busiest_day_and_survives_no_data() {
        let svg = chart_svg(&model().days);
        // 4 events is the max: the bar fills the plot height (150 px) from y = 20.
        assert!(svg.contains("y=\"20\" width=\"158\" height=\"150\""), "{svg}");
        let empty = chart_svg(&[]);
        assert!(empty.starts_with("<svg") && empty.ends_with("</svg>"));
    }
}
