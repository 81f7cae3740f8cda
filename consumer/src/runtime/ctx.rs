//! [`Ctx`]: everything a job's handler needs, built once per message by the runtime, and the
//! delivery claim every handler but the alert's starts with (an alert's is its fingerprint's).

use bugbot_shared::claim::{DeliveryOp, DeliveryReply};
use bugbot_shared::job::Job;
use bugbot_shared::status::JobState;

use super::outcome::{Outcome, StepError};
use super::settle;
use crate::clients::discord::Discord;
use crate::clients::github::GitHub;
use crate::clients::http::HttpPort;
use crate::clients::linear::Linear;
use crate::clients::tracker::Tracker;
use crate::config::Config;
use crate::store::State;
use crate::store::memo::Memo;
use crate::store::objects::claims::Claims;
use crate::store::ports::{ClaimPort, KvPort};
use worker::kv::KvStore;

/// Everything a job needs, built once per message by the entrypoint.
///
/// Generic over its ports (HTTP, claims, KV), so that handlers run natively in tests; the Worker's
/// are [`FetchPort`](crate::clients::fetch::FetchPort), [`Claims`] and the `STATE` namespace.
pub struct Ctx<'a, P: HttpPort, C: ClaimPort = Claims, K: KvPort = KvStore> {
    /// The Worker's bindings, for modules that read their own settings (`config::binding`).
    pub env: &'a worker::Env,
    pub config: &'a Config,
    pub port: &'a P,
    pub claims: &'a C,
    pub state: &'a State<K>,
    pub now_ms: u64,
    /// In [0, 1): spreads retries of a burst apart.
    pub jitter: f64,
    /// The queue message id: a delivery's retries share it, redelivered copies do not.
    pub message_id: &'a str,
    /// Which delivery of this job this is (1 until the runtime has claimed the delivery).
    pub attempt: u32,
    /// The isolate's caches (`store::memo`): the runtime keeps one for the isolate's life, a
    /// native test makes its own.
    pub memo: &'a Memo,
}

/// The configured services' clients, built in one place for every handler.
impl<'a, P: HttpPort, C: ClaimPort, K: KvPort> Ctx<'a, P, C, K> {
    /// Linear and its team, when configured.
    pub fn linear(&self) -> Option<(Linear<'a, P>, &'a str)> {
        self.config.linear.as_ref().map(|c| {
            (Linear { port: self.port, api_url: c.api_url.clone(), api_key: c.api_key.clone() }, c.team_id.as_str())
        })
    }

    /// GitHub on `GITHUB_REPO`, when configured.
    pub fn github(&self) -> Option<GitHub<'a, P>> {
        self.config.github.as_ref().map(|c| GitHub {
            port: self.port,
            api_base: c.api_base.clone(),
            token: c.token.clone(),
            repo: c.repo.clone(),
        })
    }

    /// The client of the tracker holding `issue`, when that tracker is configured. A GitHub issue is
    /// reached in the repository its URL names when that is `GITHUB_REPO` or a `REPO_ROUTES`
    /// repository (issue 16.6), else in `GITHUB_REPO`.
    pub fn tracker(&self, issue: &bugbot_shared::tracked::IssueRef) -> Option<Tracker<'a, P>> {
        match issue.tracker {
            bugbot_shared::tracked::Tracker::Linear => {
                self.linear().map(|(client, team_id)| Tracker::Linear { client, team_id })
            }
            bugbot_shared::tracked::Tracker::GitHub => {
                let mut github = self.github()?;
                if let Some(repo) = bugbot_shared::routes::repo_of_issue_url(&issue.url)
                    && self.config.routes.knows(&repo)
                {
                    github.repo = repo;
                }
                Some(Tracker::GitHub(github))
            }
        }
    }

    /// Discord's API (the bot token may be unset: calls needing it then fail).
    pub fn discord(&self) -> Discord<'a, P> {
        let c = &self.config.discord;
        Discord { port: self.port, api_base: c.api_base.clone(), bot_token: c.bot_token.clone() }
    }
}

/// Job status records, in the ledger (`store::objects::stats`).
impl<P: HttpPort, C: ClaimPort, K: KvPort> Ctx<'_, P, C, K> {
    /// Records a step of `job` now (the runtime records its end with the rest of its batch).
    pub async fn record_job(
        &self,
        job: &Job,
        state: JobState,
        reason: Option<String>,
        links: Vec<String>,
        attempts: u32,
        now_ms: u64,
    ) -> worker::Result<()> {
        let status = crate::store::job_status_of(job, state, reason, links, attempts, now_ms);
        crate::store::record_jobs(self.claims, vec![status]).await
    }

    pub async fn job_status(&self, job_id: &str) -> Option<bugbot_shared::status::JobStatus> {
        crate::store::job_status(self.claims, self.state, job_id).await
    }

    /// Moves an existing job's status record on (a fix run reports back on the job that asked for
    /// it). Best effort.
    pub async fn advance_job(&self, job_id: &str, state: JobState, reason: Option<String>, links: Vec<String>) {
        if let Some(mut record) = self.job_status(job_id).await {
            record.state = state;
            record.reason = reason;
            record.links = links;
            record.updated_at_ms = self.now_ms;
            let _ = crate::store::record_jobs(self.claims, vec![record]).await;
        }
    }
}

impl<P: HttpPort, C: ClaimPort, K: KvPort> Clone for Ctx<'_, P, C, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: HttpPort, C: ClaimPort, K: KvPort> Copy for Ctx<'_, P, C, K> {}

impl<P: HttpPort, C: ClaimPort, K: KvPort> std::fmt::Debug for Ctx<'_, P, C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("now_ms", &self.now_ms)
            .field("message_id", &self.message_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Claims the job's delivery for this queue message: `Ok(attempt)` to go ahead, or the outcome to
/// return at once (a copy already processed, or being processed by another message).
pub async fn begin_delivery<P: HttpPort, C: ClaimPort, K: KvPort>(
    ctx: &Ctx<'_, P, C, K>,
    job: &Job,
) -> Result<u32, Outcome> {
    let begin = DeliveryOp::Begin {
        holder: ctx.message_id.to_owned(),
        now_ms: ctx.now_ms,
        lease_ms: ctx.config.claim_lease_ms,
    };
    match ctx.claims.delivery(job.id.as_str(), &begin).await {
        Ok(DeliveryReply::Proceed { attempt }) => Ok(attempt),
        Ok(DeliveryReply::Duplicate { outcome }) => {
            Err(Outcome::done(JobState::Duplicate, format!("delivery already processed ({outcome})")))
        }
        Ok(DeliveryReply::Busy { lease_until_ms }) => {
            let wait = lease_until_ms.saturating_sub(ctx.now_ms).div_ceil(1_000);
            Err(Outcome::Retry {
                delay_secs: u32::try_from(wait.clamp(1, 60)).unwrap_or(60),
                reason: "another copy of this delivery is being processed".into(),
                attempt: 1,
            })
        }
        Ok(DeliveryReply::Finished) | Err(_) => Err(settle::failure(
            &ctx.config.retry,
            ctx.jitter,
            1,
            StepError::Platform("claim store unavailable".into()),
        )),
    }
}
