//! # bugbot end-to-end harness
//!
//! Faithful fakes of the third-party HTTP APIs bugbot talks to, and a harness that runs the real
//! gateway and consumer Workers in workerd (through Miniflare) against them.

pub mod anthropic;
