//! The sandbox launcher: the executor's own binary started again as `bugbot-executor sandbox-exec …`
//! (or `sandbox-sweep`, `sandbox-probe`). It runs as root, confines itself and then becomes the target
//! program with `exec`, so that no line of `unsafe` code is needed for what a `pre_exec` hook would do:
//!
//! 1. `setsid` — a new session and process group, no controlling terminal (no `TIOCSTI` into a shell);
//! 2. optionally `unshare(CLONE_NEWNET)` — an empty network namespace (only loopback, brought up with
//!    `ip` where iproute2 is installed);
//! 3. resource limits: processes, private memory, file size, CPU time, no core files;
//! 4. `setgroups([])`, `setresgid(g)`, `setresuid(u)` — checked afterwards;
//! 5. `PR_SET_NO_NEW_PRIVS` (setuid binaries and file capabilities no longer elevate) and a parent-death
//!    `SIGKILL`;
//! 6. `chdir` to the work directory as the unprivileged user (it must be reachable), then `exec`.
//!
//! `sandbox-sweep` drops to the job's uid and sends `kill(-1, SIGKILL)` — every process that uid owns,
//! wherever it is (double-forked, `setsid`, reparented) — until none is left alive.
//!
//! This module runs before any async runtime exists and does nothing else: keep it that way (`fork`-free,
//! single-threaded code is what makes `setuid` and `exec` here well-defined).

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sched::{CloneFlags, unshare};
use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, getpid, setgroups, setresgid, setresuid, setsid};

/// The subcommand that confines itself and execs the target.
pub const EXEC: &str = "sandbox-exec";
/// The subcommand that kills every process of a uid.
pub const SWEEP: &str = "sandbox-sweep";
/// The subcommand that tells whether an empty network namespace can be made here.
pub const PROBE: &str = "sandbox-probe";

/// Exit code of `sandbox-exec` when confinement failed (the target never ran).
pub const CONFINEMENT_FAILED: i32 = 125;

/// What `sandbox-exec` is told (built by [`crate::sandbox::Jail::command`]).
#[derive(Debug, Parser)]
#[command(name = EXEC, no_binary_name = true)]
pub struct ExecArgs {
    #[arg(long)]
    pub uid: u32,
    #[arg(long)]
    pub gid: u32,
    #[arg(long)]
    pub cwd: PathBuf,
    /// Run in a new, empty network namespace.
    #[arg(long)]
    pub no_network: bool,
    /// `RLIMIT_NPROC` (0: unset).
    #[arg(long, default_value_t = 0)]
    pub nproc: u64,
    /// `RLIMIT_DATA` in bytes (0: unset).
    #[arg(long, default_value_t = 0)]
    pub data: u64,
    /// `RLIMIT_FSIZE` in bytes (0: unset).
    #[arg(long, default_value_t = 0)]
    pub fsize: u64,
    /// `RLIMIT_CPU` in seconds (0: unset).
    #[arg(long, default_value_t = 0)]
    pub cpu: u64,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

/// What `sandbox-sweep` is told.
#[derive(Debug, Parser)]
#[command(name = SWEEP, no_binary_name = true)]
pub struct SweepArgs {
    #[arg(long)]
    pub uid: u32,
    #[arg(long)]
    pub gid: u32,
}

/// If this process was started as the launcher (`argv[1]` is one of its subcommands), does that job and
/// exits; otherwise returns at once. Call it first thing in `main`, before any runtime or thread starts.
pub fn run_if_requested() {
    let mut args = std::env::args_os().skip(1);
    let Some(first) = args.next() else { return };
    let code = match first.to_str() {
        Some(EXEC) => match ExecArgs::try_parse_from(args) {
            Ok(spec) => exec(&spec),
            Err(e) => usage(&e),
        },
        Some(SWEEP) => match SweepArgs::try_parse_from(args) {
            Ok(spec) => sweep(spec.uid, spec.gid),
            Err(e) => usage(&e),
        },
        Some(PROBE) => probe(),
        _ => return,
    };
    std::process::exit(code);
}

fn usage(e: &clap::Error) -> i32 {
    eprintln!("bugbot-sandbox: {e}");
    CONFINEMENT_FAILED
}

/// Confines this process as `spec` says and execs the target; returns only on failure.
fn exec(spec: &ExecArgs) -> i32 {
    if let Err(e) = confine(spec) {
        eprintln!("bugbot-sandbox: confinement failed, nothing was run: {e}");
        return CONFINEMENT_FAILED;
    }
    let (program, args) = spec.command.split_first().expect("clap requires a command");
    let e = std::process::Command::new(program).args(args).exec();
    eprintln!("bugbot-sandbox: could not run {}: {e}", program.to_string_lossy());
    127
}

fn confine(spec: &ExecArgs) -> Result<(), String> {
    let step = |what: &'static str| move |e: nix::Error| format!("{what}: {e}");
    setsid().map_err(step("setsid"))?;
    if spec.no_network {
        unshare(CloneFlags::CLONE_NEWNET).map_err(step("unshare(CLONE_NEWNET)"))?;
        loopback_up();
    }
    let limit = |resource, value: u64| {
        if value == 0 { Ok(()) } else { setrlimit(resource, value, value).map_err(step("setrlimit")) }
    };
    limit(Resource::RLIMIT_NPROC, spec.nproc)?;
    limit(Resource::RLIMIT_DATA, spec.data)?;
    limit(Resource::RLIMIT_FSIZE, spec.fsize)?;
    limit(Resource::RLIMIT_CPU, spec.cpu)?;
    // A crashing agent must not dump its memory (with the model key) into the work tree.
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(step("setrlimit(RLIMIT_CORE)"))?;
    drop_to(spec.uid, spec.gid)?;
    prctl::set_no_new_privs().map_err(step("PR_SET_NO_NEW_PRIVS"))?;
    // Cleared by the uid change, so set afterwards: if the executor dies, so does the target.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(step("PR_SET_PDEATHSIG"))?;
    std::env::set_current_dir(&spec.cwd).map_err(|e| format!("chdir {}: {e}", spec.cwd.display()))?;
    Ok(())
}

/// Brings up `lo` in the new network namespace (tests often listen on `localhost`), with iproute2's `ip`
/// where it is installed; without it the namespace keeps its loopback down, and the test output says so.
fn loopback_up() {
    const IP: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];
    let Some(ip) = IP.iter().find(|p| std::path::Path::new(p).is_file()) else {
        eprintln!("bugbot-sandbox: no `ip` command: loopback stays down in the test's network namespace");
        return;
    };
    let up = std::process::Command::new(ip)
        .args(["link", "set", "lo", "up"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .status();
    if !up.is_ok_and(|status| status.success()) {
        eprintln!("bugbot-sandbox: could not bring loopback up in the test's network namespace");
    }
}

/// Drops every privilege to `uid`/`gid` (no supplementary groups) and checks that it cannot come back.
fn drop_to(uid: u32, gid: u32) -> Result<(), String> {
    if uid == 0 || gid == 0 {
        return Err("refusing to run as root".into());
    }
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    setresgid(g, g, g).map_err(|e| format!("setresgid({gid}): {e}"))?;
    setresuid(u, u, u).map_err(|e| format!("setresuid({uid}): {e}"))?;
    if setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        return Err("root could be regained after the drop".into());
    }
    Ok(())
}

/// As `uid`, kills every process of `uid` until none is alive (zombies left to their reapers).
fn sweep(uid: u32, gid: u32) -> i32 {
    if let Err(e) = drop_to(uid, gid) {
        eprintln!("bugbot-sandbox: sweep of uid {uid} failed: {e}");
        return CONFINEMENT_FAILED;
    }
    let me = getpid().as_raw().unsigned_abs();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // -1: every process this uid may signal (all of its own), except this one. ESRCH: none left.
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        let left: Vec<u32> = live_processes(uid).into_iter().filter(|&pid| pid != me).collect();
        if left.is_empty() {
            return 0;
        }
        if Instant::now() > deadline {
            eprintln!("bugbot-sandbox: processes of uid {uid} survived SIGKILL: {left:?}");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Exit 0 when a new network namespace can be made here (`sandbox-probe`), else prints why and exits 1.
fn probe() -> i32 {
    match unshare(CloneFlags::CLONE_NEWNET) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("unshare(CLONE_NEWNET): {e}");
            1
        }
    }
}

/// Pids of the processes whose real uid is `uid` and that are not zombies, from `/proc`.
pub fn live_processes(uid: u32) -> Vec<u32> {
    crate::process::live_processes_where(|pid| {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
        let real_uid =
            status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().next());
        real_uid.and_then(|v| v.parse::<u32>().ok()) == Some(uid)
    })
}
