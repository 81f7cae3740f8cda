//! Which events become issues: minimum level, allowed environments and projects, and ignore
//! patterns. Pure; the consumer reads the settings once from its `[vars]` and calls [`filter`] per
//! event, after [`crate::normalize`] and before claiming.

use std::fmt;

use crate::event::{ErrorEvent, Level, Signal};

/// The consumer's filter settings. Empty lists allow everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    /// Events below this level are dropped.
    pub min_level: Level,
    /// Allowed environments (case-insensitive; `*` globs). An event without an environment is
    /// dropped when this is set.
    pub environments: Vec<Pattern>,
    /// Allowed projects, matched against the project slug (or id) the same way.
    pub projects: Vec<Pattern>,
    /// Events whose title, culprit or exception type matches one of these are dropped.
    pub ignore: Vec<Pattern>,
}

impl Default for FilterConfig {
    /// Keeps everything.
    fn default() -> Self {
        Self { min_level: Level::Debug, environments: Vec::new(), projects: Vec::new(), ignore: Vec::new() }
    }
}

/// Why the filter settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterConfigError {
    #[error("BUGBOT_MIN_LEVEL: {0}")]
    Level(#[from] crate::event::UnknownLevel),
}

/// Suggested `[vars]` names for [`FilterConfig::from_vars`].
pub const MIN_LEVEL_VAR: &str = "BUGBOT_MIN_LEVEL";
pub const ENVIRONMENTS_VAR: &str = "BUGBOT_ENVIRONMENTS";
pub const PROJECTS_VAR: &str = "BUGBOT_PROJECTS";
pub const IGNORE_VAR: &str = "BUGBOT_IGNORE";

impl FilterConfig {
    /// From environment-variable strings, each optional:
    /// - `min_level`: `debug` | `info` | `warning` | `error` | `fatal` (aliases as
    ///   [`Level::parse`]); unset or blank keeps every level;
    /// - `environments`, `projects`: comma- or newline-separated, e.g. `production,staging`;
    /// - `ignore`: one pattern per line, or comma-separated on a single line, or a JSON array of
    ///   strings (use a list when a pattern contains a comma).
    pub fn from_vars(
        min_level: Option<&str>,
        environments: Option<&str>,
        projects: Option<&str>,
        ignore: Option<&str>,
    ) -> Result<Self, FilterConfigError> {
        let min_level = match min_level.map(str::trim).filter(|s| !s.is_empty()) {
            Some(raw) => raw.parse()?,
            None => Level::Debug,
        };
        Ok(Self { min_level, environments: list(environments), projects: list(projects), ignore: list(ignore) })
    }
}

fn list(raw: Option<&str>) -> Vec<Pattern> {
    let raw = raw.unwrap_or_default().trim();
    if raw.starts_with('[')
        && let Ok(items) = serde_json::from_str::<Vec<String>>(raw)
    {
        return items.iter().filter_map(|s| Pattern::new(s)).collect();
    }
    let items: Vec<&str> = if raw.contains('\n') { raw.lines().collect() } else { raw.split(',').collect() };
    items.into_iter().filter_map(Pattern::new).collect()
}

/// A case-insensitive pattern: with `*` it is a glob over the whole text (`*timeout*`,
/// `prod-*`); without, a substring for ignore patterns and an exact name for allow lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// `None` for a blank pattern.
    pub fn new(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_glob(&self) -> bool {
        self.0.contains('*')
    }

    /// An allow-list match: exact (ignoring case) or glob.
    fn matches_name(&self, text: &str) -> bool {
        let text = text.trim().to_lowercase();
        if self.is_glob() { glob(&self.0, &text) } else { self.0 == text }
    }

    /// An ignore match: substring (ignoring case) or glob.
    fn matches_text(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        if self.is_glob() { glob(&self.0, &text) } else { text.contains(&self.0) }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` matches any run of characters (also none); everything else literally. Greedy with one
/// backtrack point: at worst pattern × text steps, never exponential.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The filter's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Drop(DropReason),
}

/// Why an event was dropped (logged, and shown by `/bugbot status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    BelowMinLevel { level: Level, min: Level },
    Environment(Option<String>),
    Project(Option<String>),
    Ignored { pattern: String },
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BelowMinLevel { level, min } => write!(f, "level {level} is below the minimum {min}"),
            Self::Environment(Some(env)) => write!(f, "environment `{env}` is not in the allowed list"),
            Self::Environment(None) => f.write_str("no environment, and only listed environments are allowed"),
            Self::Project(Some(project)) => write!(f, "project `{project}` is not in the allowed list"),
            Self::Project(None) => f.write_str("no project, and only listed projects are allowed"),
            Self::Ignored { pattern } => write!(f, "matches ignore pattern `{pattern}`"),
        }
    }
}

/// Whether `event` should become (or update) an issue.
pub fn filter(event: &ErrorEvent, config: &FilterConfig) -> Decision {
    if event.level < config.min_level {
        return Decision::Drop(DropReason::BelowMinLevel { level: event.level, min: config.min_level });
    }
    if !allowed(&config.environments, event.environment.as_deref()) {
        return Decision::Drop(DropReason::Environment(event.environment.clone()));
    }
    if !allowed(&config.projects, event.project.as_deref()) {
        return Decision::Drop(DropReason::Project(event.project.clone()));
    }
    let texts = [
        Some(event.title.as_str()),
        event.culprit.as_deref(),
        event.exception.as_ref().and_then(|e| e.kind.as_deref()),
    ];
    if let Some(pattern) = config.ignore.iter().find(|p| texts.iter().flatten().any(|t| p.matches_text(t))) {
        return Decision::Drop(DropReason::Ignored { pattern: pattern.to_string() });
    }
    Decision::Keep
}

fn allowed(list: &[Pattern], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|p| p.matches_name(v)))
}

/// [`filter`] for a whole signal: occurrences and regressions are filtered; status changes,
/// metric and uptime alerts always pass (they only touch issues that already exist, or come from
/// alert rules configured on purpose).
pub fn filter_signal(signal: &Signal, config: &FilterConfig) -> Decision {
    match signal {
        Signal::Occurrence(event) | Signal::Regressed(event) => filter(event, config),
        _ => Decision::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExceptionInfo, Fingerprint, Source};

    fn event(level: Level, env: Option<&str>, project: Option<&str>, title: &str) -> ErrorEvent {
        ErrorEvent {
            source: Source::Sentry,
            fingerprint: Fingerprint::from_id("sentry", "1"),
            title: title.into(),
            culprit: Some("app.health in check".into()),
            level,
            environment: env.map(Into::into),
            release: None,
            project: project.map(Into::into),
            platform: None,
            short_id: None,
            event_id: None,
            first_seen_ms: None,
            last_seen_ms: 0,
            count: None,
            user_count: None,
            link: None,
            tags: vec![],
            exception: Some(ExceptionInfo { kind: Some("ConnectionResetError".into()), value: None, module: None }),
            frames: vec![],
        }
    }

    #[test]
    fn table() {
        let cfg = FilterConfig::from_vars(
            Some("warning"),
            Some("production, Staging"),
            Some("web,api-*"),
            Some("ResizeObserver loop\n*timeout*"),
        )
        .unwrap();
        let drop = Decision::Drop;
        let cases: &[(ErrorEvent, Decision)] = &[
            (event(Level::Error, Some("production"), Some("web"), "TypeError: x"), Decision::Keep),
            (event(Level::Fatal, Some("STAGING"), Some("api-eu"), "TypeError: x"), Decision::Keep),
            (event(Level::Warning, Some("production"), Some("web"), "Slow"), Decision::Keep),
            (
                event(Level::Info, Some("production"), Some("web"), "x"),
                drop(DropReason::BelowMinLevel { level: Level::Info, min: Level::Warning }),
            ),
            (event(Level::Error, Some("dev"), Some("web"), "x"), drop(DropReason::Environment(Some("dev".into())))),
            (event(Level::Error, None, Some("web"), "x"), drop(DropReason::Environment(None))),
            (
                event(Level::Error, Some("production"), Some("worker"), "x"),
                drop(DropReason::Project(Some("worker".into()))),
            ),
            (
                event(Level::Error, Some("production"), Some("webshop"), "x"),
                drop(DropReason::Project(Some("webshop".into()))),
            ),
            (
                event(Level::Error, Some("production"), Some("web"), "Error: ResizeObserver loop limit exceeded"),
                drop(DropReason::Ignored { pattern: "resizeobserver loop".into() }),
            ),
        ];
        for (event, want) in cases {
            assert_eq!(&filter(event, &cfg), want, "{event:?}");
        }
    }

    #[test]
    fn ignore_patterns_cover_culprit_and_exception_type() {
        let base = event(Level::Error, None, None, "E");
        let only = |pattern: &str| FilterConfig::from_vars(None, None, None, Some(pattern)).unwrap();
        // The culprit "app.health in check" matches `*health*`; the exception type matches a glob.
        assert!(matches!(filter(&base, &only("*health*")), Decision::Drop(_)));
        assert!(matches!(filter(&base, &only("connectionreset*")), Decision::Drop(_)));
        // A glob is anchored; a plain pattern is a substring.
        assert_eq!(filter(&base, &only("reset*")), Decision::Keep);
        assert!(matches!(filter(&base, &only("reset")), Decision::Drop(_)));
    }

    #[test]
    fn parsing_vars() {
        assert_eq!(FilterConfig::from_vars(None, None, None, None).unwrap(), FilterConfig::default());
        assert_eq!(FilterConfig::from_vars(Some("  "), Some(""), Some(" , "), None).unwrap(), FilterConfig::default());
        assert!(FilterConfig::from_vars(Some("loud"), None, None, None).is_err());
        let cfg = FilterConfig::from_vars(Some("ERR"), None, None, Some(r#"["a, b", "  ", "c"]"#)).unwrap();
        assert_eq!(cfg.min_level, Level::Error);
        assert_eq!(cfg.ignore.iter().map(Pattern::as_str).collect::<Vec<_>>(), ["a, b", "c"]);
        let cfg = FilterConfig::from_vars(None, None, None, Some("x,y")).unwrap();
        assert_eq!(cfg.ignore.len(), 2);
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*x*y*", "..x..y..", true),
            ("prod-*", "prod-eu", true),
            ("prod-*", "preprod-eu", false),
            ("**a", "a", true),
            (&"*a".repeat(20), &"a".repeat(30), true),
            (&"*a".repeat(20), &format!("{}b", "a".repeat(5_000)), false),
        ] {
            assert_eq!(glob(p, t), want, "{p} {t}");
        }
    }

    #[test]
    fn only_occurrences_are_filtered() {
        let cfg = FilterConfig::from_vars(Some("fatal"), None, None, None).unwrap();
        let e = event(Level::Error, None, None, "x");
        assert!(matches!(filter_signal(&Signal::Occurrence(e.clone()), &cfg), Decision::Drop(_)));
        assert!(matches!(filter_signal(&Signal::Regressed(e), &cfg), Decision::Drop(_)));
        let change = crate::event::StatusChange {
            source: Source::Sentry,
            fingerprint: Fingerprint::from_id("sentry", "1"),
            title: "x".into(),
            link: None,
            actor: None,
            at_ms: 0,
        };
        assert_eq!(filter_signal(&Signal::Resolved(change), &cfg), Decision::Keep);
        assert_eq!(
            DropReason::BelowMinLevel { level: Level::Info, min: Level::Error }.to_string(),
            "level info is below the minimum error"
        );
    }
}
