//! `/admin/*`, served by the consumer (it owns the state) and reached only through the gateway's
//! `CONSUMER` service binding, so the public Worker stays a small ingress. Bearer `ADMIN_TOKEN`
//! (the dashboard page also takes it as `?token=`, for browsers).
//!
//! - `GET /admin/dashboard` — the status page (HTML).
//! - `GET /admin/jobs/{job_id}` — a job's status record.
//! - `GET /admin/dead-letters` — jobs the queue gave up on, with their last failure reason.
//! - `POST /admin/dead-letters/{job_id}/replay` — queue a dead letter again.
//! - `POST /admin/trigger-scan` — a `CloudWatch` Logs scan now ([`crate::handlers::cloudwatch`]).

use bugbot_shared::verify::token_matches;
use serde::Deserialize;
use worker::{Env, Headers, Method, Request, Response, wasm_bindgen::JsValue};

use crate::config::Config;
use crate::config::JOBS_QUEUE;
use crate::store::{STATE_KV, keys};

fn json(status: u16, body: &str) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    Response::builder().with_status(status).with_headers(headers).fixed(body.as_bytes().to_vec())
}

fn error(status: u16, reason: &str) -> Response {
    json(status, &format!("{{\"error\":{}}}", serde_json::to_string(reason).expect("a string serializes")))
}

pub async fn serve(req: &Request, env: &Env, config: &Config) -> worker::Result<Response> {
    let Some(configured) = config.admin_token.as_deref() else {
        return Ok(error(503, "ADMIN_TOKEN is not configured on this deployment"));
    };
    let presented = req.headers().get("authorization")?.and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned));
    let presented = presented.or_else(|| crate::handlers::dashboard::query_token(req));
    match presented {
        None => return Ok(error(401, "signature header missing")),
        Some(p) if !token_matches(&p, configured) => return Ok(error(401, "invalid token")),
        Some(_) => {}
    }
    let kv = env.kv(STATE_KV)?;
    let path = req.path();
    let parts: Vec<&str> = path.trim_matches('/').split('/').skip(1).collect();
    match (req.method(), parts.as_slice()) {
        (Method::Post, ["trigger-scan"]) => {
            let (status, body) =
                crate::handlers::cloudwatch::run(env, worker::Date::now().as_millis(), config.log_level).await;
            Ok(json(status, &body))
        }
        (Method::Get, ["counters"]) => {
            Ok(json(200, &serde_json::to_string(&crate::store::counters::snapshot()).expect("counts serialize")))
        }
        (Method::Get, ["dashboard", ..]) => crate::handlers::dashboard::serve(req, env, config).await,
        (Method::Get, ["jobs", id]) if !id.is_empty() => {
            let claims = crate::store::objects::claims::Claims::new(env)?;
            let status = crate::store::job_status(&claims, &crate::store::State::new(kv), id).await;
            Ok(match status {
                Some(status) => json(200, &serde_json::to_string(&status)?),
                None => error(404, "not found"),
            })
        }
        (Method::Get, ["dead-letters"]) => {
            let list = kv.list().prefix(keys::DEAD_LETTER_PREFIX.into()).limit(100).execute().await?;
            // Each letter is JSON this Worker wrote: splice it in rather than decode it.
            let mut letters = Vec::new();
            for key in list.keys {
                if let Some(letter) = kv.get(&key.name).text().await? {
                    letters.push(letter);
                }
            }
            Ok(json(
                200,
                &format!("{{\"dead_letters\":[{}],\"truncated\":{}}}", letters.join(","), !list.list_complete),
            ))
        }
        (Method::Post, ["dead-letters", id, "replay"]) => {
            #[derive(Deserialize)]
            struct Letter {
                message: String,
            }
            let key = keys::dead_letter(id);
            let Some(letter) = kv.get(&key).json::<Letter>().await? else {
                return Ok(error(404, "not found"));
            };
            env.queue(JOBS_QUEUE)?
                .send_raw(
                    worker::RawMessageBuilder::new(JsValue::from_str(&letter.message))
                        .build_with_content_type(worker::QueueContentType::Text),
                )
                .await?;
            kv.delete(&key).await?;
            Ok(json(
                202,
                &format!("{{\"ok\":true,\"replayed\":{}}}", serde_json::to_string(id).expect("a string serializes")),
            ))
        }
        _ => Ok(error(404, "not found")),
    }
}
