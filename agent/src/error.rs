//! What stops the agent, with the exit code of its class: the updater's classes
//! (`vigil_client_updater::exit`) for the updater's failures and for configuration errors, and
//! a local failure for what goes wrong in this process (signals, the scan service's thread).

use std::path::PathBuf;

use thiserror::Error;
use vigil_client_updater::{exit, UpdateError};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The `[agent]` section (or a setting only the agent checks) is invalid.
    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// Loading the configuration or the keys, preparing the database directory.
    #[error(transparent)]
    Update(#[from] UpdateError),
    // `cause`, not `source`: the message includes it, and a source would print it twice in
    // an error chain.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("starting the scan service: {0}")]
    StartService(std::io::Error),
}

impl AgentError {
    /// The process exit code of this failure (the classes of `vigil_client_updater::exit`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config { .. } => exit::CONFIG,
            Self::Update(e) => e.exit_code(),
            Self::Signals(_) | Self::StartService(_) => exit::LOCAL,
        }
    }
}
