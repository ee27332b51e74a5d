//! What can go wrong setting up the response to detections: the configuration, the ledger,
//! the outbox and the quarantine store.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RespondError {
    /// A key of `[findings]`, `[[actions]]` or `[quarantine]` is wrong; the message names the
    /// section and the key.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// An `[[outputs]]` entry, the outbox or an output's setup.
    #[error(transparent)]
    Output(#[from] vigil_outputs::OutputError),
    /// The quarantine store could not be opened.
    #[error("quarantine: {0}")]
    Quarantine(#[from] vigil_quarantine::QuarantineError),
    /// The ledger file could not be written.
    #[error("finding ledger {}: {cause}", path.display())]
    Ledger {
        path: PathBuf,
        cause: std::io::Error,
    },
}
