//! The per-request matching engine.
