//! clamd's protocol on the agent (opt-in, `[agent.clamd]`), so existing clamd clients
//! (clamdscan, python3-pyclamd, mail filters, Nextcloud's antivirus app) scan with vigil
//! unchanged: PING, VERSION, VERSIONCOMMANDS, SCAN, CONTSCAN, MULTISCAN, ALLMATCHSCAN,
//! INSTREAM, FILDES, STATS, IDSESSION/END, RELOAD (a no-op: the agent swaps databases itself)
//! and SHUTDOWN (refused), in the `z`, `n` and bare forms, with clamd's reply lines.
//!
//! [`protocol`] parses commands (no I/O, fuzzed); [`conn`] frames them off a socket with
//! deadlines; [`server`] listens on a Unix socket and/or TCP and answers.
//!
//! # Security
//!
//! The model is the scan service's (`vigil_scan_core::service`). On the Unix socket, path
//! commands run with the peer's rights ([`crate::service::peer`]): a peer gets "Access
//! denied" wherever it could not read the file itself. TCP carries no credentials, so path
//! commands are refused there unless `tcp_path_scans = true`, which runs them with the agent's
//! rights: anyone who can connect can then learn whether any file the agent can read is
//! infected. The TCP listener binds only loopback addresses unless `allow_remote = true`
//! (clamd's protocol has no authentication or encryption). Every read has a deadline (idle
//! time, whole-command time, whole-stream time), commands and streams are bounded, and
//! connections are capped, so a silent, slow or hostile client cannot hang the agent.

pub mod conn;
pub mod protocol;
mod server;

pub use protocol::{parse_command, Command, Form, ProtocolError, Request, ScanMode};
pub use server::{
    bind, run, serve, version, ClamdConfig, ClamdError, Listeners, DEFAULT_STREAM_MAX_LENGTH,
};
