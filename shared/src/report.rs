//! What bugbot writes: issue titles and Markdown bodies for Linear and GitHub, follow-up
//! comments, labels and priority, and the Discord alert message. Pure rendering.
//!
//! Everything from an error payload is untrusted. In Markdown it is escaped, kept on one line,
//! and `@` / `#<digit>` get a zero-width space so an error text cannot mention a person or team
//! or cross-reference another issue (the trick Dependabot uses in release notes). The text
//! `bugbot:fingerprint` is broken the same way, so no payload can forge the hidden marker that
//! [`fingerprint_marker`] writes and the sinks search for.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::event::{ErrorEvent, Fingerprint, Frame, Level, Source, StatusChange, format_rfc3339_ms, format_utc_ms};

/// Longest issue title bugbot writes (GitHub allows 256; shorter titles read better in lists).
pub const ISSUE_TITLE_MAX: usize = 200;
/// Frames shown under "Where".
const WHERE_FRAMES: usize = 5;
/// Tags listed in an issue body.
const BODY_TAGS: usize = 20;
/// Longest piece of untrusted text in a body.
const TEXT_MAX: usize = 1_000;

/// Discord's embed limits (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
pub const EMBED_TITLE_MAX: usize = 256;
pub const EMBED_DESCRIPTION_MAX: usize = 4096;
pub const EMBED_FIELD_VALUE_MAX: usize = 1024;
pub const EMBED_FOOTER_MAX: usize = 2048;
/// All of an embed's text together.
pub const EMBED_TOTAL_MAX: usize = 6000;

const ZWSP: char = '\u{200B}';
const MARKER_PREFIX: &str = "<!-- bugbot:fingerprint=";

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
fn shown_tag(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !(key == "user"
        || key.starts_with("user.")
        || key.contains("email")
        || key == "ip"
        || key.ends_with("ip_address")
        || matches!(key.as_str(), "level" | "environment" | "release"))
}

/// The "Where" section: the top in-app frames, crash first, or the crash frames if none is in-app.
fn where_markdown(event: &ErrorEvent) -> String {
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
fn frame_line(frame: &Frame) -> String {
    match frame.function.as_deref().filter(|f| !f.is_empty()) {
        Some(function) => format!("{} in {}", code(&frame.location()), code(function)),
        None => code(&frame.location()),
    }
}

/// A fenced code block, indented (to sit inside a list item), with a fence longer than any
/// backtick run in `content`.
fn fenced(content: &str, lang: &str, indent: &str) -> String {
    let fence = "`".repeat((longest_run(content, '`') + 1).max(3));
    let mut out = format!("{indent}{fence}{lang}\n");
    for line in break_marker(content).lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
    let _ = writeln!(out, "{indent}{fence}");
    out
}

/// A fence language from the file extension, for syntax highlighting.
fn language(frame: &Frame) -> &'static str {
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
fn source_line(source: Source, link: Option<&str>, short_id: Option<&str>) -> String {
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

/// The state a Discord alert shows; the same message is edited as it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Open,
    Resolved,
    Regressed,
}

/// A Discord "create message" (or "edit message") body with one compact embed linking the tracked
/// issue (<https://discord.com/developers/docs/resources/message#create-message>). Mentions are
/// disabled (`allowed_mentions.parse = []`) and neutralized in the text, so an error message can
/// never ping anyone.
pub fn discord_alert_message(event: &ErrorEvent, issue_url: &str, state: AlertState) -> Value {
    let prefix = match state {
        AlertState::Open => "",
        AlertState::Resolved => "Resolved: ",
        AlertState::Regressed => "Regressed: ",
    };
    let title = clip(&format!("{prefix}{}", discord_mentions(&one_line(&event.title))), EMBED_TITLE_MAX);

    let mut description = String::new();
    if let Some(exception) = &event.exception
        && let Some(kind) = &exception.kind
    {
        let _ = write!(description, "**{}**", discord_text(kind));
        if let Some(value) = &exception.value {
            let _ = write!(description, ": {}", discord_text(&clip(&one_line(value), 300)));
        }
        description.push('\n');
    }
    let frame = event.top_in_app_frames(1).first().copied();
    match (frame, &event.culprit) {
        (Some(frame), _) => {
            description.push_str(&discord_code(&frame.location()));
            if let Some(function) = &frame.function {
                let _ = write!(description, " in {}", discord_code(function));
            }
        }
        (None, Some(culprit)) => description.push_str(&discord_code(culprit)),
        (None, None) => {}
    }
    let description = clip(description.trim_end(), 1_000.min(EMBED_DESCRIPTION_MAX));

    // Field values stay well under 1024 so the whole embed stays under 6000 characters.
    let mut fields = Vec::new();
    let mut field = |name: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            fields.push(json!({"name": name, "value": clip(&value, 256.min(EMBED_FIELD_VALUE_MAX)), "inline": true}));
        }
    };
    field("Project", event.project.as_deref().map(discord_text));
    field("Environment", event.environment.as_deref().map(discord_text));
    field("Release", event.release.as_deref().map(discord_code));
    field("Events", event.count.map(|c| c.to_string()));
    field("Level", Some(event.level.to_string()));
    field("Source", event.link.as_deref().and_then(safe_url).map(|u| format!("[{}]({u})", event.source.product())));

    let mut embed = json!({
        "title": title,
        "description": description,
        "color": color(event.level, state),
        "fields": fields,
        "footer": {"text": clip(&format!("bugbot · {}", event.fingerprint), EMBED_FOOTER_MAX)},
        "timestamp": format_rfc3339_ms(event.last_seen_ms),
    });
    if let Some(url) = safe_url(issue_url) {
        embed["url"] = Value::String(url);
    }
    if description.is_empty() {
        embed.as_object_mut().expect("an object").remove("description");
    }
    json!({ "embeds": [embed], "allowed_mentions": {"parse": []} })
}

/// Embed colour: green when resolved, magenta when regressed, else by level.
fn color(level: Level, state: AlertState) -> u32 {
    match (state, level) {
        (AlertState::Resolved, _) => 0x2E_CC_71,
        (AlertState::Regressed, _) => 0xE9_1E_63,
        (AlertState::Open, Level::Fatal) => 0x99_2D_22,
        (AlertState::Open, Level::Error) => 0xE7_4C_3C,
        (AlertState::Open, Level::Warning) => 0xF1_C4_0F,
        (AlertState::Open, Level::Info) => 0x34_98_DB,
        (AlertState::Open, Level::Debug) => 0x95_A5_A6,
    }
}

// --- escaping ----------------------------------------------------------------------------------------

/// Untrusted text for GitHub/Linear Markdown: one line (so nothing can start a heading, list or
/// block), at most [`TEXT_MAX`] characters, inline syntax escaped (no emphasis, links, HTML or
/// entities), mentions and issue references broken.
fn text(raw: &str) -> String {
    let raw = clip(&one_line(raw), TEXT_MAX);
    let mut out = String::with_capacity(raw.len());
    for c in break_mentions(&raw).chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '|' | '~') {
            out.push('\\');
        }
        out.push(c);
    }
    break_marker(&out)
}

/// Untrusted text as an inline code span: nothing inside is interpreted (no mentions either), so
/// only the delimiter has to outgrow any backtick run (`CommonMark` §6.1).
fn code(raw: &str) -> String {
    let raw = break_marker(&clip(&one_line(raw), TEXT_MAX));
    let ticks = "`".repeat(longest_run(&raw, '`') + 1);
    let pad = if raw.starts_with('`') || raw.ends_with('`') { " " } else { "" };
    format!("{ticks}{pad}{raw}{pad}{ticks}")
}

/// Untrusted text for a Discord Markdown field: one line, escaped (Discord unescapes any `\` +
/// punctuation), mentions broken.
fn discord_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in discord_mentions(&one_line(raw)).chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '~' | '|' | '>' | '<' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Discord inline code span. Discord cannot escape a backtick inside one, so backticks become
/// `ˋ` (U+02CB).
fn discord_code(raw: &str) -> String {
    format!("`{}`", discord_mentions(&one_line(raw)).replace('`', "ˋ"))
}

/// GitHub mentions (`@user`, `@org/team`) and issue references (`#12`, `org/repo#12`) broken with
/// a zero-width space.
fn break_mentions(raw: &str) -> String {
    insert_zwsp(raw, |c, next| c == '@' || (c == '#' && next.is_some_and(|n| n.is_ascii_digit())))
}

/// Discord mentions broken: `@everyone`, `@here`, `<@id>`, `<@&role>`, `<#channel>`, `</cmd:id>`,
/// `<t:…>`, `<a:…>`. (`allowed_mentions` already stops the pings; this stops the highlighting.)
fn discord_mentions(raw: &str) -> String {
    insert_zwsp(raw, |c, next| c == '@' || (c == '<' && matches!(next, Some('@' | '#' | '/' | ':' | 'a' | 't'))))
}

fn insert_zwsp(raw: &str, after: impl Fn(char, Option<char>) -> bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if after(c, chars.peek().copied()) {
            out.push(ZWSP);
        }
    }
    out
}

/// The marker's text broken, so no payload can forge the hidden fingerprint marker.
fn break_marker(raw: &str) -> String {
    raw.replace("bugbot:fingerprint", "bugbot\u{200B}:fingerprint")
}

/// Newlines, tabs and other control characters become spaces; runs of spaces collapse.
fn one_line(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(c);
    }
    out
}

/// An `http(s)` URL safe inside `[text](url)` and as an embed URL; `None` for anything else.
fn safe_url(raw: &str) -> Option<String> {
    let url = raw.trim();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) || url.len() > 2_000 {
        return None;
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '"' => out.push_str("%22"),
            '\'' => out.push_str("%27"),
            '`' => out.push_str("%60"),
            _ => out.push(c),
        }
    }
    Some(out)
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn longest_run(s: &str, target: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if c == target { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// At most `max` characters, cut on a character boundary with `…`.
/// Shortens `s` to at most `max` characters, ending with `…` when anything was cut; a string that
/// fits is returned unchanged. The one truncation every rendering (issues, Discord, pages) uses.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => {
            let mut out = s[..i].to_owned();
            out.pop();
            out.push('…');
            out
        }
    }
}

// --- untrusted text in the fix flow --------------------------------------------------------------
//
// A Discord message filed as an issue, the agent's summary and its test output reach GitHub and
// Linear too. Same rules as above, plus closing keywords broken: only bugbot's own `Fixes <key>` may
// close an issue (GitHub also accepts `Fixes <url>`, Linear's integration `Fixes ENG-1`).

/// Words GitHub (and Linear's GitHub integration) read as "close the issue that follows".
const CLOSING_KEYWORDS: &[&str] =
    &["closes", "closed", "close", "fixes", "fixed", "fix", "resolves", "resolved", "resolve"];

/// A closing keyword that stands as a word and is followed by an issue reference (`#3`,
/// `owner/repo#3`, a URL, `ENG-12`) gets a zero-width space after its first letter.
fn break_closing_keywords(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut prev_word = false;
    for (i, c) in raw.char_indices() {
        out.push(c);
        if !prev_word && c.is_ascii_alphabetic() {
            let rest = raw[i..].to_ascii_lowercase();
            let hit = CLOSING_KEYWORDS.iter().any(|k| rest.starts_with(k) && closes_a_reference(&rest[k.len()..]));
            if hit {
                out.push(ZWSP);
            }
        }
        prev_word = c.is_alphanumeric() || c == '_';
    }
    out
}

/// Whether the text after a closing keyword names an issue: `:`/spaces, then `#…`, a URL, a
/// `owner/repo#…` or a tracker key such as `ENG-12`.
fn closes_a_reference(after: &str) -> bool {
    let trimmed = after.trim_start_matches(':');
    let token = trimmed.trim_start();
    if token.len() == trimmed.len() && trimmed.len() == after.len() {
        return false; // the keyword runs on into another word (`fixture`)
    }
    let token = token.split_whitespace().next().unwrap_or_default();
    let key = token.split_once('-').is_some_and(|(team, n)| {
        !team.is_empty()
            && team.chars().all(|c| c.is_ascii_alphanumeric())
            && n.starts_with(|c: char| c.is_ascii_digit())
    });
    token.starts_with('#') || token.contains('#') || token.starts_with("http") || key
}

/// Untrusted one-line text for GitHub/Linear Markdown (a reporter's name, a reason): [`text`]'s
/// escaping, closing keywords broken.
pub fn untrusted_text(raw: &str) -> String {
    break_closing_keywords(&text(raw))
}

/// An untrusted issue or pull-request title (plain text, not Markdown): one line, at most `max`
/// characters, mentions, issue references and closing keywords broken.
pub fn untrusted_title(raw: &str, max: usize) -> String {
    break_marker(&break_closing_keywords(&break_mentions(&clip(&one_line(raw), max))))
}

/// Untrusted multi-line text (a Discord message, the agent's summary) as a Markdown block quote:
/// each line escaped like [`untrusted_text`], so nothing starts a heading, list, fence or HTML
/// block, links nobody and closes nothing. At most `max_lines` lines.
pub fn untrusted_quote(raw: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = raw.trim().lines().collect();
    let mut out = String::new();
    for line in lines.iter().take(max_lines) {
        let _ = writeln!(out, "> {}", untrusted_text(line));
    }
    if lines.len() > max_lines {
        let _ = writeln!(out, "> …");
    }
    out
}

/// Untrusted output (the test command's last lines) as a fenced block it cannot close: the fence
/// outgrows any backtick run inside; mentions and closing keywords are broken even there.
pub fn untrusted_code_block(raw: &str) -> String {
    let content = break_closing_keywords(&break_mentions(raw.trim_end()));
    fenced(&content, "", "")
}

/// An untrusted name (a file path) as an inline code span.
pub fn untrusted_code_span(raw: &str) -> String {
    code(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_what_fits_and_cuts_to_at_most_max() {
        assert_eq!(clip("abcde", 5), "abcde", "exactly max characters fit");
        assert_eq!(clip("abcdef", 5), "abcd…");
        assert_eq!(clip("ééééé", 5), "ééééé");
        assert_eq!(clip("éééééé", 5).chars().count(), 5);
        assert_eq!(clip("", 3), "");
    }
    use crate::event::Signal;
    use crate::job::{GlitchtipIssueJob, GlitchtipUptimeJob, JobKind, SentryLegacyJob, SentryWebhookJob};
    use crate::normalize::normalize;
    use crate::source::glitchtip::{GlitchtipAlert, GlitchtipItem};
    use crate::source::sentry::Resource;

    const RECEIVED: u64 = 1_700_000_000_000;

    fn read(path: &str) -> String {
        std::fs::read_to_string(format!("{}/../fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn sentry(resource: Resource, path: &str) -> Signal {
        let payload = read(path);
        let action = serde_json::from_str::<Value>(&payload).unwrap()["action"].as_str().unwrap().to_owned();
        let job = JobKind::SentryWebhook(SentryWebhookJob { resource, action, payload, pruned: false });
        normalize(&job, RECEIVED).unwrap()
    }

    fn stored_event(name: &str) -> ErrorEvent {
        let event: Value =
            serde_json::from_str(&read(&format!("sentry_events/glitchtip_test_data/oss_sentry_json/{name}.json")))
                .unwrap();
        let payload = json!({"action": "triggered", "data": {"event": event}}).to_string();
        let job = JobKind::SentryWebhook(SentryWebhookJob {
            resource: Resource::EventAlert,
            action: "triggered".into(),
            payload,
            pruned: false,
        });
        occurrence(normalize(&job, RECEIVED).unwrap())
    }

    fn glitchtip(path: &str) -> Signal {
        let alert = GlitchtipAlert::parse(read(path).as_bytes()).unwrap();
        let job = match alert.items.into_iter().next().unwrap() {
            GlitchtipItem::Issue(issue) => {
                JobKind::GlitchtipIssue(GlitchtipIssueJob { issue, alert_headline: alert.headline })
            }
            GlitchtipItem::Uptime(uptime) => JobKind::GlitchtipUptime(GlitchtipUptimeJob { uptime }),
        };
        normalize(&job, RECEIVED).unwrap()
    }

    fn occurrence(signal: Signal) -> ErrorEvent {
        match signal {
            Signal::Occurrence(e) | Signal::Regressed(e) => e,
            Signal::MetricAlert(m) => m.to_event(),
            Signal::Uptime(u) => u.to_event(),
            other => panic!("{other:?}"),
        }
    }

    /// The events every rendering snapshot is made from: one per shape of input.
    fn events() -> Vec<(&'static str, ErrorEvent)> {
        let legacy = JobKind::SentryLegacy(SentryLegacyJob {
            payload: read("sentry/zulip_captured/webhook_event_for_exception_python.json"),
            pruned: false,
        });
        vec![
            ("python_zero_division", stored_event("python_zero_division")),
            ("django_no_in_app_frames", stored_event("django_template_error")),
            ("js_webpack_source", stored_event("small_js_error_source")),
            ("python_logging_no_exception", stored_event("python_logging")),
            (
                "docs_event_alert_minified_js",
                occurrence(sentry(Resource::EventAlert, "sentry/sentry_docs_payloads/event_alert_triggered.json")),
            ),
            (
                "zulip_issue_created",
                occurrence(sentry(Resource::Issue, "sentry/zulip_captured/issue_created_for_exception.json")),
            ),
            ("legacy_plugin", occurrence(normalize(&legacy, RECEIVED).unwrap())),
            ("glitchtip_issue", occurrence(glitchtip("glitchtip/current_format_general_webhook_issue.json"))),
            ("glitchtip_uptime", occurrence(glitchtip("glitchtip/current_format_general_webhook_uptime_down.json"))),
            (
                "metric_alert",
                occurrence(sentry(Resource::MetricAlert, "sentry/sentry_docs_payloads/metric_alert_resolved.json")),
            ),
        ]
    }

    #[test]
    fn issue_bodies() {
        for (name, event) in events() {
            let body = issue_body_markdown(&event);
            assert_eq!(parse_fingerprint_marker(&body).as_ref(), Some(&event.fingerprint), "{name}");
            assert!(body.ends_with(&format!("{}\n", fingerprint_marker(&event.fingerprint))));
            insta::assert_snapshot!(format!("body_{name}"), format!("# {}\n\n{body}", issue_title(&event)));
        }
    }

    #[test]
    fn discord_messages() {
        let events = events();
        for (name, event) in &events[..2] {
            for state in [AlertState::Open, AlertState::Resolved, AlertState::Regressed] {
                let message = discord_alert_message(event, "https://github.com/acme/web/issues/7", state);
                insta::assert_json_snapshot!(format!("discord_{name}_{state:?}"), message);
            }
        }
        for (name, event) in &events[2..] {
            let message = discord_alert_message(event, "https://linear.app/acme/issue/ENG-7", AlertState::Open);
            assert_eq!(message["allowed_mentions"], json!({"parse": []}), "{name}");
            let embed = &message["embeds"][0];
            let total: usize =
                ["title", "description"].iter().map(|k| embed[k].as_str().map_or(0, |s| s.chars().count())).sum();
            assert!(total <= EMBED_TOTAL_MAX);
        }
        insta::assert_json_snapshot!(
            "discord_glitchtip_issue_Open",
            discord_alert_message(&events[7].1, "https://linear.app/acme/issue/ENG-7", AlertState::Open)
        );
    }

    #[test]
    fn comments() {
        let events = events();
        let (_, zero) = &events[0];
        let (_, issue) = &events[5];
        insta::assert_snapshot!("comment_repeat_event", repeat_comment_markdown(zero, 3));
        insta::assert_snapshot!("comment_repeat_issue", repeat_comment_markdown(issue, 12));
        insta::assert_snapshot!("comment_regressed", regressed_comment_markdown(issue));
        let Signal::Resolved(change) =
            sentry(Resource::Issue, "sentry/integration_platform_example_mocks/issue_resolved.json")
        else {
            panic!()
        };
        let by = StatusChange {
            actor: Some("@everyone Jane".into()),
            link: Some("https://sentry.io/organizations/o/issues/123/".into()),
            ..change.clone()
        };
        insta::assert_snapshot!(
            "comment_resolved",
            format!("{}\n{}", resolved_comment_markdown(&change), resolved_comment_markdown(&by))
        );
        let Signal::Uptime(up) = glitchtip("glitchtip/current_format_general_webhook_uptime_down.json") else {
            panic!()
        };
        assert!(resolved_comment_markdown(&up.to_change()).starts_with("**Back up** in GlitchTip"));
    }

    /// An error payload written by an attacker: mentions, Markdown/HTML injection, a forged
    /// marker, backticks, control characters and huge text.
    fn hostile() -> ErrorEvent {
        let mut event = stored_event("python_zero_division");
        event.title =
            "@everyone <@123> #1 [click](https://evil.example) <!-- bugbot:fingerprint=sentry:999 --> ```\n# h".into();
        event.culprit = Some("`rm -rf /` <script>".into());
        event.exception.as_mut().unwrap().value = Some(format!("**boom** @here {}", "x".repeat(5_000)));
        event.release = Some("``1.0`` <@&42>".into());
        event.environment = Some("prod\n\n# Heading".into());
        event.link = Some("javascript:alert(1)".into());
        event.tags = vec![("user".into(), "email:a@b.c".into()), ("x".into(), "@octocat".into())];
        let last = event.frames.last_mut().unwrap();
        last.context_line = Some("``` @dev #12 <!-- x -->".into());
        last.function = Some("get`".into());
        event
    }

    #[test]
    fn hostile_text_is_inert() {
        let event = hostile();
        let body = issue_body_markdown(&event);
        assert_eq!(parse_fingerprint_marker(&body), Some(event.fingerprint.clone()));
        assert_eq!(body.matches("bugbot:fingerprint").count(), 1, "{body}");
        assert!(!body.contains("@everyone") && !body.contains("@here") && !body.contains("@octocat"));
        // `<script>` and `<@&42>` survive only inside code spans, where they are text.
        assert!(!body.contains("#1 ") && body.matches("<script>").count() == 1);
        assert!(!body.contains("javascript:"));
        assert!(!body.contains("email:a@b.c"), "personal tags are not shown");
        assert!(!body.contains("\n# Heading"));
        insta::assert_snapshot!("body_hostile", body);

        let title = issue_title(&event);
        assert!(title.chars().count() <= ISSUE_TITLE_MAX && !title.contains('\n'));

        let message = discord_alert_message(&event, "https://github.com/acme/web/issues/7", AlertState::Open);
        let text = message.to_string();
        assert!(!text.contains("@everyone") && !text.contains("@here") && !text.contains("<@"), "{text}");
        let embed = &message["embeds"][0];
        assert!(embed["title"].as_str().unwrap().chars().count() <= EMBED_TITLE_MAX);
        assert!(embed["description"].as_str().unwrap().chars().count() <= EMBED_DESCRIPTION_MAX);
        for field in embed["fields"].as_array().unwrap() {
            assert!(field["value"].as_str().unwrap().chars().count() <= EMBED_FIELD_VALUE_MAX);
        }
        insta::assert_json_snapshot!("discord_hostile", message);
    }

    #[test]
    fn priorities_labels_markers() {
        assert_eq!(
            [Level::Fatal, Level::Error, Level::Warning, Level::Info, Level::Debug].map(linear_priority),
            [1, 2, 3, 4, 4]
        );
        let (_, event) = &events()[7];
        assert_eq!(labels(event), ["bugbot", "level:error", "source:glitchtip"]);
        let fp = Fingerprint::from_id("sentry", "42");
        assert_eq!(fingerprint_marker(&fp), "<!-- bugbot:fingerprint=sentry:42 -->");
        assert_eq!(parse_fingerprint_marker("x\n<!-- bugbot:fingerprint=sentry:42 -->\n"), Some(fp));
        assert_eq!(parse_fingerprint_marker("<!-- bugbot:fingerprint=NOT VALID -->"), None);
        assert_eq!(parse_fingerprint_marker("no marker"), None);
    }

    #[test]
    fn escaping_units() {
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(text("a*b_c [d](e) @f #2 &#64;"), "a\\*b\\_c \\[d\\](e) @\u{200B}f #\u{200B}2 \\&#\u{200B}64;");
        assert_eq!(discord_text("<@1> @here **x**"), "\\<\u{200B}@\u{200B}1\\> @\u{200B}here \\*\\*x\\*\\*");
        assert_eq!(safe_url("https://x.io/a(b)"), Some("https://x.io/a%28b%29".into()));
        assert_eq!(safe_url("https://x.io/a b"), None);
        assert_eq!(safe_url("ftp://x.io"), None);
        assert_eq!(one_line(" a\n\tb  c "), "a b c");
        assert_eq!(discord_code("a`b"), "`aˋb`");
    }

    #[test]
    fn untrusted_fix_flow_text_pings_closes_and_breaks_out_of_nothing() {
        let hostile = "Fixes #7 and closes acme/other#3 @acme/security-team\nFIXES https://github.com/acme/shop/issues/9\n\
                       Resolves ENG-12\n```\n# heading\n<img src=x>\n[x](https://evil.example)\nprefix fixture fixed.";
        let quote = untrusted_quote(hostile, 50);
        let title = untrusted_title(hostile, 200);
        let block = untrusted_code_block(hostile);
        for out in [&quote, &title, &block] {
            let lower = out.to_lowercase();
            for keyword in ["fixes #", "closes acme/", "fixes https", "resolves eng-"] {
                assert!(!lower.contains(keyword), "{keyword:?} survived in {out}");
            }
            assert!(!out.contains("#7") && !out.contains("#3") && !out.contains("@acme"), "{out}");
        }
        assert!(quote.contains("fixture fixed."), "words that only look like a keyword stay: {quote}");
        assert_eq!(untrusted_text("auto-fix (confidence 85)"), "auto-fix (confidence 85)", "no reference: unchanged");
        assert!(untrusted_text("fixes: ENG-12").starts_with("f\u{200B}ixes"));
        assert!(quote.lines().all(|l| l.starts_with("> ")), "{quote}");
        // Inline syntax is escaped: no fence, HTML or link is left to interpret.
        assert!(quote.contains("\\`\\`\\`") && quote.contains("\\<img") && quote.contains("\\[x\\]"), "{quote}");
        assert!(!title.contains('\n'));
        // The block's own fence is longer than any backtick run inside, so it closes only at its end.
        assert!(block.starts_with("````\n") && block.ends_with("````\n"), "{block}");
        assert_eq!(block.matches("````").count(), 2, "{block}");
        assert_eq!(untrusted_quote("a\nb\nc", 2), "> a\n> b\n> …\n");
    }
}
