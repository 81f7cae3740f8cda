//! The `/bugbot` command model. A Discord interaction is parsed into a [`Command`] at the gateway,
//! so that a mistyped command is answered at once and only well-formed work is queued.

use serde::{Deserialize, Serialize};

use crate::source::discord::{CommandOption, Interaction, InteractionData, Message, OptionValue};

/// The slash command's name.
pub const SLASH_COMMAND: &str = "bugbot";
/// Message context-menu command that turns a message into a tracked, contextualized issue.
pub const MENU_CONTEXTUALIZE: &str = "Contextualize with bugbot";
/// Message context-menu command that asks for a fix of the bug a message reports.
pub const MENU_FIX: &str = "Fix with bugbot";

const MAX_ISSUE_REF: usize = 200;
const MAX_NOTE: usize = 1_000;
const MAX_HOURS: i64 = 24 * 30;

/// A reference to a tracked or source issue as a user typed it: `ENG-123`, `#42`, or a URL.
/// Resolved against the trackers by the consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IssueMention(String);

impl IssueMention {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `owner/name` of a GitHub repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepoSlug(String);

impl RepoSlug {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (owner, name) = s.split_once('/')?;
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 100
                && !p.starts_with('.')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (ok(owner) && ok(name)).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The window of `/bugbot stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StatsPeriod {
    #[default]
    Day,
    Week,
    Month,
}

/// A well-formed bugbot command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    Contextualize {
        issue: Option<IssueMention>,
        note: Option<String>,
    },
    Fix {
        issue: Option<IssueMention>,
        repo: Option<RepoSlug>,
    },
    Status {
        issue: Option<IssueMention>,
    },
    Errors {
        project: Option<String>,
        hours: Option<u32>,
    },
    Stats {
        period: StatsPeriod,
    },
    Resolve {
        issue: IssueMention,
    },
    Investigate {
        issue: IssueMention,
    },
    /// "Contextualize with bugbot" on a message: the message is the bug report.
    ContextualizeMessage {
        message: Message,
    },
    /// "Fix with bugbot" on a message.
    FixMessage {
        message: Message,
    },
}

impl Command {
    /// The subcommand name, for logs and authorization.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Contextualize { .. } | Self::ContextualizeMessage { .. } => "contextualize",
            Self::Fix { .. } | Self::FixMessage { .. } => "fix",
            Self::Status { .. } => "status",
            Self::Errors { .. } => "errors",
            Self::Stats { .. } => "stats",
            Self::Resolve { .. } => "resolve",
            Self::Investigate { .. } => "investigate",
        }
    }
}

/// Why an interaction is not a well-formed command. The text is shown to the user (ephemeral).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("`{0}` is not a bugbot command.")]
    UnknownCommand(String),
    #[error(
        "`/bugbot {0}` is not a subcommand. Try contextualize, fix, status, errors, stats, resolve or investigate."
    )]
    UnknownSubcommand(String),
    #[error("`/bugbot` needs a subcommand: contextualize, fix, status, errors, stats, resolve or investigate.")]
    MissingSubcommand,
    #[error("`/bugbot {command}` needs the `{option}` option.")]
    MissingOption { command: &'static str, option: &'static str },
    #[error("Option `{option}`: {reason}")]
    BadOption { option: String, reason: &'static str },
    #[error("This menu command needs a target message.")]
    MissingTargetMessage,
}

impl Command {
    /// Parses an `APPLICATION_COMMAND` interaction.
    pub fn from_interaction(interaction: &Interaction) -> Result<Self, CommandError> {
        let data = interaction.data.as_ref().ok_or(CommandError::MissingSubcommand)?;
        let name = data.name.as_deref().unwrap_or_default();
        match data.command_type.unwrap_or(1) {
            3 => {
                let message = target_message(data)?;
                match name {
                    MENU_CONTEXTUALIZE => Ok(Self::ContextualizeMessage { message }),
                    MENU_FIX => Ok(Self::FixMessage { message }),
                    other => Err(CommandError::UnknownCommand(other.to_owned())),
                }
            }
            1 if name == SLASH_COMMAND => Self::from_subcommand(&data.options),
            _ => Err(CommandError::UnknownCommand(name.to_owned())),
        }
    }

    fn from_subcommand(options: &[CommandOption]) -> Result<Self, CommandError> {
        // Subcommands are options of type 1 (SUB_COMMAND).
        let sub = options.iter().find(|o| o.kind == 1).ok_or(CommandError::MissingSubcommand)?;
        let opts = Options(&sub.options);
        Ok(match sub.name.as_str() {
            "contextualize" => Self::Contextualize { issue: opts.issue("issue")?, note: opts.text("note", MAX_NOTE)? },
            "fix" => Self::Fix {
                issue: opts.issue("issue")?,
                repo: opts
                    .text("repo", 201)?
                    .map(|r| {
                        RepoSlug::parse(&r)
                            .ok_or(CommandError::BadOption { option: "repo".into(), reason: "expected owner/name" })
                    })
                    .transpose()?,
            },
            "status" => Self::Status { issue: opts.issue("issue")? },
            "errors" => Self::Errors { project: opts.text("project", 100)?, hours: opts.hours("hours")? },
            "stats" => Self::Stats {
                period: match opts.text("period", 10)?.as_deref() {
                    None | Some("day") => StatsPeriod::Day,
                    Some("week") => StatsPeriod::Week,
                    Some("month") => StatsPeriod::Month,
                    Some(_) => {
                        return Err(CommandError::BadOption {
                            option: "period".into(),
                            reason: "expected day, week or month",
                        });
                    }
                },
            },
            "resolve" => Self::Resolve {
                issue: opts
                    .issue("issue")?
                    .ok_or(CommandError::MissingOption { command: "resolve", option: "issue" })?,
            },
            "investigate" => Self::Investigate {
                issue: opts
                    .issue("issue")?
                    .ok_or(CommandError::MissingOption { command: "investigate", option: "issue" })?,
            },
            other => return Err(CommandError::UnknownSubcommand(other.to_owned())),
        })
    }
}

fn target_message(data: &InteractionData) -> Result<Message, CommandError> {
    let target = data.target_id.ok_or(CommandError::MissingTargetMessage)?;
    data.resolved
        .as_ref()
        .and_then(|r| r.messages.get(&target.to_string()))
        .cloned()
        .ok_or(CommandError::MissingTargetMessage)
}

struct Options<'a>(&'a [CommandOption]);

impl Options<'_> {
    fn get(&self, name: &str) -> Option<&OptionValue> {
        self.0.iter().find(|o| o.name == name).and_then(|o| o.value.as_ref())
    }

    fn text(&self, name: &str, max: usize) -> Result<Option<String>, CommandError> {
        match self.get(name) {
            None => Ok(None),
            Some(OptionValue::Str(s)) => {
                let s = s.trim();
                if s.chars().count() > max {
                    Err(CommandError::BadOption { option: name.into(), reason: "too long" })
                } else if s.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(s.to_owned()))
                }
            }
            Some(_) => Err(CommandError::BadOption { option: name.into(), reason: "expected text" }),
        }
    }

    fn issue(&self, name: &str) -> Result<Option<IssueMention>, CommandError> {
        Ok(self.text(name, MAX_ISSUE_REF)?.map(IssueMention))
    }

    fn hours(&self, name: &str) -> Result<Option<u32>, CommandError> {
        match self.get(name) {
            None => Ok(None),
            Some(OptionValue::Int(h)) if (1..=MAX_HOURS).contains(h) => Ok(u32::try_from(*h).ok()),
            Some(_) => Err(CommandError::BadOption {
                option: name.into(),
                reason: "expected a whole number of hours from 1 to 720",
            }),
        }
    }
}

#[cfg(test)]
#[expect(clippy::needless_pass_by_value, reason = "test helpers take json! literals")]
mod tests {
    use super::*;
    use serde_json::json;

    fn interaction(data: serde_json::Value) -> Interaction {
        serde_json::from_value(json!({"id":"1","application_id":"2","type":2,"token":"t","data":data,
            "member":{"user":{"id":"3","username":"u"},"roles":[]}}))
        .unwrap()
    }

    fn slash(sub: &str, options: serde_json::Value) -> Result<Command, CommandError> {
        Command::from_interaction(&interaction(
            json!({"name":"bugbot","type":1,"options":[{"name":sub,"type":1,"options":options}]}),
        ))
    }

    #[test]
    fn every_subcommand_parses() {
        assert_eq!(
            slash(
                "contextualize",
                json!([{"name":"issue","type":3,"value":" ENG-1 "},{"name":"note","type":3,"value":"hi"}])
            )
            .unwrap(),
            Command::Contextualize { issue: Some(IssueMention("ENG-1".into())), note: Some("hi".into()) }
        );
        assert_eq!(
            slash("fix", json!([{"name":"repo","type":3,"value":"acme/web"}])).unwrap(),
            Command::Fix { issue: None, repo: RepoSlug::parse("acme/web") }
        );
        assert_eq!(slash("status", json!([])).unwrap(), Command::Status { issue: None });
        assert_eq!(
            slash("errors", json!([{"name":"hours","type":4,"value":48}])).unwrap(),
            Command::Errors { project: None, hours: Some(48) }
        );
        assert_eq!(
            slash("stats", json!([{"name":"period","type":3,"value":"week"}])).unwrap(),
            Command::Stats { period: StatsPeriod::Week }
        );
        assert_eq!(slash("resolve", json!([{"name":"issue","type":3,"value":"#4"}])).unwrap().name(), "resolve");
        assert_eq!(
            slash("investigate", json!([{"name":"issue","type":3,"value":"#4"}])).unwrap().name(),
            "investigate"
        );
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        assert_eq!(slash("nope", json!([])), Err(CommandError::UnknownSubcommand("nope".into())));
        assert_eq!(
            slash("resolve", json!([])),
            Err(CommandError::MissingOption { command: "resolve", option: "issue" })
        );
        assert!(matches!(
            slash("errors", json!([{"name":"hours","type":4,"value":0}])),
            Err(CommandError::BadOption { .. })
        ));
        assert!(matches!(
            slash("errors", json!([{"name":"hours","type":3,"value":"5"}])),
            Err(CommandError::BadOption { .. })
        ));
        assert!(matches!(
            slash("fix", json!([{"name":"repo","type":3,"value":"../x"}])),
            Err(CommandError::BadOption { .. })
        ));
        assert!(matches!(
            slash("stats", json!([{"name":"period","type":3,"value":"year"}])),
            Err(CommandError::BadOption { .. })
        ));
        let long = "x".repeat(MAX_ISSUE_REF + 1);
        assert!(matches!(
            slash("status", json!([{"name":"issue","type":3,"value":long}])),
            Err(CommandError::BadOption { .. })
        ));
        let other = Command::from_interaction(&interaction(json!({"name":"other","type":1})));
        assert_eq!(other, Err(CommandError::UnknownCommand("other".into())));
        let bare = Command::from_interaction(&interaction(json!({"name":"bugbot","type":1})));
        assert_eq!(bare, Err(CommandError::MissingSubcommand));
    }

    #[test]
    fn message_menu_commands() {
        let data = json!({"name": MENU_FIX, "type": 3, "target_id": "9",
            "resolved": {"messages": {"9": {"id":"9","channel_id":"8","content":"checkout 500s","author":{"id":"7","username":"a"}}}}});
        let Command::FixMessage { message } = Command::from_interaction(&interaction(data)).unwrap() else { panic!() };
        assert_eq!(message.content, "checkout 500s");
        let missing = json!({"name": MENU_CONTEXTUALIZE, "type": 3, "target_id": "9"});
        assert_eq!(Command::from_interaction(&interaction(missing)), Err(CommandError::MissingTargetMessage));
    }

    #[test]
    fn repo_slug_rules() {
        assert!(RepoSlug::parse("a/b").is_some());
        assert!(RepoSlug::parse("a-b.c/d_e").is_some());
        for bad in ["a", "/b", "a/", "a/b/c", "a/..", "a b/c", "a/b?x"] {
            assert!(RepoSlug::parse(bad).is_none(), "{bad}");
        }
    }
}
