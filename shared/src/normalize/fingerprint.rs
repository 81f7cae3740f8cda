//! Fingerprints without a source id, and the message normalization they rest on.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The fallback fingerprint: project, normalized title and culprit, and the top in-app frame's
/// module (or file) and function; no line numbers, so it survives unrelated edits.
pub(super) fn hashed_fingerprint(
    namespace: &str,
    project: Option<&str>,
    title: &str,
    culprit: Option<&str>,
    frames: &[Frame],
) -> Fingerprint {
    let top = frames.iter().rev().find(|f| f.in_app).or(frames.last());
    let top = top.map_or_else(String::new, |f| {
        format!(
            "{} {}",
            f.module.as_deref().or(f.filename.as_deref()).or(f.abs_path.as_deref()).unwrap_or_default(),
            f.function.as_deref().unwrap_or_default()
        )
    });
    let material = format!(
        "{}\n{}\n{}\n{}",
        project.unwrap_or_default().trim().to_lowercase(),
        normalize_message(title),
        normalize_message(culprit.unwrap_or_default()),
        top.trim()
    );
    Fingerprint::from_hash(namespace, material.as_bytes())
}

/// Lowercases and replaces what varies between occurrences of one problem — quoted values,
/// UUIDs, hex ids and numbers — with placeholders, collapsing whitespace:
/// `Reverse for 'nope' not found (id 42)` → `reverse for <str> not found (id <n>)`.
pub fn normalize_message(raw: &str) -> String {
    let chars: Vec<char> = raw.trim().chars().collect();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '\'' | '"' | '`')
            && !chars.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric())
            && let Some(len) = chars[i + 1..].iter().take(200).position(|&q| q == c)
        {
            out.push_str("<str>");
            i += len + 2;
            continue;
        }
        if c.is_ascii_hexdigit() && is_uuid_at(&chars, i) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        if c.is_ascii_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            out.push_str(&placeholder(&word));
            continue;
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.extend(c.to_lowercase());
        }
        i += 1;
    }
    out.trim().to_owned()
}

pub(super) fn is_uuid_at(chars: &[char], start: usize) -> bool {
    let candidate: String = chars[start..].iter().take(36).collect();
    candidate.len() == 36
        && candidate
            .char_indices()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

pub(super) fn placeholder(word: &str) -> String {
    let has_digit = word.bytes().any(|b| b.is_ascii_digit());
    if let Some(hex) = word.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return "<hex>".to_owned();
    }
    if has_digit
        && word.len() >= 6
        && word.bytes().all(|b| b.is_ascii_hexdigit())
        && !word.bytes().all(|b| b.is_ascii_digit())
    {
        return "<hex>".to_owned();
    }
    // Digit runs inside words too: `user42` → `user<n>`, `500` → `<n>`.
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with("<n>") {
                out.push_str("<n>");
            }
        } else {
            out.push(c);
        }
    }
    out
}
