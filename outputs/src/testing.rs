//! Test helpers: findings, outputs and a log capture shared by the crate's tests.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use vigil_findings::{FileFacts, Finding, Resource, Severity};

use crate::config::{Event, JsonlConfig, OutputConfig, OutputKind};

/// A finding about `/srv/f<i>`.
pub(crate) fn finding(i: u64, severity: Severity) -> Finding {
    Finding::new(
        Resource {
            hostname: "web-1".into(),
            instance_id: Some("i-0abc".into()),
            ..Resource::default()
        },
        FileFacts {
            path: format!("/srv/f{i}"),
            sha256: format!("{i:064x}"),
            size: 68,
            uid: 0,
            owner: Some("root".into()),
            mtime: 1_700_000_000,
        },
        "EICAR-Test-File",
        "yara",
        severity,
        None,
        7,
        "1.0",
        1_700_000_000,
    )
}

pub(crate) fn output(name: &str, kind: OutputKind) -> OutputConfig {
    OutputConfig {
        name: name.into(),
        min_severity: Severity::Low,
        events: Event::ALL.into_iter().collect::<BTreeSet<_>>(),
        kind,
    }
}

pub(crate) fn jsonl_output(name: &str) -> OutputConfig {
    output(
        name,
        OutputKind::Jsonl(JsonlConfig {
            path: "/nonexistent".into(),
            max_bytes: 1 << 20,
            keep: 1,
        }),
    )
}

/// Everything logged (at WARN and above) while `f` runs on this thread.
pub(crate) fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}
