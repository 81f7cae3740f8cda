//! Redaction of secrets from every string that leaves the executor (reports, callbacks, logs, commit
//! messages): the configured secrets verbatim, and anything shaped like a well-known token.

use std::io::{self, Write};
use std::sync::{Arc, LazyLock};

use regex::Regex;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Configured secrets shorter than this are not replaced verbatim (they would garble ordinary text);
/// real tokens are far longer.
const MIN_SECRET_LEN: usize = 8;

/// Token shapes, each with its replacement (`$1` keeps a prefix such as `Bearer ` or a URL scheme).
static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // GitHub: classic/OAuth/user/server/refresh tokens and fine-grained PATs.
        (r"\bgh[pousr]_[A-Za-z0-9]{30,255}\b", REDACTED),
        (r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b", REDACTED),
        // Anthropic / OpenAI style keys.
        (r"\bsk-(?:ant-)?[A-Za-z0-9_\-]{20,}", REDACTED),
        // Linear API and OAuth tokens.
        (r"\blin_(?:api|oauth)_[A-Za-z0-9]{20,}\b", REDACTED),
        // Slack tokens.
        (r"\bxox[abposre]-[A-Za-z0-9\-]{10,}", REDACTED),
        // GitLab, npm, PyPI, AWS access keys, Sentry auth tokens.
        (r"\bglpat-[A-Za-z0-9_\-]{20,}", REDACTED),
        (r"\bnpm_[A-Za-z0-9]{36}\b", REDACTED),
        (r"\bpypi-[A-Za-z0-9_\-]{50,}", REDACTED),
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED),
        (r"\bsntry[su]_[A-Za-z0-9_=+/\-]{20,}", REDACTED),
        // JWTs.
        (r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", REDACTED),
        // Discord bot tokens: base64(user id) . timestamp . HMAC.
        (r"\b[A-Za-z0-9_\-]{23,28}\.[A-Za-z0-9_\-]{6,7}\.[A-Za-z0-9_\-]{27,40}\b", REDACTED),
        // Authorization header values.
        (r"(?i)\b(bearer|bot|token|basic)(\s+)[A-Za-z0-9._~+/=\-]{12,}", "$1$2[REDACTED]"),
        // Credentials inside URLs: scheme://user:password@host.
        (r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@:]+(?::[^\s/@]*)?@", "$1[REDACTED]@"),
        // key = value assignments of things named like secrets.
        (
            r#"(?i)\b((?:api[_-]?key|secret|password|passwd|access[_-]?token|auth[_-]?token)["']?\s*[:=]\s*["']?)[^\s"',;]{8,}"#,
            "$1[REDACTED]",
        ),
    ]
    .into_iter()
    .map(|(pattern, replacement)| (Regex::new(pattern).expect("valid token pattern"), replacement))
    .collect()
});

/// Encoded forms of `secret` that survive in text: lower- and upper-case hex, and for standard and
/// URL-safe base64 the part of the encoding that does not depend on the bytes around the secret, for each
/// of the three positions the secret can start at within a 3-byte group (so a secret base64-encoded as
/// part of a longer text, e.g. `KEY=…` in a dumped environment, is still found).
pub fn encodings(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    /// Shorter cores would match ordinary base64 by chance.
    const MIN_CORE: usize = 12;
    let bytes = secret.as_bytes();
    let mut forms = vec![hex::encode(bytes), hex::encode_upper(bytes)];
    for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE] {
        for offset in 0..3usize {
            let mut padded = vec![0u8; offset];
            padded.extend_from_slice(bytes);
            let encoded = engine.encode(&padded);
            // Characters of the first group that mix in the prefix, and of the last, partial group.
            let skip = [0, 2, 3][offset];
            let end = 4 * (padded.len() / 3);
            if let Some(core) = encoded.get(skip..end).filter(|c| c.len() >= MIN_CORE) {
                forms.push(core.to_owned());
            }
        }
    }
    forms
}

/// Replaces configured secrets and token-shaped strings with [`REDACTED`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Arc<Vec<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.secrets.len()).finish()
    }
}

impl Redactor {
    /// A redactor for these configured secrets (empty and very short values are ignored), also in their
    /// hex and base64 encodings (see [`encodings`]).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.as_ref().trim().to_owned())
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .flat_map(|s| {
                let mut forms = encodings(&s);
                forms.push(s);
                forms
            })
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets: Arc::new(secrets) }
    }

    /// `text` with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        for (pattern, replacement) in PATTERNS.iter() {
            if let std::borrow::Cow::Owned(replaced) = pattern.replace_all(&out, *replacement) {
                out = replaced;
            }
        }
        out
    }

    /// Whether `text` holds anything [`Redactor::redact`] would replace.
    pub fn finds_secret(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str())) || PATTERNS.iter().any(|(p, _)| p.is_match(text))
    }

    /// Redacts every string of a report in place.
    pub fn redact_report(&self, report: &mut bugbot_shared::executor::FixReport) {
        use bugbot_shared::executor::FixOutcome;
        if let FixOutcome::Blocked { reason } | FixOutcome::Failed { reason } = &mut report.outcome {
            *reason = self.redact(reason);
        }
        for file in &mut report.files {
            *file = self.redact(file);
        }
        for text in [&mut report.test_output_tail, &mut report.summary, &mut report.head_sha].into_iter().flatten() {
            *text = self.redact(text);
        }
        report.branch = self.redact(&report.branch);
        if let Some(repro) = &mut report.repro {
            for test in &mut repro.tests {
                *test = self.redact(test);
            }
            for text in [&mut repro.reason, &mut repro.before_output_tail].into_iter().flatten() {
                *text = self.redact(text);
            }
        }
    }

    /// A `tracing` writer factory that redacts every log line before it reaches `inner`.
    pub fn make_writer<W>(&self, inner: W) -> RedactingMakeWriter<W>
    where
        W: Fn() -> Box<dyn Write + Send> + Send + Sync + 'static,
    {
        RedactingMakeWriter { redactor: self.clone(), inner: Arc::new(inner) }
    }
}

/// See [`Redactor::make_writer`].
pub struct RedactingMakeWriter<W> {
    redactor: Redactor,
    inner: Arc<W>,
}

impl<W> std::fmt::Debug for RedactingMakeWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactingMakeWriter").finish_non_exhaustive()
    }
}

impl<'a, W> tracing_subscriber::fmt::MakeWriter<'a> for RedactingMakeWriter<W>
where
    W: Fn() -> Box<dyn Write + Send> + Send + Sync + 'static,
{
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter { redactor: self.redactor.clone(), buffer: Vec::new(), inner: Some((self.inner)()) }
    }
}

/// Buffers one log record and writes it, redacted, when dropped (the formatter makes one writer per event).
pub struct RedactingWriter {
    redactor: Redactor,
    buffer: Vec<u8>,
    inner: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for RedactingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactingWriter").field("buffered", &self.buffer.len()).finish_non_exhaustive()
    }
}

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        if let Some(mut inner) = self.inner.take() {
            let text = self.redactor.redact(&String::from_utf8_lossy(&self.buffer));
            let _ = inner.write_all(text.as_bytes());
            let _ = inner.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Token-shaped test values are built at run time so that secret scanners do not flag this file.
    fn fake(prefix: &str, n: usize) -> String {
        format!("{prefix}{}", "a1B2".repeat(n / 4 + 1)[..n].to_owned())
    }

    #[test]
    fn configured_secrets_are_replaced_verbatim() {
        let r = Redactor::new(["super-secret-value-1", "short", ""]);
        assert_eq!(r.redact("x super-secret-value-1 y"), "x [REDACTED] y");
        // Too short to be replaced verbatim.
        assert_eq!(r.redact("a short text"), "a short text");
    }

    #[test]
    fn encoded_secrets_are_replaced_wherever_they_start() {
        use base64::Engine as _;
        let secret = "configured-secret-value-0123";
        let r = Redactor::new([secret]);
        for prefix in ["", "K=", "KEY=", "ANTHROPIC_API_KEY="] {
            let text = format!("{prefix}{secret}\nmore");
            for encoded in [
                base64::engine::general_purpose::STANDARD.encode(&text),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&text),
                hex::encode(&text),
                hex::encode_upper(&text),
            ] {
                assert!(r.finds_secret(&encoded), "{prefix:?}: {encoded}");
                assert!(r.redact(&format!("out: {encoded}")).contains(REDACTED), "{encoded}");
            }
        }
        // Ordinary base64 is left alone.
        let other = base64::engine::general_purpose::STANDARD.encode("a different value altogether, long");
        assert!(!r.finds_secret(&other));
    }

    #[test]
    fn token_shapes_are_replaced() {
        let r = Redactor::default();
        for token in [
            fake("ghp_", 36),
            fake("gho_", 36),
            fake("ghs_", 36),
            fake("github_pat_", 60),
            fake("sk-ant-api03-", 40),
            fake("lin_api_", 40),
            fake("xoxb-", 30),
            fake("glpat-", 20),
            format!("{}.{}.{}", fake("M", 25), fake("G", 5), fake("x", 30)),
            format!("eyJ{}.{}.{}", fake("", 12), fake("", 12), fake("", 12)),
        ] {
            let out = r.redact(&format!("token was {token} here"));
            assert!(!out.contains(&token), "{token} survived: {out}");
            assert!(out.contains(REDACTED), "{out}");
            assert!(r.finds_secret(&token), "{token}");
        }
    }

    #[test]
    fn prefixes_are_kept_for_context() {
        let r = Redactor::default();
        let token = fake("", 30);
        assert_eq!(r.redact(&format!("Authorization: Bearer {token}")), "Authorization: Bearer [REDACTED]");
        assert_eq!(r.redact(&format!("Authorization: Bot {token}")), "Authorization: Bot [REDACTED]");
        assert_eq!(
            r.redact("fatal: https://x-access-token:abc123@github.com/o/r.git not found"),
            "fatal: https://[REDACTED]@github.com/o/r.git not found"
        );
        assert_eq!(r.redact("API_KEY=abcdefgh12345"), "API_KEY=[REDACTED]");
        assert_eq!(r.redact(r#""password": "hunter2hunter2""#), r#""password": "[REDACTED]""#);
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let r = Redactor::new(["configured-secret-xyz"]);
        let text = "TypeError: cannot read property 'id' of undefined at src/checkout.ts:42:7 (commit 3f2a1b9c)";
        assert_eq!(r.redact(text), text);
        assert!(!r.finds_secret(text));
        let sha = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
        assert_eq!(r.redact(sha), sha);
    }

    #[test]
    fn the_log_writer_redacts_each_record() {
        use tracing_subscriber::fmt::MakeWriter as _;
        let sink = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let target = sink.clone();
        let make = Redactor::new(["configured-secret-xyz"]).make_writer(move || {
            let target = target.clone();
            Box::new(SinkWriter(target)) as Box<dyn Write + Send>
        });
        {
            let mut w = make.make_writer();
            w.write_all(b"leaked configured-se").unwrap();
            w.write_all(b"cret-xyz in a split write\n").unwrap();
        }
        assert_eq!(String::from_utf8(sink.lock().unwrap().clone()).unwrap(), "leaked [REDACTED] in a split write\n");
    }

    struct SinkWriter(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for SinkWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
