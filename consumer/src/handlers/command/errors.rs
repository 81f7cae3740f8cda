//! `/bugbot errors`: the top unresolved issues of the Sentry-compatible API.

use std::fmt::Write as _;

use bugbot_shared::job::InteractionContext;

use super::reply;
use super::sentry::{api, done, link, one_line};
use crate::clients::http::HttpPort;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Outcome, StepError};
use crate::store::ports::{ClaimPort, KvPort};

/// `/bugbot errors [project] [hours]`: the top unresolved issues in the window.
pub async fn errors<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    project: Option<&str>,
    hours: Option<u32>,
) -> Result<Outcome, StepError> {
    let api = api(ctx)?;
    let hours = hours.unwrap_or(24);
    let mut query = "is:unresolved".to_owned();
    if let Some(p) = project {
        let _ = write!(query, " project:{}", p.replace(char::is_whitespace, ""));
    }
    let issues = api.list_issues(&query, &format!("{hours}h"), 10).await?;
    let scope = project.map(|p| format!(" in `{p}`")).unwrap_or_default();
    let mut text = format!("**Top unresolved errors{scope}, last {hours} h**");
    if issues.is_empty() {
        text.push_str("\nNothing unresolved. 🎉");
    }
    for (i, issue) in issues.iter().enumerate() {
        let _ = write!(
            text,
            "\n{}. [{}](<{}>) — {} events, {} users{}",
            i + 1,
            one_line(&issue.title),
            link(&api, issue),
            issue.count.as_deref().unwrap_or("?"),
            issue.user_count.unwrap_or(0),
            issue.project_slug().map(|p| format!(", {p}")).unwrap_or_default()
        );
    }
    reply(ctx, ix, &text).await?;
    Ok(done(format!("errors: {} issues", issues.len())))
}
