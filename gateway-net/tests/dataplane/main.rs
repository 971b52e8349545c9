//! Data-plane tests over real sockets on 127.0.0.1: real backends started in-process, real
//! clients, configurations compiled from real manifests.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // test code

mod backend_tls;
mod common;
mod http;
mod l4;
mod metrics;
mod reload;
mod tls;
