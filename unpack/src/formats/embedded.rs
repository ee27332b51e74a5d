//! Archives inside executables and unknown data: self-extracting archives, installers and
//! droppers put a CAB, ZIP or 7z after their own code. As ClamAV does, look for each format's
//! header anywhere past the start, check that it is plausible, and open the archive from there.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use memchr::memmem;

use crate::{Sink, Stop};

/// CAB headers tried per file (an installer may carry several cabinets).
const MAX_CABS: usize = 8;

/// The markers each format's search starts from, found in one pass: most executables hold
/// none, and then none of the searches below runs.
const MARKERS: [&[u8]; 6] = [
    b"MSCF\0\0\0\0",
    b"PK\x03\x04",
    b"7z\xbc\xaf\x27\x1c",
    super::nsis::SIGNATURE,
    b"InstallShield\0",
    super::autoit::MARKER,
];
const CAB: usize = 0;
const ZIP: usize = 1;
const SEVENZ: usize = 2;
const NSIS: usize = 3;
const ISHIELD: usize = 4;
const AUTOIT: usize = 5;

// Leftmost, not overlapping: that search runs the SIMD prefilter over bytes that start no
// marker (the markers do not overlap one another).
static FINDER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build(MARKERS)
        .ok()
});

/// Which markers occur in `data` (all, should the automaton be unavailable).
fn present(data: &[u8]) -> [bool; 6] {
    let Some(ac) = FINDER.as_ref() else {
        return [true; 6];
    };
    let mut seen = [false; 6];
    for m in ac.find_iter(data) {
        seen[m.pattern().as_usize()] = true;
        if seen.iter().all(|&s| s) {
            break;
        }
    }
    seen
}

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    if data.len() < 64 {
        return Ok(());
    }
    let seen = present(&data[1..]);
    let body = &data[1..];
    if seen[CAB] {
        for off in memmem::find_iter(body, b"MSCF\0\0\0\0")
            .map(|o| o + 1)
            .filter(|&o| plausible_cab(&data[o..]))
            .take(MAX_CABS)
        {
            super::cab::extract(&data[off..], sink)?;
        }
    }
    // A zip's own central directory names every entry: the first local header is enough, and
    // opening at later ones would hand out the same members again.
    if seen[ZIP] {
        if let Some(off) = memmem::find(body, b"PK\x03\x04").map(|o| o + 1) {
            if plausible_zip(data) {
                super::zip::extract(&data[off..], sink)?;
            }
        }
    }
    if seen[SEVENZ] {
        if let Some(off) = memmem::find(body, b"7z\xbc\xaf\x27\x1c").map(|o| o + 1) {
            super::sevenz::extract(&data[off..], sink)?;
        }
    }
    if seen[NSIS] {
        super::nsis::extract(data, sink)?;
    }
    // InstallShield also appends files to a PE without a marker the search could see.
    if seen[ISHIELD] || data.starts_with(b"MZ") {
        super::ishield::extract(data, sink)?;
    }
    if seen[AUTOIT] {
        super::autoit::extract(data, sink)?;
    }
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
