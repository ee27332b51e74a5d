//! Every extractor on arbitrary bytes: detection, then extraction as the detected type and as
//! a type the first byte picks (so each decoder sees hostile input, not only input that passed
//! its magic check), recursing a few layers with a small budget. Must never panic, hang or
//! allocate past the budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_unpack::{detect, extract, FileType, Sink, Stop};

const TYPES: &[FileType] = &[
    FileType::Unknown,
    FileType::Text,
    FileType::Pe,
    FileType::Elf,
    FileType::MachO,
    FileType::Zip,
    FileType::Gzip,
    FileType::Bzip2,
    FileType::Xz,
    FileType::Zstd,
    FileType::Tar,
    FileType::SevenZip,
    FileType::Cpio,
    FileType::Cab,
    FileType::Mail,
    FileType::Pdf,
    FileType::Ole2,
    FileType::Rtf,
    FileType::BinHex,
    FileType::Szdd,
    FileType::Tnef,
    FileType::Html,
    FileType::Sis,
    FileType::Chm,
    FileType::Arj,
];

/// Recurses up to depth 3 with a 1 MiB budget per member and at most 1,000 members.
struct Small {
    depth: usize,
    members: usize,
}

impl Sink for Small {
    fn budget(&self) -> u64 {
        1 << 20
    }
    fn member(&mut self, _name: &str, data: &[u8]) -> Result<(), Stop> {
        assert!(data.len() as u64 <= self.budget());
        self.members += 1;
        if self.members > 1000 {
            return Err(Stop);
        }
        if self.depth < 3 {
            self.depth += 1;
            let r = extract(detect(data), data, self);
            self.depth -= 1;
            r?;
        }
        Ok(())
    }
    fn encrypted(&mut self, _name: &str) {}
    fn too_large(&mut self, _name: &str) {}
    fn corrupt(&mut self, _why: &str) {}
    fn anomaly(&mut self, _heuristic: &'static str) {}
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Small {
        depth: 0,
        members: 0,
    };
    let _ = extract(detect(data), data, &mut sink);
    if let Some((&pick, rest)) = data.split_first() {
        let ft = TYPES[usize::from(pick) % TYPES.len()];
        let mut sink = Small {
            depth: 0,
            members: 0,
        };
        let _ = extract(ft, rest, &mut sink);
    }
});
