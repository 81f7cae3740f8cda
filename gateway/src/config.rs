//! Bindings, read once per isolate. A missing integration is simply `None`: its route answers 503
//! "not configured" and `/health` shows it, but nothing else is affected.

use std::cell::OnceCell;
use std::rc::Rc;

use bugbot_shared::ingress::{DEFAULT_MAX_BODY_BYTES, DEFAULT_REPLAY_WINDOW_SECS, IngressConfig};
use bugbot_shared::log::{Level, LogLine};
use bugbot_shared::verify::DiscordKey;
use worker::Env;

#[derive(Debug)]
pub struct Config {
    pub ingress: IngressConfig,
    pub log_level: Level,
}

thread_local! {
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
}

/// A binding's value, whether it is a `[vars]` entry or a secret; empty counts as unset.
pub fn binding(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|s| s.to_string()))
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

pub fn load(env: &Env) -> Rc<Config> {
    CONFIG.with(|cell| cell.get_or_init(|| Rc::new(read(env))).clone())
}

fn read(env: &Env) -> Config {
    let discord_key = binding(env, "DISCORD_PUBLIC_KEY").and_then(|hex| match DiscordKey::from_hex(&hex) {
        Ok(key) => Some(key),
        Err(e) => {
            let mut line = LogLine::new(Level::Error, "gateway", "config");
            let reason = format!("DISCORD_PUBLIC_KEY ignored: {e}");
            line.reason = Some(&reason);
            worker::console_error!("{}", line.to_json());
            None
        }
    });
    let number = |name: &str, default: u64| binding(env, name).and_then(|v| v.parse().ok()).unwrap_or(default);
    Config {
        ingress: IngressConfig {
            discord_key,
            replay_window_secs: number("DISCORD_REPLAY_WINDOW_SECS", DEFAULT_REPLAY_WINDOW_SECS),
            sentry_client_secret: binding(env, "SENTRY_CLIENT_SECRET"),
            sentry_legacy_token: binding(env, "SENTRY_LEGACY_WEBHOOK_TOKEN"),
            glitchtip_token: binding(env, "GLITCHTIP_WEBHOOK_TOKEN"),
            executor_secret: binding(env, "EXECUTOR_SECRET"),
            max_body_bytes: usize::try_from(number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES as u64))
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            slack_signing_secret: binding(env, "SLACK_SIGNING_SECRET"),
            slack_alert_channels: binding(env, "SLACK_ALERT_CHANNELS").map_or_else(Vec::new, |v| {
                v.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
            }),
        },
        log_level: Level::parse(binding(env, "LOG_LEVEL").as_deref()),
    }
}

/// A request id when the platform gives none (`cf-ray` is absent locally).
pub fn random_id() -> String {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "random bits in [0, 2^53)")]
    let bits = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    format!("{bits:014x}")
}
