//! Arbitrary bodies through `ingress::handle` on the `GlitchTip` route (token valid). Must never
//! panic; each reported issue becomes one queueable job, and an alert without any is
//! acknowledged (200) without a job.
#![no_main]

use std::sync::LazyLock;

use bugbot_fuzz::{FuzzHeaders, NOW_MS, amplify, check_accepted, check_refused};
use bugbot_shared::ingress::{self, IngressConfig, IngressRequest, Route};
use bugbot_shared::job::JobKind;
use bugbot_shared::source::glitchtip::GlitchtipAlert;
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "fuzz-glitchtip-token";

static CONFIG: LazyLock<IngressConfig> =
    LazyLock::new(|| IngressConfig { glitchtip_token: Some(TOKEN.to_owned()), ..IngressConfig::default() });

fuzz_target!(|data: &[u8]| {
    let body = amplify(data);
    let headers = FuzzHeaders::default();
    let request = IngressRequest { headers: &headers, body: &body, now_ms: NOW_MS, request_id: "fuzz" };
    let route = Route::Glitchtip { token: TOKEN.to_owned() };
    match ingress::handle(&CONFIG, &route, request) {
        Ok(accepted) => {
            check_accepted(&accepted);
            let parsed = GlitchtipAlert::parse(&body).expect("accepted bodies parse");
            assert_eq!(accepted.jobs.len(), parsed.items.len());
            assert_eq!(accepted.status, if accepted.jobs.is_empty() { 200 } else { 202 });
            for job in &accepted.jobs {
                match &job.kind {
                    JobKind::GlitchtipIssue(j) => assert!(!j.issue.title.trim().is_empty()),
                    JobKind::GlitchtipUptime(j) => assert!(!j.uptime.monitor.trim().is_empty()),
                    other => panic!("{other:?}"),
                }
            }
        }
        Err(e) => check_refused(&e),
    }
});
