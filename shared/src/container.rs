//! The executor on Cloudflare Containers, as the consumer runs it: the `ExecutorContainer` Durable
//! Object (one instance, [`INSTANCE`]) owns the container built from `container/Dockerfile` and
//! forwards the consumer's signed requests to its port [`PORT`].
//!
//! Pure policy lives here so it is tested natively: which of the consumer's settings become the
//! container's environment ([`container_env`]), how long to wait for a cold container to listen
//! ([`COLD_START_ATTEMPTS`]), and when an idle container is stopped ([`idle_check`]).

/// The port the executor listens on inside the image (`LISTEN_ADDR=0.0.0.0:8080` in the Dockerfile).
pub const PORT: u16 = 8080;
/// The Durable Object binding in `consumer/wrangler.toml`.
pub const BINDING: &str = "EXECUTOR";
/// The one instance: the executor queues jobs itself (`MAX_CONCURRENT_JOBS`) and keeps their status.
pub const INSTANCE: &str = "executor";
/// Connection attempts while a cold container starts listening, [`COLD_START_PAUSE_MS`] apart.
pub const COLD_START_ATTEMPTS: u32 = 40;
pub const COLD_START_PAUSE_MS: u64 = 500;
/// A container with no job running or queued is stopped this long after the last request.
pub const IDLE_STOP_MS: u64 = 10 * 60 * 1000;

/// `(consumer setting, container variable)`. The first setting present wins for each container
/// variable, so `EXECUTOR_GIT_TOKEN` (a push token scoped to the fix repository) is preferred over
/// the `GITHUB_TOKEN` the consumer files issues with.
pub const ENV_MAP: &[(&str, &str)] = &[
    ("EXECUTOR_SECRET", "EXECUTOR_SECRET"),
    ("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    ("ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"),
    ("EXECUTOR_GIT_TOKEN", "GIT_TOKEN"),
    ("GITHUB_TOKEN", "GIT_TOKEN"),
    ("EXECUTOR_GIT_USERNAME", "GIT_USERNAME"),
    ("EXECUTOR_GIT_AUTHOR_NAME", "GIT_AUTHOR_NAME"),
    ("EXECUTOR_GIT_AUTHOR_EMAIL", "GIT_AUTHOR_EMAIL"),
    ("EXECUTOR_CLAUDE_MODEL", "CLAUDE_MODEL"),
    ("EXECUTOR_MAX_CONCURRENT_JOBS", "MAX_CONCURRENT_JOBS"),
    ("EXECUTOR_MAX_QUEUED_JOBS", "MAX_QUEUED_JOBS"),
    // `1` lets the executor clone and push over plain `http://` (a git server on a private network;
    // the container test's git server on the Docker bridge).
    ("EXECUTOR_ALLOW_INSECURE_REMOTES", "ALLOW_INSECURE_REMOTES"),
];

/// The container's environment from the consumer's settings (`get` returns a non-empty value or
/// `None`). Nothing else of the consumer's configuration reaches the container.
pub fn container_env(get: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = Vec::new();
    for (setting, variable) in ENV_MAP {
        if env.iter().any(|(v, _)| v == variable) {
            continue;
        }
        if let Some(value) = get(setting).filter(|v| !v.is_empty()) {
            env.push((variable, value));
        }
    }
    env
}

/// What the executor's `GET /health` says about its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Load {
    #[serde(default)]
    pub running: usize,
    #[serde(default)]
    pub queued: usize,
}

/// What the Durable Object's alarm does with a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleCheck {
    /// Stop it: nothing running or queued, and no request for [`IDLE_STOP_MS`].
    Stop,
    /// Look again at this time (unix ms).
    Again(u64),
}

/// `load` is `None` when the executor did not answer its health check: a container that cannot say
/// it is busy is treated as idle (a wedged container is not kept running forever).
pub fn idle_check(now_ms: u64, last_request_ms: u64, load: Option<Load>) -> IdleCheck {
    if load.is_some_and(|l| l.running + l.queued > 0) {
        return IdleCheck::Again(now_ms + IDLE_STOP_MS);
    }
    let idle_until = last_request_ms.saturating_add(IDLE_STOP_MS);
    if now_ms >= idle_until { IdleCheck::Stop } else { IdleCheck::Again(idle_until) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn only_mapped_settings_reach_the_container() {
        let env = container_env(lookup(&[
            ("EXECUTOR_SECRET", "s"),
            ("ANTHROPIC_API_KEY", "k"),
            ("DISCORD_BOT_TOKEN", "never"),
            ("LINEAR_API_KEY", "never"),
            ("EXECUTOR_CLAUDE_MODEL", "claude-x"),
            ("EXECUTOR_MAX_QUEUED_JOBS", ""),
        ]));
        assert_eq!(
            env,
            vec![
                ("EXECUTOR_SECRET", "s".into()),
                ("ANTHROPIC_API_KEY", "k".into()),
                ("CLAUDE_MODEL", "claude-x".into())
            ]
        );
    }

    #[test]
    fn a_dedicated_push_token_wins_over_the_filing_token() {
        let both = container_env(lookup(&[("GITHUB_TOKEN", "filing"), ("EXECUTOR_GIT_TOKEN", "push")]));
        assert_eq!(both, vec![("GIT_TOKEN", "push".into())]);
        let fallback = container_env(lookup(&[("GITHUB_TOKEN", "filing")]));
        assert_eq!(fallback, vec![("GIT_TOKEN", "filing".into())]);
    }

    #[test]
    fn a_busy_container_is_kept_and_an_idle_one_stops_after_the_grace_period() {
        let busy = Some(Load { running: 1, queued: 0 });
        assert_eq!(idle_check(5_000_000, 0, busy), IdleCheck::Again(5_000_000 + IDLE_STOP_MS));
        let queued = Some(Load { running: 0, queued: 2 });
        assert!(matches!(idle_check(5_000_000, 0, queued), IdleCheck::Again(_)));
        let idle = Some(Load { running: 0, queued: 0 });
        assert_eq!(idle_check(1_000 + IDLE_STOP_MS, 1_000, idle), IdleCheck::Stop);
        assert_eq!(idle_check(2_000, 1_000, idle), IdleCheck::Again(1_000 + IDLE_STOP_MS));
        // No answer: idle once the grace period has passed, not before.
        assert_eq!(idle_check(2_000, 1_000, None), IdleCheck::Again(1_000 + IDLE_STOP_MS));
        assert_eq!(idle_check(1_000 + IDLE_STOP_MS, 1_000, None), IdleCheck::Stop);
    }

    #[test]
    fn the_executor_health_answer_parses() {
        let load: Load =
            serde_json::from_str(r#"{"status":"ok","version":"0.1.0","queued":3,"running":1,"configured":{}}"#)
                .unwrap();
        assert_eq!(load, Load { running: 1, queued: 3 });
    }
}
