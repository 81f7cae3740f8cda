//! Issue 19.5 end to end: the demo a newcomer runs. `bugbot-dev init` and `bugbot-dev fakes` write the
//! `.dev.vars` that `scripts/dev` writes (the stand-ins for Linear, GitHub and Discord on local ports),
//! both Workers run in workerd with exactly those variables, and `bugbot-dev demo` shows the filed
//! issue, the card with its buttons, a click on Resolve and the edited card.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, TryRecvError};

use bugbot_e2e::wait::{PATIENCE, until_blocking};
use bugbot_e2e::workers::{WorkerVars, Workers};

fn bugbot_dev(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bugbot-dev"));
    command.arg("--dir").arg(dir);
    command
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("bugbot-dev runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

fn read_vars(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// The stand-ins, running; killed on drop.
struct Fakes(Child);

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bugbot-dev fakes`; returns it and its first line.
fn fakes(dir: &Path) -> (Fakes, String) {
    let mut child = bugbot_dev(dir).arg("fakes").stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = first_line(&rx);
    (Fakes(child), first)
}

fn first_line(rx: &Receiver<String>) -> String {
    until_blocking(PATIENCE, "bugbot-dev fakes' first line", || match rx.try_recv() {
        Ok(line) => Some(line),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => Some(String::new()),
    })
    .unwrap()
}

#[test]
fn the_demo_files_the_alert_shows_the_card_and_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    run(bugbot_dev(dir.path()).arg("init"));
    let (_fakes, first) = fakes(dir.path());
    assert!(first.starts_with("ready"), "{first}");

    // Both Workers with the variables scripts/dev gives wrangler dev.
    let vars = WorkerVars {
        gateway: read_vars(&dir.path().join(".dev.vars")),
        consumer: read_vars(&dir.path().join("consumer/.dev.vars")),
    };
    assert!(vars.consumer["DISCORD_API_BASE"].starts_with("http://127.0.0.1:"), "{:?}", vars.consumer);
    let workers = Workers::start(&vars).unwrap();

    let out = run(bugbot_dev(dir.path()).args(["demo", "--url", &workers.url]));
    println!("{out}");
    let after = |marker: &str| out.split_once(marker).unwrap_or_else(|| panic!("no {marker:?} in:\n{out}")).1;
    // The issue, filed in the GitHub stand-in.
    let issue = after("Filed issue: ");
    assert!(issue.starts_with("ReferenceError: heck is not defined"), "{issue}");
    assert!(issue.contains("/acme/shop/issues/"), "{issue}");
    // The card, with its buttons.
    let card = after("Discord card in #alerts:");
    let buttons = card.lines().find(|l| l.trim_start().starts_with("buttons:")).unwrap();
    for button in ["bb1:inv:", "bb1:fix:", "bb1:res:", "bb1:mute:", "[Tracked issue]"] {
        assert!(buttons.contains(button), "{button} missing: {buttons}");
    }
    assert!(out.contains("from scripts/demo to the card: "), "{out}");
    // Resolve, authorized, and the card edited.
    assert!(after("Click Resolve (bb1:res:").contains("-> 200 OK {\"type\":6}"), "{out}");
    let resolved = after("The card after Resolve:");
    assert!(resolved.trim_start().starts_with("✅ Resolved by <@"), "{resolved}");
    let buttons = resolved.lines().find(|l| l.trim_start().starts_with("buttons:")).unwrap();
    assert!(!buttons.contains("bb1:res:") && buttons.contains("[Tracked issue]"), "{buttons}");
    assert!(out.contains(&format!("Dashboard: {}/admin/dashboard", workers.url)), "{out}");
}

#[test]
fn with_real_credentials_the_stand_ins_stay_off() {
    let dir = tempfile::tempdir().unwrap();
    run(bugbot_dev(dir.path()).arg("init"));
    let consumer = dir.path().join("consumer/.dev.vars");
    // A first start writes its block; then a real token is added by hand.
    let (fakes_on, first) = fakes(dir.path());
    assert!(first.starts_with("ready"), "{first}");
    drop(fakes_on);
    let mut text = std::fs::read_to_string(&consumer).unwrap();
    text.push_str("GITHUB_TOKEN=\"real\"\n");
    std::fs::write(&consumer, &text).unwrap();

    let (_fakes, first) = fakes(dir.path());
    assert!(first.starts_with("off: GITHUB_TOKEN set"), "{first}");
    let vars = read_vars(&consumer);
    assert_eq!(vars.get("GITHUB_TOKEN").map(String::as_str), Some("real"));
    for stand_in in ["GITHUB_API_BASE", "DISCORD_API_BASE", "LINEAR_API_URL", "LINEAR_API_KEY", "BUGBOT_DEV_FAKES"] {
        assert!(!vars.contains_key(stand_in), "{stand_in} still points at a stand-in: {vars:?}");
    }
}
