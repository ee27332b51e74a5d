//! The local scan service's server: clamd's role, on a Unix stream socket, run by the agent on
//! a thread of its own. The protocol (the message types, and the rules a server keeps) and the
//! client are `vigil_scan_core::service`'s, so a client needs nothing from this crate; the
//! security model is documented there too. [`serve`] runs the server on a listener from
//! [`bind`] (or [`run`] does both); [`peer`] runs each request with its client's rights.

pub mod peer;
mod server;

pub use server::{bind, run, serve, ServiceConfig, ServiceError};
