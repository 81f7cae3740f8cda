//! The fix flow: from a `/bugbot fix`, a "Fix with bugbot" message command, or a confident alert
//! (auto-fix) to a draft pull request, with a human in control.
//!
//! 1. Resolve the tracked issue (explicit reference, the thread's issue, or a new issue made from
//!    the reported message) and the repository.
//! 2. Claim `fix:{issue}` in the `ClaimStore` (one run per issue at a time; a second request is told
//!    the run's status).
//! 3. Record the run in KV (`fixrun:{id}`), sign a [`FixJob`] and POST it to `EXECUTOR_URL`, or,
//!    when that is unset, to the executor container through the `ExecutorContainer` Durable Object;
//!    the Discord reply shows each stage by being edited in place.
//! 4. The executor's signed [`FixReport`] comes back through the gateway as an `ExecutorResult` job:
//!    `fixed` → a draft PR (an existing one for the branch is linked, not duplicated) and a comment on
//!    the issue; anything else → a comment and the reason in Discord, no PR. The claim is released.
//!
//! Settings (all optional; the flow is skipped with a clear message when the executor is not configured):
//! `FIX_BACKEND=actions` (GitHub Actions, see [`actions`]), else `EXECUTOR_URL` (else the `EXECUTOR` container binding), `EXECUTOR_SECRET`, `EXECUTOR_CALLBACK_URL` (the gateway's `/executor/callback`),
//! `FIX_REPO` (default `GITHUB_REPO`), `FIX_REPOS` (the repositories a fix may target; default `FIX_REPO`), `FIX_CLONE_URL` (template, `{repo}` → owner/name; default
//! `https://github.com/{repo}.git`), `FIX_BASE_REF` (`main`), `FIX_ALLOWED_PATHS` (comma-separated
//! globs; default `executor::DEFAULT_ALLOWED_PATHS`), `FIX_TEST_COMMAND`, `FIX_MAX_TURNS`, `FIX_MAX_USD`,
//! `FIX_TIMEOUT_SECS`, `FIX_MAX_BYTES_ADDED`, `FIX_MAX_BINARY_BYTES`, and the auto-fix
//! policy `AUTO_FIX`, `AUTO_FIX_THRESHOLD`, `AUTO_FIX_MAX_RUNS_PER_DAY`, `AUTO_FIX_MAX_USD_PER_DAY`.

pub mod actions;

use bugbot_shared::caps::{CapsOp, CapsReply};
use bugbot_shared::claim::{DeliveryOp, DeliveryReply, TrackedRefs};
use bugbot_shared::command::{Command, IssueMention};
use bugbot_shared::confidence::{self, AutoFix, AutoFixPolicy, Evidence};
use bugbot_shared::container;
use bugbot_shared::event::{ErrorEvent, format_rfc3339_ms};
use bugbot_shared::executor::{self, FixJob, FixJobId, FixOutcome, FixPrompt, FixReport};
use bugbot_shared::job::{DiscordCommandJob, InteractionContext, Job, JobKind};
use bugbot_shared::packet;
use bugbot_shared::policy;
use bugbot_shared::report::{self, clip};
use bugbot_shared::source::discord::Message;
use bugbot_shared::status::JobState;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clients::SinkError;
use crate::clients::fetch::StubPort;
use crate::clients::github::{GitHub, NewPull};
use crate::clients::http::{HttpPort, HttpRequest, Method, TransportError};
use crate::config::{ExecutorRoute, FixConfig};
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome, StepError};
use crate::runtime::settle;
use crate::store::keys;
use crate::store::ports::{ClaimPort, KvPort};

/// Interaction tokens live 15 minutes; after that, progress goes to the channel instead.
const INTERACTION_TTL_MS: u64 = 15 * 60 * 1000;
const FIX_RUN_TTL_SECS: u64 = 30 * 24 * 3600;

pub use crate::store::fix_runs::FixState;
use bugbot_shared::tracked::IssueRef;

/// The issue a fix is for: the tracked issue (its label names the run: the `fix:{label}` claim, the
/// branch, "Fixes #12"), the same issue in the other tracker when an alert was filed in both (told
/// of the PR too), and what the agent is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixTarget {
    pub issue: IssueRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also: Option<IssueRef>,
    pub body: String,
    /// The evidence gathered when the issue was filed (the alert's context packet), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context: String,
}

impl FixTarget {
    /// `#12` (GitHub) or `ENG-3` (Linear).
    pub fn key(&self) -> &str {
        &self.issue.label
    }

    pub fn url(&self) -> &str {
        &self.issue.url
    }

    pub fn title(&self) -> &str {
        &self.issue.title
    }

    pub fn issues(&self) -> impl Iterator<Item = &IssueRef> {
        std::iter::once(&self.issue).chain(self.also.as_ref())
    }

    /// The GitHub issue, if the target has one.
    pub fn github(&self) -> Option<&IssueRef> {
        self.issues().find(|i| i.github_number().is_some())
    }

    /// The Linear issue's UUID, if the target has one.
    pub fn linear_id(&self) -> Option<&str> {
        self.issues().find_map(IssueRef::linear_id)
    }
}

/// A fix target as stored now, or (fix runs are kept 30 days) before [`IssueRef`].
#[derive(Deserialize)]
#[serde(untagged)]
enum FixTargetWire {
    Now {
        issue: IssueRef,
        #[serde(default)]
        also: Option<IssueRef>,
        body: String,
        #[serde(default)]
        context: String,
    },
    Before {
        key: String,
        url: String,
        title: String,
        body: String,
        #[serde(default)]
        github_number: Option<u64>,
        #[serde(default)]
        linear_id: Option<String>,
        #[serde(default)]
        context: String,
    },
}

impl<'de> Deserialize<'de> for FixTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match FixTargetWire::deserialize(d)? {
            FixTargetWire::Now { issue, also, body, context } => Self { issue, also, body, context },
            FixTargetWire::Before { key, url, title, body, github_number, linear_id, context } => {
                let github =
                    github_number.map(|n| IssueRef::github(n, if key.starts_with('#') { url.as_str() } else { "" }));
                let linear = linear_id.map(|id| {
                    let (label, url) =
                        if key.starts_with('#') { (String::new(), String::new()) } else { (key.clone(), url.clone()) };
                    IssueRef::linear(id, label, url)
                });
                let (issue, also) = match (github, linear) {
                    (Some(g), l) if key.starts_with('#') => (g, l),
                    (g, Some(l)) => (l, g),
                    (Some(g), None) => (g, None),
                    (None, None) => (IssueRef::linear("", key.clone(), url.clone()), None),
                };
                let mut issue = issue;
                key.clone_into(&mut issue.label);
                url.clone_into(&mut issue.url);
                Self { issue: issue.with_title(title), also, body, context }
            }
        })
    }
}

/// How to tell people about progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default)]
    pub interaction_token: Option<String>,
    #[serde(default)]
    pub interaction_expires_ms: u64,
    #[serde(default)]
    pub channel_id: Option<String>,
    /// A channel message bugbot posted for this run (auto-fix), edited at each stage.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The fingerprint whose alert card asked for (or announced) the fix: the card shows the run's
    /// end (the PR's link button, the Fix buttons back), and the source issue gets the PR's link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
}

/// A fix run, kept in KV as `fixrun:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixRun {
    pub fix_job_id: String,
    pub target: FixTarget,
    pub repo: String,
    pub base: String,
    pub branch: String,
    pub requested_by: String,
    pub reply: Reply,
    pub state: FixState,
    pub started_at_ms: u64,
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    #[serde(default)]
    pub pr_url: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub cost_usd: f64,
    /// The job that asked for the fix: its status record follows the run (`/bugbot status`).
    #[serde(default)]
    pub requested_in: Option<String>,
    /// Instructions given with the request ("Fix with instructions"; untrusted), quoted in the PR.
    #[serde(default)]
    pub guidance: Option<String>,
}

fn done(state: JobState, reason: impl Into<String>, links: Vec<String>) -> Outcome {
    Outcome::Done { state, reason: Some(reason.into()), links, fingerprint: None, effect: Effect::None }
}

/// A failed step, through the runtime's one failure mapping (with this delivery's attempt).
fn transient_or_done<T, P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    result: Result<T, SinkError>,
    what: &str,
) -> Result<T, Outcome> {
    result.map_err(|e| settle::failure_while(&ctx.config.retry, ctx.jitter, ctx.attempt, what, StepError::Sink(e)))
}

fn platform<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, reason: String) -> Outcome {
    settle::failure(&ctx.config.retry, ctx.jitter, ctx.attempt, StepError::Platform(reason))
}

/// `/bugbot fix [issue] [repo]` and "Fix with bugbot" (already authorized by the commands module).
pub async fn on_command<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, job: &Job) -> Outcome {
    let JobKind::DiscordCommand(DiscordCommandJob { interaction, command, card, .. }) = &job.kind else {
        return done(JobState::Failed, "not a fix command", Vec::new());
    };
    let (issue, repo, message) = match command {
        Command::Fix { issue, repo } => (issue.clone(), repo.as_ref().map(|r| r.as_str().to_owned()), None),
        Command::FixMessage { message } => (None, None, Some(message.clone())),
        _ => return done(JobState::Failed, "not a fix command", Vec::new()),
    };
    let reply = Reply {
        application_id: Some(interaction.application_id.to_string()),
        interaction_token: Some(interaction.token.clone()),
        interaction_expires_ms: job.received_at_ms + INTERACTION_TTL_MS,
        channel_id: interaction.channel_id.map(|c| c.to_string()),
        message_id: None,
        card: card.clone(),
    };
    let settings = match &ctx.config.fix {
        Ok(s) => s,
        Err(reason) => {
            let _ = say(ctx, &reply, &format!("⚠️ Can't start a fix: {reason}.")).await;
            return done(JobState::Failed, reason.to_string(), Vec::new());
        }
    };
    // Issue 16.6: without `repo`, a repository named in the reported message, when FIX_REPOS allows it.
    let repo = repo.or_else(|| {
        message.as_ref().and_then(|m| settings.repos.named_in(&bugbot_shared::references::extract(&m.content)))
    });
    // Before anything is filed or dispatched: a repository outside FIX_REPOS is refused, privately.
    if let Some(Err(reason)) = repo.as_deref().or(settings.repo.as_deref()).map(|r| settings.repos.check(r)) {
        crate::handlers::interaction::refuse(ctx, interaction, &format!("⛔ Not allowed: {reason}.")).await;
        return done(JobState::Ignored, format!("refused: {reason}"), Vec::new());
    }
    let target = match resolve_target(ctx, interaction, issue.as_ref(), message.as_ref()).await {
        Ok(Some(target)) => target,
        Ok(None) => {
            let text = "⚠️ Which issue? Pass `issue` (e.g. `#12` or `ENG-3`), run it in a thread bugbot already tracks, or use **Fix with bugbot** on the message that reports the bug.";
            let _ = say(ctx, &reply, text).await;
            return done(JobState::Failed, "no issue to fix", Vec::new());
        }
        Err(outcome) => return outcome,
    };
    let requested_by = interaction.user.as_ref().map_or_else(|| "someone".to_owned(), |u| format!("@{}", u.username));
    start(ctx, settings, job, target, repo, requested_by, reply).await
}

/// After an alert filed a new issue: start a fix when auto-fix allows it, else leave a note.
pub async fn maybe_auto_fix<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    event: &ErrorEvent,
    tracked: &TrackedRefs,
    evidence: Evidence,
    context: &str,
    repo: Option<String>,
) {
    let Ok(settings) = &ctx.config.fix else { return };
    if !settings.policy.enabled {
        return;
    }
    // Issue 16.3: the evidence the alert's context packet found, not a default.
    let confidence = confidence::score(event, evidence);
    // The GitHub issue when there is one (the PR says "Fixes #12"), else the Linear one.
    let (issue, also) = match (tracked.github.clone(), tracked.linear.clone()) {
        (Some(github), linear) => (github, linear),
        (None, Some(linear)) => (linear, None),
        (None, None) => return,
    };
    let target = FixTarget {
        issue: issue.with_title(report::issue_title(event)),
        also,
        body: report::issue_body_markdown(event),
        context: context.to_owned(),
    };
    // The caps are checked by reserving a slot (below), atomically: not from a count read here.
    let mut decision = confidence::decide(&settings.policy, &confidence, 0, 0.0);
    if decision == AutoFix::Run {
        decision = match reserve_cap(ctx, &settings.policy, job.id.as_str()).await {
            Ok(()) => AutoFix::Run,
            Err(refused) => AutoFix::Skip(refused.to_string()),
        };
    }
    match decision {
        AutoFix::Skip(reason) => {
            let note = format!(
                "bugbot did not start an automatic fix: {reason}. Anyone allowed can still ask with `/bugbot fix issue:{}`.",
                target.key()
            );
            let _ = comment(ctx, &target, &note).await;
        }
        AutoFix::Run => {
            let reply = Reply {
                application_id: None,
                interaction_token: None,
                interaction_expires_ms: 0,
                channel_id: ctx.config.discord.alerts_channel_id.clone(),
                message_id: None,
                card: Some(event.fingerprint.to_string()),
            };
            let by = format!("auto-fix (confidence {})", confidence.score);
            // Issue 16.6: the routed repository, which `start` still checks against FIX_REPOS.
            let started = start(ctx, settings, job, target, repo, by, reply).await;
            if !matches!(started, Outcome::Done { state: JobState::Fixing, .. }) {
                cap(ctx, CapsOp::Cancel { run: job.id.to_string() }).await;
            }
        }
    }
}

/// Issue 16.6: a `REPO_ROUTES` repository with `paths=` is fixed within those paths; any other
/// within `FIX_ALLOWED_PATHS`.
fn allowed_paths_for<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    settings: &FixConfig,
    repo: &str,
) -> Vec<String> {
    ctx.config
        .routes
        .paths_of(repo)
        .map_or_else(|| settings.allowed_paths.clone(), |paths| policy::fix_allowed_paths(Some(paths)))
}

async fn start<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    settings: &FixConfig,
    job: &Job,
    target: FixTarget,
    repo: Option<String>,
    requested_by: String,
    mut reply: Reply,
) -> Outcome {
    let Some(repo) = repo.or_else(|| settings.repo.clone()) else {
        let reason = "no repository: pass `repo` or set FIX_REPO / GITHUB_REPO";
        let _ = say(ctx, &reply, &format!("⚠️ Can't start a fix: {reason}.")).await;
        return done(JobState::Failed, reason, Vec::new());
    };
    if let Err(reason) = settings.repos.check(&repo) {
        let _ = say(ctx, &reply, &format!("⛔ Can't start a fix: {reason}.")).await;
        return done(JobState::Ignored, format!("refused: {reason}"), Vec::new());
    }
    // Issue 16.4: the agent starts from the evidence, and never from a title alone.
    let evidence = match packet::fix_evidence(&target.body, &target.context, &allowed_paths_for(ctx, settings, &repo)) {
        Ok(evidence) => evidence,
        Err(reason) => {
            let _ = say(ctx, &reply, &format!("⛔ Can't start a fix for {}: {reason}.", target.key())).await;
            return done(JobState::Ignored, format!("refused: {reason}"), vec![target.url().to_owned()]);
        }
    };
    let slug = slug(target.key());
    let fix_job_id = format!("fix-{slug}-{}", &bugbot_shared::verify::sha256_hex(job.id.as_str().as_bytes())[..10]);
    let branch = format!("bugbot/fix-{slug}");
    // The lease covers the executor's queue and the run: no second run of this branch meanwhile.
    let lease_ms = bugbot_shared::claim::fix_lease_ms(&settings.limits, settings.executor_queue);
    let claim = DeliveryOp::Begin { holder: fix_job_id.clone(), now_ms: ctx.now_ms, lease_ms };
    match ctx.claims.delivery(&format!("fix:{}", target.key()), &claim).await {
        Ok(DeliveryReply::Proceed { .. }) => {}
        Ok(DeliveryReply::Busy { .. } | DeliveryReply::Duplicate { .. }) => {
            let running = current_run(ctx, target.key()).await;
            let status = running
                .map_or_else(String::new, |r| format!(" (requested by {}, {})", r.requested_by, state_text(r.state)));
            let _ = say(
                ctx,
                &reply,
                &format!("⏳ A fix for {} is already running{status}. I'll post the result here.", target.key()),
            )
            .await;
            return done(
                JobState::Duplicate,
                format!("a fix for {} is already running", target.key()),
                vec![target.url().to_owned()],
            );
        }
        Ok(DeliveryReply::Finished) | Err(_) => {
            return platform(ctx, "claim store unavailable".into());
        }
    }
    post_progress_message(ctx, &target, &requested_by, &mut reply).await;
    let mut run = FixRun {
        fix_job_id: fix_job_id.clone(),
        target: target.clone(),
        repo: repo.clone(),
        base: settings.base.clone(),
        branch: branch.clone(),
        requested_by,
        reply,
        state: FixState::Queued,
        started_at_ms: ctx.now_ms,
        finished_at_ms: None,
        pr_url: None,
        reason: None,
        cost_usd: 0.0,
        requested_in: Some(job.id.to_string()),
        guidance: crate::handlers::component::guidance::guidance(job),
    };
    save_run(ctx, &run).await;
    let _ = show(ctx, &run).await;

    let fix_job = FixJob {
        version: executor::FIX_JOB_VERSION,
        job_id: match FixJobId::new(fix_job_id.clone()) {
            Ok(id) => id,
            Err(_) => return done(JobState::Failed, "could not form a fix job id", Vec::new()),
        },
        clone_url: settings.clone_url.replace("{repo}", &repo),
        base_ref: settings.base.clone(),
        branch,
        prompt: FixPrompt {
            issue_key: target.key().to_owned(),
            issue_url: Some(target.url().to_owned()),
            title: target.title().to_owned(),
            body: target.body.clone(),
            context: with_guidance(
                evidence.context,
                &crate::handlers::component::guidance::fix_context(job, &run.requested_by),
            ),
        },
        allowed_paths: allowed_paths_for(ctx, settings, &repo),
        allow_protected: Vec::new(),
        test_command: settings.test_command.clone(),
        limits: settings.limits.clone(),
        callback_url: settings.callback_url.clone(),
        repro: executor::ReproPolicy { required: ctx.config.fix_require_repro, ..executor::ReproPolicy::default() },
    };
    if let Err(outcome) = dispatch(ctx, settings, &repo, &fix_job).await {
        not_dispatched(ctx, &mut run, &outcome).await;
        return outcome;
    }
    run.state = FixState::Running;
    save_run(ctx, &run).await;
    let _ = show(ctx, &run).await;
    done(JobState::Fixing, format!("fix {fix_job_id} running for {}", target.key()), vec![target.url().to_owned()])
        .with_effect(Effect::FixStarted)
}

/// Whatever the dispatch's end (a retry included: an auto-fix is not retried), the run is not left
/// "queued": it failed, its claim is released, and a retry of the request starts it again.
async fn not_dispatched<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    run: &mut FixRun,
    outcome: &Outcome,
) {
    run.state = FixState::Failed;
    run.reason = match outcome {
        Outcome::Done { reason, .. } => reason.clone(),
        Outcome::Retry { reason, .. } => Some(reason.clone()),
    };
    save_run(ctx, run).await;
    let _ = show(ctx, run).await;
    let release = DeliveryOp::Relinquish { holder: run.fix_job_id.clone() };
    let _ = ctx.claims.delivery(&format!("fix:{}", run.target.key()), &release).await;
}

async fn dispatch<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    settings: &FixConfig,
    repo: &str,
    fix_job: &FixJob,
) -> Result<(), Outcome> {
    if matches!(settings.executor, ExecutorRoute::Actions) {
        let sent = actions::dispatch(github_for(ctx, repo), settings.secret.as_bytes(), ctx.now_ms / 1000, fix_job);
        return sent.await.map_err(|e| match e {
            actions::DispatchError::Transient(e) => settle::failure_while(
                &ctx.config.retry,
                ctx.jitter,
                ctx.attempt,
                "workflow dispatch",
                StepError::Sink(e),
            ),
            other => done(JobState::Failed, other.to_string(), Vec::new()),
        });
    }
    let body = serde_json::to_vec(fix_job).expect("a fix job serializes");
    let timestamp = ctx.now_ms / 1000;
    let base = match &settings.executor {
        ExecutorRoute::Url(url) => url.as_str(),
        ExecutorRoute::Container | ExecutorRoute::Actions => "https://executor-container",
    };
    let request = HttpRequest::new(Method::Post, format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .header(executor::TIMESTAMP_HEADER, timestamp.to_string())
        .header(executor::SIGNATURE_HEADER, executor::sign(settings.secret.as_bytes(), timestamp, &body));
    let request = HttpRequest { body: Some(body), ..request };
    let sent = match &settings.executor {
        ExecutorRoute::Url(_) => ctx.port.send(request).await,
        ExecutorRoute::Container | ExecutorRoute::Actions => match container_port(ctx.env, ctx.config.log_level) {
            Ok(port) => port.send(request).await,
            Err(e) => Err(TransportError::Connect(e.to_string())),
        },
    };
    match sent {
        Ok(resp) if (200..300).contains(&resp.status) => Ok(()),
        // The container object without a container runtime (and no EXECUTOR_LOCAL_URL): not transient.
        Ok(resp) if resp.status == 501 => {
            let reason = String::from_utf8_lossy(&resp.body);
            Err(done(JobState::Failed, format!("executor unavailable: {}", clip(reason.trim(), 300)), Vec::new()))
        }
        Ok(resp) if resp.status == 429 || resp.status >= 500 => {
            Err(platform(ctx, format!("executor answered {}", resp.status)))
        }
        Ok(resp) => Err(done(JobState::Failed, format!("executor refused the job ({})", resp.status), Vec::new())),
        Err(e) => Err(platform(ctx, format!("executor unreachable: {e}"))),
    }
}

/// The executor container's Durable Object; the timeout covers a cold container's start.
fn container_port(env: &worker::Env, log_level: bugbot_shared::log::Level) -> worker::Result<StubPort> {
    let stub = env.durable_object(container::BINDING)?.id_from_name(container::INSTANCE)?.get_stub()?;
    Ok(StubPort { stub: stub.into_rpc(), timeout_ms: 60_000, log_level })
}

/// The executor's signed result (already verified by the gateway).
pub async fn on_result<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, job: &Job) -> Outcome {
    let JobKind::ExecutorResult(result) = &job.kind else {
        return done(JobState::Failed, "not an executor result", Vec::new());
    };
    let report: FixReport = match serde_json::from_str(&result.report) {
        Ok(r) => r,
        Err(e) => return done(JobState::Failed, format!("unreadable fix report: {e}"), Vec::new()),
    };
    let Some(mut run) = load_run(ctx, report.job_id.as_str()).await else {
        return done(JobState::Failed, format!("no fix run {} is known", report.job_id), Vec::new());
    };
    if !matches!(run.state, FixState::Queued | FixState::Running) {
        return done(JobState::Duplicate, "this fix run already has its result", run.pr_url.into_iter().collect());
    }
    run.cost_usd = report.cost_usd;
    run.finished_at_ms = Some(ctx.now_ms);
    // The agent's summary and reasons are untrusted: they go to GitHub/Linear escaped.
    let summary = report::untrusted_quote(report.summary.as_deref().unwrap_or_default(), 40);
    let (state, note) = match &report.outcome {
        FixOutcome::Fixed => match open_pull(ctx, &run, &report).await {
            Ok(url) => {
                run.pr_url = Some(url.clone());
                (
                    FixState::PrOpened,
                    format!("🛠️ bugbot opened a draft pull request for this issue: {url}\n\n{summary}"),
                )
            }
            Err(Outcome::Retry { delay_secs, reason, attempt }) => {
                return Outcome::Retry { delay_secs, reason, attempt };
            }
            Err(Outcome::Done { reason, .. }) => {
                let reason = reason.unwrap_or_default();
                run.reason = Some(reason.clone());
                (
                    FixState::Failed,
                    format!(
                        "bugbot pushed `{}` but could not open a pull request: {}",
                        run.branch,
                        report::untrusted_text(&reason)
                    ),
                )
            }
        },
        FixOutcome::NoChange => (FixState::NoChange, format!("bugbot's fix attempt changed nothing.\n\n{summary}")),
        FixOutcome::Blocked { reason } => {
            run.reason = Some(reason.clone());
            let reason = report::untrusted_text(reason);
            (FixState::Blocked, format!("bugbot's fix attempt was blocked and nothing was pushed: {reason}"))
        }
        FixOutcome::Failed { reason } => {
            run.reason = Some(reason.clone());
            (FixState::Failed, format!("bugbot's fix attempt failed: {}", report::untrusted_text(reason)))
        }
        FixOutcome::TimedOut => {
            run.reason = Some("the agent ran past its time limit".into());
            (
                FixState::TimedOut,
                "bugbot's fix attempt ran past its time limit and was stopped; nothing was pushed.".to_owned(),
            )
        }
        FixOutcome::Unknown => {
            (FixState::Failed, "bugbot's fix attempt ended in an outcome this version does not know.".to_owned())
        }
    };
    run.state = state;
    let comment_result = comment(ctx, &run.target, &note).await;
    if let Err(e) = comment_result
        && e.is_transient()
    {
        return settle::failure(&ctx.config.retry, ctx.jitter, ctx.attempt, StepError::Sink(e));
    }
    save_run(ctx, &run).await;
    let _ = show(ctx, &run).await;
    card_after(ctx, job, &run, state).await;
    // Only this run's own claim is released (a run whose lease ran out may have been succeeded).
    let release = DeliveryOp::Relinquish { holder: run.fix_job_id.clone() };
    let _ = ctx.claims.delivery(&format!("fix:{}", run.target.key()), &release).await;
    if run.reply.interaction_token.is_none()
        && let Some(requested_in) = &run.requested_in
    {
        cap(ctx, CapsOp::Charge { run: requested_in.clone(), usd: run.cost_usd }).await;
    }
    let outcome_name = if state == FixState::PrOpened { "pr_opened" } else { report.outcome.name() };
    let links: Vec<String> = run.pr_url.iter().cloned().chain(std::iter::once(run.target.url().to_owned())).collect();
    let reason = match &run.reason {
        Some(why) => format!("fix {}: {} — {why}", run.fix_job_id, state_text(state)),
        None => format!("fix {}: {}", run.fix_job_id, state_text(state)),
    };
    if let Some(requested_in) = &run.requested_in {
        let requester_state = match state {
            FixState::PrOpened => JobState::PrOpened,
            FixState::NoChange => JobState::Done,
            _ => JobState::Failed,
        };
        ctx.advance_job(requested_in, requester_state, Some(reason.clone()), links.clone()).await;
    }
    let result_state = if state == FixState::PrOpened { JobState::PrOpened } else { JobState::Done };
    done(result_state, reason, links)
        .with_effect(Effect::FixFinished { outcome: outcome_name.to_owned(), cost_usd: run.cost_usd })
}

/// After the run is saved with its end (a redelivered result stops before, as a duplicate): the
/// alert card that asked for or announced the fix shows the end, and the source issue gets the
/// PR's link, once.
async fn card_after<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
    run: &FixRun,
    state: FixState,
) {
    let Some(fingerprint) = run.reply.card.as_deref() else { return };
    crate::handlers::component::card::fix_ended(ctx, fingerprint, run.pr_url.as_deref(), state_text(state)).await;
    if let Some(url) = run.pr_url.as_deref() {
        crate::clients::sentry_api::writeback::after_pr(ctx, job, fingerprint, url).await;
    }
}

async fn open_pull<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    run: &FixRun,
    report: &FixReport,
) -> Result<String, Outcome> {
    let Some(github) = github_for(ctx, &run.repo) else {
        return Err(done(JobState::Failed, "GitHub is not configured (GITHUB_TOKEN)", Vec::new()));
    };
    let title = format!("Fix {}: {}", run.target.key(), report::untrusted_title(run.target.title(), 200));
    let body = pr_body(run, report);
    let pull = github
        .create_pull(&NewPull { title: &title, head: &run.branch, base: &run.base, body: &body, draft: true })
        .await;
    transient_or_done(ctx, pull, "opening the pull request").map(|p| p.html_url)
}

fn pr_body(run: &FixRun, report: &FixReport) -> String {
    use std::fmt::Write as _;
    let mut body = String::new();
    // Everything but bugbot's own words is untrusted (the issue title may be a Discord message; the
    // summary, file names and test output come from the agent's run): escaped, so the body pings no
    // one, closes nothing but `run.target`, and no fence can be broken out of.
    let _ = writeln!(
        body,
        "Draft fix for [{}]({}) — {}\n",
        run.target.key(),
        run.target.url(),
        report::untrusted_text(run.target.title())
    );
    if let Some(summary) = report.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        let _ = writeln!(body, "## Summary\n\n{}", report::untrusted_quote(summary, 40));
    }
    let files: Vec<String> = report.files.iter().map(|f| report::untrusted_code_span(f)).collect();
    let _ = writeln!(
        body,
        "## Change\n\n{} files changed, +{} −{}: {}\n",
        report.diffstat.files_changed,
        report.diffstat.insertions,
        report.diffstat.deletions,
        files.join(", ")
    );
    body.push_str(&bugbot_shared::chatops::pr_instructions(run.guidance.as_deref()));
    match report.test_output_tail.as_deref() {
        Some(tail) if !tail.trim().is_empty() => {
            let _ = writeln!(body, "## Tests\n\nPassed. Last lines:\n\n{}", report::untrusted_code_block(tail));
        }
        _ => body.push_str("## Tests\n\nNo test command is configured (`FIX_TEST_COMMAND`).\n\n"),
    }
    if let Some(repro) = &report.repro {
        let _ = writeln!(body, "**{}**\n", report::untrusted_text(&repro.line()));
    }
    let _ = writeln!(
        body,
        "## Run\n\nRequested by {} · {} agent turns · ${:.2} · {:.0} s · branch `{}`\n",
        report::untrusted_text(&run.requested_by),
        report.turns,
        report.cost_usd,
        std::time::Duration::from_millis(report.duration_ms).as_secs_f64(),
        run.branch
    );
    body.push_str(
        "Written by Claude Code under bugbot's executor (path allowlist, size caps, no credentials in its \
         environment). Review it like any contribution.\n\n",
    );
    // GitHub closes `#N` on merge; Linear's GitHub integration does the same for `ENG-N`.
    let _ = writeln!(body, "Fixes {}", run.target.key());
    body
}

// ---------------------------------------------------------------------------------------------
// Issue resolution

async fn resolve_target<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    interaction: &InteractionContext,
    issue: Option<&IssueMention>,
    message: Option<&Message>,
) -> Result<Option<FixTarget>, Outcome> {
    if let Some(reference) = issue {
        return fetch_target(ctx, reference.as_str()).await;
    }
    if message.is_none()
        && let Some(channel) = interaction.channel_id
        && let Some(key) = thread_issue(ctx, &channel.to_string()).await
    {
        return fetch_target(ctx, &key).await;
    }
    let Some(message) = message else { return Ok(None) };
    issue_from_message(ctx, message, interaction).await.map(Some)
}

/// `thread:{channel}` → the tracked issue's key (written by `/bugbot contextualize`).
async fn thread_issue<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, channel: &str) -> Option<String> {
    let record: crate::handlers::command::tracked::ThreadRecord =
        serde_json::from_str(&ctx.state.kv().get_text(&keys::thread(channel)).await?).ok()?;
    Some(record.issue.label)
}

async fn fetch_target<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    reference: &str,
) -> Result<Option<FixTarget>, Outcome> {
    let reference = reference.trim();
    let github_number = reference
        .strip_prefix('#')
        .or_else(|| reference.rsplit_once("/issues/").map(|(_, n)| n.trim_end_matches('/')))
        .or(Some(reference))
        .and_then(|n| n.parse::<u64>().ok());
    if let (Some(number), Some(github)) = (github_number, ctx.github()) {
        let issue = transient_or_done(ctx, github.issue(number).await, "reading the GitHub issue")?;
        return Ok(issue.map(|i| FixTarget {
            issue: IssueRef::github(i.number, i.html_url).with_title(i.title),
            also: None,
            body: i.body.unwrap_or_default(),
            context: String::new(),
        }));
    }
    let identifier =
        reference.rsplit_once("/issue/").map_or(reference, |(_, rest)| rest.split('/').next().unwrap_or(rest));
    if let Some((linear, _)) = ctx.linear() {
        let issue = transient_or_done(ctx, linear.issue(identifier).await, "reading the Linear issue")?;
        return Ok(issue.map(|i| FixTarget {
            issue: IssueRef::linear(i.id, i.identifier, i.url).with_title(i.title),
            also: None,
            body: i.description.unwrap_or_default(),
            context: String::new(),
        }));
    }
    Ok(None)
}

/// "Fix with bugbot" on a message: the message is the bug report; file it first.
async fn issue_from_message<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    message: &Message,
    interaction: &InteractionContext,
) -> Result<FixTarget, Outcome> {
    let first_line = message.content.lines().find(|l| !l.trim().is_empty()).unwrap_or("Bug report from Discord");
    // The message is untrusted: escaped for GitHub (no pings, no closing keywords, no fences).
    let title = report::untrusted_title(first_line.trim(), 120);
    let reporter =
        message.author.as_ref().map_or_else(|| "someone".to_owned(), |a| report::untrusted_text(&a.username));
    let quoted = report::untrusted_quote(&message.content, 60);
    let link = match (interaction.guild_id, message.channel_id.or(interaction.channel_id)) {
        (Some(guild), Some(channel)) => format!("https://discord.com/channels/{guild}/{channel}/{}", message.id),
        _ => String::new(),
    };
    let body = format!(
        "Reported in Discord by {reporter}{}:\n\n{quoted}\n_Filed by bugbot for a fix request._\n",
        if link.is_empty() { String::new() } else { format!(" ([message]({link}))") }
    );
    if let Some(github) = ctx.github() {
        let issue = transient_or_done(
            ctx,
            github.create_issue(&title, &body, &["bugbot".to_owned(), "bug-report".to_owned()]).await,
            "filing the issue",
        )?;
        return Ok(FixTarget {
            issue: IssueRef::github(issue.number, issue.html_url).with_title(title),
            also: None,
            body: message.content.clone(),
            context: String::new(),
        });
    }
    Err(done(JobState::Failed, "filing a bug report for a fix needs GitHub (GITHUB_TOKEN, GITHUB_REPO)", Vec::new()))
}

// ---------------------------------------------------------------------------------------------
// Telling people

fn state_text(state: FixState) -> &'static str {
    match state {
        FixState::Queued => "queued",
        FixState::Running => "running",
        FixState::PrOpened => "PR opened",
        FixState::NoChange => "no change",
        FixState::Blocked => "blocked",
        FixState::Failed => "failed",
        FixState::TimedOut => "timed out",
    }
}

fn stage_text(target: &FixTarget, state: FixState, requested_by: &str, run: Option<&FixRun>) -> String {
    let head = format!("🛠️ **Fix for [{}]({})** — {}", target.key(), target.url(), target.title());
    let line = match (state, run) {
        (FixState::Queued, _) => "⏳ queued".to_owned(),
        (FixState::Running, _) => "⚙️ running — Claude Code is working in a sandboxed clone".to_owned(),
        (FixState::PrOpened, Some(r)) => format!("✅ draft PR opened: {}", r.pr_url.as_deref().unwrap_or_default()),
        (FixState::NoChange, _) => "➖ finished without a change".to_owned(),
        (FixState::Blocked, Some(r)) => format!("⛔ blocked: {}", r.reason.as_deref().unwrap_or("policy")),
        (FixState::Failed, Some(r)) => format!("❌ failed: {}", r.reason.as_deref().unwrap_or("unknown")),
        (FixState::TimedOut, _) => "⌛ timed out".to_owned(),
        (_, None) => state_text(state).to_owned(),
    };
    format!("{head}\n{line}\nRequested by {requested_by}")
}

async fn show<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, run: &FixRun) -> Result<(), SinkError> {
    let text = stage_text(&run.target, run.state, &run.requested_by, Some(run));
    if let Some(message_id) = &run.reply.message_id
        && let Some(channel) = &run.reply.channel_id
    {
        let body = json!({"content": text, "allowed_mentions": {"parse": []}});
        return ctx.discord().edit_message(channel, message_id, &body).await.map(|_| ());
    }
    say(ctx, &run.reply, &text).await
}

/// Edits the deferred reply while the interaction token lives, else posts in the channel.
async fn say<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    reply: &Reply,
    text: &str,
) -> Result<(), SinkError> {
    let body = json!({"content": text, "allowed_mentions": {"parse": []}});
    if let (Some(app), Some(token)) = (&reply.application_id, &reply.interaction_token)
        && ctx.now_ms < reply.interaction_expires_ms
    {
        return ctx.discord().edit_original(app, token, &body).await.map(|_| ());
    }
    if let Some(channel) = &reply.channel_id
        && ctx.config.discord.bot_token.is_some()
    {
        return ctx.discord().create_message(channel, &body).await.map(|_| ());
    }
    Ok(())
}

async fn comment<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    target: &FixTarget,
    body: &str,
) -> Result<(), SinkError> {
    for issue in target.issues() {
        if let Some(tracker) = ctx.tracker(issue) {
            tracker.comment(issue, body).await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// State

async fn save_run<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, run: &FixRun) {
    let text = serde_json::to_string(run).expect("a fix run serializes");
    let kv = ctx.state.kv();
    let _ = kv.put_text(&keys::fix_run(&run.fix_job_id), text, FIX_RUN_TTL_SECS).await;
    let _ = kv.put_text(&keys::fix_issue(run.target.key()), run.fix_job_id.clone(), FIX_RUN_TTL_SECS).await;
}

async fn load_run<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, fix_job_id: &str) -> Option<FixRun> {
    serde_json::from_str(&ctx.state.kv().get_text(&keys::fix_run(fix_job_id)).await?).ok()
}

async fn current_run<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, key: &str) -> Option<FixRun> {
    let id = ctx.state.kv().get_text(&keys::fix_issue(key)).await?;
    load_run(ctx, &id).await
}

fn day(now_ms: u64) -> String {
    format_rfc3339_ms(now_ms).chars().take(10).collect()
}

/// Why no auto-fix slot was reserved (said in the tracked issue's comment).
#[derive(Debug, thiserror::Error)]
enum CapRefused {
    /// The claim store's reason (the daily cap of runs, or of spend).
    #[error("{0}")]
    Full(String),
    #[error("the auto-fix caps could not be checked")]
    Unavailable,
}

/// Reserves today's auto-fix slot for the alert job `run` (atomically, in the claim store); `Err`
/// says why not. An unavailable claim store starts nothing.
async fn reserve_cap<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    policy: &AutoFixPolicy,
    run: &str,
) -> Result<(), CapRefused> {
    let op =
        CapsOp::Reserve { run: run.to_owned(), max_runs: policy.max_runs_per_day, max_usd: policy.max_usd_per_day };
    match ctx.claims.caps(&day(ctx.now_ms), &op).await {
        Ok(CapsReply::Reserved) => Ok(()),
        Ok(CapsReply::Full { reason }) => Err(CapRefused::Full(reason)),
        Ok(CapsReply::Ok) | Err(_) => Err(CapRefused::Unavailable),
    }
}

/// Charges or cancels a reservation (best effort: an unreleased slot frees itself with the day).
async fn cap<P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'_, P, C, K>, op: CapsOp) {
    let _ = ctx.claims.caps(&day(ctx.now_ms), &op).await;
}

// ---------------------------------------------------------------------------------------------
// Helpers over the configured sinks

fn github_for<'a, P: HttpPort, C: ClaimPort, K: KvPort>(ctx: &Ctx<'a, P, C, K>, repo: &str) -> Option<GitHub<'a, P>> {
    ctx.github().map(|g| GitHub { repo: repo.to_owned(), ..g })
}

fn slug(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if s.is_empty() { "issue".into() } else { s.chars().take(40).collect() }
}

/// Auto-fix has no interaction to edit: post one message, edited at each stage.
async fn post_progress_message<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    target: &FixTarget,
    requested_by: &str,
    reply: &mut Reply,
) {
    if reply.interaction_token.is_none()
        && let Some(channel) = reply.channel_id.clone()
        && ctx.config.discord.bot_token.is_some()
    {
        let body = json!({"content": stage_text(target, FixState::Queued, requested_by, None), "allowed_mentions": {"parse": []}});
        if let Ok(sent) = ctx.discord().create_message(&channel, &body).await {
            reply.message_id = Some(sent.message_id.to_string());
        }
    }
}

/// The evidence, then the requester's guidance (both fenced as untrusted by their builders).
fn with_guidance(evidence: String, guidance: &str) -> String {
    if guidance.is_empty() {
        evidence
    } else if evidence.is_empty() {
        guidance.to_owned()
    } else {
        format!("{evidence}\n\n{guidance}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fix_run_stored_before_issue_refs_still_reads() {
        // An alert filed in both trackers, as a fix run recorded it before (key: GitHub's label,
        // url: the primary URL, Linear's).
        let before = r##"{"key":"#12","url":"https://linear.app/x/issue/ENG-3","title":"T","body":"B",
            "github_number":12,"linear_id":"uuid-3","context":"C"}"##;
        let target: FixTarget = serde_json::from_str(before).unwrap();
        assert_eq!((target.key(), target.url(), target.title()), ("#12", "https://linear.app/x/issue/ENG-3", "T"));
        assert_eq!(target.github().and_then(IssueRef::github_number), Some(12));
        assert_eq!(target.linear_id(), Some("uuid-3"));
        assert_eq!((target.body.as_str(), target.context.as_str()), ("B", "C"));
        // A Linear-only one.
        let linear = r#"{"key":"ENG-4","url":"https://linear.app/x/issue/ENG-4","title":"T","body":"",
            "linear_id":"uuid-4"}"#;
        let target: FixTarget = serde_json::from_str(linear).unwrap();
        assert_eq!((target.key(), target.linear_id(), target.github().is_none()), ("ENG-4", Some("uuid-4"), true));
        // And today's shape round-trips.
        let now = FixTarget {
            issue: IssueRef::github(7, "https://github.com/o/r/issues/7").with_title("T"),
            also: Some(IssueRef::linear("uuid-7", "ENG-7", "https://linear.app/x/issue/ENG-7")),
            body: "B".into(),
            context: String::new(),
        };
        let text = serde_json::to_string(&now).unwrap();
        assert_eq!(serde_json::from_str::<FixTarget>(&text).unwrap(), now);
    }

    #[test]
    fn slugs_and_branches_are_safe() {
        assert_eq!(slug("#12"), "12");
        assert_eq!(slug("ENG-3"), "eng-3");
        assert_eq!(slug("../../etc"), "etc");
        assert_eq!(slug("!!"), "issue");
    }
}
