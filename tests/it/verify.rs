//! `ferry verify` (issue 14, part 2): after a run, the target is asked
//! (`accountsummary`) whether every account the journal saw transferred is
//! there as the plan wants it. ferry runs as a real process against a
//! whm-sim hosted here; what the simulator restored is the oracle.

use serde_json::Value;

use crate::kit::*;

fn verify(w: &World, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify", "fleet.yaml"];
    args.extend_from_slice(extra);
    w.ferry(&args).output().unwrap()
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn calls(w: &World, function: &str) -> usize {
    w.sim()
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == function)
        .count()
}

/// A clean run verifies: the reseller's accounts are owned by it, packages
/// and the renamed account as planned; one `accountsummary` per account and
/// nothing that writes.
#[test]
fn a_clean_run_verifies_with_one_request_per_account() {
    let fleet = Fleet::standard(2, 6);
    let users = fleet.target_users();
    let w = World::start(fleet, Fleet::standard(2, 6).scenario(0.002));
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = w.sim().requests().as_array().unwrap().len();

    let out = verify(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for u in &users {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("✓ {u} "))),
            "{u} not verified:\n{stdout}"
        );
    }
    assert!(stdout.contains("owner resell1"), "{stdout}");
    assert!(
        stdout.contains("✓ verified: 12 transferred account(s)"),
        "{stdout}"
    );
    let after = w.sim().requests().as_array().unwrap().len();
    assert_eq!(after - before, users.len(), "one request per account");
    assert_eq!(calls(&w, "accountsummary"), users.len());

    let out = verify(&w, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = lines(&out);
    let (fin, rows) = events.split_last().unwrap();
    assert_eq!(fin["event"], "verify_finished");
    assert_eq!(fin["status"], "passed");
    assert_eq!(rows.len(), users.len());
    for r in rows {
        assert_eq!(r["verdict"], "pass", "{r}");
        let owned = ["s1u01", "s1u02", "s1u03"].contains(&r["account"].as_str().unwrap());
        let want = if owned { "resell1" } else { "root" };
        assert_eq!(r["on_target"]["owner"], want, "{r}");
    }
    // The target's record is unchanged by verify: every account restored once.
    w.assert_exactly_once(&users);
}

/// An account restored suspended (it was suspended on its source) is a
/// finding with its fix: `apply` (`policy.verify: basic`) stops once (exit
/// 3) naming it, the next `apply` checks it again and ends with exit 4, it
/// is never transferred again; `ferry verify` exits 1; the others pass, and
/// a restore that warned (a database it could not bring over) says so.
#[test]
fn a_suspended_account_is_a_finding_and_restore_warnings_are_shown() {
    let fleet = Fleet::standard(1, 6);
    let mut sc = fleet.scenario(0.002);
    remote_account(&mut sc, "s1u05").suspended = true;
    let s1u02 = remote_account(&mut sc, "s1u02");
    s1u02.databases = vec!["s1u02_wp".into(), "s1u02_logs".into()];
    sc.faults.restore_loses.insert(
        "s1u02".into(),
        ferry::sim::RestoreLoss {
            databases: vec!["s1u02_logs".into()],
            domains: vec![],
        },
    );
    let users = fleet.target_users();
    let w = World::start(fleet, sc);
    // apply's own check: a run stops scheduling (exit 3) each time an
    // account differs for the first time — s1u05 suspended, s1u02 without
    // a database its source listed; which apply meets which depends on the
    // sessions' timing — and the one after the last goes on and ends with
    // exit 4 naming both. Nothing is ever transferred again.
    let mut runs = vec![w.apply(&["--output", "json"])];
    while runs.last().unwrap().status.code() == Some(3) && runs.len() < 4 {
        runs.push(w.apply(&["--output", "json"]));
    }
    let codes: Vec<Option<i32>> = runs.iter().map(|r| r.status.code()).collect();
    assert!(
        codes.len() >= 2 && codes.len() <= 3 && codes.last() == Some(&Some(4)),
        "{codes:?}: {}",
        text(runs.last().unwrap())
    );
    let said: String = runs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.stderr).into_owned())
        .collect();
    assert!(
        said.contains("s1u05 is on the target but not as planned: suspended on the target"),
        "{said}"
    );
    assert!(said.contains("unsuspendacct user=s1u05"), "{said}");
    assert!(
        said.contains("s1u02 is on the target but not as planned: its database s1u02_logs is not on the target (the restore said:"),
        "{said}"
    );
    assert!(said.contains("mysqldump s1u02_logs"), "{said}");
    assert!(!said.contains("s1u02_wp is not"), "{said}");
    let fin = events(runs.last().unwrap()).pop().unwrap();
    assert_eq!(fin["event"], "run_finished");
    assert_eq!(fin["status"], "partial", "{fin}");
    for u in ["s1u05", "s1u02"] {
        assert!(
            fin["failed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["account"] == u
                    && f["message"].as_str().unwrap().contains("not as planned")),
            "{u}: {fin}"
        );
    }
    w.assert_exactly_once(&users);
    assert_eq!(w.state()["accounts"]["s1u05"]["suspended"], true);

    let st = w.status();
    let s1u05 = &st["accounts"]["s1u05"];
    assert_eq!(s1u05["state"], "transferred", "{s1u05}");
    assert_eq!(s1u05["verified"], false, "{s1u05}");
    assert!(
        s1u05["differences"][0]["what"]
            .as_str()
            .is_some_and(|t| t.contains("suspended")),
        "{s1u05}"
    );
    for (u, a) in st["accounts"].as_object().unwrap() {
        if u != "s1u05" && u != "s1u02" {
            assert_eq!(a["verified"], true, "{a}");
            assert!(a.get("differences").is_none(), "{a}");
        }
    }
    // The checks read the listaccts apply makes anyway (no accountsummary);
    // each account is checked after its session, and one that differs again
    // at the start of each later apply; databases are listed only for the
    // account whose source has some.
    assert_eq!(calls(&w, "accountsummary"), 0);
    let checked = w.records("account_checked");
    let of = |u: &str| checked.iter().filter(|r| r["rec"]["account"] == u).count();
    for u in &users {
        match u.as_str() {
            "s1u05" | "s1u02" => assert!((2..=runs.len()).contains(&of(u)), "{u}: {}", of(u)),
            _ => assert_eq!(of(u), 1, "{u}"),
        }
    }
    assert_eq!(calls(&w, "list_mysql_databases_and_users"), of("s1u02"));
    // What the source reported, per session, before anything was enqueued:
    // one retrieve per source and apply at most (create already ran the
    // analysis; a source's later sessions in the same apply reuse it).
    let analysed = w.records("session_analysed");
    let sessions = w.records("session_created").len();
    assert_eq!(analysed.len(), sessions);
    assert_eq!(calls(&w, "analyze_transfer_session_remote"), 0);
    let retrieves = calls(&w, "retrieve_transfer_session_remote_analysis");
    assert!(
        retrieves >= 1 && retrieves <= runs.len().min(sessions),
        "{retrieves} retrieves for {sessions} sessions over {} applies",
        runs.len()
    );
    assert!(
        analysed.iter().any(|r| r["rec"]["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["account"] == "s1u02"
                && a["databases"].as_array().is_some_and(|d| d.len() == 2)))
    );

    // What the restore said reaches the events and the status, once each.
    let said = |notes: &Value| {
        notes.as_array().is_some_and(|n| {
            n.iter().any(|n| {
                n["kind"] == "warning" && n["text"].as_str().unwrap().contains("s1u02_logs")
            })
        })
    };
    let ev: Vec<Value> = runs.iter().flat_map(events).collect();
    let ok = ev
        .iter()
        .find(|e| e["event"] == "item_succeeded" && e["account"] == "s1u02")
        .expect("s1u02 succeeded");
    assert_eq!(ok["warnings"], true, "{ok}");
    assert!(said(&ok["notes"]), "{ok}");
    assert!(said(&st["accounts"]["s1u02"]["notes"]), "{st:#}");
    assert!(
        st["accounts"]["s1u01"].get("notes").is_none(),
        "a clean restore has none"
    );

    let out = verify(&w, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("✗ s1u05") && stdout.contains("suspended on the target"),
        "{stdout}"
    );
    assert!(stdout.contains("unsuspendacct user=s1u05"), "{stdout}");
    // ferry verify compares the databases with the journal's analysis too.
    assert!(
        stdout.contains("✗ s1u02")
            && stdout.contains("its database s1u02_logs is not on the target"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the restore said (warning):") && stdout.contains("s1u02_logs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("✗ 2 of 6 transferred account(s)"),
        "{stdout}"
    );
}

/// With no journal, verify says what to do and sends nothing.
#[test]
fn without_a_run_nothing_is_sent() {
    let fleet = Fleet::standard(1, 5);
    let w = World::start(fleet.clone(), fleet.scenario(0.002));
    let out = verify(&w, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing to verify"), "{}", text(&out));
    assert!(text(&out).contains("ferry apply"), "{}", text(&out));
    assert!(w.sim().requests().as_array().unwrap().is_empty());
}

/// A rehearsal's journal is not compared with the real target.
#[test]
fn a_rehearsals_journal_is_refused() {
    let fleet = Fleet::standard(1, 5);
    let w = World::start(fleet.clone(), fleet.scenario(0.002));
    let out = w.apply(&["--simulate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = verify(&w, &["--journal", ".ferry/fleet.simulate.journal"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("rehearsal"), "{}", text(&out));
    assert!(w.sim().requests().as_array().unwrap().is_empty());
}

/// `policy.cleanup: {archives: delete}` removes the transfer archives of
/// each account once it is transferred and found on the target as planned —
/// never for one that failed, nor for one that differs (s1u05, restored
/// suspended: what it needs may be in the archive) — and says so in the
/// status and the report.
#[test]
fn cleanup_removes_archives_only_of_accounts_transferred_and_found() {
    let mut fleet = Fleet::standard(1, 6);
    fleet.policy =
        "on_error: continue\n  poll_interval: 40ms\n  cleanup: {archives: delete}".into();
    let mut sc = fleet.scenario(0.002);
    sc.faults.fail_items.insert(
        "s1u03".into(),
        ferry::sim::FailItem {
            message: "Disk quota exceeded".into(),
            times: 5,
            stage: ferry::sim::FailStage::Restore,
        },
    );
    remote_account(&mut sc, "s1u05").suspended = true;
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let st = w.state();
    let deleted: Vec<String> = w
        .sim()
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == "delete_account_archives")
        .map(|r| r["params"]["user"].as_str().unwrap_or_default().to_string())
        .collect();
    let status = w.status();
    for u in w.fleet.target_users() {
        let transferred = status["accounts"][&u]["state"] == "transferred";
        assert_eq!(transferred, u != "s1u03", "{u}: {status:#}");
        if u == "s1u05" {
            assert_eq!(status["accounts"][&u]["verified"], false, "{status:#}");
            assert!(!deleted.contains(&u), "a differing account was cleaned");
            assert_ne!(st["accounts"][&u]["archives"], 0, "{st:#}");
        } else if transferred {
            assert_eq!(
                st["accounts"][&u]["archives"], 0,
                "{u} kept its archive: {st:#}"
            );
            assert_eq!(status["accounts"][&u]["archives_deleted"], true, "{u}");
            assert_eq!(
                deleted.iter().filter(|d| **d == u).count(),
                1,
                "{u}: {deleted:?}"
            );
        } else {
            assert!(
                !deleted.contains(&u),
                "a failed account was cleaned: {deleted:?}"
            );
            assert!(status["accounts"][&u].get("archives_deleted").is_none());
        }
    }
    let html = w.dir.path().join("r.html");
    let out = w
        .ferry(&["report", "fleet.yaml", "--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(
        page.matches("transfer archives removed from the target")
            .count(),
        4,
        "one per cleaned account"
    );
}

/// `policy.verify: off`: apply checks nothing beyond presence, so the same
/// suspended account ends a clean run (exit 0) and no `account_checked` is
/// written; `ferry verify` still finds it.
#[test]
fn verify_off_leaves_the_check_to_ferry_verify() {
    let mut fleet = Fleet::standard(1, 6);
    fleet.policy.push_str("\n  verify: off");
    let mut sc = fleet.scenario(0.002);
    remote_account(&mut sc, "s1u05").suspended = true;
    let users = fleet.target_users();
    let w = World::start(fleet, sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(w.records("account_checked").is_empty());
    assert_eq!(w.status()["accounts"]["s1u05"]["verified"], true, "present");
    let out = verify(&w, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    w.assert_exactly_once(&users);
}

/// Under `on_error: continue`, a difference never stops the run: it ends
/// with exit 4 naming it. Here an account whose owner, a reseller neither
/// in the plan nor on the target, made WHM restore it under root.
#[test]
fn an_owner_fallen_back_to_root_ends_a_continue_run_with_exit_4() {
    let mut fleet = Fleet::standard(1, 6);
    fleet.policy = "on_error: continue\n  poll_interval: 40ms".into();
    let users = fleet.target_users();
    let mut sc = fleet.scenario(0.002);
    remote_account(&mut sc, "s1u05").owner = "goneres".into();
    let w = World::start(fleet, sc);
    let plan = std::fs::read_to_string(&w.plan)
        .unwrap()
        .replace("- {user: s1u05, ", "- {user: s1u05, owner: goneres, ");
    std::fs::write(&w.plan, plan).unwrap();
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("s1u05 is on the target but not as planned: its owner on the target is root, the plan's is goneres"),
        "{said}"
    );
    assert!(
        said.contains("modifyacct user=s1u05 owner=goneres"),
        "{said}"
    );
    let fin = events(&out).pop().unwrap();
    assert_eq!(fin["status"], "partial", "{fin}");
    let st = w.status();
    assert_eq!(st["accounts"]["s1u05"]["state"], "transferred");
    assert_eq!(st["accounts"]["s1u05"]["verified"], false);
    assert_eq!(w.state()["accounts"]["s1u05"]["owner"], "root");
    // No pause was asked for, and nothing moved twice.
    assert!(w.records("pause_requested").is_empty());
    w.assert_exactly_once(&users);
}

/// A domain the restore could not bring over (its notes name it) and that
/// the target does not have is a difference, in `apply` and in `ferry
/// verify`; `get_domain_info` is asked only for that account.
#[test]
fn a_domain_the_restore_lost_is_a_difference() {
    let mut fleet = Fleet::standard(1, 6);
    fleet.policy = "on_error: continue\n  poll_interval: 40ms".into();
    let users = fleet.target_users();
    let mut sc = fleet.scenario(0.002);
    remote_account(&mut sc, "s1u02").addon_domains =
        vec!["extra-s1u02.example".into(), "kept-s1u02.example".into()];
    sc.faults.restore_loses.insert(
        "s1u02".into(),
        ferry::sim::RestoreLoss {
            databases: vec![],
            domains: vec!["extra-s1u02.example".into()],
        },
    );
    let w = World::start(fleet, sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("s1u02 is on the target but not as planned: its domain extra-s1u02.example is not on the target (the restore said: Failed to restore the domain"),
        "{said}"
    );
    assert!(!said.contains("kept-s1u02.example is not"), "{said}");
    assert_eq!(calls(&w, "get_domain_info"), 1);
    let out = verify(&w, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("✗ s1u02")
            && stdout.contains("its domain extra-s1u02.example is not on the target"),
        "{stdout}"
    );
    assert_eq!(calls(&w, "get_domain_info"), 2);
    w.assert_exactly_once(&users);
}
