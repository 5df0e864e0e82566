//! `ferry apply` end to end over HTTP against whm-sim (issue 4).

use crate::support::*;

/// Three sources × 20 accounts, packages, a reseller and its accounts, a
/// renamed account and an `after` wave: exit 0, every account restored
/// exactly once with its package and owner, and `status` agrees.
#[test]
fn three_sources_with_reseller_and_wave_transfer_exactly_once() {
    let fleet = Fleet::standard(3, 20);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    assert_eq!(users.len(), 60);
    w.assert_exactly_once(&users);
    w.assert_status_succeeded(&users);
    // design §7: the last event is run_finished with the counts.
    let ev = events(&out);
    let last = ev.last().expect("events");
    assert_eq!(last["event"], "run_finished", "{last}");
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["accounts"]["transferred"], 60);
    assert!(ev.iter().all(|e| e["ts"].is_string()));
    // The after wave: no old3 session was created before every old1
    // session had finished.
    let st = w.state();
    let sessions = st["sessions"].as_array().unwrap();
    let old1_done = sessions
        .iter()
        .filter(|s| s["source"] == "old1.example.com")
        .map(|s| s["finished_at"].as_f64().unwrap())
        .fold(0.0, f64::max);
    for s in sessions
        .iter()
        .filter(|s| s["source"] == "old3.example.com")
    {
        let brief: Vec<_> = sessions
            .iter()
            .map(|s| {
                (
                    s["source"].clone(),
                    s["created_at"].clone(),
                    s["finished_at"].clone(),
                    s["items"].as_array().map(|i| i.len()),
                )
            })
            .collect();
        assert!(s["created_at"].as_f64().unwrap() >= old1_done, "{brief:?}");
    }
    // Every account verified with listaccts.
    assert_eq!(w.records("account_verified").len(), 60);
}

/// The same with faults (HTTP 500, resets and hangs, half of them after the
/// call took effect): still exactly once, nothing missing.
fn faulty_run(seed: u64) {
    let fleet = Fleet::standard(3, 20);
    let mut sc = fleet.scenario(0.001);
    sc.faults.seed = seed;
    sc.faults.http_500 = 0.05;
    sc.faults.reset = 0.02;
    sc.faults.hang = 0.01;
    sc.faults.hang_max_secs = 5.0;
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&["--request-timeout", "1s"]);
    assert_eq!(out.status.code(), Some(0), "seed {seed}: {}", text(&out));
    let users = fleet.target_users();
    w.assert_exactly_once(&users);
    w.assert_status_succeeded(&users);
    // The faults did strike, and were retried or reconciled.
    let retried = w.records("step_failed").len();
    assert!(retried > 0, "seed {seed}: no fault struck");
}

#[test]
fn faults_seed_1_exactly_once() {
    faulty_run(1);
}

#[test]
fn faults_seed_2_exactly_once() {
    faulty_run(2);
}

#[test]
fn faults_seed_3_exactly_once() {
    faulty_run(3);
}
