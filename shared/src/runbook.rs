//! Runbooks: which documented procedure matches an error. Two sources, both configuration:
//! Markdown files (`runbooks/*.md` in the target repository) whose front matter lists the
//! patterns they cover, and a `RUNBOOKS` JSON map `{"pattern": "https://…"}`.
//!
//! ```markdown
//! ---
//! title: Database connections exhausted
//! patterns: ["OperationalError", "too many connections"]
//! ---
//! ```
//! (a YAML block list `patterns:\n  - a\n  - b` works too). Patterns match case-insensitively as
//! substrings of the error's title, culprit and message.

use serde::{Deserialize, Serialize};

/// A runbook and what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runbook {
    pub title: String,
    pub url: String,
    pub patterns: Vec<String>,
    /// The front matter's one-line `summary`, quoted in the issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// A runbook that matched, and the pattern that did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunbookMatch {
    pub title: String,
    pub url: String,
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// Reads a runbook file's front matter; `None` if it has no patterns. `fallback_title` is used
/// when the front matter has no `title` (the file name, say).
pub fn parse_front_matter(markdown: &str, url: &str, fallback_title: &str) -> Option<Runbook> {
    let body = markdown.trim_start_matches('\u{feff}');
    let rest = body.strip_prefix("---")?;
    let end = rest.find("\n---")?;
    let mut title = None;
    let mut summary = None;
    let mut patterns = Vec::new();
    let mut in_list = false;
    for line in rest[..end].lines() {
        let trimmed = line.trim();
        if in_list && let Some(item) = trimmed.strip_prefix("- ") {
            patterns.push(unquote(item));
            continue;
        }
        in_list = false;
        let Some((key, value)) = trimmed.split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "title" => title = Some(unquote(value)),
            "summary" => summary = Some(unquote(value)).filter(|s| !s.is_empty()),
            "patterns" | "pattern" | "match" => {
                if value.is_empty() {
                    in_list = true;
                } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                    patterns.extend(inner.split(',').map(unquote));
                } else {
                    patterns.push(unquote(value));
                }
            }
            _ => {}
        }
    }
    patterns.retain(|p| !p.is_empty());
    (!patterns.is_empty()).then(|| Runbook {
        title: title.unwrap_or_else(|| fallback_title.to_owned()),
        url: url.to_owned(),
        patterns,
        summary,
    })
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(|c| c == '"' || c == '\'').trim().to_owned()
}

/// Reads `RUNBOOKS` (`{"pattern": "url"}`); each entry is a runbook titled by its pattern.
pub fn parse_map(json: &str) -> Result<Vec<Runbook>, RunbooksError> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(RunbooksError::NotAnObject)?;
    map.into_iter()
        .map(|(pattern, url)| match url.as_str() {
            Some(url) => {
                Ok(Runbook { title: pattern.clone(), url: url.to_owned(), patterns: vec![pattern], summary: None })
            }
            None => Err(RunbooksError::NotAUrl(pattern)),
        })
        .collect()
}

/// Why `RUNBOOKS` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RunbooksError {
    #[error("RUNBOOKS is not a JSON object: {0}")]
    NotAnObject(serde_json::Error),
    /// The entry's pattern, whose value is not a string.
    #[error("RUNBOOKS[{0:?}] is not a URL string")]
    NotAUrl(String),
}

/// The runbooks one of whose patterns occurs in any of `texts`, in the given order, once each
/// (by title, ignoring case: the first of the same title wins, so a repository's copy of a starter
/// runbook listed before the starters replaces it).
pub fn matching(runbooks: &[Runbook], texts: &[&str]) -> Vec<RunbookMatch> {
    let haystack: Vec<String> = texts.iter().map(|t| t.to_lowercase()).collect();
    let mut out: Vec<RunbookMatch> = Vec::new();
    for r in runbooks {
        let Some(pattern) = r.patterns.iter().find(|p| {
            let p = p.to_lowercase();
            !p.is_empty() && haystack.iter().any(|h| h.contains(&p))
        }) else {
            continue;
        };
        if out.iter().any(|m| m.title.eq_ignore_ascii_case(&r.title)) {
            continue;
        }
        out.push(RunbookMatch {
            title: r.title.clone(),
            url: r.url.clone(),
            pattern: pattern.clone(),
            summary: r.summary.clone(),
        });
    }
    out
}

/// The starter runbooks bugbot ships (`docs/runbooks/` of bugbot's own repository). Their `url`
/// is that path; the issue quotes their summary.
pub fn starter() -> Vec<Runbook> {
    const FILES: &[(&str, &str)] = &[
        ("database-connection-timeout.md", include_str!("../../docs/runbooks/database-connection-timeout.md")),
        ("connection-refused.md", include_str!("../../docs/runbooks/connection-refused.md")),
        ("missing-attribute.md", include_str!("../../docs/runbooks/missing-attribute.md")),
        ("rate-limited.md", include_str!("../../docs/runbooks/rate-limited.md")),
    ];
    FILES.iter().filter_map(|(name, text)| parse_front_matter(text, &format!("docs/runbooks/{name}"), name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_inline_and_block_lists() {
        let inline =
            "---\ntitle: \"Division by zero\"\npatterns: [\"ZeroDivisionError\", 'division by zero']\n---\n# Steps\n";
        let r = parse_front_matter(inline, "https://x/runbooks/zero.md", "zero").unwrap();
        assert_eq!(r.title, "Division by zero");
        assert_eq!(r.patterns, ["ZeroDivisionError", "division by zero"]);
        let block = "---\npatterns:\n  - OperationalError\n  - too many connections\nowner: db\n---\nbody";
        let r = parse_front_matter(block, "u", "db.md").unwrap();
        assert_eq!((r.title.as_str(), r.patterns.len()), ("db.md", 2));
        assert!(parse_front_matter("# no front matter", "u", "t").is_none());
        assert!(parse_front_matter("---\ntitle: x\n---\n", "u", "t").is_none(), "no patterns: not a runbook");
    }

    #[test]
    fn matching_is_case_insensitive_and_ordered() {
        let books = parse_map(r#"{"zerodivision": "https://wiki/zero", "Timeout": "https://wiki/timeout"}"#).unwrap();
        let hits = matching(&books, &["ZeroDivisionError: division by zero", "errors.views in get"]);
        assert_eq!(
            hits,
            [RunbookMatch {
                title: "zerodivision".into(),
                url: "https://wiki/zero".into(),
                pattern: "zerodivision".into(),
                summary: None
            }]
        );
        assert!(matching(&books, &["KeyError"]).is_empty());
        assert!(parse_map("[1]").is_err());
        assert!(parse_map(r#"{"a": 1}"#).is_err());
    }

    #[test]
    fn the_starter_runbooks_parse_and_match_the_seed_error() {
        let books = starter();
        assert_eq!(books.len(), 4, "every shipped runbook has front matter with patterns");
        assert!(books.iter().all(|b| b.summary.is_some()));
        let hits = matching(&books, &["OperationalError: could not connect to server: Connection timed out"]);
        assert_eq!(hits[0].title, "Database connection timeout");
        assert_eq!(hits[0].url, "docs/runbooks/database-connection-timeout.md");
        let mine = Runbook {
            title: "database connection TIMEOUT".into(),
            url: "https://github.com/acme/web/blob/HEAD/runbooks/db.md".into(),
            patterns: vec!["OperationalError".into()],
            summary: None,
        };
        let all: Vec<Runbook> = std::iter::once(mine).chain(books).collect();
        let hits = matching(&all, &["OperationalError: timeout"]);
        assert_eq!(hits.len(), 1, "the repository's copy replaces the starter: {hits:?}");
        assert!(hits[0].url.starts_with("https://github.com/acme/web"));
    }
}
