//! `vigil-build check`: the goodware false-positive check and cost profile of vigil-gate, with
//! the command line's parts: keys and files, the live baseline fetched through TUF, the
//! progress bar, and exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args as ClapArgs, ValueEnum};
use vigil_gate::check::{self, CheckError, CheckRequest, Goodware, Progress, Rules};
use vigil_repository::layout::TargetInfo;

use super::files::{load_public, read};
use super::{Format, EXIT_ERROR, EXIT_OK};

/// New false positives, a rule over the cost budget, or a rule yara-x flags as slow.
pub const EXIT_GATE: u8 = 1;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProgressMode {
    /// A progress bar when stderr is a terminal.
    Auto,
    /// A bar on a terminal, else a line every few seconds (CI logs).
    Always,
    Never,
}

#[derive(ClapArgs, Clone, Debug)]
pub struct CheckArgs {
    /// Rules directory to check (linted with slow rules as warnings and built in memory with a
    /// throwaway key); or give --db.
    #[arg(long, conflicts_with = "db", required_unless_present = "db")]
    pub rules: Option<PathBuf>,
    /// A built database to check (verified with --pubkey).
    #[arg(long, requires = "pubkey")]
    pub db: Option<PathBuf>,
    /// Trusted public key of --db and of the baseline; repeat for several.
    #[arg(long)]
    pub pubkey: Vec<PathBuf>,
    /// Goodware: directories (repeat for several) or one s3://BUCKET/PREFIX.
    #[arg(long, required = true)]
    pub goodware: Vec<String>,
    /// S3-compatible endpoint for s3:// goodware (MinIO, Ceph, R2).
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// Address buckets in the path, not the host name.
    #[arg(long)]
    pub s3_path_style: bool,
    #[arg(long)]
    pub s3_region: Option<String>,
    /// The database live today: only false positives it does not have fail.
    #[arg(long, conflicts_with = "baseline_url", requires = "pubkey")]
    pub baseline: Option<PathBuf>,
    /// Take the baseline from a served repository (its newest full database, through TUF).
    #[arg(long, requires_all = ["root", "pubkey"])]
    pub baseline_url: Option<String>,
    /// The trusted root.json of --baseline-url.
    #[arg(long, requires = "baseline_url")]
    pub root: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Scan threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Per-rule budget: YARA milliseconds per GB of goodware.
    #[arg(long, default_value_t = check::DEFAULT_MAX_RULE_MS_PER_GB)]
    pub max_rule_ms_per_gb: f64,
    /// Rows of each cost table.
    #[arg(long, default_value_t = check::DEFAULT_TOP)]
    pub top: usize,
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    let trusted = args
        .pubkey
        .iter()
        .map(|p| load_public(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rules = match (&args.rules, &args.db) {
        (Some(dir), _) => Rules::Sources(vec![dir.clone()]),
        (None, Some(db)) => Rules::Database(read(db)?),
        (None, None) => anyhow::bail!("give --rules or --db"),
    };
    let baseline = match (&args.baseline, &args.baseline_url, &args.root) {
        (Some(file), _, _) => Some(read(file)?),
        (None, Some(url), Some(root)) => Some(live_database(url, root)?),
        _ => None,
    };
    let mut goodware = Goodware::parse(&args.goodware)?;
    if let Goodware::S3(s3) = &mut goodware {
        s3.endpoint = args.s3_endpoint.clone();
        s3.path_style = args.s3_path_style;
        s3.region = args.s3_region.clone();
    }
    let bar = ProgressSink::new(args.progress);
    let progress = |p: Progress| bar.show(p);
    let mut req = CheckRequest::new(rules, goodware);
    req.trusted = trusted;
    req.baseline = baseline;
    if let Some(t) = args.threads {
        req.threads = t.max(1);
    }
    req.max_rule_ms_per_gb = args.max_rule_ms_per_gb;
    req.top = args.top;
    req.progress = Some(&progress);
    let outcome = check::run(&req);
    bar.done();
    let report = match outcome {
        Ok(r) => r,
        Err(CheckError::Lint(result)) => {
            for d in &result.diagnostics {
                println!("{}", d.render(args.format.into()));
            }
            eprintln!(
                "error: check refused: the rules do not compile ({} error(s) above)",
                result.errors()
            );
            return Ok(EXIT_ERROR);
        }
        Err(e) => return Err(e.into()),
    };
    print!("{}", check::render(&report, args.format.into()));
    if !matches!(args.format, Format::Human) {
        eprintln!(
            "check: {}",
            if report.passed() {
                "passed".to_string()
            } else {
                format!("FAILED: {}", report.failures().join(", "))
            }
        );
    }
    Ok(if report.passed() { EXIT_OK } else { EXIT_GATE })
}

/// The newest full database a served repository lists, downloaded through tough (which checks
/// the root chain, signatures, expiry, and the target's length and hashes while reading). Its
/// own signature is checked with --pubkey when the check loads it.
fn live_database(url: &str, root: &Path) -> anyhow::Result<Vec<u8>> {
    let trusted = read(root)?;
    let mut base = url::Url::parse(url).with_context(|| format!("--baseline-url {url}"))?;
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let repo =
            tough::RepositoryLoader::new(&trusted, base.join("metadata/")?, base.join("targets/")?)
                .transport(tough::HttpTransportBuilder::new().build())
                .load()
                .await
                .with_context(|| format!("loading the repository at {base}"))?;
        let newest = repo
            .targets()
            .signed
            .targets
            .iter()
            .filter_map(|(name, t)| match TargetInfo::from_custom(&t.custom) {
                Some(TargetInfo::Full { db_version, .. }) => Some((db_version, name.clone())),
                _ => None,
            })
            .max_by_key(|(v, _)| *v);
        let Some((version, name)) = newest else {
            anyhow::bail!("the repository at {base} lists no full database");
        };
        let stream = repo
            .read_target(&name)
            .await
            .with_context(|| format!("fetching {}", name.raw()))?
            .with_context(|| format!("{} is not listed in targets.json", name.raw()))?;
        let bytes = tough::IntoVec::into_vec(stream)
            .await
            .with_context(|| format!("downloading {}", name.raw()))?;
        eprintln!(
            "baseline: version {version} from {base} ({} bytes, TUF-verified)",
            bytes.len()
        );
        Ok(bytes)
    })
}

/// Where progress goes: an indicatif spinner on a terminal, a line every few seconds with
/// `--progress always` elsewhere, or nowhere.
enum ProgressSink {
    None,
    Bar(indicatif::ProgressBar, Instant),
    Lines(Mutex<Instant>, Instant),
}

impl ProgressSink {
    fn new(mode: ProgressMode) -> Self {
        let tty = std::io::stderr().is_terminal();
        match (mode, tty) {
            (ProgressMode::Never, _) | (ProgressMode::Auto, false) => Self::None,
            (_, true) => {
                let bar = indicatif::ProgressBar::new_spinner();
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("{spinner} check: {msg} [{elapsed}]")
                {
                    bar.set_style(style);
                }
                bar.enable_steady_tick(Duration::from_millis(200));
                Self::Bar(bar, Instant::now())
            }
            (ProgressMode::Always, false) => {
                Self::Lines(Mutex::new(Instant::now()), Instant::now())
            }
        }
    }

    fn line(p: Progress, since: Instant) -> String {
        let s = since.elapsed().as_secs_f64().max(0.001);
        format!(
            "{} files, {:.0} MB ({:.0} MB/s), {} unreadable",
            p.files,
            p.bytes as f64 / 1e6,
            p.bytes as f64 / 1e6 / s,
            p.errors
        )
    }

    fn show(&self, p: Progress) {
        match self {
            Self::None => {}
            Self::Bar(bar, since) => bar.set_message(Self::line(p, *since)),
            Self::Lines(last, since) => {
                let mut last = last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    eprintln!("check: {}", Self::line(p, *since));
                }
            }
        }
    }

    fn done(&self) {
        if let Self::Bar(bar, _) = self {
            bar.finish_and_clear();
        }
    }
}
