//! Hash signatures: `.hdb` and `.hsb` (detections), `.fp` and `.sfp` (allowlist), all
//! `HashString:FileSize:Name[:MinFL[:MaxFL]]`, with `*` for "any size". The digest is MD5,
//! SHA-1 or SHA-256, told apart by its length, in any of the four files: clamscan loads all
//! three from each (checked with ClamAV 1.x), even though its documentation names `.hdb` and
//! `.fp` for MD5 and `.hsb` and `.sfp` for SHA.

use std::fmt;

use super::{check_name, fields, parse_flevel, SigError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashKind {
    Md5,
    Sha1,
    Sha256,
}

impl HashKind {
    pub fn from_hex_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(HashKind::Md5),
            40 => Some(HashKind::Sha1),
            64 => Some(HashKind::Sha256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashKind::Md5 => "md5",
            HashKind::Sha1 => "sha1",
            HashKind::Sha256 => "sha256",
        }
    }
}

/// Which file a hash line came from: detection or allowlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashFile {
    Hdb,
    Hsb,
    Fp,
    Sfp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashSig {
    pub kind: HashKind,
    pub digest: Vec<u8>,
    /// `None` for `*`: any size.
    pub size: Option<u64>,
    pub name: String,
    pub min_flevel: Option<u32>,
    pub max_flevel: Option<u32>,
}

impl fmt::Display for HashSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", hex::encode(&self.digest))?;
        match self.size {
            Some(s) => write!(f, "{s}")?,
            None => write!(f, "*")?,
        }
        write!(f, ":{}", self.name)?;
        if let Some(min) = self.min_flevel {
            write!(f, ":{min}")?;
        }
        if let Some(max) = self.max_flevel {
            write!(f, ":{max}")?;
        }
        Ok(())
    }
}

/// Parses one line of a hash file. Every digest is accepted from every file kind, as clamscan
/// accepts it; `_file` stays so callers say where the line came from.
pub fn parse_hash_line(line: &str, _file: HashFile) -> Result<HashSig, SigError> {
    let f = fields(line);
    if !(3..=5).contains(&f.len()) {
        return Err(SigError::new(
            "hash/fields",
            1,
            format!(
                "expected HashString:FileSize:Name[:MinFL[:MaxFL]], found {} fields",
                f.len()
            ),
        ));
    }
    let (hcol, htext) = f[0];
    if let Some((i, c)) = htext.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(SigError::new(
            "hash/hex",
            hcol + i,
            format!("hash has non-hex character {c:?}"),
        ));
    }
    let kind = HashKind::from_hex_len(htext.len()).ok_or_else(|| {
        SigError::new(
            "hash/length",
            hcol,
            format!(
                "hash has {} hex digits, expected an MD5 (32), SHA-1 (40) or SHA-256 (64)",
                htext.len()
            ),
        )
    })?;
    let digest =
        hex::decode(htext).map_err(|_| SigError::new("hash/hex", hcol, "hash is not valid hex"))?;
    let (scol, stext) = f[1];
    let size = if stext == "*" {
        None
    } else {
        Some(stext.parse::<u64>().map_err(|_| {
            SigError::new(
                "hash/size",
                scol,
                format!("file size {stext:?} is not a number or `*`"),
            )
        })?)
    };
    if size == Some(0) {
        return Err(SigError::new(
            "hash/size",
            scol,
            "size 0: empty files are never scanned, and clamscan refuses the line",
        ));
    }
    let (ncol, name) = f[2];
    check_name("hash/name", ncol, name)?;
    let min_flevel = match f.get(3) {
        Some((c, s)) => Some(parse_flevel("hash/flevel", *c, s)?),
        None => None,
    };
    let max_flevel = match f.get(4) {
        Some((c, s)) => Some(parse_flevel("hash/flevel", *c, s)?),
        None => None,
    };
    Ok(HashSig {
        kind,
        digest,
        size,
        name: name.to_string(),
        min_flevel,
        max_flevel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn eicar_md5() {
        let s = parse_hash_line(
            "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature",
            HashFile::Hdb,
        )
        .expect("valid");
        assert_eq!(s.kind, HashKind::Md5);
        assert_eq!(s.size, Some(68));
    }

    /// clamscan loads MD5, SHA-1 and SHA-256 from `.hdb`, `.hsb`, `.fp` and `.sfp` alike.
    #[test]
    fn every_digest_loads_from_every_hash_file() {
        let lines = [
            ("44d88612fea8a8f36de82e1278abb02f", HashKind::Md5),
            ("3395856ce81f2b7382dee72602f798b642f14140", HashKind::Sha1),
            (
                "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
                HashKind::Sha256,
            ),
        ];
        for file in [HashFile::Hdb, HashFile::Hsb, HashFile::Fp, HashFile::Sfp] {
            for (digest, kind) in lines {
                let s = parse_hash_line(&format!("{digest}:68:Eicar-{}", kind.name()), file)
                    .expect("clamscan loads it");
                assert_eq!(s.kind, kind, "{file:?}");
            }
        }
    }

    #[test]
    fn errors_have_codes_and_columns() {
        let e = parse_hash_line("44d88612fea8a8f36de82e1278abb0:68:X", HashFile::Hsb).unwrap_err();
        assert_eq!((e.code, e.column), ("hash/length", 1));
        assert!(e.message.contains("30 hex digits"), "{}", e.message);
        let e =
            parse_hash_line("44d88612fea8a8f36de82e1278abb0zf:68:X", HashFile::Hdb).unwrap_err();
        assert_eq!((e.code, e.column), ("hash/hex", 31));
        let e =
            parse_hash_line("44d88612fea8a8f36de82e1278abb02f:6x:X", HashFile::Hdb).unwrap_err();
        assert_eq!((e.code, e.column), ("hash/size", 34));
        let e = parse_hash_line("44d88612fea8a8f36de82e1278abb02f:68", HashFile::Hdb).unwrap_err();
        assert_eq!(e.code, "hash/fields");
    }

    fn arb_sig() -> impl Strategy<Value = (HashSig, HashFile)> {
        (
            prop_oneof![
                Just(HashKind::Md5),
                Just(HashKind::Sha1),
                Just(HashKind::Sha256)
            ],
            any::<[u8; 32]>(),
            proptest::option::of(any::<u64>()),
            "[A-Za-z0-9._-]{1,30}",
            proptest::option::of((any::<u32>(), proptest::option::of(any::<u32>()))),
        )
            .prop_map(|(kind, bytes, size, name, fl)| {
                let len = match kind {
                    HashKind::Md5 => 16,
                    HashKind::Sha1 => 20,
                    HashKind::Sha256 => 32,
                };
                let file = if kind == HashKind::Md5 {
                    HashFile::Hdb
                } else {
                    HashFile::Sfp
                };
                let (min_flevel, max_flevel) = match fl {
                    Some((a, b)) => (Some(a), b),
                    None => (None, None),
                };
                (
                    HashSig {
                        kind,
                        digest: bytes[..len].to_vec(),
                        size,
                        name,
                        min_flevel,
                        max_flevel,
                    },
                    file,
                )
            })
    }

    proptest! {
        #[test]
        fn round_trip((sig, file) in arb_sig()) {
            prop_assert_eq!(parse_hash_line(&sig.to_string(), file).expect("parse"), sig);
        }

        #[test]
        fn never_panics(line in ".{0,120}") {
            let _ = parse_hash_line(&line, HashFile::Hsb);
        }
    }
}
