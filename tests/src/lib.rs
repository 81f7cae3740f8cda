//! # bugbot end-to-end harness
//!
//! Faithful fakes of the third-party HTTP APIs bugbot talks to, and a harness that runs the real
//! gateway and consumer Workers in workerd (through Miniflare) against them.
//!
//! # Layout
//! - [`wait`] — waiting for asynchronous effects: poll with a deadline, and how to assert an absence.
//! - [`workers`] — start both Workers with test configuration; wait for their logs and job status.
//! - [`stack`] — the fakes plus both Workers wired to them, for end-to-end tests.
//! - [`keys`] — per-run credentials and the signing Discord and Sentry do.
//! - [`local_executor`] — the real fix executor in process, with a seeded bare repository.
//! - [`anthropic`] — a fake Anthropic Messages API for the executor's Claude Code runs.
//! - [`fake`] — fake Linear, GitHub and Discord APIs (state, recorded requests, scripted failures)
//!   and `ReqwestPort`, the consumer's `HttpPort` for native tests.
//! - [`git_http`] — bare repositories over git's smart HTTP (`git http-backend`), for executors in
//!   containers.
//! - [`bench_evidence`] — `make bench`'s evidence scenario (enrichment and the context packet, natively).
//! - [`native`] — running the consumer's handlers natively: placeholder bindings, the clock, and the
//!   outbound request sequence their snapshots pin.
//! - [`docker`] — the Docker daemon, the executor image and its containers, for the container tests.

pub mod anthropic;
pub mod bench_evidence;
pub mod docker;
pub mod fake;
pub mod git_http;
pub mod keys;
pub mod local_executor;
pub mod native;
pub mod stack;
pub mod wait;
pub mod workers;
