//! Archives inside executables and unknown data: self-extracting archives, installers and
//! droppers put a CAB, ZIP or 7z after their own code. As ClamAV does, look for each format's
//! header anywhere past the start, check that it is plausible, and open the archive from there.

use memchr::memmem;

use crate::{Sink, Stop};

/// CAB headers tried per file (an installer may carry several cabinets).
const MAX_CABS: usize = 8;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    if data.len() < 64 {
        return Ok(());
    }
    let body = &data[1..];
    for off in memmem::find_iter(body, b"MSCF\0\0\0\0")
        .map(|o| o + 1)
        .filter(|&o| plausible_cab(&data[o..]))
        .take(MAX_CABS)
    {
        super::cab::extract(&data[off..], sink)?;
    }
    // A zip's own central directory names every entry: the first local header is enough, and
    // opening at later ones would hand out the same members again.
    if let Some(off) = memmem::find(body, b"PK\x03\x04").map(|o| o + 1) {
        if plausible_zip(data) {
            super::zip::extract(&data[off..], sink)?;
        }
    }
    if let Some(off) = memmem::find(body, b"7z\xbc\xaf\x27\x1c").map(|o| o + 1) {
        super::sevenz::extract(&data[off..], sink)?;
    }
    // Installers whose data is their own format, not an archive's.
    super::nsis::extract(data, sink)?;
    super::ishield::extract(data, sink)?;
    super::autoit::extract(data, sink)?;
    Ok(())
}

/// A CAB header whose sizes fit the data and whose version is 1.3, as every cabinet's is.
fn plausible_cab(d: &[u8]) -> bool {
    let (Some(size), Some(files_at)) = (le32(d, 8), le32(d, 16)) else {
        return false;
    };
    d.get(24..26) == Some(&[3, 1]) && size as usize <= d.len() && files_at < size && size >= 36
}

/// A zip SFX ends with the end-of-central-directory record (within its comment's reach).
fn plausible_zip(d: &[u8]) -> bool {
    let tail = &d[d.len().saturating_sub(65_557)..];
    memmem::rfind(tail, b"PK\x05\x06").is_some() || memmem::rfind(tail, b"PK\x06\x06").is_some()
}

fn le32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(off..off + 4)?.try_into().ok()?))
}
