//! Who may run which `/bugbot` command. Reading commands (contextualize, investigate, status,
//! errors, stats) and writing ones (fix, resolve: they change code or another system) have
//! separate rules; writes are the stricter. Configuration (comma- or space-separated snowflakes):
//!
//! - `DISCORD_ALLOWED_GUILDS`: the servers bugbot answers in. Empty: none — every command is refused
//!   with a message naming the setting (any server can add a bot while "Public Bot" is on, and the
//!   read commands post Sentry events, recordings and repository code into the channel).
//! - `DISCORD_ALLOWED_CHANNELS`: where in those servers bugbot answers (empty: every channel).
//! - `DISCORD_READ_ROLES`, `DISCORD_ALLOWED_USERS`: who may read (both empty: everyone in scope).
//! - `DISCORD_WRITE_ROLES`, `DISCORD_ADMIN_USERS`: who may fix and resolve. Both empty: no one —
//!   writes are closed until someone is named (secure by default).
//!
//! Admin users pass every check but the first (a server must be configured), scope included. Write
//! roles and admins may also read.

use crate::command::Command;
use crate::job::InteractionContext;
use crate::source::discord::Snowflake;

/// What a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn of(command: &Command) -> Self {
        match command {
            Command::Fix { .. } | Command::FixMessage { .. } | Command::Resolve { .. } => Self::Write,
            _ => Self::Read,
        }
    }
}

/// The verdict. A refusal's reason is shown to the user and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

/// The authorization settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub guilds: Vec<Snowflake>,
    pub channels: Vec<Snowflake>,
    pub read_roles: Vec<Snowflake>,
    pub write_roles: Vec<Snowflake>,
    pub users: Vec<Snowflake>,
    pub admins: Vec<Snowflake>,
}

/// The raw settings, by variable name.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyVars<'a> {
    pub allowed_guilds: Option<&'a str>,
    pub allowed_channels: Option<&'a str>,
    pub read_roles: Option<&'a str>,
    pub write_roles: Option<&'a str>,
    pub allowed_users: Option<&'a str>,
    pub admin_users: Option<&'a str>,
}

/// An authorization setting that cannot be read; bugbot then refuses every command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: `{value}` is not a Discord id")]
pub struct PolicyError {
    pub setting: &'static str,
    pub value: String,
}

fn ids(setting: &'static str, raw: Option<&str>) -> Result<Vec<Snowflake>, PolicyError> {
    raw.unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map(Snowflake).map_err(|_| PolicyError { setting, value: s.to_owned() }))
        .collect()
}

impl Policy {
    /// Parses the settings; an unparsable id is an error (the caller should then refuse everything
    /// rather than open up).
    pub fn from_vars(vars: &PolicyVars<'_>) -> Result<Self, PolicyError> {
        Ok(Self {
            guilds: ids("DISCORD_ALLOWED_GUILDS", vars.allowed_guilds)?,
            channels: ids("DISCORD_ALLOWED_CHANNELS", vars.allowed_channels)?,
            read_roles: ids("DISCORD_READ_ROLES", vars.read_roles)?,
            write_roles: ids("DISCORD_WRITE_ROLES", vars.write_roles)?,
            users: ids("DISCORD_ALLOWED_USERS", vars.allowed_users)?,
            admins: ids("DISCORD_ADMIN_USERS", vars.admin_users)?,
        })
    }

    pub fn decide(&self, who: &InteractionContext, access: Access) -> Decision {
        if self.guilds.is_empty() {
            return Decision::Deny(no_guilds_configured(who));
        }
        let user = who.user.as_ref().map(|u| u.id);
        if user.is_some_and(|u| self.admins.contains(&u)) {
            return Decision::Allow;
        }
        if !self.guilds.is_empty() && !who.guild_id.is_some_and(|g| self.guilds.contains(&g)) {
            return Decision::Deny("bugbot is not enabled in this server.".into());
        }
        if !self.channels.is_empty() && !who.channel_id.is_some_and(|c| self.channels.contains(&c)) {
            return Decision::Deny("bugbot is not enabled in this channel.".into());
        }
        let has = |roles: &[Snowflake]| who.roles.iter().any(|r| roles.contains(r));
        let writer = has(&self.write_roles);
        match access {
            Access::Write if writer => Decision::Allow,
            Access::Write if self.write_roles.is_empty() && self.admins.is_empty() => Decision::Deny(
                "fix and resolve are disabled: no DISCORD_WRITE_ROLES or DISCORD_ADMIN_USERS are configured.".into(),
            ),
            Access::Write => Decision::Deny("you need a bugbot write role to fix or resolve.".into()),
            Access::Read => {
                let open = self.read_roles.is_empty() && self.users.is_empty();
                if open || writer || has(&self.read_roles) || user.is_some_and(|u| self.users.contains(&u)) {
                    Decision::Allow
                } else {
                    Decision::Deny("you are not allowed to use bugbot here.".into())
                }
            }
        }
    }
}

/// The refusal while no server is configured: what the admin must set, with this server's id.
fn no_guilds_configured(who: &InteractionContext) -> String {
    let here = who.guild_id.map_or_else(String::new, |g| format!(" (this server's id is {g})"));
    format!(
        "bugbot is not enabled in any server yet. An admin must set DISCORD_ALLOWED_GUILDS on the consumer \
         to the ids of the servers it may answer in{here}, and turn \"Public Bot\" off in the Discord \
         Developer Portal."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::discord::User;

    fn who(user: u64, roles: &[u64], guild: u64, channel: u64) -> InteractionContext {
        InteractionContext {
            interaction_id: Snowflake(1),
            application_id: Snowflake(2),
            token: String::new(),
            guild_id: Some(Snowflake(guild)),
            channel_id: Some(Snowflake(channel)),
            user: Some(User { id: Snowflake(user), username: "u".into(), global_name: None }),
            roles: roles.iter().copied().map(Snowflake).collect(),
            reply_in_followup: false,
        }
    }

    fn policy(vars: PolicyVars<'_>) -> Policy {
        Policy::from_vars(&vars).unwrap()
    }

    #[test]
    fn defaults_read_open_write_closed() {
        let p = policy(PolicyVars { allowed_guilds: Some("1"), ..PolicyVars::default() });
        assert_eq!(p.decide(&who(5, &[], 1, 1), Access::Read), Decision::Allow);
        assert!(matches!(p.decide(&who(5, &[], 1, 1), Access::Write), Decision::Deny(r) if r.contains("disabled")));
    }

    #[test]
    fn with_no_server_configured_every_command_is_refused() {
        let p = policy(PolicyVars { admin_users: Some("60"), write_roles: Some("40"), ..PolicyVars::default() });
        for (ctx, access) in [
            (who(5, &[], 1, 1), Access::Read),
            (who(5, &[40], 1, 1), Access::Write),
            (who(60, &[], 1, 1), Access::Read),
            (who(60, &[], 1, 1), Access::Write),
        ] {
            let Decision::Deny(reason) = p.decide(&ctx, access) else { panic!("{ctx:?} {access:?} allowed") };
            assert!(reason.contains("DISCORD_ALLOWED_GUILDS"), "{reason}");
            assert!(reason.contains("this server's id is 1"), "{reason}");
        }
    }

    #[test]
    fn scope_roles_users_and_admins() {
        let p = policy(PolicyVars {
            allowed_guilds: Some("10"),
            allowed_channels: Some("20, 21"),
            read_roles: Some("30"),
            write_roles: Some("40"),
            allowed_users: Some("50"),
            admin_users: Some("60"),
        });
        let table = [
            (who(1, &[30], 10, 20), Access::Read, true),
            (who(1, &[30], 10, 21), Access::Write, false),
            (who(1, &[40], 10, 21), Access::Write, true),
            (who(1, &[40], 10, 21), Access::Read, true),
            (who(50, &[], 10, 20), Access::Read, true),
            (who(50, &[], 10, 20), Access::Write, false),
            (who(1, &[], 10, 20), Access::Read, false),
            (who(1, &[30], 11, 20), Access::Read, false),
            (who(1, &[30], 10, 22), Access::Read, false),
            (who(60, &[], 99, 99), Access::Write, true),
        ];
        for (ctx, access, allowed) in table {
            assert_eq!(p.decide(&ctx, access) == Decision::Allow, allowed, "{ctx:?} {access:?}");
        }
    }

    #[test]
    fn access_of_commands_and_bad_ids() {
        use crate::command::IssueMention;
        let issue: IssueMention = serde_json::from_str("\"ENG-1\"").unwrap();
        assert_eq!(Access::of(&Command::Resolve { issue: issue.clone() }), Access::Write);
        assert_eq!(Access::of(&Command::Fix { issue: None, repo: None }), Access::Write);
        assert_eq!(Access::of(&Command::Investigate { issue }), Access::Read);
        let bad = Policy::from_vars(&PolicyVars { write_roles: Some("12,abc"), ..PolicyVars::default() });
        assert_eq!(bad.unwrap_err().to_string(), "DISCORD_WRITE_ROLES: `abc` is not a Discord id");
    }
}
