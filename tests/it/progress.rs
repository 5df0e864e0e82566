//! Progress by bytes (issue 15, part 3): the percentages whm-sim writes
//! into its item logs, as cPanel does, reach `apply`'s events, the journal
//! and `ferry status --output json`; a server that blocks on active logs
//! costs one timed-out read per session and nothing else.

use std::time::Duration;

use serde_json::Value;

use crate::kit::*;

/// One source: a 20 GB giant and three 50 MB accounts; the giant takes
/// about 20 simulated minutes to transfer and restore.
fn giant_fleet() -> Fleet {
    let mut fleet = Fleet::standard(1, 4);
    let src = &mut fleet.sources[0];
    src.packages.clear();
    for (i, a) in src.accounts.iter_mut().enumerate() {
        *a = Acct::new(if i == 0 {
            "giant"
        } else {
            ["one", "two", "three"][i - 1]
        });
    }
    src.accounts[0].size = 20_000_000_000;
    fleet.concurrency = "target_sessions: 2\n  source_sessions: 2\n  batch_size: 10".into();
    fleet
}

fn item_log_reads(w: &World) -> Vec<String> {
    w.sim()
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == "fetch_transfer_session_log")
        .filter_map(|r| r["params"]["logfile"].as_str().map(str::to_string))
        .filter(|l| l != "master.log")
        .collect()
}

#[test]
fn item_log_percentages_reach_events_journal_and_status() {
    let fleet = giant_fleet();
    let users = fleet.target_users();
    // 20 GB at 25 MB/s restore is ~800 simulated s: ~8 real s at 0.01.
    let w = World::start(fleet.clone(), fleet.scenario(0.01));
    let apply = w.spawn_apply(&["--output", "json"], "apply");
    // A second terminal: `ferry status --output json` names the giant's
    // percent while it is in flight.
    let mut seen: Vec<u64> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline && seen.len() < 2 {
        let st = w.status();
        let giant = &st["accounts"]["giant"];
        if let Some(p) = giant["percent"].as_u64() {
            assert_eq!(giant["state"], "in_progress", "{giant}");
            assert!(p < 100, "{giant}");
            if seen.last() != Some(&p) {
                seen.push(p);
            }
        }
        if st["status"] != "running" && st["status"] != "not_started" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = wait_child(apply, &w, "apply");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!seen.is_empty(), "status never showed the giant's percent");
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "{seen:?}");

    let progress: Vec<Value> = events(&out)
        .into_iter()
        .filter(|e| e["event"] == "item_progress")
        .collect();
    let giant: Vec<u64> = progress
        .iter()
        .filter(|e| e["account"] == "giant")
        .map(|e| e["percent"].as_u64().unwrap())
        .collect();
    assert!(giant.len() >= 2, "{progress:?}");
    assert!(giant.windows(2).all(|p| p[0] < p[1]), "rises: {giant:?}");
    assert!(giant.iter().all(|&p| p < 100), "{giant:?}");
    assert!(
        giant.iter().any(|&p| p < 50) && giant.iter().any(|&p| p >= 50),
        "both halves (transfer, restore): {giant:?}"
    );
    let first = progress.iter().find(|e| e["account"] == "giant").unwrap();
    assert_eq!(first["size"], 20_000_000_000u64, "{first}");
    // Journaled as it rose; the account's outcome supersedes it.
    let recs = w.records("item_progress");
    assert_eq!(
        recs.iter()
            .filter(|r| r["rec"]["account"] == "giant")
            .count(),
        giant.len()
    );
    assert_eq!(w.status()["accounts"]["giant"]["percent"], Value::Null);
    // The reads were mostly the giant's (a small account ends between two
    // master.log reads), fewer than the master.log reads.
    let reads = item_log_reads(&w);
    let master_reads = w
        .sim()
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["params"]["logfile"] == "master.log")
        .count();
    eprintln!(
        "item-log reads: {} ({} of the giant), master.log reads: {master_reads}",
        reads.len(),
        reads.iter().filter(|l| l.ends_with("_giant")).count()
    );
    assert!(reads.iter().any(|l| l.ends_with("_giant")), "{reads:?}");
    assert!(reads.len() <= master_reads, "{reads:?}");
    w.assert_exactly_once(&users);
}

#[test]
fn a_server_that_blocks_on_active_logs_gives_no_percentages_and_no_delay() {
    let fleet = giant_fleet();
    let users = fleet.target_users();
    let mut sc = fleet.scenario(0.005);
    sc.faults.log_blocking = true;
    sc.faults.hang_max_secs = 30.0;
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !events(&out).iter().any(|e| e["event"] == "item_progress"),
        "no percentages from a blocking server"
    );
    // One timed-out read per session at most, then none.
    let sessions = w.records("session_created").len();
    let reads = item_log_reads(&w);
    assert!(reads.len() <= sessions, "{reads:?} for {sessions} sessions");
    w.assert_exactly_once(&users);
}
