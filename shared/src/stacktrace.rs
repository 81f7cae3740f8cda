//! Stack traces in plain text (a chat message's code block, a log line) → [`Frame`]s and the
//! exception they end in. Slack alerts and `CloudWatch` log events carry traces only as text.
//!
//! Recognized shapes, each as the runtime prints it:
//! - Python: `Traceback (most recent call last):`, `  File "app.py", line 3, in main`, then
//!   `ZeroDivisionError: division by zero` (oldest frame first, like Sentry).
//! - Node.js / V8: `TypeError: x is undefined` then `    at fn (file.js:10:5)` or `    at file.js:10:5`
//!   (newest first).
//! - Java / JVM: `java.lang.IllegalStateException: msg` then `\tat com.acme.Cart.total(Cart.java:42)`
//!   (newest first; `Caused by:` starts the cause, whose exception becomes the one reported).
//! - Rust: `thread 'main' panicked at src/main.rs:10:5:` with the message on the next line (or after
//!   `', ` in older toolchains), and `RUST_BACKTRACE` lines `  3: crate::module::func` /
//!   `             at ./src/main.rs:10:5` (newest first).
//!
//! Frames come out oldest first, crash frame last, with bugbot's in-app judgement
//! ([`judge_in_app`]); at most [`MAX_FRAMES`] are kept (the crash side).

use crate::event::{ExceptionInfo, Frame};
use crate::normalize::{judge_in_app, normalize_message};

/// Frames kept per trace (the crash side).
pub const MAX_FRAMES: usize = 100;

/// A parsed trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// `python`, `node`, `java` or `rust`.
    pub platform: &'static str,
    pub exception: Option<ExceptionInfo>,
    /// Oldest first, crash frame last.
    pub frames: Vec<Frame>,
}

/// Finds the first stack trace in `text`, if any.
pub fn parse(text: &str) -> Option<Trace> {
    // U+00A0 indentation (Lambda's Python runtime) and `\r` line ends are whitespace to us.
    let text = text.replace('\u{a0}', " ").replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.lines().collect();
    [python, rust, java, node].into_iter().find_map(|parser| parser(&lines)).map(|mut trace| {
        if trace.frames.len() > MAX_FRAMES {
            trace.frames.drain(..trace.frames.len() - MAX_FRAMES);
        }
        for frame in &mut trace.frames {
            frame.in_app = judge_in_app(frame, Some(trace.platform));
        }
        trace
    })
}

fn python(lines: &[&str]) -> Option<Trace> {
    let start = lines.iter().position(|l| l.trim_start().starts_with("Traceback (most recent call last)"))?;
    let mut frames = Vec::new();
    let mut exception = None;
    let mut i = start + 1;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(rest) = line.strip_prefix("File \"") {
            let (path, rest) = rest.split_once('"')?;
            let lineno = rest.split("line ").nth(1).and_then(leading_number);
            let function = rest.split(", in ").nth(1).map(|f| f.trim().to_owned());
            let context_line = lines
                .get(i + 1)
                .map(|l| l.trim())
                .filter(|l| !l.is_empty() && !l.starts_with("File \"") && !looks_like_exception(l))
                .map(str::to_owned);
            if context_line.is_some() {
                i += 1;
            }
            frames.push(Frame {
                filename: Some(path.to_owned()),
                abs_path: Some(path.to_owned()),
                lineno,
                function,
                context_line,
                ..Frame::default()
            });
        } else if line.starts_with("Traceback (most recent call last)") {
            // A chained exception ("During handling of the above exception…"): the last one counts.
            frames.clear();
        } else if looks_like_exception(line) && !frames.is_empty() {
            exception = Some(exception_from(line));
            // Keep reading: a chained traceback may follow.
        } else if line.is_empty() && exception.is_some() {
            break;
        }
        i += 1;
    }
    // Lambda's unhandled-error record puts the exception first: `[ERROR] KeyError: 'id'\nTraceback …`.
    let exception = exception.or_else(|| {
        lines[..start].iter().rev().map(|l| l.trim()).find(|l| looks_like_exception(l)).map(exception_from)
    });
    (!frames.is_empty()).then_some(Trace { platform: "python", exception, frames })
}

fn node(lines: &[&str]) -> Option<Trace> {
    let first = lines.iter().position(|l| parse_node_frame(l.trim()).is_some())?;
    let exception = lines[..first].iter().rev().map(|l| l.trim()).find(|l| looks_like_exception(l)).map(exception_from);
    let mut frames = Vec::new();
    for line in &lines[first..] {
        let line = line.trim();
        match parse_node_frame(line) {
            Some(frame) => frames.push(frame),
            None if line.is_empty() => {}
            None => break,
        }
    }
    frames.reverse();
    (!frames.is_empty()).then_some(Trace { platform: "node", exception, frames })
}

/// `at fn (file:line:col)`, `at async fn (file:line:col)`, `at file:line:col`.
fn parse_node_frame(line: &str) -> Option<Frame> {
    let rest = line.strip_prefix("at ")?;
    // A JVM frame has `(File.java:42)` with no column: not ours.
    let (function, location) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
        Some((function, location)) => (Some(function.trim_start_matches("async ").to_owned()), location),
        None => (None, rest),
    };
    let (path, lineno, colno) = split_location(location)?;
    let colno = colno?;
    Some(Frame {
        filename: Some(path.to_owned()),
        abs_path: Some(path.to_owned()),
        lineno: Some(lineno),
        colno: Some(colno),
        function,
        ..Frame::default()
    })
}

/// `path:line[:col]`, splitting from the right so `C:\x` and `file:///x` paths survive.
fn split_location(location: &str) -> Option<(&str, u32, Option<u32>)> {
    let (head, last) = location.rsplit_once(':')?;
    let last: u32 = last.parse().ok()?;
    match head.rsplit_once(':') {
        Some((path, line)) if line.parse::<u32>().is_ok() && !path.is_empty() => {
            Some((path, line.parse().ok()?, Some(last)))
        }
        _ if !head.is_empty() => Some((head, last, None)),
        _ => None,
    }
}

fn java(lines: &[&str]) -> Option<Trace> {
    let first = lines.iter().position(|l| parse_java_frame(l.trim()).is_some())?;
    let mut exception =
        lines[..first].iter().rev().map(|l| l.trim()).find(|l| looks_like_exception(l)).map(exception_from);
    let mut frames = Vec::new();
    for line in &lines[first..] {
        let line = line.trim();
        if let Some(frame) = parse_java_frame(line) {
            frames.push(frame);
        } else if let Some(cause) = line.strip_prefix("Caused by: ") {
            // The root cause is what broke; its frames replace the wrapper's.
            exception = Some(exception_from(cause));
            frames.clear();
        } else if line.starts_with("...") || line.is_empty() {
        } else {
            break;
        }
    }
    frames.reverse();
    (!frames.is_empty()).then_some(Trace { platform: "java", exception, frames })
}

/// `at com.acme.Cart.total(Cart.java:42)`, `at java.base/java.lang.Thread.run(Thread.java:833)`.
fn parse_java_frame(line: &str) -> Option<Frame> {
    let rest = line.strip_prefix("at ")?;
    let (qualified, location) = rest.strip_suffix(')')?.split_once('(')?;
    let (file, lineno) = match location.split_once(':') {
        Some((file, line)) => (file, Some(line.parse().ok()?)),
        None => (location, None),
    };
    if !std::path::Path::new(file)
        .extension()
        .is_some_and(|e| ["java", "kt", "scala", "groovy", "clj"].iter().any(|x| e.eq_ignore_ascii_case(x)))
        && !matches!(file, "Native Method" | "Unknown Source")
    {
        return None;
    }
    let qualified = qualified.rsplit_once('/').map_or(qualified, |(_, q)| q);
    let (module, function) = qualified.rsplit_once('.')?;
    Some(Frame {
        filename: Some(file.to_owned()),
        lineno,
        function: Some(function.to_owned()),
        module: Some(module.to_owned()),
        ..Frame::default()
    })
}

fn rust(lines: &[&str]) -> Option<Trace> {
    let start = lines.iter().position(|l| l.contains("panicked at "))?;
    let header = lines[start];
    let after = header.split_once("panicked at ").map(|(_, a)| a)?;
    // 1.73+: `panicked at src/main.rs:10:5:` + message on the next line; before: `panicked at 'msg', src/main.rs:10:5`.
    let (message, location) = if let Some(old) = after.strip_prefix('\'') {
        let (message, location) = old.rsplit_once("', ")?;
        (message.to_owned(), location.trim())
    } else {
        let location = after.trim().trim_end_matches(':');
        (lines.get(start + 1).map_or_else(String::new, |l| l.trim().to_owned()), location)
    };
    let mut frames = Vec::new();
    let mut i = start + 1;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some((n, function)) = line.split_once(": ")
            && n.chars().all(|c| c.is_ascii_digit())
            && !n.is_empty()
        {
            let mut frame = Frame { function: Some(function.trim().to_owned()), ..Frame::default() };
            if let Some(at) = lines.get(i + 1).and_then(|l| l.trim().strip_prefix("at "))
                && let Some((path, lineno, colno)) = split_location(at)
            {
                frame.filename = Some(path.trim_start_matches("./").to_owned());
                frame.abs_path = Some(path.to_owned());
                frame.lineno = Some(lineno);
                frame.colno = colno;
                i += 1;
            }
            frame.module = frame.function.as_deref().and_then(|f| f.rsplit_once("::")).map(|(m, _)| m.to_owned());
            frames.push(frame);
        }
        i += 1;
    }
    frames.reverse();
    if frames.is_empty()
        && let Some((path, lineno, colno)) = split_location(location)
    {
        // No backtrace: the panic location is the one frame there is.
        frames.push(Frame {
            filename: Some(path.to_owned()),
            abs_path: Some(path.to_owned()),
            lineno: Some(lineno),
            colno,
            ..Frame::default()
        });
    }
    let exception = ExceptionInfo { kind: Some("panic".to_owned()), value: Some(message), module: None };
    Some(Trace { platform: "rust", exception: Some(exception), frames })
}

/// `ZeroDivisionError: division by zero`, `java.lang.NullPointerException`, `TypeError: x`, also
/// with a log prefix (`[ERROR] KeyError: 'id'`).
fn looks_like_exception(line: &str) -> bool {
    let line = strip_log_prefix(line);
    let head = line.split_once(':').map_or(line, |(h, _)| h);
    !head.is_empty()
        && !head.contains(' ')
        && head.chars().next().is_some_and(char::is_alphabetic)
        && head.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '$'))
        && {
            let name = head.rsplit('.').next().unwrap_or(head);
            name.ends_with("Error") || name.ends_with("Exception") || name.ends_with("Interrupt") || name == "Throwable"
        }
}

fn strip_log_prefix(line: &str) -> &str {
    let line = line.trim();
    match line.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((_, rest)) => rest.trim_start(),
        None => line,
    }
}

fn exception_from(line: &str) -> ExceptionInfo {
    let line = strip_log_prefix(line);
    let (kind, value) = match line.split_once(':') {
        Some((kind, value)) => (kind.trim(), Some(value.trim().to_owned()).filter(|v| !v.is_empty())),
        None => (line.trim(), None),
    };
    let (module, kind) = match kind.rsplit_once('.') {
        Some((module, name)) => (Some(module.to_owned()), name),
        None => (None, kind),
    };
    ExceptionInfo { kind: Some(kind.to_owned()), value, module }
}

fn leading_number(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What a text source's fingerprint hashes: the title with numbers, ids and hex masked, the exception
/// class, and the top in-app frame (else the top frame) by module or file and function.
pub fn fingerprint_material(title: &str, exception: Option<&ExceptionInfo>, frames: &[Frame]) -> String {
    let top = frames.iter().rev().find(|f| f.in_app).or(frames.last());
    format!(
        "{}\n{}\n{}",
        normalize_message(title),
        exception.and_then(|e| e.kind.as_deref()).unwrap_or_default(),
        top.map(|f| format!(
            "{} {}",
            f.module.as_deref().or(f.filename.as_deref()).unwrap_or_default(),
            f.function.as_deref().unwrap_or_default()
        ))
        .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(trace: &Trace) -> Vec<String> {
        trace.frames.iter().map(|f| f.function.clone().unwrap_or_default()).collect()
    }

    #[test]
    fn python_traceback() {
        let text = "deploy failed:\nTraceback (most recent call last):\n  File \"/app/worker.py\", line 88, in <module>\n    main()\n  File \"/app/worker.py\", line 41, in main\n    total = sum(rows) / len(rows)\nZeroDivisionError: division by zero";
        let trace = parse(text).unwrap();
        assert_eq!(trace.platform, "python");
        assert_eq!(names(&trace), ["<module>", "main"]);
        assert_eq!(trace.frames[1].lineno, Some(41));
        assert_eq!(trace.frames[1].context_line.as_deref(), Some("total = sum(rows) / len(rows)"));
        assert!(trace.frames[1].in_app);
        let e = trace.exception.unwrap();
        assert_eq!((e.kind.as_deref(), e.value.as_deref()), (Some("ZeroDivisionError"), Some("division by zero")));
    }

    #[test]
    fn node_stack() {
        let text = "TypeError: Cannot read properties of undefined (reading 'id')\n    at handler (/var/task/index.js:12:18)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)";
        let trace = parse(text).unwrap();
        assert_eq!(trace.platform, "node");
        assert_eq!(names(&trace), ["process.processTicksAndRejections", "handler"]);
        assert_eq!(trace.frames[1].colno, Some(18));
        assert!(trace.frames[1].in_app && !trace.frames[0].in_app);
        assert_eq!(trace.exception.unwrap().kind.as_deref(), Some("TypeError"));
    }

    #[test]
    fn java_stack_with_cause() {
        let text = "java.lang.RuntimeException: wrapper\n\tat com.acme.Api.call(Api.java:10)\nCaused by: java.lang.IllegalStateException: cart is empty\n\tat com.acme.Cart.total(Cart.java:42)\n\tat com.acme.Api.call(Api.java:9)\n\t... 3 more";
        let trace = parse(text).unwrap();
        assert_eq!(trace.platform, "java");
        assert_eq!(names(&trace), ["call", "total"]);
        assert_eq!(trace.frames[1].module.as_deref(), Some("com.acme.Cart"));
        let e = trace.exception.unwrap();
        assert_eq!((e.kind.as_deref(), e.module.as_deref()), (Some("IllegalStateException"), Some("java.lang")));
    }

    #[test]
    fn rust_panic_with_backtrace() {
        let text = "thread 'main' panicked at src/main.rs:10:5:\nindex out of bounds: the len is 3 but the index is 7\nstack backtrace:\n   0: rust_begin_unwind\n             at /rustc/abc/library/std/src/panicking.rs:645:5\n   1: shop::cart::total\n             at ./src/cart.rs:10:5\n   2: shop::main\n             at ./src/main.rs:4:5";
        let trace = parse(text).unwrap();
        assert_eq!(trace.platform, "rust");
        assert_eq!(names(&trace), ["shop::main", "shop::cart::total", "rust_begin_unwind"]);
        assert_eq!(trace.frames[1].filename.as_deref(), Some("src/cart.rs"));
        assert!(trace.frames[1].in_app && !trace.frames[2].in_app);
        assert_eq!(
            trace.exception.unwrap().value.as_deref(),
            Some("index out of bounds: the len is 3 but the index is 7")
        );
        let old = parse("thread 'main' panicked at 'boom', src/lib.rs:3:9").unwrap();
        assert_eq!(old.frames[0].lineno, Some(3));
        assert_eq!(old.exception.unwrap().value.as_deref(), Some("boom"));
    }

    #[test]
    fn plain_text_is_no_trace() {
        assert_eq!(parse("The alarm api-5xx changed state to ALARM"), None);
        assert_eq!(parse("at the office: 10:30"), None);
        assert_eq!(parse(""), None);
    }
}
