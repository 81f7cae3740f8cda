//! Linear and GitHub: issue titles and Markdown bodies, follow-up comments, labels, priority, and
//! the hidden fingerprint marker.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The hidden marker ending every issue body: `<!-- bugbot:fingerprint=<fp> -->`. The GitHub sink
/// searches for it before creating an issue; [`parse_fingerprint_marker`] reads it back.
pub fn fingerprint_marker(fingerprint: &Fingerprint) -> String {
    format!("{MARKER_PREFIX}{fingerprint} -->")
}

/// The fingerprint in a body's marker, if it has a valid one (to confirm a search hit).
pub fn parse_fingerprint_marker(body: &str) -> Option<Fingerprint> {
    let start = body.find(MARKER_PREFIX)? + MARKER_PREFIX.len();
    let rest = &body[start..];
    Fingerprint::parse(&rest[..rest.find(" -->")?]).ok()
}

/// One line, at most [`ISSUE_TITLE_MAX`] characters.
pub fn issue_title(event: &ErrorEvent) -> String {
    clip(&one_line(&event.title), ISSUE_TITLE_MAX)
}

/// The issue body: what, where, when, how often, release and environment, tags, a link back to
/// the source, and the hidden fingerprint marker.
pub fn issue_body_markdown(event: &ErrorEvent) -> String {
    let mut out = String::new();
    out.push_str("### What\n");
    if let Some(exception) = &event.exception {
        let kind = exception.kind.as_deref().map(code);
        let value = exception.value.as_deref().map(text);
        let error = match (kind, value) {
            (Some(kind), Some(value)) => format!("{kind}: {value}"),
            (Some(kind), None) => kind,
            (None, Some(value)) => value,
            (None, None) => text(&event.title),
        };
        let _ = writeln!(out, "- **Error:** {error}");
    } else {
        let _ = writeln!(out, "- **Message:** {}", text(&event.title));
    }
    let _ = writeln!(out, "- **Level:** {}", event.level);
    if let Some(culprit) = &event.culprit {
        let _ = writeln!(out, "- **Culprit:** {}", code(culprit));
    }

    out.push_str("\n### Where\n");
    out.push_str(&where_markdown(event));

    out.push_str("\n### When\n");
    if let Some(first) = event.first_seen_ms {
        let _ = writeln!(out, "- **First seen:** {}", format_utc_ms(first));
    }
    let _ = writeln!(out, "- **Last seen:** {}", format_utc_ms(event.last_seen_ms));

    out.push_str("\n### How often\n");
    match (event.count, event.user_count) {
        (None, None) => {
            let _ = writeln!(
                out,
                "- {} did not report counts; bugbot adds a comment when it sees this error again.",
                event.source.product()
            );
        }
        (count, users) => {
            if let Some(count) = count {
                let _ = writeln!(out, "- **Events:** {count}");
            }
            if let Some(users) = users {
                let _ = writeln!(out, "- **Users affected:** {users}");
            }
        }
    }

    out.push_str("\n### Release and environment\n");
    let facts = [
        ("Project", event.project.as_deref().map(text)),
        ("Release", event.release.as_deref().map(code)),
        ("Environment", event.environment.as_deref().map(text)),
        ("Platform", event.platform.as_deref().map(text)),
    ];
    let mut any = false;
    for (name, value) in facts {
        if let Some(value) = value {
            let _ = writeln!(out, "- **{name}:** {value}");
            any = true;
        }
    }
    if !any {
        out.push_str("- Not reported.\n");
    }

    let tags: Vec<&(String, String)> = event.tags.iter().filter(|(k, _)| shown_tag(k)).take(BODY_TAGS).collect();
    if !tags.is_empty() {
        out.push_str("\n### Tags\n");
        for (key, value) in tags {
            let _ = writeln!(out, "- {}: {}", code(key), text(value));
        }
    }

    out.push('\n');
    out.push_str(&source_line(event.source, event.link.as_deref(), event.short_id.as_deref()));
    out.push_str("\n\n");
    out.push_str(&fingerprint_marker(&event.fingerprint));
    out.push('\n');
    out
}

/// Tags worth showing: not personal data (`user`, `user.*`, `ip`, `email`) and not what the body
/// already says.
pub(super) fn shown_tag(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !(key == "user"
        || key.starts_with("user.")
        || key.contains("email")
        || key == "ip"
        || key.ends_with("ip_address")
        || matches!(key.as_str(), "level" | "environment" | "release"))
}

/// The "Where" section: the top in-app frames, crash first, or the crash frames if none is in-app.
pub(super) fn where_markdown(event: &ErrorEvent) -> String {
    let mut out = String::new();
    let mut frames = event.top_in_app_frames(WHERE_FRAMES * 3);
    let mut limit = WHERE_FRAMES;
    if frames.is_empty() && !event.frames.is_empty() {
        out.push_str("No frame is in the application's own code; the frames nearest the crash:\n\n");
        frames = event.top_frames(9);
        limit = 3;
    }
    // Async and minified traces repeat a frame; show each place once.
    frames.dedup_by(|a, b| a.location() == b.location() && a.function == b.function);
    frames.truncate(limit);
    if frames.is_empty() {
        let _ = write!(out, "{} sent no stack trace", event.source.product());
        out.push_str(if event.link.is_some() { "; see the link below.\n" } else { ".\n" });
        return out;
    }
    for (i, frame) in frames.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", i + 1, frame_line(frame));
        if let Some(line) = frame.context_line.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            out.push_str(&fenced(line, language(frame), "   "));
        }
    }
    out
}

/// `` `errors/views.py:18` in `get` ``
pub(super) fn frame_line(frame: &Frame) -> String {
    match frame.function.as_deref().filter(|f| !f.is_empty()) {
        Some(function) => format!("{} in {}", code(&frame.location()), code(function)),
        None => code(&frame.location()),
    }
}

/// A fenced code block, indented (to sit inside a list item), with a fence longer than any
/// backtick run in `content`.
pub(super) fn fenced(content: &str, lang: &str, indent: &str) -> String {
    let fence = "`".repeat((longest_run(content, '`') + 1).max(3));
    let mut out = format!("{indent}{fence}{lang}\n");
    for line in break_marker(content).lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
    let _ = writeln!(out, "{indent}{fence}");
    out
}

/// A fence language from the file extension, for syntax highlighting.
pub(super) fn language(frame: &Frame) -> &'static str {
    let path = frame.path().unwrap_or_default();
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "py" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "tsx" => "typescript",
        "rb" => "ruby",
        "go" => "go",
        "rs" => "rust",
        "java" => "java",
        "kt" => "kotlin",
        "php" => "php",
        "cs" => "csharp",
        "ex" | "exs" => "elixir",
        _ => "",
    }
}

/// `[View FRONT-END-9 in Sentry](…)`, or a note when there is no link.
pub(super) fn source_line(source: Source, link: Option<&str>, short_id: Option<&str>) -> String {
    let what = short_id.map_or_else(|| "this issue".to_owned(), text);
    match link.and_then(safe_url) {
        Some(url) => format!("[View {what} in {}]({url})", source.product()),
        None => format!("_{} sent no link to this issue._", source.product()),
    }
}

/// A comment for a repeat, posted at most once per cooldown window. `occurrences` is how many
/// times bugbot has seen the problem in all (including this one).
pub fn repeat_comment_markdown(event: &ErrorEvent, occurrences: u64) -> String {
    let mut out = format!("**Seen again** — {} so far", plural(occurrences, "occurrence"));
    match (event.count, event.user_count) {
        (Some(count), Some(users)) => {
            let _ = write!(
                out,
                " ({} counts {}, {})",
                event.source.product(),
                plural(count, "event"),
                plural(users, "user")
            );
        }
        (Some(count), None) => {
            let _ = write!(out, " ({} counts {})", event.source.product(), plural(count, "event"));
        }
        _ => {}
    }
    out.push_str(".\n\n");
    let _ = writeln!(out, "- **Last seen:** {}", format_utc_ms(event.last_seen_ms));
    if let Some(release) = &event.release {
        let _ = writeln!(out, "- **Release:** {}", code(release));
    }
    if let Some(environment) = &event.environment {
        let _ = writeln!(out, "- **Environment:** {}", text(environment));
    }
    if let Some(frame) = event.top_in_app_frames(1).first() {
        let _ = writeln!(out, "- **Top frame:** {}", frame_line(frame));
    }
    if let Some(url) = event.link.as_deref().and_then(safe_url) {
        let _ = writeln!(out, "\n[View in {}]({url})", event.source.product());
    }
    out
}

/// A comment when the source resolved the issue (or a metric alert recovered, a monitor came back).
pub fn resolved_comment_markdown(change: &StatusChange) -> String {
    let verb = if change.source == Source::GlitchtipUptime { "Back up" } else { "Resolved" };
    let mut out = format!("**{verb}** in {}", change.source.product());
    if let Some(actor) = &change.actor {
        let _ = write!(out, " by {}", text(actor));
    }
    let _ = write!(out, " at {}.", format_utc_ms(change.at_ms));
    if let Some(url) = change.link.as_deref().and_then(safe_url) {
        let _ = write!(out, " [View in {}]({url})", change.source.product());
    }
    out.push('\n');
    out
}

/// A comment when the issue regressed (unresolved again in the source) and is reopened.
pub fn regressed_comment_markdown(event: &ErrorEvent) -> String {
    let mut out = format!(
        "**Regressed** — {} marked this issue unresolved again at {}.\n",
        event.source.product(),
        format_utc_ms(event.last_seen_ms)
    );
    if let Some(release) = &event.release {
        let _ = writeln!(out, "\n- **Release:** {}", code(release));
    }
    if let Some(url) = event.link.as_deref().and_then(safe_url) {
        let _ = writeln!(out, "\n[View in {}]({url})", event.source.product());
    }
    out
}

/// Linear's priority (<https://developers.linear.app/docs/graphql/working-with-the-graphql-api>,
/// `IssueCreateInput.priority`): 0 none, 1 urgent, 2 high, 3 medium, 4 low.
pub fn linear_priority(level: Level) -> u8 {
    match level {
        Level::Fatal => 1,
        Level::Error => 2,
        Level::Warning => 3,
        Level::Info | Level::Debug => 4,
    }
}

/// Labels for a filed issue: `bugbot`, `level:<level>`, `source:<sentry|glitchtip>`.
pub fn labels(event: &ErrorEvent) -> Vec<String> {
    let source = match event.source {
        Source::Sentry | Source::SentryLegacy => "sentry",
        Source::Glitchtip | Source::GlitchtipUptime => "glitchtip",
        other @ (Source::Slack | Source::Cloudwatch) => other.as_str(),
    };
    vec!["bugbot".to_owned(), format!("level:{}", event.level), format!("source:{source}")]
}
