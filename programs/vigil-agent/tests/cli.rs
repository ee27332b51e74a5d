//! vigil-agent's command line: the shipped example config parses, configuration errors name
//! the file and the problem and exit 2, and SIGTERM stops an agent that is still waiting for
//! its first database with exit 0. (The agent at work, with updates, hot swaps, scans and
//! SIGHUP, is in tests/tests/update_e2e.rs.)
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_agent::Settings;

fn vigil_agent(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("VIGIL_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_example_parses() {
    let text = include_str!("../dist/vigil.toml.example");
    let s = Settings::parse(text, Path::new("/etc/vigil/vigil.toml")).unwrap();
    assert_eq!(s.updater.mirrors.len(), 2);
    assert_eq!(s.agent.socket, Path::new("/run/vigil/vigil.sock"));
    assert_eq!(s.agent.socket_mode, 0o660);
    assert_eq!(s.agent.socket_group.as_deref(), Some("vigil"));
    assert_eq!(s.agent.scheduled[0].name, "nightly");
    // The response sections: outputs, severities and quarantine as documented there.
    let u = &s.updater;
    let r = vigil_respond::ResponseConfig::parse(
        &u.findings,
        &u.outputs,
        &u.actions,
        &u.quarantine,
        Path::new("/etc/vigil/vigil.toml"),
        &u.database_dir,
    )
    .unwrap();
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(r.outputs[0].name, "jsonl");
    assert_eq!(r.severity.of("Unix.Trojan.Mirai-1").label(), "HIGH");
    assert_eq!(r.severity.of("PUA.Win.Tool").label(), "LOW");
    assert_eq!(r.severity.of("Win.Test.EICAR_HDB-1").label(), "MEDIUM");
    assert!(!r.quarantine.enabled);
    assert_eq!(r.quarantine.max_per_scan, 20);
}

#[test]
fn configuration_errors_exit_2_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigil.toml");
    let c = cfg.to_str().unwrap();
    let (code, err) = vigil_agent(&["--config", c]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("vigil.toml"), "{err}");

    let head = "mirrors = [\"http://127.0.0.1:9/\"]\ntrusted_root = \"r.json\"\n";
    for (section, word) in [
        ("[agent]\nsokcet = \"x.sock\"\n", "sokcet"),
        (
            "[[agent.scheduled]]\nname = \"n\"\ncron = \"61 * * * *\"\npaths = []\noutput = \"o\"\n",
            "cron",
        ),
        (
            "[agent]\nsocket_group = \"no-such-group-vigil\"\n",
            "agent.socket_group",
        ),
    ] {
        std::fs::write(&cfg, format!("{head}{section}")).unwrap();
        let (code, err) = vigil_agent(&["--config", c]);
        assert_eq!(code, 2, "{section}: {err}");
        assert!(err.contains("vigil.toml") && err.contains(word), "{err}");
    }
}

#[test]
fn sigterm_stops_an_agent_waiting_for_its_first_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigil.toml");
    std::fs::write(
        &cfg,
        "mirrors = [\"http://127.0.0.1:9/\"]\ntrusted_root = \"r.json\"\ndatabase_dir = \"db\"\n\
         [agent]\nsocket = \"vigil.sock\"\n",
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["--config", cfg.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Signal handlers are in place before it says it has no database.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).is_ok_and(|s| s.contains("no usable database")) {
        assert!(Instant::now() < deadline, "no start-up line");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(!dir.path().join("vigil.sock").exists());
}
