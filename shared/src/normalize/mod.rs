//! Every source into one [`Signal`]: the consumer's first step.
//!
//! Lenient raw structs in (a field of an unexpected type is dropped, never a rejected delivery),
//! strict [`ErrorEvent`]s out. Upstream shapes:
//! - Sentry integration platform: `issue.*` (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/issues/>),
//!   `event_alert.triggered` (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/issue-alerts/>),
//!   `error.created` (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/errors/>),
//!   `metric_alert.*` (<https://docs.sentry.io/organization/integrations/integration-platform/webhooks/metric-alerts/>);
//!   events inside them are Sentry's stored event JSON (<https://develop.sentry.dev/sdk/data-model/event-payloads/>).
//! - Sentry's legacy `WebHooks` plugin (`{id, project, culprit, message, url, level, event}`).
//! - `GlitchTip` alerts, already parsed by [`crate::source::glitchtip`].
//!
//! # Fingerprints
//! The source's own issue id wherever there is one, namespaced so ids of different systems never
//! collide: `sentry:<group id>` (from `data.issue.id`, the event's `issue_id`/`group_id`, or the
//! `/issues/<id>/` in its URLs; the legacy plugin's `id` is the same group id),
//! `glitchtip:<host>:<id>` (from the alert link `.../issues/<id>`), `sentry:metric-rule:<rule id>`,
//! `glitchtip-uptime:<host>:<monitor id>`. Sentry ids carry no host: one bugbot talks to one
//! Sentry, and `issue.*` payloads may carry no URL at all, while the same issue's
//! `event_alert` does. Without an id: a hash of project + normalized title + normalized culprit
//! + the top in-app frame's module/file and function (no line number, so it survives edits).
//!
//! # In-app
//! Sentry's `in_app` is often wrong (its server-side rules flip SDK-set `true` to `false`, see
//! `data.orig_in_app` in the fixtures), so bugbot judges each frame by its path, module and
//! function instead: [`judge_in_app`].

use crate::report::clip;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

use crate::event::{
    ErrorEvent, ExceptionInfo, Fingerprint, Frame, Level, MetricAlert, MetricStatus, Signal, Source, StatusChange,
    UptimeAlert, UptimeState, parse_rfc3339_ms,
};
use crate::job::JobKind;
use crate::source::glitchtip::{GlitchtipIssue, GlitchtipUptime};
use crate::source::sentry::Resource;

/// Frames kept per event (the crash side is kept).
const MAX_FRAMES: usize = 100;
/// Source lines kept before and after the crash line of a frame.
const MAX_CONTEXT_LINES: usize = 5;
const MAX_TAGS: usize = 50;

/// Why a job could not be normalized. All are permanent: retrying the same payload cannot help.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("payload is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{resource} payload has no `{field}`")]
    Missing { resource: &'static str, field: &'static str },
    #[error("unsupported {resource} action `{action}`")]
    UnsupportedAction { resource: String, action: String },
    #[error("Sentry resource `{0}` does not describe an error")]
    NotActionable(String),
    #[error("job kind `{0}` is not an error report")]
    NotAnErrorJob(&'static str),
}

/// Turns one queued job into what it means. `received_at_ms` stands in for times the source
/// does not give.
pub fn normalize(kind: &JobKind, received_at_ms: u64) -> Result<Signal, NormalizeError> {
    match kind {
        JobKind::SentryWebhook(job) => sentry_webhook(&job.resource, &job.action, &job.payload, received_at_ms),
        JobKind::SentryLegacy(job) => sentry_legacy(&job.payload, received_at_ms),
        JobKind::GlitchtipIssue(job) => Ok(Signal::Occurrence(glitchtip_issue(&job.issue, received_at_ms))),
        JobKind::GlitchtipUptime(job) => Ok(Signal::Uptime(glitchtip_uptime(&job.uptime, received_at_ms))),
        JobKind::SlackMessage(crate::job::SlackMessageJob { event, .. })
        | JobKind::CloudwatchGroup(crate::job::CloudwatchGroupJob { event }) => Ok(Signal::Occurrence(event.clone())),
        other => Err(NormalizeError::NotAnErrorJob(other.name())),
    }
}

mod fingerprint;
mod glitchtip;
mod in_app;
mod sentry;
pub(crate) mod url;

pub use self::{
    fingerprint::normalize_message,
    glitchtip::{glitchtip_issue, glitchtip_uptime},
    in_app::judge_in_app,
    sentry::{sentry_legacy, sentry_webhook},
};
#[allow(clippy::wildcard_imports)]
use self::{fingerprint::*, url::*};

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::job::{GlitchtipIssueJob, GlitchtipUptimeJob, SentryLegacyJob, SentryWebhookJob};
    use crate::source::glitchtip::{GlitchtipAlert, GlitchtipItem};

    const RECEIVED: u64 = 1_700_000_000_000;

    fn fixtures(dir: &str) -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(dir);
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    fn snapshot_name(path: &Path) -> String {
        let rel = path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")).unwrap();
        rel.with_extension("").to_string_lossy().replace(['/', '\\'], "__")
    }

    /// The Sentry resource a docs/mocks/zulip fixture was delivered as, from its file name.
    fn sentry_job(path: &Path) -> JobKind {
        let name = path.file_stem().unwrap().to_string_lossy();
        let payload = std::fs::read_to_string(path).unwrap();
        if name.starts_with("webhook_event_") {
            return JobKind::SentryLegacy(SentryLegacyJob { payload, pruned: false });
        }
        let resource = ["event_alert", "metric_alert", "issue", "error", "comment", "installation", "seer"]
            .into_iter()
            .find(|r| name.starts_with(r) || (*r == "event_alert" && name.starts_with("event_for_")))
            .unwrap_or_else(|| panic!("no resource for {name}"));
        let action = serde_json::from_str::<Value>(&payload).unwrap()["action"].as_str().unwrap_or_default().to_owned();
        JobKind::SentryWebhook(SentryWebhookJob {
            resource: Resource::from_header(resource),
            action,
            payload,
            pruned: false,
        })
    }

    /// What a fixture normalizes to, serialized in the types' field order for review.
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Outcome {
        Signal(Box<Signal>),
        Error { error: String },
    }

    /// Also checks that every signal survives a JSON round trip (the consumer may store one).
    fn outcome(result: Result<Signal, NormalizeError>) -> Outcome {
        match result {
            Ok(signal) => {
                let back: Signal = serde_json::from_value(serde_json::to_value(&signal).unwrap()).unwrap();
                assert_eq!(back, signal);
                Outcome::Signal(Box::new(signal))
            }
            Err(e) => Outcome::Error { error: e.to_string() },
        }
    }

    #[test]
    fn every_sentry_fixture() {
        let paths = fixtures("sentry");
        assert!(paths.len() >= 28, "{}", paths.len());
        for path in paths {
            let signal = normalize(&sentry_job(&path), RECEIVED);
            insta::assert_json_snapshot!(snapshot_name(&path), outcome(signal));
        }
    }

    /// `GlitchTip`'s test data: stored Sentry events (`event.as_dict()`), which is what Sentry puts
    /// in `data.event`; wrapped here in an `event_alert.triggered` envelope.
    #[test]
    fn every_stored_event_as_an_event_alert() {
        let paths = fixtures("sentry_events/glitchtip_test_data/oss_sentry_json");
        assert_eq!(paths.len(), 7);
        for path in paths {
            let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let payload = serde_json::json!({
                "action": "triggered",
                "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
                "data": {"event": event, "triggered_rule": "fixture rule"},
                "installation": {"uuid": "00000000-0000-0000-0000-000000000000"},
            })
            .to_string();
            let job = JobKind::SentryWebhook(SentryWebhookJob {
                resource: Resource::EventAlert,
                action: "triggered".into(),
                payload,
                pruned: false,
            });
            insta::assert_json_snapshot!(snapshot_name(&path), outcome(normalize(&job, RECEIVED)));
        }
    }

    #[test]
    fn every_glitchtip_fixture() {
        let paths = fixtures("glitchtip");
        assert!(paths.len() >= 6);
        for path in paths {
            let alert = GlitchtipAlert::parse(&std::fs::read(&path).unwrap()).unwrap();
            let signals: Vec<Outcome> = alert
                .items
                .into_iter()
                .map(|item| match item {
                    GlitchtipItem::Issue(issue) => {
                        JobKind::GlitchtipIssue(GlitchtipIssueJob { issue, alert_headline: alert.headline.clone() })
                    }
                    GlitchtipItem::Uptime(uptime) => JobKind::GlitchtipUptime(GlitchtipUptimeJob { uptime }),
                })
                .map(|job| outcome(normalize(&job, RECEIVED)))
                .collect();
            insta::assert_json_snapshot!(snapshot_name(&path), signals);
        }
    }

    fn sentry(resource: &Resource, action: &str, payload: &Value) -> Result<Signal, NormalizeError> {
        sentry_webhook(resource, action, &payload.to_string(), RECEIVED)
    }

    #[test]
    fn one_issue_one_fingerprint_across_resources() {
        let read = |p: &str| {
            std::fs::read_to_string(format!("{}/../fixtures/sentry/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        };
        let created = normalize(
            &sentry_job(Path::new(&format!(
                "{}/../fixtures/sentry/zulip_captured/issue_created_for_exception.json",
                env!("CARGO_MANIFEST_DIR")
            ))),
            RECEIVED,
        )
        .unwrap();
        let alert = sentry_webhook(
            &Resource::EventAlert,
            "triggered",
            &read("zulip_captured/event_for_exception_python.json"),
            RECEIVED,
        )
        .unwrap();
        assert_eq!(created.fingerprint().as_str(), "sentry:1635244907");
        assert_eq!(alert.fingerprint(), created.fingerprint());

        let mock = |p: &str, r: Resource| {
            let action = serde_json::from_str::<Value>(&read(p)).unwrap()["action"].as_str().unwrap().to_owned();
            sentry_webhook(&r, &action, &read(p), RECEIVED).unwrap()
        };
        let fps: Vec<_> = [
            mock("integration_platform_example_mocks/issue_created.json", Resource::Issue),
            mock("integration_platform_example_mocks/issue_resolved.json", Resource::Issue),
            mock("integration_platform_example_mocks/issue_ignored.json", Resource::Issue),
            mock("integration_platform_example_mocks/issue_assigned.json", Resource::Issue),
            mock("integration_platform_example_mocks/event_alert_triggered.json", Resource::EventAlert),
        ]
        .iter()
        .map(|s| s.fingerprint().clone())
        .collect();
        assert!(fps.iter().all(|f| f.as_str() == "sentry:123"), "{fps:?}");
    }

    #[test]
    fn glitchtip_and_sentry_ids_never_collide() {
        let issue = GlitchtipIssue {
            title: "E".into(),
            link: Some("https://GT.example.com:8443/org/issues/123?x=1".into()),
            culprit: None,
            project: None,
            environment: None,
            release: None,
            server_name: None,
            tags: vec![],
        };
        assert_eq!(glitchtip_issue(&issue, 0).fingerprint.as_str(), "glitchtip:gt.example.com:8443:123");
        assert_eq!(glitchtip_issue(&issue, 0).link.as_deref(), Some("https://GT.example.com:8443/org/issues/123"));
        let no_link = GlitchtipIssue { link: None, ..issue };
        assert!(glitchtip_issue(&no_link, 0).fingerprint.as_str().starts_with("glitchtip:h:"));
    }

    #[test]
    fn hash_fingerprint_ignores_what_varies() {
        let event = |title: &str, line: u32| {
            serde_json::json!({"action":"triggered","data":{"event":{
            "title": title, "culprit": "app.views in get", "platform": "python",
            "exception": {"values": [{"type": "KeyError", "stacktrace": {"frames": [
                {"filename": "app/views.py", "abs_path": "/srv/app/views.py", "module": "app.views", "function": "get", "lineno": line},
                {"filename": "dict.py", "abs_path": "/usr/lib/python3.11/dict.py", "function": "getitem", "lineno": 1}
            ]}}]}}}})
        };
        let fp = |v: &Value| sentry(&Resource::EventAlert, "triggered", v).unwrap().fingerprint().clone();
        let a = fp(&event("KeyError: 'user_1f3a9c2e' missing at 0x7ffe12ab (id 42)", 10));
        let b = fp(&event("KeyError: 'user_99' missing at 0x1 (id 7)", 12));
        let c = fp(&event("KeyError: other thing", 10));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.as_str().starts_with("sentry:h:"));
    }

    #[test]
    fn message_normalization() {
        for (raw, want) in [
            ("Reverse for 'nope' not found. 'nope' is not valid", "reverse for <str> not found. <str> is not valid"),
            ("Error: A Generic Error 9371d7", "error: a generic error <hex>"),
            ("id 550e8400-e29b-41d4-a716-446655440000 gone", "id <uuid> gone"),
            ("timeout after 30s on  host-12\n", "timeout after <n>s on host-<n>"),
            ("Can't find \"x\"", "can't find <str>"),
            ("ptr 0xDEADbeef", "ptr <hex>"),
            ("café 12", "café <n>"),
        ] {
            assert_eq!(normalize_message(raw), want, "{raw}");
        }
    }

    #[test]
    fn in_app_judgement() {
        let judge = |abs: &str, platform: &str| {
            let frame = Frame { abs_path: Some(abs.into()), ..Frame::default() };
            judge_in_app(&frame, Some(platform))
        };
        for app in [
            "/code/errors/views.py",
            "/home/me/proj/trigger-exception.py",
            "webpack://small-js-error-factory/./src/index.ts",
            "https://static.jsbin.com/js/prod/runner-4.1.7.min.js",
            "file:///mnt/data/sentry/js/external.js",
            "app:///dist/server.js",
            "/srv/app/src/main.rs",
            "/home/me/liberty/python-tools/app.py",
        ] {
            let platform = if app.rsplit_once('.').is_some_and(|(_, ext)| ext == "js") { "node" } else { "python" };
            assert!(judge(app, platform), "{app}");
        }
        for lib in [
            "/usr/local/lib/python3.8/site-packages/django/core/handlers/base.py",
            "/usr/lib/python3.11/threading.py",
            "/opt/venv/lib/python3.12/json/decoder.py",
            "C:\\Python38\\Lib\\threading.py",
            "/srv/app/node_modules/express/lib/router/index.js",
            "node:internal/process/task_queues",
            "internal/timers.js",
            "<anonymous>",
            "<frozen importlib._bootstrap>",
            "[native code]",
            "webpack:///webpack/bootstrap",
            "webpack-internal:///./node_modules/react-dom/cjs/react-dom.development.js",
            "/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/panicking.rs",
            "/home/me/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.0.0/src/lib.rs",
            "/usr/local/go/src/net/http/server.go",
            "/home/app/go/pkg/mod/github.com/gin-gonic/gin@v1.9.0/context.go",
            "/app/vendor/laravel/framework/src/Illuminate/Foundation/Application.php",
            "/usr/local/bundle/gems/rack-2.2.3/lib/rack.rb",
            "http://localhost:4201/polyfills.js",
            "http://localhost:4201/vendor.js",
            "https://example.com/_next/static/chunks/framework-2c79e2a64abdb08b.js",
            "chrome-extension://abc/content.js",
        ] {
            assert!(!judge(lib, "python"), "{lib}");
        }
        assert!(!judge("events.js", "node"));
        assert!(judge("trigger-exception.py", "python"));
        let java = |module: &str| {
            let frame = Frame { module: Some(module.into()), filename: Some("X.java".into()), ..Frame::default() };
            judge_in_app(&frame, Some("java"))
        };
        assert!(!java("java.lang.Thread"));
        assert!(!java("org.springframework.web.servlet.DispatcherServlet"));
        assert!(java("com.acme.billing.Invoice"));
        let rust =
            Frame { function: Some("core::panicking::panic".into()), module: Some("core".into()), ..Frame::default() };
        assert!(!judge_in_app(&rust, Some("native")));
        assert!(!judge_in_app(&Frame { function: Some("main".into()), ..Frame::default() }, None));
    }

    #[test]
    fn lenient_about_types_strict_about_shape() {
        // Numbers where strings are expected, strings where numbers are, junk in frames.
        let odd = serde_json::json!({"action":"triggered","data":{"event":{
            "title": 42, "level": "WARN", "issue_id": 77, "timestamp": "2020-01-01T00:00:00Z",
            "tags": {"environment": "prod", "n": 3},
            "exception": [{"type": "E", "stacktrace": {"frames": [{"lineno": "x", "filename": "a.py"}, 7]}}]}}});
        let Ok(Signal::Occurrence(e)) = sentry(&Resource::EventAlert, "triggered", &odd) else { panic!() };
        assert_eq!((e.title.as_str(), e.level, e.fingerprint.as_str()), ("42", Level::Warning, "sentry:77"));
        assert_eq!(e.last_seen_ms, 1_577_836_800_000);
        assert_eq!(e.environment.as_deref(), Some("prod"));
        assert_eq!(e.frames.len(), 2);
        assert_eq!(e.frames[0].lineno, None);

        assert!(matches!(
            sentry(&Resource::Issue, "created", &serde_json::json!({"data":{}})),
            Err(NormalizeError::Missing { .. })
        ));
        assert!(matches!(
            sentry(&Resource::Issue, "exploded", &serde_json::json!({"data":{"issue":{}}})),
            Err(NormalizeError::UnsupportedAction { .. })
        ));
        assert!(matches!(sentry_webhook(&Resource::Issue, "created", "{", 0), Err(NormalizeError::Json(_))));
        assert!(matches!(
            sentry(&Resource::Comment, "created", &serde_json::json!({})),
            Err(NormalizeError::NotActionable(_))
        ));
        assert!(matches!(normalize(&JobKind::Unknown, 0), Err(NormalizeError::NotAnErrorJob("unknown"))));
        assert!(matches!(sentry_legacy("{}", 0), Err(NormalizeError::Missing { .. })));
    }

    #[test]
    fn frames_are_capped_on_the_crash_side() {
        let frames: Vec<Value> =
            (0..150).map(|i| serde_json::json!({"filename": format!("f{i}.py"), "lineno": i})).collect();
        let v = serde_json::json!({"action":"triggered","data":{"event":{"title":"t","exception":{"values":[{"stacktrace":{"frames":frames}}]}}}});
        let Ok(Signal::Occurrence(e)) = sentry(&Resource::EventAlert, "triggered", &v) else { panic!() };
        assert_eq!(e.frames.len(), MAX_FRAMES);
        assert_eq!(e.frames.last().unwrap().lineno, Some(149));
    }

    #[test]
    fn uptime_states() {
        let up = |m: &str| {
            glitchtip_uptime(&GlitchtipUptime { monitor: "M".into(), link: None, message: Some(m.into()) }, 0).state
        };
        assert_eq!(up("The monitored site has gone down."), UptimeState::Down);
        assert_eq!(up("The monitored site is back up."), UptimeState::Up);
        assert_eq!(up("???"), UptimeState::Down);
    }

    #[test]
    fn links_point_at_the_issue_page() {
        assert_eq!(
            issue_page("https://sentry.io/organizations/o/issues/1/events/abc/?q=1").as_deref(),
            Some("https://sentry.io/organizations/o/issues/1/")
        );
        assert_eq!(
            web_from_api_url("https://sentry.io/api/0/organizations/o/issues/9/").as_deref(),
            Some("https://sentry.io/organizations/o/issues/9/")
        );
        assert_eq!(web_from_api_url("https://sentry.io/api/0/issues/9/"), None);
        assert_eq!(clip("héllo", 3), "hé…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
