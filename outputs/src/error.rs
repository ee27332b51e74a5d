//! What can go wrong configuring, queueing and delivering findings.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    /// An `[[outputs]]` entry (1-based) of the config file is wrong.
    #[error("{}: [[outputs]] entry {entry}: {message}", path.display())]
    Config {
        path: PathBuf,
        entry: usize,
        message: String,
    },
    /// An output could not be set up (a secret file unreadable, an AWS client without a region).
    #[error("output {name:?}: {message}")]
    Setup { name: String, message: String },
    /// The outbox directory or one of its files.
    #[error("outbox {}: {cause}", path.display())]
    Outbox {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// An outbox file that is not what it should be (foreign, or damaged beyond its torn tail).
    #[error("outbox {}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
}
