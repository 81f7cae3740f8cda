//! Issue 3 end to end: every alert becomes exactly one well-formed issue in Linear and GitHub,
//! announced once in Discord — through the real Workers in workerd, the local Queue and Durable
//! Objects, against the fakes of Linear, GitHub and Discord.

use std::time::{Duration, SystemTime};

use bugbot_e2e::fake::Failure;
use bugbot_e2e::stack::{ALERTS_CHANNEL, Stack, StackOptions};
use bugbot_e2e::wait::PATIENCE;
use bugbot_e2e::workers::fixture;
use bugbot_shared::source::discord::Snowflake;
use serde_json::{Value, json};

/// A bound on failure, not an expectation: see `bugbot_e2e::wait`.
const SETTLE: Duration = PATIENCE;

fn alert() -> Vec<u8> {
    fixture("sentry/sentry_docs_payloads/event_alert_triggered.json")
}

fn channel() -> Snowflake {
    Snowflake(ALERTS_CHANNEL.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_files_one_issue_in_each_tracker_and_announces_it_once() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let jobs = stack.sentry("event_alert", "one-1", &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");

    let linear = stack.linear.issues();
    assert_eq!(linear.len(), 1);
    let issue = &linear[0];
    let event: Value = serde_json::from_slice(&alert()).unwrap();
    let title = event["data"]["event"]["title"].as_str().unwrap();
    assert!(issue.title.contains(&title[..20.min(title.len())]), "{} vs {title}", issue.title);
    assert!(issue.description.contains("bugbot:fingerprint="), "hidden marker: {}", issue.description);
    assert_eq!(issue.priority, 2, "error → high");
    let attachments = stack.linear.attachments();
    assert_eq!(attachments.len(), 1);
    assert!(
        attachments[0].url.starts_with("https://sentry.io/organizations/test-org/issues/1117540176"),
        "{}",
        attachments[0].url
    );

    let github = stack.github.issues();
    assert_eq!(github.len(), 1);
    assert!(github[0].labels.iter().any(|l| l == "bugbot"), "{:?}", github[0].labels);
    assert!(github[0].body.as_deref().unwrap().contains("<!-- bugbot:fingerprint="));

    let messages = stack.discord.messages(channel());
    assert_eq!(messages.len(), 1);
    let embed = &messages[0].embeds()[0];
    let links = status["links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert!(links[0].as_str().unwrap().contains(&issue.identifier), "{links:?}");
    assert_eq!(embed["url"], links[0], "the embed links the tracked issue");
    // Error text is untrusted: the message we sent can ping no one.
    let sent = stack.discord.requests().into_iter().find(|r| r.method == "POST").unwrap().json();
    assert_eq!(sent["allowed_mentions"], json!({"parse": []}));
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_copies_make_exactly_one_issue() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let body = alert();
    let sends = (0..20).map(|i| {
        let stack = &stack;
        let body = &body;
        async move { stack.sentry("event_alert", &format!("burst-{i}"), body).await.unwrap().remove(0) }
    });
    let jobs = futures::future::join_all(sends).await;
    for job in &jobs {
        let status = stack.settled(job, SETTLE).await.unwrap();
        assert!(matches!(status["state"].as_str(), Some("filed" | "duplicate")), "{status}");
    }
    assert_eq!(stack.linear.issues().len(), 1);
    assert_eq!(stack.github.issues().len(), 1);
    assert_eq!(stack.discord.messages(channel()).len(), 1);
    // Redelivering the very same delivery (same Request-ID) has no second effect either.
    let again = stack.sentry("event_alert", "burst-0", &body).await.unwrap();
    let status = stack.settled(&again[0], SETTLE).await.unwrap();
    assert_eq!(stack.linear.issues().len(), 1, "{status}");
    assert_eq!(non_packet_comments(&stack), 0, "repeats within the cooldown do not comment");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_tracker_is_retried_after_its_retry_after() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    // The create (the context packet's reads go out before it, issue 16.2).
    stack.github.fail_next_matching("POST", "/issues", Failure::RateLimited { retry_after_secs: 2.0 });
    let jobs = stack.sentry("event_alert", "limited-1", &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    assert_eq!(stack.github.issues().len(), 1);
    assert_eq!(stack.linear.issues().len(), 1, "Linear was filed once, before GitHub limited us");
    let requests = stack.github.requests();
    let limited = requests.iter().find(|r| r.failure.is_some()).expect("the 429");
    let created = requests
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/issues") && r.failure.is_none())
        .expect("the create");
    let waited = created.at.duration_since(limited.at).unwrap_or_default();
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}, before Retry-After");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tracker_failing_forever_dead_letters_the_job_without_duplicates() {
    let stack = Stack::start(StackOptions { github: false, discord: false, ..StackOptions::default() }).await.unwrap();
    stack.linear.fail_always(Failure::ServerError);
    let started = SystemTime::now();
    let jobs = stack.sentry("event_alert", "doomed-1", &alert()).await.unwrap();
    let status = stack
        .job(&jobs[0], PATIENCE, |s| s["reason"].as_str().is_some_and(|r| r.starts_with("dead-lettered")))
        .await
        .unwrap();
    assert_eq!(status["state"], "failed");
    assert!(status["reason"].as_str().unwrap().contains("linear"), "{status}");
    let letters = stack.admin("dead-letters").await.unwrap();
    let letter =
        letters["dead_letters"].as_array().unwrap().iter().find(|l| l["job_id"] == jobs[0].as_str()).cloned().unwrap();
    assert!(letter["reason"].as_str().unwrap().contains("linear"), "{letter}");
    assert!(stack.linear.issues().is_empty());
    assert!(started.elapsed().unwrap() >= Duration::from_secs(1), "retried with backoff");

    // Once Linear recovers, replaying the dead letter files exactly one issue.
    stack.linear.clear_failures();
    let replay = reqwest::Client::new()
        .post(format!("{}/admin/dead-letters/{}/replay", stack.workers.url, jobs[0]))
        .bearer_auth(&stack.keys.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 202);
    stack.job(&jobs[0], SETTLE, |s| s["state"] == "filed").await.unwrap();
    assert_eq!(stack.linear.issues().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_glitchtip_alert_reporting_three_issues_files_three() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let mut payload: Value =
        serde_json::from_slice(&fixture("glitchtip/current_format_general_webhook_issue.json")).unwrap();
    let template = payload["attachments"][0].clone();
    payload["text"] = json!("GlitchTip Alert (3 issues)");
    payload["attachments"] = json!(
        (1..=3)
            .map(|i| {
                let mut a = template.clone();
                a["title"] = json!(format!("ValueError: case {i}"));
                a["title_link"] = json!(format!("https://app.glitchtip.com/burke-software/issues/{}", 5000 + i));
                a
            })
            .collect::<Vec<_>>()
    );
    let jobs = stack.glitchtip(&serde_json::to_vec(&payload).unwrap()).await.unwrap();
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        assert_eq!(stack.settled(job, SETTLE).await.unwrap()["state"], "filed");
    }
    assert_eq!(stack.linear.issues().len(), 3);
    assert_eq!(stack.github.issues().len(), 3);
    assert_eq!(stack.discord.messages(channel()).len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn resolving_a_tracked_issue_updates_it_and_edits_the_announcement() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let created = fixture("sentry/integration_platform_example_mocks/issue_created.json");
    let jobs = stack.sentry("issue", "res-1", &created).await.unwrap();
    assert_eq!(stack.settled(&jobs[0], SETTLE).await.unwrap()["state"], "filed");
    let message = stack.discord.messages(channel()).remove(0);
    assert!(message.history.is_empty());

    let resolved = fixture("sentry/integration_platform_example_mocks/issue_resolved.json");
    let jobs = stack.sentry("issue", "res-2", &resolved).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "done", "{status}");

    let github = stack.github.issues();
    assert_eq!(github[0].state, "closed");
    assert_eq!(stack.github.comments().len(), 1);
    assert_eq!(non_packet_comments(&stack), 1);
    assert_eq!(stack.linear.issues()[0].state_type, "completed");
    let messages = stack.discord.messages(channel());
    assert_eq!(messages.len(), 1, "edited in place, not re-posted");
    assert_eq!(messages[0].history.len(), 1, "edited once");
    assert_ne!(messages[0].json["embeds"], message.json["embeds"]);

    // The same resolution delivered again changes nothing. It is the same job (the same signed
    // body), whose record already says "done": wait for the redelivery's own record.
    let again = stack.sentry("issue", "res-3", &resolved).await.unwrap();
    assert_eq!(again, jobs, "the same job");
    let status = stack.job(&again[0], SETTLE, |s| s["state"] == "duplicate").await.unwrap();
    assert!(status["reason"].as_str().unwrap_or_default().contains("already"), "{status}");
    assert_eq!(non_packet_comments(&stack), 1);
    assert_eq!(stack.github.comments().len(), 1);
}

/// Linear comments other than the context packet a new issue starts with (issue 16.2).
fn non_packet_comments(stack: &Stack) -> usize {
    stack.linear.comments().iter().filter(|c| !c.body.starts_with("## bugbot context")).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_trackers_alerts_are_processed_and_skipped_cleanly() {
    let stack = Stack::start(StackOptions { linear: false, github: false, discord: false, ..StackOptions::default() })
        .await
        .unwrap();
    let jobs = stack.sentry("event_alert", "none-1", &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    // Absence, after the job's settled status (recorded after every effect of the job).
    assert!(stack.linear.requests().is_empty() && stack.github.requests().is_empty());
    // A clear log line says what was skipped.
    stack.workers.log_containing(SETTLE, "Linear not configured").await.unwrap();
}

/// Issue 18: the consumer counts its own round trips, so that `make bench` can report Durable
/// Object calls and KV writes per alert as counted in workerd. A new alert: its fingerprint claim,
/// the claim's "filed" (which keeps its issue record in the shard) and its batch's settlement in
/// the ledger (status record, counters, issue list), and no KV write. A repeat inside the comment
/// cooldown: its fingerprint claim and its batch's settlement, and no KV write. (Reads for people, like the status polled here,
/// are not counted.)
#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_counts_its_durable_object_calls_and_kv_writes() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let jobs = stack.sentry("event_alert", "counted-1", &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    let counts = stack.admin("counters").await.unwrap();
    assert_eq!(counts["jobs"], 1, "{counts}");
    assert_eq!(counts["durable_object_calls"], 3, "{counts}");
    assert_eq!(counts["kv_writes"], 0, "the issue record is kept by the claim's \"filed\"; {counts}");

    // The same error again (another delivery), inside the comment cooldown.
    let mut again: Value = serde_json::from_slice(&alert()).unwrap();
    again["data"]["event"]["event_id"] = json!("0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    let jobs = stack.sentry("event_alert", "counted-2", &serde_json::to_vec(&again).unwrap()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert!(status["reason"].as_str().unwrap_or_default().contains("counted"), "{status}");
    let counts = stack.admin("counters").await.unwrap();
    assert_eq!(counts["jobs"], 2, "{counts}");
    assert_eq!(counts["durable_object_calls"], 5, "a repeat: its claim and its batch's settlement; {counts}");
    assert_eq!(counts["kv_writes"], 0, "a repeat writes nothing to KV; {counts}");
}

/// The event alert again as another Sentry issue (another fingerprint).
fn another_alert(i: u64) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&alert()).unwrap();
    let event = &mut payload["data"]["event"];
    let issue = 8_000_000 + i;
    event["issue_id"] = json!(issue.to_string());
    event["title"] = json!(format!("LabelError {i}: something broke"));
    event["event_id"] = json!(format!("{i:032x}"));
    event["web_url"] = json!(format!("https://sentry.io/organizations/test-org/issues/{issue}/events/{i:032x}/"));
    event["issue_url"] = json!(format!("https://sentry.io/api/0/issues/{issue}/"));
    serde_json::to_vec(&payload).unwrap()
}

/// Linear's label ids are asked for once per isolate (`LabelCache`), and again when Linear refuses
/// a create because one of those labels was deleted since: the alert is still filed, with the label
/// made again.
#[tokio::test(flavor = "multi_thread")]
async fn linear_label_ids_are_asked_once_and_again_after_a_label_is_deleted() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let lookups = || stack.linear.requests().iter().filter(|r| r.json()["operationName"] == "IssueLabels").count();
    for i in 1..=2 {
        let jobs = stack.sentry("event_alert", &format!("labels-{i}"), &another_alert(i)).await.unwrap();
        let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
        assert_eq!(status["state"], "filed", "{status}");
    }
    assert_eq!(lookups(), 1, "the second alert's labels came from the cache");
    let issues = stack.linear.issues();
    assert_eq!(issues[0].label_ids, issues[1].label_ids);
    assert_eq!(issues[1].label_ids.len(), 3);

    stack.linear.remove_label("bugbot");
    let jobs = stack.sentry("event_alert", "labels-3", &another_alert(3)).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    assert_eq!(lookups(), 2, "asked again after the refused create");
    // Each issue is filed in one request (`IssueFile`: the create, its link and its first comment).
    let creates: Vec<_> =
        stack.linear.requests().into_iter().filter(|r| r.json()["operationName"] == "IssueFile").collect();
    assert_eq!(creates.len(), 4, "three issues, one create refused");
    let labels = stack.linear.labels();
    let bugbot = labels.iter().find(|l| l.name == "bugbot").expect("made again");
    let third = stack.linear.issues().pop().unwrap();
    assert!(third.label_ids.contains(&bugbot.id), "{third:?}");
    assert_eq!(third.label_ids.len(), 3);
}

/// Every outbound call has its `outbound` line, at its level: a call that answered 5xx is a warning,
/// the others are info, and below `LOG_LEVEL` nothing is printed (nor built).
#[tokio::test(flavor = "multi_thread")]
async fn at_log_level_warn_only_the_failed_outbound_calls_are_logged() {
    let mut options = StackOptions::default();
    options.consumer_vars.push(("LOG_LEVEL".into(), "warn".into()));
    let stack = Stack::start(options).await.unwrap();
    // The announcement is the last call of the delivery: every other call answered before it.
    stack.discord.fail_next_matching("POST", "/messages", Failure::ServerError);
    let jobs = stack.sentry("event_alert", "quiet-1", &alert()).await.unwrap();
    stack.settled(&jobs[0], SETTLE).await.unwrap();
    let failed = stack
        .workers
        .log_line(SETTLE, "the failed announcement's outbound line", |l| l["event"] == "outbound" && l["status"] == 500)
        .await
        .unwrap();
    assert_eq!(failed["level"], "warn", "{failed}");
    assert_eq!(failed["outcome"], "error", "{failed}");
    let outbound: Vec<Value> = stack.workers.json_logs().into_iter().filter(|l| l["event"] == "outbound").collect();
    assert!(outbound.iter().all(|l| l["level"] == "warn"), "only warnings at LOG_LEVEL=warn: {outbound:?}");
    assert!(stack.linear.requests().len() + stack.github.requests().len() >= 4, "the calls that were not logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_glitchtip_body_after_the_dedupe_window_is_processed_again() {
    // Issue 15: a GlitchTip body has no timestamp and its job id is a hash of the body, so the same
    // monitor going down again next week sends an identical delivery. Here the window is 2 s.
    let mut options = StackOptions::default();
    options.consumer_vars.push(("DEDUPE_WINDOW_SECS".into(), "2".into()));
    let stack = Stack::start(options).await.unwrap();
    let body = fixture("glitchtip/current_format_general_webhook_uptime_down.json");
    let jobs = stack.glitchtip(&body).await.unwrap();
    let first = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(first["state"], "filed", "{first}");
    // Within the window, an identical delivery is a duplicate (and its effects are not repeated).
    let again = stack.glitchtip(&body).await.unwrap();
    assert_eq!(again, jobs, "the job id is the body's hash");
    let duplicate = stack.job(&jobs[0], SETTLE, |s| s["state"] == "duplicate").await;
    assert!(duplicate.is_ok(), "the copy within the window is a duplicate: {duplicate:?}");
    // After the window, the same body is a new delivery: processed (a repeat of the tracked issue).
    let finished = std::time::Instant::now();
    bugbot_e2e::wait::until(SETTLE, "the 2 s dedupe window to pass", || {
        (finished.elapsed() > Duration::from_secs(3)).then_some(())
    })
    .await
    .unwrap();
    stack.glitchtip(&body).await.unwrap();
    let status =
        stack.job(&jobs[0], SETTLE, |s| s["reason"].as_str().is_some_and(|r| r.contains("occurrence"))).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    assert_eq!(stack.linear.issues().len(), 1, "a repeat of the same issue, not a new one");
}

/// Issue 15: Linear creates the issue but its answer is lost; the retry must find it, not file another.
async fn a_lost_linear_create_response_still_yields_one_issue(failure: Failure) {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    stack.linear.lose_next_response("issueCreate", failure.clone());
    let jobs = stack.sentry("event_alert", "lost-1", &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    let issues = stack.linear.issues();
    assert_eq!(issues.len(), 1, "after a lost response ({failure:?}): {issues:?}");
    assert_eq!(stack.linear.requests().iter().filter(|r| r.text().contains("issueCreate")).count(), 1);
    assert_eq!(stack.github.issues().len(), 1);
    let linked =
        status["links"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains(&issues[0].identifier));
    assert!(linked, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linear_create_answered_with_a_500_after_it_was_made_files_one_issue() {
    a_lost_linear_create_response_still_yields_one_issue(Failure::ServerError).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linear_create_that_times_out_after_it_was_made_files_one_issue() {
    a_lost_linear_create_response_still_yields_one_issue(Failure::Hang).await;
}

/// Discord makes the alert card but its answer is lost: the retry posts the card again with the same
/// `nonce` (`enforce_nonce`), and Discord answers with the first message, so the channel has one card
/// and the issue records that card.
async fn a_lost_discord_card_response_still_yields_one_card(failure: Failure) {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    stack.discord.lose_next_create_response(failure.clone());
    let jobs = stack.sentry("event_alert", "lost-card-1", &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    let card_path = format!("/api/v10/channels/{ALERTS_CHANNEL}/messages");
    let posts: Vec<Value> = stack
        .discord
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == card_path)
        .map(|r| r.json())
        .collect();
    assert_eq!(posts.len(), 2, "the lost post and the retry's");
    let cards = stack.discord.messages(channel());
    assert_eq!(cards.len(), 1, "after a lost answer ({failure:?}): {cards:?}");
    assert_eq!(posts[0]["nonce"], posts[1]["nonce"], "the same nonce both times");
    assert_eq!(posts[1]["enforce_nonce"], true);
    assert_eq!(stack.linear.issues().len(), 1);
    assert_eq!(stack.github.issues().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discord_card_answered_with_a_500_after_it_was_made_is_posted_once() {
    a_lost_discord_card_response_still_yields_one_card(Failure::ServerError).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discord_card_that_times_out_after_it_was_made_is_posted_once() {
    a_lost_discord_card_response_still_yields_one_card(Failure::Hang).await;
}

/// Issue 15.12 end to end: each sink on its own. Linear answers 500 (every request): the GitHub
/// issue and the Discord card still go out at once, and the job is retried for Linear alone. Once
/// Linear recovers, the retry files only the Linear issue: GitHub is not asked to create another,
/// and the card is not posted again (it is edited to link the Linear issue).
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_tracker_does_not_hold_back_the_others_and_only_it_is_retried() {
    let mut options = StackOptions::default();
    // Enough deliveries (1 s, 2 s, 4 s, ... apart) that the job is still being retried when the
    // test lets Linear recover, however busy the machine.
    for (name, value) in &mut options.consumer_vars {
        if name == "RETRY_MAX_ATTEMPTS" {
            "8".clone_into(value);
        }
    }
    options.consumer_queue = json!({"maxRetries": 7});
    let stack = Stack::start(options).await.unwrap();
    stack.linear.fail_always(Failure::ServerError);
    let jobs = stack.sentry("event_alert", "sinks-1", &alert()).await.unwrap();

    // The status is recorded after each attempt's effects: GitHub and Discord are done by then.
    let retrying = stack.job(&jobs[0], SETTLE, |s| s["state"] == "retrying").await.unwrap();
    let reason = retrying["reason"].as_str().unwrap();
    assert!(reason.starts_with("linear"), "retried for Linear alone: {retrying}");
    assert!(stack.linear.issues().is_empty());
    assert_eq!(stack.github.issues().len(), 1, "the GitHub issue went out without waiting for Linear");
    assert_eq!(stack.discord.messages(channel()).len(), 1, "the card went out without waiting for Linear");

    stack.linear.clear_failures();
    let status = stack.job(&jobs[0], SETTLE, |s| s["state"] == "filed").await.unwrap();
    let linear = stack.linear.issues();
    assert_eq!(linear.len(), 1, "{status}");
    assert_eq!(stack.github.issues().len(), 1, "no second GitHub issue");
    let creates = stack
        .github
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == format!("/repos/{}/issues", bugbot_e2e::stack::REPO))
        .count();
    assert_eq!(creates, 1, "GitHub was asked to create the issue once");
    assert_eq!(stack.discord.messages(channel()).len(), 1, "no second card");
    let card_path = format!("/channels/{ALERTS_CHANNEL}/messages");
    let posted =
        stack.discord.requests().into_iter().filter(|r| r.method == "POST" && r.path.ends_with(&card_path)).count();
    assert_eq!(posted, 1, "the card was posted once");
    let links = status["links"].as_array().unwrap();
    assert!(links.iter().any(|l| l.as_str().unwrap().contains(&linear[0].identifier)), "{status}");
    assert!(links.iter().any(|l| l.as_str().unwrap().contains("/issues/")), "the GitHub issue too: {status}");
}
