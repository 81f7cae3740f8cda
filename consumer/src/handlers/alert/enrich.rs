//! Enrichment before filing (issue 16.1): an alert without a stack trace (GlitchTip alerts, Sentry
//! `issue` webhooks, a pruned legacy-plugin event) is completed from the source's REST API — the
//! issue's latest event and its details, fetched together within `ENRICH_TIMEOUT_MS`. When that
//! fails, times out or is not configured, the issue is filed without it and says so.

use bugbot_shared::enrich::{self, IssueFacts, MAX_BREADCRUMBS};
use bugbot_shared::event::{ErrorEvent, Source};
use futures_util::future::join;

use super::timebox::within;
use crate::clients::http::HttpPort;
use crate::clients::sentry_api::SentryApi;
use crate::config::RestApiConfig;
use crate::runtime::ctx::Ctx;
use crate::store::ports::{ClaimPort, KvPort};

/// What enrichment adds to the issue body besides the merged event: the breadcrumbs, or the line
/// saying why the event could not be fetched. Empty when nothing was needed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Enrichment {
    pub markdown: String,
    /// `enriched`, `skipped: …` or `failed: …`, for the job's log line.
    pub status: Option<String>,
    /// The breadcrumbs are logs about this error (confidence's "matching logs").
    pub logs_matched: bool,
}

fn api_config(evidence: &crate::config::EvidenceConfig, source: Source) -> (Option<&RestApiConfig>, &'static str) {
    match source {
        Source::Glitchtip => (evidence.glitchtip_api.as_ref(), "GLITCHTIP_API_TOKEN"),
        _ => (evidence.sentry_api.as_ref(), "SENTRY_API_TOKEN"),
    }
}

/// Fetches and merges the latest event when the delivery lacks it. Never fails: what went wrong
/// becomes a line of the issue.
pub async fn enrich<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    event: &mut ErrorEvent,
) -> Enrichment {
    if !enrich::needs_latest_event(event) {
        return Enrichment::default();
    }
    let Some(id) = enrich::source_issue_id(event) else { return Enrichment::default() };
    let (config, setting) = api_config(&ctx.config.evidence, event.source);
    let Some(config) = config else {
        let reason = format!("{setting} is not set");
        return Enrichment {
            markdown: enrich::not_enriched_markdown(event.source, &reason),
            status: Some(format!("skipped: {reason}")),
            logs_matched: false,
        };
    };
    let Some(api_base) = config.api_base.clone().or_else(|| enrich::link_origin(event)) else {
        let reason = "no API base (GLITCHTIP_API_BASE) and no issue link".to_owned();
        return Enrichment {
            markdown: enrich::not_enriched_markdown(event.source, &reason),
            status: Some(format!("skipped: {reason}")),
            logs_matched: false,
        };
    };
    let api = SentryApi { port: ctx.port, api_base, token: config.token.clone(), org: config.org.clone() };
    let budget = ctx.config.evidence.enrich_timeout_ms;
    let Some((issue, latest)) = within(budget, join(api.issue(&id), api.latest_event(&id))).await else {
        let reason = format!("timed out after {budget} ms");
        return Enrichment {
            markdown: enrich::not_enriched_markdown(event.source, &reason),
            status: Some(format!("failed: {reason}")),
            logs_matched: false,
        };
    };
    if let Ok(Some(issue)) = &issue {
        let facts = IssueFacts {
            count: issue.count.as_deref().and_then(|c| c.parse().ok()),
            user_count: issue.user_count,
            first_seen: issue.first_seen.clone(),
            last_seen: issue.last_seen.clone(),
            short_id: issue.short_id.clone(),
            culprit: issue.culprit.clone(),
        };
        enrich::apply_issue_facts(event, &facts);
    }
    match latest {
        Ok(Some(latest)) => {
            enrich::apply_latest_event(event, &latest);
            let crumbs = enrich::breadcrumbs(&latest, MAX_BREADCRUMBS);
            Enrichment {
                markdown: enrich::breadcrumbs_markdown(&crumbs),
                status: Some("enriched".into()),
                logs_matched: enrich::logs_match(&crumbs, event),
            }
        }
        Ok(None) => {
            let reason = format!("issue {id} has no latest event");
            Enrichment {
                markdown: enrich::not_enriched_markdown(event.source, &reason),
                status: Some(format!("failed: {reason}")),
                logs_matched: false,
            }
        }
        Err(e) => Enrichment {
            markdown: enrich::not_enriched_markdown(event.source, &e.to_string()),
            status: Some(format!("failed: {e}")),
            logs_matched: false,
        },
    }
}
