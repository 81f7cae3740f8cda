//! `REPO_ROUTES` (issue 16.6): which repository an alert belongs to, when there is more than one.
//!
//! One setting, routes separated by `;`, each `MATCH => owner/name`, optionally followed by
//! `| map=FRAME_PATH_MAP` and `| paths=GLOBS`:
//!
//! ```text
//! project:web => acme/web; tag:service=api => acme/api | paths=src/**; frame:/srv/billing/ => acme/billing | map=/srv/billing/=
//! ```
//!
//! - `project:SLUG` — the Sentry/GlitchTip project slug (ignoring case);
//! - `tag:KEY=VALUE` — an event tag (`service=api`);
//! - `frame:PREFIX` — an in-app frame's `abs_path` or `filename` starts with `PREFIX`.
//!
//! The first route that matches wins; an event no route matches goes to `GITHUB_REPO` as before.
//! `map=` replaces `FRAME_PATH_MAP` and `paths=` replaces `CODE_PATHS` and `FIX_ALLOWED_PATHS` for
//! that route's events. A bad route is skipped with a warning; the others still apply.
//!
//! Everything a route matches on comes from the event, which anyone holding a public DSN can send:
//! a route only chooses among repositories the operator listed, shows code only within that
//! route's paths, and a fix still needs the repository in `FIX_REPOS`.

use crate::command::RepoSlug;
use crate::event::ErrorEvent;
use crate::frames::{FrameMap, FrameMapError};

/// What a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    Project(String),
    Tag { key: String, value: String },
    FramePrefix(String),
}

/// One route: the repository of the events it matches, with its own frame mapping and allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub matcher: RouteMatch,
    /// `owner/name`.
    pub repo: String,
    /// `map=`: replaces `FRAME_PATH_MAP` for this route.
    pub frame_map: Option<FrameMap>,
    /// `paths=`: comma-separated globs replacing `CODE_PATHS` and `FIX_ALLOWED_PATHS` for this route.
    pub paths: Option<String>,
}

/// The parsed `REPO_ROUTES`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoRoutes(Vec<Route>);

impl RepoRoutes {
    /// The routes that parse, and one warning per route that does not (skipped).
    pub fn parse(raw: &str) -> (Self, Vec<String>) {
        let mut routes = Vec::new();
        let mut warnings = Vec::new();
        for entry in raw.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_route(entry) {
                Ok(route) => routes.push(route),
                Err(e) => warnings.push(format!("REPO_ROUTES entry `{entry}` skipped: {e}")),
            }
        }
        (Self(routes), warnings)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `repo` is one of the routes' repositories (ignoring case).
    pub fn knows(&self, repo: &str) -> bool {
        self.0.iter().any(|r| r.repo.eq_ignore_ascii_case(repo))
    }

    /// The `paths=` of the first route to `repo` that sets them.
    pub fn paths_of(&self, repo: &str) -> Option<&str> {
        self.0.iter().filter(|r| r.repo.eq_ignore_ascii_case(repo)).find_map(|r| r.paths.as_deref())
    }

    /// The first route matching `event`, if any.
    pub fn route(&self, event: &ErrorEvent) -> Option<&Route> {
        self.0.iter().find(|r| r.matches(event))
    }
}

impl Route {
    fn matches(&self, event: &ErrorEvent) -> bool {
        match &self.matcher {
            RouteMatch::Project(slug) => event.project.as_deref().is_some_and(|p| p.trim().eq_ignore_ascii_case(slug)),
            RouteMatch::Tag { key, value } => event.tags.iter().any(|(k, v)| k == key && v == value),
            RouteMatch::FramePrefix(prefix) => event
                .frames
                .iter()
                .filter(|f| f.in_app)
                .flat_map(|f| [f.abs_path.as_deref(), f.filename.as_deref()])
                .flatten()
                .any(|p| p.trim().replace('\\', "/").starts_with(prefix.as_str())),
        }
    }
}

/// The `owner/name` of a GitHub issue or pull request page (`https://github.com/o/n/issues/3`).
pub fn repo_of_issue_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://github.com/")?;
    let mut parts = rest.split('/');
    let (owner, name, kind) = (parts.next()?, parts.next()?, parts.next()?);
    let slug = RepoSlug::parse(&format!("{owner}/{name}"))?;
    matches!(kind, "issues" | "pull").then(|| slug.as_str().to_owned())
}

/// Why an entry of `REPO_ROUTES` is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("not `MATCH => owner/name`")]
    NoArrow,
    #[error("`{0}` is not owner/name")]
    NotARepo(String),
    #[error("the match is not `project:`, `tag:` or `frame:`")]
    NoMatchKind,
    #[error("`{0}:` with nothing to match")]
    EmptyMatch(String),
    #[error("a tag match is `tag:KEY=VALUE`")]
    BadTag,
    #[error("unknown match `{0}:` (expected project:, tag: or frame:)")]
    UnknownMatch(String),
    #[error(transparent)]
    FrameMap(#[from] FrameMapError),
    #[error("`paths=` names no glob")]
    NoGlob,
    #[error("unknown option `{0}` (expected `map=` or `paths=`)")]
    UnknownOption(String),
}

fn parse_route(entry: &str) -> Result<Route, RouteError> {
    let mut parts = entry.split('|').map(str::trim);
    let head = parts.next().unwrap_or_default();
    let Some((matcher, repo)) = head.split_once("=>") else {
        return Err(RouteError::NoArrow);
    };
    let repo = repo.trim();
    if RepoSlug::parse(repo).is_none() {
        return Err(RouteError::NotARepo(repo.to_owned()));
    }
    let matcher = parse_match(matcher.trim())?;
    let mut route = Route { matcher, repo: repo.to_owned(), frame_map: None, paths: None };
    for option in parts {
        match option.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("map", v)) => route.frame_map = Some(FrameMap::parse(v)?),
            Some(("paths", v)) if v.split(',').any(|g| !g.trim().is_empty()) => route.paths = Some(v.to_owned()),
            Some(("paths", _)) => return Err(RouteError::NoGlob),
            _ => return Err(RouteError::UnknownOption(option.to_owned())),
        }
    }
    Ok(route)
}

fn parse_match(raw: &str) -> Result<RouteMatch, RouteError> {
    let (kind, value) = raw.split_once(':').ok_or(RouteError::NoMatchKind)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(RouteError::EmptyMatch(kind.to_owned()));
    }
    match kind.trim() {
        "project" => Ok(RouteMatch::Project(value.to_owned())),
        "tag" => match value.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                Ok(RouteMatch::Tag { key: k.trim().to_owned(), value: v.trim().to_owned() })
            }
            _ => Err(RouteError::BadTag),
        },
        "frame" => Ok(RouteMatch::FramePrefix(value.to_owned())),
        other => Err(RouteError::UnknownMatch(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Fingerprint, Frame, Source};

    fn event() -> ErrorEvent {
        ErrorEvent::bare(Source::Sentry, Fingerprint::from_id("sentry", "1"), "boom".into(), None, 0)
    }

    #[test]
    fn parses_each_kind_of_route_with_options() {
        let (routes, warnings) = RepoRoutes::parse(
            " project:web => acme/web ; tag:service=api=>acme/api | paths=lib/**, src/** ;\
             frame:/srv/billing/ => acme/billing | map=/srv/billing/=,webpack:///./= ;",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(routes.0.len(), 3);
        assert_eq!(routes.0[0].matcher, RouteMatch::Project("web".into()));
        assert_eq!(routes.0[1].matcher, RouteMatch::Tag { key: "service".into(), value: "api".into() });
        assert_eq!(routes.0[1].repo, "acme/api");
        assert_eq!(routes.0[1].paths.as_deref(), Some("lib/**, src/**"));
        assert_eq!(routes.0[2].matcher, RouteMatch::FramePrefix("/srv/billing/".into()));
        assert_eq!(routes.0[2].frame_map, Some(FrameMap::parse("/srv/billing/=,webpack:///./=").unwrap()));
    }

    #[test]
    fn bad_routes_are_skipped_with_a_reason_and_the_others_kept() {
        let (routes, warnings) = RepoRoutes::parse(
            "project:web acme/web; project:web => not-a-repo; colour:red => a/b; tag:service => a/b;\
             project: => a/b; project:x => a/b | paths= ; project:x => a/b | map=/app/=../etc/; project:x => a/b | owner=me;\
             project:ok => acme/ok",
        );
        assert_eq!(routes.0.len(), 1, "{routes:?}");
        assert_eq!(routes.0[0].repo, "acme/ok");
        assert_eq!(warnings.len(), 8, "{warnings:#?}");
        assert!(warnings.iter().all(|w| w.starts_with("REPO_ROUTES entry `") && w.contains("skipped")));
        assert!(warnings[1].contains("not-a-repo") && warnings[2].contains("colour"), "{warnings:#?}");
    }

    #[test]
    fn the_repository_of_an_issue_page() {
        assert_eq!(repo_of_issue_url("https://github.com/acme/api/issues/3").as_deref(), Some("acme/api"));
        assert_eq!(repo_of_issue_url("https://github.com/acme/api/pull/3").as_deref(), Some("acme/api"));
        assert_eq!(repo_of_issue_url("https://github.com/acme/api"), None);
        assert_eq!(repo_of_issue_url("https://evil.example/acme/api/issues/3"), None);
        assert_eq!(repo_of_issue_url("https://github.com/../x/issues/3"), None);
        let (routes, _) = RepoRoutes::parse("project:api => acme/api");
        assert!(routes.knows("Acme/API") && !routes.knows("acme/web"));
    }

    #[test]
    fn the_first_matching_route_wins_and_unmatched_events_have_none() {
        let (routes, _) = RepoRoutes::parse(
            "project:web => acme/web; tag:service=api => acme/api; frame:/srv/billing/ => acme/billing",
        );
        let mut e = event();
        assert_eq!(routes.route(&e), None, "nothing matches: the default GITHUB_REPO");
        e.project = Some("Web".into());
        e.tags.push(("service".into(), "api".into()));
        assert_eq!(routes.route(&e).unwrap().repo, "acme/web", "listed first");
        e.project = Some("other".into());
        assert_eq!(routes.route(&e).unwrap().repo, "acme/api");
        let mut e = event();
        e.tags.push(("service".into(), "apis".into()));
        let frame = |path: &str, in_app| Frame { abs_path: Some(path.into()), in_app, ..Frame::default() };
        e.frames.push(frame("/srv/billing/invoice.py", false));
        assert_eq!(routes.route(&e), None, "library frames do not route");
        e.frames.push(frame("/srv/billing/invoice.py", true));
        assert_eq!(routes.route(&e).unwrap().repo, "acme/billing");
    }
}
