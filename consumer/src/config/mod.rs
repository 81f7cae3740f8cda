//! The consumer's configuration, read from its bindings once per isolate. Every integration is
//! optional: a missing one is skipped with a log line at startup, never a crash.

use std::cell::OnceCell;
use std::rc::Rc;

use bugbot_shared::authz::{Policy, PolicyVars};
use bugbot_shared::backoff::RetryPolicy;
use bugbot_shared::confidence::AutoFixPolicy;
use bugbot_shared::executor::FixLimits;
use bugbot_shared::filter::FilterConfig;
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::policy::FixRepos;
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
    /// Evidence gathering (issue 16): the REST APIs and budgets of enrichment and the context packet.
    pub evidence: EvidenceConfig,
    /// `REPO_ROUTES` (issue 16.6): the repository of an alert when it is not `GITHUB_REPO`.
    pub routes: bugbot_shared::routes::RepoRoutes,
    /// Chat-ops and write-back (issue 19).
    pub chatops: ChatopsConfig,
    /// The fix executor and what a fix may do; `Err` says what is missing (fixes are then refused).
    pub fix: Result<FixConfig, ConfigError>,
}

impl Config {
    /// This configuration as `route` sees it: GitHub issues, packet code and commits in the route's
    /// repository, its frame map and its allowlist (when it sets them). `None` when GitHub is not
    /// configured (there is nothing to route).
    pub fn routed(&self, route: &bugbot_shared::routes::Route) -> Option<Self> {
        let mut config = self.clone();
        config.github.as_mut()?.repo.clone_from(&route.repo);
        if let Some(map) = &route.frame_map {
            config.evidence.frame_map = map.clone();
        }
        if let Some(paths) = &route.paths {
            config.evidence.code_paths = Some(paths.clone());
            config.evidence.fix_allowed_paths = Some(paths.clone());
        }
        Some(config)
    }
}

// --- evidence (issue 16): enrichment and the context packet -------------------------------------

/// A Sentry-compatible REST API (`/api/0/`): Sentry or GlitchTip.
#[derive(Clone)]
pub struct RestApiConfig {
    /// The host, e.g. `https://sentry.io`; `None` for GlitchTip means the alert link's origin.
    pub api_base: Option<String>,
    pub token: String,
    pub org: String,
}

impl std::fmt::Debug for RestApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestApiConfig")
            .field("api_base", &self.api_base)
            .field("org", &self.org)
            .finish_non_exhaustive()
    }
}

/// What evidence gathering may reach and how long it may take.
#[derive(Debug, Clone)]
pub struct EvidenceConfig {
    /// `SENTRY_API_TOKEN` (+ `SENTRY_API_BASE`, default `https://sentry.io`, and `SENTRY_ORG`).
    pub sentry_api: Option<RestApiConfig>,
    /// `GLITCHTIP_API_TOKEN` (+ `GLITCHTIP_API_BASE`, default the alert link's origin).
    pub glitchtip_api: Option<RestApiConfig>,
    /// `ENRICH_TIMEOUT_MS` (default 3000): the whole fetch of the latest event before filing.
    pub enrich_timeout_ms: u64,
    /// `CONTEXT_TIMEOUT_MS` (default 5000): the context packet of a new alert; filing never waits longer.
    pub context_timeout_ms: u64,
    /// `CONTEXT_SOURCE_TIMEOUT_MS` (default 4000): each source of a packet.
    pub source_timeout_ms: u64,
    /// `CODE_PATHS` and `FIX_ALLOWED_PATHS` as set: which files a packet may quote.
    pub code_paths: Option<String>,
    pub fix_allowed_paths: Option<String>,
    /// `RUNBOOKS` (a JSON map pattern → URL) and `RUNBOOKS_DIR` (default `runbooks`) in the repository.
    pub runbooks: Option<String>,
    pub runbooks_dir: String,
    /// `FRAME_PATH_MAP`: prefix rewrites from runtime paths to repository paths (issue 16.6).
    pub frame_map: bugbot_shared::frames::FrameMap,
    /// `POSTHOG_API_KEY` and `POSTHOG_PROJECT_ID` (+ `POSTHOG_API_BASE`, default `https://us.posthog.com`):
    /// the session recordings of a `/bugbot` context packet.
    pub posthog: Option<PostHogConfig>,
}

/// PostHog's API (a personal API key, so kept out of `Debug`).
#[derive(Clone)]
pub struct PostHogConfig {
    pub api_base: String,
    pub api_key: String,
    pub project_id: String,
}

impl std::fmt::Debug for PostHogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostHogConfig")
            .field("api_base", &self.api_base)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl EvidenceConfig {
    /// `CODE_PATHS`, else the fix allowlist (`FIX_ALLOWED_PATHS` or its default).
    pub fn code_paths(&self) -> bugbot_shared::policy::CodePaths {
        let fix = bugbot_shared::policy::fix_allowed_paths(self.fix_allowed_paths.as_deref());
        bugbot_shared::policy::CodePaths::from_vars(self.code_paths.as_deref(), &fix)
    }
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            sentry_api: None,
            glitchtip_api: None,
            enrich_timeout_ms: 3_000,
            context_timeout_ms: 5_000,
            source_timeout_ms: 4_000,
            code_paths: None,
            fix_allowed_paths: None,
            runbooks: None,
            runbooks_dir: "runbooks".into(),
            frame_map: bugbot_shared::frames::FrameMap::default(),
            posthog: None,
        }
    }
}

fn read_evidence(var: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> EvidenceConfig {
    let d = EvidenceConfig::default();
    let number = |name: &str, default: u64| var(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default);
    EvidenceConfig {
        sentry_api: var("SENTRY_API_TOKEN").map(|token| RestApiConfig {
            api_base: Some(var("SENTRY_API_BASE").unwrap_or_else(|| "https://sentry.io".into())),
            token,
            org: var("SENTRY_ORG").unwrap_or_default(),
        }),
        glitchtip_api: var("GLITCHTIP_API_TOKEN").map(|token| RestApiConfig {
            api_base: var("GLITCHTIP_API_BASE"),
            token,
            org: var("GLITCHTIP_ORG").unwrap_or_default(),
        }),
        enrich_timeout_ms: number("ENRICH_TIMEOUT_MS", d.enrich_timeout_ms).clamp(100, 20_000),
        context_timeout_ms: number("CONTEXT_TIMEOUT_MS", d.context_timeout_ms).clamp(100, 20_000),
        source_timeout_ms: number("CONTEXT_SOURCE_TIMEOUT_MS", d.source_timeout_ms).clamp(100, 20_000),
        code_paths: var("CODE_PATHS"),
        fix_allowed_paths: var("FIX_ALLOWED_PATHS"),
        runbooks: var("RUNBOOKS"),
        runbooks_dir: var("RUNBOOKS_DIR").unwrap_or(d.runbooks_dir),
        frame_map: var("FRAME_PATH_MAP")
            .map(|raw| {
                bugbot_shared::frames::FrameMap::parse(&raw).unwrap_or_else(|e| {
                    warnings.push(format!("{e}: FRAME_PATH_MAP ignored"));
                    bugbot_shared::frames::FrameMap::default()
                })
            })
            .unwrap_or_default(),
        posthog: match (var("POSTHOG_API_KEY"), var("POSTHOG_PROJECT_ID")) {
            (Some(api_key), Some(project_id)) => Some(PostHogConfig {
                api_base: var("POSTHOG_API_BASE").unwrap_or_else(|| "https://us.posthog.com".into()),
                api_key,
                project_id,
            }),
            _ => None,
        },
    }
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

/// Chat-ops settings: who may run commands and where write-back goes. `SENTRY_WRITEBACK=off` turns
/// write-back off.
#[derive(Debug, Clone)]
pub struct ChatopsConfig {
    /// Set when the API is configured and write-back is not turned off.
    pub writeback: Option<SentryApiConfig>,
    /// Who may run `/bugbot` commands and click the card's buttons (`DISCORD_ALLOWED_GUILDS`,
    /// `DISCORD_ALLOWED_CHANNELS`, `DISCORD_READ_ROLES`, `DISCORD_WRITE_ROLES`, `DISCORD_ALLOWED_USERS`,
    /// `DISCORD_ADMIN_USERS`); an unreadable setting closes everything rather than opening up.
    pub policy: Result<Policy, ConfigError>,
}

/// No write-back, and a policy that refuses every command (no server is enabled).
impl Default for ChatopsConfig {
    fn default() -> Self {
        Self { writeback: None, policy: Ok(Policy::default()) }
    }
}

fn read_chatops(var: &dyn Fn(&str) -> Option<String>, evidence: &EvidenceConfig) -> ChatopsConfig {
    let off = var("SENTRY_WRITEBACK").is_some_and(|v| v.eq_ignore_ascii_case("off"));
    // The same API settings enrichment reads (`SENTRY_API_BASE`, `SENTRY_API_TOKEN`, `SENTRY_ORG`).
    let writeback = evidence.sentry_api.as_ref().filter(|api| !off && !api.org.is_empty()).map(|api| SentryApiConfig {
        api_base: api.api_base.clone().unwrap_or_else(|| "https://sentry.io".into()),
        token: api.token.clone(),
        org: api.org.clone(),
    });
    ChatopsConfig { writeback, policy: read_policy(var) }
}

fn read_policy(var: &dyn Fn(&str) -> Option<String>) -> Result<Policy, ConfigError> {
    let (guilds, channels, read, write, users, admins) = (
        var("DISCORD_ALLOWED_GUILDS"),
        var("DISCORD_ALLOWED_CHANNELS"),
        var("DISCORD_READ_ROLES"),
        var("DISCORD_WRITE_ROLES"),
        var("DISCORD_ALLOWED_USERS"),
        var("DISCORD_ADMIN_USERS"),
    );
    Ok(Policy::from_vars(&PolicyVars {
        allowed_guilds: guilds.as_deref(),
        allowed_channels: channels.as_deref(),
        read_roles: read.as_deref(),
        write_roles: write.as_deref(),
        allowed_users: users.as_deref(),
        admin_users: admins.as_deref(),
    })?)
}

// --- end of chat-ops settings -----------------------------------------------------------------

// --- the fix executor -------------------------------------------------------------------------

/// Where fix jobs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorRoute {
    /// `EXECUTOR_URL`: a self-hosted executor, or any HTTP front.
    Url(String),
    /// The `ExecutorContainer` Durable Object (Cloudflare Containers), when `EXECUTOR_URL` is unset.
    Container,
    /// `FIX_BACKEND=actions`: a `repository_dispatch` to GitHub Actions
    /// ([`actions`](crate::handlers::fix::actions)).
    Actions,
}

/// The fix flow's settings (`EXECUTOR_*`, `FIX_*`, `AUTO_FIX*`). The secret never appears in `Debug`.
#[derive(Clone)]
pub struct FixConfig {
    pub executor: ExecutorRoute,
    pub secret: String,
    pub callback_url: Option<String>,
    pub repo: Option<String>,
    pub repos: FixRepos,
    pub clone_url: String,
    pub base: String,
    pub allowed_paths: Vec<String>,
    pub test_command: Option<String>,
    pub limits: FixLimits,
    /// `FIX_EXECUTOR_QUEUE`: how many jobs the executor may queue (its `MAX_QUEUED_JOBS`, default 16).
    pub executor_queue: u64,
    pub policy: AutoFixPolicy,
}

impl std::fmt::Debug for FixConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixConfig")
            .field("executor", &self.executor)
            .field("repo", &self.repo)
            .field("repos", &self.repos)
            .field("base", &self.base)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The fix settings; `has_container`: the `EXECUTOR` container's Durable Object is bound.
fn read_fix(var: &dyn Fn(&str) -> Option<String>, has_container: bool) -> Result<FixConfig, ConfigError> {
    let executor = match var("EXECUTOR_URL") {
        _ if var("FIX_BACKEND").is_some_and(|b| b.eq_ignore_ascii_case("actions")) => ExecutorRoute::Actions,
        Some(url) => ExecutorRoute::Url(url.trim_end_matches('/').to_owned()),
        None if has_container => ExecutorRoute::Container,
        None => {
            return Err(ConfigError::NotConfigured {
                what: "the fix executor",
                needs: "EXECUTOR_URL or the EXECUTOR container",
            });
        }
    };
    let secret = var("EXECUTOR_SECRET")
        .ok_or(ConfigError::NotConfigured { what: "the fix executor", needs: "EXECUTOR_SECRET" })?;
    let number = |name: &str| var(name).and_then(|v| v.parse::<u64>().ok());
    let mut limits = FixLimits::default();
    if let Some(n) = number("FIX_MAX_TURNS") {
        limits.max_turns = u32::try_from(n).unwrap_or(limits.max_turns);
    }
    if let Some(usd) = var("FIX_MAX_USD").and_then(|v| v.parse::<f64>().ok()) {
        limits.max_usd = usd;
    }
    if let Some(secs) = number("FIX_TIMEOUT_SECS") {
        limits.timeout_secs = secs;
    }
    limits.max_bytes_added = number("FIX_MAX_BYTES_ADDED").unwrap_or(limits.max_bytes_added);
    limits.max_binary_bytes = number("FIX_MAX_BINARY_BYTES").unwrap_or(limits.max_binary_bytes);
    let repo = var("FIX_REPO").or_else(|| var("GITHUB_REPO"));
    let repos = FixRepos::from_vars(var("FIX_REPOS").as_deref(), repo.as_deref());
    Ok(FixConfig {
        executor,
        secret,
        callback_url: var("EXECUTOR_CALLBACK_URL"),
        clone_url: var("FIX_CLONE_URL").unwrap_or_else(|| "https://github.com/{repo}.git".into()),
        repo,
        repos,
        base: var("FIX_BASE_REF").unwrap_or_else(|| "main".into()),
        allowed_paths: bugbot_shared::policy::fix_allowed_paths(var("FIX_ALLOWED_PATHS").as_deref()),
        test_command: var("FIX_TEST_COMMAND"),
        limits,
        executor_queue: number("FIX_EXECUTOR_QUEUE").unwrap_or(16),
        policy: AutoFixPolicy::from_vars(
            var("AUTO_FIX").as_deref(),
            var("AUTO_FIX_THRESHOLD").as_deref(),
            var("AUTO_FIX_MAX_RUNS_PER_DAY").as_deref(),
            var("AUTO_FIX_MAX_USD_PER_DAY").as_deref(),
        ),
    })
}

/// Why a part of the configuration cannot be used. Each names the settings to set; the part is then
/// skipped (or, for authorization, everything is refused), never a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Nothing of it is set.
    #[error("{what} is not configured ({needs})")]
    NotConfigured { what: &'static str, needs: &'static str },
    /// Part of it is set; it needs all of `needs`.
    #[error("{what} needs {needs}")]
    Incomplete { what: &'static str, needs: &'static str },
    /// The authorization settings cannot be read.
    #[error(transparent)]
    Policy(#[from] bugbot_shared::authz::PolicyError),
}

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
    let evidence = read_evidence(&var, &mut warnings);
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
        routes: var("REPO_ROUTES")
            .map(|raw| {
                let (routes, problems) = bugbot_shared::routes::RepoRoutes::parse(&raw);
                warnings.extend(problems);
                routes
            })
            .unwrap_or_default(),
        chatops: read_chatops(&var, &evidence),
        fix: read_fix(&var, env.durable_object(bugbot_shared::container::BINDING).is_ok()),
        evidence,
        warnings,
    }
}
