//! vigil-scan-core: the embedded scan engine (to come in issue 4).
//!
//! Input: database bytes and trusted public keys; it verifies them through `vigil-format`
//! and builds the matchers (yara-x for YARA rules, one automaton for body signatures, hash
//! tables, allowlists). Output: findings per scanned file. It must never use an engine built
//! from an unverified or partially loaded database. Neighbours: `vigil-format` below it, the
//! updater's agent and the `vigil-scan` CLI above it.
