//! `ExecutorContainer`: the Durable Object that owns the fix executor's Cloudflare Container
//! (`[[containers]]` in `consumer/wrangler.toml`, image `container/Dockerfile`) and forwards the
//! consumer's signed requests (`POST /v1/jobs`, `GET /v1/jobs/{id}`, `GET /health`) to it.
//!
//! - **Start:** on the first request, with the environment [`container::container_env`] derives from
//!   the consumer's settings (the executor secret, the model key, the push token; nothing else).
//!   A cold container needs a moment to listen: the connection is retried, the request is not
//!   changed (the executor checks the signature itself).
//! - **Stop:** an alarm asks the executor's `/health` every [`container::IDLE_STOP_MS`]; a container
//!   with nothing running or queued and no request for that long is stopped.
//! - **No container runtime** (`wrangler dev` and the tests run with `enable_containers = false`):
//!   requests go to `EXECUTOR_LOCAL_URL` (an executor started natively) when it is set, else they get
//!   `501` with the reason, which the fix flow reports instead of retrying.
//!
//! The object never reads or logs a request body; it authenticates nothing itself.

use std::time::Duration;

use bugbot_shared::container::{self, IdleCheck, Load};
use bugbot_shared::log::{Level, LogLine};
use wasm_bindgen::JsCast;
use worker::{
    Container, Date, Delay, DurableObject, Env, Fetch, Headers, Method, Request, RequestInit, Response, Result, State,
    durable_object,
};

use crate::clients::fetch::within;
use crate::config::binding;

const LAST_REQUEST_KEY: &str = "last_request_ms";
/// The health check the alarm makes must not hold the object for long.
const HEALTH_TIMEOUT_MS: u64 = 5_000;

#[durable_object]
pub struct ExecutorContainer {
    state: State,
    env: Env,
}

impl std::fmt::Debug for ExecutorContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorContainer").finish_non_exhaustive()
    }
}

/// A request as received, kept so it can be sent again while a cold container starts.
struct Forward {
    method: Method,
    path_and_query: String,
    headers: Headers,
    body: Vec<u8>,
}

impl Forward {
    fn to(&self, base: &str) -> Result<Request> {
        let mut init = RequestInit::new();
        init.with_method(self.method.clone()).with_headers(self.headers.clone());
        if !self.body.is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(self.body.as_slice()).into()));
        }
        Request::new_with_init(&format!("{}{}", base.trim_end_matches('/'), self.path_and_query), &init)
    }
}

fn log(level: Level, outcome: &'static str, reason: &str) {
    let mut line = LogLine::new(level, "consumer", "executor_container");
    line.outcome = Some(outcome);
    line.reason = Some(reason);
    worker::console_log!("{}", line.to_json());
}

impl ExecutorContainer {
    /// Starts the container with its environment. Only the variable names are logged.
    fn start(&self, container: &Container) -> Result<()> {
        let env = js_sys::Object::new();
        let variables = container::container_env(|name| binding(&self.env, name));
        for (name, value) in &variables {
            js_sys::Reflect::set(&env, &(*name).into(), &value.as_str().into())?;
        }
        // workers-rs' `ContainerStartupOptions` passes `env` as a `Map`, which the runtime does not
        // read: the options object is built here as the plain object the runtime expects.
        let options = js_sys::Object::new();
        js_sys::Reflect::set(&options, &"env".into(), &env)?;
        js_sys::Reflect::set(&options, &"enableInternet".into(), &true.into())?;
        let start: js_sys::Function = js_sys::Reflect::get(container.as_ref(), &"start".into())?.dyn_into()?;
        start.call1(container.as_ref(), &options)?;
        let names: Vec<&str> = variables.iter().map(|(name, _)| *name).collect();
        log(Level::Info, "started", &format!("container started with {}", names.join(", ")));
        Ok(())
    }

    async fn forward_to_container(&self, container: &Container, request: &Forward) -> Result<Response> {
        if !container.running() {
            self.start(container)?;
        }
        let port = container.get_tcp_port(container::PORT)?;
        let mut attempt = 0;
        loop {
            match port.fetch_request(request.to("http://container")?).await {
                Ok(response) => return Ok(response),
                Err(e) if attempt + 1 >= container::COLD_START_ATTEMPTS => {
                    log(Level::Warn, "unavailable", "the executor container did not start listening");
                    return Response::error(format!("executor container unavailable: {e}"), 503);
                }
                Err(_) => {
                    attempt += 1;
                    Delay::from(Duration::from_millis(container::COLD_START_PAUSE_MS)).await;
                }
            }
        }
    }

    async fn load(&self, container: &Container) -> Option<Load> {
        let port = container.get_tcp_port(container::PORT).ok()?;
        let call = async {
            let mut response = port.fetch("http://container/health", None).await.ok()?;
            if response.status_code() != 200 {
                return None;
            }
            serde_json::from_str::<Load>(&response.text().await.ok()?).ok()
        };
        within(HEALTH_TIMEOUT_MS, call).await.flatten()
    }
}

impl DurableObject for ExecutorContainer {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let request =
            Forward { method: req.method(), path_and_query, headers: req.headers().clone(), body: req.bytes().await? };
        if let Some(container) = self.state.container() {
            let now = Date::now().as_millis();
            self.state.storage().put(LAST_REQUEST_KEY, now).await?;
            if self.state.storage().get_alarm().await?.is_none() {
                self.state.storage().set_alarm(Duration::from_millis(container::IDLE_STOP_MS)).await?;
            }
            return self.forward_to_container(&container, &request).await;
        }
        match binding(&self.env, "EXECUTOR_LOCAL_URL") {
            Some(base) => Fetch::Request(request.to(&base)?).send().await,
            None => Response::error(
                "no container runtime is attached (enable_containers = false): set EXECUTOR_URL, or EXECUTOR_LOCAL_URL for local development",
                501,
            ),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let Some(container) = self.state.container().filter(Container::running) else {
            return Response::ok("no container running");
        };
        let last: u64 = self.state.storage().get(LAST_REQUEST_KEY).await?.unwrap_or(0);
        let load = self.load(&container).await;
        match container::idle_check(Date::now().as_millis(), last, load) {
            IdleCheck::Stop => {
                log(Level::Info, "stopped", "idle: nothing running or queued");
                container.destroy(None).await?;
            }
            IdleCheck::Again(at) => {
                #[expect(clippy::cast_possible_wrap, reason = "unix milliseconds fit in i64")]
                self.state.storage().set_alarm(at as i64).await?;
            }
        }
        Response::ok("checked")
    }
}
