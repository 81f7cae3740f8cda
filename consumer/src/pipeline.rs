//! What the consumer does with one alert job: claim the delivery, normalize, filter, claim the
//! fingerprint, then file or update the tracked issue(s) and the Discord announcement.
//!
//! Every step is idempotent under redelivery: the delivery claim drops copies, the fingerprint
//! claim lets exactly one job file an issue (recording each filed piece as it goes, so a retry
//! resumes instead of repeating), the trackers are searched before anything is created, and a
//! repeat comments at most once per cooldown window.

use bugbot_shared::backoff::RetryAfter;
use bugbot_shared::claim::{
    DeliveryOp, DeliveryReply, DiscordRef, FingerprintOp, FingerprintReply, GitHubRef, LinearRef, RepeatDecision,
    TrackedRefs,
};
use bugbot_shared::event::{ErrorEvent, MetricStatus, Signal, StatusChange, UptimeState};
use bugbot_shared::filter::{Decision, filter_signal};
use bugbot_shared::job::Job;
use bugbot_shared::normalize::normalize;
use bugbot_shared::report::{self, AlertState};
use bugbot_shared::status::JobState;

use crate::claims::Claims;
use crate::config::Config;
use crate::http::HttpPort;
use crate::sink::SinkError;
use crate::sink::discord::Discord;
use crate::sink::github::GitHub;
use crate::sink::linear::{Linear, NewLinearIssue};
use crate::state::State;

/// What became of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished (successfully or not): ack.
    Done { state: JobState, reason: Option<String>, links: Vec<String>, fingerprint: Option<String> },
    /// A transient failure: retry after the delay (seconds).
    Retry { delay_secs: u32, reason: String, attempt: u32 },
}

impl Outcome {
    fn done(state: JobState, reason: impl Into<Option<String>>) -> Self {
        Self::Done { state, reason: reason.into(), links: Vec::new(), fingerprint: None }
    }
}

/// A step failed; says whether to retry.
#[derive(Debug)]
pub enum StepError {
    Sink(SinkError),
    /// Our own infrastructure (Durable Object, KV): always worth a retry.
    Platform(String),
}

impl From<SinkError> for StepError {
    fn from(e: SinkError) -> Self {
        Self::Sink(e)
    }
}

impl From<worker::Error> for StepError {
    fn from(e: worker::Error) -> Self {
        Self::Platform(e.to_string())
    }
}

/// Everything a job needs, built once per message by the entrypoint.
pub struct Deps<'a, P: HttpPort> {
    /// The Worker's bindings, for modules that read their own settings (`config::binding`).
    pub env: &'a worker::Env,
    pub config: &'a Config,
    pub port: &'a P,
    pub claims: &'a Claims,
    pub state: &'a State,
    pub now_ms: u64,
    /// In [0, 1): spreads retries of a burst apart.
    pub jitter: f64,
    /// The queue message id: a delivery's retries share it, redelivered copies do not.
    pub message_id: &'a str,
}

impl<P: HttpPort> std::fmt::Debug for Deps<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("now_ms", &self.now_ms)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// Claims the job's delivery for this queue message: `Ok(attempt)` to go ahead, or the outcome to
/// return at once (a copy already processed, or being processed by another message).
pub async fn begin_delivery<P: HttpPort>(deps: &Deps<'_, P>, job: &Job) -> Result<u32, Outcome> {
    let begin = DeliveryOp::Begin {
        holder: deps.message_id.to_owned(),
        now_ms: deps.now_ms,
        lease_ms: deps.config.claim_lease_ms,
    };
    match deps.claims.delivery(job.id.as_str(), &begin).await {
        Ok(DeliveryReply::Proceed { attempt }) => Ok(attempt),
        Ok(DeliveryReply::Duplicate { outcome }) => {
            Err(Outcome::done(JobState::Duplicate, format!("delivery already processed ({outcome})")))
        }
        Ok(DeliveryReply::Busy { lease_until_ms }) => {
            let wait = lease_until_ms.saturating_sub(deps.now_ms).div_ceil(1_000);
            Err(Outcome::Retry {
                delay_secs: u32::try_from(wait.clamp(1, 60)).unwrap_or(60),
                reason: "another copy of this delivery is being processed".into(),
                attempt: 1,
            })
        }
        Ok(DeliveryReply::Finished) | Err(_) => Err(retry(deps, 1, None, "claim store unavailable".into())),
    }
}

/// Processes one alert job end to end.
pub async fn process_alert<P: HttpPort>(deps: &Deps<'_, P>, job: &Job) -> Outcome {
    let job_id = job.id.as_str();
    let attempt = match begin_delivery(deps, job).await {
        Ok(attempt) => attempt,
        Err(outcome) => return outcome,
    };

    let outcome = match run(deps, job).await {
        Ok(outcome) => outcome,
        Err(StepError::Sink(e)) if e.is_transient() => {
            let retry_after = match &e {
                SinkError::Transient { retry_after, .. } => *retry_after,
                SinkError::Permanent { .. } => None,
            };
            return retry(deps, attempt, retry_after, e.to_string());
        }
        Err(StepError::Platform(reason)) => return retry(deps, attempt, None, reason),
        Err(StepError::Sink(e)) => Outcome::done(JobState::Failed, e.to_string()),
    };
    let summary = match &outcome {
        Outcome::Done { state, .. } => format!("{state:?}"),
        Outcome::Retry { .. } => "retry".to_owned(),
    };
    // Best effort: if this fails, the lease expires and a redelivered copy redoes idempotent work.
    let _ = deps
        .claims
        .delivery(
            job_id,
            &DeliveryOp::Finish {
                holder: deps.message_id.to_owned(),
                outcome: summary,
                now_ms: deps.now_ms,
                window_ms: deps.config.dedupe_window_ms,
            },
        )
        .await;
    outcome
}

fn retry<P: HttpPort>(deps: &Deps<'_, P>, attempt: u32, retry_after: Option<RetryAfter>, reason: String) -> Outcome {
    let delay_secs = deps.config.retry.retry_delay_secs(attempt, retry_after, deps.jitter);
    Outcome::Retry { delay_secs, reason, attempt }
}

async fn run<P: HttpPort>(deps: &Deps<'_, P>, job: &Job) -> Result<Outcome, StepError> {
    let signal = match normalize(&job.kind, job.received_at_ms) {
        Ok(signal) => signal,
        Err(e) => return Ok(Outcome::done(JobState::Failed, format!("cannot normalize: {e}"))),
    };
    let fingerprint = signal.fingerprint().as_str().to_owned();
    if let Decision::Drop(reason) = filter_signal(&signal, &deps.config.filter) {
        return Ok(with_fingerprint(Outcome::done(JobState::Ignored, format!("filtered: {reason}")), &fingerprint));
    }
    let outcome = match signal {
        Signal::Occurrence(event) | Signal::Regressed(event) => occurrence(deps, job, &event).await?,
        Signal::Resolved(change) => status_change(deps, &change, true).await?,
        Signal::MetricAlert(alert) => {
            if alert.status == MetricStatus::Resolved {
                status_change(deps, &alert.to_change(), true).await?
            } else {
                occurrence(deps, job, &alert.to_event()).await?
            }
        }
        Signal::Uptime(alert) => {
            if alert.state == UptimeState::Up {
                status_change(deps, &alert.to_change(), true).await?
            } else {
                occurrence(deps, job, &alert.to_event()).await?
            }
        }
        Signal::Ignored(_) | Signal::Assigned { .. } => {
            Outcome::done(JobState::Ignored, "no action for this status change".to_owned())
        }
    };
    Ok(with_fingerprint(outcome, &fingerprint))
}

fn with_fingerprint(outcome: Outcome, fp: &str) -> Outcome {
    match outcome {
        Outcome::Done { state, reason, links, .. } => {
            Outcome::Done { state, reason, links, fingerprint: Some(fp.to_owned()) }
        }
        retry @ Outcome::Retry { .. } => retry,
    }
}

async fn occurrence<P: HttpPort>(deps: &Deps<'_, P>, job: &Job, event: &ErrorEvent) -> Result<Outcome, StepError> {
    let holder = job.id.as_str();
    let fp = event.fingerprint.as_str();
    let op = FingerprintOp::Occurrence {
        holder: holder.to_owned(),
        now_ms: deps.now_ms,
        lease_ms: deps.config.claim_lease_ms,
        cooldown_ms: deps.config.repeat_comment_cooldown_ms,
    };
    match deps.claims.fingerprint(fp, &op).await? {
        FingerprintReply::Create { tracked, .. } => match file(deps, event, tracked).await {
            Ok(tracked) => {
                deps.claims
                    .fingerprint(fp, &FingerprintOp::Filed { holder: holder.to_owned(), now_ms: deps.now_ms })
                    .await?;
                deps.state.remember_issue(event, &tracked).await;
                crate::fix::maybe_auto_fix(deps, job, event, &tracked).await;
                Ok(Outcome::Done { state: JobState::Filed, reason: None, links: links(&tracked), fingerprint: None })
            }
            Err(StepError::Sink(e)) if !e.is_transient() => {
                deps.claims.fingerprint(fp, &FingerprintOp::Abandon { holder: holder.to_owned() }).await?;
                Err(StepError::Sink(e))
            }
            Err(e) => Err(e),
        },
        FingerprintReply::Pending { occurrences } => Ok(Outcome::done(
            JobState::Duplicate,
            format!("occurrence {occurrences} counted; the issue is being filed by another job"),
        )),
        FingerprintReply::Repeat { tracked, occurrences, decision } => {
            repeat(deps, event, &tracked, occurrences, decision).await?;
            let reason = match (decision.regressed, decision.comment) {
                (true, _) => format!("regression (occurrence {occurrences}): reopened"),
                (false, true) => format!("occurrence {occurrences}: commented"),
                (false, false) => format!("occurrence {occurrences}: counted (within the comment cooldown)"),
            };
            Ok(Outcome::Done {
                state: JobState::Filed,
                reason: Some(reason),
                links: links(&tracked),
                fingerprint: None,
            })
        }
        other => Err(StepError::Platform(format!("unexpected claim reply {other:?}"))),
    }
}

fn links(tracked: &TrackedRefs) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = &tracked.linear {
        out.push(l.url.clone());
    }
    if let Some(g) = &tracked.github {
        out.push(g.url.clone());
    }
    out
}

fn linear<'a, P: HttpPort>(deps: &Deps<'a, P>) -> Option<(Linear<'a, P>, &'a str)> {
    deps.config.linear.as_ref().map(|c| {
        (Linear { port: deps.port, api_url: c.api_url.clone(), api_key: c.api_key.clone() }, c.team_id.as_str())
    })
}

fn github<'a, P: HttpPort>(deps: &Deps<'a, P>) -> Option<GitHub<'a, P>> {
    deps.config.github.as_ref().map(|c| GitHub {
        port: deps.port,
        api_base: c.api_base.clone(),
        token: c.token.clone(),
        repo: c.repo.clone(),
    })
}

fn discord<'a, P: HttpPort>(deps: &Deps<'a, P>) -> Discord<'a, P> {
    let c = &deps.config.discord;
    Discord { port: deps.port, api_base: c.api_base.clone(), bot_token: c.bot_token.clone() }
}

/// Files what `tracked` does not have yet, recording each piece as soon as it exists.
async fn file<P: HttpPort>(
    deps: &Deps<'_, P>,
    event: &ErrorEvent,
    mut tracked: TrackedRefs,
) -> Result<TrackedRefs, StepError> {
    let fp = event.fingerprint.as_str();
    let title = report::issue_title(event);
    let body = report::issue_body_markdown(event);
    if tracked.linear.is_none()
        && let Some((linear, team_id)) = linear(deps)
    {
        // bugbot's own id for this fingerprint first (a create whose response was lost), then the
        // source link, the natural key of an issue filed before ids were chosen.
        let id = bugbot_shared::claim::linear_issue_id(team_id, fp);
        let existing = match (linear.issue(&id).await?, &event.link) {
            (Some(issue), _) => Some(issue),
            (None, Some(url)) => linear.find_by_attachment_url(url).await?,
            (None, None) => None,
        };
        let issue = if let Some(issue) = existing {
            issue
        } else {
            let label_ids = linear.ensure_labels(team_id, &report::labels(event)).await?;
            let issue = linear
                .create_issue(&NewLinearIssue {
                    team_id: team_id.to_owned(),
                    title: title.clone(),
                    description: body.clone(),
                    priority: report::linear_priority(event.level),
                    label_ids,
                    id: Some(id),
                })
                .await?;
            if let Some(url) = &event.link {
                linear.attach_link(&issue.id, url, &format!("{} issue", event.source.product())).await?;
            }
            issue
        };
        let linear_ref = LinearRef { id: issue.id, identifier: issue.identifier, url: issue.url };
        progress(deps, fp, TrackedRefs { linear: Some(linear_ref.clone()), ..TrackedRefs::default() }).await?;
        tracked.linear = Some(linear_ref);
    }
    if tracked.github.is_none()
        && let Some(github) = github(deps)
    {
        let marker = report::fingerprint_marker(&event.fingerprint);
        let issue = match github.find_by_marker(&marker).await? {
            Some(issue) => issue,
            None => github.create_issue(&title, &body, &report::labels(event)).await?,
        };
        let github_ref = GitHubRef { number: issue.number, url: issue.html_url };
        progress(deps, fp, TrackedRefs { github: Some(github_ref.clone()), ..TrackedRefs::default() }).await?;
        tracked.github = Some(github_ref);
    }
    if tracked.discord.is_none()
        && let (Some(channel), Some(url)) = (deps.config.discord.alerts_channel_id.as_deref(), tracked.primary_url())
        && deps.config.discord.bot_token.is_some()
    {
        let message = report::discord_alert_message(event, url, AlertState::Open);
        let sent = discord(deps).create_message(channel, &message).await?;
        let discord_ref =
            DiscordRef { channel_id: sent.channel_id.to_string(), message_id: sent.message_id.to_string() };
        progress(deps, fp, TrackedRefs { discord: Some(discord_ref.clone()), ..TrackedRefs::default() }).await?;
        tracked.discord = Some(discord_ref);
    }
    Ok(tracked)
}

async fn progress<P: HttpPort>(deps: &Deps<'_, P>, fp: &str, tracked: TrackedRefs) -> Result<(), StepError> {
    deps.claims.fingerprint(fp, &FingerprintOp::Progress { tracked }).await?;
    Ok(())
}

/// A repeat occurrence: a comment (at most once per cooldown), reopening on regression.
async fn repeat<P: HttpPort>(
    deps: &Deps<'_, P>,
    event: &ErrorEvent,
    tracked: &TrackedRefs,
    occurrences: u64,
    decision: RepeatDecision,
) -> Result<(), StepError> {
    deps.state.count_occurrence(event, occurrences).await;
    if !decision.comment && !decision.regressed {
        return Ok(());
    }
    let comment = if decision.regressed {
        report::regressed_comment_markdown(event)
    } else {
        report::repeat_comment_markdown(event, occurrences)
    };
    comment_everywhere(deps, tracked, &comment).await?;
    if decision.regressed {
        set_open_everywhere(deps, tracked, true).await?;
        edit_alert(deps, tracked, event, AlertState::Regressed).await?;
    }
    Ok(())
}

/// Resolved (or recovered) at the source: comment, close, and edit the announcement.
async fn status_change<P: HttpPort>(
    deps: &Deps<'_, P>,
    change: &StatusChange,
    resolved: bool,
) -> Result<Outcome, StepError> {
    let fp = change.fingerprint.as_str();
    match deps.claims.fingerprint(fp, &FingerprintOp::SetResolved { resolved, now_ms: deps.now_ms }).await? {
        FingerprintReply::NotTracked => Ok(Outcome::done(JobState::Ignored, "not tracked by bugbot".to_owned())),
        FingerprintReply::Status { changed: false, tracked } => Ok(Outcome::Done {
            state: JobState::Duplicate,
            reason: Some("already in that state".into()),
            links: links(&tracked),
            fingerprint: None,
        }),
        FingerprintReply::Status { tracked, .. } => {
            comment_everywhere(deps, &tracked, &report::resolved_comment_markdown(change)).await?;
            set_open_everywhere(deps, &tracked, !resolved).await?;
            let event = deps.state.remembered_event(fp).await.unwrap_or_else(|| change.to_event());
            edit_alert(deps, &tracked, &event, if resolved { AlertState::Resolved } else { AlertState::Regressed })
                .await?;
            Ok(Outcome::Done {
                state: JobState::Done,
                reason: Some("resolved".into()),
                links: links(&tracked),
                fingerprint: None,
            })
        }
        other => Err(StepError::Platform(format!("unexpected claim reply {other:?}"))),
    }
}

async fn comment_everywhere<P: HttpPort>(
    deps: &Deps<'_, P>,
    tracked: &TrackedRefs,
    body: &str,
) -> Result<(), StepError> {
    if let (Some(l), Some((linear, _))) = (&tracked.linear, linear(deps)) {
        linear.comment(&l.id, body).await?;
    }
    if let (Some(g), Some(github)) = (&tracked.github, github(deps)) {
        github.comment(g.number, body).await?;
    }
    Ok(())
}

async fn set_open_everywhere<P: HttpPort>(
    deps: &Deps<'_, P>,
    tracked: &TrackedRefs,
    open: bool,
) -> Result<(), StepError> {
    if let (Some(l), Some((linear, team_id))) = (&tracked.linear, linear(deps)) {
        linear.set_state_type(&l.id, team_id, if open { "unstarted" } else { "completed" }).await?;
    }
    if let (Some(g), Some(github)) = (&tracked.github, github(deps)) {
        github.set_state(g.number, open, Some(if open { "reopened" } else { "completed" })).await?;
    }
    Ok(())
}

async fn edit_alert<P: HttpPort>(
    deps: &Deps<'_, P>,
    tracked: &TrackedRefs,
    event: &ErrorEvent,
    state: AlertState,
) -> Result<(), StepError> {
    if let (Some(d), Some(url)) = (&tracked.discord, tracked.primary_url()) {
        let message = report::discord_alert_message(event, url, state);
        discord(deps).edit_message(&d.channel_id, &d.message_id, &message).await?;
    }
    Ok(())
}
