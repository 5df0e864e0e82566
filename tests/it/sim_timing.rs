//! The timing model of design §6 holds, and the simulator scales.
//!
//! Model: in a session, up to `transfer_threads` items transfer at once,
//! each for t = size / transfer_rate; a transferred item waits for a restore
//! slot (at most `restore_threads` per session and `max_restores` on the
//! target) and restores for r = size / restore_rate. Packages take one
//! simulated second and go first.

use std::time::Duration;

use ferry::sim::{Scenario, Size};
use serde_json::Value;

use crate::kit::*;

fn makespan(st: &Value) -> f64 {
    let sessions = st["sessions"].as_array().unwrap();
    let start = sessions
        .iter()
        .map(|s| s["started_at"].as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    let end = sessions
        .iter()
        .map(|s| s["finished_at"].as_f64().unwrap())
        .fold(0.0, f64::max);
    end - start
}

fn equal_accounts(n: usize, size: u64) -> Scenario {
    let mut sc = scenario(n, size);
    sc.remotes[0].transfer_rate = Size(50_000_000);
    sc.target.restore_rate = Size(25_000_000);
    sc
}

async fn run_all(sim: &Sim, sessions: usize, n: usize, threads: (u32, u32), package: bool) {
    let w = &sim.whm;
    let mut ids = Vec::new();
    for s in 0..sessions {
        let id = w.session(threads).await;
        if package {
            w.enqueue(&id, "PackageRemoteRoot", &[("package", "pkg1")])
                .await;
        }
        for i in (s..n).step_by(sessions) {
            w.enqueue_account(&id, &format!("u{i:03}"), &[]).await;
        }
        ids.push(id);
    }
    for id in &ids {
        assert!(ok(&w.start(id).await));
    }
    for id in &ids {
        sim.wait_state(id, &["COMPLETED"], Duration::from_secs(30))
            .await;
    }
}

/// Restore-bound: 200 accounts of 100 MB in 4 sessions with 3+3 threads,
/// `max_restores` 8. t = 100MB / 50MB/s = 2 s, r = 100MB / 25MB/s = 4 s.
/// Transfers supply 4·3/t = 6 accounts/s, restores drain 8/r = 2/s, so the
/// 8 target slots stay busy from the first transfer's end:
///   makespan = t + ceil(N / min(max_restores, sessions·restore_threads)) · r
///            = 2 + ceil(200 / 8) · 4 = 102 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_bound_makespan_matches_the_formula() {
    let mut sc = equal_accounts(200, 100_000_000);
    sc.target.max_restores = 8;
    sc.time_scale = 0.01; // 1 s real; start skew between sessions ≈ 1 simulated s
    let sim = Sim::start(sc).await;
    run_all(&sim, 4, 200, (3, 3), false).await;
    let st = sim.state();
    let (t, r, n, slots) = (2.0, 4.0, 200.0_f64, 8.0_f64);
    let formula = t + (n / slots).ceil() * r;
    let got = makespan(&st);
    eprintln!("makespan {got:.3} simulated s, formula {formula} s");
    assert!(
        (got - formula).abs() / formula <= 0.05,
        "makespan {got} vs formula {formula}"
    );
    for i in 0..200 {
        assert_eq!(st["accounts"][format!("u{i:03}")]["restores_completed"], 1);
    }
    sim.finish().await;
}

/// Transfer-bound: 200 accounts of 200 MB in one session with 2 transfer and
/// 9 restore threads. A package goes first (1 s); t = 4 s, r = 8 s.
/// Restores drain 9/8 per s > transfers supply 2/4 per s, so the last wave of
/// transfers sets the pace:
///   makespan = 1 + ceil(N / transfer_threads) · t + r = 1 + 100·4 + 8 = 409 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_bound_makespan_matches_the_formula() {
    let mut sc = equal_accounts(200, 200_000_000);
    sc.target.max_restores = 9;
    sc.time_scale = 0.002; // 0.8 s real
    let sim = Sim::start(sc).await;
    run_all(&sim, 1, 200, (2, 9), true).await;
    let st = sim.state();
    let formula = 1.0 + (200.0_f64 / 2.0).ceil() * 4.0 + 8.0;
    let got = makespan(&st);
    eprintln!("makespan {got:.3} simulated s, formula {formula} s");
    assert!(
        (got - formula).abs() / formula <= 0.05,
        "makespan {got} vs formula {formula}"
    );
    // a single session is exact: every duration comes from the model, not the wall clock
    assert!(
        (got - formula).abs() < 1e-6,
        "makespan {got} vs formula {formula}"
    );
    sim.finish().await;
}

/// 10,000 accounts in 100 sessions run to completion, each restored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_accounts_in_one_hundred_sessions() {
    let n = 10_000;
    let mut sc = Scenario {
        time_scale: 0.0005,
        ..Scenario::default()
    };
    let mut remote = ferry::sim::RemoteSpec::new("old1.example.com");
    for i in 0..n {
        let mut a = ferry::sim::AccountSpec::new(format!("a{i:05}"));
        a.size = Size(25_000_000);
        remote.accounts.push(a);
    }
    sc.remotes.push(remote);
    sc.target.max_restores = 64;
    let sim = Sim::start(sc).await;
    let w = sim.whm.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..100 {
        let w = w.clone();
        tasks.spawn(async move {
            let v = w.create_root("old1.example.com", "any", (3, 3)).await;
            let id = v["data"]["transfer_session_id"]
                .as_str()
                .unwrap()
                .to_string();
            for i in (s..n).step_by(100) {
                let u = format!("a{i:05}");
                let e = w.enqueue_account(&id, &u, &[]).await;
                assert!(ok(&e), "{e}");
            }
            assert!(ok(&w.start(&id).await));
            id
        });
        if tasks.len() >= 8 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let st = sim
        .wait_until("all sessions completed", Duration::from_secs(60), |s| {
            s["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["state"] == "COMPLETED")
        })
        .await;
    assert_eq!(st["sessions"].as_array().unwrap().len(), 100);
    let accounts = st["accounts"].as_object().unwrap();
    assert_eq!(accounts.len(), n);
    assert!(
        accounts
            .values()
            .all(|a| a["present"] == true && a["restores_started"] == 1)
    );
    sim.finish().await;
}
