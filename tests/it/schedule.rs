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

/// Issue 12: one `create_remote_root_transfer_session` at a time (the call
/// that logs in to the source and runs its analysis): sessions created in
/// one pass used to start at the same instant and, being equal, ended at
/// the same instant, leaving every restore slot idle at once, run after
/// run. Yet the sessions still run side by side. Oracles: the journal,
/// which records each create's intent before the request and its answer
/// after, and whm-sim's record of when each session ran.
#[test]
fn issue_12_one_session_is_created_at_a_time_and_they_still_overlap() {
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
    let mut creating: Option<String> = None;
    let mut creates = 0;
    for r in journal_records(&w.journal()) {
        let session = r["rec"]["session"].as_str().unwrap_or_default().to_string();
        match r["rec"]["type"].as_str() {
            Some("session_create_intent") => {
                assert_eq!(
                    creating, None,
                    "a create was sent while another was in flight"
                );
                creating = Some(session);
                creates += 1;
            }
            Some("session_created" | "session_abandoned")
                if creating.as_ref() == Some(&session) =>
            {
                creating = None;
            }
            _ => {}
        }
    }
    assert_eq!(creates, 4);
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
