//! The makespan benchmark of issue 4 (`cargo bench --bench makespan`;
//! figures in BENCHMARKS.md, section "apply").
//!
//! 500 accounts over 10 sources onto one target, restore-bound (restores
//! are the bottleneck: `max_restores` slots on the target, each restore
//! slower than any transfer). The `ferry` binary runs as a child process
//! against a whm-sim hosted here, so its peak memory is its own (rusage).
//!
//! * **lower bound** = total restore work / `max_restores` + one transfer
//!   (the shortest: nothing can be restored before something arrived);
//! * **ferry**: the plan's limits (`target_sessions` sessions at once, one
//!   per source, `batch_size` 25);
//! * **by hand**: one session per source, one after another (what people do
//!   in WHM's Transfer Tool today), with the same session options.
//!
//! Makespans are in simulated seconds (`sim_time`), from the first session
//! created to the last one finished.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ferry::sim::{AccountSpec, RemoteSpec, Scenario, SimServer, Size, SshSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

const SOURCES: usize = 10;
const PER_SOURCE: usize = 50;
const MAX_RESTORES: usize = 8;
const RESTORE_RATE: u64 = 25_000_000;
const TRANSFER_RATE: u64 = 200_000_000;
const TIME_SCALE: f64 = 0.002;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes = sizes();
    let work: f64 = sizes
        .iter()
        .flatten()
        .map(|&s| s as f64 / RESTORE_RATE as f64)
        .sum();
    let shortest_transfer = sizes
        .iter()
        .flatten()
        .map(|&s| s as f64 / TRANSFER_RATE as f64)
        .fold(f64::MAX, f64::min);
    let bound = work / MAX_RESTORES as f64 + shortest_transfer;
    println!(
        "makespan: {} accounts, {SOURCES} sources, {:.1} GB, max_restores {MAX_RESTORES}, \
         restore {} MB/s, transfer {} MB/s, time_scale {TIME_SCALE}",
        SOURCES * PER_SOURCE,
        sizes.iter().flatten().sum::<u64>() as f64 / 1e9,
        RESTORE_RATE / 1_000_000,
        TRANSFER_RATE / 1_000_000
    );
    println!("makespan: lower bound {bound:.0} simulated s");
    let ferry = run(
        &sizes,
        "target_sessions: 6\n  source_sessions: 1\n  batch_size: 25",
        false,
    );
    let hand = run(
        &sizes,
        "target_sessions: 1\n  source_sessions: 1\n  batch_size: 50",
        true,
    );
    for (name, r) in [
        ("ferry", &ferry),
        ("by hand (one session per source, in turn)", &hand),
    ] {
        println!(
            "makespan: {name}: {:.0} simulated s = {:.3} × the bound; {} sessions; {:.1} API calls per account; \
             ferry peak RSS {:.1} MiB; {:.1} s wall",
            r.makespan,
            r.makespan / bound,
            r.sessions,
            r.calls as f64 / (SOURCES * PER_SOURCE) as f64,
            r.peak_kib as f64 / 1024.0,
            r.wall
        );
    }
    println!(
        "makespan: ferry is {:.2}× faster than by hand",
        hand.makespan / ferry.makespan
    );
}

/// Seeded sizes: 200 MB to 2 GB.
fn sizes() -> Vec<Vec<u64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    (0..SOURCES)
        .map(|_| {
            (0..PER_SOURCE)
                .map(|_| rng.random_range(200..=2000) * 1_000_000)
                .collect()
        })
        .collect()
}

fn scenario(sizes: &[Vec<u64>]) -> Scenario {
    let remotes = sizes
        .iter()
        .enumerate()
        .map(|(s, accts)| {
            let mut r = RemoteSpec::new(format!("old{s}.example.com"));
            r.transfer_rate = Size(TRANSFER_RATE);
            r.ssh = Some(SshSpec {
                user: "root".into(),
                port: 22,
                password: Some("pw".into()),
                sshkey_name: None,
                sshkey_passphrase: None,
                root_password: None,
            });
            r.accounts = accts
                .iter()
                .enumerate()
                .map(|(i, &size)| {
                    let mut a = AccountSpec::new(format!("s{s}a{i:03}"));
                    a.size = Size(size);
                    a
                })
                .collect();
            r
        })
        .collect();
    let mut sc = Scenario {
        time_scale: TIME_SCALE,
        remotes,
        ..Scenario::default()
    };
    sc.target.max_restores = MAX_RESTORES;
    sc.target.restore_rate = Size(RESTORE_RATE);
    sc
}

fn plan(url: &str, sizes: &[Vec<u64>], concurrency: &str, chained: bool) -> String {
    let mut y = format!(
        "version: 1\ntarget:\n  url: {url}\n  token: {{env: BENCH_TOKEN}}\n\
         defaults:\n  session: {{transfer_threads: 3, restore_threads: 3}}\nsources:\n"
    );
    for (s, accts) in sizes.iter().enumerate() {
        y += &format!(
            "  - name: old{s}\n    host: old{s}.example.com\n    ssh: {{password: {{env: BENCH_PW}}}}\n"
        );
        if chained && s > 0 {
            y += &format!("    after: [old{}]\n", s - 1);
        }
        y += "    accounts:\n";
        for (i, size) in accts.iter().enumerate() {
            y += &format!("      - {{user: s{s}a{i:03}, size: {size}}}\n");
        }
    }
    y += &format!(
        "policy:\n  poll_interval: 100ms\n  stall_timeout: 10m\nconcurrency:\n  {concurrency}\n"
    );
    y
}

struct Result {
    makespan: f64,
    sessions: usize,
    calls: u64,
    peak_kib: i64,
    wall: f64,
}

fn run(sizes: &[Vec<u64>], concurrency: &str, chained: bool) -> Result {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt.block_on(SimServer::start(scenario(sizes))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bench.yaml"),
        plan(sim.base_url(), sizes, concurrency, chained),
    )
    .unwrap();
    let t = Instant::now();
    let (code, peak_kib) = run_ferry(dir.path());
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "ferry apply failed");
    let st: Value = sim.state();
    rt.block_on(sim.shutdown());
    let sessions = st["sessions"].as_array().unwrap();
    let first = sessions
        .iter()
        .map(|s| s["created_at"].as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    let last = sessions
        .iter()
        .map(|s| s["finished_at"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max);
    for (u, a) in st["accounts"].as_object().unwrap() {
        assert_eq!(a["restores_completed"], 1, "{u}");
    }
    let calls = st["requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap_or(0))
        .sum();
    Result {
        makespan: last - first,
        sessions: sessions.len(),
        calls,
        peak_kib,
        wall,
    }
}

/// Runs `ferry apply bench.yaml` and returns its exit code and peak RSS.
// Reaped with wait4 (not `Child::wait`) to read its rusage.
#[allow(clippy::zombie_processes)]
fn run_ferry(dir: &Path) -> (i32, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir)
        .args(["apply", "bench.yaml"])
        .env("BENCH_TOKEN", "s3cret")
        .env("BENCH_PW", "pw")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferry starts");
    let mut status = 0;
    // SAFETY: wait4 on our own child; rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(rc > 0, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss)
}
