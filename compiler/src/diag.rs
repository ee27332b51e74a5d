//! Diagnostics and their three renderings: rustc-like text for people, one JSON object per
//! line for tools, and GitHub workflow commands for pull-request annotations.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Path as the user named it (the rules directory joined with the file's relative path).
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub severity: Severity,
    /// Stable code: `ndb/...`, `hash/...`, `source/...`, `dup/...`, or `yara/E0xx` from yara-x.
    pub code: String,
    pub message: String,
    /// The source line, for the caret rendering; not part of the JSON.
    #[serde(skip)]
    pub source_line: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
    Github,
}

impl Diagnostic {
    /// A source file that is not UTF-8, at byte `at`: positioned against the bytes that could
    /// be read, since the text itself cannot be.
    pub fn not_utf8(path: &str, at: usize) -> Self {
        let (line, column) = match std::fs::read(path) {
            Ok(bytes) => {
                let valid = String::from_utf8_lossy(&bytes[..at.min(bytes.len())]).into_owned();
                line_col(&valid, valid.len())
            }
            Err(_) => (1, 1),
        };
        Diagnostic {
            file: path.to_string(),
            line,
            column,
            severity: Severity::Error,
            code: "source/utf8".into(),
            message: "file is not valid UTF-8".into(),
            source_line: None,
        }
    }

    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Human => self.human(),
            OutputFormat::Json => serde_json::to_string(self).unwrap_or_default(),
            OutputFormat::Github => self.github(),
        }
    }

    fn human(&self) -> String {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!(
            "{level}[{}]: {}\n  --> {}:{}:{}\n",
            self.code, self.message, self.file, self.line, self.column
        );
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            // Tabs keep their width under the caret so it lines up in a terminal.
            let lead: String = src
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = write!(out, "{pad} |\n{num} | {src}\n{pad} | {lead}^\n");
        }
        out
    }

    fn github(&self) -> String {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        format!(
            "::{level} file={},line={},col={},title={}::{}",
            escape_property(&self.file),
            self.line,
            self.column,
            escape_property(&self.code),
            escape_data(&self.message)
        )
    }
}

/// GitHub's workflow-command escaping for the message part.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// ... and for property values, which also end at `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// 1-based line and character column of a byte offset in `text`.
pub fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let byte = byte.min(text.len());
    let before = &text[..floor_char_boundary(text, byte)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The text of 1-based line `line`, for the caret rendering.
pub fn source_line(text: &str, line: usize) -> Option<String> {
    text.lines().nth(line.checked_sub(1)?).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Diagnostic {
        Diagnostic {
            file: "r/a,b.ndb".into(),
            line: 3,
            column: 5,
            severity: Severity::Error,
            code: "ndb/hex".into(),
            message: "bad hex character 'g'\n100%".into(),
            source_line: Some("X:0:g".into()),
        }
    }

    #[test]
    fn renderings() {
        assert_eq!(
            d().render(OutputFormat::Human),
            "error[ndb/hex]: bad hex character 'g'\n100%\n  --> r/a,b.ndb:3:5\n  |\n3 | X:0:g\n  |     ^\n"
        );
        assert_eq!(
            d().render(OutputFormat::Github),
            "::error file=r/a%2Cb.ndb,line=3,col=5,title=ndb/hex::bad hex character 'g'%0A100%25"
        );
        let v: serde_json::Value =
            serde_json::from_str(&d().render(OutputFormat::Json)).expect("json");
        assert_eq!(v["line"], 3);
        assert_eq!(v["severity"], "error");
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
