//! `/bugbot status`: the thread's (or issue's) tracked issue and its last jobs, from KV.

use bugbot_shared::command::IssueMention;
use bugbot_shared::job::InteractionContext;
use bugbot_shared::status::{JobState, JobStatus};

use super::{done, reply, tracked};
use crate::clients::http::HttpPort;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome, StepError};
use crate::store::ports::{ClaimPort, KvPort};

/// How a job's state reads in `/bugbot status`.
pub fn describe(status: &JobStatus) -> String {
    let reason = status.reason.as_deref().unwrap_or_default();
    match status.state {
        JobState::Received => "queued".to_owned(),
        JobState::Gathering => "gathering context".to_owned(),
        JobState::Filed => "filed".to_owned(),
        JobState::Fixing => format!("fixing ({})", if reason.is_empty() { "in progress" } else { reason }),
        JobState::PrOpened => "PR opened".to_owned(),
        JobState::Done => "done".to_owned(),
        JobState::Retrying => format!("retrying: {reason}"),
        JobState::Failed => format!("failed: {reason}"),
        JobState::Duplicate => "duplicate".to_owned(),
        JobState::Ignored => format!("ignored: {reason}"),
        _ => format!("{:?}", status.state),
    }
}

pub(super) async fn status<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    issue: Option<&IssueMention>,
) -> Result<Outcome, StepError> {
    let kv = ctx.state.kv();
    let record = match issue {
        Some(issue) => tracked::record_for_issue(kv, issue.as_str()).await,
        None => match ix.channel_id {
            Some(channel) => tracked::record_for_thread(kv, &channel.to_string()).await,
            None => None,
        },
    };
    // Active mutes are listed wherever status is asked (issue 19).
    let active = crate::handlers::component::mutes::active(ctx).await;
    let muted = crate::handlers::component::mutes::describe(&active, ctx.now_ms);
    let Some(record) = record else {
        let what = issue.map_or_else(|| "this thread".to_owned(), |i| format!("`{}`", i.as_str()));
        let mut lines = vec![format!("bugbot has no work on record for {what}.")];
        lines.extend(muted);
        reply(ctx, ix, &lines.join("\n")).await?;
        return Ok(done(JobState::Done, "status: nothing on record"));
    };
    let mut lines = vec![format!("**{}** {} — <{}>", record.issue.label, record.issue.title, record.issue.url)];
    for job_id in record.jobs.iter().rev().take(5) {
        let line = match ctx.job_status(job_id).await {
            Some(s) => {
                format!("• `{}` {}: {}", s.job_id, record.kinds.get(job_id).map_or("job", String::as_str), describe(&s))
            }
            None => format!("• `{job_id}`: queued"),
        };
        lines.push(line);
    }
    lines.extend(muted);
    reply(ctx, ix, &bugbot_shared::report::clip(&lines.join("\n"), 2_000)).await?;
    Ok(Outcome::Done {
        state: JobState::Done,
        reason: Some("status shown".into()),
        links: vec![record.issue.url],
        fingerprint: None,
        effect: Effect::None,
    })
}
