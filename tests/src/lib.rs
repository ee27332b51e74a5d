//! vigil-tests: end-to-end tests across the vigil crates and, as the pipeline grows, across
//! real processes (build, publish, serve, update, scan). The tests live in `tests/`; this
//! library is empty on purpose.
