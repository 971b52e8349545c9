//! The Gateway API model, its validation and compilation, and the request matching engine.
//!
//! Data flows one way: a [`ConfigSource`](source::ConfigSource) emits a [`Snapshot`](model::Snapshot);
//! [`compile`](compile::compile) turns it into an [`Ir`](ir::Ir) the data plane executes and a
//! [`Status`](status::Status) that says, with the upstream condition types and reasons, what was
//! accepted and what was not; the [`router`] answers, per request, which rule serves it.
//!
//! This crate does no I/O and has no networking or YAML dependency.
#![forbid(unsafe_code)]

pub mod compile;
pub mod ir;
pub mod model;
pub mod router;
pub mod source;
pub mod status;
pub mod validate;
