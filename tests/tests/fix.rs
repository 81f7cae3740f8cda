//! Issue 6 end to end: a fix request becomes a draft PR. Real Workers in workerd, the real executor
//! (in process) running the real Claude Code CLI against the fake model API, a real bare repository
//! as the remote, and the fakes of GitHub and Discord.

use std::time::Duration;

use bugbot_e2e::anthropic::Turn;
use bugbot_e2e::keys::TestKeys;
use bugbot_e2e::local_executor::{LocalExecutor, free_port};
use bugbot_e2e::stack::{ALERTS_CHANNEL, APPLICATION_ID, Stack, StackOptions};
use bugbot_e2e::workers::fixture;
use bugbot_shared::source::discord::Snowflake;
use serde_json::{Value, json};

/// A bound on failure, not an expectation (see `bugbot_e2e::wait`): a fix run starts the Claude Code
/// CLI, which is slow to start on a busy machine.
const SETTLE: Duration = Duration::from_mins(4);

fn fixing_turns() -> Vec<Turn> {
    vec![
        Turn::read("src/lib.rs"),
        Turn::edit("src/lib.rs", "a - b", "a + b"),
        Turn::text("Root cause: add() subtracted its operands. Changed `a - b` to `a + b`."),
    ]
}

async fn fix_stack(turns: Vec<Turn>, extra: &[(&str, &str)]) -> (Stack, LocalExecutor) {
    fix_stack_via(Route::Url, turns, extra).await
}

/// How the consumer reaches the executor.
#[derive(PartialEq)]
enum Route {
    /// `EXECUTOR_URL` (self-hosted).
    Url,
    /// `EXECUTOR_URL` unset: the `ExecutorContainer` Durable Object, which (without a container
    /// runtime) forwards to `EXECUTOR_LOCAL_URL`.
    ContainerObject,
    /// Neither: the object has nowhere to send the job.
    Nowhere,
}

async fn fix_stack_via(route: Route, turns: Vec<Turn>, extra: &[(&str, &str)]) -> (Stack, LocalExecutor) {
    let keys = TestKeys::new();
    let executor = LocalExecutor::start(turns, &keys.executor_secret).await;
    // The gateway's port goes into the callback URL before the Workers start; should another process
    // take it in between, start again on another one.
    for attempt in 1.. {
        let port = free_port();
        let mut options = StackOptions {
            linear: false,
            gateway_port: Some(port),
            keys: Some(keys.clone()),
            ..StackOptions::default()
        };
        let mut vars = match route {
            Route::Url => vec![("EXECUTOR_URL".to_owned(), executor.url.clone())],
            Route::ContainerObject => vec![("EXECUTOR_LOCAL_URL".to_owned(), executor.url.clone())],
            Route::Nowhere => vec![],
        };
        vars.extend([
            ("EXECUTOR_CALLBACK_URL".to_owned(), format!("http://127.0.0.1:{port}/executor/callback")),
            ("FIX_CLONE_URL".to_owned(), executor.clone_url()),
            ("FIX_BASE_REF".to_owned(), "main".to_owned()),
            ("FIX_ALLOWED_PATHS".to_owned(), "src/**".to_owned()),
            ("FIX_TEST_COMMAND".to_owned(), "sh check.sh".to_owned()),
            ("FIX_TIMEOUT_SECS".to_owned(), "120".to_owned()),
            // `fix` is a write command: closed until someone may run it (maria and lee below).
            ("DISCORD_ADMIN_USERS".to_owned(), "1100000000000000010,1100000000000000013".to_owned()),
        ]);
        vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        options.consumer_vars.extend(vars);
        match Stack::start(options).await {
            Ok(stack) => {
                stack.github.set_backing_repo(&executor.remote);
                return (stack, executor);
            }
            Err(e) if attempt < 3 && format!("{e:#}").contains("ADDRESS_IN_USE") => {}
            Err(e) => panic!("the stack did not start: {e:#}"),
        }
    }
    unreachable!("the loop returns or panics")
}

/// "Fix with bugbot" on a message reporting the bug; returns the interaction token.
async fn fix_with_bugbot(stack: &Stack, content: &str) -> (String, reqwest::StatusCode) {
    let id = format!("{}", 1_400_000_000_000_000_000u64 + u64::from(rand_u16()));
    let token = format!("itok-{id}");
    let body = serde_json::to_vec(&json!({
        "id": id, "application_id": APPLICATION_ID.to_string(), "type": 2, "token": token,
        "guild_id": "1100000000000000009", "channel_id": ALERTS_CHANNEL,
        "member": {"user": {"id": "1100000000000000010", "username": "maria"}, "roles": []},
        "data": {"name": "Fix with bugbot", "type": 3, "target_id": "1100000000000000011",
            "resolved": {"messages": {"1100000000000000011": {"id": "1100000000000000011", "channel_id": ALERTS_CHANNEL,
                "content": content, "author": {"id": "1100000000000000012", "username": "support"}}}}}
    }))
    .unwrap();
    let mut req = reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
    for (k, v) in stack.keys.sign_discord(&body) {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    (token, resp.status())
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).unwrap();
    u16::from_le_bytes(b)
}

fn edits_of(stack: &Stack, token: &str) -> Vec<String> {
    stack
        .discord
        .original_edits()
        .into_iter()
        .filter(|c| c.token == token)
        .map(|c| c.body["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fix_with_bugbot_on_a_bug_report_opens_one_draft_pr() {
    let (stack, executor) = fix_stack(fixing_turns(), &[]).await;
    let (token, status) = fix_with_bugbot(&stack, "Totals are wrong: add(2, 2) returns 0 on the invoice page").await;
    assert_eq!(status, 200);
    let pr = stack.eventually(SETTLE, "a pull request", || stack.github.pulls().into_iter().next()).await.unwrap();
    assert!(pr.draft);
    assert_eq!(pr.base, "main");
    assert_eq!(pr.head, "bugbot/fix-1");
    let body = pr.body.clone().unwrap_or_default();
    assert!(body.contains("Fixes #1"), "{body}");
    assert!(body.contains("Root cause"), "the agent's summary: {body}");
    assert!(body.contains("tests passed"), "the test output: {body}");
    // "Reproduce first": the change has no test file, and the PR says so.
    assert!(body.contains("not reproduced: the change adds or changes no test file"), "{body}");
    assert!(executor.branches().contains(&"bugbot/fix-1".to_owned()));
    assert!(executor.show("bugbot/fix-1", "src/lib.rs").contains("a + b"));

    // The issue filed from the report gets a comment with the PR link.
    let issues = stack.github.issues();
    assert_eq!(issues.len(), 1);
    assert!(issues[0].title.starts_with("Totals are wrong"));
    let link = format!("pull/{}", pr.number);
    stack
        .eventually(SETTLE, "the PR comment", || stack.github.comments().into_iter().find(|c| c.body.contains(&link)))
        .await
        .unwrap();
    // The reply went through the stages by being edited in place.
    let edits = stack.eventually(SETTLE, "the final edit", || {
        let e = edits_of(&stack, &token);
        e.last().is_some_and(|l| l.contains("draft PR opened")).then_some(e)
    });
    let edits = edits.await.unwrap();
    assert!(edits.iter().any(|e| e.contains("queued")), "{edits:?}");
    assert!(edits.iter().any(|e| e.contains("running")), "{edits:?}");
    assert_eq!(stack.github.pulls().len(), 1);
    // The job that asked for the fix follows the run, so `/bugbot status` shows the PR.
    let requested = token.trim_start_matches("itok-");
    let status = stack.job(&format!("discord:{requested}"), SETTLE, |s| s["state"] == "pr_opened").await.unwrap();
    assert!(status["links"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("/pull/")), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_to_a_forbidden_path_is_blocked_without_a_pr() {
    // README.md is outside `FIX_ALLOWED_PATHS` (`src/**`): the CLI's rules refuse the edit and the
    // executor refuses to push a partial fix.
    let turns = vec![
        Turn::read("src/lib.rs"),
        Turn::edit("src/lib.rs", "a - b", "a + b"),
        Turn::read("README.md"),
        Turn::edit("README.md", "# calc", "# calc (fixed add)"),
        Turn::text("Fixed add() and documented it."),
    ];
    let (stack, executor) = fix_stack(turns, &[]).await;
    let (token, _) = fix_with_bugbot(&stack, "CI is flaky, please fix").await;
    let edits = stack
        .eventually(SETTLE, "the blocked edit", || {
            let e = edits_of(&stack, &token);
            e.last().is_some_and(|l| l.contains("blocked")).then_some(e)
        })
        .await
        .unwrap();
    assert!(edits.last().unwrap().contains("blocked:"), "the reason is shown: {edits:?}");
    let comment = stack
        .eventually(SETTLE, "the issue comment", || {
            stack.github.comments().into_iter().find(|c| c.body.contains("blocked"))
        })
        .await
        .unwrap();
    assert!(comment.body.contains("nothing was pushed"), "{}", comment.body);
    assert!(stack.github.pulls().is_empty());
    assert_eq!(executor.branches(), vec!["main".to_owned()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_fix_require_repro_on_a_fix_without_a_reproducing_test_opens_no_pr() {
    // The setting reaches the job: the executor refuses to call a fix without a test `fixed`.
    let (stack, executor) = fix_stack(fixing_turns(), &[("FIX_REQUIRE_REPRO", "on")]).await;
    let (token, _) = fix_with_bugbot(&stack, "Totals are wrong: add(2, 2) returns 0").await;
    let edits = stack
        .eventually(SETTLE, "the blocked edit", || {
            let e = edits_of(&stack, &token);
            e.last().is_some_and(|l| l.contains("blocked")).then_some(e)
        })
        .await
        .unwrap();
    assert!(edits.last().unwrap().contains("FIX_REQUIRE_REPRO=on"), "the reason is shown: {edits:?}");
    assert!(stack.github.pulls().is_empty());
    assert_eq!(executor.branches(), vec!["main".to_owned()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_fix_requested_twice_at_once_runs_once() {
    let (stack, executor) = fix_stack(fixing_turns(), &[]).await;
    // The run waits at the model until both repeats have been answered: otherwise, on a busy machine,
    // it could finish before the queue reaches them, and a repeat after it would rightly run again.
    executor.fake.hold();
    // The first request files issue #1; both then ask for a fix of #1.
    let (first, _) = fix_with_bugbot(&stack, "add() is broken").await;
    stack.eventually(SETTLE, "issue #1", || stack.github.issues().into_iter().next()).await.unwrap();
    let ask = |n: u64| {
        let body = serde_json::to_vec(&json!({
            "id": (1_500_000_000_000_000_000u64 + n).to_string(), "application_id": APPLICATION_ID.to_string(), "type": 2,
            "token": format!("again-{n}"), "guild_id": "1100000000000000009", "channel_id": ALERTS_CHANNEL,
            "member": {"user": {"id": "1100000000000000013", "username": "lee"}, "roles": []},
            "data": {"name": "bugbot", "type": 1, "options": [{"name": "fix", "type": 1, "options": [{"name": "issue", "type": 3, "value": "#1"}]}]}
        }))
        .unwrap();
        let mut req =
            reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
        for (k, v) in stack.keys.sign_discord(&body) {
            req = req.header(k, v);
        }
        req.send()
    };
    let (a, b) = tokio::join!(ask(1), ask(2));
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);
    let requests = [
        format!("discord:{}", first.trim_start_matches("itok-")),
        format!("discord:{}", 1_500_000_000_000_000_001u64),
        format!("discord:{}", 1_500_000_000_000_000_002u64),
    ];
    // All three requests handled (one running its fix, held at the model; two answered), then the run.
    for job in &requests {
        stack.job(job, SETTLE, |s| !matches!(s["state"].as_str(), Some("received" | "retrying") | None)).await.unwrap();
    }
    executor.fake.release();
    stack.eventually(SETTLE, "a pull request", || stack.github.pulls().into_iter().next()).await.unwrap();
    let told = stack
        .eventually(SETTLE, "the already-running reply", || {
            stack
                .discord
                .original_edits()
                .into_iter()
                .find(|c| c.body["content"].as_str().is_some_and(|t| t.contains("already running")))
        })
        .await
        .unwrap();
    assert!(told.token.starts_with("again-") || told.token.starts_with("itok-"));
    // Absence of a second run or PR, once every request has its final state (the one that ran follows
    // its run to `pr_opened` after the result was processed).
    for job in &requests {
        stack
            .job(job, SETTLE, |s| !matches!(s["state"].as_str(), Some("received" | "retrying" | "fixing") | None))
            .await
            .unwrap();
    }
    assert_eq!(stack.github.pulls().len(), 1);
    // The model was driven through one run only (three scripted turns, each served once).
    assert_eq!(executor.fake.served_turns(), 3);
}

fn python_alert(high_confidence: bool) -> Vec<u8> {
    let mut event: Value =
        serde_json::from_slice(&fixture("sentry_events/glitchtip_test_data/oss_sentry_json/python_zero_division.json"))
            .unwrap();
    if !high_confidence {
        event["exception"]["values"][0]["type"] = json!("CustomError");
        event["exception"]["values"][0]["stacktrace"] = json!({"frames": []});
    }
    serde_json::to_vec(&json!({"action": "triggered", "installation": {"uuid": "i"}, "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
        "data": {"event": event, "triggered_rule": "auto-fix"}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confident_alert_with_auto_fix_on_opens_a_pr() {
    let (stack, _executor) = fix_stack(fixing_turns(), &[("AUTO_FIX", "on"), ("AUTO_FIX_THRESHOLD", "70")]).await;
    let jobs = stack.sentry("event_alert", "auto-1", &python_alert(true)).await.unwrap();
    stack.settled(&jobs[0], SETTLE).await.unwrap();
    let pr = stack.eventually(SETTLE, "a pull request", || stack.github.pulls().into_iter().next()).await.unwrap();
    assert!(pr.body.unwrap_or_default().contains("auto-fix (confidence"));
    let channel = Snowflake(ALERTS_CHANNEL.parse().unwrap());
    stack
        .eventually(SETTLE, "the progress message", || {
            stack.discord.messages(channel).into_iter().find(|m| m.content().contains("draft PR opened"))
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_low_confidence_alert_gets_a_note_and_no_run() {
    let (stack, executor) = fix_stack(fixing_turns(), &[("AUTO_FIX", "on"), ("AUTO_FIX_THRESHOLD", "70")]).await;
    let jobs = stack.sentry("event_alert", "auto-2", &python_alert(false)).await.unwrap();
    assert_eq!(stack.settled(&jobs[0], SETTLE).await.unwrap()["state"], "filed");
    let note = stack
        .eventually(SETTLE, "the note", || {
            stack.github.comments().into_iter().find(|c| c.body.contains("did not start an automatic fix"))
        })
        .await
        .unwrap();
    assert!(note.body.contains("below the auto-fix threshold"), "{}", note.body);
    assert!(stack.github.pulls().is_empty());
    assert_eq!(executor.fake.served_turns(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_callback_is_refused_and_nothing_is_enqueued() {
    let (stack, _executor) = fix_stack(fixing_turns(), &[]).await;
    let body = br#"{"job_id":"fix-1-forged","outcome":"fixed","branch":"bugbot/fix-1"}"#;
    let client = reqwest::Client::new();
    let url = format!("{}/executor/callback", stack.workers.url);
    let now = bugbot_e2e::keys::now_secs();
    let forged = bugbot_shared::executor::sign(b"not-the-secret", now, body);
    let resp = client
        .post(&url)
        .header("x-bugbot-timestamp", now.to_string())
        .header("x-bugbot-signature", forged)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(client.post(&url).body(body.to_vec()).send().await.unwrap().status(), 401);
    // A correctly signed one is accepted (and, naming no known run, recorded as failed — not a PR).
    let good = bugbot_shared::executor::sign(stack.keys.executor_secret.as_bytes(), now, body);
    let resp = client
        .post(&url)
        .header("x-bugbot-timestamp", now.to_string())
        .header("x-bugbot-signature", good)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    stack
        .workers
        .log_line(SETTLE, "the refused callback's log line", |l| {
            l["route"] == "executor_callback" && l["status"] == 401
        })
        .await
        .unwrap();
    // Absence, after the accepted callback's job has settled (its status is recorded after its effects).
    let result = stack.settled(accepted["jobs"][0].as_str().unwrap(), SETTLE).await.unwrap();
    assert!(stack.github.pulls().is_empty(), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_executor_url_the_job_goes_through_the_container_object() {
    let (stack, executor) = fix_stack_via(Route::ContainerObject, fixing_turns(), &[]).await;
    let (token, status) = fix_with_bugbot(&stack, "Totals are wrong: add(2, 2) returns 0 on the invoice page").await;
    assert_eq!(status, 200);
    let pr = stack.eventually(SETTLE, "a pull request", || stack.github.pulls().into_iter().next()).await.unwrap();
    assert_eq!(pr.head, "bugbot/fix-1");
    assert!(executor.show("bugbot/fix-1", "src/lib.rs").contains("a + b"));
    stack
        .eventually(SETTLE, "the final edit", || {
            edits_of(&stack, &token).last().is_some_and(|l| l.contains("draft PR opened")).then_some(())
        })
        .await
        .unwrap();
    // The consumer never had an executor URL: its one executor call was the object's.
    let call = stack
        .eventually(SETTLE, "the outbound log line of the executor call", || {
            stack
                .workers
                .logs()
                .into_iter()
                .find(|l| l.contains("\"outbound\"") && l.contains("POST executor-container"))
        })
        .await
        .unwrap();
    assert!(call.contains("POST executor-container"), "{call}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_executor_anywhere_the_fix_fails_at_once_with_the_reason() {
    let (stack, executor) = fix_stack_via(Route::Nowhere, fixing_turns(), &[]).await;
    let (token, status) = fix_with_bugbot(&stack, "Totals are wrong: add(2, 2) returns 0 on the invoice page").await;
    assert_eq!(status, 200);
    let last = stack
        .eventually(SETTLE, "the failure in Discord", || {
            edits_of(&stack, &token).into_iter().last().filter(|l| l.contains("no container runtime"))
        })
        .await
        .unwrap();
    assert!(last.contains("EXECUTOR_URL"), "{last}");
    assert!(stack.github.pulls().is_empty());
    assert_eq!(executor.fake.requests().len(), 0, "no run started");
}

/// A signed `/bugbot fix` from maria (an admin) with these options; returns the interaction token.
async fn slash_fix(stack: &Stack, options: &Value) -> String {
    let id = format!("{}", 1_600_000_000_000_000_000u64 + u64::from(rand_u16()));
    let token = format!("itok-{id}");
    let body = serde_json::to_vec(&json!({
        "id": id, "application_id": APPLICATION_ID.to_string(), "type": 2, "token": token,
        "guild_id": "1100000000000000009", "channel_id": ALERTS_CHANNEL,
        "member": {"user": {"id": "1100000000000000010", "username": "maria"}, "roles": []},
        "data": {"name": "bugbot", "type": 1, "options": [{"name": "fix", "type": 1, "options": options}]}
    }))
    .unwrap();
    let mut req = reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
    for (k, v) in stack.keys.sign_discord(&body) {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    token
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fix_of_a_repository_outside_fix_repos_is_refused_and_no_job_reaches_the_executor() {
    // Issue 15: a write-role user pointing the executor at their own repository (whose test suite
    // would then run next to the executor).
    let (stack, executor) = fix_stack(fixing_turns(), &[]).await;
    let issue = stack.github.add_issue("add() is broken", "add(2, 2) returns 0", &[]);
    let token = slash_fix(
        &stack,
        &json!([{"name": "issue", "type": 3, "value": format!("#{issue}")},
                {"name": "repo", "type": 3, "value": "mallory/pwn"}]),
    )
    .await;
    let job = format!("discord:{}", token.trim_start_matches("itok-"));
    let status = stack.settled(&job, SETTLE).await.unwrap();
    assert_eq!(status["state"], "ignored", "{status}");
    assert!(status["reason"].as_str().unwrap().contains("mallory/pwn"), "{status}");
    let refusal = stack.discord.followups().into_iter().find(|c| c.token == token).expect("an ephemeral refusal");
    assert_eq!(refusal.body["flags"], 64);
    let text = refusal.body["content"].as_str().unwrap();
    assert!(text.contains("mallory/pwn") && text.contains("FIX_REPOS"), "{text}");
    // Absence, after the job settled (its status is recorded after its effects).
    assert_eq!(executor.fake.requests().len(), 0, "no run started");
    assert_eq!(executor.branches(), vec!["main".to_owned()]);
    assert!(stack.github.pulls().is_empty() && stack.github.comments().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_text_in_the_fix_flow_pings_no_one_and_closes_nothing_else() {
    // Issue 15: the reported message becomes a GitHub issue, the agent's summary the PR body and a
    // comment. Neither may ping a team, close another issue, or break out of a code fence.
    let mut turns = fixing_turns();
    turns.pop();
    turns.push(Turn::text(
        "Root cause: add() subtracted.\nCloses #3 and fixes acme/shop#4 @acme/owners\n```\n## injected heading\n",
    ));
    let (stack, _executor) = fix_stack(turns, &[]).await;
    let (_token, status) =
        fix_with_bugbot(&stack, "@acme/security-team totals are wrong\nFixes #2\n```\n<img src=x onerror=alert(1)>")
            .await;
    assert_eq!(status, 200);
    let pr = stack.eventually(SETTLE, "a pull request", || stack.github.pulls().into_iter().next()).await.unwrap();
    let link = format!("pull/{}", pr.number);
    let comment = stack
        .eventually(SETTLE, "the PR comment", || stack.github.comments().into_iter().find(|c| c.body.contains(&link)))
        .await
        .unwrap();
    let issue = stack.github.issues().into_iter().next().unwrap();
    let body = pr.body.clone().unwrap_or_default();
    for (what, text) in [
        ("issue title", &issue.title),
        ("issue body", issue.body.as_ref().unwrap()),
        ("PR title", &pr.title),
        ("PR body", &body),
        ("comment", &comment.body),
    ] {
        for needle in ["@acme/", "Fixes #2", "Closes #3", "fixes acme/shop#4", "\n## injected"] {
            assert!(!text.contains(needle), "{what} contains {needle:?}:\n{text}");
        }
        assert!(!text.replace("\\<", "").contains("<img"), "{what} has live HTML:\n{text}");
    }
    // bugbot's own closing line is the only one, and it closes the issue it filed.
    assert!(body.contains("Fixes #1"), "{body}");
    assert_eq!(body.matches("Fixes #").count(), 1, "{body}");
    assert!(body.contains("Root cause"), "the summary is still there: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_confident_alerts_at_once_start_exactly_the_daily_cap_of_runs() {
    // Issue 15: the caps counted finished runs only, so a burst of confident alerts all saw 0 runs.
    let (stack, executor) = fix_stack(
        fixing_turns(),
        &[("AUTO_FIX", "on"), ("AUTO_FIX_THRESHOLD", "70"), ("AUTO_FIX_MAX_RUNS_PER_DAY", "2")],
    )
    .await;
    // The runs wait at the model: none finishes (and frees nothing) while the burst is handled.
    executor.fake.hold();
    let sends = (0..10).map(|i| {
        let mut alert: Value = serde_json::from_slice(&python_alert(true)).unwrap();
        alert["data"]["event"]["issue_id"] = json!(format!("{}", 9_100 + i));
        let stack = &stack;
        async move { stack.sentry("event_alert", &format!("burst-{i}"), &serde_json::to_vec(&alert).unwrap()).await }
    });
    let jobs: Vec<String> = futures::future::join_all(sends).await.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(jobs.len(), 10);
    for job in &jobs {
        stack.settled(job, SETTLE).await.unwrap();
    }
    let notes = stack
        .eventually(SETTLE, "a note on each alert that did not start a run", || {
            let notes: Vec<_> = stack
                .github
                .comments()
                .into_iter()
                .filter(|c| c.body.contains("did not start an automatic fix"))
                .collect();
            (notes.len() >= 8).then_some(notes)
        })
        .await
        .unwrap();
    assert!(notes.iter().all(|n| n.body.contains("daily cap of 2")), "{notes:?}");
    let channel = Snowflake(ALERTS_CHANNEL.parse().unwrap());
    let runs = stack.discord.messages(channel).into_iter().filter(|m| m.content().contains("🛠️ **Fix for")).count();
    assert_eq!(runs, 2, "exactly two runs started");
    assert_eq!(notes.len(), 8);
    executor.fake.release();
}
