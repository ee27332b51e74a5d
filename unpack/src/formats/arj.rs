//! arj: not unpacked yet.

use crate::{Sink, Stop};

pub fn extract(_data: &[u8], _sink: &mut dyn Sink) -> Result<(), Stop> {
    Ok(())
}
