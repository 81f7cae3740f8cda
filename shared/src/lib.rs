//! # bugbot-shared
//!
//! The pure logic of bugbot: no I/O, no clock, no `worker` dependency, so all of it is tested
//! natively and compiled unchanged into both Workers.
//!
//! # Layout
//! - [`verify`] — request authentication: Discord Ed25519, Sentry HMAC-SHA256, URL tokens.
//! - [`source`] — lenient payload types of every source (Discord, Sentry, GlitchTip).
//! - [`claim`] — exactly-once decisions (deliveries, fingerprints), applied by a Durable Object.
//! - [`caps`] — the daily auto-fix caps: a slot reserved before a run, charged or released after.
//! - [`confidence`] — the fix-confidence formula and the auto-fix policy.
//! - [`command`] — the `/bugbot` command model, parsed from a Discord interaction.
//! - [`job`] — the versioned queue contract between gateway and consumer.
//! - [`event`] — the normalized `ErrorEvent` and the `Signal` a delivery means.
//! - [`normalize`] — every source's payload into one `Signal` (fingerprints, in-app judgement).
//! - [`filter`] — which events become issues: minimum level, environments, projects, ignore patterns.
//! - [`report`] — issue titles and Markdown bodies, comments, labels, priority, the Discord alert.
//! - [`backoff`] — retry delays: exponential backoff with jitter, honoring `Retry-After`.
//! - [`ingress`] — the gateway's whole decision (route → verify → parse → reply + jobs), pure.
//! - [`executor`] — the wire contract between the consumer and the fix executor.
//! - [`container`] — the executor on Cloudflare Containers: its environment and idle policy.
//! - [`status`] — the job status record kept in KV.
//! - [`log`] — the one-JSON-line log record every component prints.
//! - [`references`] — Linear/GitHub/Sentry/PostHog references and emails found in a conversation.
//! - [`frames`] — stack frames of any event shape → repository paths.
//! - [`enrich`] — the latest event and issue details (REST API) merged into an alert that lacked them.
//! - [`packet`] — the `ContextPacket` and its Markdown and Discord renderings.
//! - [`runbook`] — runbooks (front matter or a pattern map) matching an error.
//! - [`authz`] — who may run which `/bugbot` command.
//! - [`policy`] — what bugbot may reach for someone: fix repositories, fix paths, code shown in Discord.
//! - [`commands_def`] — the command definitions registered with Discord.
//! - [`digest`] — daily counters, the day-over-day digest message and the `/bugbot stats` text.
//! - [`cloudwatch`] — `CloudWatch` Logs scans: `FilterLogEvents` types, the per-log-group cursor, grouping into error events.
//! - [`slack`] — Slack Events API deliveries: verification, the gateway's decision, messages → error events.
//! - [`stacktrace`] — stack traces in plain text (Python, Node.js, JVM, Rust) → frames.
//! - [`dashboard`] — the status page: HTML with an inline SVG chart, every untrusted string escaped.
//! - [`chatops`] — alert cards you can act on: buttons, versioned `custom_id`s, the fix modal.

pub mod authz;
pub mod backoff;
pub mod caps;
pub mod chatops;
pub mod claim;
pub mod cloudwatch;
pub mod command;
pub mod commands_def;
pub mod confidence;
pub mod container;
pub mod dashboard;
pub mod digest;
pub mod enrich;
pub mod event;
pub mod executor;
pub mod filter;
pub mod frames;
pub mod ingress;
pub mod job;
pub mod log;
pub mod normalize;
pub mod packet;
pub mod policy;
pub mod references;
pub mod report;
pub mod routes;
pub mod runbook;
pub mod slack;
pub mod source;
pub mod stacktrace;
pub mod status;
pub mod tracked;
pub mod verify;
