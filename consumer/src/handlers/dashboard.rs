//! The status dashboard, `GET /admin/dashboard` (authenticated by [`crate::handlers::admin`]): recent jobs,
//! tracked issues, dead letters, configured integrations and the per-day counters, read from the
//! ledger (`StatsStore`) and KV and rendered by [`bugbot_shared::dashboard`] as one self-contained page.
//!
//! The ledger lists jobs and issues newest first. KV lists (dead letters, and records kept from
//! before the ledger listed jobs and issues) are by key, not by time: the page reads at most
//! [`LIST_LIMIT`] records of each kind and sorts those, which is exact for small installs and a
//! sample for big ones (it says so).

use crate::store::ports::ClaimPort as _;
use bugbot_shared::container;
use bugbot_shared::dashboard::{DashboardModel, DeadLetterRow, Integration, IssueRow, render};
use bugbot_shared::status::JobStatus;
use serde::de::DeserializeOwned;
use worker::kv::KvStore;
use worker::{Date, Env, Headers, Request, Response};

use crate::config::{Config, binding};
use crate::store::STATE_KV;
use crate::store::{DeadLetter, IssueRecord};

/// Records read per kind (each is one KV read; Workers allow 1000 per invocation).
pub const LIST_LIMIT: u64 = 50;
/// Days in the chart.
pub const CHART_DAYS: u64 = 14;

async fn records<T: DeserializeOwned>(kv: &KvStore, prefix: &str) -> worker::Result<(Vec<T>, bool)> {
    let list = kv.list().prefix(prefix.to_owned()).limit(LIST_LIMIT).execute().await?;
    let mut out = Vec::with_capacity(list.keys.len());
    for key in &list.keys {
        if let Ok(Some(record)) = kv.get(&key.name).json::<T>().await {
            out.push(record);
        }
    }
    Ok((out, !list.list_complete))
}

fn integrations(env: &Env, config: &Config) -> Vec<Integration> {
    let set = |name: &str| binding(env, name).is_some();
    vec![
        Integration {
            name: "Linear",
            configured: config.linear.is_some(),
            detail: config.linear.as_ref().map(|l| format!("team {}", l.team_id)),
        },
        Integration {
            name: "GitHub",
            configured: config.github.is_some(),
            detail: config.github.as_ref().map(|g| g.repo.clone()),
        },
        Integration {
            name: "Discord bot",
            configured: config.discord.bot_token.is_some(),
            detail: config.discord.alerts_channel_id.as_ref().map(|c| format!("alerts in channel {c}")),
        },
        Integration {
            name: "Daily digest",
            configured: config.discord.bot_token.is_some()
                && (set("DIGEST_CHANNEL_ID") || config.discord.alerts_channel_id.is_some()),
            detail: binding(env, "DIGEST_CHANNEL_ID").map(|c| format!("channel {c}")),
        },
        Integration { name: "PostHog", configured: set("POSTHOG_API_KEY") && set("POSTHOG_PROJECT_ID"), detail: None },
        Integration {
            name: "Fix executor",
            configured: (set("EXECUTOR_URL") || env.durable_object(container::BINDING).is_ok())
                && set("EXECUTOR_SECRET"),
            detail: binding(env, "EXECUTOR_URL").or_else(|| {
                env.durable_object(container::BINDING)
                    .is_ok()
                    .then(|| "Cloudflare Containers (ExecutorContainer)".to_owned())
            }),
        },
    ]
}

/// `GET /admin/dashboard`.
pub async fn serve(_req: &Request, env: &Env, config: &Config) -> worker::Result<Response> {
    let now = Date::now().as_millis();
    let kv = env.kv(STATE_KV)?;
    let claims = crate::store::objects::claims::Claims::new(env)?;
    let (mut jobs, mut jobs_cut) = claims.recent_jobs(LIST_LIMIT).await?;
    // Records KV still holds from before job records moved to the ledger.
    let (legacy, legacy_cut) = records::<JobStatus>(&kv, "job:").await?;
    jobs_cut |= legacy_cut;
    for status in legacy {
        if !jobs.iter().any(|j| j.job_id == status.job_id) {
            jobs.push(status);
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.updated_at_ms));
    // The ledger's issue list, and the records KV still holds from before issues moved out of it.
    let (mut issues, mut issues_cut) = claims.recent_issues(LIST_LIMIT).await?;
    let (legacy, legacy_cut) = records::<IssueRecord>(&kv, crate::store::keys::ISSUE_PREFIX).await?;
    issues_cut |= legacy_cut;
    for r in legacy {
        if issues.iter().any(|i| i.fingerprint == r.fingerprint) {
            continue;
        }
        let links = r.tracked.urls();
        issues.push(IssueRow {
            fingerprint: r.fingerprint,
            title: r.title,
            level: r.level,
            project: r.project,
            source: r.source,
            occurrences: r.occurrences,
            last_seen_ms: r.last_seen_ms,
            links,
        });
    }
    issues.sort_by_key(|i| std::cmp::Reverse(i.last_seen_ms));
    let (letters, letters_cut) = records::<DeadLetter>(&kv, crate::store::keys::DEAD_LETTER_PREFIX).await?;
    let mut dead_letters: Vec<DeadLetterRow> = letters
        .into_iter()
        .map(|l| DeadLetterRow { job_id: l.job_id, kind: l.kind, reason: l.reason, dead_at_ms: l.dead_at_ms })
        .collect();
    dead_letters.sort_by_key(|l| std::cmp::Reverse(l.dead_at_ms));
    // The chart is optional: a stats store hiccup leaves it empty rather than failing the page.
    let days = crate::store::objects::stats::load_days(&claims, now, CHART_DAYS).await.unwrap_or_default();
    let model = DashboardModel {
        generated_at_ms: now,
        jobs,
        issues,
        dead_letters,
        integrations: integrations(env, config),
        days,
        truncated: jobs_cut || issues_cut || letters_cut,
    };
    let headers = Headers::new();
    headers.set("content-type", "text/html; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    headers.set("referrer-policy", "no-referrer")?;
    headers.set("x-frame-options", "DENY")?;
    // Nothing but the inline styles may load or run.
    headers.set("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")?;
    Ok(Response::builder().with_status(200).with_headers(headers).fixed(render(&model).into_bytes()))
}

/// The `?token=` of a browser's `GET /admin/dashboard` (a bearer header is awkward in a browser).
/// Only for that page: every other admin route needs the header.
pub fn query_token(req: &Request) -> Option<String> {
    if req.method() != worker::Method::Get || req.path().trim_end_matches('/') != "/admin/dashboard" {
        return None;
    }
    let url = req.url().ok()?;
    url.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}
