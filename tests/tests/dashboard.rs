//! Issue 7: the status dashboard in a real browser. A local instance is seeded through the real
//! Workers (alerts filed in the fakes, a repeat, and a job dead-lettered by a tracker that keeps
//! failing), then Debian's headless Chromium loads `/admin/dashboard?token=…`: the test checks the
//! rendered DOM and saves a screenshot to `test-artifacts/dashboard.png`.
//!
//! Chromium is required: without it this test fails (scripts/setup installs Debian's `chromium`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bugbot_e2e::fake::Failure;
use bugbot_e2e::stack::{Stack, StackOptions};
use bugbot_e2e::wait::{self, PATIENCE};
use bugbot_e2e::workers::{another_occurrence, fixture, workspace_root};
use serde_json::{Value, json};

/// A bound on failure, not an expectation: see `bugbot_e2e::wait`.
const SETTLE: Duration = PATIENCE;

/// `$CHROMIUM`, else `chromium` (Debian) or `google-chrome` (GitHub's runners) on the PATH — or a loud failure.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .flat_map(|dir| ["chromium", "google-chrome"].map(|name| dir.join(name)))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "Chromium is required for the dashboard test and was not found: run scripts/setup \
             (apt-get install -y chromium) or set CHROMIUM=/path/to/chromium"
        )
    })
}

/// Runs headless Chromium with the flags this machine's closed network needs; returns stdout.
fn run_chromium(args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    // Read while it runs: a page larger than a pipe's buffer would otherwise block it.
    let stdout = drain(child.stdout.take().expect("piped"));
    let stderr = drain(child.stderr.take().expect("piped"));
    let status = match wait::until_blocking(PATIENCE, "chromium to finish", || child.try_wait().unwrap()) {
        Ok(status) => status,
        Err(timed_out) => {
            let _ = child.kill();
            panic!("{timed_out}");
        }
    };
    let output = Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Reads a pipe to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn glitchtip_issues() -> Vec<u8> {
    let mut payload: Value =
        serde_json::from_slice(&fixture("glitchtip/current_format_general_webhook_issue.json")).unwrap();
    let template = payload["attachments"][0].clone();
    payload["text"] = json!("GlitchTip Alert (2 issues)");
    let titles = ["ValueError: dashboard case", "<script>alert('xss')</script> TypeError: injected"];
    payload["attachments"] = json!(
        titles
            .iter()
            .enumerate()
            .map(|(i, title)| {
                let mut a = template.clone();
                a["title"] = json!(title);
                a["title_link"] = json!(format!("https://app.glitchtip.com/burke-software/issues/{}", 8000 + i));
                a
            })
            .collect::<Vec<_>>()
    );
    serde_json::to_vec(&payload).unwrap()
}

/// Filed issues, a repeat, and one dead letter.
async fn seed(stack: &Stack) -> String {
    let alert = fixture("sentry/sentry_docs_payloads/event_alert_triggered.json");
    for (n, id) in [(1, "dash-1"), (2, "dash-2")] {
        let jobs = stack.sentry("event_alert", id, &another_occurrence(&alert, n)).await.unwrap();
        assert_eq!(stack.settled(&jobs[0], SETTLE).await.unwrap()["state"], "filed");
    }
    for job in stack.glitchtip(&glitchtip_issues()).await.unwrap() {
        assert_eq!(stack.settled(&job, SETTLE).await.unwrap()["state"], "filed");
    }
    stack.linear.fail_always(Failure::ServerError);
    let created = fixture("sentry/integration_platform_example_mocks/issue_created.json");
    let doomed = stack.sentry("issue", "dash-doomed", &created).await.unwrap().remove(0);
    stack
        .job(&doomed, PATIENCE, |s| s["reason"].as_str().is_some_and(|r| r.starts_with("dead-lettered")))
        .await
        .unwrap();
    doomed
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_renders_the_seeded_state_in_headless_chromium() {
    let browser = chromium(); // fail before the slow part if it is missing
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let doomed = seed(&stack).await;
    let base = format!("{}/admin/dashboard", stack.workers.url);
    let token = &stack.keys.admin_token;

    // Auth: the bearer header or ?token= on this page only; nothing else.
    let client = reqwest::Client::new();
    assert_eq!(client.get(&base).send().await.unwrap().status(), 401);
    assert_eq!(client.get(format!("{base}?token=wrong")).send().await.unwrap().status(), 401);
    let elsewhere = client.get(format!("{}/admin/dead-letters?token={token}", stack.workers.url)).send().await;
    assert_eq!(elsewhere.unwrap().status(), 401, "?token= is for the dashboard page only");
    let started = Instant::now();
    let resp = client.get(&base).bearer_auth(token).send().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(resp.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let html = resp.text().await.unwrap();
    println!("dashboard: {} bytes, served in {elapsed:?}", html.len());

    // The real browser: DOM after parsing.
    let url = format!("{base}?token={token}");
    let dom = run_chromium(&["--dump-dom".into(), url.clone()]);
    for expected in [
        "<h1>bugbot status</h1>",
        "Errors per day",
        "ValueError: dashboard case",
        "&lt;script&gt;alert('xss')&lt;/script&gt; TypeError: injected",
        "Dead-letter queue",
        "dead-lettered",
        "Fix runs",
        "<td>Linear</td><td class=\"ok\">configured</td>",
        "<td>PostHog</td>",
        "<td>Fix executor</td>",
    ] {
        assert!(dom.contains(expected), "missing {expected:?} in the rendered page:\n{dom}");
    }
    assert!(!dom.contains("<script"), "the injected title stays text");
    assert!(dom.contains(&doomed[..20.min(doomed.len())]), "the dead letter is listed");
    // Recent events: the jobs' status records, read from the ledger (issue 18: not KV).
    let events = dom.split("id=\"events\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(!events.contains("No jobs recorded yet"), "{events}");
    assert!(events.contains(&doomed[..20.min(doomed.len())]), "the dead-lettered job is listed: {events}");
    assert!(events.matches("<td class=\"ok\">filed</td>").count() >= 4, "the filed jobs are listed: {events}");
    // Tracked issues: the ledger's list (issue 18: not KV), with the repeat counted and both trackers linked.
    let issues = dom.split("id=\"issues\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert_eq!(issues.matches("<tr><td>").count(), 3, "one Sentry error and two GlitchTip issues: {issues}");
    let sentry = issues.split("<tr>").find(|row| row.contains("sentry:")).expect("the Sentry error's row");
    assert!(sentry.contains("<td class=\"num\">2</td>"), "seen twice: {sentry}");
    assert!(sentry.contains(">Linear<") && sentry.contains(">GitHub<"), "tracked in both: {sentry}");
    let dead = dom.split("id=\"dead-letters\"").nth(1).unwrap();
    assert!(dead.contains("linear"), "with its reason: {dead}");
    // Today's bar: 4 events (one error twice, two GlitchTip issues), 3 of them new issues.
    let today = bugbot_shared::digest::day_of(
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap(),
    );
    assert!(dom.contains(&format!("{today}: 4 events, 3 new, 0 regressed")), "chart bar for today");

    // The screenshot, kept as a test artifact.
    let dir = workspace_root().join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let started = Instant::now();
    run_chromium(&[format!("--screenshot={}", shot.display()), "--window-size=1280,2000".into(), url]);
    println!("screenshot: {} in {:?} ({})", shot.display(), started.elapsed(), browser.display());
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000, "a real PNG ({} bytes)", png.len());
    assert!(Path::new(&shot).exists());
}
