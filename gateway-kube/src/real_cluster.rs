//! Real-cluster suite.
