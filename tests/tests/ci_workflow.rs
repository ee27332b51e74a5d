//! ci/github-workflow.yml runs the release gate, and every vigil-build command line in it uses
//! a subcommand and flags this build accepts (so renaming a flag cannot silently break CI).
//!
//! No YAML parser is in the dependency tree, so the workflow is read as text: comment lines
//! are skipped, continuation lines joined, and each `vigil-build SUBCOMMAND ...` up to the next
//! pipe, redirection or `;` is one command line.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use vigil_tests::bin;

fn workflow() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/github-workflow.yml");
    std::fs::read_to_string(path).unwrap()
}

/// Logical shell lines: comments dropped, `\`-continued lines joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

/// Each vigil-build invocation: (subcommand, the whole line, its arguments).
fn invocations(text: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for line in logical_lines(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("vigil-build ") {
            let before = rest[..at].chars().last();
            let after = &rest[at + "vigil-build ".len()..];
            rest = after;
            // A word of its own (not a path such as ~/.cargo/bin/vigil-build).
            if before.is_some_and(|c| !(c.is_whitespace() || c == '(' || c == '"')) {
                continue;
            }
            let args: Vec<String> = after
                .split_whitespace()
                .take_while(|t| {
                    !matches!(*t, "|" | "||" | "&&" | ";") && !t.starts_with('>') && *t != "2>"
                })
                .map(str::to_owned)
                .collect();
            let Some(first) = args.first() else { continue };
            if !first.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                continue;
            }
            let sub = if first == "repo" {
                format!("repo {}", args.get(1).cloned().unwrap_or_default())
            } else {
                first.clone()
            };
            out.push((sub, line.clone(), args));
        }
    }
    out
}

fn help(sub: &str) -> Result<String, String> {
    let out = Command::new(bin("vigil-build"))
        .args(sub.split(' '))
        .arg("--help")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn has_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let next = help[i + flag.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn the_workflow_runs_the_gate_with_flags_vigil_build_accepts() {
    let text = workflow();
    let calls = invocations(&text);
    let with = |sub: &str, flags: &[&str]| {
        calls
            .iter()
            .any(|(s, _, args)| s == sub && flags.iter().all(|f| args.iter().any(|a| a == f)))
    };
    // Pull requests: lint, per-signature tests with coverage, the goodware check against the
    // live baseline, the diff as Markdown into the job summary; main: publish with the gate.
    assert!(with("lint", &["--format", "github", "--deny-warnings"]));
    assert!(with("test", &["--require-coverage", "--format", "github"]));
    assert!(with("test", &["--format", "json"]));
    assert!(with(
        "check",
        &["--rules", "--goodware", "--format", "github"]
    ));
    assert!(with("check", &["--goodware", "--format", "json"]));
    assert!(text.contains("--baseline-url \"$VIGIL_URL\""));
    assert!(with("diff", &["--url", "--root", "--format", "markdown"]));
    assert!(with("diff", &["--url", "--root", "--format", "json"]));
    assert!(calls.iter().any(|(s, line, args)| s == "diff"
        && args.contains(&"markdown".to_string())
        && line.contains("$GITHUB_STEP_SUMMARY")));
    assert!(with("publish", &["--rules", "--goodware", "--key"]));
    assert!(with("repo refresh", &["--tuf-keys"]));
    assert!(text.contains("actions/cache@v4") && text.contains("ci/goodware-packages.txt"));
    assert!(text.contains("actions/upload-artifact@v4"));
    // CI never overrides the gate: that is a person's decision, recorded with a reason.
    assert!(!calls
        .iter()
        .any(|(_, _, args)| args.iter().any(|a| a == "--override-gate")));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/goodware-packages.txt");
    let packages = std::fs::read_to_string(manifest).unwrap();
    assert!(packages
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .all(|l| l
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))));

    // Every subcommand and flag exists in this build.
    let mut helps: BTreeMap<String, Result<String, String>> = BTreeMap::new();
    for (sub, line, args) in &calls {
        let h = helps.entry(sub.clone()).or_insert_with(|| help(sub));
        let h = match h {
            Ok(h) => h,
            Err(e) => panic!("vigil-build {sub} is not a subcommand: {e}\n{line}"),
        };
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            if has_flag(h, flag) {
                continue;
            }
            panic!("vigil-build {sub} has no {flag}\n{line}");
        }
    }
}

#[test]
fn command_lines_are_read_as_the_shell_would() {
    let text = "run: |\n  # vigil-build lint --not-a-flag\n  x=\"$(vigil-build info --url \"$U\" --json | jq .v)\" || x=0\n  vigil-build publish --repo r \\\n    --goodware g > out\n  path: ~/.cargo/bin/vigil-build\n  command -v vigil-build || cargo install vigil-build\n  vigil-build repo refresh --tuf-keys tuf\n";
    let calls: Vec<(String, Vec<String>)> = invocations(text)
        .into_iter()
        .map(|(s, _, a)| (s, a))
        .collect();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        calls,
        [
            (
                "info".to_string(),
                v(&["info", "--url", "\"$U\"", "--json"])
            ),
            (
                "publish".to_string(),
                v(&["publish", "--repo", "r", "--goodware", "g"])
            ),
            (
                "repo refresh".to_string(),
                v(&["repo", "refresh", "--tuf-keys", "tuf"])
            ),
        ]
    );
    assert!(has_flag("  --root <ROOT>", "--root"));
    assert!(!has_flag("  --root-dir <D>", "--root"));
}
