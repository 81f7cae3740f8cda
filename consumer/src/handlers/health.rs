//! `GET /health` for the gateway, over its `CONSUMER` service binding: which of the consumer's
//! integrations are configured, as the consumer itself decides it (booleans only, never a value).
//! The gateway merges these into its public `/health`.

use std::collections::BTreeMap;

use bugbot_edge::Vars;
use bugbot_shared::container;
use serde::Serialize;
use worker::{Env, Response};

use crate::config::Config;

#[derive(Serialize)]
struct Health {
    integrations: BTreeMap<&'static str, bool>,
}

pub fn serve(env: &Env, config: &Config) -> Response {
    let vars = Vars(env);
    let executor_reachable = vars.is_set("EXECUTOR_URL") || bugbot_edge::vars::has_binding(env, container::BINDING);
    let integrations = BTreeMap::from([
        ("linear", config.linear.is_some()),
        ("github", config.github.is_some()),
        ("discord_bot", config.discord.bot_token.is_some() && config.discord.application_id.is_some()),
        ("posthog", vars.all_set(&["POSTHOG_API_KEY", "POSTHOG_PROJECT_ID"])),
        ("sentry_api", vars.all_set(&["SENTRY_API_TOKEN", "SENTRY_ORG"])),
        ("executor", executor_reachable && vars.is_set("EXECUTOR_SECRET")),
        ("admin", config.admin_token.is_some()),
    ]);
    bugbot_edge::json(200, &serde_json::to_string(&Health { integrations }).expect("serializes"))
}
