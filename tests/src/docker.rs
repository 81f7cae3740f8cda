//! Docker, for the tests that build and run the executor image (`tests/container_image.rs`,
//! `tests/wrangler_containers.rs`): whether a daemon answers (if not, those tests are skipped with
//! one line in the test output, never silently), the image `scripts/executor-image` builds from
//! `container/Dockerfile`, containers that are removed when dropped, and the address on which a
//! container reaches servers the test runs on the host (the Docker bridge's gateway).

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

use crate::workers::workspace_root;

/// Set to `1` to skip the container tests (they build a ~400 MB image the first time).
pub const SKIP_VARIABLE: &str = "BUGBOT_SKIP_CONTAINER_TESTS";

/// Runs `docker ARGS` and returns its standard output (trimmed), or fails with its standard error.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker").args(args).output().context("running docker")?;
    if !out.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `None` when the container tests can run here, else why not.
pub fn unavailable() -> Option<String> {
    if std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "1") {
        return Some(format!("{SKIP_VARIABLE}=1"));
    }
    match Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output() {
        Err(_) => {
            Some("the docker command is not installed (scripts/setup installs Debian's docker.io as root)".into())
        }
        Ok(out) if !out.status.success() => {
            let error = String::from_utf8_lossy(&out.stderr);
            let first = error.lines().find(|l| !l.trim().is_empty()).unwrap_or("no answer").trim().to_owned();
            Some(format!("no Docker daemon answers ({first}); scripts/setup starts one when run as root"))
        }
        Ok(_) => None,
    }
}

/// Says, once per test binary, that `suite` is skipped and why. Written to the process's standard
/// error directly: the test harness captures `eprintln!` of passing tests, not this.
pub fn skip(suite: &str, reason: &str) {
    static SAID: OnceLock<()> = OnceLock::new();
    SAID.get_or_init(|| {
        let _ = writeln!(std::io::stderr(), "\nSKIPPED {suite}: {reason}\n");
    });
}

/// Writes a line to the test output even when the test passes (see [`skip`]).
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The executor image, built by `scripts/executor-image` (once per test binary; Docker's layer cache
/// makes it a few seconds when nothing changed). Returns its tag.
pub fn executor_image() -> anyhow::Result<String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let out = Command::new(workspace_root().join("scripts/executor-image"))
                .output()
                .map_err(|e| format!("scripts/executor-image: {e}"))?;
            if !out.status.success() {
                return Err(format!("scripts/executor-image failed:\n{}", String::from_utf8_lossy(&out.stderr)));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The address of the host on Docker's default bridge: servers bound there are reachable from
/// containers (and only from this host and its containers).
pub fn bridge_gateway() -> anyhow::Result<IpAddr> {
    let gateway = docker(&["network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"])?;
    if let Ok(ip) = gateway.parse() {
        return Ok(ip);
    }
    // Docker 20.10 leaves the default bridge's gateway out of its IPAM config: it is the subnet's first
    // address.
    let subnet = docker(&["network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"])?;
    let base: Ipv4Addr = subnet.split('/').next().unwrap_or_default().parse().context("bridge subnet")?;
    Ok(IpAddr::V4(Ipv4Addr::from(u32::from(base) + 1)))
}

/// The default bridge's gateway as its IPAM data names it, which is where wrangler's container runtime
/// (workerd) looks for it; `None` when Docker left it out (Docker 20.10 unless dockerd has `--bip`).
pub fn bridge_gateway_in_ipam() -> Option<IpAddr> {
    docker(&["network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"])
        .ok()?
        .parse()
        .ok()
}

/// The image's size in bytes, and each layer's size with the instruction that made it.
pub fn image_size(image: &str) -> anyhow::Result<(u64, Vec<(u64, String)>)> {
    let total = docker(&["image", "inspect", "--format", "{{.Size}}", image])?.parse().context("image size")?;
    let history = docker(&["history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", image])?;
    let layers = history
        .lines()
        .map(|l| l.split_once('\t').unwrap_or((l, "")))
        .filter_map(|(size, by)| Some((size.trim().parse().ok()?, by.to_owned())))
        .filter(|(size, _)| *size > 0)
        .collect();
    Ok((total, layers))
}

/// The image's size as it travels and is stored by a registry: its `docker save` archive through
/// `gzip -6` (registries keep each layer gzip-compressed; Cloudflare pulls those).
pub fn compressed_size(image: &str) -> anyhow::Result<u64> {
    let out = Command::new("bash")
        .args(["-c", "set -o pipefail; docker save \"$1\" | gzip -6 | wc -c", "bash", image])
        .output()
        .context("running docker save | gzip")?;
    if !out.status.success() {
        bail!("docker save {image} | gzip: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().context("compressed size")
}

/// A process inside a container, as `docker top` shows it (uids are the host's: no user namespaces).
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub uid: u32,
    pub command: String,
}

/// A running container, removed (with `docker rm -f`) when dropped.
#[derive(Debug)]
pub struct Container {
    pub id: String,
}

impl Container {
    /// `docker run -d ARGS`; `env` is passed by name only (`-e NAME`), so values stay out of the
    /// command line.
    pub fn run(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut command = Command::new("docker");
        command.args(["run", "-d"]);
        for (name, value) in env {
            command.arg("-e").arg(name).env(name, value);
        }
        let out = command.args(args).output().context("docker run")?;
        if !out.status.success() {
            bail!("docker run: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(Self { id: String::from_utf8_lossy(&out.stdout).trim().to_owned() })
    }

    /// Where `port` of the container is published on the host (`127.0.0.1:49153`).
    pub fn published(&self, port: u16) -> anyhow::Result<String> {
        let out = docker(&["port", &self.id, &format!("{port}/tcp")])?;
        out.lines().next().map(str::to_owned).context("the port is not published")
    }

    /// Every process in the container.
    pub fn processes(&self) -> anyhow::Result<Vec<Process>> {
        let out = docker(&["top", &self.id, "-eo", "pid,uid,args"])?;
        Ok(out
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let pid = fields.next()?.parse().ok()?;
                let uid = fields.next()?.parse().ok()?;
                Some(Process { pid, uid, command: fields.collect::<Vec<_>>().join(" ") })
            })
            .collect())
    }

    /// Sends `signal` (e.g. `TERM`) to the container's PID 1.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        docker(&["kill", "--signal", signal, &self.id]).map(drop)
    }

    /// `None` while it runs, else its exit code.
    pub fn exit_code(&self) -> anyhow::Result<Option<i64>> {
        let state = docker(&["inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", &self.id])?;
        match state.split_once(' ') {
            Some(("true", _)) => Ok(None),
            Some((_, code)) => Ok(Some(code.parse().context("exit code")?)),
            None => bail!("unexpected state {state:?}"),
        }
    }

    /// What the container printed so far.
    pub fn logs(&self) -> String {
        Command::new("docker")
            .args(["logs", &self.id])
            .output()
            .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
            .unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}
