//! `/bugbot resolve`: resolves the source issue (Sentry or GlitchTip) and the tracked issues.

use bugbot_shared::command::IssueMention;
use bugbot_shared::job::InteractionContext;
use bugbot_shared::references::{Reference, extract};
use bugbot_shared::status::JobState;

use super::reply;
use super::sentry::{api, link, one_line};
use crate::clients::http::HttpPort;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome, StepError};
use crate::store::ports::{ClaimPort, KvPort};

/// `/bugbot resolve <issue>`: a Sentry/GlitchTip URL or id (or a tracked issue whose thread
/// referenced one) is resolved; the reply in the channel confirms it.
pub async fn resolve<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    issue: &IssueMention,
) -> Result<Outcome, StepError> {
    let api = api(ctx)?;
    let text = issue.as_str().trim();
    let mut id = extract(text).into_iter().find_map(|r| match r {
        Reference::SentryIssue { issue_id, .. } => Some(issue_id),
        _ => None,
    });
    if id.is_none() && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        id = Some(text.to_owned());
    }
    if id.is_none()
        && let Some(record) = super::tracked::record_for_issue(ctx.state.kv(), text).await
    {
        id = record.references.into_iter().find_map(|r| match r {
            Reference::SentryIssue { issue_id, .. } => Some(issue_id),
            _ => None,
        });
    }
    let Some(id) = id else {
        reply(ctx, ix, &format!("`{}` is not a Sentry/GlitchTip issue (URL or id).", one_line(text))).await?;
        return Ok(Outcome::Done {
            state: JobState::Failed,
            reason: Some("resolve: not a source issue".into()),
            links: Vec::new(),
            fingerprint: None,
            effect: Effect::None,
        });
    };
    let resolved = api.set_status(&id, "resolved").await?;
    let who = ix.user.as_ref().map_or_else(String::new, |u| format!(" by <@{}>", u.id));
    let url = link(&api, &resolved);
    // The tracked issues go with it (issue 19): a GlitchTip resolve sends no webhook back.
    crate::handlers::component::card::resolved_at_source(ctx, ix, &id, Some(&url)).await?;
    reply(ctx, ix, &format!("✅ Resolved [{}](<{url}>){who}.", one_line(&resolved.title))).await?;
    Ok(Outcome::Done {
        state: JobState::Done,
        reason: Some(format!("resolved source issue {id}")),
        links: vec![url],
        fingerprint: None,
        effect: Effect::None,
    })
}
