//! The wire contract between the consumer (which asks for a fix) and the fix executor (which runs
//! Claude Code in a sandbox and pushes a branch), plus the signed-request scheme both directions use.
//!
//! Everything here is additive-versioned like the queue [`Job`](crate::job): the consumer and the
//! executor are deployed separately, so new fields get serde defaults and no field is repurposed.
//!
//! ## Signed requests
//! A request body is authenticated with two headers:
//! - [`TIMESTAMP_HEADER`] (`X-Bugbot-Timestamp`): unix seconds when it was signed;
//! - [`SIGNATURE_HEADER`] (`X-Bugbot-Signature`): lowercase hex HMAC-SHA256 under the shared secret
//!   (`EXECUTOR_SECRET`) over `"{timestamp}.{raw body}"`.
//!
//! The receiver checks the timestamp against its clock (a window of a few minutes), then the MAC in
//! constant time. Used for job submissions (consumer → executor) and results (executor → gateway's
//! `/executor/callback`). Replays within the window are the receiver's business (the executor remembers
//! the signatures it accepted).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use crate::verify::SignatureError;

/// Header carrying the unix-seconds timestamp a request was signed at.
pub const TIMESTAMP_HEADER: &str = "X-Bugbot-Timestamp";
/// Header carrying the lowercase hex HMAC-SHA256 over `"{timestamp}.{raw body}"`.
pub const SIGNATURE_HEADER: &str = "X-Bugbot-Signature";
/// The replay window receivers use by default, in seconds.
pub const DEFAULT_SIGNATURE_WINDOW_SECS: u64 = 300;

/// Current version of [`FixJob`]; bump only alongside additive changes.
pub const FIX_JOB_VERSION: u32 = 1;

/// Paths an agent may never change unless a job explicitly allows them in
/// [`FixJob::allow_protected`]: CI, container and dependency manifests, lock files, and the agent's own
/// configuration. Globs match from the repository root; `**/` prefixes match at any depth.
pub const PROTECTED_PATHS: &[&str] = &[
    // CI and automation that runs with the repository's secrets.
    ".github/**",
    ".gitlab-ci.yml",
    ".gitlab/**",
    ".circleci/**",
    ".buildkite/**",
    ".travis.yml",
    "azure-pipelines.yml",
    "**/Jenkinsfile",
    "bitbucket-pipelines.yml",
    ".drone.yml",
    "appveyor.yml",
    ".appveyor.yml",
    "cloudbuild.yaml",
    "buildspec.yml",
    // Git plumbing and hooks that run on a developer's machine.
    "**/.gitmodules",
    "**/.gitattributes",
    ".githooks/**",
    ".husky/**",
    "**/.husky/**",
    ".pre-commit-config.yaml",
    "**/lefthook.yml",
    "**/.lefthook.yml",
    // Editor, dev-container and agent configuration (runs code or instructs agents).
    ".devcontainer/**",
    ".vscode/**",
    ".idea/**",
    ".gitpod.yml",
    ".claude/**",
    "**/.claude/**",
    "**/CLAUDE.md",
    "**/CLAUDE.local.md",
    "**/.mcp.json",
    "**/AGENTS.md",
    // Environment and deployment.
    "**/.envrc",
    "**/.env",
    "**/.env.*",
    "**/Dockerfile",
    "**/Dockerfile.*",
    "**/*.dockerfile",
    "**/docker-compose*.yml",
    "**/docker-compose*.yaml",
    "**/compose.yml",
    "**/compose.yaml",
    "**/Containerfile",
    "**/wrangler.toml",
    "**/wrangler.json",
    "**/wrangler.jsonc",
    "**/vercel.json",
    "**/netlify.toml",
    "**/Makefile",
    // Package manifests, lock files and package-manager configuration.
    "**/Cargo.toml",
    "**/Cargo.lock",
    "**/build.rs",
    "**/rust-toolchain",
    "**/rust-toolchain.toml",
    "**/.cargo/**",
    "**/package.json",
    "**/package-lock.json",
    "**/npm-shrinkwrap.json",
    "**/yarn.lock",
    "**/pnpm-lock.yaml",
    "**/pnpm-workspace.yaml",
    "**/.pnpmfile.cjs",
    "**/bun.lockb",
    "**/bun.lock",
    "**/bunfig.toml",
    "**/deno.json",
    "**/deno.jsonc",
    "**/.npmrc",
    "**/.yarnrc*",
    "**/.nvmrc",
    "**/.node-version",
    "**/.tool-versions",
    "**/requirements*.txt",
    "**/pyproject.toml",
    "**/setup.py",
    "**/setup.cfg",
    "**/poetry.lock",
    "**/Pipfile",
    "**/Pipfile.lock",
    "**/uv.lock",
    "**/.python-version",
    "**/go.mod",
    "**/go.sum",
    "**/go.work",
    "**/Gemfile",
    "**/Gemfile.lock",
    "**/*.gemspec",
    "**/composer.json",
    "**/composer.lock",
    "**/pom.xml",
    "**/build.gradle",
    "**/build.gradle.kts",
    "**/settings.gradle",
    "**/settings.gradle.kts",
    "**/gradle.properties",
    "**/gradle/wrapper/**",
    "**/*.csproj",
    "**/packages.lock.json",
    "**/mix.exs",
    "**/mix.lock",
    "**/*.lock",
];

/// A job's id, chosen by the consumer (deterministic per issue and attempt, so a redelivered request is
/// recognised). 1–128 characters from `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FixJobId(String);

/// A [`FixJobId`] was empty, too long, or had characters outside `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job id must be 1-128 characters of [A-Za-z0-9._-]")]
pub struct BadJobId;

impl FixJobId {
    pub fn new(id: impl Into<String>) -> Result<Self, BadJobId> {
        let id = id.into();
        let ok = (1..=128).contains(&id.len())
            && !id.starts_with('.')
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok { Ok(Self(id)) } else { Err(BadJobId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FixJobId {
    type Error = BadJobId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<FixJobId> for String {
    fn from(value: FixJobId) -> Self {
        value.0
    }
}

impl std::fmt::Display for FixJobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request to turn an issue into a tested, pushed branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixJob {
    /// Contract version ([`FIX_JOB_VERSION`]).
    #[serde(default = "default_version")]
    pub version: u32,
    pub job_id: FixJobId,
    /// HTTPS (or, in tests, `file://`) URL of the repository, without credentials: the executor supplies
    /// them through a git credential helper.
    pub clone_url: String,
    /// Branch, tag or commit to start from.
    pub base_ref: String,
    /// Branch to create and push (bot-owned; a re-run replaces it).
    pub branch: String,
    /// What the agent is told. Everything in it is treated as untrusted data.
    pub prompt: FixPrompt,
    /// Globs (from the repository root) of paths the agent may change. When absent, the usual front-end
    /// source folders: [`DEFAULT_ALLOWED_PATHS`].
    #[serde(default = "default_allowed_paths")]
    pub allowed_paths: Vec<String>,
    /// Globs of [`PROTECTED_PATHS`] this job may nevertheless change (e.g. `["Cargo.toml"]`).
    #[serde(default)]
    pub allow_protected: Vec<String>,
    /// Shell command run in the clone after the agent (e.g. `cargo test`); the push happens only if it
    /// exits 0. `None`: no tests.
    #[serde(default)]
    pub test_command: Option<String>,
    #[serde(default)]
    pub limits: FixLimits,
    /// Where the executor POSTs the signed [`FixReport`] (the gateway's `/executor/callback`).
    #[serde(default)]
    pub callback_url: Option<String>,
    /// "Reproduce first": with a test command, the new or changed tests must fail on the base code and
    /// pass with the fix (see [`Repro`]).
    #[serde(default)]
    pub repro: ReproPolicy,
}

/// How a job checks that its tests reproduce the error. Every field has a default so that older
/// consumers keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReproPolicy {
    /// `FIX_REQUIRE_REPRO=on`: the outcome is `fixed` only when the tests reproduced the error (otherwise
    /// `blocked`, nothing pushed). Needs a test command.
    pub required: bool,
    /// Globs (from the repository root) of test files: the changes to these make the "tests only" tree
    /// the test command runs on first. Default [`DEFAULT_TEST_PATHS`].
    pub test_paths: Vec<String>,
}

impl Default for ReproPolicy {
    fn default() -> Self {
        Self { required: false, test_paths: DEFAULT_TEST_PATHS.iter().map(|&p| p.to_owned()).collect() }
    }
}

/// Where tests live by the usual conventions (JavaScript/TypeScript, Python, Go, Ruby, Rust's `tests/`,
/// Java/Kotlin, C#). Unit tests inside a source file (Rust's `#[cfg(test)]`) are not separable from the
/// fix, so they cannot show a reproduction.
pub const DEFAULT_TEST_PATHS: &[&str] = &[
    "**/test/**",
    "**/tests/**",
    "**/__tests__/**",
    "**/spec/**",
    "**/*.test.*",
    "**/*.spec.*",
    "**/*_test.*",
    "**/test_*.py",
    "**/*_spec.rb",
    "**/*Test.java",
    "**/*Test.kt",
    "**/*Tests.cs",
];

fn default_version() -> u32 {
    FIX_JOB_VERSION
}

/// The allowlist a job without `allowed_paths` gets: source folders of a web front end, nothing at the
/// repository root (where build, CI and package configuration live).
pub const DEFAULT_ALLOWED_PATHS: &[&str] = &["src/**", "app/**", "components/**", "pages/**"];

fn default_allowed_paths() -> Vec<String> {
    DEFAULT_ALLOWED_PATHS.iter().map(|&p| p.to_owned()).collect()
}

/// The prompt material for a fix. The executor wraps every field in delimited data blocks and tells the
/// agent that they are data, not instructions: titles, error texts, stack traces and chat messages come
/// from the outside world.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixPrompt {
    /// Tracker key of the issue (`ENG-123`, `#42`), referenced in the commit message.
    pub issue_key: String,
    #[serde(default)]
    pub issue_url: Option<String>,
    pub title: String,
    /// The issue body as filed.
    #[serde(default)]
    pub body: String,
    /// The rendered context packet (stack trace mapped to files, recent commits, related messages).
    #[serde(default)]
    pub context: String,
}

/// Caps on one run. Every field has a default so that older consumers keep working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FixLimits {
    /// `claude --max-turns`.
    pub max_turns: u32,
    /// `claude --max-budget-usd`.
    pub max_usd: f64,
    /// Wall-clock limit for the agent, in seconds.
    pub timeout_secs: u64,
    /// Wall-clock limit for the test command, in seconds.
    pub test_timeout_secs: u64,
    /// Most files the change may touch.
    pub max_files_changed: u32,
    /// Most lines (added + removed) the change may touch.
    pub max_lines_changed: u32,
    /// Most bytes the change may add: the added lines of text files plus the whole size of binary files
    /// (a file git calls binary, or any file with a NUL byte).
    pub max_bytes_added: u64,
    /// Most bytes of binary files the change may add or modify; `0` (the default) refuses binary files.
    pub max_binary_bytes: u64,
}

impl Default for FixLimits {
    fn default() -> Self {
        Self {
            max_turns: 40,
            max_usd: 2.0,
            timeout_secs: 15 * 60,
            test_timeout_secs: 10 * 60,
            max_files_changed: 20,
            max_lines_changed: 800,
            max_bytes_added: 256 * 1024,
            max_binary_bytes: 0,
        }
    }
}

/// How a run ended. Serialized as `{"outcome": "...", "reason": "..."}` inside [`FixReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FixOutcome {
    /// A branch was pushed; the test command passed (or none was given).
    Fixed,
    /// The agent finished without changing anything.
    NoChange,
    /// The change broke a rule (path outside the allowlist, too large); nothing was pushed.
    Blocked { reason: String },
    /// Something went wrong (model API, tests failed, git, interrupted); nothing was pushed.
    Failed { reason: String },
    /// The agent ran past its wall-clock limit and was killed; nothing was pushed.
    TimedOut,
    /// An outcome this build does not know (sent by a newer executor).
    #[serde(other)]
    Unknown,
}

impl FixOutcome {
    /// `true` for the outcomes after which the same job will not do better when run again.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Fixed | Self::NoChange | Self::Blocked { .. })
    }

    /// The snake-case name, as serialized.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::NoChange => "no_change",
            Self::Blocked { .. } => "blocked",
            Self::Failed { .. } => "failed",
            Self::TimedOut => "timed_out",
            Self::Unknown => "unknown",
        }
    }
}

/// Size of a change, as `git diff --numstat` counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffStat {
    pub files_changed: u32,
    pub insertions: u32,
    pub deletions: u32,
}

/// The result of one run, posted (signed) to the job's callback URL and served by `GET /v1/jobs/{id}`.
/// Every string in it has been redacted of secrets by the executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixReport {
    pub job_id: FixJobId,
    #[serde(flatten)]
    pub outcome: FixOutcome,
    /// Agent turns used.
    #[serde(default)]
    pub turns: u32,
    /// Model spend as Claude Code reports it.
    #[serde(default)]
    pub cost_usd: f64,
    /// Whole run, clone to push.
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub diffstat: DiffStat,
    /// Paths changed (repository-relative).
    #[serde(default)]
    pub files: Vec<String>,
    /// The last few KB of the test command's output.
    #[serde(default)]
    pub test_output_tail: Option<String>,
    /// The agent's own summary of what it did.
    #[serde(default)]
    pub summary: Option<String>,
    /// The branch (pushed only when the outcome is `fixed`).
    #[serde(default)]
    pub branch: String,
    /// The pushed commit.
    #[serde(default)]
    pub head_sha: Option<String>,
    /// Whether the agent and the test command ran as the executor's unprivileged sandbox user (no secret
    /// but the model key reachable, every process killed at the end).
    #[serde(default)]
    pub sandboxed: bool,
    /// The test command's network: `"none"` (an empty network namespace) or why it shared the container's.
    #[serde(default)]
    pub test_network: Option<String>,
    /// Paths the test command changed, added or removed (never pushed: the executor pushes the tree it
    /// checked before the tests); `.git` when it changed the repository itself.
    #[serde(default)]
    pub tests_touched: Vec<String>,
    /// Whether the change's tests reproduce the error (absent from executors before this field, and
    /// when the job had no test command).
    #[serde(default)]
    pub repro: Option<Repro>,
}

/// "Reproduce first": the test command ran on the base code with only the change's test files applied
/// (expected to fail), and on the whole change (expected to pass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repro {
    pub verdict: ReproVerdict,
    /// The test files the change adds, changes or removes (repository-relative).
    #[serde(default)]
    pub tests: Vec<String>,
    /// Why it was not reproduced, or not tried.
    #[serde(default)]
    pub reason: Option<String>,
    /// The last few KB of the test command's output on the base code.
    #[serde(default)]
    pub before_output_tail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReproVerdict {
    /// The tests failed on the base code and pass with the fix.
    Reproduced,
    /// The tests ran on the base code and passed there too (or could not tell: timed out).
    NotReproduced,
    /// No run on the base code: no test file changed, or the tests fail with the fix.
    NotRun,
    /// A verdict this build does not know (sent by a newer executor).
    #[serde(other)]
    Unknown,
}

impl Repro {
    /// One line for a pull request or a card: "reproduced: `tests/a.test.js` failed before, passes after",
    /// or "not reproduced: <why>". File names are the agent's: callers escape the line for their medium.
    pub fn line(&self) -> String {
        const SHOWN: usize = 5;
        let mut tests = self.tests.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
        if self.tests.len() > SHOWN {
            let _ = std::fmt::Write::write_fmt(&mut tests, format_args!(" and {} more", self.tests.len() - SHOWN));
        }
        let reason = self.reason.as_deref().unwrap_or("no reason given");
        match self.verdict {
            ReproVerdict::Reproduced => format!("reproduced: {tests} failed before, passes after"),
            ReproVerdict::NotReproduced | ReproVerdict::NotRun | ReproVerdict::Unknown => {
                format!("not reproduced: {reason}")
            }
        }
    }

    pub fn is_reproduced(&self) -> bool {
        self.verdict == ReproVerdict::Reproduced
    }
}

impl FixReport {
    /// A report with only an outcome (for runs that ended before the agent ran).
    pub fn bare(job_id: FixJobId, branch: String, outcome: FixOutcome) -> Self {
        Self {
            job_id,
            outcome,
            turns: 0,
            cost_usd: 0.0,
            duration_ms: 0,
            diffstat: DiffStat::default(),
            files: Vec::new(),
            test_output_tail: None,
            summary: None,
            branch,
            head_sha: None,
            sandboxed: false,
            test_network: None,
            tests_touched: Vec::new(),
            repro: None,
        }
    }
}

/// Where a job stands, as `GET /v1/jobs/{id}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FixJobStatus {
    /// Accepted, waiting for a free slot.
    Queued,
    Running,
    /// Finished; the report is final.
    Done {
        report: Box<FixReport>,
    },
}

/// The `202` answer to a job submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub job_id: FixJobId,
}

/// A [`FixJob`] signed for delivery without HTTP headers: the file `bugbot-executor run --job` reads, and
/// the `client_payload` of a GitHub `repository_dispatch` event. `job` is the job's JSON *as a string*, so
/// that re-serialization on the way (GitHub re-renders `client_payload`) cannot change the signed bytes;
/// `signature` is [`sign`] over `"{timestamp}.{job}"`, exactly as for an HTTP request with that body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedJob {
    pub timestamp: u64,
    pub signature: String,
    pub job: String,
}

/// Why a [`SignedJob`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("the signed job does not parse: {0}")]
    BadJob(String),
}

impl SignedJob {
    /// Serializes and signs `job` at `timestamp`.
    pub fn seal(secret: &[u8], timestamp: u64, job: &FixJob) -> Self {
        let job = serde_json::to_string(job).expect("jobs serialize");
        Self { timestamp, signature: sign(secret, timestamp, job.as_bytes()), job }
    }

    /// Checks the signature and freshness (like [`verify`]) and parses the job.
    pub fn open(&self, secret: &[u8], now_secs: u64, window_secs: u64) -> Result<FixJob, OpenError> {
        verify(secret, &self.timestamp.to_string(), &self.signature, self.job.as_bytes(), now_secs, window_secs)?;
        serde_json::from_str(&self.job).map_err(|e| OpenError::BadJob(e.to_string()))
    }
}

/// Hex HMAC-SHA256 under `secret` over `"{timestamp}.{body}"`: the value of [`SIGNATURE_HEADER`].
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    hex::encode(mac(secret, &timestamp.to_string(), body).finalize().into_bytes())
}

/// Checks a signed request: the timestamp header is unix seconds within `window_secs` of `now_secs`, and the
/// signature header is the hex MAC of `"{timestamp header}.{body}"`, compared in constant time.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: u64,
    window_secs: u64,
) -> Result<(), SignatureError> {
    if signature_header.trim().is_empty() {
        return Err(SignatureError::Missing);
    }
    let timestamp_header = timestamp_header.trim();
    let timestamp: u64 = timestamp_header.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if timestamp.abs_diff(now_secs) > window_secs {
        return Err(SignatureError::Stale);
    }
    let mut presented = [0u8; 32];
    hex::decode_to_slice(signature_header.trim(), &mut presented).map_err(|_| SignatureError::Malformed)?;
    // Re-render the parsed timestamp so that "0100" and "100" cannot both verify.
    if timestamp.to_string() != timestamp_header {
        return Err(SignatureError::BadTimestamp);
    }
    mac(secret, timestamp_header, body).verify_slice(&presented).map_err(|_| SignatureError::Mismatch)
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"executor-test-secret";

    #[test]
    fn sign_matches_a_known_vector() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac executor-test-secret
        let sig = sign(SECRET, 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(sig, "b7bd6d774dbb46966f593a53fd42612d3896de3746eb71e5f295ad70e771de16");
        assert_ne!(sig, sign(SECRET, 1_700_000_001, br#"{"a":1}"#));
        assert_ne!(sig, sign(b"other", 1_700_000_000, br#"{"a":1}"#));
    }

    #[test]
    fn verify_accepts_fresh_signed_bodies() {
        let body = br#"{"job_id":"j1"}"#;
        let sig = sign(SECRET, 1000, body);
        assert_eq!(verify(SECRET, "1000", &sig, body, 1000, 300), Ok(()));
        assert_eq!(verify(SECRET, "1000", &sig, body, 1300, 300), Ok(()));
        assert_eq!(verify(SECRET, "1000", &sig, body, 700, 300), Ok(()));
        assert_eq!(verify(SECRET, " 1000 ", &sig.to_uppercase(), body, 1000, 300), Ok(()));
    }

    #[test]
    fn verify_rejects_everything_else() {
        let body = br#"{"job_id":"j1"}"#;
        let sig = sign(SECRET, 1000, body);
        let err = |ts: &str, sig: &str, body: &[u8], now| verify(SECRET, ts, sig, body, now, 300).unwrap_err();
        assert_eq!(err("1000", &sig, b"{\"job_id\":\"j2\"}", 1000), SignatureError::Mismatch);
        assert_eq!(err("1001", &sig, body, 1000), SignatureError::Mismatch);
        assert_eq!(err("1000", &sig, body, 1301), SignatureError::Stale);
        assert_eq!(err("1000", &sig, body, 699), SignatureError::Stale);
        assert_eq!(err("", &sig, body, 1000), SignatureError::BadTimestamp);
        assert_eq!(err("1e3", &sig, body, 1000), SignatureError::BadTimestamp);
        assert_eq!(err("01000", &sig, body, 1000), SignatureError::BadTimestamp);
        assert_eq!(err("1000", "", body, 1000), SignatureError::Missing);
        assert_eq!(err("1000", "xyz", body, 1000), SignatureError::Malformed);
        assert_eq!(err("1000", &sig[..62], body, 1000), SignatureError::Malformed);
        assert_eq!(verify(b"wrong", "1000", &sig, body, 1000, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn signed_jobs_open_only_with_the_secret_and_in_time() {
        let job: FixJob = serde_json::from_value(json!({
            "job_id": "j1", "clone_url": "https://github.com/o/r.git", "base_ref": "main",
            "branch": "bugbot/j1", "prompt": {"issue_key": "ENG-1", "title": "t"},
        }))
        .unwrap();
        let sealed = SignedJob::seal(SECRET, 1000, &job);
        assert_eq!(sealed.open(SECRET, 1100, 300), Ok(job.clone()));
        // The envelope survives a round trip through another JSON renderer (GitHub's client_payload).
        let reparsed: SignedJob = serde_json::from_value(serde_json::to_value(&sealed).unwrap()).unwrap();
        assert_eq!(reparsed.open(SECRET, 1000, 300), Ok(job));
        assert_eq!(sealed.open(b"other", 1000, 300), Err(OpenError::Signature(SignatureError::Mismatch)));
        assert_eq!(sealed.open(SECRET, 2000, 300), Err(OpenError::Signature(SignatureError::Stale)));
        let mut tampered = sealed.clone();
        tampered.job = tampered.job.replace("bugbot/j1", "bugbot/j2");
        assert_eq!(tampered.open(SECRET, 1000, 300), Err(OpenError::Signature(SignatureError::Mismatch)));
        let mut garbage = sealed;
        garbage.job = "not json".into();
        garbage.signature = sign(SECRET, 1000, b"not json");
        assert!(matches!(garbage.open(SECRET, 1000, 300), Err(OpenError::BadJob(_))));
    }

    #[test]
    fn job_ids_are_restricted() {
        assert!(FixJobId::new("fix-ENG-123.1_a").is_ok());
        assert!(FixJobId::new("").is_err());
        assert!(FixJobId::new("../etc").is_err());
        assert!(FixJobId::new("a/b").is_err());
        assert!(FixJobId::new(".hidden").is_err());
        assert!(FixJobId::new("x".repeat(129)).is_err());
        assert!(serde_json::from_value::<FixJobId>(json!("a b")).is_err());
    }

    #[test]
    fn a_minimal_job_gets_defaults() {
        let job: FixJob = serde_json::from_value(json!({
            "job_id": "j1",
            "clone_url": "https://github.com/o/r.git",
            "base_ref": "main",
            "branch": "bugbot/eng-1",
            "prompt": {"issue_key": "ENG-1", "title": "TypeError in checkout"},
        }))
        .unwrap();
        assert_eq!(job.version, FIX_JOB_VERSION);
        assert_eq!(job.allowed_paths, vec!["src/**", "app/**", "components/**", "pages/**"]);
        assert!(job.allow_protected.is_empty());
        assert_eq!(job.limits, FixLimits::default());
        assert_eq!(job.test_command, None);
        assert_eq!(job.callback_url, None);
        assert_eq!(job.repro, ReproPolicy::default());
        assert!(!job.repro.required);
        assert!(job.repro.test_paths.iter().any(|p| p == "**/*.test.*"));
        // Unknown fields from newer consumers are ignored.
        let mut value = serde_json::to_value(&job).unwrap();
        value["some_new_field"] = json!(true);
        value["limits"]["some_new_limit"] = json!(3);
        assert_eq!(serde_json::from_value::<FixJob>(value).unwrap(), job);
    }

    #[test]
    fn partial_limits_keep_the_other_defaults() {
        let limits: FixLimits = serde_json::from_value(json!({"max_turns": 3})).unwrap();
        assert_eq!(limits.max_turns, 3);
        assert_eq!(limits.timeout_secs, FixLimits::default().timeout_secs);
    }

    #[test]
    fn reports_flatten_the_outcome() {
        let id = FixJobId::new("j1").unwrap();
        let mut report = FixReport::bare(
            id.clone(),
            "bugbot/x".into(),
            FixOutcome::Blocked { reason: "path .github/workflows/ci.yml is not allowed".into() },
        );
        report.files = vec![".github/workflows/ci.yml".into()];
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["outcome"], "blocked");
        assert_eq!(value["reason"], "path .github/workflows/ci.yml is not allowed");
        assert_eq!(serde_json::from_value::<FixReport>(value).unwrap(), report);

        let fixed = FixReport::bare(id, "b".into(), FixOutcome::Fixed);
        let value = serde_json::to_value(&fixed).unwrap();
        assert_eq!(value["outcome"], "fixed");
        assert!(value.get("reason").is_none());
        assert_eq!(serde_json::from_value::<FixReport>(value).unwrap(), fixed);
    }

    #[test]
    fn unknown_outcomes_from_newer_executors_still_parse() {
        let report: FixReport = serde_json::from_value(json!({
            "job_id": "j1", "outcome": "partially_fixed", "branch": "b",
        }))
        .unwrap();
        assert_eq!(report.outcome, FixOutcome::Unknown);
        assert!(!report.outcome.is_final());
    }

    #[test]
    fn repro_settings_and_verdicts_are_additive() {
        // A job from a consumer that knows only `required` keeps the default test paths.
        let policy: ReproPolicy = serde_json::from_value(json!({"required": true})).unwrap();
        assert!(policy.required);
        assert_eq!(policy.test_paths, ReproPolicy::default().test_paths);
        // A report from an executor before "reproduce first" has none; one from a newer executor with a
        // verdict this build does not know still parses.
        let old: FixReport = serde_json::from_value(json!({"job_id": "j1", "outcome": "fixed"})).unwrap();
        assert_eq!(old.repro, None);
        let newer: FixReport = serde_json::from_value(json!({
            "job_id": "j1", "outcome": "fixed", "repro": {"verdict": "flaky", "tests": ["t.py"]},
        }))
        .unwrap();
        assert_eq!(newer.repro.map(|r| r.verdict), Some(ReproVerdict::Unknown));
    }

    #[test]
    fn repro_lines_name_the_tests_or_say_why_not() {
        let reproduced = Repro {
            verdict: ReproVerdict::Reproduced,
            tests: vec!["tests/cart.test.js".into()],
            reason: None,
            before_output_tail: Some("1 failed".into()),
        };
        assert_eq!(reproduced.line(), "reproduced: tests/cart.test.js failed before, passes after");
        assert!(reproduced.is_reproduced());
        let many = Repro { tests: (0..7).map(|i| format!("t{i}.py")).collect(), ..reproduced };
        assert_eq!(many.line(), "reproduced: t0.py, t1.py, t2.py, t3.py, t4.py and 2 more failed before, passes after");
        let not = Repro {
            verdict: ReproVerdict::NotReproduced,
            tests: vec!["tests/cart.test.js".into()],
            reason: Some("the new or changed tests pass on the base code too".into()),
            before_output_tail: None,
        };
        assert_eq!(not.line(), "not reproduced: the new or changed tests pass on the base code too");
        assert!(!not.is_reproduced());
    }

    #[test]
    fn status_is_tagged() {
        assert_eq!(serde_json::to_value(FixJobStatus::Queued).unwrap(), json!({"state": "queued"}));
        let done = FixJobStatus::Done {
            report: Box::new(FixReport::bare(FixJobId::new("j").unwrap(), "b".into(), FixOutcome::TimedOut)),
        };
        let value = serde_json::to_value(&done).unwrap();
        assert_eq!(value["state"], "done");
        assert_eq!(value["report"]["outcome"], "timed_out");
    }
}
