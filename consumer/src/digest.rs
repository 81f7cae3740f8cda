//! The daily digest (cron). Placeholder: the operations work fills this module in.

use crate::config::Config;

/// Runs on the consumer's cron trigger.
#[expect(clippy::unused_async, reason = "placeholder until this module is filled in")]
pub async fn run(env: &worker::Env, config: &Config, now_ms: u64) -> worker::Result<()> {
    let _ = (env, config, now_ms);
    Ok(())
}
