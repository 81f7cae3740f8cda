//! `GET /health`: the version, and which integrations are configured — booleans only, never a
//! value. The gateway knows only its own (the ingress secrets); the trackers, the bot and the
//! executor are the consumer's, so it asks the consumer over the `CONSUMER` service binding rather
//! than guess from its own environment (where they are never set in a real deploy). When the
//! consumer does not answer, `/health` says so and leaves its integrations out.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use worker::Env;

use crate::config::Config;
use crate::{CONSUMER_SERVICE, Handled};

/// The consumer's route for this (reached only through the service binding).
pub const CONSUMER_HEALTH_URL: &str = "https://consumer/health";

#[derive(Serialize)]
struct Health<'a> {
    ok: bool,
    service: &'static str,
    version: &'static str,
    /// `ok`, or `unreachable: <why>`.
    consumer: &'a str,
    integrations: BTreeMap<String, bool>,
}

/// What the consumer answers. Only booleans deserialize, so nothing else it could say gets through.
#[derive(Deserialize)]
struct ConsumerHealth {
    integrations: BTreeMap<String, bool>,
}

/// The gateway's own integrations.
fn own(cfg: &Config) -> BTreeMap<String, bool> {
    let ingress = &cfg.ingress;
    [
        ("discord_interactions", ingress.discord_key.is_some()),
        ("sentry", ingress.sentry_client_secret.is_some()),
        ("sentry_legacy", ingress.sentry_legacy_token.is_some()),
        ("glitchtip", ingress.glitchtip_token.is_some()),
        ("executor_callback", ingress.executor_secret.is_some()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn body(integrations: BTreeMap<String, bool>, consumer: &str) -> String {
    let body = Health {
        ok: consumer == "ok",
        service: "bugbot-gateway",
        version: env!("CARGO_PKG_VERSION"),
        consumer,
        integrations,
    };
    serde_json::to_string(&body).expect("serializes")
}

/// Why the consumer was not asked when there is no binding to ask it through.
pub const NO_CONSUMER: &str = "no CONSUMER service binding";

thread_local! {
    static ALONE: OnceCell<Rc<str>> = const { OnceCell::new() };
}

/// The answer when there is no `CONSUMER` binding (`None` when there is one): like the configuration
/// it comes from, it cannot change during the isolate's life, so it is built once, and `fetch_now`
/// answers it without an await.
pub fn alone(cfg: &Config) -> Option<Rc<str>> {
    if cfg.has_consumer {
        return None;
    }
    Some(ALONE.with(|cell| cell.get_or_init(|| body(own(cfg), &format!("unreachable: {NO_CONSUMER}")).into()).clone()))
}

pub async fn serve(env: &Env, cfg: &Config) -> Handled {
    let mut integrations = own(cfg);
    let consumer = match ask_consumer(env, cfg).await {
        Ok(theirs) => {
            // A name the gateway reports itself stays the gateway's.
            for (name, configured) in theirs.integrations {
                if is_name(&name) {
                    integrations.entry(name).or_insert(configured);
                }
            }
            "ok".to_owned()
        }
        Err(why) => format!("unreachable: {why}"),
    };
    let reason = (consumer != "ok").then(|| format!("consumer {consumer}"));
    (bugbot_edge::json_response(200, &body(integrations, &consumer)), reason)
}

async fn ask_consumer(env: &Env, cfg: &Config) -> Result<ConsumerHealth, &'static str> {
    if !cfg.has_consumer {
        return Err(NO_CONSUMER);
    }
    let service = env.service(CONSUMER_SERVICE).map_err(|_| NO_CONSUMER)?;
    let mut response = service.fetch(CONSUMER_HEALTH_URL, None).await.map_err(|_| "the call failed")?;
    if response.status_code() != 200 {
        return Err("it answered with an error (an older consumer?)");
    }
    response.json().await.map_err(|_| "its answer was not understood")
}

/// Integration names are short snake case; anything else from the consumer is dropped.
fn is_name(name: &str) -> bool {
    (1..=40).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
