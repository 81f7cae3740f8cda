//! Issue 18: the fingerprint records live in 64 shard objects (`bugbot_shared::claim::shard_of`), not
//! in an object per fingerprint, so a new error starts no object of its own. An install that ran a
//! version before the shards keeps its records: a shard that has no record of a fingerprint moves
//! it in from the fingerprint's own object, once. A new install never looks there. Through the real
//! Workers in workerd, with what an earlier version left written straight into the objects' storage
//! (the harness's `/__test/put`).

use std::time::{Duration, SystemTime};

use bugbot_e2e::stack::{Stack, StackOptions};
use bugbot_e2e::wait::PATIENCE;
use bugbot_e2e::workers::fixture;
use bugbot_shared::claim::FingerprintRecord;
use bugbot_shared::digest::DayStats;
use serde_json::{Value, json};

/// A bound on failure, not an expectation: see `bugbot_e2e::wait`.
const SETTLE: Duration = PATIENCE;

/// The fingerprint of the fixture's Sentry issue (1117540176).
const FINGERPRINT: &str = "sentry:1117540176";

fn alert() -> Vec<u8> {
    fixture("sentry/sentry_docs_payloads/event_alert_triggered.json")
}

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

async fn stack() -> Stack {
    Stack::start(StackOptions { harness: json!({"countCalls": true}), ..StackOptions::default() }).await.unwrap()
}

/// A request straight to path `path` of object `name` of the consumer's `binding`: its answer.
async fn object(stack: &Stack, binding: &str, name: &str, path: &str, body: &Value) -> Value {
    let answer = reqwest::Client::new()
        .post(format!("{}/__test/object", stack.workers.url))
        .query(&[("binding", binding), ("name", name), ("path", path)])
        .header("MF-Route-Override", "bugbot-consumer")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Writes `value` under `key` in the storage of object `name` of the consumer's `binding`, as an
/// earlier version of bugbot would have left it.
async fn put(stack: &Stack, binding: &str, name: &str, key: &str, value: &Value) {
    object(stack, binding, name, "/__test/put", &json!({"key": key, "value": value})).await;
}

/// The record a version before the shards kept in `fp:{FINGERPRINT}`: its issue filed in Linear and
/// commented on a minute ago (so a repeat now is inside the comment cooldown: counted, no call out).
fn filed_record() -> Value {
    let now = now_ms();
    let record: FingerprintRecord = serde_json::from_value(json!({
        "state": "filed",
        "tracked": {"linear": {"tracker": "linear", "id": "0d9c1f2e-0000-4000-8000-000000000001", "label": "ENG-7",
                               "url": "https://linear.app/test/issue/ENG-7"}},
        "occurrences": 3,
        "first_seen_ms": now - 3_600_000,
        "last_seen_ms": now - 60_000,
        "last_comment_ms": now - 60_000,
    }))
    .unwrap();
    serde_json::to_value(record).unwrap()
}

/// An install upgraded from a version before the shards (its ledger holds that version's counters,
/// its fingerprint's record is in the fingerprint's own object): the alert is a repeat of the issue
/// filed back then, not a new issue. Without the move, the shard would find no record and file it
/// again.
#[tokio::test(flavor = "multi_thread")]
async fn an_upgraded_install_keeps_the_records_made_before_the_shards() {
    let stack = stack().await;
    let day = serde_json::to_string(&DayStats::new("2026-12-01")).unwrap();
    put(&stack, "STATS", "stats", "day:2026-12-01", &json!(day)).await;
    put(&stack, "CLAIMS", &format!("fp:{FINGERPRINT}"), "record", &filed_record()).await;

    let jobs = stack.sentry("event_alert", "upgraded-1", &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert!(status["reason"].as_str().unwrap_or_default().contains("counted"), "a repeat of ENG-7: {status}");
    assert!(stack.linear.issues().is_empty(), "nothing filed again: {:?}", stack.linear.issues());
    assert!(stack.github.issues().is_empty(), "{:?}", stack.github.issues());

    // The record is the shard's now, and the old object is not read again: were it, this copy (last
    // commented on long ago) would make the next repeat comment instead of being counted.
    let mut stale = filed_record();
    stale["last_comment_ms"] = json!(0);
    put(&stack, "CLAIMS", &format!("fp:{FINGERPRINT}"), "record", &stale).await;
    let jobs = stack.sentry("event_alert", "upgraded-2", &again()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert!(status["reason"].as_str().unwrap_or_default().contains("counted"), "{status}");
    assert!(stack.linear.issues().is_empty());
    assert!(stack.linear.comments().is_empty(), "{:?}", stack.linear.comments());
}

/// A new install (its ledger empty when this version first ran) never looks in per-fingerprint
/// objects: such an object is ignored, and the alert files its issue.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_install_never_looks_for_records_outside_the_shards() {
    let stack = stack().await;
    put(&stack, "CLAIMS", &format!("fp:{FINGERPRINT}"), "record", &filed_record()).await;

    let jobs = stack.sentry("event_alert", "new-1", &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    let issues = stack.linear.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(issues[0].description.contains(&format!("bugbot:fingerprint={FINGERPRINT}")), "{}", issues[0].description);

    // Its repeat finds the shard's record (no second issue).
    let jobs = stack.sentry("event_alert", "new-2", &again()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert!(status["reason"].as_str().unwrap_or_default().contains("counted"), "{status}");
    assert_eq!(stack.linear.issues().len(), 1);
}

/// A shard keeps its records as JSON text (one string across the boundary each way, not an object
/// built field by field). A record the version before stored as an object is still read, and the
/// write that follows keeps it as text.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_kept_as_an_object_by_the_version_before_is_read_and_kept_as_text() {
    let stack = stack().await;
    let shard = format!("fingerprints:{}", bugbot_shared::claim::shard_of(FINGERPRINT));
    let key = format!("fp:{FINGERPRINT}");
    put(&stack, "CLAIMS", &shard, &key, &filed_record()).await;

    let jobs = stack.sentry("event_alert", "object-1", &again()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert!(status["reason"].as_str().unwrap_or_default().contains("counted"), "a repeat of ENG-7: {status}");
    assert!(stack.linear.issues().is_empty(), "nothing filed again: {:?}", stack.linear.issues());

    let stored = object(&stack, "CLAIMS", &shard, "/__test/get", &json!({"key": key})).await;
    let text = stored["value"].as_str().unwrap_or_else(|| panic!("kept as JSON text: {stored}"));
    let record: FingerprintRecord = serde_json::from_str(text).unwrap();
    assert_eq!(record.occurrences, 4, "the repeat counted on the earlier record: {text}");
    assert_eq!(record.tracked.linear.map(|l| l.label), Some("ENG-7".to_owned()));
}

/// The same error again, as another delivery.
fn again() -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&alert()).unwrap();
    payload["data"]["event"]["event_id"] = json!("0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    serde_json::to_vec(&payload).unwrap()
}

/// A shard's first request asks the ledger for the layout, and other requests get into the shard
/// while it waits. Ten first deliveries of one new error at once, straight to a shard that has
/// never been used: exactly one is told to file the issue (a record read before that wait would
/// be stale, and each of them would be told to file it).
#[tokio::test(flavor = "multi_thread")]
async fn first_deliveries_racing_into_a_new_shard_file_once() {
    let stack = stack().await;
    let fingerprint = "sentry:777000777";
    let shard = format!("fingerprints:{}", bugbot_shared::claim::shard_of(fingerprint));
    let now = now_ms();
    let answers = futures::future::join_all((0..10).map(|i| {
        let op = json!({"fingerprint": fingerprint, "op": {"op": "occurrence", "holder": format!("sentry:job-{i}"),
            "message": format!("m-{i}"), "now_ms": now, "lease_ms": 60_000, "cooldown_ms": 3_600_000,
            "window_ms": 600_000}});
        let (stack, shard) = (&stack, &shard);
        async move { object(stack, "CLAIMS", shard, "/shard", &op).await }
    }))
    .await;
    let creates = answers.iter().filter(|a| a["reply"] == "create").count();
    assert_eq!(creates, 1, "{answers:#?}");
}

/// A shard keeps a filed issue's record (its last event) 90 days after an alert last reached the
/// fingerprint, as KV kept it: its daily alarm deletes the older ones and keeps the others, and
/// the fingerprints' claims stay. Through the real shard, its alarm run now (`/__test/alarm`).
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_forgets_issue_records_no_alert_reached_for_90_days() {
    let stack = stack().await;
    let (old, recent) = ("sentry:900000001", "sentry:900000009");
    // Two fingerprints of one shard (shard_of is fixed: find a second one that shares it).
    let shard = bugbot_shared::claim::shard_of(old);
    let recent = (0..10_000)
        .map(|i| format!("sentry:{}", 900_000_009 + i))
        .find(|f| bugbot_shared::claim::shard_of(f) == shard)
        .unwrap_or_else(|| recent.to_owned());
    let name = format!("fingerprints:{shard}");
    let day = 24 * 3_600_000;
    for (fingerprint, last_seen_ms) in [(old, now_ms() - 91 * day), (recent.as_str(), now_ms() - 89 * day)] {
        let mut record = filed_record();
        record["last_seen_ms"] = json!(last_seen_ms);
        put(&stack, "CLAIMS", &name, &format!("fp:{fingerprint}"), &record).await;
        let issue = json!({"fingerprint": fingerprint, "title": "kept?", "level": "error", "source": "sentry",
                           "tracked": {}, "occurrences": 1, "last_seen_ms": last_seen_ms});
        put(&stack, "CLAIMS", &name, &format!("issue:{fingerprint}"), &json!(issue.to_string())).await;
    }
    object(&stack, "CLAIMS", &name, "/__test/alarm", &json!({})).await;

    let read = |fingerprint: String| {
        let (stack, name) = (&stack, &name);
        async move { object(stack, "CLAIMS", name, "/issue", &json!(fingerprint)).await }
    };
    let gone = read(old.to_owned()).await;
    assert!(gone["issue"].is_null(), "older than 90 days: deleted; {gone}");
    assert_eq!(gone["record"]["state"], "filed", "the claim stays: {gone}");
    let kept = read(recent.clone()).await;
    assert!(kept["issue"].as_str().is_some_and(|t| t.contains("kept?")), "within 90 days: kept; {kept}");
}
