//! `make bench`: drives the real Workers in workerd (Miniflare, straight to workerd's port — no
//! wrangler dev proxy) at a fixed request rate and concurrency, and prints throughput, latency
//! percentiles and the CPU time workerd spends per request (from /proc, so the figure covers the
//! whole runtime: HTTP parsing, the wasm, the queue send).

#![expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "statistics over a few thousand samples"
)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bugbot_e2e::keys::TestKeys;
use bugbot_e2e::wait;
use bugbot_e2e::workers::{WorkerVars, Workers, fixture};
use clap::Parser;
use serde_json::json;
use tokio::sync::Semaphore;

#[derive(Parser)]
#[command(about = "bugbot gateway benchmark")]
struct Args {
    /// Requests per second (the local queue simulator fails above ~1,000 messages/s).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Requests per scenario.
    #[arg(long, default_value_t = 3000)]
    requests: usize,
    /// Distinct alerts for the alert-to-issue scenarios (0 skips them).
    #[arg(long, default_value_t = 100)]
    alerts: usize,
    /// Skip the gateway scenarios (the floor comparison and the gateway alone).
    #[arg(long)]
    alerts_only: bool,
    /// Skip the gateway-alone scenarios after the floor comparison.
    #[arg(long)]
    no_gateway_alone: bool,
    /// Rounds of the evidence scenario (issue 16: enrichment and the context packet; 0 skips it).
    #[arg(long, default_value_t = 30)]
    evidence: usize,
    /// Fix runs for the fix-command → pull-request scenario (0 skips it).
    #[arg(long, default_value_t = 5)]
    fixes: usize,
    /// Passes of the gateway floor comparison with bench/reference's JavaScript Worker (0 skips it).
    #[arg(long, default_value_t = 3)]
    floor_passes: usize,
    /// Only the gateway floor comparison: no evidence, drain, fix, alert or gateway-alone scenarios.
    #[arg(long)]
    floor_only: bool,
    /// Another build of the gateway to add to the floor comparison, as `LABEL=DIR` (DIR holds
    /// `wrangler.toml` and `gateway/build/`, e.g. a copy made before a change). Repeatable.
    #[arg(long, value_parser = parse_variant)]
    floor_variant: Vec<(String, std::path::PathBuf)>,
    /// Distinct alerts drained through the consumer for the cost comparison (0 skips it).
    #[arg(long, default_value_t = 1000)]
    drain: usize,
    /// Distinct alerts drained first, through the same isolate, and measured apart (the isolate's
    /// start: compiling, the first objects and connections), before the `--drain` ones.
    #[arg(long, default_value_t = 200)]
    drain_warmup: usize,
    /// A checkout of the baseline commit with its Workers built (scripts/bench-baseline makes it).
    #[arg(long)]
    baseline_root: Option<std::path::PathBuf>,
    /// How to call the baseline in the table (its commit).
    #[arg(long, default_value = "baseline")]
    baseline_label: String,
}

fn parse_variant(s: &str) -> Result<(String, std::path::PathBuf), String> {
    let (label, dir) = s.split_once('=').ok_or("expected LABEL=DIR")?;
    Ok((label.to_owned(), dir.into()))
}

struct Prepared {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    expect: u16,
}

fn discord_command(keys: &TestKeys, i: usize, valid: bool) -> Prepared {
    let body = serde_json::to_vec(&json!({
        "id": (1_200_000_000_000_000_000u64 + i as u64).to_string(), "application_id": "1", "type": 2,
        "token": format!("tok{i}"), "guild_id": "5", "channel_id": "6",
        "member": {"user": {"id": "7", "username": "bench"}, "roles": ["8"]},
        "data": {"name": "bugbot", "type": 1, "options": [{"name": "contextualize", "type": 1,
            "options": [{"name": "issue", "type": 3, "value": format!("ENG-{i}")}]}]}
    }))
    .expect("json");
    let mut headers: Vec<(String, String)> =
        keys.sign_discord(&body).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if !valid {
        headers[0].1 = "00".repeat(64);
    }
    Prepared { path: "/discord/interactions".into(), headers, body, expect: if valid { 200 } else { 401 } }
}

fn discord_ping(keys: &TestKeys, i: usize) -> Prepared {
    let body = serde_json::to_vec(&json!({"id": (1_300_000_000_000_000_000u64 + i as u64).to_string(),
        "application_id": "1", "type": 1, "token": "t", "version": 1}))
    .expect("json");
    let headers = keys.sign_discord(&body).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Prepared { path: "/discord/interactions".into(), headers, body, expect: 200 }
}

fn health() -> Prepared {
    Prepared { path: "/health".into(), headers: Vec::new(), body: Vec::new(), expect: 200 }
}

fn sentry_alert(keys: &TestKeys, template: &serde_json::Value, i: usize, valid: bool) -> Prepared {
    let mut payload = template.clone();
    payload["data"]["event"]["event_id"] = json!(format!("{i:032x}"));
    let body = serde_json::to_vec(&payload).expect("json");
    let signature = if valid { keys.sign_sentry(&body) } else { TestKeys::new().sign_sentry(&body) };
    Prepared {
        path: "/webhooks/sentry".into(),
        headers: vec![
            ("sentry-hook-resource".into(), "event_alert".into()),
            ("sentry-hook-signature".into(), signature),
            ("request-id".into(), format!("bench-{i}")),
            ("content-type".into(), "application/json".into()),
        ],
        body,
        expect: if valid { 202 } else { 401 },
    }
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat.rsplit_once(") ")?.1.to_owned();
            let fields: Vec<&str> = rest.split(' ').collect();
            // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the name).
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn run(name: &str, workers: &Workers, requests: Vec<Prepared>, args: &Args) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let pids = workers.workerd_pids();
    anyhow::ensure!(!pids.is_empty(), "no workerd process found");
    let n = requests.len();
    let semaphore = Arc::new(Semaphore::new(args.concurrency));
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let cpu_before = cpu_ticks(&pids);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for req in requests {
        ticker.tick().await;
        let permit = semaphore.clone().acquire_owned().await?;
        let client = client.clone();
        let url = format!("{}{}", workers.url, req.path);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut builder = if req.body.is_empty() { client.get(url) } else { client.post(url).body(req.body) };
            for (k, v) in &req.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let status = builder.send().await.map_or(0, |r| r.status().as_u16());
            drop(permit);
            (t.elapsed(), status == req.expect)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut wrong = 0;
    for task in tasks {
        let (latency, ok) = task.await?;
        latencies.push(latency);
        wrong += usize::from(!ok);
    }
    let elapsed = started.elapsed();
    let cpu = (cpu_ticks(&pids) - cpu_before) as f64 / ticks_per_sec();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{name:<28} {n:>5} req  {:>6.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  workerd CPU {:>5.3} ms/req  unexpected status: {wrong}",
        n as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
        cpu * 1000.0 / n as f64,
    );
    anyhow::ensure!(wrong * 100 <= n, "{name}: {wrong} of {n} answers had an unexpected status");
    Ok(cpu * 1_000_000.0 / n as f64)
}

/// An `event_alert` for a distinct Sentry issue `i` (so each files its own issue).
fn distinct_alert(template: &serde_json::Value, i: usize) -> Vec<u8> {
    let mut payload = template.clone();
    let issue = 7_000_000 + i;
    let event = &mut payload["data"]["event"];
    event["issue_id"] = json!(issue.to_string());
    event["title"] = json!(format!("BenchError {i}: something broke"));
    event["event_id"] = json!(format!("{i:032x}"));
    event["web_url"] = json!(format!("https://sentry.io/organizations/test-org/issues/{issue}/events/{i:032x}/"));
    event["issue_url"] = json!(format!("https://sentry.io/api/0/issues/{issue}/"));
    serde_json::to_vec(&payload).expect("json")
}

/// Alert → issue through the whole local path: gateway, queue, consumer, Durable Object claims,
/// the Linear/GitHub/Discord fakes. Paced (latency) then as a burst (throughput).
async fn alerts(args: &Args, template: &serde_json::Value) -> anyhow::Result<()> {
    use bugbot_e2e::stack::{Stack, StackOptions};
    let mut options = StackOptions::default();
    options.consumer_vars.push(("LOG_LEVEL".into(), "warn".into()));
    let stack = Stack::start(options).await?;
    let n = args.alerts;
    let issue_time = |i: usize| {
        let needle = format!("BenchError {i}:");
        stack
            .github
            .requests()
            .into_iter()
            .find(|r| r.method == "POST" && r.path.ends_with("/issues") && r.text().contains(&needle))
            .map(|r| r.at)
    };
    // Paced: 10 alerts/s, latency from the POST to the GitHub issue (the last tracker filed).
    let mut sent = Vec::with_capacity(n);
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    for i in 0..n {
        ticker.tick().await;
        sent.push(std::time::SystemTime::now());
        stack.sentry("event_alert", &format!("bench-paced-{i}"), &distinct_alert(template, i)).await?;
    }
    // Latencies come from the fakes' arrival times, not from when this wait notices them.
    let _ = wait::until(Duration::from_mins(2), "the paced issues", || (stack.github.issue_count() >= n).then_some(()))
        .await;
    let mut latencies: Vec<Duration> =
        (0..n).filter_map(|i| issue_time(i).and_then(|t| t.duration_since(sent[i]).ok())).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "alert → issue (paced 10/s)   {:>5} alerts  filed {:>5}  p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms  (Linear + GitHub + Discord fakes)",
        n,
        latencies.len(),
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );
    // Burst: all at once; throughput from the first send to the last issue.
    let before = stack.github.issue_count();
    let started = std::time::SystemTime::now();
    let sends = (n..2 * n).map(|i| {
        let stack = &stack;
        let body = distinct_alert(template, i);
        async move { stack.sentry("event_alert", &format!("bench-burst-{i}"), &body).await }
    });
    for r in futures::future::join_all(sends).await {
        r?;
    }
    let _ = wait::until(Duration::from_mins(3), "the burst's issues", || {
        (stack.github.issue_count() >= before + n).then_some(())
    })
    .await;
    let last = (n..2 * n).filter_map(issue_time).max();
    let filed = stack.github.issue_count() - before;
    if let Some(last) = last {
        let secs = last.duration_since(started).unwrap_or_default().as_secs_f64();
        println!(
            "alert → issue (burst of {n})  filed {filed:>5}  in {secs:>6.2} s  = {:>6.1} jobs/s through the consumer",
            filed as f64 / secs
        );
    }
    Ok(())
}

/// "Fix with bugbot" → the draft PR request at GitHub, through the real Workers, the real executor and
/// the real Claude Code CLI. The fake model answers at once, so the figure is bugbot's own overhead
/// (queue, claims, dispatch, clone, CLI start-up, diff check, tests, push, callback, PR) without model time.
async fn fixes(n: usize) -> anyhow::Result<()> {
    use bugbot_e2e::anthropic::Turn;
    use bugbot_e2e::local_executor::{LocalExecutor, free_port};
    use bugbot_e2e::stack::{ALERTS_CHANNEL, APPLICATION_ID, Stack, StackOptions};
    let turns = (0..n)
        .flat_map(|_| {
            [
                Turn::read("src/lib.rs"),
                Turn::edit("src/lib.rs", "a - b", "a + b"),
                Turn::text("Changed `a - b` to `a + b`."),
            ]
        })
        .collect();
    let keys = TestKeys::new();
    let executor = LocalExecutor::start(turns, &keys.executor_secret).await;
    let port = free_port();
    let mut options =
        StackOptions { linear: false, gateway_port: Some(port), keys: Some(keys), ..StackOptions::default() };
    options.consumer_vars.extend(
        [
            ("EXECUTOR_URL", executor.url.clone()),
            ("EXECUTOR_CALLBACK_URL", format!("http://127.0.0.1:{port}/executor/callback")),
            ("FIX_CLONE_URL", executor.clone_url()),
            ("FIX_ALLOWED_PATHS", "src/**".into()),
            ("FIX_TEST_COMMAND", "sh check.sh".into()),
            ("DISCORD_ADMIN_USERS", "1100000000000000010".into()),
            ("LOG_LEVEL", "warn".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let stack = Stack::start(options).await?;
    stack.github.set_backing_repo(&executor.remote);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let id = 1_600_000_000_000_000_000u64 + i as u64;
        let body = serde_json::to_vec(&json!({
            "id": id.to_string(), "application_id": APPLICATION_ID.to_string(), "type": 2, "token": format!("bench-{i}"),
            "channel_id": ALERTS_CHANNEL, "member": {"user": {"id": "1100000000000000010", "username": "bench"}, "roles": []},
            "data": {"name": "Fix with bugbot", "type": 3, "target_id": "1",
                "resolved": {"messages": {"1": {"id": "1", "content": format!("add() is broken ({i})"), "author": {"id": "2", "username": "u"}}}}}
        }))?;
        let started = std::time::SystemTime::now();
        let mut req =
            reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
        for (k, v) in stack.keys.sign_discord(&body) {
            req = req.header(k, v);
        }
        req.send().await?;
        let pr_request = wait::until(Duration::from_mins(2), "the pull request", || {
            let found =
                stack.github.requests().into_iter().find(|r| {
                    r.method == "POST" && r.path.ends_with("/pulls") && r.at >= started && r.failure.is_none()
                });
            found.map(|r| r.at)
        })
        .await
        .ok();
        if let Some(at) = pr_request {
            times.push(at.duration_since(started).unwrap_or_default());
        }
        // The next run starts from a clean slate: a new issue (#n), a new branch.
    }
    times.sort();
    if times.is_empty() {
        println!("fix command → PR request: no PR was requested; what the Workers logged at warn and above:");
        for line in stack.workers.logs() {
            println!("  {line}");
        }
        return Ok(());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "fix command → PR request    {:>5} runs  p50 {:>7.0} ms  max {:>7.0} ms  (real executor + Claude Code CLI, model time ≈ 0: fake API)",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Builds a scenario's requests, numbered from a base.
type Scenario<'a> = dyn Fn(usize) -> Vec<Prepared> + 'a;

/// The gateway floor: bugbot's gateway against bench/reference's plain JavaScript Worker (the
/// same job: discord-interactions' `verifyKey`, a `WebCrypto` HMAC, one queue send, /health), each alone
/// in its own workerd, measured in alternating passes; the medians decide. Builds given with
/// `--floor-variant` join the same passes.
async fn floor(args: &Args, keys: &TestKeys, vars: &WorkerVars, template: &serde_json::Value) -> anyhow::Result<()> {
    let mut sides: Vec<(String, Workers)> = vec![
        (
            "reference".into(),
            Workers::start_with(vars, &json!({"gatewayOnly": true, "reference": true}))
                .context("starting the reference gateway")?,
        ),
        (
            "bugbot".into(),
            Workers::start_with(vars, &json!({"gatewayOnly": true})).context("starting bugbot's gateway")?,
        ),
    ];
    for (label, dir) in &args.floor_variant {
        let w = Workers::start_with(vars, &json!({"gatewayOnly": true, "root": dir.display().to_string()}))
            .with_context(|| format!("starting the gateway variant {label}"))?;
        sides.push((label.clone(), w));
    }
    let n = args.requests;
    let scenarios: [(&str, &Scenario); 3] = [
        ("/health", &|_| (0..n).map(|_| health()).collect()),
        ("discord command (signed)", &|base| (0..n).map(|i| discord_command(keys, base + i, true)).collect()),
        ("sentry alert (signed)", &|base| (0..n).map(|i| sentry_alert(keys, template, base + i, true)).collect()),
    ];
    for (name, w) in &sides {
        println!("-- warm-up: {name} (workerd pids {:?})", w.workerd_pids());
        run("warm-up", w, (0..300).map(|i| discord_command(keys, 900_000 + i, true)).collect(), args).await?;
        run("warm-up", w, (0..100).map(|_| health()).collect(), args).await?;
    }
    // [scenario][side] → CPU µs/request of each pass.
    let mut cpu = vec![vec![Vec::new(); sides.len()]; scenarios.len()];
    for pass in 0..args.floor_passes {
        // Rotate which goes first, so no side always runs on a machine another just warmed.
        for k in 0..sides.len() {
            let which = (pass + k) % sides.len();
            let (label, w) = &sides[which];
            for (s, (name, make)) in scenarios.iter().enumerate() {
                let base = 1_000_000 * (1 + pass) + 100_000 * which;
                let us = run(&format!("pass {} {label:<9} {name}", pass + 1), w, make(base), args).await?;
                cpu[s][which].push(us);
            }
        }
    }
    println!();
    println!(
        "gateway floor: workerd CPU µs/request, {} passes at {} req/s (median decides); load average {}",
        args.floor_passes,
        args.rate,
        load_average()
    );
    let show = |v: &[f64]| {
        format!("{} | {:>4.0}", v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(" "), median(v))
    };
    let mut header = format!("{:<26} {:>28}", "", "reference (JS): passes | median");
    for (label, _) in &sides[1..] {
        let _ = write!(header, " {:>28} {:>10}", format!("{label}: passes | median"), format!("{label}−ref"));
    }
    println!("{header}");
    for (s, (name, _)) in scenarios.iter().enumerate() {
        let r = &cpu[s][0];
        let mut line = format!("{name:<26} {:>28}", show(r));
        for b in &cpu[s][1..] {
            let _ = write!(line, " {:>28} {:>+10.0}", show(b), median(b) - median(r));
        }
        println!("{line}");
    }
    println!();
    Ok(())
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), to judge how quiet the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "unknown".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// What draining `n` distinct alerts cost one build of the Workers.
struct Drain {
    label: String,
    alerts: usize,
    filed: usize,
    secs: f64,
    workerd_cpu_secs: f64,
    node_cpu_secs: f64,
    /// This process: the fakes (Linear, GitHub, Discord, Sentry) and the load it sends. On the same
    /// cores as workerd, so what they take is printed beside it.
    own_cpu_secs: f64,
    durable_object_calls: u64,
    kv_writes: u64,
}

/// What the harness and the fakes had counted at one moment of a drain.
#[derive(Default)]
struct Counted {
    workerd_ticks: u64,
    node_ticks: u64,
    own_ticks: u64,
    durable_object_calls: u64,
    kv_writes: u64,
    /// Queue messages whose batch handler has finished.
    messages_settled: u64,
    requests: [usize; 4],
}

async fn counted(stack: &bugbot_e2e::stack::Stack) -> anyhow::Result<Counted> {
    let counts: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/__bench/counts", stack.workers.url))
        .header("MF-Route-Override", "bugbot-consumer")
        .send()
        .await?
        .json()
        .await
        .context("the harness's call counts")?;
    Ok(Counted {
        workerd_ticks: cpu_ticks(&stack.workers.workerd_pids()),
        node_ticks: cpu_ticks(&[stack.workers.harness_pid()]),
        own_ticks: cpu_ticks(&[std::process::id()]),
        durable_object_calls: counts["durable_object_calls"].as_u64().unwrap_or_default(),
        kv_writes: counts["kv_writes"].as_u64().unwrap_or_default() + counts["kv_deletes"].as_u64().unwrap_or_default(),
        messages_settled: counts["messages_settled"].as_u64().unwrap_or_default(),
        requests: [
            stack.linear.requests().len(),
            stack.github.requests().len(),
            stack.discord.requests().len(),
            stack.sentry.requests().len(),
        ],
    })
}

/// Drives `n` distinct alerts through the gateway, the queue and the consumer into the fakes, and
/// counts what it took: the time until the last issue was filed, the CPU of workerd and of the
/// harness (Node, which receives every log line), and the consumer's Durable Object calls and KV
/// writes as the harness counted them (`countCalls`).
///
/// `warmup` distinct alerts go first, measured apart: the first alerts of a fresh isolate pay for
/// its start (V8 compiling the wasm's hot functions with its optimizing tier, the first Durable
/// Object instances, the first connections), which a Worker in production pays once per isolate,
/// not per alert. Both figures are printed.
async fn drain(
    label: &str,
    root: Option<&std::path::Path>,
    warmup: usize,
    n: usize,
    template: &serde_json::Value,
) -> anyhow::Result<Vec<Drain>> {
    use bugbot_e2e::stack::{Stack, StackOptions};
    let mut options = StackOptions::default();
    options.consumer_vars.push(("LOG_LEVEL".into(), "warn".into()));
    let mut harness = json!({"countCalls": true});
    if let Some(root) = root {
        harness["root"] = json!(root.display().to_string());
    }
    options.harness = harness;
    let stack = Stack::start(options).await?;
    let mut drains = Vec::new();
    let mut before = counted(&stack).await?;
    // The warm-up's alerts are numbered apart from the measured ones, however many there are.
    let phases = [(format!("{label} (first {warmup})"), 50_000 + n, warmup), (label.to_owned(), 50_000, n)];
    for (phase, first, count) in phases.into_iter().filter(|(_, _, count)| *count > 0) {
        let bodies: Vec<Vec<u8>> = (first..first + count).map(|i| distinct_alert(template, i)).collect();
        let (drain, after) = drain_phase(&stack, &phase, &bodies, &before).await?;
        before = after;
        drains.push(drain);
    }
    // What went wrong on the way, if anything (LOG_LEVEL=warn: only warnings and errors are printed).
    let mut warnings: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for line in stack.workers.json_logs().into_iter().filter(|l| l["level"] != "info") {
        let what = format!("{} {} {}", line["level"], line["event"], line["reason"].as_str().unwrap_or_default());
        *warnings.entry(what.chars().take(120).collect()).or_default() += 1;
    }
    for (what, n) in &warnings {
        eprintln!("-- {label}: {n} × {what}");
    }
    Ok(drains)
}

/// The counts once the consumer has finished the batches of `n` more messages than `before` (an
/// alert's issue, card, write-back and its batch's ledger call are made within its batch), or
/// after 30 s whatever they are.
async fn settled(stack: &bugbot_e2e::stack::Stack, before: &Counted, n: usize) -> anyhow::Result<Counted> {
    let target = before.messages_settled + n as u64;
    let done = wait::until_async(Duration::from_secs(30), "every batch settled", || async {
        counted(stack).await.ok().filter(|c| c.messages_settled >= target)
    })
    .await;
    match done {
        Ok(counts) => Ok(counts),
        Err(_) => counted(stack).await,
    }
}

/// One phase of [`drain`]: `bodies` sent 32 at a time, then waited for until each is filed and
/// the consumer is done with them ([`settled`]): what it cost, and the counts at its end.
async fn drain_phase(
    stack: &bugbot_e2e::stack::Stack,
    label: &str,
    bodies: &[Vec<u8>],
    before: &Counted,
) -> anyhow::Result<(Drain, Counted)> {
    let n = bodies.len();
    // In production each alert's Sentry issue and the integration's installation exist, so the
    // write-back after filing (the external issue link) succeeds: the fake Sentry API knows them too.
    for body in bodies {
        stack.sentry.add_alert_source(&serde_json::from_slice(body)?).context("the alert's Sentry issue")?;
    }
    let filed_before = stack.github.issue_count();
    let started = std::time::SystemTime::now();
    let semaphore = Arc::new(Semaphore::new(32));
    let sends = bodies.iter().enumerate().map(|(i, body)| {
        let semaphore = semaphore.clone();
        async move {
            let _permit = semaphore.acquire().await?;
            stack.sentry("event_alert", &format!("drain-{label}-{i}"), body).await
        }
    });
    for r in futures::future::join_all(sends).await {
        r?;
    }
    eprintln!(
        "-- {label}: {n} alerts accepted by the gateway in {:.2} s",
        started.elapsed().unwrap_or_default().as_secs_f64()
    );
    let filed_now = || stack.github.issue_count().saturating_sub(filed_before);
    let filed = wait::until(Duration::from_mins(10), "every alert filed", || (filed_now() >= n).then_some(n))
        .await
        .unwrap_or_else(|_| filed_now());
    let last = stack
        .github
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/issues"))
        .map(|r| r.at)
        .max();
    let secs = last.and_then(|l| l.duration_since(started).ok()).unwrap_or_default().as_secs_f64();
    let after = settled(stack, before, n).await?;
    let per = |i: usize| after.requests[i].saturating_sub(before.requests[i]) as f64 / n as f64;
    eprintln!(
        "-- {label}: requests per alert: linear {:.2}, github {:.2}, discord {:.2}, sentry (write-back) {:.2}",
        per(0),
        per(1),
        per(2),
        per(3),
    );
    let drain = Drain {
        label: label.to_owned(),
        alerts: n,
        filed,
        secs,
        workerd_cpu_secs: after.workerd_ticks.saturating_sub(before.workerd_ticks) as f64 / ticks_per_sec(),
        node_cpu_secs: after.node_ticks.saturating_sub(before.node_ticks) as f64 / ticks_per_sec(),
        own_cpu_secs: after.own_ticks.saturating_sub(before.own_ticks) as f64 / ticks_per_sec(),
        durable_object_calls: after.durable_object_calls.saturating_sub(before.durable_object_calls),
        kv_writes: after.kv_writes.saturating_sub(before.kv_writes),
    };
    Ok((drain, after))
}

fn print_drains(drains: &[Drain]) {
    println!();
    println!(
        "alert drain: distinct Sentry alerts → Linear + GitHub + Discord fakes (LOG_LEVEL=warn; DO calls and KV writes counted by the harness)"
    );
    println!(
        "{:<32} {:>7} {:>7} {:>9} {:>13} {:>16} {:>15} {:>16} {:>10} {:>10}",
        "build",
        "alerts",
        "filed",
        "secs",
        "drain /s",
        "workerd CPU ms/al",
        "node CPU ms/al",
        "fakes CPU ms/al",
        "DO/alert",
        "KV w/alert"
    );
    for d in drains {
        let per = |x: f64| x * 1000.0 / d.alerts as f64;
        println!(
            "{:<32} {:>7} {:>7} {:>9.2} {:>13.1} {:>16.2} {:>15.2} {:>16.2} {:>10.2} {:>10.2}",
            d.label,
            d.alerts,
            d.filed,
            d.secs,
            d.filed as f64 / d.secs.max(f64::EPSILON),
            per(d.workerd_cpu_secs),
            per(d.node_cpu_secs),
            per(d.own_cpu_secs),
            d.durable_object_calls as f64 / d.alerts as f64,
            d.kv_writes as f64 / d.alerts as f64,
        );
    }
    println!();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.floor_only {
        (args.evidence, args.drain, args.fixes, args.alerts, args.no_gateway_alone) = (0, 0, 0, 0, true);
        args.floor_passes = args.floor_passes.max(1);
    }
    let keys = TestKeys::new();
    let vars = WorkerVars::with_test_keys(&keys).both("LOG_LEVEL", "warn");
    let template: serde_json::Value =
        serde_json::from_slice(&fixture("sentry/sentry_docs_payloads/event_alert_triggered.json"))?;
    println!(
        "rate {} req/s, concurrency {}, LOG_LEVEL=warn, straight to workerd (Miniflare)",
        args.rate, args.concurrency
    );
    if args.evidence > 0 {
        Box::pin(bugbot_e2e::bench_evidence::run(args.evidence)).await?;
    }
    if args.drain > 0 {
        let mut drains = Vec::new();
        if let Some(root) = &args.baseline_root {
            drains.extend(drain(&args.baseline_label, Some(root), args.drain_warmup, args.drain, &template).await?);
        }
        drains.extend(drain("this checkout", None, args.drain_warmup, args.drain, &template).await?);
        print_drains(&drains);
    }
    if args.floor_passes > 0 && !args.alerts_only {
        floor(&args, &keys, &vars, &template).await?;
    }
    if args.fixes > 0 {
        fixes(args.fixes).await?;
    }
    if args.alerts > 0 {
        alerts(&args, &template).await?;
    }
    if args.alerts_only || args.no_gateway_alone {
        return Ok(());
    }
    // The gateway alone (no consumer in the workerd process), so its CPU figure is the gateway's own;
    // the full path is what the alert and fix scenarios above measure.
    for (label, gateway_only) in [("gateway only", true)] {
        let workers =
            Workers::start_with(&vars, &json!({"gatewayOnly": gateway_only})).context("starting the workers")?;
        println!("-- {label} (workerd pids {:?})", workers.workerd_pids());
        // Warm the isolate so compile time is not counted.
        run("warm-up", &workers, (0..200).map(|i| discord_command(&keys, 900_000 + i, true)).collect(), &args).await?;
        let base = if gateway_only { 0 } else { 1_000_000 };
        let n = args.requests;
        if gateway_only {
            // Floors: the runtime alone (no signature, no queue), then a signature but no queue.
            run("health (floor)", &workers, (0..n).map(|_| health()).collect(), &args).await?;
            run("discord ping (verify only)", &workers, (0..n).map(|i| discord_ping(&keys, i)).collect(), &args)
                .await?;
        }
        run(
            "discord commands (signed)",
            &workers,
            (0..n).map(|i| discord_command(&keys, base + i, true)).collect(),
            &args,
        )
        .await?;
        run(
            "sentry alerts (signed)",
            &workers,
            (0..n).map(|i| sentry_alert(&keys, &template, base + i, true)).collect(),
            &args,
        )
        .await?;
        let mixed = (0..n)
            .map(|i| match i % 10 {
                0 => discord_command(&keys, base + 500_000 + i, false),
                1 => sentry_alert(&keys, &template, base + 500_000 + i, false),
                2..=5 => discord_command(&keys, base + 500_000 + i, true),
                _ => sentry_alert(&keys, &template, base + 500_000 + i, true),
            })
            .collect();
        run("mixed, 20% invalid", &workers, mixed, &args).await?;
    }
    Ok(())
}
