//! vigil-update-server: serves a vigil repository (TUF metadata, databases, deltas) read-only
//! over HTTP from a directory or an S3 bucket (to come in issue 5).
//!
//! Input: a repository store. Output: HTTP responses with ETags, ranges and cache headers.
//! It never serves a byte from outside the repository and never writes to it. Neighbours:
//! `vigil-build publish` writes the repository; `vigil-update` reads it.
