//! `ferry apply` end to end over HTTP against whm-sim (issue 4).

use crate::kit::*;

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

/// `fetch_transfer_session_log` blocks on a log still being written
/// (`log_blocking`): a poll's short log fetch times out as "no news", the
/// outcomes are read from the full log once the session ends.
#[test]
fn blocking_logs_do_not_stop_the_run() {
    let fleet = Fleet::standard(2, 6);
    let mut sc = fleet.scenario(0.002);
    sc.faults.log_blocking = true;
    let w = World::start(fleet.clone(), sc);
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let users = fleet.target_users();
    w.assert_strictly_once(&users);
    w.assert_status_succeeded(&users);
}

/// A refused API token stops every call at once (WHM's brute-force
/// protection): exit 1 with a clear message, a handful of requests at most.
#[test]
fn a_refused_token_stops_all_calls() {
    let fleet = Fleet::standard(3, 4);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let out = w
        .ferry(&["apply", "fleet.yaml"])
        .env("FERRY_TEST_TOKEN", "wrong-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the API token"), "{err}");
    assert!(!err.contains("wrong-token"), "the token leaked: {err}");
    let requests = w.sim().requests();
    let n = requests.as_array().unwrap().len();
    // At most one call per session slot was in flight when the first
    // refusal came back; nothing after it.
    assert!(n <= 3, "{n} requests after an auth refusal: {requests:#}");
    let journal = std::fs::read_to_string(w.journal()).unwrap();
    assert!(!journal.contains("wrong-token"));
}

/// The README's main job: `ferry apply --simulate` on the bundled plans.
#[test]
fn simulate_the_bundled_plans() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for plan in ["plans/single-server.yaml", "plans/consolidation.yaml"] {
        let dir = tempfile::tempdir().unwrap();
        let out = run_bounded(
            {
                let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"));
                // A copy in the test's folder: the rehearsal journal lives
                // next to the plan, and tests run at once must not share it.
                let copy = dir
                    .path()
                    .join(std::path::Path::new(plan).file_name().unwrap());
                std::fs::copy(root.join(plan), &copy).unwrap();
                c.current_dir(dir.path())
                    .args(["apply", "--simulate", "--output", "json"])
                    .arg(&copy)
                    .env_remove("WHM_TOKEN");
                c
            },
            std::time::Duration::from_secs(120),
        );
        assert_eq!(out.status.code(), Some(0), "{plan}: {}", text(&out));
        let last = events(&out).pop().unwrap();
        assert_eq!(last["event"], "run_finished");
        assert_eq!(last["accounts"]["pending"], 0);
        assert!(last["accounts"]["transferred"].as_u64().unwrap() > 0);
        let stem = std::path::Path::new(plan)
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            dir.path()
                .join(format!(".ferry/{stem}.simulate.journal"))
                .exists()
        );
    }
}

/// `--simulate=SCENARIO`: a scenario file with a failing account.
#[test]
fn simulate_with_a_scenario_file() {
    let fleet = Fleet::standard(1, 4);
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let mut sc = fleet.scenario(0.001);
    sc.faults.fail_items.insert(
        "s1u02".into(),
        ferry::sim::FailItem {
            message: "Disk quota exceeded".into(),
            times: 5,
            stage: ferry::sim::FailStage::Restore,
        },
    );
    std::fs::write(w.dir.path().join("faulty.yaml"), sc.to_yaml()).unwrap();
    let out = w
        .ferry(&["apply", "fleet.yaml", "--simulate=faulty.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s1u02") && err.contains("Disk quota exceeded"),
        "{err}"
    );
    // The rehearsal touched neither the world's simulator nor its journal.
    assert!(w.sim().requests().as_array().unwrap().is_empty());
    assert!(!w.journal().exists());
}

/// A target that never answers is a runtime failure (design §3: exit 1),
/// not a pause: every create attempt is refused before reaching a server,
/// so nothing exists on the target, and the journal says so.
#[test]
fn an_unreachable_target_exits_1_after_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plan = format!(
        "version: 1\ntarget:\n  url: http://127.0.0.1:{port}\n  token: {{env: FERRY_T}}\n\
         sources:\n  - name: old1\n    host: old1.example.com\n    ssh: {{password: {{env: FERRY_P}}}}\n\
         \x20   accounts: [alpha, bravo]\n\
         policy:\n  retries: {{attempts: 3, initial_backoff: 10ms, max_backoff: 20ms}}\n"
    );
    std::fs::write(dir.path().join("p.yaml"), plan).unwrap();
    let out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .current_dir(dir.path())
        .args(["apply", "p.yaml"])
        .env("FERRY_T", "tok")
        .env("FERRY_P", "pw")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // The first call of a run asks the target's record of the plan: it is
    // tried `attempts` times, then the run stops before creating anything.
    assert_eq!(err.matches("will retry").count(), 2, "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    let journal = std::fs::read_to_string(dir.path().join(".ferry/p.journal")).unwrap();
    assert!(!journal.contains("session_create_intent"), "{journal}");
    assert!(!journal.contains("session_created"), "{journal}");
}
