//! What bugbot may reach on someone's behalf, as pure decisions the consumer applies:
//!
//! - [`FixRepos`] — the repositories a fix may run against (`FIX_REPOS`). A `/bugbot fix repo:…`
//!   naming any other one is refused before anything is dispatched: the executor would otherwise
//!   clone, and run the test suite of, a repository chosen by whoever has a write role.
//! - [`fix_allowed_paths`] — the globs the fix agent may change (`FIX_ALLOWED_PATHS`, else
//!   [`DEFAULT_ALLOWED_PATHS`]).
//! - [`CodePaths`] — which repository files `/bugbot investigate` and `contextualize` may quote in
//!   Discord (`CODE_PATHS`, else the fix allowlist), never a secret-shaped one ([`is_secret_shaped`]).
//!   Frames come from event payloads anyone with a public DSN can send, so a frame alone must not be
//!   enough to pull a file of the private repository into a channel.

use crate::executor::DEFAULT_ALLOWED_PATHS;

/// Splits a comma-separated setting into its trimmed, non-empty items.
fn items(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Why a repository may not be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoRefused {
    #[error("`{repo}` is not a repository bugbot may fix: no FIX_REPOS (or FIX_REPO) is configured")]
    NoneConfigured { repo: String },
    /// `allowed`: the configured repositories, comma-separated.
    #[error("`{repo}` is not a repository bugbot may fix (FIX_REPOS allows {allowed})")]
    NotAllowed { repo: String, allowed: String },
}

/// The repositories fixes may target (`owner/name`, compared ignoring case as GitHub does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixRepos(Vec<String>);

impl FixRepos {
    /// `FIX_REPOS` when set, else the one fix repository (`FIX_REPO`, else `GITHUB_REPO`), else none.
    pub fn from_vars(fix_repos: Option<&str>, default_repo: Option<&str>) -> Self {
        let list = match fix_repos.filter(|v| !v.trim().is_empty()) {
            Some(raw) => items(raw).map(str::to_ascii_lowercase).collect(),
            None => default_repo.map(|r| vec![r.trim().to_ascii_lowercase()]).unwrap_or_default(),
        };
        Self(list)
    }

    /// `Ok` when `repo` may be fixed; else why not (its text is shown to the user).
    pub fn check(&self, repo: &str) -> Result<(), RepoRefused> {
        let wanted = repo.trim().to_ascii_lowercase();
        if self.0.contains(&wanted) {
            return Ok(());
        }
        if self.0.is_empty() {
            return Err(RepoRefused::NoneConfigured { repo: repo.to_owned() });
        }
        Err(RepoRefused::NotAllowed { repo: repo.to_owned(), allowed: self.0.join(", ") })
    }

    /// The first repository named in a conversation (a repository or issue link) that may be fixed
    /// (issue 16.6): the fix target when the command names none. A named repository outside
    /// `FIX_REPOS` is passed over, never used.
    pub fn named_in(&self, references: &[crate::references::Reference]) -> Option<String> {
        use crate::references::Reference;
        references.iter().find_map(|r| match r {
            Reference::GitHubRepo { repo } | Reference::GitHubIssue { repo, .. } if self.check(repo).is_ok() => {
                Some(repo.clone())
            }
            _ => None,
        })
    }
}

/// The globs a fix may change: `FIX_ALLOWED_PATHS` (comma-separated) when set, else
/// [`DEFAULT_ALLOWED_PATHS`] — the usual source folders, never the whole repository.
pub fn fix_allowed_paths(raw: Option<&str>) -> Vec<String> {
    let set: Vec<String> = raw.map(|r| items(r).map(str::to_owned).collect()).unwrap_or_default();
    if set.is_empty() { DEFAULT_ALLOWED_PATHS.iter().map(|&p| p.to_owned()).collect() } else { set }
}

/// Secret-shaped paths, never shown whatever the globs say: `.env*`, `*.pem`, `*.key`, and any
/// path containing `secret` or `credential` (ignoring case).
pub fn is_secret_shaped(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let extension = std::path::Path::new(name).extension().and_then(|e| e.to_str());
    name.starts_with(".env")
        || matches!(extension, Some("pem" | "key"))
        || lower.contains("secret")
        || lower.contains("credential")
}

/// Which repository files may be quoted in Discord.
#[derive(Debug, Clone)]
pub struct CodePaths(Vec<glob::Pattern>);

impl CodePaths {
    /// `CODE_PATHS` (comma-separated globs) when set, else the fix allowlist. A glob that does not
    /// parse is dropped (and so shows nothing), never widened.
    pub fn from_vars(code_paths: Option<&str>, fix_allowed: &[String]) -> Self {
        let set: Vec<String> = code_paths.map(|r| items(r).map(str::to_owned).collect()).unwrap_or_default();
        let globs = if set.is_empty() { fix_allowed.to_vec() } else { set };
        Self(globs.iter().filter_map(|g| glob::Pattern::new(g.trim_start_matches("./")).ok()).collect())
    }

    /// Whether the repository-relative `path` may be shown: inside the globs, not secret-shaped,
    /// and a plain relative path (no `..`, no leading `/`).
    pub fn shows(&self, path: &str) -> bool {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let plain = !path.is_empty() && !path.starts_with('/') && !path.split('/').any(|p| p == ".." || p.is_empty());
        plain && !is_secret_shaped(path) && self.0.iter().any(|g| g.matches_with(path, options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_repositories_may_be_fixed() {
        let repos = FixRepos::from_vars(None, Some("acme/shop"));
        assert!(repos.check("acme/shop").is_ok());
        assert!(repos.check("Acme/Shop").is_ok(), "GitHub names ignore case");
        let refused = repos.check("mallory/pwn").unwrap_err().to_string();
        assert!(refused.contains("mallory/pwn") && refused.contains("FIX_REPOS"), "{refused}");
        let repos = FixRepos::from_vars(Some(" acme/shop, acme/api ,"), Some("acme/other"));
        assert!(repos.check("acme/api").is_ok());
        assert!(repos.check("acme/other").is_err(), "FIX_REPOS replaces the default");
        assert!(FixRepos::from_vars(None, None).check("acme/shop").is_err(), "nothing configured: nothing allowed");
    }

    #[test]
    fn a_repository_named_in_the_conversation_is_used_only_when_allowed() {
        use crate::references::extract;
        let repos = FixRepos::from_vars(Some("acme/web, acme/api"), Some("acme/web"));
        let text = "see https://github.com/mallory/pwn and https://github.com/acme/api/issues/7 please";
        assert_eq!(repos.named_in(&extract(text)).as_deref(), Some("acme/api"), "mallory/pwn is passed over");
        assert_eq!(repos.named_in(&extract("https://github.com/Acme/API")).as_deref(), Some("Acme/API"));
        assert_eq!(repos.named_in(&extract("only https://github.com/mallory/pwn")), None);
        assert_eq!(repos.named_in(&extract("no links at all")), None);
    }

    #[test]
    fn the_fix_allowlist_defaults_to_source_folders() {
        assert_eq!(fix_allowed_paths(None), vec!["src/**", "app/**", "components/**", "pages/**"]);
        assert_eq!(fix_allowed_paths(Some(" , ")), fix_allowed_paths(None));
        assert_eq!(fix_allowed_paths(Some("lib/**, src/*.rs")), vec!["lib/**", "src/*.rs"]);
    }

    #[test]
    fn secret_shaped_paths() {
        for path in [
            ".env",
            "deploy/.env.production",
            "certs/server.pem",
            "keys/id.key",
            "config/secrets.yml",
            "src/Credentials.py",
            "app/client_secret.json",
        ] {
            assert!(is_secret_shaped(path), "{path}");
        }
        for path in ["src/app.py", "src/env.rs", "src/keyboard.rs", "app/models/user.py"] {
            assert!(!is_secret_shaped(path), "{path}");
        }
    }

    #[test]
    fn code_is_shown_only_inside_the_globs_and_never_when_secret_shaped() {
        let default = CodePaths::from_vars(None, &fix_allowed_paths(None));
        assert!(default.shows("src/shop/views.py"));
        assert!(default.shows("app/page.tsx"));
        // The attack of issue 15: a crafted frame naming a config file.
        assert!(!default.shows("config/production.py"));
        assert!(!default.shows("src/.env"));
        assert!(!default.shows("src/settings/secrets.py"));
        assert!(!default.shows("src/../config/production.py"));
        assert!(!default.shows("/src/app.py"));
        assert!(!default.shows("src//app.py"));
        let custom = CodePaths::from_vars(Some("lib/*.rb, web/**"), &fix_allowed_paths(None));
        assert!(custom.shows("lib/order.rb"));
        assert!(!custom.shows("lib/deep/order.rb"), "`*` stays within one directory");
        assert!(custom.shows("web/a/b/c.js"));
        assert!(!custom.shows("src/app.py"), "CODE_PATHS replaces the fix allowlist");
        let everything = CodePaths::from_vars(Some("**"), &[]);
        assert!(everything.shows("config/production.py"));
        assert!(!everything.shows("config/credentials.yml"), "secret-shaped paths stay hidden even under `**`");
    }
}
