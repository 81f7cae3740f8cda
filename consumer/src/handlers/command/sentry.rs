//! What `/bugbot errors`, `stats` and `resolve` share: the Sentry-compatible REST API (so they serve
//! Sentry and GlitchTip alike), their outcome and their text helpers.

use bugbot_shared::status::JobState;

use crate::clients::SinkError;
use crate::clients::http::HttpPort;
use crate::clients::sentry_api::{ApiIssue, SentryApi};
use crate::runtime::ctx::Ctx;
use crate::runtime::outcome::{Effect, Outcome, StepError};
use crate::store::ports::{ClaimPort, KvPort};

/// The API of `SENTRY_API_BASE` (default `https://sentry.io`), `SENTRY_API_TOKEN` and `SENTRY_ORG`, as
/// read with the configuration (the same settings enrichment uses).
pub(super) fn api<'a, P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'a, P, C, K>,
) -> Result<SentryApi<'a, P>, StepError> {
    let Some(c) = ctx.config.evidence.sentry_api.as_ref().filter(|c| !c.org.is_empty()) else {
        return Err(StepError::Sink(SinkError::Permanent {
            service: "sentry_api",
            reason: "not configured (SENTRY_API_TOKEN, SENTRY_ORG)".into(),
        }));
    };
    Ok(SentryApi {
        port: ctx.port,
        api_base: c.api_base.clone().unwrap_or_else(|| "https://sentry.io".into()),
        token: c.token.clone(),
        org: c.org.clone(),
    })
}

pub(super) fn done(reason: String) -> Outcome {
    Outcome::Done {
        state: JobState::Done,
        reason: Some(reason),
        links: Vec::new(),
        fingerprint: None,
        effect: Effect::None,
    }
}

pub(super) fn link(api: &SentryApi<'_, impl HttpPort>, issue: &ApiIssue) -> String {
    issue.permalink.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| api.issue_page(&issue.id))
}

pub(super) fn one_line(text: &str) -> String {
    super::clip(&text.replace(['\n', '\r'], " ").replace(['[', ']', '`', '@'], ""), 90)
}

/// `2024-05-01T10:00:00(.123)Z` → unix ms (UTC only, as the API sends).
#[expect(clippy::many_single_char_names, reason = "the civil-date algorithm's names")]
pub(super) fn rfc3339_ms(s: &str) -> Option<u64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+']).next()?;
    let mut t = time.split(':');
    let (h, min) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let sec: f64 = t.next().unwrap_or("0").parse().ok()?;
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    #[expect(clippy::cast_possible_truncation, reason = "seconds within a minute")]
    let ms = days * 86_400_000 + h * 3_600_000 + min * 60_000 + (sec * 1000.0) as i64;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_api_timestamps() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms("2015-10-21T07:28:00.123Z"), Some(1_445_412_480_123));
        assert_eq!(rfc3339_ms("2000-02-29T00:00:00.000000Z"), Some(951_782_400_000));
        assert_eq!(rfc3339_ms("nope"), None);
    }
}
