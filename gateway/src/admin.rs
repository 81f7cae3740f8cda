//! `/health` (public, booleans only) and `/admin/*` (bearer `ADMIN_TOKEN`, read-only state).

use bugbot_shared::ingress::IngressError;
use bugbot_shared::status;
use bugbot_shared::verify::{SignatureError, token_matches};
use serde_json::json;
use worker::{Env, Request};

use crate::config::{Config, binding};
use crate::{Handled, STATE_KV, json_response};

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
    let integrations: serde_json::Map<String, serde_json::Value> = INTEGRATIONS
        .iter()
        .map(|(name, keys)| ((*name).to_owned(), keys.iter().all(|k| binding(env, k).is_some()).into()))
        .collect();
    let body = json!({"ok": true, "service": "bugbot-gateway", "version": env!("CARGO_PKG_VERSION"), "integrations": integrations});
    (json_response(200, &body.to_string()), None)
}

pub async fn serve(req: &Request, env: &Env, cfg: &Config, rest: &str) -> Result<Handled, IngressError> {
    let configured = cfg.admin_token.as_deref().ok_or(IngressError::NotConfigured("ADMIN_TOKEN"))?;
    let presented = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .ok_or(IngressError::Unauthorized(SignatureError::Missing))?;
    if !token_matches(&presented, configured) {
        return Err(IngressError::BadToken);
    }
    let kv = env.kv(STATE_KV).map_err(|_| IngressError::NotConfigured("the STATE KV binding"))?;
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["jobs", id] if !id.is_empty() => {
            let stored =
                kv.get(&status::job_key(id)).text().await.map_err(|e| IngressError::BadRequest(e.to_string()))?;
            match stored {
                Some(text) => Ok((json_response(200, &text), None)),
                None => Err(IngressError::NotFound),
            }
        }
        _ => Err(IngressError::NotFound),
    }
}
