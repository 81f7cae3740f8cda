//! Issue 19 end to end: alert cards you can act on. Each button authorized and refused, the
//! "Fix with instructions" modal, a mute that holds and one that ends on a regression, and
//! Resolve closing the source issue and the tracked issues together — through the real Workers in
//! workerd against the fakes of Discord, Linear, GitHub and the Sentry API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bugbot_e2e::fake::discord::Message;
use bugbot_e2e::fake::sentry::Issue;
use bugbot_e2e::stack::{ALERTS_CHANNEL, APPLICATION_ID, Stack, StackOptions};
use bugbot_e2e::wait::PATIENCE;
use bugbot_e2e::workers::{another_occurrence, fixture};
use bugbot_shared::source::discord::Snowflake;
use serde_json::{Value, json};

/// A bound on failure, not an expectation: see `bugbot_e2e::wait`.
const SETTLE: Duration = PATIENCE;
const GUILD: &str = "1200000000000000001";
const USER: &str = "1200000000000000002";
const WRITER_ROLE: &str = "1200000000000000003";
/// The Sentry issue of the alert fixture.
const SENTRY_ISSUE: &str = "1117540176";

static NEXT: AtomicU64 = AtomicU64::new(1);

fn snowflake() -> String {
    let now =
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    ((now.saturating_sub(1_420_070_400_000) << 22) + NEXT.fetch_add(1, Ordering::Relaxed)).to_string()
}

fn alert() -> Vec<u8> {
    fixture("sentry/sentry_docs_payloads/event_alert_triggered.json")
}

async fn stack(extra: &[(&str, &str)]) -> Stack {
    let mut options = StackOptions::default();
    options.consumer_vars.push(("DISCORD_WRITE_ROLES".into(), WRITER_ROLE.into()));
    for (k, v) in extra {
        options.consumer_vars.push(((*k).into(), (*v).into()));
    }
    let stack = Stack::start(options).await.unwrap();
    // The alert's Sentry issue, so that Resolve can resolve it at the source.
    stack.sentry.add_issue(Issue {
        id: SENTRY_ISSUE.into(),
        fixture: None,
        title: "ZeroDivisionError: division by zero".into(),
        culprit: "errors.views in ErrorView.get".into(),
        level: "error".into(),
        status: "unresolved".into(),
        project: "backend".into(),
        count: 1,
        user_count: 1,
        first_seen_ms: 0,
        last_seen_ms: 0,
        event: json!({}),
    });
    stack
}

/// Files the alert and returns its card.
async fn card(stack: &Stack) -> Message {
    let jobs = stack.sentry("event_alert", &format!("card-{}", snowflake()), &alert()).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert_eq!(status["state"], "filed", "{status}");
    let channel = Snowflake(ALERTS_CHANNEL.parse().unwrap());
    stack.discord.messages(channel).into_iter().next().expect("the card")
}

fn custom_ids(message: &Message) -> Vec<String> {
    message.json["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|b| b["custom_id"].as_str().or(b["label"].as_str()).unwrap_or_default().to_owned())
        .collect()
}

fn button(message: &Message, prefix: &str) -> String {
    custom_ids(message).into_iter().find(|id| id.starts_with(prefix)).unwrap_or_else(|| {
        panic!("no {prefix} button on the card: {:?}", custom_ids(message));
    })
}

/// A signed interaction on the card (type 3 click or type 5 modal submit); returns the gateway's
/// answer, the job id and the token.
async fn interact(stack: &Stack, card: &Message, kind: u8, data: &Value, roles: &[&str]) -> (Value, String, String) {
    let id = snowflake();
    let token = format!("itok-{id}");
    // The gateway answers a click with a deferred update: its `@original` is the card.
    stack.discord.clicked(&token, card.id);
    let body = serde_json::to_vec(&json!({
        "id": id, "application_id": APPLICATION_ID.to_string(), "type": kind, "token": token,
        "guild_id": GUILD, "channel_id": ALERTS_CHANNEL,
        "member": {"user": {"id": USER, "username": "jane"}, "roles": roles},
        "message": {"id": card.id.to_string(), "channel_id": ALERTS_CHANNEL, "content": ""},
        "data": data, "version": 1
    }))
    .unwrap();
    let mut req = reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
    for (k, v) in stack.keys.sign_discord(&body) {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    (resp.json().await.unwrap(), format!("discord:{id}"), token)
}

/// Clicks a button; returns the job's final status and the token.
async fn click(stack: &Stack, card: &Message, custom_id: &str, roles: &[&str]) -> (Value, String) {
    let data = json!({"custom_id": custom_id, "component_type": 2});
    let (reply, job, token) = interact(stack, card, 3, &data, roles).await;
    assert_eq!(reply, json!({"type": 6}), "a click is a deferred update");
    (settled(stack, &job).await, token)
}

/// The job's final status (`gathering` is progress, not an end).
async fn settled(stack: &Stack, job: &str) -> Value {
    let done = |s: &Value| !matches!(s["state"].as_str(), Some("received" | "retrying" | "gathering") | None);
    stack.job(job, SETTLE, done).await.unwrap()
}

fn the_card(stack: &Stack, card: &Message) -> Message {
    stack.discord.message(card.id).expect("the card is still there")
}

/// A refusal: private (ephemeral), the card untouched and not deleted.
fn assert_refused(stack: &Stack, card: &Message, status: &Value, token: &str) {
    assert_eq!(status["state"], "ignored", "{status}");
    assert!(status["reason"].as_str().unwrap_or_default().starts_with("refused"), "{status}");
    let followups: Vec<_> = stack.discord.followups().into_iter().filter(|f| f.token == token).collect();
    assert_eq!(followups.len(), 1, "{followups:?}");
    assert_eq!(followups[0].body["flags"], 64, "only the clicker sees it");
    assert!(followups[0].body["content"].as_str().unwrap().contains("Not allowed"), "{followups:?}");
    assert!(stack.discord.original_edits().iter().all(|e| e.token != token), "the card is not edited");
    assert_eq!(the_card(stack, card).json, card.json, "the card is unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_button_is_authorized_like_its_command_and_resolve_closes_everything() {
    let stack = stack(&[]).await;
    let card = card(&stack).await;
    for prefix in ["bb1:inv:", "bb1:fix:", "bb1:fixi:", "bb1:res:", "bb1:mute:", "Tracked issue"] {
        button(&card, prefix);
    }

    // Writes need the write role: each is refused privately, and nothing happens.
    for prefix in ["bb1:res:", "bb1:mute:", "bb1:fix:"] {
        let (status, token) = click(&stack, &card, &button(&card, prefix), &[]).await;
        assert_refused(&stack, &card, &status, &token);
    }
    assert_eq!(stack.sentry.issues().iter().find(|i| i.id == SENTRY_ISSUE).unwrap().status, "unresolved");
    assert!(stack.github.issues().iter().all(|i| i.state == "open"));

    // Investigate is a read: anyone in scope; the packet's summary is a follow-up, the card says who.
    let (status, token) = click(&stack, &card, &button(&card, "bb1:inv:"), &[]).await;
    assert_eq!(status["state"], "filed", "the packet is commented on the tracked issue: {status}");
    assert!(stack.discord.followups().iter().any(|f| f.token == token && f.body["flags"] != 64));
    assert_eq!(the_card(&stack, &card).content(), format!("🔎 Investigated by <@{USER}>"));

    // A writer resolves: the source issue and the tracked issues together; the card says who and
    // loses the buttons that no longer apply.
    let (status, _) = click(&stack, &card, &button(&card, "bb1:res:"), &[WRITER_ROLE]).await;
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(stack.sentry.issues().iter().find(|i| i.id == SENTRY_ISSUE).unwrap().status, "resolved");
    assert!(stack.github.issues().iter().all(|i| i.state == "closed"), "{:?}", stack.github.issues());
    assert!(stack.linear.issues().iter().all(|i| i.state_type == "completed"));
    let edited = the_card(&stack, &card);
    assert_eq!(edited.content(), format!("✅ Resolved by <@{USER}>"));
    let left = custom_ids(&edited);
    assert!(left.iter().all(|id| !id.starts_with("bb1:res:") && !id.starts_with("bb1:fix")), "{left:?}");
    assert!(left.iter().any(|id| id == "Tracked issue"), "{left:?}");
    assert_eq!(edited.embeds()[0]["title"].as_str().map(|t| t.starts_with("Resolved: ")), Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fix_modal_opens_at_the_gateway_and_its_submit_is_authorized() {
    let stack = stack(&[]).await;
    let card = card(&stack).await;
    let data = json!({"custom_id": button(&card, "bb1:fixi:"), "component_type": 2});
    let (modal, job, _) = interact(&stack, &card, 3, &data, &[WRITER_ROLE]).await;
    assert_eq!(modal["type"], 9, "{modal}");
    assert!(modal["data"]["custom_id"].as_str().unwrap().starts_with("bb1:fixm:"));
    let status = stack.admin(&format!("jobs/{job}")).await.unwrap();
    assert!(status.get("state").is_none(), "the modal is answered without a job: {status}");

    // The submit from someone without the write role is refused, privately.
    let submit = json!({"custom_id": modal["data"]["custom_id"], "components": [{"type": 18,
        "component": {"type": 4, "custom_id": "instructions", "value": "guard b == 0; do not touch payments"}}]});
    let (reply, job, token) = interact(&stack, &card, 5, &submit, &[]).await;
    assert_eq!(reply, json!({"type": 6}));
    let status = stack.settled(&job, SETTLE).await.unwrap();
    assert_refused(&stack, &card, &status, &token);

    // A forged or outdated custom_id acts on nothing.
    for forged in ["bb0:res:sentry:1117540176", "bb1:res:sentry:999", "bb1:nuke:sentry:1117540176"] {
        let (status, token) = click(&stack, &card, forged, &[WRITER_ROLE]).await;
        assert_eq!(status["state"], "ignored", "{forged}: {status}");
        let followups: Vec<_> = stack.discord.followups().into_iter().filter(|f| f.token == token).collect();
        assert_eq!(followups.len(), 1, "{forged}: {followups:?}");
        assert_eq!(followups[0].body["flags"], 64);
    }
    assert_eq!(stack.sentry.issues().iter().find(|i| i.id == SENTRY_ISSUE).unwrap().status, "unresolved");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mute_holds_repeats_silent_and_ends_on_a_regression() {
    // Every repeat would comment (no cooldown), so silence is the mute's doing.
    let stack = stack(&[("REPEAT_COMMENT_COOLDOWN_SECS", "0")]).await;
    let card = card(&stack).await;
    let (status, _) = click(&stack, &card, &button(&card, "bb1:mute:"), &[WRITER_ROLE]).await;
    assert_eq!(status["state"], "done", "{status}");
    let muted = the_card(&stack, &card);
    assert!(muted.content().starts_with("🔕 Muted"), "{}", muted.content());
    button(&muted, "bb1:unmute:");

    // `/bugbot status` lists it.
    let (reply, job, token) = {
        let id = snowflake();
        let token = format!("itok-{id}");
        let data = json!({"name": "bugbot", "type": 1, "options": [{"name": "status", "type": 1, "options": []}]});
        let body = serde_json::to_vec(&json!({
            "id": id, "application_id": APPLICATION_ID.to_string(), "type": 2, "token": token,
            "guild_id": GUILD, "channel_id": snowflake(),
            "member": {"user": {"id": USER, "username": "jane"}, "roles": []}, "data": data, "version": 1
        }))
        .unwrap();
        let mut req =
            reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
        for (k, v) in stack.keys.sign_discord(&body) {
            req = req.header(k, v);
        }
        let reply: Value = req.send().await.unwrap().json().await.unwrap();
        (reply, format!("discord:{id}"), token)
    };
    assert_eq!(reply["type"], 5);
    stack.settled(&job, SETTLE).await.unwrap();
    let shown = stack.discord.original_edits().into_iter().find(|e| e.token == token).unwrap();
    let text = shown.body["content"].as_str().unwrap();
    assert!(text.contains("**Muted** (1)") && text.contains("sentry:1117540176"), "{text}");

    // Repeats while muted: counted, not commented (Linear's first comment is the filing's context
    // packet).
    let filed_comments = stack.linear.comments();
    for n in 1..=2 {
        let jobs = stack.sentry("event_alert", &format!("muted-{n}"), &another_occurrence(&alert(), n)).await.unwrap();
        let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
        assert_eq!(status["state"], "filed", "{status}");
        assert!(status["reason"].as_str().unwrap().contains("counted"), "{status}");
    }
    assert_eq!(stack.linear.comments(), filed_comments);
    assert!(filed_comments.iter().all(|c| c.body.starts_with("## bugbot context")), "{filed_comments:?}");
    assert!(stack.github.comments().is_empty());

    // Resolved, then it recurs: the regression is announced and ends the mute.
    let (status, _) = click(&stack, &card, &button(&muted, "bb1:res:"), &[WRITER_ROLE]).await;
    assert_eq!(status["state"], "done", "{status}");
    let comments = stack.linear.comments().len();
    let jobs = stack.sentry("event_alert", "regressed-1", &another_occurrence(&alert(), 3)).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert!(status["reason"].as_str().unwrap().contains("regression"), "{status}");
    assert!(stack.linear.comments().len() > comments, "the regression is commented");
    let after = stack.linear.comments().len();
    let jobs = stack.sentry("event_alert", "after-1", &another_occurrence(&alert(), 4)).await.unwrap();
    let status = stack.settled(&jobs[0], SETTLE).await.unwrap();
    assert!(status["reason"].as_str().unwrap().contains("commented"), "no longer muted: {status}");
    assert!(stack.linear.comments().len() > after);
}

/// The installation of the alert fixture's integration (`installation.uuid`).
const INSTALLATION: &str = "a8e5d37a-696c-4c54-adb5-b3f28d64c7de";

#[tokio::test(flavor = "multi_thread")]
async fn the_sentry_issue_is_linked_once_through_the_external_issues_api_even_after_a_429() {
    let stack = stack(&[("REPEAT_COMMENT_COOLDOWN_SECS", "0")]).await;
    stack.sentry.add_installation(INSTALLATION);
    stack.sentry.fail_next(1, bugbot_e2e::fake::Failure::RateLimited { retry_after_secs: 1.0 });
    card(&stack).await;
    // The first write-back was throttled: not linked, and the alert filed all the same.
    assert!(stack.sentry.external_issues().is_empty());
    // The next commented occurrence tries again; later ones do not repeat it.
    for n in 1..=2 {
        let jobs = stack.sentry("event_alert", &format!("wb-{n}"), &another_occurrence(&alert(), n)).await.unwrap();
        stack.settled(&jobs[0], SETTLE).await.unwrap();
    }
    let links = stack.eventually(SETTLE, "the external issue link", || {
        let links = stack.sentry.external_issues();
        (!links.is_empty()).then_some(links)
    });
    let links = links.await.unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    let linear = &stack.linear.issues()[0];
    assert_eq!(links[0].issue_id, SENTRY_ISSUE);
    assert_eq!(links[0].installation, INSTALLATION);
    assert_eq!(links[0].identifier, linear.identifier);
    assert!(links[0].web_url.contains(&linear.identifier), "{links:?}");
    let posts = stack.sentry.requests().into_iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 2, "one throttled, one that worked, none after");
    // Never the comment endpoint on Sentry (it refuses integration tokens).
    assert!(stack.sentry.comments().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_glitchtip_issue_gets_one_comment_and_resolve_closes_the_tracked_issue_too() {
    // A failed write-back is tried again on the next commented occurrence: no cooldown here.
    let stack = stack(&[("REPEAT_COMMENT_COOLDOWN_SECS", "0")]).await;
    let issue = stack.sentry.issue_id("python_zero_division");
    let mut alert: Value =
        serde_json::from_slice(&fixture("glitchtip/current_format_general_webhook_issue.json")).unwrap();
    alert["attachments"][0]["title_link"] = json!(format!("{}/acme/issues/{issue}", stack.sentry.url()));
    stack.sentry.fail_next(1, bugbot_e2e::fake::Failure::ServerError);
    let body = serde_json::to_vec(&alert).unwrap();
    let jobs = stack.glitchtip(&body).await.unwrap();
    assert_eq!(stack.settled(&jobs[0], SETTLE).await.unwrap()["state"], "filed");
    assert!(stack.sentry.comments().is_empty(), "the 500 lost it");
    // GlitchTip resends the alert (a new delivery): the comment is written this time, once.
    alert["text"] = json!("GlitchTip Alert (again)");
    for _ in 0..2 {
        alert["text"] = json!(format!("{} ", alert["text"].as_str().unwrap()));
        let jobs = stack.glitchtip(&serde_json::to_vec(&alert).unwrap()).await.unwrap();
        stack.settled(&jobs[0], SETTLE).await.unwrap();
    }
    let comments = stack.eventually(SETTLE, "the GlitchTip comment", || {
        let c = stack.sentry.comments();
        (!c.is_empty()).then_some(c)
    });
    let comments = comments.await.unwrap();
    assert_eq!(comments.len(), 1, "{comments:?}");
    let linear = &stack.linear.issues()[0];
    assert_eq!(comments[0].0, issue);
    assert!(comments[0].1.contains(&linear.identifier), "{comments:?}");

    // `/bugbot resolve <GlitchTip URL>` resolves it there and closes the tracked issues with it.
    let id = snowflake();
    let data = json!({"name": "bugbot", "type": 1, "options": [{"name": "resolve", "type": 1,
        "options": [{"name": "issue", "type": 3, "value": alert["attachments"][0]["title_link"]}]}]});
    let body = serde_json::to_vec(&json!({
        "id": id, "application_id": APPLICATION_ID.to_string(), "type": 2, "token": format!("itok-{id}"),
        "guild_id": GUILD, "channel_id": snowflake(),
        "member": {"user": {"id": USER, "username": "jane"}, "roles": [WRITER_ROLE]}, "data": data, "version": 1
    }))
    .unwrap();
    let mut req = reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
    for (k, v) in stack.keys.sign_discord(&body) {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    let status = stack.settled(&format!("discord:{id}"), SETTLE).await.unwrap();
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(stack.sentry.issues().iter().find(|i| i.id == issue).unwrap().status, "resolved");
    assert!(stack.linear.issues().iter().all(|i| i.state_type == "completed"), "{:?}", stack.linear.issues());
    assert!(stack.github.issues().iter().all(|i| i.state == "closed"));
}

/// The link buttons of a card, `(label, url)`.
fn links(message: &Message) -> Vec<(String, String)> {
    message.json["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| Some((b["label"].as_str()?.to_owned(), b["url"].as_str()?.to_owned())))
        .collect()
}

/// The executor's signed report on the gateway's callback; returns the result's job id.
async fn report_back(stack: &Stack, report: &Value) -> String {
    let body = serde_json::to_vec(report).unwrap();
    let now = bugbot_e2e::keys::now_secs();
    let signature = bugbot_shared::executor::sign(stack.keys.executor_secret.as_bytes(), now, &body);
    let resp = reqwest::Client::new()
        .post(format!("{}/executor/callback", stack.workers.url))
        .header("x-bugbot-timestamp", now.to_string())
        .header("x-bugbot-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    accepted["jobs"][0].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fix_from_the_card_puts_its_pr_on_the_card_and_links_it_from_the_sentry_issue_once() {
    // The fix goes out as a workflow dispatch (recorded by the GitHub fake); the test plays the
    // executor and reports back on the gateway's signed callback.
    let stack = stack(&[
        ("FIX_BACKEND", "actions"),
        ("EXECUTOR_CALLBACK_URL", "https://gateway.invalid/executor/callback"),
        ("FIX_ALLOWED_PATHS", "**"),
    ])
    .await;
    stack.sentry.add_installation(INSTALLATION);
    let card = card(&stack).await;
    let linear = stack.linear.issues()[0].identifier.clone();
    let tracked = stack
        .eventually(SETTLE, "the tracked issue's link on Sentry", || stack.sentry.external_issues().into_iter().next());
    assert_eq!(tracked.await.unwrap().identifier, linear);

    let (status, _) = click(&stack, &card, &button(&card, "bb1:fix:"), &[WRITER_ROLE]).await;
    assert_eq!(status["state"], "fixing", "{status}");
    let running = the_card(&stack, &card);
    assert!(custom_ids(&running).iter().all(|id| !id.starts_with("bb1:fix")), "{:?}", custom_ids(&running));
    let dispatch = stack.github.dispatches().into_iter().next().expect("the fix was dispatched");
    let sealed: bugbot_shared::executor::SignedJob = serde_json::from_value(dispatch.client_payload).unwrap();
    let job: Value = serde_json::from_str(&sealed.job).unwrap();
    let branch = job["branch"].as_str().unwrap().to_owned();
    // The executor pushed the branch.
    let pushed = reqwest::Client::new()
        .post(format!("{}/repos/{}/git/refs", stack.github.url(), bugbot_e2e::stack::REPO))
        .header("authorization", format!("Bearer {}", stack.github_token))
        .header("user-agent", "bugbot-e2e")
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .json(&json!({"ref": format!("refs/heads/{branch}"), "sha": "0000000000000000000000000000000000000001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 201);
    let report = json!({"job_id": job["job_id"], "outcome": "fixed", "branch": branch,
        "summary": "Guarded the division.", "files": ["errors/views.py"]});
    let result = report_back(&stack, &report).await;
    let status = settled(&stack, &result).await;
    assert_eq!(status["state"], "pr_opened", "{status}");
    let pr = stack.github.pulls().into_iter().next().expect("the PR");
    let pr_url = format!("/pull/{}", pr.number);

    // The card: "Fix → PR #n", the PR's link button, no Fix buttons (there is a PR).
    let edited = stack
        .eventually(SETTLE, "the card with the PR's link", || {
            let now = the_card(&stack, &card);
            links(&now).iter().any(|(label, _)| label == "Pull request").then_some(now)
        })
        .await
        .unwrap();
    assert_eq!(edited.content(), format!("🔧 Fix → PR #{}", pr.number));
    let pr_link = links(&edited).into_iter().find(|(label, _)| label == "Pull request").unwrap();
    assert!(pr_link.1.ends_with(&pr_url), "{pr_link:?}");
    let ids = custom_ids(&edited);
    assert!(ids.iter().all(|id| !id.starts_with("bb1:fix")), "{ids:?}");
    assert!(ids.iter().any(|id| id.starts_with("bb1:res:")) && ids.contains(&"Tracked issue".to_owned()), "{ids:?}");

    // The Sentry issue now links the PR, naming the tracked issue.
    let linked = stack
        .eventually(SETTLE, "the PR's link on Sentry", || {
            stack.sentry.external_issues().into_iter().find(|l| l.web_url.ends_with(&pr_url))
        })
        .await
        .unwrap();
    assert_eq!(linked.identifier, format!("{linear} → PR #{}", pr.number));
    assert_eq!(linked.issue_id, SENTRY_ISSUE);
    let writes = || stack.sentry.requests().into_iter().filter(|r| r.path.contains("external-issues")).count();
    assert_eq!(writes(), 2, "the tracked issue's link, then the PR's");

    // The same report again is the same job (the gateway dedupes it); a second, different report
    // for the run is told the run already has its result: nothing more is written, the card stays.
    assert_eq!(report_back(&stack, &report).await, result);
    let mut second = report.clone();
    second["summary"] = json!("A second callback for the same run.");
    let again = report_back(&stack, &second).await;
    assert_ne!(again, result);
    let status = settled(&stack, &again).await;
    assert_eq!(status["state"], "duplicate", "{status}");
    assert_eq!(writes(), 2, "the PR's link is written once");
    assert_eq!(stack.github.pulls().len(), 1);
    assert_eq!(the_card(&stack, &card).json, edited.json);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fix_that_ends_without_a_pr_gives_the_card_its_fix_buttons_back() {
    let stack = stack(&[
        ("FIX_BACKEND", "actions"),
        ("EXECUTOR_CALLBACK_URL", "https://gateway.invalid/executor/callback"),
        ("FIX_ALLOWED_PATHS", "**"),
    ])
    .await;
    let card = card(&stack).await;
    let (status, _) = click(&stack, &card, &button(&card, "bb1:fix:"), &[WRITER_ROLE]).await;
    assert_eq!(status["state"], "fixing", "{status}");
    assert!(custom_ids(&the_card(&stack, &card)).iter().all(|id| !id.starts_with("bb1:fix")));
    let dispatch = stack.github.dispatches().into_iter().next().expect("the fix was dispatched");
    let sealed: bugbot_shared::executor::SignedJob = serde_json::from_value(dispatch.client_payload).unwrap();
    let job: Value = serde_json::from_str(&sealed.job).unwrap();
    let report = json!({"job_id": job["job_id"], "outcome": "failed", "reason": "the tests did not pass",
        "branch": job["branch"]});
    let status = settled(&stack, &report_back(&stack, &report).await).await;
    assert_eq!(status["state"], "done", "{status}");
    let edited = stack
        .eventually(SETTLE, "the card with its Fix buttons back", || {
            let now = the_card(&stack, &card);
            custom_ids(&now).iter().any(|id| id.starts_with("bb1:fix:")).then_some(now)
        })
        .await
        .unwrap();
    assert!(edited.content().starts_with("🔧 Fix ended: failed"), "{}", edited.content());
    button(&edited, "bb1:fixi:");
    assert!(links(&edited).iter().all(|(label, _)| label != "Pull request"));
    assert!(stack.github.pulls().is_empty());
}
