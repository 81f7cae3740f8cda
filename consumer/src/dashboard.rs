//! The status dashboard (server-rendered HTML + SVG). Placeholder: the operations work fills it in.

use worker::{Env, Request, Response};

use crate::config::Config;

/// `GET /admin/dashboard` (already authenticated by [`crate::admin`]).
#[expect(clippy::unused_async, reason = "placeholder until this module is filled in")]
pub async fn serve(req: &Request, env: &Env, config: &Config) -> worker::Result<Response> {
    let _ = (req, env, config);
    Response::error("not found", 404)
}
