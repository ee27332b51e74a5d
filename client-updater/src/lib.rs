//! vigil-client-updater: the freshclam of vigil (to come in issue 6).
//!
//! Input: a repository URL or mirror and a trusted TUF root. Output: a verified database on
//! disk, installed atomically, with the previous one kept as last-known-good, and a hot-swapped
//! engine in the agent. It never activates a database it has not verified, loaded and
//! smoke-tested. Neighbours: `vigil-update-server` (or any static mirror) and `vigil-scan-core`.
