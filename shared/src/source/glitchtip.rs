//! GlitchTip alert webhooks (unsigned; authenticated by the token in the URL path).
//!
//! Two shapes exist upstream: the "general" recipient posts Slack-compatible JSON
//! (`{text, attachments:[{title, title_link, text, color, fields:[{title, value, short}]}]}`,
//! older versions add `alias` and `sections`), and the Discord recipient posts
//! `{content, embeds:[{title, description, url, color, fields:[{name, value, inline}]}]}`.
//! One alert may report several issues; each becomes its own [`GlitchtipItem`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    attachments: Option<Vec<Attachment>>,
    #[serde(default)]
    embeds: Option<Vec<Embed>>,
}

#[derive(Debug, Deserialize)]
struct Attachment {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    title_link: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    fields: Option<Vec<SlackField>>,
}

#[derive(Debug, Deserialize)]
struct SlackField {
    #[serde(default)]
    title: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Embed {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    fields: Option<Vec<EmbedField>>,
}

#[derive(Debug, Deserialize)]
struct EmbedField {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: Option<String>,
}

/// One attachment or embed, whichever shape it came in: (title, link, text, fields).
type RawItem = (Option<String>, Option<String>, Option<String>, Vec<(String, String)>);

/// One reported issue of a GlitchTip alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlitchtipIssue {
    pub title: String,
    /// `<base>/<org>/issues/<id>`.
    pub link: Option<String>,
    /// GlitchTip puts the culprit in the attachment text / embed description.
    pub culprit: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    /// Any other fields (tags), in order.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// An uptime monitor alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlitchtipUptime {
    pub monitor: String,
    pub link: Option<String>,
    pub message: Option<String>,
}

/// What one alert reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlitchtipItem {
    Issue(GlitchtipIssue),
    Uptime(GlitchtipUptime),
}

/// Why a body is not a GlitchTip alert.
#[derive(Debug, thiserror::Error)]
pub enum GlitchtipError {
    #[error("body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("body has neither `attachments` nor `embeds`")]
    NotAnAlert,
}

/// A parsed alert: its headline and the items it reports (empty for a test notification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlitchtipAlert {
    pub headline: String,
    pub items: Vec<GlitchtipItem>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl GlitchtipAlert {
    pub fn parse(body: &[u8]) -> Result<Self, GlitchtipError> {
        let payload: Payload = serde_json::from_slice(body)?;
        let headline = payload.text.or(payload.content).unwrap_or_default();
        let is_test = headline.contains("Test Notification");
        let is_uptime = headline.contains("Uptime");
        let raw: Vec<RawItem> = match (payload.attachments, payload.embeds) {
            (Some(attachments), _) => attachments
                .into_iter()
                .map(|a| {
                    let fields =
                        a.fields.unwrap_or_default().into_iter().filter_map(|f| Some((f.title, f.value?))).collect();
                    (a.title, a.title_link, a.text, fields)
                })
                .collect(),
            (None, Some(embeds)) => embeds
                .into_iter()
                .map(|e| {
                    let fields =
                        e.fields.unwrap_or_default().into_iter().filter_map(|f| Some((f.name, f.value?))).collect();
                    (e.title, e.url, e.description, fields)
                })
                .collect(),
            (None, None) => return Err(GlitchtipError::NotAnAlert),
        };
        if is_test {
            return Ok(Self { headline, items: Vec::new() });
        }
        let items = raw
            .into_iter()
            .filter_map(|(title, link, text, fields)| {
                let title = non_empty(title)?;
                let link = non_empty(link);
                let text = non_empty(text);
                if is_uptime {
                    return Some(GlitchtipItem::Uptime(GlitchtipUptime { monitor: title, link, message: text }));
                }
                let mut issue = GlitchtipIssue {
                    title,
                    link,
                    culprit: text,
                    project: None,
                    environment: None,
                    release: None,
                    server_name: None,
                    tags: Vec::new(),
                };
                for (name, value) in fields {
                    match name.as_str() {
                        "Project" => issue.project = Some(value),
                        "Environment" => issue.environment = Some(value),
                        "Release" => issue.release = Some(value),
                        "Server Name" => issue.server_name = Some(value),
                        _ => issue.tags.push((name, value)),
                    }
                }
                Some(GlitchtipItem::Issue(issue))
            })
            .collect();
        Ok(Self { headline, items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> GlitchtipAlert {
        let body = std::fs::read(format!("{}/../fixtures/glitchtip/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        GlitchtipAlert::parse(&body).unwrap()
    }

    #[test]
    fn general_issue() {
        let alert = parse("current_format_general_webhook_issue.json");
        let [GlitchtipItem::Issue(issue)] = alert.items.as_slice() else { panic!("{alert:?}") };
        assert_eq!(issue.title, "ZeroDivisionError: division by zero");
        assert_eq!(issue.link.as_deref(), Some("https://app.glitchtip.com/burke-software/issues/1234"));
        assert_eq!(issue.culprit.as_deref(), Some("/divide-zero/"));
        assert_eq!(issue.project.as_deref(), Some("error-factory"));
        assert_eq!(issue.environment.as_deref(), Some("production"));
        assert_eq!(issue.server_name.as_deref(), Some("web-1"));
        assert_eq!(issue.release.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn discord_recipient_matches_general() {
        assert_eq!(
            parse("current_format_discord_webhook_issue.json").items,
            parse("current_format_general_webhook_issue.json").items
        );
    }

    #[test]
    fn multiple_and_legacy() {
        assert_eq!(parse("generated_2022_code_multiple_issues_count_5_showing_2.json").items.len(), 2);
        assert_eq!(parse("generated_2022_code_single_issue.json").items.len(), 1);
    }

    #[test]
    fn uptime_and_test_notification() {
        let up = parse("current_format_general_webhook_uptime_down.json");
        assert!(matches!(&up.items[..], [GlitchtipItem::Uptime(u)] if u.monitor == "Example Monitor"));
        assert!(parse("current_format_general_webhook_test_notification_no_issues.json").items.is_empty());
    }

    #[test]
    fn rejects_other_json() {
        assert!(matches!(GlitchtipAlert::parse(b"{}"), Err(GlitchtipError::NotAnAlert)));
        assert!(matches!(GlitchtipAlert::parse(b"{"), Err(GlitchtipError::Json(_))));
    }
}
