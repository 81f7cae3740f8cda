//! Git, run as a child process with a scrubbed environment. Credentials reach git only through a
//! credential helper that reads them from variables set on the clone and push commands alone, and only
//! for the clone URL's host: never in a URL, an argument, `.git/config`, or the agent's environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::config::{Config, Secret};
use crate::process::{self, Ending, Interrupt, Limits};

/// Longest any single git command may take (clone and push of a large repository included).
const GIT_TIMEOUT: Duration = Duration::from_mins(10);

/// The credential helper: answers `get` for the expected host with the token from the environment.
const CREDENTIAL_HELPER: &str = r#"!f() { test "$1" = get || exit 0; host=; while IFS= read -r line && test -n "$line"; do case "$line" in host=*) host="${line#host=}";; esac; done; test "$host" = "$BUGBOT_GIT_HOST" || exit 0; printf 'username=%s\npassword=%s\n' "$BUGBOT_GIT_USER" "$BUGBOT_GIT_TOKEN"; }; f"#;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("clone URL refused: {0}")]
    BadUrl(&'static str),
    #[error("ref name {0:?} refused")]
    BadRef(String),
    #[error("git {step} failed: {detail}")]
    Failed { step: &'static str, detail: String },
    #[error("git {0} timed out")]
    TimedOut(&'static str),
    #[error("interrupted during git {0}")]
    Interrupted(&'static str),
    #[error("could not run git: {0}")]
    Spawn(#[from] std::io::Error),
}

/// A validated clone URL: `https://` (or, when allowed, `http://`/`file://`), without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    url: String,
    host: String,
}

impl RemoteUrl {
    pub fn parse(url: &str, allow_insecure: bool) -> Result<Self, GitError> {
        if url.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(GitError::BadUrl("empty, too long, or contains whitespace"));
        }
        let (scheme, rest) = url.split_once("://").ok_or(GitError::BadUrl("not an absolute URL"))?;
        match scheme {
            "https" => {}
            "http" | "file" if allow_insecure => {}
            _ => return Err(GitError::BadUrl("only https:// URLs are accepted")),
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(GitError::BadUrl("credentials in the URL; the executor supplies them"));
        }
        if scheme != "file" && authority.is_empty() {
            return Err(GitError::BadUrl("no host"));
        }
        Ok(Self { url: url.to_owned(), host: authority.to_ascii_lowercase() })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

/// Checks a branch or ref name: `[A-Za-z0-9._/-]`, no leading `-` or `/`, no `..`, `//`, `@{`, and no
/// trailing `/`, `.` or `.lock` (a subset of `git check-ref-format`, which also keeps option injection out).
pub fn check_ref(name: &str) -> Result<(), GitError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !Path::new(name).extension().is_some_and(|e| e.eq_ignore_ascii_case("lock"))
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("/.");
    if ok { Ok(()) } else { Err(GitError::BadRef(name.to_owned())) }
}

/// One changed path from the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    /// `None` for binary files.
    pub added: Option<u32>,
    pub deleted: Option<u32>,
    /// The new file mode (`000000` when deleted, `120000` symlink, `160000` submodule).
    pub mode: String,
}

/// Runs git for one job.
#[derive(Debug, Clone)]
pub struct Git {
    bin: PathBuf,
    home: PathBuf,
    path_env: String,
    allow_protocols: &'static str,
    username: String,
    token: Option<Secret>,
    interrupt: Interrupt,
}

/// Parallel checkout workers (git's default threshold of 100 files still applies).
const CHECKOUT_WORKERS: &str = "checkout.workers=8";

impl Git {
    /// `home` is a private, empty directory used as git's `HOME`.
    pub fn new(config: &Config, home: &Path, interrupt: Interrupt) -> Self {
        Self {
            bin: config.git_bin.clone(),
            home: home.to_owned(),
            path_env: config.agent_path.clone(),
            allow_protocols: if config.allow_insecure_remotes { "https:http:file" } else { "https" },
            username: config.git_username.clone(),
            token: config.git_token.clone(),
            interrupt,
        }
    }

    fn command(&self, dir: &Path, remote: Option<&RemoteUrl>) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", &self.home)
            .env("LANG", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", self.allow_protocols)
            // The agent has been in this work tree: never run anything it may have configured.
            .args(["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.sshCommand=false"])
            .args(["-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main", "-c", "credential.helper="]);
        if let (Some(remote), Some(token)) = (remote, &self.token) {
            cmd.arg("-c")
                .arg(format!("credential.helper={CREDENTIAL_HELPER}"))
                .env("BUGBOT_GIT_HOST", &remote.host)
                .env("BUGBOT_GIT_USER", &self.username)
                .env("BUGBOT_GIT_TOKEN", token.expose());
        }
        cmd
    }

    async fn run(
        &self,
        step: &'static str,
        dir: &Path,
        remote: Option<&RemoteUrl>,
        args: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, GitError> {
        let mut cmd = self.command(dir, remote);
        cmd.args(args);
        let limits = Limits { timeout: GIT_TIMEOUT, max_output: 8 * 1024 * 1024, keep_tail: false };
        let done = process::run(cmd, stdin, &limits, &self.interrupt).await?;
        match done.ending {
            Ending::Exited(status) if status.success() => Ok(done.stdout),
            Ending::Exited(_) => {
                Err(GitError::Failed { step, detail: process::tail_text(&done.stderr, 2000).trim().to_owned() })
            }
            Ending::TimedOut => Err(GitError::TimedOut(step)),
            Ending::Interrupted => Err(GitError::Interrupted(step)),
        }
    }

    /// A depth-1 fetch of `base_ref` into a new repository at `dir` (then [`Git::checkout_new_branch`]):
    /// a shallow clone that also works for commit ids.
    pub async fn fetch_shallow(&self, remote: &RemoteUrl, base_ref: &str, dir: &Path) -> Result<(), GitError> {
        check_ref(base_ref)?;
        tokio::fs::create_dir_all(dir).await?;
        self.run("init", dir, None, &["init", "-q", "."], None).await?;
        self.run(
            "fetch",
            dir,
            Some(remote),
            &["fetch", "-q", "--depth", "1", "--no-tags", remote.as_str(), base_ref],
            None,
        )
        .await
        .map(drop)
    }

    /// Checks out what [`Git::fetch_shallow`] fetched on a new `branch` (writes the work tree).
    ///
    /// With parallel checkout: writing the work tree is bound by the latency of creating files, not by
    /// CPU, so several workers overlap it even on one core. On a disk where a create takes ~0.8 ms
    /// (network block storage, or this project's CI VM) it halves the checkout of 2,000 files.
    pub async fn checkout_new_branch(&self, branch: &str, dir: &Path) -> Result<(), GitError> {
        check_ref(branch)?;
        let args = ["-c", CHECKOUT_WORKERS, "checkout", "-q", "-b", branch, "FETCH_HEAD"];
        self.run("checkout", dir, None, &args, None).await.map(drop)
    }

    /// Stages everything the agent changed (respecting `.gitignore`).
    pub async fn stage_all(&self, dir: &Path) -> Result<(), GitError> {
        self.run("add", dir, None, &["add", "-A", "."], None).await.map(drop)
    }

    /// The staged changes against `HEAD`, with line counts and modes.
    pub async fn staged_changes(&self, dir: &Path) -> Result<Vec<Change>, GitError> {
        let diff = ["diff", "--cached", "--no-renames", "--no-ext-diff", "--no-textconv", "-z"];
        let raw = self.run("diff", dir, None, &[&diff[..], &["--raw", "HEAD"]].concat(), None).await?;
        let numstat = self.run("diff", dir, None, &[&diff[..], &["--numstat", "HEAD"]].concat(), None).await?;
        Ok(parse_changes(&String::from_utf8_lossy(&raw), &String::from_utf8_lossy(&numstat)))
    }

    /// The lines the staged change adds (without the leading `+`).
    pub async fn staged_added_lines(&self, dir: &Path) -> Result<String, GitError> {
        let patch = self
            .run(
                "diff",
                dir,
                None,
                &["diff", "--cached", "--no-renames", "--no-ext-diff", "--no-textconv", "--no-color", "-U0", "HEAD"],
                None,
            )
            .await?;
        let patch = String::from_utf8_lossy(&patch);
        Ok(patch
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .map(|l| &l[1..])
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// Commits the index; returns the new `HEAD`.
    pub async fn commit(&self, dir: &Path, message: &str, name: &str, email: &str) -> Result<String, GitError> {
        let user = format!("user.name={name}");
        let mail = format!("user.email={email}");
        self.run(
            "commit",
            dir,
            None,
            &["-c", &user, "-c", &mail, "commit", "-q", "--no-verify", "--no-gpg-sign", "-F", "-"],
            Some(message.as_bytes().to_vec()),
        )
        .await?;
        let head = self.run("rev-parse", dir, None, &["rev-parse", "HEAD"], None).await?;
        Ok(String::from_utf8_lossy(&head).trim().to_owned())
    }

    /// Pushes `HEAD` to `branch` on the clone URL (forced: the branch is the bot's, a re-run replaces it).
    pub async fn push(&self, dir: &Path, remote: &RemoteUrl, branch: &str) -> Result<(), GitError> {
        check_ref(branch)?;
        let refspec = format!("+HEAD:refs/heads/{branch}");
        self.run("push", dir, Some(remote), &["push", "-q", "--no-verify", remote.as_str(), &refspec], None)
            .await
            .map(drop)
    }
}

/// Joins `git diff --raw -z` and `git diff --numstat -z` output (both without renames).
fn parse_changes(raw: &str, numstat: &str) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut fields = raw.split('\0');
    while let Some(meta) = fields.next() {
        let Some(meta) = meta.strip_prefix(':') else { continue };
        let Some(path) = fields.next() else { break };
        let mode = meta.split(' ').nth(1).unwrap_or_default().to_owned();
        changes.push(Change { path: path.to_owned(), added: None, deleted: None, mode });
    }
    for record in numstat.split('\0').filter(|r| !r.is_empty()) {
        let mut parts = record.splitn(3, '\t');
        let (Some(added), Some(deleted), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if let Some(change) = changes.iter_mut().find(|c| c.path == path) {
            change.added = added.parse().ok();
            change.deleted = deleted.parse().ok();
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_credentials_only() {
        assert!(RemoteUrl::parse("https://github.com/o/r.git", false).is_ok());
        assert_eq!(RemoteUrl::parse("https://GitHub.com:8443/o/r", false).unwrap().host, "github.com:8443");
        for bad in [
            "https://x-access-token:t@github.com/o/r.git",
            "https://user@github.com/o/r.git",
            "http://github.com/o/r.git",
            "file:///srv/r.git",
            "ext::sh -c touch% /srv/pwned",
            "--upload-pack=touch /srv/pwned",
            "git@github.com:o/r.git",
            "https://github.com/o/r.git\nx",
            "",
        ] {
            assert!(RemoteUrl::parse(bad, false).is_err(), "{bad}");
        }
        assert!(RemoteUrl::parse("file:///srv/r.git", true).is_ok());
        assert!(RemoteUrl::parse("http://127.0.0.1:9/r.git", true).is_ok());
    }

    #[test]
    fn ref_names() {
        for ok in ["main", "bugbot/eng-123", "release-1.2", "v1.0.0", "4b825dc642cb6eb9a060e54bf8d69288fbee4904"] {
            assert!(check_ref(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-b", "--force", "a..b", "a//b", "a/", "a.lock", "/a", "a b", "a@{1}", "a/.hidden", ".x"] {
            assert!(check_ref(bad).is_err(), "{bad}");
        }
    }

    /// `git credential fill` through the helper, as git itself asks during clone and push.
    async fn fill(token: Option<&str>, remote_host: &str, asked_host: &str) -> std::process::Output {
        let mut vars = vec![("GIT_USERNAME", "bot")];
        if let Some(token) = token {
            vars.push(("GIT_TOKEN", token));
        }
        let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())).unwrap();
        let home = tempfile::tempdir().unwrap();
        let git = Git::new(&config, home.path(), Interrupt::new());
        let remote = RemoteUrl::parse(&format!("https://{remote_host}/o/r.git"), false).unwrap();
        let mut cmd = git.command(home.path(), Some(&remote));
        cmd.args(["credential", "fill"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stdin, format!("protocol=https\nhost={asked_host}\n\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        child.wait_with_output().await.unwrap()
    }

    #[tokio::test]
    async fn the_credential_helper_answers_only_for_the_clone_host() {
        let token = format!("ghs_{}", "x".repeat(36));
        let out = fill(Some(&token), "github.com", "github.com").await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("username=bot\n") && text.contains(&format!("password={token}\n")), "{text}");

        // Another host gets nothing (and git may not prompt), nor does anyone without a token.
        let out = fill(Some(&token), "github.com", "evil.example").await;
        assert!(!out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));
        let out = fill(None, "github.com", "github.com").await;
        assert!(!out.status.success());
    }

    #[test]
    fn diff_output_is_joined() {
        let raw =
            ":100644 100644 aaa bbb M\0src/a.rs\0:000000 100644 000 ccc A\0img.png\0:100644 000000 ddd 000 D\0old.rs\0";
        let numstat = "3\t1\tsrc/a.rs\0-\t-\timg.png\x000\t10\told.rs\0";
        let changes = parse_changes(raw, numstat);
        assert_eq!(
            changes,
            vec![
                Change { path: "src/a.rs".into(), added: Some(3), deleted: Some(1), mode: "100644".into() },
                Change { path: "img.png".into(), added: None, deleted: None, mode: "100644".into() },
                Change { path: "old.rs".into(), added: Some(0), deleted: Some(10), mode: "000000".into() },
            ]
        );
    }
}
