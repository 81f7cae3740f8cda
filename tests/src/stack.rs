//! The whole local deployment for end-to-end tests: the fakes of Linear, GitHub and Discord, and
//! both Workers in workerd configured to talk to them.

use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

use crate::fake::discord::FakeDiscord;
use crate::fake::github::FakeGitHub;
use crate::fake::linear::{FakeLinear, TEAM_ID};
use crate::fake::posthog::{self, FakePostHog};
use crate::fake::sentry::{self, FakeSentry};
use crate::keys::{TestKeys, now_secs};
use crate::workers::{WorkerVars, Workers};
use bugbot_shared::source::discord::Snowflake;

/// The repository the fake GitHub serves.
pub const REPO: &str = "acme/shop";
/// The channel alerts are announced in.
pub const ALERTS_CHANNEL: &str = "1100000000000000001";
pub use crate::workers::SLACK_ALERT_CHANNELS;
/// The Discord application.
pub const APPLICATION_ID: u64 = 1_100_000_000_000_000_002;

/// The Discord servers the tests' interactions come from: `DISCORD_ALLOWED_GUILDS` of a default stack
/// (with none configured, the consumer refuses every command).
pub const TEST_GUILDS: &str = "1100000000000000009,1200000000000000001,1300000000000000002,772904309264089089,5";

/// Which integrations a stack has.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub linear: bool,
    pub github: bool,
    pub discord: bool,
    /// Extra consumer variables (e.g. `RETRY_BASE_MS`).
    pub consumer_vars: Vec<(String, String)>,
    /// Overrides of the consumer's queue settings (Miniflare names, e.g. `maxRetries`).
    pub consumer_queue: Value,
    /// Serve the gateway on this port (when its URL must be known before it starts).
    pub gateway_port: Option<u16>,
    /// Credentials to use (when something outside the stack must share them, like an executor).
    pub keys: Option<TestKeys>,
    /// More harness options (`tests/harness/serve.mjs`), e.g. `{"countCalls": true}` for the benchmark.
    pub harness: Value,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            linear: true,
            github: true,
            discord: true,
            // Fast retries in tests: 1 s base backoff, three deliveries in all.
            consumer_vars: vec![
                ("RETRY_BASE_MS".into(), "1000".into()),
                ("RETRY_MAX_ATTEMPTS".into(), "3".into()),
                ("DISCORD_ALLOWED_GUILDS".into(), TEST_GUILDS.into()),
                // The sample application's code (the fixtures' `errors/views.py`) may be quoted.
                ("CODE_PATHS".into(), "errors/**".into()),
            ],
            consumer_queue: serde_json::json!({"maxRetries": 2}),
            gateway_port: None,
            keys: None,
            harness: Value::Null,
        }
    }
}

/// Fakes plus Workers.
#[derive(Debug)]
pub struct Stack {
    pub keys: TestKeys,
    pub linear: FakeLinear,
    pub github: FakeGitHub,
    pub discord: FakeDiscord,
    /// The Sentry-compatible API (`SENTRY_API_*`), always configured.
    pub sentry: FakeSentry,
    /// PostHog (`POSTHOG_*`), always configured.
    pub posthog: FakePostHog,
    pub workers: Workers,
    pub linear_key: String,
    pub github_token: String,
    pub bot_token: String,
}

fn token(prefix: &str) -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("randomness");
    format!("{prefix}{}", hex::encode(b))
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let keys = options.keys.clone().unwrap_or_default();
        let linear_key = token("lin_test_");
        let github_token = token("gh_test_");
        let bot_token = token("bot_test_");
        let linear = FakeLinear::start(&linear_key).await;
        let github = FakeGitHub::start(&github_token, REPO).await;
        let discord = FakeDiscord::start(&bot_token, Snowflake(APPLICATION_ID)).await;
        let sentry_token = token("sntrys_test_");
        let posthog_key = token("phx_test_");
        let sentry = FakeSentry::start(&sentry_token).await;
        let posthog = FakePostHog::start(&posthog_key).await;
        let mut vars = WorkerVars::with_test_keys(&keys)
            .consumer("LINEAR_API_URL", linear.url())
            .consumer("GITHUB_API_BASE", github.url())
            .consumer("DISCORD_API_BASE", discord.url())
            .both("DISCORD_APPLICATION_ID", APPLICATION_ID.to_string())
            .consumer("SENTRY_API_BASE", sentry.url())
            .consumer("SENTRY_API_TOKEN", &sentry_token)
            .consumer("SENTRY_ORG", sentry::ORG)
            .consumer("POSTHOG_API_BASE", posthog.url())
            .consumer("POSTHOG_API_KEY", &posthog_key)
            .consumer("POSTHOG_PROJECT_ID", posthog::PROJECT_ID);
        if options.linear {
            vars = vars.consumer("LINEAR_API_KEY", &linear_key).consumer("LINEAR_TEAM_ID", TEAM_ID);
        }
        if options.github {
            vars = vars.consumer("GITHUB_TOKEN", &github_token).consumer("GITHUB_REPO", REPO);
        }
        if options.discord {
            vars = vars.consumer("DISCORD_BOT_TOKEN", &bot_token).consumer("DISCORD_ALERTS_CHANNEL_ID", ALERTS_CHANNEL);
        }
        for (k, v) in &options.consumer_vars {
            vars = vars.consumer(k, v);
        }
        let workers = tokio::task::block_in_place(|| {
            let mut extra =
                serde_json::json!({"consumerQueue": options.consumer_queue, "port": options.gateway_port.unwrap_or(0)});
            if let (Some(o), Some(more)) = (extra.as_object_mut(), options.harness.as_object()) {
                o.extend(more.clone());
            }
            Workers::start_with(&vars, &extra)
        })?;
        Ok(Self { keys, linear, github, discord, sentry, posthog, workers, linear_key, github_token, bot_token })
    }

    /// Posts a signed Sentry webhook; returns the job ids from the reply.
    pub async fn sentry(&self, resource: &str, request_id: &str, body: &[u8]) -> anyhow::Result<Vec<String>> {
        let resp = reqwest::Client::new()
            .post(format!("{}/webhooks/sentry", self.workers.url))
            .header("sentry-hook-resource", resource)
            .header("sentry-hook-timestamp", now_secs().to_string())
            .header("sentry-hook-signature", self.keys.sign_sentry(body))
            .header("request-id", request_id)
            .body(body.to_vec())
            .send()
            .await?;
        let status = resp.status();
        let reply: Value = resp.json().await?;
        if !status.is_success() {
            bail!("gateway answered {status}: {reply}");
        }
        Ok(reply["jobs"]
            .as_array()
            .map(|a| a.iter().filter_map(|j| j.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// Posts a GlitchTip alert to its token URL; returns the job ids.
    pub async fn glitchtip(&self, body: &[u8]) -> anyhow::Result<Vec<String>> {
        let url = format!("{}/webhooks/glitchtip/{}", self.workers.url, self.keys.glitchtip_token);
        let reply: Value = reqwest::Client::new().post(url).body(body.to_vec()).send().await?.json().await?;
        Ok(reply["jobs"]
            .as_array()
            .map(|a| a.iter().filter_map(|j| j.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// Waits until the job's status satisfies `done`.
    pub async fn job(&self, job_id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        self.workers.wait_for_job(&self.keys.admin_token, job_id, timeout, done).await
    }

    /// Waits until the job reached a final state (not received/retrying).
    pub async fn settled(&self, job_id: &str, timeout: Duration) -> anyhow::Result<Value> {
        self.job(job_id, timeout, |s| !matches!(s["state"].as_str(), Some("received" | "retrying") | None)).await
    }

    /// A GET on an admin route, as JSON.
    pub async fn admin(&self, path: &str) -> anyhow::Result<Value> {
        let resp = reqwest::Client::new()
            .get(format!("{}/admin/{path}", self.workers.url))
            .bearer_auth(&self.keys.admin_token)
            .send()
            .await?;
        Ok(resp.json().await?)
    }

    /// Polls `check` until it returns `Some`, or fails after `timeout` showing the Workers' logs
    /// (see [`crate::wait`], also for asserting that something did *not* happen).
    pub async fn eventually<T>(
        &self,
        timeout: Duration,
        what: &str,
        check: impl FnMut() -> Option<T>,
    ) -> anyhow::Result<T> {
        self.workers.until(timeout, what, check).await
    }
}
