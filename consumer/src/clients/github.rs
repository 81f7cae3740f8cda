//! GitHub, over the REST API (<https://docs.github.com/en/rest?apiVersion=2022-11-28>).
//!
//! Every call carries `User-Agent` (GitHub answers 403 without one), `Accept:
//! application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28` and `Authorization: Bearer`.
//! Rate limits follow <https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>:
//! a 429, or a 403 that is a primary (`x-ratelimit-remaining: 0`) or secondary (`retry-after`, or
//! the "secondary rate limit" message) limit, is transient; any other 403 is not.

use std::fmt;

use base64::Engine as _;
use bugbot_shared::backoff::{RetryAfter, parse_http_date_ms, parse_retry_after};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use worker::Url;

use super::SinkError;
use crate::clients::http::{HttpPort, HttpRequest, HttpResponse, Method};

const SERVICE: &str = "github";

/// Where the API lives unless `GITHUB_API_BASE` says otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";

const USER_AGENT: &str = concat!("bugbot/", env!("CARGO_PKG_VERSION"));
const API_VERSION: &str = "2022-11-28";

/// GitHub's advice when a secondary limit comes without `retry-after`: wait at least a minute.
const SECONDARY_LIMIT_WAIT_MS: u64 = 60_000;

/// A GitHub client for one repository.
pub struct GitHub<'a, P> {
    pub port: &'a P,
    /// `GITHUB_API_BASE`, default [`DEFAULT_API_BASE`] (a GitHub Enterprise base such as
    /// `https://ghe.example/api/v3` works too).
    pub api_base: String,
    /// A fine-grained or installation token, sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// `owner/name`.
    pub repo: String,
}

impl<P> fmt::Debug for GitHub<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHub").field("api_base", &self.api_base).field("repo", &self.repo).finish_non_exhaustive()
    }
}

/// An issue (<https://docs.github.com/en/rest/issues/issues#get-an-issue>).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GitHubIssue {
    pub number: u64,
    pub html_url: String,
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    #[serde(default)]
    pub body: Option<String>,
}

/// A pull request to open.
#[derive(Debug, Clone)]
pub struct NewPull<'a> {
    pub title: &'a str,
    /// The branch with the change.
    pub head: &'a str,
    pub base: &'a str,
    pub body: &'a str,
    pub draft: bool,
}

/// An opened (or already open) pull request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRef {
    pub number: u64,
    pub html_url: String,
    /// It was already open (not created by this call).
    #[serde(default)]
    pub existed: bool,
}

#[derive(Debug, Deserialize)]
struct PullHead {
    number: u64,
    html_url: String,
    head: PullBranch,
}

#[derive(Debug, Deserialize)]
struct PullBranch {
    #[serde(rename = "ref")]
    git_ref: String,
}

/// Lines of a file and the commit that last changed them (GraphQL `BlameRange`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlameRange {
    /// First and last line (1-based, inclusive).
    pub start: u32,
    pub end: u32,
    pub commit: CommitSummary,
}

/// One commit that touched a path (<https://docs.github.com/en/rest/commits/commits#list-commits>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    pub sha: String,
    /// The commit author's name (git metadata, not necessarily a GitHub user).
    pub author: String,
    /// RFC 3339, as GitHub sends it.
    pub date: String,
    pub message: String,
}

impl<'a, P: HttpPort> GitHub<'a, P> {
    /// A client for `repo` (`owner/name`) on github.com.
    pub fn new(port: &'a P, token: impl Into<String>, repo: impl Into<String>) -> Self {
        Self { port, api_base: DEFAULT_API_BASE.to_owned(), token: token.into(), repo: repo.into() }
    }

    /// The same client against another API base (`GITHUB_API_BASE`).
    #[must_use]
    pub fn with_api_base(mut self, api_base: impl Into<String>) -> Self {
        self.api_base = api_base.into();
        self
    }

    /// The open or closed issue whose body contains `marker` (bugbot's hidden fingerprint comment),
    /// via `GET /search/issues?q=repo:o/r is:issue in:body "<marker>"`. Search matches loosely, so
    /// the body is checked for the exact marker. The search index lags writes by seconds: callers
    /// must not rely on it alone to dedupe issues created moments ago.
    pub async fn find_by_marker(&self, marker: &str) -> Result<Option<GitHubIssue>, SinkError> {
        let (owner, name) = self.repo()?;
        let query = format!("repo:{owner}/{name} is:issue in:body \"{}\"", marker.replace('"', ""));
        let found = self.search_issues(&query, 10).await?;
        Ok(found.into_iter().find(|issue| issue.body.as_deref().is_some_and(|b| b.contains(marker))))
    }

    /// `GET /search/issues` with a raw query (<https://docs.github.com/en/rest/search/search#search-issues-and-pull-requests>,
    /// 30 requests a minute). Pull requests match too unless the query says `is:issue`.
    pub async fn search_issues(&self, query: &str, per_page: u8) -> Result<Vec<GitHubIssue>, SinkError> {
        #[derive(Deserialize)]
        struct Found {
            items: Vec<GitHubIssue>,
        }
        let mut url = self.url(&["search", "issues"])?;
        url.query_pairs_mut().append_pair("q", query).append_pair("per_page", &per_page.clamp(1, 100).to_string());
        let found: Found = self.call(Method::Get, url, None).await?;
        Ok(found.items)
    }

    /// `GET /search/code` in this repository (<https://docs.github.com/en/rest/search/search#search-code>,
    /// 10 requests a minute): the paths of the files matching `terms` (a quoted phrase), best first.
    pub async fn search_code(&self, terms: &str, per_page: u8) -> Result<Vec<String>, SinkError> {
        #[derive(Deserialize)]
        struct Found {
            items: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            path: String,
        }
        let mut url = self.url(&["search", "code"])?;
        let q = format!("{terms} repo:{}", self.repo);
        url.query_pairs_mut().append_pair("q", &q).append_pair("per_page", &per_page.clamp(1, 100).to_string());
        let found: Found = self.call(Method::Get, url, None).await?;
        Ok(found.items.into_iter().map(|i| i.path).collect())
    }

    /// `POST /repos/{o}/{r}/issues` (<https://docs.github.com/en/rest/issues/issues#create-an-issue>).
    /// Labels that do not exist yet are created by GitHub.
    pub async fn create_issue(&self, title: &str, body: &str, labels: &[String]) -> Result<GitHubIssue, SinkError> {
        let url = self.repo_url(&["issues"])?;
        self.call(Method::Post, url, Some(json!({ "title": title, "body": body, "labels": labels }))).await
    }

    /// `POST /repos/{o}/{r}/issues/{n}/comments` (<https://docs.github.com/en/rest/issues/comments#create-an-issue-comment>).
    pub async fn comment(&self, number: u64, body: &str) -> Result<(), SinkError> {
        let url = self.repo_url(&["issues", &number.to_string(), "comments"])?;
        let _: Value = self.call(Method::Post, url, Some(json!({ "body": body }))).await?;
        Ok(())
    }

    /// Opens or closes an issue (`PATCH /repos/{o}/{r}/issues/{n}`); `reason` is GitHub's
    /// `state_reason`: `completed`, `not_planned` or `reopened`.
    pub async fn set_state(&self, number: u64, open: bool, reason: Option<&str>) -> Result<GitHubIssue, SinkError> {
        let url = self.repo_url(&["issues", &number.to_string()])?;
        let mut body = json!({ "state": if open { "open" } else { "closed" } });
        if let Some(reason) = reason {
            body["state_reason"] = json!(reason);
        }
        self.call(Method::Patch, url, Some(body)).await
    }

    /// One issue; `None` if it does not exist (404) or was deleted or transferred (410).
    pub async fn issue(&self, number: u64) -> Result<Option<GitHubIssue>, SinkError> {
        let url = self.repo_url(&["issues", &number.to_string()])?;
        self.call_optional(Method::Get, url).await
    }

    /// A file's text at `git_ref` (default branch if `None`), decoded from the base64 `content` of
    /// `GET /repos/{o}/{r}/contents/{path}` (<https://docs.github.com/en/rest/repos/contents#get-repository-content>);
    /// `None` if there is no such file. Invalid UTF-8 is replaced; directories and files over the
    /// API's 1 MB inline limit are errors.
    /// Opens a pull request, <https://docs.github.com/en/rest/pulls/pulls#create-a-pull-request>.
    /// If one is already open for `head` (GitHub answers 422), that one is returned instead.
    pub async fn create_pull(&self, new: &NewPull<'_>) -> Result<PullRef, SinkError> {
        let url = self.repo_url(&["pulls"])?;
        let body =
            json!({"title": new.title, "head": new.head, "base": new.base, "body": new.body, "draft": new.draft});
        match self.call::<PullRef>(Method::Post, url, Some(body)).await {
            Ok(pull) => Ok(PullRef { existed: false, ..pull }),
            Err(SinkError::Permanent { reason, .. }) if reason.contains("already exists") => self
                .find_open_pull(new.head)
                .await?
                .map(|pull| PullRef { existed: true, ..pull })
                .ok_or(SinkError::Permanent { service: SERVICE, reason }),
            Err(e) => Err(e),
        }
    }

    /// The open pull request whose head is `branch` (of this repository), if any.
    pub async fn find_open_pull(&self, branch: &str) -> Result<Option<PullRef>, SinkError> {
        let (owner, _) = self.repo()?;
        let mut url = self.repo_url(&["pulls"])?;
        url.query_pairs_mut().append_pair("state", "open").append_pair("head", &format!("{owner}:{branch}"));
        let pulls: Vec<PullHead> = self.call(Method::Get, url, None).await?;
        Ok(pulls.into_iter().find(|p| p.head.git_ref == branch).map(|p| PullRef {
            number: p.number,
            html_url: p.html_url,
            existed: true,
        }))
    }

    pub async fn file_contents(&self, path: &str, git_ref: Option<&str>) -> Result<Option<String>, SinkError> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            encoding: Option<String>,
            #[serde(default)]
            content: String,
        }
        let mut segments = vec!["contents"];
        segments.extend(path.split('/').filter(|s| !s.is_empty()));
        let mut url = self.repo_url(&segments)?;
        if let Some(git_ref) = git_ref {
            url.query_pairs_mut().append_pair("ref", git_ref);
        }
        let Some(answer) = self.call_optional::<Value>(Method::Get, url).await? else {
            return Ok(None);
        };
        if answer.is_array() {
            return Err(permanent(format!("{path} is a directory")));
        }
        let content: Entry =
            serde_json::from_value(answer).map_err(|e| permanent(format!("unexpected contents answer: {e}")))?;
        if content.kind != "file" {
            return Err(permanent(format!("{path} is a {}", content.kind)));
        }
        if content.encoding.as_deref() != Some("base64") {
            return Err(permanent(format!("{path} is too large for the contents API")));
        }
        // GitHub wraps the base64 at 60 columns.
        let packed: String = content.content.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(packed)
            .map_err(|e| permanent(format!("{path}: invalid base64 content: {e}")))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The latest commits that touched `path`, newest first (`GET /repos/{o}/{r}/commits?path=`).
    pub async fn commits_for_path(&self, path: &str, per_page: u8) -> Result<Vec<CommitSummary>, SinkError> {
        #[derive(Deserialize)]
        struct RawCommit {
            sha: String,
            commit: RawCommitDetail,
        }
        #[derive(Deserialize)]
        struct RawCommitDetail {
            #[serde(default)]
            author: Option<RawGitAuthor>,
            #[serde(default)]
            message: String,
        }
        #[derive(Deserialize)]
        struct RawGitAuthor {
            #[serde(default)]
            name: String,
            #[serde(default)]
            date: String,
        }
        let mut url = self.repo_url(&["commits"])?;
        url.query_pairs_mut().append_pair("path", path).append_pair("per_page", &per_page.clamp(1, 100).to_string());
        let commits: Vec<RawCommit> = self.call(Method::Get, url, None).await?;
        Ok(commits
            .into_iter()
            .map(|c| {
                let (author, date) = c.commit.author.map(|a| (a.name, a.date)).unwrap_or_default();
                CommitSummary { sha: c.sha, author, date, message: c.commit.message }
            })
            .collect())
    }

    /// GitHub's GraphQL `blame` of `path` at `expression` (a commit sha, branch or `HEAD`)
    /// (<https://docs.github.com/en/graphql/reference/objects#blame>): each range of lines with the
    /// commit that last changed it. Empty when the expression or the file does not exist there.
    pub async fn blame(&self, path: &str, expression: &str) -> Result<Vec<BlameRange>, SinkError> {
        const QUERY: &str = "query Blame($owner: String!, $name: String!, $expression: String!, $path: String!) { \
            repository(owner: $owner, name: $name) { object(expression: $expression) { ... on Commit { \
            blame(path: $path) { ranges { startingLine endingLine \
            commit { oid committedDate message author { name date } } } } } } } }";
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            data: Option<Value>,
            #[serde(default)]
            errors: Vec<Value>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RawRange {
            starting_line: u32,
            ending_line: u32,
            commit: RawBlameCommit,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RawBlameCommit {
            oid: String,
            #[serde(default)]
            committed_date: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            author: Option<RawBlameAuthor>,
        }
        #[derive(Deserialize)]
        struct RawBlameAuthor {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            date: Option<String>,
        }
        let (owner, name) = self.repo()?;
        let url = self.graphql_url()?;
        let body = json!({"query": QUERY, "variables": {"owner": owner, "name": name, "expression": expression, "path": path}});
        let answer: Answer = self.call(Method::Post, url, Some(body)).await?;
        let ranges = answer.data.as_ref().and_then(|d| d.pointer("/repository/object/blame/ranges")).cloned();
        let Some(ranges) = ranges else {
            // No such commit or file: GitHub answers `object: null` or a NOT_FOUND error.
            let not_found = answer.errors.iter().all(|e| e.get("type").and_then(Value::as_str) == Some("NOT_FOUND"));
            if answer.errors.is_empty() || not_found {
                return Ok(Vec::new());
            }
            let first = answer.errors[0].get("message").and_then(Value::as_str).unwrap_or("GraphQL error");
            return Err(permanent(format!("blame: {}", short(first))));
        };
        let ranges: Vec<RawRange> =
            serde_json::from_value(ranges).map_err(|e| permanent(format!("blame: unexpected answer: {e}")))?;
        Ok(ranges
            .into_iter()
            .map(|r| {
                let author = r.commit.author.unwrap_or(RawBlameAuthor { name: None, date: None });
                BlameRange {
                    start: r.starting_line,
                    end: r.ending_line,
                    commit: CommitSummary {
                        sha: r.commit.oid,
                        author: author.name.unwrap_or_default(),
                        date: author.date.unwrap_or(r.commit.committed_date),
                        message: r.commit.message,
                    },
                }
            })
            .collect())
    }

    /// `{api_base}/graphql`; GitHub Enterprise's `…/api/v3` serves it at `…/api/graphql`.
    fn graphql_url(&self) -> Result<Url, SinkError> {
        let base = self.api_base.trim_end_matches('/');
        let url = match base.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/graphql"),
            None => format!("{base}/graphql"),
        };
        Url::parse(&url).map_err(|e| permanent(format!("GITHUB_API_BASE: {e}")))
    }

    fn repo(&self) -> Result<(&str, &str), SinkError> {
        match self.repo.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => Ok((owner, name)),
            _ => Err(permanent(format!("GITHUB_REPO must be owner/name, not {:?}", self.repo))),
        }
    }

    /// `api_base` plus percent-encoded path segments.
    fn url(&self, segments: &[&str]) -> Result<Url, SinkError> {
        let mut url = Url::parse(&self.api_base).map_err(|e| permanent(format!("GITHUB_API_BASE: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| permanent("GITHUB_API_BASE cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `POST /repos/{repo}/dispatches`
    /// (<https://docs.github.com/en/rest/repos/repos#create-a-repository-dispatch-event>): `204` when
    /// the `repository_dispatch` event was created.
    pub async fn repository_dispatch(&self, event_type: &str, client_payload: Value) -> Result<(), SinkError> {
        let url = self.repo_url(&["dispatches"])?;
        let body = json!({"event_type": event_type, "client_payload": client_payload});
        let response = self.send(Method::Post, &url, Some(body)).await?;
        check(&response).map_err(|e| redact(e, &self.token))
    }

    fn repo_url(&self, segments: &[&str]) -> Result<Url, SinkError> {
        let (owner, name) = self.repo()?;
        let mut all = vec!["repos", owner, name];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    fn request(&self, method: Method, url: &Url, body: Option<Value>) -> HttpRequest {
        let request = HttpRequest::new(method, url.as_str())
            .header("user-agent", USER_AGENT)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .header("authorization", format!("Bearer {}", self.token));
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    }

    async fn send(&self, method: Method, url: &Url, body: Option<Value>) -> Result<HttpResponse, SinkError> {
        self.port.send(self.request(method, url, body)).await.map_err(|e| SinkError::transport(SERVICE, &e))
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, url: Url, body: Option<Value>) -> Result<T, SinkError> {
        let response = self.send(method, &url, body).await?;
        check(&response).map_err(|e| redact(e, &self.token))?;
        parse(&response)
    }

    /// Like `call`, with 404 and 410 meaning "no such thing".
    async fn call_optional<T: DeserializeOwned>(&self, method: Method, url: Url) -> Result<Option<T>, SinkError> {
        let response = self.send(method, &url, None).await?;
        if matches!(response.status, 404 | 410) {
            return Ok(None);
        }
        check(&response).map_err(|e| redact(e, &self.token))?;
        parse(&response).map(Some)
    }
}

fn permanent(reason: impl Into<String>) -> SinkError {
    SinkError::Permanent { service: SERVICE, reason: reason.into() }
}

fn parse<T: DeserializeOwned>(response: &HttpResponse) -> Result<T, SinkError> {
    serde_json::from_slice(&response.body).map_err(|e| permanent(format!("unexpected answer: {e}")))
}

/// GitHub's error body (<https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api>).
#[derive(Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<Value>,
}

/// `Ok` for 2xx; otherwise whether retrying can help, with GitHub's own words.
fn check(response: &HttpResponse) -> Result<(), SinkError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let error = serde_json::from_slice::<ErrorBody>(&response.body).unwrap_or_default();
    let message = if error.message.is_empty() { format!("HTTP {status}") } else { short(&error.message) };
    let transient = |reason: String, retry_after| SinkError::Transient { service: SERVICE, reason, retry_after };

    let primary_limit = response.header("x-ratelimit-remaining").is_some_and(|v| v.trim() == "0");
    let secondary_limit =
        response.header("retry-after").is_some() || error.message.to_ascii_lowercase().contains("secondary rate limit");
    if status == 429 || (status == 403 && (primary_limit || secondary_limit)) {
        let wait = retry_after(response, primary_limit)
            .or((status == 429 || secondary_limit).then_some(RetryAfter::from_ms(SECONDARY_LIMIT_WAIT_MS)));
        return Err(transient(format!("rate limited: {message}"), wait));
    }
    if status >= 500 {
        return Err(transient(format!("HTTP {status}: {message}"), None));
    }
    let reason = match status {
        401 => format!("401 bad credentials: {message}"),
        422 => match error.errors.first().and_then(error_text) {
            Some(first) => format!("422 {message}: {}", short(&first)),
            None => format!("422 {message}"),
        },
        _ => format!("HTTP {status}: {message}"),
    };
    Err(permanent(reason))
}

/// One entry of a 422's `errors`: a `message`, or `resource.field code`, or a bare string.
fn error_text(entry: &Value) -> Option<String> {
    if let Some(text) = entry.as_str() {
        return Some(text.to_owned());
    }
    if let Some(message) = entry.get("message").and_then(Value::as_str) {
        return Some(message.to_owned());
    }
    let part = |key| entry.get(key).and_then(Value::as_str).unwrap_or("");
    let code = part("code");
    (!code.is_empty()).then(|| format!("{}.{} {code}", part("resource"), part("field")))
}

/// `retry-after` (seconds or a date) first, as GitHub asks; else, for an exhausted primary limit,
/// `x-ratelimit-reset` (epoch seconds) read against the response's `Date`.
fn retry_after(response: &HttpResponse, primary_limit: bool) -> Option<RetryAfter> {
    let now_ms = response.header("date").and_then(parse_http_date_ms);
    if let Some(value) = response.header("retry-after") {
        // Without a Date only delta-seconds can be read; `u64::MAX` makes any HTTP-date "past".
        return parse_retry_after(value, now_ms.unwrap_or(u64::MAX));
    }
    let reset = response.header("x-ratelimit-reset").filter(|_| primary_limit)?;
    RetryAfter::from_reset_epoch(reset, now_ms?)
}

fn short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Error texts quote GitHub's answers; make sure none carries the token.
fn redact(error: SinkError, secret: &str) -> SinkError {
    let scrub = |reason: String| if secret.is_empty() { reason } else { reason.replace(secret, "[redacted]") };
    match error {
        SinkError::Transient { service, reason, retry_after } => {
            SinkError::Transient { service, reason: scrub(reason), retry_after }
        }
        SinkError::Permanent { service, reason } => SinkError::Permanent { service, reason: scrub(reason) },
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use serde_json::json;

    use super::*;
    use crate::clients::http::TransportError;
    use crate::clients::linear::recording::{RecordingPort, answer, answer_with, body_json, fixture, header, secret};

    const DATE: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    const DATE_SECS: u64 = 1_445_412_480;

    fn token() -> String {
        secret(&["ghp", ""].join("_"))
    }

    fn github(port: &RecordingPort) -> GitHub<'_, RecordingPort> {
        GitHub::new(port, token(), "octokit-fixture-org/search-issues").with_api_base("http://gh.test")
    }

    /// The recorded response of an octokit fixture scenario (`index`-th request).
    fn octokit(scenario: &str, index: usize) -> String {
        let all: Value =
            serde_json::from_str(&fixture(&format!("github/octokit_fixtures/{scenario}.normalized-fixture.json")))
                .unwrap();
        all[index]["response"].to_string()
    }

    fn issue_json(number: u64, body: &str) -> Value {
        json!({"number": number, "html_url": format!("https://github.com/o/r/issues/{number}"),
               "title": "t", "state": "open", "body": body, "labels": []})
    }

    fn assert_github_headers(request: &HttpRequest) {
        assert_eq!(header(request, "user-agent"), Some(concat!("bugbot/", env!("CARGO_PKG_VERSION"))));
        assert_eq!(header(request, "accept"), Some("application/vnd.github+json"));
        assert_eq!(header(request, "x-github-api-version"), Some("2022-11-28"));
        assert_eq!(header(request, "authorization"), Some(format!("Bearer {}", token()).as_str()));
    }

    #[test]
    fn search_parses_the_recorded_answer_and_encodes_the_query() {
        let port = RecordingPort::new([answer(200, &octokit("search-issues", 0))]);
        let found = block_on(github(&port).search_issues("sesame repo:octokit-fixture-org/search-issues", 5)).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].number, 2);
        assert_eq!(found[0].title, "Sesame seeds split without a pop!");
        assert_eq!(found[0].html_url, "https://github.com/octokit-fixture-org/search-issues/issues/2");
        assert_eq!(found[0].state, "open");
        assert!(found[0].body.as_deref().unwrap().contains("no pop"));

        let request = port.only();
        assert_eq!(request.method, Method::Get);
        assert_eq!(
            request.url,
            "http://gh.test/search/issues?q=sesame+repo%3Aoctokit-fixture-org%2Fsearch-issues&per_page=5"
        );
        assert_github_headers(&request);
        assert!(request.body.is_none());
    }

    #[test]
    fn find_by_marker_searches_the_body_and_confirms_the_exact_marker() {
        let marker = "<!-- bugbot:fingerprint=29f7ffc4903a8a990408b80a3b4c95a2 -->";
        let items = json!({"total_count": 2, "incomplete_results": false, "items": [
            issue_json(3, "<!-- bugbot:fingerprint=29f7ffc4903a8a990408b80a3b4c95a2-other -->"),
            issue_json(4, &format!("body\n\n{marker}")),
        ]});
        let port = RecordingPort::new([
            answer(200, &items.to_string()),
            answer(200, r#"{"total_count":0,"incomplete_results":false,"items":[]}"#),
        ]);
        let gh = github(&port);
        assert_eq!(block_on(gh.find_by_marker(marker)).unwrap().map(|i| i.number), Some(4));
        assert_eq!(block_on(gh.find_by_marker(marker)).unwrap(), None);

        let url = Url::parse(&port.requests()[0].url).unwrap();
        assert_eq!(url.path(), "/search/issues");
        let q = url.query_pairs().find(|(k, _)| k == "q").map(|(_, v)| v.into_owned());
        assert_eq!(
            q.as_deref(),
            Some(format!("repo:octokit-fixture-org/search-issues is:issue in:body \"{marker}\"").as_str())
        );
        assert!(!port.requests()[0].url.contains(' ') && !port.requests()[0].url.contains('"'));
    }

    #[test]
    fn create_issue_posts_title_body_labels() {
        let port = RecordingPort::new([answer(201, &octokit("add-labels-to-issue", 0))]);
        let labels = ["bug".to_owned(), "sentry".to_owned()];
        let issue = block_on(github(&port).create_issue("Issue without a label", "the body", &labels)).unwrap();
        assert_eq!(issue.number, 1);
        assert_eq!(issue.html_url, "https://github.com/octokit-fixture-org/add-labels-to-issue/issues/1");

        let request = port.only();
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, "http://gh.test/repos/octokit-fixture-org/search-issues/issues");
        assert_github_headers(&request);
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        assert_eq!(
            body_json(&request),
            json!({"title": "Issue without a label", "body": "the body", "labels": labels})
        );
    }

    #[test]
    fn comment_state_and_lookup() {
        let port = RecordingPort::new([
            answer(201, r#"{"id": 1, "body": "again"}"#),
            answer(
                200,
                &json!({"number": 7, "html_url": "h", "title": "t", "state": "closed", "body": null}).to_string(),
            ),
            answer(200, &issue_json(7, "b").to_string()),
            answer(200, &issue_json(7, "b").to_string()),
            answer(404, r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}"#),
        ]);
        let gh = github(&port);
        block_on(gh.comment(7, "again")).unwrap();
        let closed = block_on(gh.set_state(7, false, Some("completed"))).unwrap();
        assert_eq!((closed.state.as_str(), closed.body.as_deref()), ("closed", None));
        block_on(gh.set_state(7, true, None)).unwrap();
        assert_eq!(block_on(gh.issue(7)).unwrap().map(|i| i.number), Some(7));
        assert_eq!(block_on(gh.issue(8)).unwrap(), None);

        let requests = port.requests();
        assert_eq!(requests[0].url, "http://gh.test/repos/octokit-fixture-org/search-issues/issues/7/comments");
        assert_eq!(body_json(&requests[0]), json!({"body": "again"}));
        assert_eq!(requests[1].method, Method::Patch);
        assert_eq!(body_json(&requests[1]), json!({"state": "closed", "state_reason": "completed"}));
        assert_eq!(body_json(&requests[2]), json!({"state": "open"}));
        assert_eq!(
            (requests[3].method, requests[3].url.as_str()),
            (Method::Get, "http://gh.test/repos/octokit-fixture-org/search-issues/issues/7")
        );
        requests.iter().for_each(assert_github_headers);
    }

    #[test]
    fn file_contents_decodes_wrapped_base64_and_encodes_the_path() {
        let text = "fn main() {\n    println!(\"héllo\");\n}\n".repeat(4);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&text);
        let wrapped: Vec<String> =
            encoded.as_bytes().chunks(60).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let file = json!({"type": "file", "encoding": "base64", "name": "main.rs", "path": "src/main.rs",
                          "content": wrapped.join("\n") + "\n"});
        let port = RecordingPort::new([
            answer(200, &file.to_string()),
            answer(404, r#"{"message":"Not Found"}"#),
            answer(200, r#"[{"type":"file","name":"a"}]"#),
            answer(200, r#"{"type":"file","encoding":"none","content":""}"#),
        ]);
        let gh = github(&port);
        assert_eq!(block_on(gh.file_contents("src/main.rs", Some("fix/a b"))).unwrap(), Some(text));
        assert_eq!(block_on(gh.file_contents("missing.rs", None)).unwrap(), None);
        assert!(!block_on(gh.file_contents("src", None)).unwrap_err().is_transient());
        assert!(block_on(gh.file_contents("big.bin", None)).unwrap_err().to_string().contains("too large"));

        let requests = port.requests();
        assert_eq!(
            requests[0].url,
            "http://gh.test/repos/octokit-fixture-org/search-issues/contents/src/main.rs?ref=fix%2Fa+b"
        );
        assert_eq!(requests[1].url, "http://gh.test/repos/octokit-fixture-org/search-issues/contents/missing.rs");
    }

    #[test]
    fn commits_for_path() {
        let commits = json!([{
            "sha": "0000000000000000000000000000000000000001",
            "commit": {"author": {"name": "Ada", "email": "ada@example.com", "date": "2024-05-01T10:00:00Z"},
                       "committer": {"name": "GitHub", "date": "2024-05-01T10:00:01Z"},
                       "message": "Fix the divide\n\nDetails."},
            "author": {"login": "ada"}
        }]);
        let port = RecordingPort::new([answer(200, &commits.to_string())]);
        let found = block_on(github(&port).commits_for_path("app/views.py", 3)).unwrap();
        assert_eq!(
            found,
            [CommitSummary {
                sha: "0000000000000000000000000000000000000001".into(),
                author: "Ada".into(),
                date: "2024-05-01T10:00:00Z".into(),
                message: "Fix the divide\n\nDetails.".into(),
            }]
        );
        assert_eq!(
            port.only().url,
            "http://gh.test/repos/octokit-fixture-org/search-issues/commits?path=app%2Fviews.py&per_page=3"
        );
    }

    fn failure(answer: Result<HttpResponse, TransportError>) -> SinkError {
        let port = RecordingPort::new([answer]);
        block_on(github(&port).create_issue("t", "b", &[])).unwrap_err()
    }

    fn delay(error: &SinkError) -> Option<u64> {
        match error {
            SinkError::Transient { retry_after, .. } => retry_after.map(|r| r.delay_ms),
            SinkError::Permanent { .. } => panic!("expected transient, got {error}"),
        }
    }

    #[test]
    fn rate_limits_are_transient_with_the_right_delay() {
        let secondary = r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest"}"#;
        assert_eq!(delay(&failure(answer_with(403, &[("retry-after", "30")], secondary))), Some(30_000));
        assert_eq!(delay(&failure(answer_with(429, &[("retry-after", "7")], secondary))), Some(7_000));
        assert_eq!(delay(&failure(answer(403, secondary))), Some(60_000), "no header: at least a minute");
        assert_eq!(delay(&failure(answer(429, ""))), Some(60_000));

        let reset = (DATE_SECS + 90).to_string();
        let primary = [("date", DATE), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset.as_str())];
        let e = failure(answer_with(403, &primary, r#"{"message":"API rate limit exceeded for user ID 1."}"#));
        assert_eq!(delay(&e), Some(90_000));
        assert!(e.to_string().contains("API rate limit exceeded"), "{e}");

        // GitHub sends x-ratelimit-reset on every answer: it means nothing while requests remain.
        let plenty = [("date", DATE), ("x-ratelimit-remaining", "4999"), ("x-ratelimit-reset", reset.as_str())];
        let forbidden = failure(answer_with(403, &plenty, r#"{"message":"Resource not accessible by integration"}"#));
        assert!(!forbidden.is_transient(), "{forbidden}");
    }

    #[test]
    fn server_errors_and_timeouts_are_transient() {
        assert_eq!(delay(&failure(answer(502, "<html>Bad gateway</html>"))), None);
        assert_eq!(delay(&failure(answer(500, r#"{"message":"Server Error"}"#))), None);
        assert!(failure(Err(TransportError::Connect("refused".into()))).is_transient());
    }

    #[test]
    fn validation_and_auth_failures_are_permanent() {
        let e = failure(answer(422, &octokit("errors", 0)));
        assert!(!e.is_transient());
        assert_eq!(e.to_string(), "github: 422 Validation Failed: Label.color invalid");

        let pr_exists = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for o:fix."}]}"#;
        assert_eq!(
            failure(answer(422, pr_exists)).to_string(),
            "github: 422 Validation Failed: A pull request already exists for o:fix."
        );

        let e = failure(answer(
            401,
            r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#,
        ));
        assert!(!e.is_transient() && e.to_string().contains("Bad credentials"), "{e}");
        assert!(!failure(answer(404, r#"{"message":"Not Found"}"#)).is_transient());

        let echo = json!({"message": format!("token {} is revoked", token())});
        let e = failure(answer(401, &echo.to_string()));
        assert!(!e.to_string().contains(&token()) && !format!("{e:?}").contains(&token()), "{e}");
    }

    #[test]
    fn a_malformed_repo_or_base_is_permanent_and_sends_nothing() {
        let port = RecordingPort::new([]);
        let gh = GitHub::new(&port, token(), "just-a-name");
        assert!(!block_on(gh.create_issue("t", "b", &[])).unwrap_err().is_transient());
        let gh = GitHub::new(&port, token(), "o/r").with_api_base("not a url");
        assert!(!block_on(gh.comment(1, "b")).unwrap_err().is_transient());
        assert!(port.requests().is_empty());
        assert!(!format!("{gh:?}").contains(&token()));
    }

    #[test]
    fn an_enterprise_base_keeps_its_path() {
        let port = RecordingPort::new([answer(201, &issue_json(1, "b").to_string())]);
        let gh = GitHub::new(&port, token(), "o/r").with_api_base("https://ghe.example/api/v3/");
        block_on(gh.create_issue("t", "b", &[])).unwrap();
        assert_eq!(port.only().url, "https://ghe.example/api/v3/repos/o/r/issues");
    }
}
