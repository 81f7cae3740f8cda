//! The guidance a "Fix with instructions" click gives a fix job. A leaf: the fix flow reads it.

use bugbot_shared::chatops;
use bugbot_shared::job::{DiscordCommandJob, Job, JobKind};

/// The guidance a fix job carries (from the "Fix with instructions" modal), for the agent's prompt.
pub fn fix_context(job: &Job, requested_by: &str) -> String {
    match &job.kind {
        JobKind::DiscordCommand(DiscordCommandJob { guidance: Some(text), .. }) => {
            chatops::agent_guidance(text, requested_by)
        }
        _ => String::new(),
    }
}

/// The same guidance as given, to be kept with the run and quoted in its PR body.
pub fn guidance(job: &Job) -> Option<String> {
    match &job.kind {
        JobKind::DiscordCommand(c) => c.guidance.clone(),
        _ => None,
    }
}
