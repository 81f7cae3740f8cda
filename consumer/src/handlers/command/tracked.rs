//! The tracked issue of a conversation: an explicit reference is fetched; else the thread's
//! mapping in KV (`thread:{channel_id}`) is used; else an issue is created (Linear if configured,
//! else GitHub) and the thread mapped, so that follow-up commands need no repetition.
//!
//! KV keys: `thread:{channel_id}` and `issue:{label}` → [`ThreadRecord`] (the same record under
//! both, so `/bugbot status ENG-1` finds it too).

use std::collections::BTreeMap;

use bugbot_shared::references::Reference;
use serde::{Deserialize, Serialize};

use crate::clients::SinkError;
use bugbot_shared::tracked::{IssueRef, Tracker};

use crate::clients::http::HttpPort;
use crate::clients::linear::NewLinearIssue;
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::StepError;
use crate::store::keys;
use crate::store::ports::{ClaimPort, KvPort};

const TTL_SECS: u64 = 90 * 24 * 3600;
/// Job ids kept per thread.
const MAX_JOBS: usize = 20;

/// What bugbot keeps about a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub issue: IssueRef,
    /// Recent job ids, oldest first.
    #[serde(default)]
    pub jobs: Vec<String>,
    /// Job id → command name.
    #[serde(default)]
    pub kinds: BTreeMap<String, String>,
    /// Source issues, sessions and emails seen in the thread, reused by later commands.
    #[serde(default)]
    pub references: Vec<Reference>,
}

async fn read(kv: &impl KvPort, key: &str) -> Option<ThreadRecord> {
    serde_json::from_str(&kv.get_text(key).await?).ok()
}

pub(crate) async fn record_for_thread(kv: &impl KvPort, channel_id: &str) -> Option<ThreadRecord> {
    read(kv, &keys::thread(channel_id)).await
}

pub(crate) async fn record_for_issue(kv: &impl KvPort, label: &str) -> Option<ThreadRecord> {
    read(kv, &keys::issue_label(label)).await
}

/// Stores the thread's record (and its copy under the issue's label).
pub(crate) async fn save(kv: &impl KvPort, channel_id: Option<&str>, record: &ThreadRecord) -> Result<(), StepError> {
    let text = serde_json::to_string(record).map_err(|e| StepError::Platform(e.to_string()))?;
    let platform = |e: worker::Error| StepError::Platform(format!("KV: {e}"));
    if let Some(channel) = channel_id {
        kv.put_text(&keys::thread(channel), text.clone(), TTL_SECS).await.map_err(platform)?;
    }
    kv.put_text(&keys::issue_label(&record.issue.label), text, TTL_SECS).await.map_err(platform)?;
    Ok(())
}

impl ThreadRecord {
    pub fn new(issue: IssueRef) -> Self {
        Self { issue, jobs: Vec::new(), kinds: BTreeMap::new(), references: Vec::new() }
    }

    /// Notes a job (once) and the references it saw.
    pub fn note_job(&mut self, job_id: &str, kind: &str, references: &[Reference]) {
        if !self.jobs.iter().any(|j| j == job_id) {
            self.jobs.push(job_id.to_owned());
            self.kinds.insert(job_id.to_owned(), kind.to_owned());
        }
        while self.jobs.len() > MAX_JOBS {
            let old = self.jobs.remove(0);
            self.kinds.remove(&old);
        }
        for r in references {
            let keep =
                matches!(r, Reference::SentryIssue { .. } | Reference::PosthogSession { .. } | Reference::Email(_));
            if keep && !self.references.contains(r) {
                self.references.push(r.clone());
            }
        }
    }
}

/// The tracked issue for a conversation, and the thread's record (new or loaded).
///
/// `explicit` are the references the user named (the `issue` option); `title` and `body` are used
/// only if an issue has to be created. The thread is mapped as soon as an issue exists, so a retry
/// after a later failure reuses it instead of creating another.
pub async fn resolve_tracked_issue<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    channel_id: Option<&str>,
    explicit: &[Reference],
    title: &str,
    body: &str,
) -> Result<ThreadRecord, StepError> {
    let kv = ctx.state.kv();
    let existing = match channel_id {
        Some(channel) => record_for_thread(kv, channel).await,
        None => None,
    };
    for reference in explicit {
        let found = match reference {
            Reference::Linear { identifier, .. } => match ctx.linear() {
                Some((linear, _)) => linear
                    .issue(identifier)
                    .await?
                    .map(|i| IssueRef::linear(i.id, i.identifier, i.url).with_title(i.title)),
                None => return Err(permanent("Linear is not configured")),
            },
            Reference::GitHubIssue { repo, number, .. } => match ctx.github() {
                Some(github) if github.repo.eq_ignore_ascii_case(repo) => {
                    github.issue(*number).await?.map(|i| IssueRef::github(i.number, i.html_url).with_title(i.title))
                }
                _ => return Err(permanent(format!("{repo} is not the configured GitHub repository"))),
            },
            _ => continue,
        };
        let Some(issue) = found else {
            return Err(permanent(format!("{} was not found", label_of(reference))));
        };
        // An explicit issue re-maps the thread to it.
        let record = match existing {
            Some(mut r) if r.issue.url == issue.url => {
                r.issue = issue;
                r
            }
            _ => ThreadRecord::new(issue),
        };
        save(kv, channel_id, &record).await?;
        return Ok(record);
    }
    if let Some(record) = existing {
        return Ok(record);
    }
    let issue = create(ctx, title, body).await?;
    let record = ThreadRecord::new(issue);
    save(kv, channel_id, &record).await?;
    Ok(record)
}

fn label_of(reference: &Reference) -> String {
    match reference {
        Reference::Linear { identifier, .. } => identifier.clone(),
        Reference::GitHubIssue { repo, number, .. } => format!("{repo}#{number}"),
        other => format!("{other:?}"),
    }
}

fn permanent(reason: impl Into<String>) -> StepError {
    StepError::Sink(SinkError::Permanent { service: "commands", reason: reason.into() })
}

async fn create<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    title: &str,
    body: &str,
) -> Result<IssueRef, StepError> {
    let title = super::clip(title.trim(), 200);
    if let Some((linear, team_id)) = ctx.linear() {
        let issue = linear
            .create_issue(&NewLinearIssue {
                team_id: team_id.to_owned(),
                title,
                description: body.to_owned(),
                priority: 3,
                label_ids: Vec::new(),
                id: None,
            })
            .await?;
        return Ok(IssueRef::linear(issue.id, issue.identifier, issue.url).with_title(issue.title));
    }
    if let Some(github) = ctx.github() {
        let issue = github.create_issue(&title, body, &["bugbot".to_owned()]).await?;
        return Ok(IssueRef::github(issue.number, issue.html_url).with_title(issue.title));
    }
    Err(permanent("no issue tracker is configured (Linear or GitHub)"))
}

/// Comments on the tracked issue.
pub async fn comment<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    issue: &IssueRef,
    body: &str,
) -> Result<(), StepError> {
    let tracker = ctx.tracker(issue).ok_or_else(|| {
        permanent(match issue.tracker {
            Tracker::Linear => "Linear is not configured",
            Tracker::GitHub => "GitHub is not configured",
        })
    })?;
    tracker.comment(issue, body).await?;
    Ok(())
}
