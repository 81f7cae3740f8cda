//! Which paths a job may change: the job's allowlist minus the protected paths (CI, container and
//! dependency manifests, lock files) unless the job explicitly allows them. The same policy becomes the
//! agent's permission rules and, afterwards, the executor's own check of `git diff` — the last line.

use bugbot_shared::executor::{FixJob, PROTECTED_PATHS};
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A glob in the job did not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid path glob {glob:?}: {source}")]
pub struct BadGlob {
    glob: String,
    source: globset::Error,
}

/// Why a changed path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not matched by any allowed glob.
    NotAllowed,
    /// A protected path the job did not explicitly allow.
    Protected,
    /// Inside a `.git` directory.
    GitInternals,
}

/// A path and why it may not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub refusal: Refusal,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.refusal {
            Refusal::NotAllowed => "outside the allowed paths",
            Refusal::Protected => "protected (CI, container or dependency manifest)",
            Refusal::GitInternals => "git internals",
        };
        write!(f, "{} ({why})", self.path)
    }
}

/// The compiled path policy of one job.
#[derive(Debug, Clone)]
pub struct PathPolicy {
    allowed_globs: Vec<String>,
    allowed: GlobSet,
    protected: GlobSet,
    unprotected_globs: Vec<String>,
    unprotected: GlobSet,
}

impl PathPolicy {
    pub fn for_job(job: &FixJob) -> Result<Self, BadGlob> {
        Self::new(&job.allowed_paths, &job.allow_protected)
    }

    pub fn new(allowed: &[String], allow_protected: &[String]) -> Result<Self, BadGlob> {
        let allowed_globs: Vec<String> = allowed.iter().map(|g| normalize(g)).collect();
        let unprotected_globs: Vec<String> = allow_protected.iter().map(|g| normalize(g)).collect();
        Ok(Self {
            allowed: set(&allowed_globs)?,
            protected: set(PROTECTED_PATHS)?,
            unprotected: set(&unprotected_globs)?,
            allowed_globs,
            unprotected_globs,
        })
    }

    /// Checks one repository-relative path.
    pub fn check(&self, path: &str) -> Result<(), Violation> {
        let refusal = if path.split('/').any(|part| part == ".git") {
            Some(Refusal::GitInternals)
        } else if !self.allowed.is_match(path) {
            Some(Refusal::NotAllowed)
        } else if self.protected.is_match(path) && !self.unprotected.is_match(path) {
            Some(Refusal::Protected)
        } else {
            None
        };
        refusal.map_or(Ok(()), |refusal| Err(Violation { path: path.to_owned(), refusal }))
    }

    /// Every violation among `paths`.
    pub fn violations<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Vec<Violation> {
        paths.into_iter().filter_map(|p| self.check(p).err()).collect()
    }

    /// The allowed globs, for the prompt.
    pub fn allowed_globs(&self) -> &[String] {
        &self.allowed_globs
    }

    /// Claude Code permission rules: `(allowed, disallowed)` for `--allowedTools` / `--disallowedTools`.
    /// Reading is confined to the clone; writing to the allowlist; protected paths and `.git` are denied
    /// explicitly (deny rules win over allow rules), except protected paths the job allows.
    pub fn agent_rules(&self) -> (Vec<String>, Vec<String>) {
        let mut allowed = vec!["Read(./**)".to_owned(), "Glob".to_owned(), "Grep".to_owned()];
        for glob in &self.allowed_globs {
            allowed.push(format!("Edit({glob})"));
            allowed.push(format!("Write({glob})"));
        }
        let mut denied = Vec::new();
        let protected = PROTECTED_PATHS
            .iter()
            .filter(|p| !self.unprotected_globs.iter().any(|u| overlaps(p, u)))
            .copied()
            .chain([".git/**", "**/.git/**"]);
        for glob in protected {
            denied.push(format!("Edit({glob})"));
            denied.push(format!("Write({glob})"));
        }
        (allowed, denied)
    }
}

/// Which changed paths are tests ([`bugbot_shared::executor::ReproPolicy::test_paths`]): their changes
/// alone, on the base code, must make the test command fail.
#[derive(Debug, Clone)]
pub struct TestPaths {
    globs: Vec<String>,
    set: GlobSet,
}

impl TestPaths {
    pub fn for_job(job: &FixJob) -> Result<Self, BadGlob> {
        let globs: Vec<String> = job.repro.test_paths.iter().map(|g| normalize(g)).collect();
        Ok(Self { set: set(&globs)?, globs })
    }

    pub fn is_test(&self, path: &str) -> bool {
        self.set.is_match(path)
    }

    /// The globs, for the prompt.
    pub fn globs(&self) -> &[String] {
        &self.globs
    }
}

/// Whether two globs (plausibly) match a common path: either one matches the other's text. A deny rule
/// that overlaps an explicit permission is dropped (Claude Code's deny rules win), which leaves the rest
/// of that protected glob to the executor's own diff check.
fn overlaps(protected: &str, unprotected: &str) -> bool {
    let matches = |glob: &str, text: &str| compile(glob).is_ok_and(|g| g.compile_matcher().is_match(text));
    protected == unprotected || matches(protected, unprotected) || matches(unprotected, protected)
}

fn normalize(glob: &str) -> String {
    glob.trim().trim_start_matches("./").trim_start_matches('/').to_owned()
}

fn set<S: AsRef<str>>(globs: &[S]) -> Result<GlobSet, BadGlob> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let glob = glob.as_ref();
        builder.add(compile(glob)?);
    }
    builder.build().map_err(|source| BadGlob { glob: "(set)".into(), source })
}

fn compile(glob: &str) -> Result<Glob, BadGlob> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|source| BadGlob { glob: glob.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], unprotected: &[&str]) -> PathPolicy {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        PathPolicy::new(&own(allowed), &own(unprotected)).unwrap()
    }

    #[test]
    fn test_paths_follow_the_usual_conventions() {
        let job: FixJob = serde_json::from_value(serde_json::json!({
            "job_id": "j", "clone_url": "https://x/r.git", "base_ref": "main", "branch": "b",
            "prompt": {"issue_key": "K", "title": "t"},
        }))
        .unwrap();
        let tests = TestPaths::for_job(&job).unwrap();
        for path in [
            "tests/run.sh",
            "crates/a/tests/it.rs",
            "src/__tests__/cart.js",
            "src/cart.test.ts",
            "src/cart.spec.js",
            "pkg/cart_test.go",
            "app/test_cart.py",
            "spec/cart_spec.rb",
            "src/test/java/CartTest.java",
        ] {
            assert!(tests.is_test(path), "{path}");
        }
        for path in ["src/cart.ts", "src/lib.rs", "testing.md", "src/contest.js", "latest/x.js"] {
            assert!(!tests.is_test(path), "{path}");
        }
    }

    #[test]
    fn allowlist_globs_respect_separators() {
        let p = policy(&["src/**", "docs/*.md"], &[]);
        assert!(p.check("src/a.rs").is_ok());
        assert!(p.check("src/deep/er/a.rs").is_ok());
        assert!(p.check("docs/x.md").is_ok());
        assert_eq!(p.check("docs/sub/x.md").unwrap_err().refusal, Refusal::NotAllowed);
        assert_eq!(p.check("README.md").unwrap_err().refusal, Refusal::NotAllowed);
        assert_eq!(p.check("srcx/a.rs").unwrap_err().refusal, Refusal::NotAllowed);
    }

    #[test]
    fn protected_paths_are_denied_even_under_a_catch_all() {
        let p = policy(&["**"], &[]);
        assert!(p.check("src/lib.rs").is_ok());
        for path in [
            ".github/workflows/ci.yml",
            "Dockerfile",
            "services/api/Dockerfile",
            "Cargo.toml",
            "crates/x/Cargo.toml",
            "Cargo.lock",
            "package.json",
            "web/package-lock.json",
            "yarn.lock",
            "go.sum",
            "requirements.txt",
            ".claude/settings.json",
            "CLAUDE.md",
            "src/deep/CLAUDE.local.md",
            "src/.gitattributes",
            "src/.gitmodules",
            "src/.mcp.json",
            "src/requirements-dev.txt",
            ".husky/pre-commit",
            ".pre-commit-config.yaml",
            ".devcontainer/devcontainer.json",
            ".vscode/settings.json",
            "Jenkinsfile",
            ".travis.yml",
            "azure-pipelines.yml",
            ".circleci/config.yml",
            "web/pnpm-lock.yaml",
            "composer.lock",
            "pom.xml",
            "app/build.gradle.kts",
            "Pipfile.lock",
            "Gemfile",
            "poetry.lock",
        ] {
            assert_eq!(p.check(path).unwrap_err().refusal, Refusal::Protected, "{path}");
        }
        assert_eq!(p.check("vendor/.git/config").unwrap_err().refusal, Refusal::GitInternals);
    }

    #[test]
    fn explicit_permission_unprotects() {
        let p = policy(&["**"], &["Cargo.toml", "crates/*/Cargo.toml"]);
        assert!(p.check("Cargo.toml").is_ok());
        assert!(p.check("crates/a/Cargo.toml").is_ok());
        assert_eq!(p.check("Cargo.lock").unwrap_err().refusal, Refusal::Protected);
        // Unprotecting does not widen the allowlist.
        let p = policy(&["src/**"], &["Cargo.toml"]);
        assert_eq!(p.check("Cargo.toml").unwrap_err().refusal, Refusal::NotAllowed);
    }

    #[test]
    fn agent_rules_mirror_the_policy() {
        let (allowed, denied) = policy(&["./src/**"], &["**/Cargo.toml"]).agent_rules();
        assert!(allowed.contains(&"Edit(src/**)".to_owned()));
        assert!(allowed.contains(&"Write(src/**)".to_owned()));
        assert!(allowed.contains(&"Read(./**)".to_owned()));
        assert!(!allowed.iter().any(|r| r.starts_with("Bash")));
        assert!(denied.contains(&"Edit(.github/**)".to_owned()));
        assert!(denied.contains(&"Write(.git/**)".to_owned()));
        assert!(!denied.contains(&"Edit(**/Cargo.toml)".to_owned()));
        assert!(denied.contains(&"Edit(**/Cargo.lock)".to_owned()));
        let (_, denied) = policy(&["**"], &["Cargo.toml"]).agent_rules();
        assert!(!denied.contains(&"Edit(**/Cargo.toml)".to_owned()));
    }

    #[test]
    fn bad_globs_are_reported() {
        assert!(PathPolicy::new(&["src/[".to_owned()], &[]).is_err());
    }

    #[test]
    fn violations_are_described() {
        let p = policy(&["src/**"], &[]);
        let v = p.violations(["src/ok.rs", "README.md"]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].to_string(), "README.md (outside the allowed paths)");
    }
}
