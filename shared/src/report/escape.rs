//! Untrusted text made safe for Markdown (GitHub, Linear) and Discord.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Untrusted text for GitHub/Linear Markdown: one line (so nothing can start a heading, list or
/// block), at most [`TEXT_MAX`] characters, inline syntax escaped (no emphasis, links, HTML or
/// entities), mentions and issue references broken.
pub(super) fn text(raw: &str) -> String {
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
pub(super) fn code(raw: &str) -> String {
    let raw = break_marker(&clip(&one_line(raw), TEXT_MAX));
    let ticks = "`".repeat(longest_run(&raw, '`') + 1);
    let pad = if raw.starts_with('`') || raw.ends_with('`') { " " } else { "" };
    format!("{ticks}{pad}{raw}{pad}{ticks}")
}

/// Untrusted text for a Discord Markdown field: one line, escaped (Discord unescapes any `\` +
/// punctuation), mentions broken.
pub(super) fn discord_text(raw: &str) -> String {
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
pub(super) fn discord_code(raw: &str) -> String {
    format!("`{}`", discord_mentions(&one_line(raw)).replace('`', "ˋ"))
}

/// GitHub mentions (`@user`, `@org/team`) and issue references (`#12`, `org/repo#12`) broken with
/// a zero-width space.
pub(super) fn break_mentions(raw: &str) -> String {
    insert_zwsp(raw, |c, next| c == '@' || (c == '#' && next.is_some_and(|n| n.is_ascii_digit())))
}

/// Discord mentions broken: `@everyone`, `@here`, `<@id>`, `<@&role>`, `<#channel>`, `</cmd:id>`,
/// `<t:…>`, `<a:…>`. (`allowed_mentions` already stops the pings; this stops the highlighting.)
pub(super) fn discord_mentions(raw: &str) -> String {
    insert_zwsp(raw, |c, next| c == '@' || (c == '<' && matches!(next, Some('@' | '#' | '/' | ':' | 'a' | 't'))))
}

pub(super) fn insert_zwsp(raw: &str, after: impl Fn(char, Option<char>) -> bool) -> String {
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
pub(super) fn break_marker(raw: &str) -> String {
    raw.replace("bugbot:fingerprint", "bugbot\u{200B}:fingerprint")
}

/// Newlines, tabs and other control characters become spaces; runs of spaces collapse.
pub(super) fn one_line(raw: &str) -> String {
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
pub(super) fn safe_url(raw: &str) -> Option<String> {
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

pub(super) fn plural(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

pub(super) fn longest_run(s: &str, target: char) -> usize {
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

//
// A Discord message filed as an issue, the agent's summary and its test output reach GitHub and
// Linear too. Same rules as above, plus closing keywords broken: only bugbot's own `Fixes <key>` may
// close an issue (GitHub also accepts `Fixes <url>`, Linear's integration `Fixes ENG-1`).

/// Words GitHub (and Linear's GitHub integration) read as "close the issue that follows".
pub(super) const CLOSING_KEYWORDS: &[&str] =
    &["closes", "closed", "close", "fixes", "fixed", "fix", "resolves", "resolved", "resolve"];

/// A closing keyword that stands as a word and is followed by an issue reference (`#3`,
/// `owner/repo#3`, a URL, `ENG-12`) gets a zero-width space after its first letter.
pub(super) fn break_closing_keywords(raw: &str) -> String {
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
pub(super) fn closes_a_reference(after: &str) -> bool {
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
