//! Child processes in their own process group, under a wall-clock limit and an interrupt, with bounded
//! output capture. Whatever way a run ends, the whole group is killed, so nothing the agent or a test
//! command started outlives it.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;

/// A broadcast "stop now" (SIGTERM, shutdown). Cheap to clone; [`Interrupt::fire`] is sticky.
#[derive(Debug, Clone)]
pub struct Interrupt {
    sender: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Self::new()
    }
}

impl Interrupt {
    pub fn new() -> Self {
        Self { sender: std::sync::Arc::new(watch::channel(false).0) }
    }

    /// Interrupts everything waiting on this (and everything that waits later).
    pub fn fire(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_fired(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once [`Interrupt::fire`] has been called.
    pub async fn fired(&self) {
        let mut receiver = self.sender.subscribe();
        let _ = receiver.wait_for(|fired| *fired).await;
    }
}

/// How a supervised process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(ExitStatus),
    TimedOut,
    Interrupted,
}

/// The result of [`run`].
#[derive(Debug)]
pub struct Finished {
    pub ending: Ending,
    /// The process id, which is also its process group id.
    pub pid: u32,
    /// Up to `max_output` bytes of stdout (the head, or the tail when `keep_tail`).
    pub stdout: Vec<u8>,
    /// The last `max_output` bytes of stderr.
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn success(&self) -> bool {
        matches!(self.ending, Ending::Exited(status) if status.success())
    }
}

/// Options for [`run`].
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub max_output: usize,
    /// Keep the end of stdout rather than its beginning.
    pub keep_tail: bool,
    /// The command starts its own session (the sandbox launcher calls `setsid`, which a process-group
    /// leader may not), so it is not put in a new process group here; its pid is still its group's id.
    pub own_session: bool,
}

impl Limits {
    pub fn new(timeout: Duration, max_output: usize) -> Self {
        Self { timeout, max_output, keep_tail: false, own_session: false }
    }
}

/// Spawns `command` in a new process group with `stdin` written to it (or `/dev/null`), and waits for it
/// to exit, time out, or be interrupted. The group gets `SIGKILL` in every case once the leader is done.
pub async fn run(
    mut command: Command,
    stdin: Option<Vec<u8>>,
    limits: &Limits,
    interrupt: &Interrupt,
) -> std::io::Result<Finished> {
    if !limits.own_session {
        command.process_group(0);
    }
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let pid = child.id().ok_or_else(|| std::io::Error::other("child exited before its pid was read"))?;
    // Kills the group if this future is dropped half-way (e.g. the server shuts down).
    let guard = GroupGuard(pid);

    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
            let _ = pipe.shutdown().await;
        });
    }
    let stdout = tokio::spawn(capture(child.stdout.take(), limits.max_output, limits.keep_tail));
    let stderr = tokio::spawn(capture(child.stderr.take(), limits.max_output, true));

    let ending = tokio::select! {
        status = child.wait() => Ending::Exited(status?),
        () = tokio::time::sleep(limits.timeout) => Ending::TimedOut,
        () = interrupt.fired() => Ending::Interrupted,
    };
    drop(guard); // SIGKILL to the whole group: stragglers and, on timeout/interrupt, the leader.
    if !matches!(ending, Ending::Exited(_)) {
        let _ = child.wait().await;
    }
    // SIGKILL is delivered asynchronously: return only once the group is gone (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !group_members(pid).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A process that left the group could still hold the pipes open: don't wait for it forever.
    let collect = |task: tokio::task::JoinHandle<Vec<u8>>| async move {
        let abort = task.abort_handle();
        if let Ok(Ok(bytes)) = tokio::time::timeout(Duration::from_secs(2), task).await {
            bytes
        } else {
            abort.abort();
            Vec::new()
        }
    };
    Ok(Finished { ending, pid, stdout: collect(stdout).await, stderr: collect(stderr).await })
}

async fn capture(pipe: Option<impl AsyncRead + Unpin>, max: usize, keep_tail: bool) -> Vec<u8> {
    let Some(mut pipe) = pipe else { return Vec::new() };
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if keep_tail {
                    kept.extend_from_slice(&chunk[..n]);
                    if kept.len() > 2 * max {
                        kept.drain(..kept.len() - max);
                    }
                } else if kept.len() < max {
                    let take = n.min(max - kept.len());
                    kept.extend_from_slice(&chunk[..take]);
                }
            }
        }
    }
    if keep_tail && kept.len() > max {
        kept.drain(..kept.len() - max);
    }
    kept
}

/// SIGKILLs a process group when dropped.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0) {
            // ESRCH (already gone) is the normal case.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The last `max_bytes` of `bytes` as text, cut at a character boundary.
pub fn tail_text(bytes: &[u8], max_bytes: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= max_bytes {
        return text.into_owned();
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// Pids of live (non-zombie) processes in process group `pgid`, read from `/proc`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    live_processes_where(|pid| {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        // Fields after the parenthesised command name: state ppid pgrp …
        let Some(rest) = stat.rsplit_once(") ").map(|(_, rest)| rest) else { return false };
        rest.split_whitespace().nth(2).and_then(|v| v.parse::<u32>().ok()) == Some(pgid)
    })
}

/// Pids of the processes that are not zombies and for which `keep` holds, from `/proc`.
pub fn live_processes_where(keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X")) && keep(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    fn limits(secs: u64) -> Limits {
        Limits::new(Duration::from_secs(secs), 1024)
    }

    #[tokio::test]
    async fn captures_output_and_stdin() {
        let done = run(sh("cat; echo err >&2; exit 3"), Some(b"hello".to_vec()), &limits(30), &Interrupt::new())
            .await
            .unwrap();
        assert_eq!(done.stdout, b"hello");
        assert_eq!(done.stderr, b"err\n");
        assert!(matches!(done.ending, Ending::Exited(s) if s.code() == Some(3)));
        assert!(!done.success());
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let started = std::time::Instant::now();
        // A background grandchild that would outlive its parent, and a foreground sleep.
        let done = run(sh("sleep 300 & sleep 300"), None, &limits(1), &Interrupt::new()).await.unwrap();
        assert_eq!(done.ending, Ending::TimedOut);
        assert!(started.elapsed() < Duration::from_mins(1));
        assert!(group_members(done.pid).is_empty(), "left behind: {:?}", group_members(done.pid));
    }

    #[tokio::test]
    async fn stragglers_are_killed_after_a_normal_exit() {
        let done =
            run(sh("sleep 300 >/dev/null 2>&1 & echo started"), None, &limits(30), &Interrupt::new()).await.unwrap();
        assert!(done.success());
        assert_eq!(done.stdout, b"started\n");
        assert!(group_members(done.pid).is_empty());
    }

    #[tokio::test]
    async fn an_interrupt_stops_the_process() {
        let interrupt = Interrupt::new();
        let trigger = interrupt.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            trigger.fire();
        });
        let done = run(sh("sleep 300"), None, &limits(120), &interrupt).await.unwrap();
        assert_eq!(done.ending, Ending::Interrupted);
        assert!(group_members(done.pid).is_empty());
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let mut l = limits(30);
        l.max_output = 10;
        l.keep_tail = true;
        let done = run(sh("seq 1 10000"), None, &l, &Interrupt::new()).await.unwrap();
        assert_eq!(done.stdout, b"999\n10000\n");
        assert_eq!(tail_text("héllo wörld".as_bytes(), 5), "…örld");
        assert_eq!(tail_text(b"short", 5), "short");
    }
}
