//! `/bugbot` commands and message commands, run in the consumer so that the gateway stays fast:
//! authorize, claim the delivery (a redelivered command runs once), then
//! - contextualize / investigate / the "Contextualize with bugbot" menu: [`context`] gathers a
//!   [`ContextPacket`](bugbot_shared::packet::ContextPacket), comments it on the tracked issue
//!   ([`tracked`]) and edits the deferred reply in place with a summary and the link;
//! - fix / "Fix with bugbot": resolves the tracked issue and records the job as queued for the fix flow;
//! - status: the thread's (or issue's) jobs from KV ([`status`]);
//! - errors / stats / resolve: [`errors`], [`stats`], [`resolve`], over the Sentry-compatible REST API
//!   ([`sentry`] holds what they share).
//!
//! Authorization happens here, not at the gateway: the gateway wasm has no room left under its
//! size budget. The deferred reply was already sent (public, "bugbot is thinking…"), so a refusal
//! is an ephemeral follow-up and the public placeholder is deleted. Every refusal is logged.

pub mod context;
pub mod errors;
pub mod resolve;
pub mod sentry;
pub mod stats;
pub mod status;
pub mod tracked;

use bugbot_shared::authz::{Access, Decision};
use bugbot_shared::command::Command;
use bugbot_shared::job::{DiscordCommandJob, InteractionContext, Job, JobKind};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::report::clip;
use bugbot_shared::status::JobState;

use crate::clients::http::HttpPort;
use crate::config::Config;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome};
use crate::runtime::settle;
use crate::store::ports::{ClaimPort, KvPort};

pub use context::build_packet;
pub use tracked::resolve_tracked_issue;

/// Handles a `DiscordCommand` or `DiscordComponent` job.
pub async fn process<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, job: &Job) -> Outcome {
    match &job.kind {
        JobKind::DiscordCommand(command) => run(ctx, job, command).await,
        _ => done(JobState::Ignored, "not a Discord interaction"),
    }
}

fn done(state: JobState, reason: impl Into<String>) -> Outcome {
    Outcome::Done { state, reason: Some(reason.into()), links: Vec::new(), fingerprint: None, effect: Effect::None }
}

/// The authorization decision for `access`, from the settings read once with the configuration; an
/// unreadable setting closes everything rather than opening up.
pub(crate) fn authorize(config: &Config, ix: &InteractionContext, access: Access) -> Decision {
    match &config.chatops.policy {
        Ok(policy) => policy.decide(ix, access),
        Err(e) => Decision::Deny(format!("bugbot's authorization settings are invalid ({e}).")),
    }
}

pub(crate) use crate::handlers::interaction::{discord, refuse, reply};

fn log_refusal(job: &Job, command: &Command, ix: &InteractionContext, reason: &str) {
    let mut line = LogLine::new(Level::Warn, "consumer", "authz");
    line.job_id = Some(job.id.as_str());
    line.kind = Some(command.name());
    line.outcome = Some("refused");
    let user = ix.user.as_ref().map_or_else(|| "unknown".to_owned(), |u| u.id.to_string());
    let why = format!("{reason} (user {user})");
    line.reason = Some(&why);
    warn(&line);
}

/// Emits a warning log line: to the Worker's console, or natively (the handler tests) to stderr.
pub(crate) fn warn(line: &LogLine<'_>) {
    #[cfg(target_arch = "wasm32")]
    worker::console_warn!("{}", line.to_json());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{}", line.to_json());
}

/// Runs one command: authorize, then the subcommand. Button clicks run through here too
/// (`handlers::component`), so a click is authorized and handled exactly like the command.
pub(crate) async fn run<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    cmd: &DiscordCommandJob,
) -> Outcome {
    let ix = &cmd.interaction;
    if let Decision::Deny(reason) = authorize(ctx.config, ix, Access::of(&cmd.command)) {
        log_refusal(job, &cmd.command, ix, &reason);
        refuse(ctx, ix, &format!("⛔ Not allowed: {reason}")).await;
        return done(JobState::Ignored, format!("refused: {reason}"));
    }

    let result = match &cmd.command {
        Command::Contextualize { issue, note } => {
            context::contextualize(
                ctx,
                job,
                ix,
                context::Target { explicit: issue.as_ref(), note: note.as_deref(), message: None },
            )
            .await
        }
        Command::ContextualizeMessage { message } => {
            context::contextualize(ctx, job, ix, context::Target { explicit: None, note: None, message: Some(message) })
                .await
        }
        Command::Investigate { issue } => {
            context::contextualize(ctx, job, ix, context::Target { explicit: Some(issue), note: None, message: None })
                .await
        }
        // Authorized above; the fix flow resolves the issue, claims it and dispatches the executor.
        Command::Fix { .. } | Command::FixMessage { .. } => Ok(crate::handlers::fix::on_command(ctx, job).await),
        Command::Status { issue } => status::status(ctx, ix, issue.as_ref()).await,
        Command::Errors { project, hours } => errors::errors(ctx, ix, project.as_deref(), *hours).await,
        Command::Stats { period } => stats::stats(ctx, ix, *period).await,
        Command::Resolve { issue } => resolve::resolve(ctx, ix, issue).await,
        _ => Ok(done(JobState::Ignored, "unknown command")),
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => match settle::failure(&ctx.config.retry, ctx.jitter, ctx.attempt, e) {
            retry @ Outcome::Retry { .. } if !settle::is_last(&ctx.config.retry, &retry) => retry,
            // Given up (a permanent failure, or the last attempt): say so in the reply.
            Outcome::Retry { reason, .. } | Outcome::Done { reason: Some(reason), .. } => {
                let _ = reply(ctx, ix, &format!("❌ `/bugbot {}` failed: {reason}", cmd.command.name())).await;
                done(JobState::Failed, reason)
            }
            failed @ Outcome::Done { .. } => failed,
        },
    }
}
