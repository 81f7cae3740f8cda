//! Fixes on GitHub Actions (`FIX_BACKEND=actions`): instead of sending the fix job to an executor,
//! the consumer creates a `repository_dispatch` event
//! (<https://docs.github.com/en/rest/repos/repos#create-a-repository-dispatch-event>) with
//! `event_type: "bugbot-fix"` and the signed job ([`SignedJob`]) as `client_payload`. The workflow
//! (`examples/github-actions/bugbot-fix.yml`) runs the executor's one-shot mode on it, which checks the
//! signature and freshness before anything runs and posts the signed report to the gateway's
//! `/executor/callback`, so the rest of the run (progress, draft PR) is the same as with the container.
//!
//! The job is signed as a JSON *string* inside the payload, so GitHub's re-rendering of
//! `client_payload` cannot change the signed bytes. Anyone able to dispatch can start the workflow but
//! cannot choose what it does without the executor secret.

use bugbot_shared::executor::{FixJob, SignedJob};
use bugbot_shared::report::clip;

use crate::clients::SinkError;
use crate::clients::github::GitHub;
use crate::clients::http::HttpPort;

/// The `repository_dispatch` type the workflow listens for.
pub const EVENT_TYPE: &str = "bugbot-fix";

/// GitHub refuses a `client_payload` of 64 KB or more.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Why a job was not dispatched, before any request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchRefused {
    #[error("FIX_BACKEND=actions needs GITHUB_TOKEN (with Contents: write on {0})")]
    NoToken(String),
    #[error("FIX_BACKEND=actions needs EXECUTOR_CALLBACK_URL: the workflow reports there")]
    NoCallback,
    #[error("the signed job is {0} bytes; GitHub takes a client_payload under 64 KB")]
    TooLarge(usize),
}

/// The `client_payload`: the job sealed at `now_secs`.
pub fn payload(secret: &[u8], now_secs: u64, job: &FixJob) -> Result<serde_json::Value, DispatchRefused> {
    if job.callback_url.is_none() {
        return Err(DispatchRefused::NoCallback);
    }
    let sealed = SignedJob::seal(secret, now_secs, job);
    let value = serde_json::to_value(&sealed).expect("a signed job serializes");
    let len = value.to_string().len();
    if len >= MAX_PAYLOAD_BYTES {
        return Err(DispatchRefused::TooLarge(len));
    }
    Ok(value)
}

/// Why a dispatch did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Refused(#[from] DispatchRefused),
    /// 429, 5xx, a secondary rate limit, no answer: worth a retry (the caller settles it, honouring
    /// GitHub's `Retry-After`).
    #[error("workflow dispatch: {0}")]
    Transient(SinkError),
    /// GitHub refused it (404: no such repository or no access; 422): retrying cannot help.
    #[error("workflow dispatch refused: {0}")]
    Permanent(String),
}

/// Sends the job to the workflow of `github.repo` (`None`: GitHub is not configured).
pub async fn dispatch<P: HttpPort>(
    github: Option<GitHub<'_, P>>,
    secret: &[u8],
    now_secs: u64,
    job: &FixJob,
) -> Result<(), DispatchError> {
    let github = github.ok_or_else(|| DispatchRefused::NoToken("the fix repository".into()))?;
    let client_payload = payload(secret, now_secs, job)?;
    match github.repository_dispatch(EVENT_TYPE, client_payload).await {
        Ok(()) => Ok(()),
        Err(e @ SinkError::Transient { .. }) => Err(DispatchError::Transient(e)),
        Err(e) => Err(DispatchError::Permanent(clip(&e.to_string(), 300))),
    }
}

#[cfg(test)]
mod tests {
    use bugbot_shared::executor::{FIX_JOB_VERSION, FixJobId, FixLimits, FixPrompt};

    use super::*;

    fn job(context: &str) -> FixJob {
        FixJob {
            version: FIX_JOB_VERSION,
            job_id: FixJobId::new("fix-1-abc").unwrap(),
            clone_url: "https://github.com/acme/shop.git".into(),
            base_ref: "main".into(),
            branch: "bugbot/fix-1".into(),
            prompt: FixPrompt {
                issue_key: "#1".into(),
                issue_url: None,
                title: "t".into(),
                body: "b".into(),
                context: context.into(),
            },
            allowed_paths: vec!["src/**".into()],
            allow_protected: Vec::new(),
            test_command: Some("cargo test".into()),
            limits: FixLimits::default(),
            callback_url: Some("https://gw.example/executor/callback".into()),
            repro: bugbot_shared::executor::ReproPolicy::default(),
        }
    }

    #[test]
    fn the_payload_is_a_signed_job_that_opens_with_the_secret_only() {
        let value = payload(b"s3cret", 1_000, &job("")).unwrap();
        let sealed: SignedJob = serde_json::from_value(value).unwrap();
        assert_eq!(sealed.open(b"s3cret", 1_010, 300).unwrap(), job(""));
        assert!(sealed.open(b"another", 1_010, 300).is_err());
        assert!(sealed.open(b"s3cret", 1_000 + 301, 300).is_err(), "stale");
    }

    #[test]
    fn refused_before_sending() {
        let mut no_callback = job("");
        no_callback.callback_url = None;
        assert_eq!(payload(b"k", 1, &no_callback), Err(DispatchRefused::NoCallback));
        assert!(matches!(payload(b"k", 1, &job(&"x".repeat(70_000))), Err(DispatchRefused::TooLarge(_))));
    }
}
