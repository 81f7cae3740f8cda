//! Issue 4 end to end: Discord commands and the context packet, through the real Workers in
//! workerd against the fakes of Discord, Linear, GitHub, the Sentry API and PostHog.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bugbot_e2e::fake::Failure;
use bugbot_e2e::fake::discord::InteractionCallKind;
use bugbot_e2e::fake::github::Commit;
use bugbot_e2e::stack::{APPLICATION_ID, REPO, Stack, StackOptions};
use bugbot_e2e::wait::PATIENCE;
use bugbot_shared::command::MENU_CONTEXTUALIZE;
use bugbot_shared::source::discord::Snowflake;
use serde_json::{Value, json};

/// A bound on failure, not an expectation: see `bugbot_e2e::wait`.
const SETTLE: Duration = PATIENCE;
const GUILD: &str = "1200000000000000001";
const USER: &str = "1200000000000000002";
const WRITER_ROLE: &str = "1200000000000000003";

static NEXT: AtomicU64 = AtomicU64::new(1);

fn snowflake() -> String {
    // Unique per test process and run: time-based high bits.
    let now =
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    ((now.saturating_sub(1_420_070_400_000) << 22) + NEXT.fetch_add(1, Ordering::Relaxed)).to_string()
}

/// A signed interaction; returns its job id and token.
async fn interact(stack: &Stack, channel: Snowflake, roles: &[&str], data: &Value) -> (String, String) {
    let id = snowflake();
    let token = format!("itok-{id}");
    let body = serde_json::to_vec(&json!({
        "id": id, "application_id": APPLICATION_ID.to_string(), "type": 2, "token": token,
        "guild_id": GUILD, "channel_id": channel.to_string(),
        "member": {"user": {"id": USER, "username": "jane"}, "roles": roles},
        "data": data, "version": 1
    }))
    .unwrap();
    let mut req = reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
    for (k, v) in stack.keys.sign_discord(&body) {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["type"], 5, "deferred");
    (format!("discord:{id}"), token)
}

/// The job's final status (`gathering` is progress, not an end).
async fn settled(stack: &Stack, job: &str, timeout: Duration) -> anyhow::Result<Value> {
    stack
        .job(job, timeout, |s| !matches!(s["state"].as_str(), Some("received" | "retrying" | "gathering") | None))
        .await
}

fn slash(sub: &str, options: &Value) -> Value {
    json!({"name": "bugbot", "type": 1, "options": [{"name": sub, "type": 1, "options": options}]})
}

fn menu(stack: &Stack, channel: Snowflake, message: Snowflake) -> Value {
    let stored = stack.discord.messages(channel).into_iter().find(|m| m.id == message).unwrap();
    json!({"name": MENU_CONTEXTUALIZE, "type": 3, "target_id": message.to_string(),
           "resolved": {"messages": {message.to_string(): stored.json}}})
}

fn edit_for(stack: &Stack, token: &str) -> String {
    let edits: Vec<_> = stack.discord.original_edits().into_iter().filter(|e| e.token == token).collect();
    assert_eq!(edits.len(), 1, "the deferred reply is edited once, in place: {edits:?}");
    edits[0].body["content"].as_str().unwrap_or_default().to_owned()
}

struct World {
    channel: Snowflake,
    report: Snowflake,
    sentry_url: String,
    session: String,
    closed_issue: u64,
}

const VIEWS: &str = "from django.views import View\n\n\nclass Ratio(View):\n    \"\"\"Checkout ratios.\"\"\"\n\n    def ratio(self, a, b):\n        return a / b\n\n    def total(self):\n        return 1\n\n\n\nclass ErrorView(View):\n    def get(self, request):\n        # the checkout total\n        return 0/0  # BUGBOT-LINE-18\n\n    def post(self, request):\n        return None\n";

/// The repository, the trackers' history, PostHog and the conversation the scenarios share.
async fn world(stack: &Stack) -> World {
    stack.github.put_file("errors/views.py", VIEWS);
    stack.github.put_file(
        "runbooks/zero-division.md",
        "---\ntitle: Division by zero in checkout\npatterns: [\"ZeroDivisionError\"]\n---\n# Steps\n",
    );
    stack.github.put_file("runbooks/db.md", "---\npatterns:\n  - OperationalError\n---\n");
    stack.github.add_commit(Commit {
        sha: "c0ffee1234567890c0ffee1234567890c0ffee12".into(),
        paths: vec!["errors/views.py".into()],
        author: "Sam Coder".into(),
        date: "2024-05-01T10:00:00Z".into(),
        message: "Compute checkout ratios".into(),
    });
    let closed_issue = stack.github.add_issue("ZeroDivisionError in checkout ratio", "fixed by guarding b == 0", &[]);
    let closed = reqwest::Client::new()
        .patch(format!("{}/repos/{REPO}/issues/{closed_issue}", stack.github.url()))
        .bearer_auth(&stack.github_token)
        .header("user-agent", "bugbot-e2e")
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .json(&json!({"state": "closed", "state_reason": "completed"}))
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success());
    let person = stack.posthog.add_person("jane.doe@example.com");
    // Ten days old: outside PostHog's default 3-day window.
    let session = stack.posthog.add_recording(&person, 10, 4);

    let sentry_id = stack.sentry.issue_id("python_zero_division");
    let sentry_url = stack.sentry.issue_url(&sentry_id);
    let channel = Snowflake(snowflake().parse().unwrap());
    stack.discord.add_message(channel, "ops", "anyone seeing checkout errors?");
    let report =
        stack.discord.add_message(channel, "jane", &format!("checkout 500s since this morning: <{sentry_url}>"));
    stack.discord.add_message(channel, "support", "customer is jane.doe@example.com, she retried twice");
    World { channel, report, sentry_url, session, closed_issue }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_command_files_one_issue_with_the_whole_packet_and_a_follow_up_reuses_it() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let w = world(&stack).await;

    let (job, token) = interact(&stack, w.channel, &[], &menu(&stack, w.channel, w.report)).await;
    let status = settled(&stack, &job, SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    let reason = status["reason"].as_str().unwrap();
    for source in ["conversation=", "sentry=", "posthog=", "code=", "commits=", "similar=", "runbooks=", "total="] {
        assert!(reason.contains(source), "per-source timings: {reason}");
    }

    let issues = stack.linear.issues();
    assert_eq!(issues.len(), 1, "one tracked issue");
    assert!(issues[0].title.contains("ZeroDivisionError"), "{}", issues[0].title);
    let comments = stack.linear.comments();
    assert_eq!(comments.len(), 1);
    let packet = &comments[0].body;
    assert!(packet.contains("errors/views.py:18"), "mapped frame:\n{packet}");
    assert!(packet.contains("BUGBOT-LINE-18"), "code around the line from the contents API:\n{packet}");
    assert!(packet.contains("`c0ffee1` Compute checkout ratios"), "suspect commit:\n{packet}");
    assert!(packet.contains(&format!("#{}", w.closed_issue)) && packet.contains("resolved"), "similar:\n{packet}");
    assert!(packet.contains("runbooks/zero-division.md"), "runbook:\n{packet}");
    assert!(!packet.contains("runbooks/db.md"), "only matching runbooks:\n{packet}");
    assert!(packet.contains(&stack.posthog.replay_url(&w.session)), "recording:\n{packet}");
    assert!(packet.contains("4 console errors"), "{packet}");
    assert!(packet.contains("checkout 500s since this morning"), "conversation excerpt:\n{packet}");
    assert!(packet.contains(&w.sentry_url), "{packet}");
    let windows: Vec<_> =
        stack.posthog.requests().iter().filter_map(|r| r.query_param("date_from")).collect::<Vec<_>>();
    assert_eq!(windows, ["-30d"], "a window wider than PostHog's default");

    let reply = edit_for(&stack, &token);
    assert!(reply.contains(&issues[0].identifier) && reply.contains("Full packet: <"), "{reply}");
    // The packet is long, so it follows the summary as follow-up messages within Discord's limits.
    let follow_ups: Vec<String> = stack
        .discord
        .followups()
        .into_iter()
        .filter(|c| c.token == token)
        .map(|c| c.body["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!follow_ups.is_empty() && follow_ups.len() <= 3, "{follow_ups:?}");
    assert!(follow_ups.iter().all(|f| f.chars().count() <= 2_000));
    assert!(follow_ups.concat().contains("```"), "the stack with code is in the follow-ups");
    assert!(reply.contains("errors/views.py:18"), "{reply}");

    // A second command in the same thread: no repetition needed, same issue.
    let (job2, token2) = interact(
        &stack,
        w.channel,
        &[],
        &slash("contextualize", &json!([{"name":"note","type":3,"value":"still failing"}])),
    )
    .await;
    assert_eq!(settled(&stack, &job2, SETTLE).await.unwrap()["state"], "filed");
    assert_eq!(stack.linear.issues().len(), 1, "the thread's issue is reused");
    let comments = stack.linear.comments();
    assert_eq!(comments.len(), 2);
    assert!(comments[1].body.contains("still failing") && comments[1].body.contains("errors/views.py:18"));
    assert!(edit_for(&stack, &token2).contains(&issues[0].identifier));

    // status shows the thread's jobs.
    let (job3, token3) = interact(&stack, w.channel, &[], &slash("status", &json!([]))).await;
    assert_eq!(settled(&stack, &job3, SETTLE).await.unwrap()["state"], "done");
    let shown = edit_for(&stack, &token3);
    assert!(shown.contains(&issues[0].identifier) && shown.contains("filed"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unauthorized_user_is_refused_and_nothing_is_filed() {
    let mut options = StackOptions::default();
    options.consumer_vars.push(("DISCORD_READ_ROLES".into(), "1200000000000000099".into()));
    let stack = Stack::start(options).await.unwrap();
    let w = world(&stack).await;
    let (job, token) = interact(&stack, w.channel, &[], &menu(&stack, w.channel, w.report)).await;
    let status = settled(&stack, &job, SETTLE).await.unwrap();
    assert_eq!(status["state"], "ignored", "{status}");
    assert!(status["reason"].as_str().unwrap().starts_with("refused"), "{status}");
    // Ephemeral: an ephemeral follow-up (flags 64), and the public placeholder deleted.
    let followup = stack.discord.followups().into_iter().find(|c| c.token == token).expect("a follow-up");
    assert!(followup.body["content"].as_str().unwrap().contains("Not allowed"));
    assert_eq!(followup.body["flags"], 64);
    assert!(
        stack
            .discord
            .interaction_calls()
            .iter()
            .any(|c| c.token == token && c.kind == InteractionCallKind::DeleteOriginal),
        "the public placeholder is deleted"
    );
    // Absence, after the job's settled status (recorded after every effect of the job).
    assert!(stack.linear.issues().is_empty() && stack.linear.comments().is_empty());
    assert!(stack.sentry.requests().is_empty(), "no source was read");
    // The refusal is logged.
    stack.workers.log_containing(SETTLE, "\"refused\"").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_posthog_outage_yields_a_packet_with_a_note() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let w = world(&stack).await;
    stack.posthog.fail_always(Failure::ServerError);
    let (job, token) = interact(&stack, w.channel, &[], &menu(&stack, w.channel, w.report)).await;
    let status = settled(&stack, &job, SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    let packet = &stack.linear.comments()[0].body;
    assert!(packet.contains("PostHog: posthog: transient failure: HTTP 503"), "{packet}");
    assert!(packet.contains("errors/views.py:18"), "the other sources still made it:\n{packet}");
    assert!(edit_for(&stack, &token).contains("PostHog"));
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_stats_and_resolve_use_the_sentry_api() {
    let mut options = StackOptions::default();
    options.consumer_vars.push(("DISCORD_WRITE_ROLES".into(), WRITER_ROLE.into()));
    let stack = Stack::start(options).await.unwrap();
    let channel = Snowflake(snowflake().parse().unwrap());
    let (job, token) =
        interact(&stack, channel, &[], &slash("errors", &json!([{"name":"hours","type":4,"value":48}]))).await;
    assert_eq!(settled(&stack, &job, SETTLE).await.unwrap()["state"], "done");
    let text = edit_for(&stack, &token);
    assert!(text.contains("Top unresolved errors") && text.contains("ZeroDivisionError"), "{text}");
    let listed = stack.sentry.requests().into_iter().find(|r| r.path.ends_with("/issues/")).unwrap();
    assert_eq!(listed.query_param("statsPeriod").as_deref(), Some("48h"));

    let (job, token) =
        interact(&stack, channel, &[], &slash("stats", &json!([{"name":"period","type":3,"value":"week"}]))).await;
    assert_eq!(settled(&stack, &job, SETTLE).await.unwrap()["state"], "done");
    let text = edit_for(&stack, &token);
    assert!(text.contains("By project") && text.contains("backend") && text.contains("Trend"), "{text}");
    // The same numbers as the daily digest come first (bugbot's own counters, today vs yesterday).
    assert!(text.starts_with("**bugbot stats for "), "{text}");

    let id = stack.sentry.issue_id("python_zero_division");
    let url = stack.sentry.issue_url(&id);
    let resolve = slash("resolve", &json!([{"name":"issue","type":3,"value": url}]));
    // Reading roles are not enough to resolve.
    let (job, token) = interact(&stack, channel, &[], &resolve).await;
    assert_eq!(settled(&stack, &job, SETTLE).await.unwrap()["state"], "ignored");
    let refusal = stack.discord.followups().into_iter().find(|c| c.token == token).expect("an ephemeral refusal");
    assert!(refusal.body["content"].as_str().unwrap().contains("write role"));
    assert_eq!(refusal.body["flags"], 64);
    let (job, token) = interact(&stack, channel, &[WRITER_ROLE], &resolve).await;
    assert_eq!(settled(&stack, &job, SETTLE).await.unwrap()["state"], "done");
    assert!(edit_for(&stack, &token).contains("Resolved"));
    let issue = stack.sentry.issues().into_iter().find(|i| i.id == id).unwrap();
    assert_eq!(issue.status, "resolved");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_server_configured_every_command_is_refused_with_what_to_set() {
    // Issue 15: any server that adds the bot (Discord's "Public Bot" is on by default) could read.
    let mut options = StackOptions::default();
    options.consumer_vars.retain(|(k, _)| k != "DISCORD_ALLOWED_GUILDS");
    let stack = Stack::start(options).await.unwrap();
    let w = world(&stack).await;
    let investigate = slash("investigate", &json!([{"name": "issue", "type": 3, "value": w.sentry_url}]));
    let (job, token) = interact(&stack, w.channel, &[], &investigate).await;
    let status = settled(&stack, &job, SETTLE).await.unwrap();
    assert_eq!(status["state"], "ignored", "{status}");
    let refusal = stack.discord.followups().into_iter().find(|c| c.token == token).expect("an ephemeral refusal");
    assert_eq!(refusal.body["flags"], 64);
    let text = refusal.body["content"].as_str().unwrap();
    assert!(text.contains("DISCORD_ALLOWED_GUILDS") && text.contains(GUILD), "tells the admin what to set: {text}");
    // Absence, after the job settled.
    assert!(stack.sentry.requests().is_empty(), "no source was read");
    assert!(stack.linear.issues().is_empty() && stack.linear.comments().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_frame_pulls_no_file_outside_code_paths_into_discord() {
    // Issue 15: an event sent with a public DSN names `config/production.py:40`; investigate must not
    // show that file of the private repository.
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let w = world(&stack).await;
    let secrets = (1..=60).map(|n| format!("DB_PASSWORD_{n} = \"BUGBOT-SECRET-{n}\"")).collect::<Vec<_>>().join("\n");
    stack.github.put_file("config/production.py", &secrets);
    let id = stack.sentry.issue_id("python_zero_division");
    let mut issue = stack.sentry.issues().into_iter().find(|i| i.id == id).unwrap();
    let crafted = json!({"filename": "config/production.py", "absPath": "/code/config/production.py",
        "module": "config.production", "lineNo": 40, "inApp": true, "function": "load", "context": []});
    for entry in issue.event["entries"].as_array_mut().unwrap() {
        if entry["type"] == "exception" {
            entry["data"]["values"][0]["stacktrace"]["frames"].as_array_mut().unwrap().push(crafted.clone());
        }
    }
    stack.sentry.add_issue(issue);
    let investigate = slash("investigate", &json!([{"name": "issue", "type": 3, "value": w.sentry_url}]));
    let (job, token) = interact(&stack, w.channel, &[], &investigate).await;
    let status = settled(&stack, &job, SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    let packet = &stack.linear.comments()[0].body;
    assert!(packet.contains("config/production.py:40"), "the frame is listed:\n{packet}");
    assert!(packet.contains("not shown"), "{packet}");
    assert!(packet.contains("BUGBOT-LINE-18"), "code inside CODE_PATHS is still shown:\n{packet}");
    let mut shown: Vec<String> = stack
        .discord
        .interaction_calls()
        .into_iter()
        .filter(|c| c.token == token)
        .map(|c| c.body.to_string())
        .collect();
    shown.push(packet.clone());
    assert!(shown.iter().all(|s| !s.contains("BUGBOT-SECRET")), "the file's content leaked: {shown:?}");
    assert!(
        !stack.github.requests().iter().any(|r| r.path.contains("config/production.py")),
        "the file was not even read"
    );
}
