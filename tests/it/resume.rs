//! Resuming (issue 5): a changed plan between runs (design §5, each case),
//! `ferry pause` / `ferry abort` from another terminal, with and without an
//! `apply` running.

use std::time::Duration;

use ferry::sim::{FailItem, FailStage};
use serde_json::Value;

use crate::kit::*;

fn any_session_running(st: &Value) -> bool {
    st["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["state"] == "RUNNING" && s["alive"] == true)
}

/// A new account in the plan is scheduled; nothing else is redone.
#[test]
fn plan_change_new_account_is_scheduled() {
    let mut fleet = Fleet::standard(2, 6);
    let full = fleet.clone();
    let extra = fleet.sources[1].accounts.pop().unwrap();
    let mut w = World::start(fleet.clone(), full.scenario(0.001));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(w.state()["accounts"].get(extra.target()).is_none());
    w.write_plan(full.clone());
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = full.target_users();
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
    let changed = w.records("plan_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(
        changed[0]["rec"]["added"],
        serde_json::json!([extra.target()])
    );
}

/// Removed accounts that never started are dropped: paused before the
/// second wave began, the plan loses an account of that wave, and the run
/// finishes without it.
#[test]
fn plan_change_removed_never_started_is_dropped() {
    // The standard policy pauses on the failure below.
    let fleet = Fleet::standard(2, 6);
    let mut sc = fleet.scenario(0.001);
    sc.faults.fail_items.insert(
        "s1u05".into(),
        FailItem {
            message: "Disk quota exceeded".into(),
            times: 1,
            stage: FailStage::Transfer,
        },
    );
    let mut w = World::start(fleet.clone(), sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // old2 runs after old1: nothing of it started.
    assert!(w.state()["accounts"].get("s2u02").is_none());
    let mut v2 = fleet.clone();
    v2.sources[1].accounts.retain(|a| a.user != "s2u02");
    w.write_plan(v2.clone());
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = v2.target_users();
    w.assert_exactly_once(&users);
    w.assert_status_succeeded(&users);
    assert!(
        w.state()["accounts"].get("s2u02").is_none(),
        "dropped account moved"
    );
    let changed = w.records("plan_changed");
    assert_eq!(changed[0]["rec"]["dropped"], serde_json::json!(["s2u02"]));
    assert!(w.status()["accounts"].get("s2u02").is_none());
}

/// An account whose transfer began and whose entry changed is refused with
/// exit 2, naming it; nothing is sent.
#[test]
fn plan_change_started_and_changed_is_refused() {
    let fleet = Fleet::standard(1, 5);
    let mut w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut v2 = fleet.clone();
    let a = v2.sources[0]
        .accounts
        .iter_mut()
        .find(|a| a.user == "s1u02")
        .unwrap();
    a.package = Some("silver".into());
    w.write_plan(v2);
    let requests = w.state()["requests"].clone();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s1u02"), "{err}");
    assert!(err.contains("was transferred"), "{err}");
    assert!(err.contains("package gold → silver"), "{err}");
    assert_eq!(w.state()["requests"], requests);
}

/// `ferry pause` while `apply` runs: the apply records who asked, pauses
/// its sessions on the server and exits 3; `apply` again finishes.
#[test]
fn ferry_pause_during_a_run_then_apply_finishes() {
    let fleet = Fleet::standard(2, 10);
    let w = World::start(fleet.clone(), fleet.scenario(0.01));
    let child = w.spawn_apply(&["--output", "json"], "run");
    w.wait_for(
        Duration::from_secs(30),
        "a running session",
        any_session_running,
    );
    let out = run_bounded(w.ferry(&["pause", "fleet.yaml"]), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("pid {}", child.id())),
        "{}",
        text(&out)
    );
    let out = wait_child(child, &w, "run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let req = w.records("pause_requested");
    assert_eq!(req.len(), 1);
    let by = &req[0]["rec"]["by"];
    assert!(by["user"].is_string() && by["host"].is_string() && by["pid"].is_number());
    assert!(
        req[0]["rec"]["reason"]
            .as_str()
            .unwrap()
            .contains("ferry pause")
    );
    let ev = events(&out);
    assert_eq!(ev.last().unwrap()["status"], "paused");
    assert_eq!(w.status()["status"], "paused");
    for s in w.state()["sessions"].as_array().unwrap() {
        assert!(
            ["PAUSED", "COMPLETED"].contains(&s["state"].as_str().unwrap()),
            "{s}"
        );
    }
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
}

/// `ferry pause` with no `apply` running (it was killed): the pause takes
/// the lock, pauses the recorded live sessions itself and records it;
/// `apply` then resumes them.
#[test]
fn ferry_pause_without_a_running_apply() {
    let fleet = Fleet::standard(2, 10);
    let w = World::start(fleet.clone(), fleet.scenario(0.05));
    let mut child = w.spawn_apply(&[], "run");
    w.wait_for(
        Duration::from_secs(30),
        "a running session",
        any_session_running,
    );
    kill9(&mut child);
    let out = run_bounded(w.ferry(&["pause", "fleet.yaml"]), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no apply was running"));
    assert_eq!(w.records("pause_requested").len(), 1);
    assert_eq!(w.status()["status"], "paused");
    let paused = w.state()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "PAUSED")
        .count();
    let completed = w.state()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "COMPLETED")
        .count();
    assert!(paused >= 1, "{:#}", w.state()["sessions"]);
    assert!(paused + completed == w.state()["sessions"].as_array().unwrap().len());
    let ctl = w.records("session_control");
    assert!(
        ctl.iter()
            .any(|c| c["rec"]["action"] == "pause" && c["rec"]["result"] == "ok"),
        "{ctl:?}"
    );
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
}

/// `ferry abort` while `apply` runs: exit 5; `apply` refuses until
/// `--restart`, which finishes the run.
#[test]
fn ferry_abort_during_a_run() {
    let fleet = Fleet::standard(2, 10);
    let w = World::start(fleet.clone(), fleet.scenario(0.01));
    let child = w.spawn_apply(&[], "run");
    w.wait_for(
        Duration::from_secs(30),
        "a running session",
        any_session_running,
    );
    let out = run_bounded(w.ferry(&["abort", "fleet.yaml"]), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = wait_child(child, &w, "run");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_eq!(w.records("abort_requested").len(), 1);
    assert_eq!(w.status()["status"], "aborted");
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let out = w.apply(&["--restart"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    w.assert_exactly_once(&users);
    w.assert_status_succeeded(&users);
}
