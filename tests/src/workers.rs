//! Runs the real gateway and consumer Workers in workerd (Miniflare, via `tests/harness/serve.mjs`)
//! with test configuration, and exposes their URL and log lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::keys::TestKeys;

/// The workspace root (tests run with the crate directory as working directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Where fixture files live.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = workspace_root().join("fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}

/// Variables for each Worker, on top of the `[vars]` of the real wrangler configs.
#[derive(Debug, Clone, Default)]
pub struct WorkerVars {
    pub gateway: BTreeMap<String, String>,
    pub consumer: BTreeMap<String, String>,
}

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
        for main in ["gateway/build/worker/shim.mjs", "consumer/build/worker/shim.mjs"] {
            if !root.join(main).exists() {
                bail!("{main} is missing: build the Workers first with scripts/build-workers");
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
        let Ok(url) = ready_rx.recv_timeout(Duration::from_mins(1)) else {
            let _ = child.kill();
            let logs = logs.lock().expect("log lock").join("\n");
            bail!("workers did not start within 60 s:\n{logs}");
        };
        Ok(Self { url, child, stdin, logs, _options: file })
    }

    /// The workerd processes serving the Workers (children of the harness), for CPU accounting.
    pub fn workerd_pids(&self) -> Vec<u32> {
        let parent = self.child.id();
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

    /// Every line the Workers and the harness printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// The structured (JSON) log lines so far.
    pub fn json_logs(&self) -> Vec<Value> {
        self.logs().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
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
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let resp = client.get(format!("{}/admin/jobs/{job_id}", self.url)).bearer_auth(admin_token).send().await?;
            if resp.status().is_success() {
                last = resp.json().await?;
                if done(&last) {
                    return Ok(last);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "job {job_id} did not reach the expected state within {timeout:?}; last status: {last}\nlogs:\n{}",
            self.logs().join("\n")
        )
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing stdin asks the harness to dispose workerd cleanly; kill only if it does not.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
