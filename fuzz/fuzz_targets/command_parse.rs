//! Arbitrary JSON into `Interaction` and then `Command`. Must never panic; a parsed command keeps
//! its documented bounds and survives the queue's serialization unchanged.
#![no_main]

use bugbot_shared::command::{Command, RepoSlug};
use bugbot_shared::source::discord::Interaction;
use libfuzzer_sys::fuzz_target;

fn check_issue(issue: &str) {
    assert!(!issue.is_empty() && issue.trim() == issue, "{issue:?}");
    assert!(issue.chars().count() <= 200);
}

fuzz_target!(|data: &[u8]| {
    let Ok(interaction) = serde_json::from_slice::<Interaction>(data) else { return };
    let _ = interaction.invoker();
    let _ = interaction.roles();
    if let Some(d) = &interaction.data {
        let mut fields = Vec::new();
        d.components.iter().for_each(|c| c.fields(&mut fields));
    }
    match Command::from_interaction(&interaction) {
        Ok(command) => {
            let _ = command.name();
            match &command {
                Command::Contextualize { issue, note } => {
                    if let Some(i) = issue {
                        check_issue(i.as_str());
                    }
                    assert!(note.as_ref().is_none_or(|n| !n.is_empty() && n.chars().count() <= 1_000));
                }
                Command::Fix { issue, repo } => {
                    if let Some(i) = issue {
                        check_issue(i.as_str());
                    }
                    if let Some(r) = repo {
                        assert_eq!(RepoSlug::parse(r.as_str()).as_ref(), Some(r));
                    }
                }
                Command::Status { issue: Some(i) } => check_issue(i.as_str()),
                Command::Errors { project, hours } => {
                    assert!(project.as_ref().is_none_or(|p| !p.is_empty() && p.chars().count() <= 100));
                    assert!(hours.is_none_or(|h| (1..=720).contains(&h)));
                }
                Command::Resolve { issue } | Command::Investigate { issue } => check_issue(issue.as_str()),
                _ => {}
            }
            let text = serde_json::to_string(&command).expect("a command serializes");
            let back: Command = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(back, command, "command does not round-trip");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
