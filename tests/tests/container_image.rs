//! The executor image, built from `container/Dockerfile` as it ships (`scripts/executor-image`) and run
//! under Docker the way Cloudflare Containers runs it: tini as PID 1, the executor serving on port 8080,
//! its settings in the environment. Everything it talks to is on the host, reached through the Docker
//! bridge: a real git server (`git http-backend` over HTTP, asking for the push token like a private
//! GitHub repository), the fake model API for the real Claude Code CLI inside the image, and the
//! callback endpoint that checks each report's signature the way the gateway does.
//!
//! Skipped, with one line in the test output, where no Docker daemon answers (see
//! `bugbot_e2e::docker`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine as _;
use bugbot_e2e::anthropic::{FakeAnthropic, Turn, WhenExhausted};
use bugbot_e2e::docker::{self, Container, Process};
use bugbot_e2e::git_http::{GitHttp, seed_bare_repo};
use bugbot_e2e::keys::random_hex;
use bugbot_e2e::local_executor::{BUGGY, git};
use bugbot_e2e::wait;
use bugbot_shared::executor::{
    self, FixJob, FixJobId, FixLimits, FixOutcome, FixPrompt, FixReport, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use tempfile::TempDir;
use tokio::sync::mpsc;

/// Generous bound on anything a test waits for; never a performance assertion.
const WAIT: Duration = Duration::from_mins(3);
/// The image size budget (issue 13), held against the compressed image: what a registry stores and
/// Cloudflare pulls. Uncompressed it cannot hold while the image ships the Claude Code CLI, a native
/// binary of about 245 MB on its own; the test prints both sizes and the layer list. Over the budget, the
/// test says so loudly but passes.
const SIZE_BUDGET: u64 = 250_000_000;
const SUITE: &str = "container image tests (tests/container_image.rs)";

/// The project the fix is for: the bug, a check that prints the uid it runs as, and CI config.
const CHECK: &str = "grep -q 'a + b' src/lib.rs && echo \"tests passed: add (uid $(id -u))\" \
                     || { echo 'tests FAILED: add'; exit 1; }\n";

/// Everything one container needs: its servers on the bridge, its secrets, the container itself.
struct Deployment {
    _dir: TempDir,
    remote: PathBuf,
    git: GitHttp,
    model: FakeAnthropic,
    secret: String,
    git_token: String,
    api_key: String,
    callbacks: mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    callback_url: String,
    container: Container,
    url: String,
    http: reqwest::Client,
}

impl Deployment {
    /// `None` (after saying why, once) where the container tests cannot run.
    async fn start(turns: Vec<Turn>, when_exhausted: WhenExhausted) -> Option<Self> {
        Self::start_with_check(CHECK, turns, when_exhausted).await
    }

    /// As [`Deployment::start`], with `check` as the project's `check.sh` (the job's test command).
    async fn start_with_check(check: &str, turns: Vec<Turn>, when_exhausted: WhenExhausted) -> Option<Self> {
        if let Some(reason) = docker::unavailable() {
            docker::skip(SUITE, &reason);
            return None;
        }
        let image = tokio::task::spawn_blocking(docker::executor_image).await.expect("build task").expect("the image");
        let gateway = docker::bridge_gateway().expect("the bridge gateway");
        let dir = tempfile::tempdir().expect("tempdir");
        let remote = seed_bare_repo(
            &dir.path().join("repos"),
            "acme/shop.git",
            &[("src/lib.rs", BUGGY), ("check.sh", check), ("README.md", "# calc\n")],
        );
        let git_token = format!("ghp_{}", random_hex(18));
        let git = GitHttp::start(gateway, &dir.path().join("repos"), &git_token).await;
        let model = FakeAnthropic::start_on(gateway, turns, when_exhausted).await;
        let (callbacks, callback_url) = callback_endpoint(gateway).await;
        let secret = random_hex(24);
        let api_key = format!("sk-ant-api03-{}", random_hex(20));
        let name = format!("bugbot-image-test-{}", random_hex(4));
        let base_url = model.base_url();
        let container = Container::run(
            &["--name", &name, "-p", "127.0.0.1::8080", &image],
            &[
                ("EXECUTOR_SECRET", &secret),
                ("ANTHROPIC_API_KEY", &api_key),
                ("ANTHROPIC_BASE_URL", &base_url),
                ("GIT_TOKEN", &git_token),
                // The test's git server speaks plain HTTP on the bridge.
                ("ALLOW_INSECURE_REMOTES", "1"),
                ("CALLBACK_BACKOFF_MS", "200"),
            ],
        )
        .expect("docker run");
        let url = format!("http://{}", container.published(8080).expect("published port"));
        let deployment = Self {
            _dir: dir,
            remote,
            git,
            model,
            secret,
            git_token,
            api_key,
            callbacks,
            callback_url,
            container,
            url,
            http: reqwest::Client::new(),
        };
        Some(deployment)
    }

    /// Polls `/health` until the executor answers.
    async fn healthy(&self) -> serde_json::Value {
        let answer = wait::until_async(WAIT, "the executor's /health", || async {
            let response = self.http.get(format!("{}/health", self.url)).send().await.ok()?;
            if response.status() != 200 {
                return None;
            }
            Some(response.json::<serde_json::Value>().await.expect("health is JSON"))
        })
        .await;
        answer.unwrap_or_else(|e| panic!("{e}; logs:\n{}", self.container.logs()))
    }

    fn job(&self, id: &str) -> FixJob {
        FixJob {
            version: 1,
            job_id: FixJobId::new(id).expect("job id"),
            clone_url: self.git.url("acme/shop.git"),
            base_ref: "main".into(),
            branch: format!("bugbot/{id}"),
            prompt: FixPrompt {
                issue_key: "ENG-1".into(),
                issue_url: None,
                title: "add() returns the difference".into(),
                body: "add(2, 2) returned 0 in production.".into(),
                context: "Stack trace:\n  at add (src/lib.rs:2)\n".into(),
            },
            allowed_paths: vec!["src/**".into()],
            allow_protected: vec![],
            test_command: Some("sh check.sh".into()),
            limits: FixLimits { timeout_secs: 120, ..FixLimits::default() },
            callback_url: Some(self.callback_url.clone()),
            repro: bugbot_shared::executor::ReproPolicy::default(),
        }
    }

    /// Posts `job`, signed with the executor's secret; expects `202`.
    async fn submit(&self, job: &FixJob) {
        let body = serde_json::to_vec(job).expect("job JSON");
        let timestamp = bugbot_executor::unix_now();
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.url))
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, executor::sign(self.secret.as_bytes(), timestamp, &body))
            .body(body)
            .send()
            .await
            .expect("the executor answers");
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap_or_default());
    }

    /// The next callback, after checking its signature the way the gateway does.
    async fn report(&mut self) -> FixReport {
        let Ok(Some((headers, body))) = tokio::time::timeout(WAIT, self.callbacks.recv()).await else {
            panic!("no callback within {WAIT:?}; logs:\n{}", self.container.logs());
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        executor::verify(
            self.secret.as_bytes(),
            &header(TIMESTAMP_HEADER),
            &header(SIGNATURE_HEADER),
            &body,
            bugbot_executor::unix_now(),
            300,
        )
        .expect("the callback is signed with EXECUTOR_SECRET");
        serde_json::from_slice(&body).expect("the callback is a FixReport")
    }

    /// Every process of the container; fails the test on a root process other than tini (PID 1) and
    /// the executor (which may run as root to start the agent and the tests as another user).
    fn processes_outside_root(&self) -> Vec<Process> {
        let processes = self.container.processes().expect("docker top");
        for p in &processes {
            let allowed_root = p.command.starts_with("/usr/bin/tini") || p.command.contains("bugbot-executor");
            assert!(p.uid != 0 || allowed_root, "{p:?} runs as root; every process: {processes:#?}");
        }
        processes
    }
}

/// The gateway's callback endpoint on `ip`, recording what it receives.
async fn callback_endpoint(ip: IpAddr) -> (mpsc::UnboundedReceiver<(HeaderMap, Bytes)>, String) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/executor/callback",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind the callback endpoint");
    let url = format!("http://{}/executor/callback", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (rx, url)
}

fn print_size(image: &str) {
    let (total, layers) = docker::image_size(image).expect("image size");
    let compressed = docker::compressed_size(image).expect("compressed image size");
    let mb = |bytes: u64| bytes.div_ceil(1_000_000);
    let verdict = if compressed > SIZE_BUDGET {
        format!("OVER the {} MB budget by {} MB", mb(SIZE_BUDGET), mb(compressed - SIZE_BUDGET))
    } else {
        format!("within the {} MB budget", mb(SIZE_BUDGET))
    };
    docker::say(&format!(
        "executor image {image}: {} MB compressed (docker save | gzip -6), {verdict}; {} MB unpacked",
        mb(compressed),
        mb(total)
    ));
    for (size, by) in layers {
        let by = by.trim_start_matches("/bin/sh -c ").trim_start_matches("#(nop) ");
        let by = if by.is_empty() { "(the base image)" } else { by };
        docker::say(&format!("  {:>4} MB  {}", mb(size), by.chars().take(110).collect::<String>()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_fixes_a_bug_end_to_end_with_the_real_cli_git_and_a_signed_callback() {
    let turns = vec![
        Turn::read("src/lib.rs"),
        Turn::edit("src/lib.rs", "a - b", "a + b"),
        Turn::text("Root cause: add() subtracted. Changed `a - b` to `a + b`."),
    ];
    let Some(mut d) = Deployment::start(turns, WhenExhausted::Text("Done.".into())).await else { return };
    print_size(&docker::executor_image().expect("the image"));

    let health = d.healthy().await;
    assert_eq!(health["status"], "ok", "{health}");
    for setting in ["executor_secret", "anthropic_api_key", "git_token"] {
        assert_eq!(health["configured"][setting], true, "{health}");
    }
    let idle = d.processes_outside_root();
    assert!(idle.iter().any(|p| p.command.contains("bugbot-executor")), "{idle:#?}");

    let job = d.job("fix-image-1");
    d.submit(&job).await;
    let report = d.report().await;

    assert_eq!(report.outcome, FixOutcome::Fixed, "{report:#?}\nlogs:\n{}", d.container.logs());
    assert_eq!(report.files, vec!["src/lib.rs"]);
    let tests = report.test_output_tail.clone().unwrap_or_default();
    assert!(tests.contains("tests passed: add"), "{report:#?}");
    // The test command did not run as root.
    let uid: u32 = tests
        .split("(uid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the check printed its uid: {tests}"));
    assert_ne!(uid, 0, "the test command ran as root");

    // The branch is in the remote, at the reported commit, pushed with the token over HTTP.
    let head = report.head_sha.clone().expect("head sha");
    assert_eq!(git(&d.remote, &["rev-parse", "refs/heads/bugbot/fix-image-1"]), head);
    assert!(git(&d.remote, &["show", "bugbot/fix-image-1:src/lib.rs"]).contains("a + b"));
    let requests = d.git.requests();
    assert!(requests.iter().any(|r| r.is_push() && r.method == "POST" && r.authorized), "{requests:#?}");
    assert!(
        requests.iter().all(|r| r.password.is_none() || r.password.as_deref() == Some(d.git_token.as_str())),
        "only the push token was offered: {requests:#?}"
    );

    // The real CLI in the image drove the fake model with the configured key.
    let turns = d.model.agent_requests();
    assert_eq!(turns.len(), 3, "{turns:#?}");
    assert!(turns.iter().all(|r| r.header("x-api-key") == Some(d.api_key.as_str())));
    assert!(d.container.logs().lines().all(|l| !l.contains(&d.git_token) && !l.contains(&d.api_key)));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_through_tini_ends_a_running_job_with_an_interrupted_report() {
    // The model never answers: the agent stays in its first turn until the container is stopped.
    let Some(mut d) = Deployment::start(vec![], WhenExhausted::Repeat(Turn::Hang)).await else { return };
    d.healthy().await;
    d.submit(&d.job("fix-image-term")).await;

    // Once the model has the agent's first request, the CLI is running: it must not be root.
    wait::until(WAIT, "the agent's first model request", || (!d.model.agent_requests().is_empty()).then_some(()))
        .await
        .unwrap_or_else(|e| panic!("{e}; logs:\n{}", d.container.logs()));
    let running = d.processes_outside_root();
    let cli: Vec<&Process> = running.iter().filter(|p| p.command.contains("claude")).collect();
    assert!(!cli.is_empty(), "the Claude Code CLI is running: {running:#?}");
    assert!(cli.iter().all(|p| p.uid != 0), "{cli:#?}");

    // `docker stop` sends SIGTERM to PID 1 (tini), which forwards it to the executor.
    d.container.signal("TERM").expect("docker kill --signal TERM");
    let report = d.report().await;
    assert_eq!(report.outcome, FixOutcome::Failed { reason: "interrupted".into() }, "{report:#?}");
    assert_eq!(git(&d.remote, &["for-each-ref", "--format=%(refname:short)", "refs/heads"]), "main");

    let code =
        wait::until(WAIT, "the container to exit after SIGTERM", || d.container.exit_code().expect("docker inspect"))
            .await
            .unwrap_or_else(|e| panic!("{e}; logs:\n{}", d.container.logs()));
    assert_eq!(code, 0, "the executor exits cleanly after reporting; logs:\n{}", d.container.logs());
}

/// The repository's test script attacks the executor from inside the image, as issue 14's attacker did
/// natively: it reads every process's environment (the executor's and tini's included), stages a
/// workflow after the diff check, and leaves a `setsid` process behind. Inside the image the sandbox
/// holds the same way: no secret reaches the test's output, nothing but the checked change is pushed,
/// and no process of the job outlives it.
const ATTACK: &str = r#"
found=""
for f in /proc/[0-9]*/environ; do
  if tr '\0' '\n' < "$f" 2>/dev/null | grep -qE '^(EXECUTOR_SECRET|GIT_TOKEN|ANTHROPIC_API_KEY)='; then found="$found $f"; fi
done
echo "secrets readable from:${found:- nowhere}"
cat /proc/1/environ 2>/dev/null | tr '\0' '\n' | base64 -w0; echo
mkdir -p .github/workflows && echo 'on: push' > .github/workflows/pwn.yml
git add .github/workflows/pwn.yml 2>&1 | head -1
setsid sh -c 'exec sleep 600' > /dev/null 2>&1 &
echo "tests passed: add"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_holds_inside_the_image_against_a_hostile_test_script() {
    let turns = vec![
        Turn::read("src/lib.rs"),
        Turn::edit("src/lib.rs", "a - b", "a + b"),
        Turn::text("Changed `a - b` to `a + b`."),
    ];
    let Some(mut d) = Deployment::start_with_check(ATTACK, turns, WhenExhausted::Text("Done.".into())).await else {
        return;
    };
    d.healthy().await;
    d.submit(&d.job("fix-image-attack")).await;
    let report = d.report().await;
    let logs = d.container.logs();

    assert_eq!(report.outcome, FixOutcome::Fixed, "{report:#?}\nlogs:\n{logs}");
    let tests = report.test_output_tail.clone().unwrap_or_default();
    assert!(tests.contains("secrets readable from: nowhere"), "{tests}");
    let text = serde_json::to_string(&report).expect("report JSON");
    // Whatever the script printed base64-encoded (to get past redaction) holds no secret either.
    let decoded: Vec<String> = tests
        .split_whitespace()
        .filter_map(|word| base64::engine::general_purpose::STANDARD.decode(word).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect();
    for secret in [&d.secret, &d.git_token, &d.api_key] {
        assert!(!text.contains(secret.as_str()), "a secret reached the report: {text}");
        assert!(decoded.iter().all(|t| !t.contains(secret.as_str())), "a secret reached the report encoded: {text}");
    }

    // Only the checked change is on the branch: the workflow staged by the tests is not.
    let branch = "refs/heads/bugbot/fix-image-attack";
    let files = git(&d.remote, &["ls-tree", "-r", "--name-only", branch]);
    assert!(!files.contains(".github"), "{files}");
    assert_eq!(report.files, vec!["src/lib.rs"]);

    // The report is sent after the job's processes are swept: the setsid sleep is gone.
    let left: Vec<Process> =
        d.processes_outside_root().into_iter().filter(|p| p.command.contains("sleep 600")).collect();
    assert!(left.is_empty(), "a process of the job outlived it: {left:#?}");
}
