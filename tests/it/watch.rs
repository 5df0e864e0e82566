//! `ferry status --watch` beside a running `apply` (issue 15, part 4): a
//! second terminal follows the run from the journal alone, sees who holds
//! it, and stops by itself when the run stops running.

use std::time::Duration;

use serde_json::Value;

use crate::kit::*;

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn status_watch_follows_a_run_to_its_end_and_names_the_holder() {
    let fleet = Fleet::standard(2, 6);
    let users = fleet.target_users();
    // Slow enough that a 50 ms watch sees the run in progress.
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    // Started before the apply: waits for the run instead of giving up.
    let watch = w
        .ferry(&["status", "fleet.yaml", "--watch=50ms", "--output", "json"])
        .stdout(std::fs::File::create(w.dir.path().join("watch.out")).unwrap())
        .stderr(std::fs::File::create(w.dir.path().join("watch.err")).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let apply = w.spawn_apply(&[], "apply");
    let apply_pid = apply.id();
    let out = wait_child(apply, &w, "apply");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = wait_child(watch, &w, "watch");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let frames = lines(&out.stdout);
    assert!(frames.len() >= 3, "{} frames", frames.len());
    let states: Vec<&str> = frames
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(states.last(), Some(&"succeeded"), "{states:?}");
    let running: Vec<&Value> = frames.iter().filter(|f| f["status"] == "running").collect();
    assert!(!running.is_empty(), "never saw it running: {states:?}");
    for f in &running {
        assert_eq!(f["apply_pid"], apply_pid, "{f}");
        assert!(
            f["apply_host"].as_str().is_some_and(|h| !h.is_empty()),
            "{f}"
        );
        assert!(f["apply_since"].as_str().is_some(), "{f}");
    }
    // Counts only move forward, and the last frame has every account.
    let done: Vec<u64> = frames
        .iter()
        .map(|f| f["counts"]["transferred"].as_u64().unwrap_or(0))
        .collect();
    assert!(done.windows(2).all(|p| p[0] <= p[1]), "{done:?}");
    assert_eq!(*done.last().unwrap(), users.len() as u64);
    w.assert_exactly_once(&users);
}

/// Text frames, not on a terminal: no screen control, each view after the
/// last, the holder named while it runs.
#[test]
fn status_watch_text_without_a_terminal_prints_views_one_after_another() {
    let fleet = Fleet::standard(1, 6);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    let apply = w.spawn_apply(&[], "apply");
    // Wait for the lock to be taken, then watch.
    let t0 = std::time::Instant::now();
    while !w.dir.path().join(".ferry/fleet.journal").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = run_bounded(
        w.ferry(&["status", "fleet.yaml", "--watch=50ms"]),
        Duration::from_secs(60),
    );
    let applied = wait_child(apply, &w, "apply");
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\u{1b}'),
        "screen control without a terminal"
    );
    assert!(
        stdout.matches("(ferry status --watch, ").count() >= 1,
        "{stdout}"
    );
    assert!(stdout.contains("run: succeeded"), "{stdout}");
    if stdout.contains("run: running") {
        assert!(
            stdout.contains(" on ") && stdout.contains(", since "),
            "{stdout}"
        );
    }
}
