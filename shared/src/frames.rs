//! Stack frames → repository files. Reads the frames of an event in any shape bugbot meets (the
//! SDK/webhook `exception.values[].stacktrace` with `snake_case` fields, or the REST API's
//! `entries[type=exception].data.values[]` with camelCase ones), keeps the application's own frames
//! (bugbot's [`judge_in_app`], not the SDK flag) and maps each to a path in the repository by
//! stripping deploy prefixes (`/app/`, `/code/`, `webpack://<name>/./`, URL origins, ...).
//! Built artifacts (`dist/`, `*.min.js`) are not repository files and are skipped.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Frame;
use crate::normalize::judge_in_app;

/// Directories that containers and platforms deploy the repository into.
const DEPLOY_PREFIXES: &[&str] = &[
    "/usr/src/app/",
    "/srv/app/",
    "/opt/app/",
    "/var/task/",
    "/var/www/html/",
    "/var/www/",
    "/workspace/",
    "/home/app/",
    "/app/",
    "/code/",
    "/src/app/",
];

/// Build output, not source: the repository has no such file.
const BUILT: &[&str] = &["dist/", "build/", ".next/", "out/", "public/build/", "static/js/"];

/// An application frame mapped to a repository path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedFrame {
    /// Path relative to the repository root, e.g. `errors/views.py`.
    pub path: String,
    pub line: Option<u32>,
    pub function: Option<String>,
    /// The source line as the event captured it (if it did).
    pub context_line: Option<String>,
}

/// The frames of an event JSON (any of the shapes above), oldest first, crash frame last.
pub fn event_frames(event: &Value) -> Vec<Frame> {
    let platform = event.get("platform").and_then(Value::as_str);
    let mut raw: Vec<&Value> = Vec::new();
    let mut exceptions: Vec<&Value> = Vec::new();
    if let Some(values) = event.pointer("/exception/values").and_then(Value::as_array) {
        exceptions.extend(values);
    }
    for entry in event.get("entries").and_then(Value::as_array).into_iter().flatten() {
        match entry.get("type").and_then(Value::as_str) {
            Some("exception") => {
                exceptions.extend(entry.pointer("/data/values").and_then(Value::as_array).into_iter().flatten());
            }
            Some("stacktrace") => raw.extend(frames_in(entry.get("data"))),
            _ => {}
        }
    }
    // Chained exceptions: the last value is the one raised.
    for exception in exceptions {
        raw.extend(frames_in(exception.get("stacktrace")));
    }
    if raw.is_empty() {
        raw.extend(frames_in(event.get("stacktrace")));
    }
    raw.into_iter()
        .map(|f| {
            let mut frame = parse_frame(f);
            frame.in_app = judge_in_app(&frame, platform);
            frame
        })
        .collect()
}

fn frames_in(stacktrace: Option<&Value>) -> impl Iterator<Item = &Value> {
    stacktrace.and_then(|s| s.get("frames")).and_then(Value::as_array).into_iter().flatten()
}

fn parse_frame(f: &Value) -> Frame {
    let text = |keys: &[&str]| {
        keys.iter().find_map(|k| f.get(*k).and_then(Value::as_str)).map(str::to_owned).filter(|s| !s.is_empty())
    };
    let number =
        |keys: &[&str]| keys.iter().find_map(|k| f.get(*k).and_then(Value::as_u64)).and_then(|n| u32::try_from(n).ok());
    let mut frame = Frame {
        filename: text(&["filename"]),
        abs_path: text(&["abs_path", "absPath"]),
        lineno: number(&["lineno", "lineNo"]),
        colno: number(&["colno", "colNo"]),
        function: text(&["function"]),
        module: text(&["module"]),
        in_app: false,
        context_line: text(&["context_line"]),
        pre_context: lines(f.get("pre_context")),
        post_context: lines(f.get("post_context")),
    };
    // The API's `context: [[lineno, text], ...]` replaces the three context fields.
    if frame.context_line.is_none()
        && let (Some(context), Some(line)) = (f.get("context").and_then(Value::as_array), frame.lineno)
    {
        for pair in context {
            let n = pair.get(0).and_then(Value::as_u64);
            let Some(code) = pair.get(1).and_then(Value::as_str) else { continue };
            match n.map(|n| n.cmp(&u64::from(line))) {
                Some(std::cmp::Ordering::Less) => frame.pre_context.push(code.to_owned()),
                Some(std::cmp::Ordering::Equal) => frame.context_line = Some(code.to_owned()),
                Some(std::cmp::Ordering::Greater) => frame.post_context.push(code.to_owned()),
                None => {}
            }
        }
    }
    frame
}

fn lines(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// An entry of `FRAME_PATH_MAP` (or a route's `map=`) that cannot be used; the entry is named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameMapError {
    #[error("FRAME_PATH_MAP entry `{0}` is not from=to")]
    NotAPair(String),
    #[error("FRAME_PATH_MAP entry `{0}`: an empty prefix or `..`")]
    Unsafe(String),
}

/// `FRAME_PATH_MAP`: prefix rewrites from where the code ran to where it is in the repository
/// (`/app/=src/,webpack:///./=`), tried on a frame's `abs_path` then its `filename` before the
/// built-in guesses. The longest matching prefix wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameMap(Vec<(String, String)>);

impl FrameMap {
    /// Parses `from=to` pairs, comma-separated; `to` may be empty (strip the prefix).
    pub fn parse(raw: &str) -> Result<Self, FrameMapError> {
        let mut rules = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((from, to)) = item.split_once('=') else {
                return Err(FrameMapError::NotAPair(item.to_owned()));
            };
            let (from, to) = (from.trim(), to.trim().trim_start_matches('/'));
            if from.is_empty() || to.contains("..") {
                return Err(FrameMapError::Unsafe(item.to_owned()));
            }
            rules.push((from.to_owned(), to.to_owned()));
        }
        rules.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Ok(Self(rules))
    }

    fn rewrite(&self, raw: &str) -> Option<String> {
        let raw = raw.trim().replace('\\', "/");
        self.0.iter().find_map(|(from, to)| raw.strip_prefix(from.as_str()).map(|rest| format!("{to}{rest}")))
    }
}

/// The repository path of a frame, or `None` for library, runtime and built-artifact frames.
pub fn repo_path(frame: &Frame) -> Option<String> {
    repo_path_with(frame, &FrameMap::default())
}

/// [`repo_path`] with `FRAME_PATH_MAP`'s rewrites tried first.
pub fn repo_path_with(frame: &Frame, map: &FrameMap) -> Option<String> {
    if !frame.in_app {
        return None;
    }
    let mapped = [frame.abs_path.as_deref(), frame.filename.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|raw| map.rewrite(raw))
        .map(|p| p.split(['?', '#']).next().unwrap_or_default().trim_start_matches("./").to_owned());
    // A relative `filename` is already project-relative (Python, source-mapped JS); otherwise
    // strip the deploy location off the absolute path.
    let relative = frame.filename.as_deref().filter(|f| is_relative(f));
    let path = match mapped {
        Some(path) => path,
        None => strip_prefixes(relative.or(frame.abs_path.as_deref()).or(frame.filename.as_deref())?)?,
    };
    let lower = path.to_ascii_lowercase();
    if path.is_empty()
        || path.starts_with('<')
        || path.contains("..")
        || BUILT.iter().any(|b| lower.starts_with(b))
        || lower.ends_with(".min.js")
        || !path.contains('.')
    {
        return None;
    }
    Some(path)
}

fn is_relative(path: &str) -> bool {
    !path.starts_with('/') && !path.contains("://") && !path.starts_with('<') && !path.starts_with('~')
}

fn strip_prefixes(raw: &str) -> Option<String> {
    let mut path = raw.trim().replace('\\', "/");
    // `webpack://<name>/./src/x.ts`, `webpack:///./src/x.ts`, `app:///src/x.js`, `http://host/x.js`.
    if let Some((_, rest)) = path.split_once("://") {
        let rest = rest.trim_start_matches('/');
        path = match rest.split_once('/') {
            // The first segment is a host or a webpack project name.
            Some((_, tail)) if !raw.starts_with("app:") => tail.to_owned(),
            _ => rest.to_owned(),
        };
    }
    let path = path.split(['?', '#']).next().unwrap_or_default().to_owned();
    let mut path = path.as_str();
    for prefix in DEPLOY_PREFIXES {
        if let Some(rest) = path.strip_prefix(prefix) {
            path = rest;
            break;
        }
    }
    while let Some(rest) = path.strip_prefix("./").or_else(|| path.strip_prefix('/')) {
        path = rest;
    }
    (!path.is_empty()).then(|| path.to_owned())
}

/// The application frames of an event mapped to repository paths, crash frame first, at most
/// `max`, one per `(path, line)`.
pub fn map_frames(event: &Value, max: usize) -> Vec<MappedFrame> {
    map_frame_list(&event_frames(event), max)
}

/// [`map_frames`] over frames already parsed (e.g. a normalized `ErrorEvent`'s).
pub fn map_frame_list(frames: &[Frame], max: usize) -> Vec<MappedFrame> {
    map_frame_list_with(frames, max, &FrameMap::default())
}

/// [`map_frame_list`] with `FRAME_PATH_MAP`.
pub fn map_frame_list_with(frames: &[Frame], max: usize, map: &FrameMap) -> Vec<MappedFrame> {
    let mut out: Vec<MappedFrame> = Vec::new();
    for frame in frames.iter().rev() {
        let Some(path) = repo_path_with(frame, map) else { continue };
        if out.iter().any(|m| m.path == path && m.line == frame.lineno) {
            continue;
        }
        out.push(MappedFrame {
            path,
            line: frame.lineno,
            function: frame.function.clone(),
            context_line: frame.context_line.clone(),
        });
        if out.len() >= max {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    fn frame(filename: Option<&str>, abs: Option<&str>) -> Frame {
        let mut f = Frame {
            filename: filename.map(Into::into),
            abs_path: abs.map(Into::into),
            lineno: Some(3),
            ..Frame::default()
        };
        f.in_app = judge_in_app(&f, None);
        f
    }

    #[test]
    fn deploy_prefixes_are_stripped() {
        let cases = [
            (None, Some("/app/shop/views.py"), Some("shop/views.py")),
            (Some("errors/views.py"), Some("/code/errors/views.py"), Some("errors/views.py")),
            (None, Some("webpack://small-js-error-factory/./src/index.ts"), Some("src/index.ts")),
            (None, Some("webpack:///./src/app.tsx"), Some("src/app.tsx")),
            (None, Some("app:///src/server.js"), Some("src/server.js")),
            (Some("/srv/app/lib/pay.rb"), None, Some("lib/pay.rb")),
            (None, Some("https://shop.example.com/static/checkout.js?v=3"), Some("static/checkout.js")),
            (None, Some("http://127.0.0.1:8080/dist/bundle.js"), None),
            (None, Some("https://cdn.example.com/app.min.js"), None),
            (None, Some("/usr/local/lib/python3.8/site-packages/django/urls/base.py"), None),
            (None, Some("/app/node_modules/react/index.js"), None),
            (Some("<frozen importlib._bootstrap>"), None, None),
            (Some("../../etc/passwd.txt"), None, None),
        ];
        for (filename, abs, want) in cases {
            assert_eq!(repo_path(&frame(filename, abs)).as_deref(), want, "{filename:?} {abs:?}");
        }
    }

    #[test]
    fn frame_path_map_is_tried_before_the_guesses() {
        let map = FrameMap::parse("/app/=src/, webpack:///./=web/, /home/ci/proj/=").unwrap();
        let cases = [
            (None, Some("/app/shop/views.py"), Some("src/shop/views.py")),
            (Some("shop/views.py"), Some("/home/ci/proj/lib/shop/views.py"), Some("lib/shop/views.py")),
            (None, Some("webpack:///./src/app.tsx"), Some("web/src/app.tsx")),
            // No rule: the built-in guesses as before.
            (None, Some("/code/errors/views.py"), Some("errors/views.py")),
            // A rewrite never escapes the repository or maps a build artifact.
            (None, Some("/app/../../etc/passwd.txt"), None),
            (None, Some("/app/dist/bundle.js"), Some("src/dist/bundle.js")),
        ];
        for (filename, abs, want) in cases {
            assert_eq!(repo_path_with(&frame(filename, abs), &map).as_deref(), want, "{filename:?} {abs:?}");
        }
        assert!(FrameMap::parse("nonsense").is_err());
        assert!(FrameMap::parse("/app/=../x").is_err());
        assert_eq!(FrameMap::parse("").unwrap(), FrameMap::default());
    }

    /// Every event fixture: the mapped frames, reviewed as a snapshot.
    #[test]
    fn every_fixture_maps() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
        let mut paths: Vec<std::path::PathBuf> = Vec::new();
        for dir in [
            "sentry_events/glitchtip_test_data/oss_sentry_events",
            "sentry_events/glitchtip_test_data/oss_sentry_json",
            "sentry_events/glitchtip_test_data/incoming_events",
            "sentry/zulip_captured",
            "sentry/sentry_docs_payloads",
            "sentry/integration_platform_example_mocks",
        ] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "json") {
                    paths.push(path);
                }
            }
        }
        paths.sort();
        let mut report = String::new();
        for path in paths {
            let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            // Webhooks wrap the event in `data.event`; the legacy plugin in `event`.
            let event = value.pointer("/data/event").or_else(|| value.get("event")).unwrap_or(&value);
            let frames = event_frames(event);
            if frames.is_empty() {
                continue;
            }
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let _ = writeln!(report, "{name} ({} frames)", frames.len());
            for m in map_frames(event, 10) {
                let _ = writeln!(
                    report,
                    "  {}:{} {} | {}",
                    m.path,
                    m.line.map_or_else(|| "?".into(), |l| l.to_string()),
                    m.function.as_deref().unwrap_or("?"),
                    m.context_line.as_deref().unwrap_or("").trim()
                );
            }
        }
        insta::assert_snapshot!(report);
    }
}
