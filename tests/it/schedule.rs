//! Work-aware scheduling against whm-sim (issue 12).

use crate::kit::*;

/// Issue 12: with one session slot, the session holding the largest
/// account starts first, though its source is not first in the plan; the
/// others follow in order of the work they hold. Oracle: whm-sim's own
/// record of when each session was created.
#[test]
fn issue_12_the_session_with_the_largest_account_starts_first() {
    let mut fleet = Fleet::standard(3, 3);
    for s in &mut fleet.sources {
        s.after.clear();
    }
    fleet.sources[1].accounts[0].size = 400_000_000;
    fleet.sources[2].accounts[0].size = 200_000_000;
    fleet.concurrency = "target_sessions: 1\n  source_sessions: 1\n  batch_size: 10".into();
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_exactly_once(&fleet.target_users());
    let st = w.state();
    let mut sessions: Vec<(f64, String)> = st["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["created_at"].as_f64().unwrap(),
                s["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    sessions.sort_by(|a, b| a.0.total_cmp(&b.0));
    let order: Vec<&str> = sessions.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        order,
        ["old2.example.com", "old3.example.com", "old1.example.com"],
        "{sessions:?}"
    );
}

/// Issue 12: `concurrency.api_requests` bounds the requests in flight over
/// a whole `apply`, though four sessions poll at once and their log reads
/// block on active logs. Oracle: whm-sim's count of requests in flight.
#[test]
fn issue_12_api_requests_is_never_exceeded() {
    let mut fleet = Fleet::standard(4, 4);
    for s in &mut fleet.sources {
        s.after.clear();
    }
    fleet.concurrency =
        "target_sessions: 4\n  source_sessions: 1\n  batch_size: 4\n  api_requests: 2".into();
    let mut sc = fleet.scenario(0.005);
    sc.faults.log_blocking = true;
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_exactly_once(&fleet.target_users());
    let st = w.state();
    let max = st["requests_in_flight_max"].as_u64().unwrap();
    assert!(
        max <= 2,
        "{max} requests in flight at once, the plan allows 2"
    );
    assert_eq!(
        max, 2,
        "the bound was never reached: the test shows nothing"
    );
}

/// Issue 12: one session starts at a time. Between two
/// `create_remote_root_transfer_session` requests the earlier session has
/// been started, so equal sessions do not all end at the same instant
/// (which left every restore slot idle at once, run after run); yet the
/// sessions still run side by side. Oracle: whm-sim's request log and
/// its record of when each session started and finished.
#[test]
fn issue_12_one_session_starts_at_a_time_and_they_still_overlap() {
    let mut fleet = Fleet::standard(4, 3);
    for s in &mut fleet.sources {
        s.after.clear();
    }
    for a in fleet.sources.iter_mut().flat_map(|s| &mut s.accounts) {
        a.size = 1_000_000_000;
    }
    fleet.concurrency = "target_sessions: 4\n  source_sessions: 1\n  batch_size: 3".into();
    let w = World::start(fleet.clone(), fleet.scenario(0.002));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_exactly_once(&fleet.target_users());
    let requests = w.sim().requests();
    let calls: Vec<&str> = requests
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["function"].as_str())
        .filter(|f| {
            [
                "create_remote_root_transfer_session",
                "start_transfer_session",
            ]
            .contains(f)
        })
        .collect();
    assert_eq!(calls.len(), 8, "{calls:?}");
    for pair in calls.chunks(2) {
        assert_eq!(
            pair,
            [
                "create_remote_root_transfer_session",
                "start_transfer_session"
            ],
            "a session was created before the previous one started: {calls:?}"
        );
    }
    // side by side: some session started before another finished
    let st = w.state();
    let spans: Vec<(f64, f64)> = st["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["started_at"].as_f64().unwrap(),
                s["finished_at"].as_f64().unwrap(),
            )
        })
        .collect();
    let overlapping = spans
        .iter()
        .enumerate()
        .any(|(i, a)| spans.iter().skip(i + 1).any(|b| a.0 < b.1 && b.0 < a.1));
    assert!(overlapping, "the sessions ran one after another: {spans:?}");
}
