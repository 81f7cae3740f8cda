//! The gateway end to end: signed requests of each kind against the real Workers in workerd get
//! the right answer, and their jobs arrive in the consumer through the local Queue.

use std::sync::OnceLock;

use bugbot_e2e::keys::{TestKeys, now_secs};
use bugbot_e2e::wait::PATIENCE;
use bugbot_e2e::workers::{WorkerVars, Workers, another_occurrence, fixture};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Env {
    keys: TestKeys,
    workers: Workers,
}

/// One pair of Workers for this file (each test uses distinct ids, so they do not interfere).
fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let keys = TestKeys::new();
        let workers = Workers::start(&WorkerVars::with_test_keys(&keys)).expect("workers start");
        Env { keys, workers }
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn snowflake() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    (u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0]) + 1_000_000_000_000_000).to_string()
}

fn interaction(kind: u8, data: &Value) -> (String, Vec<u8>) {
    let id = snowflake();
    let body = json!({
        "id": id, "application_id": "827290144020496384", "type": kind, "token": "interaction-token",
        "guild_id": "772904309264089089", "channel_id": "772908445358620702",
        "member": {"user": {"id": "167348773423415296", "username": "ian"}, "roles": ["785609923542777878"]},
        "data": data, "version": 1
    });
    (id, serde_json::to_vec(&body).unwrap())
}

async fn post_discord(body: &[u8], headers: &[(&str, String)]) -> reqwest::Response {
    let mut req = client().post(format!("{}/discord/interactions", env().workers.url)).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.unwrap()
}

async fn post_sentry(resource: &str, request_id: &str, body: &[u8]) -> reqwest::Response {
    let e = env();
    client()
        .post(format!("{}/webhooks/sentry", e.workers.url))
        .header("content-type", "application/json")
        .header("sentry-hook-resource", resource)
        .header("sentry-hook-timestamp", now_secs().to_string())
        .header("sentry-hook-signature", e.keys.sign_sentry(body))
        .header("request-id", request_id)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn arrived(job_id: &str) -> Value {
    let e = env();
    e.workers.wait_for_job(&e.keys.admin_token, job_id, PATIENCE, |s| s["state"].is_string()).await.unwrap()
}

async fn job_record(job_id: &str) -> StatusCode {
    let e = env();
    client()
        .get(format!("{}/admin/jobs/{job_id}", e.workers.url))
        .bearer_auth(&e.keys.admin_token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn ping_gets_pong() {
    let (_, body) = interaction(1, &Value::Null);
    let resp = post_discord(&body, &env().keys.sign_discord(&body)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"type": 1}));
}

#[tokio::test]
async fn slash_command_is_deferred_and_reaches_the_consumer() {
    let data = json!({"name": "bugbot", "type": 1, "options": [{"name": "status", "type": 1, "options": [{"name": "issue", "type": 3, "value": "ENG-7"}]}]});
    let (id, body) = interaction(2, &data);
    let resp = post_discord(&body, &env().keys.sign_discord(&body)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"type": 5}));
    let status = arrived(&format!("discord:{id}")).await;
    assert_eq!(status["kind"], "discord_command");
}

#[tokio::test]
async fn message_command_component_and_modal_are_enqueued() {
    let menu = json!({"name": "Fix with bugbot", "type": 3, "target_id": "867793854505943041",
        "resolved": {"messages": {"867793854505943041": {"id": "867793854505943041", "channel_id": "772908445358620702",
        "content": "checkout returns 500 since this morning", "author": {"id": "1", "username": "a"}}}}});
    let button = json!({"custom_id": "bugbot:fix:ENG-7", "component_type": 2});
    let modal = json!({"custom_id": "bugbot:note", "components": [{"type": 18, "component": {"type": 4, "custom_id": "note", "value": "x"}}]});
    for (kind, data, expected) in
        [(2, menu, "discord_command"), (3, button, "discord_component"), (5, modal, "discord_component")]
    {
        let (id, body) = interaction(kind, &data);
        let resp = post_discord(&body, &env().keys.sign_discord(&body)).await;
        assert_eq!(resp.status(), 200);
        // A command is deferred as a new message (5); a click or a modal submit as an update of
        // the message it was on (6, issue 19).
        assert_eq!(resp.json::<Value>().await.unwrap()["type"], if kind == 2 { 5 } else { 6 });
        assert_eq!(arrived(&format!("discord:{id}")).await["kind"], expected);
    }
}

#[tokio::test]
async fn bad_subcommand_is_answered_ephemerally_and_not_enqueued() {
    let data = json!({"name": "bugbot", "type": 1, "options": [{"name": "resolve", "type": 1, "options": []}]});
    let (bad_id, body) = interaction(2, &data);
    let resp = post_discord(&body, &env().keys.sign_discord(&body)).await;
    assert_eq!(resp.status(), 200);
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(reply["type"], 4);
    assert_eq!(reply["data"]["flags"], 64);
    assert!(reply["data"]["content"].as_str().unwrap().contains("issue"), "{reply}");
    // A valid command sent after it arrives; the invalid one never does.
    let data = json!({"name": "bugbot", "type": 1, "options": [{"name": "stats", "type": 1}]});
    let (good_id, body) = interaction(2, &data);
    post_discord(&body, &env().keys.sign_discord(&body)).await;
    arrived(&format!("discord:{good_id}")).await;
    assert_eq!(job_record(&format!("discord:{bad_id}")).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn discord_signatures_are_enforced() {
    let keys = &env().keys;
    let (_, body) = interaction(1, &Value::Null);
    let good = keys.sign_discord(&body);
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert_eq!(post_discord(&tampered, &good).await.status(), 401);
    let mut flipped = good.clone();
    flipped[0].1 = format!("{}{}", if flipped[0].1.starts_with('0') { "1" } else { "0" }, &flipped[0].1[1..]);
    assert_eq!(post_discord(&body, &flipped).await.status(), 401);
    assert_eq!(post_discord(&body, &[]).await.status(), 401);
    // A correctly signed but stale request (replay) is refused too.
    let stale = keys.sign_discord_at(&body, now_secs() - 3600);
    assert_eq!(post_discord(&body, &stale).await.status(), 401);
    // Discord's own endpoint check: a random signature must be refused.
    let other = TestKeys::new().sign_discord(&body);
    assert_eq!(post_discord(&body, &other).await.status(), 401);
}

#[tokio::test]
async fn sentry_alert_reaches_the_consumer_and_redelivery_keeps_its_id() {
    let body = fixture("sentry/sentry_docs_payloads/event_alert_triggered.json");
    let request_id = format!("e2e-{}", snowflake());
    let first = post_sentry("event_alert", &request_id, &body).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let job_id = first["jobs"][0].as_str().unwrap().to_owned();
    assert!(job_id.starts_with("sentry:") && !job_id.contains(&request_id), "from the signed body: {job_id}");
    assert_eq!(arrived(&job_id).await["kind"], "sentry_webhook");
    let again: Value = post_sentry("event_alert", &request_id, &body).await.json().await.unwrap();
    assert_eq!(again["jobs"][0], job_id.as_str());
}

#[tokio::test]
async fn sentry_non_actionable_and_bad_requests() {
    let install = fixture("sentry/sentry_docs_payloads/installation_created.json");
    let resp = post_sentry("installation", "inst-1", &install).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["ignored"], "resource not actionable");

    let resp = post_sentry("issue", "bad-json", b"{not json").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("JSON"));

    let e = env();
    let body = fixture("sentry/sentry_docs_payloads/issue_created.json");
    let resp = client()
        .post(format!("{}/webhooks/sentry", e.workers.url))
        .header("sentry-hook-resource", "issue")
        .header("sentry-hook-signature", TestKeys::new().sign_sentry(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// The HMAC is checked by WebCrypto in the gateway: the header forms the `hmac` crate took (upper
/// case, blanks around, the older `Sentry-App-Signature`) still pass, and a tag that is short, not
/// hex, or for one other byte is refused with the reason it had.
#[tokio::test]
async fn sentry_signature_forms_and_forgeries() {
    let e = env();
    let body = fixture("sentry/sentry_docs_payloads/issue_created.json");
    let send = |header: &'static str, signature: String, body: Vec<u8>| {
        client()
            .post(format!("{}/webhooks/sentry", e.workers.url))
            .header("sentry-hook-resource", "issue")
            .header(header, signature)
            .body(body)
            .send()
    };
    let good = e.keys.sign_sentry(&body);
    for (header, signature) in [
        ("sentry-hook-signature", good.to_uppercase()),
        ("sentry-hook-signature", format!(" {good} ")),
        ("sentry-app-signature", good.clone()),
    ] {
        let resp = send(header, signature.clone(), body.clone()).await.unwrap();
        assert_eq!(resp.status(), 202, "{header}: {signature:?}");
    }
    let mut other = body.clone();
    other[10] ^= 1;
    let resp = send("sentry-hook-signature", good.clone(), other).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "signature does not match");
    for malformed in [good[..62].to_owned(), format!("{}zz", &good[..62])] {
        let resp = send("sentry-hook-signature", malformed, body.clone()).await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            "signature is not well-formed hex of the right length"
        );
    }
}

#[tokio::test]
async fn glitchtip_alert_with_two_issues_makes_two_jobs() {
    let e = env();
    let body = fixture("glitchtip/generated_2022_code_multiple_issues_count_5_showing_2.json");
    let url = format!("{}/webhooks/glitchtip/{}", e.workers.url, e.keys.glitchtip_token);
    let resp = client().post(&url).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let jobs: Vec<String> = serde_json::from_value(resp.json::<Value>().await.unwrap()["jobs"].clone()).unwrap();
    assert_eq!(jobs.len(), 2);
    for id in &jobs {
        assert_eq!(arrived(id).await["kind"], "glitchtip_issue");
    }
    let uptime = fixture("glitchtip/current_format_general_webhook_uptime_down.json");
    let resp: Value = client().post(&url).body(uptime).send().await.unwrap().json().await.unwrap();
    assert_eq!(arrived(resp["jobs"][0].as_str().unwrap()).await["kind"], "glitchtip_uptime");

    let wrong = format!("{}/webhooks/glitchtip/not-the-token", e.workers.url);
    assert_eq!(client().post(&wrong).body("{}").send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn legacy_sentry_plugin_on_its_token_url() {
    let e = env();
    let body = fixture("sentry/zulip_captured/webhook_event_for_exception_python.json");
    let url = format!("{}/webhooks/sentry/{}", e.workers.url, e.keys.legacy_token);
    let resp: Value = client().post(&url).body(body).send().await.unwrap().json().await.unwrap();
    assert_eq!(arrived(resp["jobs"][0].as_str().unwrap()).await["kind"], "sentry_legacy");
}

#[tokio::test]
async fn http_errors_are_client_errors_never_500() {
    let url = &env().workers.url;
    let c = client();
    assert_eq!(c.get(format!("{url}/nope")).send().await.unwrap().status(), 404);
    // A 405 says which method the route takes (RFC 9110 requires `Allow`).
    for (method, path, allow) in
        [(reqwest::Method::GET, "/discord/interactions", "POST"), (reqwest::Method::POST, "/health", "GET")]
    {
        let resp = c.request(method, format!("{url}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 405, "{path}");
        assert_eq!(resp.headers()["allow"], allow, "{path}");
    }
    // Answered without an await (`fetchNow` in gateway/entry.mjs), and logged like any other answer.
    let line = env()
        .workers
        .log_line(PATIENCE, "the 405's log line", |l| l["event"] == "request" && l["status"] == 405)
        .await
        .unwrap();
    assert_eq!((line["level"].as_str(), line["route"].as_str()), (Some("warn"), Some("unknown")), "{line}");
    assert!(line["request_id"].is_string() && line["duration_ms"].is_number(), "{line}");
    let big = vec![b'x'; 300 * 1024];
    // Refused before the body is read, so the server closes that connection: use its own client.
    let resp = client().post(format!("{url}/webhooks/sentry")).body(big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    assert!(resp.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("larger"));
    assert_eq!(c.get(format!("{url}/admin/jobs/x")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(format!("{url}/admin/jobs/x")).bearer_auth("wrong").send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn health_says_what_is_configured_and_never_a_value() {
    let e = env();
    let resp = client().get(format!("{}/health", e.workers.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["integrations"]["discord_interactions"], true);
    assert_eq!(health["integrations"]["sentry"], true);
    assert_eq!(health["integrations"]["linear"], false);
    for secret in [&e.keys.sentry_secret, &e.keys.glitchtip_token, &e.keys.admin_token, &e.keys.executor_secret] {
        assert!(!text.contains(secret.as_str()));
    }
}

#[tokio::test]
async fn every_request_logs_one_json_line_without_secrets() {
    let e = env();
    let body = fixture("sentry/sentry_docs_payloads/error_created.json");
    let job: Value = post_sentry("error", &format!("log-{}", snowflake()), &body).await.json().await.unwrap();
    let marker = job["jobs"][0].as_str().unwrap().to_owned();
    arrived(&marker).await;
    // Both lines cross workerd's and Node's pipes after the answer; the consumer logs a job only after
    // recording the status `arrived` saw.
    let request = e
        .workers
        .log_line(PATIENCE, "the request's log line", |l| l["reason"].as_str().is_some_and(|r| r.contains(&marker)))
        .await
        .unwrap();
    assert_eq!(request["component"], "gateway");
    assert_eq!(request["route"], "sentry");
    assert_eq!(request["status"], 202);
    assert!(request["request_id"].is_string());
    assert!(request["duration_ms"].is_number());
    let job_line = e
        .workers
        .log_line(PATIENCE, "the job's log line", |l| {
            l["component"] == "consumer" && l["job_id"].as_str().is_some_and(|j| j.contains(&marker))
        })
        .await
        .unwrap();
    assert_eq!(job_line["request_id"], request["request_id"]);
    // Absence, after the last line this request caused has arrived.
    let all = e.workers.logs().join("\n");
    for secret in [&e.keys.sentry_secret, &e.keys.glitchtip_token, &e.keys.admin_token, &e.keys.legacy_token] {
        assert!(!all.contains(secret.as_str()), "a secret appears in the logs");
    }
    assert!(!all.contains("interaction-token"), "an interaction token appears in the logs");
}

/// A request body streamed in 16 KiB chunks with no `Content-Length` (so `Transfer-Encoding:
/// chunked`): `total` bytes, then it stays open until `hold` fires. Counts what was pulled from it.
fn chunked_body(
    total: usize,
    hold: tokio::sync::oneshot::Receiver<()>,
    pulled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> reqwest::Body {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use std::sync::atomic::Ordering;
    const CHUNK: usize = 16 * 1024;
    let stream = futures::stream::unfold((0usize, Some(hold)), move |(sent, hold)| {
        let pulled = pulled.clone();
        async move {
            if sent >= total {
                // Still open: a gateway that waits for the end of the body never answers.
                let _ = hold?.await;
                return None;
            }
            pulled.fetch_add(CHUNK, Ordering::SeqCst);
            let frame = Frame::data(bytes::Bytes::from(vec![b'{'; CHUNK]));
            Some((Ok::<_, std::io::Error>(frame), (sent + CHUNK, hold)))
        }
    });
    reqwest::Body::wrap(StreamBody::new(stream))
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413_without_being_buffered() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let e = env();
    let limit = 262_144; // MAX_BODY_BYTES in wrangler.toml
    for route in
        ["/webhooks/sentry", "/discord/interactions", &format!("/webhooks/glitchtip/{}", e.keys.glitchtip_token)]
    {
        // Twice the limit, then the body stays open: only a gateway that stops reading at the limit
        // answers at all.
        let (release, hold) = tokio::sync::oneshot::channel();
        let pulled = Arc::new(AtomicUsize::new(0));
        let request = client()
            .post(format!("{}{route}", e.workers.url))
            .header("sentry-hook-resource", "issue")
            .header("sentry-hook-signature", "00".repeat(32))
            .body(chunked_body(2 * limit, hold, pulled.clone()))
            .send();
        let resp = bugbot_e2e::wait::within(PATIENCE, "the gateway's answer to an endless chunked body", request)
            .await
            .unwrap()
            .unwrap();
        drop(release);
        assert_eq!(resp.status(), 413, "{route}");
        let reason: Value = resp.json().await.unwrap();
        assert_eq!(reason["error"], format!("body is larger than {limit} bytes"), "{route}");
        assert!(pulled.load(Ordering::SeqCst) <= 2 * limit, "{route}");
    }
    // A chunked body under the limit is read to its end as before.
    let body = fixture("glitchtip/current_format_general_webhook_issue.json");
    let chunked = reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(
        body.chunks(100)
            .map(|c| Ok::<_, std::io::Error>(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
            .collect::<Vec<_>>(),
    )));
    let url = format!("{}/webhooks/glitchtip/{}", e.workers.url, e.keys.glitchtip_token);
    let resp = client().post(url).body(chunked).send().await.unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn a_captured_sentry_delivery_replayed_under_a_new_request_id_is_a_duplicate() {
    let e = env();
    let body = another_occurrence(&fixture("sentry/sentry_docs_payloads/event_alert_triggered.json"), 0x5e9_1a7);
    let first: Value = post_sentry("event_alert", &format!("orig-{}", snowflake()), &body).await.json().await.unwrap();
    let job_id = first["jobs"][0].as_str().unwrap().to_owned();
    let settled = |s: &Value| !matches!(s["state"].as_str(), None | Some("received" | "gathering" | "retrying"));
    let status = e.workers.wait_for_job(&e.keys.admin_token, &job_id, PATIENCE, settled).await.unwrap();
    assert_ne!(status["state"], "duplicate", "{status}");
    // The replay: same signed body and signature, a fresh Request-ID and a fresh timestamp.
    let replay: Value =
        post_sentry("event_alert", &format!("replay-{}", snowflake()), &body).await.json().await.unwrap();
    assert_eq!(replay["jobs"][0], job_id.as_str(), "the replay is the same job");
    let replayed =
        e.workers.wait_for_job(&e.keys.admin_token, &job_id, PATIENCE, |s| s["state"] == "duplicate").await.unwrap();
    assert!(replayed["reason"].as_str().unwrap().contains("already processed"), "{status} then {replayed}");
}

#[tokio::test]
async fn a_sentry_delivery_with_a_stale_timestamp_is_refused() {
    let e = env();
    let body = fixture("sentry/sentry_docs_payloads/issue_created.json");
    let send = |timestamp: String| {
        client()
            .post(format!("{}/webhooks/sentry", e.workers.url))
            .header("sentry-hook-resource", "issue")
            .header("sentry-hook-timestamp", timestamp)
            .header("sentry-hook-signature", e.keys.sign_sentry(&body))
            .header("request-id", format!("stale-{}", snowflake()))
            .body(body.clone())
            .send()
    };
    // DEDUPE_WINDOW_SECS is 600 by default: 11 minutes old is a replay.
    let resp = send((now_secs() - 660).to_string()).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "timestamp is outside the replay window");
    let resp = send("not-a-time".into()).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(send(now_secs().to_string()).await.unwrap().status(), 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_the_consumers_integrations_as_the_consumer_sees_them() {
    // Linear configured on the consumer only (where it lives in a real deploy), none of the
    // consumer's integrations on the gateway.
    let keys = TestKeys::new();
    let secret_key = format!("lin_api_{}", bugbot_e2e::keys::random_hex(16));
    let vars = WorkerVars::with_test_keys(&keys)
        .consumer("LINEAR_API_KEY", &secret_key)
        .consumer("LINEAR_TEAM_ID", "team-1")
        .consumer("DISCORD_BOT_TOKEN", "bot-token-value")
        .consumer("DISCORD_APPLICATION_ID", "827290144020496384");
    let workers = tokio::task::block_in_place(|| Workers::start(&vars)).unwrap();
    let text = client().get(format!("{}/health", workers.url)).send().await.unwrap().text().await.unwrap();
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["consumer"], "ok", "{health}");
    assert_eq!(health["ok"], true);
    let integrations = &health["integrations"];
    for (name, configured) in [
        ("linear", true),
        ("discord_bot", true),
        ("admin", true),
        ("github", false),
        ("posthog", false),
        ("discord_interactions", true),
        ("sentry", true),
    ] {
        assert_eq!(integrations[name], configured, "{name}: {health}");
    }
    assert!(integrations.as_object().unwrap().values().all(Value::is_boolean), "booleans only: {health}");
    for secret in [secret_key.as_str(), "bot-token-value", "team-1", keys.admin_token.as_str()] {
        assert!(!text.contains(secret), "a value reached /health");
    }
    drop(workers);

    // Without the consumer behind the binding, /health says so instead of guessing.
    let alone = tokio::task::block_in_place(|| Workers::start_with(&vars, &json!({"gatewayOnly": true}))).unwrap();
    let health: Value = client().get(format!("{}/health", alone.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["ok"], false, "{health}");
    assert!(health["consumer"].as_str().unwrap().starts_with("unreachable"), "{health}");
    assert_eq!(health["integrations"]["sentry"], true);
    assert!(health["integrations"].get("linear").is_none(), "not guessed: {health}");
}

/// The gateway's one server error: a queue that refuses the send gets 503 (the sender retries, and
/// nothing is lost), whichever path the delivery took — the entry module's awaits (a body with a
/// `Content-Length`: one job, several jobs, a Discord command) or the `async` export (a chunked body)
/// — with the queue's reason in the log line and nothing else answered as accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_queue_send_is_a_503_on_either_path() {
    let keys = TestKeys::new();
    let vars = WorkerVars::with_test_keys(&keys);
    let workers =
        tokio::task::block_in_place(|| Workers::start_with(&vars, &json!({"gatewayOnly": true, "queueRefuses": true})))
            .unwrap();
    let alert = fixture("sentry/sentry_docs_payloads/event_alert_triggered.json");
    let sentry = |body: reqwest::Body| {
        client()
            .post(format!("{}/webhooks/sentry", workers.url))
            .header("sentry-hook-resource", "event_alert")
            .header("sentry-hook-timestamp", now_secs().to_string())
            .header("sentry-hook-signature", keys.sign_sentry(&alert))
            .body(body)
    };
    let chunked = reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(
        alert
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
            .collect::<Vec<_>>(),
    )));
    let (_, command) =
        interaction(2, &json!({"name": "bugbot", "type": 1, "options": [{"name": "status", "type": 1}]}));
    let mut discord = client().post(format!("{}/discord/interactions", workers.url)).body(command.clone());
    for (name, value) in keys.sign_discord(&command) {
        discord = discord.header(name, value);
    }
    let glitchtip = client()
        .post(format!("{}/webhooks/glitchtip/{}", workers.url, keys.glitchtip_token))
        .body(fixture("glitchtip/generated_2022_code_multiple_issues_count_5_showing_2.json"));
    let mut seen = Vec::new();
    for (what, request, route) in [
        ("one job, Content-Length", sentry(alert.clone().into()), "sentry"),
        ("one job, chunked", sentry(chunked), "sentry"),
        ("a Discord command", discord, "discord"),
        ("two jobs (sendBatch)", glitchtip, "glitchtip"),
    ] {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 503, "{what}");
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({"error": "queue unavailable, retry later"}), "{what}");
        // This request's line: the one after those of the same route already answered.
        let before = seen.iter().filter(|r| **r == route).count();
        seen.push(route);
        let line = workers
            .until(PATIENCE, &format!("the 503's log line ({what})"), || {
                let lines: Vec<Value> =
                    workers.json_logs().into_iter().filter(|l| l["route"] == route && l["status"] == 503).collect();
                lines.get(before).cloned()
            })
            .await
            .unwrap();
        assert_eq!(line["level"], "error", "{what}: {line}");
        assert_eq!(line["reason"], "queue unavailable: Queue send failed: refused by the test harness", "{what}");
    }
}
