//! The coding agent behind a small trait, and its real implementation: Claude Code headless, as
//! `docs/CLAUDE_CODE_HEADLESS.md` describes (`claude -p --output-format stream-json --permission-mode dontAsk` with
//! path-scoped tools, user settings only, no session persistence, a private `HOME`, a minimal environment,
//! `--max-turns`, `--max-budget-usd`, and a wall-clock limit with a process-group kill).
//!
//! The output is `stream-json` (one event per line, ending with the `result` object) because the
//! result's `permission_denials` lists only calls the permission check refused: a write that a
//! `--disallowedTools` rule stops during the tool's own validation ("File is in a directory that is
//! denied by your permission settings") shows only as an error `tool_result` in the stream. Both count
//! as refusals, so an agent whose only change was refused is `blocked`, not `no_change`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use crate::config::{Config, Secret};
use crate::process::{self, Ending, Interrupt, Limits};
use crate::sandbox::Jail;

/// What the agent is asked to do.
#[derive(Debug, Clone)]
pub struct AgentTask {
    /// The clone; the agent's working directory.
    pub workdir: PathBuf,
    /// An empty private directory for `HOME` (and `TMPDIR` below it).
    pub home: PathBuf,
    pub prompt: String,
    pub system_prompt: String,
    /// `--allowedTools` and `--disallowedTools` rules.
    pub allowed_rules: Vec<String>,
    pub denied_rules: Vec<String>,
    pub max_turns: u32,
    pub max_usd: f64,
    pub timeout: Duration,
    /// Run the CLI as this job's sandbox user (`None`: as the executor's own user, `SANDBOX=off`).
    pub jail: Option<Jail>,
}

/// How the agent's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEnd {
    /// It finished its work (the diff tells what it did).
    Completed,
    /// It stopped on an error: API failure, turn or budget limit, crash.
    Error(String),
    TimedOut,
    Interrupted,
}

/// A tool call the permission rules refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub tool: String,
    /// The `file_path` (or `command`) it was refused for.
    pub target: String,
}

/// The outcome of one agent run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRun {
    pub end: AgentEnd,
    pub turns: u32,
    pub cost_usd: f64,
    /// The agent's final message.
    pub summary: Option<String>,
    pub denials: Vec<Denial>,
}

impl AgentRun {
    pub fn ended(end: AgentEnd) -> Self {
        Self { end, turns: 0, cost_usd: 0.0, summary: None, denials: Vec::new() }
    }
}

/// A boxed future, so that [`Agent`] stays object-safe.
pub type AgentFuture<'a> = Pin<Box<dyn Future<Output = AgentRun> + Send + 'a>>;

/// A coding agent working in a clone. Implemented by [`ClaudeCode`]; tests and the benchmark use
/// [`ScriptedAgent`].
pub trait Agent: Send + Sync + std::fmt::Debug {
    fn run<'a>(&'a self, task: &'a AgentTask, interrupt: &'a Interrupt) -> AgentFuture<'a>;
}

/// Claude Code's headless CLI.
#[derive(Debug, Clone)]
pub struct ClaudeCode {
    bin: PathBuf,
    model: Option<String>,
    api_key: Option<Secret>,
    base_url: Option<String>,
    path_env: String,
}

impl ClaudeCode {
    pub fn new(config: &Config) -> Self {
        Self {
            bin: config.claude_bin.clone(),
            model: config.claude_model.clone(),
            api_key: config.anthropic_api_key.clone(),
            base_url: config.anthropic_base_url.clone(),
            path_env: config.agent_path.clone(),
        }
    }

    /// The command line (without the prompt, which goes to stdin).
    pub fn args(&self, task: &AgentTask) -> Vec<String> {
        let mut args: Vec<String> = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "dontAsk",
            "--setting-sources",
            "user",
            "--no-session-persistence",
            "--strict-mcp-config",
            "--disable-slash-commands",
            "--tools",
            "Read,Edit,Write,Glob,Grep",
        ]
        .map(str::to_owned)
        .into();
        args.extend(["--max-turns".into(), task.max_turns.max(1).to_string()]);
        args.extend(["--max-budget-usd".into(), format!("{:.2}", task.max_usd.max(0.01))]);
        if let Some(model) = &self.model {
            args.extend(["--model".into(), model.clone()]);
        }
        args.extend(["--append-system-prompt".into(), task.system_prompt.clone()]);
        args.push("--allowedTools".into());
        args.extend(task.allowed_rules.iter().cloned());
        if !task.denied_rules.is_empty() {
            args.push("--disallowedTools".into());
            args.extend(task.denied_rules.iter().cloned());
        }
        args
    }

    /// The complete environment (nothing is inherited): only what the CLI needs.
    pub fn env(&self, task: &AgentTask) -> Vec<(String, String)> {
        let tmp = task.home.join("tmp");
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), self.path_env.clone()),
            ("HOME".into(), task.home.display().to_string()),
            ("TMPDIR".into(), tmp.display().to_string()),
            ("LANG".into(), "C.UTF-8".into()),
            ("NO_COLOR".into(), "1".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(), "1".into()),
            ("CLAUDE_CODE_MAX_RETRIES".into(), "2".into()),
            ("DISABLE_AUTOUPDATER".into(), "1".into()),
            ("DISABLE_TELEMETRY".into(), "1".into()),
            ("DISABLE_ERROR_REPORTING".into(), "1".into()),
        ];
        if let Some(key) = &self.api_key {
            env.push(("ANTHROPIC_API_KEY".into(), key.expose().to_owned()));
        }
        if let Some(url) = &self.base_url {
            env.push(("ANTHROPIC_BASE_URL".into(), url.clone()));
        }
        env
    }

    async fn run_cli(&self, task: &AgentTask, interrupt: &Interrupt) -> AgentRun {
        if let Err(e) = tokio::fs::create_dir_all(task.home.join("tmp")).await {
            return AgentRun::ended(AgentEnd::Error(format!("could not prepare the agent's home: {e}")));
        }
        let mut cmd = match &task.jail {
            Some(jail) => jail.command(&self.bin, &task.workdir, false),
            None => Command::new(&self.bin),
        };
        cmd.current_dir(&task.workdir).env_clear().envs(self.env(task)).args(self.args(task));
        // The stream repeats what the agent read; keep its end (the result) if it is ever that long.
        let limits =
            Limits { keep_tail: true, own_session: task.jail.is_some(), ..Limits::new(task.timeout, 32 * 1024 * 1024) };
        let done = match process::run(cmd, Some(task.prompt.clone().into_bytes()), &limits, interrupt).await {
            Ok(done) => done,
            Err(e) => {
                return AgentRun::ended(AgentEnd::Error(format!(
                    "could not start Claude Code ({}): {e}",
                    self.bin.display()
                )));
            }
        };
        match done.ending {
            Ending::TimedOut => return AgentRun::ended(AgentEnd::TimedOut),
            Ending::Interrupted => return AgentRun::ended(AgentEnd::Interrupted),
            Ending::Exited(_) => {}
        }
        let stdout = String::from_utf8_lossy(&done.stdout);
        if let Some(result) = parse_result(&stdout) {
            let mut run = result.into_run();
            for denial in refused_in_stream(&stdout) {
                if !run.denials.contains(&denial) {
                    run.denials.push(denial);
                }
            }
            run
        } else {
            let status = match done.ending {
                Ending::Exited(s) => s.to_string(),
                _ => String::new(),
            };
            let stderr = process::tail_text(&done.stderr, 1500);
            AgentRun::ended(AgentEnd::Error(format!("Claude Code {status} without a result: {}", stderr.trim())))
        }
    }
}

impl Agent for ClaudeCode {
    fn run<'a>(&'a self, task: &'a AgentTask, interrupt: &'a Interrupt) -> AgentFuture<'a> {
        Box::pin(self.run_cli(task, interrupt))
    }
}

/// The `result` object that ends the stream.
#[derive(Debug, Deserialize)]
struct CliResult {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    subtype: String,
    #[serde(default)]
    is_error: bool,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    num_turns: u32,
    #[serde(default)]
    total_cost_usd: f64,
    #[serde(default)]
    api_error_status: Option<u16>,
    #[serde(default)]
    terminal_reason: Option<String>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
    #[serde(default)]
    permission_denials: Vec<CliDenial>,
}

#[derive(Debug, Deserialize)]
struct CliDenial {
    #[serde(default)]
    tool_name: String,
    #[serde(default)]
    tool_input: serde_json::Value,
}

/// What a tool call was for: its `file_path`, `path` or `command`.
fn target_of(input: &serde_json::Value) -> String {
    ["file_path", "notebook_path", "path", "command"]
        .iter()
        .find_map(|k| input.get(k).and_then(serde_json::Value::as_str))
        .unwrap_or_default()
        .to_owned()
}

/// Tool calls refused by the permission rules, from the `stream-json` events: each error
/// `tool_result` that says so, matched to its `tool_use` by id.
fn refused_in_stream(stdout: &str) -> Vec<Denial> {
    let mut calls: Vec<(String, Denial)> = Vec::new();
    let mut refused = Vec::new();
    for line in stdout.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line.trim()) else { continue };
        let Some(blocks) = event.pointer("/message/content").and_then(serde_json::Value::as_array) else { continue };
        for block in blocks {
            match block["type"].as_str() {
                Some("tool_use") => {
                    let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str()) else { continue };
                    calls.push((id.to_owned(), Denial { tool: name.to_owned(), target: target_of(&block["input"]) }));
                }
                Some("tool_result") if block["is_error"].as_bool() == Some(true) => {
                    let text = match &block["content"] {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    }
                    .to_ascii_lowercase();
                    if !(text.contains("permission") || text.contains("denied")) {
                        continue;
                    }
                    let id = block["tool_use_id"].as_str().unwrap_or_default();
                    if let Some((_, call)) = calls.iter().find(|(call_id, _)| call_id == id)
                        && !refused.contains(call)
                    {
                        refused.push(call.clone());
                    }
                }
                _ => {}
            }
        }
    }
    refused
}

/// The last line of stdout that is a `{"type":"result"}` object.
fn parse_result(stdout: &str) -> Option<CliResult> {
    let whole = serde_json::from_str::<CliResult>(stdout.trim()).ok().filter(|r| r.kind == "result");
    whole.or_else(|| {
        stdout
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<CliResult>(line.trim()).ok())
            .find(|r| r.kind == "result")
    })
}

impl CliResult {
    fn into_run(self) -> AgentRun {
        let denials = self
            .permission_denials
            .iter()
            .map(|d| Denial { tool: d.tool_name.clone(), target: target_of(&d.tool_input) })
            .collect();
        let text = self.result.clone().unwrap_or_default();
        // Decide on `is_error`, not `subtype`: API errors come back as subtype "success".
        let end = if !self.is_error {
            AgentEnd::Completed
        } else if self.subtype.contains("max_turns")
            || self.terminal_reason.as_deref().is_some_and(|r| r.contains("max_turns"))
        {
            AgentEnd::Error(format!("the agent reached its turn limit after {} turns", self.num_turns))
        } else if self.subtype.contains("budget")
            || self.terminal_reason.as_deref().is_some_and(|r| r.contains("budget"))
        {
            AgentEnd::Error(format!("the agent reached its budget (spent ${:.2})", self.total_cost_usd))
        } else if let Some(status) = self.api_error_status {
            AgentEnd::Error(format!("model API error (HTTP {status}): {}", crate::prompt::truncate(text.trim(), 500)))
        } else {
            let detail = if text.trim().is_empty() {
                self.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            } else {
                text.trim().to_owned()
            };
            AgentEnd::Error(format!("the agent failed ({}): {}", self.subtype, crate::prompt::truncate(&detail, 500)))
        };
        AgentRun {
            end,
            turns: self.num_turns,
            cost_usd: self.total_cost_usd,
            summary: Some(text).filter(|t| !t.trim().is_empty() && !self.is_error),
            denials,
        }
    }
}

/// An agent that runs a closure on the clone instead of a model: for tests and the overhead benchmark.
pub struct ScriptedAgent<F>(pub F);

impl<F> std::fmt::Debug for ScriptedAgent<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptedAgent")
    }
}

impl<F> Agent for ScriptedAgent<F>
where
    F: Fn(&Path) -> AgentRun + Send + Sync,
{
    fn run<'a>(&'a self, task: &'a AgentTask, _interrupt: &'a Interrupt) -> AgentFuture<'a> {
        let run = (self.0)(&task.workdir);
        Box::pin(async move { run })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn task() -> AgentTask {
        AgentTask {
            workdir: "/srv/job/repo".into(),
            home: "/srv/job/home".into(),
            prompt: "fix it".into(),
            system_prompt: "data is data".into(),
            allowed_rules: vec!["Read(./**)".into(), "Edit(src/**)".into()],
            denied_rules: vec!["Edit(.github/**)".into()],
            max_turns: 7,
            max_usd: 1.5,
            timeout: Duration::from_mins(1),
            jail: None,
        }
    }

    fn claude(vars: &[(&str, &str)]) -> ClaudeCode {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        ClaudeCode::new(&Config::from_lookup(|k| map.get(k).map(|v| (*v).to_owned())).unwrap())
    }

    #[test]
    fn the_command_line_is_locked_down() {
        let args = claude(&[]).args(&task());
        let joined = args.join(" ");
        for expected in [
            "-p --output-format stream-json --verbose --permission-mode dontAsk --setting-sources user --no-session-persistence",
            "--tools Read,Edit,Write,Glob,Grep",
            "--max-turns 7",
            "--max-budget-usd 1.50",
            "--allowedTools Read(./**) Edit(src/**) --disallowedTools Edit(.github/**)",
        ] {
            assert!(joined.contains(expected), "{expected:?} not in {joined}");
        }
        assert!(!args.iter().any(|a| a.contains("fix it")), "the prompt goes to stdin");
    }

    #[test]
    fn the_environment_holds_only_the_model_key() {
        let c = claude(&[
            ("ANTHROPIC_API_KEY", "model-key-value"),
            ("GIT_TOKEN", "git-token-value"),
            ("EXECUTOR_SECRET", "executor-secret-value"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1"),
        ]);
        let env: HashMap<String, String> = c.env(&task()).into_iter().collect();
        assert_eq!(env["ANTHROPIC_API_KEY"], "model-key-value");
        assert_eq!(env["HOME"], "/srv/job/home");
        assert_eq!(env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"], "1");
        let all = format!("{env:?}");
        assert!(!all.contains("git-token-value") && !all.contains("executor-secret-value"));
    }

    #[test]
    fn results_are_classified() {
        let ok = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"Fixed the off-by-one.","total_cost_usd":0.01,
            "permission_denials":[{"tool_name":"Write","tool_use_id":"t","tool_input":{"file_path":"/r/.github/x.yml","content":"x"}}]}"#;
        let run = parse_result(ok).unwrap().into_run();
        assert_eq!(run.end, AgentEnd::Completed);
        assert_eq!(run.turns, 3);
        assert_eq!(run.summary.as_deref(), Some("Fixed the off-by-one."));
        assert_eq!(run.denials, vec![Denial { tool: "Write".into(), target: "/r/.github/x.yml".into() }]);

        let api = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":500,"num_turns":1,"result":"API Error: 500 boom"}"#;
        let run = parse_result(api).unwrap().into_run();
        assert_eq!(run.end, AgentEnd::Error("model API error (HTTP 500): API Error: 500 boom".into()));
        assert_eq!(run.summary, None);

        let turns = "noise\n{\"type\":\"result\",\"subtype\":\"error_max_turns\",\"is_error\":true,\"num_turns\":5}\n";
        let run = parse_result(turns).unwrap().into_run();
        assert_eq!(run.end, AgentEnd::Error("the agent reached its turn limit after 5 turns".into()));

        assert!(parse_result("not json").is_none());
    }

    #[test]
    fn writes_refused_during_validation_are_found_in_the_stream() {
        // Shapes as Claude Code 2.1 prints them with `--output-format stream-json --verbose`.
        let stream = [
            r#"{"type":"system","subtype":"init","tools":["Read","Write"]}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_1","name":"Write","input":{"file_path":"/r/.github/workflows/fix.yml","content":"on: push"}}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"<tool_use_error>File is in a directory that is denied by your permission settings.</tool_use_error>","is_error":true}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_2","name":"Edit","input":{"file_path":"/r/src/lib.rs","old_string":"x","new_string":"y"}}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_2","type":"tool_result","content":"<tool_use_error>File has not been read yet. Read it first before writing to it.</tool_use_error>","is_error":true}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_3","name":"Read","input":{"file_path":"/proc/self/environ"}}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_3","type":"tool_result","content":[{"type":"text","text":"Permission to use Read has been denied."}],"is_error":true}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":4,"result":"Done.","permission_denials":[{"tool_name":"Read","tool_use_id":"toolu_3","tool_input":{"file_path":"/proc/self/environ"}}]}"#,
        ]
        .join("\n");
        let refused = refused_in_stream(&stream);
        assert_eq!(
            refused,
            vec![
                Denial { tool: "Write".into(), target: "/r/.github/workflows/fix.yml".into() },
                Denial { tool: "Read".into(), target: "/proc/self/environ".into() },
            ],
            "an edit that failed for another reason is not a refusal"
        );
        let run = parse_result(&stream).unwrap().into_run();
        assert_eq!(run.end, AgentEnd::Completed);
        assert_eq!(run.turns, 4);
    }
}
