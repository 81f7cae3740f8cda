//! The `/bugbot` command handlers run natively over their ports, as `alert_handler.rs` runs the
//! alert handler: the real clients against the fakes (over `ReqwestPort`), the claims and KV in
//! memory (`store::ports::memory`), through the runtime's claim → dispatch → settle. Each step pins
//! the outbound request sequence and the outcome (insta snapshots). The Miniflare tests
//! (`commands.rs`) keep checking the wiring.
//!
//! Card clicks (`handlers::component`) run the same way: Mute, then `status` listing it.
//!
//! `fix` runs here up to its dispatch (its refusals); the dispatch itself and `stats` (which reads
//! the stats Durable Object through the Worker's bindings) are left to the Miniflare tests.

use bugbot_consumer::config::{
    ChatopsConfig, Config, EvidenceConfig, ExecutorRoute, FixConfig, PostHogConfig, RestApiConfig,
};
use bugbot_consumer::handlers::{command, component};
use bugbot_consumer::runtime::{self, Ctx, Outcome};
use bugbot_consumer::store::State;
use bugbot_consumer::store::memo::Memo;
use bugbot_consumer::store::ports::ClaimPort as _;
use bugbot_consumer::store::ports::memory::{MemoryClaims, MemoryKv};
use bugbot_e2e::fake::{FakeDiscord, FakeGitHub, FakeLinear, FakePostHog, FakeSentry, ReqwestPort};
use bugbot_e2e::keys::random_hex;
use bugbot_e2e::native::{self, Trackers, no_env, now_ms};
use bugbot_shared::authz::Policy;
use bugbot_shared::chatops::{Action, ComponentId};
use bugbot_shared::claim::{DiscordRef, FingerprintOp, IssueRef, TrackedRefs};
use bugbot_shared::command::{Command, IssueMention};
use bugbot_shared::confidence::AutoFixPolicy;
use bugbot_shared::event::Fingerprint;
use bugbot_shared::executor::FixLimits;
use bugbot_shared::job::{DiscordCommandJob, DiscordComponentJob, InteractionContext, Job, JobId, JobKind};
use bugbot_shared::policy::FixRepos;
use bugbot_shared::source::discord::{Snowflake, User};
use serde_json::{Value, json};

const REPO: &str = "acme/web";
const APP: u64 = 1;
const GUILD: u64 = 5;
const USER: u64 = 77;
const WRITER_ROLE: u64 = 88;
const THREAD: u64 = 4_242;

struct World {
    linear: FakeLinear,
    github: FakeGitHub,
    discord: FakeDiscord,
    sentry: FakeSentry,
    posthog: FakePostHog,
    config: Config,
    claims: MemoryClaims,
    state: State<MemoryKv>,
}

/// Every integration configured against its fake; commands allowed in `GUILD`, fix and resolve
/// for `WRITER_ROLE`.
async fn world() -> World {
    let (sentry_token, posthog_key) = (random_hex(8), random_hex(8));
    let Trackers { linear, github, discord, mut config } = Trackers::start(REPO, None).await;
    let sentry = FakeSentry::start(&sentry_token).await;
    let posthog = FakePostHog::start(&posthog_key).await;
    config.evidence = EvidenceConfig {
        sentry_api: Some(RestApiConfig {
            api_base: Some(sentry.url()),
            token: sentry_token,
            org: bugbot_e2e::fake::sentry::ORG.into(),
        }),
        posthog: Some(PostHogConfig {
            api_base: posthog.url(),
            api_key: posthog_key,
            project_id: bugbot_e2e::fake::posthog::PROJECT_ID.into(),
        }),
        code_paths: Some("errors/**".into()),
        ..EvidenceConfig::default()
    };
    config.chatops.policy =
        Ok(Policy { guilds: vec![Snowflake(GUILD)], write_roles: vec![Snowflake(WRITER_ROLE)], ..Policy::default() });
    World {
        linear,
        github,
        discord,
        sentry,
        posthog,
        config,
        claims: MemoryClaims::default(),
        state: State::new(MemoryKv::default()),
    }
}

fn issue(text: &str) -> IssueMention {
    serde_json::from_value(json!(text)).expect("an issue reference")
}

/// The job the gateway makes of interaction `n`: `command` typed by `USER` with `roles` in `channel`.
fn command_job(n: u64, channel: u64, roles: &[u64], command: Command) -> Job {
    let interaction = InteractionContext {
        interaction_id: Snowflake(n),
        application_id: Snowflake(APP),
        token: format!("itok-{n}"),
        guild_id: Some(Snowflake(GUILD)),
        channel_id: Some(Snowflake(channel)),
        user: Some(User { id: Snowflake(USER), username: "jane".into(), global_name: None }),
        roles: roles.iter().copied().map(Snowflake).collect(),
        reply_in_followup: false,
    };
    Job::new(
        JobId::discord(Snowflake(n)),
        now_ms(),
        None,
        JobKind::DiscordCommand(DiscordCommandJob { interaction, command, guidance: None, card: None }),
    )
}

/// Runs one job as the runtime does: claim the delivery, the command or click handler, settle, and
/// the job's status record (which `/bugbot status` reads back).
async fn run(w: &World, job: &Job) -> Outcome {
    let env = no_env();
    let port = ReqwestPort::new();
    let ctx = Ctx {
        env: &env,
        config: &w.config,
        port: &port,
        claims: &w.claims,
        state: &w.state,
        now_ms: now_ms(),
        jitter: 0.5,
        message_id: job.id.as_str(),
        attempt: 1,
        memo: &Memo::default(),
    };
    let (outcome, _) = runtime::claimed(&ctx, job, async |ctx, job| match &job.kind {
        JobKind::DiscordComponent(c) => (component::process(ctx, job, c).await, None),
        _ => (command::process(ctx, job).await, None),
    })
    .await;
    if let Outcome::Done { state, reason, links, .. } = &outcome {
        ctx.record_job(job, *state, reason.clone(), links.clone(), 1, now_ms()).await.expect("status recorded");
    }
    outcome
}

/// Every outbound request so far, in order of arrival, as `service METHOD path (GraphQL operation)`;
/// the packet's reads go out concurrently, so their order is not the program's (sorted).
fn sequence(w: &World) -> Vec<String> {
    let services = vec![
        ("linear", w.linear.requests()),
        ("github", w.github.requests()),
        ("discord", w.discord.requests()),
        ("sentry", w.sentry.requests()),
        ("posthog", w.posthog.requests()),
    ];
    native::sequence(services, is_packet_read)
}

/// A read of the context packet's sources, sent concurrently with the others.
fn is_packet_read(request: &str) -> bool {
    request.starts_with("sentry GET ")
        || request.starts_with("posthog GET ")
        || request.starts_with("github GET ")
        || request.starts_with("github POST /graphql")
        || request.ends_with(" SearchIssues")
}

/// The requests since `from` (a length of [`sequence`]).
fn since(w: &World, from: usize) -> Vec<String> {
    sequence(w)[from..].to_vec()
}

/// The outcome, with the per-source timings of a packet's reason (`code=12ms`) blanked.
fn summary(outcome: &Outcome) -> Value {
    let blank = |reason: &str| {
        reason
            .split(' ')
            .map(|word| match word.split_once('=') {
                Some((source, ms)) if ms.ends_with("ms") => format!("{source}=…ms"),
                _ => word.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match outcome {
        Outcome::Done { state, reason, links, effect, .. } => json!({
            "state": format!("{state:?}"),
            "reason": reason.as_deref().map(blank),
            "links": links.len(),
            "effect": format!("{effect:?}"),
        }),
        Outcome::Retry { reason, attempt, .. } => json!({"retry": reason, "attempt": attempt}),
    }
}

/// What the deferred reply of interaction `n` says last.
fn reply(w: &World, n: u64) -> String {
    let token = format!("itok-{n}");
    let edits = w.discord.original_edits();
    let last = edits.iter().rev().find(|c| c.token == token).unwrap_or_else(|| panic!("no reply for {token}"));
    last.body["content"].as_str().unwrap_or_default().to_owned()
}

/// `errors` lists the source's unresolved issues; `resolve` needs a write role, then resolves the
/// source issue.
#[tokio::test(flavor = "current_thread")]
async fn errors_and_resolve_over_the_sentry_api() {
    let w = world().await;

    let errors = command_job(1, THREAD, &[], Command::Errors { project: None, hours: Some(48) });
    let outcome = run(&w, &errors).await;
    let text = reply(&w, 1);
    assert!(text.contains("Top unresolved errors") && text.contains("ZeroDivisionError"), "{text}");
    let listed = w.sentry.requests().into_iter().find(|r| r.path.ends_with("/issues/")).expect("the list");
    assert_eq!(listed.query_param("statsPeriod").as_deref(), Some("48h"));
    insta::assert_json_snapshot!("errors", json!({"outcome": summary(&outcome), "requests": sequence(&w)}));

    let id = w.sentry.issue_id("python_zero_division");
    let url = w.sentry.issue_url(&id);
    let before = sequence(&w).len();
    let refused = run(&w, &command_job(2, THREAD, &[], Command::Resolve { issue: issue(&url) })).await;
    let followup = w.discord.followups().into_iter().find(|c| c.token == "itok-2").expect("a private refusal");
    assert!(followup.body["content"].as_str().unwrap_or_default().contains("write role"), "{}", followup.body);
    assert_eq!(followup.body["flags"], 64);
    assert_ne!(w.sentry.issues().into_iter().find(|i| i.id == id).unwrap().status, "resolved");
    insta::assert_json_snapshot!(
        "resolve_refused",
        json!({"outcome": summary(&refused), "requests": since(&w, before)})
    );

    let before = sequence(&w).len();
    let resolved = run(&w, &command_job(3, THREAD, &[WRITER_ROLE], Command::Resolve { issue: issue(&url) })).await;
    assert!(reply(&w, 3).contains("Resolved"), "{}", reply(&w, 3));
    assert_eq!(w.sentry.issues().into_iter().find(|i| i.id == id).unwrap().status, "resolved");
    insta::assert_json_snapshot!("resolve", json!({"outcome": summary(&resolved), "requests": since(&w, before)}));

    let before = sequence(&w).len();
    let unknown = run(&w, &command_job(4, THREAD, &[WRITER_ROLE], Command::Resolve { issue: issue("nothing") })).await;
    assert!(reply(&w, 4).contains("is not a Sentry/GlitchTip issue"), "{}", reply(&w, 4));
    insta::assert_json_snapshot!(
        "resolve_not_a_source_issue",
        json!({"outcome": summary(&unknown), "requests": since(&w, before)})
    );
}

/// `/bugbot stats` reads bugbot's own counters from the ledger (a port: natively, the in-memory
/// one), then the source's view of the window from the Sentry-compatible API.
#[tokio::test(flavor = "current_thread")]
async fn stats_reads_the_ledger_and_the_source() {
    let w = world().await;
    let today = bugbot_shared::digest::day_of(now_ms());
    let event = |n: u64| bugbot_shared::digest::StatsOp::Event {
        fingerprint: format!("fp-{n}"),
        title: format!("TypeError number {n}"),
        project: Some("web".into()),
        level: "error".into(),
        url: None,
        occurrence: bugbot_shared::digest::Occurrence::New,
    };
    let settlement = bugbot_consumer::store::ports::Settlement {
        stats: (1..=3).map(|n| (today.clone(), event(n))).collect(),
        ..Default::default()
    };
    w.claims.settle(&settlement).await.unwrap();
    let stats = command_job(1, THREAD, &[], Command::Stats { period: bugbot_shared::command::StatsPeriod::Day });
    let outcome = run(&w, &stats).await;
    let text = reply(&w, 1);
    assert!(text.contains(&format!("bugbot stats for {today}")), "{text}");
    assert!(text.contains("TypeError number 3"), "the ledger's top issues: {text}");
    let listed = w.sentry.requests().into_iter().find(|r| r.path.ends_with("/issues/")).expect("the source's list");
    assert_eq!(listed.query_param("statsPeriod").as_deref(), Some("24h"));
    assert!(matches!(&outcome, Outcome::Done { reason: Some(r), .. } if r.starts_with("stats:")), "{outcome:?}");
}

/// A message command files the thread's tracked issue with the packet; a second command in the
/// thread reuses it (no second issue); `status` lists the thread's jobs, and says when a thread has
/// none.
#[tokio::test(flavor = "current_thread")]
async fn contextualize_tracks_the_thread_and_status_shows_its_jobs() {
    let w = world().await;
    let sentry_url = w.sentry.issue_url(&w.sentry.issue_id("python_zero_division"));
    let person = w.posthog.add_person("jane.doe@example.com");
    w.posthog.add_recording(&person, 1, 2);
    let channel = Snowflake(THREAD);
    w.discord.add_message(channel, "ops", "anyone seeing checkout errors?");
    let report = w.discord.add_message(channel, "jane", &format!("checkout 500s since this morning: <{sentry_url}>"));
    w.discord.add_message(channel, "support", "customer is jane.doe@example.com");
    let message = bugbot_shared::source::discord::Message {
        id: report,
        channel_id: Some(channel),
        content: format!("checkout 500s since this morning: <{sentry_url}>"),
        author: Some(User { id: Snowflake(9), username: "jane".into(), global_name: None }),
        timestamp: None,
    };

    let first = run(&w, &command_job(10, THREAD, &[], Command::ContextualizeMessage { message })).await;
    assert!(matches!(first, Outcome::Done { state: bugbot_shared::status::JobState::Filed, .. }), "{first:?}");
    let issues = w.linear.issues();
    assert_eq!(issues.len(), 1, "one tracked issue");
    let packet = &w.linear.comments()[0].body;
    assert!(packet.contains(&sentry_url) && packet.contains("ZeroDivisionError"), "{packet}");
    assert!(reply(&w, 10).contains(&issues[0].identifier), "{}", reply(&w, 10));
    insta::assert_json_snapshot!("contextualize", json!({"outcome": summary(&first), "requests": sequence(&w)}));

    let before = sequence(&w).len();
    let note = Command::Contextualize { issue: None, note: Some("still failing".into()) };
    let second = run(&w, &command_job(11, THREAD, &[], note)).await;
    assert_eq!(w.linear.issues().len(), 1, "the thread's issue is reused");
    let comments = w.linear.comments();
    assert_eq!(comments.len(), 2);
    assert!(
        comments[1].body.contains("still failing") && comments[1].body.contains(&sentry_url),
        "{}",
        comments[1].body
    );
    insta::assert_json_snapshot!(
        "contextualize_again_in_the_thread",
        json!({"outcome": summary(&second), "requests": since(&w, before)})
    );

    let before = sequence(&w).len();
    let status = run(&w, &command_job(12, THREAD, &[], Command::Status { issue: None })).await;
    let shown = reply(&w, 12);
    assert!(shown.contains(&issues[0].identifier), "{shown}");
    assert!(shown.contains("`discord:10` contextualize: filed"), "{shown}");
    assert!(shown.contains("`discord:11` contextualize: filed"), "{shown}");
    // The same record under the issue's label.
    run(&w, &command_job(13, 1, &[], Command::Status { issue: Some(issue(&issues[0].identifier)) })).await;
    assert!(reply(&w, 13).contains("`discord:10` contextualize: filed"), "{}", reply(&w, 13));
    insta::assert_json_snapshot!("status", json!({"outcome": summary(&status), "requests": since(&w, before)}));

    let before = sequence(&w).len();
    let nothing = run(&w, &command_job(14, 2, &[], Command::Status { issue: None })).await;
    assert_eq!(reply(&w, 14), "bugbot has no work on record for this thread.");
    insta::assert_json_snapshot!(
        "status_of_an_unknown_thread",
        json!({"outcome": summary(&nothing), "requests": since(&w, before)})
    );
}

/// With no server configured (the default policy), every command is refused privately, saying what
/// to set, and nothing is read.
#[tokio::test(flavor = "current_thread")]
async fn with_no_server_configured_a_command_is_refused_and_reads_nothing() {
    let mut w = world().await;
    w.config.chatops = ChatopsConfig::default();
    let url = w.sentry.issue_url(&w.sentry.issue_id("python_zero_division"));
    let outcome = run(&w, &command_job(20, THREAD, &[], Command::Investigate { issue: issue(&url) })).await;
    let followup = w.discord.followups().into_iter().find(|c| c.token == "itok-20").expect("a private refusal");
    assert!(followup.body["content"].as_str().unwrap_or_default().contains("DISCORD_ALLOWED_GUILDS"));
    assert!(w.sentry.requests().is_empty() && w.linear.requests().is_empty(), "nothing was read");
    insta::assert_json_snapshot!("refused", json!({"outcome": summary(&outcome), "requests": sequence(&w)}));
}

/// A click's interaction: `action` on `card` (the fingerprint's announcement in `THREAD`).
fn click_job(n: u64, roles: &[u64], action: Action, fingerprint: &Fingerprint, card: Snowflake) -> Job {
    let JobKind::DiscordCommand(typed) = command_job(n, THREAD, roles, Command::Status { issue: None }).kind else {
        unreachable!("a command job")
    };
    let click = DiscordComponentJob {
        interaction: typed.interaction,
        custom_id: ComponentId::new(action, fingerprint).render().expect("a short custom_id"),
        values: Vec::new(),
        fields: Vec::new(),
        message_id: Some(card),
    };
    Job::new(JobId::discord(Snowflake(n)), now_ms(), None, JobKind::DiscordComponent(click))
}

/// Runs a click as the runtime does (see [`run`]).
async fn click(w: &World, job: &Job) -> Outcome {
    run(w, job).await
}

/// Mute and Unmute on an alert card (issue 19): a write, so a reader is refused; a writer's mute
/// is kept in the fingerprint's claim, edits the card, and `/bugbot status` lists it (the KV index,
/// each entry checked against the claim) until it is unmuted.
#[tokio::test(flavor = "current_thread")]
async fn a_mute_click_is_authorized_edits_the_card_and_status_lists_it_until_unmuted() {
    let w = world().await;
    // A filed issue and its card, as the alert handler leaves them.
    let fingerprint = Fingerprint::from_id("sentry", "1234");
    let card = w.discord.add_message(Snowflake(THREAD), "bugbot", "🔴 ZeroDivisionError");
    let tracked = TrackedRefs {
        github: Some(IssueRef::github(1, format!("https://github.com/{REPO}/issues/1"))),
        discord: Some(DiscordRef { channel_id: THREAD.to_string(), message_id: card.to_string() }),
        ..TrackedRefs::default()
    };
    let occurrence = FingerprintOp::Occurrence {
        holder: "h".into(),
        message: "m".into(),
        now_ms: now_ms(),
        lease_ms: 60_000,
        cooldown_ms: 0,
        window_ms: 600_000,
    };
    w.claims.fingerprint(fingerprint.as_str(), &occurrence).await.unwrap();
    let filed = FingerprintOp::Filed { holder: "h".into(), now_ms: now_ms(), tracked };
    w.claims.fingerprint(fingerprint.as_str(), &filed).await.unwrap();

    let refused = click(&w, &click_job(30, &[], Action::Mute, &fingerprint, card)).await;
    assert!(matches!(&refused, Outcome::Done { reason: Some(r), .. } if r.starts_with("refused")), "{refused:?}");
    let before = sequence(&w).len();
    // The click was answered with a deferred update: its `@original` is the card.
    w.discord.clicked("itok-31", card);
    let muted = click(&w, &click_job(31, &[WRITER_ROLE], Action::Mute, &fingerprint, card)).await;
    let edited = w.discord.message(card).expect("the card");
    assert!(edited.content().contains("<@77>"), "the card says who muted it: {}", edited.content());
    insta::assert_json_snapshot!("mute", json!({"outcome": summary(&muted), "requests": since(&w, before)}));

    run(&w, &command_job(32, 2, &[], Command::Status { issue: None })).await;
    let shown = reply(&w, 32);
    assert!(shown.contains("**Muted** (1):") && shown.contains(fingerprint.as_str()), "{shown}");
    assert!(shown.contains("by <@77>"), "{shown}");

    click(&w, &click_job(33, &[WRITER_ROLE], Action::Unmute, &fingerprint, card)).await;
    run(&w, &command_job(34, 2, &[], Command::Status { issue: None })).await;
    assert_eq!(reply(&w, 34), "bugbot has no work on record for this thread.", "unmuted: not listed");
}

/// The fix settings of a stack whose executor is at `url` and whose fixes may target `REPO` only.
fn fix_config(url: &str) -> FixConfig {
    FixConfig {
        executor: ExecutorRoute::Url(url.to_owned()),
        secret: random_hex(16),
        callback_url: None,
        repo: Some(REPO.into()),
        repos: FixRepos::from_vars(None, Some(REPO)),
        clone_url: "https://github.com/{repo}.git".into(),
        base: "main".into(),
        allowed_paths: bugbot_shared::policy::fix_allowed_paths(None),
        test_command: None,
        limits: FixLimits::default(),
        executor_queue: 16,
        policy: AutoFixPolicy::from_vars(None, None, None, None),
    }
}

/// `fix` refuses, before anything is dispatched: a repository outside `FIX_REPOS` (privately), and
/// an issue with nothing to start from (saying what to add).
#[tokio::test(flavor = "current_thread")]
async fn fix_refuses_another_repository_and_an_issue_without_evidence() {
    let mut w = world().await;
    // Nothing listens there: anything dispatched would fail the command.
    w.config.fix = Ok(fix_config("http://127.0.0.1:9"));
    let number = w.github.add_issue("TypeError in checkout", "", &[]);
    let target = Some(issue(&format!("#{number}")));

    let elsewhere = serde_json::from_value(json!("mallory/pwn")).expect("a repository");
    let fix = Command::Fix { issue: target.clone(), repo: Some(elsewhere) };
    let refused = run(&w, &command_job(40, THREAD, &[WRITER_ROLE], fix)).await;
    let followup = w.discord.followups().into_iter().find(|c| c.token == "itok-40").expect("a private refusal");
    assert_eq!(
        followup.body["content"],
        "⛔ Not allowed: `mallory/pwn` is not a repository bugbot may fix (FIX_REPOS allows acme/web)."
    );
    insta::assert_json_snapshot!(
        "fix_another_repository",
        json!({"outcome": summary(&refused), "requests": sequence(&w)})
    );

    let before = sequence(&w).len();
    let bare = run(&w, &command_job(41, THREAD, &[WRITER_ROLE], Command::Fix { issue: target, repo: None })).await;
    let said = reply(&w, 41);
    assert!(said.starts_with(&format!("⛔ Can't start a fix for #{number}: there is no evidence")), "{said}");
    insta::assert_json_snapshot!(
        "fix_without_evidence",
        json!({"outcome": summary(&bare), "requests": since(&w, before)})
    );
}
