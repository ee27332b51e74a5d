//! Command-line parsing and one module per subcommand.

mod build;
mod check;
mod delta;
mod diff;
mod files;
mod gate;
mod inspect;
mod keygen;
mod lint;
mod live;
mod repo;
mod rollout;
mod test;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use vigil_compiler::OutputFormat;

pub const EXIT_OK: u8 = 0;
pub const EXIT_LINT: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// `--format`: the library's [`OutputFormat`], parsed here because the library knows nothing
/// of command lines. Same names (human, json, github) as the library's variants.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Github,
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Human => OutputFormat::Human,
            Format::Json => OutputFormat::Json,
            Format::Github => OutputFormat::Github,
        }
    }
}

#[derive(Parser)]
#[command(
    name = "vigil-build",
    version,
    about = "Lint, build, sign and diff vigil malware databases"
)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Report every problem in YARA and ClamAV-format rule files (exit 1 if any error).
    Lint {
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Lint a rules directory and build a signed database from it.
    Build {
        #[arg(long)]
        rules: PathBuf,
        /// Private key file, or `env:VAR` to read the key text from an environment variable.
        #[arg(long)]
        key: String,
        /// Database version: must grow with every release.
        #[arg(long)]
        version: u64,
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        #[arg(long)]
        deny_warnings: bool,
        /// zstd level for the sections (1-22).
        #[arg(long, default_value_t = vigil_format::container::DEFAULT_LEVEL)]
        level: i32,
    },
    /// Check a database's header, section hashes and signature.
    Verify {
        /// Trusted public key file; repeat for several (e.g. during a key rotation).
        #[arg(long, required = true)]
        pubkey: Vec<PathBuf>,
        db: PathBuf,
    },
    /// Print a database's version, signature counts and section sizes; with --repo or --url,
    /// those of a repository's live release and its target metadata (gate override).
    Info(inspect::InfoArgs),
    /// Generate a signing key pair: NAME.key (mode 0600) and NAME.pub.
    Keygen {
        #[arg(short = 'o', long)]
        out_dir: PathBuf,
        #[arg(long, default_value = "vigil")]
        name: String,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Make a delta that turns OLD into NEW.
    Delta {
        old: PathBuf,
        new: PathBuf,
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Build (or take) a database and publish it with deltas to a TUF repository (directory or
    /// S3). Exit 3: version not newer than the published one; 4: another publisher won.
    Publish(Box<repo::PublishArgs>),
    /// Operate a staged rollout: status, advance (with --fleet: the automatic halt, exit 6),
    /// pause, resume, revoke. Exit 2: unknown version or a transition that does not apply;
    /// 4: another publisher won (nothing written).
    #[command(subcommand)]
    Rollout(rollout::RolloutCmd),
    /// Create a TUF repository, rotate its root, renew its signatures.
    #[command(subcommand)]
    Repo(repo::RepoCmd),
    /// Run the per-signature tests (`*.test.toml`) under RULES_DIR through the real engine and
    /// print coverage. Exit 1: a test failed, the rules do not build, or (--require-coverage) a
    /// signature lacks a positive or a negative test; 2: bad test files or I/O errors.
    Test {
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Fail unless every signature has at least one positive and one negative test.
        #[arg(long)]
        require_coverage: bool,
        rules_dir: PathBuf,
    },
    /// What NEW changes against OLD or the live release: signatures added, removed and changed,
    /// section sizes, engine version (always exit 0; 2 on errors).
    Diff(diff::DiffArgs),
    /// Scan goodware with a rule set: false positives (only new ones fail against a baseline)
    /// and each rule's cost. Exit 1: new false positives, a rule over budget, a slow rule.
    Check(Box<check::CheckArgs>),
    /// Apply a delta to OLD; OUT is written only if it is exactly the database the delta names.
    Apply {
        old: PathBuf,
        delta: PathBuf,
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.cmd {
        Cmd::Lint {
            format,
            deny_warnings,
            paths,
        } => lint::run(&paths, format.into(), deny_warnings),
        Cmd::Build {
            rules,
            key,
            version,
            output,
            format,
            deny_warnings,
            level,
        } => build::run(&build::Request {
            rules,
            key,
            version,
            output,
            format: format.into(),
            deny_warnings,
            level,
        }),
        Cmd::Verify { pubkey, db } => inspect::verify(&pubkey, &db),
        Cmd::Info(args) => inspect::info(args),
        Cmd::Keygen {
            out_dir,
            name,
            force,
        } => keygen::run(&out_dir, &name, force),
        Cmd::Delta { old, new, output } => delta::make(&old, &new, &output),
        Cmd::Apply { old, delta, output } => delta::apply(&old, &delta, &output),
        Cmd::Publish(args) => repo::publish(*args),
        Cmd::Repo(cmd) => repo::repo(cmd),
        Cmd::Rollout(cmd) => rollout::run(cmd),
        Cmd::Test {
            format,
            require_coverage,
            rules_dir,
        } => test::run(&rules_dir, format.into(), require_coverage),
        Cmd::Diff(args) => diff::run(args),
        Cmd::Check(args) => check::run(*args),
    }
}
