//! Lenient payload types of every source bugbot listens to. Unknown fields are ignored and
//! missing ones default, so an upstream addition never turns into a rejected delivery.

pub mod discord;
pub mod glitchtip;
pub mod sentry;
