//! One-shot mode (`bugbot-executor run --job job.json`): run a single job in the foreground, deliver its
//! report to the callback URL when the job has one, and hand the report back to print. The same binary
//! thus serves a GitHub Actions runner (see `container/README.md`).

use bugbot_shared::executor::{FixJob, FixReport, OpenError, SignedJob};

use crate::callback::Callback;
use crate::config::Config;
use crate::process::Interrupt;
use crate::runner::Runner;

/// Why a job file was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobFileError {
    #[error("not a signed job ({0}); a plain job needs --unsigned-local")]
    Unsigned(String),
    #[error("EXECUTOR_SECRET is not set, so the job's signature cannot be checked")]
    NoSecret,
    #[error(transparent)]
    Refused(#[from] OpenError),
    #[error("the job does not parse: {0}")]
    BadJob(String),
}

/// Reads a job file: a [`SignedJob`] whose signature and freshness are checked like a request to the
/// service; with `unsigned_local`, a plain [`FixJob`] is accepted too (signed ones are still checked).
pub fn open(text: &str, config: &Config, unsigned_local: bool) -> Result<FixJob, JobFileError> {
    match serde_json::from_str::<SignedJob>(text) {
        Ok(signed) => {
            let secret = config.secret.as_ref().ok_or(JobFileError::NoSecret)?;
            let window = config.signature_window.as_secs();
            Ok(signed.open(secret.expose().as_bytes(), crate::unix_now(), window)?)
        }
        Err(e) if !unsigned_local => Err(JobFileError::Unsigned(e.to_string())),
        Err(_) => serde_json::from_str(text).map_err(|e| JobFileError::BadJob(e.to_string())),
    }
}

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
