//! A stand-in for Cloudflare's `proxy-everything` image, the network sidecar that `wrangler dev`
//! (workerd's local container runtime) starts next to every container, for Docker hosts that cannot
//! pull it from Docker Hub. `scripts/sidecar-image` packs it into `bugbot-local/container-sidecar`;
//! `MINIFLARE_CONTAINER_EGRESS_IMAGE` tells wrangler to use that image instead.
//!
//! workerd creates the sidecar with `--http-ingress-address 0.0.0.0:39001` (published on a host
//! port), makes the application container share its network namespace, and then talks to it over
//! HTTP on that port (read in workerd's `server/container-client.c++`):
//! - `PUT /egress` — where workerd listens for egress the sidecar intercepts; answered 200;
//! - `GET /ca` — the CA certificate for TLS interception, injected into the container only when a
//!   Worker maps HTTPS egress; answered with a placeholder (this stand-in intercepts nothing);
//! - `CONNECT` with `X-Dst-Addr: 127.0.0.1:<port>` — a tunnel to the container's port, which is
//!   how a Durable Object's `container.getTcpPort(port).fetch(...)` reaches the container; 400 when
//!   nothing listens there (workerd reports "Container is not listening to port").
//!
//! What it does not do: intercept the container's outgoing traffic (the real sidecar routes it
//! through workerd for `interceptOutboundHttp`/egress mappings and otherwise lets it out when
//! `enableInternet` is set). Here the container's traffic leaves through Docker's bridge directly,
//! as with `enableInternet: true`, which is what bugbot's `ExecutorContainer` asks for.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use clap::Parser;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The flags workerd passes (all accepted; only the ingress address is used).
#[derive(Parser, Debug)]
#[command(about = "stand-in for Cloudflare's proxy-everything container sidecar (ingress tunnel only)")]
struct Cli {
    #[arg(long, default_value = "0.0.0.0:39001")]
    http_ingress_address: SocketAddr,
    #[arg(long)]
    http_egress_port: Option<u16>,
    #[arg(long)]
    docker_gateway_cidr: Option<String>,
    #[arg(long)]
    dns_enabled: bool,
    #[arg(long)]
    tls_intercept: bool,
    #[arg(long)]
    disable_ipv6: bool,
}

const NO_CA: &str = "# bugbot-container-sidecar intercepts no TLS: no CA certificate\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let app = Router::new()
        .route("/egress", put(|| async { "ok" }))
        .route("/ca", get(|| async { NO_CA }))
        // A CONNECT request's target is an authority, not a path: it never matches a route.
        .fallback(tunnel);
    let listener = tokio::net::TcpListener::bind(cli.http_ingress_address).await?;
    eprintln!("bugbot-container-sidecar: ingress on {}", cli.http_ingress_address);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn tunnel(mut request: Request) -> Response {
    if request.method() != Method::CONNECT {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let target = request
        .headers()
        .get("x-dst-addr")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(ToString::to_string));
    let Some(target) = target else {
        return (StatusCode::BAD_REQUEST, "no destination").into_response();
    };
    // Connect before answering, so that a port nobody listens on yet gets the 400 workerd expects.
    let mut upstream = match TcpStream::connect(&target).await {
        Ok(stream) => stream,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{target}: {e}")).into_response(),
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
            }
            Err(e) => eprintln!("bugbot-container-sidecar: upgrade for {target} failed: {e}"),
        }
    });
    Response::new(Body::empty())
}
