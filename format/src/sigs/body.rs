//! Body signatures (`.ndb`): `Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]]`, with the
//! hex syntax of ClamAV's signature documentation: `??`, nibbles `a?` / `?a`, gaps `*`, `{n}`,
//! `{n-}`, `{-n}`, `{n-m}`, alternatives `(aa|bbcc)` and negated `!(aa|bb)`.
//! Offsets: `*`, `n`, `n,maxshift`, `EOF-n`, `EOF-n,maxshift`. Only target type 0 (any file) is
//! supported; other targets and the EP/section offsets are refused with an `unsupported` code
//! rather than silently ignored, so a signature never ships that the engine would not apply.

use std::fmt;

use super::{check_name, fields, parse_flevel, SigError};

/// Fewest consecutive literal bytes a signature must have: the engine's automaton anchors on
/// them, and a shorter anchor would make every file a candidate.
pub const MIN_ANCHOR: usize = 4;
/// Bound on tokens, so a hostile line cannot make the engine build a huge matcher.
pub const MAX_TOKENS: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Byte(u8),
    /// Matches when `byte & mask == value`; mask 0xF0 for `a?`, 0x0F for `?a`.
    Nibble {
        value: u8,
        mask: u8,
    },
    /// `??`
    AnyByte,
    /// `{n}`, `{n-}`, `{-n}`, `{n-m}`, `*` (= `{0-}`): between `min` and `max` bytes.
    Gap {
        min: u32,
        max: Option<u32>,
    },
    /// `(aa|bbcc)`, or with `negated` `!(aa|bb)` (all options the same length).
    Alt {
        negated: bool,
        options: Vec<Vec<u8>>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offset {
    /// `*`: anywhere.
    Any,
    /// `n` or `n,shift`: the match starts in `[start, start + shift]`.
    Abs { start: u64, shift: u64 },
    /// `EOF-n` or `EOF-n,shift`: the match starts in `[size - back, size - back + shift]`.
    EofMinus { back: u64, shift: u64 },
}

/// `.ndb` target types the engine honours: 0 any file, 1 PE, 6 ELF, 9 Mach-O.
pub const SUPPORTED_TARGETS: [u32; 4] = [0, 1, 6, 9];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodySig {
    pub name: String,
    pub target: u32,
    pub offset: Offset,
    pub pattern: Vec<Token>,
    pub min_flevel: Option<u32>,
    pub max_flevel: Option<u32>,
}

impl BodySig {
    /// The longest run of literal bytes, the anchor for the engine's automaton, and where in
    /// the token list it starts.
    pub fn anchor(&self) -> (usize, &[Token]) {
        let mut best = (0, 0usize);
        let mut start = 0;
        for (i, t) in self.pattern.iter().enumerate() {
            if !matches!(t, Token::Byte(_)) {
                start = i + 1;
            } else if i + 1 - start > best.1 {
                best = (start, i + 1 - start);
            }
        }
        (best.0, &self.pattern[best.0..best.0 + best.1])
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offset::Any => write!(f, "*"),
            Offset::Abs { start, shift: 0 } => write!(f, "{start}"),
            Offset::Abs { start, shift } => write!(f, "{start},{shift}"),
            Offset::EofMinus { back, shift: 0 } => write!(f, "EOF-{back}"),
            Offset::EofMinus { back, shift } => write!(f, "EOF-{back},{shift}"),
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Byte(b) => write!(f, "{b:02x}"),
            Token::Nibble { value, mask: 0xF0 } => write!(f, "{:x}?", value >> 4),
            Token::Nibble { value, .. } => write!(f, "?{:x}", value & 0x0F),
            Token::AnyByte => write!(f, "??"),
            Token::Gap { min: 0, max: None } => write!(f, "*"),
            Token::Gap { min, max: None } => write!(f, "{{{min}-}}"),
            Token::Gap {
                min,
                max: Some(max),
            } if min == max => write!(f, "{{{min}}}"),
            Token::Gap {
                min: 0,
                max: Some(max),
            } => write!(f, "{{-{max}}}"),
            Token::Gap {
                min,
                max: Some(max),
            } => write!(f, "{{{min}-{max}}}"),
            Token::Alt { negated, options } => {
                if *negated {
                    write!(f, "!")?;
                }
                write!(f, "(")?;
                for (i, o) in options.iter().enumerate() {
                    if i > 0 {
                        write!(f, "|")?;
                    }
                    write!(f, "{}", hex::encode(o))?;
                }
                write!(f, ")")
            }
        }
    }
}

impl fmt::Display for BodySig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}:", self.name, self.target, self.offset)?;
        for t in &self.pattern {
            write!(f, "{t}")?;
        }
        if let Some(min) = self.min_flevel {
            write!(f, ":{min}")?;
        }
        if let Some(max) = self.max_flevel {
            write!(f, ":{max}")?;
        }
        Ok(())
    }
}

pub fn parse_ndb_line(line: &str) -> Result<BodySig, SigError> {
    let f = fields(line);
    if !(4..=6).contains(&f.len()) {
        return Err(SigError::new(
            "ndb/fields",
            1,
            format!(
                "expected Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]], found {} fields",
                f.len()
            ),
        ));
    }
    let (ncol, name) = f[0];
    check_name("ndb/name", ncol, name)?;
    let (tcol, ttext) = f[1];
    let target = ttext.parse::<u32>().map_err(|_| {
        SigError::new(
            "ndb/target",
            tcol,
            format!("target type {ttext:?} is not a number"),
        )
    })?;
    // The engine recognises files by content (`vigil-unpack`): executables of the three
    // formats have a type; the others ClamAV names (OLE2, HTML, mail, graphics, normalised
    // ASCII) match on content it does not normalise yet, so they stay refused, never ignored.
    if !SUPPORTED_TARGETS.contains(&target) {
        return Err(SigError::new(
            "ndb/unsupported-target",
            tcol,
            format!(
                "target type {target} is not supported; use 0 (any file), 1 (PE), 6 (ELF) or 9 (Mach-O)"
            ),
        ));
    }
    let (ocol, otext) = f[2];
    let offset = parse_offset(ocol, otext)?;
    let (hcol, htext) = f[3];
    let pattern = parse_hex(hcol, htext)?;
    let min_flevel = match f.get(4) {
        Some((c, s)) => Some(parse_flevel("ndb/flevel", *c, s)?),
        None => None,
    };
    let max_flevel = match f.get(5) {
        Some((c, s)) => Some(parse_flevel("ndb/flevel", *c, s)?),
        None => None,
    };
    if let (Some(min), Some(max)) = (min_flevel, max_flevel) {
        if min > max {
            let col = f.get(5).map_or(1, |(c, _)| *c);
            return Err(SigError::new(
                "ndb/flevel",
                col,
                format!("MaxFL {max} is below MinFL {min}"),
            ));
        }
    }
    Ok(BodySig {
        name: name.to_string(),
        target,
        offset,
        pattern,
        min_flevel,
        max_flevel,
    })
}

fn parse_offset(col: usize, s: &str) -> Result<Offset, SigError> {
    let bad = |msg: String| SigError::new("ndb/offset", col, msg);
    if s == "*" {
        return Ok(Offset::Any);
    }
    for prefix in ["EP", "SL", "SE", "S", "VI"] {
        if s.starts_with(prefix) && !s.starts_with("EOF") {
            return Err(SigError::new(
                "ndb/unsupported-offset",
                col,
                format!("offset {s:?}: {prefix} offsets need a parsed executable and are not supported yet"),
            ));
        }
    }
    let (base, shift) = match s.split_once(',') {
        Some((b, sh)) => {
            let shift = sh
                .parse::<u64>()
                .map_err(|_| bad(format!("offset shift {sh:?} is not a number")))?;
            (b, shift)
        }
        None => (s, 0),
    };
    if let Some(back) = base.strip_prefix("EOF-") {
        let back = back
            .parse::<u64>()
            .map_err(|_| bad(format!("offset {s:?}: expected EOF-n")))?;
        return Ok(Offset::EofMinus { back, shift });
    }
    let start = base.parse::<u64>().map_err(|_| {
        bad(format!(
            "offset {s:?}: expected *, n, n,maxshift, EOF-n or EOF-n,maxshift"
        ))
    })?;
    Ok(Offset::Abs { start, shift })
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Parses the hex field; `col` is the 1-based column where it starts in the line.
fn parse_hex(col: usize, s: &str) -> Result<Vec<Token>, SigError> {
    let b = s.as_bytes();
    let err = |code: &'static str, at: usize, msg: String| SigError::new(code, col + at, msg);
    if b.is_empty() {
        return Err(err("ndb/hex", 0, "empty hex signature".into()));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if out.len() >= MAX_TOKENS {
            return Err(err(
                "ndb/too-long",
                i,
                format!("more than {MAX_TOKENS} tokens"),
            ));
        }
        let c = b[i];
        match c {
            b'*' => {
                out.push(Token::Gap { min: 0, max: None });
                i += 1;
            }
            b'{' => {
                let end = s[i..]
                    .find('}')
                    .map(|e| i + e)
                    .ok_or_else(|| err("ndb/gap", i, "unclosed `{`".into()))?;
                out.push(parse_gap(&s[i + 1..end]).map_err(|m| err("ndb/gap", i, m))?);
                i = end + 1;
            }
            b'(' | b'!' => {
                let negated = c == b'!';
                let open = if negated { i + 1 } else { i };
                if b.get(open) != Some(&b'(') {
                    return Err(err(
                        "ndb/alternative",
                        i,
                        "`!` must be followed by `(`".into(),
                    ));
                }
                let end = s[open..]
                    .find(')')
                    .map(|e| open + e)
                    .ok_or_else(|| err("ndb/alternative", i, "unclosed `(`".into()))?;
                let mut options = Vec::new();
                let mut pos = open + 1;
                for part in s[open + 1..end].split('|') {
                    options.push(
                        parse_literal(part)
                            .map_err(|(at, m)| err("ndb/alternative", pos + at, m))?,
                    );
                    pos += part.len() + 1;
                }
                if options.len() < 2 {
                    return Err(err(
                        "ndb/alternative",
                        i,
                        "an alternative needs at least two options".into(),
                    ));
                }
                if negated && options.iter().any(|o| o.len() != options[0].len()) {
                    return Err(err(
                        "ndb/alternative",
                        i,
                        "options of a negated alternative must all have the same length".into(),
                    ));
                }
                out.push(Token::Alt { negated, options });
                i = end + 1;
            }
            _ => {
                let hi = c;
                let Some(&lo) = b.get(i + 1) else {
                    return Err(err("ndb/odd-nibbles", i, "odd number of hex digits".into()));
                };
                out.push(match (hi, lo) {
                    (b'?', b'?') => Token::AnyByte,
                    (b'?', _) => match hex_val(lo) {
                        Some(v) => Token::Nibble {
                            value: v,
                            mask: 0x0F,
                        },
                        None => return Err(bad_char(col, i + 1, lo)),
                    },
                    (_, b'?') => match hex_val(hi) {
                        Some(v) => Token::Nibble {
                            value: v << 4,
                            mask: 0xF0,
                        },
                        None => return Err(bad_char(col, i, hi)),
                    },
                    _ => match (hex_val(hi), hex_val(lo)) {
                        (Some(h), Some(l)) => Token::Byte(h << 4 | l),
                        (None, _) => return Err(bad_char(col, i, hi)),
                        (_, None) if is_structural(lo) => {
                            return Err(err(
                                "ndb/odd-nibbles",
                                i,
                                "odd number of hex digits".into(),
                            ))
                        }
                        (_, None) => return Err(bad_char(col, i + 1, lo)),
                    },
                });
                i += 2;
            }
        }
    }
    let edge = |t: &Token| matches!(t, Token::AnyByte | Token::Gap { .. });
    if out.first().is_some_and(edge) {
        return Err(err(
            "ndb/edge-wildcard",
            0,
            "a signature cannot start with a wildcard".into(),
        ));
    }
    if out.last().is_some_and(edge) {
        let last = s.rfind(['*', '{', '?']).unwrap_or(0);
        return Err(err(
            "ndb/edge-wildcard",
            last,
            "a signature cannot end with a wildcard".into(),
        ));
    }
    let sig = BodySig {
        name: String::new(),
        target: 0,
        offset: Offset::Any,
        pattern: out,
        min_flevel: None,
        max_flevel: None,
    };
    if sig.anchor().1.len() < MIN_ANCHOR {
        return Err(err(
            "ndb/anchor",
            0,
            format!(
                "needs at least {MIN_ANCHOR} consecutive literal bytes to anchor on, longest run is {}",
                sig.anchor().1.len()
            ),
        ));
    }
    // ClamAV splits a signature at variable-length gaps and anchors each part on its own, so
    // each part needs two consecutive literal bytes or clamscan refuses the whole database.
    let mut run = 0;
    let mut best = 0;
    for t in &sig.pattern {
        match t {
            Token::Byte(_) => {
                run += 1;
                best = best.max(run);
            }
            Token::Gap { min, max } if max != &Some(*min) => {
                if best < 2 {
                    return Err(err(
                        "ndb/short-part",
                        0,
                        "every part between variable gaps needs 2 consecutive literal bytes".into(),
                    ));
                }
                run = 0;
                best = 0;
            }
            _ => run = 0,
        }
    }
    if best < 2 {
        return Err(err(
            "ndb/short-part",
            0,
            "every part between variable gaps needs 2 consecutive literal bytes".into(),
        ));
    }
    Ok(sig.pattern)
}

fn is_structural(c: u8) -> bool {
    matches!(c, b'*' | b'{' | b'(' | b'!' | b'|' | b')')
}

fn bad_char(col: usize, at: usize, c: u8) -> SigError {
    SigError::new(
        "ndb/hex",
        col + at,
        format!("bad hex character {:?}", c as char),
    )
}

fn parse_literal(s: &str) -> Result<Vec<u8>, (usize, String)> {
    if s.is_empty() {
        return Err((0, "empty option".into()));
    }
    if !s.len().is_multiple_of(2) {
        return Err((s.len() - 1, "odd number of hex digits in option".into()));
    }
    let b = s.as_bytes();
    (0..b.len())
        .step_by(2)
        .map(|i| match (hex_val(b[i]), hex_val(b[i + 1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            (None, _) => Err((i, format!("bad hex character {:?} in option", b[i] as char))),
            (_, None) => Err((
                i + 1,
                format!("bad hex character {:?} in option", b[i + 1] as char),
            )),
        })
        .collect()
}

fn parse_gap(inner: &str) -> Result<Token, String> {
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("gap {{{inner}}}: {s:?} is not a number"))
    };
    match inner.split_once('-') {
        None => {
            let n = num(inner)?;
            Ok(Token::Gap {
                min: n,
                max: Some(n),
            })
        }
        Some(("", "")) => Err("gap {-} needs a bound".into()),
        Some((min, "")) => Ok(Token::Gap {
            min: num(min)?,
            max: None,
        }),
        Some(("", max)) => Ok(Token::Gap {
            min: 0,
            max: Some(num(max)?),
        }),
        Some((min, max)) => {
            let (min, max) = (num(min)?, num(max)?);
            if min > max {
                return Err(format!("gap {{{inner}}}: lower bound above upper bound"));
            }
            Ok(Token::Gap {
                min,
                max: Some(max),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code_col(line: &str) -> (&'static str, usize) {
        let e = parse_ndb_line(line).unwrap_err();
        (e.code, e.column)
    }

    #[test]
    fn every_form_parses() {
        let s = parse_ndb_line(
            "A.B.C-1:0:EOF-10,5:41424344??4?{2}?5*4142{3-}(aa|bbcc)!(01|02)4344{-4}45464748{1-2}dead:51:255",
        )
        .expect("valid");
        assert_eq!(s.offset, Offset::EofMinus { back: 10, shift: 5 });
        assert_eq!(s.pattern.len(), 24);
        assert_eq!(
            s.to_string(),
            "A.B.C-1:0:EOF-10,5:41424344??4?{2}?5*4142{3-}(aa|bbcc)!(01|02)4344{-4}45464748{1-2}dead:51:255"
        );
    }

    #[test]
    fn errors_point_at_the_column() {
        assert_eq!(code_col("X:0:*:4142434g"), ("ndb/hex", 14));
        assert_eq!(code_col("X:0:*:414243444"), ("ndb/odd-nibbles", 15));
        assert_eq!(code_col("X:0:*:??41424344"), ("ndb/edge-wildcard", 7));
        assert_eq!(code_col("X:0:*:41424344*"), ("ndb/edge-wildcard", 15));
        assert_eq!(code_col("X:0:*:4142??4344"), ("ndb/anchor", 7));
        assert_eq!(code_col("X:0:EP+4:41424344"), ("ndb/unsupported-offset", 5));
        assert_eq!(code_col("X:0:1x:41424344"), ("ndb/offset", 5));
        assert_eq!(code_col("X:2:*:41424344"), ("ndb/unsupported-target", 3));
        assert!(parse_ndb_line("X:1:*:41424344").is_ok());
        assert!(parse_ndb_line("X:6:*:41424344").is_ok());
        assert!(parse_ndb_line("X:9:*:41424344").is_ok());
        assert_eq!(code_col("X:q:*:41424344"), ("ndb/target", 3));
        assert_eq!(code_col("X:0:*"), ("ndb/fields", 1));
        assert_eq!(code_col("X:0:*:41424344{3-1}45"), ("ndb/gap", 15));
        assert_eq!(
            code_col("X:0:*:41424344!(41|4243)"),
            ("ndb/alternative", 15)
        );
    }

    fn arb_token() -> impl Strategy<Value = Token> {
        prop_oneof![
            any::<u8>().prop_map(Token::Byte),
            (0u8..16, any::<bool>()).prop_map(|(v, hi)| if hi {
                Token::Nibble {
                    value: v << 4,
                    mask: 0xF0,
                }
            } else {
                Token::Nibble {
                    value: v,
                    mask: 0x0F,
                }
            }),
            Just(Token::AnyByte),
            (0u32..100, proptest::option::of(0u32..100)).prop_map(|(a, b)| match b {
                Some(b) => Token::Gap {
                    min: a.min(b),
                    max: Some(a.max(b))
                },
                None => Token::Gap { min: a, max: None },
            }),
            (
                any::<bool>(),
                1usize..4,
                proptest::collection::vec(any::<u8>(), 2..12)
            )
                .prop_map(|(negated, w, bytes)| {
                    let options: Vec<Vec<u8>> = bytes
                        .chunks(w)
                        .filter(|c| c.len() == w || !negated)
                        .map(<[u8]>::to_vec)
                        .collect();
                    if options.len() < 2 {
                        Token::Alt {
                            negated,
                            options: vec![vec![1; w], vec![2; w]],
                        }
                    } else {
                        Token::Alt { negated, options }
                    }
                }),
        ]
    }

    fn arb_sig() -> impl Strategy<Value = BodySig> {
        (
            "[A-Za-z0-9._-]{1,30}",
            prop_oneof![
                Just(Offset::Any),
                (any::<u32>(), any::<u16>()).prop_map(|(s, sh)| Offset::Abs {
                    start: s.into(),
                    shift: sh.into()
                }),
                (any::<u32>(), any::<u16>()).prop_map(|(b, sh)| Offset::EofMinus {
                    back: b.into(),
                    shift: sh.into()
                }),
            ],
            any::<[u8; 4]>(),
            proptest::collection::vec(arb_token(), 0..10),
            any::<u8>(),
            proptest::option::of((any::<u16>(), proptest::option::of(any::<u16>()))),
        )
            .prop_map(|(name, offset, anchor, middle, last, fl)| {
                let mut pattern: Vec<Token> = anchor.iter().map(|b| Token::Byte(*b)).collect();
                for t in middle {
                    let gap = matches!(t, Token::Gap { .. });
                    pattern.push(t);
                    if gap {
                        // Each part after a gap needs its own two-byte anchor (ndb/short-part).
                        pattern.extend([Token::Byte(0x41), Token::Byte(0x42)]);
                    }
                }
                pattern.push(Token::Byte(last));
                let (min_flevel, max_flevel) = match fl {
                    Some((a, Some(b))) => (Some(u32::from(a.min(b))), Some(u32::from(a.max(b)))),
                    Some((a, None)) => (Some(a.into()), None),
                    None => (None, None),
                };
                BodySig {
                    name,
                    target: 0,
                    offset,
                    pattern,
                    min_flevel,
                    max_flevel,
                }
            })
    }

    proptest! {
        #[test]
        fn round_trip(sig in arb_sig()) {
            prop_assert_eq!(parse_ndb_line(&sig.to_string()).expect("parse"), sig);
        }

        #[test]
        fn never_panics(line in "[A-Z]{1,3}:[0-9]:[*0-9EOF,-]{0,6}:[0-9a-f?*{}()|!-]{0,40}") {
            let _ = parse_ndb_line(&line);
        }
    }
}
