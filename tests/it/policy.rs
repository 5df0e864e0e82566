//! Policies on a failed account (issue 4 §3–4): pause, abort, continue,
//! item_retries, and a server crash in the middle of a run.

use ferry::sim::{CrashLeaves, FailItem, FailStage};
use std::time::Duration;

use serde_json::Value;

use crate::kit::*;

fn fail(sc: &mut ferry::sim::Scenario, user: &str, times: u32, stage: FailStage) {
    sc.faults.fail_items.insert(
        user.into(),
        FailItem {
            message: "Disk quota exceeded".into(),
            times,
            stage,
        },
    );
}

fn with_policy(mut fleet: Fleet, policy: &str) -> Fleet {
    fleet.policy = format!(
        "{policy}\n  poll_interval: 40ms\n  stall_timeout: 20s\n  \
         retries: {{attempts: 8, initial_backoff: 5ms, max_backoff: 100ms}}"
    );
    fleet
}

fn seq_of(w: &World, kind: &str) -> Vec<u64> {
    w.records(kind)
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

/// `pause`: the failing session is paused on the server (gracefully),
/// nothing new is scheduled, exit 3 with how to resume; `apply` again
/// resumes the paused session (nothing redone), puts the failed account
/// into a fresh session, and finishes.
#[test]
fn pause_then_apply_again_finishes() {
    let fleet = with_policy(Fleet::standard(2, 10), "on_error: pause");
    // s2u06 is old2's largest account: first in its session, so items are
    // still pending when its transfer fails.
    let mut sc = fleet.scenario(0.01);
    fail(&mut sc, "s2u06", 1, FailStage::Transfer);
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let ev = events(&out);
    let paused = ev
        .iter()
        .find(|e| e["event"] == "run_paused")
        .expect("run_paused event");
    assert!(
        paused["reason"].as_str().unwrap().contains("s2u06"),
        "{paused}"
    );
    assert!(paused["resume"].as_str().unwrap().contains("ferry apply"));
    let failed = ev
        .iter()
        .find(|e| e["event"] == "item_failed")
        .expect("item_failed");
    assert_eq!(failed["message"], "Disk quota exceeded");
    assert_eq!(failed["will_retry"], false);
    assert_eq!(ev.last().unwrap()["status"], "paused");
    // Why is recorded; nothing was scheduled after it; the session was
    // paused on the server and ferry waited for PAUSED.
    let req = seq_of(&w, "pause_requested");
    assert_eq!(req.len(), 1);
    assert!(
        seq_of(&w, "session_create_intent")
            .iter()
            .all(|s| *s < req[0])
    );
    let ctl = w.records("session_control");
    assert_eq!(ctl.len(), 1, "{ctl:?}");
    assert_eq!(ctl[0]["rec"]["action"], "pause");
    assert_eq!(ctl[0]["rec"]["result"], "ok");
    let st = w.state();
    let old2 = st["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "old2.example.com")
        .unwrap();
    assert_eq!(old2["state"], "PAUSED", "{old2}");
    let status = w.status();
    assert_eq!(status["status"], "paused", "{status:#}");
    assert_eq!(status["accounts"]["s2u06"]["state"], "failed");

    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
    // The paused session was resumed, not replaced; the failed account
    // went into a fresh session linked to it.
    let status = w.status();
    assert_eq!(status["accounts"]["s2u06"]["attempts"], 2);
    assert_eq!(status["accounts"]["s2u06"]["session_key"], "old2/s1#2");
    let replaced = w.records("session_replaced");
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0]["rec"]["old"], "old2/s1");
}

/// `abort`: every live session is aborted, exit 5; `apply` refuses to go on
/// without `--restart`; with it, the run completes, exactly once.
#[test]
fn abort_then_restart() {
    let fleet = with_policy(Fleet::standard(2, 10), "on_error: abort");
    let mut sc = fleet.scenario(0.01);
    fail(&mut sc, "s1u05", 1, FailStage::Transfer);
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(events(&out).iter().any(|e| e["event"] == "run_aborted"));
    assert_eq!(w.status()["status"], "aborted");
    // Every session the run created ended (aborted, or completed before).
    for s in w.state()["sessions"].as_array().unwrap() {
        let st = s["state"].as_str().unwrap();
        assert!(["ABORTED", "COMPLETED", "FAILED"].contains(&st), "{s}");
    }
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("--restart"), "{}", text(&out));

    let out = w.apply(&["--restart"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    w.assert_exactly_once(&users);
    w.assert_status_succeeded(&users);
}

/// `continue` with a failing reseller and `orphans: wait`: the reseller is
/// failed, its accounts wait, the rest is transferred, exit 4. A second
/// apply retries the reseller and then moves its accounts.
#[test]
fn continue_holds_back_a_failed_resellers_accounts() {
    let fleet = with_policy(
        Fleet::standard(2, 10),
        "on_error: continue\n  orphans: wait",
    );
    let mut sc = fleet.scenario(0.001);
    fail(&mut sc, "resell1", 1, FailStage::Restore);
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let last = events(&out).pop().unwrap();
    assert_eq!(last["status"], "partial");
    assert_eq!(last["accounts"]["failed"], 1, "{last}");
    assert_eq!(last["accounts"]["pending"], 3, "{last}");
    assert_eq!(last["failed"][0]["account"], "resell1");
    assert_eq!(last["failed"][0]["message"], "Disk quota exceeded");
    let st = w.state();
    for owned in ["s1u01", "s1u02", "s1u03"] {
        assert!(
            st["accounts"]
                .get(owned)
                .is_none_or(|a| a["restores_started"] == 0),
            "{owned} moved without its reseller: {}",
            st["accounts"][owned]
        );
    }
    let others: Vec<String> = fleet
        .target_users()
        .into_iter()
        .filter(|u| !["resell1", "s1u01", "s1u02", "s1u03"].contains(&u.as_str()))
        .collect();
    w.assert_strictly_once(&others);
    assert_eq!(w.status()["status"], "partial");

    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    w.assert_exactly_once(&users);
    w.assert_status_succeeded(&users);
}

/// `item_retries: 1` with an account that fails once: it goes to a new
/// session after its first one ended, and the run succeeds.
#[test]
fn item_retries_moves_a_once_failed_account_again() {
    let fleet = with_policy(Fleet::standard(2, 10), "on_error: pause\n  item_retries: 1");
    let mut sc = fleet.scenario(0.001);
    fail(&mut sc, "s2u04", 1, FailStage::Restore);
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    let f: Vec<&Value> = ev.iter().filter(|e| e["event"] == "item_failed").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["will_retry"], true);
    let users = fleet.target_users();
    w.assert_exactly_once(&users);
    w.assert_status_succeeded(&users);
    let a = &w.state()["accounts"]["s2u04"];
    assert_eq!(a["restores_failed"], 1, "{a}");
    // Never in parallel: the retry session was created after the first
    // one had finished on the server.
    let st = w.state();
    let holding: Vec<&Value> = st["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["key"] == "s2u04")
        })
        .collect();
    assert_eq!(holding.len(), 2, "{holding:?}");
    assert!(holding[1]["created_at"].as_f64() >= holding[0]["finished_at"].as_f64());
}

/// Waits until a session runs with some items done and some not, then
/// kills the server's transfer processes (whm-sim's `crash_at`, fired now).
fn crash_mid_run(w: &World) {
    w.wait_for(Duration::from_secs(60), "a session half done", |st| {
        st["sessions"].as_array().unwrap().iter().any(|s| {
            let items = s["items"].as_array().unwrap();
            let done = items.iter().filter(|i| i["state"] == "COMPLETED").count();
            s["state"] == "RUNNING" && s["alive"] == true && done >= 3 && done + 3 <= items.len()
        })
    });
    w.sim().crash_now();
}

/// A server crash in the middle of the run (the transfer processes die;
/// the sessions stay RUNNING with nothing running): ferry notices the stale
/// session and restarts it. Accounts whose transfer was cut go to a new
/// session (`item_retries`); an account whose *restore* was cut has no
/// final log line and is not on the target: it is reported for the
/// operator, never restored a second time.
#[test]
fn crash_mid_run_is_noticed_and_restarted() {
    let mut fleet = with_policy(
        Fleet::standard(2, 10),
        "on_error: continue\n  item_retries: 2",
    );
    fleet.policy = fleet
        .policy
        .replace("stall_timeout: 20s", "stall_timeout: 1s");
    let mut sc = fleet.scenario(0.004);
    // The forgiving variant: the dead workers' items are marked FAILED, so
    // the restarted session completes.
    sc.faults.crash_leaves = CrashLeaves::Failed;
    let w = World::start(fleet.clone(), sc);
    let child = w.spawn_apply(&[], "crash");
    crash_mid_run(&w);
    let out = wait_child(child, &w, "crash");
    let stalls = w.records("session_stalled");
    assert!(!stalls.is_empty(), "the stale session was not noticed");
    assert_eq!(stalls[0]["rec"]["action"], "restart");
    assert!(w.records("session_started").len() > w.records("start_intent").len());
    let (st, status) = (w.state(), w.status());
    let mut reported = 0;
    for u in fleet.target_users() {
        let (a, s) = (&st["accounts"][&u], &status["accounts"][&u]);
        match s["state"].as_str().unwrap() {
            "transferred" => w.assert_exactly_once(std::slice::from_ref(&u)),
            "failed" => {
                reported += 1;
                assert!(
                    s["message"].as_str().unwrap().contains("restore began"),
                    "{s}"
                );
                assert_eq!(a["restores_started"], 1, "{u}: {a}");
                assert_eq!(a["restores_completed"], 0, "{u}: {a}");
            }
            // `orphans: wait` (the default): the accounts of a reseller
            // whose restore was cut wait for it, and say so by staying
            // pending; the run is partial.
            "pending" => {
                let owner = fleet.account(&u).owner.clone();
                let owner_state = owner
                    .as_ref()
                    .map(|o| status["accounts"][o]["state"].clone());
                assert_eq!(
                    owner_state,
                    Some(serde_json::json!("failed")),
                    "{u} left pending without a failed reseller: {s}"
                );
                assert_eq!(a["restores_started"].as_u64().unwrap_or(0), 0, "{u}: {a}");
                reported += 1;
            }
            other => panic!("{u} left {other}: {s}"),
        }
    }
    let expected = if reported == 0 { 0 } else { 4 };
    assert_eq!(out.status.code(), Some(expected), "{}", text(&out));
}

/// A crash that leaves orphaned in-progress items (as the source reads): a
/// restarted session stays stuck; with `continue` ferry aborts it, moves
/// what never reached RESTORE to a new session and asks `listaccts` about
/// the rest. Nothing is restored twice; anything not transferred is
/// reported failed with a reason.
#[test]
fn crash_with_orphaned_items_is_reported_never_repeated() {
    let mut fleet = with_policy(Fleet::standard(2, 10), "on_error: continue");
    fleet.policy = fleet
        .policy
        .replace("stall_timeout: 20s", "stall_timeout: 1s");
    let sc = fleet.scenario(0.004);
    let w = World::start(fleet.clone(), sc);
    let child = w.spawn_apply(&["--output", "json"], "orphans");
    crash_mid_run(&w);
    let out = wait_child(child, &w, "orphans");
    let code = out.status.code();
    assert!(code == Some(0) || code == Some(4), "{}", text(&out));
    let st = w.state();
    let status = w.status();
    let mut failed = 0;
    for u in fleet.target_users() {
        let a = &st["accounts"][&u];
        let s = &status["accounts"][&u];
        assert!(
            a["restores_started"].as_u64().unwrap_or(0) <= 1,
            "{u}: a second restore began: {a}"
        );
        match s["state"].as_str().unwrap() {
            "transferred" => assert_eq!(a["restores_completed"], 1, "{u}: {a}"),
            "failed" => {
                failed += 1;
                assert!(s["message"].as_str().is_some_and(|m| !m.is_empty()), "{s}");
            }
            // Held back because its reseller failed (`orphans: wait`).
            "pending" => {
                let owner = fleet
                    .account(&u)
                    .owner
                    .clone()
                    .expect("only owned accounts wait");
                assert_eq!(status["accounts"][&owner]["state"], "failed", "{u}: {s}");
                failed += 1;
            }
            other => panic!("{u} left {other}: {s}"),
        }
    }
    assert_eq!(code == Some(0), failed == 0, "{}", text(&out));
    assert!(!w.records("session_stalled").is_empty());
}
