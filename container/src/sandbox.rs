//! The executor side of the sandbox: which uid a job gets, how its processes are started
//! ([`Jail::command`] → the launcher in [`crate::launcher`]), who owns which file of the work dir, and the
//! sweep that leaves no process of the job alive.
//!
//! The executor runs as root and keeps every secret. The agent and the test command run as a uid of
//! their own (one per running job, leased through lock files so that several executors on one machine —
//! the test suite — never share one), with no supplementary groups, `no_new_privs` and resource limits.
//! A different uid cannot read `/proc/<pid>/environ` or the memory of the executor or of PID 1, nor
//! signal them, nor write the repository (`.git` stays root's; the work tree is handed over).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::config::SandboxSettings;
use crate::launcher;

/// Why the sandbox could not be used for a job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "the sandbox needs the executor to run as root (it is uid {0}); set SANDBOX=off only for local development"
    )]
    NotRoot(u32),
    #[error("no sandbox launcher found (set SANDBOX_LAUNCHER to a bugbot-executor binary)")]
    NoLauncher,
    #[error("all {0} sandbox uids are in use")]
    NoFreeUid(u32),
    #[error("sandbox lock directory {dir}: {why}")]
    LockDir { dir: String, why: String },
    #[error("{0} is not reachable by the sandbox user: every parent directory needs o+x")]
    Unreachable(String),
    #[error("sweeping uid {uid} failed: {why}")]
    Sweep { uid: u32, why: String },
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for SandboxError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// The sandbox of one executor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    settings: SandboxSettings,
    launcher: Option<PathBuf>,
    network: Arc<OnceCell<Result<(), String>>>,
}

impl Sandbox {
    pub fn new(settings: &SandboxSettings) -> Self {
        let launcher = settings.launcher.clone().or_else(find_launcher);
        Self { settings: settings.clone(), launcher, network: Arc::new(OnceCell::new()) }
    }

    /// Whether jobs run sandboxed (`SANDBOX=on`).
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Leases a free uid for one job (held until the [`Jail`] is dropped).
    pub fn lease(&self) -> Result<Jail, SandboxError> {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            return Err(SandboxError::NotRoot(euid.as_raw()));
        }
        let launcher = self.launcher.clone().ok_or(SandboxError::NoLauncher)?;
        let dir = &self.settings.lock_dir;
        let lock_dir_error = |why: String| SandboxError::LockDir { dir: dir.display().to_string(), why };
        private_dir(dir).map_err(|e| lock_dir_error(e.to_string()))?;
        for offset in 0..self.settings.uids {
            let Some(uid) = self.settings.uid_base.checked_add(offset) else { break };
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("uid-{uid}.lock")))
                .map_err(|e| lock_dir_error(e.to_string()))?;
            match file.try_lock() {
                Ok(()) => {
                    return Ok(Jail {
                        inner: Arc::new(Leased { uid, launcher, settings: self.settings.clone(), _lock: file }),
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(lock_dir_error(e.to_string())),
            }
        }
        Err(SandboxError::NoFreeUid(self.settings.uids))
    }

    /// `Ok` when the test command can get an empty network namespace here (probed once, by the launcher),
    /// else why not. `TEST_NETWORK=on` skips the question.
    pub async fn test_network(&self, jail: &Jail) -> Result<(), String> {
        if self.settings.test_network {
            return Err("TEST_NETWORK=on".into());
        }
        self.network
            .get_or_init(|| async {
                let mut probe = Command::new(&jail.inner.launcher);
                probe.arg(launcher::PROBE).env_clear().kill_on_drop(true);
                match probe.output().await {
                    Ok(out) if out.status.success() => Ok(()),
                    Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
                    Err(e) => Err(format!("could not run the launcher: {e}")),
                }
            })
            .await
            .clone()
    }
}

/// A leased uid: starts processes as it, owns files for it, and sweeps it. Releasing the lease (dropping
/// the last clone) does not sweep: the runner sweeps before it lets go.
#[derive(Debug, Clone)]
pub struct Jail {
    inner: Arc<Leased>,
}

#[derive(Debug)]
struct Leased {
    uid: u32,
    launcher: PathBuf,
    settings: SandboxSettings,
    /// Holds the uid's lock file locked.
    _lock: std::fs::File,
}

impl Jail {
    /// The uid (and gid) of this job's processes.
    pub fn uid(&self) -> u32 {
        self.inner.uid
    }

    /// A command that starts `program` as this job's uid in `cwd`, confined (see [`crate::launcher`]);
    /// arguments added to it go to `program`. The launcher makes its own session: run it with
    /// [`crate::process::Limits::own_session`].
    pub fn command(&self, program: impl AsRef<OsStr>, cwd: &Path, isolate_network: bool) -> Command {
        const MB: u64 = 1024 * 1024;
        let s = &self.inner.settings;
        let mut cmd = Command::new(&self.inner.launcher);
        cmd.arg(launcher::EXEC)
            .args(["--uid", &self.uid().to_string(), "--gid", &self.uid().to_string()])
            .arg("--cwd")
            .arg(cwd)
            .args(["--nproc", &s.max_processes.to_string()])
            .args(["--data", &s.max_memory_mb.saturating_mul(MB).to_string()])
            .args(["--fsize", &s.max_file_mb.saturating_mul(MB).to_string()])
            .args(["--cpu", &s.max_cpu_secs.to_string()]);
        if isolate_network {
            cmd.arg("--no-network");
        }
        cmd.arg("--").arg(program).current_dir(cwd);
        cmd
    }

    /// Kills every process of this uid and returns once none is alive.
    pub async fn sweep(&self) -> Result<(), SandboxError> {
        let uid = self.uid();
        let mut cmd = Command::new(&self.inner.launcher);
        cmd.arg(launcher::SWEEP)
            .args(["--uid", &uid.to_string(), "--gid", &uid.to_string()])
            .env_clear()
            .kill_on_drop(true);
        let out = cmd.output().await.map_err(|e| SandboxError::Sweep { uid, why: e.to_string() })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SandboxError::Sweep { uid, why: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
        }
    }

    /// Removes what this uid left in the world-writable directories (`/tmp`, `/var/tmp`, `/dev/shm` and
    /// the temp dir), so that nothing of this job is there for the next job that gets the same uid. Call
    /// after the sweep (nothing of the uid runs any more).
    pub async fn scrub(&self) {
        let uid = self.uid();
        let result = tokio::task::spawn_blocking(move || {
            let mut dirs = vec![std::env::temp_dir(), "/tmp".into(), "/var/tmp".into(), "/dev/shm".into()];
            dirs.dedup();
            let mut removed = 0usize;
            for dir in dirs {
                for path in owned_entries(&dir, uid) {
                    let gone = if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    match gone {
                        Ok(()) => removed += 1,
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "could not remove a sandbox leftover");
                        }
                    }
                }
            }
            removed
        })
        .await;
        if let Ok(removed) = result
            && removed > 0
        {
            tracing::info!(uid, removed, "removed what the job left in shared temporary directories");
        }
    }

    /// Gives `dir` and everything below it, except `keep` (the `.git` directory), to this uid.
    /// Symbolic links are changed themselves, never followed.
    pub async fn hand_over(&self, dir: &Path, keep: Option<&Path>) -> Result<(), SandboxError> {
        let (dir, keep, uid) = (dir.to_owned(), keep.map(Path::to_owned), self.uid());
        tokio::task::spawn_blocking(move || chown_tree(&dir, keep.as_deref(), uid))
            .await
            .map_err(|e| SandboxError::Io(e.to_string()))?
            .map_err(SandboxError::from)
    }
}

/// Gives `dir` and everything below it to root, without group or other write permission (symbolic links
/// are changed themselves, never followed).
pub fn give_to_root(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::symlink_metadata(dir)?;
    std::os::unix::fs::lchown(dir, Some(0), Some(0))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777 & !0o6022;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            give_to_root(&entry?.path())?;
        }
    }
    Ok(())
}

/// Entries directly in `dir` owned by `uid` (not following symbolic links).
fn owned_entries(dir: &Path, uid: u32) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == uid))
        .collect()
}

fn chown_tree(dir: &Path, keep: Option<&Path>, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if keep == Some(path.as_path()) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            chown_tree(&path, keep, uid)?;
        } else {
            std::os::unix::fs::lchown(&path, Some(uid), Some(uid))?;
        }
    }
    Ok(())
}

/// Creates `dir` if needed and makes sure it is a directory owned by this process's user that nobody else
/// may write (a sandbox user could otherwise have made it first, e.g. under `/tmp`).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != euid {
        return Err(std::io::Error::other(format!("{} is not a directory owned by uid {euid}", dir.display())));
    }
    if meta.mode() & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(meta.mode() & 0o7755))?;
    }
    Ok(())
}

/// Whether every directory from `/` to `path` lets others search it (the sandbox user is "others").
pub fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| !m.is_dir() || m.permissions().mode() & 0o001 != 0))
}

/// The launcher when `SANDBOX_LAUNCHER` is unset: this binary if it is `bugbot-executor`, else a
/// `bugbot-executor` or `bugbot-sandbox` binary next to it or one directory up (cargo's `deps/`).
fn find_launcher() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    if name == "bugbot-executor" || name == "bugbot-sandbox" {
        return Some(exe);
    }
    let dir = exe.parent()?;
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .flat_map(|d| [d.join("bugbot-sandbox"), d.join("bugbot-executor")])
        .find(|candidate| candidate.is_file())
}
