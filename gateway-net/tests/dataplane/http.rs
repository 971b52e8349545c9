//! Tests of the http data plane (filled by its issue).
