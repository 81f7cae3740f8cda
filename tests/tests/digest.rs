//! Issue 7: the daily digest, end to end. Alerts go through the real Workers (counted by the
//! `StatsStore` Durable Object), then the consumer's cron trigger is fired the way Miniflare
//! exposes it, and the digest must land in the fake Discord with the right totals.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bugbot_e2e::stack::{Stack, StackOptions};
use bugbot_e2e::wait::PATIENCE;
use bugbot_e2e::workers::{another_occurrence, fixture};
use bugbot_shared::digest::{DAY_MS, day_of};
use bugbot_shared::source::discord::Snowflake;
use serde_json::{Value, json};

const SETTLE: Duration = PATIENCE;
const DIGEST_CHANNEL: &str = "1100000000000000099";

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Fires the consumer's cron as if it were `at_ms` (Miniflare's `/cdn-cgi/handler/scheduled`,
/// routed to the consumer: the harness serves the gateway first).
async fn fire_cron(stack: &Stack, at_ms: u64) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("{}/cdn-cgi/handler/scheduled?cron=0+9+*+*+*&time={at_ms}", stack.workers.url))
        .header("MF-Route-Override", "bugbot-consumer")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn glitchtip_two_issues() -> Vec<u8> {
    let mut payload: Value =
        serde_json::from_slice(&fixture("glitchtip/current_format_general_webhook_issue.json")).unwrap();
    let template = payload["attachments"][0].clone();
    payload["text"] = json!("GlitchTip Alert (2 issues)");
    payload["attachments"] = json!(
        (1..=2)
            .map(|i| {
                let mut a = template.clone();
                a["title"] = json!(format!("ValueError: digest case {i}"));
                a["title_link"] = json!(format!("https://app.glitchtip.com/burke-software/issues/{}", 7000 + i));
                a
            })
            .collect::<Vec<_>>()
    );
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cron_posts_the_days_totals_to_the_digest_channel() {
    let mut options = StackOptions::default();
    options.consumer_vars.push(("DIGEST_CHANNEL_ID".into(), DIGEST_CHANNEL.into()));
    let stack = Stack::start(options).await.unwrap();
    let alert = fixture("sentry/sentry_docs_payloads/event_alert_triggered.json");
    // One error twice (new, then a repeat), two GlitchTip issues, and one issue filed then resolved.
    for (resource, id, body) in [
        ("event_alert", "dg-1", alert.clone()),
        ("event_alert", "dg-2", another_occurrence(&alert, 2)),
        ("issue", "dg-3", fixture("sentry/integration_platform_example_mocks/issue_created.json")),
        ("issue", "dg-4", fixture("sentry/integration_platform_example_mocks/issue_resolved.json")),
    ] {
        let jobs = stack.sentry(resource, id, &body).await.unwrap();
        stack.settled(&jobs[0], SETTLE).await.unwrap();
    }
    for job in stack.glitchtip(&glitchtip_two_issues()).await.unwrap() {
        assert_eq!(stack.settled(&job, SETTLE).await.unwrap()["state"], "filed");
    }
    assert_eq!(stack.linear.issues().len(), 4, "four distinct issues filed");

    // The 09:00 run tomorrow reports today.
    let now = now_ms();
    let (status, body) = fire_cron(&stack, now + DAY_MS).await;
    assert_eq!((status, body.as_str()), (200, "ok"), "{}", stack.workers.logs().join("\n"));

    let channel = Snowflake(DIGEST_CHANNEL.parse().unwrap());
    // The cron's answer comes once its handler is done; the cron log line is the last thing it does.
    let cron = stack
        .workers
        .log_line(SETTLE, "one cron log line", |l| l["event"] == "cron" && l["outcome"] == "posted")
        .await
        .unwrap();
    let messages =
        stack.eventually(SETTLE, "the digest", || Some(stack.discord.messages(channel)).filter(|m| !m.is_empty()));
    let messages = messages.await.unwrap();
    assert_eq!(messages.len(), 1, "exactly one digest, in DIGEST_CHANNEL_ID: {cron}");
    let embed = &messages[0].embeds()[0];
    let today = day_of(now);
    assert_eq!(embed["title"], format!("bugbot daily digest: {today}"));
    let description = embed["description"].as_str().unwrap();
    assert!(
        description.starts_with("**5 (▲ 5)** events vs 0 the day before · **4** new · **0** regressed · 1 resolved"),
        "{description}"
    );
    let top = embed["fields"][0]["value"].as_str().unwrap();
    let first = top.lines().next().unwrap();
    assert!(first.starts_with("1. [") && first.contains("× 2 · new"), "the repeated error leads: {top}");
    assert!(first.contains("](http"), "linked to its tracked issue: {first}");
    assert_eq!(top.lines().count(), 4, "{top}");
    let fixes = embed["fields"][3]["value"].as_str().unwrap();
    assert!(fixes.starts_with("0 (=) attempted"), "{fixes}");
    let sent = stack
        .discord
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.json())
        .find(|j| j["embeds"][0]["title"].as_str().is_some_and(|t| t.starts_with("bugbot daily digest")))
        .unwrap();
    assert_eq!(sent["allowed_mentions"], json!({"parse": []}));
    // Every outbound call logs one line: method and host, status, duration; never a path.
    stack
        .workers
        .log_line(SETTLE, "the digest's outbound log line", |l| {
            l["event"] == "outbound" && l["route"] == "POST 127.0.0.1" && l["status"] == 200
        })
        .await
        .unwrap();
    let logs = stack.workers.json_logs();
    let outbound: Vec<&Value> = logs.iter().filter(|l| l["event"] == "outbound").collect();
    assert!(outbound.iter().any(|l| l["route"] == "POST 127.0.0.1" && l["status"] == 200), "{outbound:?}");
    assert!(outbound.iter().all(|l| l["duration_ms"].is_number() && !l.to_string().contains("/api/")));

    // The day after has nothing yet: the next run compares 0 with today's 5.
    let (status, _) = fire_cron(&stack, now + 2 * DAY_MS).await;
    assert_eq!(status, 200);
    let messages = stack
        .eventually(SETTLE, "the second digest", || Some(stack.discord.messages(channel)).filter(|m| m.len() >= 2))
        .await
        .unwrap();
    let description = messages[1].embeds()[0]["description"].as_str().unwrap().to_owned();
    assert!(description.starts_with("**0 (▼ 5)** events vs 5 the day before"), "{description}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_discord_the_digest_is_skipped_with_a_log_line() {
    let stack = Stack::start(StackOptions { discord: false, ..StackOptions::default() }).await.unwrap();
    let (status, body) = fire_cron(&stack, now_ms()).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let line = stack.workers.log_line(SETTLE, "the cron log line", |l| l["event"] == "cron").await.unwrap();
    assert_eq!(line["outcome"], "skipped", "{line}");
    assert!(line["reason"].as_str().unwrap().contains("DISCORD_BOT_TOKEN"), "{line}");
    // Absence, after the cron's last act (its log line).
    assert!(stack.discord.requests().is_empty());
}
