//! `vigil-agent outbox status [--json]` and `vigil-agent outbox flush [--timeout SECS]`: the
//! findings outbox of the config's `[findings] outbox_dir`, looked at or delivered from this
//! process (safe beside a running agent: each output's delivery is locked across processes).
//!
//! Exit codes: status 0 (2 configuration); flush 0 when every output is caught up, 1 when
//! something is still pending after the timeout, 2 configuration.

use std::path::Path;
use std::time::Duration;

use clap::Subcommand;
use vigil_client_updater::{exit, Config};
use vigil_outputs::deliver::Deliverer;
use vigil_respond::ResponseConfig;

#[derive(Subcommand)]
pub enum OutboxCmd {
    /// Per output: pending records, the oldest one's age, delivered, rejected, dropped, the
    /// last error.
    Status {
        /// One JSON array of the outputs' status on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Deliver what is pending now, waiting out back-offs up to the timeout.
    Flush {
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
    },
}

fn load(path: &Path) -> Result<ResponseConfig, String> {
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    ResponseConfig::parse(
        &cfg.findings,
        &cfg.outputs,
        &cfg.actions,
        &cfg.quarantine,
        path,
        &cfg.database_dir,
    )
    .map_err(|e| e.to_string())
}

pub fn run(config: &Path, cmd: &OutboxCmd) -> u8 {
    let rc = match load(config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return exit::CONFIG;
        }
    };
    let outbox = match vigil_respond::sinks::open_outbox(&rc) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return exit::CONFIG;
        }
    };
    match cmd {
        OutboxCmd::Status { json } => match outbox.status(&rc.outputs) {
            Ok(s) => {
                if *json {
                    match serde_json::to_string_pretty(&s) {
                        Ok(t) => println!("{t}"),
                        Err(e) => {
                            tracing::error!("{e}");
                            return exit::LOCAL;
                        }
                    }
                } else {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    println!("outbox {}", outbox.dir().display());
                    for o in &s {
                        let oldest = o
                            .oldest_queued_at
                            .map(|t| format!("{} s ago", now.saturating_sub(t)))
                            .unwrap_or_else(|| "-".into());
                        println!(
                            "{} ({}): pending {}, oldest {}, delivered {}, rejected {}, dropped {}, last error: {}",
                            o.name,
                            o.kind,
                            o.pending,
                            oldest,
                            o.delivered,
                            o.rejected,
                            o.dropped,
                            o.last_error.as_deref().unwrap_or("-")
                        );
                    }
                }
                0
            }
            Err(e) => {
                tracing::error!("{e}");
                exit::LOCAL
            }
        },
        OutboxCmd::Flush { timeout } => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("starting the async runtime: {e}");
                    return exit::LOCAL;
                }
            };
            let host = vigil_respond::resource::resolve(&rc.findings);
            let ctx = vigil_outputs::SinkContext {
                region: host.region,
                account_id: host.account_id,
            };
            let statuses = rt.block_on(async {
                let sinks = vigil_outputs::sinks::build(&rc.outputs, &ctx).await?;
                let d = Deliverer::new(outbox.clone(), sinks);
                Ok::<_, vigil_outputs::OutputError>(d.flush(Duration::from_secs(*timeout)).await)
            });
            match statuses {
                Ok(s) => {
                    let pending: u64 = s.iter().map(|o| o.pending).sum();
                    for o in &s {
                        println!(
                            "{}: delivered {}, pending {}{}",
                            o.name,
                            o.delivered,
                            o.pending,
                            o.last_error
                                .as_deref()
                                .map(|e| format!(", last error: {e}"))
                                .unwrap_or_default()
                        );
                    }
                    u8::from(pending > 0)
                }
                Err(e) => {
                    tracing::error!("{e}");
                    exit::CONFIG
                }
            }
        }
    }
}
