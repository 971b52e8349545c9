//! Tests of the Kubernetes adapter against an in-process fake API server that speaks the real
//! list/watch/patch protocol to the real kube-rs client.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // test code

mod adapter;
mod fake_api;
mod fake_api_selftest;
mod provision;
