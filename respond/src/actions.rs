//! `[[actions]]`: response hooks. For each finding an action wants (its severity at least the
//! action's `min_severity`, its event among the action's `events`), the action's `command` runs
//! with no shell, the finding's JSON on stdin, its stdout and stderr captured (bounded) and
//! logged with the exit status, and a timeout after which the command and its whole process
//! group are killed. Hooks run on a worker thread of their own, fed through a bounded queue:
//! a slow hook never holds up a scan, and a flood of findings drops hooks (loudly) rather than
//! memory.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vigil_findings::Finding;
use vigil_outputs::Event;

use crate::config::ActionConfig;

/// Captured output kept per stream; the rest is read and discarded so the child never blocks.
pub const MAX_CAPTURE: usize = 16 * 1024;
/// Hook runs waiting at most; past it new ones are dropped with a warning.
pub const QUEUE: usize = 1024;

/// How one run of a hook ended.
#[derive(Debug)]
pub struct Outcome {
    /// None when it could not be started.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub elapsed: Duration,
}

/// Runs `command` with `stdin` as its standard input, killing its process group after
/// `timeout`.
pub fn run_command(command: &[String], stdin: &[u8], timeout: Duration) -> Outcome {
    let started = Instant::now();
    let failed = |e: String| Outcome {
        status: None,
        timed_out: false,
        stdout: String::new(),
        stderr: String::new(),
        error: Some(e),
        elapsed: started.elapsed(),
    };
    let Some((program, args)) = command.split_first() else {
        return failed("empty command".into());
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills whatever it started too.
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return failed(format!("starting {program}: {e}")),
    };
    let pgid = rustix::process::Pid::from_child(&child);
    // Feed stdin and drain both outputs on threads of their own: a hook that does not read
    // its input, or fills a pipe, must not wedge this one.
    if let Some(mut w) = child.stdin.take() {
        let body = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&body);
        });
    }
    let capture = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(mut r) = r {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let room = MAX_CAPTURE.saturating_sub(kept.len());
                            kept.extend_from_slice(&buf[..n.min(room)]);
                        }
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&kept).into_owned());
            });
        }
        rx
    };
    let out = capture(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = capture(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = started + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return failed(format!("waiting for {program}: {e}")),
        }
    };
    // A descendant that left the group may still hold the pipes: wait briefly, not forever.
    let grab = |rx: std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
    };
    Outcome {
        status,
        timed_out,
        stdout: grab(out),
        stderr: grab(err),
        error: None,
        elapsed: started.elapsed(),
    }
}

struct Job {
    action: Arc<ActionConfig>,
    event: Event,
    finding: Finding,
}

/// The hook runner: one worker thread and a bounded queue.
pub struct Actions {
    actions: Vec<Arc<ActionConfig>>,
    tx: Option<SyncSender<Job>>,
    pending: Arc<(Mutex<usize>, Condvar)>,
}

impl Actions {
    /// A runner for `actions` (no thread when there are none).
    pub fn new(actions: &[ActionConfig]) -> Self {
        let pending: Arc<(Mutex<usize>, Condvar)> = Arc::default();
        let tx = (!actions.is_empty()).then(|| {
            let (tx, rx) = sync_channel::<Job>(QUEUE);
            let pending = pending.clone();
            std::thread::Builder::new()
                .name("vigil-actions".into())
                .spawn(move || {
                    for job in rx {
                        run_job(&job);
                        let (n, cv) = &*pending;
                        let mut n = n.lock().unwrap_or_else(|p| p.into_inner());
                        *n = n.saturating_sub(1);
                        cv.notify_all();
                    }
                })
                .ok()
                .map(|_| tx)
        });
        Self {
            actions: actions.iter().cloned().map(Arc::new).collect(),
            tx: tx.flatten(),
            pending,
        }
    }

    /// Queues every hook run that `events` call for; never blocks.
    pub fn submit(&self, events: &[(Event, Finding)]) {
        let Some(tx) = &self.tx else { return };
        for (event, finding) in events {
            for a in self
                .actions
                .iter()
                .filter(|a| a.wants(*event, finding.severity))
            {
                let job = Job {
                    action: a.clone(),
                    event: *event,
                    finding: finding.clone(),
                };
                {
                    let mut n = self.pending.0.lock().unwrap_or_else(|p| p.into_inner());
                    *n += 1;
                }
                if let Err(e) = tx.try_send(job) {
                    let mut n = self.pending.0.lock().unwrap_or_else(|p| p.into_inner());
                    *n = n.saturating_sub(1);
                    let why = match e {
                        TrySendError::Full(_) => "the hook queue is full",
                        TrySendError::Disconnected(_) => "the hook runner stopped",
                    };
                    tracing::warn!(action = %a.name, finding = %finding.id, "{why}; hook not run");
                }
            }
        }
    }

    /// Waits until every queued hook has run, at most `within`. Returns whether they all did.
    pub fn wait_idle(&self, within: Duration) -> bool {
        let (n, cv) = &*self.pending;
        let n = n.lock().unwrap_or_else(|p| p.into_inner());
        let (n, _) = cv
            .wait_timeout_while(n, within, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *n == 0
    }
}

fn run_job(job: &Job) {
    let a = &job.action;
    let body = match serde_json::to_vec(&job.finding) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(action = %a.name, error = %e, "finding not serializable; hook not run");
            return;
        }
    };
    let o = run_command(&a.command, &body, a.timeout);
    let (id, event) = (&job.finding.id, job.event.as_str());
    let ms = o.elapsed.as_millis() as u64;
    match (&o.error, o.status) {
        (Some(e), _) => {
            tracing::error!(action = %a.name, finding = %id, event, error = %e, "hook failed to run")
        }
        _ if o.timed_out => {
            tracing::error!(action = %a.name, finding = %id, event, timeout_secs = a.timeout.as_secs(), stdout = %o.stdout.trim(), stderr = %o.stderr.trim(), "hook timed out; killed with its process group")
        }
        (None, Some(s)) if s.success() => {
            tracing::info!(action = %a.name, finding = %id, event, ms, stdout = %o.stdout.trim(), stderr = %o.stderr.trim(), "hook ran")
        }
        (None, s) => {
            tracing::warn!(action = %a.name, finding = %id, event, ms, status = ?s, stdout = %o.stdout.trim(), stderr = %o.stderr.trim(), "hook failed")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn stdin_reaches_the_command_and_output_is_captured() {
        let o = run_command(
            &sh("cat; echo oops >&2; exit 3"),
            b"{\"id\":1}",
            Duration::from_secs(10),
        );
        assert_eq!(o.stdout, "{\"id\":1}");
        assert_eq!(o.stderr, "oops\n");
        assert_eq!(o.status.unwrap().code(), Some(3));
        assert!(!o.timed_out);
    }

    #[test]
    fn a_timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The grandchild would write the marker after 2 s if the group were not killed.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let o = run_command(&sh(&script), b"", Duration::from_millis(300));
        assert!(o.timed_out);
        assert!(o.elapsed < Duration::from_secs(5), "{:?}", o.elapsed);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the hook's child outlived the timeout");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let o = run_command(
            &["/nonexistent/hook".to_string()],
            b"",
            Duration::from_secs(1),
        );
        assert!(o.error.is_some() && o.status.is_none());
    }

    #[test]
    fn large_output_is_bounded() {
        let o = run_command(
            &sh("head -c 1000000 /dev/zero"),
            b"",
            Duration::from_secs(10),
        );
        assert_eq!(o.stdout.len(), MAX_CAPTURE);
        assert!(o.status.unwrap().success());
    }
}
