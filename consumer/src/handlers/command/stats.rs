//! `/bugbot stats`: bugbot's own counters, then the source's view of the window.

use std::collections::BTreeMap;

use bugbot_shared::command::StatsPeriod;
use bugbot_shared::job::InteractionContext;

use super::reply;
use super::sentry::rfc3339_ms;
use super::sentry::{api, done, one_line};
use crate::clients::http::HttpPort;
use crate::clients::sentry_api::SentryApi;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Outcome, StepError};
use crate::store::ports::{ClaimPort, KvPort};

/// `/bugbot stats [period]`: event counts by project and level, and the trend (issues new in the
/// window against those carried over).
/// `/bugbot stats`: bugbot's own counters (the daily digest's numbers: events, new, regressed,
/// resolved, fix runs and spend, today against yesterday), then the source's view of the window
/// when the Sentry-compatible API is configured.
pub async fn stats<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    period: StatsPeriod,
) -> Result<Outcome, StepError> {
    let own = match crate::store::objects::stats::load_days(ctx.claims, ctx.now_ms, 2).await {
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

async fn source_stats<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
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
