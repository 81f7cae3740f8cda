//! One fix run, start to end: clone → branch → agent → diff checked against the policy and size caps →
//! tests → commit → push, producing a redacted [`FixReport`]. Nothing is pushed unless every check passed.
//!
//! With the sandbox on, the agent and the test command run as the job's own uid (see [`crate::sandbox`]):
//! the work tree is theirs, `.git` stays the executor's, and after each of them every process of that uid
//! is killed before the executor looks at the result. What is pushed is the tree the checks saw, written
//! from a private index right after the checks and committed with `git commit-tree`: whatever the tests
//! change afterwards (work tree, index, `.git`) never reaches the branch, and is reported.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bugbot_shared::executor::{DiffStat, FixJob, FixOutcome, FixReport, Repro, ReproVerdict};
use tokio::process::Command;

use crate::agent::{Agent, AgentEnd, AgentTask};
use crate::config::Config;
use crate::git::{self, Git, GitError, RemoteUrl};
use crate::paths::{PathPolicy, TestPaths};
use crate::process::{self, Ending, Interrupt, Limits};
use crate::prompt;
use crate::redact::Redactor;
use crate::sandbox::{self, Jail, Sandbox};

/// The reason given when a run is stopped by SIGTERM or shutdown.
pub const INTERRUPTED: &str = "interrupted";

/// Bytes of test output kept in the report.
const TEST_OUTPUT_TAIL: usize = 4000;

/// Where the time went (the benchmark reports these; `agent` is model time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// `git init` + depth-1 fetch.
    pub fetch: Duration,
    /// Writing the work tree on the new branch.
    pub checkout: Duration,
    pub agent: Duration,
    pub check: Duration,
    pub test: Duration,
    /// "Reproduce first": the base code with the change's tests written out, and the test command on it.
    pub repro: Duration,
    pub commit: Duration,
    pub push: Duration,
    pub cleanup: Duration,
    /// What the sandbox costs: leasing a uid, handing the work tree over, the sweeps after the agent and
    /// the tests (not the launcher's own start, which is inside `agent` and `test`).
    pub sandbox: Duration,
}

impl Timings {
    /// The executor's own overhead on the way to a pushed branch: clone and branch, diff check, commit,
    /// push (not the agent, the test command, or the work-dir removal after the result is known).
    pub fn overhead(&self) -> Duration {
        self.fetch + self.checkout + self.check + self.commit + self.push + self.sandbox
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Redacted.
    pub report: FixReport,
    pub timings: Timings,
}

/// Runs jobs. Cheap to share.
#[derive(Debug, Clone)]
pub struct Runner {
    config: Arc<Config>,
    agent: Arc<dyn Agent>,
    redactor: Redactor,
    sandbox: Sandbox,
}

/// Ends a step early with an outcome.
type Step<T> = Result<T, FixOutcome>;

fn failed(reason: impl Into<String>) -> FixOutcome {
    FixOutcome::Failed { reason: reason.into() }
}

fn blocked(reason: impl Into<String>) -> FixOutcome {
    FixOutcome::Blocked { reason: reason.into() }
}

fn git_failed(e: GitError) -> FixOutcome {
    match e {
        GitError::Interrupted(_) => failed(INTERRUPTED),
        other => failed(other.to_string()),
    }
}

impl Runner {
    pub fn new(config: Arc<Config>, agent: Arc<dyn Agent>) -> Self {
        let redactor = config.redactor();
        let sandbox = Sandbox::new(&config.sandbox);
        Self { config, agent, redactor, sandbox }
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Runs `job` in a fresh work dir (removed afterwards) and reports, redacted.
    pub async fn run(&self, job: &FixJob, interrupt: &Interrupt) -> RunResult {
        let started = Instant::now();
        let mut report = FixReport::bare(job.job_id.clone(), job.branch.clone(), FixOutcome::NoChange);
        let mut timings = Timings::default();
        tracing::info!(job_id = %job.job_id, branch = %self.redactor.redact(&job.branch), "run started");

        let work = WorkDir::new(&self.config.work_root, job.job_id.as_str());
        let t = Instant::now();
        let jail = if self.sandbox.enabled() {
            match self.sandbox.lease() {
                // An executor that died mid-job (SIGKILL, OOM) left its uid's processes and files behind:
                // they must not meet this job.
                Ok(jail) => match jail.sweep().await {
                    Ok(()) => {
                        jail.scrub().await;
                        Ok(Some(jail))
                    }
                    Err(e) => Err(failed(format!("sandbox: {e}"))),
                },
                Err(e) => Err(failed(format!("sandbox: {e}"))),
            }
        } else {
            tracing::warn!(job_id = %job.job_id, "SANDBOX=off: the agent and the tests run as the executor's user");
            Ok(None)
        };
        timings.sandbox += t.elapsed();
        report.outcome = match jail {
            Ok(jail) => {
                report.sandboxed = jail.is_some();
                let outcome = match work.create(jail.as_ref()).await {
                    Ok(()) => match self.steps(job, &work, jail.as_ref(), interrupt, &mut report, &mut timings).await {
                        Ok(()) => FixOutcome::Fixed,
                        Err(outcome) => outcome,
                    },
                    Err(e) => failed(format!("could not create the work dir: {e}")),
                };
                // Whatever happened above, nothing of this job runs on (the steps sweep too; this catches
                // early exits), and the uid is released only after this.
                if let Some(jail) = &jail {
                    match jail.sweep().await {
                        Ok(()) => jail.scrub().await,
                        Err(e) => tracing::error!(job_id = %job.job_id, error = %e, "final sweep failed"),
                    }
                }
                outcome
            }
            Err(outcome) => outcome,
        };
        let cleanup = Instant::now();
        work.remove().await;
        timings.cleanup = cleanup.elapsed();

        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.redactor.redact_report(&mut report);
        let reason = match &report.outcome {
            FixOutcome::Blocked { reason } | FixOutcome::Failed { reason } => reason.as_str(),
            _ => "",
        };
        tracing::info!(
            job_id = %job.job_id,
            outcome = report.outcome.name(),
            reason,
            turns = report.turns,
            cost_usd = report.cost_usd,
            duration_ms = report.duration_ms,
            files = report.files.len(),
            overhead_ms = u64::try_from(timings.overhead().as_millis()).unwrap_or(u64::MAX),
            "run finished"
        );
        RunResult { report, timings }
    }

    async fn steps(
        &self,
        job: &FixJob,
        work: &WorkDir,
        jail: Option<&Jail>,
        interrupt: &Interrupt,
        report: &mut FixReport,
        timings: &mut Timings,
    ) -> Step<()> {
        let policy = PathPolicy::for_job(job).map_err(|e| failed(e.to_string()))?;
        let test_paths = TestPaths::for_job(job).map_err(|e| failed(e.to_string()))?;
        let test_command = job.test_command.as_deref().filter(|c| !c.trim().is_empty());
        if job.repro.required && test_command.is_none() {
            return Err(blocked(
                "FIX_REQUIRE_REPRO=on needs a test command (FIX_TEST_COMMAND) to reproduce the error with",
            ));
        }
        let remote = RemoteUrl::parse(&job.clone_url, self.config.allow_insecure_remotes).map_err(git_failed)?;
        git::check_ref(&job.base_ref).map_err(git_failed)?;
        git::check_ref(&job.branch).map_err(git_failed)?;
        if job.branch == job.base_ref {
            return Err(failed("the fix branch must differ from the base ref"));
        }
        let git = Git::new(&self.config, &work.git_home(), interrupt.clone());
        let repo = work.repo();

        // 1. Shallow clone and branch.
        self.clone(job, work, &git, &remote, jail, timings).await?;
        let git_dir = repo.join(".git");
        let before_agent = fingerprint(&git_dir).await?;

        // 2. The agent.
        let t = Instant::now();
        let prompt = prompt::render(job, &policy);
        let (allowed_rules, denied_rules) = policy.agent_rules();
        let task = AgentTask {
            workdir: repo.clone(),
            home: work.agent_home(),
            // The model API is outside too: tokens pasted into an issue do not go there.
            prompt: self.redactor.redact(&prompt.user),
            system_prompt: prompt.system,
            allowed_rules,
            denied_rules,
            max_turns: job.limits.max_turns,
            max_usd: job.limits.max_usd,
            timeout: Duration::from_secs(job.limits.timeout_secs.max(1)),
            jail: jail.cloned(),
        };
        let run = self.agent.run(&task, interrupt).await;
        timings.agent = t.elapsed();
        self.contain(jail, "the agent", timings).await?;
        // The CLI's home may hold what it cached about its key; the tests never see it.
        if let Err(e) = tokio::fs::remove_dir_all(work.agent_home()).await {
            tracing::warn!(error = %e, "could not remove the agent's home");
        }
        report.turns = run.turns;
        report.cost_usd = run.cost_usd;
        report.summary.clone_from(&run.summary);
        tracing::info!(
            job_id = %job.job_id,
            turns = run.turns,
            cost_usd = run.cost_usd,
            denials = run.denials.len(),
            summary = %self.redactor.redact(run.summary.as_deref().unwrap_or_default()),
            "agent finished"
        );
        match run.end {
            AgentEnd::Completed => {}
            AgentEnd::TimedOut => return Err(FixOutcome::TimedOut),
            AgentEnd::Interrupted => return Err(failed(INTERRUPTED)),
            AgentEnd::Error(reason) => return Err(failed(reason)),
        }
        if interrupt.is_fired() {
            return Err(failed(INTERRUPTED));
        }

        // 3. The executor's own checks: it, not the agent, is the last line. Before git runs on anything
        // the agent touched, `.git` must be as the executor left it (no hooks, filters or config of theirs).
        if fingerprint(&git_dir).await? != before_agent {
            return Err(blocked("the agent changed the repository's .git directory"));
        }
        let t = Instant::now();
        let checked_index = work.git_home().join("checked.index");
        let result = self.check(job, &git, &repo, &checked_index, &policy, &run.denials, report).await;
        let checked = match result {
            Ok(changes) => git.write_tree(&repo, &checked_index).await.map_err(git_failed).map(|tree| (tree, changes)),
            Err(outcome) => Err(outcome),
        };
        timings.check = t.elapsed();
        let (tree, changes) = checked?;
        let before_tests = fingerprint(&git_dir).await?;

        // 4. Tests, on a work tree whose later changes do not matter any more; then on the base code with
        // only the change's tests, in a directory of its own.
        if let Some(command) = test_command {
            let checked = Checked { tree: &tree, git_dir: &before_tests, changes: &changes, test_paths: &test_paths };
            self.tests(command, job, work, &git, jail, &checked, interrupt, report, timings).await?;
        }

        // 5. Commit the checked tree and push that commit.
        let t = Instant::now();
        let message = self.redactor.redact(&commit_message(job, report.summary.as_deref()));
        let head = git
            .commit_tree(&repo, &tree, &message, &self.config.author_name, &self.config.author_email)
            .await
            .map_err(git_failed)?;
        report.head_sha = Some(head.clone());
        timings.commit = t.elapsed();
        let t = Instant::now();
        git.push(&repo, &remote, &head, &job.branch).await.map_err(git_failed)?;
        timings.push = t.elapsed();
        Ok(())
    }

    /// Runs the tests on the checked change, then (when they pass) on the base code with only the change's
    /// tests; then reports what they changed. `.git` changed means nothing is pushed, and so does an error
    /// not reproduced when the job requires it.
    #[expect(clippy::too_many_arguments, reason = "one step of one run, called once")]
    async fn tests(
        &self,
        command: &str,
        job: &FixJob,
        work: &WorkDir,
        git: &Git,
        jail: Option<&Jail>,
        checked: &Checked<'_>,
        interrupt: &Interrupt,
        report: &mut FixReport,
        timings: &mut Timings,
    ) -> Step<()> {
        let repo = work.repo();
        let t = Instant::now();
        let run = self.test(command, job, &repo, &work.test_home(), jail, interrupt).await;
        timings.test = t.elapsed();
        self.contain(jail, "the tests", timings).await?;
        let run = run?;
        report.test_network = Some(run.network);
        report.test_output_tail = Some(run.tail);
        self.git_unchanged(&repo, checked, report, "the test command").await?;
        let result = run.ending.outcome();

        let verdict = if result.is_ok() {
            if let Some(jail) = jail {
                // Nothing the first run left in the shared temporary directories meets the second.
                jail.scrub().await;
            }
            let t = Instant::now();
            let verdict = self.reproduce(command, job, work, git, jail, checked, interrupt, report, timings).await;
            timings.repro = t.elapsed();
            verdict?
        } else {
            let tests = test_files(checked);
            not_reproduced(ReproVerdict::NotRun, tests, "the tests fail with the fix".into())
        };
        let line = verdict.line();
        tracing::info!(job_id = %job.job_id, verdict = ?verdict.verdict, line = %self.redactor.redact(&line), "reproduce first");
        let reproduced = verdict.is_reproduced();
        report.repro = Some(verdict);

        // What either run did to the checked work tree is reported (and never pushed).
        let after_index = work.git_home().join("after-tests.index");
        git.stage_into(&repo, &after_index).await.map_err(git_failed)?;
        let after = git.write_tree(&repo, &after_index).await.map_err(git_failed)?;
        if after != checked.tree {
            report.tests_touched = git.changed_between(&repo, checked.tree, &after).await.map_err(git_failed)?;
            tracing::info!(
                job_id = %job.job_id,
                files = report.tests_touched.len(),
                "the tests changed the work tree; the checked tree is pushed"
            );
        }
        result?;
        if job.repro.required && !reproduced {
            return Err(blocked(format!("FIX_REQUIRE_REPRO=on and the error was {line}; nothing was pushed")));
        }
        Ok(())
    }

    /// Blocks when the repository's `.git` is not as it was when the checked tree was written.
    async fn git_unchanged(&self, repo: &Path, checked: &Checked<'_>, report: &mut FixReport, who: &str) -> Step<()> {
        if fingerprint(&repo.join(".git")).await? == checked.git_dir {
            return Ok(());
        }
        if !report.tests_touched.iter().any(|t| t == ".git") {
            report.tests_touched.push(".git".into());
        }
        Err(blocked(format!("{who} changed the repository's .git directory; nothing was pushed")))
    }

    /// "Reproduce first": the base commit with only the change's test files applied, written out as the
    /// job's uid into a directory of its own (`base/`, no `.git`), and the test command run there under the
    /// same sandbox as the first run (own home, same network rule, swept after). It is expected to fail.
    /// The pushed tree is already an object; `.git` must still be unchanged after it.
    #[expect(clippy::too_many_arguments, reason = "one step of one run, called once")]
    async fn reproduce(
        &self,
        command: &str,
        job: &FixJob,
        work: &WorkDir,
        git: &Git,
        jail: Option<&Jail>,
        checked: &Checked<'_>,
        interrupt: &Interrupt,
        report: &mut FixReport,
        timings: &mut Timings,
    ) -> Step<Repro> {
        let tests: Vec<&git::Change> = checked.changes.iter().filter(|c| checked.test_paths.is_test(&c.path)).collect();
        let names = test_files(checked);
        if tests.is_empty() {
            let globs = prompt::truncate(&checked.test_paths.globs().join(", "), 300);
            let why = format!("the change adds or changes no test file (test paths: {globs})");
            return Ok(not_reproduced(ReproVerdict::NotRun, names, why));
        }
        if tests.len() == checked.changes.len() {
            let why = "the change only touches tests: there is no fix to tell apart from them".to_owned();
            return Ok(not_reproduced(ReproVerdict::NotReproduced, names, why));
        }
        let repo = work.repo();
        let index = work.git_home().join("base.index");
        git.read_head_into(&repo, &index).await.map_err(git_failed)?;
        git.apply_to_index(&repo, &index, &tests).await.map_err(git_failed)?;
        let tree = git.write_tree(&repo, &index).await.map_err(git_failed)?;
        // Writing that tree added objects (nothing of the job's runs now): the base run is held to this.
        let git_dir = fingerprint(&repo.join(".git")).await?;

        let t = Instant::now();
        work.create_base(jail).await.map_err(|e| failed(format!("could not create the base work tree: {e}")))?;
        timings.sandbox += t.elapsed();
        let (base, home) = (work.base(), work.base_home());
        let checkout = git.checkout_tree(jail, &repo.join(".git"), &tree, &base, &home.join("index"), &home).await;
        self.contain(jail, "the base checkout", timings).await?;
        checkout.map_err(git_failed)?;
        if fingerprint(&repo.join(".git")).await? != git_dir {
            return Err(blocked("the base checkout changed the repository's .git directory; nothing was pushed"));
        }

        let run = self.test(command, job, &base, &home, jail, interrupt).await;
        self.contain(jail, "the tests on the base code", timings).await?;
        let run = run?;
        if fingerprint(&repo.join(".git")).await? != git_dir {
            report.tests_touched.push(".git".into());
            return Err(blocked(
                "the test command on the base code changed the repository's .git directory; nothing was pushed",
            ));
        }
        let mut verdict =
            Repro { verdict: ReproVerdict::Reproduced, tests: names, reason: None, before_output_tail: Some(run.tail) };
        match run.ending {
            TestEnding::Failed(_) => {}
            TestEnding::Passed => {
                verdict.verdict = ReproVerdict::NotReproduced;
                verdict.reason = Some("the new or changed tests pass on the base code too".into());
            }
            TestEnding::TimedOut(secs) => {
                verdict.verdict = ReproVerdict::NotReproduced;
                verdict.reason = Some(format!("the tests timed out after {secs}s on the base code"));
            }
            TestEnding::Interrupted => return Err(failed(INTERRUPTED)),
        }
        Ok(verdict)
    }

    /// A depth-1 fetch (as root: it holds the token), then the checkout on the new branch — with the
    /// sandbox as the job's uid, so that its work tree is its own from the start.
    async fn clone(
        &self,
        job: &FixJob,
        work: &WorkDir,
        git: &Git,
        remote: &RemoteUrl,
        jail: Option<&Jail>,
        timings: &mut Timings,
    ) -> Step<()> {
        let repo = work.repo();
        let t = Instant::now();
        git.fetch_shallow(remote, &job.base_ref, &repo).await.map_err(git_failed)?;
        timings.fetch = t.elapsed();
        let Some(jail) = jail else {
            let t = Instant::now();
            git.checkout_new_branch(&job.branch, &repo).await.map_err(git_failed)?;
            timings.checkout = t.elapsed();
            return Ok(());
        };
        // The job's uid writes its own work tree (git, with the executor's configuration), then `.git`
        // goes back to root before anything of the job's runs.
        let t = Instant::now();
        work.hand_over(jail).await.map_err(|e| failed(format!("sandbox: {e}")))?;
        timings.sandbox += t.elapsed();
        let t = Instant::now();
        let checkout = git.checkout_new_branch_as(jail, &job.branch, &repo, &work.agent_home()).await;
        timings.checkout = t.elapsed();
        self.contain(Some(jail), "the checkout", timings).await?;
        let t = Instant::now();
        work.take_back(&repo.join(".git")).await.map_err(|e| failed(format!("sandbox: {e}")))?;
        timings.sandbox += t.elapsed();
        checkout.map_err(git_failed)
    }

    /// After a sandboxed step: every process of the job's uid is gone before anything else happens.
    async fn contain(&self, jail: Option<&Jail>, step: &str, timings: &mut Timings) -> Step<()> {
        let Some(jail) = jail else { return Ok(()) };
        let t = Instant::now();
        let swept = jail.sweep().await;
        timings.sandbox += t.elapsed();
        swept.map_err(|e| failed(format!("could not stop every process of {step}: {e}")))
    }

    #[expect(clippy::too_many_arguments, reason = "one step of one run, called once")]
    async fn check(
        &self,
        job: &FixJob,
        git: &Git,
        repo: &Path,
        index: &Path,
        policy: &PathPolicy,
        denials: &[crate::agent::Denial],
        report: &mut FixReport,
    ) -> Step<Vec<git::Change>> {
        git.stage_into(repo, index).await.map_err(git_failed)?;
        let changes = git.staged_changes(repo, index).await.map_err(git_failed)?;
        report.files = changes.iter().map(|c| c.path.clone()).collect();
        let (insertions, deletions) = changes.iter().fold((0u32, 0u32), |(i, d), c| {
            (i.saturating_add(c.added.unwrap_or(0)), d.saturating_add(c.deleted.unwrap_or(0)))
        });
        report.diffstat =
            DiffStat { files_changed: u32::try_from(changes.len()).unwrap_or(u32::MAX), insertions, deletions };

        // A write the permission rules refused means the agent's fix needed a path this job does not
        // allow: pushing the rest would push a partial fix.
        let refused: Vec<String> = denials
            .iter()
            .filter(|d| matches!(d.tool.as_str(), "Edit" | "Write" | "MultiEdit" | "NotebookEdit"))
            .map(|d| relative(repo, &d.target))
            .collect();
        if !refused.is_empty() {
            return Err(blocked(format!(
                "the agent tried to change paths this job does not allow: {}",
                list(&refused)
            )));
        }
        if changes.is_empty() {
            return Err(FixOutcome::NoChange);
        }
        let violations = policy.violations(changes.iter().map(|c| c.path.as_str()));
        if !violations.is_empty() {
            let described: Vec<String> = violations.iter().map(ToString::to_string).collect();
            return Err(blocked(format!("changes outside the allowed paths: {}", list(&described))));
        }
        let odd: Vec<String> =
            changes.iter().filter(|c| c.mode == "120000" || c.mode == "160000").map(|c| c.path.clone()).collect();
        if !odd.is_empty() {
            return Err(blocked(format!("symlinks or submodules are not accepted: {}", list(&odd))));
        }
        let limits = &job.limits;
        if report.diffstat.files_changed > limits.max_files_changed {
            return Err(blocked(format!(
                "{} files changed; the limit is {}",
                report.diffstat.files_changed, limits.max_files_changed
            )));
        }
        let lines = insertions.saturating_add(deletions);
        if lines > limits.max_lines_changed {
            return Err(blocked(format!("{lines} lines changed; the limit is {}", limits.max_lines_changed)));
        }
        self.check_bytes(job, git, repo, index, &changes).await?;
        Ok(changes)
    }

    /// Every byte counts: binary files (git's verdict, or any NUL byte) count by their size and need the
    /// job's permission; text counts by the bytes of its added lines; all of it is scanned for secrets.
    async fn check_bytes(
        &self,
        job: &FixJob,
        git: &Git,
        repo: &Path,
        index: &Path,
        changes: &[git::Change],
    ) -> Step<()> {
        let limits = &job.limits;
        let kept: Vec<&git::Change> = changes.iter().filter(|c| c.mode != "000000").collect();
        let ids: Vec<&str> = kept.iter().map(|c| c.blob.as_str()).collect();
        let sizes = git.blob_sizes(repo, &ids).await.map_err(git_failed)?;
        let added = git.staged_added_lines(repo, index).await.map_err(git_failed)?;
        let mut binary: Vec<(&git::Change, u64)> =
            kept.iter().zip(&sizes).filter(|(c, _)| c.added.is_none()).map(|(c, &size)| (*c, size)).collect();
        if added.contains(&0) {
            // Git calls a file text when its first 8000 bytes have no NUL: look at the whole of each.
            for (change, &size) in kept.iter().zip(&sizes).filter(|(c, _)| c.added.is_some()) {
                if git.blob(repo, &change.blob).await.map_err(git_failed)?.contains(&0) {
                    binary.push((change, size));
                }
            }
        }
        let binary_bytes: u64 = binary.iter().map(|(_, size)| size).sum();
        let total = binary_bytes.saturating_add(added.len() as u64);
        if !binary.is_empty() && limits.max_binary_bytes == 0 {
            let named: Vec<String> = binary.iter().map(|(c, size)| format!("{} ({size} bytes)", c.path)).collect();
            return Err(blocked(format!("binary files are not accepted for this job: {}", list(&named))));
        }
        if binary_bytes > limits.max_binary_bytes {
            return Err(blocked(format!(
                "{binary_bytes} bytes of binary files; the limit is {}",
                limits.max_binary_bytes
            )));
        }
        if total > limits.max_bytes_added {
            return Err(blocked(format!("{total} bytes added; the limit is {}", limits.max_bytes_added)));
        }
        let mut scanned = String::from_utf8_lossy(&added).into_owned();
        for (change, _) in &binary {
            let content = git.blob(repo, &change.blob).await.map_err(git_failed)?;
            scanned.push('\n');
            scanned.push_str(&String::from_utf8_lossy(&content));
        }
        if self.redactor.finds_secret(&scanned) {
            return Err(blocked("the change adds something shaped like a secret or credential"));
        }
        Ok(())
    }

    /// Runs the test command in `cwd` with `home` (the checked work tree, or the base run's).
    async fn test(
        &self,
        command: &str,
        job: &FixJob,
        cwd: &Path,
        home: &Path,
        jail: Option<&Jail>,
        interrupt: &Interrupt,
    ) -> Step<TestRun> {
        let (mut cmd, network) = if let Some(jail) = jail {
            let isolated = self.sandbox.test_network(jail).await;
            if let Err(why) = &isolated {
                tracing::warn!(job_id = %job.job_id, reason = %why, "the test command shares the container's network");
            }
            let network = isolated.as_ref().map_or_else(|why| format!("shared: {why}"), |()| "none".into());
            (jail.command("sh", cwd, isolated.is_ok()), network)
        } else {
            (Command::new("sh"), "shared: SANDBOX=off".into())
        };
        cmd.arg("-c")
            .arg(format!("exec 2>&1\n{command}"))
            .current_dir(cwd)
            .env_clear()
            .env("PATH", &self.config.agent_path)
            .env("HOME", home)
            .env("TMPDIR", home.join("tmp"))
            .env("LANG", "C.UTF-8")
            .env("CI", "true")
            .envs(self.config.test_env.iter().map(|(k, v)| (k, v)));
        let timeout = Duration::from_secs(job.limits.test_timeout_secs.max(1));
        let limits = Limits { keep_tail: true, own_session: jail.is_some(), ..Limits::new(timeout, TEST_OUTPUT_TAIL) };
        let done = process::run(cmd, None, &limits, interrupt)
            .await
            .map_err(|e| failed(format!("could not run the test command: {e}")))?;
        let ending = match done.ending {
            Ending::Exited(status) if status.success() => TestEnding::Passed,
            Ending::Exited(status) => TestEnding::Failed(status.to_string()),
            Ending::TimedOut => TestEnding::TimedOut(timeout.as_secs()),
            Ending::Interrupted => TestEnding::Interrupted,
        };
        Ok(TestRun { ending, tail: process::tail_text(&done.stdout, TEST_OUTPUT_TAIL), network })
    }
}

/// One run of the test command.
#[derive(Debug)]
struct TestRun {
    ending: TestEnding,
    /// The last [`TEST_OUTPUT_TAIL`] bytes of its output.
    tail: String,
    /// `"none"` or why it shared the container's network.
    network: String,
}

#[derive(Debug)]
enum TestEnding {
    Passed,
    /// With the exit status.
    Failed(String),
    /// After this many seconds.
    TimedOut(u64),
    Interrupted,
}

impl TestEnding {
    /// The run's outcome when the test command judges the change.
    fn outcome(&self) -> Step<()> {
        match self {
            Self::Passed => Ok(()),
            Self::Failed(status) => Err(failed(format!("tests failed ({status})"))),
            Self::TimedOut(secs) => Err(failed(format!("tests timed out after {secs}s"))),
            Self::Interrupted => Err(failed(INTERRUPTED)),
        }
    }
}

fn not_reproduced(verdict: ReproVerdict, tests: Vec<String>, reason: String) -> Repro {
    Repro { verdict, tests, reason: Some(reason), before_output_tail: None }
}

/// The checked change's test files.
fn test_files(checked: &Checked<'_>) -> Vec<String> {
    checked.changes.iter().filter(|c| checked.test_paths.is_test(&c.path)).map(|c| c.path.clone()).collect()
}

/// What the checks saw: the tree that will be pushed, the `.git` fingerprint after it was written, the
/// change, and which of its paths are tests.
#[derive(Debug)]
struct Checked<'a> {
    tree: &'a str,
    git_dir: &'a str,
    changes: &'a [git::Change],
    test_paths: &'a TestPaths,
}

/// The `.git` fingerprint (see [`git::fingerprint`]), off the async threads.
async fn fingerprint(git_dir: &Path) -> Step<String> {
    let dir = git_dir.to_owned();
    tokio::task::spawn_blocking(move || git::fingerprint(&dir))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(format!("could not read .git: {e}")))
}

fn commit_message(job: &FixJob, summary: Option<&str>) -> String {
    let p = &job.prompt;
    let key = prompt::one_line(&p.issue_key);
    let title = prompt::truncate(&prompt::one_line(&p.title), 72);
    let mut message = format!("fix({key}): {title}\n\n");
    if let Some(summary) = summary.map(str::trim).filter(|s| !s.is_empty()) {
        message.push_str(&prompt::truncate(summary, 2000));
        message.push_str("\n\n");
    }
    let _ = write!(message, "Refs: {key}");
    if let Some(url) = p.issue_url.as_deref() {
        let _ = write!(message, " {}", prompt::one_line(url));
    }
    let _ = writeln!(message, "\nGenerated by bugbot with Claude Code (job {}).", job.job_id);
    message
}

fn relative(repo: &Path, target: &str) -> String {
    Path::new(target).strip_prefix(repo).map_or_else(|_| target.to_owned(), |p| p.display().to_string())
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        let _ = write!(text, " and {} more", items.len() - SHOWN);
    }
    text
}

/// A job's private directory: `repo/` (the clone), `agent-home/`, `test-home/`, `git-home/`, and for
/// "reproduce first" `base/` (the base code with the change's tests, no `.git`) and `base-home/`.
///
/// With the sandbox: the job dir and `git-home/` (private indexes) are root's; `repo/` is root's with the
/// job's group, sticky and group-writable, so the job can create files at the top but cannot rename or
/// replace `.git` (root's, read-only to others); everything else in the work tree and both homes belong to
/// the job's uid.
#[derive(Debug)]
struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    fn new(work_root: &Path, job_id: &str) -> Self {
        // Job ids are restricted to [A-Za-z0-9._-] and never start with '.', so this stays inside.
        Self { root: work_root.join(format!("job-{job_id}")) }
    }

    async fn create(&self, jail: Option<&Jail>) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let work_root = self.root.parent().unwrap_or(&self.root).to_owned();
        if jail.is_some() {
            // Nobody else may have made (or may write) the work root; the sandbox user must reach it.
            sandbox::private_dir(&work_root)?;
            if !sandbox::reachable_by_others(&work_root) {
                return Err(std::io::Error::other(
                    sandbox::SandboxError::Unreachable(work_root.display().to_string()).to_string(),
                ));
            }
        }
        // A crash may have left a previous attempt behind.
        if tokio::fs::try_exists(&self.root).await.unwrap_or(false) {
            tokio::fs::remove_dir_all(&self.root).await?;
        }
        for dir in [self.root.clone(), self.agent_home().join("tmp"), self.git_home(), self.test_home().join("tmp")] {
            tokio::fs::create_dir_all(&dir).await?;
        }
        // `.git` is root's: let git, run by the agent or the tests, read it all the same.
        for home in [self.agent_home(), self.test_home()] {
            tokio::fs::write(home.join(".gitconfig"), "[safe]\n\tdirectory = *\n").await?;
        }
        if jail.is_some() {
            tokio::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o711)).await?;
            tokio::fs::set_permissions(self.git_home(), std::fs::Permissions::from_mode(0o700)).await?;
        }
        Ok(())
    }

    /// Before the checkout: the clone's top directory becomes root's with the job's group (sticky), and
    /// `.git` (a fresh, fetched repository) and both homes the job's.
    async fn hand_over(&self, jail: &Jail) -> Result<(), sandbox::SandboxError> {
        use std::os::unix::fs::PermissionsExt as _;
        let repo = self.repo();
        std::os::unix::fs::lchown(&repo, Some(0), Some(jail.uid()))?;
        tokio::fs::set_permissions(&repo, std::fs::Permissions::from_mode(0o1770)).await?;
        jail.hand_over(&repo.join(".git"), None).await?;
        for home in [self.agent_home(), self.test_home()] {
            jail.hand_over(&home, None).await?;
            tokio::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).await?;
        }
        Ok(())
    }

    /// After the checkout (and a sweep): `.git` is root's again, and no one else may write it.
    async fn take_back(&self, git_dir: &Path) -> Result<(), sandbox::SandboxError> {
        let dir = git_dir.to_owned();
        tokio::task::spawn_blocking(move || sandbox::give_to_root(&dir))
            .await
            .map_err(|e| sandbox::SandboxError::Io(e.to_string()))?
            .map_err(sandbox::SandboxError::from)
    }

    /// The base run's work tree and home, empty, the job's (with the sandbox) and private.
    async fn create_base(&self, jail: Option<&Jail>) -> Result<(), sandbox::SandboxError> {
        use std::os::unix::fs::PermissionsExt as _;
        for dir in [self.base(), self.base_home().join("tmp")] {
            tokio::fs::create_dir_all(&dir).await?;
        }
        tokio::fs::write(self.base_home().join(".gitconfig"), "[safe]\n\tdirectory = *\n").await?;
        if let Some(jail) = jail {
            for dir in [self.base(), self.base_home()] {
                jail.hand_over(&dir, None).await?;
                tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).await?;
            }
        }
        Ok(())
    }

    fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }

    fn base(&self) -> PathBuf {
        self.root.join("base")
    }

    fn base_home(&self) -> PathBuf {
        self.root.join("base-home")
    }

    fn agent_home(&self) -> PathBuf {
        self.root.join("agent-home")
    }

    fn git_home(&self) -> PathBuf {
        self.root.join("git-home")
    }

    fn test_home(&self) -> PathBuf {
        self.root.join("test-home")
    }

    async fn remove(&self) {
        if let Err(e) = tokio::fs::remove_dir_all(&self.root).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, dir = %self.root.display(), "could not remove the work dir");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bugbot_shared::executor::{FixJobId, FixLimits, FixPrompt};

    #[test]
    fn commit_messages_reference_the_issue() {
        let job = FixJob {
            version: 1,
            job_id: FixJobId::new("j9").unwrap(),
            clone_url: "https://example.com/r.git".into(),
            base_ref: "main".into(),
            branch: "bugbot/eng-9".into(),
            prompt: FixPrompt {
                issue_key: "ENG-9".into(),
                issue_url: Some("https://linear.app/x/issue/ENG-9".into()),
                title: "TypeError: x is undefined\nmore".into(),
                body: String::new(),
                context: String::new(),
            },
            allowed_paths: vec!["**".into()],
            allow_protected: vec![],
            test_command: None,
            limits: FixLimits::default(),
            callback_url: None,
            repro: bugbot_shared::executor::ReproPolicy::default(),
        };
        let message = commit_message(&job, Some("Guarded the lookup."));
        assert_eq!(
            message,
            "fix(ENG-9): TypeError: x is undefined\n\nGuarded the lookup.\n\nRefs: ENG-9 https://linear.app/x/issue/ENG-9\nGenerated by bugbot with Claude Code (job j9).\n"
        );
    }

    #[test]
    fn lists_are_capped() {
        let items: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        assert_eq!(list(&items), "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more");
        assert_eq!(relative(Path::new("/w/repo"), "/w/repo/.github/x.yml"), ".github/x.yml");
    }
}
