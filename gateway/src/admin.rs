//! `/admin/*` (bearer `ADMIN_TOKEN`, read-only state), forwarded to the consumer.

use bugbot_shared::ingress::IngressError;
use worker::{Env, Request};

use crate::{CONSUMER_SERVICE, Handled};

/// `/admin/*` lives in the consumer (it owns the state); the gateway forwards it over the
/// `CONSUMER` service binding, so the public Worker stays a small, fast ingress.
pub async fn forward(req: Request, env: &Env) -> Result<Handled, IngressError> {
    let consumer =
        env.service(CONSUMER_SERVICE).map_err(|_| IngressError::NotConfigured("the CONSUMER service binding"))?;
    let response = consumer.fetch_request(req).await.map_err(|_| IngressError::NotConfigured("the consumer"))?;
    Ok((response.into(), None))
}
