//! What the fuzz targets share: request headers, a way for a small input to describe a large
//! body, and the invariants every ingress outcome must satisfy.

use std::borrow::Cow;
use std::collections::BTreeSet;

use bugbot_shared::ingress::{Accepted, DEFAULT_MAX_BODY_BYTES, Headers, IngressError};
use bugbot_shared::job::{Job, MAX_JOB_BYTES};

/// 2026-11-22T00:00:00Z. Time is an input of the ingress code, never read from a clock.
pub const NOW_MS: u64 = 1_795_305_600_000;

/// Request headers as the fuzz targets build them.
#[derive(Debug, Default)]
pub struct FuzzHeaders(pub Vec<(String, String)>);

impl FuzzHeaders {
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.push((name.to_owned(), value.into()));
        self
    }
}

impl Headers for FuzzHeaders {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

/// Lets a small input describe a body of any size up to just over the gateway's limit:
/// `head 0xFF n_hi n_lo unit [0xFF tail]` becomes `head + unit × n + tail`. `0xFF` never occurs
/// in UTF-8, so ordinary inputs (and fixture seeds) pass through unchanged. Without this,
/// libFuzzer's 4 KB inputs never reach the pruning and queue-size paths.
#[must_use]
pub fn amplify(data: &[u8]) -> Cow<'_, [u8]> {
    let Some(start) = data.iter().position(|&b| b == 0xFF) else {
        return Cow::Borrowed(data);
    };
    let Some((count, rest)) = data[start + 1..].split_first_chunk::<2>() else {
        return Cow::Borrowed(data);
    };
    let (unit, tail) = match rest.iter().position(|&b| b == 0xFF) {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (rest, &[][..]),
    };
    let cap = DEFAULT_MAX_BODY_BYTES + 4 * 1024;
    let mut body = data[..start].to_vec();
    if !unit.is_empty() {
        for _ in 0..u16::from_be_bytes(*count) {
            if body.len() + unit.len() > cap {
                break;
            }
            body.extend_from_slice(unit);
        }
    }
    body.extend_from_slice(tail);
    Cow::Owned(body)
}

/// An accepted request answers 200/202 with a JSON body, and every job it carries can be sent to
/// the queue (within the message limit) and reads back identically on the consumer.
///
/// # Panics
/// When it does not: that is the finding.
pub fn check_accepted(accepted: &Accepted) {
    assert!(matches!(accepted.status, 200 | 202), "accepted with status {}", accepted.status);
    serde_json::from_str::<serde_json::Value>(&accepted.body).expect("reply body is JSON");
    let mut ids = BTreeSet::new();
    for job in &accepted.jobs {
        let text = job.to_message().unwrap_or_else(|e| panic!("accepted job {} cannot be queued: {e}", job.id));
        assert!(text.len() <= MAX_JOB_BYTES, "{} bytes", text.len());
        let back =
            Job::from_message(&text).unwrap_or_else(|e| panic!("job {} does not read back: {e}\n{text}", job.id));
        assert_eq!(back, *job, "job does not round-trip through the queue");
        assert!(ids.insert(job.id.clone()), "two jobs of one request share the id {}", job.id);
        assert!(job.id.as_str().len() <= 512, "job id too long for a KV key");
    }
}

/// Signatures and tokens are valid in every target, so the only acceptable refusals are about
/// the body: malformed (400) or too large (413). Each maps to a JSON error body.
///
/// # Panics
/// On any other refusal.
pub fn check_refused(err: &IngressError) {
    assert!(matches!(err, IngressError::BadRequest(_) | IngressError::PayloadTooLarge { .. }), "refused: {err:?}");
    assert!(matches!(err.status(), 400 | 413));
    serde_json::from_str::<serde_json::Value>(&err.body()).expect("error body is JSON");
}
