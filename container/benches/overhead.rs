//! Executor overhead, model time excluded: shallow clone + branch, diff check, commit, push and cleanup
//! of a generated repository of about 2,000 files, with a stand-in CLI (a shell script that edits one
//! file) and a trivial test command, so that both sandboxed steps really start processes.
//!
//! Each round runs the same job twice, once with the sandbox (per-job uid, hand-over of the work tree,
//! launcher, sweeps) and once with `SANDBOX=off`, alternating, and prints both and the difference: what
//! the sandbox costs per run, measured in the same run. Without root only the unsandboxed figures print.
//!
//! `cargo bench -p bugbot-executor --bench overhead` (prints figures; asserts nothing).
//! `BENCH_FILES` (default 2000) and `BENCH_RUNS` (default 10) adjust it; `BENCH_WORK_ROOT` puts the
//! clones somewhere else than the system temp dir (e.g. a tmpfs, to separate disk speed from overhead).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bugbot_executor::agent::ClaudeCode;
use bugbot_executor::config::Config;
use bugbot_executor::process::Interrupt;
use bugbot_executor::runner::{Runner, Timings};
use bugbot_shared::executor::{FixJob, FixJobId, FixLimits, FixOutcome, FixPrompt};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=b", "-c", "user.email=b@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `files` source files in 50 directories, ~1.5 KB each.
fn generate_repository(dir: &Path, files: usize) -> usize {
    let mut bytes = 0;
    for i in 0..files {
        let module = dir.join(format!("src/module_{:02}", i % 50));
        std::fs::create_dir_all(&module).expect("mkdir");
        let mut text = format!("//! Generated file {i}.\n\n");
        for f in 0..30 {
            let _ = writeln!(text, "pub fn function_{f}(x: u64) -> u64 {{ x.wrapping_mul({i}).wrapping_add({f}) }}");
        }
        bytes += text.len();
        std::fs::write(module.join(format!("file_{i:04}.rs")), text).expect("write");
    }
    std::fs::write(dir.join("README.md"), "# generated\n").expect("write");
    bytes
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    let (min, max) = (values[0], values[values.len() - 1]);
    println!("{name:<10} median {median:>8.1} ms   min {min:>8.1} ms   max {max:>8.1} ms");
}

#[tokio::main]
async fn main() {
    let files = env_number("BENCH_FILES", 2000);
    let runs = env_number("BENCH_RUNS", 10).max(1) + 1;
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    std::fs::create_dir_all(&seed).expect("mkdir");
    let t = Instant::now();
    let bytes = generate_repository(&seed, files);
    git(&seed, &["init", "-q"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "generated"]);
    let remote = tmp.path().join("remote.git");
    git(tmp.path(), &["clone", "-q", "--bare", &seed.display().to_string(), &remote.display().to_string()]);
    println!(
        "repository: {files} files, {} MB, generated in {:.1} s; 1 warm-up + {} measured runs",
        bytes / 1_000_000,
        t.elapsed().as_secs_f64(),
        runs - 1
    );

    let work_root = std::env::var_os("BENCH_WORK_ROOT")
        .filter(|root| !root.is_empty())
        .map_or_else(|| tmp.path().join("work"), |root| Path::new(&root).join("bugbot-bench-work"));
    println!("work root: {}", work_root.display());
    // The "CLI": one edit, no model; the result line Claude Code would print.
    let cli = tmp.path().join("cli.sh");
    std::fs::write(
        &cli,
        "#!/bin/sh\ncat > /dev/null\nsed -i 's/wrapping_add(0)/wrapping_add(1)/' src/module_00/file_0000.rs\n\
         echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":1,\"result\":\"bench\"}'\n",
    )
    .expect("write cli");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let root = nix::unistd::geteuid().is_root();
    let modes: &[&str] = if root { &["on", "off"] } else { &["off"] };
    if !root {
        println!("sandbox: not measured (it needs root)");
    }
    let runner = |sandbox: &str| {
        let config = Config::from_lookup(|name| match name {
            "WORK_ROOT" => Some(work_root.display().to_string()),
            "ALLOW_INSECURE_REMOTES" => Some("1".into()),
            "CLAUDE_BIN" => Some(cli.display().to_string()),
            "SANDBOX" => Some(sandbox.into()),
            "SANDBOX_LAUNCHER" => Some(env!("CARGO_BIN_EXE_bugbot-executor").into()),
            _ => None,
        })
        .expect("config");
        let config = Arc::new(config);
        Runner::new(config.clone(), Arc::new(ClaudeCode::new(&config)))
    };
    let runners: Vec<(&str, Runner)> = modes.iter().map(|&mode| (mode, runner(mode))).collect();

    let mut all: Vec<Vec<Timings>> = vec![Vec::new(); runners.len()];
    let mut totals: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    for run in 0..runs {
        for (i, (mode, runner)) in runners.iter().enumerate() {
            let job = FixJob {
                version: 1,
                job_id: FixJobId::new(format!("bench-{mode}-{run}")).expect("id"),
                clone_url: format!("file://{}", remote.display()),
                base_ref: "main".into(),
                branch: format!("bugbot/bench-{mode}-{run}"),
                prompt: FixPrompt { issue_key: "BENCH-1".into(), title: "bench".into(), ..FixPrompt::default() },
                allowed_paths: vec!["src/**".into()],
                allow_protected: vec![],
                test_command: Some("true".into()),
                limits: FixLimits::default(),
                callback_url: None,
                repro: bugbot_shared::executor::ReproPolicy::default(),
            };
            let t = Instant::now();
            let result = runner.run(&job, &Interrupt::new()).await;
            let total = ms(t.elapsed());
            assert_eq!(result.report.outcome, FixOutcome::Fixed, "{:?}", result.report);
            if run == 0 {
                continue; // warm-up (page cache, git's lazy init)
            }
            totals[i].push(total);
            all[i].push(result.timings);
        }
    }

    let mut medians = Vec::new();
    for (i, (mode, _)) in runners.iter().enumerate() {
        println!("-- sandbox {mode}");
        let series = |f: fn(&Timings) -> Duration| all[i].iter().map(|t| ms(f(t))).collect::<Vec<_>>();
        stats("fetch", series(|t| t.fetch));
        stats("checkout", series(|t| t.checkout));
        stats("agent", series(|t| t.agent));
        stats("check", series(|t| t.check));
        stats("test", series(|t| t.test));
        stats("commit", series(|t| t.commit));
        stats("push", series(|t| t.push));
        stats("sandbox", series(|t| t.sandbox));
        stats("cleanup", series(|t| t.cleanup));
        stats("overhead", series(Timings::overhead));
        stats("run total", totals[i].clone());
        medians.push((median(series(Timings::overhead)), median(totals[i].clone())));
    }
    let overhead = medians[0].0;
    println!(
        "executor overhead (clone+branch, diff check, commit, push{}; model excluded): median {overhead:.0} ms — target < 2000 ms: {}",
        if root { ", sandbox" } else { "" },
        if overhead < 2000.0 { "met" } else { "NOT met" }
    );
    if let [(_, on), (_, off)] = medians[..] {
        println!(
            "sandbox cost per run (median run total, on − off, stand-in CLI and `true` as the test): {:.0} ms ({on:.0} vs {off:.0} ms)",
            on - off
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
