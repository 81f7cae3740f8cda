//! The consumer's Durable Objects and their clients: [`claims`] (exactly-once claims), [`stats`]
//! (per-day counters), [`executor_container`] (the executor on Cloudflare Containers).

pub mod claims;
pub mod executor_container;
pub mod stats;
