//! Linear, over its GraphQL API (<https://developers.linear.app/docs/graphql/working-with-the-graphql-api>).
//!
//! Every operation is one `POST` of `{query, variables, operationName}`; the query texts are valid
//! against `fixtures/linear/schema.graphql` and follow the shapes in `fixtures/linear/requests`.
//! Linear reports failures in `errors[].extensions.type` whatever the HTTP status
//! (<https://developers.linear.app/docs/graphql/working-with-the-graphql-api/rate-limiting>), so the
//! body is classified before the status.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use bugbot_shared::backoff::{RetryAfter, parse_http_date_ms, parse_retry_after};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::SinkError;
use crate::clients::http::{HttpPort, HttpRequest, HttpResponse, Method};

const SERVICE: &str = "linear";

/// The names [`Linear::ensure_labels`] looks up: trimmed, blanks dropped, the first spelling of each
/// name (compared case-insensitively, like Linear's own uniqueness rule) kept, in order.
fn wanted_labels(names: &[String]) -> Vec<&str> {
    let mut wanted: Vec<&str> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !wanted.iter().any(|w| w.eq_ignore_ascii_case(name)) {
            wanted.push(name);
        }
    }
    wanted
}

/// Label ids by team and lower-case name, kept for the isolate's life by the runtime
/// ([`Memo`](crate::store::memo::Memo)), so that an alert asks Linear for its labels
/// (`IssueLabels`) only when one of their names is new to the isolate: one request fewer per alert,
/// and one less against Linear's hourly request budget. A label deleted in Linear since is noticed
/// by the create that names its id, which Linear refuses; the alert handler then forgets the team's
/// ids and asks once more (`handlers/alert`). At most [`LabelCache::MAX`] ids are kept.
#[derive(Debug, Default)]
pub struct LabelCache(RefCell<HashMap<(String, String), String>>);

impl LabelCache {
    /// The most ids kept; past it the cache starts again empty (alerts carry three labels, from a
    /// handful of values each).
    pub const MAX: usize = 256;

    fn ids(&self, team_id: &str, wanted: &[&str]) -> Option<Vec<String>> {
        let known = self.0.borrow();
        wanted.iter().map(|name| known.get(&(team_id.to_owned(), name.to_lowercase())).cloned()).collect()
    }

    fn remember(&self, team_id: &str, wanted: &[&str], ids: &[String]) {
        let mut known = self.0.borrow_mut();
        if known.len() + wanted.len() > Self::MAX {
            known.clear();
        }
        for (name, id) in wanted.iter().zip(ids) {
            known.insert((team_id.to_owned(), name.to_lowercase()), id.clone());
        }
    }

    /// Drops every id known for `team_id`.
    pub fn forget(&self, team_id: &str) {
        self.0.borrow_mut().retain(|(team, _), _| team != team_id);
    }
}

/// Where the API lives unless `LINEAR_API_URL` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.linear.app/graphql";

const USER_AGENT: &str = concat!("bugbot/", env!("CARGO_PKG_VERSION"));

/// A Linear client for one personal API key.
pub struct Linear<'a, P> {
    pub port: &'a P,
    /// `LINEAR_API_URL`, default [`DEFAULT_API_URL`].
    pub api_url: String,
    /// A personal API key, sent as `Authorization: <key>` (no `Bearer`).
    pub api_key: String,
}

impl<P> fmt::Debug for Linear<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Linear").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

/// An issue, as far as bugbot reads it
/// (<https://studio.apollographql.com/public/Linear-API/variant/current/schema/reference/objects/Issue>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearIssue {
    /// UUID.
    pub id: String,
    /// Human id, `ENG-123`.
    pub identifier: String,
    pub url: String,
    pub title: String,
    /// The workflow state's type (`triage`, `backlog`, `unstarted`, `started`, `completed`, `canceled`).
    pub state_type: Option<String>,
    /// The Markdown description (fetched by `issue` only).
    pub description: Option<String>,
}

/// The input of `issueCreate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLinearIssue {
    pub team_id: String,
    pub title: String,
    /// Markdown.
    pub description: String,
    /// 0 none, 1 urgent, 2 high, 3 medium, 4 low.
    pub priority: u8,
    pub label_ids: Vec<String>,
    /// A client-chosen id (a UUID), so that a retry can look the issue up after a lost response.
    pub id: Option<String>,
}

/// The type of a workflow state (<https://linear.app/docs/configuring-workflows>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateType {
    Triage,
    Backlog,
    Unstarted,
    Started,
    Completed,
    Canceled,
}

impl StateType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Triage => "triage",
            Self::Backlog => "backlog",
            Self::Unstarted => "unstarted",
            Self::Started => "started",
            Self::Completed => "completed",
            Self::Canceled => "canceled",
        }
    }
}

impl AsRef<str> for StateType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `IssueFile` document ([`Linear::file_issue`]): `issueCreate`, then, on the id the create
/// was given, `attachmentLinkURL` (`link`) and `commentCreate` (`comment`) when there are a link and
/// a first comment. A document declares only the variables it uses (GraphQL refuses an unused one),
/// so each combination is a document of its own.
macro_rules! issue_file {
    ($($part:ident),*) => {
        concat!(
            "mutation IssueFile($input: IssueCreateInput!", $(issue_file!(@variables $part),)* ") { ",
            issue_file!(@create), $(issue_file!(@field $part),)* " }"
        )
    };
    (@create) => { "issueCreate(input: $input) { success lastSyncId issue { id identifier title url state { type } } }" };
    (@variables link) => { ", $issueId: String!, $url: String!, $title: String" };
    (@field link) => { " attachmentLinkURL(issueId: $issueId, url: $url, title: $title) { success }" };
    (@variables comment) => { ", $comment: CommentCreateInput!" };
    (@field comment) => { " commentCreate(input: $comment) { success }" };
}
const ISSUES_BY_ATTACHMENT: &str = "query IssuesByAttachment($url: String!) { issues(first: 5, filter: { attachments: { url: { eq: $url } } }) { nodes { id identifier title url state { type } } } }";
const ISSUE_CREATE: &str = concat!("mutation IssueCreate($input: IssueCreateInput!) { ", issue_file!(@create), " }");
const ISSUE_LABELS: &str = "query IssueLabels($filter: IssueLabelFilter) { issueLabels(first: 250, filter: $filter) { nodes { id name isGroup team { id } } } }";
const ISSUE_LABEL_CREATE: &str = "mutation IssueLabelCreate($input: IssueLabelCreateInput!) { issueLabelCreate(input: $input) { success issueLabel { id name } } }";
const ATTACHMENT_LINK_URL: &str = "mutation AttachmentLinkURL($issueId: String!, $url: String!, $title: String) { attachmentLinkURL(issueId: $issueId, url: $url, title: $title) { success attachment { id url title } } }";
const COMMENT_CREATE: &str = "mutation CommentCreate($input: CommentCreateInput!) { commentCreate(input: $input) { success comment { id url } } }";
const ISSUE: &str =
    "query Issue($id: String!) { issue(id: $id) { id identifier title url description state { type } } }";
const SEARCH_ISSUES: &str = "query SearchIssues($term: String!, $first: Int) { searchIssues(term: $term, first: $first) { nodes { id identifier title url state { type } } } }";
const WORKFLOW_STATES: &str = "query WorkflowStates($teamId: ID!, $type: String!) { workflowStates(filter: { team: { id: { eq: $teamId } }, type: { eq: $type } }) { nodes { id name type position } } }";
const ISSUE_UPDATE: &str = "mutation IssueUpdate($id: String!, $input: IssueUpdateInput!) { issueUpdate(id: $id, input: $input) { success issue { id identifier title url state { type } } } }";

const ISSUE_FILE: &str = issue_file!();
const ISSUE_FILE_LINK: &str = issue_file!(link);
const ISSUE_FILE_COMMENT: &str = issue_file!(comment);
const ISSUE_FILE_LINK_COMMENT: &str = issue_file!(link, comment);

/// Every query this module sends (checked against the schema by the tests' tooling).
pub const OPERATIONS: [&str; 14] = [
    ISSUES_BY_ATTACHMENT,
    ISSUE_CREATE,
    ISSUE_LABELS,
    ISSUE_LABEL_CREATE,
    ATTACHMENT_LINK_URL,
    COMMENT_CREATE,
    ISSUE,
    SEARCH_ISSUES,
    WORKFLOW_STATES,
    ISSUE_UPDATE,
    ISSUE_FILE,
    ISSUE_FILE_LINK,
    ISSUE_FILE_COMMENT,
    ISSUE_FILE_LINK_COMMENT,
];

/// The source an issue is linked to when it is filed (`attachmentLinkURL`'s `url` and `title`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLink<'a> {
    pub url: &'a str,
    pub title: &'a str,
}

/// Why [`Linear::file_issue`] failed, and so what exists. Its one request runs `issueCreate`,
/// `attachmentLinkURL` and `commentCreate` in that order (GraphQL executes a mutation's root fields
/// one after another), and stops at the first that fails: their payloads are non-null, so that
/// error nulls the whole `data`, and it names its field in `errors[].path`.
#[derive(Debug, Clone, PartialEq)]
pub enum FilingError {
    /// The answer does not say which field failed (a transport error, a 5xx or 429, a rate limit,
    /// an error without a `path`): treat it as the whole request failing. Whether the create took
    /// effect is unknown, so a retry looks the issue up by its id.
    Request(SinkError),
    /// `issueCreate` failed: nothing was filed.
    Create(SinkError),
    /// The issue exists; its source link failed (and the comment did not run).
    Link(SinkError),
    /// The issue and its link exist; the first comment failed. `issue` is Linear's answer when it
    /// gave one (`success: false`), `None` when the error nulled `data` (read the issue by its id).
    Comment { error: SinkError, issue: Option<LinearIssue> },
}

impl FilingError {
    /// Linear refused the create, or the whole request, for good: nothing was filed (a refusal is
    /// never a lost response). A label deleted since its id was cached looks like this.
    pub fn is_refused_create(&self) -> bool {
        matches!(self, Self::Create(SinkError::Permanent { .. }) | Self::Request(SinkError::Permanent { .. }))
    }

    /// The error, whichever part it came from.
    pub fn into_sink(self) -> SinkError {
        match self {
            Self::Request(e) | Self::Create(e) | Self::Link(e) | Self::Comment { error: e, .. } => e,
        }
    }
}

/// The root fields of `IssueFile`, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FilingPart {
    Create,
    Link,
    Comment,
}

impl FilingPart {
    fn of_field(field: &str) -> Option<Self> {
        match field {
            "issueCreate" => Some(Self::Create),
            "attachmentLinkURL" => Some(Self::Link),
            "commentCreate" => Some(Self::Comment),
            _ => None,
        }
    }
}

impl<'a, P: HttpPort> Linear<'a, P> {
    /// A client for the production API.
    pub fn new(port: &'a P, api_key: impl Into<String>) -> Self {
        Self { port, api_url: DEFAULT_API_URL.to_owned(), api_key: api_key.into() }
    }

    /// The same client against another endpoint (`LINEAR_API_URL`).
    #[must_use]
    pub fn with_api_url(mut self, api_url: impl Into<String>) -> Self {
        self.api_url = api_url.into();
        self
    }

    /// The issue that has an attachment with exactly this URL (bugbot links every issue it creates
    /// to its source, so this is the dedupe lookup).
    pub async fn find_by_attachment_url(&self, url: &str) -> Result<Option<LinearIssue>, SinkError> {
        let data: IssuesData = self.graphql("IssuesByAttachment", ISSUES_BY_ATTACHMENT, json!({ "url": url })).await?;
        Ok(data.issues.nodes.into_iter().next().map(Into::into))
    }

    /// `issueCreate` (<https://developers.linear.app/docs/graphql/working-with-the-graphql-api#creating-and-editing-issues>).
    pub async fn create_issue(&self, issue: &NewLinearIssue) -> Result<LinearIssue, SinkError> {
        let data: IssueCreateData =
            self.graphql("IssueCreate", ISSUE_CREATE, json!({ "input": issue_input(issue) })).await?;
        let payload = data.issue_create;
        created(payload.success, payload.issue, "issueCreate").map(Into::into)
    }

    /// Files an issue in one request (`IssueFile`): `issueCreate` with `issue.id` (required: the
    /// other fields name the issue by it), then its source link (`attachmentLinkURL`) and its first
    /// comment (`commentCreate`) when given. A failure says which part failed ([`FilingError`]):
    /// the parts before it took effect, the ones after it did not run.
    pub async fn file_issue(
        &self,
        issue: &NewLinearIssue,
        link: Option<SourceLink<'_>>,
        comment: Option<&str>,
    ) -> Result<LinearIssue, FilingError> {
        let Some(id) = issue.id.as_deref() else {
            return Err(FilingError::Create(permanent("IssueFile needs the issue's id")));
        };
        let mut variables = json!({ "input": issue_input(issue) });
        if let Some(link) = link {
            variables["issueId"] = json!(id);
            variables["url"] = json!(link.url);
            variables["title"] = json!(link.title);
        }
        if let Some(body) = comment {
            variables["comment"] = json!({ "issueId": id, "body": body });
        }
        let query = match (link.is_some(), comment.is_some()) {
            (false, false) => ISSUE_FILE,
            (true, false) => ISSUE_FILE_LINK,
            (false, true) => ISSUE_FILE_COMMENT,
            (true, true) => ISSUE_FILE_LINK_COMMENT,
        };
        let response = self.send("IssueFile", query, variables).await.map_err(FilingError::Request)?;
        let data = match classify(&response) {
            Ok(data) => data,
            Err(failure) => {
                let error = failure.redact(&self.api_key).into_sink();
                return Err(match failed_fields(&response).and_then(|fields| fields.into_iter().min()) {
                    Some(FilingPart::Create) => FilingError::Create(error),
                    Some(FilingPart::Link) => FilingError::Link(error),
                    Some(FilingPart::Comment) => FilingError::Comment { error, issue: None },
                    None => FilingError::Request(error),
                });
            }
        };
        let data: IssueFileData = serde_json::from_value(data)
            .map_err(|e| FilingError::Request(permanent(format!("unexpected IssueFile answer: {e}"))))?;
        let payload = data.issue_create;
        let issue: LinearIssue =
            created(payload.success, payload.issue, "issueCreate").map_err(FilingError::Create)?.into();
        if link.is_some() {
            let linked = data.attachment_link_url.is_some_and(|p| p.success);
            success(linked, "attachmentLinkURL").map_err(FilingError::Link)?;
        }
        if comment.is_some() {
            let commented = data.comment_create.is_some_and(|p| p.success);
            if let Err(error) = success(commented, "commentCreate") {
                return Err(FilingError::Comment { error, issue: Some(issue) });
            }
        }
        Ok(issue)
    }

    /// The ids of labels with these names usable in `team_id` (the team's own or workspace labels),
    /// creating the missing ones as team labels. Names match case-insensitively, like Linear's own
    /// uniqueness rule; the result follows `names`, without duplicates.
    pub async fn ensure_labels(&self, team_id: &str, names: &[String]) -> Result<Vec<String>, SinkError> {
        let wanted = wanted_labels(names);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let filter: Vec<Value> = wanted.iter().map(|n| json!({ "name": { "eqIgnoreCase": n } })).collect();
        let data: IssueLabelsData =
            self.graphql("IssueLabels", ISSUE_LABELS, json!({ "filter": { "or": filter } })).await?;
        let usable = |label: &&RawLabel| !label.is_group && label.team.as_ref().is_none_or(|team| team.id == team_id);
        let mut ids = Vec::with_capacity(wanted.len());
        for name in wanted {
            // A team label wins over a workspace label of the same name.
            let existing = data
                .issue_labels
                .nodes
                .iter()
                .filter(usable)
                .filter(|l| l.name.eq_ignore_ascii_case(name))
                .max_by_key(|l| l.team.is_some());
            let id = if let Some(label) = existing {
                label.id.clone()
            } else {
                let input = json!({ "name": name, "teamId": team_id });
                let made: Result<IssueLabelCreateData, SinkError> =
                    self.graphql("IssueLabelCreate", ISSUE_LABEL_CREATE, json!({ "input": input })).await;
                match made {
                    Ok(data) => {
                        let payload = data.issue_label_create;
                        created(payload.success, payload.issue_label, "issueLabelCreate")?.id
                    }
                    // Another job (alerts are processed concurrently) created it since the lookup.
                    Err(SinkError::Permanent { reason, .. })
                        if reason.to_ascii_lowercase().contains("duplicate label name") =>
                    {
                        let filter = json!({ "name": { "eqIgnoreCase": name } });
                        let again: IssueLabelsData =
                            self.graphql("IssueLabels", ISSUE_LABELS, json!({ "filter": filter })).await?;
                        let found = again.issue_labels.nodes.iter().filter(usable).max_by_key(|l| l.team.is_some());
                        match found {
                            Some(label) => label.id.clone(),
                            None => return Err(SinkError::Permanent { service: "linear", reason }),
                        }
                    }
                    Err(e) => return Err(e),
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    /// [`Self::ensure_labels`] through `cache`: no request when every name's id is known to it.
    /// The flag says whether the ids came from the cache (a create refusing them should then
    /// [`LabelCache::forget`] the team's and ask again).
    pub async fn labels_through(
        &self,
        cache: &LabelCache,
        team_id: &str,
        names: &[String],
    ) -> Result<(Vec<String>, bool), SinkError> {
        let wanted = wanted_labels(names);
        if let Some(ids) = cache.ids(team_id, &wanted) {
            return Ok((ids, true));
        }
        let ids = self.ensure_labels(team_id, names).await?;
        cache.remember(team_id, &wanted, &ids);
        Ok((ids, false))
    }

    /// Links `url` to the issue (`attachmentLinkURL`); `issue_id` is a UUID or `ENG-123`.
    pub async fn attach_link(&self, issue_id: &str, url: &str, title: &str) -> Result<(), SinkError> {
        let variables = json!({ "issueId": issue_id, "url": url, "title": title });
        let data: AttachmentLinkData = self.graphql("AttachmentLinkURL", ATTACHMENT_LINK_URL, variables).await?;
        success(data.attachment_link_url.success, "attachmentLinkURL")
    }

    /// Adds a Markdown comment (`commentCreate`); `issue_id` is a UUID or `ENG-123`.
    pub async fn comment(&self, issue_id: &str, body: &str) -> Result<(), SinkError> {
        let input = json!({ "issueId": issue_id, "body": body });
        let data: CommentCreateData = self.graphql("CommentCreate", COMMENT_CREATE, json!({ "input": input })).await?;
        success(data.comment_create.success, "commentCreate")
    }

    /// One issue by UUID or identifier; `None` if Linear does not know it.
    pub async fn issue(&self, id_or_identifier: &str) -> Result<Option<LinearIssue>, SinkError> {
        match self.request::<IssueData>("Issue", ISSUE, json!({ "id": id_or_identifier })).await {
            Ok(data) => Ok(Some(data.issue.into())),
            Err(Failure::NotFound(_)) => Ok(None),
            Err(Failure::Sink(e)) => Err(e),
        }
    }

    /// Full-text search (`searchIssues`, rate-limited to 30 requests a minute by Linear).
    pub async fn search(&self, term: &str, first: u32) -> Result<Vec<LinearIssue>, SinkError> {
        let data: SearchData =
            self.graphql("SearchIssues", SEARCH_ISSUES, json!({ "term": term, "first": first })).await?;
        Ok(data.search_issues.nodes.into_iter().map(Into::into).collect())
    }

    /// Moves the issue to the team's first workflow state of this type (lowest `position`), e.g.
    /// `completed` when the error is resolved, `unstarted` when it regresses.
    /// `state_type` is a [`StateType`] or its name (`"completed"`, `"started"`, `"unstarted"`, ...).
    pub async fn set_state_type(
        &self,
        issue_id: &str,
        team_id: &str,
        state_type: impl AsRef<str>,
    ) -> Result<LinearIssue, SinkError> {
        let state_type = state_type.as_ref();
        let variables = json!({ "teamId": team_id, "type": state_type });
        let data: WorkflowStatesData = self.graphql("WorkflowStates", WORKFLOW_STATES, variables).await?;
        let state = data
            .workflow_states
            .nodes
            .into_iter()
            .filter(|s| s.kind == state_type)
            .min_by(|a, b| a.position.total_cmp(&b.position))
            .ok_or_else(|| permanent(format!("team has no workflow state of type {state_type}")))?;
        let variables = json!({ "id": issue_id, "input": { "stateId": state.id } });
        let data: IssueUpdateData = self.graphql("IssueUpdate", ISSUE_UPDATE, variables).await?;
        let payload = data.issue_update;
        created(payload.success, payload.issue, "issueUpdate").map(Into::into)
    }

    async fn graphql<T: DeserializeOwned>(
        &self,
        operation: &str,
        query: &str,
        variables: Value,
    ) -> Result<T, SinkError> {
        self.request(operation, query, variables).await.map_err(Failure::into_sink)
    }

    async fn request<T: DeserializeOwned>(&self, operation: &str, query: &str, variables: Value) -> Result<T, Failure> {
        let response = self.send(operation, query, variables).await.map_err(Failure::Sink)?;
        let data = classify(&response).map_err(|failure| failure.redact(&self.api_key))?;
        serde_json::from_value(data)
            .map_err(|e| Failure::Sink(permanent(format!("unexpected {operation} answer: {e}"))))
    }

    /// One `POST` of the operation; only a transport failure is an error here.
    async fn send(&self, operation: &str, query: &str, variables: Value) -> Result<HttpResponse, SinkError> {
        let body = json!({ "query": query, "variables": variables, "operationName": operation });
        let request = HttpRequest::new(Method::Post, &self.api_url)
            .header("authorization", &self.api_key)
            .header("accept", "application/json")
            .header("user-agent", USER_AGENT)
            .json(&body);
        self.port.send(request).await.map_err(|e| SinkError::transport(SERVICE, &e))
    }
}

/// What went wrong with one GraphQL request.
enum Failure {
    /// Linear's "Entity not found" (an `invalid input` error): an answer for lookups, an error elsewhere.
    NotFound(String),
    Sink(SinkError),
}

impl Failure {
    fn into_sink(self) -> SinkError {
        match self {
            Self::NotFound(reason) => permanent(reason),
            Self::Sink(e) => e,
        }
    }

    /// Error texts are built from Linear's answers; make sure none carries the key.
    fn redact(self, secret: &str) -> Self {
        let scrub = |reason: String| {
            if secret.is_empty() { reason } else { reason.replace(secret, "[redacted]") }
        };
        match self {
            Self::NotFound(reason) => Self::NotFound(scrub(reason)),
            Self::Sink(SinkError::Transient { service, reason, retry_after }) => {
                Self::Sink(SinkError::Transient { service, reason: scrub(reason), retry_after })
            }
            Self::Sink(SinkError::Permanent { service, reason }) => {
                Self::Sink(SinkError::Permanent { service, reason: scrub(reason) })
            }
        }
    }
}

fn permanent(reason: impl Into<String>) -> SinkError {
    SinkError::Permanent { service: SERVICE, reason: reason.into() }
}

fn transient(reason: impl Into<String>, retry_after: Option<RetryAfter>) -> SinkError {
    SinkError::Transient { service: SERVICE, reason: reason.into(), retry_after }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

/// An entry of `errors[]`, as Linear's SDK reads it (`packages/sdk/src/error.ts`).
#[derive(Deserialize)]
struct GraphQlError {
    #[serde(default)]
    message: String,
    /// Where in the response the error arose: its root field (alias or name) first. Absent for
    /// errors outside the fields (a rate limit, a malformed document).
    #[serde(default)]
    path: Vec<Value>,
    #[serde(default)]
    extensions: Extensions,
}

#[derive(Default, Deserialize)]
struct Extensions {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, rename = "userPresentableMessage")]
    user_presentable_message: Option<String>,
}

/// The response's `data`, or why there is none.
fn classify(response: &HttpResponse) -> Result<Value, Failure> {
    let envelope = serde_json::from_slice::<Envelope>(&response.body).ok();
    let status = response.status;
    if let Some(Envelope { errors, .. }) = &envelope
        && let Some(first) = errors.first()
    {
        let rate_limited = errors.iter().find(|e| e.extensions.kind.as_deref() == Some("ratelimited"));
        if let Some(error) = rate_limited {
            return Err(Failure::Sink(transient(short(&error.message), retry_after(response, true))));
        }
        let kind = first.extensions.kind.as_deref().unwrap_or("error");
        let detail = first.extensions.user_presentable_message.as_deref().unwrap_or(&first.message);
        let reason = format!("{kind}: {}", short(detail));
        // `internal error`, `lock timeout`, `network error` are Linear's own transient failures.
        if matches!(kind, "internal error" | "lock timeout" | "network error") || status >= 500 || status == 429 {
            return Err(Failure::Sink(transient(reason, retry_after(response, status == 429))));
        }
        if first.message.starts_with("Entity not found") {
            return Err(Failure::NotFound(reason));
        }
        return Err(Failure::Sink(permanent(reason)));
    }
    if status == 429 || status >= 500 {
        return Err(Failure::Sink(transient(format!("HTTP {status}"), retry_after(response, status == 429))));
    }
    if !(200..300).contains(&status) {
        return Err(Failure::Sink(permanent(format!("HTTP {status}"))));
    }
    match envelope.and_then(|e| e.data) {
        Some(data) if !data.is_null() => Ok(data),
        _ => Err(Failure::Sink(permanent("answer has no data"))),
    }
}

/// The `IssueFile` fields the errors of a failed answer name in their `path`, or `None` when the
/// answer does not say: a 5xx or 429 (from anything between us and Linear's executor), a rate limit
/// (refused before executing), or an error without a `path` or naming another field.
fn failed_fields(response: &HttpResponse) -> Option<Vec<FilingPart>> {
    if response.status == 429 || response.status >= 500 {
        return None;
    }
    let envelope = serde_json::from_slice::<Envelope>(&response.body).ok()?;
    if envelope.errors.is_empty() {
        return None;
    }
    envelope
        .errors
        .iter()
        .map(|e| {
            let rate_limited = e.extensions.kind.as_deref() == Some("ratelimited");
            if rate_limited { None } else { FilingPart::of_field(e.path.first()?.as_str()?) }
        })
        .collect()
}

/// `IssueCreateInput` of an issue.
fn issue_input(issue: &NewLinearIssue) -> Value {
    let mut input = json!({
        "teamId": issue.team_id,
        "title": issue.title,
        "description": issue.description,
        "priority": issue.priority.min(4),
        "labelIds": issue.label_ids,
    });
    if let Some(id) = &issue.id {
        input["id"] = json!(id);
    }
    input
}

/// Linear's hints: `retry-after` (seconds) when present, else the later of the
/// `x-ratelimit-{requests,complexity}-reset` (epoch milliseconds) of a rate limit: the answer says
/// it is one (`rate_limited`), or that window has no request left. A reset time on any other answer
/// only says when the window ends: a server error with requests left is not a reason to wait until
/// then (up to an hour). Reset times are read against the response's own `Date` (the
/// server's clock: no skew, and no clock of ours); without one, only a relative `retry-after` can
/// be used.
fn retry_after(response: &HttpResponse, rate_limited: bool) -> Option<RetryAfter> {
    let now_ms = response.header("date").and_then(parse_http_date_ms);
    if let Some(value) = response.header("retry-after") {
        // `u64::MAX` makes an HTTP-date "past" when there is no Date to read it against.
        return parse_retry_after(value, now_ms.unwrap_or(u64::MAX));
    }
    let now_ms = now_ms?;
    let spent =
        |window: &str| response.header(&format!("x-ratelimit-{window}-remaining")).is_some_and(|v| v.trim() == "0");
    ["requests", "complexity"]
        .into_iter()
        .filter(|window| rate_limited || spent(window))
        .filter_map(|window| response.header(&format!("x-ratelimit-{window}-reset")))
        .filter_map(|value| RetryAfter::from_reset_epoch(value, now_ms))
        .max()
}

/// At most 200 characters of a message from the service.
fn short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn success(ok: bool, operation: &str) -> Result<(), SinkError> {
    if ok { Ok(()) } else { Err(permanent(format!("{operation} reported success: false"))) }
}

fn created<T>(ok: bool, value: Option<T>, operation: &str) -> Result<T, SinkError> {
    success(ok, operation)?;
    value.ok_or_else(|| permanent(format!("{operation} returned no object")))
}

#[derive(Deserialize)]
struct RawIssue {
    id: String,
    identifier: String,
    url: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    state: Option<RawState>,
}

#[derive(Deserialize)]
struct RawState {
    #[serde(rename = "type")]
    kind: String,
}

impl From<RawIssue> for LinearIssue {
    fn from(raw: RawIssue) -> Self {
        Self {
            id: raw.id,
            identifier: raw.identifier,
            url: raw.url,
            title: raw.title,
            state_type: raw.state.map(|s| s.kind),
            description: raw.description,
        }
    }
}

#[derive(Deserialize)]
struct Nodes<T> {
    nodes: Vec<T>,
}

/// `IssuePayload` (`issueCreate`, `issueUpdate`).
#[derive(Deserialize)]
struct IssuePayload {
    success: bool,
    #[serde(default)]
    issue: Option<RawIssue>,
}

#[derive(Deserialize)]
struct LabelPayload {
    success: bool,
    #[serde(default, rename = "issueLabel")]
    issue_label: Option<RawLabelRef>,
}

#[derive(Deserialize)]
struct RawLabelRef {
    id: String,
}

#[derive(Deserialize)]
struct RawLabel {
    id: String,
    name: String,
    #[serde(default, rename = "isGroup")]
    is_group: bool,
    #[serde(default)]
    team: Option<RawTeam>,
}

#[derive(Deserialize)]
struct RawTeam {
    id: String,
}

#[derive(Deserialize)]
struct RawWorkflowState {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    position: f64,
}

#[derive(Deserialize)]
struct SuccessOnly {
    success: bool,
}

#[derive(Deserialize)]
struct IssuesData {
    issues: Nodes<RawIssue>,
}

#[derive(Deserialize)]
struct IssueCreateData {
    #[serde(rename = "issueCreate")]
    issue_create: IssuePayload,
}

/// `IssueFile`'s answer: the link's and the comment's payloads only when the document has them.
#[derive(Deserialize)]
struct IssueFileData {
    #[serde(rename = "issueCreate")]
    issue_create: IssuePayload,
    #[serde(default, rename = "attachmentLinkURL")]
    attachment_link_url: Option<SuccessOnly>,
    #[serde(default, rename = "commentCreate")]
    comment_create: Option<SuccessOnly>,
}

#[derive(Deserialize)]
struct IssueUpdateData {
    #[serde(rename = "issueUpdate")]
    issue_update: IssuePayload,
}

#[derive(Deserialize)]
struct IssueLabelsData {
    #[serde(rename = "issueLabels")]
    issue_labels: Nodes<RawLabel>,
}

#[derive(Deserialize)]
struct IssueLabelCreateData {
    #[serde(rename = "issueLabelCreate")]
    issue_label_create: LabelPayload,
}

#[derive(Deserialize)]
struct AttachmentLinkData {
    #[serde(rename = "attachmentLinkURL")]
    attachment_link_url: SuccessOnly,
}

#[derive(Deserialize)]
struct CommentCreateData {
    #[serde(rename = "commentCreate")]
    comment_create: SuccessOnly,
}

#[derive(Deserialize)]
struct IssueData {
    issue: RawIssue,
}

#[derive(Deserialize)]
struct SearchData {
    #[serde(rename = "searchIssues")]
    search_issues: Nodes<RawIssue>,
}

#[derive(Deserialize)]
struct WorkflowStatesData {
    #[serde(rename = "workflowStates")]
    workflow_states: Nodes<RawWorkflowState>,
}

#[cfg(test)]
pub(super) mod recording {
    //! A recording [`HttpPort`] with scripted answers, shared by the sinks' tests.

    use std::cell::RefCell;
    use std::collections::VecDeque;

    use serde_json::Value;

    use crate::clients::http::{HttpPort, HttpRequest, HttpResponse, TransportError};

    /// Records every request and answers from a script, in order.
    #[derive(Debug, Default)]
    pub struct RecordingPort {
        requests: RefCell<Vec<HttpRequest>>,
        answers: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
    }

    impl RecordingPort {
        pub fn new(answers: impl IntoIterator<Item = Result<HttpResponse, TransportError>>) -> Self {
            Self { requests: RefCell::default(), answers: RefCell::new(answers.into_iter().collect()) }
        }

        pub fn requests(&self) -> Vec<HttpRequest> {
            self.requests.borrow().clone()
        }

        /// The one request sent.
        pub fn only(&self) -> HttpRequest {
            let requests = self.requests();
            assert_eq!(requests.len(), 1, "{requests:?}");
            requests.into_iter().next().expect("one request")
        }
    }

    impl HttpPort for RecordingPort {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            self.requests.borrow_mut().push(request);
            self.answers.borrow_mut().pop_front().expect("a scripted answer for every request")
        }
    }

    /// A JSON answer.
    pub fn answer(status: u16, body: &str) -> Result<HttpResponse, TransportError> {
        answer_with(status, &[], body)
    }

    /// A JSON answer with extra headers.
    #[expect(clippy::unnecessary_wraps, reason = "scripts mix answers with transport errors")]
    pub fn answer_with(status: u16, headers: &[(&str, &str)], body: &str) -> Result<HttpResponse, TransportError> {
        let mut all = vec![("content-type".to_owned(), "application/json".to_owned())];
        all.extend(headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Ok(HttpResponse { status, headers: all, body: body.as_bytes().to_vec() })
    }

    /// A fixture file, relative to the repository's `fixtures/`.
    pub fn fixture(path: &str) -> String {
        let full = format!("{}/../fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    pub fn header<'r>(request: &'r HttpRequest, name: &str) -> Option<&'r str> {
        request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_json(request: &HttpRequest) -> Value {
        serde_json::from_slice(request.body.as_deref().expect("a body")).expect("a JSON body")
    }

    /// A credential-shaped test value, built at run time so no secret-looking literal is committed.
    pub fn secret(prefix: &str) -> String {
        format!("{prefix}{}", "0123456789abcdef".repeat(2))
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use serde_json::json;

    use super::recording::{RecordingPort, answer, answer_with, body_json, fixture, header, secret};
    use super::*;
    use crate::clients::http::TransportError;

    /// Wed, 21 Oct 2015 07:28:00 GMT.
    const DATE: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    const DATE_MS: u64 = 1_445_412_480_000;

    fn key() -> String {
        secret(&["lin", "api", ""].join("_"))
    }

    fn linear(port: &RecordingPort) -> Linear<'_, RecordingPort> {
        Linear::new(port, key()).with_api_url("http://linear.test/graphql")
    }

    fn node(identifier: &str) -> Value {
        json!({"id": format!("uuid-{identifier}"), "identifier": identifier, "title": "t",
               "url": format!("https://linear.app/acme/issue/{identifier}"), "state": {"type": "backlog"}})
    }

    #[test]
    fn create_issue_sends_the_fixture_shape_with_a_bare_key() {
        let port =
            RecordingPort::new([answer(200, &fixture("linear/responses_illustrative/issueCreate.response.json"))]);
        let issue = NewLinearIssue {
            team_id: "9cfb482a-81e3-4154-b5b9-2c805e70a02d".into(),
            title: "ZeroDivisionError: division by zero".into(),
            description: "Sentry issue FRONT-END-9\n\n<!-- sentry-fingerprint: 29f7ffc4903a8a990408b80a3b4c95a2 -->"
                .into(),
            priority: 2,
            label_ids: vec!["5c7f3f5e-0000-4000-8000-000000000001".into()],
            id: None,
        };
        let created = block_on(linear(&port).create_issue(&issue)).expect("created");
        assert_eq!(created.identifier, "ENG-123");
        assert_eq!(created.id, "2f2d8a57-3a0f-4c1e-9a6b-0d8b2a1c9e11");
        assert_eq!(created.url, "https://linear.app/acme/issue/ENG-123/zerodivisionerror-division-by-zero");
        assert_eq!(created.state_type, None);

        let request = port.only();
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, "http://linear.test/graphql");
        assert_eq!(header(&request, "authorization"), Some(key().as_str()), "personal keys go bare, no Bearer");
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        let body = body_json(&request);
        assert_eq!(body["operationName"], "IssueCreate");
        assert!(body["query"].as_str().unwrap().contains("issueCreate(input: $input)"));
        let fixture_request: Value =
            serde_json::from_str(&fixture("linear/requests/issueCreate.request.json")).unwrap();
        assert_eq!(body["variables"]["input"], fixture_request["variables"]["input"]);
    }

    const FILED_ID: &str = "2f2d8a57-3a0f-4c1e-9a6b-0d8b2a1c9e11";

    /// The fixtures' issue, link and comment, with the issue's id chosen.
    fn filing() -> (NewLinearIssue, Value, Value) {
        let create: Value = serde_json::from_str(&fixture("linear/requests/issueCreate.request.json")).unwrap();
        let input = &create["variables"]["input"];
        let strings = |v: &Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
        let issue = NewLinearIssue {
            team_id: input["teamId"].as_str().unwrap().into(),
            title: input["title"].as_str().unwrap().into(),
            description: input["description"].as_str().unwrap().into(),
            priority: 2,
            label_ids: strings(&input["labelIds"]),
            id: Some(FILED_ID.into()),
        };
        let link: Value = serde_json::from_str(&fixture("linear/requests/attachmentLinkURL.request.json")).unwrap();
        let comment: Value = serde_json::from_str(&fixture("linear/requests/commentCreate.request.json")).unwrap();
        (issue, link["variables"].clone(), comment["variables"]["input"].clone())
    }

    fn filed_answer() -> Result<HttpResponse, TransportError> {
        let issue = json!({"id": FILED_ID, "identifier": "ENG-123", "title": "t",
                           "url": "https://linear.app/acme/issue/ENG-123", "state": {"type": "backlog"}});
        answer(
            200,
            &json!({"data": {"issueCreate": {"success": true, "lastSyncId": 1, "issue": issue},
                             "attachmentLinkURL": {"success": true}, "commentCreate": {"success": true}}})
            .to_string(),
        )
    }

    /// Declared `$variables`, in order.
    fn declared(query: &str) -> Vec<&str> {
        let head = &query[..query.find('{').unwrap()];
        head.split('$').skip(1).map(|v| v.split(':').next().unwrap()).collect()
    }

    #[test]
    fn file_issue_sends_one_document_in_the_fixtures_shapes() {
        let (issue, link_vars, comment_input) = filing();
        let link = SourceLink { url: link_vars["url"].as_str().unwrap(), title: link_vars["title"].as_str().unwrap() };
        let comment = comment_input["body"].as_str().unwrap();
        let port = RecordingPort::new([filed_answer()]);
        let filed = block_on(linear(&port).file_issue(&issue, Some(link), Some(comment))).unwrap();
        assert_eq!((filed.id.as_str(), filed.identifier.as_str()), (FILED_ID, "ENG-123"));

        let body = body_json(&port.only());
        assert_eq!(body["operationName"], "IssueFile");
        let query = body["query"].as_str().unwrap();
        assert_eq!(query, ISSUE_FILE_LINK_COMMENT);
        let fields: Vec<usize> = [
            "issueCreate(input: $input)",
            "attachmentLinkURL(issueId: $issueId, url: $url, title: $title)",
            "commentCreate(input: $comment)",
        ]
        .iter()
        .map(|field| query.find(field).unwrap_or_else(|| panic!("{field} in {query}")))
        .collect();
        assert!(fields.is_sorted(), "create, link, comment: the order they run in");
        assert_eq!(declared(query), ["input", "issueId", "url", "title", "comment"]);
        let mut input = serde_json::from_str::<Value>(&fixture("linear/requests/issueCreate.request.json")).unwrap()
            ["variables"]["input"]
            .clone();
        input["id"] = json!(FILED_ID);
        assert_eq!(body["variables"]["input"], input, "the fixture's input and the chosen id");
        let mut sent_link = link_vars.clone();
        sent_link["issueId"] = json!(FILED_ID);
        let mut sent_comment = comment_input.clone();
        sent_comment["issueId"] = json!(FILED_ID);
        assert_eq!(
            body["variables"],
            json!({"input": input, "issueId": sent_link["issueId"], "url": sent_link["url"], "title": sent_link["title"],
                   "comment": sent_comment}),
            "the link's variables as the fixture's, the comment's input as the fixture's, both on the new issue's id"
        );

        // Without a link or without a comment, the document leaves its field and its variables out.
        for (link, comment, query, variables) in [
            (None, Some(comment), ISSUE_FILE_COMMENT, vec!["comment", "input"]),
            (Some(link), None, ISSUE_FILE_LINK, vec!["input", "issueId", "title", "url"]),
            (None, None, ISSUE_FILE, vec!["input"]),
        ] {
            let port = RecordingPort::new([filed_answer()]);
            block_on(linear(&port).file_issue(&issue, link, comment)).unwrap();
            let body = body_json(&port.only());
            assert_eq!(body["query"], query);
            assert_eq!(body["variables"].as_object().unwrap().keys().collect::<Vec<_>>(), variables);
            let mut names = declared(query);
            names.sort_unstable();
            assert_eq!(names, variables, "declared exactly what is sent");
            assert_eq!(query.contains("attachmentLinkURL"), link.is_some());
            assert_eq!(query.contains("commentCreate"), comment.is_some());
        }
    }

    /// Which part failed, from the errors' `path`; a whole-request failure when the answer does
    /// not say.
    #[test]
    fn file_issue_tells_which_part_failed() {
        let error = |path: Option<&str>, kind: &str| {
            let mut error = json!({"message": "Argument Validation Error", "extensions": {"type": kind,
                "userPresentableMessage": "refused"}});
            if let Some(field) = path {
                error["path"] = json!([field]);
            }
            json!({"data": null, "errors": [error]}).to_string()
        };
        let unsuccessful = |field: &str| {
            let mut data = body_json_of(&filed_answer());
            data["data"][field]["success"] = json!(false);
            data.to_string()
        };
        let ratelimited = fixture("linear/responses_illustrative/error_ratelimited.response.json");
        let cases: Vec<(Result<HttpResponse, TransportError>, &str, bool)> = vec![
            (answer(400, &error(Some("issueCreate"), "invalid input")), "create", false),
            (answer(400, &error(Some("attachmentLinkURL"), "invalid input")), "link", false),
            (answer(200, &error(Some("attachmentLinkURL"), "internal error")), "link", true),
            (answer(400, &error(Some("commentCreate"), "invalid input")), "comment", false),
            (answer(200, &unsuccessful("commentCreate")), "comment (answered)", false),
            (answer(200, &unsuccessful("attachmentLinkURL")), "link", false),
            (answer(200, &unsuccessful("issueCreate")), "create", false),
            (answer(400, &error(None, "invalid input")), "request", false),
            (answer(400, &error(Some("viewer"), "invalid input")), "request", false),
            (answer(500, &error(Some("commentCreate"), "internal error")), "request", true),
            (answer_with(400, &[("retry-after", "30")], &ratelimited), "request", true),
            (answer(503, "upstream connect error"), "request", true),
            (Err(TransportError::Timeout(10_000)), "request", true),
        ];
        let (issue, _, _) = filing();
        let link = SourceLink { url: "https://sentry.io/organizations/acme/issues/42/", title: "Sentry issue" };
        for (answer, part, transient) in cases {
            let port = RecordingPort::new([answer]);
            let failed = block_on(linear(&port).file_issue(&issue, Some(link), Some("## bugbot context"))).unwrap_err();
            let what = match &failed {
                FilingError::Request(_) => "request",
                FilingError::Create(_) => "create",
                FilingError::Link(_) => "link",
                FilingError::Comment { issue: None, .. } => "comment",
                FilingError::Comment { issue: Some(issue), .. } => {
                    assert_eq!(issue.identifier, "ENG-123");
                    "comment (answered)"
                }
            };
            assert_eq!(what, part, "{failed:?}");
            assert_eq!(failed.into_sink().is_transient(), transient, "{part}");
        }

        // No id, no request: the link and the comment could not name the issue.
        let port = RecordingPort::new([]);
        let no_id = NewLinearIssue { id: None, ..issue };
        let failed = block_on(linear(&port).file_issue(&no_id, None, None)).unwrap_err();
        assert!(matches!(failed, FilingError::Create(SinkError::Permanent { .. })), "{failed:?}");
        assert!(port.requests().is_empty());
    }

    fn body_json_of(answer: &Result<HttpResponse, TransportError>) -> Value {
        serde_json::from_slice(&answer.as_ref().unwrap().body).unwrap()
    }

    #[test]
    fn find_by_attachment_url() {
        let port = RecordingPort::new([
            answer(200, &json!({"data": {"issues": {"nodes": [node("ENG-7")]}}}).to_string()),
            answer(200, r#"{"data":{"issues":{"nodes":[]}}}"#),
        ]);
        let linear = linear(&port);
        let url = "https://sentry.io/organizations/test-org/issues/1170820242/";
        let found = block_on(linear.find_by_attachment_url(url)).unwrap().expect("found");
        assert_eq!((found.identifier.as_str(), found.state_type.as_deref()), ("ENG-7", Some("backlog")));
        assert_eq!(block_on(linear.find_by_attachment_url(url)).unwrap(), None);

        let body = body_json(&port.requests()[0]);
        let fixture_request: Value =
            serde_json::from_str(&fixture("linear/requests/issues_filter_by_attachment_url.request.json")).unwrap();
        assert_eq!(body["operationName"], "IssuesByAttachment");
        assert_eq!(body["variables"], fixture_request["variables"]);
        assert!(body["query"].as_str().unwrap().contains("filter: { attachments: { url: { eq: $url } } }"));
    }

    #[test]
    fn issue_lookup_maps_entity_not_found_to_none() {
        let not_found = json!({"data": null, "errors": [{"message": "Entity not found: Issue",
            "extensions": {"type": "invalid input", "code": "INPUT_ERROR", "statusCode": 400, "userError": true,
                           "userPresentableMessage": "Could not find referenced Issue."}}]});
        let port = RecordingPort::new([
            answer(200, &json!({"data": {"issue": node("ENG-123")}}).to_string()),
            answer(400, &not_found.to_string()),
        ]);
        let linear = linear(&port);
        assert_eq!(block_on(linear.issue("ENG-123")).unwrap().unwrap().identifier, "ENG-123");
        assert_eq!(block_on(linear.issue("ENG-999")).unwrap(), None);
        assert_eq!(body_json(&port.requests()[1])["variables"], json!({"id": "ENG-999"}));
    }

    #[test]
    fn ensure_labels_reuses_matching_labels_and_creates_the_rest() {
        let labels = json!({"data": {"issueLabels": {"nodes": [
            {"id": "l-ws-bug", "name": "Bug", "isGroup": false, "team": null},
            {"id": "l-other-team", "name": "sentry", "isGroup": false, "team": {"id": "other"}},
            {"id": "l-group", "name": "sentry", "isGroup": true, "team": null},
            {"id": "l-team-bug", "name": "bug", "isGroup": false, "team": {"id": "team-1"}},
        ]}}});
        let create =
            json!({"data": {"issueLabelCreate": {"success": true, "issueLabel": {"id": "l-new", "name": "sentry"}}}});
        let port = RecordingPort::new([answer(200, &labels.to_string()), answer(200, &create.to_string())]);
        let names = ["bug".to_owned(), "sentry".to_owned(), "BUG".to_owned(), " ".to_owned()];
        let ids = block_on(linear(&port).ensure_labels("team-1", &names)).unwrap();
        assert_eq!(ids, ["l-team-bug", "l-new"], "team label wins; groups and other teams' labels are skipped");

        let requests = port.requests();
        assert_eq!(requests.len(), 2);
        let lookup = body_json(&requests[0]);
        assert_eq!(lookup["operationName"], "IssueLabels");
        assert_eq!(
            lookup["variables"]["filter"],
            json!({"or": [{"name": {"eqIgnoreCase": "bug"}}, {"name": {"eqIgnoreCase": "sentry"}}]})
        );
        let create = body_json(&requests[1]);
        assert_eq!(create["operationName"], "IssueLabelCreate");
        assert_eq!(create["variables"]["input"], json!({"name": "sentry", "teamId": "team-1"}));

        let port = RecordingPort::new([]);
        assert_eq!(block_on(linear(&port).ensure_labels("team-1", &[])).unwrap(), Vec::<String>::new());
        assert!(port.requests().is_empty());
    }

    #[test]
    fn a_label_another_job_just_created_is_looked_up_again() {
        let none = json!({"data": {"issueLabels": {"nodes": []}}});
        let duplicate = json!({"errors": [{"message": "Duplicate label name: sentry",
            "extensions": {"type": "invalid input", "userPresentableMessage": "Duplicate label name: sentry"}}]});
        let found = json!({"data": {"issueLabels": {"nodes": [
            {"id": "l-theirs", "name": "sentry", "isGroup": false, "team": {"id": "team-1"}},
        ]}}});
        let port = RecordingPort::new([
            answer(200, &none.to_string()),
            answer(400, &duplicate.to_string()),
            answer(200, &found.to_string()),
        ]);
        let ids = block_on(linear(&port).ensure_labels("team-1", &["sentry".to_owned()])).unwrap();
        assert_eq!(ids, ["l-theirs"]);
        assert_eq!(port.requests().len(), 3);
    }

    #[test]
    fn attach_link_and_comment() {
        let port = RecordingPort::new([
            answer(
                200,
                r#"{"data":{"attachmentLinkURL":{"success":true,"attachment":{"id":"a","url":"u","title":"t"}}}}"#,
            ),
            answer(200, r#"{"data":{"commentCreate":{"success":true,"comment":{"id":"c","url":"u"}}}}"#),
            answer(200, r#"{"data":{"commentCreate":{"success":false,"comment":null}}}"#),
        ]);
        let linear = linear(&port);
        let url = "https://sentry.io/organizations/test-org/issues/1170820242/";
        block_on(linear.attach_link("ENG-123", url, "Sentry FRONT-END-9")).unwrap();
        let body = "Seen again: 5 events in the last 10 minutes. [Sentry](https://sentry.io/organizations/test-org/issues/1170820242/)";
        block_on(linear.comment("ENG-123", body)).unwrap();
        let failed = block_on(linear.comment("ENG-123", body)).unwrap_err();
        assert!(!failed.is_transient(), "{failed}");

        let requests = port.requests();
        let attach: Value = serde_json::from_str(&fixture("linear/requests/attachmentLinkURL.request.json")).unwrap();
        assert_eq!(body_json(&requests[0])["variables"], attach["variables"]);
        assert_eq!(body_json(&requests[0])["operationName"], "AttachmentLinkURL");
        let comment: Value = serde_json::from_str(&fixture("linear/requests/commentCreate.request.json")).unwrap();
        assert_eq!(body_json(&requests[1])["variables"], comment["variables"]);
        assert_eq!(body_json(&requests[1])["operationName"], "CommentCreate");
    }

    #[test]
    fn search_parses_the_fixture() {
        let port =
            RecordingPort::new([answer(200, &fixture("linear/responses_illustrative/searchIssues.response.json"))]);
        let found = block_on(linear(&port).search("29f7ffc4903a8a990408b80a3b4c95a2", 5)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].identifier, "ENG-123");
        let body = body_json(&port.only());
        assert_eq!(body["variables"], json!({"term": "29f7ffc4903a8a990408b80a3b4c95a2", "first": 5}));
    }

    #[test]
    fn set_state_type_picks_the_first_state_of_that_type() {
        let states = json!({"data": {"workflowStates": {"nodes": [
            {"id": "s-done-late", "name": "Shipped", "type": "completed", "position": 5.0},
            {"id": "s-done", "name": "Done", "type": "completed", "position": 1.0},
        ]}}});
        let updated = json!({"data": {"issueUpdate": {"success": true, "issue": {
            "id": "uuid-1", "identifier": "ENG-1", "title": "t", "url": "u", "state": {"type": "completed"}}}}});
        let port = RecordingPort::new([answer(200, &states.to_string()), answer(200, &updated.to_string())]);
        let issue = block_on(linear(&port).set_state_type("ENG-1", "team-1", StateType::Completed)).unwrap();
        assert_eq!(issue.state_type.as_deref(), Some("completed"));
        let requests = port.requests();
        assert_eq!(body_json(&requests[0])["variables"], json!({"teamId": "team-1", "type": "completed"}));
        assert_eq!(body_json(&requests[1])["variables"], json!({"id": "ENG-1", "input": {"stateId": "s-done"}}));

        let port = RecordingPort::new([answer(200, r#"{"data":{"workflowStates":{"nodes":[]}}}"#)]);
        let err = block_on(linear(&port).set_state_type("ENG-1", "team-1", "started")).unwrap_err();
        assert!(!err.is_transient() && err.to_string().contains("started"), "{err}");
    }

    fn failure(answer: Result<HttpResponse, TransportError>) -> SinkError {
        let port = RecordingPort::new([answer]);
        block_on(linear(&port).find_by_attachment_url("https://x")).unwrap_err()
    }

    fn transient_delay(error: &SinkError) -> Option<u64> {
        match error {
            SinkError::Transient { retry_after, .. } => retry_after.map(|r| r.delay_ms),
            SinkError::Permanent { .. } => panic!("expected transient, got {error}"),
        }
    }

    #[test]
    fn rate_limits_are_transient_with_the_servers_delay() {
        let body = fixture("linear/responses_illustrative/error_ratelimited.response.json");
        // Linear answers 400 with `ratelimited`: the body decides, not the status.
        let e = failure(answer_with(400, &[("retry-after", "30")], &body));
        assert_eq!(transient_delay(&e), Some(30_000));
        assert!(e.to_string().contains("Rate limit exceeded"), "{e}");

        let reset = (DATE_MS + 12_500).to_string();
        let e = failure(answer_with(400, &[("date", DATE), ("x-ratelimit-requests-reset", &reset)], &body));
        assert_eq!(transient_delay(&e), Some(12_500), "epoch ms against the response's Date");

        let e = failure(answer_with(400, &[("x-ratelimit-requests-reset", &reset)], &body));
        assert_eq!(transient_delay(&e), None, "no Date: an absolute reset cannot be turned into a delay");

        let e = failure(answer_with(429, &[("retry-after", "2")], "Too Many Requests"));
        assert_eq!(transient_delay(&e), Some(2_000));
    }

    #[test]
    fn a_server_error_waits_for_a_reset_only_when_its_window_is_spent() {
        let reset = (DATE_MS + 3_600_000).to_string();
        let window = |remaining| {
            [("date", DATE), ("x-ratelimit-requests-remaining", remaining), ("x-ratelimit-requests-reset", &reset)]
        };
        let e = failure(answer_with(503, &window("1499"), ""));
        assert_eq!(transient_delay(&e), None, "requests left: the reset is only the window's end");
        let e = failure(answer_with(503, &window("0"), ""));
        assert_eq!(transient_delay(&e), Some(3_600_000), "the window is spent");
        let internal = r#"{"errors":[{"message":"boom","extensions":{"type":"internal error"}}]}"#;
        assert_eq!(transient_delay(&failure(answer_with(200, &window("1499"), internal))), None);
    }

    #[test]
    fn server_errors_and_timeouts_are_transient() {
        assert_eq!(transient_delay(&failure(answer(500, "<html>oops</html>"))), None);
        assert_eq!(transient_delay(&failure(answer(503, ""))), None);
        let internal = r#"{"errors":[{"message":"boom","extensions":{"type":"internal error"}}]}"#;
        assert_eq!(transient_delay(&failure(answer(200, internal))), None);
        let e = failure(Err(TransportError::Timeout(10_000)));
        assert!(e.is_transient(), "{e}");
    }

    #[test]
    fn authentication_and_invalid_input_are_permanent_and_never_echo_the_key() {
        let e = failure(answer(401, &fixture("linear/responses_illustrative/error_authentication.response.json")));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("authentication error"), "{e}");

        let echo = json!({"errors": [{"message": format!("bad key {}", key()), "extensions": {"type": "forbidden"}}]});
        let e = failure(answer(400, &echo.to_string()));
        assert!(!e.is_transient());
        assert!(!e.to_string().contains(&key()), "{e}");
        assert!(!format!("{e:?}").contains(&key()));

        let invalid = r#"{"errors":[{"message":"Argument Validation Error","extensions":{"type":"invalid input"}}]}"#;
        assert!(!failure(answer(400, invalid)).is_transient());
        assert!(!failure(answer(404, "")).is_transient());
        assert!(!failure(answer(200, "not json")).is_transient());
        let shape = failure(answer(200, r#"{"data":{"issues":{"edges":[]}}}"#));
        assert!(!shape.is_transient() && shape.to_string().contains("IssuesByAttachment"), "{shape}");
    }

    #[test]
    fn debug_hides_the_key() {
        let port = RecordingPort::new([]);
        assert!(!format!("{:?}", linear(&port)).contains(&key()));
    }
}
