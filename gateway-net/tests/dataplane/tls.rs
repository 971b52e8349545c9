//! Tests of the tls data plane (filled by its issue).
