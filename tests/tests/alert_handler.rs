//! The alert handler run natively over its ports: the real clients against the fakes (over
//! `ReqwestPort`), the claims and KV in memory (`store::ports::memory`), through the runtime's
//! claim → dispatch → settle. No Worker: these pin what one alert costs (Durable Object calls, KV
//! writes, outbound requests) and what it sends, and that one failing sink does not hold back the
//! others. The Miniflare tests (`alerts.rs`) keep checking the wiring.

use bugbot_consumer::config::Config;
use bugbot_consumer::handlers::alert;
use bugbot_consumer::runtime::{self, Ctx, Effect, FollowUp, Outcome};
use bugbot_consumer::store::State;
use bugbot_consumer::store::memo::{CODE_SEARCH_TTL_MS, Memo, RUNBOOKS_TTL_MS, SIMILAR_TTL_MS};
use bugbot_consumer::store::ports::memory::{MemoryClaims, MemoryKv};
use bugbot_e2e::fake::{Failure, RecordedRequest, ReqwestPort};
use bugbot_e2e::keys::random_hex;
use bugbot_e2e::native::{self, Trackers as Fakes, no_env, now_ms};
use bugbot_e2e::workers::fixture;
use bugbot_shared::ingress::{self, Headers, IngressConfig, IngressRequest, Route};
use bugbot_shared::job::Job;
use bugbot_shared::source::discord::Snowflake;
use bugbot_shared::status::JobState;
use serde_json::{Value, json};

const REPO: &str = "acme/web";
const CHANNEL: u64 = 4_242;

async fn fakes() -> Fakes {
    Fakes::start(REPO, Some(CHANNEL)).await
}

/// The jobs the gateway makes of a fixture, as it would queue them.
fn jobs_of(path: &str) -> Vec<Job> {
    jobs_of_body(path, &fixture(path))
}

/// [`jobs_of`] with the fixture's body changed.
fn jobs_of_body(path: &str, body: &[u8]) -> Vec<Job> {
    let secret = random_hex(16);
    let cfg = IngressConfig {
        sentry_client_secret: Some(secret.clone()),
        sentry_legacy_token: Some("legacy".into()),
        glitchtip_token: Some("glitch".into()),
        ..IngressConfig::default()
    };
    let (route, resource) = if path.starts_with("glitchtip/") {
        (Route::Glitchtip { token: "glitch".into() }, String::new())
    } else {
        let name = path.rsplit('/').next().unwrap_or_default();
        let resource = ["event_alert", "metric_alert", "issue", "error"]
            .into_iter()
            .find(|r| name.starts_with(r))
            .expect("a Sentry resource in the fixture's name");
        (Route::SentryWebhook, resource.to_owned())
    };
    let signature = bugbot_shared::verify::hmac_sha256_hex(secret.as_bytes(), body);
    let headers = TestHeaders(vec![
        ("sentry-hook-resource", resource),
        ("sentry-hook-signature", signature),
        ("request-id", path.to_owned()),
    ]);
    let accepted =
        ingress::handle(&cfg, &route, IngressRequest { headers: &headers, body, now_ms: now_ms(), request_id: path })
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    accepted.jobs
}

struct TestHeaders(Vec<(&'static str, String)>);

impl Headers for TestHeaders {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

/// Runs one job as the runtime does: the alert handler (its delivery claim is its fingerprint's).
async fn run(
    config: &Config,
    claims: &MemoryClaims,
    state: &State<MemoryKv>,
    job: &Job,
    message_id: &str,
) -> (Outcome, Option<FollowUp>) {
    run_at(config, claims, state, job, message_id, now_ms(), &Memo::default()).await
}

/// [`run`] at `now_ms`, with the isolate's caches in `memo`.
async fn run_at(
    config: &Config,
    claims: &MemoryClaims,
    state: &State<MemoryKv>,
    job: &Job,
    message_id: &str,
    now_ms: u64,
    memo: &Memo,
) -> (Outcome, Option<FollowUp>) {
    let (env, port) = (no_env(), ReqwestPort::new());
    let ctx = Ctx { env: &env, config, port: &port, claims, state, now_ms, jitter: 0.5, message_id, attempt: 1, memo };
    alert::process(&ctx, job).await
}

/// The outbound requests, in order of arrival, as `service METHOD path (GraphQL operation)`; the
/// context packet's reads go out concurrently, so their order is not the program's (sorted).
fn sequence(f: &Fakes) -> Vec<String> {
    native::sequence(
        vec![("linear", f.linear.requests()), ("github", f.github.requests()), ("discord", f.discord.requests())],
        is_evidence_read,
    )
}

/// A read of the context packet (issue 16.2), sent concurrently with the others.
fn is_evidence_read(request: &str) -> bool {
    request.ends_with(" SearchIssues")
        || request.starts_with("github GET /search/")
        || request.starts_with("github GET /repos/acme/web/contents/")
        || request.starts_with("github GET /repos/acme/web/commits")
        || request.starts_with("github POST /graphql")
}

fn summary(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Done { state, reason, links, effect, .. } => json!({
            "state": format!("{state:?}"),
            "reason": reason,
            "links": links.len(),
            "effect": match effect {
                Effect::Filed { occurrence, alert } => format!("Filed {occurrence:?} ({})", alert.level),
                other => format!("{other:?}"),
            },
        }),
        Outcome::Retry { reason, attempt, .. } => json!({"retry": reason, "attempt": attempt}),
    }
}

const FIXTURES: &[&str] = &[
    "sentry/integration_platform_example_mocks/issue_created.json",
    "sentry/integration_platform_example_mocks/issue_resolved.json",
    "sentry/integration_platform_example_mocks/issue_ignored.json",
    "sentry/integration_platform_example_mocks/issue_assigned.json",
    "sentry/integration_platform_example_mocks/event_alert_triggered.json",
    "sentry/integration_platform_example_mocks/metric_alert_critical.json",
    "sentry/integration_platform_example_mocks/metric_alert_resolved.json",
    "sentry/sentry_docs_payloads/error_created.json",
    "sentry/sentry_docs_payloads/event_alert_triggered.json",
    "sentry/zulip_captured/issue_created_for_exception.json",
    "glitchtip/current_format_general_webhook_issue.json",
    "glitchtip/current_format_general_webhook_uptime_down.json",
    "glitchtip/generated_2022_code_single_issue.json",
];

#[tokio::test(flavor = "current_thread")]
async fn each_fixture_through_the_alert_handler() {
    for path in FIXTURES {
        let f = fakes().await;
        let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
        let mut outcomes = Vec::new();
        for (i, job) in jobs_of(path).iter().enumerate() {
            let (outcome, _) = run(&f.config, &claims, &state, job, &format!("m{i}")).await;
            outcomes.push(summary(&outcome));
        }
        let name = path.replace(['/', '.'], "_");
        insta::assert_json_snapshot!(name, json!({"outcomes": outcomes, "requests": sequence(&f)}));
    }
}

/// Issue 18's cost per alert: a new alert and a repeat inside the comment cooldown, counted at
/// the ports (Durable Object round trips, KV writes, outbound requests). The handler's own: the
/// runtime adds one ledger round trip per queue batch (up to `max_batch_size` jobs), which carries
/// every job's status record and counters; `make bench` counts both.
#[tokio::test(flavor = "current_thread")]
async fn what_a_new_alert_and_a_repeat_cost() {
    let f = fakes().await;
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let path = "sentry/integration_platform_example_mocks/event_alert_triggered.json";
    let jobs = jobs_of(path);
    let (first, follow_up) = run(&f.config, &claims, &state, &jobs[0], "m1").await;
    assert!(matches!(first, Outcome::Done { state: JobState::Filed, .. }), "{first:?}");
    assert!(matches!(follow_up, Some(FollowUp::AutoFix { .. })), "a new issue leaves the auto-fix follow-up");
    let new_alert = (claims.calls.get(), state.kv().writes.get(), sequence(&f).len());

    // The same error again (another delivery, so another job id), inside the cooldown.
    let mut repeat = jobs[0].clone();
    repeat.id = bugbot_shared::job::JobId::sentry("repeat-delivery");
    let (second, follow_up) = run(&f.config, &claims, &state, &repeat, "m2").await;
    assert!(follow_up.is_none());
    assert!(
        matches!(&second, Outcome::Done { effect: Effect::Filed { occurrence, .. }, .. } if *occurrence == bugbot_shared::digest::Occurrence::Repeat),
        "{second:?}"
    );
    let repeat_cost =
        (claims.calls.get() - new_alert.0, state.kv().writes.get() - new_alert.1, sequence(&f).len() - new_alert.2);
    insta::assert_json_snapshot!(json!({
        "new alert": {"durable_object_calls": new_alert.0, "kv_writes": new_alert.1, "requests": new_alert.2},
        "repeat in cooldown": {"durable_object_calls": repeat_cost.0, "kv_writes": repeat_cost.1, "requests": repeat_cost.2},
    }));
}

/// Issue 15.12: one failing sink does not hold back the others. Linear answers 500: the GitHub
/// issue and the Discord card still go out, the job is retried for Linear alone, and a retry
/// after Linear recovers files only the Linear issue.
#[tokio::test(flavor = "current_thread")]
async fn a_failing_sink_does_not_hold_back_the_others() {
    let f = fakes().await;
    f.linear.fail_always(Failure::ServerError);
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let jobs = jobs_of("sentry/integration_platform_example_mocks/issue_created.json");
    let (outcome, _) = run(&f.config, &claims, &state, &jobs[0], "m1").await;
    let Outcome::Retry { reason, attempt: 1, .. } = &outcome else { panic!("not retried: {outcome:?}") };
    assert!(reason.starts_with("linear"), "only Linear is retried: {reason}");
    assert_eq!(f.github.issues().len(), 1, "the GitHub issue went out");
    assert_eq!(f.discord.messages(Snowflake(CHANNEL)).len(), 1, "the Discord card went out");

    f.linear.clear_failures();
    let (outcome, _) = run(&f.config, &claims, &state, &jobs[0], "m1").await;
    assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{outcome:?}");
    assert_eq!(f.linear.issues().len(), 1);
    assert_eq!(f.github.issues().len(), 1, "no second GitHub issue");
    assert_eq!(f.discord.messages(Snowflake(CHANNEL)).len(), 1, "no second card");
}

// --- Linear's one filing request (`IssueFile`) and its partial failures ----------------------------

/// The GraphQL operation of each request Linear received, in order.
fn linear_operations(f: &Fakes) -> Vec<String> {
    f.linear.requests().iter().map(|r| r.json()["operationName"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The event alert fixture as Sentry issue `n` (its own fingerprint).
fn alert_number(n: u64) -> Job {
    let path = "sentry/integration_platform_example_mocks/event_alert_triggered.json";
    let mut body: Value = serde_json::from_slice(&fixture(path)).unwrap();
    body["data"]["event"]["issue_id"] = json!(format!("77{n}"));
    body["data"]["event"]["title"] = json!(format!("FilingError {n}: something broke"));
    body["data"]["event"]["web_url"] = json!(format!("https://sentry.io/organizations/test-org/issues/77{n}/"));
    jobs_of_body(path, &serde_json::to_vec(&body).unwrap()).remove(0)
}

/// The first comment (the context packet) is extra: when Linear refuses it, the issue and its link
/// exist but the answer's `data` is null, so the issue is read back by its id (one more request,
/// on this path only) and the alert is filed all the same.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_first_comment_still_files_the_issue_read_back_by_its_id() {
    let f = fakes().await;
    f.linear.refuse_next("commentCreate", "body is too long");
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let (outcome, _) = run(&f.config, &claims, &state, &alert_number(1), "m1").await;
    let Outcome::Done { state: JobState::Filed, links, .. } = &outcome else { panic!("not filed: {outcome:?}") };
    let issues = f.linear.issues();
    assert_eq!(issues.len(), 1);
    assert!(links[0].contains(&issues[0].identifier), "the Linear issue is linked: {links:?}");
    assert_eq!(f.linear.attachments().len(), 1, "the source link went out before the comment");
    assert!(f.linear.comments().is_empty());
    let operations = linear_operations(&f);
    assert!(operations.ends_with(&["IssueFile".to_owned(), "Issue".to_owned()]), "{operations:?}");
    assert_eq!(operations.iter().filter(|o| *o == "IssueFile").count(), 1);
    let read_back = f.linear.requests().pop().unwrap().json();
    assert_eq!(read_back["variables"]["id"], json!(issues[0].id), "by the id bugbot chose");
    assert_eq!(f.github.issues().len(), 1);
    assert_eq!(f.discord.messages(Snowflake(CHANNEL)).len(), 1);
}

/// A refused source link fails the filing, as a failed `attachmentLinkURL` always did: the issue
/// exists (the create ran first), the comment did not run. The alert's next delivery finds the
/// issue by its id and files nothing again, in Linear or elsewhere.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_source_link_fails_the_filing_and_the_next_delivery_finds_the_issue_by_its_id() {
    let f = fakes().await;
    f.linear.refuse_next("attachmentLinkURL", "url is not allowed");
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let job = alert_number(2);
    let (outcome, _) = run(&f.config, &claims, &state, &job, "m1").await;
    let Outcome::Done { state: JobState::Failed, reason: Some(reason), .. } = &outcome else {
        panic!("not failed: {outcome:?}")
    };
    assert!(reason.starts_with("linear: invalid input: url is not allowed"), "{reason}");
    assert_eq!(f.linear.issues().len(), 1, "the create ran");
    assert!(f.linear.attachments().is_empty() && f.linear.comments().is_empty(), "nothing after the link ran");
    assert_eq!(f.github.issues().len(), 1, "the other sinks went out");
    let before = f.linear.requests().len();

    let mut again = job.clone();
    again.id = bugbot_shared::job::JobId::sentry("next-delivery");
    let (outcome, _) = run(&f.config, &claims, &state, &again, "m2").await;
    let Outcome::Done { state: JobState::Filed, links, .. } = &outcome else { panic!("not filed: {outcome:?}") };
    let issues = f.linear.issues();
    assert_eq!(issues.len(), 1, "no second issue");
    assert!(links.iter().any(|l| l.contains(&issues[0].identifier)), "{links:?}");
    // The packet is gathered again (Linear's issue was not recorded as filed), then the issue is
    // looked up by its id and found: nothing is filed.
    assert_eq!(linear_operations(&f)[before..], ["SearchIssues", "Issue"]);
    assert_eq!(f.github.issues().len(), 1);
    assert_eq!(f.discord.messages(Snowflake(CHANNEL)).len(), 1);
}

/// Label ids come from the isolate's cache; a label deleted in Linear since makes Linear refuse the
/// create (the first field of `IssueFile`, so nothing was filed): the team's ids are forgotten,
/// asked for again (the deleted label made again), and the issue filed once more, once.
#[tokio::test(flavor = "current_thread")]
async fn a_create_refused_for_a_cached_label_asks_for_the_labels_again_and_files_once_more() {
    let f = fakes().await;
    let (claims, state, memo) = (MemoryClaims::default(), State::new(MemoryKv::default()), Memo::default());
    let (outcome, _) = run_at(&f.config, &claims, &state, &alert_number(3), "m1", now_ms(), &memo).await;
    assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{outcome:?}");
    let before = f.linear.requests().len();

    f.linear.remove_label("bugbot");
    let (outcome, _) = run_at(&f.config, &claims, &state, &alert_number(4), "m2", now_ms(), &memo).await;
    assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{outcome:?}");
    assert_eq!(
        linear_operations(&f)[before..],
        ["SearchIssues", "IssueFile", "IssueLabels", "IssueLabelCreate", "IssueFile"],
        "refused with the cached ids, then filed with the ones asked for again"
    );
    let refused = &f.linear.requests()[before + 1].json();
    let issues = f.linear.issues();
    assert_eq!(issues.len(), 2);
    let bugbot = f.linear.labels().into_iter().find(|l| l.name == "bugbot").expect("made again");
    assert!(issues[1].label_ids.contains(&bugbot.id), "{:?}", issues[1]);
    assert!(!refused["variables"]["input"]["labelIds"].as_array().unwrap().contains(&json!(bugbot.id)));
    assert_eq!(f.linear.attachments().len(), 2);
    assert_eq!(f.linear.comments().len(), 2, "each with its first comment");
}

/// The fix flow's transient failures go through the runtime's one failure mapping: its retries
/// carry the delivery's attempt, so the last one is known as the last (the runtime logs "giving
/// up: dead-lettered", the queue dead-letters it). Before, its attempt was always 1.
#[tokio::test(flavor = "current_thread")]
async fn a_fix_result_that_keeps_failing_escalates_to_the_dead_letter_queue() {
    use bugbot_consumer::store::ports::KvPort as _;

    let f = fakes().await;
    f.github.fail_always(Failure::ServerError);
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let run = json!({
        "fix_job_id": "fix-12-abc",
        "target": {"key": "#12", "url": "https://github.com/acme/web/issues/12", "title": "TypeError", "body": "", "github_number": 12},
        "repo": REPO, "base": "main", "branch": "bugbot/fix-12", "requested_by": "@ana",
        "reply": {}, "state": "running", "started_at_ms": 1
    });
    state.kv().put_text("fixrun:fix-12-abc", run.to_string(), 60).await.unwrap();
    let report = json!({"job_id": "fix-12-abc", "outcome": "fixed", "branch": "bugbot/fix-12"}).to_string();
    let job = Job::new(
        bugbot_shared::job::JobId::sentry("fix-result"),
        now_ms(),
        None,
        bugbot_shared::job::JobKind::ExecutorResult(bugbot_shared::job::ExecutorResultJob { report }),
    );
    let env = no_env();
    let port = ReqwestPort::new();
    let policy = f.config.retry;
    let mut attempts = Vec::new();
    for _ in 0..policy.max_attempts {
        let ctx = Ctx {
            env: &env,
            config: &f.config,
            port: &port,
            claims: &claims,
            state: &state,
            now_ms: now_ms(),
            jitter: 0.5,
            message_id: "m1",
            attempt: 1,
            memo: &Memo::default(),
        };
        let (outcome, _) = runtime::claimed(&ctx, &job, async |ctx, job| {
            (bugbot_consumer::handlers::fix::on_result(ctx, job).await, None)
        })
        .await;
        let Outcome::Retry { attempt, ref reason, .. } = outcome else { panic!("not retried: {outcome:?}") };
        assert!(reason.starts_with("opening the pull request: github"), "{reason}");
        attempts.push((attempt, runtime::settle::is_last(&policy, &outcome)));
    }
    assert_eq!(attempts, [(1, false), (2, false), (3, true)]);
}

/// The repository's runbooks are read once per `RUNBOOKS_TTL_MS` (`store::memo`): a listing and a
/// file per runbook, not on every alert.
#[tokio::test(flavor = "current_thread")]
async fn runbooks_are_read_again_only_after_their_ttl() {
    let f = fakes().await;
    f.github.put_file("runbooks/zero.md", "---\npatterns:\n  - ZeroDivisionError\n---\n");
    let (claims, state, memo) = (MemoryClaims::default(), State::new(MemoryKv::default()), Memo::default());
    let path = "sentry/sentry_docs_payloads/event_alert_triggered.json";
    let reads = |what: &str| f.github.requests().iter().filter(|r| r.path.ends_with(what)).count();
    let start = now_ms();
    for (i, at) in [(1, start), (2, start + 1_000), (3, start + RUNBOOKS_TTL_MS)] {
        let mut body: Value = serde_json::from_slice(&fixture(path)).unwrap();
        body["data"]["event"]["issue_id"] = json!(format!("90{i}"));
        body["data"]["event"]["title"] = json!(format!("RunbookError {i}"));
        let jobs = jobs_of_body(path, &serde_json::to_vec(&body).unwrap());
        let (outcome, _) = run_at(&f.config, &claims, &state, &jobs[0], &format!("m{i}"), at, &memo).await;
        assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{i}: {outcome:?}");
        let expected = if i < 3 { 1 } else { 2 };
        assert_eq!(reads("/contents/runbooks"), expected, "alert {i}: the listing");
        assert_eq!(reads("/contents/runbooks/zero.md"), expected, "alert {i}: the runbook");
    }
    assert_eq!(f.linear.issues().len(), 3);
}

/// The `sentry_docs` alert as Sentry issue `90{i}` titled `title` (its own fingerprint). Its exception
/// says "heck is not defined", the phrase code search looks for.
fn titled_alert(i: u64, title: &str) -> Job {
    let path = "sentry/sentry_docs_payloads/event_alert_triggered.json";
    let mut body: Value = serde_json::from_slice(&fixture(path)).unwrap();
    body["data"]["event"]["issue_id"] = json!(format!("90{i}"));
    body["data"]["event"]["title"] = json!(title);
    jobs_of_body(path, &serde_json::to_vec(&body).unwrap()).remove(0)
}

/// The GitHub issue body of the alert titled `title`.
fn github_body(f: &Fakes, title: &str) -> String {
    let issue = f.github.issues().into_iter().find(|i| i.title.contains(title));
    issue.and_then(|i| i.body).unwrap_or_else(|| panic!("no GitHub issue for {title}"))
}

/// GitHub allows 10 code searches a minute: alerts with the same message reuse the answer for
/// `CODE_SEARCH_TTL_MS` (`store::memo`), and each still lists the files found.
#[tokio::test(flavor = "current_thread")]
async fn code_search_answers_are_reused_within_their_ttl() {
    let f = fakes().await;
    f.github.put_file("src/heck.js", "throw new ReferenceError('heck is not defined');\n");
    let (claims, state, memo) = (MemoryClaims::default(), State::new(MemoryKv::default()), Memo::default());
    let searches = || f.github.requests().iter().filter(|r| r.path.ends_with("/search/code")).count();
    let start = now_ms();
    for (i, at) in [(1, start), (2, start + 1_000), (3, start + CODE_SEARCH_TTL_MS)] {
        let title = format!("CodeSearchError {i}: heck is not defined");
        let (outcome, _) =
            run_at(&f.config, &claims, &state, &titled_alert(i, &title), &format!("m{i}"), at, &memo).await;
        assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{i}: {outcome:?}");
        assert_eq!(searches(), if i < 3 { 1 } else { 2 }, "alert {i}: code searches");
        assert!(github_body(&f, &title).contains("src/heck.js"), "alert {i} lists the file found");
    }
}

/// The alerts of a batch run together (`runtime`): those that need a search another one is making
/// wait for its answer (`store::memo::Recent::flight`) rather than each spending one of GitHub's 10
/// code searches a minute.
#[tokio::test(flavor = "current_thread")]
async fn alerts_running_together_share_one_code_search() {
    let f = fakes().await;
    f.github.put_file("src/heck.js", "throw new ReferenceError('heck is not defined');\n");
    let (claims, state, memo) = (MemoryClaims::default(), State::new(MemoryKv::default()), Memo::default());
    let at = now_ms();
    let title = |i: u64| format!("TogetherError {i}: heck is not defined");
    let (jobs, ids): (Vec<Job>, Vec<String>) = (1..=3).map(|i| (titled_alert(i, &title(i)), format!("m{i}"))).unzip();
    let runs = jobs.iter().zip(&ids).map(|(job, id)| run_at(&f.config, &claims, &state, job, id, at, &memo));
    for (outcome, _) in futures::future::join_all(runs).await {
        assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{outcome:?}");
    }
    let searches = f.github.requests().iter().filter(|r| r.path.ends_with("/search/code")).count();
    assert_eq!(searches, 1, "one code search for the three alerts");
    for i in 1..=3 {
        assert!(github_body(&f, &title(i)).contains("src/heck.js"), "alert {i} lists the file found");
    }
}

/// The similar issues of an error type are searched once a minute (`SIMILAR_TTL_MS`), in Linear and
/// in GitHub; another error type is searched at once.
#[tokio::test(flavor = "current_thread")]
async fn similar_issue_searches_are_reused_within_their_ttl() {
    let f = fakes().await;
    let (claims, state, memo) = (MemoryClaims::default(), State::new(MemoryKv::default()), Memo::default());
    let github_searches = || {
        let similar = |r: &&RecordedRequest| {
            r.path.ends_with("/search/issues") && !r.query_param("q").unwrap_or_default().contains("in:body")
        };
        f.github.requests().iter().filter(similar).count()
    };
    let linear_searches = || linear_operations(&f).iter().filter(|op| *op == "SearchIssues").count();
    let start = now_ms();
    let alerts = [
        (1, start, "StormError: first message"),
        (2, start + 1_000, "StormError: second message"),
        (3, start + 2_000, "OtherError: third message"),
        (4, start + SIMILAR_TTL_MS, "StormError: fourth message"),
    ];
    for (i, at, title) in alerts {
        let (outcome, _) =
            run_at(&f.config, &claims, &state, &titled_alert(i, title), &format!("m{i}"), at, &memo).await;
        assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{i}: {outcome:?}");
        let expected = [1, 1, 2, 3][usize::try_from(i).unwrap() - 1];
        assert_eq!((github_searches(), linear_searches()), (expected, expected), "alert {i}: similar-issue searches");
    }
}

/// A search GitHub rate-limits is not asked again before the time GitHub gave (`retry-after`): the
/// alerts in between are filed at once, their packets saying the search was not asked and until when.
#[tokio::test(flavor = "current_thread")]
async fn a_rate_limited_search_is_not_asked_again_before_github_says() {
    let f = fakes().await;
    f.github.put_file("src/heck.js", "throw new ReferenceError('heck is not defined');\n");
    f.github.fail_next_matching("GET", "/search/code", Failure::RateLimited { retry_after_secs: 60.0 });
    let (claims, state, memo) = (MemoryClaims::default(), State::new(MemoryKv::default()), Memo::default());
    let searches = || f.github.requests().iter().filter(|r| r.path.ends_with("/search/code")).count();
    let start = now_ms();
    // The first job started 10 s before GitHub's answer (its claim and the other sources took that
    // long): the wait counts from the answer, at `start` (and a few ms).
    let alerts = [
        (1, start - 10_000, "secondary rate limit"),
        (2, start + 55_000, "not asked"),
        (3, start + 61_000, "src/heck.js"),
    ];
    for (i, at, says) in alerts {
        let title = format!("LimitedError {i}: heck is not defined");
        let (outcome, _) =
            run_at(&f.config, &claims, &state, &titled_alert(i, &title), &format!("m{i}"), at, &memo).await;
        assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{i}: {outcome:?}");
        assert_eq!(searches(), if i < 3 { 1 } else { 2 }, "alert {i}: code searches");
        let body = github_body(&f, &title);
        assert!(body.contains(says), "alert {i}'s packet says {says:?}:\n{body}");
    }
    let body = github_body(&f, "LimitedError 2");
    let until = body.split("rate limited until ").nth(1).and_then(|rest| rest.split(": not asked").next());
    let (earliest, latest) = (start + 60_000, start + 61_000);
    let (earliest, latest) =
        (bugbot_shared::event::format_rfc3339_ms(earliest), bugbot_shared::event::format_rfc3339_ms(latest));
    assert!(until.is_some_and(|t| earliest.as_str() <= t && t < latest.as_str()), "until when: {until:?}\n{body}");
}

// --- issue 16.1: enrichment before filing -----------------------------------------------------

/// The fake API serves the alert's issue with the `python_zero_division` event (API shape).
fn serve_zero_division(sentry: &bugbot_e2e::fake::FakeSentry, id: &str) {
    let mut issue = sentry.issues().into_iter().find(|i| i.fixture.as_deref() == Some("python_zero_division")).unwrap();
    id.clone_into(&mut issue.id);
    sentry.add_issue(issue);
}

fn glitchtip_api(config: &mut Config, sentry: &bugbot_e2e::fake::FakeSentry, token: &str, timeout_ms: u64) {
    config.evidence = bugbot_consumer::config::EvidenceConfig {
        glitchtip_api: Some(bugbot_consumer::config::RestApiConfig {
            api_base: Some(sentry.url()),
            token: token.to_owned(),
            org: String::new(),
        }),
        enrich_timeout_ms: timeout_ms,
        ..bugbot_consumer::config::EvidenceConfig::default()
    };
}

/// Files the GlitchTip fixture (issue 1234, no stack trace) and returns the GitHub issue body.
async fn file_glitchtip(f: &Fakes) -> String {
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let jobs = jobs_of("glitchtip/current_format_general_webhook_issue.json");
    let (outcome, _) = run(&f.config, &claims, &state, &jobs[0], "m1").await;
    assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{outcome:?}");
    let issues = f.github.issues();
    assert_eq!(issues.len(), 1);
    issues[0].body.clone().unwrap_or_default()
}

/// A GlitchTip alert carries no stack trace: the latest event is fetched (with the token) and
/// the issue shows the in-app crash frame, the exception and the issue's counts.
#[tokio::test(flavor = "current_thread")]
async fn a_glitchtip_alert_is_filed_with_the_latest_events_stack() {
    let mut f = fakes().await;
    let token = random_hex(8);
    let sentry = bugbot_e2e::fake::FakeSentry::start(&token).await;
    serve_zero_division(&sentry, "1234");
    glitchtip_api(&mut f.config, &sentry, &token, 3_000);
    let body = file_glitchtip(&f).await;
    assert!(body.contains("errors/views.py:18"), "{body}");
    assert!(body.contains("ZeroDivisionError"), "{body}");
    assert!(body.contains("**Users affected:**"), "{body}");
    assert!(!body.contains("sent no stack trace"), "{body}");
    let paths: Vec<String> = sentry.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(&"/api/0/issues/1234/events/latest/".to_owned()), "{paths:?}");
    assert!(sentry.requests().iter().all(|r| r.header("authorization") == Some(format!("Bearer {token}").as_str())));
    let linear = f.linear.issues();
    assert!(linear[0].description.contains("errors/views.py:18"), "Linear gets the same body");
}

/// The API failing in each way it can (500, 429 with Retry-After, no answer within the budget)
/// never holds back filing: the issue goes out without the stack and says why.
#[tokio::test(flavor = "current_thread")]
async fn an_api_that_fails_never_holds_back_filing() {
    for (failure, says) in [
        (Failure::ServerError, "HTTP 500"),
        (Failure::RateLimited { retry_after_secs: 30.0 }, "HTTP 429"),
        (Failure::Hang, "timed out after 300 ms"),
    ] {
        let mut f = fakes().await;
        let token = random_hex(8);
        let sentry = bugbot_e2e::fake::FakeSentry::start(&token).await;
        serve_zero_division(&sentry, "1234");
        sentry.fail_always(failure.clone());
        glitchtip_api(&mut f.config, &sentry, &token, 300);
        let body = file_glitchtip(&f).await;
        assert!(body.contains("could not fetch the latest event from GlitchTip"), "{failure:?}: {body}");
        assert!(body.contains(says), "{failure:?}: {body}");
        assert!(body.contains("sent no stack trace"), "{body}");
        assert!(!body.contains(&token), "no secret in the issue");
    }
}

/// Without `GLITCHTIP_API_TOKEN` nothing is fetched and the issue says which setting is missing.
#[tokio::test(flavor = "current_thread")]
async fn without_an_api_token_the_issue_says_which_setting_is_missing() {
    let f = fakes().await;
    let body = file_glitchtip(&f).await;
    assert!(body.contains("GLITCHTIP\\_API\\_TOKEN is not set"), "{body}");
}

/// Issue 16.4: without a stack trace, the files that mention the error (GitHub code search for the
/// message's plain phrase) are listed in the packet, only within the code allowlist (a file outside
/// it that says the same is not named), and count as "code only" evidence.
#[tokio::test(flavor = "current_thread")]
async fn without_a_stack_the_files_that_mention_the_error_are_found_within_the_allowlist() {
    let f = fakes().await;
    f.github.put_file("src/calc.py", "def ratio(a, b):\n    raise ZeroDivisionError('division by zero')\n");
    f.github.put_file("deploy/notes.py", "# division by zero happens when the config is empty\n");
    f.github.put_file("src/other.py", "def unrelated():\n    return 1\n");
    let body = file_glitchtip(&f).await;
    assert!(body.contains("Files that mention the error"), "{body}");
    assert!(body.contains("- `src/calc.py`"), "{body}");
    assert!(!body.contains("deploy/notes.py"), "a file outside CODE_PATHS is never named: {body}");
    assert!(!body.contains("src/other.py"), "{body}");
    assert!(body.contains("0.60"), "code found without a stack scores 0.60: {body}");
    let searched = f.github.requests().iter().any(|r| r.path == "/search/code");
    assert!(searched, "the code search ran");
}

// --- issue 16.2: the context packet on every new alert ----------------------------------------

fn git(dir: &std::path::Path, args: &[&str], author: &str) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", author)
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", author)
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn head(dir: &std::path::Path) -> String {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(["rev-parse", "HEAD"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `errors/views.py` with a real history: Alice writes it, Bob introduces `0/0` on line 18 (the
/// crash line of `python_zero_division`), Carol later edits line 3 only. Returns the repository,
/// Bob's and Carol's commits, and the file.
fn views_history() -> (tempfile::TempDir, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    git(path, &["init", "-q", "-b", "main"], "Alice");
    let mut lines: Vec<String> = (1..=21).map(|n| format!("# line {n}")).collect();
    lines[16] = "    def get(self, request, *args, **kwargs):".into();
    lines[17] = "        return 1".into();
    let write = |lines: &[String]| {
        std::fs::create_dir_all(path.join("errors")).unwrap();
        std::fs::write(path.join("errors/views.py"), lines.join("\n") + "\n").unwrap();
    };
    write(&lines);
    git(path, &["add", "."], "Alice");
    git(path, &["commit", "-q", "-m", "Add the views"], "Alice");
    lines[17] = "        0/0".into();
    write(&lines);
    git(path, &["commit", "-q", "-am", "Compute the ratio per visit"], "Bob Builder");
    let bob = head(path);
    lines[2] = "# a comment".into();
    write(&lines);
    git(path, &["commit", "-q", "-am", "Reword a comment"], "Carol");
    let carol = head(path);
    (dir, bob, carol, lines.join("\n") + "\n")
}

/// A GlitchTip alert, enriched with its stack, is filed with the packet: the code at the crash
/// line (marked), the commit that last changed that line (blame over real history) before the one
/// that merely touched the file later, and the starter runbook does not match a division error.
/// On Linear the packet is the first comment.
#[tokio::test(flavor = "current_thread")]
async fn a_new_alert_is_filed_with_the_context_packet() {
    let mut f = fakes().await;
    let token = random_hex(8);
    let sentry = bugbot_e2e::fake::FakeSentry::start(&token).await;
    serve_zero_division(&sentry, "1234");
    glitchtip_api(&mut f.config, &sentry, &token, 3_000);
    f.config.evidence.code_paths = Some("errors/**".into());
    let (repo, bob, carol, content) = views_history();
    f.github.set_backing_repo(repo.path());
    f.github.put_file("errors/views.py", &content);
    for (sha, author, message) in
        [(&bob, "Bob Builder", "Compute the ratio per visit"), (&carol, "Carol", "Reword a comment")]
    {
        f.github.add_commit(bugbot_e2e::fake::github::Commit {
            sha: sha.clone(),
            paths: vec!["errors/views.py".into()],
            author: author.into(),
            date: "2026-12-01T10:00:00Z".into(),
            message: message.into(),
        });
    }
    let body = file_glitchtip(&f).await;
    assert!(body.contains("## bugbot context"), "{body}");
    assert!(body.contains(">18 |         0/0"), "the crash line, marked: {body}");
    let blamed = format!("`{}` Compute the ratio per visit — Bob Builder", &bob[..7]);
    let touched = format!("`{}` Reword a comment — Carol", &carol[..7]);
    let (at_bob, at_carol) = (body.find(&blamed), body.find(&touched));
    assert!(at_bob.is_some() && at_carol.is_some(), "{body}");
    assert!(at_bob < at_carol, "the blamed commit comes first: {body}");
    assert!(body.contains("last changed `errors/views.py:18`"), "{body}");
    // Issue 16.3: stack + code at the line (0.80) and the blamed commit (+0.05), shown as a breakdown.
    assert!(
        body.contains(
            "### Confidence 0.85\n- 0.80 stack trace and the code at the crash line\n- +0.05 suspect commit from blame"
        ),
        "{body}"
    );
    let graphql = f.github.requests().into_iter().filter(|r| r.path == "/graphql").count();
    assert!(graphql >= 1, "blame went through GraphQL");
    let comments = f.linear.comments();
    assert_eq!(comments.len(), 1, "the packet is Linear's first comment");
    assert!(comments[0].body.contains(&blamed), "{}", comments[0].body);
    assert!(!f.linear.issues()[0].description.contains("## bugbot context"), "not twice on Linear");
}

/// A packet that cannot be gathered in `CONTEXT_TIMEOUT_MS` (Linear's similar-issue search gets
/// no answer) never holds back filing: the issues go out without it and the body says so.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_packet_never_holds_back_filing() {
    let mut f = fakes().await;
    f.config.evidence.context_timeout_ms = 300;
    f.linear.fail_next(1, Failure::Hang);
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let jobs = jobs_of("sentry/integration_platform_example_mocks/event_alert_triggered.json");
    let (outcome, _) = run(&f.config, &claims, &state, &jobs[0], "m1").await;
    assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{outcome:?}");
    let issues = f.github.issues();
    let body = issues[0].body.clone().unwrap_or_default();
    assert!(
        body.contains("took longer than 300 ms (CONTEXT\\_TIMEOUT\\_MS)")
            || body.contains("took longer than 300 ms (CONTEXT_TIMEOUT_MS)"),
        "{body}"
    );
    assert_eq!(f.linear.issues().len(), 1);
}

// --- issue 16.6: REPO_ROUTES --------------------------------------------------------------------

/// The GlitchTip fixture (project `error-factory`) with its latest event, and `errors/views.py` in
/// the fake's repository (`acme/web`). `GITHUB_REPO` is another repository the fake does not serve
/// (so anything sent there is answered 404, as GitHub does).
async fn routed_setup(routes: &str) -> (Fakes, bugbot_e2e::fake::FakeSentry) {
    let mut f = fakes().await;
    let token = random_hex(8);
    let sentry = bugbot_e2e::fake::FakeSentry::start(&token).await;
    serve_zero_division(&sentry, "1234");
    glitchtip_api(&mut f.config, &sentry, &token, 3_000);
    f.config.github.as_mut().unwrap().repo = "acme/shop".into();
    let (parsed, warnings) = bugbot_shared::routes::RepoRoutes::parse(routes);
    assert!(warnings.is_empty(), "{warnings:?}");
    f.config.routes = parsed;
    let (_, _, _, content) = views_history();
    f.github.put_file("errors/views.py", &content);
    (f, sentry)
}

/// An event of a routed project is filed in the route's repository, not `GITHUB_REPO`: its GitHub
/// issue, the packet's code (read from that repository, linked there, within the route's
/// `paths=`), the repeat comment, and the auto-fix follow-up all name it.
#[tokio::test(flavor = "current_thread")]
async fn a_routed_project_is_filed_in_its_repository_with_its_code() {
    let (mut f, _sentry) =
        routed_setup("project:other => acme/other; project:error-factory => acme/web | paths=errors/**").await;
    f.config.evidence.code_paths = Some("src/**".into());
    f.config.repeat_comment_cooldown_ms = 0;
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let jobs = jobs_of("glitchtip/current_format_general_webhook_issue.json");
    let (outcome, follow_up) = run(&f.config, &claims, &state, &jobs[0], "m1").await;
    assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{outcome:?}");
    let issues = f.github.issues();
    assert_eq!(issues.len(), 1, "filed in acme/web");
    let body = issues[0].body.clone().unwrap_or_default();
    assert!(body.contains(">18 |         0/0"), "the code comes from the routed repository: {body}");
    assert!(body.contains("https://github.com/acme/web/blob/HEAD/errors/views.py"), "{body}");
    let elsewhere: Vec<String> = f
        .github
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/repos/") && !r.path.starts_with("/repos/acme/web/"))
        .map(|r| r.path)
        .collect();
    assert!(elsewhere.is_empty(), "nothing went to GITHUB_REPO: {elsewhere:?}");
    match follow_up {
        Some(FollowUp::AutoFix { repo, .. }) => assert_eq!(repo.as_deref(), Some("acme/web")),
        other => panic!("{other:?}"),
    }

    let mut repeat = jobs[0].clone();
    repeat.id = bugbot_shared::job::JobId::sentry("repeat-delivery");
    let (second, _) = run(&f.config, &claims, &state, &repeat, "m2").await;
    assert!(matches!(second, Outcome::Done { state: JobState::Filed, .. }), "{second:?}");
    assert_eq!(f.github.comments().len(), 1, "the repeat is commented on the routed issue");
}

/// The attack: anyone with the public DSN can send an event claiming a routed project. The route
/// only ever narrows what is shown: a frame outside the route's `paths=` is not quoted even though
/// the global `CODE_PATHS` would allow it, and the fix follow-up names the routed repository, which
/// `start` checks against `FIX_REPOS` like any other.
#[tokio::test(flavor = "current_thread")]
async fn an_event_claiming_a_routed_project_gets_no_code_outside_the_routes_paths() {
    let (mut f, _sentry) = routed_setup("project:error-factory => acme/web | paths=src/**").await;
    // The route's repository is GITHUB_REPO too: only the route's paths stand between the frame
    // and the file, which the global CODE_PATHS would show.
    f.config.github.as_mut().unwrap().repo = "acme/web".into();
    f.config.evidence.code_paths = Some("errors/**".into());
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let jobs = jobs_of("glitchtip/current_format_general_webhook_issue.json");
    let (outcome, follow_up) = run(&f.config, &claims, &state, &jobs[0], "m1").await;
    assert!(matches!(outcome, Outcome::Done { state: JobState::Filed, .. }), "{outcome:?}");
    let body = f.github.issues()[0].body.clone().unwrap_or_default();
    assert!(!body.contains(">18 |"), "errors/views.py is outside the route's paths: {body}");
    let read = f.github.requests().into_iter().any(|r| r.path.contains("/contents/errors/views.py"));
    assert!(!read, "not even read");
    match follow_up {
        Some(FollowUp::AutoFix { repo, .. }) => assert_eq!(repo.as_deref(), Some("acme/web")),
        other => panic!("{other:?}"),
    }
}

/// Issue 18: a new issue's record is kept by its fingerprint's shard, in the round trip that ends
/// its filing (no KV write), and read back with the shard's current tracked issues. An issue an
/// earlier version filed is still read from KV (`fp:`), and an event too large for a Durable
/// Object's value is left out of the record, not the filing.
#[tokio::test(flavor = "current_thread")]
async fn the_issue_record_is_the_shards_and_one_an_earlier_version_kept_is_still_read() {
    use bugbot_consumer::store::{IssueRecord, remembered, remembered_event};
    let f = fakes().await;
    let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
    let jobs = jobs_of("sentry/integration_platform_example_mocks/event_alert_triggered.json");
    let (outcome, _) = run(&f.config, &claims, &state, &jobs[0], "m1").await;
    let Outcome::Done { state: JobState::Filed, links, fingerprint: Some(fp), .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(state.kv().entries.borrow().is_empty(), "nothing in KV: {:?}", state.kv().entries.borrow().keys());
    let record = remembered(&claims, &state, fp).await.unwrap().expect("the shard keeps the issue's record");
    assert_eq!(&record.tracked.urls(), links, "the tracked issues, as the shard has them");
    let event = record.event.clone().expect("with its event");
    assert_eq!(event.fingerprint.as_str(), fp);
    assert_eq!(remembered_event(&claims, &state, fp).await.unwrap(), Some(event.clone()));

    // An earlier version's record, in KV; this shard has none.
    let mut earlier = record.clone();
    earlier.title = "Filed by an earlier version".into();
    earlier.event.as_mut().unwrap().title = earlier.title.clone();
    earlier.tracked = bugbot_shared::claim::TrackedRefs::default();
    let kv = MemoryKv::default();
    kv.entries.borrow_mut().insert(format!("fp:{fp}"), serde_json::to_string(&earlier).unwrap());
    let (other_claims, old_state) = (MemoryClaims::default(), State::new(kv));
    let read = remembered_event(&other_claims, &old_state, fp).await.unwrap().expect("KV's record");
    assert_eq!(read.title, "Filed by an earlier version");
    // With the fingerprint's record in the shard (filed without an issue record, as then), the
    // tracked issues are the shard's.
    let occurrence = bugbot_shared::claim::FingerprintOp::Occurrence {
        holder: "old".into(),
        message: "old-message".into(),
        now_ms: now_ms(),
        lease_ms: 60_000,
        cooldown_ms: 60_000,
        window_ms: 60_000,
    };
    let filed = bugbot_shared::claim::FingerprintOp::Filed {
        holder: "old".into(),
        now_ms: now_ms(),
        tracked: record.tracked.clone(),
    };
    for op in [occurrence, filed] {
        bugbot_consumer::store::ports::ClaimPort::fingerprint(&other_claims, fp, &op).await.unwrap();
    }
    let read = remembered(&other_claims, &old_state, fp).await.unwrap().expect("KV's record");
    assert_eq!((read.title.as_str(), &read.tracked), ("Filed by an earlier version", &record.tracked));
    // Read once, it is the shard's too: KV's copy, which nothing rewrites now, may expire.
    old_state.kv().entries.borrow_mut().clear();
    let read = remembered(&other_claims, &old_state, fp).await.unwrap().expect("the shard's copy");
    assert_eq!(read.title, "Filed by an earlier version");
    // A repeat that comments keeps it there too, before anything needs to read it.
    let kv = MemoryKv::default();
    kv.entries.borrow_mut().insert(format!("fp:{fp}"), serde_json::to_string(&earlier).unwrap());
    let (third_claims, third_state) = (MemoryClaims::default(), State::new(kv));
    bugbot_consumer::store::keep_issue_filed_earlier(&third_claims, &third_state, fp).await;
    third_state.kv().entries.borrow_mut().clear();
    let read = remembered_event(&third_claims, &third_state, fp).await.unwrap().expect("the shard's copy");
    assert_eq!(read.title, "Filed by an earlier version");

    // An event past the limit: the record is kept without it.
    let mut huge = event;
    huge.culprit = Some("x".repeat(1_100_000));
    let text = IssueRecord::filed(&huge, &record.tracked, None);
    let kept: IssueRecord = serde_json::from_str(&text).unwrap();
    assert!(kept.event.is_none() && text.len() < 100_000, "{} bytes", text.len());
    assert_eq!(kept.title, huge.title);
}
