//! Reading a decoder's output up to a budget: the one place expansion is bounded.

use std::io::{self, Read};

/// What [`read_bounded`] got.
#[derive(Debug)]
pub enum Bounded {
    /// The whole stream, within budget.
    Whole(Vec<u8>),
    /// More than the budget: nothing kept.
    Over,
    /// The decoder failed after `got` bytes (what it produced is kept: it is scanned).
    Broken(Vec<u8>, io::Error),
}

/// Reads `r` to its end if it fits in `budget` bytes. Memory grows with what is read, never
/// with what a header claims.
pub fn read_bounded(r: impl Read, budget: u64) -> Bounded {
    let mut out = Vec::new();
    match r.take(budget.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > budget => Bounded::Over,
        Ok(_) => Bounded::Whole(out),
        Err(e) => Bounded::Broken(out, e),
    }
}

/// Hands a decoded member to the sink by how reading it went.
pub fn deliver(sink: &mut dyn crate::Sink, name: &str, got: Bounded) -> Result<(), crate::Stop> {
    match got {
        Bounded::Whole(data) => sink.member(name, &data),
        Bounded::Over => {
            sink.too_large(name);
            Ok(())
        }
        Bounded::Broken(data, e) => {
            if !data.is_empty() {
                sink.member(name, &data)?;
            }
            sink.corrupt(&format!("{name}: {e}"));
            Ok(())
        }
    }
}
