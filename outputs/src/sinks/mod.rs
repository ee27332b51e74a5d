//! The places findings go, one module per output type, each a [`crate::Sink`].

pub mod http;
pub mod jsonl;
pub mod slack;
pub mod webhook;

#[cfg(test)]
mod tests;
