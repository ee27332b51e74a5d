//! vigil-compiler: lint rule sources and build them into signed vigil databases.
//!
//! Input: a rules directory of YARA (`.yar`, `.yara`) and ClamAV-format (`.ndb`, `.hdb`, `.hsb`,
//! `.fp`, `.sfp`) files. Output: [`Diagnostic`]s with file:line:col and a stable code, and a
//! database built through `vigil-format`. Main entry points: [`lint::lint`], [`build::build`].
//! It never builds from sources that have lint errors, and the bytes it writes depend only on
//! the sources, the key and the version (never on file order, paths outside the rules
//! directory, the clock or the machine). A library only: it knows nothing of command lines,
//! key files, repositories or async runtimes, so anything that builds databases can embed it.

pub mod build;
pub mod catalog;
pub mod diag;
pub mod lint;
pub mod sources;
mod yara;

pub use build::{build, build_with, BuildError, BuildOptions, Built};
pub use catalog::{Catalog, CatalogError, Signature, SignatureKind};
pub use diag::{Diagnostic, OutputFormat, Severity};
pub use lint::{lint, lint_with, LintOptions, LintResult};
pub use sources::{RuleFile, RuleKind, SourceError};
pub use yara::{check_yara_sources, check_yara_sources_with, YaraRejected, SLOW_YARA_CODES};
