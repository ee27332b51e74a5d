//! vigil-gate: the checks a release of definitions must pass before it ships.
//!
//! Between the compiler (which says the sources are well formed) and the repository (which
//! ships what it is given), the gate asks whether the definitions do what they are meant to:
//! every signature detects its positive samples and none of its negatives, nothing fires on
//! goodware, no rule is too costly to run on every file of a fleet, and a release changes
//! exactly what its author thinks. A library only: `vigil-build test`, `check` and `diff` are
//! thin commands over it.

pub mod check;
pub mod diff;
pub mod sigtest;

pub use check::{CheckError, CheckReport, CheckRequest};
