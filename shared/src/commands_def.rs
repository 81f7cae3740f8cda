//! The command definitions bugbot registers with Discord
//! (<https://discord.com/developers/docs/interactions/application-commands#bulk-overwrite-global-application-commands>):
//! the `/bugbot` slash command with its subcommands, and the two message context-menu commands.
//! `PUT /applications/{app}/commands` (or `…/guilds/{guild}/commands`) with [`definitions`] replaces
//! them all, so registering is idempotent.

use serde_json::{Value, json};

use crate::command::{MENU_CONTEXTUALIZE, MENU_FIX, SLASH_COMMAND};

/// Option types (<https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-option-type>).
const SUB_COMMAND: u8 = 1;
const STRING: u8 = 3;
const INTEGER: u8 = 4;
/// Command types: `CHAT_INPUT` 1, `MESSAGE` 3.
const CHAT_INPUT: u8 = 1;
const MESSAGE: u8 = 3;

fn text(name: &str, description: &str, required: bool) -> Value {
    json!({"type": STRING, "name": name, "description": description, "required": required, "max_length": 200})
}

fn sub(name: &str, description: &str, options: &[Value]) -> Value {
    json!({"type": SUB_COMMAND, "name": name, "description": description, "options": options})
}

/// Every command, as the JSON array the bulk-overwrite endpoints take.
pub fn definitions() -> Value {
    let issue = |required| text("issue", "Linear id (ENG-123), GitHub issue, or Sentry/GlitchTip issue URL", required);
    let mut note = text("note", "What you know about the bug", false);
    note["max_length"] = json!(1000);
    let period = json!({"type": STRING, "name": "period", "description": "Window", "required": false,
        "choices": [{"name": "day", "value": "day"}, {"name": "week", "value": "week"}, {"name": "month", "value": "month"}]});
    let hours = json!({"type": INTEGER, "name": "hours", "description": "Window in hours (default 24)",
        "required": false, "min_value": 1, "max_value": 720});
    json!([
        {
            "name": SLASH_COMMAND, "type": CHAT_INPUT, "description": "Bug context, status and fixes",
            "contexts": [0], "options": [
                sub("contextualize", "Gather context for this thread's bug into its tracked issue", &[issue(false), note]),
                sub("fix", "Ask for a draft pull request fixing this thread's bug", &[issue(false), text("repo", "owner/name", false)]),
                sub("status", "Progress of bugbot's work on this thread or issue", &[issue(false)]),
                sub("errors", "Top unresolved errors", &[text("project", "Project slug", false), hours]),
                sub("stats", "Error counts by project and level, with the trend", &[period]),
                sub("resolve", "Resolve an error in Sentry/GlitchTip", &[issue(true)]),
                sub("investigate", "Gather context for an issue", &[issue(true)]),
            ]
        },
        {"name": MENU_CONTEXTUALIZE, "type": MESSAGE, "contexts": [0]},
        {"name": MENU_FIX, "type": MESSAGE, "contexts": [0]},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_snapshot() {
        insta::assert_json_snapshot!(definitions());
    }

    #[test]
    fn every_parsed_subcommand_is_defined() {
        let defs = definitions();
        let subs: Vec<&str> =
            defs[0]["options"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(subs, ["contextualize", "fix", "status", "errors", "stats", "resolve", "investigate"]);
        for def in defs.as_array().unwrap() {
            let name = def["name"].as_str().unwrap();
            assert!((1..=32).contains(&name.chars().count()), "{name}");
        }
    }
}
