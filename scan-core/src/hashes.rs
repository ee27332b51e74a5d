//! Hash signatures and allowlists: exact digests plus file size, looked up after one hashing
//! pass that computes only the digests the database has signatures for, and only for files
//! whose size some signature names.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use vigil_format::sigs::{HashKind, HashSig};

/// Signatures with one digest: each an optional file size (None: any size) and a name.
type Entries = Vec<(Option<u64>, Arc<str>)>;

#[derive(Default)]
pub struct HashTable {
    map: HashMap<(HashKind, Vec<u8>), Entries>,
    sizes: HashSet<u64>,
    any_size: bool,
    kinds: HashSet<HashKind>,
}

impl HashTable {
    pub fn add(&mut self, sig: &HashSig) {
        match sig.size {
            Some(s) => {
                self.sizes.insert(s);
            }
            None => self.any_size = true,
        }
        self.kinds.insert(sig.kind);
        self.map
            .entry((sig.kind, sig.digest.clone()))
            .or_default()
            .push((sig.size, Arc::from(sig.name.as_str())));
    }

    pub fn len(&self) -> usize {
        self.map.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether a file of `size` bytes could match at all: lets the engine skip hashing.
    pub fn wants(&self, size: u64) -> bool {
        !self.map.is_empty() && (self.any_size || self.sizes.contains(&size))
    }

    pub fn kinds(&self) -> impl Iterator<Item = HashKind> + '_ {
        self.kinds.iter().copied()
    }

    pub fn lookup(&self, d: &Digests, size: u64) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        for (kind, digest) in d.iter() {
            if let Some(entries) = self.map.get(&(kind, digest.to_vec())) {
                out.extend(
                    entries
                        .iter()
                        .filter(|(s, _)| s.is_none_or(|s| s == size))
                        .map(|(_, n)| n.clone()),
                );
            }
        }
        out
    }
}

#[derive(Clone, Debug, Default)]
pub struct Digests {
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
    pub sha256: Option<[u8; 32]>,
}

impl Digests {
    fn iter(&self) -> impl Iterator<Item = (HashKind, &[u8])> {
        [
            self.md5.as_ref().map(|d| (HashKind::Md5, &d[..])),
            self.sha1.as_ref().map(|d| (HashKind::Sha1, &d[..])),
            self.sha256.as_ref().map(|d| (HashKind::Sha256, &d[..])),
        ]
        .into_iter()
        .flatten()
    }
}

/// Computes the requested digests in one pass over the data.
pub struct Hasher {
    md5: Option<Md5>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
}

impl Hasher {
    pub fn new(kinds: impl IntoIterator<Item = HashKind>) -> Self {
        let mut h = Self {
            md5: None,
            sha1: None,
            sha256: None,
        };
        for k in kinds {
            match k {
                HashKind::Md5 => h.md5 = Some(Md5::new()),
                HashKind::Sha1 => h.sha1 = Some(Sha1::new()),
                HashKind::Sha256 => h.sha256 = Some(Sha256::new()),
            }
        }
        h
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
    }

    pub fn finish(self) -> Digests {
        Digests {
            md5: self.md5.map(|h| h.finalize().into()),
            sha1: self.sha1.map(|h| h.finalize().into()),
            sha256: self.sha256.map(|h| h.finalize().into()),
        }
    }
}

pub fn digests(data: &[u8], kinds: impl IntoIterator<Item = HashKind>) -> Digests {
    let mut h = Hasher::new(kinds);
    h.update(data);
    h.finish()
}
