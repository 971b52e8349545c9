//! Binaries composed from the gateway crates, as a user would compose their own.
//!
//! Run them with `cargo run --example NAME`. Each uses only the crates' public APIs.
