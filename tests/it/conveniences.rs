//! CLI conveniences (issue 7.4): completions, `--help` examples, NO_COLOR.

use assert_cmd::Command;

fn ferry() -> Command {
    Command::cargo_bin("ferry").unwrap()
}

#[test]
fn bash_completions_are_valid_bash_and_know_the_commands() {
    let out = ferry().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    for sub in ["report", "completions", "validate", "plan"] {
        assert!(
            script.contains(sub),
            "{sub} missing from the bash completions"
        );
    }
    assert!(script.contains("--html"));
    // bash parses it (syntax only) and defines the completion function.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.bash");
    std::fs::write(&path, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p ferry", path.display()))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bash rejected the script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("ferry"));
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
        ("elvish", "edit:completion:arg-completer[ferry]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = ferry().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        assert!(script.contains("report"), "{shell}: no `report`");
    }
    let out = ferry().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is an invalid argument"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn help_shows_examples_and_no_colour_when_piped_or_no_color() {
    for sub in ["report", "completions"] {
        let out = ferry()
            .args([sub, "--help"])
            .env("NO_COLOR", "1")
            .env("CLICOLOR_FORCE", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Examples:\n  ferry "), "{help}");
        assert!(!help.contains('\x1b'), "colour despite NO_COLOR: {help:?}");
    }
}

/// `--output json`: stdout carries only JSON events (ts, event, fields;
/// run_finished last) and the human lines and summary go to stderr, plain
/// (not a terminal), without colour codes.
#[test]
fn json_events_on_stdout_people_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("single.yaml");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/single-server.yaml"),
        &plan,
    )
    .unwrap();
    let out = ferry()
        .current_dir(dir.path())
        .args(["apply", "--simulate", "single.yaml", "--output", "json"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(events.len() > 5);
    for e in &events {
        humantime::parse_rfc3339(e["ts"].as_str().unwrap()).unwrap();
        assert!(e["event"].is_string());
    }
    let started = events
        .iter()
        .position(|e| e["event"] == "run_started")
        .expect("run_started");
    assert!(
        events[..started].iter().all(|e| e["event"] == "warning"),
        "only warnings before run_started: {stdout}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_finished");
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["accounts"]["transferred"], last["accounts"]["total"]);
    // People read stderr: plain lines, then the summary.
    assert!(stderr.contains("] run started: single.yaml"), "{stderr}");
    assert!(stderr.contains("transferred shop2"), "{stderr}");
    assert!(stderr.contains("run succeeded in"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}
