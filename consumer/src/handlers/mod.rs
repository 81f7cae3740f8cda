//! One module per job kind (and the HTTP routes the consumer serves). Each handler takes a
//! [`Ctx`](crate::runtime::Ctx) and returns an [`Outcome`](crate::runtime::Outcome); the runtime settles it.

pub mod admin;
pub mod alert;
pub mod cloudwatch;
pub mod command;
pub mod component;
pub mod dashboard;
pub mod digest;
pub mod fix;
pub mod health;
pub mod interaction;
