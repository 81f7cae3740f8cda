//! Git, run as a child process with a scrubbed environment. Credentials reach git only through a
//! credential helper that reads them from variables set on the clone and push commands alone, and only
//! for the clone URL's host: never in a URL, an argument, `.git/config`, or the agent's environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::config::{Config, Secret};
use crate::process::{self, Ending, Interrupt, Limits};
use crate::sandbox::Jail;

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
    /// The new blob id (all zeros when deleted).
    pub blob: String,
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
        self.configure(Command::new(&self.bin), dir, remote)
    }

    /// The environment and configuration every git command gets, on `cmd` (git itself, or the sandbox
    /// launcher that will exec git).
    fn configure(&self, mut cmd: Command, dir: &Path, remote: Option<&RemoteUrl>) -> Command {
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", &self.home)
            .env("LANG", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_ATTR_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", self.allow_protocols)
            // The repository and the agent are hostile: never run anything they may have configured. (The
            // runner also checks that `.git` is unchanged before git runs on a tree the agent touched, so
            // filter drivers or aliases added to `.git/config` cannot take effect either.)
            .args(["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.sshCommand=false"])
            .args(["-c", "core.untrackedCache=false", "-c", "protocol.ext.allow=never"])
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
        self.finish(step, cmd, stdin).await
    }

    async fn finish(&self, step: &'static str, cmd: Command, stdin: Option<Vec<u8>>) -> Result<Vec<u8>, GitError> {
        self.finish_with(step, cmd, stdin, Limits::new(GIT_TIMEOUT, 64 * 1024 * 1024)).await
    }

    async fn finish_with(
        &self,
        step: &'static str,
        cmd: Command,
        stdin: Option<Vec<u8>>,
        limits: Limits,
    ) -> Result<Vec<u8>, GitError> {
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

    /// [`Git::checkout_new_branch`] as the job's sandbox user, so that the work tree is created with its
    /// owner (and the index records that owner: no file needs `chown`, nor a second read later). `.git`
    /// must be the job's for the duration; the runner gives it back to root afterwards. `home` is a
    /// directory of the job's (git probes files under `HOME`).
    pub async fn checkout_new_branch_as(
        &self,
        jail: &Jail,
        branch: &str,
        dir: &Path,
        home: &Path,
    ) -> Result<(), GitError> {
        check_ref(branch)?;
        let mut cmd = self.configure(jail.command(&self.bin, dir, false), dir, None);
        cmd.env("HOME", home).args(["-c", "safe.directory=*", "-c", CHECKOUT_WORKERS]);
        cmd.args(["checkout", "-q", "-b", branch, "FETCH_HEAD"]);
        let limits = Limits { own_session: true, ..Limits::new(GIT_TIMEOUT, 1024 * 1024) };
        self.finish_with("checkout", cmd, None, limits).await.map(drop)
    }

    /// Stages the work tree as it is now into the private index `index` (a copy of the checkout's index,
    /// so unchanged files are recognised by their stat data), respecting `.gitignore`. The repository's
    /// own index is never written: what the agent or the tests do to it does not matter.
    ///
    /// Stat data is compared in full (nanosecond mtimes, owner): an edit of the same size within the
    /// checkout's second must not look unchanged. Handing the work tree to the sandbox user changes every
    /// owner, so with the sandbox git re-reads every file here once (tens of milliseconds for 2,000 files).
    ///
    /// The copy keeps the index's modification time: git content-compares every entry whose mtime is not
    /// older than the index file ("racily clean"), and file times move in coarse clock ticks, so an edit
    /// of the same size in the checkout's tick looks unchanged by its stat data alone. A copy stamped
    /// "now" would hide such an edit.
    pub async fn stage_into(&self, dir: &Path, index: &Path) -> Result<(), GitError> {
        copy_keeping_mtime(&dir.join(".git/index"), index).await?;
        self.run_indexed("add", dir, index, &["add", "-A", "."], None).await.map(drop)
    }

    /// The changes staged in `index` against `HEAD`, with line counts, modes and new blob ids.
    pub async fn staged_changes(&self, dir: &Path, index: &Path) -> Result<Vec<Change>, GitError> {
        let diff = ["diff", "--cached", "--no-renames", "--no-ext-diff", "--no-textconv", "-z"];
        let raw_args = [&diff[..], &["--raw", "--no-abbrev", "HEAD"]].concat();
        let raw = self.run_indexed("diff", dir, index, &raw_args, None).await?;
        let numstat = self.run_indexed("diff", dir, index, &[&diff[..], &["--numstat", "HEAD"]].concat(), None).await?;
        Ok(parse_changes(&String::from_utf8_lossy(&raw), &String::from_utf8_lossy(&numstat)))
    }

    /// The bytes of the lines the change staged in `index` adds to text files, one `\n` after each.
    pub async fn staged_added_lines(&self, dir: &Path, index: &Path) -> Result<Vec<u8>, GitError> {
        let args = ["diff", "--cached", "--no-renames", "--no-ext-diff", "--no-textconv", "--no-color", "-U0", "HEAD"];
        let patch = self.run_indexed("diff", dir, index, &args, None).await?;
        Ok(added_lines(&patch))
    }

    /// Sizes of blobs by id (`git cat-file --batch-check`).
    pub async fn blob_sizes(&self, dir: &Path, ids: &[&str]) -> Result<Vec<u64>, GitError> {
        let input = format!("{}\n", ids.join("\n")).into_bytes();
        let out = self.run("cat-file", dir, None, &["cat-file", "--batch-check=%(objectsize)"], Some(input)).await?;
        let sizes: Vec<u64> = String::from_utf8_lossy(&out).lines().filter_map(|l| l.trim().parse().ok()).collect();
        if sizes.len() == ids.len() {
            Ok(sizes)
        } else {
            Err(GitError::Failed { step: "cat-file", detail: "a blob of the change is missing".into() })
        }
    }

    /// A blob's content (`git cat-file blob`).
    pub async fn blob(&self, dir: &Path, id: &str) -> Result<Vec<u8>, GitError> {
        check_object_id(id)?;
        self.run("cat-file", dir, None, &["cat-file", "blob", id], None).await
    }

    /// Writes the tree staged in `index` to the object database; returns its id.
    pub async fn write_tree(&self, dir: &Path, index: &Path) -> Result<String, GitError> {
        let out = self.run_indexed("write-tree", dir, index, &["write-tree"], None).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// Fills the private index `index` with `HEAD`'s tree.
    pub async fn read_head_into(&self, dir: &Path, index: &Path) -> Result<(), GitError> {
        self.run_indexed("read-tree", dir, index, &["read-tree", "HEAD"], None).await.map(drop)
    }

    /// Applies `changes` (new blob and mode, or removal) to the private index `index`.
    pub async fn apply_to_index(&self, dir: &Path, index: &Path, changes: &[&Change]) -> Result<(), GitError> {
        let mut input = Vec::new();
        for change in changes {
            let (mode, blob) = if change.mode == "000000" {
                ("0", "0".repeat(change.blob.len().max(40)))
            } else {
                check_object_id(&change.blob)?;
                (change.mode.as_str(), change.blob.clone())
            };
            input.extend_from_slice(format!("{mode} {blob}\t{}\0", change.path).as_bytes());
        }
        self.run_indexed("update-index", dir, index, &["update-index", "-z", "--index-info"], Some(input))
            .await
            .map(drop)
    }

    /// Writes `tree` into the empty directory `work_tree` through the private index `index`, reading the
    /// objects of `git_dir` (which it never writes). With a jail, git runs as the job's uid, so that the files
    /// are the job's from the start; `home` is then a directory of the job's, and `index` in it.
    pub async fn checkout_tree(
        &self,
        jail: Option<&Jail>,
        git_dir: &Path,
        tree: &str,
        work_tree: &Path,
        index: &Path,
        home: &Path,
    ) -> Result<(), GitError> {
        check_object_id(tree)?;
        for args in [&["read-tree", tree][..], &["checkout-index", "-a", "-f"][..]] {
            let program =
                jail.map_or_else(|| Command::new(&self.bin), |jail| jail.command(&self.bin, work_tree, false));
            let mut cmd = self.configure(program, work_tree, None);
            cmd.env("HOME", home)
                .env("GIT_DIR", git_dir)
                .env("GIT_WORK_TREE", work_tree)
                .env("GIT_INDEX_FILE", index)
                .args(["-c", "safe.directory=*", "-c", CHECKOUT_WORKERS])
                .args(args);
            let limits = Limits { own_session: jail.is_some(), ..Limits::new(GIT_TIMEOUT, 1024 * 1024) };
            self.finish_with("checkout", cmd, None, limits).await?;
        }
        Ok(())
    }

    /// Paths that differ between two trees.
    pub async fn changed_between(&self, dir: &Path, a: &str, b: &str) -> Result<Vec<String>, GitError> {
        check_object_id(a)?;
        check_object_id(b)?;
        let args = ["diff-tree", "-r", "--name-only", "--no-renames", "-z", a, b];
        let out = self.run("diff-tree", dir, None, &args, None).await?;
        Ok(String::from_utf8_lossy(&out).split('\0').filter(|p| !p.is_empty()).map(str::to_owned).collect())
    }

    /// Makes a commit of `tree` on top of `HEAD` without touching any ref, index or work tree; returns
    /// its id. This, not the work tree, is what gets pushed.
    pub async fn commit_tree(
        &self,
        dir: &Path,
        tree: &str,
        message: &str,
        name: &str,
        email: &str,
    ) -> Result<String, GitError> {
        check_object_id(tree)?;
        let (user, mail) = (format!("user.name={name}"), format!("user.email={email}"));
        let args = ["-c", &user, "-c", &mail, "commit-tree", "--no-gpg-sign", tree, "-p", "HEAD", "-F", "-"];
        let out = self.run("commit-tree", dir, None, &args, Some(message.as_bytes().to_vec())).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// Pushes `commit` to `branch` on the clone URL (forced: the branch is the bot's, a re-run replaces it).
    pub async fn push(&self, dir: &Path, remote: &RemoteUrl, commit: &str, branch: &str) -> Result<(), GitError> {
        check_ref(branch)?;
        check_object_id(commit)?;
        let refspec = format!("+{commit}:refs/heads/{branch}");
        self.run("push", dir, Some(remote), &["push", "-q", "--no-verify", remote.as_str(), &refspec], None)
            .await
            .map(drop)
    }

    async fn run_indexed(
        &self,
        step: &'static str,
        dir: &Path,
        index: &Path,
        args: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, GitError> {
        let mut cmd = self.command(dir, None);
        cmd.env("GIT_INDEX_FILE", index).args(args);
        self.finish(step, cmd, stdin).await
    }
}

/// Copies `from` to `to` and gives the copy `from`'s modification time.
async fn copy_keeping_mtime(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || {
        let modified = std::fs::metadata(&from)?.modified()?;
        std::fs::copy(&from, &to)?;
        std::fs::OpenOptions::new().write(true).open(&to)?.set_modified(modified)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A full hexadecimal object id (SHA-1 or SHA-256), which also keeps option injection out.
fn check_object_id(id: &str) -> Result<(), GitError> {
    if matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(GitError::BadRef(id.to_owned()))
    }
}

/// The added lines (without their `+`) of a `-U0` patch, as bytes: NUL bytes and invalid UTF-8 survive.
fn added_lines(patch: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in patch.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"+")
            && !line.starts_with(b"+++")
        {
            out.extend_from_slice(rest);
            out.push(b'\n');
        }
    }
    out
}

/// A fingerprint of everything under a `.git` directory: paths, types, modes, owners, sizes, modification
/// times and link targets. Any change the agent or the tests made to it changes the fingerprint.
pub fn fingerprint(git_dir: &Path) -> std::io::Result<String> {
    use sha2::{Digest as _, Sha256};
    use std::os::unix::fs::MetadataExt as _;
    fn walk(dir: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let link = if meta.file_type().is_symlink() { std::fs::read_link(&path)? } else { PathBuf::new() };
            hasher.update(
                format!(
                    "{}\0{:o}\0{}:{}\0{}\0{}.{}\0{}\n",
                    path.display(),
                    meta.mode(),
                    meta.uid(),
                    meta.gid(),
                    meta.size(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    link.display()
                )
                .as_bytes(),
            );
            if meta.is_dir() {
                walk(&path, hasher)?;
            }
        }
        Ok(())
    }
    let mut hasher = Sha256::new();
    walk(git_dir, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Joins `git diff --raw -z` and `git diff --numstat -z` output (both without renames).
fn parse_changes(raw: &str, numstat: &str) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut fields = raw.split('\0');
    while let Some(meta) = fields.next() {
        let Some(meta) = meta.strip_prefix(':') else { continue };
        let Some(path) = fields.next() else { break };
        let mut fields = meta.split(' ');
        let mode = fields.nth(1).unwrap_or_default().to_owned();
        let blob = fields.nth(1).unwrap_or_default().to_owned();
        changes.push(Change { path: path.to_owned(), blob, added: None, deleted: None, mode });
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
    fn added_lines_keep_every_byte() {
        let patch = b"diff --git a/x b/x\n+++ b/x\n@@ -0,0 +1,2 @@\n+a\x00b\n-old\n+\xff\n";
        assert_eq!(added_lines(patch), b"a\x00b\n\xff\n");
        assert!(check_object_id("4b825dc642cb6eb9a060e54bf8d69288fbee4904").is_ok());
        assert!(check_object_id("--output=x").is_err() && check_object_id("HEAD").is_err());
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
                Change {
                    path: "src/a.rs".into(),
                    blob: "bbb".into(),
                    added: Some(3),
                    deleted: Some(1),
                    mode: "100644".into()
                },
                Change {
                    path: "img.png".into(),
                    blob: "ccc".into(),
                    added: None,
                    deleted: None,
                    mode: "100644".into()
                },
                Change {
                    path: "old.rs".into(),
                    blob: "000".into(),
                    added: Some(0),
                    deleted: Some(10),
                    mode: "000000".into()
                },
            ]
        );
    }
}
