//! Answers to a Discord interaction that any handler may give: edit the deferred reply, or refuse
//! privately. Shared by the command and fix handlers (neither imports the other for it).

use bugbot_shared::job::InteractionContext;
use bugbot_shared::report::clip;
use serde_json::json;

use crate::clients::SinkError;
use crate::clients::discord::Discord;
use crate::clients::http::HttpPort;
use crate::runtime::ctx::Ctx;
use crate::store::ports::{ClaimPort, KvPort};

pub(crate) fn discord<'a, P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'a, P, C, K>) -> Discord<'a, P> {
    ctx.discord()
}

/// Edits the deferred reply. Error text is untrusted: the reply can ping no one.
pub(crate) async fn reply<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    content: &str,
) -> Result<(), SinkError> {
    let body = json!({"content": clip(content, 2_000), "allowed_mentions": {"parse": []}});
    let app = ix.application_id.to_string();
    if ix.reply_in_followup {
        // The original is the alert card (a click): the answer is a message of its own.
        return discord(ctx).followup(&app, &ix.token, &body).await.map(|_| ());
    }
    discord(ctx).edit_original(&app, &ix.token, &body).await.map(|_| ())
}

/// A refusal only the invoker sees: the deferral was public, so the answer is an ephemeral
/// follow-up and the public "thinking…" placeholder is deleted (a click's original, the card, stays).
pub(crate) async fn refuse<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    content: &str,
) {
    let body = json!({"content": clip(content, 2_000), "flags": 64, "allowed_mentions": {"parse": []}});
    let discord = discord(ctx);
    let app = ix.application_id.to_string();
    if discord.followup(&app, &ix.token, &body).await.is_ok() {
        // After a click the original is the alert card: it stays.
        if !ix.reply_in_followup {
            let _ = discord.delete_original(&app, &ix.token).await;
        }
    } else if !ix.reply_in_followup {
        // Without the follow-up, say it in the deferred reply rather than not at all.
        let _ = reply(ctx, ix, content).await;
    }
}
