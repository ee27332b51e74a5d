//! The seam between a format's extractor and the scanner that drives it: members go out, the
//! budget and the decision to stop come back.

/// The sink asked to stop: a limit was reached, the scan timed out, or it has seen enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop;

/// Where an extractor puts what it finds. Names are the member's own path inside its container
/// (`dir/file.exe`), or a synthetic one where the format has none (`gzip`, `part-2`).
pub trait Sink {
    /// Bytes the next member may expand to. Extractors stop decompressing a member past this
    /// and report it with [`Sink::too_large`] instead of allocating more.
    fn budget(&self) -> u64;
    /// One member's bytes. `Err(Stop)` ends the extraction.
    fn member(&mut self, name: &str, data: &[u8]) -> Result<(), Stop>;
    /// A member (or with `name` empty, the whole container) that is encrypted: not scanned.
    fn encrypted(&mut self, name: &str);
    /// A member that expands past [`Sink::budget`]: not scanned.
    fn too_large(&mut self, name: &str);
    /// The container is broken from some point on; what came before was handed out.
    fn corrupt(&mut self, why: &str);
    /// A structural trick worth a heuristic finding whatever the members hold, named as ClamAV
    /// names it (`Heuristics.Zip.OverlappingFiles`).
    fn anomaly(&mut self, heuristic: &'static str);
}
