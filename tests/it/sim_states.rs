//! Every row of the state table of docs/whm.md §2.4 (start, pause,
//! abort on each state, alive and stale), and pause/resume/abort mid-run.

use std::time::Duration;

use ferry::sim::{AccountSpec, Scenario, Size};
use serde_json::Value;

use crate::kit::*;

const T: Duration = Duration::from_secs(20);
const PAUSE_REFUSED: &str = "The system failed to “pause” the transfer session.";
const ABORT_REFUSED: &str = "The system failed to “abort” the transfer session.";

/// `small` (1 MB), `huge` (1 TB: never finishes in a test), `u000…` helpers.
fn states_scenario(time_scale: f64) -> Scenario {
    let mut sc = scenario(0, 0);
    sc.time_scale = time_scale;
    let mut small = AccountSpec::new("small");
    small.size = Size(1_000_000);
    let mut huge = AccountSpec::new("huge");
    huge.size = Size(1_000_000_000_000);
    sc.remotes[0].accounts = vec![small, huge];
    sc
}

fn pid(v: &Value) -> u64 {
    v["data"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid: {v:#}"))
}

async fn actions(w: &Whm, id: &str) -> Vec<String> {
    w.master_log(id)
        .await
        .iter()
        .map(|c| c["action"].as_str().unwrap().to_string())
        .collect()
}

/// A RUNNING session whose only item (`huge`) is transferring.
async fn running(sim: &Sim) -> (String, u64) {
    let id = sim.whm.session((1, 1)).await;
    sim.whm.enqueue_account(&id, "huge", &[]).await;
    let p = pid(&sim.whm.start(&id).await);
    assert_eq!(sim.whm.state_name(&id).await, "RUNNING");
    (id, p)
}

/// A session that will be PAUSED: `small` moves, `huge` waits on a missing
/// prerequisite (so its queue never empties), then pause.
async fn pause_session(sim: &Sim) -> String {
    let w = &sim.whm;
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "small", &[]).await;
    w.enqueue_account(&id, "huge", &[("prerequisite_user", "ghost")])
        .await;
    w.start(&id).await;
    sim.wait_until("small restored", T, |s| {
        s["accounts"]["small"]["present"] == true
    })
    .await;
    assert!(ok(&w.pause(&id).await));
    sim.wait_state(&id, &["PAUSED"], T).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending() {
    let sim = Sim::start(states_scenario(0.001)).await;
    let w = &sim.whm;
    let id = w.session((1, 1)).await;
    assert_eq!(w.state_name(&id).await, "PENDING");
    assert_eq!(reason(&w.pause(&id).await), PAUSE_REFUSED);
    assert!(ok(&w.abort(&id).await));
    assert_eq!(
        w.state_name(&id).await,
        "FAILED",
        "abort of a PENDING session fails it"
    );
    assert_eq!(actions(w, &id).await, ["fail"]);
    // start on PENDING
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "small", &[]).await;
    assert!(pid(&w.start(&id).await) > 1);
    sim.wait_state(&id, &["COMPLETED"], T).await;
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_alive() {
    let sim = Sim::start(states_scenario(0.001)).await;
    let w = &sim.whm;
    let (id, p) = running(&sim).await;
    assert_eq!(
        pid(&w.start(&id).await),
        p,
        "start on a live session returns the same pid"
    );
    assert!(ok(&w.pause(&id).await));
    assert_eq!(w.state_name(&id).await, "PAUSING");
    let (id, _) = running(&sim).await;
    assert!(ok(&w.abort(&id).await));
    assert_eq!(sim.wait_state(&id, &["ABORTED"], T).await, "ABORTED");
    let log = w.master_log(&id).await;
    let failed: Vec<&Value> = log
        .iter()
        .filter(|c| c["action"] == "failed-item")
        .collect();
    assert_eq!(failed.len(), 2, "TRANSFER failure + synthetic RESTORE pair");
    assert!(failed.iter().all(|c| c["msg"]["failure"] == "Aborted."));
    let acts = actions(w, &id).await;
    assert_eq!(acts[acts.len() - 1], "abort");
    assert!(acts.contains(&"aborting".to_string()));
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_stale() {
    let sim = Sim::start(states_scenario(0.001)).await;
    let w = &sim.whm;
    let (id, p) = running(&sim).await;
    sim.server.crash_now();
    assert_eq!(
        w.state_name(&id).await,
        "RUNNING",
        "a dead session still reads RUNNING"
    );
    let p2 = pid(&w.start(&id).await);
    assert_ne!(p2, p, "a new master");
    let acts = actions(w, &id).await;
    assert_eq!(
        acts.iter().filter(|a| *a == "initiator").count(),
        2,
        "a fresh start block: {acts:?}"
    );
    assert_eq!(w.state_name(&id).await, "RUNNING");

    let (id, _) = running(&sim).await;
    sim.server.crash_now();
    assert!(ok(&w.pause(&id).await));
    assert_eq!(
        w.state_name(&id).await,
        "FAILED",
        "pause of a stale session fails it"
    );
    assert_eq!(actions(w, &id).await.last().unwrap(), "fail");

    let (id, _) = running(&sim).await;
    sim.server.crash_now();
    assert!(ok(&w.abort(&id).await));
    assert_eq!(w.state_name(&id).await, "FAILED");
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_alive_and_stale() {
    let sim = Sim::start(states_scenario(0.001)).await;
    let w = &sim.whm;
    let (id, p) = running(&sim).await;
    w.pause(&id).await;
    assert_eq!(w.state_name(&id).await, "PAUSING");
    assert_eq!(
        pid(&w.start(&id).await),
        p,
        "start does not cancel the pause"
    );
    assert_eq!(w.state_name(&id).await, "PAUSING");
    assert_eq!(reason(&w.pause(&id).await), PAUSE_REFUSED);
    // abort while the last item is in flight: no worker exits ABORTED, the
    // RESTORE worker already exited PAUSED, so the master writes `pause`
    assert!(ok(&w.abort(&id).await));
    assert_eq!(
        sim.wait_state(&id, &["PAUSED", "ABORTED"], T).await,
        "PAUSED"
    );
    assert!(without_xid(&reason(&w.start(&id).await)).ends_with("has been aborted."));
    // with work left in the queue, the TRANSFER worker exits ABORTED
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "huge", &[]).await;
    w.enqueue_account(&id, "small", &[]).await;
    w.start(&id).await;
    w.pause(&id).await;
    assert_eq!(w.state_name(&id).await, "PAUSING");
    assert!(ok(&w.abort(&id).await));
    assert_eq!(
        sim.wait_state(&id, &["PAUSED", "ABORTED"], T).await,
        "ABORTED"
    );

    // stale PAUSING
    let (id, _) = running(&sim).await;
    w.pause(&id).await;
    sim.server.crash_now();
    let s = w.start(&id).await;
    assert_eq!(
        without_xid(&reason(&s)),
        format!(
            "The system failed to start the transfer session “{id}” because of an error: The processor failed to start because the session “{id}” is pausing."
        )
    );
    assert!(ok(&w.abort(&id).await));
    assert_eq!(
        w.state_name(&id).await,
        "ABORTED",
        "abort of a stale PAUSING session"
    );
    assert_eq!(
        actions(w, &id).await.last().unwrap(),
        "abort",
        "offline abort line"
    );

    let (id, _) = running(&sim).await;
    w.pause(&id).await;
    sim.server.crash_now();
    assert!(ok(&w.pause(&id).await));
    assert_eq!(w.state_name(&id).await, "FAILED");
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused() {
    let sim = Sim::start(states_scenario(0.001)).await;
    let w = &sim.whm;
    let id = pause_session(&sim).await;
    let acts = actions(w, &id).await;
    assert_eq!(acts.last().unwrap(), "pause");
    assert!(acts.contains(&"pausing".to_string()));
    assert_eq!(reason(&w.pause(&id).await), PAUSE_REFUSED);
    // start resumes: a `resume` line, no new start block
    assert!(ok(&w.start(&id).await));
    assert_eq!(w.state_name(&id).await, "RUNNING");
    let acts = actions(w, &id).await;
    assert_eq!(acts.iter().filter(|a| *a == "initiator").count(), 1);
    assert!(acts.contains(&"resume".to_string()));
    // abort of PAUSED: ABORTED at once with an offline `abort` line
    let id = pause_session(&sim).await;
    assert!(ok(&w.abort(&id).await));
    assert_eq!(w.state_name(&id).await, "ABORTED");
    assert_eq!(actions(w, &id).await.last().unwrap(), "abort");
    sim.finish().await;
}

/// ABORTING lasts until the TERM reaches the workers (one simulated second):
/// a real-time server keeps it observable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_alive_and_stale_and_aborted() {
    let sim = Sim::start(states_scenario(1.0)).await;
    let w = &sim.whm;
    let (id, p) = running(&sim).await;
    assert!(ok(&w.abort(&id).await));
    assert_eq!(w.state_name(&id).await, "ABORTING");
    assert_eq!(
        pid(&w.start(&id).await),
        p,
        "start on a live ABORTING session: the same pid"
    );
    assert_eq!(reason(&w.pause(&id).await), PAUSE_REFUSED);
    assert!(ok(&w.abort(&id).await), "abort again re-signals");
    assert_eq!(w.state_name(&id).await, "ABORTING");
    assert_eq!(sim.wait_state(&id, &["ABORTED"], T).await, "ABORTED");
    // ABORTED
    let s = w.start(&id).await;
    assert_eq!(
        without_xid(&reason(&s)),
        format!(
            "The system failed to start the transfer session “{id}” because of an error: The processor failed to start because the session “{id}” has been aborted."
        )
    );
    assert_eq!(reason(&w.pause(&id).await), PAUSE_REFUSED);
    assert_eq!(reason(&w.abort(&id).await), ABORT_REFUSED);

    // stale ABORTING
    let (id, _) = running(&sim).await;
    w.abort(&id).await;
    sim.server.crash_now();
    assert_eq!(w.state_name(&id).await, "ABORTING");
    let s = w.start(&id).await;
    assert!(
        without_xid(&reason(&s)).ends_with("has been aborted."),
        "{s:#}"
    );
    assert_eq!(reason(&w.pause(&id).await), PAUSE_REFUSED);
    assert!(ok(&w.abort(&id).await));
    assert_eq!(
        w.state_name(&id).await,
        "FAILED",
        "abort of a stale ABORTING session fails it"
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_and_failed_sessions_run_again_without_credentials() {
    let sim = Sim::start(states_scenario(0.001)).await;
    let w = &sim.whm;
    let done = w.session((1, 1)).await;
    w.enqueue_account(&done, "small", &[]).await;
    w.start(&done).await;
    sim.wait_state(&done, &["COMPLETED"], T).await;
    let failed = w.session((1, 1)).await;
    w.abort(&failed).await;
    assert_eq!(w.state_name(&failed).await, "FAILED");
    for id in [&done, &failed] {
        assert_eq!(reason(&w.pause(id).await), PAUSE_REFUSED);
        assert_eq!(reason(&w.abort(id).await), ABORT_REFUSED);
        // enqueue never checks the state
        assert!(ok(&w
            .enqueue_account(id, "huge", &[("localuser", &format!("h{}", &id[32..]))])
            .await));
        assert!(pid(&w.start(id).await) > 1, "the master is forked anyway");
    }
    sim.wait_state(&done, &["COMPLETED"], T).await;
    sim.wait_state(&failed, &["COMPLETED"], T).await;
    for id in [&done, &failed] {
        let log = w.master_log(id).await;
        let f = log
            .iter()
            .find(|c| c["action"] == "failed-item" && c["item"] == "huge")
            .expect("the late item fails");
        assert!(
            f["msg"]["failure"]
                .as_str()
                .unwrap()
                .contains("credentials"),
            "{f}"
        );
    }
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_mid_run_is_graceful_and_resume_finishes_each_account_once() {
    let mut sc = scenario(10, 500_000_000); // 10 s transfer, 20 s restore each
    sc.time_scale = 0.004;
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let id = w.session((2, 2)).await;
    for i in 0..10 {
        w.enqueue_account(&id, &format!("u{i:03}"), &[]).await;
    }
    w.start(&id).await;
    sim.wait_until("one account restored", T, |s| {
        s["accounts"]["u000"]["present"] == true
    })
    .await;
    assert!(ok(&w.pause(&id).await));
    sim.wait_state(&id, &["PAUSED"], T).await;
    let st = sim.state();
    let items = st["sessions"][0]["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|i| i["state"] != "TRANSFER_INPROGRESS" && i["state"] != "RESTORE_INPROGRESS")
    );
    assert!(
        items.iter().any(|i| i["state"] == "TRANSFER_PENDING"),
        "paused before the end: {items:?}"
    );
    let log = w.master_log(&id).await;
    assert!(
        !log.iter().any(|c| c["action"] == "failed-item"),
        "a pause fails nothing"
    );
    assert!(ok(&w.start(&id).await));
    sim.wait_state(&id, &["COMPLETED"], T).await;
    let st = sim.state();
    for i in 0..10 {
        let a = &st["accounts"][format!("u{i:03}")];
        assert_eq!(
            (a["present"].clone(), a["restores_started"].clone()),
            (true.into(), 1.into()),
            "{a:#}"
        );
    }
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_mid_run_fails_in_flight_items_and_never_starts_pending_ones() {
    let mut sc = scenario(6, 500_000_000);
    sc.time_scale = 0.004;
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let id = w.session((2, 2)).await;
    for i in 0..6 {
        w.enqueue_account(&id, &format!("u{i:03}"), &[]).await;
    }
    w.start(&id).await;
    sim.wait_until("first restore running", T, |s| {
        s["accounts"]["u000"]["restores_started"] == 1
    })
    .await;
    assert!(ok(&w.abort(&id).await));
    sim.wait_state(&id, &["ABORTED"], T).await;
    let log = w.master_log(&id).await;
    let aborted: Vec<&str> = log
        .iter()
        .filter(|c| c["action"] == "failed-item" && c["msg"]["failure"] == "Aborted.")
        .map(|c| c["item"].as_str().unwrap())
        .collect();
    assert!(!aborted.is_empty());
    let st = sim.state();
    for item in st["sessions"][0]["items"].as_array().unwrap() {
        let key = item["key"].as_str().unwrap();
        if item["state"] == "TRANSFER_PENDING" {
            assert!(
                !log.iter().any(|c| c["item"] == key),
                "{key} never ran and has no lines"
            );
        }
    }
    assert!(
        st["sessions"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["state"] == "TRANSFER_PENDING")
    );
    sim.finish().await;
}
