//! Bare repositories served over git's smart HTTP protocol by the real `git http-backend` (run as a
//! CGI program per request), for an executor that runs in a container and cannot see the test's
//! files. Like a private GitHub repository, every request needs HTTP Basic credentials (any user
//! name, the token as password); each request is recorded with the credentials it carried, so a test
//! can check that the executor authenticated with its push token and only where it should.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::io::AsyncWriteExt;

use crate::fake::{Server, serve_on};
use crate::local_executor::git;

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct GitRequest {
    pub method: String,
    /// Path and query, e.g. `/acme/shop.git/info/refs?service=git-receive-pack`.
    pub uri: String,
    /// The Basic credentials' password, when the request carried any.
    pub password: Option<String>,
    /// Whether the credentials matched (the request reached `git http-backend`).
    pub authorized: bool,
}

impl GitRequest {
    /// A request of the push protocol (`git-receive-pack`).
    pub fn is_push(&self) -> bool {
        self.uri.contains("git-receive-pack")
    }
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    token: String,
    requests: Mutex<Vec<GitRequest>>,
}

/// A running server. Dropping it stops the server.
#[derive(Debug)]
pub struct GitHttp {
    server: Server,
    inner: Arc<Inner>,
}

impl GitHttp {
    /// Serves the bare repositories under `root` on `ip` (port 0) to clients that present `token`.
    pub async fn start(ip: IpAddr, root: &Path, token: &str) -> Self {
        let inner =
            Arc::new(Inner { root: root.to_path_buf(), token: token.to_owned(), requests: Mutex::new(Vec::new()) });
        let app = Router::new().fallback(serve).with_state(inner.clone());
        Self { server: serve_on(ip, app).await, inner }
    }

    /// The clone URL of `repo` (its path under the root, e.g. `acme/shop.git`).
    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{repo}", self.server.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<GitRequest> {
        self.inner.requests.lock().expect("lock").clone()
    }
}

/// A bare repository `REPO` (e.g. `acme/shop.git`) under `root`, with one commit on `main` holding
/// `files` (path, content). Returns its path.
pub fn seed_bare_repo(root: &Path, repo: &str, files: &[(&str, &str)]) -> PathBuf {
    let seed = tempfile::tempdir().expect("tempdir");
    for (path, content) in files {
        let file = seed.path().join(path);
        std::fs::create_dir_all(file.parent().expect("a file in a directory")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }
    git(seed.path(), &["init", "-q"]);
    git(seed.path(), &["add", "-A"]);
    git(seed.path(), &["commit", "-qm", "initial"]);
    let bare = root.join(repo);
    std::fs::create_dir_all(bare.parent().expect("parent")).expect("mkdir");
    git(root, &["clone", "-q", "--bare", &seed.path().display().to_string(), &bare.display().to_string()]);
    bare
}

fn password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, password)| password.to_owned())
}

async fn serve(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let password = password(&parts.headers);
    let authorized = password.as_deref() == Some(inner.token.as_str());
    let uri = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
    inner.requests.lock().expect("lock").push(GitRequest {
        method: parts.method.to_string(),
        uri: uri.clone(),
        password,
        authorized,
    });
    if !authorized {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"bugbot tests\"")], "")
            .into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    // The CGI variables `git http-backend` reads (see git-http-backend(1)); REMOTE_USER also enables
    // the push service, which it refuses to anonymous clients.
    let output = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &inner.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REMOTE_USER", "bugbot")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header(header::CONTENT_ENCODING))
        .env("HTTP_GIT_PROTOCOL", parts.headers.get("git-protocol").and_then(|v| v.to_str().ok()).unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = output else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "git http-backend did not start").into_response();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    match child.wait_with_output().await {
        Ok(output) => cgi_response(&output.stdout),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("git http-backend: {e}")).into_response(),
    }
}

/// A CGI program's output (headers, a blank line, the body) as an HTTP response.
fn cgi_response(output: &[u8]) -> Response {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let Ok(httparse::Status::Complete((body_start, parsed))) = httparse::parse_headers(output, &mut headers) else {
        return (StatusCode::BAD_GATEWAY, "git http-backend wrote no complete header block").into_response();
    };
    let mut response = Response::new(Body::from(Bytes::copy_from_slice(&output[body_start..])));
    for h in parsed {
        if h.name.eq_ignore_ascii_case("status") {
            let code = std::str::from_utf8(h.value).ok().and_then(|s| s.get(..3)).and_then(|c| c.parse().ok());
            *response.status_mut() = code.and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::BAD_GATEWAY);
        } else if let (Ok(name), Ok(value)) =
            (header::HeaderName::from_bytes(h.name.as_bytes()), header::HeaderValue::from_bytes(h.value))
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}
