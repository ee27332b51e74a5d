//! Body signatures: one Aho-Corasick automaton over every signature's anchor (its longest run
//! of literal bytes), then, at each anchor hit, a confirmation of the full pattern around it:
//! forward from the anchor's end, backward from its start (enumerating every possible start
//! through gaps and alternatives), and the offset rule on the start. Semantics follow ClamAV's
//! (checked against clamscan by the parity test in tests/).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use vigil_format::sigs::{BodySig, Offset, Token};

use crate::error::ScanError;

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
    offset: Offset,
    /// Tokens before the anchor, in pattern order (matched backwards from the anchor).
    pre: Vec<Tok>,
    /// Tokens after the anchor.
    post: Vec<Tok>,
}

pub struct BodyMatcher {
    sigs: Vec<Sig>,
    ac: AhoCorasick,
    /// Automaton pattern id -> signatures anchored on it.
    by_pattern: Vec<Vec<u32>>,
}

/// One confirmed body-signature match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyMatch {
    pub name: Arc<str>,
    pub offset: u64,
}

/// Confirmation work between deadline checks.
const CHECK_EVERY: u32 = 1 << 14;

struct Ctx<'a> {
    data: &'a [u8],
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
            if let Some(d) = self.deadline {
                if Instant::now() >= d {
                    self.timed_out = true;
                }
            }
        }
        !self.timed_out
    }
}

impl BodyMatcher {
    pub fn new(sigs: &[BodySig]) -> Result<Self, String> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut ids: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut by_pattern: Vec<Vec<u32>> = Vec::new();
        let mut out = Vec::with_capacity(sigs.len());
        for (i, s) in sigs.iter().enumerate() {
            let (start, anchor) = s.anchor();
            if anchor.is_empty() {
                return Err(format!("{}: no literal bytes to anchor on", s.name));
            }
            let bytes: Vec<u8> = anchor
                .iter()
                .filter_map(|t| match t {
                    Token::Byte(b) => Some(*b),
                    _ => None,
                })
                .collect();
            let id = *ids.entry(bytes.clone()).or_insert_with(|| {
                patterns.push(bytes);
                by_pattern.push(Vec::new());
                patterns.len() - 1
            });
            by_pattern[id].push(i as u32);
            out.push(Sig {
                name: Arc::from(s.name.as_str()),
                offset: s.offset.clone(),
                pre: lower(&s.pattern[..start]),
                post: lower(&s.pattern[start + anchor.len()..]),
            });
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&patterns)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            sigs: out,
            ac,
            by_pattern,
        })
    }

    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Every signature that matches `data`, once each, at its first confirmed start.
    pub fn scan(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Vec<BodyMatch>, ScanError> {
        let mut found = vec![false; self.sigs.len()];
        let mut out = Vec::new();
        let mut cx = Ctx {
            data,
            deadline,
            steps: 0,
            timed_out: false,
        };
        for m in self.ac.find_overlapping_iter(data) {
            for &si in &self.by_pattern[m.pattern().as_usize()] {
                let si = si as usize;
                if found[si] {
                    continue;
                }
                let sig = &self.sigs[si];
                if !fwd(&mut cx, &sig.post, m.end()) {
                    if cx.timed_out {
                        return Err(ScanError::Timeout);
                    }
                    continue;
                }
                let mut start_found = None;
                let size = data.len() as u64;
                bwd(&mut cx, &sig.pre, m.start(), &mut |start| {
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
                    found[si] = true;
                    out.push(BodyMatch {
                        name: sig.name.clone(),
                        offset: start as u64,
                    });
                }
            }
        }
        Ok(out)
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
    use vigil_format::sigs::parse_ndb_line;

    fn names(sigs: &[&str], data: &[u8]) -> Vec<String> {
        let parsed: Vec<BodySig> = sigs.iter().map(|l| parse_ndb_line(l).unwrap()).collect();
        let m = BodyMatcher::new(&parsed).unwrap();
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
        let got = names(&sigs, data);
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
}
