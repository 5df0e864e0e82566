//! whm-sim benchmarks (`cargo bench --bench sim`; figures in BENCHMARKS.md).
//!
//! 1. `get_transfer_session_state` throughput on loopback, measured with
//!    `wrk -t2 -c32 -d10s` when `wrk` is installed (apt-get install wrk),
//!    otherwise with a built-in keep-alive load generator (reqwest, 32 tasks).
//! 2. Wall time of a 10,000-account, 100-session scenario (enqueue over HTTP,
//!    run to completion at time_scale 0.0005).
//!
//! Environment: `SIM_BENCH_SECS` (default 10) sets the load duration.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry::sim::{AccountSpec, RemoteSpec, Scenario, SimServer, Size};
use serde_json::Value;

const AUTH: &str = "whm root:s3cret";

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs: u64 = std::env::var("SIM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        state_throughput(secs).await;
        scale_10k().await;
    });
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    function: &str,
    params: &[(&str, &str)],
) -> Value {
    let url = format!("{base}/json-api/{function}?api.version=1");
    client
        .post(url)
        .header("Authorization", AUTH)
        .form(params)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

async fn create_session(client: &reqwest::Client, base: &str) -> String {
    let v = call(
        client,
        base,
        "create_remote_root_transfer_session",
        &[
            ("host", "old1.example.com"),
            ("user", "root"),
            ("password", "x"),
            ("transfer_threads", "3"),
            ("restore_threads", "3"),
        ],
    )
    .await;
    v["data"]["transfer_session_id"]
        .as_str()
        .expect("a session id")
        .to_string()
}

async fn state_throughput(secs: u64) {
    let mut sc = Scenario::default();
    sc.remotes.push(RemoteSpec::new("old1.example.com"));
    let sim = SimServer::start(sc).await.expect("sim");
    let client = reqwest::Client::new();
    let id = create_session(&client, sim.base_url()).await;
    let url = format!(
        "{}/json-api/get_transfer_session_state?api.version=1&transfer_session_id={id}",
        sim.base_url()
    );
    let have_wrk = Command::new("wrk").arg("--version").output().is_ok();
    if have_wrk {
        let d = format!("{secs}s");
        let args = [
            "-t2",
            "-c32",
            &format!("-d{d}"),
            "-H",
            &format!("Authorization: {AUTH}"),
            &url,
        ];
        println!(
            "whm-sim get_transfer_session_state: wrk -t2 -c32 -d{d} -H '{}' '{url}'",
            format_args!("Authorization: {AUTH}")
        );
        // wrk blocks; run it on a blocking thread so the simulator keeps serving
        let out = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            move || Command::new("wrk").args(&args).output().expect("wrk runs")
        })
        .await
        .expect("join");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
    } else {
        println!(
            "whm-sim get_transfer_session_state: built-in generator, 32 keep-alive tasks, {secs}s (wrk not found)"
        );
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (client, url, done) = (client.clone(), url.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let r = client
                        .get(&url)
                        .header("Authorization", AUTH)
                        .send()
                        .await
                        .expect("sent");
                    let _ = r.bytes().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let n = done.load(Ordering::Relaxed);
        println!("Requests/sec: {:.1}", n as f64 / secs as f64);
    }
    sim.shutdown().await;
}

async fn scale_10k() {
    let n = 10_000usize;
    let mut sc = Scenario {
        time_scale: 0.0005,
        ..Scenario::default()
    };
    let mut remote = RemoteSpec::new("old1.example.com");
    for i in 0..n {
        let mut a = AccountSpec::new(format!("a{i:05}"));
        a.size = Size(25_000_000);
        remote.accounts.push(a);
    }
    sc.remotes.push(remote);
    sc.target.max_restores = 64;
    let sim = SimServer::start(sc).await.expect("sim");
    let base = sim.base_url().to_string();
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..100 {
        let (client, base) = (client.clone(), base.clone());
        tasks.spawn(async move {
            let id = create_session(&client, &base).await;
            for i in (s..n).step_by(100) {
                let u = format!("a{i:05}");
                let sid = id.clone();
                call(
                    &client,
                    &base,
                    "enqueue_transfer_item",
                    &[
                        ("transfer_session_id", &sid),
                        ("module", "AccountRemoteRoot"),
                        ("user", &u),
                        ("localuser", &u),
                    ],
                )
                .await;
            }
            call(
                &client,
                &base,
                "start_transfer_session",
                &[("transfer_session_id", &id)],
            )
            .await;
        });
        if tasks.len() >= 8 {
            let _ = tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    let enqueued = t0.elapsed();
    loop {
        let st = sim.state();
        if st["sessions"]
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s["state"] == "COMPLETED"))
        {
            let sim_time = st["sim_time"].as_f64().unwrap_or(0.0);
            println!(
                "whm-sim 10,000 accounts / 100 sessions: enqueued over HTTP in {:.2}s ({:.0} calls/s), all COMPLETED after {:.2}s wall, {:.0} simulated s",
                enqueued.as_secs_f64(),
                (n + 200) as f64 / enqueued.as_secs_f64(),
                t0.elapsed().as_secs_f64(),
                sim_time
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.shutdown().await;
}
