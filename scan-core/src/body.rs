//! Body signatures. Each signature is indexed by one 4-byte window of its longest literal run,
//! chosen to avoid bytes that are common in real files. The scan slides over the data once:
//! each position's 4 bytes are hashed into a bitmap that rejects almost every position with
//! one memory access; the rare survivors are looked up exactly, and each candidate is then
//! confirmed around the window: the rest of the literal run, forward from its end, backward
//! from its start (enumerating every possible start through gaps and alternatives), and the
//! offset rule on the start. Semantics follow ClamAV's (checked against clamscan by the parity
//! test in tests/).
//!
//! Why not one Aho-Corasick automaton over whole literal runs, as ClamAV does: at a million
//! signatures it takes minutes and gigabytes to build and scans at a few MB/s, while the window
//! index builds in about a second. Both stay selectable ([`Prefilter`]) so the scan bench
//! compares them on the same corpus.
//!
//! What each signature costs (the release gate's profile) is counted by
//! [`BodyMatcher::scan_counted`] into a [`BodyStats`]: the scan is generic over its counter, so
//! [`BodyMatcher::scan`] is compiled with a counter that does nothing and pays nothing for it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use vigil_format::sigs::{BodySig, Offset, Token, MIN_ANCHOR};

use crate::error::{BodyError, ScanError};

/// A pattern token with literal runs merged, so confirmation compares slices, not bytes.
#[derive(Clone, Debug)]
enum Tok {
    Lit(Vec<u8>),
    Nibble { value: u8, mask: u8 },
    Any(usize),
    Gap { min: usize, max: Option<usize> },
    Alt(Vec<Vec<u8>>),
    NotAlt { width: usize, options: Vec<Vec<u8>> },
}

fn lower(tokens: &[Token]) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::new();
    for t in tokens {
        match t {
            Token::Byte(b) => match out.last_mut() {
                Some(Tok::Lit(v)) => v.push(*b),
                _ => out.push(Tok::Lit(vec![*b])),
            },
            Token::AnyByte => match out.last_mut() {
                Some(Tok::Any(n)) => *n += 1,
                _ => out.push(Tok::Any(1)),
            },
            Token::Nibble { value, mask } => out.push(Tok::Nibble {
                value: *value,
                mask: *mask,
            }),
            Token::Gap { min, max } if max == &Some(*min) => out.push(Tok::Any(*min as usize)),
            Token::Gap { min, max } => out.push(Tok::Gap {
                min: *min as usize,
                max: max.map(|m| m as usize),
            }),
            Token::Alt {
                negated: false,
                options,
            } => out.push(Tok::Alt(options.clone())),
            Token::Alt {
                negated: true,
                options,
            } => out.push(Tok::NotAlt {
                width: options.first().map_or(0, Vec::len),
                options: options.clone(),
            }),
        }
    }
    out
}

struct Sig {
    name: Arc<str>,
    /// `.ndb` target type: 0 any file, else the type the file must have (1 PE, 6 ELF, 9 Mach-O).
    target: u32,
    offset: Offset,
    /// Tokens before the literal run, in pattern order (matched backwards from the run).
    pre: Vec<Tok>,
    /// The longest literal run: the part the prefilter finds.
    lit: Box<[u8]>,
    /// Tokens after the literal run.
    post: Vec<Tok>,
}

/// How candidate positions are found before confirmation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prefilter {
    /// One 4-byte window per signature, a hashed bitmap and an exact table (the default).
    #[default]
    Window,
    /// One Aho-Corasick automaton over every signature's whole literal run.
    AhoCorasick,
}

enum Finder {
    Window(WindowIndex),
    Ac {
        ac: AhoCorasick,
        /// Automaton pattern id -> signatures whose literal run it is.
        by_pattern: Vec<Vec<u32>>,
    },
}

/// Collects signatures one at a time, so a million parsed lines never sit in memory at once.
#[derive(Default)]
pub struct BodyMatcherBuilder {
    sigs: Vec<Sig>,
}

impl BodyMatcherBuilder {
    pub fn add(&mut self, s: &BodySig) -> Result<(), BodyError> {
        let (start, anchor) = s.anchor();
        if anchor.len() < MIN_ANCHOR {
            return Err(BodyError::NoAnchor {
                name: s.name.clone(),
                min: MIN_ANCHOR,
            });
        }
        let lit: Box<[u8]> = anchor
            .iter()
            .filter_map(|t| match t {
                Token::Byte(b) => Some(*b),
                _ => None,
            })
            .collect();
        self.sigs.push(Sig {
            name: Arc::from(s.name.as_str()),
            target: s.target,
            offset: s.offset.clone(),
            pre: lower(&s.pattern[..start]),
            post: lower(&s.pattern[start + anchor.len()..]),
            lit,
        });
        Ok(())
    }

    pub fn build(self, prefilter: Prefilter) -> Result<BodyMatcher, BodyError> {
        let finder = match prefilter {
            Prefilter::Window => Finder::Window(WindowIndex::new(&self.sigs)),
            Prefilter::AhoCorasick => {
                let mut patterns: Vec<&[u8]> = Vec::new();
                let mut ids: HashMap<&[u8], usize> = HashMap::new();
                let mut by_pattern: Vec<Vec<u32>> = Vec::new();
                for (i, s) in self.sigs.iter().enumerate() {
                    let id = *ids.entry(&s.lit).or_insert_with(|| {
                        patterns.push(&s.lit);
                        by_pattern.push(Vec::new());
                        patterns.len() - 1
                    });
                    by_pattern[id].push(i as u32);
                }
                let ac = AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::ContiguousNFA))
                    .build(&patterns)?;
                Finder::Ac { ac, by_pattern }
            }
        };
        Ok(BodyMatcher {
            sigs: self.sigs,
            finder,
        })
    }
}

pub struct BodyMatcher {
    sigs: Vec<Sig>,
    finder: Finder,
}

/// One confirmed body-signature match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyMatch {
    pub name: Arc<str>,
    pub offset: u64,
}

/// Where a scan's per-signature work is counted: nowhere ([`NoCount`], the normal scan) or in
/// a [`BodyStats`].
trait Counter {
    /// The prefilter named signature `si` at a position.
    fn candidate(&mut self, si: u32);
    /// ... and its whole literal run was there, so the tokens around it were checked.
    fn confirmation(&mut self, si: u32);
}

struct NoCount;

impl Counter for NoCount {
    #[inline(always)]
    fn candidate(&mut self, _: u32) {}
    #[inline(always)]
    fn confirmation(&mut self, _: u32) {}
}

/// Per-signature work over every scan it was passed to: how often the prefilter proposed each
/// signature (a candidate: an exact-table lookup and a comparison of the literal run) and how
/// often the literal run was there (a confirmation: the gaps, wildcards and offset checked
/// around it). Candidates that never confirm are what a badly anchored signature costs.
#[derive(Clone, Debug, Default)]
pub struct BodyStats {
    /// (candidates, confirmations) by signature index; grown on first use.
    counts: Vec<(u64, u64)>,
}

impl BodyStats {
    #[inline]
    fn slot(&mut self, si: u32) -> &mut (u64, u64) {
        let i = si as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, (0, 0));
        }
        &mut self.counts[i]
    }
}

impl Counter for BodyStats {
    fn candidate(&mut self, si: u32) {
        self.slot(si).0 += 1;
    }
    fn confirmation(&mut self, si: u32) {
        self.slot(si).1 += 1;
    }
}

/// One signature's counts from a [`BodyStats`], by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyCost {
    pub signature: String,
    pub candidates: u64,
    pub confirmations: u64,
}

/// How much a byte counts against a window: bytes that fill real files (zero padding, 0xff,
/// whitespace, text) make a window that hits often and costs confirmations.
fn byte_weight(b: u8) -> u32 {
    match b {
        0x00 => 8,
        0xff => 5,
        b' ' | b'\n' | b'\r' | b'\t' => 4,
        b'a'..=b'z' | b'0'..=b'9' => 2,
        b'A'..=b'Z' | 0x21..=0x7e | 0x01..=0x08 => 1,
        _ => 0,
    }
}

fn window_cost(w: &[u8]) -> u32 {
    let mut cost: u32 = w.iter().map(|&b| byte_weight(b)).sum();
    if w.iter().all(|&b| b == w[0]) {
        cost += 8;
    }
    cost
}

fn window_key(w: &[u8]) -> u32 {
    u32::from_le_bytes([w[0], w[1], w[2], w[3]])
}

/// Two multiplies spread a 4-byte key: the top bits of the first pick the filter word, the
/// top bits of the second pick two bits in it and the exact table's bucket.
#[inline(always)]
fn spread(key: u32) -> (u64, u64) {
    (
        u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        u64::from(key).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
    )
}

/// Signatures whose literal run holds `STRIDE` consecutive windows are indexed under all of
/// them, so that whatever the alignment one falls on a multiple of `STRIDE`: the scan then
/// probes only every eighth position. Shorter runs go to a dense index probed everywhere.
const STRIDE: usize = 8;

/// Windows of one group of signatures: a blocked Bloom filter (two bits in one 64-bit word, so
/// one memory access per probe; about 16 bits per key, near 1.5% false positives), then an
/// exact table of entries sorted by bucket.
struct Index {
    words: Vec<u64>,
    shift: u32,
    /// Entry range of each bucket: `dir[b]..dir[b + 1]`.
    dir: Vec<u32>,
    dir_shift: u32,
    /// (key, signature, position of the window in the signature's literal run).
    entries: Vec<(u32, u32, u32)>,
}

impl Index {
    fn new(mut keyed: Vec<(u32, u32, u32)>) -> Self {
        let n = keyed.len().max(1);
        let bits = (n * 16).next_power_of_two().trailing_zeros().clamp(7, 28);
        let mut words = vec![0u64; 1 << (bits - 6)];
        // The word index is the top `bits - 6` bits.
        let shift = 64 - (bits - 6);
        let dir_bits = n.next_power_of_two().trailing_zeros().clamp(1, 26);
        let dir_shift = 64 - dir_bits;
        keyed.sort_unstable_by_key(|&(key, sig, k)| (spread(key).1 >> dir_shift, key, sig, k));
        keyed.dedup();
        let mut dir = vec![0u32; (1 << dir_bits) + 1];
        for &(key, _, _) in &keyed {
            let (p, q) = spread(key);
            words[(p >> shift) as usize] |= (1 << ((q >> 52) & 63)) | (1 << (q >> 58));
            dir[(q >> dir_shift) as usize + 1] += 1;
        }
        for b in 1..dir.len() {
            dir[b] += dir[b - 1];
        }
        Self {
            words,
            shift,
            dir,
            dir_shift,
            entries: keyed,
        }
    }

    #[inline(always)]
    fn maybe(&self, p: u64, q: u64) -> bool {
        let want = (1 << ((q >> 52) & 63)) | (1 << (q >> 58));
        self.words[(p >> self.shift) as usize] & want == want
    }

    fn lookup(&self, key: u32, q: u64) -> impl Iterator<Item = (u32, u32)> + '_ {
        let b = (q >> self.dir_shift) as usize;
        self.entries[self.dir[b] as usize..self.dir[b + 1] as usize]
            .iter()
            .filter(move |e| e.0 == key)
            .map(|&(_, sig, k)| (sig, k))
    }
}

struct WindowIndex {
    /// Probed at every multiple of `STRIDE`.
    strided: Index,
    /// Probed at every position; `None` when every signature has a long enough run.
    dense: Option<Index>,
}

impl WindowIndex {
    /// Picks windows by cost (common bytes cost, see [`byte_weight`]), earliest first on ties:
    /// deterministic, so every client builds the same index from the same database.
    fn new(sigs: &[Sig]) -> Self {
        let mut strided = Vec::new();
        let mut dense = Vec::new();
        for (i, s) in sigs.iter().enumerate() {
            let costs: Vec<u32> = s.lit.windows(4).map(window_cost).collect();
            if costs.len() >= STRIDE {
                let mut best = (u32::MAX, 0);
                for q in 0..=costs.len() - STRIDE {
                    let c: u32 = costs[q..q + STRIDE].iter().sum();
                    if c < best.0 {
                        best = (c, q);
                    }
                }
                for k in best.1..best.1 + STRIDE {
                    strided.push((window_key(&s.lit[k..k + 4]), i as u32, k as u32));
                }
            } else if let Some((k, _)) = costs.iter().enumerate().min_by_key(|&(k, c)| (*c, k)) {
                dense.push((window_key(&s.lit[k..k + 4]), i as u32, k as u32));
            }
        }
        Self {
            strided: Index::new(strided),
            dense: (!dense.is_empty()).then(|| Index::new(dense)),
        }
    }

    /// Probes positions `from..` (every position for the dense index, multiples of `STRIDE`
    /// for the other) and returns the first that may hold a window, with which index it was.
    /// Kept apart from confirmation so this loop stays small and tight.
    #[inline(never)]
    fn next_candidate(&self, data: &[u8], from: usize) -> Option<(usize, bool)> {
        let n = data.len().checked_sub(3)?;
        match &self.dense {
            None => {
                let mut i = from.next_multiple_of(STRIDE);
                while i < n {
                    let (p, q) = spread(window_key(&data[i..i + 4]));
                    if self.strided.maybe(p, q) {
                        return Some((i, false));
                    }
                    i += STRIDE;
                }
            }
            Some(dense) => {
                for i in from..n {
                    let (p, q) = spread(window_key(&data[i..i + 4]));
                    if dense.maybe(p, q) {
                        return Some((i, true));
                    }
                    if i % STRIDE == 0 && self.strided.maybe(p, q) {
                        return Some((i, false));
                    }
                }
            }
        }
        None
    }
}

/// Positions scanned between deadline checks.
const SCAN_CHUNK: usize = 1 << 20;
/// Confirmation work between deadline checks.
const CHECK_EVERY: u32 = 1 << 14;

struct Ctx<'a> {
    data: &'a [u8],
    /// The scanned data's `.ndb` target type (0: none known): signatures for another type are
    /// skipped before confirmation.
    target: u32,
    deadline: Option<Instant>,
    steps: u32,
    timed_out: bool,
}

impl Ctx<'_> {
    /// Checks the clock now: for steps that are themselves long (a search over megabytes).
    fn expired(&mut self) -> bool {
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                self.timed_out = true;
            }
        }
        self.timed_out
    }

    fn tick(&mut self) -> bool {
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(CHECK_EVERY) {
            self.expired();
        }
        !self.timed_out
    }
}

/// Signatures already reported for this file: matches are rare, so a set, not a bitmap the
/// size of the database cleared for every file.
struct Found {
    seen: HashSet<u32>,
    out: Vec<BodyMatch>,
}

impl BodyMatcher {
    /// A matcher over `sigs` with the default prefilter.
    pub fn new(sigs: &[BodySig]) -> Result<Self, BodyError> {
        let mut b = BodyMatcherBuilder::default();
        for s in sigs {
            b.add(s)?;
        }
        b.build(Prefilter::default())
    }

    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Every signature that matches `data`, once each, at the first start confirmed. The data
    /// has no known type: signatures for one type only (`.ndb` target 1, 6, 9) do not match.
    pub fn scan(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Vec<BodyMatch>, ScanError> {
        self.scan_with(data, deadline, 0, &mut NoCount)
    }

    /// As [`BodyMatcher::scan`], for data of `.ndb` target type `target` (0: no known type):
    /// signatures for that type match too.
    pub fn scan_typed(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
        target: u32,
    ) -> Result<Vec<BodyMatch>, ScanError> {
        self.scan_with(data, deadline, target, &mut NoCount)
    }

    /// As [`BodyMatcher::scan`], adding each signature's candidates and confirmations to
    /// `stats` (for the release gate's cost profile; the plain scan counts nothing).
    pub fn scan_counted(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
        stats: &mut BodyStats,
    ) -> Result<Vec<BodyMatch>, ScanError> {
        self.scan_with(data, deadline, 0, stats)
    }

    /// [`BodyMatcher::scan_typed`], counting as [`BodyMatcher::scan_counted`] does.
    pub fn scan_typed_counted(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
        target: u32,
        stats: &mut BodyStats,
    ) -> Result<Vec<BodyMatch>, ScanError> {
        self.scan_with(data, deadline, target, stats)
    }

    /// `stats`' counts by signature name, signatures never proposed left out.
    pub fn costs(&self, stats: &BodyStats) -> Vec<BodyCost> {
        stats
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 > 0)
            .filter_map(|(i, &(candidates, confirmations))| {
                Some(BodyCost {
                    signature: self.sigs.get(i)?.name.to_string(),
                    candidates,
                    confirmations,
                })
            })
            .collect()
    }

    fn scan_with<C: Counter>(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
        target: u32,
        counter: &mut C,
    ) -> Result<Vec<BodyMatch>, ScanError> {
        let mut cx = Ctx {
            data,
            target,
            deadline,
            steps: 0,
            timed_out: false,
        };
        let mut found = Found {
            seen: HashSet::new(),
            out: Vec::new(),
        };
        match &self.finder {
            Finder::Window(ix) => {
                let mut pos = 0;
                let mut next_check = SCAN_CHUNK;
                while let Some((at, dense)) = ix.next_candidate(data, pos) {
                    if at >= next_check {
                        if cx.expired() {
                            return Err(ScanError::Timeout);
                        }
                        next_check = at + SCAN_CHUNK;
                    }
                    let key = window_key(&data[at..at + 4]);
                    let (_, q) = spread(key);
                    let index = match (&ix.dense, dense) {
                        (Some(d), true) => d,
                        _ => &ix.strided,
                    };
                    for (si, k) in index.lookup(key, q) {
                        let Some(start) = at.checked_sub(k as usize) else {
                            continue;
                        };
                        self.confirm(&mut cx, &mut found, counter, si, start)?;
                    }
                    // A position can hold windows of both indexes: probe the strided one too.
                    if dense && at % STRIDE == 0 {
                        let (p, q) = spread(key);
                        if ix.strided.maybe(p, q) {
                            for (si, k) in ix.strided.lookup(key, q) {
                                let Some(start) = at.checked_sub(k as usize) else {
                                    continue;
                                };
                                self.confirm(&mut cx, &mut found, counter, si, start)?;
                            }
                        }
                    }
                    pos = at + 1;
                }
            }
            Finder::Ac { ac, by_pattern } => {
                for m in ac.find_overlapping_iter(data) {
                    for &si in &by_pattern[m.pattern().as_usize()] {
                        self.confirm(&mut cx, &mut found, counter, si, m.start())?;
                    }
                }
            }
        }
        Ok(found.out)
    }

    /// Confirms signature `si` with its literal run starting at `lit_start`.
    fn confirm<C: Counter>(
        &self,
        cx: &mut Ctx<'_>,
        found: &mut Found,
        counter: &mut C,
        si: u32,
        lit_start: usize,
    ) -> Result<(), ScanError> {
        if found.seen.contains(&si) {
            return Ok(());
        }
        let sig = &self.sigs[si as usize];
        if sig.target != 0 && sig.target != cx.target {
            return Ok(());
        }
        counter.candidate(si);
        let data = cx.data;
        let lit_end = lit_start + sig.lit.len();
        if data.get(lit_start..lit_end) != Some(&sig.lit[..]) {
            return Ok(());
        }
        counter.confirmation(si);
        if !fwd(cx, &sig.post, lit_end) {
            return if cx.timed_out {
                Err(ScanError::Timeout)
            } else {
                Ok(())
            };
        }
        let mut start_found = None;
        let size = data.len() as u64;
        bwd(cx, &sig.pre, lit_start, &mut |start| {
            let ok = offset_ok(&sig.offset, start as u64, size);
            if ok {
                start_found = Some(start);
            }
            ok
        });
        if cx.timed_out {
            return Err(ScanError::Timeout);
        }
        if let Some(start) = start_found {
            found.seen.insert(si);
            found.out.push(BodyMatch {
                name: sig.name.clone(),
                offset: start as u64,
            });
        }
        Ok(())
    }
}

fn offset_ok(o: &Offset, start: u64, size: u64) -> bool {
    match o {
        Offset::Any => true,
        Offset::Abs { start: s, shift } => start >= *s && start - s <= *shift,
        Offset::EofMinus { back, shift } => match size.checked_sub(*back) {
            Some(base) => start >= base && start - base <= *shift,
            None => false,
        },
    }
}

/// Can `toks` match starting at `pos` (ending anywhere)?
fn fwd(cx: &mut Ctx<'_>, toks: &[Tok], pos: usize) -> bool {
    if !cx.tick() {
        return false;
    }
    let data = cx.data;
    let Some((t, rest)) = toks.split_first() else {
        return true;
    };
    match t {
        Tok::Lit(lit) => {
            data.get(pos..pos + lit.len()) == Some(lit.as_slice()) && fwd(cx, rest, pos + lit.len())
        }
        Tok::Nibble { value, mask } => {
            data.get(pos).is_some_and(|b| b & mask == *value) && fwd(cx, rest, pos + 1)
        }
        Tok::Any(n) => pos + n <= data.len() && fwd(cx, rest, pos + n),
        Tok::Alt(options) => options.iter().any(|o| {
            data.get(pos..pos + o.len()) == Some(o.as_slice()) && fwd(cx, rest, pos + o.len())
        }),
        Tok::NotAlt { width, options } => match data.get(pos..pos + width) {
            Some(w) => !options.iter().any(|o| o.as_slice() == w) && fwd(cx, rest, pos + width),
            None => false,
        },
        Tok::Gap { min, max } => {
            let lo = pos + min;
            if lo > data.len() {
                return false;
            }
            let hi = max.map_or(data.len(), |m| (pos + m).min(data.len()));
            // A gap followed by a literal: jump between occurrences of the literal.
            if let Some((Tok::Lit(lit), after)) = rest.split_first() {
                let end = (hi + lit.len()).min(data.len());
                let finder = memchr::memmem::Finder::new(lit);
                let mut from = lo;
                while from <= hi {
                    if cx.expired() {
                        return false;
                    }
                    let Some(i) = finder.find(&data[from..end]) else {
                        return false;
                    };
                    let at = from + i;
                    if fwd(cx, after, at + lit.len()) {
                        return true;
                    }
                    if cx.timed_out {
                        return false;
                    }
                    from = at + 1;
                }
                return false;
            }
            (lo..=hi).any(|p| fwd(cx, rest, p))
        }
    }
}

/// Walks `toks` backwards from `end` and calls `accept` with each possible start; stops at the
/// first start `accept` takes.
fn bwd(cx: &mut Ctx<'_>, toks: &[Tok], end: usize, accept: &mut dyn FnMut(usize) -> bool) -> bool {
    if !cx.tick() {
        return false;
    }
    let data = cx.data;
    let Some((t, rest)) = toks.split_last() else {
        return accept(end);
    };
    match t {
        Tok::Lit(lit) => {
            end >= lit.len()
                && &data[end - lit.len()..end] == lit.as_slice()
                && bwd(cx, rest, end - lit.len(), accept)
        }
        Tok::Nibble { value, mask } => {
            end >= 1 && data[end - 1] & mask == *value && bwd(cx, rest, end - 1, accept)
        }
        Tok::Any(n) => end >= *n && bwd(cx, rest, end - n, accept),
        Tok::Alt(options) => options.iter().any(|o| {
            end >= o.len()
                && &data[end - o.len()..end] == o.as_slice()
                && bwd(cx, rest, end - o.len(), accept)
        }),
        Tok::NotAlt { width, options } => {
            end >= *width
                && !options
                    .iter()
                    .any(|o| o.as_slice() == &data[end - width..end])
                && bwd(cx, rest, end - width, accept)
        }
        Tok::Gap { min, max } => {
            if end < *min {
                return false;
            }
            let hi = end - min;
            let lo = max.map_or(0, |m| end.saturating_sub(m));
            (lo..=hi).rev().any(|p| bwd(cx, rest, p, accept))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vigil_format::sigs::parse_ndb_line;

    fn names_with(sigs: &[&str], data: &[u8], prefilter: Prefilter) -> Vec<String> {
        let mut b = BodyMatcherBuilder::default();
        for l in sigs {
            b.add(&parse_ndb_line(l).unwrap()).unwrap();
        }
        let m = b.build(prefilter).unwrap();
        let mut v: Vec<String> = m
            .scan(data, None)
            .unwrap()
            .into_iter()
            .map(|b| b.name.to_string())
            .collect();
        v.sort();
        v
    }

    // The same cases were run through clamscan 1.x (Debian) while writing this matcher.
    #[test]
    fn clamav_semantics() {
        let data = b"xxABCDEFyyyyGHIJzz";
        let sigs = [
            "Abs-ok:0:2:41424344",
            "Abs-bad:0:3:41424344",
            "Shift-ok:0:1,1:41424344",
            "Shift-bad:0:0,1:41424344",
            "Eof-ok:0:EOF-16:41424344",
            "Eof-bad:0:EOF-15:41424344",
            "EofShift-ok:0:EOF-17,1:41424344",
            "Gap-ok:0:*:41424344{2-6}4748",
            "Gap6-ok:0:*:41424344{5-6}4748",
            "Gap-bad:0:*:41424344{7-9}4748",
            "Star-ok:0:*:41424344*494a",
            "Alt-ok:0:*:41424344(4546|5859)",
            "Neg-ok:0:*:41424344!(4647|5859)",
            "Neg-bad:0:*:41424344!(4546|5859)",
            "Nib-ok:0:*:41424344?5",
            "Nib2-ok:0:*:41424344*474?494a",
            "Pre-ok:0:0:7878{0-3}41424344",
            "Pre-bad:0:2:7878{0-3}41424344",
        ];
        let got = names_with(&sigs, data, Prefilter::Window);
        assert_eq!(got, names_with(&sigs, data, Prefilter::AhoCorasick));
        let want: Vec<String> = {
            let mut w: Vec<String> = sigs
                .iter()
                .map(|s| s.split(':').next().unwrap().to_string())
                .filter(|n| n.ends_with("-ok"))
                .collect();
            w.sort();
            w
        };
        assert_eq!(got, want);
    }

    #[test]
    fn counted_scan_finds_the_same_and_counts_candidates_and_confirmations() {
        let mut b = BodyMatcherBuilder::default();
        // Both anchor on the window ABCD (uppercase windows cost the same: the earliest wins).
        for l in ["Hit:0:*:4142434445464748", "Miss:0:*:4142434445464759"] {
            b.add(&parse_ndb_line(l).unwrap()).unwrap();
        }
        let m = b.build(Prefilter::Window).unwrap();
        let data = b"ABCDEFGH ABCDEFGH ABCDxx ABCDEFGH";
        let mut stats = BodyStats::default();
        let counted = m.scan_counted(data, None, &mut stats).unwrap();
        assert_eq!(counted, m.scan(data, None).unwrap());
        let mut costs = m.costs(&stats);
        costs.sort_by(|a, b| a.signature.cmp(&b.signature));
        let got: Vec<_> = costs
            .iter()
            .map(|c| (c.signature.as_str(), c.candidates, c.confirmations))
            .collect();
        // Hit: proposed at the first ABCD, found there, then skipped; Miss: proposed at all
        // four, its literal run never whole.
        assert_eq!(got, [("Hit", 1, 1), ("Miss", 4, 0)]);
        // Counts add up over scans.
        m.scan_counted(data, None, &mut stats).unwrap();
        assert_eq!(m.costs(&stats)[1].candidates, 8);
    }

    #[test]
    fn short_anchor_is_refused() {
        let mut b = BodyMatcherBuilder::default();
        let sig = BodySig {
            name: "Short".into(),
            target: 0,
            offset: Offset::Any,
            pattern: vec![
                Token::Byte(1),
                Token::Byte(2),
                Token::AnyByte,
                Token::Byte(3),
            ],
            min_flevel: None,
            max_flevel: None,
        };
        assert!(b.add(&sig).unwrap_err().to_string().contains("Short"));
    }

    fn hexs(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The window index finds exactly what the Aho-Corasick prefilter finds: signatures cut
        /// from the data (so they match, often many times, with repeated windows), with
        /// wildcards and gaps around the literal run, and random ones that mostly do not.
        #[test]
        fn window_equals_aho_corasick(
            data in proptest::collection::vec(any::<u8>().prop_map(|b| b % 4 * 60), 64..2048),
            cuts in proptest::collection::vec((0usize..2000, 4usize..24, 0u8..4, 0usize..6), 1..40),
        ) {
            let mut sigs = Vec::new();
            for (i, (at, len, form, extra)) in cuts.into_iter().enumerate() {
                let at = at % data.len().saturating_sub(len).max(1);
                let lit = &data[at..(at + len).min(data.len())];
                if lit.len() < 4 {
                    continue;
                }
                let tail = &data[(at + len).min(data.len())..(at + len + extra).min(data.len())];
                let hex = match form {
                    0 => hexs(lit),
                    1 => match tail.split_last() {
                        Some((last, mid)) => format!("{}{}{:02x}", hexs(lit), "??".repeat(mid.len()), last),
                        None => hexs(lit),
                    },
                    2 => format!("{}{{0-8}}{}", hexs(lit), if tail.len() >= 2 { hexs(&tail[..2]) } else { "abab".into() }),
                    _ => format!("{}*{}", hexs(lit), if tail.len() >= 2 { hexs(&tail[tail.len()-2..]) } else { "cdcd".into() }),
                };
                sigs.push(format!("S{i}:0:*:{hex}"));
            }
            let refs: Vec<&str> = sigs.iter().map(String::as_str).collect();
            prop_assert_eq!(
                names_with(&refs, &data, Prefilter::Window),
                names_with(&refs, &data, Prefilter::AhoCorasick)
            );
        }
    }
}
