//! Which frames are the application's own code.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Whether a frame is the application's own code, judged from its path, module and function
/// rather than the SDK's `in_app` flag. Not in-app:
/// - no location at all, or a pseudo-file: `<anonymous>`, `<frozen importlib._bootstrap>`,
///   `[native code]`, `native`;
/// - third-party directories: `site-packages`, `dist-packages`, `node_modules`, `bower_components`,
///   `jspm_packages`, `.yarn`, `vendor`, `gems`, `.cargo`, `.rustup`, `pkg/mod` (Go);
/// - runtimes and standard libraries: `lib/pythonX.Y` (and Windows `PythonXY/Lib`), `/usr/lib/`,
///   node's `internal/` and `node:`, bare node core files (`events.js` on platform `node`),
///   `/rustc/<hash>/`, `rustlib`, Go's `go/src`, browser extensions, webpack's bootstrap/runtime;
/// - bundled third-party chunks: `vendor*.js`, `vendors~*`, `chunk-vendors*`, `polyfills*`,
///   `runtime~*`, Next.js `framework-*`;
/// - JVM and .NET framework modules (`java.`, `sun.`, `kotlin.`, `android.`, `org.springframework.`,
///   `System.`, `Microsoft.`, ...) and Rust's `std::`/`core::`/`alloc::` functions.
pub fn judge_in_app(frame: &Frame, platform: Option<&str>) -> bool {
    let paths: Vec<String> = [frame.abs_path.as_deref(), frame.filename.as_deref()]
        .into_iter()
        .flatten()
        .map(|p| p.trim().replace('\\', "/").to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    let module = frame.module.as_deref().map(str::trim).filter(|m| !m.is_empty());
    if paths.is_empty() && module.is_none() {
        return false;
    }
    if paths.iter().any(|p| is_library_path(p, platform)) {
        return false;
    }
    let function = frame.function.as_deref().unwrap_or_default().trim_start_matches('<');
    if ["std::", "core::", "alloc::", "__rust", "rust_begin_unwind"].iter().any(|p| function.starts_with(p)) {
        return false;
    }
    if let Some(module) = module {
        let jvm = platform.is_some_and(|p| {
            matches!(p, "java" | "kotlin" | "scala" | "groovy" | "clojure" | "android" | "csharp" | "dotnet")
        }) || paths
            .iter()
            .any(|p| [".java", ".kt", ".scala", ".groovy", ".clj", ".cs"].iter().any(|e| p.ends_with(e)));
        if jvm && FRAMEWORK_MODULES.iter().any(|prefix| module.starts_with(prefix)) {
            return false;
        }
    }
    true
}

const FRAMEWORK_MODULES: &[&str] = &[
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "groovy.",
    "clojure.",
    "android.",
    "androidx.",
    "dalvik.",
    "com.android.",
    "com.google.android.",
    "org.springframework.",
    "org.apache.",
    "org.hibernate.",
    "org.eclipse.jetty.",
    "io.netty.",
    "reactor.",
    "okhttp3.",
    "System.",
    "Microsoft.",
];

const LIBRARY_SEGMENTS: &[&str] = &[
    "site-packages",
    "dist-packages",
    "node_modules",
    "bower_components",
    "jspm_packages",
    ".yarn",
    ".pnpm",
    "vendor",
    "gems",
    ".cargo",
    ".rustup",
    "rustlib",
    "~", // webpack 1-3 spelled node_modules as `~`
];

const LIBRARY_PREFIXES: &[&str] = &[
    "<",
    "[native code]",
    "node:",
    "/usr/lib/",
    "/rustc/",
    "/usr/local/go/",
    "/usr/lib/go",
    "chrome-extension:",
    "moz-extension:",
    "safari-extension:",
    "safari-web-extension:",
    "webpack/bootstrap",
    "webpack/runtime",
    "webpack:///webpack/",
    "webpack:///(webpack)",
    "webpack-internal:///(webpack)",
    "(webpack)",
];

const BUNDLE_PREFIXES: &[&str] = &[
    "vendor.",
    "vendor-",
    "vendors.",
    "vendors~",
    "vendors-",
    "chunk-vendors",
    "polyfills",
    "runtime~",
    "framework-",
    "framework.",
];

fn is_library_path(path: &str, platform: Option<&str>) -> bool {
    if LIBRARY_PREFIXES.iter().any(|p| path.starts_with(p)) || path == "native" {
        return true;
    }
    // Node's own modules (`internal/timers.js`); Python or Go `internal/` packages are app code.
    if path.starts_with("internal/") && [".js", ".mjs", ".cjs"].iter().any(|e| path.ends_with(e)) {
        return true;
    }
    // Drop a URL's scheme and host so only the path's segments are judged.
    let local = path.split_once("://").map_or(path, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let segments: Vec<&str> = local.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| LIBRARY_SEGMENTS.contains(s)) {
        return true;
    }
    for pair in segments.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let python = |s: &str| s.starts_with("python") && s[6..].starts_with(|c: char| c.is_ascii_digit());
        // lib/python3.8/…, Python38/Lib/…, pkg/mod/… (Go modules), go/src/… (Go's standard library)
        if (a == "lib" && python(b))
            || (python(a) && b == "lib")
            || (a == "pkg" && b == "mod")
            || (a == "go" && b == "src")
        {
            return true;
        }
    }
    if let Some(file) = segments.last()
        && BUNDLE_PREFIXES.iter().any(|p| file.starts_with(p))
        && (matches!(file.rsplit_once('.'), Some((_, "js" | "mjs"))) || path.contains("://"))
    {
        return true;
    }
    // Node core modules appear as bare file names (`events.js`, `timers.js`).
    platform == Some("node") && !path.contains('/')
}
