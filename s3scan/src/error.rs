//! Errors that stop a whole run (a prefix that cannot be listed, a queue that cannot be read);
//! one object's failure is a [`crate::Verdict`], not an error.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum S3ScanError {
    #[error("{0:?} is not an S3 URL (s3://BUCKET[/PREFIX])")]
    BadUrl(String),
    #[error("listing {url}: {message}")]
    List { url: String, message: String },
    #[error("SQS queue {queue}: {message}")]
    Queue { queue: String, message: String },
    #[error("{0}")]
    Setup(String),
}
