//! Sentry HMAC verification on raw bytes, and every Sentry and `GlitchTip` fixture routed through
//! `ingress::handle` to the job it should become (or to an acknowledgement without one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bugbot_shared::ingress::{self, Accepted, Headers, IngressConfig, IngressError, IngressRequest, Route};
use bugbot_shared::job::{self, Job, JobId, JobKind};
use bugbot_shared::source::sentry::Resource;
use bugbot_shared::verify::{SignatureError, hmac_sha256_hex};
use serde_json::{Value, json};

const SECRET: &str = "a3f9c1e2b7d84f6e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";
const LEGACY_TOKEN: &str = "legacy-5f2a9c";
const GLITCHTIP_TOKEN: &str = "gt-77b1e0";
const NOW_MS: u64 = 1_795_305_600_000;

struct TestHeaders(Vec<(String, String)>);

impl Headers for TestHeaders {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

fn config() -> IngressConfig {
    IngressConfig {
        sentry_client_secret: Some(SECRET.to_owned()),
        sentry_legacy_token: Some(LEGACY_TOKEN.to_owned()),
        glitchtip_token: Some(GLITCHTIP_TOKEN.to_owned()),
        ..IngressConfig::default()
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn read(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn handle(
    cfg: &IngressConfig,
    route: &Route,
    headers: Vec<(&str, String)>,
    body: &[u8],
) -> Result<Accepted, IngressError> {
    let headers = TestHeaders(headers.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    ingress::handle(cfg, route, IngressRequest { headers: &headers, body, now_ms: NOW_MS, request_id: "gw-1" })
}

/// Delivers `body` to `/webhooks/sentry` the way Sentry does, signed with `SECRET`.
fn deliver(resource: &str, body: &[u8], request_id: Option<&str>) -> Result<Accepted, IngressError> {
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("Sentry-Hook-Resource", resource.to_owned()),
        ("Sentry-Hook-Timestamp", "1795305599".to_owned()),
        ("Sentry-Hook-Signature", hmac_sha256_hex(SECRET.as_bytes(), body)),
    ];
    if let Some(id) = request_id {
        headers.push(("Request-ID", id.to_owned()));
    }
    let route = ingress::route("POST", "/webhooks/sentry").unwrap();
    handle(&config(), &route, headers, body)
}

fn signed_with(header: &str, signature: String, body: &[u8]) -> Result<Accepted, IngressError> {
    let headers = vec![("Sentry-Hook-Resource", "issue".to_owned()), (header, signature)];
    handle(&config(), &Route::SentryWebhook, headers, body)
}

fn assert_unauthorized(result: Result<Accepted, IngressError>, expected: SignatureError, what: &str) {
    match result {
        Err(e @ IngressError::Unauthorized(reason)) => {
            assert_eq!(reason, expected, "{what}");
            assert_eq!(e.status(), 401, "{what}");
        }
        other => panic!("{what}: expected 401 {expected:?}, got {other:?}"),
    }
}

fn only_job(accepted: &Accepted) -> &Job {
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let [job] = accepted.jobs.as_slice() else { panic!("expected one job, got {}", accepted.jobs.len()) };
    job
}

/// Every accepted job must fit a queue message and read back identically.
fn assert_queueable(job: &Job) {
    let text = job.to_message().unwrap_or_else(|e| panic!("{}: {e}", job.id));
    assert!(text.len() <= job::MAX_JOB_BYTES);
    assert_eq!(Job::from_message(&text).unwrap(), *job, "{} does not round-trip", job.id);
}

// ---------------------------------------------------------------------------------------------
// HMAC over raw bytes

/// Sentry's own serialization: compact and ASCII-escaped.
const ESCAPED: &str =
    r#"{"action":"created","data":{"issue":{"id":"1","title":"Caf\u00e9 \u2014 na\u00efve \ud83d\udc1b"}}}"#;
/// The same document as raw UTF-8.
const RAW_UTF8: &str = r#"{"action":"created","data":{"issue":{"id":"1","title":"Café — naïve 🐛"}}}"#;

#[test]
fn escaped_and_raw_utf8_bodies_verify_on_their_own_bytes() {
    let escaped: Value = serde_json::from_str(ESCAPED).unwrap();
    let raw: Value = serde_json::from_str(RAW_UTF8).unwrap();
    assert_eq!(escaped, raw, "the two bodies mean the same");
    assert!(ESCAPED.is_ascii() && !RAW_UTF8.is_ascii());

    for (what, body) in [("\\u-escaped", ESCAPED), ("raw UTF-8", RAW_UTF8)] {
        let job =
            only_job(&deliver("issue", body.as_bytes(), Some("d1")).unwrap_or_else(|e| panic!("{what}: {e}"))).clone();
        let JobKind::SentryWebhook(w) = &job.kind else { panic!("{what}: {:?}", job.kind) };
        // The payload travels as received: escapes are not decoded, UTF-8 is not escaped.
        assert_eq!(w.payload, body, "{what}");
        assert!(!w.pruned);
        assert_queueable(&job);
    }

    // Either body's signature does not cover the other (a decode-and-re-encode step would break Sentry).
    let escaped_sig = hmac_sha256_hex(SECRET.as_bytes(), ESCAPED.as_bytes());
    assert_unauthorized(
        signed_with("Sentry-Hook-Signature", escaped_sig.clone(), RAW_UTF8.as_bytes()),
        SignatureError::Mismatch,
        "escaped signature on raw body",
    );
    let reserialized = serde_json::to_string(&escaped).unwrap();
    assert_ne!(reserialized, ESCAPED);
    assert_unauthorized(
        signed_with("Sentry-Hook-Signature", escaped_sig, reserialized.as_bytes()),
        SignatureError::Mismatch,
        "re-serialized body",
    );
}

#[test]
fn both_signature_header_names_and_hex_case() {
    let sig = hmac_sha256_hex(SECRET.as_bytes(), ESCAPED.as_bytes());
    assert_eq!(sig, sig.to_lowercase());
    for header in ["Sentry-Hook-Signature", "Sentry-App-Signature", "sentry-app-signature"] {
        assert_eq!(signed_with(header, sig.clone(), ESCAPED.as_bytes()).unwrap().status, 202, "{header}");
        assert_eq!(signed_with(header, sig.to_uppercase(), ESCAPED.as_bytes()).unwrap().status, 202, "{header} upper");
    }
    // When both are present, Sentry-Hook-Signature is the one checked: a right App signature does
    // not rescue a wrong Hook signature.
    let wrong = hmac_sha256_hex(b"other", ESCAPED.as_bytes());
    let headers = vec![
        ("Sentry-Hook-Resource", "issue".to_owned()),
        ("Sentry-Hook-Signature", wrong),
        ("Sentry-App-Signature", sig),
    ];
    assert_unauthorized(
        handle(&config(), &Route::SentryWebhook, headers, ESCAPED.as_bytes()),
        SignatureError::Mismatch,
        "both headers",
    );
}

#[test]
fn wrong_secret_modified_body_and_bad_signatures_are_401() {
    let body = RAW_UTF8.as_bytes();
    let good = hmac_sha256_hex(SECRET.as_bytes(), body);
    let send = |sig: String, body: &[u8]| signed_with("Sentry-Hook-Signature", sig, body);

    assert_unauthorized(send(hmac_sha256_hex(b"not the secret", body), body), SignatureError::Mismatch, "wrong secret");
    let secret_with_newline = format!("{SECRET}\n");
    assert_unauthorized(
        send(hmac_sha256_hex(secret_with_newline.as_bytes(), body), body),
        SignatureError::Mismatch,
        "secret with a trailing newline",
    );

    // Whitespace that a JSON parser would not notice.
    let spaced = RAW_UTF8.replace("\":", "\": ");
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(RAW_UTF8).unwrap()).unwrap();
    let newline = format!("{RAW_UTF8}\n");
    for (what, modified) in [("spaces after colons", spaced), ("pretty-printed", pretty), ("trailing newline", newline)]
    {
        assert_eq!(serde_json::from_str::<Value>(&modified).unwrap(), serde_json::from_str::<Value>(RAW_UTF8).unwrap());
        assert_unauthorized(send(good.clone(), modified.as_bytes()), SignatureError::Mismatch, what);
    }

    let mut flipped = hex::decode(&good).unwrap();
    flipped[31] ^= 0x80;
    assert_unauthorized(send(hex::encode(flipped), body), SignatureError::Mismatch, "flipped bit");
    for (what, bad) in [
        ("truncated", good[..62].to_owned()),
        ("non-hex", format!("{}zz", &good[..62])),
        ("too long", format!("{good}00")),
        ("sha256= prefix", format!("sha256={good}")),
        ("empty", String::new()),
    ] {
        assert_unauthorized(send(bad, body), SignatureError::Malformed, what);
    }
    assert_unauthorized(
        handle(&config(), &Route::SentryWebhook, vec![("Sentry-Hook-Resource", "issue".to_owned())], body),
        SignatureError::Missing,
        "no signature header",
    );

    let unconfigured = IngressConfig::default();
    let err = handle(&unconfigured, &Route::SentryWebhook, vec![("Sentry-Hook-Signature", good)], body).unwrap_err();
    assert_eq!((err.status(), err), (503, IngressError::NotConfigured("SENTRY_CLIENT_SECRET")));
}

// ---------------------------------------------------------------------------------------------
// Every fixture file

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// An integration-platform delivery that becomes one `sentry_webhook` job.
    Job(&'static str, &'static str),
    /// An integration-platform delivery acknowledged (200) without a job.
    Ignored(&'static str),
    /// A legacy `WebHooks` plugin post (token URL).
    Legacy,
    /// A `GlitchTip` alert: this many issue jobs and uptime jobs (0 and 0: acknowledged, no job).
    Glitchtip { issues: usize, uptime: usize },
}

/// What each fixture must become. A new fixture file without an entry here fails
/// `every_fixture_has_an_expectation`.
const EXPECTATIONS: &[(&str, Expect)] = &[
    ("sentry/integration_platform_example_mocks/comment_created.json", Expect::Ignored("comment")),
    ("sentry/integration_platform_example_mocks/comment_deleted.json", Expect::Ignored("comment")),
    ("sentry/integration_platform_example_mocks/comment_updated.json", Expect::Ignored("comment")),
    ("sentry/integration_platform_example_mocks/event_alert_triggered.json", Expect::Job("event_alert", "triggered")),
    (
        "sentry/integration_platform_example_mocks/event_alert_triggered__with_alert_rule_action.json",
        Expect::Job("event_alert", "triggered"),
    ),
    ("sentry/integration_platform_example_mocks/installation_created.json", Expect::Ignored("installation")),
    ("sentry/integration_platform_example_mocks/installation_deleted.json", Expect::Ignored("installation")),
    ("sentry/integration_platform_example_mocks/issue_assigned.json", Expect::Job("issue", "assigned")),
    ("sentry/integration_platform_example_mocks/issue_created.json", Expect::Job("issue", "created")),
    ("sentry/integration_platform_example_mocks/issue_ignored.json", Expect::Job("issue", "ignored")),
    ("sentry/integration_platform_example_mocks/issue_resolved.json", Expect::Job("issue", "resolved")),
    ("sentry/integration_platform_example_mocks/metric_alert_critical.json", Expect::Job("metric_alert", "critical")),
    (
        "sentry/integration_platform_example_mocks/metric_alert_critical__with_alert_rule_action.json",
        Expect::Job("metric_alert", "critical"),
    ),
    ("sentry/integration_platform_example_mocks/metric_alert_resolved.json", Expect::Job("metric_alert", "resolved")),
    ("sentry/integration_platform_example_mocks/metric_alert_warning.json", Expect::Job("metric_alert", "warning")),
    (
        "sentry/integration_platform_example_mocks/metric_alert_warning__with_alert_rule_action.json",
        Expect::Job("metric_alert", "warning"),
    ),
    ("sentry/sentry_docs_payloads/comment_created.json", Expect::Ignored("comment")),
    ("sentry/sentry_docs_payloads/error_created.json", Expect::Job("error", "created")),
    ("sentry/sentry_docs_payloads/event_alert_triggered.json", Expect::Job("event_alert", "triggered")),
    ("sentry/sentry_docs_payloads/installation_created.json", Expect::Ignored("installation")),
    ("sentry/sentry_docs_payloads/issue_created.json", Expect::Job("issue", "created")),
    ("sentry/sentry_docs_payloads/metric_alert_resolved.json", Expect::Job("metric_alert", "resolved")),
    ("sentry/sentry_docs_payloads/seer_pr_created.json", Expect::Ignored("seer")),
    ("sentry/sentry_docs_payloads/seer_root_cause_completed.json", Expect::Ignored("seer")),
    // Captured from sentry.io by Zulip: the file names do not carry the resource header.
    ("sentry/zulip_captured/event_for_exception_js.json", Expect::Job("event_alert", "triggered")),
    ("sentry/zulip_captured/event_for_exception_python.json", Expect::Job("event_alert", "triggered")),
    ("sentry/zulip_captured/issue_created_for_exception.json", Expect::Job("issue", "created")),
    ("sentry/zulip_captured/webhook_event_for_exception_python.json", Expect::Legacy),
    ("glitchtip/current_format_discord_webhook_issue.json", Expect::Glitchtip { issues: 1, uptime: 0 }),
    ("glitchtip/current_format_general_webhook_issue.json", Expect::Glitchtip { issues: 1, uptime: 0 }),
    (
        "glitchtip/current_format_general_webhook_test_notification_no_issues.json",
        Expect::Glitchtip { issues: 0, uptime: 0 },
    ),
    ("glitchtip/current_format_general_webhook_uptime_down.json", Expect::Glitchtip { issues: 0, uptime: 1 }),
    (
        "glitchtip/generated_2022_code_multiple_issues_count_5_showing_2.json",
        Expect::Glitchtip { issues: 2, uptime: 0 },
    ),
    ("glitchtip/generated_2022_code_single_issue.json", Expect::Glitchtip { issues: 1, uptime: 0 }),
];

fn json_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn every_fixture_has_an_expectation() {
    let root = fixtures_dir();
    let mut files = Vec::new();
    json_files_under(&root.join("sentry"), &mut files);
    json_files_under(&root.join("glitchtip"), &mut files);
    let on_disk: Vec<String> =
        files.iter().map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/")).collect();
    let table: BTreeMap<&str, Expect> = EXPECTATIONS.iter().copied().collect();
    assert_eq!(table.len(), EXPECTATIONS.len(), "duplicate entries in EXPECTATIONS");

    let missing: Vec<&String> = on_disk.iter().filter(|f| !table.contains_key(f.as_str())).collect();
    assert!(missing.is_empty(), "fixtures without an expectation (add them to EXPECTATIONS): {missing:#?}");
    let stale: Vec<&&str> = table.keys().filter(|k| !on_disk.iter().any(|f| f == *k)).collect();
    assert!(stale.is_empty(), "EXPECTATIONS entries without a fixture file: {stale:#?}");
    assert_eq!(on_disk.len(), 34);
}

#[test]
fn every_fixture_routes_to_the_right_job() {
    let (mut jobs, mut ignored) = (0, 0);
    for &(rel, expect) in EXPECTATIONS {
        let body = read(rel);
        match expect {
            Expect::Job(resource, action) => {
                let request_id = format!("{:032x}", rel.len() * 7919);
                let accepted = deliver(resource, &body, Some(&request_id)).unwrap_or_else(|e| panic!("{rel}: {e}"));
                let job = only_job(&accepted);
                let JobKind::SentryWebhook(w) = &job.kind else { panic!("{rel}: {:?}", job.kind) };
                assert_eq!(w.resource, Resource::from_header(resource), "{rel}");
                assert_eq!(w.resource.as_str(), resource, "{rel}");
                assert_eq!(w.action, action, "{rel}");
                assert_eq!(w.payload.as_bytes(), body.as_slice(), "{rel}: payload altered");
                assert!(!w.pruned, "{rel}");
                let mac = hex::decode(hmac_sha256_hex(SECRET.as_bytes(), &body)).unwrap();
                let id_from_body = JobId::hashed("sentry", &bugbot_shared::verify::sha256_hex(&mac), 0);
                assert_eq!(job.id, id_from_body, "{rel}: id from the signed body, not the Request-ID");
                assert_eq!(job.request_id.as_deref(), Some("gw-1"));
                assert_eq!(job.received_at_ms, NOW_MS);
                let reply: Value = serde_json::from_str(&accepted.body).unwrap();
                assert_eq!(reply, json!({"ok": true, "jobs": [job.id.as_str()]}), "{rel}");
                assert_queueable(job);
                jobs += 1;
            }
            Expect::Ignored(resource) => {
                let accepted = deliver(resource, &body, Some("x")).unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert_eq!(accepted.status, 200, "{rel}");
                assert!(accepted.jobs.is_empty(), "{rel}");
                assert_eq!(accepted.note, Some("resource not actionable"), "{rel}");
                ignored += 1;
            }
            Expect::Legacy => {
                let route = ingress::route("POST", &format!("/webhooks/sentry/{LEGACY_TOKEN}")).unwrap();
                assert_eq!(route, Route::SentryLegacy { token: LEGACY_TOKEN.to_owned() });
                let accepted = handle(&config(), &route, vec![], &body).unwrap_or_else(|e| panic!("{rel}: {e}"));
                let job = only_job(&accepted);
                let JobKind::SentryLegacy(l) = &job.kind else { panic!("{rel}: {:?}", job.kind) };
                assert_eq!(l.payload.as_bytes(), body.as_slice(), "{rel}");
                assert!(job.id.as_str().starts_with("sentry-legacy:"), "{}", job.id);
                assert_queueable(job);
                // Same body, same id: a redelivery is deduplicated downstream.
                let again = handle(&config(), &route, vec![], &body).unwrap();
                assert_eq!(again.jobs[0].id, job.id);
                jobs += 1;
            }
            Expect::Glitchtip { issues, uptime } => {
                let route = ingress::route("POST", &format!("/webhooks/glitchtip/{GLITCHTIP_TOKEN}")).unwrap();
                let accepted = handle(&config(), &route, vec![], &body).unwrap_or_else(|e| panic!("{rel}: {e}"));
                let kinds: Vec<&str> = accepted.jobs.iter().map(|j| j.kind.name()).collect();
                let count = |k: &str| kinds.iter().filter(|n| **n == k).count();
                assert_eq!(
                    (count("glitchtip_issue"), count("glitchtip_uptime"), kinds.len()),
                    (issues, uptime, issues + uptime),
                    "{rel}: {kinds:?}"
                );
                if issues + uptime == 0 {
                    assert_eq!((accepted.status, accepted.note), (200, Some("no issues in alert")), "{rel}");
                    ignored += 1;
                } else {
                    assert_eq!(accepted.status, 202, "{rel}");
                }
                let mut ids: Vec<&str> = accepted.jobs.iter().map(|j| j.id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), accepted.jobs.len(), "{rel}: job ids collide");
                accepted.jobs.iter().for_each(assert_queueable);
                jobs += accepted.jobs.len();
            }
        }
    }
    assert_eq!((jobs, ignored), (25, 10), "jobs, acknowledged without a job");
}

#[test]
fn sentry_job_ids_come_from_the_signed_body() {
    let body = read("sentry/sentry_docs_payloads/issue_created.json");
    let id = |request_id: Option<&str>| only_job(&deliver("issue", &body, request_id).unwrap()).id.clone();
    let first = id(Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8"));
    assert!(first.as_str().starts_with("sentry:"), "{first}");
    assert_eq!(id(Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8")), first, "a retry keeps its id");
    // A captured delivery replayed under a new (unsigned) Request-ID is the same job: the consumer's
    // delivery claim drops it.
    assert_eq!(id(Some("another-delivery")), first, "a replay keeps its id");
    assert_eq!(id(None), first);
    assert_eq!(id(Some("  ")), first);
    // Hostile Request-ID values do not reach the id at all.
    assert_eq!(id(Some(&format!("../../{}\n\u{0}é", "a".repeat(500)))), first);
    assert!(first.as_str().bytes().all(|b| b.is_ascii_graphic()), "{first}");
    // A different body is a different job, and the id never shows the signature header.
    let other = read("sentry/sentry_docs_payloads/error_created.json");
    let other_id = only_job(&deliver("issue", &other, Some("x")).unwrap()).id.clone();
    assert_ne!(other_id, first);
    let signature = hmac_sha256_hex(SECRET.as_bytes(), &body);
    assert!(!first.as_str().contains(&signature[..16]), "{first}");
}

/// Delivers `body` with a given `Sentry-Hook-Timestamp` (or none).
fn deliver_at(body: &[u8], timestamp: Option<&str>, window_secs: u64) -> Result<Accepted, IngressError> {
    let mut headers = vec![
        ("Sentry-Hook-Resource", "issue".to_owned()),
        ("Sentry-Hook-Signature", hmac_sha256_hex(SECRET.as_bytes(), body)),
    ];
    if let Some(t) = timestamp {
        headers.push(("Sentry-Hook-Timestamp", t.to_owned()));
    }
    handle(&IngressConfig { dedupe_window_secs: window_secs, ..config() }, &Route::SentryWebhook, headers, body)
}

#[test]
fn a_sentry_delivery_older_than_the_dedupe_window_is_refused() {
    let body = read("sentry/sentry_docs_payloads/issue_created.json");
    let now = NOW_MS / 1000;
    let at = |secs: u64| secs.to_string();
    // Within the window (default 600 s), either side of our clock: accepted.
    for t in [at(now), at(now - 600), at(now + 600), format!("{}.5", now - 10)] {
        assert_eq!(deliver_at(&body, Some(&t), 600).unwrap().status, 202, "{t}");
    }
    // Older (a captured delivery replayed with its headers), or far ahead: 401 with a short reason.
    for t in [at(now - 601), at(now - 86_400), at(now + 601)] {
        assert_unauthorized(deliver_at(&body, Some(&t), 600), SignatureError::Stale, &t);
    }
    let err = deliver_at(&body, Some(&at(now - 601)), 600).unwrap_err();
    assert_eq!(err.to_string(), "timestamp is outside the replay window");
    // Not a time: 400. Absent (Sentry's older deliveries, the legacy plugin): the body-hash id decides.
    bad_request(deliver_at(&body, Some("yesterday"), 600), "Sentry-Hook-Timestamp", "word");
    bad_request(deliver_at(&body, Some("-5"), 600), "Sentry-Hook-Timestamp", "negative");
    assert_eq!(deliver_at(&body, None, 600).unwrap().status, 202);
    // A window of 0 turns the check off; a bad signature is refused before the timestamp is looked at.
    assert_eq!(deliver_at(&body, Some(&at(0)), 0).unwrap().status, 202);
    let unsigned = handle(
        &config(),
        &Route::SentryWebhook,
        vec![
            ("Sentry-Hook-Resource", "issue".to_owned()),
            ("Sentry-Hook-Signature", "00".repeat(32)),
            ("Sentry-Hook-Timestamp", at(0)),
        ],
        &body,
    );
    assert_unauthorized(unsigned, SignatureError::Mismatch, "unsigned and stale");
}

#[test]
fn glitchtip_jobs_carry_the_alert() {
    let body = read("glitchtip/generated_2022_code_multiple_issues_count_5_showing_2.json");
    let route = Route::Glitchtip { token: GLITCHTIP_TOKEN.to_owned() };
    let accepted = handle(&config(), &route, vec![], &body).unwrap();
    for job in &accepted.jobs {
        let JobKind::GlitchtipIssue(g) = &job.kind else { panic!("{:?}", job.kind) };
        assert_eq!(g.alert_headline, "GlitchTip Alert (5 issues)");
        assert!(g.issue.link.as_deref().unwrap().contains("/issues/"), "{:?}", g.issue.link);
    }
    let again = handle(&config(), &route, vec![], &body).unwrap();
    assert_eq!(again.jobs, accepted.jobs, "redelivery maps to the same ids");

    let body = read("glitchtip/current_format_general_webhook_uptime_down.json");
    let accepted = handle(&config(), &route, vec![], &body).unwrap();
    let JobKind::GlitchtipUptime(u) = &accepted.jobs[0].kind else { panic!("{:?}", accepted.jobs) };
    assert_eq!(u.uptime.monitor, "Example Monitor");
}

#[test]
fn token_routes_refuse_wrong_or_unconfigured_tokens() {
    let legacy = read("sentry/zulip_captured/webhook_event_for_exception_python.json");
    let glitch = read("glitchtip/current_format_general_webhook_issue.json");
    for (route, body, name) in [
        (Route::SentryLegacy { token: "legacy-5f2a9".into() }, &legacy, "SENTRY_LEGACY_WEBHOOK_TOKEN"),
        (Route::Glitchtip { token: format!("{GLITCHTIP_TOKEN}x") }, &glitch, "GLITCHTIP_WEBHOOK_TOKEN"),
    ] {
        let err = handle(&config(), &route, vec![], body).unwrap_err();
        assert_eq!((err.status(), &err), (401, &IngressError::BadToken), "{route:?}");
        let err = handle(&IngressConfig::default(), &route, vec![], body).unwrap_err();
        assert_eq!((err.status(), err), (503, IngressError::NotConfigured(name)));
    }
    // Tokens do not cross routes.
    let err = handle(&config(), &Route::Glitchtip { token: LEGACY_TOKEN.into() }, vec![], &glitch).unwrap_err();
    assert_eq!(err, IngressError::BadToken);
}

// ---------------------------------------------------------------------------------------------
// Malformed and oversized deliveries

fn bad_request(result: Result<Accepted, IngressError>, needle: &str, what: &str) {
    match result {
        Err(e @ IngressError::BadRequest(_)) => {
            assert_eq!(e.status(), 400, "{what}");
            let reason = e.to_string();
            assert!(reason.contains(needle), "{what}: {reason:?} does not mention {needle:?}");
            let body: Value = serde_json::from_str(&e.body()).unwrap();
            assert_eq!(body["error"], reason.as_str());
        }
        other => panic!("{what}: expected 400, got {other:?}"),
    }
}

#[test]
fn signed_but_malformed_bodies_are_400_with_a_reason() {
    bad_request(deliver("issue", br#"{"action":"created","data":"#, None), "not valid JSON", "truncated JSON");
    bad_request(deliver("event_alert", b"action=triggered", None), "not valid JSON", "form body");
    bad_request(deliver("issue", b"[1,2]", None), "not valid JSON", "array");
    bad_request(deliver("issue", br#"{"action":"created"}"#, None), "no `data`", "no data");
    bad_request(deliver("issue", br#"{"action":"created","data":null}"#, None), "no `data`", "null data");
    bad_request(deliver("issue", br#"{"action":7,"data":{}}"#, None), "not valid JSON", "numeric action");
    bad_request(deliver("issue", b"{\"action\":\"\xff\",\"data\":{}}", None), "not valid JSON", "invalid UTF-8");

    let body = read("sentry/sentry_docs_payloads/issue_created.json");
    let headers = vec![("Sentry-Hook-Signature", hmac_sha256_hex(SECRET.as_bytes(), &body))];
    bad_request(handle(&config(), &Route::SentryWebhook, headers, &body), "Sentry-Hook-Resource", "no resource");

    // An integration-platform body on the legacy route, and non-alerts on the GlitchTip route.
    let legacy = Route::SentryLegacy { token: LEGACY_TOKEN.into() };
    bad_request(handle(&config(), &legacy, vec![], &body), "WebHooks plugin", "envelope on legacy route");
    bad_request(handle(&config(), &legacy, vec![], br#"{"id":""}"#), "no issue `id`", "empty legacy id");
    bad_request(handle(&config(), &legacy, vec![], br#"{"id":null}"#), "no issue `id`", "null legacy id");
    let glitch = Route::Glitchtip { token: GLITCHTIP_TOKEN.into() };
    bad_request(handle(&config(), &glitch, vec![], b"{}"), "neither", "empty object");
    bad_request(handle(&config(), &glitch, vec![], b"not json"), "not valid JSON", "not JSON");
}

#[test]
fn empty_bodies() {
    // Sentry sends some requests with an empty (signed) body: fine for resources we ignore…
    for resource in ["installation", "comment", "seer", "some_future_resource"] {
        let accepted = deliver(resource, b"", Some("e")).unwrap_or_else(|e| panic!("{resource}: {e}"));
        assert_eq!((accepted.status, accepted.jobs.len()), (200, 0), "{resource}");
    }
    // …but a request to act needs a body.
    for resource in ["issue", "event_alert", "error", "metric_alert"] {
        bad_request(deliver(resource, b"", Some("e")), "empty body", resource);
    }
}

#[test]
fn bodies_over_the_limit_are_413_before_anything_else() {
    let limit = ingress::DEFAULT_MAX_BODY_BYTES;
    let huge = format!("{{\"action\":\"created\",\"data\":{{\"x\":\"{}\"}}}}", "a".repeat(limit));
    assert!(huge.len() > limit);
    let err = deliver("issue", huge.as_bytes(), None).unwrap_err();
    assert_eq!((err.status(), &err), (413, &IngressError::PayloadTooLarge { limit }));
    // Size is checked before authentication, so an unsigned flood costs no HMAC.
    let headers = vec![("Sentry-Hook-Resource", "issue".to_owned())];
    assert_eq!(handle(&config(), &Route::SentryWebhook, headers, huge.as_bytes()).unwrap_err().status(), 413);
    let glitch = Route::Glitchtip { token: GLITCHTIP_TOKEN.into() };
    assert_eq!(handle(&config(), &glitch, vec![], huge.as_bytes()).unwrap_err().status(), 413);

    // Exactly at the limit is accepted (and, not being prunable, refused as too large for a job).
    let mut at_limit = huge.into_bytes();
    at_limit.truncate(limit - 3);
    at_limit.extend_from_slice(b"\"}}");
    assert_eq!(at_limit.len(), limit);
    let err = deliver("issue", &at_limit, None).unwrap_err();
    assert_eq!(err, IngressError::PayloadTooLarge { limit: job::MAX_JOB_BYTES });
}

/// A real event-alert body, inflated to ~200 KB with the bulky fields Sentry does send
/// (breadcrumbs, frame variables, surrounding source lines).
fn inflated_event_alert(target: usize) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&read("sentry/sentry_docs_payloads/event_alert_triggered.json")).unwrap();
    let event = &mut v["data"]["event"];
    let crumb = |i: usize| json!({"category": "http", "message": format!("GET /api/{i} é 🐛 {}", "x".repeat(200))});
    let mut crumbs = Vec::new();
    let mut i = 0;
    while serde_json::to_vec(&crumbs).unwrap().len() < target * 3 / 4 {
        crumbs.push(crumb(i));
        i += 1;
    }
    event["breadcrumbs"] = json!({"values": crumbs});
    let frames = event["exception"]["values"][0]["stacktrace"]["frames"].as_array_mut().unwrap();
    for frame in frames.iter_mut() {
        frame["vars"] = json!({"payload": "v".repeat(4_000)});
        frame["pre_context"] = json!(["p".repeat(1_000)]);
    }
    let mut body = serde_json::to_vec(&v).unwrap();
    while body.len() < target {
        event_padding(&mut v, target - body.len());
        body = serde_json::to_vec(&v).unwrap();
    }
    body
}

fn event_padding(v: &mut Value, n: usize) {
    let extra = v["data"]["event"]["extra"].as_object_mut().map_or(0, |m| m.len());
    if v["data"]["event"]["extra"].is_null() {
        v["data"]["event"]["extra"] = json!({});
    }
    v["data"]["event"]["extra"][format!("pad{extra}")] = json!("e".repeat(n));
}

#[test]
fn a_200_kb_event_is_pruned_to_fit_a_queue_message() {
    let body = inflated_event_alert(200 * 1024);
    assert!(body.len() >= 200 * 1024 && body.len() < ingress::DEFAULT_MAX_BODY_BYTES, "{}", body.len());
    let original: Value = serde_json::from_slice(&body).unwrap();

    let accepted = deliver("event_alert", &body, Some("big-1")).unwrap();
    let job = only_job(&accepted);
    let text = job.to_message().expect("a pruned job fits a queue message");
    assert!(text.len() <= job::MAX_JOB_BYTES, "{} bytes", text.len());
    assert_eq!(Job::from_message(&text).unwrap(), *job);

    let JobKind::SentryWebhook(w) = &job.kind else { panic!("{:?}", job.kind) };
    assert!(w.pruned);
    let pruned: Value = serde_json::from_str(&w.payload).unwrap();
    let (before, after) = (&original["data"]["event"], &pruned["data"]["event"]);
    // What a fix needs survives: title, culprit, the rule, the frames with their lines.
    assert_eq!(after["title"], before["title"]);
    assert_eq!(after["culprit"], before["culprit"]);
    assert_eq!(pruned["data"]["triggered_rule"], original["data"]["triggered_rule"]);
    assert_eq!(pruned["action"], "triggered");
    let frames = |e: &Value| e["exception"]["values"][0]["stacktrace"]["frames"].as_array().unwrap().clone();
    assert_eq!(frames(after).len(), frames(before).len());
    for (a, b) in frames(after).iter().zip(frames(before).iter()) {
        assert_eq!((&a["filename"], &a["lineno"], &a["function"]), (&b["filename"], &b["lineno"], &b["function"]));
        assert_eq!(a["context_line"], b["context_line"]);
        // Pruning is staged: dropping breadcrumbs was enough, so frame variables stay.
        assert_eq!(a["vars"], b["vars"]);
    }
    assert!(after.get("breadcrumbs").is_none(), "breadcrumbs pruned");
}

#[test]
fn huge_frame_variables_are_pruned_in_a_later_stage() {
    let mut v: Value = serde_json::from_slice(&read("sentry/zulip_captured/event_for_exception_python.json")).unwrap();
    let frames = v["data"]["event"]["exception"]["values"][0]["stacktrace"]["frames"].as_array_mut().unwrap();
    let n = frames.len();
    for frame in frames.iter_mut() {
        frame["vars"] = json!({"blob": "\u{e9}".repeat(160 * 1024 / n / 2)});
    }
    let body = serde_json::to_vec(&v).unwrap();
    assert!(body.len() > job::MAX_JOB_BYTES, "{}", body.len());

    let accepted = deliver("event_alert", &body, Some("big-2")).unwrap();
    let job = only_job(&accepted);
    assert!(job.to_message().unwrap().len() <= job::MAX_JOB_BYTES);
    let JobKind::SentryWebhook(w) = &job.kind else { panic!("{:?}", job.kind) };
    assert!(w.pruned);
    let pruned: Value = serde_json::from_str(&w.payload).unwrap();
    let frames = pruned["data"]["event"]["exception"]["values"][0]["stacktrace"]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), n);
    assert!(frames.iter().all(|f| f.get("vars").is_none() && f["lineno"].is_u64()), "{frames:?}");
}

/// Regression: the payload travels as a JSON *string* inside the job, so every `"` and `\` of the
/// body is escaped once more. A ~110 KB Sentry body (compact, ASCII-escaped, quote-dense) used to
/// pass the raw-size check unpruned and then fail `to_message()` (the gateway answered 503 and
/// Sentry retried the poison delivery forever).
#[test]
fn a_body_that_fits_only_before_escaping_is_pruned() {
    let mut v: Value = serde_json::from_slice(&read("sentry/sentry_docs_payloads/event_alert_triggered.json")).unwrap();
    let crumb = |i: usize| json!({"type": "http", "category": "xhr", "data": {"url": format!("/api/{i}"), "method": "GET", "status_code": 200}, "message": "caf\u{e9}", "level": "info"});
    let mut crumbs = Vec::new();
    while serde_json::to_vec(&v).unwrap().len() < 110 * 1024 {
        crumbs.push(crumb(crumbs.len()));
        v["data"]["event"]["breadcrumbs"] = json!({"values": crumbs});
    }
    // Sentry's serialization is ASCII-only: non-ASCII goes out as \uXXXX.
    let body: String = serde_json::to_string(&v)
        .unwrap()
        .chars()
        .map(|c| if c.is_ascii() { c.to_string() } else { format!("\\u{:04x}", u32::from(c)) })
        .collect();
    assert!(body.is_ascii());
    let escaped = serde_json::to_string(&body).unwrap().len();
    assert!(body.len() < job::MAX_JOB_BYTES - 4 * 1024 && escaped > job::MAX_JOB_BYTES, "{} / {escaped}", body.len());

    let accepted = deliver("event_alert", body.as_bytes(), Some("dense-1")).unwrap();
    let job = only_job(&accepted);
    assert_queueable(job);
    let JobKind::SentryWebhook(w) = &job.kind else { panic!("{:?}", job.kind) };
    assert!(w.pruned);
    let pruned: Value = serde_json::from_str(&w.payload).unwrap();
    assert_eq!(pruned["data"]["event"]["title"], v["data"]["event"]["title"]);

    // Nothing to prune: refused as too large (413, not retried), never accepted unqueueable.
    let dense = format!("{{\"action\":\"created\",\"data\":{{\"q\":\"{}\"}}}}", "\\\"".repeat(40 * 1024));
    assert!(dense.len() < job::MAX_JOB_BYTES - 4 * 1024);
    let err = deliver("issue", dense.as_bytes(), None).unwrap_err();
    assert_eq!((err.status(), err), (413, IngressError::PayloadTooLarge { limit: job::MAX_JOB_BYTES }));
}

/// Regression: a delivery whose job cannot be queued used to be accepted, and the gateway then
/// failed at `send` with a 503 that the sender retries forever. It is refused at ingress (413).
#[test]
fn deliveries_whose_job_cannot_be_queued_are_413() {
    let too_large = IngressError::PayloadTooLarge { limit: job::MAX_JOB_BYTES };
    // A Sentry `action` is copied next to the payload, so a long one doubles the job.
    let action = "a".repeat(70 * 1024);
    let body = format!(r#"{{"action":"{action}","data":{{}}}}"#);
    let err = deliver("issue", body.as_bytes(), Some("long-action")).unwrap_err();
    assert_eq!((err.status(), err), (413, too_large.clone()));

    // GlitchTip items are not pruned: one huge title, or many big items, cannot be queued.
    let glitch = Route::Glitchtip { token: GLITCHTIP_TOKEN.into() };
    let title = "t".repeat(130 * 1024);
    let body = format!(r#"{{"text":"GlitchTip Alert","attachments":[{{"title":"{title}"}}]}}"#);
    let err = handle(&config(), &glitch, vec![], body.as_bytes()).unwrap_err();
    assert_eq!((err.status(), err), (413, too_large));

    // Up to the limit, both are still accepted and queueable.
    let title = "t".repeat(100 * 1024);
    let body = format!(r#"{{"text":"GlitchTip Alert","attachments":[{{"title":"{title}"}}]}}"#);
    assert_queueable(only_job(&handle(&config(), &glitch, vec![], body.as_bytes()).unwrap()));
}
