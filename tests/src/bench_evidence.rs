//! `make bench`'s evidence scenario (issue 16): the alert handler run natively against the fakes
//! (the consumer's own code over `ReqwestPort`, claims and KV in memory), a GlitchTip alert and a
//! Sentry `issue` webhook per round, each needing the latest event from the REST API. Prints the
//! alert → issue time with enrichment and the packet on, against a baseline in the same run without
//! API tokens (no enrichment, so a packet without frames), and the packet's time per evidence
//! source (code, commits, similar issues, runbooks, whole packet) and per alert source, p50/p95.
//!
//! Native, not workerd: the figures are the handler's own work plus the round trips to local fakes.

use std::collections::BTreeMap;
use std::time::Instant;

use bugbot_consumer::config::{Config, DiscordConfig, EvidenceConfig, GitHubConfig, LinearConfig, RestApiConfig};
use bugbot_consumer::handlers::alert;
use bugbot_consumer::runtime::Ctx;
use bugbot_consumer::store::State;
use bugbot_consumer::store::memo::Memo;
use bugbot_consumer::store::ports::memory::{MemoryClaims, MemoryKv};
use bugbot_shared::backoff::RetryPolicy;
use bugbot_shared::event::Signal;
use bugbot_shared::filter::FilterConfig;
use bugbot_shared::job::Job;
use bugbot_shared::log::Level;
use bugbot_shared::normalize::normalize;
use bugbot_shared::source::discord::Snowflake;
use serde_json::{Value, json};

use crate::fake::{FakeDiscord, FakeGitHub, FakeLinear, FakeSentry, ReqwestPort};
use crate::keys::random_hex;
use crate::native::{no_env, now_ms};
use crate::workers::fixture;

const REPO: &str = "acme/web";

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss, reason = "small")]
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[i]
}

/// The two alerts of round `i`: a GlitchTip alert and a Sentry `issue` webhook, each about issue `id`.
fn jobs(i: usize, glitchtip_host: &str) -> Vec<(&'static str, Job, String)> {
    let gt_id = (50_000 + i).to_string();
    let mut gt: Value =
        serde_json::from_slice(&fixture("glitchtip/current_format_general_webhook_issue.json")).unwrap();
    gt["attachments"][0]["title_link"] = json!(format!("{glitchtip_host}/acme/issues/{gt_id}"));
    let sentry_id = (70_000 + i).to_string();
    let mut issue: Value =
        serde_json::from_slice(&fixture("sentry/integration_platform_example_mocks/issue_created.json")).unwrap();
    issue["data"]["issue"]["id"] = json!(sentry_id);
    issue["data"]["issue"]["web_url"] = json!(format!("https://sentry.io/organizations/acme/issues/{sentry_id}/"));
    let cfg = bugbot_shared::ingress::IngressConfig {
        glitchtip_token: Some("t".into()),
        sentry_client_secret: Some("s".into()),
        ..bugbot_shared::ingress::IngressConfig::default()
    };
    let mut out = Vec::new();
    let gt_body = serde_json::to_vec(&gt).unwrap();
    let issue_body = serde_json::to_vec(&issue).unwrap();
    for (source, route, body, resource, id) in [
        ("glitchtip", bugbot_shared::ingress::Route::Glitchtip { token: "t".into() }, gt_body, "", gt_id),
        ("sentry issue", bugbot_shared::ingress::Route::SentryWebhook, issue_body, "issue", sentry_id),
    ] {
        let signature = bugbot_shared::verify::hmac_sha256_hex(b"s", &body);
        let headers =
            Headers(vec![("sentry-hook-resource", resource.to_owned()), ("sentry-hook-signature", signature)]);
        let request_id = format!("bench-{source}-{i}");
        let accepted = bugbot_shared::ingress::handle(
            &cfg,
            &route,
            bugbot_shared::ingress::IngressRequest {
                headers: &headers,
                body: &body,
                now_ms: now_ms(),
                request_id: &request_id,
            },
        )
        .expect("accepted");
        for job in accepted.jobs {
            out.push((source, job, id.clone()));
        }
    }
    out
}

struct Headers(Vec<(&'static str, String)>);

impl bugbot_shared::ingress::Headers for Headers {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

/// Runs the scenario with `rounds` rounds (two alerts each) per configuration and prints it.
pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let (linear_key, github_token, bot_token, api_token) = (random_hex(8), random_hex(8), random_hex(8), random_hex(8));
    let linear = FakeLinear::start(&linear_key).await;
    let github = FakeGitHub::start(&github_token, REPO).await;
    let discord = FakeDiscord::start(&bot_token, Snowflake(1)).await;
    let sentry = FakeSentry::start(&api_token).await;
    let zero = sentry.issues().into_iter().find(|i| i.fixture.as_deref() == Some("python_zero_division")).unwrap();
    // A real history for blame: the file the crash frame maps to.
    let repo = tempfile::tempdir()?;
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "Bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "Bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .output()
    };
    let content: String =
        (1..=30).map(|n| if n == 18 { "        0/0\n".to_owned() } else { format!("# {n}\n") }).collect();
    std::fs::create_dir_all(repo.path().join("errors"))?;
    std::fs::write(repo.path().join("errors/views.py"), &content)?;
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "."])?;
    git(&["commit", "-q", "-m", "views"])?;
    github.set_backing_repo(repo.path());
    github.put_file("errors/views.py", &content);

    let base = |evidence: EvidenceConfig| Config {
        linear: Some(LinearConfig {
            api_url: linear.url(),
            api_key: linear_key.clone(),
            team_id: crate::fake::linear::TEAM_ID.into(),
        }),
        github: Some(GitHubConfig { api_base: github.url(), token: github_token.clone(), repo: REPO.into() }),
        discord: DiscordConfig {
            api_base: discord.url(),
            bot_token: Some(bot_token.clone()),
            application_id: Some("1".into()),
            alerts_channel_id: Some("4242".into()),
        },
        filter: FilterConfig::default(),
        retry: RetryPolicy::default(),
        repeat_comment_cooldown_ms: 3_600_000,
        claim_lease_ms: 600_000,
        dedupe_window_ms: 600_000,
        log_level: Level::Warn,
        admin_token: None,
        warnings: Vec::new(),
        fix_require_repro: false,
        evidence,
        routes: bugbot_shared::routes::RepoRoutes::default(),
        chatops: bugbot_consumer::config::ChatopsConfig::default(),
        fix: Err(bugbot_consumer::config::ConfigError::NotConfigured {
            what: "the fix executor",
            needs: "EXECUTOR_URL",
        }),
    };
    let api = RestApiConfig { api_base: Some(sentry.url()), token: api_token.clone(), org: "acme".into() };
    let on = base(EvidenceConfig {
        sentry_api: Some(api.clone()),
        glitchtip_api: Some(api),
        code_paths: Some("errors/**".into()),
        ..EvidenceConfig::default()
    });
    let off = base(EvidenceConfig { context_timeout_ms: 100, ..EvidenceConfig::default() });

    let env = no_env();
    let port = ReqwestPort::new();
    println!(
        "-- evidence (issue 16): alert handler natively against the fakes, {rounds} rounds × (GlitchTip alert, Sentry issue webhook)"
    );
    let mut totals: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut per_source: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (label, config, offset, packet_on) in
        [("baseline: no API token", &off, 0, false), ("enrichment + packet on", &on, 100_000, true)]
    {
        let (claims, state) = (MemoryClaims::default(), State::new(MemoryKv::default()));
        for i in 0..rounds {
            for (source, job, id) in jobs(offset + i, &sentry.url()) {
                let mut issue = zero.clone();
                issue.id = id;
                sentry.add_issue(issue);
                let message_id = format!("m-{}", job.id.as_str());
                let ctx = Ctx {
                    env: &env,
                    config,
                    port: &port,
                    claims: &claims,
                    state: &state,
                    now_ms: now_ms(),
                    jitter: 0.5,
                    message_id: &message_id,
                    attempt: 1,
                    memo: &Memo::default(),
                };
                let started = Instant::now();
                let _ = alert::process(&ctx, &job).await;
                totals.entry((label, source)).or_default().push(started.elapsed().as_secs_f64() * 1_000.0);
                if packet_on {
                    // The packet alone, per evidence source, on the enriched event.
                    if let Ok(Signal::Occurrence(mut event)) = normalize(&job.kind, now_ms()) {
                        bugbot_shared::enrich::apply_latest_event(&mut event, &zero.event);
                        let packet = alert::packet::gather(&ctx, &event, false).await;
                        for (k, v) in packet.timings.0 {
                            #[expect(clippy::cast_precision_loss, reason = "small")]
                            per_source.entry(format!("{k:<9} ({source})")).or_default().push(v as f64);
                        }
                    }
                }
            }
        }
    }
    for ((label, source), mut v) in totals {
        let (p50, p95) = (percentile(&mut v, 0.5), percentile(&mut v, 0.95));
        println!("alert → issue  {label:<26} {source:<13} {:>4} alerts  p50 {p50:>7.1} ms  p95 {p95:>7.1} ms", v.len());
    }
    for (source, mut v) in per_source {
        let (p50, p95) = (percentile(&mut v, 0.5), percentile(&mut v, 0.95));
        println!("packet source  {source:<32} p50 {p50:>6.0} ms  p95 {p95:>6.0} ms");
    }
    Ok(())
}
