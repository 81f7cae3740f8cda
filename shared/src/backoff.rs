//! Retry delays for queue messages whose outbound call failed transiently (429, 5xx, timeout):
//! exponential backoff with jitter, capped, and never shorter than what the server asked for.
//!
//! Pure: the caller passes the attempt number (`Message::attempts()`), the current time and a
//! random number in `0..1`, and gets whole seconds for `message.retry({delaySeconds})`
//! (<https://developers.cloudflare.com/queues/configuration/batching-retries/#delay-messages>,
//! at most 12 hours). The crates that do backoff (`backon`, `backoff`) drive sleeps on an async
//! runtime and draw their own randomness; neither parses `Retry-After`, and a queue retry needs
//! only the number.
//!
//! Server hints understood: `Retry-After` (delta-seconds or HTTP-date, RFC 9110 §10.2.3),
//! `x-ratelimit-reset` (epoch seconds on GitHub and Discord, epoch milliseconds on Linear's
//! `x-ratelimit-requests-reset`), Discord's `X-RateLimit-Reset-After` (float seconds, use
//! [`parse_retry_after`]) and the `retry_after` float seconds of Discord's 429 body.

use serde::Deserialize;

use crate::event::unix_ms;

/// Cloudflare Queues' largest per-message retry delay.
pub const MAX_QUEUE_DELAY_SECS: u32 = 43_200;

/// How the random part of a delay is drawn (<https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Anywhere in `0..=backoff`: spreads a thundering herd best.
    Full,
    /// In `backoff/2..=backoff`: never retries almost at once.
    Equal,
}

/// Exponential backoff: attempt `n` (1-based) waits up to `base_ms · 2^(n-1)`, capped at `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub max_ms: u64,
    /// Deliveries in all, after which the message is given up (dead-lettered).
    pub max_attempts: u32,
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    /// 2 s, 4 s, 8 s, ... up to 15 minutes, equal jitter, 6 attempts.
    fn default() -> Self {
        Self { base_ms: 2_000, max_ms: 15 * 60 * 1_000, max_attempts: 6, jitter: Jitter::Equal }
    }
}

/// How long a server asked the client to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfter {
    pub delay_ms: u64,
}

impl RetryAfter {
    pub fn from_ms(delay_ms: u64) -> Self {
        Self { delay_ms }
    }

    /// From (possibly fractional) seconds; `None` if negative or not finite.
    pub fn from_secs_f64(secs: f64) -> Option<Self> {
        (secs.is_finite() && secs >= 0.0).then(|| Self { delay_ms: secs_to_ms(secs) })
    }

    /// From a rate-limit reset time: `x-ratelimit-reset` in epoch seconds (GitHub; Discord with a
    /// fraction) or epoch milliseconds (Linear), told apart by magnitude. A reset in the past
    /// means no wait.
    pub fn from_reset_epoch(value: &str, now_ms: u64) -> Option<Self> {
        let epoch: f64 = value.trim().parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
        // 1e11 seconds is the year 5138; 1e11 milliseconds is 1973.
        let reset_ms = if epoch >= 1e11 { secs_to_ms(epoch / 1_000.0) } else { secs_to_ms(epoch) };
        Some(Self { delay_ms: reset_ms.saturating_sub(now_ms) })
    }

    /// From Discord's 429 body, `{"message", "retry_after": <float seconds>, "global"}`
    /// (<https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit>).
    pub fn from_discord_body(body: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct RateLimited {
            retry_after: f64,
        }
        Self::from_secs_f64(serde_json::from_str::<RateLimited>(body).ok()?.retry_after)
    }

    /// The longest of whatever hints a failed response carried. Pass `ratelimit_reset` only for a
    /// rate-limited response (GitHub sends the header on every response).
    pub fn from_response(
        retry_after: Option<&str>,
        ratelimit_reset: Option<&str>,
        body: Option<&str>,
        now_ms: u64,
    ) -> Option<Self> {
        [
            retry_after.and_then(|v| parse_retry_after(v, now_ms)),
            ratelimit_reset.and_then(|v| Self::from_reset_epoch(v, now_ms)),
            body.and_then(Self::from_discord_body),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "callers pass finite, non-negative values; saturates"
)]
fn secs_to_ms(secs: f64) -> u64 {
    (secs * 1_000.0).ceil() as u64
}

/// Parses a `Retry-After` value: delta-seconds (fractions accepted) or an HTTP-date, relative to
/// `now_ms`. A date in the past means no wait.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<RetryAfter> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return RetryAfter::from_secs_f64(secs);
    }
    parse_http_date_ms(value).map(|at| RetryAfter { delay_ms: at.saturating_sub(now_ms) })
}

/// Parses an HTTP-date in any of RFC 9110's three formats (§5.6.7) to unix ms:
/// `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`, `Sun Nov  6 08:49:37 1994`.
pub fn parse_http_date_ms(value: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let (mut day, mut month, mut year, mut time) = (None, None, None, None);
    for token in value.split([' ', ',', '-']).filter(|t| !t.is_empty()) {
        let lower = token.to_ascii_lowercase();
        if token.contains(':') {
            let mut parts = token.split(':').map(str::parse::<u32>);
            time = Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?));
        } else if token.bytes().all(|b| b.is_ascii_digit()) {
            // The day comes first in every format; a second short number is RFC 850's
            // two-digit year, read (RFC 9110) as the nearest past century.
            let n: u32 = token.parse().ok()?;
            match (token.len(), day) {
                (4, _) => year = Some(i64::from(n)),
                (1 | 2, None) => day = Some(n),
                (2, Some(_)) => year = Some(if n >= 70 { 1900 } else { 2000 } + i64::from(n)),
                _ => return None,
            }
        } else if let Some(m) = MONTHS.iter().position(|m| lower.starts_with(m) && lower.len() == 3) {
            month = Some(u32::try_from(m).ok()? + 1);
        }
    }
    let (hour, minute, second) = time?;
    unix_ms(year?, month?, day?, hour, minute, second, 0)
}

impl RetryPolicy {
    /// Whether a message that has been delivered `attempt` times may be retried again.
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The jittered backoff for delivery `attempt` (1-based), in ms. `jitter` is a random number
    /// in `0..1` (clamped; not finite counts as 1).
    pub fn backoff_ms(&self, attempt: u32, jitter: f64) -> u64 {
        let doublings = attempt.saturating_sub(1).min(40);
        let ceiling = self.base_ms.saturating_mul(1_u64 << doublings).min(self.max_ms);
        let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 1.0 };
        match self.jitter {
            Jitter::Full => scale(ceiling, jitter),
            Jitter::Equal => ceiling / 2 + scale(ceiling - ceiling / 2, jitter),
        }
    }

    /// Whole seconds to wait before delivery `attempt + 1`: the jittered backoff, raised to any
    /// server-given wait (which may exceed `max_ms`), at least 1 and at most
    /// [`MAX_QUEUE_DELAY_SECS`].
    pub fn retry_delay_secs(&self, attempt: u32, retry_after: Option<RetryAfter>, jitter: f64) -> u32 {
        let wait_ms = self.backoff_ms(attempt, jitter).max(retry_after.map_or(0, |r| r.delay_ms));
        let secs = wait_ms.div_ceil(1_000).clamp(1, u64::from(MAX_QUEUE_DELAY_SECS));
        u32::try_from(secs).unwrap_or(MAX_QUEUE_DELAY_SECS)
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "0 ≤ fraction ≤ 1 of a u64; rounding is fine"
)]
fn scale(ms: u64, fraction: f64) -> u64 {
    (ms as f64 * fraction).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn http_dates_in_all_three_formats() {
        for raw in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(parse_http_date_ms(raw), Some(NOW), "{raw}");
        }
        assert_eq!(parse_http_date_ms("Wed, 21 Oct 2015 07:28:00 GMT"), Some(1_445_412_480_000));
        assert_eq!(parse_http_date_ms("Thu, 01 Jan 2026 00:00:00 GMT"), Some(1_767_225_600_000));
        assert_eq!(parse_http_date_ms("Monday, 01-Jan-24 00:00:00 GMT"), Some(1_704_067_200_000));
        for bad in ["", "soon", "Sun, 06 Nov 1994", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT"] {
            assert_eq!(parse_http_date_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_values() {
        let ms = |v: &str| parse_retry_after(v, NOW).map(|r| r.delay_ms);
        assert_eq!(ms("120"), Some(120_000));
        assert_eq!(ms(" 1.25 "), Some(1_250));
        assert_eq!(ms("-1"), None);
        assert_eq!(ms("Sun, 06 Nov 1994 08:50:37 GMT"), Some(60_000));
        assert_eq!(ms("Sun, 06 Nov 1994 08:00:00 GMT"), Some(0), "a past date means no wait");
        assert_eq!(ms("later"), None);

        let reset = |v: &str| RetryAfter::from_reset_epoch(v, NOW).map(|r| r.delay_ms);
        assert_eq!(reset("784111807"), Some(30_000), "GitHub: epoch seconds");
        assert_eq!(reset("784111807.5"), Some(30_500), "Discord: fractional epoch seconds");
        assert_eq!(reset("784111787000"), Some(10_000), "Linear: epoch milliseconds");
        assert_eq!(reset("1"), Some(0));
        assert_eq!(reset("x"), None);

        let body = r#"{"message": "You are being rate limited.", "retry_after": 64.57, "global": false}"#;
        assert_eq!(RetryAfter::from_discord_body(body), Some(RetryAfter::from_ms(64_570)));
        assert_eq!(RetryAfter::from_discord_body("{}"), None);
        assert_eq!(
            RetryAfter::from_response(Some("5"), Some("784111807"), Some(body), NOW),
            Some(RetryAfter::from_ms(64_570)),
            "the longest hint wins"
        );
        assert_eq!(RetryAfter::from_response(None, None, Some("<html>"), NOW), None);
    }

    #[test]
    fn backoff_table() {
        let full = RetryPolicy { base_ms: 1_000, max_ms: 60_000, max_attempts: 5, jitter: Jitter::Full };
        let equal = RetryPolicy { jitter: Jitter::Equal, ..full };
        // (policy, attempt, server hint ms, jitter, want seconds)
        let cases: &[(RetryPolicy, u32, Option<u64>, f64, u32)] = &[
            (full, 1, None, 1.0, 1),
            (full, 2, None, 1.0, 2),
            (full, 4, None, 1.0, 8),
            (full, 4, None, 0.5, 4),
            (full, 4, None, 0.0, 1),   // never 0: at least a second
            (full, 30, None, 1.0, 60), // capped at max_ms
            (full, u32::MAX, None, 1.0, 60),
            (equal, 4, None, 0.0, 4),
            (equal, 4, None, 1.0, 8),
            (equal, 4, None, 0.25, 5),
            (full, 1, Some(90_000), 0.0, 90), // the server's wait beats the cap
            (full, 1, Some(1_001), 0.0, 2),   // rounded up to whole seconds
            (full, 6, Some(1_000), 1.0, 32),  // but never shortens the backoff
            (full, 1, Some(100_000_000), 1.0, MAX_QUEUE_DELAY_SECS),
            (full, 3, None, f64::NAN, 4),
            (full, 3, None, 7.0, 4),
            (full, 3, None, -1.0, 1),
        ];
        for &(policy, attempt, hint, jitter, want) in cases {
            let got = policy.retry_delay_secs(attempt, hint.map(RetryAfter::from_ms), jitter);
            assert_eq!(got, want, "{:?} attempt {attempt} hint {hint:?} jitter {jitter}", policy.jitter);
        }
        let zero = RetryPolicy { base_ms: 0, ..full };
        assert_eq!(zero.retry_delay_secs(3, None, 1.0), 1);
        let huge = RetryPolicy { base_ms: u64::MAX, max_ms: u64::MAX, ..full };
        assert_eq!(huge.retry_delay_secs(40, None, 1.0), MAX_QUEUE_DELAY_SECS);
    }

    #[test]
    fn attempts() {
        let policy = RetryPolicy::default();
        assert!(policy.should_retry(1) && policy.should_retry(5));
        assert!(!policy.should_retry(6));
        assert_eq!(policy.retry_delay_secs(1, None, 0.0), 1);
        assert_eq!(policy.retry_delay_secs(1, None, 1.0), 2);
        assert_eq!(policy.retry_delay_secs(20, None, 1.0), 900);
    }
}
