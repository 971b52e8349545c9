//! The gateway data plane: listeners, TLS, HTTP/1.1, HTTP/2, h2c, gRPC, TCP and UDP proxying.
//!
//! A [`Gateway`] serves an [`Ir`](gateway_core::ir::Ir) compiled by `gateway-core`.
//! [`Gateway::apply`] reconciles the sockets with a new Ir: it binds new addresses, stops
//! accepting on removed ones (their open connections drain within a deadline), leaves the
//! others alone, and swaps each socket's routing, certificates and backends atomically. Each
//! HTTP request reads the configuration with one atomic load when its head arrives (each TCP
//! connection, TLS handshake and UDP session when it starts), so a reload reaches open
//! keep-alive and HTTP/2 connections at their next request and never cuts what is in
//! flight. What `apply` could not do (a port it could not bind, a certificate refused) comes
//! back as an [`ApplyReport`], which [`ApplyReport::merge_into`] folds into compile's status.
//!
//! Operations: [`Gateway::metrics`] returns the Prometheus metrics ([`metrics`]),
//! [`Gateway::readiness`] says whether the gateway should get traffic, and [`admin`] serves
//! both with the configuration and status on a socket of its own, when the embedder starts it.
//!
//! The library starts no runtime and installs no global allocator or logger: the embedding
//! binary owns those.
#![forbid(unsafe_code)]

pub mod admin;
mod config;
mod error;
mod http;
mod l4;
mod listener;
pub mod metrics;
mod observed;
mod report;
mod runtime;
mod shared;
mod tls;

pub use config::{GatewayConfig, HttpLimits, L4Limits, ListenerConfig, TlsLimits};
pub use error::Error;
pub use metrics::Metrics;
pub use report::{ApplyReport, BindFailure, IssueKind, ListenerIssue, verify};
pub use runtime::{BoundSocket, Gateway, Readiness};
/// Parsers of untrusted input (the ClientHello, the `traceparent` header, backend
/// certificates), for the fuzz targets.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http::{RequestFraming, valid_traceparent};
    pub use crate::tls::fuzzing::{ClientHello, ClientHelloError, parse_client_hello, uri_names};
}
