//! The real Claude Code CLI (from `node_modules`) under the executor's sandbox, against the fake model
//! API: it runs as the job's own uid with no supplementary groups and `no_new_privs`, cannot read the
//! executor's environment, makes a real fix that is pushed, and leaves no process behind. (The attacks
//! with a stand-in CLI are in `container/tests/sandbox.rs`.) Needs root, as CI has; skipped otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use bugbot_e2e::anthropic::{FakeAnthropic, Turn};
use bugbot_e2e::local_executor::{BUGGY, CHECK, claude_bin, git};
use bugbot_executor::agent::ClaudeCode;
use bugbot_executor::config::Config;
use bugbot_executor::launcher::live_processes;
use bugbot_executor::process::Interrupt;
use bugbot_executor::runner::Runner;
use bugbot_shared::executor::{FixJob, FixJobId, FixLimits, FixOutcome, FixPrompt};

const UID_BASE: u32 = 42_000;

#[tokio::test]
async fn the_real_cli_fixes_the_bug_as_an_unprivileged_uid_and_leaves_nothing_running() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the sandbox needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(seed.join("src")).expect("mkdir");
    std::fs::write(seed.join("src/lib.rs"), BUGGY).expect("write");
    std::fs::write(seed.join("check.sh"), CHECK).expect("write");
    git(&seed, &["init", "-q"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "initial"]);
    let remote = dir.path().join("remote.git");
    git(dir.path(), &["clone", "-q", "--bare", &seed.display().to_string(), &remote.display().to_string()]);

    // A wrapper records who the CLI runs as and what it can see, into a directory anyone may write.
    let record = dir.path().join("record");
    std::fs::create_dir(&record).expect("mkdir");
    chmod(&record, 0o777);
    let wrapper = dir.path().join("claude-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{{ id -u; id -G; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; \
             cat /proc/1/environ /proc/$PPID/environ >/dev/null 2>&1 && echo environ-readable; }} > '{out}'\n\
             exec '{claude}' \"$@\"\n",
            out = record.join("who.txt").display(),
            claude = claude_bin().display(),
        ),
    )
    .expect("write wrapper");
    chmod(&wrapper, 0o755);

    let fake = FakeAnthropic::start(vec![
        Turn::read("src/lib.rs"),
        Turn::edit("src/lib.rs", "a - b", "a + b"),
        Turn::text("Root cause: add() subtracted."),
    ])
    .await;
    let vars: HashMap<&str, String> = HashMap::from([
        ("ANTHROPIC_API_KEY", format!("sk-ant-api03-{}", "sandboxE2E".repeat(5))),
        ("ANTHROPIC_BASE_URL", fake.base_url()),
        ("CLAUDE_BIN", wrapper.display().to_string()),
        ("GIT_TOKEN", format!("ghp_{}", "e2eToken".repeat(5)[..36].to_owned())),
        ("EXECUTOR_SECRET", "sandbox-e2e-executor-secret-0123456789".into()),
        ("WORK_ROOT", dir.path().join("work").display().to_string()),
        ("ALLOW_INSECURE_REMOTES", "1".into()),
        ("SANDBOX_UID_BASE", UID_BASE.to_string()),
        ("SANDBOX_UIDS", "1".into()),
    ]);
    let config = Arc::new(Config::from_lookup(|k| vars.get(k).cloned()).expect("config"));
    let runner = Runner::new(config.clone(), Arc::new(ClaudeCode::new(&config)));
    let job = FixJob {
        version: 1,
        job_id: FixJobId::new("sandboxed-1").expect("id"),
        clone_url: format!("file://{}", remote.display()),
        base_ref: "main".into(),
        branch: "bugbot/sandboxed-1".into(),
        prompt: FixPrompt {
            issue_key: "ENG-1".into(),
            title: "add() returns the difference".into(),
            ..FixPrompt::default()
        },
        allowed_paths: vec!["src/**".into()],
        allow_protected: vec![],
        test_command: Some("sh check.sh".into()),
        limits: FixLimits { timeout_secs: 120, ..FixLimits::default() },
        callback_url: None,
        repro: bugbot_shared::executor::ReproPolicy::default(),
    };

    let report = runner.run(&job, &Interrupt::new()).await.report;
    // Swept before the report: nothing of the job's uid is alive now.
    assert_eq!(live_processes(UID_BASE), Vec::<u32>::new());
    assert_eq!(report.outcome, FixOutcome::Fixed, "{report:#?}");
    assert!(report.sandboxed);
    assert!(report.test_output_tail.as_deref().unwrap_or_default().contains("tests passed: add"), "{report:#?}");
    assert!(git(&remote, &["show", "bugbot/sandboxed-1:src/lib.rs"]).contains("a + b"));

    let who = std::fs::read_to_string(record.join("who.txt")).expect("the wrapper ran");
    let lines: Vec<&str> = who.lines().collect();
    assert_eq!(lines[0], UID_BASE.to_string(), "{who}");
    assert_eq!(lines[1], UID_BASE.to_string(), "only its own group: {who}");
    assert!(who.contains("NoNewPrivs:\t1"), "{who}");
    assert!(who.contains("CapEff:\t0000000000000000"), "{who}");
    assert!(!who.contains("environ-readable"), "{who}");
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
