//! The alert handler run natively over its ports: the real clients against the fakes (over
//! `ReqwestPort`), the claims and KV in memory (`store::ports::memory`), through the runtime's
//! claim → dispatch → settle. No Worker: these pin what one alert costs (Durable Object calls, KV
//! writes, outbound requests) and what it sends, and that one failing sink does not hold back the
//! others. The Miniflare tests (`alerts.rs`) keep checking the wiring.

use std::time::{SystemTime, UNIX_EPOCH};

use bugbot_consumer::config::{Config, DiscordConfig, GitHubConfig, LinearConfig};
use bugbot_consumer::handlers::alert;
use bugbot_consumer::runtime::{self, Ctx, Effect, FollowUp, Outcome};
use bugbot_consumer::store::State;
use bugbot_consumer::store::ports::memory::{MemoryClaims, MemoryKv};
use bugbot_e2e::fake::{Failure, FakeDiscord, FakeGitHub, FakeLinear, RecordedRequest, ReqwestPort};
use bugbot_e2e::keys::random_hex;
use bugbot_e2e::workers::fixture;
use bugbot_shared::backoff::RetryPolicy;
use bugbot_shared::filter::FilterConfig;
use bugbot_shared::ingress::{self, Headers, IngressConfig, IngressRequest, Route};
use bugbot_shared::job::Job;
use bugbot_shared::log::Level;
use bugbot_shared::source::discord::Snowflake;
use bugbot_shared::status::JobState;
use serde_json::{Value, json};

const REPO: &str = "acme/web";
const CHANNEL: u64 = 4_242;

struct Fakes {
    linear: FakeLinear,
    github: FakeGitHub,
    discord: FakeDiscord,
    config: Config,
}

async fn fakes() -> Fakes {
    let (linear_key, github_token, bot_token) = (random_hex(8), random_hex(8), random_hex(8));
    let linear = FakeLinear::start(&linear_key).await;
    let github = FakeGitHub::start(&github_token, REPO).await;
    let discord = FakeDiscord::start(&bot_token, Snowflake(1)).await;
    let config = Config {
        linear: Some(LinearConfig {
            api_url: linear.url(),
            api_key: linear_key,
            team_id: bugbot_e2e::fake::linear::TEAM_ID.into(),
        }),
        github: Some(GitHubConfig { api_base: github.url(), token: github_token, repo: REPO.into() }),
        discord: DiscordConfig {
            api_base: discord.url(),
            bot_token: Some(bot_token),
            application_id: Some("1".into()),
            alerts_channel_id: Some(CHANNEL.to_string()),
        },
        filter: FilterConfig::default(),
        retry: RetryPolicy { max_attempts: 3, ..RetryPolicy::default() },
        repeat_comment_cooldown_ms: 3_600_000,
        claim_lease_ms: 600_000,
        dedupe_window_ms: 600_000,
        log_level: Level::Warn,
        admin_token: None,
        fix_require_repro: false,
        warnings: Vec::new(),
        chatops: bugbot_consumer::config::ChatopsConfig::default(),
    };
    Fakes { linear, github, discord, config }
}

/// The jobs the gateway makes of a fixture, as it would queue them.
fn jobs_of(path: &str) -> Vec<Job> {
    let body = fixture(path);
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
    let signature = bugbot_shared::verify::hmac_sha256_hex(secret.as_bytes(), &body);
    let headers = TestHeaders(vec![
        ("sentry-hook-resource", resource),
        ("sentry-hook-signature", signature),
        ("request-id", path.to_owned()),
    ]);
    let accepted = ingress::handle(
        &cfg,
        &route,
        IngressRequest { headers: &headers, body: &body, now_ms: now_ms(), request_id: path },
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    accepted.jobs
}

struct TestHeaders(Vec<(&'static str, String)>);

impl Headers for TestHeaders {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis()).expect("fits")
}

/// A placeholder for the Worker's bindings: the alert handler never reads them (its settings come
/// from [`Config`]); any use would panic natively, which these tests would show.
fn no_env() -> worker::Env {
    use wasm_bindgen::JsCast as _;
    wasm_bindgen::JsValue::UNDEFINED.unchecked_into()
}

/// Runs one job as the runtime does: claim the delivery, the alert handler, settle.
async fn run(
    config: &Config,
    claims: &MemoryClaims,
    state: &State<MemoryKv>,
    job: &Job,
    message_id: &str,
) -> (Outcome, Option<FollowUp>) {
    let env = no_env();
    let port = ReqwestPort::new();
    let ctx =
        Ctx { env: &env, config, port: &port, claims, state, now_ms: now_ms(), jitter: 0.5, message_id, attempt: 1 };
    runtime::claimed(&ctx, job, async |ctx, job| alert::process(ctx, job).await).await
}

/// The outbound requests, in order of arrival, as `service METHOD path (GraphQL operation)`.
fn sequence(f: &Fakes) -> Vec<String> {
    let mut all: Vec<(&str, RecordedRequest)> = Vec::new();
    all.extend(f.linear.requests().into_iter().map(|r| ("linear", r)));
    all.extend(f.github.requests().into_iter().map(|r| ("github", r)));
    all.extend(f.discord.requests().into_iter().map(|r| ("discord", r)));
    all.sort_by_key(|(_, r)| r.at);
    all.into_iter()
        .map(|(service, r)| {
            let operation = r.json()["query"]
                .as_str()
                .and_then(|q| q.split_whitespace().skip_while(|w| *w != "query" && *w != "mutation").nth(1))
                .map(|op| format!(" {}", op.split('(').next().unwrap_or(op)))
                .unwrap_or_default();
            let failed = r.failure.as_ref().map(|f| format!(" → {f:?}")).unwrap_or_default();
            format!("{service} {} {}{operation}{failed}", r.method, r.path)
        })
        .collect()
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
/// the ports (Durable Object round trips, KV writes, outbound requests).
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
