//! The release gate inside `vigil-build publish --goodware`: the per-signature tests of
//! `--rules` and the goodware check of the bytes about to be published, against the live
//! release as baseline. It runs before anything is written, so a refusal leaves the
//! repository as it was.

use std::path::PathBuf;

use anyhow::Context;
use vigil_format::PublicKey;
use vigil_gate::check::{self, CheckError, CheckRequest, Goodware, Rules};
use vigil_gate::sigtest::{self, SigTestError};

use super::files::{load_public, load_secret};
use super::repo::PublishArgs;

/// What the gate found: whether publishing may go ahead, and why not.
pub struct Verdict {
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs the gate on `db` (the database publish is about to upload). `baseline` is the live
/// release, if the repository has one: only false positives it does not have fail. Blocking:
/// the check scans on its own threads.
pub fn run(args: &PublishArgs, db: &[u8], baseline: Option<Vec<u8>>) -> anyhow::Result<Verdict> {
    let format = args.format.into();
    let mut failures = Vec::new();
    if let Some(rules) = &args.rules {
        eprintln!("gate: per-signature tests of {}", rules.display());
        match sigtest::run(rules) {
            Ok(outcome) => {
                let r = sigtest::render::outcome(&outcome, format, false);
                print!("{}", r.out);
                eprint!("{}", r.err);
                if !outcome.passes(false) {
                    failures.push(format!(
                        "{} per-signature test(s) failed",
                        outcome.failures.len()
                    ));
                }
            }
            Err(SigTestError::TestFiles(problems)) => {
                for d in &problems {
                    println!("{}", d.render(format));
                }
                failures.push(format!("{} problem(s) in the test files", problems.len()));
            }
            Err(e) => return Err(e).context("running the per-signature tests"),
        }
    }

    let mut goodware = Goodware::parse(&args.goodware)?;
    if let Goodware::S3(s3) = &mut goodware {
        // A goodware bucket is reached like the repository's (same endpoint options).
        s3.endpoint = args.location.s3_endpoint.clone();
        s3.path_style = args.location.s3_path_style;
        s3.region = args.location.s3_region.clone();
    }
    let mut req = CheckRequest::new(Rules::Database(db.to_vec()), goodware);
    req.trusted = trusted_keys(args)?;
    req.baseline = baseline;
    req.max_rule_ms_per_gb = args.max_rule_ms_per_gb;
    eprintln!(
        "gate: goodware check of the database about to be published ({})",
        args.goodware.join(", ")
    );
    let report = match check::run(&req) {
        Ok(r) => r,
        // The baseline not verifying with the keys given is the operator's to fix: say how.
        Err(e @ CheckError::Baseline(_)) => {
            return Err(e).context(
                "the live release does not verify: pass the key it was signed with (--pubkey)",
            )
        }
        Err(e) => return Err(e).context("the goodware check"),
    };
    print!("{}", check::render(&report, format));
    failures.extend(report.failures());
    Ok(Verdict { failures })
}

/// The keys the database and the baseline must verify with: --pubkey, plus the public half of
/// --key (which signs what is about to be published).
fn trusted_keys(args: &PublishArgs) -> anyhow::Result<Vec<PublicKey>> {
    let mut keys = args
        .pubkey
        .iter()
        .map(|p: &PathBuf| load_public(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(spec) = &args.key {
        keys.push(load_secret(spec)?.public());
    }
    if keys.is_empty() {
        anyhow::bail!("--goodware with --db needs --pubkey (the key the database is signed with)");
    }
    Ok(keys)
}
