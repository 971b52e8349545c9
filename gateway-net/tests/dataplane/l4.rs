//! Tests of the l4 data plane (filled by its issue).
