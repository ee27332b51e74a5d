//! Disk images for `vigil-scan --image`'s tests and benchmark: ext4 filesystems built from a
//! directory by `mkfs.ext4 -d` (e2fsprogs; neither root nor a mount is needed), placed into
//! GPT or MBR partitioned disks written by `vigil-diskimage`'s own writers (no `sfdisk`).

use std::path::Path;
use std::process::Command;

/// Builds an ext4 filesystem of `size` (mkfs's notation: `8M`) at `img` holding the tree at
/// `dir`. `false`, with a SKIP line, when mkfs.ext4 is not installed.
pub fn mkfs_ext4(dir: &Path, img: &Path, size: &str) -> bool {
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(dir)
        .arg(img)
        .arg(size)
        // Reproducible across e2fsprogs's defaults: no random hash seed surprises.
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIP: mkfs.ext4 is not installed (apt-get install e2fsprogs)");
            false
        }
        Err(e) => panic!("running mkfs.ext4: {e}"),
        Ok(o) => {
            assert!(
                o.status.success(),
                "mkfs.ext4 failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            true
        }
    }
}

/// 1 MiB before the first partition, as partitioning tools align.
pub const FIRST_LBA: u64 = 2048;

/// A GPT disk with each filesystem in `fss` in a partition of its own (named as given),
/// one after the other from LBA 2048.
pub fn gpt_disk(fss: &[(&[u8], &str)]) -> Vec<u8> {
    let total: u64 = fss.iter().map(|(f, _)| sectors(f)).sum();
    // Room for the backup GPT (33 sectors) after the last partition.
    let mut disk = vec![0u8; ((FIRST_LBA + total + 2048) * 512) as usize];
    let mut at = FIRST_LBA;
    let mut parts = Vec::new();
    for (fs, name) in fss {
        let n = sectors(fs);
        disk[(at * 512) as usize..(at * 512) as usize + fs.len()].copy_from_slice(fs);
        parts.push((at, at + n - 1, *name));
        at += n;
    }
    vigil_diskimage::gpt::write(&mut disk, &parts);
    disk
}

/// An MBR disk: `primary` in partition 1 (type 0x83) and `logical` in partition 5, inside an
/// extended partition (type 0x05) whose EBR chain holds it.
pub fn mbr_disk(primary: &[u8], logical: &[u8]) -> Vec<u8> {
    let (p, l) = (sectors(primary), sectors(logical));
    let ext_start = FIRST_LBA + p;
    // The EBR, then 63 sectors of gap (as fdisk leaves), then the logical partition.
    let ext_len = 63 + l;
    let mut disk = vec![0u8; ((ext_start + ext_len + 1) * 512) as usize];
    let put = |disk: &mut [u8], lba: u64, bytes: &[u8]| {
        disk[(lba * 512) as usize..(lba * 512) as usize + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut disk, FIRST_LBA, primary);
    put(&mut disk, ext_start + 63, logical);
    vigil_diskimage::mbr::write(
        &mut disk,
        &[
            (0x83, FIRST_LBA as u32, p as u32),
            (0x05, ext_start as u32, ext_len as u32),
        ],
    );
    let ebr = &mut disk[(ext_start * 512) as usize..(ext_start * 512 + 512) as usize];
    vigil_diskimage::mbr::write(ebr, &[(0x83, 63, l as u32)]);
    disk
}

fn sectors(b: &[u8]) -> u64 {
    (b.len() as u64).div_ceil(512)
}
