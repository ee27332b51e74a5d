//! vigil-diskimage on arbitrary bytes: the partition-table parser (GPT with its CRCs and
//! backup, MBR with its EBR chain) and, past it, the volume probe, ext4-view's loading and a
//! bounded walk that reads every file. None may panic, loop or allocate without bound.
#![no_main]

use std::io::Read;
use std::ops::ControlFlow;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vigil_diskimage::{table, Image, WalkLimits, Walked};

fuzz_target!(|data: &[u8]| {
    let bytes = data.to_vec();
    let _ = table::read(&bytes);
    let Ok(image) = Image::from_source(Arc::new(bytes)) else {
        return;
    };
    let limits = WalkLimits {
        max_depth: 16,
        max_entries: 10_000,
    };
    for volume in &image.volumes {
        let Ok(fs) = volume.open() else { continue };
        let _ = fs.walk(&limits, &mut |w| {
            if let Walked::File { path, .. } = w {
                if let Ok(f) = fs.open_file(&path) {
                    let _ = std::io::copy(&mut f.take(1 << 20), &mut std::io::sink());
                }
            }
            ControlFlow::Continue(())
        });
    }
});
