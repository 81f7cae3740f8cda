//! Runs the real gateway and consumer Workers in workerd (Miniflare, via `tests/harness/serve.mjs`)
//! with test configuration, and exposes their URL and log lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::TryRecvError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::keys::TestKeys;
use crate::wait::{self, PATIENCE};

/// How long the harness has to dispose workerd when the Workers are dropped before it is killed.
const DISPOSE: Duration = Duration::from_secs(30);

/// The workspace root (tests run with the crate directory as working directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Where fixture files live.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = workspace_root().join("fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}

/// A Sentry alert body as another event of the same error: `data.event.event_id` set from `n`. The
/// gateway's job id is a hash of the signed body, so an identical body is the same delivery (a
/// replay), never a second occurrence.
pub fn another_occurrence(alert: &[u8], n: u32) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(alert).expect("a JSON alert");
    payload["data"]["event"]["event_id"] = json!(format!("{n:032x}"));
    serde_json::to_vec(&payload).expect("json")
}

/// Variables for each Worker, on top of the `[vars]` of the real wrangler configs.
#[derive(Debug, Clone, Default)]
pub struct WorkerVars {
    pub gateway: BTreeMap<String, String>,
    pub consumer: BTreeMap<String, String>,
}

/// The Slack channels whose messages are alerts (`SLACK_ALERT_CHANNELS`, set with the test keys).
pub const SLACK_ALERT_CHANNELS: &str = "C0003,C0ALERTS";

impl WorkerVars {
    /// Both Workers get `name = value`.
    #[must_use]
    pub fn both(mut self, name: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        self.gateway.insert(name.to_owned(), value.clone());
        self.consumer.insert(name.to_owned(), value);
        self
    }

    #[must_use]
    pub fn gateway(mut self, name: &str, value: impl Into<String>) -> Self {
        self.gateway.insert(name.to_owned(), value.into());
        self
    }

    #[must_use]
    pub fn consumer(mut self, name: &str, value: impl Into<String>) -> Self {
        self.consumer.insert(name.to_owned(), value.into());
        self
    }

    /// The secrets of [`TestKeys`] for every ingress route, plus an admin token.
    pub fn with_test_keys(keys: &TestKeys) -> Self {
        Self::default()
            .gateway("DISCORD_PUBLIC_KEY", keys.discord_public_hex())
            .gateway("SENTRY_CLIENT_SECRET", &keys.sentry_secret)
            .gateway("SENTRY_LEGACY_WEBHOOK_TOKEN", &keys.legacy_token)
            .gateway("GLITCHTIP_WEBHOOK_TOKEN", &keys.glitchtip_token)
            .gateway("SLACK_SIGNING_SECRET", &keys.slack_signing_secret)
            .gateway("SLACK_ALERT_CHANNELS", SLACK_ALERT_CHANNELS)
            .both("EXECUTOR_SECRET", &keys.executor_secret)
            .both("ADMIN_TOKEN", &keys.admin_token)
    }
}

/// Both Workers, running. Stopped (gracefully, then forcibly) on drop.
#[derive(Debug)]
pub struct Workers {
    pub url: String,
    child: Child,
    stdin: Option<ChildStdin>,
    logs: Arc<Mutex<Vec<String>>>,
    _options: tempfile::NamedTempFile,
}

impl Workers {
    /// Starts both Workers. Requires `scripts/build-workers` to have run (the test command does it).
    pub fn start(vars: &WorkerVars) -> anyhow::Result<Self> {
        Self::start_with(vars, &json!({}))
    }

    /// Starts both Workers with extra harness options (e.g. `{"consumerQueue": {"maxRetries": 1}}`).
    pub fn start_with(vars: &WorkerVars, extra: &Value) -> anyhow::Result<Self> {
        let root = workspace_root();
        // `root`: another checkout's builds (a benchmark baseline); `reference`: bench/reference's.
        let built = extra.get("root").and_then(Value::as_str).map_or_else(|| root.clone(), PathBuf::from);
        let reference = extra.get("reference").and_then(Value::as_bool).unwrap_or(false);
        let gateway_only = extra.get("gatewayOnly").and_then(Value::as_bool).unwrap_or(false);
        let mains: &[&str] = if gateway_only {
            &["gateway/build/worker/shim.mjs"]
        } else {
            &["gateway/build/worker/shim.mjs", "consumer/build/worker/shim.mjs"]
        };
        for main in mains {
            if !reference && !built.join(main).exists() {
                bail!("{} is missing: build the Workers first with scripts/build-workers", built.join(main).display());
            }
        }
        let mut options = json!({"vars": {"gateway": vars.gateway, "consumer": vars.consumer}});
        if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let mut file = tempfile::NamedTempFile::new()?;
        file.write_all(options.to_string().as_bytes())?;
        let mut child = Command::new("node")
            .arg(root.join("tests/harness/serve.mjs"))
            .arg(file.path())
            .current_dir(&root)
            // Miniflare paints workerd's stderr red when colours are on (FORCE_COLOR set by a CI or a
            // terminal): the Workers' warning and error lines would no longer parse as JSON.
            .env("NO_COLOR", "1")
            .env_remove("FORCE_COLOR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting node (is Node.js installed?)")?;
        let stdin = child.stdin.take();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("piped");
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(tx) = ready_tx.as_ref()
                    && let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(url) = v.get("ready").and_then(Value::as_str)
                {
                    let _ = tx.send(url.to_owned());
                    ready_tx = None;
                    continue;
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let stderr = child.stderr.take().expect("piped");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        // Several test binaries start their Workers at once on a busy machine: a generous bound. A
        // harness that exits first (its stdout closes) fails at once, with what it printed.
        let ready = wait::until_blocking(PATIENCE, "the Workers' ready line", || match ready_rx.try_recv() {
            Ok(url) => Some(Ok(url)),
            Err(TryRecvError::Disconnected) => Some(Err(())),
            Err(TryRecvError::Empty) => None,
        });
        let url = match ready {
            Ok(Ok(url)) => url,
            failed => {
                kill_harness(&mut child);
                let logs = logs.lock().expect("log lock").join("\n");
                match failed {
                    Err(timed_out) => bail!("{}", timed_out.showing(format!("harness output:\n{logs}"))),
                    _ => bail!("the harness exited before the Workers were ready:\n{logs}"),
                }
            }
        };
        Ok(Self { url, child, stdin, logs, _options: file })
    }

    /// The workerd processes serving the Workers (children of the harness), for CPU accounting.
    pub fn workerd_pids(&self) -> Vec<u32> {
        workerd_children(self.child.id())
    }

    /// The harness (Node, Miniflare), which receives every console line of the Workers.
    pub fn harness_pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line the Workers and the harness printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// The structured (JSON) log lines so far.
    pub fn json_logs(&self) -> Vec<Value> {
        self.logs().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The logs so far, for a failure message.
    fn shown_logs(&self) -> String {
        format!("logs:\n{}", self.logs().join("\n"))
    }

    /// Polls `probe` until it returns `Some`; on timeout the error shows the Workers' logs.
    pub async fn until<T>(&self, within: Duration, what: &str, probe: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
        wait::until(within, what, probe).await.map_err(|e| e.showing(self.shown_logs()).into())
    }

    /// Waits until a JSON log line satisfies `matches`, and returns it. Log lines cross workerd's and
    /// Node's pipes after whatever caused them (the consumer logs a job after recording its status).
    pub async fn log_line(
        &self,
        within: Duration,
        what: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.until(within, what, || self.json_logs().into_iter().find(&matches)).await
    }

    /// Waits until a raw log line contains `needle`, and returns it.
    pub async fn log_containing(&self, within: Duration, needle: &str) -> anyhow::Result<String> {
        let what = format!("a log line containing {needle:?}");
        self.until(within, &what, || self.logs().into_iter().find(|l| l.contains(needle))).await
    }

    /// Polls the admin route until the job's status satisfies `done`, or fails after `timeout`.
    pub async fn wait_for_job(
        &self,
        admin_token: &str,
        job_id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let client = reqwest::Client::new();
        let last = Mutex::new(Value::Null);
        let url = format!("{}/admin/jobs/{job_id}", self.url);
        let (client, last_seen, done) = (&client, &last, &done);
        let what = format!("job {job_id} reaching the expected state");
        wait::until_async(timeout, &what, || {
            let url = url.clone();
            async move {
                let resp = client.get(url).bearer_auth(admin_token).send().await.ok()?;
                if !resp.status().is_success() {
                    return None;
                }
                let status: Value = resp.json().await.ok()?;
                if done(&status) {
                    return Some(status);
                }
                *last_seen.lock().expect("last status") = status;
                None
            }
        })
        .await
        .map_err(|e| {
            let last = last.lock().expect("last status").clone();
            e.showing(format!("last status: {last}")).showing(self.shown_logs()).into()
        })
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing stdin asks the harness to dispose workerd cleanly; kill only if it does not.
        drop(self.stdin.take());
        let child = &mut self.child;
        if wait::until_blocking(DISPOSE, "the harness to exit", || child.try_wait().ok().flatten()).is_ok() {
            return;
        }
        kill_harness(&mut self.child);
    }
}

/// Kills the harness and the workerd it started, which would outlive it (nothing forwards the kill).
fn kill_harness(harness: &mut Child) {
    for pid in workerd_children(harness.id()) {
        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    }
    let _ = harness.kill();
    let _ = harness.wait();
}

/// The workerd processes the harness `parent` started.
fn workerd_children(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return pids };
    for entry in entries.flatten() {
        let Some(candidate) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{candidate}/stat")) else { continue };
        // Fields after the parenthesized command name: state, ppid, ...
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && head.contains("(workerd") {
            pids.push(candidate);
        }
    }
    pids
}
