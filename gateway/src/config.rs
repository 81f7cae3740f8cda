//! Bindings, read once per isolate. A missing integration is simply `None`: its route answers 503
//! "not configured" and `/health` shows it, but nothing else is affected.

use std::cell::OnceCell;
use std::rc::Rc;

use bugbot_edge::Vars;
use bugbot_shared::ingress::{
    DEFAULT_DEDUPE_WINDOW_SECS, DEFAULT_MAX_BODY_BYTES, DEFAULT_REPLAY_WINDOW_SECS, IngressConfig,
};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::verify::DiscordKey;
use worker::Env;

#[derive(Debug)]
pub struct Config {
    pub ingress: IngressConfig,
    pub log_level: Level,
    /// Whether the `CONSUMER` service binding exists (`/health` asks it, `/admin/*` goes to it).
    pub has_consumer: bool,
    /// Whether the `JOBS` queue binding exists (without it every delivery answers 503).
    pub has_jobs_queue: bool,
}

thread_local! {
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
}

pub fn load(env: &Env) -> Rc<Config> {
    CONFIG.with(|cell| cell.get_or_init(|| Rc::new(read(env))).clone())
}

fn read(env: &Env) -> Config {
    let vars = Vars(env);
    let discord_key = vars.get("DISCORD_PUBLIC_KEY").and_then(|hex| match DiscordKey::from_hex(&hex) {
        Ok(key) => Some(key),
        Err(e) => {
            let mut line = LogLine::new(Level::Error, "gateway", "config");
            let reason = format!("DISCORD_PUBLIC_KEY ignored: {e}");
            line.reason = Some(&reason);
            bugbot_edge::emit(&line, Level::Error);
            None
        }
    });
    Config {
        ingress: IngressConfig {
            discord_key,
            replay_window_secs: vars.number("DISCORD_REPLAY_WINDOW_SECS", DEFAULT_REPLAY_WINDOW_SECS),
            sentry_client_secret: vars.get("SENTRY_CLIENT_SECRET"),
            sentry_legacy_token: vars.get("SENTRY_LEGACY_WEBHOOK_TOKEN"),
            glitchtip_token: vars.get("GLITCHTIP_WEBHOOK_TOKEN"),
            executor_secret: vars.get("EXECUTOR_SECRET"),
            max_body_bytes: usize::try_from(vars.number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES as u64))
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            dedupe_window_secs: vars.number("DEDUPE_WINDOW_SECS", DEFAULT_DEDUPE_WINDOW_SECS),
            slack_signing_secret: vars.get("SLACK_SIGNING_SECRET"),
            slack_alert_channels: vars.get("SLACK_ALERT_CHANNELS").map_or_else(Vec::new, |v| {
                v.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
            }),
        },
        log_level: Level::parse(vars.get("LOG_LEVEL").as_deref()),
        has_consumer: bugbot_edge::vars::has_binding(env, crate::CONSUMER_SERVICE),
        has_jobs_queue: bugbot_edge::vars::has_binding(env, crate::JOBS_QUEUE),
    }
}
