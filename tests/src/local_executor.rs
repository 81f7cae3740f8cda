//! The real fix executor, in process, for end-to-end tests of the fix flow: it runs the real Claude
//! Code CLI against the [`FakeAnthropic`] model API, clones from and pushes to a real bare repository,
//! and posts its signed results to whatever callback URL each job names (the gateway).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bugbot_executor::agent::ClaudeCode;
use bugbot_executor::callback::Callback;
use bugbot_executor::config::Config;
use bugbot_executor::jobs::JobBoard;
use bugbot_executor::runner::Runner;
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::anthropic::{FakeAnthropic, Turn};
use crate::workers::workspace_root;

/// A buggy file of the seeded project, and the check that passes once it is fixed.
pub const BUGGY: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a - b\n}\n";
pub const CHECK: &str =
    "grep -q 'a + b' src/lib.rs && echo 'tests passed: add' || { echo 'tests FAILED: add'; exit 1; }\n";

/// The Claude Code CLI from the pinned npm package (or `BUGBOT_CLAUDE_BIN`), at a path the executor's
/// sandbox user can reach.
pub fn claude_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("BUGBOT_CLAUDE_BIN") {
        return reachable_by_the_sandbox(PathBuf::from(bin));
    }
    let root = workspace_root();
    let candidates = [
        root.join("node_modules/@anthropic-ai/claude-code-linux-x64/claude"),
        root.join("node_modules/@anthropic-ai/claude-code/bin/claude.exe"),
    ];
    let found = candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!("Claude Code CLI not found (run scripts/setup or set BUGBOT_CLAUDE_BIN); looked at {candidates:?}")
    });
    reachable_by_the_sandbox(found)
}

/// `bin`, or when a parent directory keeps other users out (a checkout under `/root`), a link to it (a copy
/// across file systems) in a root-owned directory under the temp dir: the executor runs the CLI as a
/// sandbox uid of its own.
fn reachable_by_the_sandbox(bin: PathBuf) -> PathBuf {
    use std::os::unix::fs::MetadataExt as _;
    if bugbot_executor::sandbox::reachable_by_others(&bin) {
        return bin;
    }
    let meta = std::fs::metadata(&bin).expect("the CLI");
    let dir = std::env::temp_dir().join(format!("bugbot-claude-{}-{}-{}", meta.dev(), meta.ino(), meta.size()));
    bugbot_executor::sandbox::private_dir(&dir).expect("a directory for the CLI");
    let target = dir.join("claude");
    if !target.is_file() {
        let partial = dir.join(format!("claude.{}", std::process::id()));
        if std::fs::hard_link(&bin, &partial).is_err() {
            std::fs::copy(&bin, &partial).expect("copy the CLI");
        }
        std::fs::rename(&partial, &target).expect("place the CLI");
    }
    target
}

/// Runs git with a clean, fixed identity.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The executor plus its model fake and remote.
#[derive(Debug)]
pub struct LocalExecutor {
    pub url: String,
    pub secret: String,
    pub fake: FakeAnthropic,
    /// The bare repository standing for the GitHub repository.
    pub remote: PathBuf,
    config: Arc<Config>,
    stop: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl LocalExecutor {
    /// Seeds a bare repository (`src/lib.rs` with a bug, `check.sh`, CI config) and starts the
    /// executor with `turns` scripted for the model.
    pub async fn start(turns: Vec<Turn>, secret: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(seed.join("src")).expect("mkdir");
        std::fs::create_dir_all(seed.join(".github/workflows")).expect("mkdir");
        std::fs::write(seed.join("src/lib.rs"), BUGGY).expect("write");
        std::fs::write(seed.join("check.sh"), CHECK).expect("write");
        std::fs::write(seed.join(".github/workflows/ci.yml"), "on: push\n").expect("write");
        std::fs::write(seed.join("README.md"), "# calc\n").expect("write");
        git(&seed, &["init", "-q"]);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-qm", "initial"]);
        let remote = dir.path().join("remote.git");
        git(dir.path(), &["clone", "-q", "--bare", &seed.display().to_string(), &remote.display().to_string()]);

        let fake = FakeAnthropic::start(turns).await;
        let vars: HashMap<&str, String> = HashMap::from([
            ("EXECUTOR_SECRET", secret.to_owned()),
            ("ANTHROPIC_API_KEY", format!("sk-ant-api03-{}", "localKEY".repeat(5))),
            ("ANTHROPIC_BASE_URL", fake.base_url()),
            ("CLAUDE_BIN", claude_bin().display().to_string()),
            ("GIT_TOKEN", format!("gh_local_{}", "t0k".repeat(8))),
            ("WORK_ROOT", dir.path().join("work").display().to_string()),
            ("ALLOW_INSECURE_REMOTES", "1".into()),
            ("CALLBACK_BACKOFF_MS", "100".into()),
            ("MAX_CONCURRENT_JOBS", "2".into()),
        ]);
        let config = Arc::new(Config::from_lookup(|k| vars.get(k).cloned()).expect("executor config"));
        let runner = Runner::new(config.clone(), Arc::new(ClaudeCode::new(&config)));
        let one_shot_config = config.clone();
        let board = JobBoard::new(runner, Callback::new(&config), config.max_concurrent_jobs, config.max_queued_jobs);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind executor");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = bugbot_executor::server::serve(listener, board, &config, async move {
                let _ = stopped.await;
            })
            .await;
        });
        Self { url, secret: secret.to_owned(), fake, remote, config: one_shot_config, stop: Some(stop), _dir: dir }
    }

    /// Plays a GitHub Actions runner: the executor's one-shot mode (`bugbot-executor run --job FILE`)
    /// on the text of a job file, with this executor's configuration — the signature and freshness
    /// checks, the run, and the signed report to the job's callback URL.
    pub async fn run_one_shot(
        &self,
        job_file: &str,
    ) -> Result<bugbot_shared::executor::FixReport, bugbot_executor::oneshot::JobFileError> {
        let job = bugbot_executor::oneshot::open(job_file, &self.config, false)?;
        let runner = Runner::new(self.config.clone(), Arc::new(ClaudeCode::new(&self.config)));
        let interrupt = bugbot_executor::process::Interrupt::new();
        Ok(bugbot_executor::oneshot::run_once(&runner, &Callback::new(&self.config), &job, &interrupt).await)
    }

    /// `file://` URL of the remote.
    pub fn clone_url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    /// Branches in the remote.
    pub fn branches(&self) -> Vec<String> {
        git(&self.remote, &["for-each-ref", "--format=%(refname:short)", "refs/heads"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A file's content on a branch of the remote.
    pub fn show(&self, branch: &str, path: &str) -> String {
        git(&self.remote, &["show", &format!("{branch}:{path}")])
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A free loopback port (bound and released), for a gateway whose URL must be known in advance.
pub fn free_port() -> u16 {
    // Below Linux's ephemeral range (32768–60999 by default): a port chosen there can be taken by any
    // outgoing connection or `bind(0)` (the fakes, workerd's own sockets) before it is used.
    for _ in 0..1000 {
        let mut b = [0u8; 2];
        getrandom::fill(&mut b).expect("random");
        let port = 20_000 + u16::from_le_bytes(b) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
