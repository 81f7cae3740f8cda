//! # bugbot-executor
//!
//! A native service that turns a fix request into a tested, pushed branch: it clones the repository,
//! runs Claude Code headless under strict limits, checks the diff itself, runs the tests, and pushes.
//!
//! # Layout
//! - [`config`] — settings read once from the environment; secrets never print.
//! - [`server`] — the HTTP API (`POST /v1/jobs`, `GET /v1/jobs/{id}`, `GET /health`), signed requests,
//!   replay refusal; takes a listener and a shutdown future.
//! - [`jobs`] — the job board: idempotency by job id, concurrency limit with a bounded queue, status,
//!   callbacks, interrupt on shutdown.
//! - [`oneshot`] — `run --job job.json`: one job in the foreground (GitHub Actions).
//! - [`runner`] — one run, start to end: clone → agent → checks → tests → commit → push → report.
//! - [`agent`] — the [`Agent`](agent::Agent) trait and Claude Code's headless CLI behind it.
//! - [`prompt`] — the agent's instructions with untrusted material in fenced data blocks.
//! - [`paths`] — the path policy: allowlist, protected paths, Claude Code permission rules.
//! - [`git`] — git with a scrubbed environment and a credential helper; URL and ref validation.
//! - [`process`] — child processes in their own group, with timeouts, interrupts and group kill.
//! - [`sandbox`] — the job's own uid: leases, confined commands, the work tree's owners, the sweep.
//! - [`launcher`] — the binary re-run as `sandbox-exec`/`sandbox-sweep`: drops privileges, then execs.
//! - [`callback`] — signed result delivery with retries.
//! - [`redact`] — secret redaction for reports, commit messages and logs.
//!
//! The wire types ([`FixJob`](bugbot_shared::executor::FixJob), [`FixReport`](bugbot_shared::executor::FixReport))
//! and the signing scheme live in `bugbot_shared::executor`, shared with the Workers.

pub mod agent;
pub mod callback;
pub mod config;
pub mod git;
pub mod jobs;
pub mod launcher;
pub mod oneshot;
pub mod paths;
pub mod process;
pub mod prompt;
pub mod redact;
pub mod runner;
pub mod sandbox;
pub mod server;

/// Seconds since the Unix epoch (the one place the executor reads the wall clock for signatures).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
