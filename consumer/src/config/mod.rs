//! The consumer's configuration, read from its bindings once per isolate. Every integration is
//! optional: a missing one is skipped with a log line at startup, never a crash.

use std::cell::OnceCell;
use std::rc::Rc;

use bugbot_shared::backoff::RetryPolicy;
use bugbot_shared::filter::FilterConfig;
use bugbot_shared::log::{Level, LogLine};
use worker::Env;

#[derive(Debug, Clone)]
pub struct LinearConfig {
    pub api_url: String,
    pub api_key: String,
    pub team_id: String,
}

#[derive(Debug, Clone)]
pub struct GitHubConfig {
    pub api_base: String,
    pub token: String,
    pub repo: String,
}

#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub api_base: String,
    pub bot_token: Option<String>,
    pub application_id: Option<String>,
    /// Where new alerts are announced.
    pub alerts_channel_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub linear: Option<LinearConfig>,
    pub github: Option<GitHubConfig>,
    pub discord: DiscordConfig,
    pub filter: FilterConfig,
    pub retry: RetryPolicy,
    /// At most one "still happening" comment per fingerprint per window.
    pub repeat_comment_cooldown_ms: u64,
    /// How long a job may hold a claim before another may take over (a crashed worker's lease).
    pub claim_lease_ms: u64,
    /// `DEDUPE_WINDOW_SECS` (default 600): how long an identical delivery stays a duplicate.
    pub dedupe_window_ms: u64,
    pub log_level: Level,
    /// Bearer token of `/admin/*`.
    pub admin_token: Option<String>,
    /// `FIX_REQUIRE_REPRO=on`: a fix is `fixed` only when its tests reproduced the error (the executor's
    /// "reproduce first"; `FixJob::repro.required`).
    pub fix_require_repro: bool,
    /// Problems found while reading the configuration (logged once per isolate).
    pub warnings: Vec<String>,
    /// Chat-ops and write-back (issue 19).
    pub chatops: ChatopsConfig,
}

// --- chat-ops and write-back (issue 19) -------------------------------------------------------

/// The Sentry-compatible API bugbot writes back to (`SENTRY_API_BASE`, default `https://sentry.io`;
/// `SENTRY_API_TOKEN`; `SENTRY_ORG`).
#[derive(Debug, Clone)]
pub struct SentryApiConfig {
    pub api_base: String,
    pub token: String,
    pub org: String,
}

/// Chat-ops settings: where write-back goes. `SENTRY_WRITEBACK=off` turns write-back off.
#[derive(Debug, Clone, Default)]
pub struct ChatopsConfig {
    /// Set when the API is configured and write-back is not turned off.
    pub writeback: Option<SentryApiConfig>,
}

fn read_chatops(var: impl Fn(&str) -> Option<String>) -> ChatopsConfig {
    let off = var("SENTRY_WRITEBACK").is_some_and(|v| v.eq_ignore_ascii_case("off"));
    let writeback = match (var("SENTRY_API_TOKEN"), var("SENTRY_ORG")) {
        (Some(token), Some(org)) if !off => Some(SentryApiConfig {
            api_base: var("SENTRY_API_BASE").unwrap_or_else(|| "https://sentry.io".into()),
            token,
            org,
        }),
        _ => None,
    };
    ChatopsConfig { writeback }
}

// --- end of chat-ops settings -----------------------------------------------------------------

/// The job queue (this Worker produces onto it only to replay dead letters).
pub const JOBS_QUEUE: &str = "JOBS";
/// The dead-letter queue this Worker also consumes.
pub const DEAD_LETTER_QUEUE: &str = "bugbot-jobs-dlq";

thread_local! {
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
}

/// A binding's value, whether a `[vars]` entry or a secret; empty counts as unset.
pub use bugbot_edge::binding;

pub fn load(env: &Env) -> Rc<Config> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let config = read(env);
            for warning in &config.warnings {
                let mut line = LogLine::new(Level::Warn, "consumer", "config");
                line.reason = Some(warning);
                worker::console_warn!("{}", line.to_json());
            }
            Rc::new(config)
        })
        .clone()
    })
}

fn read(env: &Env) -> Config {
    let mut warnings = Vec::new();
    let var = |name: &str| binding(env, name);
    let linear = match (var("LINEAR_API_KEY"), var("LINEAR_TEAM_ID")) {
        (Some(api_key), Some(team_id)) => Some(LinearConfig {
            api_url: var("LINEAR_API_URL").unwrap_or_else(|| "https://api.linear.app/graphql".into()),
            api_key,
            team_id,
        }),
        (None, None) => {
            warnings.push("Linear not configured (LINEAR_API_KEY, LINEAR_TEAM_ID): skipped".into());
            None
        }
        _ => {
            warnings.push("Linear needs both LINEAR_API_KEY and LINEAR_TEAM_ID: skipped".into());
            None
        }
    };
    let github = match (var("GITHUB_TOKEN"), var("GITHUB_REPO")) {
        (Some(token), Some(repo)) if bugbot_shared::command::RepoSlug::parse(&repo).is_some() => Some(GitHubConfig {
            api_base: var("GITHUB_API_BASE").unwrap_or_else(|| "https://api.github.com".into()),
            token,
            repo,
        }),
        (Some(_), Some(repo)) => {
            warnings.push(format!("GITHUB_REPO `{repo}` is not owner/name: GitHub skipped"));
            None
        }
        (None, None) => {
            warnings.push("GitHub not configured (GITHUB_TOKEN, GITHUB_REPO): skipped".into());
            None
        }
        _ => {
            warnings.push("GitHub needs both GITHUB_TOKEN and GITHUB_REPO: skipped".into());
            None
        }
    };
    let discord = DiscordConfig {
        api_base: var("DISCORD_API_BASE").unwrap_or_else(|| "https://discord.com/api/v10".into()),
        bot_token: var("DISCORD_BOT_TOKEN"),
        application_id: var("DISCORD_APPLICATION_ID"),
        alerts_channel_id: var("DISCORD_ALERTS_CHANNEL_ID"),
    };
    if discord.alerts_channel_id.is_some() && discord.bot_token.is_none() {
        warnings.push("DISCORD_ALERTS_CHANNEL_ID is set but DISCORD_BOT_TOKEN is not: alerts are not announced".into());
    }
    let filter = FilterConfig::from_vars(
        var("MIN_LEVEL").as_deref(),
        var("ENVIRONMENTS").as_deref(),
        var("PROJECTS").as_deref(),
        var("IGNORE_PATTERNS").as_deref(),
    )
    .unwrap_or_else(|e| {
        warnings.push(format!("filter configuration ignored: {e}"));
        FilterConfig::default()
    });
    let number = |name: &str, default: u64| var(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let mut retry = RetryPolicy::default();
    retry.max_attempts =
        u32::try_from(number("RETRY_MAX_ATTEMPTS", u64::from(retry.max_attempts))).unwrap_or(retry.max_attempts);
    retry.base_ms = number("RETRY_BASE_MS", retry.base_ms);
    let fix_require_repro = match var("FIX_REQUIRE_REPRO").as_deref().map(str::trim) {
        None => false,
        Some(on) if ["on", "true", "1", "yes"].iter().any(|v| on.eq_ignore_ascii_case(v)) => true,
        Some(off) if ["off", "false", "0", "no"].iter().any(|v| off.eq_ignore_ascii_case(v)) => false,
        Some(other) => {
            warnings.push(format!("FIX_REQUIRE_REPRO `{other}` is not on or off: off"));
            false
        }
    };
    Config {
        linear,
        github,
        discord,
        filter,
        retry,
        repeat_comment_cooldown_ms: number("REPEAT_COMMENT_COOLDOWN_SECS", 3_600) * 1_000,
        claim_lease_ms: number("CLAIM_LEASE_SECS", 600) * 1_000,
        dedupe_window_ms: number("DEDUPE_WINDOW_SECS", 600) * 1_000,
        log_level: Level::parse(var("LOG_LEVEL").as_deref()),
        admin_token: var("ADMIN_TOKEN"),
        fix_require_repro,
        warnings,
        chatops: read_chatops(var),
    }
}
