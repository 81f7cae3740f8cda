//! The context packet of a new alert (issue 16.2): the same builder as `/bugbot` packets
//! ([`gather_evidence`]), fed the event's own frames. Gathered within `CONTEXT_TIMEOUT_MS` before
//! filing; past it the issue is filed without the packet and says so. The packet goes into the
//! GitHub issue's body and, on Linear, into the first comment.

use bugbot_shared::confidence::{self, Evidence};
use bugbot_shared::event::{ErrorEvent, format_rfc3339_ms};
use bugbot_shared::frames::map_frame_list_with;
use bugbot_shared::packet::{ContextPacket, SourceIssue};
use bugbot_shared::report::clip;

use super::timebox::within;
use crate::clients::http::HttpPort;
use crate::handlers::command::context::{Timings, gather_evidence};
use crate::runtime::ctx::Ctx;
use crate::store::ports::{ClaimPort, KvPort};

/// The in-app frames mapped to repository files, crash first.
const MAX_FRAMES: usize = 5;
/// GitHub refuses issue bodies over 65 536 characters; the report body comes first.
const MAX_PACKET_CHARS: usize = 40_000;

/// What the packet adds to a new issue.
#[derive(Debug, Default, Clone)]
pub struct AlertPacket {
    /// Gathered in time, if it was.
    pub packet: Option<ContextPacket>,
    /// The Markdown for the issue: the packet, or the line saying why there is none, and the
    /// confidence breakdown.
    pub markdown: String,
    pub timings: Timings,
    /// What the packet found, for the confidence score (issue 16.3).
    pub evidence: Evidence,
}

/// The confidence evidence in a packet (and whether the logs matched, from enrichment).
impl AlertPacket {
    /// The confidence line for the Discord card (issue 16.3), when a packet was gathered.
    pub fn card_line(&self, event: &ErrorEvent) -> Option<String> {
        (!self.markdown.is_empty()).then(|| confidence::card_line(&confidence::score(event, self.evidence)))
    }
}

pub fn evidence_of(packet: Option<&ContextPacket>, logs_matched: bool) -> Evidence {
    let Some(p) = packet else { return Evidence { logs_matched, ..Evidence::default() } };
    Evidence {
        code_fetched: p.frames.first().is_some_and(|f| !f.hidden && !f.code.is_empty()),
        files_found: p.frames.is_empty() && !p.related_files.is_empty(),
        logs_matched,
        suspect_commit: p.commits.iter().any(|c| c.line.is_some()),
        runbook_matched: !p.runbooks.is_empty(),
        similar_resolved: p.similar.iter().any(|s| s.resolved),
    }
}

/// The source issue as the (enriched) event describes it.
fn source_of(event: &ErrorEvent) -> SourceIssue {
    SourceIssue {
        title: event.title.clone(),
        url: event.link.clone().unwrap_or_default(),
        culprit: event.culprit.clone(),
        level: Some(event.level.to_string()),
        status: None,
        project: event.project.clone(),
        count: event.count.map(|c| c.to_string()),
        user_count: event.user_count,
        first_seen: event.first_seen_ms.map(format_rfc3339_ms),
        last_seen: Some(format_rfc3339_ms(event.last_seen_ms)),
    }
}

/// The texts runbooks are matched against: title, culprit, exception.
fn texts_of(event: &ErrorEvent) -> Vec<String> {
    let mut texts = vec![event.title.clone()];
    texts.extend(event.culprit.clone());
    if let Some(e) = &event.exception {
        texts.extend(e.kind.clone());
        texts.extend(e.value.clone());
    }
    texts
}

/// Gathers the packet of `event` within `CONTEXT_TIMEOUT_MS`.
pub async fn gather<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    event: &ErrorEvent,
    logs_matched: bool,
) -> AlertPacket {
    let budget = ctx.config.evidence.context_timeout_ms;
    let frames = map_frame_list_with(&event.frames, MAX_FRAMES, &ctx.config.evidence.frame_map);
    let texts = texts_of(event);
    let mut timings = Timings::default();
    let started = super::timebox::now_ms();
    let gathered =
        within(budget, gather_evidence(ctx, &frames, &event.title, &texts, event.release.as_deref(), &mut timings))
            .await;
    timings.0.push(("packet", super::timebox::now_ms().saturating_sub(started)));
    let Some(evidence) = gathered else {
        let evidence = evidence_of(None, logs_matched);
        let markdown = format!(
            "\n> bugbot's context packet (code, suspect commits, similar issues, runbooks) took longer than \
             {budget} ms (CONTEXT_TIMEOUT_MS): filed without it; `/bugbot investigate` gathers it on demand.\n\n{}",
            confidence::breakdown_markdown(&confidence::score(event, evidence))
        );
        return AlertPacket { packet: None, markdown, timings, evidence };
    };
    let mut notes = evidence.notes;
    if frames.is_empty() {
        notes.push(format!("No application frame maps to a repository file ({} frames).", event.frames.len()));
    }
    let packet = ContextPacket {
        headline: event.title.clone(),
        note: None,
        source: Some(source_of(event)),
        frames: evidence.code,
        commits: evidence.commits,
        similar: evidence.similar,
        runbooks: evidence.runbooks,
        recordings: Vec::new(),
        conversation: Vec::new(),
        notes,
        related_files: evidence.related_files,
    };
    let evidence = evidence_of(Some(&packet), logs_matched);
    let markdown = format!(
        "\n{}\n{}",
        clip(&packet.to_markdown(), MAX_PACKET_CHARS),
        confidence::breakdown_markdown(&confidence::score(event, evidence))
    );
    AlertPacket { packet: Some(packet), markdown, timings, evidence }
}
