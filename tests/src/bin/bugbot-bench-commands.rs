//! Command → edited Discord reply, end to end through both Workers in workerd against the fakes:
//! a "Contextualize with bugbot" message command on a conversation that links a Sentry issue and
//! names a user, repeated `--runs` times (the first files the issue, the rest reuse it). Prints
//! p50/p95/max of the time from the signed POST to the `@original` edit, and the mean of each
//! source's time as the consumer logged it.
//!
//! `scripts/build-workers && cargo run --release -p bugbot-e2e --bin bugbot-bench-commands`

#![expect(clippy::cast_precision_loss, reason = "statistics over a few dozen samples")]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bugbot_e2e::fake::github::Commit;
use bugbot_e2e::stack::{APPLICATION_ID, Stack, StackOptions};
use bugbot_shared::command::MENU_CONTEXTUALIZE;
use bugbot_shared::source::discord::Snowflake;
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "bugbot command → edited reply benchmark")]
struct Args {
    #[arg(long, default_value_t = 50)]
    runs: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round();
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "an index into the samples")]
    sorted[i as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stack = Stack::start(StackOptions::default()).await?;
    let views = (1..=40).map(|n| format!("line {n}")).collect::<Vec<_>>().join("\n");
    stack.github.put_file("errors/views.py", &views);
    stack.github.put_file("runbooks/zero.md", "---\npatterns: [ZeroDivisionError]\n---\n");
    stack.github.add_commit(Commit {
        sha: "c0ffee1234567890c0ffee1234567890c0ffee12".into(),
        paths: vec!["errors/views.py".into()],
        author: "Sam".into(),
        date: "2024-05-01T10:00:00Z".into(),
        message: "Ratios".into(),
    });
    let person = stack.posthog.add_person("jane@example.com");
    stack.posthog.add_recording(&person, 2, 1);
    let url = stack.sentry.issue_url(&stack.sentry.issue_id("python_zero_division"));
    let channel = Snowflake(1_300_000_000_000_000_001);
    stack.discord.add_message(channel, "ops", "customer jane@example.com cannot pay");
    let report = stack.discord.add_message(channel, "jane", &format!("checkout fails: {url}"));
    let stored = stack.discord.messages(channel).into_iter().find(|m| m.id == report).context("message")?;

    let mut samples = Vec::new();
    let mut sources: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in 0..args.runs {
        let id = (1_300_000_000_000_100_000_u64 + run as u64).to_string();
        let token = format!("bench-{id}");
        let body = serde_json::to_vec(&json!({
            "id": id, "application_id": APPLICATION_ID.to_string(), "type": 2, "token": token,
            "guild_id": "1300000000000000002", "channel_id": channel.to_string(),
            "member": {"user": {"id": "1300000000000000003", "username": "jane"}, "roles": []},
            "data": {"name": MENU_CONTEXTUALIZE, "type": 3, "target_id": report.to_string(),
                     "resolved": {"messages": {report.to_string(): stored.json}}},
        }))?;
        let mut req =
            reqwest::Client::new().post(format!("{}/discord/interactions", stack.workers.url)).body(body.clone());
        for (k, v) in stack.keys.sign_discord(&body) {
            req = req.header(k, v);
        }
        let started = Instant::now();
        let resp = req.send().await?;
        if !resp.status().is_success() {
            bail!("gateway answered {}", resp.status());
        }
        loop {
            if stack.discord.original_edits().iter().any(|e| e.token == token) {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("no edited reply after 30 s\n{}", stack.workers.logs().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(started.elapsed().as_secs_f64() * 1_000.0);
        let status: Value =
            stack.job(&format!("discord:{id}"), Duration::from_secs(30), |s| s["state"] == "filed").await?;
        let reason = status["reason"].as_str().unwrap_or_default();
        for pair in reason.split_whitespace().filter_map(|t| t.split_once('=')) {
            if let Some(ms) = pair.1.strip_suffix("ms").and_then(|v| v.parse::<f64>().ok()) {
                sources.entry(pair.0.to_owned()).or_default().push(ms);
            }
        }
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "command → edited reply over {} runs: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        sorted.len(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.95),
        sorted.last().copied().unwrap_or_default()
    );
    println!("per-source mean (consumer's log line):");
    for (name, values) in &sources {
        println!("  {name:<13} {:>6.1} ms", values.iter().sum::<f64>() / values.len() as f64);
    }
    Ok(())
}
