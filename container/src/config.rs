//! Configuration, read once from environment variables (see `container/README.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bugbot_shared::executor::DEFAULT_SIGNATURE_WINDOW_SECS;

use crate::redact::Redactor;

/// A secret value: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A variable was missing or did not parse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{name} is not valid: {why}")]
    Invalid { name: &'static str, why: String },
}

/// Everything the executor needs, resolved from the environment once at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR` (default `0.0.0.0:8080`; `PORT` alone also works).
    pub listen: SocketAddr,
    /// `EXECUTOR_SECRET`: HMAC key for job requests and result callbacks. Required to serve.
    pub secret: Option<Secret>,
    /// `SIGNATURE_WINDOW_SECS` (default 300).
    pub signature_window: Duration,
    /// `ANTHROPIC_API_KEY`: the only credential the agent receives.
    pub anthropic_api_key: Option<Secret>,
    /// `ANTHROPIC_BASE_URL`, passed to the agent when set.
    pub anthropic_base_url: Option<String>,
    /// `CLAUDE_BIN` (default `claude`, looked up on `AGENT_PATH`).
    pub claude_bin: PathBuf,
    /// `CLAUDE_MODEL`, passed as `--model` when set.
    pub claude_model: Option<String>,
    /// `GIT_TOKEN` (falls back to `GITHUB_TOKEN`): given to git through a credential helper for clone and
    /// push, and to nothing else.
    pub git_token: Option<Secret>,
    /// `GIT_USERNAME` (default `x-access-token`, what GitHub expects with app and personal tokens).
    pub git_username: String,
    /// `GIT_BIN` (default `git`).
    pub git_bin: PathBuf,
    /// `GIT_AUTHOR_NAME` / `GIT_AUTHOR_EMAIL` for the commit.
    pub author_name: String,
    pub author_email: String,
    /// `WORK_ROOT`: where per-job work dirs are created (default `$TMPDIR/bugbot-executor`).
    pub work_root: PathBuf,
    /// `AGENT_PATH`: the `PATH` given to the agent and the test command.
    pub agent_path: String,
    /// `TEST_ENV`: comma-separated names of variables passed through to the test command (e.g.
    /// `CARGO_HOME,RUSTUP_HOME`). The executor's own secrets are never passed.
    pub test_env: Vec<(String, String)>,
    /// `MAX_CONCURRENT_JOBS` (default 1) and `MAX_QUEUED_JOBS` (default 16; more → 503).
    pub max_concurrent_jobs: usize,
    pub max_queued_jobs: usize,
    /// `CALLBACK_ATTEMPTS` (default 6) and `CALLBACK_BACKOFF_MS` (first delay, doubled each time; default 1000).
    pub callback_attempts: u32,
    pub callback_backoff: Duration,
    /// `ALLOW_INSECURE_REMOTES=1`: also accept `http://` and `file://` clone URLs (tests, self-hosted).
    pub allow_insecure_remotes: bool,
    /// The sandbox for the agent and the test command (see `crate::sandbox`).
    pub sandbox: SandboxSettings,
}

/// How the agent and the test command are confined (`container/README.md`, "Sandbox").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    /// `SANDBOX` (`on`, the default; `off` runs them as the executor's own user: development only).
    pub enabled: bool,
    /// `SANDBOX_LAUNCHER`: a `bugbot-executor` binary (its hidden `sandbox-exec` and `sandbox-sweep`
    /// subcommands). Default: this binary, or one found next to it (tests and benchmarks).
    pub launcher: Option<PathBuf>,
    /// `SANDBOX_UID_BASE` (20000) and `SANDBOX_UIDS` (64): each running job gets its own uid (= gid) from
    /// this range; nothing else on the machine may use them.
    pub uid_base: u32,
    pub uids: u32,
    /// `SANDBOX_LOCK_DIR` (`$TMPDIR/bugbot-sandbox`): lock files leasing the uids between executors.
    pub lock_dir: PathBuf,
    /// Resource limits per sandboxed process: `SANDBOX_MAX_PROCESSES` (1024, for the sandbox uid as a
    /// whole, threads included), `SANDBOX_MAX_MEMORY_MB` (8192, private writable memory per process),
    /// `SANDBOX_MAX_FILE_MB` (512, largest file written), `SANDBOX_MAX_CPU_SECS` (3600 per process).
    /// `0` leaves a limit unset.
    pub max_processes: u64,
    pub max_memory_mb: u64,
    pub max_file_mb: u64,
    pub max_cpu_secs: u64,
    /// `TEST_NETWORK` (`off`, the default: the test command runs in an empty network namespace where the
    /// platform allows one; `on`: it shares the container's network).
    pub test_network: bool,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let listen = match (get("LISTEN_ADDR"), get("PORT")) {
            (Some(addr), _) => parse("LISTEN_ADDR", &addr)?,
            (None, Some(port)) => SocketAddr::from(([0, 0, 0, 0], parse::<u16>("PORT", &port)?)),
            (None, None) => SocketAddr::from(([0, 0, 0, 0], 8080)),
        };
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| parse(name, &v))
        };
        let test_env = get("TEST_ENV")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty() && !SECRET_VARS.contains(name))
            .filter_map(|name| lookup(name).map(|value| (name.to_owned(), value)))
            .collect();
        let max_concurrent_jobs = usize::try_from(number("MAX_CONCURRENT_JOBS", 1)?.max(1)).unwrap_or(1);
        let max_queued_jobs = usize::try_from(number("MAX_QUEUED_JOBS", 16)?).unwrap_or(16);
        Ok(Self {
            listen,
            secret: get("EXECUTOR_SECRET").map(Secret),
            signature_window: Duration::from_secs(number("SIGNATURE_WINDOW_SECS", DEFAULT_SIGNATURE_WINDOW_SECS)?),
            anthropic_api_key: get("ANTHROPIC_API_KEY").map(Secret),
            anthropic_base_url: get("ANTHROPIC_BASE_URL"),
            claude_bin: get("CLAUDE_BIN").map_or_else(|| PathBuf::from("claude"), PathBuf::from),
            claude_model: get("CLAUDE_MODEL"),
            git_token: get("GIT_TOKEN").or_else(|| get("GITHUB_TOKEN")).map(Secret),
            git_username: get("GIT_USERNAME").unwrap_or_else(|| "x-access-token".into()),
            git_bin: get("GIT_BIN").map_or_else(|| PathBuf::from("git"), PathBuf::from),
            author_name: get("GIT_AUTHOR_NAME").unwrap_or_else(|| "bugbot".into()),
            author_email: get("GIT_AUTHOR_EMAIL").unwrap_or_else(|| "bugbot@users.noreply.github.com".into()),
            work_root: get("WORK_ROOT").map_or_else(|| std::env::temp_dir().join("bugbot-executor"), PathBuf::from),
            agent_path: get("AGENT_PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            test_env,
            max_concurrent_jobs,
            max_queued_jobs,
            callback_attempts: u32::try_from(number("CALLBACK_ATTEMPTS", 6)?.max(1)).unwrap_or(6),
            callback_backoff: Duration::from_millis(number("CALLBACK_BACKOFF_MS", 1000)?),
            allow_insecure_remotes: get("ALLOW_INSECURE_REMOTES").is_some_and(|v| matches!(v.as_str(), "1" | "true")),
            sandbox: SandboxSettings {
                enabled: switch("SANDBOX", get("SANDBOX").as_deref(), true)?,
                launcher: get("SANDBOX_LAUNCHER").map(PathBuf::from),
                uid_base: u32::try_from(number("SANDBOX_UID_BASE", 20_000)?)
                    .ok()
                    .filter(|&base| base >= 1000)
                    .ok_or(ConfigError::Invalid { name: "SANDBOX_UID_BASE", why: "must be 1000..4294967294".into() })?,
                uids: u32::try_from(number("SANDBOX_UIDS", 64)?.clamp(1, 65_536)).unwrap_or(64),
                lock_dir: get("SANDBOX_LOCK_DIR")
                    .map_or_else(|| std::env::temp_dir().join("bugbot-sandbox"), PathBuf::from),
                max_processes: number("SANDBOX_MAX_PROCESSES", 1024)?,
                max_memory_mb: number("SANDBOX_MAX_MEMORY_MB", 8192)?,
                max_file_mb: number("SANDBOX_MAX_FILE_MB", 512)?,
                max_cpu_secs: number("SANDBOX_MAX_CPU_SECS", 3600)?,
                test_network: switch("TEST_NETWORK", get("TEST_NETWORK").as_deref(), false)?,
            },
        })
    }

    /// The redactor for this configuration: every configured secret, plus token shapes.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(
            [&self.secret, &self.anthropic_api_key, &self.git_token].into_iter().flatten().map(Secret::expose),
        )
    }
}

/// Variables that hold the executor's own secrets; never passed on to a child process by name.
const SECRET_VARS: &[&str] = &["EXECUTOR_SECRET", "ANTHROPIC_API_KEY", "GIT_TOKEN", "GITHUB_TOKEN"];

/// `on`/`off` (also `1`/`0`, `true`/`false`); `default` when unset.
fn switch(name: &'static str, value: Option<&str>, default: bool) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("on" | "1" | "true" | "yes") => Ok(true),
        Some("off" | "0" | "false" | "no") => Ok(false),
        Some(_) => Err(ConfigError::Invalid { name, why: "expected on or off".into() }),
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Invalid { name, why: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.claude_bin, PathBuf::from("claude"));
        assert_eq!(c.max_concurrent_jobs, 1);
        assert_eq!(c.signature_window, Duration::from_mins(5));
        assert!(c.secret.is_none() && c.git_token.is_none());
        assert!(!c.allow_insecure_remotes);
        assert!(c.sandbox.enabled && !c.sandbox.test_network);
        assert_eq!((c.sandbox.uid_base, c.sandbox.uids, c.sandbox.max_processes), (20_000, 64, 1024));
    }

    #[test]
    fn sandbox_settings() {
        let c = config(&[("SANDBOX", "off"), ("TEST_NETWORK", "on"), ("SANDBOX_UID_BASE", "30000")]).unwrap();
        assert!(!c.sandbox.enabled && c.sandbox.test_network);
        assert_eq!(c.sandbox.uid_base, 30_000);
        assert!(config(&[("SANDBOX", "maybe")]).is_err());
        assert!(config(&[("SANDBOX_UID_BASE", "0")]).is_err(), "root's uid can never be a sandbox uid");
    }

    #[test]
    fn values_and_fallbacks() {
        let c = config(&[
            ("PORT", "9000"),
            ("GITHUB_TOKEN", "tok-from-github-var"),
            ("MAX_CONCURRENT_JOBS", "0"),
            ("TEST_ENV", "CARGO_HOME, GIT_TOKEN,MISSING"),
            ("CARGO_HOME", "/cargo"),
            ("ALLOW_INSECURE_REMOTES", "1"),
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.git_token.as_ref().map(Secret::expose), Some("tok-from-github-var"));
        assert_eq!(c.max_concurrent_jobs, 1);
        assert_eq!(c.test_env, vec![("CARGO_HOME".to_owned(), "/cargo".to_owned())]);
        assert!(c.allow_insecure_remotes);
        assert!(config(&[("PORT", "x")]).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = config(&[("EXECUTOR_SECRET", "executor-secret-value"), ("ANTHROPIC_API_KEY", "anthropic-key-value")])
            .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("executor-secret-value") && !debug.contains("anthropic-key-value"));
        assert_eq!(c.redactor().redact("k=anthropic-key-value"), "k=[REDACTED]");
    }
}
