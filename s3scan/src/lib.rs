//! vigil-s3scan: scanning objects in S3 (and S3-compatible stores) with the embedded engine.
//!
//! Input: a loaded [`vigil_scan_core::Engine`], S3 and SQS clients, and either a prefix
//! (`s3://bucket/prefix`: [`oneoff`] scans it, [`rescan`] re-scans what an older database
//! tagged) or an SQS queue of S3 event notifications ([`worker`]: the native S3 shape and the
//! EventBridge-to-SQS shape, [`event`]). Output: per object a [`Verdict`], and in worker and
//! rescan mode the object's tags ([`tags`]: GuardDuty's values under a configurable key, the
//! database version beside them), a move to a quarantine bucket ([`quarantine`]) and findings
//! through `vigil-respond`'s outbox ([`findings`]). Bodies are streamed into
//! `Scanner::scan_reader` on blocking threads ([`stream`]), so memory stays bounded whatever
//! the object's size. The workers keep no state: SQS is the distributed engine.
//! Neighbours: `vigil-scan-core` below; the `vigil-scan` program (`s3://` paths, `s3-worker`)
//! above.

pub mod clients;
pub mod error;
pub mod event;
pub mod findings;
pub mod location;
pub mod object;
pub mod oneoff;
pub mod pipeline;
pub mod quarantine;
pub mod rescan;
pub mod stream;
pub mod tags;
pub mod worker;

pub use error::S3ScanError;
pub use event::ObjectRef;
pub use location::S3Url;
pub use object::{ScanSettings, Scanned, Verdict};
pub use tags::{ScanStatus, TagSettings};
