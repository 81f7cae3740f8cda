//! What the consumer's handlers need to run natively (`tests/tests/alert_handler.rs`,
//! `tests/tests/command_handler.rs`, the bench's evidence scenario): a placeholder for the Worker's
//! bindings, the clock, the trackers' fakes with a configuration pointing at them, and the
//! outbound request sequence the snapshots pin.

use std::time::{SystemTime, UNIX_EPOCH};

use bugbot_consumer::config::{
    ChatopsConfig, Config, ConfigError, DiscordConfig, EvidenceConfig, GitHubConfig, LinearConfig,
};
use bugbot_shared::backoff::RetryPolicy;
use bugbot_shared::filter::FilterConfig;
use bugbot_shared::log::Level;
use bugbot_shared::routes::RepoRoutes;
use bugbot_shared::source::discord::Snowflake;

use crate::fake::linear::TEAM_ID;
use crate::fake::{FakeDiscord, FakeGitHub, FakeLinear, RecordedRequest};
use crate::keys::random_hex;

/// A placeholder for the Worker's bindings: handlers run natively read their settings from
/// `Config` and their state through ports, never the bindings; any use would panic natively,
/// which the tests would show.
pub fn no_env() -> worker::Env {
    use wasm_bindgen::JsCast as _;
    wasm_bindgen::JsValue::UNDEFINED.unchecked_into()
}

/// Unix ms now.
pub fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis()).expect("fits")
}

/// The requests the fakes received, each named by its service, in order of arrival, as
/// `service METHOD path (GraphQL operation) (→ scripted failure)`. Requests a handler sends
/// concurrently arrive in no set order: each run of those `concurrent` says so is sorted.
pub fn sequence(services: Vec<(&str, Vec<RecordedRequest>)>, concurrent: impl Fn(&str) -> bool) -> Vec<String> {
    let mut all: Vec<(&str, RecordedRequest)> =
        services.into_iter().flat_map(|(service, requests)| requests.into_iter().map(move |r| (service, r))).collect();
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
        .collect::<Vec<String>>()
        .chunk_by(|a, b| concurrent(a) == concurrent(b))
        .flat_map(|run| {
            let mut run = run.to_vec();
            if run.first().is_some_and(|r| concurrent(r)) {
                run.sort();
            }
            run
        })
        .collect()
}

/// Linear, GitHub (on `repo`) and Discord (application 1) fakes, and a consumer configuration with
/// each of them set and nothing else: three deliveries per job, the usual windows, warnings only.
#[derive(Debug)]
pub struct Trackers {
    pub linear: FakeLinear,
    pub github: FakeGitHub,
    pub discord: FakeDiscord,
    pub config: Config,
}

impl Trackers {
    /// Alerts are announced in `alerts_channel` when it is set.
    pub async fn start(repo: &str, alerts_channel: Option<u64>) -> Self {
        let (linear_key, github_token, bot_token) = (random_hex(8), random_hex(8), random_hex(8));
        let linear = FakeLinear::start(&linear_key).await;
        let github = FakeGitHub::start(&github_token, repo).await;
        let discord = FakeDiscord::start(&bot_token, Snowflake(1)).await;
        let config = Config {
            linear: Some(LinearConfig { api_url: linear.url(), api_key: linear_key, team_id: TEAM_ID.into() }),
            github: Some(GitHubConfig { api_base: github.url(), token: github_token, repo: repo.into() }),
            discord: DiscordConfig {
                api_base: discord.url(),
                bot_token: Some(bot_token),
                application_id: Some("1".into()),
                alerts_channel_id: alerts_channel.map(|c| c.to_string()),
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
            evidence: EvidenceConfig::default(),
            routes: RepoRoutes::default(),
            chatops: ChatopsConfig::default(),
            fix: Err(ConfigError::NotConfigured { what: "the fix executor", needs: "EXECUTOR_URL" }),
        };
        Self { linear, github, discord, config }
    }
}
