//! The daily digest (cron): the counters of the UTC day before the trigger, compared with the day
//! before that, posted to Discord. The schedule is `[triggers] crons` in `consumer/wrangler.toml`;
//! the channel is `DIGEST_CHANNEL_ID`, else `DISCORD_ALERTS_CHANNEL_ID`. Without a bot token or a
//! channel the digest is skipped with a log line.

use bugbot_shared::digest::{DAY_MS, digest_message};
use bugbot_shared::log::{Level, LogLine};

use crate::clients::discord::Discord;
use crate::clients::fetch::FetchPort;
use crate::config::{Config, binding};
use crate::store::objects::stats;

/// Runs on the consumer's cron trigger; `now_ms` is the scheduled time.
pub async fn run(env: &worker::Env, config: &Config, now_ms: u64) -> worker::Result<()> {
    let mut line = LogLine::new(Level::Info, "consumer", "cron");
    line.kind = Some("digest");
    let channel = binding(env, "DIGEST_CHANNEL_ID").or_else(|| config.discord.alerts_channel_id.clone());
    let (Some(channel), Some(token)) = (channel, config.discord.bot_token.clone()) else {
        line.outcome = Some("skipped");
        line.reason =
            Some("Discord not configured (DISCORD_BOT_TOKEN and DIGEST_CHANNEL_ID or DISCORD_ALERTS_CHANNEL_ID)");
        worker::console_log!("{}", line.to_json());
        return Ok(());
    };
    let days =
        stats::load_days(&crate::store::objects::claims::Claims::new(env)?, now_ms.saturating_sub(DAY_MS), 2).await?;
    let (Some(previous), Some(day)) = (days.first(), days.last()) else {
        return Err(worker::Error::RustError("stats store returned no days".into()));
    };
    let dashboard = binding(env, "DASHBOARD_URL");
    let message = digest_message(day, previous, dashboard.as_deref());
    let port = FetchPort::new(config.log_level);
    let discord = Discord::new(&port, Some(token)).with_api_base(config.discord.api_base.clone());
    match discord.create_message(&channel, &message).await {
        Ok(_) => {
            let reason = format!("digest of {}", day.day);
            line.outcome = Some("posted");
            line.reason = Some(&reason);
            worker::console_log!("{}", line.to_json());
            Ok(())
        }
        Err(e) => Err(worker::Error::RustError(format!("digest not posted: {e}"))),
    }
}
