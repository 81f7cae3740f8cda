//! The alert card: read from the fingerprint's claim, edited in place after a click, when a fix
//! ends, and when the issue is resolved at the source. A leaf of the handlers: the command and fix
//! flows call into it, it calls neither.

use bugbot_shared::chatops::{self, Action, CardView, ComponentId};
use bugbot_shared::claim::{FingerprintOp, FingerprintRecord, FingerprintReply, IssueState, TrackedRefs};
use bugbot_shared::event::{ErrorEvent, StatusChange};
use bugbot_shared::job::InteractionContext;
use bugbot_shared::status::JobState;
use serde_json::json;

use crate::clients::http::HttpPort;
use crate::handlers::interaction::discord;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::Outcome;
use crate::store::fix_runs::{self, FixState};
use crate::store::ports::{ClaimPort, KvPort};

/// Why a click finds no card to act on (its text is the private answer to the click).
#[derive(Debug, thiserror::Error)]
pub(super) enum CardError {
    #[error("bugbot no longer tracks this issue.")]
    NotTracked,
    #[error("bugbot's state is unavailable ({0}); try again in a moment.")]
    Unavailable(worker::Error),
}

/// The fingerprint's claim, filed.
pub(super) async fn read<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    fingerprint: &str,
) -> Result<FingerprintRecord, CardError> {
    match ctx.claims.fingerprint(fingerprint, &FingerprintOp::Get).await {
        Ok(FingerprintReply::Record { record: Some(r) }) if r.state == IssueState::Filed => Ok(*r),
        Ok(_) => Err(CardError::NotTracked),
        Err(e) => Err(CardError::Unavailable(e)),
    }
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
        let event = crate::store::remembered_event(ctx.claims, ctx.state, fingerprint.as_str()).await?;
        if let Outcome::Done { state: JobState::Done, .. } = close_tracked(ctx, ix, &id, event.as_ref()).await? {
            break;
        }
    }
    Ok(())
}

/// Edits the card in place (the interaction's `@original`): who did what, and the buttons that
/// still apply, from the claim read again now.
pub(super) async fn edit_card<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    id: &ComponentId,
    fixing: bool,
    say_who: bool,
) -> Result<(), crate::clients::SinkError> {
    let Ok(record) = read(ctx, id.fingerprint.as_str()).await else { return Ok(()) };
    edit_card_with(ctx, ix, id, &record, fixing, say_who).await
}

pub(super) async fn edit_card_with<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    id: &ComponentId,
    record: &FingerprintRecord,
    fixing: bool,
    say_who: bool,
) -> Result<(), crate::clients::SinkError> {
    // The fix of the tracked issue as its run records it: running, and its PR once there is one.
    let (running, pr_url) = fix_state(ctx, &record.tracked).await;
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

/// What an alert card shows of the fix of its tracked issue: whether one runs, and its PR. A fix
/// may be keyed by either tracked issue (a click fixes the primary one, Linear first; an auto-fix
/// the GitHub one first): the first with a run tells.
async fn fix_state<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    tracked: &TrackedRefs,
) -> (bool, Option<String>) {
    let keys = [tracked.linear.as_ref().map(|l| l.label.clone()), tracked.github.as_ref().map(|g| g.label.clone())];
    for key in keys.into_iter().flatten() {
        if let Some(run) = fix_runs::current(ctx.state.kv(), &key).await {
            return (matches!(run.state, FixState::Queued | FixState::Running), run.pr_url);
        }
    }
    (false, None)
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
