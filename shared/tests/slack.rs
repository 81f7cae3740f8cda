//! Slack: the documented signing example, the gateway's decisions, and every message fixture
//! normalized (`fixtures/slack/`, provenance in `fixtures/SOURCES.md`).

use bugbot_shared::event::{Level, Source};
use bugbot_shared::ingress::{self, IngressConfig, IngressError, IngressRequest, Route};
use bugbot_shared::job::JobKind;
use bugbot_shared::slack;
use bugbot_shared::verify::SignatureError;
use serde_json::Value;

fn fixture_text(path: &str) -> String {
    let path = format!("{}/../fixtures/slack/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(path: &str) -> Value {
    serde_json::from_str(&fixture_text(path)).unwrap()
}

#[test]
fn the_documented_signing_example_verifies_and_its_tampered_twins_do_not() {
    let v = fixture("signing_test_vector.json");
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let (secret, ts, body, sig) = (s("signing_secret"), s("timestamp"), s("body"), s("expected_signature"));
    let now: u64 = ts.parse().unwrap();
    assert_eq!(slack::sign(secret.as_bytes(), &ts, body.as_bytes()), sig);
    assert_eq!(slack::verify(secret.as_bytes(), &ts, &sig, body.as_bytes(), now), Ok(()));
    for case in v["negative_cases"].as_array().unwrap() {
        let body = case["body"].as_str().unwrap_or(&body);
        let ts = case["timestamp"].as_str().unwrap_or(&ts);
        let sig = case["signature"].as_str().unwrap_or(&sig);
        assert!(slack::verify(secret.as_bytes(), ts, sig, body.as_bytes(), now).is_err(), "{}", case["case"]);
    }
    // Outside 5 minutes: stale, even though the MAC is right.
    assert_eq!(slack::verify(secret.as_bytes(), &ts, &sig, body.as_bytes(), now + 301), Err(SignatureError::Stale));
    assert_eq!(slack::verify(secret.as_bytes(), &ts, &sig, body.as_bytes(), now + 300), Ok(()));
    // The wrong secret, a missing `v0=`, a truncated MAC.
    assert_eq!(slack::verify(b"another secret", &ts, &sig, body.as_bytes(), now), Err(SignatureError::Mismatch));
    assert_eq!(slack::verify(secret.as_bytes(), &ts, &sig[3..], body.as_bytes(), now), Err(SignatureError::Malformed));
    assert_eq!(slack::verify(secret.as_bytes(), &ts, &sig[..60], body.as_bytes(), now), Err(SignatureError::Malformed));
}

struct TestHeaders(Vec<(String, String)>);

impl ingress::Headers for TestHeaders {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

fn signed_headers(secret: &[u8], ts: &str, body: &[u8]) -> TestHeaders {
    let sig = slack::sign(secret, ts, body);
    TestHeaders(vec![("X-Slack-Request-Timestamp".into(), ts.to_owned()), ("X-Slack-Signature".into(), sig)])
}

const SECRET: &str = "test-signing-secret";
const NOW: u64 = 1_733_500_000;

fn config(channels: &[&str]) -> IngressConfig {
    IngressConfig {
        slack_signing_secret: Some(SECRET.into()),
        slack_alert_channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        ..IngressConfig::default()
    }
}

fn deliver(cfg: &IngressConfig, body: &[u8], ts: u64) -> Result<ingress::Accepted, IngressError> {
    let headers = signed_headers(SECRET.as_bytes(), &ts.to_string(), body);
    ingress::handle(
        cfg,
        &Route::SlackEvents,
        IngressRequest { headers: &headers, body, now_ms: NOW * 1000, request_id: "r" },
    )
}

#[test]
fn url_verification_is_answered_with_its_challenge() {
    let body = fixture_text("url_verification.request.json");
    let accepted = deliver(&config(&[]), body.as_bytes(), NOW).unwrap();
    assert_eq!(accepted.status, 200);
    let reply: Value = serde_json::from_str(&accepted.body).unwrap();
    assert_eq!(
        reply,
        fixture("url_verification.accepted_responses.docs.json")["responses"][2]["body"]
            .as_str()
            .map(|b| serde_json::from_str::<Value>(b).unwrap())
            .unwrap()
    );
    assert!(accepted.jobs.is_empty());
}

#[test]
fn a_message_in_an_alert_channel_becomes_one_job_keyed_by_event_id() {
    let body = fixture_text("message_user_code_block.written_from_docs.json");
    let accepted = deliver(&config(&["C0003"]), body.as_bytes(), NOW).unwrap();
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.jobs.len(), 1);
    assert_eq!(accepted.jobs[0].id.as_str(), "slack:Ev0004");
    let JobKind::SlackMessage(job) = &accepted.jobs[0].kind else { panic!("{:?}", accepted.jobs[0].kind) };
    assert_eq!(job.channel, "C0003");
    assert_eq!(job.event.source, Source::Slack, "normalized at the gateway");
    assert_eq!(job.event.exception.as_ref().and_then(|e| e.kind.as_deref()), Some("ZeroDivisionError"));
}

#[test]
fn refusals_and_ignores() {
    let body = fixture_text("message_user_code_block.written_from_docs.json");
    // Not a listed channel, or no channel listed: 200, nothing queued, a reason for the log line.
    let other = deliver(&config(&["C0OTHER"]), body.as_bytes(), NOW).unwrap();
    assert_eq!((other.status, other.jobs.len()), (200, 0));
    assert_eq!(other.note, Some("channel not in SLACK_ALERT_CHANNELS"));
    assert_eq!(deliver(&config(&[]), body.as_bytes(), NOW).unwrap().note, Some("SLACK_ALERT_CHANNELS is not set"));
    // Stale (over 5 minutes old), or signed for other bytes: 401.
    let stale = deliver(&config(&["C0003"]), body.as_bytes(), NOW - 301).unwrap_err();
    assert_eq!((stale.status(), stale), (401, IngressError::Unauthorized(SignatureError::Stale)));
    let headers = signed_headers(b"not the secret", &NOW.to_string(), body.as_bytes());
    let forged = ingress::handle(
        &config(&["C0003"]),
        &Route::SlackEvents,
        IngressRequest { headers: &headers, body: body.as_bytes(), now_ms: NOW * 1000, request_id: "r" },
    );
    assert_eq!(forged.unwrap_err(), IngressError::Unauthorized(SignatureError::Mismatch));
    // Not configured: 503.
    let unconfigured = deliver(&IngressConfig::default(), body.as_bytes(), NOW).unwrap_err();
    assert_eq!(unconfigured.status(), 503);
    // An edit, a thread reply and another event type are not alerts.
    let mut edit: Value = serde_json::from_str(&body).unwrap();
    edit["event"]["subtype"] = "message_changed".into();
    let ignored = deliver(&config(&["C0003"]), edit.to_string().as_bytes(), NOW).unwrap();
    assert_eq!(ignored.note, Some("message subtype is not a post"));
    let mut reply: Value = serde_json::from_str(&body).unwrap();
    reply["event"]["thread_ts"] = "1733499999.000001".into();
    assert_eq!(
        deliver(&config(&["C0003"]), reply.to_string().as_bytes(), NOW).unwrap().note,
        Some("a reply in a thread")
    );
    let mut reaction: Value = serde_json::from_str(&body).unwrap();
    reaction["event"]["type"] = "reaction_added".into();
    assert_eq!(
        deliver(&config(&["C0003"]), reaction.to_string().as_bytes(), NOW).unwrap().note,
        Some("not a message event")
    );
}

fn event_of(path_or_body: &str, channel: &str) -> bugbot_shared::event::ErrorEvent {
    let envelope: slack::Envelope = serde_json::from_str(path_or_body).unwrap();
    slack::to_event(&envelope, channel, NOW * 1000)
}

#[test]
fn a_python_traceback_in_a_code_block() {
    let e = event_of(&fixture_text("message_user_code_block.written_from_docs.json"), "C0003");
    assert_eq!(e.source, Source::Slack);
    assert_eq!(e.title, "deploy of api failed, log:");
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.platform.as_deref(), Some("python"));
    let ex = e.exception.clone().unwrap();
    assert_eq!((ex.kind.as_deref(), ex.value.as_deref()), (Some("ZeroDivisionError"), Some("division by zero")));
    let frames: Vec<_> = e.frames.iter().map(|f| (f.function.as_deref().unwrap(), f.lineno.unwrap())).collect();
    // From the rich-text block, where `<module>` is not escaped.
    assert_eq!(frames, [("<module>", 88), ("main", 41)]);
    assert!(e.frames.iter().all(|f| f.in_app));
    assert_eq!(e.link.as_deref(), Some("https://slack.com/archives/C0003/p1733500000000100"));
    assert_eq!(e.event_id.as_deref(), Some("Ev0004"));
    assert_eq!(e.last_seen_ms, 1_733_500_000_000);
    assert!(e.fingerprint.as_str().starts_with("slack:c0003:h:"), "{}", e.fingerprint);
}

#[test]
fn a_bot_alert_with_a_coloured_attachment_and_blocks() {
    let e = event_of(&fixture_text("event_callback_bot_message_attachments_blocks.written_from_docs.json"), "C0A");
    assert_eq!(e.title, "[ALARM] api-5xx-rate");
    assert_eq!(e.level, Level::Error, "colour `danger`");
    assert_eq!(e.tag("slack_sender"), Some("ops-alerts"));
    assert!(e.frames.is_empty(), "a log line in a code block is no stack trace");
}

#[test]
fn the_docs_bot_message_and_the_captured_deliveries() {
    let e = event_of(&fixture_text("event_callback_bot_message.docs_example.json"), "C1");
    assert_eq!(e.title, "Pushing is the answer");
    assert_eq!(e.level, Level::Warning, "no colour, no level word: warning");
    assert_eq!(e.tag("slack_sender"), Some("github"));

    let circle = event_of(&fixture_text("slackweb_captured/circleci.json"), "C012345678");
    assert_eq!(circle.title, "CircleCI job failed.");
    assert_eq!(circle.level, Level::Error);
    assert_eq!(circle.culprit.as_deref(), Some("Job Failed."), "the header block, emoji code dropped");
    assert_eq!(circle.tag("slack_sender"), Some("CircleCI integration"));
    assert_eq!(circle.tag("alert_url"), Some("https://circleci.com/gh/aaaaaaaaaaaaaaaaaaa/aaaaaaaaaaa/000000"));

    let github = event_of(&fixture_text("slackweb_captured/github_notification.json"), "C07LRFB3C8M");
    assert_eq!(github.title, "#2 test issue 2", "the attachment title, link reduced to its label");
    assert_eq!(github.level, Level::Info, "green attachment");

    let rich = event_of(&fixture_text("slackweb_captured/message_rich_text.json"), "C045V0VJT16");
    assert!(!rich.title.contains('<'), "{}", rich.title);

    for name in ["botMessage", "messageExample", "message_subtype_bot_message", "email_message", "github_with_link"] {
        let e = event_of(&fixture_text(&format!("slackweb_captured/{name}.json")), "C1");
        assert!(!e.title.trim().is_empty(), "{name}");
    }
}

#[test]
fn observed_aws_datadog_and_sentry_alert_posts() {
    let built = fixture("observed_alerts_as_deliveries.built.json");
    let by_name = |name: &str| {
        let d = built["deliveries"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap();
        event_of(&d["body"].to_string(), "C0ALERTS")
    };
    let alarm = by_name("AWS CloudWatch alarm notification");
    assert_eq!(alarm.title, "The alarm productUpdateWebhook-DlqAlarm changed state to ALARM: Threshold Crossed.");
    assert_eq!(alarm.level, Level::Error);
    assert_eq!(alarm.tag("slack_sender"), Some("AWS Alarm notification"));
    let ok = by_name("AWS alarm recovery (should be ignored)");
    assert_eq!(ok.level, Level::Info, "a recovery is below the default MIN_LEVEL");
    let rds = by_name("rich AWS RDS alarm card");
    assert_eq!(rds.level, Level::Fatal);
    let link_form = by_name("AWS alarm (link form)");
    assert!(link_form.tag("alert_url").unwrap().contains("alarmsV2:alarm/productUpdateWebhook-DlqAlarm"));
    // The same alarm in both forms is one problem.
    assert_eq!(link_form.fingerprint, alarm.fingerprint);
    let sentry = by_name("Sentry issue card from the screenshot");
    assert!(sentry.title.starts_with("[demo] SyntaxError"), "{}", sentry.title);
    assert_eq!(sentry.level, Level::Error);
    assert_eq!(by_name("Datadog trigger").level, Level::Error);
}

#[test]
fn fingerprints_mask_numbers_ids_and_hex() {
    let body = |text: &str, ts: &str| {
        serde_json::json!({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message", "channel": "C1",
            "ts": ts, "text": text}})
        .to_string()
    };
    let a = event_of(&body("Job 4411 failed on host ip-10-0-3-17 (request 9f8e7d6c5b4a)", "1.1"), "C1");
    let b = event_of(&body("Job 4412 failed on host ip-10-0-9-200 (request 0a1b2c3d4e5f)", "2.2"), "C1");
    let c = event_of(&body("Job 4411 timed out on host ip-10-0-3-17", "3.3"), "C1");
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_ne!(a.fingerprint, c.fingerprint);
    // Another channel is another problem.
    assert_ne!(
        event_of(&body("Job 4411 failed on host ip-10-0-3-17 (request 9f8e7d6c5b4a)", "1.1"), "C2").fingerprint,
        a.fingerprint
    );
}

#[test]
fn node_java_and_rust_traces_in_code_fences() {
    let body = |code: &str| {
        serde_json::json!({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message", "channel": "C1",
            "ts": "1.1", "text": format!("prod is down\n```{code}```")}})
        .to_string()
    };
    let node = event_of(
        &body(
            "TypeError: Cannot read properties of undefined (reading 'id')\n    at handler (/var/task/index.js:12:18)",
        ),
        "C1",
    );
    assert_eq!((node.platform.as_deref(), node.frames.len()), (Some("node"), 1));
    let java = event_of(&body("java.lang.NullPointerException: cart\n\tat com.acme.Cart.total(Cart.java:42)"), "C1");
    assert_eq!(java.exception.unwrap().kind.as_deref(), Some("NullPointerException"));
    let rust = event_of(&body("thread 'main' panicked at src/main.rs:10:5:\nboom"), "C1");
    assert_eq!(rust.frames[0].filename.as_deref(), Some("src/main.rs"));
    // Escaped `&gt;` in mrkdwn is a `>` again.
    assert_eq!(node.title, "prod is down");
}
