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
use bugbot_shared::chatops::{self, Action, ComponentId};
use bugbot_shared::claim::{FingerprintOp, FingerprintRecord, FingerprintReply};
use bugbot_shared::command::{Command, IssueMention};
use bugbot_shared::event::ErrorEvent;
use bugbot_shared::job::{DiscordCommandJob, DiscordComponentJob, InteractionContext, Job, JobKind};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::status::JobState;
use serde_json::json;

use crate::clients::http::HttpPort;
use crate::handlers::command;
use crate::handlers::interaction::refuse;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome};
use crate::store::ports::{ClaimPort, KvPort};

pub mod card;
pub mod guidance;
pub mod mutes;

use card::{close_tracked, edit_card, edit_card_with, read};

/// Handles a `DiscordComponent` job (a click or a modal submit).
pub async fn process<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    click: &DiscordComponentJob,
) -> Outcome {
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
    let event = match crate::store::remembered_event(ctx.claims, ctx.state, id.fingerprint.as_str()).await {
        Ok(event) => event,
        Err(e) => {
            let reason = "bugbot could not read this issue's state; try again.";
            refuse(ctx, &ix, &format!("⚠️ {reason}")).await;
            return Outcome::done(JobState::Ignored, format!("component: {reason} ({e})"));
        }
    };
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

fn issue_ref(text: &str) -> Option<IssueMention> {
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

/// The modal's text, bounded.
pub fn instructions(click: &DiscordComponentJob) -> Option<String> {
    click
        .fields
        .iter()
        .find(|(id, _)| id == chatops::INSTRUCTIONS_INPUT)
        .map(|(_, v)| bugbot_shared::report::clip(v.trim(), chatops::MAX_INSTRUCTIONS))
        .filter(|v| !v.is_empty())
}

/// Runs the command the button stands for through the command handler (which authorizes it), then
/// edits the card.
async fn run<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    ix: &InteractionContext,
    id: &ComponentId,
    command: Command,
    event: Option<&ErrorEvent>,
) -> Outcome {
    let allowed = matches!(command::authorize(ctx.config, ix, Access::of(&command)), Decision::Allow);
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

async fn mute<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    ix: &InteractionContext,
    id: &ComponentId,
) -> Outcome {
    if let Decision::Deny(reason) = command::authorize(ctx.config, ix, Access::Write) {
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
    command::warn(&line);
}
