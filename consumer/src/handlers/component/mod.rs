//! Clicks on an alert card's buttons and the "Fix with instructions" modal (issue 19).
//!
//! The gateway answered the click with a deferred update (type 6), so the interaction's
//! `@original` is the card itself. A click:
//! 1. parses the versioned `custom_id` ([`bugbot_shared::chatops`]): an unknown or outdated one is
//!    answered privately;
//! 2. re-reads the fingerprint's claim: the tracked issues, the card's message, resolved, muted.
//!    Nothing else in the `custom_id` is trusted, and a click on a message that is not the
//!    fingerprint's card is refused;
//! 3. becomes the `/bugbot` command it stands for (Investigate → `investigate`, Fix → `fix`,
//!    Resolve → `resolve`) and runs through the command handler, authorization included, exactly as
//!    typed; Mute and Unmute are writes, authorized by the same policy;
//! 4. edits the card in place: who did what, and only the buttons that still apply.
//!
//! Replies of the command (the packet's summary, a refusal) go in follow-ups: the card stays.

use bugbot_shared::authz::{Access, Decision};
use bugbot_shared::chatops::{self, Action, CardView, ComponentId};
use bugbot_shared::claim::{FingerprintOp, FingerprintRecord, FingerprintReply, IssueState};
use bugbot_shared::command::{Command, IssueRef};
use bugbot_shared::event::{ErrorEvent, StatusChange};
use bugbot_shared::job::{DiscordCommandJob, DiscordComponentJob, InteractionContext, Job, JobKind};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::status::JobState;
use serde_json::json;

use crate::clients::http::HttpPort;
use crate::handlers::command;
use crate::handlers::interaction::{discord, refuse};
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome};
use crate::store::ports::{ClaimPort, KvPort};

pub mod mutes;

/// Handles a `DiscordComponent` job (a click or a modal submit).
pub async fn process<P: HttpPort>(ctx: &Ctx<'_, P>, job: &Job, click: &DiscordComponentJob) -> Outcome {
    let ix = InteractionContext { reply_in_followup: true, ..click.interaction.clone() };
    let id = match ComponentId::parse(&click.custom_id) {
        Ok(id) => id,
        Err(e) => {
            refuse(ctx, &ix, &format!("⚠️ {e}")).await;
            return Outcome::done(JobState::Ignored, format!("component: {e}"));
        }
    };
    let record = match read(ctx, id.fingerprint.as_str()).await {
        Ok(record) => record,
        Err(reason) => {
            refuse(ctx, &ix, &format!("⚠️ {reason}")).await;
            return Outcome::done(JobState::Ignored, format!("component: {reason}"));
        }
    };
    // The card is the fingerprint's own announcement; a button copied onto another message (or a
    // stale card of an issue filed again) does not act on it.
    let card = record.tracked.discord.as_ref().map(|d| d.message_id.as_str());
    if let Some(clicked) = click.message_id
        && card != Some(clicked.to_string().as_str())
    {
        let reason = "this button does not belong to this issue's card.";
        refuse(ctx, &ix, &format!("⚠️ {reason}")).await;
        return Outcome::done(JobState::Ignored, format!("component: {reason}"));
    }
    let event = ctx.state.remembered_event(id.fingerprint.as_str()).await;
    match id.action {
        Action::Mute | Action::Unmute => mute(ctx, job, &ix, &id).await,
        Action::FixWithInstructions => {
            // The gateway answers this button with the modal; a job for it is a replay or an old gateway.
            refuse(ctx, &ix, "⚠️ Open the modal again to give the fix its instructions.").await;
            Outcome::done(JobState::Ignored, "component: fix modal opener reached the consumer".to_owned())
        }
        action => {
            let Some(command) = command_for(action, &record, event.as_ref()) else {
                refuse(ctx, &ix, "⚠️ bugbot has nothing to run this on (no tracked issue or source link).").await;
                return Outcome::done(JobState::Ignored, "component: nothing to act on".to_owned());
            };
            run(ctx, job, &ix, &id, command, event.as_ref()).await
        }
    }
}

/// The fingerprint's claim, filed.
async fn read<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    fingerprint: &str,
) -> Result<FingerprintRecord, String> {
    match ctx.claims.fingerprint(fingerprint, &FingerprintOp::Get).await {
        Ok(FingerprintReply::Record { record: Some(r) }) if r.state == IssueState::Filed => Ok(r),
        Ok(_) => Err("bugbot no longer tracks this issue.".into()),
        Err(e) => Err(format!("bugbot's state is unavailable ({e}); try again in a moment.")),
    }
}

fn issue_ref(text: &str) -> Option<IssueRef> {
    serde_json::from_value(json!(text)).ok()
}

/// The `/bugbot` command a button stands for, from state only.
fn command_for(action: Action, record: &FingerprintRecord, event: Option<&ErrorEvent>) -> Option<Command> {
    let tracked = record.tracked.primary_url().and_then(issue_ref);
    match action {
        Action::Investigate => Some(Command::Investigate { issue: tracked? }),
        // The modal's instructions travel beside the command (`DiscordCommandJob::guidance`).
        Action::Fix | Action::FixModalSubmit => Some(Command::Fix { issue: Some(tracked?), repo: None }),
        // The source issue when there is one (Sentry, GlitchTip), else the tracked issue (whose
        // thread may name one); the tracked issues are closed by the click either way.
        Action::Resolve => event
            .and_then(|e| e.link.as_deref())
            .and_then(issue_ref)
            .or(tracked)
            .map(|issue| Command::Resolve { issue }),
        Action::Mute | Action::Unmute | Action::FixWithInstructions => None,
    }
}

/// The guidance a fix job carries (from the "Fix with instructions" modal), for the agent's prompt.
pub(crate) fn fix_context(job: &Job, requested_by: &str) -> String {
    match &job.kind {
        JobKind::DiscordCommand(DiscordCommandJob { guidance: Some(text), .. }) => {
            chatops::agent_guidance(text, requested_by)
        }
        _ => String::new(),
    }
}

/// The same guidance as given, to be kept with the run and quoted in its PR body.
pub(crate) fn guidance(job: &Job) -> Option<String> {
    match &job.kind {
        JobKind::DiscordCommand(c) => c.guidance.clone(),
        _ => None,
    }
}

/// The modal's text, bounded.
pub fn instructions(click: &DiscordComponentJob) -> Option<String> {
    click
        .fields
        .iter()
        .find(|(id, _)| id == chatops::INSTRUCTIONS_INPUT)
        .map(|(_, v)| bugbot_shared::report::clip(v.trim(), chatops::MAX_INSTRUCTIONS))
        .filter(|v| !v.is_empty())
}

fn authorize<P: HttpPort>(ctx: &Ctx<'_, P>, ix: &InteractionContext, access: Access) -> Result<(), String> {
    match command::policy(ctx.env).as_ref() {
        Ok(policy) => match policy.decide(ix, access) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(reason),
        },
        Err(e) => Err(format!("bugbot's authorization settings are invalid ({e}).")),
    }
}

/// Runs the command the button stands for through the command handler (which authorizes it), then
/// edits the card.
async fn run<P: HttpPort>(
    ctx: &Ctx<'_, P>,
    job: &Job,
    ix: &InteractionContext,
    id: &ComponentId,
    command: Command,
    event: Option<&ErrorEvent>,
) -> Outcome {
    let allowed = authorize(ctx, ix, Access::of(&command)).is_ok();
    let is_fix = matches!(command, Command::Fix { .. });
    // The modal's text travels with the command: the fix flow fences it for the agent and quotes
    // it in the PR body.
    let guidance = match (&job.kind, id.action) {
        (JobKind::DiscordComponent(click), Action::FixModalSubmit) => instructions(click),
        _ => None,
    };
    let as_command = Job {
        kind: JobKind::DiscordCommand(DiscordCommandJob {
            interaction: ix.clone(),
            command,
            guidance,
            card: Some(id.fingerprint.to_string()),
        }),
        ..job.clone()
    };
    let JobKind::DiscordCommand(cmd) = &as_command.kind else { unreachable!("built above") };
    let outcome = Box::pin(command::run(ctx, &as_command, cmd)).await;
    if !allowed {
        // Refused by the command handler, privately; the card is untouched.
        return outcome;
    }
    if matches!(id.action, Action::Resolve) && !matches!(outcome, Outcome::Retry { .. }) {
        // The source issue (if any) was resolved by the command; the tracked issues go with it.
        if let Err(e) = close_tracked(ctx, ix, id, event).await {
            return crate::runtime::settle::failure(&ctx.config.retry, ctx.jitter, ctx.attempt, e);
        }
    }
    match &outcome {
        Outcome::Retry { .. } => {}
        // The fix flow writes the card's text stage by stage ("Fix running…", then the PR); the
        // click only takes the Fix buttons off while it runs.
        Outcome::Done { state, .. } if is_fix => {
            let _ = edit_card(ctx, ix, id, *state == JobState::Fixing, false).await;
        }
        Outcome::Done { .. } => {
            let _ = edit_card(ctx, ix, id, false, true).await;
        }
    }
    outcome
}

/// Closes the fingerprint's tracked issues as a resolve at the source would (comment, close, edit
/// the card); nothing when they already are.
pub(crate) async fn close_tracked<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    id: &ComponentId,
    event: Option<&ErrorEvent>,
) -> Result<Outcome, crate::runtime::outcome::StepError> {
    let change = StatusChange {
        source: event.map_or(bugbot_shared::event::Source::Sentry, |e| e.source),
        fingerprint: id.fingerprint.clone(),
        title: event.map_or_else(String::new, |e| e.title.clone()),
        link: event.and_then(|e| e.link.clone()),
        actor: ix.user.as_ref().map(|u| u.global_name.clone().unwrap_or_else(|| u.username.clone())),
        at_ms: ctx.now_ms,
    };
    crate::handlers::alert::status_change(ctx, &change, true).await
}

/// After `/bugbot resolve` resolved a source issue: its tracked issues too, when bugbot tracks it
/// (a GlitchTip resolve sends no webhook back, so nothing else would close them).
pub(crate) async fn resolved_at_source<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    issue_id: &str,
    issue_url: Option<&str>,
) -> Result<(), crate::runtime::outcome::StepError> {
    for fingerprint in chatops::source_fingerprints(issue_id, issue_url) {
        let id = ComponentId::new(Action::Resolve, &fingerprint);
        let event = ctx.state.remembered_event(fingerprint.as_str()).await;
        if let Outcome::Done { state: JobState::Done, .. } = close_tracked(ctx, ix, &id, event.as_ref()).await? {
            break;
        }
    }
    Ok(())
}

async fn mute<P: HttpPort>(ctx: &Ctx<'_, P>, job: &Job, ix: &InteractionContext, id: &ComponentId) -> Outcome {
    if let Err(reason) = authorize(ctx, ix, Access::Write) {
        log_refusal(job, id.action, ix, &reason);
        refuse(ctx, ix, &format!("⛔ Not allowed: {reason}")).await;
        return Outcome::done(JobState::Ignored, format!("refused: {reason}"));
    }
    let who = ix.user.as_ref().map(|u| u.id.to_string());
    let op = match id.action {
        Action::Mute => FingerprintOp::Mute { until_ms: ctx.now_ms + chatops::MUTE_MS, by: who },
        _ => FingerprintOp::Unmute,
    };
    let record = match ctx.claims.fingerprint(id.fingerprint.as_str(), &op).await {
        Ok(FingerprintReply::Record { record: Some(r) }) => r,
        Ok(_) => return Outcome::done(JobState::Ignored, "component: no longer tracked".to_owned()),
        Err(e) => return Outcome::Retry { delay_secs: 5, reason: format!("claim store: {e}"), attempt: ctx.attempt },
    };
    mutes::remember(ctx, id.fingerprint.as_str(), &record).await;
    let _ = edit_card_with(ctx, ix, id, &record, false, true).await;
    Outcome::Done {
        state: JobState::Done,
        reason: Some(format!("{} {}", id.action.name(), id.fingerprint)),
        links: record.tracked.primary_url().map(str::to_owned).into_iter().collect(),
        fingerprint: Some(id.fingerprint.to_string()),
        effect: Effect::None,
    }
}

fn log_refusal(job: &Job, action: Action, ix: &InteractionContext, reason: &str) {
    let mut line = LogLine::new(Level::Warn, "consumer", "authz");
    line.job_id = Some(job.id.as_str());
    line.kind = Some(action.name());
    line.outcome = Some("refused");
    let user = ix.user.as_ref().map_or_else(|| "unknown".to_owned(), |u| u.id.to_string());
    let why = format!("{reason} (user {user})");
    line.reason = Some(&why);
    worker::console_warn!("{}", line.to_json());
}

/// Edits the card in place (the interaction's `@original`): who did what, and the buttons that
/// still apply, from the claim read again now.
async fn edit_card<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    id: &ComponentId,
    fixing: bool,
    say_who: bool,
) -> Result<(), crate::clients::SinkError> {
    let Ok(record) = read(ctx, id.fingerprint.as_str()).await else { return Ok(()) };
    edit_card_with(ctx, ix, id, &record, fixing, say_who).await
}

async fn edit_card_with<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    id: &ComponentId,
    record: &FingerprintRecord,
    fixing: bool,
    say_who: bool,
) -> Result<(), crate::clients::SinkError> {
    // The fix of the tracked issue as its run records it: running, and its PR once there is one.
    let (running, pr_url) = crate::handlers::fix::card_state(ctx, &record.tracked).await;
    let view = CardView {
        issue_url: record.tracked.primary_url(),
        resolved: record.resolved,
        muted_until_ms: Some(record.muted_until_ms),
        fixing: fixing || running,
        pr_url: pr_url.as_deref(),
    };
    let mut body = json!({
        "components": chatops::card_components(&id.fingerprint, &view, ctx.now_ms),
        "allowed_mentions": {"parse": []},
    });
    if say_who {
        body["content"] = json!(chatops::status_line(id.action, ix.user.as_ref().map(|u| u.id.0), None));
    }
    discord(ctx).edit_original(&ix.application_id.to_string(), &ix.token, &body).await.map(|_| ())
}

/// A fix run of this fingerprint's tracked issue ended (`ended`: how): its card, edited through the
/// bot (the click's interaction token may have expired, and an auto-fix has none), shows the PR's
/// link button and "Fix → PR #12", or the Fix buttons back when no PR opened. Best effort: the
/// run's own message and the tracked issue's comment already tell the end.
pub(crate) async fn fix_ended<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    fingerprint: &str,
    pr_url: Option<&str>,
    ended: &str,
) {
    let Ok(fp) = bugbot_shared::event::Fingerprint::parse(fingerprint) else { return };
    let Ok(record) = read(ctx, fingerprint).await else { return };
    let Some(card) = record.tracked.discord.as_ref() else { return };
    if ctx.config.discord.bot_token.is_none() {
        return;
    }
    let view = CardView {
        issue_url: record.tracked.primary_url(),
        resolved: record.resolved,
        muted_until_ms: Some(record.muted_until_ms),
        fixing: false,
        pr_url,
    };
    let body = json!({
        "content": chatops::fix_line(false, pr_url, ended),
        "components": chatops::card_components(&fp, &view, ctx.now_ms),
        "allowed_mentions": {"parse": []},
    });
    let _ = discord(ctx).edit_message(&card.channel_id, &card.message_id, &body).await;
}
