//! The sandbox launcher for executors that run inside a test process: the library finds this binary next
//! to the test binaries (`bugbot_executor::sandbox`) and re-runs it as `sandbox-exec`/`sandbox-sweep`,
//! exactly as the `bugbot-executor` binary re-runs itself in production.

fn main() {
    bugbot_executor::launcher::run_if_requested();
    eprintln!("bugbot-sandbox: only the executor starts this (sandbox-exec, sandbox-sweep, sandbox-probe)");
    std::process::exit(2);
}
