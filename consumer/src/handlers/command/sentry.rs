//! errors, stats and resolve, over the Sentry-compatible REST API (so they serve Sentry and
//! GlitchTip alike).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bugbot_shared::command::{IssueRef, StatsPeriod};
use bugbot_shared::job::InteractionContext;
use bugbot_shared::references::{Reference, extract};
use bugbot_shared::status::JobState;

use super::reply;
use crate::clients::SinkError;
use crate::clients::http::HttpPort;
use crate::clients::sentry_api::{ApiIssue, SentryApi};
use crate::config::binding;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome, StepError};

fn api<'a, P: HttpPort>(ctx: &Ctx<'a, P>) -> Result<SentryApi<'a, P>, StepError> {
    let env = ctx.env;
    let missing = || {
        StepError::Sink(SinkError::Permanent {
            service: "sentry_api",
            reason: "not configured (SENTRY_API_TOKEN, SENTRY_ORG)".into(),
        })
    };
    Ok(SentryApi {
        port: ctx.port,
        api_base: binding(env, "SENTRY_API_BASE").unwrap_or_else(|| "https://sentry.io".into()),
        token: binding(env, "SENTRY_API_TOKEN").ok_or_else(missing)?,
        org: binding(env, "SENTRY_ORG").ok_or_else(missing)?,
    })
}

fn done(reason: String) -> Outcome {
    Outcome::Done {
        state: JobState::Done,
        reason: Some(reason),
        links: Vec::new(),
        fingerprint: None,
        effect: Effect::None,
    }
}

fn link(api: &SentryApi<'_, impl HttpPort>, issue: &ApiIssue) -> String {
    issue.permalink.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| api.issue_page(&issue.id))
}

fn one_line(text: &str) -> String {
    super::clip(&text.replace(['\n', '\r'], " ").replace(['[', ']', '`', '@'], ""), 90)
}

/// `/bugbot errors [project] [hours]`: the top unresolved issues in the window.
pub async fn errors<P: HttpPort>(
    ctx: &Ctx<'_, P>,
    ix: &InteractionContext,
    project: Option<&str>,
    hours: Option<u32>,
) -> Result<Outcome, StepError> {
    let api = api(ctx)?;
    let hours = hours.unwrap_or(24);
    let mut query = "is:unresolved".to_owned();
    if let Some(p) = project {
        let _ = write!(query, " project:{}", p.replace(char::is_whitespace, ""));
    }
    let issues = api.list_issues(&query, &format!("{hours}h"), 10).await?;
    let scope = project.map(|p| format!(" in `{p}`")).unwrap_or_default();
    let mut text = format!("**Top unresolved errors{scope}, last {hours} h**");
    if issues.is_empty() {
        text.push_str("\nNothing unresolved. 🎉");
    }
    for (i, issue) in issues.iter().enumerate() {
        let _ = write!(
            text,
            "\n{}. [{}](<{}>) — {} events, {} users{}",
            i + 1,
            one_line(&issue.title),
            link(&api, issue),
            issue.count.as_deref().unwrap_or("?"),
            issue.user_count.unwrap_or(0),
            issue.project_slug().map(|p| format!(", {p}")).unwrap_or_default()
        );
    }
    reply(ctx, ix, &text).await?;
    Ok(done(format!("errors: {} issues", issues.len())))
}

/// `/bugbot stats [period]`: event counts by project and level, and the trend (issues new in the
/// window against those carried over).
/// `/bugbot stats`: bugbot's own counters (the daily digest's numbers: events, new, regressed,
/// resolved, fix runs and spend, today against yesterday), then the source's view of the window
/// when the Sentry-compatible API is configured.
pub async fn stats<P: HttpPort>(
    ctx: &Ctx<'_, P>,
    ix: &InteractionContext,
    period: StatsPeriod,
) -> Result<Outcome, StepError> {
    let own = match crate::store::objects::stats::load_days(ctx.env, ctx.now_ms, 2).await {
        Ok(days) if days.len() == 2 => Some(bugbot_shared::digest::stats_message(&days[1], &days[0])),
        _ => None,
    };
    let source = match api(ctx) {
        Ok(api) => Some(source_stats(ctx, &api, period).await?),
        Err(_) => None,
    };
    let (text, summary) = match (own, source) {
        (Some(own), Some((source, n))) => (format!("{own}\n{source}"), format!("stats: {n} source issues")),
        (Some(own), None) => (own, "stats: bugbot counters".to_owned()),
        (None, Some((source, n))) => (source, format!("stats: {n} source issues")),
        (None, None) => (
            "No statistics yet: nothing has been recorded and no Sentry API is configured.".to_owned(),
            "stats: none".into(),
        ),
    };
    reply(ctx, ix, &text).await?;
    Ok(done(summary))
}

async fn source_stats<P: HttpPort>(
    ctx: &Ctx<'_, P>,
    api: &SentryApi<'_, P>,
    period: StatsPeriod,
) -> Result<(String, usize), StepError> {
    let (window, label, window_ms) = match period {
        StatsPeriod::Day => ("24h", "day", 24 * 3_600_000),
        StatsPeriod::Week => ("7d", "week", 7 * 24 * 3_600_000),
        StatsPeriod::Month => ("30d", "month", 30 * 24 * 3_600_000),
    };
    let issues = api.list_issues("", window, 100).await?;
    let mut by_project: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_level: BTreeMap<String, u64> = BTreeMap::new();
    let cutoff = ctx.now_ms.saturating_sub(window_ms);
    let mut new = 0;
    for issue in &issues {
        let n = issue.count_number();
        *by_project.entry(issue.project_slug().unwrap_or("unknown").to_owned()).or_default() += n;
        *by_level.entry(issue.level.clone().unwrap_or_else(|| "unknown".into())).or_default() += n;
        if issue.first_seen.as_deref().and_then(rfc3339_ms).is_some_and(|t| t >= cutoff) {
            new += 1;
        }
    }
    let total: u64 = by_project.values().sum();
    let carried = issues.len() - new;
    let trend = match new.cmp(&carried) {
        std::cmp::Ordering::Greater => "↑ mostly new problems",
        std::cmp::Ordering::Less => "↓ mostly known problems",
        std::cmp::Ordering::Equal => "→ steady",
    };
    let list = |m: &BTreeMap<String, u64>| {
        let mut v: Vec<_> = m.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        v.iter().map(|(k, n)| format!("{} {n}", one_line(k))).collect::<Vec<_>>().join(" · ")
    };
    let text = format!(
        "**Errors this {label} (source):** {total} events in {} issues\nBy project: {}\nBy level: {}\nTrend: {new} new issues, {carried} ongoing — {trend}",
        issues.len(),
        list(&by_project),
        list(&by_level),
    );
    Ok((text, issues.len()))
}

/// `/bugbot resolve <issue>`: a Sentry/GlitchTip URL or id (or a tracked issue whose thread
/// referenced one) is resolved; the reply in the channel confirms it.
pub async fn resolve<P: HttpPort>(
    ctx: &Ctx<'_, P>,
    ix: &InteractionContext,
    issue: &IssueRef,
) -> Result<Outcome, StepError> {
    let api = api(ctx)?;
    let text = issue.as_str().trim();
    let mut id = extract(text).into_iter().find_map(|r| match r {
        Reference::SentryIssue { issue_id, .. } => Some(issue_id),
        _ => None,
    });
    if id.is_none() && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        id = Some(text.to_owned());
    }
    if id.is_none() {
        let kv = ctx.env.kv(crate::store::STATE_KV)?;
        if let Some(record) = super::tracked::record_for_issue(&kv, text).await {
            id = record.references.into_iter().find_map(|r| match r {
                Reference::SentryIssue { issue_id, .. } => Some(issue_id),
                _ => None,
            });
        }
    }
    let Some(id) = id else {
        reply(ctx, ix, &format!("`{}` is not a Sentry/GlitchTip issue (URL or id).", one_line(text))).await?;
        return Ok(Outcome::Done {
            state: JobState::Failed,
            reason: Some("resolve: not a source issue".into()),
            links: Vec::new(),
            fingerprint: None,
            effect: Effect::None,
        });
    };
    let resolved = api.set_status(&id, "resolved").await?;
    let who = ix.user.as_ref().map_or_else(String::new, |u| format!(" by <@{}>", u.id));
    let url = link(&api, &resolved);
    // The tracked issues go with it (issue 19): a GlitchTip resolve sends no webhook back.
    crate::handlers::component::resolved_at_source(ctx, ix, &id, Some(&url)).await?;
    reply(ctx, ix, &format!("✅ Resolved [{}](<{url}>){who}.", one_line(&resolved.title))).await?;
    Ok(Outcome::Done {
        state: JobState::Done,
        reason: Some(format!("resolved source issue {id}")),
        links: vec![url],
        fingerprint: None,
        effect: Effect::None,
    })
}

/// `2024-05-01T10:00:00(.123)Z` → unix ms (UTC only, as the API sends).
#[expect(clippy::many_single_char_names, reason = "the civil-date algorithm's names")]
fn rfc3339_ms(s: &str) -> Option<u64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+']).next()?;
    let mut t = time.split(':');
    let (h, min) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let sec: f64 = t.next().unwrap_or("0").parse().ok()?;
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    #[expect(clippy::cast_possible_truncation, reason = "seconds within a minute")]
    let ms = days * 86_400_000 + h * 3_600_000 + min * 60_000 + (sec * 1000.0) as i64;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_api_timestamps() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms("2015-10-21T07:28:00.123Z"), Some(1_445_412_480_123));
        assert_eq!(rfc3339_ms("2000-02-29T00:00:00.000000Z"), Some(951_782_400_000));
        assert_eq!(rfc3339_ms("nope"), None);
    }
}
