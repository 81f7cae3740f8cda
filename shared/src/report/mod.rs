//! What bugbot writes: issue titles and Markdown bodies for Linear and GitHub, follow-up
//! comments, labels and priority, and the Discord alert message. Pure rendering.
//!
//! Everything from an error payload is untrusted. In Markdown it is escaped, kept on one line,
//! and `@` / `#<digit>` get a zero-width space so an error text cannot mention a person or team
//! or cross-reference another issue (the trick Dependabot uses in release notes). The text
//! `bugbot:fingerprint` is broken the same way, so no payload can forge the hidden marker that
//! [`fingerprint_marker`] writes and the sinks search for.
//!
//! # Layout
//! - `tracker`: Linear and GitHub issue titles, bodies, comments, labels, priority, the marker.
//! - `discord`: the Discord alert message.
//! - `escape`: untrusted text made safe for Markdown and Discord.

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

mod discord;
mod escape;
mod tracker;

pub use self::{discord::*, escape::*, tracker::*};

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
    #[test]
    fn the_confidence_line_is_a_full_width_field_with_mentions_broken() {
        let mut message = discord_alert_message(&hostile(), "https://github.com/acme/web/issues/1", AlertState::Open);
        with_confidence(&mut message, "Confidence 0.85 (stack trace 0.80, +0.05 @everyone)");
        let field = message["embeds"][0]["fields"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(field["name"], "Confidence");
        assert_eq!(field["inline"], false);
        assert!(field["value"].as_str().unwrap().starts_with("Confidence 0.85"));
        assert!(!field["value"].as_str().unwrap().contains("@everyone"), "{field}");
    }

    /// The card's nonce is Discord's longest (25 characters), the same for the same card, and
    /// another for another issue's card.
    #[test]
    fn an_alert_card_nonce_names_its_card() {
        let nonce = |key: &str| {
            let mut message =
                discord_alert_message(&hostile(), "https://github.com/acme/web/issues/1", AlertState::Open);
            with_nonce(&mut message, key);
            assert_eq!(message["enforce_nonce"], true);
            message["nonce"].as_str().unwrap().to_owned()
        };
        let first = nonce("alert card sentry:1 https://linear.app/x/issue/ENG-1");
        assert_eq!(first.len(), 25);
        assert_eq!(first, nonce("alert card sentry:1 https://linear.app/x/issue/ENG-1"));
        assert_ne!(first, nonce("alert card sentry:1 https://linear.app/x/issue/ENG-2"));
    }

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
