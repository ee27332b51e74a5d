//! vigil-unpack: what a file is, by its content, and what is inside it.
//!
//! Input: the bytes of one object or of a member extracted from another (hostile, always).
//! [`detect`] names its [`FileType`] from magic numbers and structure, never from a file name;
//! [`extract`] opens a container type and hands each member to a [`Sink`], which decides how
//! much more may be extracted (its budget) and whether to go on. Output: members, and what
//! could not be read (encrypted, over budget, broken), reported to the sink rather than
//! guessed at. Neighbours: `vigil-scan-core` above, whose scanner drives the recursion, applies
//! ClamAV's limits and matches every layer; nothing below but the decoders.
//!
//! Every decoder is pure Rust (memory-safe against hostile archives) and every expansion is
//! bounded by the sink's budget before it is allocated, so a zip bomb costs at most the budget.

pub mod bounded;
pub mod filetype;
mod formats;
pub mod sink;

pub use filetype::{detect, FileType};
pub use sink::{Sink, Stop};

/// Opens `data` as a container of type `ft` and hands its members to `sink`. Types that are
/// not containers yield nothing. A broken container yields what could be read before the
/// break, then [`Sink::corrupt`]. `Err(Stop)` only when the sink asked to stop.
///
/// A decoder that panics on some input nobody foresaw (the third-party ones included: damaged
/// cabinets made `cab` index out of bounds) is contained here, at its own layer, and reported
/// as a broken container: the scan of everything else goes on, and a scanner running as root
/// never dies on a file.
pub fn extract(ft: FileType, data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(ft, data, sink))) {
        Ok(r) => r,
        Err(_) => {
            sink.corrupt(&format!("{}: the decoder failed on this file", ft.name()));
            Ok(())
        }
    }
}

fn dispatch(ft: FileType, data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    use formats::*;
    match ft {
        FileType::Zip => zip::extract(data, sink),
        FileType::Gzip => compressed::gzip(data, sink),
        FileType::Bzip2 => compressed::bzip2(data, sink),
        FileType::Xz => compressed::xz(data, sink),
        FileType::Zstd => compressed::zstd(data, sink),
        FileType::Tar => tar::extract(data, sink),
        FileType::SevenZip => sevenz::extract(data, sink),
        FileType::Cpio => cpio::extract(data, sink),
        FileType::Cab => cab::extract(data, sink),
        FileType::Mail => mail::extract(data, sink),
        FileType::Pdf => pdf::extract(data, sink),
        FileType::Ole2 => ole2::extract(data, sink),
        FileType::Rtf => rtf::extract(data, sink),
        FileType::BinHex => binhex::extract(data, sink),
        FileType::Szdd => szdd::extract(data, sink),
        FileType::Tnef => tnef::extract(data, sink),
        FileType::Html => html::extract(data, sink),
        FileType::Sis => sis::extract(data, sink),
        FileType::Chm => chm::extract(data, sink),
        FileType::Arj => arj::extract(data, sink),
        // Executables and unknown data: self-extracting archives and installers carry a
        // container after their code (ClamAV scans for embedded CAB, ZIP, 7z the same way).
        FileType::Pe | FileType::Elf | FileType::Unknown => embedded::extract(data, sink),
        FileType::MachO | FileType::Text => Ok(()),
    }
}
