//! The consumer's `ExecutorContainer` for real: `wrangler dev` with containers enabled builds the
//! executor image from `container/Dockerfile` itself, and the Durable Object starts the container
//! with its mapped environment and forwards the signed fix job to it. `/bugbot fix` → consumer →
//! `ExecutorContainer` → container (the real Claude Code CLI against the fake model, real git over
//! HTTP) → signed callback to the gateway → draft PR on the fake GitHub.
//!
//! Two stand-ins make wrangler's local containers work on a Docker host without `BuildKit` or an image
//! registry, and nothing else is replaced: `scripts/wrangler-docker` (wrangler's `docker`: drops the
//! `BuildKit`-only flags, passes the Debian-built base images, uses local images instead of pulling) and
//! `bugbot-local/container-sidecar` (`scripts/sidecar-image`), standing in for Cloudflare's
//! `proxy-everything` network sidecar that wrangler would pull from Docker Hub.
//!
//! Skipped, with one line in the test output, where no Docker daemon answers.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bugbot_e2e::anthropic::{FakeAnthropic, Turn, WhenExhausted};
use bugbot_e2e::docker::{self, docker};
use bugbot_e2e::fake::discord::FakeDiscord;
use bugbot_e2e::fake::github::FakeGitHub;
use bugbot_e2e::git_http::{GitHttp, seed_bare_repo};
use bugbot_e2e::keys::{TestKeys, random_hex};
use bugbot_e2e::local_executor::{BUGGY, CHECK, git};
use bugbot_e2e::stack::{ALERTS_CHANNEL, APPLICATION_ID, REPO};
use bugbot_e2e::workers::{WorkerVars, workspace_root};
use bugbot_shared::source::discord::Snowflake;
use serde_json::json;
use tempfile::TempDir;

/// Generous bounds; never performance assertions.
const START: Duration = Duration::from_mins(5);
const SETTLE: Duration = Duration::from_mins(4);
const SUITE: &str = "wrangler containers test (tests/wrangler_containers.rs)";
/// Maria may run write commands.
const MARIA: &str = "1100000000000000010";
/// The server the command comes from, the one `DISCORD_ALLOWED_GUILDS` allows.
const GUILD: &str = "1100000000000000009";

/// A free port on `ip` (bound and released), below Linux's ephemeral range: a port from that range can
/// be taken by any outgoing connection from the same address before wrangler binds it.
fn free_port(ip: IpAddr) -> u16 {
    loop {
        let mut b = [0u8; 2];
        getrandom::fill(&mut b).expect("randomness");
        let port = 20_000 + u16::from_le_bytes(b) % 12_000;
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// `wrangler dev` with both Workers; stopped (SIGTERM to its process group, then SIGKILL) on drop,
/// and the containers its runtime started are removed.
struct WranglerDev {
    child: Child,
    url: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// Container names start with `workerd-<consumer name>-`.
    consumer: String,
}

impl WranglerDev {
    fn logs(&self) -> String {
        self.logs.lock().expect("log lock").join("\n")
    }

    /// Waits until the gateway answers HTTP.
    async fn ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START;
        while client.get(&self.url).send().await.is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("wrangler dev exited ({status}):\n{}", self.logs());
            }
            assert!(Instant::now() < deadline, "wrangler dev did not serve within {START:?}:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        let filter = format!("name=workerd-{}-", self.consumer);
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &filter]) {
            for id in ids.lines() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
    }
}

/// The real wrangler configs, made runnable from `dir`: absolute paths, the Workers the suite built
/// (no `[build]`), the test's variables, containers on, and names of their own (container names derive
/// from them, so concurrent runs on one Docker daemon do not take each other's containers).
fn configs(dir: &Path, suffix: &str, vars: &WorkerVars) -> ([PathBuf; 2], String) {
    let root = workspace_root();
    let read = |path: &str| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(root.join(path)).expect("read config")).expect("parse config")
    };
    let absolute = |path: &str| toml::Value::String(root.join(path).display().to_string());
    let string_vars = |vars: &std::collections::BTreeMap<String, String>| -> toml::Value {
        toml::Value::Table(vars.iter().map(|(k, v)| (k.clone(), toml::Value::String(v.clone()))).collect())
    };
    let consumer_name = format!("bugbot-consumer-{suffix}");

    let mut gateway = read("wrangler.toml");
    gateway.remove("build");
    gateway.insert("name".into(), format!("bugbot-gateway-{suffix}").into());
    gateway.insert("main".into(), absolute("gateway/build/worker/shim.mjs"));
    let mut gateway_vars = gateway.get("vars").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    gateway_vars.extend(string_vars(&vars.gateway).as_table().cloned().unwrap_or_default());
    gateway.insert("vars".into(), gateway_vars.into());
    if let Some(services) = gateway.get_mut("services").and_then(toml::Value::as_array_mut) {
        for service in services.iter_mut().filter_map(toml::Value::as_table_mut) {
            service.insert("service".into(), consumer_name.clone().into());
        }
    }

    let mut consumer = read("consumer/wrangler.toml");
    consumer.remove("build");
    consumer.insert("name".into(), consumer_name.clone().into());
    consumer.insert("main".into(), absolute("consumer/build/worker/shim.mjs"));
    let mut consumer_vars = consumer.get("vars").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    consumer_vars.extend(string_vars(&vars.consumer).as_table().cloned().unwrap_or_default());
    consumer.insert("vars".into(), consumer_vars.into());
    let containers = consumer.get_mut("containers").and_then(toml::Value::as_array_mut).expect("[[containers]]");
    for container in containers.iter_mut().filter_map(toml::Value::as_table_mut) {
        container.insert("image".into(), absolute("container/Dockerfile"));
        container.insert("image_build_context".into(), toml::Value::String(root.display().to_string()));
    }
    consumer.insert(
        "dev".into(),
        toml::Value::Table([("enable_containers".to_owned(), true.into())].into_iter().collect()),
    );

    let gateway_path = dir.join("gateway.toml");
    let consumer_path = dir.join("consumer.toml");
    std::fs::write(&gateway_path, toml::to_string(&gateway).expect("toml")).expect("write config");
    std::fs::write(&consumer_path, toml::to_string(&consumer).expect("toml")).expect("write config");
    ([gateway_path, consumer_path], consumer_name)
}

/// The sidecar stand-in's image, made by `scripts/sidecar-image` (when missing or outdated) from the
/// binary cargo built for this test.
fn sidecar_image() -> String {
    let out = Command::new(workspace_root().join("scripts/sidecar-image"))
        .env("SIDECAR_BIN", env!("CARGO_BIN_EXE_bugbot-container-sidecar"))
        .output()
        .expect("run scripts/sidecar-image");
    assert!(out.status.success(), "scripts/sidecar-image failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn start_wrangler(configs: &[PathBuf; 2], ip: IpAddr, port: u16, state: &Path, consumer: String) -> WranglerDev {
    use std::os::unix::process::CommandExt as _;
    let root = workspace_root();
    let sidecar = sidecar_image();
    let mut child = Command::new(root.join("node_modules/.bin/wrangler"))
        .args(["dev", "-c"])
        .arg(&configs[0])
        .arg("-c")
        .arg(&configs[1])
        .args(["--enable-containers=true", "--ip", &ip.to_string(), "--port", &port.to_string()])
        .args(["--inspector-port", &free_port(IpAddr::from([127, 0, 0, 1])).to_string()])
        .arg("--persist-to")
        .arg(state)
        .args(["--log-level", "info"])
        .current_dir(&root)
        .env("WRANGLER_DOCKER_BIN", root.join("scripts/wrangler-docker"))
        .env("MINIFLARE_CONTAINER_EGRESS_IMAGE", sidecar)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_UPDATE_NOTIFIER", "1")
        .env("CI", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start wrangler dev (scripts/setup installs it)");
    let logs = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
    }
    WranglerDev { child, url: format!("http://{ip}:{port}"), logs, consumer }
}

async fn eventually<T>(wrangler: &WranglerDev, what: &str, check: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {SETTLE:?}; wrangler:\n{}", wrangler.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bugbot_fix_runs_in_the_consumers_container_under_wrangler_dev_and_opens_a_draft_pr() {
    if let Some(reason) = docker::unavailable() {
        docker::skip(SUITE, &reason);
        return;
    }
    let Some(gateway_ip) = docker::bridge_gateway_in_ipam() else {
        docker::skip(
            SUITE,
            "Docker's default bridge has no gateway in its IPAM data, which wrangler's container runtime \
             reads (Docker 20.10 without --bip; scripts/setup starts dockerd with it)",
        );
        return;
    };
    // Built here (with its log in target/) so that wrangler's own build of it is a layer-cache hit.
    tokio::task::spawn_blocking(docker::executor_image).await.expect("build task").expect("the executor image");
    let dir: TempDir = tempfile::tempdir().expect("tempdir");
    let keys = TestKeys::new();
    let github_token = format!("gh_test_{}", random_hex(16));
    let bot_token = format!("bot_test_{}", random_hex(16));
    let push_token = format!("ghp_{}", random_hex(18));
    let github = FakeGitHub::start(&github_token, REPO).await;
    let discord = FakeDiscord::start(&bot_token, Snowflake(APPLICATION_ID)).await;
    let remote =
        seed_bare_repo(&dir.path().join("repos"), "acme/shop.git", &[("src/lib.rs", BUGGY), ("check.sh", CHECK)]);
    github.set_backing_repo(&remote);
    let git_server = GitHttp::start(gateway_ip, &dir.path().join("repos"), &push_token).await;
    let model = FakeAnthropic::start_on(
        gateway_ip,
        vec![
            Turn::read("src/lib.rs"),
            Turn::edit("src/lib.rs", "a - b", "a + b"),
            Turn::text("Root cause: add() subtracted its operands. Changed `a - b` to `a + b`."),
        ],
        WhenExhausted::Text("Done.".into()),
    )
    .await;
    let issue = github.add_issue("add() returns the difference", "add(2, 2) returns 0 on the invoice page", &[]);

    // The callback URL names the gateway's address, so its port is chosen first.
    let port = free_port(gateway_ip);
    // The consumer has no EXECUTOR_URL and no EXECUTOR_LOCAL_URL: fix jobs go to its ExecutorContainer.
    let vars = WorkerVars::with_test_keys(&keys)
        .both("DISCORD_APPLICATION_ID", APPLICATION_ID.to_string())
        .consumer("GITHUB_API_BASE", github.url())
        .consumer("GITHUB_TOKEN", &github_token)
        .consumer("GITHUB_REPO", REPO)
        .consumer("DISCORD_API_BASE", discord.url())
        .consumer("DISCORD_BOT_TOKEN", &bot_token)
        .consumer("DISCORD_ALERTS_CHANNEL_ID", ALERTS_CHANNEL)
        .consumer("DISCORD_ADMIN_USERS", MARIA)
        .consumer("DISCORD_ALLOWED_GUILDS", GUILD)
        .consumer("ANTHROPIC_API_KEY", format!("sk-ant-api03-{}", random_hex(20)))
        .consumer("ANTHROPIC_BASE_URL", model.base_url())
        .consumer("EXECUTOR_GIT_TOKEN", &push_token)
        // The test's git server speaks plain HTTP on the Docker bridge.
        .consumer("EXECUTOR_ALLOW_INSECURE_REMOTES", "1")
        .consumer("EXECUTOR_CALLBACK_URL", format!("http://{gateway_ip}:{port}/executor/callback"))
        .consumer("FIX_CLONE_URL", git_server.url("acme/shop.git"))
        .consumer("FIX_BASE_REF", "main")
        .consumer("FIX_ALLOWED_PATHS", "src/**")
        .consumer("FIX_TEST_COMMAND", "sh check.sh")
        .consumer("FIX_TIMEOUT_SECS", "120");
    let (configs, consumer) = configs(dir.path(), &random_hex(4), &vars);
    let mut wrangler = start_wrangler(&configs, gateway_ip, port, &dir.path().join("state"), consumer);
    wrangler.ready().await;

    // `/bugbot fix issue:#1` from Maria.
    let body = serde_json::to_vec(&json!({
        "id": "1500000000000000001", "application_id": APPLICATION_ID.to_string(), "type": 2,
        "token": "fix-in-container", "channel_id": ALERTS_CHANNEL, "guild_id": GUILD,
        "member": {"user": {"id": MARIA, "username": "maria"}, "roles": []},
        "data": {"name": "bugbot", "type": 1, "options": [{"name": "fix", "type": 1,
            "options": [{"name": "issue", "type": 3, "value": format!("#{issue}")}]}]}
    }))
    .expect("json");
    let mut request = reqwest::Client::new().post(format!("{}/discord/interactions", wrangler.url)).body(body.clone());
    for (k, v) in keys.sign_discord(&body) {
        request = request.header(k, v);
    }
    assert_eq!(request.send().await.expect("the gateway answers").status(), 200);

    let pr = eventually(&wrangler, "a draft pull request", || github.pulls().into_iter().next()).await;
    assert!(pr.draft);
    assert_eq!(pr.head, format!("bugbot/fix-{issue}"));
    assert!(pr.body.clone().unwrap_or_default().contains("tests passed"), "{pr:#?}");
    assert!(git(&remote, &["show", &format!("{}:src/lib.rs", pr.head)]).contains("a + b"));
    assert!(git_server.requests().iter().any(|r| r.is_push() && r.authorized));
    assert_eq!(model.agent_requests().len(), 3);
    // The job ran in the container wrangler built from container/Dockerfile, which the object started
    // with the mapped settings only (the filing token and the bot token stay in the consumer).
    let name = format!("name=workerd-{}-", wrangler.consumer);
    let running = docker(&["ps", "--filter", &name, "--format", "{{.Names}} {{.Image}}"]).expect("docker ps");
    let executor = running
        .lines()
        .find(|l| l.contains("cloudflare-dev/executorcontainer:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no executor container: {running}"))
        .to_owned();
    assert!(running.contains(&sidecar_image()), "the sidecar runs beside it: {running}");
    let env =
        docker(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", &executor]).expect("inspect");
    let names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(n, _)| n)).collect();
    for expected in
        ["EXECUTOR_SECRET", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GIT_TOKEN", "ALLOW_INSECURE_REMOTES"]
    {
        assert!(names.contains(&expected), "{expected} reached the container: {names:?}");
    }
    assert!(env.contains(&format!("GIT_TOKEN={push_token}")), "the dedicated push token wins: {names:?}");
    assert!(!env.contains(&github_token) && !env.contains(&bot_token), "only mapped settings: {names:?}");
    assert!(!wrangler.logs().contains(&push_token), "the push token never reaches a log");

    // wrangler pipes the Dockerfile (`docker build -f - <root>`), so only the root .dockerignore keeps
    // target/ and node_modules/ (gigabytes) out of the context the legacy builder sends.
    let logs = wrangler.logs();
    if let Some(line) = logs.lines().find(|l| l.contains("Sending build context to Docker daemon")) {
        let size = line.rsplit(' ').next().unwrap_or_default();
        let split = size.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(size.len());
        let (number, unit) = size.split_at(split);
        let scale = match unit {
            "B" => 1.0,
            "kB" => 1e3,
            "MB" => 1e6,
            _ => 1e9,
        };
        let bytes = number.parse::<f64>().unwrap_or(f64::MAX) * scale;
        assert!(bytes < 5e6, "the image's build context is {size}: {line}");
    }
}
