//! vigil-update's command line: configuration errors name the file and the problem and exit 2,
//! a second updater on the same database directory exits 7, `status` reports what is
//! installed, and `--daemon` is refused with a pointer to vigil-agent. (Updates over real
//! servers are in tests/tests/update_*.rs.)
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn vigil_update(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-update"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configuration_errors_exit_2_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigil.toml");
    let c = cfg.to_str().unwrap();
    let (code, _, err) = vigil_update(&["--config", c]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("vigil.toml"), "{err}");

    std::fs::write(
        &cfg,
        "mirrors = [\"http://127.0.0.1:9/\"]\ntrusted_root = \"nope.json\"\n",
    )
    .unwrap();
    let (code, _, err) = vigil_update(&["--config", c]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nope.json") && err.contains("trusted root"),
        "{err}"
    );

    std::fs::write(
        &cfg,
        "mirrors = [\"http://127.0.0.1:9/\"]\ntrusted_root = \"r.json\"\nchecks_per_day = 0\n",
    )
    .unwrap();
    let (code, _, err) = vigil_update(&["--config", c]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("checks_per_day"), "{err}");
}

#[test]
fn a_second_updater_on_the_same_directory_exits_7() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let cfg = dir.path().join("vigil.toml");
    std::fs::write(
        &cfg,
        "mirrors = [\"http://127.0.0.1:9/\"]\ntrusted_root = \"r.json\"\ndatabase_dir = \"db\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("r.json"), "{}").unwrap();
    let lock = std::fs::File::create(db.join(".lock")).unwrap();
    lock.lock().unwrap();
    let (code, _, err) = vigil_update(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("lock"), "{err}");
    drop(lock);
    // Unlocked, it gets as far as the (unparseable) trusted root.
    let (code, _, err) = vigil_update(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn status_reports_an_empty_installation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigil.toml");
    std::fs::write(
        &cfg,
        "mirrors = [\"http://127.0.0.1:9/\"]\ntrusted_root = \"r.json\"\ndatabase_dir = \"db\"\n",
    )
    .unwrap();
    let (code, out, err) = vigil_update(&["--config", cfg.to_str().unwrap(), "status"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["installed"].is_null(), "{out}");
}

#[test]
fn daemon_is_refused_with_a_pointer_to_vigil_agent() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigil.toml");
    std::fs::write(
        &cfg,
        "mirrors = [\"http://127.0.0.1:9/\"]\ntrusted_root = \"r.json\"\n",
    )
    .unwrap();
    let (code, _, err) = vigil_update(&["--config", cfg.to_str().unwrap(), "--daemon"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("vigil-agent"), "{err}");
}

#[test]
fn a_mistake_in_the_agent_section_is_reported_here_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigil.toml");
    std::fs::write(
        &cfg,
        "mirrors = [\"http://127.0.0.1:9/\"]\ntrusted_root = \"r.json\"\n[agent]\nsokcet = \"x\"\n",
    )
    .unwrap();
    let (code, _, err) = vigil_update(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("vigil.toml") && err.contains("sokcet"),
        "{err}"
    );
}
