//! Snapshot → Ir + Status.
