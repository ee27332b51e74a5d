//! A sink for the format modules' unit tests: records members and notes, one layer deep.

use crate::{Sink, Stop};

pub(crate) struct Record {
    pub budget: u64,
    pub members: Vec<(String, Vec<u8>)>,
    pub notes: Vec<String>,
}

impl Record {
    /// Runs `f` against a fresh recorder with a 1 MiB budget.
    pub fn run(f: impl FnOnce(&mut dyn Sink) -> Result<(), Stop>) -> Record {
        Record::with_budget(1 << 20, f)
    }

    pub fn with_budget(budget: u64, f: impl FnOnce(&mut dyn Sink) -> Result<(), Stop>) -> Record {
        let mut r = Record {
            budget,
            members: Vec::new(),
            notes: Vec::new(),
        };
        assert!(f(&mut r).is_ok());
        r
    }

    pub fn corrupt(&self) -> bool {
        self.notes.iter().any(|n| n.starts_with("corrupt"))
    }
}

impl Sink for Record {
    fn budget(&self) -> u64 {
        self.budget
    }
    fn member(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        self.members.push((name.to_string(), data.to_vec()));
        Ok(())
    }
    fn encrypted(&mut self, name: &str) {
        self.notes.push(format!("encrypted {name}"));
    }
    fn too_large(&mut self, name: &str) {
        self.notes.push(format!("too large {name}"));
    }
    fn corrupt(&mut self, why: &str) {
        self.notes.push(format!("corrupt {why}"));
    }
    fn anomaly(&mut self, heuristic: &'static str) {
        self.notes.push(heuristic.to_string());
    }
}
