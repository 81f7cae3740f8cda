//! Writing back to the source issue (issue 19): the Sentry issue gets a link to the tracked issue
//! through the integration platform's external-issues API
//! (`POST /api/0/sentry-app-installations/{uuid}/external-issues/`, the documented way for an
//! integration; Sentry's comment endpoint is not public and refuses tokens not tied to a user),
//! and the GlitchTip issue gets a comment (`POST /api/0/issues/{id}/comments/`,
//! `{"data": {"text": …}}`). Each once per fingerprint: the job that filed the issue writes (only
//! one job files a fingerprint, so this costs no claim round trip); a write that fails for a passing
//! reason (429, 5xx) is noted in the fingerprint's claim, and the next commented occurrence takes it
//! and tries again. A write-back never fails the alert.
//!
//! The installation `uuid` is read from the Sentry webhook that reported the alert
//! (`installation.uuid`), so only integration-platform alerts are linked on Sentry; the legacy
//! plugin carries none and is skipped with a log line.

use bugbot_shared::claim::{FingerprintOp, FingerprintReply, TrackedRefs};
use bugbot_shared::event::{ErrorEvent, Source};
use bugbot_shared::job::{Job, JobKind};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::references::{Reference, extract};
use serde::Deserialize;
use serde_json::json;

use super::{SentryApi, permanent};
use crate::clients::SinkError;
use crate::clients::http::{HttpPort, Method};
use crate::runtime::ctx::Ctx;
use crate::store::ports::{ClaimPort, KvPort};

/// The claim key of the first write-back.
const ISSUE_KEY: &str = "issue";

/// An external issue link (<https://docs.sentry.io/api/integration/create-or-update-an-external-issue/>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIssue<'a> {
    pub installation_uuid: &'a str,
    pub issue_id: u64,
    pub web_url: &'a str,
    pub project: &'a str,
    pub identifier: &'a str,
}

impl<P: HttpPort> SentryApi<'_, P> {
    /// `POST /api/0/sentry-app-installations/{uuid}/external-issues/`.
    pub async fn link_external_issue(&self, link: &ExternalIssue<'_>) -> Result<(), SinkError> {
        let url = self.url(&["sentry-app-installations", link.installation_uuid, "external-issues"], &[])?;
        let body = json!({"issueId": link.issue_id, "webUrl": link.web_url, "project": link.project,
                          "identifier": link.identifier});
        let request = self.request(Method::Post, &url).json(&body);
        self.send::<serde_json::Value>(request).await?.map(|_| ()).ok_or_else(|| permanent("issue not found"))
    }

    /// `POST /api/0/issues/{id}/comments/ {"data": {"text": …}}` (GlitchTip).
    pub async fn comment(&self, issue_id: &str, text: &str) -> Result<(), SinkError> {
        let url = self.url(&["issues", issue_id, "comments"], &[])?;
        let request = self.request(Method::Post, &url).json(&json!({"data": {"text": text}}));
        self.send::<serde_json::Value>(request).await?.map(|_| ()).ok_or_else(|| permanent("issue not found"))
    }
}

#[derive(Deserialize)]
struct Installation {
    #[serde(default)]
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct InstallationRef {
    #[serde(default)]
    uuid: Option<String>,
}

fn installation_uuid(job: &Job) -> Option<String> {
    let JobKind::SentryWebhook(hook) = &job.kind else { return None };
    let parsed: Installation = serde_json::from_str(&hook.payload).ok()?;
    parsed.installation?.uuid.filter(|u| u.len() <= 64 && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
}

/// The tracked issues as a label and a URL: Linear first, then GitHub.
fn tracked_label(tracked: &TrackedRefs) -> Option<(String, &str)> {
    if let Some(l) = &tracked.linear {
        return Some((l.identifier.clone(), l.url.as_str()));
    }
    tracked.github.as_ref().map(|g| (format!("#{}", g.number), g.url.as_str()))
}

fn source_issue_id(event: &ErrorEvent) -> Option<String> {
    extract(event.link.as_deref()?).into_iter().find_map(|r| match r {
        Reference::SentryIssue { issue_id, .. } => Some(issue_id),
        _ => None,
    })
}

fn host(url: &str) -> Option<String> {
    worker::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase))
}

/// After an alert filed its issue: link it from the source issue. Never fails the alert.
pub async fn after_filed<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    event: &ErrorEvent,
    tracked: &TrackedRefs,
) {
    write(ctx, job, event, tracked, false).await;
}

/// After a commented repeat: a write-back that failed for a passing reason is tried again.
pub async fn after_repeat<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    event: &ErrorEvent,
    tracked: &TrackedRefs,
) {
    write(ctx, job, event, tracked, true).await;
}

async fn write<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    event: &ErrorEvent,
    tracked: &TrackedRefs,
    only_if_pending: bool,
) {
    let Some(cfg) = ctx.config.chatops.writeback.as_ref() else { return };
    if !matches!(event.source, Source::Sentry | Source::Glitchtip) {
        return;
    }
    let (Some((label, url)), Some(issue_id)) = (tracked_label(tracked), source_issue_id(event)) else { return };
    let fp = event.fingerprint.as_str();
    if only_if_pending {
        let take = FingerprintOp::WriteBack { key: ISSUE_KEY.to_owned() };
        if !matches!(ctx.claims.fingerprint(fp, &take).await, Ok(FingerprintReply::WriteBack { go: true })) {
            return;
        }
    }
    let api =
        SentryApi { port: ctx.port, api_base: cfg.api_base.clone(), token: cfg.token.clone(), org: cfg.org.clone() };
    let result = match event.source {
        Source::Sentry => match (installation_uuid(job), issue_id.parse::<u64>()) {
            (Some(uuid), Ok(id)) => {
                let project = event.project.as_deref().unwrap_or("unknown");
                let link =
                    ExternalIssue { installation_uuid: &uuid, issue_id: id, web_url: url, project, identifier: &label };
                api.link_external_issue(&link).await.map(|()| "linked on Sentry")
            }
            _ => Ok("skipped: no integration installation in the webhook"),
        },
        _ if host(event.link.as_deref().unwrap_or_default()) == host(api.base()) => {
            let text = format!("Tracked by bugbot as {label}: {url}");
            api.comment(&issue_id, &text).await.map(|()| "commented on GlitchTip")
        }
        _ => Ok("skipped: the issue is not on SENTRY_API_BASE"),
    };
    let mut line = LogLine::new(Level::Info, "consumer", "writeback");
    line.job_id = Some(job.id.as_str());
    line.fingerprint = Some(fp);
    let reason = match result {
        Ok(what) => what.to_owned(),
        Err(e) if e.is_transient() => {
            // Noted in the claim: the next commented occurrence tries again.
            let _ = ctx.claims.fingerprint(fp, &FingerprintOp::WriteBackFailed { key: ISSUE_KEY.to_owned() }).await;
            line.level = Level::Warn;
            format!("failed, will try again on a later occurrence: {e}")
        }
        Err(e) => {
            line.level = Level::Warn;
            format!("failed: {e}")
        }
    };
    line.reason = Some(&reason);
    if line.level >= ctx.config.log_level {
        worker::console_log!("{}", line.to_json());
    }
}
