//! The journal as the operator meets it (issue 5): torn tails, corruption,
//! the lock, and `ferry status`.

use std::time::Duration;

use serde_json::Value;

use crate::kit::*;

fn mutating_requests(w: &World) -> Value {
    let r = &w.state()["requests"];
    serde_json::json!([
        r["create_remote_root_transfer_session"],
        r["enqueue_transfer_item"],
        r["start_transfer_session"],
        r["pause_transfer_session"],
        r["abort_transfer_session"],
    ])
}

/// The last record torn at every byte offset (a kill mid-write): `status`
/// reads around it, `apply` repairs it with a message and resumes — here
/// with nothing left to do, so it sends nothing that changes the server.
#[test]
fn torn_last_record_at_every_offset_resumes() {
    let fleet = Fleet::standard(1, 6);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    let journal = std::fs::read(w.journal()).unwrap();
    let last_start = journal[..journal.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let before = mutating_requests(&w);
    let mut repaired = 0;
    for cut in last_start..journal.len() {
        std::fs::write(w.journal(), &journal[..cut]).unwrap();
        let st = w.status();
        assert_eq!(st["counts"]["transferred"], users.len(), "cut {cut}");
        let out = w.apply(&[]);
        assert_eq!(out.status.code(), Some(0), "cut {cut}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        if cut > last_start {
            assert!(err.contains("torn"), "cut {cut}: no repair message: {err}");
            repaired += 1;
        }
    }
    assert_eq!(repaired, journal.len() - last_start - 1);
    assert_eq!(mutating_requests(&w), before, "a resume changed the server");
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
}

/// A damaged record in the middle is refused with its line number, by
/// `apply` (exit 1, nothing sent) and by `status`.
#[test]
fn corrupt_middle_record_is_refused_with_its_line() {
    let fleet = Fleet::standard(1, 4);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let text_j = std::fs::read_to_string(w.journal()).unwrap();
    let mut lines: Vec<String> = text_j.lines().map(String::from).collect();
    let n = lines.len();
    assert!(n > 10);
    // Change one character of line 5's record: its checksum no longer matches.
    lines[4] = lines[4].replacen("\"session\":\"old1/s1\"", "\"session\":\"old1/s9\"", 1);
    std::fs::write(w.journal(), lines.join("\n") + "\n").unwrap();
    let before = mutating_requests(&w);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 5 is corrupt"), "{err}");
    assert!(err.contains("checksum"), "{err}");
    let out = w.ferry(&["status", "fleet.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 5"));
    assert_eq!(mutating_requests(&w), before);
    // The journal was left as it was.
    assert_eq!(
        std::fs::read_to_string(w.journal())
            .unwrap()
            .lines()
            .count(),
        n
    );
}

/// Two `apply` at once: the second exits 6 naming the first's pid; once
/// the first is killed, its lock is gone and a new `apply` finishes.
#[test]
fn second_apply_is_refused_while_the_first_runs() {
    let fleet = Fleet::standard(2, 10);
    let w = World::start(fleet.clone(), fleet.scenario(0.02));
    let mut first = w.spawn_apply(&[], "first");
    w.wait_for(Duration::from_secs(30), "a session", |st| {
        !st["sessions"].as_array().unwrap().is_empty()
    });
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert_eq!(w.status()["apply_pid"], first.id());
    assert_eq!(w.status()["status"], "running");
    kill9(&mut first);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_strictly_once(&fleet.target_users());
}

/// `status --output json` has design §7's shape; text lists sources,
/// sessions and accounts.
#[test]
fn status_shapes() {
    let fleet = Fleet::standard(2, 5);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let s = w.status();
    assert_eq!(s["status"], "not_started");
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = w.status();
    assert_eq!(s["status"], "succeeded");
    let shop = &s["accounts"]["shop2"];
    assert_eq!(shop["source"], "old1");
    assert_eq!(shop["user"], "shop");
    assert_eq!(shop["state"], "transferred");
    assert_eq!(shop["attempts"], 1);
    let id = shop["session"].as_str().unwrap();
    let sess = s["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .expect("the account's session is listed");
    assert_eq!(sess["state"], "COMPLETED");
    assert_eq!(sess["source"], "old1");
    let out = w.ferry(&["status", "fleet.yaml"]).output().unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("run: succeeded"), "{t}");
    assert!(
        t.contains("source old1") && t.contains("source old2"),
        "{t}"
    );
    assert!(t.contains("shop2 (shop)"), "{t}");
}

/// design §7: even an `apply` that cannot start ends its JSON output with
/// `run_finished`.
#[test]
fn json_output_ends_with_run_finished_when_apply_cannot_start() {
    let fleet = Fleet::standard(1, 3);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    std::fs::create_dir_all(w.journal().parent().unwrap()).unwrap();
    let _lock = ferry::journal::lock::acquire(&w.journal()).unwrap();
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let last = events(&out).pop().expect("an event");
    assert_eq!(last["event"], "run_finished");
    assert_eq!(last["status"], "failed");
    assert!(
        last["next"]
            .as_str()
            .unwrap()
            .contains("another `ferry apply`"),
        "{last}"
    );
}
