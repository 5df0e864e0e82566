//! `ferry plan --journal`: steps marked done / in progress / pending from a
//! real run's journal (design §2), and `whm-sim --from-plan` (a rehearsal
//! scenario written from a plan, served by the binary, and applied to).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ferry::sim::{FailItem, FailStage, Scenario};
use serde_json::Value;

use crate::kit::*;

fn repo_plan(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plans")
        .join(name)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ferry plan ARGS` in the world's directory, asserted to exit 0.
fn plan(w: &World, args: &[&str]) -> Output {
    let mut all = vec!["plan", "fleet.yaml"];
    all.extend_from_slice(args);
    let out = run_bounded(w.ferry(&all), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

/// step id → mark (`done`, `in_progress`, `pending`) from `--format json`.
fn json_marks(out: &Output) -> BTreeMap<String, String> {
    let v: Value = serde_json::from_slice(&out.stdout).expect("plan prints JSON");
    v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["mark"]
                    .as_str()
                    .expect("every step has a mark")
                    .to_string(),
            )
        })
        .collect()
}

/// Accounts (source user → target user) of each session key, from the
/// plan's JSON.
fn session_accounts(out: &Output) -> BTreeMap<String, Vec<(String, String)>> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let accts = s["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["user"].as_str().unwrap().to_string(),
                        a["target_user"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (s["key"].as_str().unwrap().to_string(), accts)
        })
        .collect()
}

/// A run paused by `on_error: pause` is shown as it stands: old1 (which
/// finished before the failure) done, old2's session in progress with each
/// account's step done exactly when `ferry status` says it is transferred;
/// after `apply` resumes and finishes, every step is done. Without a
/// journal the output is unchanged.
#[test]
fn marks_follow_a_paused_run_and_its_resume() {
    let mut fleet = Fleet::standard(2, 10);
    fleet.policy = "on_error: pause\n  poll_interval: 40ms\n  stall_timeout: 20s\n  \
                    retries: {attempts: 8, initial_backoff: 5ms, max_backoff: 100ms}"
        .into();
    let mut sc = fleet.scenario(0.01);
    // old2's largest account, first in its session: others are still
    // pending when it fails, so the session is paused midway.
    sc.faults.fail_items.insert(
        "s2u06".into(),
        FailItem {
            message: "Disk quota exceeded".into(),
            times: 1,
            stage: FailStage::Transfer,
        },
    );
    let w = World::start(fleet.clone(), sc);

    // No journal yet: no marks, and `--journal` at a missing file changes
    // nothing on stdout (a note on stderr).
    let bare_text = stdout(&plan(&w, &[]));
    let bare_json = stdout(&plan(&w, &["--format", "json"]));
    assert!(!bare_text.contains("[done]") && !bare_text.contains("[pending]"));
    assert!(!bare_json.contains("\"mark\""), "{bare_json}");
    let missing = plan(&w, &["--journal", "nowhere.journal"]);
    assert_eq!(stdout(&missing), bare_text);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no journal at nowhere.journal"),
        "{}",
        text(&missing)
    );

    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let status = w.status();
    assert_eq!(status["status"], "paused", "{status:#}");

    // The default journal (.ferry/fleet.journal) is picked up.
    let js = plan(&w, &["--format", "json"]);
    let marks = json_marks(&js);
    let sessions = session_accounts(&js);
    assert_eq!(
        sessions.keys().collect::<Vec<_>>(),
        ["old1/s1", "old1/s2", "old2/s1"]
    );
    for (id, m) in &marks {
        if id.starts_with("old1/") {
            assert_eq!(m, "done", "{id}: old1 finished before the pause");
        }
    }
    assert_eq!(marks["old2/preflight"], "done");
    assert_eq!(marks["old2/s1/create"], "done");
    assert_eq!(marks["old2/s1/start"], "done");
    // Paused on the server, not finished: still awaited, not verified.
    assert_eq!(marks["old2/s1/await"], "in_progress");
    assert_eq!(marks["old2/s1/verify"], "pending");
    let mut done = 0;
    for (user, target) in &sessions["old2/s1"] {
        let state = status["accounts"][target]["state"].as_str().unwrap();
        let m = &marks[&format!("old2/s1/enqueue/{user}")];
        assert_eq!(
            m == "done",
            state == "transferred",
            "{user}: {m} vs {state}"
        );
        done += usize::from(m == "done");
    }
    assert!(done < 10, "the pause left old2 unfinished");
    // The failed account goes to a new session on resume: pending again.
    assert_eq!(status["accounts"]["s2u06"]["state"], "failed");
    assert_eq!(marks["old2/s1/enqueue/s2u06"], "pending");

    let txt = stdout(&plan(&w, &[]));
    assert!(txt.contains("old1/preflight [done]"), "{txt}");
    assert!(txt.contains("old2/preflight [done]"), "{txt}");
    assert!(txt.contains("old1/s1 [done]"), "{txt}");
    assert!(txt.contains("old1/s2 [done]"), "{txt}");
    assert!(txt.contains("old2/s1 [in progress]"), "{txt}");
    let line = |needle: &str| {
        txt.lines()
            .find(|l| l.contains("account") && l.contains(needle))
            .unwrap_or_else(|| panic!("no account line for {needle}: {txt}"))
            .to_string()
    };
    assert!(line("s2u06").ends_with("[pending]"), "{}", line("s2u06"));
    assert!(line("shop → shop2").ends_with("[done]"));
    // Marks only add to the lines: strip them and the bare output remains.
    let stripped: String = txt
        .lines()
        .map(|l| {
            let mut l = l.to_string();
            for m in ["  [done]", "  [in progress]", "  [pending]"] {
                l = l.trim_end_matches(m).to_string();
            }
            for m in [" [done]", " [in progress]", " [pending]"] {
                l = l.replacen(m, "", 1);
            }
            l + "\n"
        })
        .collect();
    assert_eq!(stripped, bare_text);

    // Resume to the end: everything done, in every format.
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let marks = json_marks(&plan(&w, &["--format", "json"]));
    let steps: Value = serde_json::from_str(&bare_json).unwrap();
    assert_eq!(marks.len(), steps["steps"].as_array().unwrap().len());
    for (id, m) in &marks {
        assert_eq!(m, "done", "{id}");
    }
    let txt = stdout(&plan(&w, &["--journal", ".ferry/fleet.journal"]));
    assert!(txt.contains("old2/s1 [done]"), "{txt}");
    assert!(
        !txt.contains("[pending]") && !txt.contains("[in progress]"),
        "{txt}"
    );
    let dot = stdout(&plan(&w, &["--format", "dot"]));
    assert!(dot.contains("palegreen") && !dot.contains("khaki"), "{dot}");
}

/// `ferry apply --simulate` then `ferry plan --journal` on its journal:
/// every step done. A journal damaged in the middle is refused (exit 1,
/// naming the line), as `ferry status` refuses it.
#[test]
fn a_rehearsal_journal_marks_every_step_done_and_a_corrupt_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = repo_plan("single-server.yaml");
    let journal = dir.path().join("rehearsal.journal");
    let ferry = |args: &[&str]| {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("ferry"));
        c.current_dir(dir.path())
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        run_bounded(c, Duration::from_secs(120))
    };
    let p = plan.to_str().unwrap();
    let j = journal.to_str().unwrap();
    let out = ferry(&["apply", p, "--simulate", "--journal", j]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let js = ferry(&["plan", p, "--journal", j, "--format", "json"]);
    assert_eq!(js.status.code(), Some(0), "{}", text(&js));
    let marks = json_marks(&js);
    assert!(marks.contains_key("old1/s1/enqueue/shop"), "{marks:?}");
    for (id, m) in &marks {
        assert_eq!(m, "done", "{id}");
    }
    let txt = ferry(&["plan", p, "--journal", j]);
    let t = stdout(&txt);
    assert!(t.contains("old1/preflight [done]"), "{t}");
    assert!(
        t.contains("old1/s1 [done]") && t.contains("old1/s2 [done]"),
        "{t}"
    );
    assert!(
        !t.contains("[pending]") && !t.contains("[in progress]"),
        "{t}"
    );
    // The default journal (.ferry/single-server.journal) does not exist
    // here: no marks.
    let bare = ferry(&["plan", p]);
    assert!(!stdout(&bare).contains("[done]"), "{}", text(&bare));

    // Damage line 2 (not the last one): corrupt, not torn.
    let body = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
    assert!(lines.len() > 3);
    lines[1] = lines[1].replacen("\"rec\"", "\"rek\"", 1);
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let bad = ferry(&["plan", p, "--journal", j]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("line 2") && err.contains("corrupt"), "{err}");
    assert!(bad.stdout.is_empty(), "{}", text(&bad));
    let status = ferry(&["status", p, "--journal", j]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
}

/// `whm-sim --from-plan` writes a scenario that `whm-sim --scenario` serves
/// and that a real `ferry apply` of the same plan runs against to the end:
/// every account restored once, every package present.
#[test]
fn whm_sim_from_plan_seeds_a_rehearsal_that_apply_completes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = env!("CARGO_BIN_EXE_whm-sim");
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::standard(2, 6);
    let plan = dir.path().join("fleet.yaml");
    std::fs::write(&plan, fleet.plan_yaml("https://whm.example.net:2087")).unwrap();

    // To stdout: a scenario with every account and package of the plan.
    let out = Command::new(bin)
        .arg("--from-plan")
        .arg(&plan)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let sc = Scenario::from_yaml(&stdout(&out)).expect("the scenario loads");
    assert_eq!(sc.hostname, "whm.example.net");
    assert_eq!(sc.remotes.len(), 2);
    for (r, s) in sc.remotes.iter().zip(&fleet.sources) {
        assert_eq!(r.host, s.host);
        assert_eq!(r.packages, s.packages);
        assert!(r.ssh.is_none(), "any credentials accepted");
        let users: Vec<&str> = r.accounts.iter().map(|a| a.user.as_str()).collect();
        let want: Vec<&str> = s.accounts.iter().map(|a| a.user.as_str()).collect();
        assert_eq!(users, want);
    }
    assert!(sc.faults.fail_items.is_empty());

    // To a file, then served by the binary.
    let scenario = dir.path().join("rehearsal.yaml");
    let out = Command::new(bin)
        .arg("--from-plan")
        .arg(&plan)
        .arg("--out")
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty());
    let written = Scenario::from_yaml(&std::fs::read_to_string(&scenario).unwrap()).unwrap();
    // Equal but for the token: each run draws a fresh stand-in.
    let mut same = written.clone();
    same.tokens = sc.tokens.clone();
    assert_eq!(same, sc);
    assert!(written.tokens[0].token.starts_with("ferry-stand-in-"));
    let token = written.tokens[0].token.clone();
    let addr_file = dir.path().join("sim.url");
    let mut child = Command::new(bin)
        .arg("--scenario")
        .arg(&scenario)
        .args(["--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    let url = std::fs::read_to_string(&addr_file)
        .unwrap()
        .trim()
        .to_string();

    // The same plan, pointed at the simulator.
    std::fs::write(&plan, fleet.plan_yaml(&url)).unwrap();
    let mut apply = Command::new(assert_cmd::cargo::cargo_bin("ferry"));
    apply
        .current_dir(dir.path())
        .args(["apply", "fleet.yaml", "--request-timeout", "5s"])
        .env("FERRY_TEST_TOKEN", &token)
        .env("FERRY_TEST_SSH", "any-password")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let out = run_bounded(apply, Duration::from_secs(120));
    let state = fetch_state(&url);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopped = child.wait().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stopped.success(), "{stopped:?}");

    let accounts = state["accounts"].as_object().expect("accounts");
    let users = fleet.target_users();
    assert_eq!(accounts.len(), users.len(), "{state:#}");
    for u in &users {
        let a = &accounts[u];
        assert_eq!(a["restores_started"], 1, "{u}: {a}");
        assert_eq!(a["restores_completed"], 1, "{u}: {a}");
        assert_eq!(a["present"], true, "{u}: {a}");
    }
    for p in ["gold", "silver"] {
        assert_eq!(state["packages"][p]["present"], true, "{p}: {state:#}");
    }
}

/// Invalid plans are refused with `ferry validate`'s diagnostics (exit 2),
/// nothing is written; `--help` documents the mode.
#[test]
fn whm_sim_from_plan_refuses_an_invalid_plan() {
    let bin = env!("CARGO_BIN_EXE_whm-sim");
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bad.yaml");
    let good = std::fs::read_to_string(repo_plan("single-server.yaml")).unwrap();
    std::fs::write(&plan, good.replace("package: basic", "package: platinum")).unwrap();
    let out_file = dir.path().join("never.yaml");
    let out = Command::new(bin)
        .arg("--from-plan")
        .arg(&plan)
        .arg("--out")
        .arg(&out_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("platinum") && err.contains("bad.yaml:"),
        "{err}"
    );
    assert!(!out_file.exists());
    // The same diagnostics as `ferry validate`.
    let validate = Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .arg("validate")
        .arg(&plan)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(validate.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&validate.stderr), err);

    // --out without --from-plan, or both modes at once: argument errors.
    let out = Command::new(bin)
        .args(["--out", "x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = Command::new(bin)
        .arg("--from-plan")
        .arg(repo_plan("single-server.yaml"))
        .args(["--scenario", "x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let help = Command::new(bin).arg("--help").output().unwrap();
    let h = stdout(&help);
    assert!(h.contains("--from-plan") && h.contains("--out"), "{h}");
}

/// `GET /__sim/state` of a simulator in another process.
fn fetch_state(url: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::get(format!("{url}/__sim/state"))
            .await
            .expect("state answers")
            .json()
            .await
            .expect("state is JSON")
    })
}
