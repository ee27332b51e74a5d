//! `vigil-build rollout status|advance|pause|resume|revoke`: operating a staged rollout.
//!
//! Every change goes through `vigil_repository::publish::amend` (re-signed here, committed like
//! a publish: timestamp last, conditional writes). `advance --fleet URL` first reads the rolling
//! version's health from vigil-server and, on the automatic-halt rule
//! (`vigil_fleet::health::judge`), pauses the rollout instead: the server collects check-ins and
//! holds no key, CI decides and signs.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use vigil_fleet::health::{judge, HaltPolicy, Verdict, VersionHealth};
use vigil_repository::publish::{self, Amendment, Listed, OnlineKeys, PublishOptions};
use vigil_repository::rollout::{format_duration, parse_duration, Release, DEFAULT_CHANNEL};
use vigil_repository::RepoError;

use super::live::LiveArgs;
use super::repo::{channel_name, gate_override_reason, read_root, runtime, Lifetimes, Location};
use super::{EXIT_ERROR, EXIT_OK};

/// Another publisher committed first; nothing of this run was written.
pub const EXIT_CONFLICT: u8 = super::repo::EXIT_CONFLICT;
/// `advance --fleet`: the automatic halt paused the rollout.
pub const EXIT_HALTED: u8 = 6;

#[derive(Subcommand, Clone, Debug)]
pub enum RolloutCmd {
    /// Each channel's releases: stage, time to the next stage, pause, revocation (read-only,
    /// verified from --root).
    Status(StatusArgs),
    /// Move a rolling release to its next stage once the stage's hold has passed; with
    /// --fleet, first check its health and pause it (exit 6) on the automatic-halt rule.
    Advance(Box<AdvanceArgs>),
    /// Stop new clients from taking VERSION; clients that have it keep it.
    Pause {
        #[command(flatten)]
        target: Target,
        version: u64,
        #[arg(long, default_value = "paused by an operator", value_parser = gate_override_reason)]
        reason: String,
    },
    /// Let clients take a paused VERSION again.
    Resume {
        #[command(flatten)]
        target: Target,
        version: u64,
    },
    /// Mark VERSION bad: never installed again; clients on it move to the newest release that
    /// is not revoked, even an older one.
    Revoke {
        #[command(flatten)]
        target: Target,
        version: u64,
        /// Why (one line, at most 500 characters): clients log it.
        #[arg(long, value_parser = gate_override_reason)]
        reason: String,
    },
}

#[derive(ClapArgs, Clone, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// vigil-server's base URL: also show the fleet there (versions and shares per channel,
    /// hosts behind, stale, recent failures), from `/api/fleet`.
    #[arg(long, requires = "admin_token_file")]
    pub fleet: Option<String>,
    /// The admin token for --fleet: a file, or env:VAR.
    #[arg(long, value_name = "FILE|env:VAR")]
    pub admin_token_file: Option<String>,
}

/// The repository an amendment is written to, and the keys that sign it.
#[derive(ClapArgs, Clone, Debug)]
pub struct Target {
    #[command(flatten)]
    pub location: Location,
    /// Directory of TUF role keys (targets, snapshot, timestamp) and the trusted root.json.
    #[arg(long)]
    pub tuf_keys: PathBuf,
    /// Trusted root.json (default: root.json in --tuf-keys).
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub lifetimes: Lifetimes,
}

#[derive(ClapArgs, Clone, Debug)]
pub struct AdvanceArgs {
    #[command(flatten)]
    pub target: Target,
    /// The release to advance (default: the channel's newest rolling release).
    pub version: Option<u64>,
    #[arg(long, default_value = DEFAULT_CHANNEL, value_parser = channel_name, conflicts_with = "version")]
    pub channel: String,
    /// Advance now, although the stage's hold has not passed.
    #[arg(long)]
    pub force: bool,
    /// Jump to this stage (an index into the plan, 0 first) or `end` (100%), now.
    #[arg(long, value_name = "STAGE|end")]
    pub to: Option<String>,
    /// vigil-server's base URL: check the rolling version's health there first.
    #[arg(long, requires = "admin_token_file")]
    pub fleet: Option<String>,
    /// The admin token for --fleet: a file, or env:VAR.
    #[arg(long, value_name = "FILE|env:VAR")]
    pub admin_token_file: Option<String>,
    /// Halt when more than this percentage of reporting clients failed the version.
    #[arg(long, value_name = "PCT", value_parser = ppm_of_percent)]
    pub max_failure: Option<u64>,
    /// Judge only with at least this many reports (fewer: wait).
    #[arg(long)]
    pub min_reports: Option<u64>,
    /// A client that has not checked in for this long is silent (30m, 2h, 1d).
    #[arg(long, default_value = "2h", value_parser = duration)]
    pub silent_after: u64,
    /// Halt when the version's silent share exceeds the other versions' by more than this
    /// percentage.
    #[arg(long, value_name = "PCT", value_parser = ppm_of_percent)]
    pub max_excess_silent: Option<u64>,
}

fn duration(s: &str) -> Result<u64, String> {
    parse_duration(s).ok_or_else(|| "a number followed by s, m, h or d".into())
}

/// `1`, `0.5`, `2.25` (percent) to parts per million, exactly.
fn ppm_of_percent(s: &str) -> Result<u64, String> {
    let (whole, frac) = s.trim_end_matches('%').split_once('.').unwrap_or((s, ""));
    let whole = whole.trim_end_matches('%');
    if frac.len() > 4 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a percentage with at most 4 decimals, e.g. 1 or 0.5".into());
    }
    let w: u64 = whole
        .parse()
        .map_err(|_| "a percentage, e.g. 1 or 0.5".to_string())?;
    let f: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<4}").parse().unwrap_or(0)
    };
    let ppm = w.saturating_mul(10_000).saturating_add(f);
    if ppm > 1_000_000 {
        return Err("at most 100".into());
    }
    Ok(ppm)
}

pub fn run(cmd: RolloutCmd) -> anyhow::Result<u8> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            RolloutCmd::Status(args) => status(&args).await,
            RolloutCmd::Advance(args) => advance(&args).await,
            RolloutCmd::Pause {
                target,
                version,
                reason,
            } => change(&target, version, Amendment::Pause { reason }).await,
            RolloutCmd::Resume { target, version } => {
                change(&target, version, Amendment::Resume).await
            }
            RolloutCmd::Revoke {
                target,
                version,
                reason,
            } => change(&target, version, Amendment::Revoke { reason }).await,
        }
    })
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn when(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |t| t.to_string())
}

/// `canary+10% (stage 1 of canary,10%,100%), next stage due in 5h`, `paused …`, `revoked …`.
fn describe(r: &Release, now: i64) -> String {
    if let Some(rev) = &r.revoked {
        return format!("REVOKED at {}: {}", when(rev.at), rev.reason);
    }
    let Some(ro) = &r.rollout else {
        return "all clients (no rollout plan)".into();
    };
    let plan: Vec<String> = ro.stages.iter().map(ToString::to_string).collect();
    let mut s = format!(
        "{} (stage {} of {})",
        ro.describe_reach(),
        ro.stage,
        plan.join(",")
    );
    if let Some(p) = &ro.paused {
        s.push_str(&format!(", PAUSED at {}: {}", when(p.at), p.reason));
    } else if let Some(due) = ro.next_due() {
        if due > now {
            let left = u64::try_from(due - now).unwrap_or(0);
            s.push_str(&format!(", next stage due in {}", format_duration(left)));
        } else {
            s.push_str(", next stage due now");
        }
    } else {
        s.push_str(", complete");
    }
    s
}

async fn status(args: &StatusArgs) -> anyhow::Result<u8> {
    let live = &args.live;
    let root = live
        .root
        .as_ref()
        .context("give --root (the trusted root.json) with --repo or --url")?;
    let trusted = std::fs::read(root)
        .with_context(|| format!("reading the trusted root {}", root.display()))?;
    let repo = if let Some(dir) = &live.repo {
        let opts = vigil_repository::storage::S3Options {
            endpoint: live.s3_endpoint.clone(),
            path_style: live.s3_path_style,
            region: live.s3_region.clone(),
        };
        let storage = vigil_repository::storage::open(dir, &opts).await?;
        vigil_repository::tuf::load(
            vigil_repository::tuf::StorageTransport::new(storage),
            &trusted,
            false,
        )
        .await
        .with_context(|| format!("loading the repository {dir}"))?
    } else {
        let url = live.url.as_deref().context("give --repo or --url")?;
        let mut base = url::Url::parse(url).with_context(|| format!("--url {url}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        tough::RepositoryLoader::new(&trusted, base.join("metadata/")?, base.join("targets/")?)
            .transport(tough::HttpTransportBuilder::new().build())
            .load()
            .await
            .with_context(|| format!("loading the repository at {base}"))?
    };
    let listed = publish::listed_releases(&repo);
    let now = now();
    let fleet = match (&args.fleet, &args.admin_token_file) {
        (Some(base), Some(token)) => Some(fetch_fleet(base, &read_token(token)?).await?),
        _ => None,
    };
    if args.json {
        let out: Vec<serde_json::Value> = listed
            .iter()
            .map(|l| {
                let r = &l.release;
                serde_json::json!({
                    "version": l.db_version,
                    "target": l.name,
                    "sha256": l.sha256,
                    "channel": r.channel(),
                    "published": r.published,
                    "stage": r.rollout.as_ref().map(|ro| ro.describe_reach()),
                    "stage_index": r.rollout.as_ref().map(|ro| ro.stage),
                    "plan": r.rollout.as_ref().map(|ro| ro.stages.iter().map(ToString::to_string).collect::<Vec<_>>()),
                    "next_due": r.rollout.as_ref().and_then(|ro| if ro.paused.is_some() { None } else { ro.next_due() }),
                    "complete": r.rollout.as_ref().is_none_or(|ro| ro.is_complete()),
                    "paused": r.rollout.as_ref().and_then(|ro| ro.paused.as_ref()).map(|p| serde_json::json!({"at": p.at, "reason": p.reason})),
                    "revoked": r.revoked.as_ref().map(|v| serde_json::json!({"at": v.at, "reason": v.reason})),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "metadata_version": repo.timestamp().signed.version.get(),
                "releases": out,
                "fleet": fleet,
            }))?
        );
        return Ok(EXIT_OK);
    }
    let mut channels: Vec<&str> = listed.iter().map(|l| l.release.channel()).collect();
    channels.sort_unstable();
    channels.dedup();
    if channels.is_empty() {
        println!("no releases");
    }
    for ch in channels {
        println!("channel {ch}");
        for l in listed.iter().rev().filter(|l| l.release.channel() == ch) {
            let published = l.release.published.map_or_else(|| "-".into(), when);
            println!(
                "  {:>8}  published {published}  {}",
                l.db_version,
                describe(&l.release, now)
            );
        }
    }
    if let Some(f) = &fleet {
        print!("{}", fleet_lines(f));
    }
    Ok(EXIT_OK)
}

/// The fleet summary in a few lines: hosts, each channel's versions and shares, hosts behind,
/// stale and failing ones.
fn fleet_lines(f: &serde_json::Value) -> String {
    use std::fmt::Write;
    let n = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    let mut out = format!(
        "fleet: {} host(s); {} stale (no check-in or definitions older than {} h), {} recent update failure(s)\n",
        n(&f["hosts"]),
        n(&f["stale"]["total"]),
        n(&f["stale_hours"]),
        f["failures"].as_array().map_or(0, Vec::len)
    );
    for ch in f["channels"].as_array().into_iter().flatten() {
        let shares: Vec<String> = ch["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let v = s["version"]
                    .as_i64()
                    .map_or_else(|| "none".into(), |v| format!("v{v}"));
                format!(
                    "{v} {} ({} host(s))",
                    s["percent"].as_str().unwrap_or("?"),
                    n(&s["hosts"])
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  {}: {}; {} behind the version offered to all",
            ch["channel"].as_str().unwrap_or("?"),
            shares.join(", "),
            n(&ch["behind"])
        );
    }
    for x in f["failures"].as_array().into_iter().flatten().take(5) {
        let _ = writeln!(
            out,
            "  failure: {} ({}) version {}: {} {}",
            x["hostname"].as_str().unwrap_or("?"),
            x["client_id"].as_str().unwrap_or("?"),
            x["version"]
                .as_i64()
                .map_or_else(|| "-".into(), |v| v.to_string()),
            x["result"].as_str().unwrap_or("?"),
            x["message"].as_str().unwrap_or("")
        );
    }
    out
}

/// `GET {base}/api/fleet` with the admin token.
async fn fetch_fleet(base: &str, token: &str) -> anyhow::Result<serde_json::Value> {
    let mut u = url::Url::parse(base).with_context(|| format!("--fleet {base}"))?;
    if !u.path().ends_with('/') {
        u.set_path(&format!("{}/", u.path()));
    }
    let body = get_admin(&u.join("api/fleet")?, token).await?;
    serde_json::from_slice(&body).with_context(|| format!("{base}: not a fleet summary"))
}

/// A GET of vigil-server's admin API, the body of a 2xx or an error naming the status.
async fn get_admin(url: &url::Url, token: &str) -> anyhow::Result<Vec<u8>> {
    // reqwest is built with rustls but no crypto provider (tough's choice); a second install
    // is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("an HTTP client")?;
    let resp = client
        .get(url.clone())
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reading {url}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading {url}"))?;
    anyhow::ensure!(
        status.is_success(),
        "{url}: HTTP {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    Ok(body.to_vec())
}

/// Runs one amendment, mapping a lost race and the refusals to their exit codes.
async fn amend(
    target: &Target,
    version: u64,
    change: Amendment,
) -> anyhow::Result<Result<Release, u8>> {
    let storage = target.location.open().await?;
    let trusted = read_root(&target.tuf_keys, target.root.as_deref())?;
    let keys = OnlineKeys::load(&target.tuf_keys)?;
    let opts = PublishOptions {
        expiry: target.lifetimes.expiry(),
        ..PublishOptions::default()
    };
    match publish::amend(storage.clone(), &trusted, &keys, version, &change, &opts).await {
        Ok(a) => {
            eprintln!(
                "version {version}: {} (metadata version {})",
                describe(&a.after, now()),
                a.metadata_version
            );
            Ok(Ok(a.after))
        }
        Err(e @ RepoError::Conflict { .. }) => {
            eprintln!("error: {e}");
            Ok(Err(EXIT_CONFLICT))
        }
        Err(e @ (RepoError::UnknownVersion { .. } | RepoError::InvalidAmendment { .. })) => {
            eprintln!("error: {e}");
            Ok(Err(EXIT_ERROR))
        }
        Err(e) => Err(e.into()),
    }
}

async fn change(target: &Target, version: u64, change: Amendment) -> anyhow::Result<u8> {
    Ok(match amend(target, version, change).await? {
        Ok(_) => EXIT_OK,
        Err(code) => code,
    })
}

/// The release `advance` works on: VERSION, or the channel's newest rolling one.
fn pick(listed: &[Listed], version: Option<u64>, channel: &str) -> Result<Option<Listed>, String> {
    if let Some(v) = version {
        return listed
            .iter()
            .find(|l| l.db_version == v)
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("the repository lists no database version {v}"));
    }
    Ok(listed
        .iter()
        .rev()
        .filter(|l| l.release.channel() == channel && l.release.revoked.is_none())
        .find(|l| l.release.rollout.as_ref().is_some_and(|r| !r.is_complete()))
        .cloned())
}

async fn advance(args: &AdvanceArgs) -> anyhow::Result<u8> {
    let t = &args.target;
    let storage = t.location.open().await?;
    let trusted = read_root(&t.tuf_keys, t.root.as_deref())?;
    let listed = publish::releases(storage, &trusted).await?;
    let rel = match pick(&listed, args.version, &args.channel) {
        Ok(Some(l)) => l,
        Ok(None) => {
            eprintln!(
                "channel {}: no rolling release (every release is complete or revoked); nothing to do",
                args.channel
            );
            return Ok(EXIT_OK);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_ERROR);
        }
    };
    let version = rel.db_version;
    let Some(ro) = rel.release.rollout.clone() else {
        eprintln!("error: version {version} has no rollout plan: every client takes it already");
        return Ok(EXIT_ERROR);
    };
    if let Some(r) = &rel.release.revoked {
        eprintln!("error: version {version} is revoked ({})", r.reason);
        return Ok(EXIT_ERROR);
    }
    if ro.is_complete() {
        eprintln!("error: version {version}'s rollout is complete");
        return Ok(EXIT_ERROR);
    }
    if let Some(p) = &ro.paused {
        eprintln!(
            "version {version} is paused ({}): not advanced; `vigil-build rollout resume {version}` lets it go on",
            p.reason
        );
        return Ok(EXIT_OK);
    }
    let to = match args.to.as_deref() {
        None => None,
        Some("end") => Some(ro.stages.len().saturating_sub(1)),
        Some(s) => match s.parse::<usize>() {
            Ok(i) => Some(i),
            Err(_) => {
                eprintln!("error: --to takes a stage index (0 is the first) or `end`");
                return Ok(EXIT_ERROR);
            }
        },
    };
    let stage = ro.describe_reach();
    if let Some(url) = &args.fleet {
        let spec = args
            .admin_token_file
            .as_deref()
            .context("--fleet needs --admin-token-file")?;
        let token = read_token(spec)?;
        let policy = HaltPolicy {
            max_failure_ppm: args
                .max_failure
                .unwrap_or(HaltPolicy::default().max_failure_ppm),
            min_reports: args
                .min_reports
                .unwrap_or(HaltPolicy::default().min_reports),
            max_excess_silent_ppm: args
                .max_excess_silent
                .unwrap_or(HaltPolicy::default().max_excess_silent_ppm),
        };
        let channel = rel.release.channel().to_owned();
        let health = fetch_health(
            url,
            &token,
            &channel,
            version,
            ro.stage_started,
            args.silent_after,
        )
        .await?;
        eprintln!("{}", health_line(&health));
        match judge(&health, &policy) {
            Verdict::Halt(evidence) => {
                eprintln!("AUTOMATIC HALT of version {version} at {stage}: {evidence}");
                for h in health.failures.iter().chain(&health.silent_hosts) {
                    eprintln!(
                        "  {} ({}): {}{} (last seen {})",
                        h.hostname,
                        h.client_id,
                        h.result.as_str(),
                        h.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default(),
                        when(h.last_seen)
                    );
                }
                let reason: String = format!("automatic halt: {evidence}")
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(500)
                    .collect();
                return Ok(
                    match amend(t, version, Amendment::Pause { reason }).await? {
                        Ok(_) => EXIT_HALTED,
                        Err(code) => code,
                    },
                );
            }
            Verdict::Wait(why) => {
                eprintln!(
                    "version {version} at {stage}: waiting for reports ({why}); not advanced"
                );
                return Ok(EXIT_OK);
            }
            Verdict::Healthy => eprintln!("version {version} at {stage}: healthy"),
        }
    }
    let due = ro.next_due().unwrap_or(i64::MAX);
    let now = now();
    if to.is_none() && !args.force && now < due {
        let left = u64::try_from(due - now).unwrap_or(0);
        eprintln!(
            "version {version} at {stage}: the next stage is due in {} ({}); not advanced (--force to advance now)",
            format_duration(left),
            when(due)
        );
        return Ok(EXIT_OK);
    }
    Ok(match amend(t, version, Amendment::Advance { to }).await? {
        Ok(_) => EXIT_OK,
        Err(code) => code,
    })
}

/// The admin token: a file's first line, or `env:VAR`.
fn read_token(spec: &str) -> anyhow::Result<String> {
    let text = match spec.strip_prefix("env:") {
        Some(var) => std::env::var(var).with_context(|| format!("reading ${var}"))?,
        None => std::fs::read_to_string(spec).with_context(|| format!("reading {spec}"))?,
    };
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    anyhow::ensure!(!token.is_empty(), "the admin token in {spec} is empty");
    Ok(token)
}

/// `GET {base}/api/fleet/health?…` as the agreed interface between vigil-build and vigil-server.
pub fn health_url(
    base: &str,
    channel: &str,
    version: u64,
    since: i64,
    silent_after: u64,
) -> anyhow::Result<url::Url> {
    let mut base = url::Url::parse(base).with_context(|| format!("--fleet {base}"))?;
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let mut u = base.join("api/fleet/health")?;
    u.query_pairs_mut()
        .append_pair("channel", channel)
        .append_pair("version", &version.to_string())
        .append_pair("since", &since.to_string())
        .append_pair("silent_after", &silent_after.to_string());
    Ok(u)
}

async fn fetch_health(
    base: &str,
    token: &str,
    channel: &str,
    version: u64,
    since: i64,
    silent_after: u64,
) -> anyhow::Result<VersionHealth> {
    let url = health_url(base, channel, version, since, silent_after)?;
    let body = get_admin(&url, token)
        .await
        .context("reading the fleet's health")?;
    let h: VersionHealth =
        serde_json::from_slice(&body).with_context(|| format!("{url}: not a health report"))?;
    anyhow::ensure!(
        h.version == version && h.channel == channel,
        "{url} answered for {} version {}, not {channel} version {version}",
        h.channel,
        h.version
    );
    Ok(h)
}

fn health_line(h: &VersionHealth) -> String {
    format!(
        "fleet: {} version {} since {}: {} reporting, {} failed; {} run it, {} silent over {} (other versions: {} run, {} silent)",
        h.channel,
        h.version,
        when(h.since),
        h.reporting,
        h.failed,
        h.installed,
        h.silent,
        format_duration(h.silent_after_secs),
        h.others_installed,
        h.others_silent
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn percentages_become_exact_ppm() {
        assert_eq!(ppm_of_percent("1"), Ok(10_000));
        assert_eq!(ppm_of_percent("0.5"), Ok(5_000));
        assert_eq!(ppm_of_percent("2.25%"), Ok(22_500));
        assert_eq!(ppm_of_percent("100"), Ok(1_000_000));
        assert!(ppm_of_percent("101").is_err());
        assert!(ppm_of_percent("x").is_err());
        assert!(ppm_of_percent("0.123456").is_err());
        let pct = vigil_fleet::health::percent;
        assert_eq!(pct(ppm_of_percent("1").unwrap()), pct(10_000));
    }

    #[test]
    fn the_health_query_is_the_agreed_one() {
        let u = health_url(
            "http://127.0.0.1:8080/vigil",
            "stable",
            7,
            1_700_000_000,
            7200,
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/vigil/api/fleet/health?channel=stable&version=7&since=1700000000&silent_after=7200"
        );
    }

    fn listed(v: u64, plan: Option<&str>, channel: Option<&str>) -> Listed {
        Listed {
            db_version: v,
            name: format!("vigil-{v}.vdb"),
            sha256: String::new(),
            release: Release {
                channel: channel.map(str::to_owned),
                published: Some(0),
                rollout: plan.map(|p| {
                    vigil_repository::rollout::Rollout::start(
                        vigil_repository::rollout::parse_plan(p).unwrap(),
                        0,
                    )
                }),
                revoked: None,
            },
        }
    }

    #[test]
    fn advance_picks_the_channels_newest_rolling_release() {
        let l = vec![
            listed(1, None, None),
            listed(2, Some("canary,100%"), None),
            listed(3, Some("10%,100%"), Some("beta")),
            listed(4, Some("100%"), None),
        ];
        assert_eq!(pick(&l, None, "stable").unwrap().unwrap().db_version, 2);
        assert_eq!(pick(&l, None, "beta").unwrap().unwrap().db_version, 3);
        assert!(pick(&l, None, "edge").unwrap().is_none());
        assert_eq!(pick(&l, Some(1), "stable").unwrap().unwrap().db_version, 1);
        assert!(pick(&l, Some(9), "stable").is_err());
    }
}
