//! The places findings go, one module per `[[outputs]]` type, each a [`crate::Sink`].

mod aws;
pub mod eventbridge;
pub mod securityhub;
pub mod sns;
