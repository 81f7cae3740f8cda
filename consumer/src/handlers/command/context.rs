//! contextualize / investigate: read the conversation, extract references, gather every source
//! concurrently (each time-boxed; a failing source adds a note, it never fails the command),
//! render the [`ContextPacket`], comment it on the tracked issue and edit the deferred reply.
//!
//! Per-source timings go into the job's log line (its `reason`).

use std::future::Future;

use bugbot_shared::command::IssueMention;
use bugbot_shared::event::format_rfc3339_ms;
use bugbot_shared::frames::{MappedFrame, event_frames, map_frame_list_with};
use bugbot_shared::job::{InteractionContext, Job};
use bugbot_shared::packet::{
    CodeFrame, ContextPacket, ConversationLine, Recording, SimilarIssue, SourceIssue, SuspectCommit,
};
use bugbot_shared::references::{Reference, extract};
use bugbot_shared::runbook::{self, Runbook};
use bugbot_shared::source::discord::Message;
use bugbot_shared::status::JobState;
use futures_util::future::{join, join_all};
use serde::Deserialize;
use serde_json::Value;

use super::tracked;
use super::{clip, discord, reply};
use crate::clients::SinkError;
use crate::clients::http::{HttpPort, HttpRequest, Method};
use crate::clients::posthog::PostHog;
use crate::clients::sentry_api::{ApiIssue, SentryApi};
use crate::handlers::alert::timebox::{now_ms, within};
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome, StepError};
use crate::store::memo::{Flight, Recent};
use crate::store::ports::{ClaimPort, KvPort};

const CONVERSATION_LIMIT: u8 = 25;
const MAX_FRAMES: usize = 5;
const CODE_RADIUS: u32 = 3;

/// What a command points at.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The `issue` option.
    pub explicit: Option<&'a IssueMention>,
    pub note: Option<&'a str>,
    /// The message of a message command (the bug report).
    pub message: Option<&'a Message>,
}

/// How long each source took (or that it failed), for the log line.
#[derive(Debug, Default, Clone)]
pub struct Timings(pub Vec<(&'static str, u64)>);

impl Timings {
    pub fn line(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}ms")).collect::<Vec<_>>().join(" ")
    }
}

fn budget<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>) -> u64 {
    ctx.config.evidence.source_timeout_ms
}

/// Why a source gave nothing (said in the packet's notes).
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error(transparent)]
    Failed(#[from] SinkError),
    #[error("timed out after {0} ms")]
    TimedOut(u64),
}

/// Runs `fut` for at most `ms`; the error says why it gave nothing.
async fn timeboxed<T>(ms: u64, fut: impl Future<Output = Result<T, SinkError>>) -> (Result<T, SourceError>, u64) {
    let started = now_ms();
    let result = match within(ms, fut).await {
        Some(result) => result.map_err(SourceError::Failed),
        None => Err(SourceError::TimedOut(ms)),
    };
    (result, now_ms().saturating_sub(started))
}

/// A search through the isolate's caches (`store::memo`): an answer kept less than its TTL ago is
/// reused, and while `api` has asked bugbot to wait (`retry-after`, or a spent rate-limit window's
/// reset), it is not asked at all: the source's note says until when; and a search another job is
/// making is not made twice, its answer or failure is shared (`Recent::flight`). Searches are the
/// evidence calls services limit most (GitHub: 10 code searches and 30 issue searches a minute),
/// and an error storm repeats the same ones.
async fn remembered<T: Clone>(
    ctx: &Ctx<'_, impl HttpPort, impl ClaimPort, impl KvPort>,
    recent: &Recent<T>,
    (service, api): (&'static str, &str),
    key: &str,
    search: impl Future<Output = Result<T, SinkError>>,
) -> Result<T, SinkError> {
    let not_asked = || {
        ctx.memo.search_backoff.until(api, ctx.now_ms).map(|until| {
            let reason = format!("rate limited until {}: not asked", format_rfc3339_ms(until));
            SinkError::Transient { service, reason, retry_after: None }
        })
    };
    let leader = loop {
        if let Some(kept) = recent.get(key, ctx.now_ms) {
            return Ok(kept);
        }
        if let Some(e) = not_asked() {
            return Err(e);
        }
        match recent.flight(key, ctx.now_ms.max(now_ms())) {
            Flight::Lead(leader) => break leader,
            // Another job's lookup: its answer or its failure, as if this job had asked.
            Flight::Follow(answer) => {
                if let Ok(answer) = answer.await {
                    return answer;
                }
                // That job gave up on it: look again.
            }
        }
    };
    let found = search.await;
    if let Err(SinkError::Transient { retry_after: Some(wait), .. }) = &found {
        // The wait counts from the answer, which came after the job's start (its claim, the
        // enrichment and the other sources took time first).
        let answered_ms = ctx.now_ms.max(now_ms());
        ctx.memo.search_backoff.wait(api, answered_ms, wait.delay_ms);
    }
    leader.land(ctx.now_ms, &found);
    found
}

/// The recent conversation, oldest first, without bugbot's own messages; the target message is
/// always included.
async fn conversation<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    ix: &InteractionContext,
    target: Option<&Message>,
    ms: u64,
) -> (Vec<Message>, Option<String>, u64) {
    let Some(channel) = ix.channel_id else { return (target.into_iter().cloned().collect(), None, 0) };
    let (result, took) = timeboxed(ms, discord(ctx).channel_messages(&channel.to_string(), CONVERSATION_LIMIT)).await;
    let (mut messages, note) = match result {
        Ok(mut m) => {
            m.reverse();
            (m, None)
        }
        Err(e) => (Vec::new(), Some(format!("Discord conversation: {e}"))),
    };
    messages.retain(|m| m.author.as_ref().is_none_or(|a| a.id != ix.application_id) && !m.content.trim().is_empty());
    if let Some(t) = target
        && !messages.iter().any(|m| m.id == t.id)
    {
        messages.push(t.clone());
    }
    (messages, note, took)
}

/// contextualize, investigate and the menu command.
/// A packet longer than this (characters) is also posted as follow-up messages after the summary.
const FOLLOW_UP_OVER: usize = 1_500;

pub async fn contextualize<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    ix: &InteractionContext,
    target: Target<'_>,
) -> Result<Outcome, StepError> {
    let started = now_ms();
    let _ = ctx.record_job(job, JobState::Gathering, None, Vec::new(), 1, started).await;
    let ms = budget(ctx);
    let (messages, conv_note, conv_ms) = conversation(ctx, ix, target.message, ms).await;
    let explicit = target.explicit.map(|i| extract(i.as_str())).unwrap_or_default();
    let explicit = if explicit.is_empty() {
        // A bare Sentry/GlitchTip issue id.
        target
            .explicit
            .filter(|i| !i.as_str().is_empty() && i.as_str().bytes().all(|b| b.is_ascii_digit()))
            .map(|i| vec![sentry_ref(i.as_str())])
            .unwrap_or_default()
    } else {
        explicit
    };
    // The target message and the note first: their references win.
    let mut texts: Vec<&str> = Vec::new();
    texts.extend(target.message.map(|m| m.content.as_str()));
    texts.extend(target.note);
    texts.extend(messages.iter().rev().map(|m| m.content.as_str()));
    let mut references = explicit.clone();
    for r in texts.iter().flat_map(|t| extract(t)) {
        if !references.contains(&r) {
            references.push(r);
        }
    }
    let channel = ix.channel_id.map(|c| c.to_string());
    // References remembered from earlier commands in the thread.
    if let Some(channel) = &channel
        && let Some(record) = tracked::record_for_thread(ctx.state.kv(), channel).await
    {
        for r in record.references {
            if !references.contains(&r) {
                references.push(r);
            }
        }
    }
    let lines: Vec<ConversationLine> = messages
        .iter()
        .map(|m| ConversationLine {
            author: m.author.as_ref().map_or_else(|| "someone".to_owned(), |a| a.username.clone()),
            content: m.content.clone(),
        })
        .collect();
    let fallback = target
        .note
        .or(target.message.map(|m| m.content.as_str()))
        .and_then(|t| t.lines().find(|l| !l.trim().is_empty()))
        .map_or_else(|| "Bug report from Discord".to_owned(), |l| clip(l.trim(), 120));
    let (mut packet, mut timings) = build_packet(ctx, &references, lines, target.note, &fallback).await;
    timings.0.insert(0, ("conversation", conv_ms));
    packet.notes.extend(conv_note);

    let tracked_refs: Vec<Reference> = explicit
        .iter()
        .filter(|r| matches!(r, Reference::Linear { .. } | Reference::GitHubIssue { .. }))
        .cloned()
        .collect();
    let body = packet.to_markdown();
    let mut record =
        tracked::resolve_tracked_issue(ctx, channel.as_deref(), &tracked_refs, &packet.headline, &body).await?;
    packet.similar.retain(|s| s.url != record.issue.url);
    let body = packet.to_markdown();
    let t = now_ms();
    tracked::comment(ctx, &record.issue, &body).await?;
    timings.0.push(("comment", now_ms().saturating_sub(t)));
    record.note_job(job.id.as_str(), "contextualize", &references);
    tracked::save(ctx.state.kv(), channel.as_deref(), &record).await?;
    let t = now_ms();
    reply(ctx, ix, &packet.discord_summary(&record.issue.label, &record.issue.url)).await?;
    // The summary is short; the packet itself (stack with code, commits, …) follows when it is long.
    if body.chars().count() > FOLLOW_UP_OVER {
        let discord = super::discord(ctx);
        let app = ix.application_id.to_string();
        for chunk in bugbot_shared::packet::discord_chunks(&body, 2_000, 3, &record.issue.url) {
            let message = serde_json::json!({"content": chunk, "allowed_mentions": {"parse": []}});
            if discord.followup(&app, &ix.token, &message).await.is_err() {
                break;
            }
        }
    }
    timings.0.push(("reply", now_ms().saturating_sub(t)));
    timings.0.push(("total", now_ms().saturating_sub(started)));
    Ok(Outcome::Done {
        state: JobState::Filed,
        reason: Some(format!("context for {}: {}", record.issue.label, timings.line())),
        links: vec![record.issue.url],
        fingerprint: None,
        effect: Effect::None,
    })
}

fn sentry_ref(id: &str) -> Reference {
    Reference::SentryIssue { base: String::new(), org: None, issue_id: id.to_owned(), url: String::new() }
}

fn sentry_api<'a, P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'a, P, C, K>) -> Option<SentryApi<'a, P>> {
    let c = ctx.config.evidence.sentry_api.as_ref()?;
    Some(SentryApi {
        port: ctx.port,
        api_base: c.api_base.clone().unwrap_or_else(|| "https://sentry.io".into()),
        token: c.token.clone(),
        org: c.org.clone(),
    })
}

fn posthog<'a, P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'a, P, C, K>) -> Option<PostHog<'a, P>> {
    let c = ctx.config.evidence.posthog.as_ref()?;
    Some(PostHog {
        port: ctx.port,
        api_base: c.api_base.clone(),
        api_key: c.api_key.clone(),
        project_id: c.project_id.clone(),
    })
}

fn source_issue(issue: &ApiIssue, url: String) -> SourceIssue {
    SourceIssue {
        title: issue.title.clone(),
        url: issue.permalink.clone().filter(|p| !p.is_empty()).unwrap_or(url),
        culprit: issue.culprit.clone().filter(|c| !c.is_empty()),
        level: issue.level.clone(),
        status: issue.status.clone(),
        project: issue.project_slug().map(str::to_owned),
        count: issue.count.clone(),
        user_count: issue.user_count,
        first_seen: issue.first_seen.clone(),
        last_seen: issue.last_seen.clone(),
    }
}

/// The source issue and its latest event.
async fn gather_sentry<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    reference: Option<&Reference>,
) -> Result<Option<(SourceIssue, Value)>, SinkError> {
    let Some(Reference::SentryIssue { issue_id, url, .. }) = reference else { return Ok(None) };
    let Some(api) = sentry_api(ctx) else {
        return Err(SinkError::Permanent { service: "sentry_api", reason: "not configured (SENTRY_API_TOKEN)".into() });
    };
    let (issue, event) = join(api.issue(issue_id), api.latest_event(issue_id)).await;
    let Some(issue) = issue? else {
        return Err(SinkError::Permanent { service: "sentry_api", reason: format!("issue {issue_id} not found") });
    };
    let link = if url.is_empty() { api.issue_page(issue_id) } else { url.clone() };
    Ok(Some((source_issue(&issue, link), event?.unwrap_or(Value::Null))))
}

/// Recordings of the referenced sessions and of the referenced people.
async fn gather_recordings<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    references: &[Reference],
) -> Result<Vec<Recording>, SinkError> {
    let sessions: Vec<(&str, Option<&String>)> = references
        .iter()
        .filter_map(|r| match r {
            Reference::PosthogSession { session_id, url } => Some((session_id.as_str(), url.as_ref())),
            _ => None,
        })
        .collect();
    let emails: Vec<&str> = references
        .iter()
        .filter_map(|r| if let Reference::Email(e) = r { Some(e.as_str()) } else { None })
        .take(3)
        .collect();
    if sessions.is_empty() && emails.is_empty() {
        return Ok(Vec::new());
    }
    let Some(ph) = posthog(ctx) else {
        return Err(SinkError::Permanent { service: "posthog", reason: "not configured (POSTHOG_API_KEY)".into() });
    };
    let mut out = Vec::new();
    for (session_id, url) in sessions {
        let found = ph.recording(session_id).await?;
        out.push(Recording {
            session_id: session_id.to_owned(),
            url: url.cloned().unwrap_or_else(|| ph.replay_url(session_id)),
            start_time: found.as_ref().and_then(|r| r.start_time.clone()),
            duration_secs: found.as_ref().and_then(|r| r.recording_duration).map(secs),
            console_errors: found.as_ref().and_then(|r| r.console_error_count),
            person: None,
        });
    }
    let people = join_all(emails.iter().map(|email| async {
        let Some(person) = ph.person_by_email(email).await? else { return Ok(Vec::new()) };
        let recordings = ph.recordings_of(&person.uuid, 3).await?;
        Ok::<_, SinkError>(
            recordings
                .into_iter()
                .map(|r| Recording {
                    url: ph.replay_url(&r.id),
                    session_id: r.id,
                    start_time: r.start_time,
                    duration_secs: r.recording_duration.map(secs),
                    console_errors: r.console_error_count,
                    person: Some((*email).to_owned()),
                })
                .collect::<Vec<_>>(),
        )
    }))
    .await;
    for found in people {
        for r in found? {
            if !out.iter().any(|o| o.session_id == r.session_id) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "durations are small and positive")]
fn secs(s: f64) -> u64 {
    s.max(0.0).round() as u64
}

/// Code around each mapped frame's line.
async fn gather_code<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    frames: &[MappedFrame],
) -> Result<Vec<CodeFrame>, SinkError> {
    let Some(gh) = ctx.github() else {
        return Ok(frames.iter().map(|f| code_frame(f, None, None)).collect());
    };
    // Frames come from payloads anyone with a public DSN can send: only CODE_PATHS files are read.
    let paths = ctx.config.evidence.code_paths();
    let files = join_all(
        frames
            .iter()
            .map(|f| async { if paths.shows(&f.path) { gh.file_contents(&f.path, None).await } else { Ok(None) } }),
    )
    .await;
    let mut out = Vec::new();
    let mut first_error = None;
    for (frame, file) in frames.iter().zip(files) {
        if !paths.shows(&frame.path) {
            out.push(CodeFrame {
                hidden: true,
                ..code_frame(&MappedFrame { context_line: None, ..frame.clone() }, None, None)
            });
            continue;
        }
        match file {
            Ok(text) => out.push(code_frame(frame, text.as_deref(), Some(&gh.repo))),
            Err(e) => {
                first_error.get_or_insert(e);
                out.push(code_frame(frame, None, Some(&gh.repo)));
            }
        }
    }
    match first_error {
        Some(e) if out.iter().all(|f| f.code.is_empty()) => Err(e),
        _ => Ok(out),
    }
}

fn code_frame(frame: &MappedFrame, text: Option<&str>, repo: Option<&str>) -> CodeFrame {
    let mut code = Vec::new();
    if let (Some(text), Some(line)) = (text, frame.line) {
        let from = line.saturating_sub(CODE_RADIUS).max(1);
        for (i, l) in text.lines().enumerate() {
            let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if n >= from && n <= line + CODE_RADIUS {
                code.push((n, l.to_owned()));
            }
        }
    }
    if code.is_empty()
        && let (Some(line), Some(context)) = (frame.line, &frame.context_line)
    {
        code.push((line, context.clone()));
    }
    CodeFrame {
        path: frame.path.clone(),
        line: frame.line,
        function: frame.function.clone(),
        url: repo.map(|r| {
            let anchor = frame.line.map(|l| format!("#L{l}")).unwrap_or_default();
            format!("https://github.com/{r}/blob/HEAD/{}{anchor}", frame.path)
        }),
        code,
        hidden: false,
    }
}

/// Suspect commits: first the commits that last changed each frame's line (GitHub's GraphQL
/// `blame`, at the event's release when it names a commit, else at `HEAD`), crash frame first;
/// then the latest commits that touched the frames' files, newest first. Each commit once.
async fn gather_commits<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    frames: &[MappedFrame],
    release: Option<&str>,
) -> Result<Vec<SuspectCommit>, SinkError> {
    let Some(gh) = ctx.github() else { return Ok(Vec::new()) };
    let mut paths: Vec<&str> = Vec::new();
    for f in frames {
        if !paths.contains(&f.path.as_str()) && paths.len() < 3 {
            paths.push(&f.path);
        }
    }
    let at = bugbot_shared::packet::blame_expression(release);
    let blames = join_all(paths.iter().map(|p| async {
        let ranges = gh.blame(p, &at).await?;
        if ranges.is_empty() && at != "HEAD" { gh.blame(p, "HEAD").await } else { Ok(ranges) }
    }));
    let recent = join_all(paths.iter().map(|p| gh.commits_for_path(p, 3)));
    let (blames, recent) = join(blames, recent).await;
    let mut out: Vec<SuspectCommit> = Vec::new();
    let mut first_error = None;
    let mut by_path = Vec::new();
    for (path, ranges) in paths.iter().zip(blames) {
        match ranges {
            Ok(ranges) => by_path.push((*path, ranges)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // Crash frame first: the line that raised is the likeliest place the bug came in.
    for frame in frames {
        let Some(line) = frame.line else { continue };
        let Some((_, ranges)) = by_path.iter().find(|(p, _)| *p == frame.path) else { continue };
        let Some(range) = ranges.iter().find(|r| r.start <= line && line <= r.end) else { continue };
        if !out.iter().any(|o| o.sha == range.commit.sha) {
            let c = &range.commit;
            out.push(SuspectCommit {
                sha: c.sha.clone(),
                author: c.author.clone(),
                date: c.date.clone(),
                message: c.message.clone(),
                path: frame.path.clone(),
                line: Some(line),
            });
        }
    }
    let mut touched: Vec<SuspectCommit> = Vec::new();
    for (path, list) in paths.iter().zip(recent) {
        match list {
            Ok(list) => {
                for c in list {
                    if !out.iter().chain(&touched).any(|o| o.sha == c.sha) {
                        touched.push(SuspectCommit {
                            sha: c.sha,
                            author: c.author,
                            date: c.date,
                            message: c.message,
                            path: (*path).to_owned(),
                            line: None,
                        });
                    }
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    touched.sort_by(|a, b| b.date.cmp(&a.date));
    out.extend(touched);
    out.truncate(6);
    match first_error {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}

/// The error's type, the best search term: `ZeroDivisionError: division by zero` → `ZeroDivisionError`.
fn search_term(title: &str) -> String {
    let head = title.split(':').next().unwrap_or(title).trim();
    clip(if head.len() >= 4 { head } else { title.trim() }, 80)
}

/// Similar past issues in Linear and GitHub, resolved ones first.
async fn gather_similar<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    title: &str,
) -> Result<Vec<SimilarIssue>, SinkError> {
    let term = search_term(title);
    if term.is_empty() {
        return Ok(Vec::new());
    }
    let in_linear = async {
        match ctx.linear() {
            Some((l, _)) => {
                remembered(
                    ctx,
                    &ctx.memo.similar,
                    ("linear", &l.api_url),
                    &format!("linear {} {term}", l.api_url),
                    async {
                        l.search(&term, 5).await.map(|issues| {
                            issues
                                .into_iter()
                                .map(|i| {
                                    let resolved = matches!(i.state_type.as_deref(), Some("completed" | "canceled"));
                                    SimilarIssue {
                                        id: i.identifier,
                                        title: i.title,
                                        url: i.url,
                                        resolved,
                                        resolution: i.state_type,
                                    }
                                })
                                .collect::<Vec<_>>()
                        })
                    },
                )
                .await
            }
            None => Ok(Vec::new()),
        }
    };
    let in_github = async {
        match ctx.github() {
            Some(g) => {
                let q = format!("repo:{} is:issue \"{}\"", g.repo, term.replace('"', ""));
                let (api, key) = (format!("{} search", g.api_base), format!("github {} {q}", g.api_base));
                remembered(ctx, &ctx.memo.similar, ("github", &api), &key, async {
                    g.search_issues(&q, 5).await.map(|issues| {
                        issues
                            .into_iter()
                            .map(|i| SimilarIssue {
                                id: format!("#{}", i.number),
                                resolved: i.state == "closed",
                                resolution: (i.state == "closed").then(|| "closed".to_owned()),
                                title: i.title,
                                url: i.html_url,
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .await
            }
            None => Ok(Vec::new()),
        }
    };
    let (a, b) = join(in_linear, in_github).await;
    let (mut out, error) = match (a, b) {
        (Ok(mut a), Ok(b)) => {
            a.extend(b);
            (a, None)
        }
        (Ok(a), Err(e)) | (Err(e), Ok(a)) => (a, Some(e)),
        (Err(e), Err(_)) => return Err(e),
    };
    if out.is_empty()
        && let Some(e) = error
    {
        return Err(e);
    }
    out.sort_by_key(|s| !s.resolved);
    out.truncate(6);
    Ok(out)
}

#[derive(Deserialize)]
struct DirEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    path: String,
    #[serde(default, rename = "type")]
    kind: String,
}

/// Runbooks: the `RUNBOOKS` map, and `runbooks/*.md` (or `RUNBOOKS_DIR`) in the repository.
async fn gather_runbooks<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    texts: &[String],
) -> Result<Vec<bugbot_shared::runbook::RunbookMatch>, SinkError> {
    let mut books: Vec<Runbook> = Vec::new();
    if let Some(map) = &ctx.config.evidence.runbooks {
        books.extend(
            runbook::parse_map(map).map_err(|e| SinkError::Permanent { service: "runbooks", reason: e.to_string() })?,
        );
    }
    if let Some(gh) = ctx.github() {
        let dir = ctx.config.evidence.runbooks_dir.clone();
        let url = format!("{}/repos/{}/contents/{dir}", gh.api_base.trim_end_matches('/'), gh.repo);
        // Read at most every `RUNBOOKS_TTL_MS` (`store::memo`): a listing and up to ten files.
        if let Some(kept) = ctx.memo.runbooks.get(&url, ctx.now_ms) {
            books.extend(kept);
        } else {
            let (read, complete) = read_runbooks(ctx, &gh, url.clone()).await?;
            if complete {
                ctx.memo.runbooks.keep(&url, ctx.now_ms, read.clone());
            }
            books.extend(read);
        }
    }
    // The repository's own runbooks first: a copy of a starter runbook replaces it.
    books.extend(runbook::starter());
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    Ok(runbook::matching(&books, &texts))
}

/// The runbooks in the repository's `RUNBOOKS_DIR` (`url` lists it): the front matter of its first
/// ten `.md` files, and whether every one of them could be read. No directory is no runbooks; a
/// server error or a rate limit on the listing is an error.
async fn read_runbooks<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    gh: &crate::clients::github::GitHub<'_, P>,
    url: String,
) -> Result<(Vec<Runbook>, bool), SinkError> {
    let mut books = Vec::new();
    let mut complete = true;
    let request = HttpRequest::new(Method::Get, url)
        .header("authorization", format!("Bearer {}", gh.token))
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("user-agent", "bugbot");
    let response = ctx.port.send(request).await.map_err(|e| SinkError::transport("github", &e))?;
    if response.status >= 500 || response.status == 429 {
        return Err(SinkError::Transient {
            service: "github",
            reason: format!("runbooks: HTTP {}", response.status),
            retry_after: None,
        });
    }
    let entries: Vec<DirEntry> =
        if response.status == 200 { serde_json::from_slice(&response.body).unwrap_or_default() } else { Vec::new() };
    let md: Vec<&DirEntry> = entries
        .iter()
        .filter(|e| {
            e.kind == "file" && std::path::Path::new(&e.name).extension().is_some_and(|x| x.eq_ignore_ascii_case("md"))
        })
        .take(10)
        .collect();
    let files = join_all(md.iter().map(|e| gh.file_contents(&e.path, None))).await;
    for (entry, file) in md.iter().zip(files) {
        match file {
            Ok(Some(text)) => {
                let url = format!("https://github.com/{}/blob/HEAD/{}", gh.repo, entry.path);
                books.extend(runbook::parse_front_matter(&text, &url, &entry.name));
            }
            Ok(None) => {}
            Err(_) => complete = false,
        }
    }
    Ok((books, complete))
}

fn or_note<T>(notes: &mut Vec<String>, label: &str, result: Result<Vec<T>, SourceError>) -> Vec<T> {
    result.unwrap_or_else(|e| {
        notes.push(format!("{label}: {e}"));
        Vec::new()
    })
}

/// What the repository and the trackers say about an error: code at the frames, suspect commits,
/// similar issues and runbooks. The one builder behind `/bugbot` packets and new alerts.
#[derive(Debug, Default, Clone)]
pub struct Evidence {
    pub code: Vec<CodeFrame>,
    pub commits: Vec<SuspectCommit>,
    pub similar: Vec<SimilarIssue>,
    pub runbooks: Vec<bugbot_shared::runbook::RunbookMatch>,
    pub notes: Vec<String>,
    /// Without a stack trace: files that mention the error (code search), within `CODE_PATHS`.
    pub related_files: Vec<String>,
}

/// Gathers the [`Evidence`] for mapped frames, concurrently, each source within its budget. Never
/// fails: a source that fails or overruns adds a note.
pub async fn gather_evidence<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    frames: &[MappedFrame],
    headline: &str,
    texts: &[String],
    release: Option<&str>,
    timings: &mut Timings,
) -> Evidence {
    let ms = budget(ctx);
    let paths = ctx.config.evidence.code_paths();
    let shown_frames: Vec<MappedFrame> = frames.iter().filter(|f| paths.shows(&f.path)).cloned().collect();
    let (((code, code_ms), (commits, commits_ms)), ((similar, similar_ms), (runbooks, runbooks_ms))) = join(
        join(timeboxed(ms, gather_code(ctx, frames)), timeboxed(ms, gather_commits(ctx, &shown_frames, release))),
        join(timeboxed(ms, Box::pin(gather_similar(ctx, headline))), timeboxed(ms, gather_runbooks(ctx, texts))),
    )
    .await;
    timings.0.extend([("code", code_ms), ("commits", commits_ms), ("similar", similar_ms), ("runbooks", runbooks_ms)]);
    let mut notes = Vec::new();
    let code = code.unwrap_or_else(|e| {
        notes.push(format!("Code: {e}"));
        frames.iter().map(|f| code_frame(f, None, None)).collect()
    });
    let commits = or_note(&mut notes, "Commits", commits);
    let similar = or_note(&mut notes, "Similar issues", similar);
    let runbooks = or_note(&mut notes, "Runbooks", runbooks);
    // Issue 16.4: without a stack, the files that mention the error (after the others: GitHub's code
    // search allows 10 requests a minute, so it runs only when there is no frame to start from).
    let related_files = if frames.is_empty() {
        let (found, search_ms) = timeboxed(ms, gather_related_files(ctx, texts, &paths)).await;
        timings.0.push(("code_search", search_ms));
        or_note(&mut notes, "Code search", found)
    } else {
        Vec::new()
    };
    Evidence { code, commits, similar, runbooks, notes, related_files }
}

/// Files that mention the error's message (GitHub code search for its longest plain phrase), within
/// the code allowlist, at most 5.
async fn gather_related_files<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    texts: &[String],
    paths: &bugbot_shared::policy::CodePaths,
) -> Result<Vec<String>, SinkError> {
    let (Some(github), Some(phrase)) = (ctx.github(), bugbot_shared::packet::code_search_phrase(texts)) else {
        return Ok(Vec::new());
    };
    let q = format!("{} {phrase}", github.repo);
    let (api, key) = (format!("{} code_search", github.api_base), format!("{} {q}", github.api_base));
    let found = remembered(ctx, &ctx.memo.code_search, ("github", &api), &key, github.search_code(&phrase, 20)).await?;
    let mut out: Vec<String> = Vec::new();
    for path in found {
        if paths.shows(&path) && !out.contains(&path) && out.len() < 5 {
            out.push(path);
        }
    }
    Ok(out)
}

/// Gathers every source for `references` (the first Sentry/GlitchTip issue, sessions, emails)
/// into a packet. Never fails: a source that fails or overruns its budget adds a note.
/// Returns per-source timings (ms).
pub async fn build_packet<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    references: &[Reference],
    conversation: Vec<ConversationLine>,
    note: Option<&str>,
    fallback_headline: &str,
) -> (ContextPacket, Timings) {
    let ms = budget(ctx);
    let mut timings = Timings::default();
    let mut notes = Vec::new();
    let sentry_ref = references.iter().find(|r| matches!(r, Reference::SentryIssue { .. }));

    // Phase 1: the source issue and the recordings, concurrently.
    let ((sentry, sentry_ms), (recordings, posthog_ms)) =
        join(timeboxed(ms, gather_sentry(ctx, sentry_ref)), timeboxed(ms, gather_recordings(ctx, references))).await;
    timings.0.push(("sentry", sentry_ms));
    timings.0.push(("posthog", posthog_ms));
    let (source, event) = match sentry {
        Ok(Some((source, event))) => (Some(source), event),
        Ok(None) => (None, Value::Null),
        Err(e) => {
            notes.push(format!("Sentry/GlitchTip: {e}"));
            (None, Value::Null)
        }
    };
    let recordings = recordings.unwrap_or_else(|e| {
        notes.push(format!("PostHog: {e}"));
        Vec::new()
    });
    let frames = map_frame_list_with(&event_frames(&event), MAX_FRAMES, &ctx.config.evidence.frame_map);
    let headline = source.as_ref().map_or_else(|| fallback_headline.to_owned(), |s| s.title.clone());
    let mut texts = vec![headline.clone()];
    texts.extend(source.as_ref().and_then(|s| s.culprit.clone()));
    texts.extend(note.map(str::to_owned));
    if source.is_none() {
        texts.extend(conversation.iter().map(|c| c.content.clone()));
    }
    let release = event.pointer("/release/version").and_then(Value::as_str);

    // Phase 2: code, commits, similar issues and runbooks, concurrently.
    let evidence = gather_evidence(ctx, &frames, &headline, &texts, release, &mut timings).await;
    notes.extend(evidence.notes);
    if sentry_ref.is_none() {
        notes.push("No Sentry/GlitchTip issue link in the conversation: no stack trace.".into());
    }
    let packet = ContextPacket {
        headline,
        note: note.map(str::to_owned),
        source,
        frames: evidence.code,
        commits: evidence.commits,
        similar: evidence.similar,
        runbooks: evidence.runbooks,
        recordings,
        conversation,
        notes,
        related_files: evidence.related_files,
    };
    (packet, timings)
}
