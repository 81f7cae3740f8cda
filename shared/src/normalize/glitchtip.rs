//! `GlitchTip`: issue alerts and uptime alerts.

#[allow(clippy::wildcard_imports)]
use super::*;

/// defaults to error, last seen to the receipt time.
pub fn glitchtip_issue(issue: &GlitchtipIssue, received_at_ms: u64) -> ErrorEvent {
    let link = issue.link.as_deref().map(strip_query);
    let id = link.as_deref().and_then(|l| Some((host(l)?, path_id(l, "/issues/")?)));
    let mut tags = Vec::new();
    if let Some(server) = &issue.server_name {
        tags.push(("server_name".to_owned(), clip(server, 200)));
    }
    tags.extend(issue.tags.iter().take(MAX_TAGS).map(|(k, v)| (clip(k, 64), clip(v, 200))));
    let title = clip(issue.title.trim(), 1_000);
    let culprit = issue.culprit.as_deref().map(|c| clip(c.trim(), 500));
    let project = issue.project.as_deref().map(|p| clip(p.trim(), 200));
    let fingerprint = match id {
        Some((host, id)) => Fingerprint::from_id(&format!("glitchtip:{host}"), &id),
        None => hashed_fingerprint("glitchtip", project.as_deref(), &title, culprit.as_deref(), &[]),
    };
    ErrorEvent {
        source: Source::Glitchtip,
        fingerprint,
        title,
        culprit,
        level: Level::Error,
        environment: issue.environment.as_deref().map(|e| clip(e.trim(), 200)),
        release: issue.release.as_deref().map(|r| clip(r.trim(), 200)),
        project,
        platform: None,
        short_id: None,
        event_id: None,
        first_seen_ms: None,
        last_seen_ms: received_at_ms,
        count: None,
        user_count: None,
        link,
        tags,
        exception: None,
        frames: Vec::new(),
    }
}

/// A `GlitchTip` uptime alert. `GlitchTip` says "The monitored site has gone down." or "... is back
/// up."; an unrecognised message counts as down (an alert is more useful than silence).
pub fn glitchtip_uptime(uptime: &GlitchtipUptime, received_at_ms: u64) -> UptimeAlert {
    let link = uptime.link.as_deref().map(strip_query);
    let id = link.as_deref().and_then(|l| Some((host(l)?, path_id(l, "/uptime-monitors/")?)));
    let fingerprint = match id {
        Some((host, id)) => Fingerprint::from_id(&format!("glitchtip-uptime:{host}"), &id),
        None => Fingerprint::from_hash("glitchtip-uptime", uptime.monitor.trim().as_bytes()),
    };
    let message = uptime.message.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let lower = message.unwrap_or_default().to_ascii_lowercase();
    let state = if lower.contains("back up") || (lower.contains(" up") && !lower.contains("down")) {
        UptimeState::Up
    } else {
        UptimeState::Down
    };
    UptimeAlert {
        fingerprint,
        monitor: clip(uptime.monitor.trim(), 200),
        state,
        message: message.map(|m| clip(m, 500)),
        link,
        at_ms: received_at_ms,
    }
}
