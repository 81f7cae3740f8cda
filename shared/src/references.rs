//! References found in a conversation: tracked issues (Linear, GitHub), source issues (Sentry,
//! GlitchTip), PostHog replays and sessions, and people's email addresses. Extraction is textual
//! and conservative: a token becomes a reference only when its shape leaves no doubt.

use serde::{Deserialize, Serialize};

/// Words shaped like Linear identifiers (`UTF-8`) that are not issues.
const NOT_LINEAR: &[&str] = &["UTF", "ISO", "SHA", "RFC", "HTTP", "TLS", "SSL", "CVE", "COVID", "IPV", "MD", "X"];

/// One reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "ref", rename_all = "snake_case")]
pub enum Reference {
    /// `ENG-123` or `https://linear.app/<workspace>/issue/ENG-123/<slug>`.
    Linear {
        identifier: String,
        url: Option<String>,
    },
    /// `https://github.com/<owner>/<repo>/issues/<n>` (or `/pull/<n>`).
    GitHubIssue {
        repo: String,
        number: u64,
        pull: bool,
        url: String,
    },
    /// `https://github.com/<owner>/<repo>`.
    GitHubRepo {
        repo: String,
    },
    /// A Sentry or GlitchTip issue page: `https://<org>.sentry.io/issues/<id>/`,
    /// `https://sentry.io/organizations/<org>/issues/<id>/`, `https://app.glitchtip.com/<org>/issues/<id>`.
    SentryIssue {
        base: String,
        org: Option<String>,
        issue_id: String,
        url: String,
    },
    /// A PostHog replay link (`…/replay/<session id>`) or a session id named in text.
    PosthogSession {
        session_id: String,
        url: Option<String>,
    },
    Email(String),
}

/// Every reference in `text`, deduplicated, in order of appearance.
pub fn extract(text: &str) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    let mut push = |r: Reference| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    let tokens: Vec<&str> = text.split(|c: char| c.is_whitespace()).map(trim_token).collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            continue;
        }
        if let Some(rest) = token.strip_prefix("https://").or_else(|| token.strip_prefix("http://")) {
            if let Some(r) = url_reference(token, rest) {
                push(r);
            }
            continue;
        }
        if let Some(session) = session_assignment(token) {
            push(Reference::PosthogSession { session_id: session, url: None });
        } else if i > 0 && tokens[i - 1].trim_end_matches(':').eq_ignore_ascii_case("session") && is_session_id(token) {
            push(Reference::PosthogSession { session_id: (*token).to_owned(), url: None });
        } else if let Some(email) = email(token) {
            push(Reference::Email(email));
        } else if is_linear_identifier(token) {
            push(Reference::Linear { identifier: (*token).to_owned(), url: None });
        }
    }
    out
}

/// Strips the punctuation text and Markdown put around a token (`<url>`, `(ENG-1)`, `x.`).
fn trim_token(token: &str) -> &str {
    let token = token.trim_matches(['<', '>', '(', ')', '[', ']', '"', '\'', '`', '*', '|']);
    // `](https://…)` of a Markdown link leaves the URL after the bracket.
    let token = token.rsplit_once("](").map_or(token, |(_, url)| url);
    token.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '>'])
}

fn url_reference(url: &str, rest: &str) -> Option<Reference> {
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.to_ascii_lowercase();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let path = path.split('#').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let scheme = if url.starts_with("https://") { "https" } else { "http" };
    let url = url.to_owned();
    if host == "linear.app" || host.ends_with(".linear.app") {
        return match segments.as_slice() {
            [_, "issue", id, ..] if is_linear_identifier(id) => {
                Some(Reference::Linear { identifier: (*id).to_owned(), url: Some(url) })
            }
            _ => None,
        };
    }
    if host == "github.com" || host == "www.github.com" {
        return match segments.as_slice() {
            [owner, repo, kind @ ("issues" | "pull"), n, ..] => Some(Reference::GitHubIssue {
                repo: format!("{owner}/{repo}"),
                number: n.parse().ok()?,
                pull: *kind == "pull",
                url,
            }),
            [owner, repo] | [owner, repo, "tree" | "blob", ..] => {
                Some(Reference::GitHubRepo { repo: format!("{owner}/{repo}") })
            }
            _ => None,
        };
    }
    if let Some(i) = segments.iter().position(|s| *s == "replay")
        && let Some(id) = segments.get(i + 1).filter(|id| is_session_id(id))
    {
        return Some(Reference::PosthogSession { session_id: (*id).to_owned(), url: Some(url) });
    }
    if host.contains("posthog") {
        let id = query.split('&').find_map(|kv| kv.strip_prefix("sessionRecordingId="));
        if let Some(id) = id.filter(|id| is_session_id(id)) {
            return Some(Reference::PosthogSession { session_id: id.to_owned(), url: Some(url) });
        }
    }
    // Sentry-compatible issue pages: `/issues/<digits>` anywhere but GitHub.
    let i = segments.iter().position(|s| *s == "issues")?;
    let id = segments.get(i + 1).filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))?;
    let org = match &segments[..i] {
        ["organizations", org] | [org] => Some((*org).to_owned()),
        [] => host.strip_suffix(".sentry.io").map(str::to_owned),
        _ => None,
    };
    let base =
        if host.ends_with(".sentry.io") { format!("{scheme}://sentry.io") } else { format!("{scheme}://{host}") };
    Some(Reference::SentryIssue { base, org, issue_id: (*id).to_owned(), url })
}

/// `session_id=…`, `$session_id:…`, `sessionId=…`.
fn session_assignment(token: &str) -> Option<String> {
    let (key, value) = token.split_once(['=', ':'])?;
    let key = key.trim_start_matches('$').to_ascii_lowercase().replace('_', "");
    (matches!(key.as_str(), "sessionid" | "session" | "sessionrecordingid") && is_session_id(value))
        .then(|| value.to_owned())
}

/// PostHog session ids are UUIDs (v7 nowadays): 36 characters of hex and dashes.
fn is_session_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes()
            .enumerate()
            .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

fn email(token: &str) -> Option<String> {
    let token = token.strip_prefix("mailto:").unwrap_or(token);
    let (local, domain) = token.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-'));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    (local_ok && domain_ok).then(|| token.to_ascii_lowercase())
}

/// `ENG-123`: a team key of 1–10 uppercase letters and digits starting with a letter, a dash, a number.
pub fn is_linear_identifier(s: &str) -> bool {
    let Some((key, number)) = s.split_once('-') else { return false };
    let key_ok = (2..=10).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_uppercase())
        && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && !NOT_LINEAR.contains(&key);
    key_ok && (1..=7).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()) && !number.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(id: &str, url: Option<&str>) -> Reference {
        Reference::Linear { identifier: id.into(), url: url.map(Into::into) }
    }

    fn sentry(base: &str, org: Option<&str>, id: &str, url: &str) -> Reference {
        Reference::SentryIssue { base: base.into(), org: org.map(Into::into), issue_id: id.into(), url: url.into() }
    }

    const SESSION: &str = "01890f6a-7c1e-7d52-9a3b-5f6e2c1d0a9b";

    #[test]
    fn references_round_trip_as_json() {
        let all = extract("ENG-1 a@b.io https://github.com/a/b https://sentry.io/organizations/o/issues/1/");
        let text = serde_json::to_string(&all).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Reference>>(&text).unwrap(), all);
    }

    #[test]
    fn extraction_table() {
        let replay = format!("replay https://us.posthog.com/project/7/replay/{SESSION}?t=3");
        let assign = format!("session_id={SESSION} and session: {SESSION}");
        let cases: Vec<(&str, Vec<Reference>)> = vec![
            ("see ENG-123 and (ENG-7).", vec![linear("ENG-123", None), linear("ENG-7", None)]),
            ("UTF-8 and ISO-8601 and SHA-256 are not issues; nor is eng-1 or E-1 or ENG-01", vec![]),
            (
                "<https://linear.app/acme/issue/ENG-42/checkout-fails>",
                vec![linear("ENG-42", Some("https://linear.app/acme/issue/ENG-42/checkout-fails"))],
            ),
            (
                "https://github.com/acme/shop/issues/12, https://github.com/acme/shop/pull/13#x https://github.com/acme/shop",
                vec![
                    Reference::GitHubIssue {
                        repo: "acme/shop".into(),
                        number: 12,
                        pull: false,
                        url: "https://github.com/acme/shop/issues/12".into(),
                    },
                    Reference::GitHubIssue {
                        repo: "acme/shop".into(),
                        number: 13,
                        pull: true,
                        url: "https://github.com/acme/shop/pull/13#x".into(),
                    },
                    Reference::GitHubRepo { repo: "acme/shop".into() },
                ],
            ),
            (
                "https://sentry.io/organizations/acme/issues/4507/?project=1",
                vec![sentry(
                    "https://sentry.io",
                    Some("acme"),
                    "4507",
                    "https://sentry.io/organizations/acme/issues/4507/?project=1",
                )],
            ),
            (
                "https://acme.sentry.io/issues/99/events/abc/",
                vec![sentry("https://sentry.io", Some("acme"), "99", "https://acme.sentry.io/issues/99/events/abc/")],
            ),
            (
                "glitchtip: https://app.glitchtip.com/burke-software/issues/5001",
                vec![sentry(
                    "https://app.glitchtip.com",
                    Some("burke-software"),
                    "5001",
                    "https://app.glitchtip.com/burke-software/issues/5001",
                )],
            ),
            (
                "self-hosted http://127.0.0.1:9000/organizations/o/issues/3/",
                vec![sentry(
                    "http://127.0.0.1:9000",
                    Some("o"),
                    "3",
                    "http://127.0.0.1:9000/organizations/o/issues/3/",
                )],
            ),
            (
                replay.as_str(),
                vec![Reference::PosthogSession {
                    session_id: SESSION.into(),
                    url: Some(format!("https://us.posthog.com/project/7/replay/{SESSION}?t=3")),
                }],
            ),
            (assign.as_str(), vec![Reference::PosthogSession { session_id: SESSION.into(), url: None }]),
            (
                "user Jane.Doe+shop@Example.COM reported it; mailto:ops@acme.io; not a@b or @x.io",
                vec![Reference::Email("jane.doe+shop@example.com".into()), Reference::Email("ops@acme.io".into())],
            ),
            (
                "[the issue](https://github.com/a/b/issues/1)",
                vec![Reference::GitHubIssue {
                    repo: "a/b".into(),
                    number: 1,
                    pull: false,
                    url: "https://github.com/a/b/issues/1".into(),
                }],
            ),
            ("https://example.com/docs and https://github.com/a/b/issues/x", vec![]),
            ("ENG-5 ENG-5", vec![linear("ENG-5", None)]),
        ];
        for (text, want) in cases {
            assert_eq!(extract(text), want, "{text}");
        }
    }
}
