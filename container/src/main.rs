//! `bugbot-executor serve` (the HTTP service) and `bugbot-executor run --job job.json` (one signed job in
//! the foreground, e.g. in GitHub Actions). Configuration comes from the environment: see `README.md`.
//! The same binary is the sandbox launcher (`sandbox-exec`, `sandbox-sweep`, `sandbox-probe`: see
//! `bugbot_executor::launcher`), dispatched before anything else starts.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use bugbot_executor::agent::ClaudeCode;
use bugbot_executor::callback::Callback;
use bugbot_executor::config::Config;
use bugbot_executor::jobs::JobBoard;
use bugbot_executor::process::Interrupt;
use bugbot_executor::runner::Runner;
use bugbot_shared::executor::FixOutcome;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(version, about = "bugbot's fix executor: Claude Code under strict limits, one branch per job")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API on `LISTEN_ADDR` (default `0.0.0.0:8080`).
    Serve,
    /// Run one job from a JSON file (`-` for stdin), print the report, post it to the job's callback.
    /// The file is a signed job (`{"timestamp", "signature", "job"}`, see `container/README.md`), checked
    /// with `EXECUTOR_SECRET`.
    Run {
        #[arg(long)]
        job: PathBuf,
        /// Also accept a plain, unsigned job file. For local use only: whoever can write the job chooses
        /// the test command that runs next to the executor's secrets.
        #[arg(long)]
        unsigned_local: bool,
    },
}

fn main() -> anyhow::Result<()> {
    // Before any thread exists: the launcher changes its credentials and execs.
    bugbot_executor::launcher::run_if_requested();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Arc::new(Config::from_env().context("reading configuration")?);
    init_logging(&config);
    let runner = Runner::new(config.clone(), Arc::new(ClaudeCode::new(&config)));
    let callback = Callback::new(&config);

    match cli.command {
        Command::Serve => {
            anyhow::ensure!(config.secret.is_some(), "EXECUTOR_SECRET is required to serve");
            if !config.sandbox.enabled {
                tracing::warn!(
                    "SANDBOX=off: agents and tests run as this user, next to its secrets (development only)"
                );
            } else if !nix::unistd::geteuid().is_root() {
                tracing::error!(
                    "the sandbox needs root: every job will fail until the executor runs as root (or SANDBOX=off)"
                );
            }
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let board = JobBoard::new(runner, callback, config.max_concurrent_jobs, config.max_queued_jobs);
            let shutdown = async {
                let _ = terminated().await;
            };
            bugbot_executor::server::serve(listener, board, &config, shutdown).await?;
            Ok(())
        }
        Command::Run { job, unsigned_local } => {
            let text = if job.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the job from stdin")?
            } else {
                std::fs::read_to_string(&job).with_context(|| format!("reading {}", job.display()))?
            };
            let job = match bugbot_executor::oneshot::open(&text, &config, unsigned_local) {
                Ok(job) => job,
                Err(e) => {
                    tracing::error!(error = %e, "job refused");
                    eprintln!("bugbot-executor: job refused: {e}");
                    std::process::exit(3);
                }
            };
            let interrupt = Interrupt::new();
            let on_signal = interrupt.clone();
            tokio::spawn(async move {
                if terminated().await.is_ok() {
                    on_signal.fire();
                }
            });
            let report = bugbot_executor::oneshot::run_once(&runner, &callback, &job, &interrupt).await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            // Non-zero when nothing was pushed for a reason worth a red CI step.
            let code = match report.outcome {
                FixOutcome::Fixed | FixOutcome::NoChange => 0,
                _ => 2,
            };
            std::process::exit(code);
        }
    }
}

/// Resolves on SIGTERM (container stop, rollout) or SIGINT.
async fn terminated() -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// JSON log lines on stderr, each redacted of configured secrets and token shapes.
fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = config.redactor().make_writer(|| Box::new(std::io::stderr()) as Box<dyn std::io::Write + Send>);
    tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(writer).with_current_span(false).init();
}
