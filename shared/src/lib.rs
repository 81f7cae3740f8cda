//! # bugbot-shared
//!
//! The pure logic of bugbot: no I/O, no clock, no `worker` dependency, so all of it is tested
//! natively and compiled unchanged into both Workers.
//!
//! # Layout
//! - [`verify`] — request authentication: Discord Ed25519, Sentry HMAC-SHA256, URL tokens.
//! - [`source`] — lenient payload types of every source (Discord, Sentry, GlitchTip).
//! - [`claim`] — exactly-once decisions (deliveries, fingerprints), applied by a Durable Object.
//! - [`command`] — the `/bugbot` command model, parsed from a Discord interaction.
//! - [`job`] — the versioned queue contract between gateway and consumer.
//! - [`ingress`] — the gateway's whole decision (route → verify → parse → reply + jobs), pure.
//! - [`executor`] — the wire contract between the consumer and the fix executor.
//! - [`status`] — the job status record kept in KV.
//! - [`log`] — the one-JSON-line log record every component prints.

pub mod claim;
pub mod command;
pub mod executor;
pub mod ingress;
pub mod job;
pub mod log;
pub mod source;
pub mod status;
pub mod verify;
