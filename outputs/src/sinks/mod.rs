//! The places findings go, one module per output type, each a [`crate::Sink`].

mod aws;
pub mod eventbridge;
pub mod http;
pub mod jsonl;
pub mod securityhub;
pub mod slack;
pub mod sns;
pub mod webhook;
