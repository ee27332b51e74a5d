//! The delivery loop: each output reads the outbox from its own cursor and sends batches to
//! its [`Sink`]. The cursor moves only over the records the receiver confirmed (Delivered) or
//! refused for good (Rejected: counted and logged with the finding id, never retried), in
//! order, so delivery is at least once: a process killed mid-delivery sends the unconfirmed
//! batch again on restart, and receivers deduplicate by the delivery id. A record to retry (or
//! a failed batch) stops that output until its back-off deadline ([`crate::backoff`]); the
//! outputs run concurrently, so one receiver down never delays another. An output that another
//! process is delivering (it holds the output's lock) is skipped.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::config::OutputConfig;
use crate::outbox::{Outbox, OutputStatus};
use crate::sink::{EntryResult, SendError, Sink};

/// How often a cursor moved by successful batches is written down. A crash loses at most this
/// much progress, which at-least-once delivery resends; writing after every single-record
/// webhook POST would cost an fsync each.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// The longest one output's pass runs before letting `run` look at its stop signal.
const PASS_BUDGET: Duration = Duration::from_secs(10);
/// How often `run` looks at the outbox without a `notify`: another process (a cron
/// `vigil-scan --config`) may have appended.
const POLL: Duration = Duration::from_secs(5);

struct Slot {
    cfg: OutputConfig,
    sink: Arc<dyn Sink>,
    backoff: Mutex<Backoff>,
}

impl Slot {
    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Deliverer {
    outbox: Arc<Outbox>,
    slots: Vec<Slot>,
    wake: tokio::sync::Notify,
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Deliverer {
    /// Registers every output with the outbox (so the bound counts what each loses) and
    /// prepares their delivery.
    pub fn new(outbox: Arc<Outbox>, outputs: Vec<(OutputConfig, Arc<dyn Sink>)>) -> Deliverer {
        for (cfg, _) in &outputs {
            if let Err(e) = outbox.register(cfg) {
                tracing::warn!(output = %cfg.name, error = %e, "cannot register the output's cursor");
            }
        }
        Deliverer {
            outbox,
            slots: outputs
                .into_iter()
                .map(|(cfg, sink)| Slot {
                    cfg,
                    sink,
                    backoff: Mutex::new(Backoff::default()),
                })
                .collect(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Wakes [`Deliverer::run`]: something was appended.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    fn configs(&self) -> Vec<OutputConfig> {
        self.slots.iter().map(|s| s.cfg.clone()).collect()
    }

    fn status(&self) -> Result<Vec<OutputStatus>, crate::OutputError> {
        self.outbox.status(&self.configs())
    }

    fn status_or_error(&self) -> Vec<OutputStatus> {
        self.status().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the outbox's status");
            self.slots
                .iter()
                .map(|s| OutputStatus {
                    name: s.cfg.name.clone(),
                    kind: s.cfg.kind.type_name().to_owned(),
                    last_error: Some(e.to_string()),
                    ..OutputStatus::default()
                })
                .collect()
        })
    }

    async fn pass_all(&self) {
        futures::future::join_all(self.slots.iter().map(|s| self.pass(s))).await;
        if let Err(e) = self.outbox.collect() {
            tracing::warn!(error = %e, "cannot delete delivered outbox segments");
        }
    }

    /// One pass over every output not in back-off; the status after it.
    pub async fn deliver_once(&self) -> Vec<OutputStatus> {
        self.pass_all().await;
        self.status_or_error()
    }

    /// Delivers until every output has caught up or `within` has passed, waiting out
    /// back-offs meanwhile.
    pub async fn flush(&self, within: Duration) -> Vec<OutputStatus> {
        let deadline = Instant::now() + within;
        loop {
            self.pass_all().await;
            let status = self.status();
            let done = matches!(&status, Ok(s) if s.iter().all(|o| o.pending == 0));
            let now = Instant::now();
            if done || now >= deadline {
                return status.unwrap_or_else(|_| self.status_or_error());
            }
            // An output in back-off waits for its deadline; one without (another process
            // holds its lock) is looked at again shortly.
            let next = self
                .next_deadline(now)
                .unwrap_or(now + Duration::from_millis(100))
                .min(deadline)
                .max(now + Duration::from_millis(10));
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// Delivers until `stop` completes: a pass at each [`Deliverer::notify`], at the next
    /// back-off deadline, and every few seconds for other processes' appends.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = self.pass_all() => {}
            }
            let now = Instant::now();
            let next = self
                .next_deadline(now)
                .unwrap_or(now + POLL)
                .min(now + POLL);
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.backoff().until(now))
            .min()
    }

    /// Delivers one output until it has caught up, failed, or used its time budget.
    async fn pass(&self, slot: &Slot) {
        let name = &slot.cfg.name;
        if slot.backoff().until(Instant::now()).is_some() {
            return;
        }
        let fail = |reason: &str, after: Option<Duration>, fatal: bool| {
            let wait = slot.backoff().fail(after, fatal, Instant::now());
            if fatal {
                tracing::error!(output = %name, error = %reason, retry_in = ?wait, "delivery failed and retrying the same request cannot help: fix the output; its findings stay queued");
            } else {
                tracing::warn!(output = %name, error = %reason, retry_in = ?wait, "delivery failed; will retry");
            }
        };
        let _lock = match self.outbox.try_lock_output(name) {
            Ok(Some(l)) => l,
            Ok(None) => return, // Another process is delivering this output.
            Err(e) => return fail(&e.to_string(), None, false),
        };
        let mut st = match self.outbox.load_state(&slot.cfg) {
            Ok(s) => s,
            Err(e) => return fail(&e.to_string(), None, false),
        };
        let started = Instant::now();
        let mut saved_at = started;
        let mut dirty = false;
        let max = slot.sink.max_batch().max(1);
        loop {
            let p = match self.outbox.pending(&slot.cfg, st.cursor, max) {
                Ok(p) => p,
                Err(e) => {
                    fail(&e.to_string(), None, false);
                    break;
                }
            };
            if p.records.is_empty() {
                if p.through > st.cursor {
                    st.cursor = p.through;
                    dirty = true;
                }
                break;
            }
            st.last_attempt = Some(now_secs());
            dirty = true;
            match slot.sink.send(&p.records).await {
                Ok(results) => {
                    let mut stopped = None;
                    for (i, rec) in p.records.iter().enumerate() {
                        match results.get(i) {
                            Some(EntryResult::Delivered) => {
                                st.delivered += 1;
                                st.cursor = rec.seq;
                            }
                            Some(EntryResult::Rejected(why)) => {
                                st.rejected += 1;
                                st.cursor = rec.seq;
                                tracing::warn!(output = %name, finding = %rec.finding.id, seq = rec.seq, reason = %why, "the receiver rejected a finding; it is not retried");
                            }
                            Some(EntryResult::Retry(why)) => {
                                stopped = Some(why.clone());
                                break;
                            }
                            None => {
                                stopped = Some(format!(
                                    "the output answered for {} of {} records",
                                    results.len(),
                                    p.records.len()
                                ));
                                break;
                            }
                        }
                    }
                    match stopped {
                        None => {
                            st.cursor = p.through;
                            st.last_success = Some(now_secs());
                            slot.backoff().succeed();
                        }
                        Some(reason) => {
                            st.last_error = Some(reason.clone());
                            fail(&reason, None, false);
                            break;
                        }
                    }
                }
                Err(SendError::Retry { reason, after }) => {
                    st.last_error = Some(reason.clone());
                    fail(&reason, after, false);
                    break;
                }
                Err(SendError::Fatal(reason)) => {
                    st.last_error = Some(reason.clone());
                    fail(&reason, None, true);
                    break;
                }
            }
            if saved_at.elapsed() >= SAVE_EVERY {
                if let Err(e) = self.outbox.save_state(name, &st) {
                    tracing::warn!(output = %name, error = %e, "cannot save the output's cursor");
                }
                dirty = false;
                saved_at = Instant::now();
            }
            if started.elapsed() >= PASS_BUDGET {
                break;
            }
        }
        if dirty {
            if let Err(e) = self.outbox.save_state(name, &st) {
                tracing::warn!(output = %name, error = %e, "cannot save the output's cursor");
            }
        }
    }
}
