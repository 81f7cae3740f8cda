//! Issue 17, `CloudWatch` Logs scans: the consumer's AWS Signature Version 4 (the `aws-sigv4` crate)
//! checked by the fake's independent implementation (itself checked against AWS's test suite), the
//! grouping of real Lambda log events, and scans end to end through the real Workers: `POST
//! /admin/trigger-scan`, `nextToken` followed, issues filed, and a failed scan repeated without a gap
//! or a repeat.

use std::time::Duration;

use bugbot_consumer::clients::http::HttpPort as _;
use bugbot_consumer::handlers::cloudwatch::ScanConfig;
use bugbot_e2e::fake::cloudwatch::sigv4;
use bugbot_e2e::fake::{Failure, FakeCloudWatchLogs, ReqwestPort};
use bugbot_e2e::keys::random_hex;
use bugbot_e2e::stack::{Stack, StackOptions};
use bugbot_e2e::wait::PATIENCE;
use bugbot_e2e::workers::fixture;
use bugbot_shared::cloudwatch::{self as cw, FilterLogEventsResponse};
use serde_json::{Value, json};

const SETTLE: Duration = PATIENCE;
const REGION: &str = "eu-west-1";
const GROUP: &str = "/aws/lambda/shop-orders";

fn json_fixture(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}

#[test]
fn the_independent_verifier_reproduces_the_aws_test_suite() {
    let suite = json_fixture("aws/sigv4/aws_sig_v4_test_suite.bundle.json");
    let secret =
        suite["credentials"]["secret_access_key"].as_str().unwrap_or("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let defects: Vec<String> = suite["known_defects"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .or_else(|| {
            suite["known_defects"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        })
        .unwrap_or_default();
    let mut checked = 0;
    for (name, case) in suite["cases"].as_object().unwrap() {
        if defects.iter().any(|d| d.contains(name.as_str())) {
            continue;
        }
        let auth = sigv4::parse_authorization(case["authz"].as_str().unwrap()).unwrap();
        let sts = case["sts"].as_str().unwrap();
        assert_eq!(sigv4::signature(secret, &auth.date, &auth.region, &auth.service, sts), auth.signature, "{name}");
        assert_ne!(sigv4::signature("another secret", &auth.date, &auth.region, &auth.service, sts), auth.signature);
        // The canonical request and string to sign of the simple cases, from the raw request.
        if matches!(name.as_str(), "get-vanilla" | "post-vanilla" | "post-header-key-sort" | "post-header-key-case") {
            let req = case["req"].as_str().unwrap();
            let mut lines = req.lines();
            let method = lines.next().unwrap().split(' ').next().unwrap();
            let headers: Vec<(String, String)> =
                lines.map(|l| l.split_once(':').unwrap()).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            let creq = sigv4::canonical_request(method, "/", "", &headers, b"");
            assert_eq!(creq, case["creq"].as_str().unwrap(), "{name}");
            let date = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date")).unwrap().1.clone();
            assert_eq!(sigv4::string_to_sign(&date, &auth.scope(), &creq), sts, "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 29, "{checked} cases");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_s_signature_passes_and_a_bad_secret_is_refused() {
    let akid = format!("AKIA{}", random_hex(8).to_uppercase());
    let secret = random_hex(20);
    let fake = FakeCloudWatchLogs::start(&akid, &secret, REGION).await;
    fake.put(GROUP, "s", 1_000, "ERROR boom");
    let body =
        serde_json::to_vec(&json!({"logGroupName": GROUP, "startTime": 0, "endTime": 5_000, "limit": 10})).unwrap();
    let now = bugbot_e2e::keys::now_secs() * 1000;
    let port = ReqwestPort::new();

    let good = ScanConfig::new(REGION, &akid, &secret, &fake.url()).signed_request(body.clone(), now).unwrap();
    let resp = port.send(good.clone()).await.unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let page: FilterLogEventsResponse = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(page.events.len(), 1);

    let refused = |resp: bugbot_consumer::clients::http::HttpResponse| {
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        (resp.status, v["__type"].as_str().unwrap_or_default().to_owned())
    };
    // Signed with another secret.
    let bad = ScanConfig::new(REGION, &akid, "not-the-secret", &fake.url()).signed_request(body.clone(), now).unwrap();
    assert_eq!(refused(port.send(bad).await.unwrap()), (400, "InvalidSignatureException".into()));
    // Another key id.
    let other = ScanConfig::new(REGION, "AKIAOTHER", &secret, &fake.url()).signed_request(body.clone(), now).unwrap();
    assert_eq!(refused(port.send(other).await.unwrap()), (400, "UnrecognizedClientException".into()));
    // The right signature over other bytes.
    let mut tampered = good.clone();
    tampered.body = Some(serde_json::to_vec(&json!({"logGroupName": "/aws/lambda/other", "startTime": 0})).unwrap());
    assert_eq!(refused(port.send(tampered).await.unwrap()), (400, "InvalidSignatureException".into()));
    // Signed ten minutes ago (a replay).
    let old = ScanConfig::new(REGION, &akid, &secret, &fake.url()).signed_request(body, now - 600_000).unwrap();
    assert_eq!(refused(port.send(old).await.unwrap()), (400, "InvalidSignatureException".into()));
}

#[test]
fn lambda_events_are_grouped_with_their_frames() {
    let page: FilterLogEventsResponse =
        serde_json::from_value(json_fixture("aws/lambda_log_events/filter_log_events.python_traceback.generated.json"))
            .unwrap();
    let errors: Vec<_> = page.events.iter().filter(|e| e.message.contains("ERROR")).cloned().collect();
    let groups = cw::group(GROUP, REGION, &errors);
    // `logger.exception` and the unhandled-error record are the same IndexError at the same frame.
    assert_eq!(groups.len(), 1, "{groups:#?}");
    let event = &groups[0].event;
    assert_eq!(event.title, "IndexError: list index out of range");
    assert_eq!(event.count, Some(2));
    let frames: Vec<_> = event.frames.iter().map(|f| (f.function.as_deref().unwrap(), f.lineno.unwrap())).collect();
    assert_eq!(frames, [("lambda_handler", 14), ("parse_order", 9)]);
    assert!(event.frames.iter().all(|f| f.in_app));
    assert_eq!(event.platform.as_deref(), Some("python"));
    assert!(event.link.as_deref().unwrap().contains("$252Faws$252Flambda$252Fshop-orders"));

    let node: FilterLogEventsResponse =
        serde_json::from_value(json_fixture("aws/lambda_log_events/filter_log_events.nodejs_stack.generated.json"))
            .unwrap();
    let errors: Vec<_> = node.events.iter().filter(|e| e.message.contains("ERROR")).cloned().collect();
    let groups = cw::group(GROUP, REGION, &errors);
    assert!(!groups.is_empty());
    assert!(
        groups.iter().any(|g| g.event.platform.as_deref() == Some("node") && !g.event.frames.is_empty()),
        "{groups:#?}"
    );
    // The same events give the same jobs (ids), whatever their order.
    let mut reversed = errors.clone();
    reversed.reverse();
    let ids = |events: &[cw::LogEvent]| {
        cw::jobs(GROUP, (1, 2), cw::group(GROUP, REGION, events), 0).into_iter().map(|j| j.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(&errors), ids(&reversed));
    assert_ne!(cw::jobs(GROUP, (1, 3), cw::group(GROUP, REGION, &errors), 0)[0].id, ids(&errors)[0], "another window");
}

const TRACEBACK: &str = "[ERROR] IndexError: list index out of range\nTraceback (most recent call last):\n  File \"/var/task/lambda_function.py\", line 14, in lambda_handler\n    sku = parse_order(event[\"body\"])\n  File \"/var/task/lambda_function.py\", line 9, in parse_order\n    return order[\"items\"][0][\"sku\"]";

async fn trigger_scan(stack: &Stack) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/admin/trigger-scan", stack.workers.url))
        .bearer_auth(&stack.keys.admin_token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["log_groups"][0].clone()
}

fn jobs_of(report: &Value) -> Vec<String> {
    report["jobs"].as_array().unwrap().iter().map(|j| j.as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_file_issues_follow_next_token_and_resume_without_gap_or_repeat() {
    let akid = format!("AKIA{}", random_hex(8).to_uppercase());
    let secret = random_hex(20);
    let fake = FakeCloudWatchLogs::start(&akid, &secret, REGION).await;
    fake.set_page_size(1);
    let mut options = StackOptions::default();
    options.consumer_vars.extend(
        [
            ("CLOUDWATCH_LOG_GROUPS", GROUP.to_owned()),
            ("CLOUDWATCH_API_BASE", fake.url()),
            ("CLOUDWATCH_LAG_SECS", "0".to_owned()),
            ("AWS_ACCESS_KEY_ID", akid.clone()),
            ("AWS_SECRET_ACCESS_KEY", secret.clone()),
            ("AWS_REGION", REGION.to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let stack = Stack::start(options).await.unwrap();
    let now = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        u64::try_from(since.as_millis()).unwrap()
    };

    // Two invocations hit the same IndexError, one a TypeError; START/REPORT lines do not match.
    let t0 = now() - 10 * 60 * 1000;
    fake.put(GROUP, "2024/12/06/[$LATEST]a", t0, "START RequestId: 1 Version: $LATEST");
    fake.put(GROUP, "2024/12/06/[$LATEST]a", t0 + 1, TRACEBACK);
    fake.put(GROUP, "2024/12/06/[$LATEST]b", t0 + 2, TRACEBACK);
    fake.put(
        GROUP,
        "2024/12/06/[$LATEST]b",
        t0 + 3,
        "ERROR\tInvoke Error\nTypeError: Cannot read properties of undefined (reading 'id')\n    at handler (/var/task/index.js:12:18)",
    );
    let first = trigger_scan(&stack).await;
    assert!(first.get("error").is_none(), "{first}");
    assert_eq!(first["events"], 3);
    assert_eq!(first["pages"], 3, "one event per page: nextToken followed");
    let first_jobs = jobs_of(&first);
    assert_eq!(first_jobs.len(), 2, "{first}");
    for job in &first_jobs {
        assert_eq!(stack.settled(job, SETTLE).await.unwrap()["state"], "filed");
    }
    let issues = stack.github.issues();
    assert_eq!(issues.len(), 2);
    let index_error = issues.iter().find(|i| i.title.contains("IndexError")).expect("the IndexError issue");
    let body = index_error.body.clone().unwrap_or_default();
    assert!(body.contains("lambda_function.py"), "{body}");
    assert!(issues.iter().any(|i| i.labels.iter().any(|l| l == "source:cloudwatch")));
    // Paging: the later requests carried the token the fake gave.
    assert!(fake.requests().iter().any(|r| r.json()["nextToken"] == "fake-token-1"));

    // A new error, then a scan that fails at CloudWatch: nothing queued, the window kept.
    fake.put(
        GROUP,
        "2024/12/06/[$LATEST]c",
        now(),
        "ERROR payment provider said: java.lang.IllegalStateException: card declined",
    );
    fake.fail_next(1, Failure::ServerError);
    let failed = trigger_scan(&stack).await;
    assert!(failed["error"].as_str().unwrap().contains("503"), "{failed}");
    assert!(jobs_of(&failed).is_empty());
    // The retry reads the same window: the new error once, the old ones not again.
    let retried = trigger_scan(&stack).await;
    assert!(retried.get("error").is_none(), "{retried}");
    assert_eq!(retried["window"], failed["window"], "the same window is repeated");
    assert_eq!(retried["window"][0], first["window"][1], "no gap: it starts where the first ended");
    let retried_jobs = jobs_of(&retried);
    assert_eq!(retried_jobs.len(), 1, "{retried}");
    assert!(!first_jobs.contains(&retried_jobs[0]));
    stack.settled(&retried_jobs[0], SETTLE).await.unwrap();
    assert_eq!(stack.github.issues().len(), 3);
    // And the next scan has nothing new.
    let idle = trigger_scan(&stack).await;
    assert!(jobs_of(&idle).is_empty(), "{idle}");
    assert_eq!(stack.github.issues().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_cloudwatch_settings_the_scan_is_skipped_with_a_reason() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    // The scan's cron (Miniflare's scheduled handler), then the admin route.
    let fired = reqwest::Client::new()
        .get(format!("{}/cdn-cgi/handler/scheduled?cron=0+*+*+*+*", stack.workers.url))
        .header("MF-Route-Override", "bugbot-consumer")
        .send()
        .await
        .unwrap();
    assert_eq!(fired.status(), 200);
    stack
        .workers
        .log_line(SETTLE, "the cron's skipped scan", |l| l["event"] == "scan" && l["outcome"] == "skipped")
        .await
        .unwrap();
    assert!(
        !stack.workers.json_logs().iter().any(|l| l["event"] == "cron"),
        "the scan's cron does not post the digest"
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/admin/trigger-scan", stack.workers.url))
        .bearer_auth(&stack.keys.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("CLOUDWATCH_LOG_GROUPS"), "{body}");
    stack
        .workers
        .log_line(SETTLE, "the skipped scan", |l| l["event"] == "scan" && l["outcome"] == "skipped")
        .await
        .unwrap();
    // Without the admin token: 401.
    let resp = reqwest::Client::new().post(format!("{}/admin/trigger-scan", stack.workers.url)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}
