//! Issue 10: exactly once when the journal is not the whole truth.
//!
//! Each test does what a user does — puts back an older copy of the journal,
//! loses it, applies from another folder, edits the plan after a transfer,
//! points another plan at the journal, meets a hostile server, a crash, a
//! full disk — with `ferry` as a real process against a whm-sim hosted here.
//! The oracle is the server's own record (`/__sim/state`): every account
//! restored once (`restores_started == restores_completed == 1`), and
//! `ferry status` agreeing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kit::*;

/// Accounts restored (completed) on the target so far.
fn completed(w: &World) -> usize {
    w.state()["accounts"]
        .as_object()
        .map(|a| {
            a.values()
                .filter(|v| v["restores_completed"].as_u64() > Some(0))
                .count()
        })
        .unwrap_or(0)
}

/// Whether every session on the target has ended (nothing in flight).
fn quiet(w: &World) -> bool {
    w.state()["sessions"].as_array().is_some_and(|s| {
        s.iter().all(|s| {
            matches!(
                s["state"].as_str(),
                Some("COMPLETED" | "ABORTED" | "FAILED" | "PENDING")
            )
        })
    })
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `apply` until it exits 0, at most `n` times; the outputs in order.
fn apply_until_done(w: &World, extra: &[&str], n: usize) -> Vec<Output> {
    let mut outs = Vec::new();
    for _ in 0..n {
        let out = w.apply(extra);
        let done = out.status.code() == Some(0);
        outs.push(out);
        if done {
            return outs;
        }
    }
    let last = outs.last().unwrap();
    panic!("apply did not reach exit 0 in {n} runs: {}", text(last));
}

/// The fleet of the issue: 30 accounts on 3 sources, slow enough to be
/// stopped part-way.
fn thirty(policy: &str) -> (Fleet, ferry::sim::Scenario) {
    let mut fleet = Fleet::standard(3, 10);
    fleet.policy = policy.into();
    fleet.concurrency = "target_sessions: 3\n  source_sessions: 1\n  batch_size: 5".into();
    let sc = fleet.scenario(0.04);
    (fleet, sc)
}

const PAUSE: &str = "on_error: pause\n  poll_interval: 30ms\n  stall_timeout: 20s\n  \
                     retries: {attempts: 8, initial_backoff: 5ms, max_backoff: 100ms}";

/// A CI cache restored from an older run: the journal copied at 40 % of
/// the restores, ferry killed at 80 %, the old copy put back. The journal
/// catches up from the target's record; nothing is restored twice and the
/// run finishes.
#[test]
fn a_journal_restored_from_an_older_copy_catches_up() {
    let (fleet, sc) = thirty(PAUSE);
    let w = World::start(fleet.clone(), sc);
    let users = fleet.target_users();
    let mut child = w.spawn_apply(&[], "first");
    wait_until("40 %", Duration::from_secs(60), || completed(&w) >= 12);
    let old = std::fs::read(w.journal()).unwrap();
    wait_until("80 %", Duration::from_secs(60), || completed(&w) >= 24);
    kill9(&mut child);
    std::fs::write(w.journal(), &old).unwrap();
    let outs = apply_until_done(&w, &[], 3);
    let first = String::from_utf8_lossy(&outs[0].stderr).to_string();
    assert!(
        first.contains("this journal was behind the target"),
        "{first}"
    );
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
}

/// The journal lost (a new runner, no cache), under each policy: every
/// session ferry created is read back from the target, nothing is restored
/// twice, every account ends transferred.
#[test]
fn a_lost_journal_recovers_every_session_from_the_target() {
    for policy in [
        PAUSE,
        "on_error: continue\n  poll_interval: 30ms\n  stall_timeout: 20s\n  \
         retries: {attempts: 8, initial_backoff: 5ms, max_backoff: 100ms}",
    ] {
        let (fleet, sc) = thirty(policy);
        let w = World::start(fleet.clone(), sc);
        let users = fleet.target_users();
        let mut child = w.spawn_apply(&[], "first");
        wait_until("half", Duration::from_secs(60), || completed(&w) >= 15);
        kill9(&mut child);
        std::fs::remove_file(w.journal()).unwrap();
        apply_until_done(&w, &[], 3);
        w.assert_strictly_once(&users);
        w.assert_status_succeeded(&users);
        let st = w.status();
        assert!(
            users
                .iter()
                .any(|u| st["accounts"][u]["adopted"].is_string()),
            "accounts finished by a recovered session say so: {st:#}"
        );
    }
}

/// A session read back from the target's record that WHM has since deleted
/// (a PENDING one after 4 hours) is gone, not a passing fault: its accounts
/// are moved again, once.
#[test]
fn a_recovered_session_the_target_deleted_is_gone() {
    let fleet = Fleet::standard(1, 3);
    let mut sc = fleet.scenario(0.0001);
    sc.target.maintenance_interval = Some(600.0);
    sc.faults.latency_ms = [40, 40];
    let w = World::start(fleet.clone(), sc);
    let mut child = w.spawn_apply(&[], "first");
    wait_until(
        "the session in the target's record",
        Duration::from_secs(60),
        || std::fs::read_to_string(w.journal()).is_ok_and(|j| j.contains("session_mirrored")),
    );
    kill9(&mut child);
    assert!(
        !std::fs::read_to_string(w.journal())
            .unwrap()
            .contains("start_intent"),
        "killed before the start"
    );
    // 4 simulated hours pass: maintenance deletes the PENDING session.
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::remove_file(w.journal()).unwrap();
    let outs = apply_until_done(&w, &[], 2);
    let err = String::from_utf8_lossy(&outs[0].stderr);
    assert!(err.contains("no longer exists on the target"), "{err}");
    assert!(
        w.records("session_finished")
            .iter()
            .any(|r| r["rec"]["state"] == "GONE"),
        "the deleted session was concluded as gone"
    );
    w.assert_strictly_once(&fleet.target_users());
    w.assert_status_succeeded(&fleet.target_users());
}

/// A target without the name/value store keeps no record of ferry's
/// sessions: a lost journal is then noticed from the accounts on the target
/// (exit 2, named, nothing enqueued), and `--adopt` records those that
/// match and moves the rest.
#[test]
fn a_lost_journal_without_the_targets_record_asks_for_adopt() {
    let (fleet, mut sc) = thirty(PAUSE);
    sc.target.nvdata = false;
    let w = World::start(fleet.clone(), sc);
    let users = fleet.target_users();
    let mut child = w.spawn_apply(&[], "first");
    wait_until("a third", Duration::from_secs(60), || completed(&w) >= 10);
    kill9(&mut child);
    // --adopt is safe once no transfer of the plan is running.
    wait_until("quiet target", Duration::from_secs(60), || quiet(&w));
    std::fs::remove_file(w.journal()).unwrap();
    let before = w.state()["requests"].clone();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--adopt"), "{err}");
    assert!(err.contains("no name/value store"), "{err}");
    let present: Vec<&String> = users
        .iter()
        .filter(|u| w.state()["accounts"][*u]["present"] == true)
        .collect();
    for u in &present {
        assert!(err.contains(u.as_str()), "{u} not named: {err}");
    }
    let after = w.state()["requests"].clone();
    for f in [
        "create_remote_root_transfer_session",
        "enqueue_transfer_item",
    ] {
        assert_eq!(before[f], after[f], "{f} sent before --adopt");
    }
    apply_until_done(&w, &["--adopt"], 2);
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
    let st = w.status();
    for u in &present {
        assert!(st["accounts"][u]["adopted"].is_string(), "{u}: {st:#}");
    }
    let out = w
        .ferry(&["report", "fleet.yaml", "--html", "r.html"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(w.dir.path().join("r.html")).unwrap();
    assert!(
        html.contains("transferred, adopted"),
        "the report marks adoption"
    );
}

/// An account of the same name already on the target before the plan
/// first ran is not this plan's: apply stops and names it (exit 2); even
/// with `--adopt` it is a conflict, never transferred, while the others
/// move. The report marks the failure.
#[test]
fn an_account_there_before_the_plan_is_a_conflict_not_adopted() {
    let mut fleet = Fleet::standard(1, 4);
    fleet.policy = "on_error: continue\n  poll_interval: 30ms".into();
    let mut sc = fleet.scenario(0.002);
    sc.target
        .existing_accounts
        .push(ferry::sim::ExistingAccount::Name("s1u02".into()));
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("s1u02"));
    assert_eq!(w.state()["requests"]["enqueue_transfer_item"], Value::Null);
    let out = w.apply(&["--adopt"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("there before this plan"), "{err}");
    let st = w.state();
    assert_eq!(st["accounts"]["s1u02"]["restores_started"], 0, "{st:#}");
    let others: Vec<String> = fleet
        .target_users()
        .into_iter()
        .filter(|u| u != "s1u02")
        .collect();
    w.assert_strictly_once(&others);
    let status = w.status();
    assert_eq!(status["accounts"]["s1u02"]["state"], "failed");
    let out = w
        .ferry(&["report", "fleet.yaml", "--html", "r.html"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(w.dir.path().join("r.html")).unwrap();
    assert!(
        html.contains("there before this plan"),
        "report names the conflict"
    );
}

/// The same plan applied from two working folders uses one journal and one
/// lock: the second `apply` exits 6 naming the first's pid.
#[test]
fn two_working_folders_share_one_journal_and_lock() {
    let (fleet, sc) = thirty(PAUSE);
    let w = World::start(fleet.clone(), sc);
    let child = w.spawn_apply(&[], "first");
    wait_until("the first apply's lock", Duration::from_secs(30), || {
        w.journal().exists()
    });
    let other = tempfile::tempdir().unwrap();
    let mut c = w.ferry(&["apply", w.plan.to_str().unwrap()]);
    c.current_dir(other.path());
    let out = run_bounded(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", child.id())), "{err}");
    assert!(!other.path().join(".ferry").exists());
    let first = wait_child(child, &w, "first");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    w.assert_strictly_once(&fleet.target_users());
}

/// Every field of a transferred account's entry, changed after the run (and
/// while paused): exit 2 naming the account and what changed, nothing sent.
#[test]
fn changing_any_field_of_a_transferred_account_is_refused() {
    let mut fleet = Fleet::standard(2, 10);
    fleet.sources[1].after.clear();
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan = std::fs::read_to_string(&w.plan).unwrap();
    // (what the edit does, the YAML before, after, what the refusal names)
    let edits: &[(&str, &str, &str, &str)] = &[
        (
            "localuser",
            "{user: shop, localuser: shop2,",
            "{user: shop, localuser: shop3,",
            "localuser changed from shop2 to shop3",
        ),
        (
            "package",
            "{user: s1u02, package: gold,",
            "{user: s1u02, package: silver,",
            "package gold → silver",
        ),
        (
            "owner",
            "{user: s1u05, package: silver,",
            "{user: s1u05, owner: resell1, package: silver,",
            "owner (unset) → resell1",
        ),
        (
            "options",
            "{user: s1u06, package: gold,",
            "{user: s1u06, options: {ip: 1}, package: gold,",
            "options.ip (unset) → 1",
        ),
        (
            "domain",
            "{user: s1u07, package: silver,",
            "{user: s1u07, domain: s1u07.example.net, package: silver,",
            "domain (unset) → s1u07.example.net",
        ),
    ];
    for (what, from, to, says) in edits {
        assert!(plan.contains(from), "{what}: {from} not in the plan");
        std::fs::write(&w.plan, plan.replacen(from, to, 1)).unwrap();
        let before = w.state()["requests"].clone();
        let out = w.apply(&[]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{what}: {err}");
        assert!(err.contains("was transferred"), "{what}: {err}");
        assert!(err.contains("remove those accounts"), "{what}: {err}");
        assert_eq!(w.state()["requests"], before, "{what}: a request was sent");
    }
    // The source: the account moved to another source in the plan.
    let mut moved = fleet.clone();
    let a = moved.sources[0].accounts.remove(8);
    moved.sources[1].accounts.push(a);
    std::fs::write(&w.plan, moved.plan_yaml(&w.url)).unwrap();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s1u08") && err.contains("source changed from old1 to old2"),
        "{err}"
    );
    // Reverted, the plan applies again (nothing left to do).
    std::fs::write(&w.plan, &plan).unwrap();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_strictly_once(&fleet.target_users());
}

/// While paused: a transferred account's localuser changed is refused too.
#[test]
fn changing_a_transferred_account_while_paused_is_refused() {
    let mut fleet = Fleet::standard(1, 6);
    fleet.policy = PAUSE.into();
    let mut sc = fleet.scenario(0.002);
    sc.faults.fail_items.insert(
        "s1u05".into(),
        ferry::sim::FailItem {
            message: "Disk quota exceeded".into(),
            times: 1,
            stage: Default::default(),
        },
    );
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let plan = std::fs::read_to_string(&w.plan).unwrap();
    std::fs::write(
        &w.plan,
        plan.replacen("localuser: shop2", "localuser: shop9", 1),
    )
    .unwrap();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shop2"));
    std::fs::write(&w.plan, &plan).unwrap();
    apply_until_done(&w, &[], 2);
    w.assert_exactly_once(&fleet.target_users());
}

/// Another plan pointed at this journal is refused before any request and
/// leaves the journal as it was; so is its rehearsal; `status` of the first
/// plan shows only its own accounts.
#[test]
fn another_plans_journal_is_refused_and_untouched() {
    let fleet = Fleet::standard(1, 3);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut other = Fleet::standard(1, 4);
    other.sources[0].accounts[3].user = "zulu".into();
    std::fs::write(w.dir.path().join("other.yaml"), other.plan_yaml(&w.url)).unwrap();
    let journal = std::fs::read(w.journal()).unwrap();
    let before = w.state()["requests"].clone();
    let j = ".ferry/fleet.journal";
    for args in [
        vec!["apply", "other.yaml", "--journal", j],
        vec!["apply", "--simulate", "other.yaml", "--journal", j],
        vec!["pause", "other.yaml", "--journal", j],
        vec!["status", "other.yaml", "--journal", j],
    ] {
        let out = run_bounded(w.ferry(&args), Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("belongs to the plan `fleet`"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(w.journal()).unwrap(), journal, "{args:?}");
    }
    assert_eq!(w.state()["requests"], before);
    let st = w.status();
    assert!(st["accounts"].get("zulu").is_none(), "{st:#}");
    // The same plan's rehearsal pointed at the real run's journal would
    // delete it: refused too.
    let out = run_bounded(
        w.ferry(&["apply", "--simulate", "fleet.yaml", "--journal", j]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("records a real run"));
    assert_eq!(std::fs::read(w.journal()).unwrap(), journal);
}

/// `--journal` into a folder that does not exist is an error, not a new
/// empty journal.
#[test]
fn a_journal_in_a_missing_folder_is_an_error() {
    let fleet = Fleet::standard(1, 2);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w.apply(&["--journal", "nope/fleet.journal"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!w.dir.path().join("nope").exists());
    assert_eq!(w.state()["requests"], serde_json::json!({}));
}

/// Control characters a server sends (ESC, CR, NUL, BEL) reach the
/// terminal escaped from `apply`, `status` and `check`; JSON keeps them
/// JSON-escaped.
#[test]
fn a_servers_control_characters_are_escaped_on_the_terminal() {
    let hostile = "quota\u{1b}[2J\u{1b}]0;pwned\u{7}\rhidden\0end";
    let mut fleet = Fleet::standard(1, 2);
    fleet.policy = "on_error: continue\n  poll_interval: 30ms".into();
    let mut sc = fleet.scenario(0.001);
    sc.faults.fail_items.insert(
        "s1u01".into(),
        ferry::sim::FailItem {
            message: hostile.into(),
            times: 9,
            stage: Default::default(),
        },
    );
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let raw = |b: &[u8]| b.iter().any(|&c| matches!(c, 0x1b | b'\r' | 0 | 7));
    assert!(
        !raw(&out.stderr),
        "apply: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("quota\\x1b[2J"));
    let out = w.ferry(&["status", "fleet.yaml"]).output().unwrap();
    assert!(!raw(&out.stdout) && !raw(&out.stderr), "status text");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\rhidden\\0end"));
    let st = w.status();
    assert_eq!(
        st["accounts"]["s1u01"]["message"], hostile,
        "JSON keeps the text"
    );
    let out = w.apply(&["--output", "json"]);
    assert!(!raw(&out.stderr), "apply --output json, human side");
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(events.contains("\\u001b[2J"), "{events}");

    // `ferry check` against a server that answers every call with it.
    let server = Hostile::start(hostile);
    let dir = tempfile::tempdir().unwrap();
    let plan = Fleet::standard(1, 1).plan_yaml(&server.url);
    std::fs::write(dir.path().join("p.yaml"), plan).unwrap();
    let out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .current_dir(dir.path())
        .args(["check", "p.yaml"])
        .env("FERRY_TEST_TOKEN", TOKEN)
        .env("FERRY_TEST_SSH", SSH_PW)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !raw(&out.stdout) && !raw(&out.stderr),
        "check: {}",
        text(&out)
    );
    assert!(text(&out).contains("quota\\x1b[2J"), "{}", text(&out));
}

/// `ferry check --request-timeout` cuts off a server that trickles its
/// answer a byte at a time.
#[test]
fn check_honours_the_request_timeout() {
    let server = Hostile::trickle();
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::standard(1, 1);
    fleet.policy = "retries: {attempts: 2, initial_backoff: 10ms, max_backoff: 10ms}".into();
    std::fs::write(dir.path().join("p.yaml"), fleet.plan_yaml(&server.url)).unwrap();
    let t0 = Instant::now();
    let out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .current_dir(dir.path())
        .args(["check", "p.yaml", "--request-timeout", "500ms"])
        .env("FERRY_TEST_TOKEN", TOKEN)
        .env("FERRY_TEST_SSH", SSH_PW)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("timeout"), "{}", text(&out));
    // Two attempts of 0.5 s, not a minute each.
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}

/// A run stopped by a full disk (a file-size limit the journal hits) exits
/// 1 and still reports what the journal holds; the next apply resumes.
#[test]
fn a_full_disk_stops_the_run_with_the_journals_counts() {
    let (fleet, sc) = thirty(PAUSE);
    let w = World::start(fleet.clone(), sc);
    let users = fleet.target_users();
    // How large the journal grows in a whole run, measured on a twin.
    let twin = World::start(fleet.clone(), fleet.scenario(0.002));
    assert_eq!(twin.apply(&[]).status.code(), Some(0));
    let full = std::fs::metadata(twin.journal()).unwrap().len();
    let mut c = w.ferry(&["apply", "fleet.yaml", "--output", "json"]);
    limit_file_size(&mut c, full / 2);
    let out = run_bounded(c, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot write the journal"), "{err}");
    let last = events(&out).pop().unwrap();
    assert_eq!(last["event"], "run_finished");
    let st = w.status();
    let transferred = st["counts"]["transferred"].as_u64().unwrap();
    assert!(transferred > 0, "{st:#}");
    assert_eq!(last["accounts"]["transferred"], transferred, "{last}");
    assert_eq!(last["accounts"]["total"], 30, "{last}");
    apply_until_done(&w, &[], 3);
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
}

/// A crash that leaves an item at TRANSFER_INPROGRESS: the session is not
/// restarted forever. Once its master.log shows no restore running, it is
/// aborted and its unrestored accounts go to a fresh session; a restore the
/// crash cut, with nothing on the target, is moved again. The run finishes
/// within a few applies, every account on the target once.
#[test]
fn a_crash_orphan_does_not_stall_the_run_forever() {
    let mut fleet = Fleet::standard(1, 8);
    fleet.policy = "on_error: pause\n  poll_interval: 30ms\n  stall_timeout: 1s\n  \
                    retries: {attempts: 5, initial_backoff: 5ms, max_backoff: 50ms}"
        .into();
    fleet.concurrency = "target_sessions: 2\n  source_sessions: 1\n  batch_size: 8".into();
    fleet.session = "{transfer_threads: 2, restore_threads: 2}".into();
    let w = World::start(fleet.clone(), fleet.scenario(0.02));
    let child = w.spawn_apply(&[], "first");
    // The crash strikes while an item transfers and after a restore ended.
    wait_until("an item mid-transfer", Duration::from_secs(60), || {
        let st = w.state();
        let transferring = st["sessions"].as_array().is_some_and(|ss| {
            ss.iter().any(|s| {
                s["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i["state"] == "TRANSFER_INPROGRESS"))
            })
        });
        transferring && completed(&w) >= 1
    });
    w.sim().crash_now();
    let first = wait_child(child, &w, "first");
    let mut outs = vec![first];
    if outs[0].status.code() != Some(0) {
        outs.extend(apply_until_done(&w, &[], 3));
    }
    let st = w.state();
    let sessions = st["sessions"].as_array().unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s["state"] == "FAILED" || s["state"] == "ABORTED"),
        "the stuck session was aborted: {st:#}"
    );
    let cut: Vec<String> = w
        .records("restore_unfinished")
        .iter()
        .map(|r| r["rec"]["account"].as_str().unwrap().to_string())
        .collect();
    for u in fleet.target_users() {
        let a = &st["accounts"][&u];
        assert_eq!(a["restores_completed"], 1, "{u}: {a}");
        let started = a["restores_started"].as_u64().unwrap();
        let again = u64::from(cut.contains(&u));
        assert_eq!(started, 1 + again, "{u} (cut: {cut:?}): {a}");
    }
    w.assert_status_succeeded(&fleet.target_users());
    assert!(outs.len() <= 4);
    assert!(
        w.records("session_stalled")
            .iter()
            .any(|r| r["rec"]["action"] == "abort_and_replace"),
        "the stuck session was aborted by the stall remedy"
    );
}

// ---- tiny servers --------------------------------------------------------

/// A server on 127.0.0.1 that answers every WHM call with `result: 0` and
/// a hostile reason, or trickles its answer a byte a second.
struct Hostile {
    url: String,
}

impl Hostile {
    fn start(reason: &str) -> Hostile {
        let body = serde_json::json!({
            "metadata": {"result": 0, "reason": reason, "version": 1, "command": "x"}
        })
        .to_string();
        Hostile::serve(move |mut s| {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body.as_bytes());
        })
    }

    fn trickle() -> Hostile {
        Hostile::serve(|mut s| {
            let body = br#"{"metadata":{"result":1,"reason":"OK"},"data":{}}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            for b in body {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    }

    fn serve(answer: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> Hostile {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let answer = std::sync::Arc::new(answer);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let answer = answer.clone();
                std::thread::spawn(move || {
                    if read_request(&s) {
                        answer(s);
                    }
                });
            }
        });
        Hostile { url }
    }
}

/// Reads one HTTP request (headers and a Content-Length body).
fn read_request(s: &std::net::TcpStream) -> bool {
    let mut r = BufReader::new(s);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).is_ok()
}

/// Runs the command with a file-size limit (RLIMIT_FSIZE): writes past
/// `bytes` fail with EFBIG, as on a full disk.
fn limit_file_size(c: &mut std::process::Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches only this child.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
