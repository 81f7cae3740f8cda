//! `/health` (public, booleans only) and `/admin/*` (bearer `ADMIN_TOKEN`, read-only state).

use bugbot_shared::ingress::IngressError;
use std::collections::BTreeMap;

use serde::Serialize;
use worker::{Env, Request};

use crate::config::binding;
use crate::{CONSUMER_SERVICE, Handled, json_response};

/// Integrations and whether each is configured — never a value.
const INTEGRATIONS: &[(&str, &[&str])] = &[
    ("discord_interactions", &["DISCORD_PUBLIC_KEY"]),
    ("discord_bot", &["DISCORD_BOT_TOKEN", "DISCORD_APPLICATION_ID"]),
    ("sentry", &["SENTRY_CLIENT_SECRET"]),
    ("sentry_legacy", &["SENTRY_LEGACY_WEBHOOK_TOKEN"]),
    ("glitchtip", &["GLITCHTIP_WEBHOOK_TOKEN"]),
    ("linear", &["LINEAR_API_KEY", "LINEAR_TEAM_ID"]),
    ("github", &["GITHUB_TOKEN", "GITHUB_REPO"]),
    ("posthog", &["POSTHOG_API_KEY", "POSTHOG_PROJECT_ID"]),
    ("executor", &["EXECUTOR_URL", "EXECUTOR_SECRET"]),
    ("admin", &["ADMIN_TOKEN"]),
];

pub fn health(env: &Env) -> Handled {
    #[derive(Serialize)]
    struct Health {
        ok: bool,
        service: &'static str,
        version: &'static str,
        integrations: BTreeMap<&'static str, bool>,
    }
    let integrations =
        INTEGRATIONS.iter().map(|(name, keys)| (*name, keys.iter().all(|k| binding(env, k).is_some()))).collect();
    let body = Health { ok: true, service: "bugbot-gateway", version: env!("CARGO_PKG_VERSION"), integrations };
    (json_response(200, &serde_json::to_string(&body).expect("serializes")), None)
}

/// `/admin/*` lives in the consumer (it owns the state); the gateway forwards it over the
/// `CONSUMER` service binding, so the public Worker stays a small, fast ingress.
pub async fn forward(req: Request, env: &Env) -> Result<Handled, IngressError> {
    let consumer =
        env.service(CONSUMER_SERVICE).map_err(|_| IngressError::NotConfigured("the CONSUMER service binding"))?;
    let response = consumer.fetch_request(req).await.map_err(|_| IngressError::NotConfigured("the consumer"))?;
    Ok((response, None))
}
