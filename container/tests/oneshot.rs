//! The binary's one-shot mode (`bugbot-executor run --job job.json`, what a GitHub Actions runner calls),
//! with a stand-in agent script as `CLAUDE_BIN` and a local bare repository as the remote: the report is
//! printed, the branch pushed, and SIGTERM stops the agent with `failed: interrupted`.
//! (The real CLI against a fake model API is exercised in `tests/tests/executor.rs`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bugbot_executor::process::group_members;
use bugbot_shared::executor::SignedJob;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

// The end-to-end crate's waiting helper, included by path: `bugbot-e2e` depends on this crate, and a
// dev-dependency crate would have to be copied into the executor's image build too.
// (Its own unit tests run here too; they take milliseconds.)
#[path = "../../tests/src/wait.rs"]
mod wait;

const SECRET: &str = "oneshot-test-executor-secret-0123";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Setup {
    dir: tempfile::TempDir,
    remote: PathBuf,
}

fn setup(agent_script: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    // The agent runs as the job's sandbox uid: it must reach its script, and may write to `shared/`.
    let mode = |path: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    mode(dir.path(), 0o755);
    std::fs::create_dir(dir.path().join("shared")).expect("mkdir");
    mode(&dir.path().join("shared"), 0o777);
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(seed.join("src")).expect("mkdir");
    std::fs::write(seed.join("src/lib.rs"), "pub fn add(a: i32, b: i32) -> i32 { a - b }\n").expect("write");
    git(&seed, &["init", "-q"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "initial"]);
    let remote = dir.path().join("remote.git");
    git(dir.path(), &["clone", "-q", "--bare", &seed.display().to_string(), &remote.display().to_string()]);

    let agent = dir.path().join("agent.sh");
    std::fs::write(&agent, format!("#!/bin/sh\ncat > /dev/null\n{agent_script}\n")).expect("write agent");
    Command::new("chmod").arg("+x").arg(&agent).status().expect("chmod");

    let job = json!({
        "job_id": "oneshot-1",
        "clone_url": format!("file://{}", remote.display()),
        "base_ref": "main",
        "branch": "bugbot/oneshot-1",
        "prompt": {"issue_key": "GH-7", "title": "add subtracts"},
        "allowed_paths": ["src/**"],
        "test_command": "grep -q 'a + b' src/lib.rs && echo ok",
    });
    // Signed as the consumer signs a job it dispatches.
    let job = serde_json::from_value(job).expect("a valid job");
    let signed = SignedJob::seal(SECRET.as_bytes(), bugbot_executor::unix_now(), &job);
    std::fs::write(dir.path().join("job.json"), serde_json::to_string(&signed).expect("json")).expect("write job");
    Setup { dir, remote }
}

fn executor(setup: &Setup) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bugbot-executor"));
    cmd.arg("run")
        .arg("--job")
        .arg(setup.dir.path().join("job.json"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .env("CLAUDE_BIN", setup.dir.path().join("agent.sh"))
        .env("WORK_ROOT", setup.dir.path().join("work"))
        .env("ALLOW_INSECURE_REMOTES", "1")
        .env("EXECUTOR_SECRET", SECRET)
        .env("SANDBOX_UID_BASE", "41800")
        .env("SANDBOX_UIDS", "4")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn run_prints_the_report_and_pushes_the_branch() {
    let setup = setup(
        r#"echo 'pub fn add(a: i32, b: i32) -> i32 { a + b }' > src/lib.rs
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":2,"total_cost_usd":0.01,"result":"Fixed add."}'"#,
    );
    let out = executor(&setup).output().expect("executor runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    assert_eq!(report["outcome"], "fixed", "{report}");
    assert_eq!(report["summary"], "Fixed add.");
    assert_eq!(report["test_output_tail"], "ok\n");
    assert_eq!(git(&setup.remote, &["rev-parse", "bugbot/oneshot-1"]), report["head_sha"].as_str().unwrap_or_default());
    // Logs are JSON lines on stderr.
    assert!(stderr.lines().any(|l| l.starts_with('{') && l.contains("run finished")), "{stderr}");
}

#[test]
fn sigterm_stops_the_agent_and_reports_interrupted() {
    let setup = setup("echo $$ > \"$(cd ../.. && cd .. && pwd)/shared/agent.pid\"\nexec sleep 300");
    let child = executor(&setup).spawn().expect("executor starts");
    let pid_file = setup.dir.path().join("shared/agent.pid");
    // The file exists as soon as the shell opens it, before the pid is written: wait for a whole line.
    let agent_pid: u32 = wait::until_blocking(Duration::from_mins(2), "the agent's pid file", || {
        let text = std::fs::read_to_string(&pid_file).ok()?;
        text.ends_with('\n').then(|| text.trim().parse().ok()).flatten()
    })
    .unwrap_or_else(|timed_out| panic!("the agent never started: {timed_out}"));

    kill(Pid::from_raw(i32::try_from(child.id()).expect("pid")), Signal::SIGTERM).expect("SIGTERM");
    let out = child.wait_with_output().expect("executor exits");
    assert_eq!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["reason"], "interrupted");
    assert!(group_members(agent_pid).is_empty(), "the agent's group survived");
    assert!(!setup.dir.path().join("work/job-oneshot-1").exists(), "the work dir was cleaned up");
    assert_eq!(git(&setup.remote, &["for-each-ref", "--format=%(refname:short)", "refs/heads"]), "main");
}
