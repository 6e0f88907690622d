//! Integration tests for nooks live in `tests/tests/`; this library holds their shared helpers.
