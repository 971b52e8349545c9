//! Unit tests of compile rules, one per spec rule; the golden suite lives in `tests/`.
