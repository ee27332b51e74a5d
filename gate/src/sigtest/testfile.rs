//! The test file format: `*.test.toml` files beside the rules, each a list of `[[test]]`
//! tables naming one signature, the samples it must detect and the samples it must ignore.
//!
//! ```toml
//! [[test]]
//! signature = "Linux_Miner_XMRig_1"
//! detect = ["../samples/xmrig-config.json", { name = "pool-line", text = "..." }]
//! ignore = ["../samples/miner-blocklist.txt", { name = "eicar", hex = "58354f..." }]
//! ```
//!
//! A sample is a path relative to the test file's directory, or an inline `{ name, text }` or
//! `{ name, hex }` (exact bytes, so a fixture such as EICAR need not be committed as a live
//! test-virus string). Parsing only: paths are resolved by `samples`, names checked against
//! the rule set by the caller. Every problem carries the line and column it is at.

use serde::Deserialize;
use toml::{Spanned, Value};
use vigil_compiler::diag::line_col;

/// How test files are recognised under a rules directory.
pub const SUFFIX: &str = ".test.toml";

/// One `[[test]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Test {
    pub signature: String,
    /// 1-based line and column of the `signature` value.
    pub line: usize,
    pub column: usize,
    pub detect: Vec<SampleRef>,
    pub ignore: Vec<SampleRef>,
}

/// A sample as a test names it, with where it is named (what a failure points at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleRef {
    pub source: SampleSource,
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SampleSource {
    /// Relative to the test file's directory, as written.
    Path(String),
    /// Bytes written in the test file itself.
    Inline { name: String, bytes: Vec<u8> },
}

/// Something wrong in a test file, at a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Stable code: `test/toml`, `test/empty`, `test/sample`, `test/hex`.
    pub code: &'static str,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    test: Vec<RawTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    signature: Spanned<String>,
    #[serde(default)]
    detect: Vec<Spanned<Value>>,
    #[serde(default)]
    ignore: Vec<Spanned<Value>>,
}

/// Parses one test file's text: the tests it could read, and every problem found. A test
/// whose samples have problems keeps the others, so that the caller can still check its
/// signature name and sample paths and report everything at once.
pub fn parse(text: &str) -> (Vec<Test>, Vec<Problem>) {
    // TOML syntax, unknown keys and wrong types: toml stops at the first, with its position.
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            let problem = Problem {
                line,
                column,
                code: "test/toml",
                message: e.message().trim_end().to_string(),
            };
            return (Vec::new(), vec![problem]);
        }
    };
    let mut problems = Vec::new();
    if raw.test.is_empty() {
        problems.push(Problem {
            line: 1,
            column: 1,
            code: "test/empty",
            message: "no [[test]] tables in this test file".into(),
        });
    }
    let mut tests = Vec::new();
    for t in raw.test {
        let (line, column) = line_col(text, t.signature.span().start);
        let signature = t.signature.into_inner();
        if signature.is_empty() {
            problems.push(Problem {
                line,
                column,
                code: "test/toml",
                message: "empty signature name".into(),
            });
        }
        if t.detect.is_empty() && t.ignore.is_empty() {
            problems.push(Problem {
                line,
                column,
                code: "test/empty",
                message: format!("the test of {signature} lists no samples in detect or ignore"),
            });
        }
        let mut samples = |list: Vec<Spanned<Value>>| -> Vec<SampleRef> {
            list.into_iter()
                .filter_map(|v| sample(text, v).map_err(|p| problems.push(p)).ok())
                .collect()
        };
        let detect = samples(t.detect);
        let ignore = samples(t.ignore);
        tests.push(Test {
            signature,
            line,
            column,
            detect,
            ignore,
        });
    }
    (tests, problems)
}

fn sample(text: &str, v: Spanned<Value>) -> Result<SampleRef, Problem> {
    let (line, column) = line_col(text, v.span().start);
    let problem = |code, message: String| Problem {
        line,
        column,
        code,
        message,
    };
    let source = match v.into_inner() {
        Value::String(path) if path.is_empty() => {
            return Err(problem("test/sample", "empty sample path".into()));
        }
        Value::String(path) => SampleSource::Path(path),
        Value::Table(t) => {
            if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "name" | "text" | "hex")) {
                return Err(problem(
                    "test/sample",
                    format!("unknown key `{k}` in an inline sample (expected `name` and `text` or `hex`)"),
                ));
            }
            let name = match t.get("name") {
                Some(Value::String(n)) if !n.is_empty() => n.clone(),
                Some(_) => {
                    return Err(problem(
                        "test/sample",
                        "an inline sample's `name` must be a non-empty string".into(),
                    ))
                }
                None => {
                    return Err(problem(
                        "test/sample",
                        "an inline sample needs a `name` (failures name the sample by it)".into(),
                    ))
                }
            };
            let bytes = match (t.get("text"), t.get("hex")) {
                (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
                (None, Some(Value::String(h))) => decode_hex(h).map_err(|m| {
                    problem("test/hex", format!("inline sample {name:?}: {m}"))
                })?,
                (Some(_), Some(_)) => {
                    return Err(problem(
                        "test/sample",
                        format!("inline sample {name:?} has both `text` and `hex`: give one"),
                    ))
                }
                (None, None) => {
                    return Err(problem(
                        "test/sample",
                        format!("inline sample {name:?} needs `text` or `hex`"),
                    ))
                }
                _ => {
                    return Err(problem(
                        "test/sample",
                        format!("inline sample {name:?}: `text` and `hex` must be strings"),
                    ))
                }
            };
            SampleSource::Inline { name, bytes }
        }
        other => {
            return Err(problem(
                "test/sample",
                format!(
                    "a sample is a path or an inline table {{ name, text }} / {{ name, hex }}, not a{} {}",
                    if other.type_str().starts_with(['a', 'i']) { "n" } else { "" },
                    other.type_str()
                ),
            ))
        }
    };
    Ok(SampleRef {
        source,
        line,
        column,
    })
}

/// Hex digits, case-insensitive; ASCII whitespace between them is ignored so that long
/// samples can be wrapped in a multi-line string.
fn decode_hex(h: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = h.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if let Some(i) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
        let bad = h
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .nth(i)
            .unwrap_or('?');
        return Err(format!("bad hex character {bad:?} at digit {}", i + 1));
    }
    if digits.len() % 2 == 1 {
        return Err(format!(
            "odd number of hex digits ({}): every byte needs two",
            digits.len()
        ));
    }
    hex::decode(&digits).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(usize, usize, &'static str, String)> {
        let (_, problems) = parse(text);
        assert!(!problems.is_empty(), "problems expected");
        problems
            .into_iter()
            .map(|p| (p.line, p.column, p.code, p.message))
            .collect()
    }

    #[test]
    fn paths_and_inline_samples_with_their_lines() {
        let text = r#"# a comment
[[test]]
signature = "Sig_A"
detect = [
  "../samples/a.txt",
  { name = "inline-text", text = "abc" },
]
ignore = [{ name = "bytes", hex = "58 35 4f\n21" }]

[[test]]
signature = "Sig.B-1"
ignore = ["b.bin"]
"#;
        let (tests, problems) = parse(text);
        assert_eq!(problems, []);
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[0].signature, "Sig_A");
        assert_eq!((tests[0].line, tests[0].column), (3, 13));
        assert_eq!(
            tests[0].detect,
            [
                SampleRef {
                    source: SampleSource::Path("../samples/a.txt".into()),
                    line: 5,
                    column: 3
                },
                SampleRef {
                    source: SampleSource::Inline {
                        name: "inline-text".into(),
                        bytes: b"abc".to_vec()
                    },
                    line: 6,
                    column: 3
                },
            ]
        );
        assert_eq!(
            tests[0].ignore[0].source,
            SampleSource::Inline {
                name: "bytes".into(),
                bytes: b"X5O!".to_vec()
            }
        );
        assert_eq!(tests[0].ignore[0].line, 8);
        assert_eq!((tests[1].line, tests[1].detect.len()), (11, 0));
        assert_eq!(
            tests[1].ignore[0].source,
            SampleSource::Path("b.bin".into())
        );
    }

    #[test]
    fn toml_errors_carry_their_position() {
        // Syntax.
        let p = problems("[[test]]\nsignature = \"A\nignore = []\n");
        assert_eq!((p[0].0, p[0].2), (2, "test/toml"));
        // Unknown key inside a test (a typo of `detect`).
        let p = problems("[[test]]\nsignature = \"A\"\ndetetc = [\"x\"]\n");
        assert_eq!((p[0].0, p[0].1, p[0].2), (3, 1, "test/toml"));
        assert!(p[0].3.contains("unknown field `detetc`"), "{}", p[0].3);
        // Unknown top-level table.
        let p = problems("[[tests]]\nsignature = \"A\"\n");
        assert_eq!(p[0].0, 1);
        assert!(p[0].3.contains("unknown field `tests`"), "{}", p[0].3);
        // Missing signature, wrong type.
        let p = problems("[[test]]\ndetect = [\"x\"]\n");
        assert!(p[0].3.contains("missing field `signature`"), "{}", p[0].3);
        let p = problems("[[test]]\nsignature = 3\ndetect = [\"x\"]\n");
        assert_eq!(p[0].0, 2);
    }

    #[test]
    fn every_sample_problem_is_reported_at_its_line() {
        let text = r#"[[test]]
signature = "A"
detect = [
  { name = "x", hex = "58zz" },
  { name = "y", hex = "585" },
  { text = "no name" },
  { name = "z", text = "a", hex = "61" },
  { name = "w" },
  { name = "v", txt = "typo" },
  7,
  "",
]
[[test]]
signature = "B"
"#;
        let p = problems(text);
        let got: Vec<_> = p.iter().map(|p| (p.0, p.2)).collect();
        assert_eq!(
            got,
            [
                (4, "test/hex"),
                (5, "test/hex"),
                (6, "test/sample"),
                (7, "test/sample"),
                (8, "test/sample"),
                (9, "test/sample"),
                (10, "test/sample"),
                (11, "test/sample"),
                (14, "test/empty"),
            ]
        );
        assert!(
            p[0].3.contains("bad hex character 'z' at digit 3"),
            "{}",
            p[0].3
        );
        assert!(p[1].3.contains("odd number"), "{}", p[1].3);
        assert!(p[5].3.contains("unknown key `txt`"), "{}", p[5].3);
        assert!(p[6].3.contains("not an integer"), "{}", p[6].3);
        // The tests are still there, without the bad samples, for the caller's checks.
        let (tests, _) = parse(text);
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[0].detect.len(), 0);
    }

    #[test]
    fn an_empty_file_is_a_problem_and_no_input_panics() {
        assert_eq!(problems("")[0].2, "test/empty");
        for text in [
            "\u{feff}",
            "[[test]",
            "test = 1",
            "[[test]]\nsignature = \"\"\n",
            "\0",
        ] {
            let _ = parse(text);
        }
    }
}
