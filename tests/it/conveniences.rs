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
