//! One-shot mode (`bugbot-executor run --job job.json`): run a single job in the foreground, deliver its
//! report to the callback URL when the job has one, and hand the report back to print. The same binary
//! thus serves a GitHub Actions runner (see `container/README.md`).

use bugbot_shared::executor::{FixJob, FixReport};

use crate::callback::Callback;
use crate::process::Interrupt;
use crate::runner::Runner;

/// Runs `job` once; `interrupt` (SIGTERM/SIGINT) stops it with `failed: interrupted`.
pub async fn run_once(runner: &Runner, callback: &Callback, job: &FixJob, interrupt: &Interrupt) -> FixReport {
    let report = runner.run(job, interrupt).await.report;
    if let Some(url) = job.callback_url.as_deref() {
        match callback.deliver(url, &report).await {
            Ok(()) => tracing::info!(job_id = %job.job_id, "result delivered"),
            Err(e) => tracing::error!(job_id = %job.job_id, error = %e, "result not delivered"),
        }
    }
    report
}
