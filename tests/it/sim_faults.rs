//! Faults: `crash_at` and restart (both `crash_leaves` variants), HTTP
//! faults at their rates for a fixed seed, reset-after-apply, latency,
//! maintenance, TLS with the generated CA, and the `whm-sim` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry::sim::{AccountSpec, CrashLeaves, FaultSpec, Scenario, Size, TlsMode};
use serde_json::{Value, json};

use crate::kit::*;

const T: Duration = Duration::from_secs(20);

fn crash_scenario(leaves: CrashLeaves) -> Scenario {
    // time_scale 0.001: 1000 simulated seconds per real second
    let mut sc = scenario(0, 0);
    let mut a = AccountSpec::new("aaa");
    a.size = Size(1_000_000); // done long before the crash
    let mut b = AccountSpec::new("bbb");
    b.size = Size(1_000_000_000_000); // transferring when the crash comes
    sc.remotes[0].accounts = vec![a, b];
    sc.faults.crash_at = vec![800.0];
    sc.faults.crash_leaves = leaves;
    sc
}

async fn run_until_crash(sim: &Sim) -> String {
    let w = &sim.whm;
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "aaa", &[]).await;
    w.enqueue_account(&id, "bbb", &[]).await;
    assert!(ok(&w.start(&id).await));
    assert!(sim.server.sim_time() < 800.0, "set up before the crash");
    sim.wait_until("the crash", T, |s| s["crashes"] == 1).await;
    // a dead session still reads RUNNING
    assert_eq!(w.state_name(&id).await, "RUNNING");
    let st = sim.state();
    assert_eq!(st["sessions"][0]["alive"], false);
    assert_eq!(st["accounts"]["aaa"]["present"], true);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_leaves_a_stale_session_and_an_orphan_that_blocks_restore() {
    let sim = Sim::start(crash_scenario(CrashLeaves::InProgress)).await;
    let w = &sim.whm;
    let id = run_until_crash(&sim).await;
    let st = sim.state();
    assert_eq!(
        st["sessions"][0]["items"][1]["state"],
        "TRANSFER_INPROGRESS"
    );
    // the master's log is still the active one
    assert!(
        st["sessions"][0]["logs"]
            .as_array()
            .unwrap()
            .contains(&".master.log".into())
    );
    let before = w.master_log(&id).await.len();
    assert!(
        ok(&w.start(&id).await),
        "start restarts a stale RUNNING session"
    );
    let log = w.master_log(&id).await;
    let fresh: Vec<&str> = log[before..]
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &fresh[..3],
        ["start", "initiator", "version"],
        "a fresh start block"
    );
    // the orphan is never retried; RESTORE waits on it forever
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.state_name(&id).await, "RUNNING");
    let st = sim.state();
    assert_eq!(
        st["sessions"][0]["items"][1]["state"],
        "TRANSFER_INPROGRESS"
    );
    assert_eq!(st["sessions"][0]["alive"], true);
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_with_crash_leaves_failed_lets_a_restart_complete() {
    let sim = Sim::start(crash_scenario(CrashLeaves::Failed)).await;
    let w = &sim.whm;
    let id = run_until_crash(&sim).await;
    assert_eq!(sim.state()["sessions"][0]["items"][1]["state"], "FAILED");
    assert!(ok(&w.start(&id).await));
    assert_eq!(sim.wait_state(&id, &["COMPLETED"], T).await, "COMPLETED");
    let st = sim.state();
    assert_eq!(st["accounts"]["aaa"]["restores_started"], 1);
    assert_eq!(st["accounts"]["bbb"]["present"], false);
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_faults_strike_at_their_rates_for_a_fixed_seed() {
    let mut sc = scenario(0, 0);
    sc.faults = FaultSpec {
        seed: 11,
        http_500: 0.10,
        reset: 0.05,
        hang: 0.05,
        hang_max_secs: 5.0,
        ..FaultSpec::default()
    };
    let sim = Sim::start(sc).await;
    let mut client = sim.whm.clone();
    // a hang is told from a slow answer by the client's timeout: keep it well
    // above a loaded machine's latency and below hang_max_secs
    client.client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let n = 400;
    let url = client.url("available_transfer_modules", &[]);
    let mut set = tokio::task::JoinSet::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    for _ in 0..n {
        let c = client.clone();
        let url = url.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let t0 = Instant::now();
            let r = c
                .client
                .get(&url)
                .header("Authorization", c.auth.clone().unwrap())
                .send()
                .await;
            match r {
                Ok(resp) => (resp.status().as_u16().to_string(), t0.elapsed()),
                Err(e) if e.is_timeout() => ("timeout".to_string(), t0.elapsed()),
                Err(_) => ("error".to_string(), t0.elapsed()),
            }
        });
    }
    let mut seen: std::collections::BTreeMap<String, u32> = Default::default();
    while let Some(r) = set.join_next().await {
        *seen.entry(r.unwrap().0).or_default() += 1;
    }
    let reqs = sim.whm.inspect("requests").await;
    let labels: Vec<String> = reqs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fault"].as_str().unwrap_or("none").to_string())
        .collect();
    assert_eq!(labels.len(), n, "every request reached the simulator");
    let count = |p: &dyn Fn(&str) -> bool| labels.iter().filter(|l| p(l)).count() as f64;
    // each count within 5 standard deviations of n·p
    let within =
        |c: f64, p: f64| (c - n as f64 * p).abs() <= 5.0 * (n as f64 * p * (1.0 - p)).sqrt();
    let (e500, reset, hang) = (
        count(&|l| l == "http_500"),
        count(&|l| l.starts_with("reset")),
        count(&|l| l.starts_with("hang")),
    );
    assert!(
        within(e500, 0.10) && within(reset, 0.05) && within(hang, 0.05),
        "{e500} {reset} {hang}"
    );
    // what the client saw is what the simulator decided
    assert_eq!(
        seen.get("500").copied().unwrap_or(0) as f64,
        e500,
        "{seen:?}"
    );
    assert_eq!(
        seen.get("error").copied().unwrap_or(0) as f64,
        reset,
        "{seen:?}"
    );
    assert_eq!(
        seen.get("timeout").copied().unwrap_or(0) as f64,
        hang,
        "{seen:?}"
    );
    assert_eq!(
        seen.get("200").copied().unwrap_or(0) as f64,
        n as f64 - e500 - reset - hang
    );
    sim.server.shutdown().await;

    // the same seed gives the same decision for each request number
    let mut sc = scenario(0, 0);
    sc.faults = FaultSpec {
        seed: 11,
        http_500: 0.10,
        reset: 0.05,
        hang: 0.05,
        hang_max_secs: 5.0,
        ..FaultSpec::default()
    };
    let again = Sim::start(sc).await;
    let mut c2 = again.whm.clone();
    c2.client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // decisions follow the request number, not the order of arrival
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let c2 = c2.clone();
        set.spawn(async move {
            let _ = c2
                .client
                .get(c2.url("available_transfer_modules", &[]))
                .header("Authorization", c2.auth.clone().unwrap())
                .send()
                .await;
        });
    }
    while set.join_next().await.is_some() {}
    let reqs2 = again.whm.inspect("requests").await;
    let labels2: Vec<String> = reqs2
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fault"].as_str().unwrap_or("none").to_string())
        .collect();
    assert_eq!(labels2[..], labels[..40]);
    again.server.shutdown().await;
}

/// Half of the resets strike after the call was applied: the answer is lost
/// but the session exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_applying_loses_the_answer_not_the_effect() {
    let sim = Sim::start(scenario(0, 0)).await;
    let set = sim
        .whm
        .client
        .post(format!("{}/__sim/faults", sim.whm.base))
        .json(&json!({"seed": 3, "reset": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let mut lost = 0;
    for _ in 0..30 {
        let r = sim
            .whm
            .client
            .post(sim.whm.url("create_remote_root_transfer_session", &[]))
            .header("Authorization", sim.whm.auth.clone().unwrap())
            .form(&[
                ("host", "old1.example.com"),
                ("user", "root"),
                ("password", "pw1"),
                ("transfer_threads", "1"),
                ("restore_threads", "1"),
                ("unrestricted_restore", "1"),
                ("copy_reseller_privs", "0"),
                ("compressed", "0"),
                ("unencrypted", "0"),
                ("low_priority", "0"),
            ])
            .send()
            .await;
        assert!(r.is_err(), "every answer is lost");
        lost += 1;
    }
    let reqs = sim.whm.inspect("requests").await;
    let after = reqs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fault"] == "reset_after")
        .count();
    assert!(after > 5 && after < 25, "about half: {after} of {lost}");
    let sessions = sim.state()["sessions"].as_array().unwrap().len();
    assert_eq!(
        sessions, after,
        "only the calls reset after applying took effect"
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_answers() {
    let mut sc = scenario(0, 0);
    sc.faults.latency_ms = [60, 80];
    let sim = Sim::start(sc).await;
    let t0 = Instant::now();
    assert!(ok(&sim.whm.get("available_transfer_modules", &[]).await));
    assert!(t0.elapsed() >= Duration::from_millis(60));
    // inspection is never delayed or faulted
    let _ = sim.whm.inspect("state").await;
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_fails_idle_sessions_and_deletes_old_pending_ones() {
    let mut sc = crash_scenario(CrashLeaves::InProgress);
    sc.time_scale = 0.0001; // 4 simulated hours in 1.44 s
    sc.faults.crash_at = vec![];
    sc.target.maintenance_interval = Some(600.0);
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let pending = w.session((1, 1)).await;
    let stale = w.session((1, 1)).await;
    w.enqueue_account(&stale, "bbb", &[]).await;
    w.start(&stale).await;
    sim.server.crash_now();
    let deadline = Instant::now() + T;
    while w.state_name(&stale).await != "FAILED" {
        assert!(Instant::now() < deadline, "maintenance never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sim.server.sim_time() > 4.0 * 3600.0);
    let g = w
        .get(
            "get_transfer_session_state",
            &[("transfer_session_id", &pending)],
        )
        .await;
    assert!(
        reason(&g).contains("failed to connect to the “SQLite” database"),
        "{g:#}"
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_tls_is_served_with_a_ca_clients_can_pin() {
    let mut sc = scenario(1, 1_000_000);
    sc.tls = TlsMode::SelfSigned;
    let sim = Sim::start(sc).await;
    assert!(sim.whm.base.starts_with("https://127.0.0.1:"));
    let pem = sim.server.ca_pem().expect("a CA").to_string();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    // the pinned client (the kit trusts only this CA) works
    let id = sim.whm.session((1, 1)).await;
    assert_eq!(sim.whm.state_name(&id).await, "PENDING");
    // a client that trusts another CA is refused
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let strict = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(other.cert.pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let r = strict
        .get(format!("{}/__sim/state", sim.whm.base))
        .send()
        .await;
    assert!(r.is_err(), "an untrusted certificate is refused");
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_url_serves_and_stops_on_sigterm() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut sc = scenario(1, 1_000_000);
    sc.tls = TlsMode::SelfSigned;
    let scenario_path = dir.path().join("scenario.yaml");
    std::fs::write(&scenario_path, sc.to_yaml()).unwrap();
    let addr_file = dir.path().join("sim.url");
    let cert = dir.path().join("ca.pem");
    let bin = env!("CARGO_BIN_EXE_whm-sim");
    let mut child = Command::new(bin)
        .arg("--scenario")
        .arg(&scenario_path)
        .args(["--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .arg("--cert-out")
        .arg(&cert)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .expect("first line")
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(std::fs::read_to_string(&addr_file).unwrap().trim(), url);
    let pem = std::fs::read_to_string(&cert).unwrap();
    let whm = Whm::new(&url, Some(&pem), Some(format!("whm root:{TOKEN}")));
    let v: Value = whm.get("available_transfer_modules", &[]).await;
    assert!(ok(&v));
    // SIGTERM stops it cleanly
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let help = Command::new(bin).arg("--help").output().unwrap();
    let text = String::from_utf8(help.stdout).unwrap();
    for needle in [
        "--scenario",
        "--listen",
        "--addr-file",
        "--cert-out",
        "Rehearse",
        "/__sim/state",
        "crash_at",
    ] {
        assert!(text.contains(needle), "--help mentions {needle}");
    }
    // a bad scenario is refused with exit code 2
    std::fs::write(&scenario_path, "faults: {http500: 1}\n").unwrap();
    let bad = Command::new(bin)
        .arg("--scenario")
        .arg(&scenario_path)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("http500"));
}
