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

pub(crate) fn installation_uuid(job: &Job) -> Option<String> {
    let JobKind::SentryWebhook(hook) = &job.kind else { return None };
    let parsed: Installation = serde_json::from_str(&hook.payload).ok()?;
    parsed.installation?.uuid.filter(|u| u.len() <= 64 && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
}

/// The tracked issues as a label and a URL: Linear first, then GitHub.
fn tracked_label(tracked: &TrackedRefs) -> Option<(String, &str)> {
    if let Some(l) = &tracked.linear {
        return Some((l.label.clone(), l.url.as_str()));
    }
    tracked.github.as_ref().map(|g| (g.label.clone(), g.url.as_str()))
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
    if ctx.config.chatops.writeback.is_none() || !matches!(event.source, Source::Sentry | Source::Glitchtip) {
        return;
    }
    let Some((label, url)) = tracked_label(tracked) else { return };
    let fp = event.fingerprint.as_str();
    if only_if_pending {
        let take = FingerprintOp::WriteBack { key: ISSUE_KEY.to_owned() };
        if !matches!(ctx.claims.fingerprint(fp, &take).await, Ok(FingerprintReply::WriteBack { go: true })) {
            return;
        }
    }
    let link = Link { label: &label, url, comment: &format!("Tracked by bugbot as {label}: {url}") };
    let written = send(ctx, event, installation_uuid(job).as_deref(), &link).await;
    let failed = FingerprintOp::WriteBackFailed { key: ISSUE_KEY.to_owned() };
    report(ctx, job, fp, written, Some(failed)).await;
}

/// After a fix opened a pull request for the fingerprint's tracked issue: link it from the source
/// issue, once per PR (the fingerprint's claim records it, so a redelivered or repeated result
/// writes nothing more). Never fails the result.
pub async fn after_pr<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    fingerprint: &str,
    pr_url: &str,
) {
    if ctx.config.chatops.writeback.is_none() {
        return;
    }
    // Best effort, like the write-back itself: a claim that cannot be read skips it.
    let Ok(Some(record)) = crate::store::remembered_source(ctx.claims, ctx.state, fingerprint).await else { return };
    let Some(event) = record.event else { return };
    if !matches!(event.source, Source::Sentry | Source::Glitchtip) || source_issue_id(&event).is_none() {
        return;
    }
    let key = format!("pr:{}", bugbot_shared::report::clip(pr_url, 200));
    let take = FingerprintOp::WriteBackOnce { key };
    if !matches!(ctx.claims.fingerprint(fingerprint, &take).await, Ok(FingerprintReply::WriteBack { go: true })) {
        return;
    }
    let number = pr_url.trim_end_matches('/').rsplit('/').next().filter(|n| n.bytes().all(|b| b.is_ascii_digit()));
    let pr = number.map_or_else(|| "pull request".to_owned(), |n| format!("PR #{n}"));
    // Sentry keeps one external issue per integration and issue: the link now goes to the PR, and
    // its label still names the tracked issue.
    let label = match tracked_label(&record.tracked) {
        Some((tracked, _)) => format!("{tracked} → {pr}"),
        None => pr,
    };
    let link =
        Link { label: &label, url: pr_url, comment: &format!("bugbot opened a pull request for this issue: {pr_url}") };
    let written = send(ctx, &event, record.installation.as_deref(), &link).await;
    // A passing failure is logged; the PR's link is not tried again (the tracked issue links it).
    report(ctx, job, fingerprint, written, None).await;
}

/// What a write-back links: the label and URL (Sentry's external issue) and the comment (GitHub).
struct Link<'a> {
    label: &'a str,
    url: &'a str,
    comment: &'a str,
}

async fn send<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    event: &ErrorEvent,
    installation: Option<&str>,
    link: &Link<'_>,
) -> Result<&'static str, SinkError> {
    let Some(cfg) = ctx.config.chatops.writeback.as_ref() else { return Ok("skipped: write-back is off") };
    let Some(issue_id) = source_issue_id(event) else { return Ok("skipped: no source issue") };
    let api =
        SentryApi { port: ctx.port, api_base: cfg.api_base.clone(), token: cfg.token.clone(), org: cfg.org.clone() };
    match event.source {
        Source::Sentry => match (installation, issue_id.parse::<u64>()) {
            (Some(uuid), Ok(id)) => {
                let project = event.project.as_deref().unwrap_or("unknown");
                let external = ExternalIssue {
                    installation_uuid: uuid,
                    issue_id: id,
                    web_url: link.url,
                    project,
                    identifier: link.label,
                };
                api.link_external_issue(&external).await.map(|()| "linked on Sentry")
            }
            _ => Ok("skipped: no integration installation in the webhook"),
        },
        _ if host(event.link.as_deref().unwrap_or_default()) == host(api.base()) => {
            api.comment(&issue_id, link.comment).await.map(|()| "commented on GlitchTip")
        }
        _ => Ok("skipped: the issue is not on SENTRY_API_BASE"),
    }
}

/// Logs a write-back's end; a passing failure is noted in the claim (`retry`) when it may be
/// tried again.
async fn report<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    fp: &str,
    written: Result<&'static str, SinkError>,
    retry: Option<FingerprintOp>,
) {
    let mut line = LogLine::new(Level::Info, "consumer", "writeback");
    line.job_id = Some(job.id.as_str());
    line.fingerprint = Some(fp);
    let reason = match written {
        Ok(what) => what.to_owned(),
        Err(e) if e.is_transient() && retry.is_some() => {
            // Noted in the claim: the next commented occurrence tries again.
            if let Some(op) = &retry {
                let _ = ctx.claims.fingerprint(fp, op).await;
            }
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
