//! The fakes of Linear, GitHub and Discord, driven by the consumer's real sinks over HTTP: what
//! the sinks send is what the fakes understand, and the fakes' answers (including their scripted
//! rate limits and outages) are classified the way the real services' would be.

use std::time::Duration;

use bugbot_consumer::clients::SinkError;
use bugbot_consumer::clients::discord::Discord;
use bugbot_consumer::clients::github::GitHub;
use bugbot_consumer::clients::http::{HttpPort, HttpRequest, Method};
use bugbot_consumer::clients::linear::{FilingError, Linear, NewLinearIssue, SourceLink, StateType};
use bugbot_e2e::fake::github::Commit;
use bugbot_e2e::fake::{Failure, FakeDiscord, FakeGitHub, FakeLinear, ReqwestPort, linear};
use bugbot_shared::source::discord::Snowflake;
use serde_json::{Value, json};

/// A per-run credential; nothing secret-looking is committed.
fn secret(prefix: &str) -> String {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).expect("OS randomness");
    format!("{prefix}{}", hex::encode(bytes))
}

fn delay_ms(error: &SinkError) -> Option<u64> {
    match error {
        SinkError::Transient { retry_after, .. } => retry_after.map(|r| r.delay_ms),
        SinkError::Permanent { .. } => panic!("expected a transient error, got {error}"),
    }
}

fn new_issue(title: &str, label_ids: Vec<String>) -> NewLinearIssue {
    NewLinearIssue {
        team_id: linear::TEAM_ID.to_owned(),
        title: title.to_owned(),
        description: "ZeroDivisionError in app/views.py\n\n<!-- bugbot:fingerprint=abc -->".to_owned(),
        priority: 2,
        label_ids,
        id: None,
    }
}

// --- Linear --------------------------------------------------------------------------------------

#[tokio::test]
async fn linear_files_one_issue_with_labels_link_and_comment() {
    let key = secret("lin_");
    let fake = FakeLinear::start(&key).await;
    let workspace_bug = fake.add_label("Bug", None);
    let port = ReqwestPort::new();
    let sink = Linear::new(&port, key.clone()).with_api_url(fake.url());
    let source = "https://sentry.io/organizations/acme/issues/42/";

    assert_eq!(sink.find_by_attachment_url(source).await.unwrap(), None);
    let names = ["bug".to_owned(), "sentry".to_owned()];
    let label_ids = sink.ensure_labels(linear::TEAM_ID, &names).await.unwrap();
    assert_eq!(label_ids[0], workspace_bug, "an existing workspace label is reused, case-insensitively");
    assert_eq!(
        sink.ensure_labels(linear::TEAM_ID, &names).await.unwrap(),
        label_ids,
        "the second call creates nothing"
    );

    let created =
        sink.create_issue(&new_issue("ZeroDivisionError: division by zero", label_ids.clone())).await.unwrap();
    assert_eq!(created.identifier, "ENG-1");
    assert_eq!(created.state_type.as_deref(), Some("backlog"));
    assert!(created.url.starts_with("https://linear.app/fake/issue/ENG-1/zerodivisionerror-division-by-zero"));
    sink.attach_link(&created.id, source, "Sentry issue").await.unwrap();
    let found = sink.find_by_attachment_url(source).await.unwrap().expect("found by its link");
    assert_eq!(found, created);

    sink.comment(&created.identifier, "Seen again: 5 events").await.unwrap();
    assert_eq!(sink.issue("ENG-1").await.unwrap().map(|i| i.id), Some(created.id.clone()));
    assert_eq!(sink.issue(&created.id).await.unwrap().map(|i| i.identifier), Some("ENG-1".to_owned()));
    assert_eq!(sink.issue("ENG-404").await.unwrap(), None);
    let hits = sink.search("division by zero", 5).await.unwrap();
    assert_eq!(hits.iter().map(|i| i.identifier.as_str()).collect::<Vec<_>>(), ["ENG-1"]);

    let done = sink.set_state_type(&created.id, linear::TEAM_ID, StateType::Completed).await.unwrap();
    assert_eq!(done.state_type.as_deref(), Some("completed"));
    let reopened = sink.set_state_type("ENG-1", linear::TEAM_ID, "unstarted").await.unwrap();
    assert_eq!(reopened.state_type.as_deref(), Some("unstarted"));

    let issues = fake.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!((issues[0].priority, issues[0].label_ids.clone()), (2, label_ids));
    assert_eq!(issues[0].state_type, "unstarted");
    assert_eq!(fake.attachments().len(), 1);
    assert_eq!(fake.attachments()[0].url, source);
    assert_eq!(fake.comments().len(), 1);
    assert_eq!(fake.comments()[0].issue_id, created.id, "an identifier resolves to the issue's UUID");
    assert_eq!(fake.labels().iter().filter(|l| l.name == "sentry").count(), 1);
    assert_eq!(fake.operations().iter().filter(|o| *o == "issueCreate").count(), 1);
    assert_eq!(fake.operations().iter().filter(|o| *o == "issueLabelCreate").count(), 1);
    for request in fake.requests() {
        assert_eq!(request.header("authorization"), Some(key.as_str()));
        assert_eq!(request.method, "POST");
        assert!(request.json()["operationName"].is_string());
    }
}

/// `IssueFile` over the wire: the create, the source link and the first comment in one request;
/// a refused part is told apart by the error's `path`, and what ran before it took effect.
#[tokio::test]
async fn linear_files_an_issue_in_one_request_and_says_which_part_failed() {
    let key = secret("lin_");
    let fake = FakeLinear::start(&key).await;
    let port = ReqwestPort::new();
    let sink = Linear::new(&port, key).with_api_url(fake.url());
    let link = SourceLink { url: "https://sentry.io/organizations/acme/issues/42/", title: "Sentry issue" };
    let with_id = |n: u32, label_ids: Vec<String>| NewLinearIssue {
        id: Some(format!("00000000-0000-4000-8000-{n:012}")),
        ..new_issue(&format!("ZeroDivisionError {n}"), label_ids)
    };

    let issue = sink.file_issue(&with_id(1, Vec::new()), Some(link), Some("## bugbot context")).await.unwrap();
    assert_eq!((issue.identifier.as_str(), issue.id.as_str()), ("ENG-1", "00000000-0000-4000-8000-000000000001"));
    assert_eq!(fake.requests().len(), 1, "one request");
    assert_eq!(fake.operations(), ["issueCreate", "attachmentLinkURL", "commentCreate"]);
    assert_eq!(
        (fake.attachments()[0].issue_id.as_str(), fake.comments()[0].issue_id.as_str()),
        (issue.id.as_str(), issue.id.as_str())
    );

    fake.refuse_next("commentCreate", "body is too long");
    let failed = sink.file_issue(&with_id(2, Vec::new()), Some(link), Some("## bugbot context")).await.unwrap_err();
    assert!(matches!(&failed, FilingError::Comment { issue: None, error } if !error.is_transient()), "{failed:?}");
    assert_eq!((fake.issues().len(), fake.attachments().len(), fake.comments().len()), (2, 2, 1));

    fake.refuse_next("attachmentLinkURL", "url is not allowed");
    let failed = sink.file_issue(&with_id(3, Vec::new()), Some(link), Some("## bugbot context")).await.unwrap_err();
    assert!(matches!(&failed, FilingError::Link(e) if e.to_string().contains("url is not allowed")), "{failed:?}");
    assert_eq!((fake.issues().len(), fake.attachments().len(), fake.comments().len()), (3, 2, 1), "no comment");

    let failed = sink.file_issue(&with_id(4, vec!["no-such-label".into()]), Some(link), None).await.unwrap_err();
    assert!(matches!(&failed, FilingError::Create(SinkError::Permanent { .. })), "{failed:?}");
    let failed = sink.file_issue(&with_id(3, Vec::new()), None, None).await.unwrap_err();
    assert!(matches!(&failed, FilingError::Create(e) if e.to_string().contains("already exists")), "{failed:?}");
    assert_eq!((fake.issues().len(), fake.attachments().len()), (3, 2), "nothing more");

    fake.fail_next(1, Failure::ServerError);
    let failed = sink.file_issue(&with_id(5, Vec::new()), Some(link), None).await.unwrap_err();
    assert!(matches!(&failed, FilingError::Request(e) if e.is_transient()), "{failed:?}");
}

#[tokio::test]
async fn linear_answers_with_its_error_shapes() {
    let key = secret("lin_");
    let fake = FakeLinear::start(&key).await;
    let port = ReqwestPort::new();

    let wrong = secret("lin_");
    let e = Linear::new(&port, wrong.clone()).with_api_url(fake.url()).search("x", 1).await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("authentication error"), "{e}");
    assert!(!e.to_string().contains(&wrong));

    let bearer = Linear::new(&port, format!("Bearer {key}")).with_api_url(fake.url());
    assert!(!bearer.search("x", 1).await.unwrap_err().is_transient(), "personal keys are sent bare");

    let sink = Linear::new(&port, key).with_api_url(fake.url());
    let mut unknown_team = new_issue("t", Vec::new());
    unknown_team.team_id = "no-such-team".into();
    let e = sink.create_issue(&unknown_team).await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("Team"), "{e}");
    let e = sink.create_issue(&new_issue("t", vec!["no-such-label".into()])).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(fake.issues().is_empty());

    let answer = port
        .send(HttpRequest::new(Method::Post, fake.url()).json(&json!({"query": "query { viewer { id } }"})))
        .await
        .unwrap();
    assert_eq!(answer.status, 401, "auth is checked before the query");
}

#[tokio::test]
async fn linear_rate_limits_outages_and_hangs() {
    let key = secret("lin_");
    let fake = FakeLinear::start(&key).await;
    let port = ReqwestPort::new();
    // A short client timeout only where the fake hangs: on a busy machine an answer can take longer.
    let impatient = ReqwestPort::with_timeout(Duration::from_millis(300));
    let sink = Linear::new(&port, key.clone()).with_api_url(fake.url());

    fake.fail_next(1, Failure::RateLimited { retry_after_secs: 2.0 });
    let e = sink.search("x", 1).await.unwrap_err();
    assert_eq!(delay_ms(&e), Some(2_000));
    let limited = fake.requests().pop().unwrap();
    assert_eq!(limited.failure, Some(Failure::RateLimited { retry_after_secs: 2.0 }));

    let raw = port.send(HttpRequest::new(Method::Post, fake.url()).json(&json!({}))).await;
    let raw = raw.unwrap();
    assert_eq!(raw.status, 401, "the failure script is used up");

    fake.fail_next(2, Failure::ServerError);
    assert_eq!(delay_ms(&sink.search("x", 1).await.unwrap_err()), None);
    assert!(sink.search("x", 1).await.unwrap_err().is_transient());
    assert!(sink.search("x", 1).await.is_ok());

    fake.fail_always(Failure::Hang);
    let hung = Linear::new(&impatient, key).with_api_url(fake.url());
    for _ in 0..2 {
        let e = hung.search("x", 1).await.unwrap_err();
        assert!(e.is_transient() && e.to_string().contains("timed out"), "{e}");
    }
    fake.clear_failures();
    assert!(sink.search("x", 1).await.is_ok());
}

#[tokio::test]
async fn linear_fake_understands_every_sink_operation() {
    let key = secret("lin_");
    let fake = FakeLinear::start(&key).await;
    let port = ReqwestPort::new();
    // Each query the sink can send, with harmless variables: none may be rejected as unknown.
    for query in bugbot_consumer::clients::linear::OPERATIONS {
        let variables = json!({"url": "u", "id": "ENG-1", "term": "t", "first": 1, "teamId": linear::TEAM_ID,
            "type": "completed", "issueId": "ENG-1", "title": "t", "filter": {"name": {"eq": "x"}},
            "input": {"teamId": linear::TEAM_ID, "title": "t", "name": "n", "issueId": "ENG-1", "body": "b"},
            "comment": {"issueId": "ENG-1", "body": "b"}});
        let answer = port
            .send(
                HttpRequest::new(Method::Post, fake.url())
                    .header("authorization", &key)
                    .json(&json!({"query": query, "variables": variables})),
            )
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        let error = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(!error.starts_with("Cannot query field") && !error.starts_with("Syntax Error"), "{query}: {body}");
    }
}

// --- GitHub --------------------------------------------------------------------------------------

const REPO: &str = "acme/shop";

#[tokio::test]
async fn github_files_finds_comments_and_closes() {
    let token = secret("gh_");
    let fake = FakeGitHub::start(&token, REPO).await;
    let port = ReqwestPort::new();
    let sink = GitHub::new(&port, token.clone(), REPO).with_api_base(fake.url());
    let marker = "<!-- bugbot:fingerprint=29f7ffc4903a8a990408b80a3b4c95a2 -->";

    fake.add_issue("Unrelated", "<!-- bugbot:fingerprint=ffff -->", &["bug"]);
    assert_eq!(sink.find_by_marker(marker).await.unwrap(), None);
    let labels = ["bug".to_owned(), "sentry".to_owned()];
    let created = sink.create_issue("ZeroDivisionError", &format!("Details\n\n{marker}"), &labels).await.unwrap();
    assert_eq!(created.number, 2);
    assert_eq!(created.html_url, "https://github.com/acme/shop/issues/2");
    assert_eq!(created.state, "open");
    assert_eq!(sink.find_by_marker(marker).await.unwrap().map(|i| i.number), Some(2));

    sink.comment(2, "Seen again").await.unwrap();
    let closed = sink.set_state(2, false, Some("completed")).await.unwrap();
    assert_eq!(closed.state, "closed");
    assert_eq!(
        sink.find_by_marker(marker).await.unwrap().map(|i| i.state),
        Some("closed".to_owned()),
        "closed issues are found too"
    );
    sink.set_state(2, true, Some("reopened")).await.unwrap();
    assert_eq!(sink.issue(2).await.unwrap().map(|i| i.state), Some("open".to_owned()));
    assert_eq!(sink.issue(99).await.unwrap(), None);
    let open_bugs = sink.search_issues("repo:acme/shop is:issue is:open label:bug", 10).await.unwrap();
    assert_eq!(open_bugs.iter().map(|i| i.number).collect::<Vec<_>>(), [2, 1]);

    let issues = fake.issues();
    assert_eq!(issues[1].labels, labels);
    assert_eq!(issues[1].state_reason.as_deref(), Some("reopened"));
    assert_eq!(fake.comments().len(), 1);
    assert_eq!((fake.comments()[0].issue_number, fake.comments()[0].body.as_str()), (2, "Seen again"));
    for request in fake.requests() {
        assert_eq!(request.header("authorization"), Some(format!("Bearer {token}").as_str()));
        assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
    }
    let search = fake.requests().into_iter().find(|r| r.path == "/search/issues").unwrap();
    assert_eq!(
        search.query_param("q").as_deref(),
        Some(format!("repo:acme/shop is:issue in:body \"{marker}\"").as_str())
    );
}

#[tokio::test]
async fn github_serves_files_and_commits() {
    let token = secret("gh_");
    let fake = FakeGitHub::start(&token, REPO).await;
    let port = ReqwestPort::new();
    let sink = GitHub::new(&port, token, REPO).with_api_base(fake.url());
    let source = "def divide(a, b):\n    return a / b  # ünïcode\n".repeat(20);
    fake.put_file("app/views.py", &source);
    fake.put_file_at("fix/zero", "app/views.py", "fixed\n");
    fake.add_commit(Commit {
        sha: "1".repeat(40),
        paths: vec!["app/views.py".into()],
        author: "Ada Lovelace".into(),
        date: "2024-05-01T10:00:00Z".into(),
        message: "Add divide".into(),
    });
    fake.add_commit(Commit {
        sha: "2".repeat(40),
        paths: vec!["README.md".into()],
        author: "Grace".into(),
        date: "2024-05-02T10:00:00Z".into(),
        message: "Docs".into(),
    });

    assert_eq!(sink.file_contents("app/views.py", None).await.unwrap(), Some(source));
    assert_eq!(sink.file_contents("app/views.py", Some("fix/zero")).await.unwrap().as_deref(), Some("fixed\n"));
    assert_eq!(sink.file_contents("app/missing.py", None).await.unwrap(), None);
    assert!(!sink.file_contents("app", None).await.unwrap_err().is_transient(), "a directory is not a file");
    let commits = sink.commits_for_path("app/views.py", 5).await.unwrap();
    assert_eq!(commits.len(), 1);
    assert_eq!((commits[0].author.as_str(), commits[0].message.as_str()), ("Ada Lovelace", "Add divide"));
}

async fn github_raw(port: &ReqwestPort, token: &str, method: Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = HttpRequest::new(method, url)
        .header("user-agent", "bugbot-test")
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("authorization", format!("Bearer {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = port.send(request).await.unwrap();
    (answer.status, serde_json::from_slice(&answer.body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn github_refs_and_pull_requests() {
    let token = secret("gh_");
    let fake = FakeGitHub::start(&token, REPO).await;
    let port = ReqwestPort::new();
    let base = format!("{}/repos/{REPO}", fake.url());
    let sha = "a".repeat(40);

    let (status, made) = github_raw(
        &port,
        &token,
        Method::Post,
        format!("{base}/git/refs"),
        Some(json!({"ref": "refs/heads/bugbot/fix-1", "sha": sha})),
    )
    .await;
    assert_eq!((status, made["object"]["sha"].as_str()), (201, Some(sha.as_str())));
    let (status, again) = github_raw(
        &port,
        &token,
        Method::Post,
        format!("{base}/git/refs"),
        Some(json!({"ref": "refs/heads/bugbot/fix-1", "sha": sha})),
    )
    .await;
    assert_eq!((status, again["message"].as_str()), (422, Some("Reference already exists")));
    let (status, heads) = github_raw(&port, &token, Method::Get, format!("{base}/git/refs/heads"), None).await;
    assert_eq!((status, heads.as_array().map(Vec::len)), (200, Some(2)));

    let pr = json!({"title": "Fix division by zero", "head": "bugbot/fix-1", "base": "main", "body": "Fixes #1", "draft": true});
    let (status, created) = github_raw(&port, &token, Method::Post, format!("{base}/pulls"), Some(pr.clone())).await;
    assert_eq!(status, 201);
    assert_eq!(created["html_url"], "https://github.com/acme/shop/pull/1");
    let (status, duplicate) = github_raw(&port, &token, Method::Post, format!("{base}/pulls"), Some(pr)).await;
    assert_eq!(status, 422);
    assert_eq!(duplicate["message"], "Validation Failed");
    assert_eq!(duplicate["errors"][0]["message"], "A pull request already exists for acme:bugbot/fix-1.");
    assert_eq!(fake.pulls().len(), 1);
    assert!(fake.pulls()[0].draft);
    assert_eq!(fake.refs().get("refs/heads/bugbot/fix-1"), Some(&sha));
}

#[tokio::test]
async fn github_requires_its_headers() {
    let token = secret("gh_");
    let fake = FakeGitHub::start(&token, REPO).await;
    let port = ReqwestPort::new();
    let url = format!("{}/repos/{REPO}/issues/1", fake.url());

    let bare = port
        .send(HttpRequest::new(Method::Get, url.clone()).header("authorization", format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(bare.status, 403, "no User-Agent");
    assert!(String::from_utf8_lossy(&bare.body).contains("User-Agent"));
    let (status, body) = github_raw(&port, "wrong", Method::Get, url, None).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Bad credentials")));

    let wrong = secret("gh_");
    let e = GitHub::new(&port, wrong.clone(), REPO).with_api_base(fake.url()).issue(1).await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("Bad credentials") && !e.to_string().contains(&wrong), "{e}");
    let e = GitHub::new(&port, token, REPO).with_api_base(fake.url()).create_issue(" ", "b", &[]).await.unwrap_err();
    assert_eq!(e.to_string(), "github: 422 Validation Failed: Issue.title missing_field");
}

#[tokio::test]
async fn github_rate_limits_and_outages() {
    let token = secret("gh_");
    let fake = FakeGitHub::start(&token, REPO).await;
    let port = ReqwestPort::new();
    // A short client timeout only where the fake hangs: on a busy machine an answer can take longer.
    let impatient = ReqwestPort::with_timeout(Duration::from_millis(300));
    let sink = GitHub::new(&port, token.clone(), REPO).with_api_base(fake.url());

    fake.fail_next(1, Failure::RateLimited { retry_after_secs: 3.0 });
    let e = sink.create_issue("t", "b", &[]).await.unwrap_err();
    assert_eq!(delay_ms(&e), Some(3_000), "a 403 secondary limit with retry-after is transient");
    fake.fail_next(1, Failure::ServerError);
    assert_eq!(delay_ms(&sink.comment(1, "b").await.unwrap_err()), None);
    fake.fail_next(1, Failure::Hang);
    let hung = GitHub::new(&impatient, token, REPO).with_api_base(fake.url());
    assert!(hung.issue(1).await.unwrap_err().is_transient());
    assert!(fake.issues().is_empty());
    assert!(sink.create_issue("t", "b", &[]).await.is_ok());
}

// --- Discord -------------------------------------------------------------------------------------

const APP: Snowflake = Snowflake(1_098_765_432_101_234_567);

#[tokio::test]
async fn discord_posts_edits_and_lists_channel_messages() {
    let bot = secret("bot.");
    let fake = FakeDiscord::start(&bot, APP).await;
    let port = ReqwestPort::new();
    let sink = Discord::new(&port, Some(bot.clone())).with_api_base(fake.url());
    let channel = Snowflake(4242);
    fake.add_message(channel, "alice", "the checkout page is down");

    let alert = json!({"embeds": [{"title": "ZeroDivisionError", "description": "app/views.py"}]});
    let sent = sink.create_message("4242", &alert).await.unwrap();
    assert_eq!(sent.channel_id, channel);
    let resolved = json!({"embeds": [{"title": "✅ ZeroDivisionError", "description": "resolved"}]});
    let edited = sink.edit_message("4242", &sent.message_id.to_string(), &resolved).await.unwrap();
    assert_eq!(edited, sent);

    let messages = fake.messages(channel);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].embeds()[0]["title"], "✅ ZeroDivisionError");
    assert_eq!(messages[1].history.len(), 1);
    assert_eq!(messages[1].history[0]["embeds"][0]["title"], "ZeroDivisionError");

    let listed = sink.channel_messages("4242", 10).await.unwrap();
    assert_eq!(listed.iter().map(|m| m.id).collect::<Vec<_>>(), [sent.message_id, messages[0].id], "newest first");
    assert_eq!(listed[1].content, "the checkout page is down");
    assert_eq!(sink.channel_messages("4242", 1).await.unwrap().len(), 1);

    for request in fake.requests() {
        assert_eq!(request.header("authorization"), Some(format!("Bot {bot}").as_str()));
        assert!(request.header("user-agent").unwrap().starts_with("DiscordBot ("));
    }
}

#[tokio::test]
async fn discord_interaction_webhooks() {
    let bot = secret("bot.");
    let fake = FakeDiscord::start(&bot, APP).await;
    let port = ReqwestPort::new();
    let sink = Discord::new(&port, None).with_api_base(fake.url());
    let token = secret("aW50ZXJhY3Rpb24");
    let app = APP.to_string();

    let first = sink.edit_original(&app, &token, &json!({"content": "Filing…"})).await.unwrap();
    let second = sink.edit_original(&app, &token, &json!({"content": "Filed ENG-1"})).await.unwrap();
    assert_eq!(first, second, "@original is edited in place");
    assert_eq!(first.channel_id, fake.interaction_channel());
    let follow = sink.followup(&app, &token, &json!({"content": "Details", "flags": 64})).await.unwrap();
    assert_ne!(follow.message_id, first.message_id);

    assert_eq!(fake.original_edits().len(), 2);
    assert_eq!(fake.followups().len(), 1);
    assert_eq!(fake.followups()[0].body["flags"], 64);
    let original = fake.all_messages().into_iter().find(|m| m.id == first.message_id).unwrap();
    assert_eq!((original.content(), original.history.len()), ("Filed ENG-1", 1));
    assert!(fake.requests().iter().all(|r| r.header("authorization").is_none()));

    fake.expire_interaction(&token);
    let e = sink.followup(&app, &token, &json!({"content": "late"})).await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("Unknown Webhook") && !e.to_string().contains(&token), "{e}");
    let e = sink.followup("1", &secret("t"), &json!({"content": "x"})).await.unwrap_err();
    assert!(e.to_string().contains("10015"), "{e}");
}

#[tokio::test]
async fn discord_checks_auth_user_agent_and_limits() {
    let bot = secret("bot.");
    let fake = FakeDiscord::start(&bot, APP).await;
    let port = ReqwestPort::new();

    let e = Discord::new(&port, None)
        .with_api_base(fake.url())
        .create_message("1", &json!({"content": "x"}))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "discord: DISCORD_BOT_TOKEN not configured");
    assert!(fake.requests().is_empty(), "nothing is sent without a token");

    let wrong = secret("bot.");
    let e = Discord::new(&port, Some(wrong.clone()))
        .with_api_base(fake.url())
        .create_message("1", &json!({"content": "x"}))
        .await
        .unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("401") && !e.to_string().contains(&wrong), "{e}");

    let raw = HttpRequest::new(Method::Post, format!("{}/channels/1/messages", fake.url()))
        .header("authorization", format!("Bot {bot}"))
        .json(&json!({"content": "x"}));
    assert_eq!(port.send(raw).await.unwrap().status, 400, "no DiscordBot User-Agent");

    let sink = Discord::new(&port, Some(bot)).with_api_base(fake.url());
    let e = sink.create_message("1", &json!({"content": ""})).await.unwrap_err();
    assert!(e.to_string().contains("Cannot send an empty message (50006)"), "{e}");
    let e = sink.create_message("1", &json!({"content": "x".repeat(2_001)})).await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("Invalid Form Body (50035)"), "{e}");
    let e = sink.create_message("1", &json!({"embeds": [{"description": "x".repeat(4_097)}]})).await.unwrap_err();
    assert!(e.to_string().contains("50035"), "{e}");
    let e = sink.edit_message("1", "123", &json!({"content": "x"})).await.unwrap_err();
    assert!(e.to_string().contains("Unknown Message (10008)"), "{e}");
    assert!(fake.all_messages().is_empty());
}

#[tokio::test]
async fn discord_rate_limit_shape_and_a_retry_after_the_delay() {
    let bot = secret("bot.");
    let fake = FakeDiscord::start(&bot, APP).await;
    let port = ReqwestPort::new();
    // A short client timeout only where the fake hangs: on a busy machine an answer can take longer.
    let impatient = ReqwestPort::with_timeout(Duration::from_millis(300));
    let sink = Discord::new(&port, Some(bot.clone())).with_api_base(fake.url());
    let body = json!({"content": "alert"});

    fake.fail_next(1, Failure::RateLimited { retry_after_secs: 0.25 });
    let raw = HttpRequest::new(Method::Get, format!("{}/channels/1/messages", fake.url()))
        .header("user-agent", "DiscordBot (test, 1)")
        .header("authorization", format!("Bot {bot}"));
    let limited = port.send(raw).await.unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(limited.header("x-ratelimit-reset-after"), Some("0.250"));
    let shape: Value = serde_json::from_slice(&limited.body).unwrap();
    assert_eq!(shape, json!({"message": "You are being rate limited.", "retry_after": 0.25, "global": false}));

    // A client that honours the delay: the retry arrives after it, and succeeds.
    fake.fail_next(1, Failure::RateLimited { retry_after_secs: 0.25 });
    let e = sink.create_message("7", &body).await.unwrap_err();
    let wait = delay_ms(&e).expect("a delay");
    assert_eq!(wait, 250, "the body's exact float wins over the rounded-up header");
    // The client's own pause, as the scenario's well-behaved client (not a wait for an effect: the
    // assertion below is that the retry came no sooner than this).
    tokio::time::sleep(Duration::from_millis(wait)).await;
    sink.create_message("7", &body).await.unwrap();
    let requests = fake.requests();
    let (failed, retried) = (&requests[requests.len() - 2], &requests[requests.len() - 1]);
    assert!(failed.failure.is_some() && retried.failure.is_none());
    assert!(retried.at.duration_since(failed.at).unwrap() >= Duration::from_millis(250));

    fake.fail_next(1, Failure::ServerError);
    assert_eq!(delay_ms(&sink.create_message("7", &body).await.unwrap_err()), None);
    fake.fail_next(1, Failure::Hang);
    let hung = Discord::new(&impatient, Some(bot)).with_api_base(fake.url());
    assert!(hung.create_message("7", &body).await.unwrap_err().to_string().contains("timed out"));
    assert_eq!(fake.messages(Snowflake(7)).len(), 1, "failed sends leave nothing behind");
}
