//! Arbitrary bodies through `ingress::handle` on the Sentry routes, signed inside the target.
//!
//! Input: `<resource header>\n<body>`; no newline means resource `event_alert` and the whole
//! input as the body. A resource line starting with `!` sends the body to the legacy plugin
//! route instead; `^` signs with `Sentry-App-Signature` in uppercase hex. Must never panic; an
//! actionable resource yields exactly one queueable `sentry_webhook` job or a 400/413.
#![no_main]

use std::sync::LazyLock;

use bugbot_fuzz::{FuzzHeaders, NOW_MS, amplify, check_accepted, check_refused};
use bugbot_shared::ingress::{self, IngressConfig, IngressError, IngressRequest, Route};
use bugbot_shared::job::JobKind;
use bugbot_shared::source::sentry::Resource;
use bugbot_shared::verify::hmac_sha256_hex;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-client-secret";
const TOKEN: &str = "fuzz-legacy-token";

static CONFIG: LazyLock<IngressConfig> = LazyLock::new(|| IngressConfig {
    sentry_client_secret: Some(SECRET.to_owned()),
    sentry_legacy_token: Some(TOKEN.to_owned()),
    ..IngressConfig::default()
});

fuzz_target!(|data: &[u8]| {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) if i <= 64 => (String::from_utf8_lossy(&data[..i]).into_owned(), &data[i + 1..]),
        _ => ("event_alert".to_owned(), data),
    };
    let body = amplify(rest);

    if let Some(request_id) = line.strip_prefix('!') {
        let headers = FuzzHeaders::default();
        let request = IngressRequest { headers: &headers, body: &body, now_ms: NOW_MS, request_id };
        let route = Route::SentryLegacy { token: TOKEN.to_owned() };
        match ingress::handle(&CONFIG, &route, request) {
            Ok(accepted) => {
                check_accepted(&accepted);
                assert_eq!(accepted.jobs.len(), 1);
                assert!(matches!(accepted.jobs[0].kind, JobKind::SentryLegacy(_)));
            }
            Err(e) => check_refused(&e),
        }
        return;
    }

    let (resource, app_header) = match line.strip_prefix('^') {
        Some(r) => (r.to_owned(), true),
        None => (line, false),
    };
    let mac = hmac_sha256_hex(SECRET.as_bytes(), &body);
    let headers = if app_header {
        FuzzHeaders::default().with("Sentry-App-Signature", mac.to_uppercase())
    } else {
        FuzzHeaders::default().with("Sentry-Hook-Signature", mac)
    };
    // The Request-ID is taken from the body's first bytes so that hostile ids are tried too.
    let request_id = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
    let headers = headers.with("Sentry-Hook-Resource", resource.as_str()).with("Request-ID", request_id);
    let request = IngressRequest { headers: &headers, body: &body, now_ms: NOW_MS, request_id: "fuzz" };
    let expected = Resource::from_header(&resource);
    match ingress::handle(&CONFIG, &Route::SentryWebhook, request) {
        Ok(accepted) => {
            check_accepted(&accepted);
            if expected.is_actionable() {
                assert_eq!(accepted.status, 202);
                let [job] = accepted.jobs.as_slice() else { panic!("{} jobs", accepted.jobs.len()) };
                let JobKind::SentryWebhook(w) = &job.kind else { panic!("{:?}", job.kind) };
                assert_eq!(w.resource, expected);
                assert!(job.id.as_str().starts_with("sentry:"));
                let payload: serde_json::Value = serde_json::from_str(&w.payload).expect("payload is JSON");
                assert!(payload.is_object());
                if !w.pruned {
                    assert_eq!(w.payload.as_bytes(), &*body, "unpruned payload is the body, byte for byte");
                }
            } else {
                assert_eq!(accepted.status, 200);
                assert!(accepted.jobs.is_empty(), "non-actionable resource {resource:?} enqueued");
            }
        }
        Err(e) => {
            check_refused(&e);
            // The body limit comes first, whatever the resource.
            let too_big = body.len() > CONFIG.max_body_bytes;
            assert!(expected.is_actionable() || too_big, "non-actionable resource refused: {e:?}");
            assert_eq!(too_big, e == IngressError::PayloadTooLarge { limit: CONFIG.max_body_bytes });
        }
    }
});
