//! What the consumer does with one alert job: claim the delivery, normalize, filter, claim the
//! fingerprint, then file or update the tracked issue(s) and the Discord announcement.
//!
//! Every step is idempotent under redelivery: the fingerprint's claim drops copies of a delivery
//! (it remembers the recent ones, so an alert costs one round trip, not three), the fingerprint
//! claim lets exactly one job file an issue (recording each filed piece as it goes, so a retry
//! resumes instead of repeating), the trackers are searched before anything is created, and a
//! repeat comments at most once per cooldown window.
//!
//! A new issue goes to the repository `REPO_ROUTES` picks for the enriched event (issue 16.6): its
//! packet, its GitHub issue and its auto-fix; later comments follow the filed issue's URL.

use bugbot_shared::claim::{DiscordRef, FingerprintOp, FingerprintReply, IssueRef, RepeatDecision, TrackedRefs};
use bugbot_shared::digest::Occurrence;
use bugbot_shared::event::{ErrorEvent, MetricStatus, Signal, StatusChange, UptimeState};
use bugbot_shared::filter::{Decision, filter_signal};
use bugbot_shared::job::Job;
use bugbot_shared::normalize::normalize;
use bugbot_shared::report::{self, AlertState};
use bugbot_shared::status::JobState;

use crate::clients::SinkError;
use crate::clients::http::HttpPort;
use crate::clients::linear::{FilingError, LabelCache, Linear, NewLinearIssue, SourceLink};
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{AlertSummary, Effect, FollowUp, Outcome, StepError};
use crate::runtime::settle;
use crate::store::ports::{ClaimPort, KvPort};
use crate::store::{IssueRecord, remembered_event};

mod enrich;
pub mod packet;
pub(crate) mod timebox;

/// Processes one alert job end to end. Its delivery claim is its fingerprint's (one Durable
/// Object round trip: a second copy of the delivery is dropped there, its own retry resumes), so
/// the runtime does not claim the delivery first. A newly filed issue comes back with the auto-fix
/// follow-up, which the runtime runs after the alert is settled (the fix flow is not called from here).
pub async fn process<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
) -> (Outcome, Option<FollowUp>) {
    let signal = normalize(&job.kind, job.received_at_ms).map_err(|e| e.to_string());
    process_signal(ctx, job, signal).await
}

/// [`process`], with the job already normalized (the runtime normalizes each alert once, to order
/// its batch by fingerprint).
pub async fn process_signal<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    signal: Result<Signal, String>,
) -> (Outcome, Option<FollowUp>) {
    match run(ctx, job, signal).await {
        Ok(done) => done,
        Err(e) => (settle::failure(&ctx.config.retry, ctx.jitter, ctx.attempt, e), None),
    }
}

async fn run<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    signal: Result<Signal, String>,
) -> Result<(Outcome, Option<FollowUp>), StepError> {
    let signal = match signal {
        Ok(signal) => signal,
        Err(e) => return Ok((Outcome::done(JobState::Failed, format!("cannot normalize: {e}")), None)),
    };
    let fingerprint = signal.fingerprint().as_str().to_owned();
    if let Decision::Drop(reason) = filter_signal(&signal, &ctx.config.filter) {
        let reason = format!("filtered: {reason}");
        let skipped = Outcome::done(JobState::Ignored, reason.clone()).with_effect(Effect::Skipped { reason });
        return Ok((with_fingerprint(skipped, &fingerprint), None));
    }
    let (outcome, follow_up) = match signal {
        Signal::Occurrence(event) | Signal::Regressed(event) => occurrence(ctx, job, event).await?,
        Signal::Resolved(change) => (status_change(ctx, &change, true).await?, None),
        Signal::MetricAlert(alert) => {
            if alert.status == MetricStatus::Resolved {
                (status_change(ctx, &alert.to_change(), true).await?, None)
            } else {
                occurrence(ctx, job, alert.to_event()).await?
            }
        }
        Signal::Uptime(alert) => {
            if alert.state == UptimeState::Up {
                (status_change(ctx, &alert.to_change(), true).await?, None)
            } else {
                occurrence(ctx, job, alert.to_event()).await?
            }
        }
        Signal::Ignored(_) | Signal::Assigned { .. } => {
            let reason = "no action for this status change".to_owned();
            (Outcome::done(JobState::Ignored, reason.clone()).with_effect(Effect::Skipped { reason }), None)
        }
    };
    Ok((with_fingerprint(outcome, &fingerprint), follow_up))
}

fn with_fingerprint(outcome: Outcome, fp: &str) -> Outcome {
    match outcome {
        Outcome::Done { state, reason, links, effect, .. } => {
            Outcome::Done { state, reason, links, fingerprint: Some(fp.to_owned()), effect }
        }
        retry @ Outcome::Retry { .. } => retry,
    }
}

async fn occurrence<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    mut event: ErrorEvent,
) -> Result<(Outcome, Option<FollowUp>), StepError> {
    let holder = job.id.as_str();
    let fp = event.fingerprint.as_str().to_owned();
    let fp = fp.as_str();
    let op = FingerprintOp::Occurrence {
        holder: holder.to_owned(),
        message: ctx.message_id.to_owned(),
        now_ms: ctx.now_ms,
        lease_ms: ctx.config.claim_lease_ms,
        cooldown_ms: ctx.config.repeat_comment_cooldown_ms,
        window_ms: ctx.config.dedupe_window_ms,
    };
    let filed_effect = |event: &ErrorEvent, occurrence, tracked: &TrackedRefs, occurrences| Effect::Filed {
        occurrence,
        alert: Box::new(AlertSummary::of(event, tracked, occurrences)),
    };
    match ctx.claims.fingerprint(fp, &op).await? {
        FingerprintReply::Create { tracked: already, fresh, occurrences } => {
            // Issue 16.1: a delivery without the stack trace is completed before filing.
            let enrichment = Box::pin(enrich::enrich(ctx, &mut event)).await;
            let routed = ctx.config.routes.route(&event).and_then(|route| ctx.config.routed(route));
            let ctx = &routed.as_ref().map_or(*ctx, |config| Ctx { config, ..*ctx });
            // Issue 16.2: the context packet, within CONTEXT_TIMEOUT_MS, when an issue is still to be filed.
            let packet = if already.linear.is_none() || already.github.is_none() {
                Box::pin(packet::gather(ctx, &event, enrichment.logs_matched)).await
            } else {
                packet::AlertPacket::default()
            };
            let confidence = packet.card_line(&event);
            let evidence = Evidence {
                fresh,
                enrichment: &enrichment.markdown,
                packet: &packet.markdown,
                confidence: confidence.as_deref(),
            };
            let (tracked, filed) = file(ctx, &event, already.clone(), evidence).await;
            match filed {
                Ok(()) => {
                    // One round trip: the filed pieces, the end of filing and the issue's record.
                    let done = FingerprintOp::Filed {
                        holder: holder.to_owned(),
                        now_ms: ctx.now_ms,
                        tracked: tracked.clone(),
                    };
                    let installation = crate::clients::sentry_api::writeback::installation_uuid(job);
                    ctx.claims.filed(fp, &done, IssueRecord::filed(&event, &tracked, installation)).await?;
                    crate::clients::sentry_api::writeback::after_filed(ctx, job, &event, &tracked).await;
                    let outcome = Outcome::Done {
                        state: JobState::Filed,
                        reason: None,
                        links: tracked.urls(),
                        fingerprint: None,
                        effect: filed_effect(&event, Occurrence::New, &tracked, occurrences),
                    };
                    let evidence = packet.evidence;
                    let context = packet
                        .packet
                        .as_ref()
                        .map(bugbot_shared::packet::ContextPacket::to_markdown)
                        .unwrap_or_default();
                    let repo = routed.as_ref().and_then(|c| c.github.as_ref()).map(|g| g.repo.clone());
                    Ok((outcome, Some(FollowUp::AutoFix { event: Box::new(event), tracked, evidence, context, repo })))
                }
                Err(e) => {
                    // Keep what did go out, so that a retry files only what failed.
                    if tracked != already {
                        ctx.claims.fingerprint(fp, &FingerprintOp::Progress { tracked }).await?;
                    }
                    if let StepError::Sink(sink) = &e
                        && !sink.is_transient()
                    {
                        ctx.claims.fingerprint(fp, &FingerprintOp::Abandon { holder: holder.to_owned() }).await?;
                    }
                    Err(e)
                }
            }
        }
        FingerprintReply::Busy { lease_until_ms } => Ok((busy(ctx, lease_until_ms), None)),
        FingerprintReply::Duplicate => {
            Ok((Outcome::done(JobState::Duplicate, "delivery already processed".to_owned()), None))
        }
        FingerprintReply::Pending { occurrences } => {
            let reason = format!("occurrence {occurrences} counted; the issue is being filed by another job");
            let effect = filed_effect(&event, Occurrence::Repeat, &TrackedRefs::default(), occurrences);
            Ok((Outcome::done(JobState::Duplicate, reason).with_effect(effect), None))
        }
        FingerprintReply::Repeat { tracked, occurrences, decision } => {
            Ok((repeated(ctx, job, &event, &tracked, occurrences, decision).await?, None))
        }
        other => Err(StepError::Platform(format!("unexpected claim reply {other:?}"))),
    }
}

/// A repeat of a filed issue: updated (or only counted), and its outcome.
async fn repeated<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    event: &ErrorEvent,
    tracked: &TrackedRefs,
    occurrences: u64,
    decision: RepeatDecision,
) -> Result<Outcome, StepError> {
    repeat(ctx, event, tracked, occurrences, decision).await?;
    if decision.comment {
        crate::clients::sentry_api::writeback::after_repeat(ctx, job, event, tracked).await;
    }
    let reason = match (decision.regressed, decision.comment) {
        (true, _) => format!("regression (occurrence {occurrences}): reopened"),
        (false, true) => format!("occurrence {occurrences}: commented"),
        (false, false) => format!("occurrence {occurrences}: counted (within the comment cooldown)"),
    };
    let occurrence = if decision.regressed { Occurrence::Regressed } else { Occurrence::Repeat };
    Ok(Outcome::Done {
        state: JobState::Filed,
        reason: Some(reason),
        links: tracked.urls(),
        fingerprint: None,
        effect: Effect::Filed { occurrence, alert: Box::new(AlertSummary::of(event, tracked, occurrences)) },
    })
}

/// Another copy of this delivery is filing the issue: come back when its lease ends (it will then
/// be a duplicate, or be taken over).
fn busy<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, lease_until_ms: u64) -> Outcome {
    let wait = lease_until_ms.saturating_sub(ctx.now_ms).div_ceil(1_000);
    Outcome::Retry {
        delay_secs: u32::try_from(wait.clamp(1, 60)).unwrap_or(60),
        reason: "another copy of this delivery is being processed".into(),
        attempt: ctx.attempt,
    }
}

/// What evidence gathering adds to a new issue (Markdown): the enrichment's breadcrumbs or why
/// there are none, and the context packet (the GitHub body; Linear's first comment).
#[derive(Debug, Clone, Copy)]
struct Evidence<'a> {
    /// The fingerprint's first delivery, first attempt: nothing can be filed yet, so the trackers
    /// are not searched first (three requests fewer per new alert).
    fresh: bool,
    enrichment: &'a str,
    packet: &'a str,
    /// The confidence breakdown in one line, for the Discord card.
    confidence: Option<&'a str>,
}

/// Files what `tracked` does not have yet, recording each piece as soon as it exists.
async fn file<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    event: &ErrorEvent,
    mut tracked: TrackedRefs,
    evidence: Evidence<'_>,
) -> (TrackedRefs, Result<(), StepError>) {
    // Each sink on its own (issue 15.12): one failing does not hold back the others; only what
    // failed is retried (the claim remembers what was filed), and the first failure is returned.
    let mut first_error = None;
    let title = report::issue_title(event);
    let body = report::issue_body_markdown(event) + evidence.enrichment;
    if tracked.linear.is_none()
        && let Some((linear, team_id)) = ctx.linear()
    {
        match file_linear(&linear, &ctx.memo.linear_labels, team_id, event, &title, &body, evidence).await {
            Ok(linear_ref) => tracked.linear = Some(linear_ref),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if tracked.github.is_none()
        && let Some(github) = ctx.github()
    {
        let marker = report::fingerprint_marker(&event.fingerprint);
        let found = if evidence.fresh { Ok(None) } else { github.find_by_marker(&marker).await };
        let filed = match found {
            Ok(Some(issue)) => Ok(issue),
            Ok(None) => {
                github.create_issue(&title, &format!("{body}{}", evidence.packet), &report::labels(event)).await
            }
            Err(e) => Err(e),
        };
        match filed {
            Ok(issue) => tracked.github = Some(IssueRef::github(issue.number, issue.html_url)),
            Err(e) => first_error = first_error.or(Some(StepError::Sink(e))),
        }
    }
    if tracked.discord.is_none()
        && let (Some(channel), Some(url)) = (ctx.config.discord.alerts_channel_id.as_deref(), tracked.primary_url())
        && ctx.config.discord.bot_token.is_some()
    {
        let mut message = report::discord_alert_message(event, url, AlertState::Open);
        if let Some(line) = evidence.confidence {
            report::with_confidence(&mut message, line);
        }
        // The card of this issue: a retry after a lost answer gets the same message back.
        report::with_nonce(&mut message, &format!("alert card {} {url}", event.fingerprint.as_str()));
        match ctx.discord().create_message(channel, &message).await {
            Ok(sent) => {
                tracked.discord = Some(DiscordRef {
                    channel_id: sent.channel_id.to_string(),
                    message_id: sent.message_id.to_string(),
                });
            }
            Err(e) => first_error = first_error.or(Some(StepError::Sink(e))),
        }
    }
    (tracked, first_error.map_or(Ok(()), Err))
}

/// The Linear issue of an event, created with an id bugbot chooses from the fingerprint: unless the
/// claim is fresh, that id is looked up first (a create whose response was lost), then the source
/// link (the natural key of an issue filed before ids were chosen), and only then is it created, with
/// its source link and first comment in the same request (`IssueFile`).
async fn file_linear<P: HttpPort>(
    linear: &Linear<'_, P>,
    labels: &LabelCache,
    team_id: &str,
    event: &ErrorEvent,
    title: &str,
    body: &str,
    evidence: Evidence<'_>,
) -> Result<IssueRef, StepError> {
    let id = bugbot_shared::claim::linear_issue_id(team_id, event.fingerprint.as_str());
    let existing = if evidence.fresh {
        None
    } else {
        match (linear.issue(&id).await?, &event.link) {
            (Some(issue), _) => Some(issue),
            (None, Some(url)) => linear.find_by_attachment_url(url).await?,
            (None, None) => None,
        }
    };
    let issue = if let Some(issue) = existing {
        issue
    } else {
        let names = report::labels(event);
        let (label_ids, cached) = linear.labels_through(labels, team_id, &names).await?;
        let new = |label_ids| NewLinearIssue {
            team_id: team_id.to_owned(),
            title: title.to_owned(),
            description: body.to_owned(),
            priority: report::linear_priority(event.level),
            label_ids,
            id: Some(id.clone()),
        };
        let link_title = format!("{} issue", event.source.product());
        let link = event.link.as_deref().map(|url| SourceLink { url, title: &link_title });
        let comment = Some(evidence.packet).filter(|packet| !packet.trim().is_empty()).map(str::trim_start);
        let filed = match linear.file_issue(&new(label_ids), link, comment).await {
            // A label deleted in Linear since its id was cached: Linear refuses the create. Ask for
            // the labels again, once (a refusal for another reason is refused again, and returned).
            Err(e) if cached && e.is_refused_create() => {
                labels.forget(team_id);
                let (label_ids, _) = linear.labels_through(labels, team_id, &names).await?;
                linear.file_issue(&new(label_ids), link, comment).await
            }
            filed => filed,
        };
        match filed {
            // The packet is extra: a failed comment does not fail (or repeat) the filing. The issue
            // and its link exist; when the comment's error nulled Linear's answer, the issue is read
            // back by its id (the one extra request, on this path only).
            Ok(issue) | Err(FilingError::Comment { issue: Some(issue), .. }) => issue,
            Err(FilingError::Comment { issue: None, .. }) => {
                linear.issue(&id).await?.ok_or_else(|| SinkError::Transient {
                    service: "linear",
                    reason: format!("issue {id} not found after its create"),
                    retry_after: None,
                })?
            }
            // A failed link fails the filing (the issue exists: the retry finds it by its id).
            Err(e) => return Err(e.into_sink().into()),
        }
    };
    Ok(IssueRef::linear(issue.id, issue.identifier, issue.url))
}

/// A repeat occurrence: a comment (at most once per cooldown), reopening on regression.
async fn repeat<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    event: &ErrorEvent,
    tracked: &TrackedRefs,
    occurrences: u64,
    decision: RepeatDecision,
) -> Result<(), StepError> {
    if !decision.comment && !decision.regressed {
        // Inside the cooldown: the claim counted it; no KV write, no sink call.
        return Ok(());
    }
    crate::store::keep_issue_filed_earlier(ctx.claims, ctx.state, event.fingerprint.as_str()).await;
    let comment = if decision.regressed {
        report::regressed_comment_markdown(event)
    } else {
        report::repeat_comment_markdown(event, occurrences)
    };
    comment_everywhere(ctx, tracked, &comment).await?;
    if decision.regressed {
        set_open_everywhere(ctx, tracked, true).await?;
        edit_alert(ctx, tracked, event, AlertState::Regressed).await?;
    }
    Ok(())
}

/// Resolved (or recovered) at the source: comment, close, and edit the announcement.
pub(crate) async fn status_change<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    change: &StatusChange,
    resolved: bool,
) -> Result<Outcome, StepError> {
    let fp = change.fingerprint.as_str();
    match ctx.claims.fingerprint(fp, &FingerprintOp::SetResolved { resolved, now_ms: ctx.now_ms }).await? {
        FingerprintReply::NotTracked => Ok(Outcome::done(JobState::Ignored, "not tracked by bugbot".to_owned())),
        FingerprintReply::Status { changed: false, tracked } => Ok(Outcome::Done {
            state: JobState::Duplicate,
            reason: Some("already in that state".into()),
            links: tracked.urls(),
            fingerprint: None,
            effect: Effect::None,
        }),
        FingerprintReply::Status { tracked, .. } => {
            comment_everywhere(ctx, &tracked, &report::resolved_comment_markdown(change)).await?;
            set_open_everywhere(ctx, &tracked, !resolved).await?;
            // After the change is recorded: a failed read edits the card from the change's own facts
            // (a retry would find the change made, and edit nothing).
            let event =
                remembered_event(ctx.claims, ctx.state, fp).await.ok().flatten().unwrap_or_else(|| change.to_event());
            edit_alert(ctx, &tracked, &event, if resolved { AlertState::Resolved } else { AlertState::Regressed })
                .await?;
            Ok(Outcome::Done {
                state: JobState::Done,
                reason: Some("resolved".into()),
                links: tracked.urls(),
                fingerprint: None,
                effect: Effect::Resolved,
            })
        }
        other => Err(StepError::Platform(format!("unexpected claim reply {other:?}"))),
    }
}

async fn comment_everywhere<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    tracked: &TrackedRefs,
    body: &str,
) -> Result<(), StepError> {
    for issue in tracked.issues() {
        if let Some(tracker) = ctx.tracker(issue) {
            tracker.comment(issue, body).await?;
        }
    }
    Ok(())
}

async fn set_open_everywhere<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    tracked: &TrackedRefs,
    open: bool,
) -> Result<(), StepError> {
    for issue in tracked.issues() {
        if let Some(tracker) = ctx.tracker(issue) {
            tracker.set_open(issue, open).await?;
        }
    }
    Ok(())
}

async fn edit_alert<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    tracked: &TrackedRefs,
    event: &ErrorEvent,
    state: AlertState,
) -> Result<(), StepError> {
    if let (Some(d), Some(url)) = (&tracked.discord, tracked.primary_url()) {
        let message = report::discord_alert_message(event, url, state);
        ctx.discord().edit_message(&d.channel_id, &d.message_id, &message).await?;
    }
    Ok(())
}
