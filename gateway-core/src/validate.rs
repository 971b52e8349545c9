//! Checks the upstream CRDs enforce with their schema and CEL rules.
