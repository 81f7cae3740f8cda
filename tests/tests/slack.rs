//! Issue 17, Slack alerts end to end: a signed Events API delivery to the real gateway in workerd
//! becomes an issue on the fake trackers; forged, stale, retried and unlisted deliveries do not.

use std::time::Duration;

use bugbot_e2e::keys::now_secs;
use bugbot_e2e::stack::{Stack, StackOptions};
use bugbot_e2e::wait::PATIENCE;
use bugbot_e2e::workers::fixture;
use serde_json::Value;

/// A bound on failure, not an expectation: see `bugbot_e2e::wait`.
const SETTLE: Duration = PATIENCE;

/// The documented user message with a Python traceback, in channel `C0003` (listed).
fn traceback_message() -> Vec<u8> {
    fixture("slack/message_user_code_block.written_from_docs.json")
}

async fn post(stack: &Stack, body: &[u8], timestamp: u64, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{}/webhooks/slack", stack.workers.url)).body(body.to_vec());
    for (k, v) in stack.keys.sign_slack_at(body, timestamp) {
        req = req.header(k, v);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.header("content-type", "application/json").send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn gateway_line(stack: &Stack, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    stack
        .workers
        .log_line(SETTLE, what, |l| l["component"] == "gateway" && l["route"] == "slack" && check(l))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_alert_files_an_issue_and_its_retry_is_dropped() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let body = traceback_message();
    let (status, reply) = post(&stack, &body, now_secs(), &[]).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["jobs"][0], "slack:Ev0004");
    let settled = stack.settled("slack:Ev0004", SETTLE).await.unwrap();
    assert_eq!(settled["state"], "filed", "{settled}");

    let issues = stack.github.issues();
    assert_eq!(issues.len(), 1);
    assert!(issues[0].title.contains("deploy of api failed"), "{}", issues[0].title);
    let body_md = issues[0].body.clone().unwrap_or_default();
    assert!(body_md.contains("ZeroDivisionError"), "{body_md}");
    assert!(body_md.contains("worker.py"), "the frames: {body_md}");
    assert!(body_md.contains("https://slack.com/archives/C0003/p1733500000000100"), "{body_md}");
    assert!(issues[0].labels.iter().any(|l| l == "source:slack"), "{:?}", issues[0].labels);
    assert_eq!(stack.linear.issues().len(), 1);

    // Slack's retry: the same bytes, a new signature timestamp, `X-Slack-Retry-Num`.
    let (status, reply) =
        post(&stack, &body, now_secs(), &[("x-slack-retry-num", "1"), ("x-slack-retry-reason", "http_timeout")]).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["jobs"][0], "slack:Ev0004", "the same job id");
    stack
        .workers
        .log_line(SETTLE, "the consumer dropping the redelivery", |l| {
            l["component"] == "consumer" && l["job_id"] == "slack:Ev0004" && l["outcome"] == "duplicate"
        })
        .await
        .unwrap();
    assert_eq!(stack.github.issues().len(), 1);
    assert_eq!(stack.linear.issues().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_stale_unlisted_and_verification_requests() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let body = traceback_message();
    let url = format!("{}/webhooks/slack", stack.workers.url);

    // Signed with another secret.
    let ts = now_secs().to_string();
    let forged = bugbot_shared::slack::sign(b"not the signing secret", &ts, &body);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", forged)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(reply["error"], "signature does not match");

    // Correctly signed, but six minutes old (a replay).
    let (status, reply) = post(&stack, &body, now_secs() - 360, &[]).await;
    assert_eq!(status, 401, "{reply}");
    assert_eq!(reply["error"], "timestamp is outside the replay window");

    // No signature at all.
    let resp = reqwest::Client::new().post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // The URL check Slack makes when the Request URL is saved.
    let challenge = fixture("slack/url_verification.request.json");
    let (status, reply) = post(&stack, &challenge, now_secs(), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(reply["challenge"], "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");

    // A channel that is not an alert channel: accepted (Slack must not retry it), nothing queued, a log line.
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["event"]["channel"] = "C0RANDOM".into();
    other["event_id"] = "Ev0RANDOM".into();
    let (status, reply) = post(&stack, other.to_string().as_bytes(), now_secs(), &[]).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ignored"], "channel not in SLACK_ALERT_CHANNELS");
    gateway_line(&stack, "the ignored channel's log line", |l| {
        l["status"] == 200 && l["reason"] == "channel not in SLACK_ALERT_CHANNELS"
    })
    .await;
    for (what, status) in [("the forged delivery", 401), ("the stale delivery", 401)] {
        gateway_line(&stack, what, |l| l["status"] == status).await;
    }
    // Nothing reached the consumer: a real alert sent now is the first and only job it sees.
    let mut listed: Value = serde_json::from_slice(&body).unwrap();
    listed["event_id"] = "Ev0LAST".into();
    let (status, _) = post(&stack, listed.to_string().as_bytes(), now_secs(), &[]).await;
    assert_eq!(status, 202);
    stack
        .workers
        .log_line(SETTLE, "the last alert's job line", |l| {
            l["component"] == "consumer" && l["job_id"] == "slack:Ev0LAST"
        })
        .await
        .unwrap();
    let jobs: Vec<Value> =
        stack.workers.json_logs().into_iter().filter(|l| l["component"] == "consumer" && l["event"] == "job").collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(stack.github.issues().len(), 1);
}
