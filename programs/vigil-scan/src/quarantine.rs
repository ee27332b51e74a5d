//! `vigil-scan quarantine list|restore|delete|purge`: managing the quarantine store the agent
//! (or `vigil-scan --quarantine`) fills. A thin layer over `vigil-quarantine`'s `Store`; every
//! failure (unknown id, a file in the way of a restore, an unsafe store) exits 2.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use vigil_quarantine::{Store, DEFAULT_DIR};

#[derive(Subcommand)]
pub enum Command {
    /// Manage quarantined files: list, restore, delete, purge.
    Quarantine(QuarantineArgs),
}

#[derive(Args)]
pub struct QuarantineArgs {
    /// The quarantine store.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// List the quarantined files, oldest first.
    List {
        /// One JSON object per entry.
        #[arg(long)]
        json: bool,
    },
    /// Put a file back where it was, with its mode, owner and times (never over an existing file).
    Restore { id: String },
    /// Delete a quarantined file for good.
    Delete { id: String },
    /// Delete the files quarantined longer ago than DUR.
    Purge {
        /// Age, e.g. 30d, 12h, 90m, 45s.
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        older_than: Duration,
    },
}

/// Runs one management command; errors become exit code 2 in `main`.
pub fn run(Command::Quarantine(args): Command) -> anyhow::Result<u8> {
    let store = Store::open(&args.dir)?;
    match args.action {
        Action::List { json } => {
            let listing = store.scan()?;
            for d in &listing.damaged {
                eprintln!("WARNING: {d}");
            }
            for e in &listing.entries {
                if json {
                    println!("{}", serde_json::to_string(e)?);
                } else {
                    let when = jiff::Timestamp::from_second(e.quarantined_at)
                        .map(|t| t.to_string())
                        .unwrap_or_else(|_| e.quarantined_at.to_string());
                    println!(
                        "{}  {when}  {:>10}  {}  {}",
                        e.id,
                        e.size,
                        e.threat,
                        e.original_path.display()
                    );
                }
            }
        }
        Action::Restore { id } => {
            let e = store
                .restore(&id)
                .with_context(|| format!("restore {id}"))?;
            println!("{}: restored to {}", e.id, e.original_path.display());
        }
        Action::Delete { id } => {
            store.delete(&id).with_context(|| format!("delete {id}"))?;
            println!("{id}: deleted");
        }
        Action::Purge { older_than } => {
            let purged = store.purge(older_than)?;
            for e in &purged {
                println!("{}: purged ({})", e.id, e.original_path.display());
            }
            println!("{} purged", purged.len());
        }
    }
    Ok(0)
}

/// `30d`, `12h`, `90m`, `45s` (a bare number is seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    num.parse::<u64>()
        .ok()
        .filter(|_| mult > 0)
        .and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a duration like 30d, 12h, 90m or 45s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "d", "3w", "-1d", "1.5h", "99999999999999999999d", "1 d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
