//! The makespan benchmark of issues 4 and 12 (`cargo bench --bench
//! makespan`; figures in BENCHMARKS.md, section "apply").
//!
//! Three fleets onto one target, each run twice against a whm-sim hosted
//! here — by ferry with the plan's limits, and the by-hand way (one session
//! per source, one after another, what people do in WHM's Transfer Tool
//! today, with the same session options). The `ferry` binary runs as a child
//! process, so its peak memory is its own (rusage).
//!
//! * **equal-size**: 500 accounts of 1 GB over 10 sources, restore-bound
//!   (the limits of the next one);
//! * **restore-bound**: 500 accounts of 200 MB–2 GB over 10 sources
//!   (issue 4's fleet; `max_restores` 8 is the bottleneck);
//! * **long-tailed**: 4 sources × 25 accounts, per source one 8 GB, two
//!   3 GB and 22 of 100–600 MB (issue 12's shape, its own sizes and seed);
//!   `max_restores: 6`, `target_sessions: 6`, `source_sessions: 2`,
//!   `batch_size: 10`;
//! * **transfer-bound**: 4 sources × 25 accounts of 1 GB from slow sources
//!   (20 MB/s per transfer), restores fast.
//!
//! **Lower bound** = the largest of: total restore work ÷ `max_restores` +
//! the shortest transfer (nothing restores before something arrived); the
//! longest single account's transfer + restore; and per source, its
//! transfer work ÷ the transfers it may run at once (`source_sessions` ×
//! `transfer_threads`) + the shortest restore. Makespans are in simulated
//! seconds (`sim_time`), from the first session *started* to the last one
//! finished. With `MAKESPAN_TRACE=1` each run also prints one line per
//! session (source, items, created, started, finished).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ferry::sim::{AccountSpec, RemoteSpec, Scenario, SimServer, Size, SshSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

const MB: u64 = 1_000_000;
const GB: u64 = 1_000 * MB;
/// Transfer and restore threads of every session (`defaults.session`).
const THREADS: u64 = 3;

/// One fleet and the plan limits ferry runs it with.
struct Fleet {
    name: &'static str,
    sizes: Vec<Vec<u64>>,
    max_restores: usize,
    restore_rate: u64,
    transfer_rate: u64,
    time_scale: f64,
    target_sessions: u32,
    source_sessions: u32,
    batch_size: usize,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for fleet in [
        equal_size(),
        restore_bound(),
        long_tailed(),
        transfer_bound(),
    ] {
        if only.as_deref().is_some_and(|o| !fleet.name.contains(o)) {
            continue;
        }
        bench(&fleet);
    }
}

fn equal_size() -> Fleet {
    Fleet {
        name: "equal-size",
        sizes: vec![vec![GB; 50]; 10],
        ..restore_bound()
    }
}

fn restore_bound() -> Fleet {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    Fleet {
        name: "restore-bound",
        sizes: (0..10)
            .map(|_| (0..50).map(|_| rng.random_range(200..=2000) * MB).collect())
            .collect(),
        max_restores: 8,
        restore_rate: 25 * MB,
        transfer_rate: 200 * MB,
        time_scale: 0.002,
        target_sessions: 6,
        source_sessions: 1,
        batch_size: 25,
    }
}

fn long_tailed() -> Fleet {
    let mut rng = ChaCha8Rng::seed_from_u64(1207);
    Fleet {
        name: "long-tailed",
        sizes: (0..4)
            .map(|_| {
                let mut s = vec![8 * GB, 3 * GB, 3 * GB];
                s.extend((0..22).map(|_| rng.random_range(100..=600) * MB));
                s
            })
            .collect(),
        max_restores: 6,
        restore_rate: 25 * MB,
        transfer_rate: 200 * MB,
        time_scale: 0.01,
        target_sessions: 6,
        source_sessions: 2,
        batch_size: 10,
    }
}

fn transfer_bound() -> Fleet {
    Fleet {
        name: "transfer-bound",
        sizes: vec![vec![GB; 25]; 4],
        max_restores: 8,
        restore_rate: 100 * MB,
        transfer_rate: 20 * MB,
        time_scale: 0.01,
        target_sessions: 8,
        source_sessions: 2,
        batch_size: 13,
    }
}

fn bench(f: &Fleet) {
    let all = || f.sizes.iter().flatten().map(|&s| s as f64);
    let (tr, rr) = (f.transfer_rate as f64, f.restore_rate as f64);
    let accounts = all().count();
    let restore_work: f64 = all().map(|s| s / rr).sum();
    let shortest = |rate: f64| all().map(|s| s / rate).fold(f64::MAX, f64::min);
    let longest_one = all().map(|s| s / tr + s / rr).fold(0.0, f64::max);
    let per_source = f
        .sizes
        .iter()
        .map(|src| {
            let lanes = (u64::from(f.source_sessions) * THREADS) as f64;
            src.iter().map(|&s| s as f64 / tr).sum::<f64>() / lanes + shortest(rr)
        })
        .fold(0.0, f64::max);
    let bound = (restore_work / f.max_restores as f64 + shortest(tr))
        .max(longest_one)
        .max(per_source);
    println!(
        "makespan [{}]: {accounts} accounts, {} sources, {:.1} GB, max_restores {}, restore {} MB/s, \
         transfer {} MB/s, time_scale {}; lower bound {bound:.0} simulated s",
        f.name,
        f.sizes.len(),
        all().sum::<f64>() / 1e9,
        f.max_restores,
        f.restore_rate / MB,
        f.transfer_rate / MB,
        f.time_scale,
    );
    let ferry = run(
        f,
        &format!(
            "target_sessions: {}\n  source_sessions: {}\n  batch_size: {}",
            f.target_sessions, f.source_sessions, f.batch_size
        ),
        false,
    );
    let most = f.sizes.iter().map(Vec::len).max().unwrap_or(1);
    let hand = run(
        f,
        &format!("target_sessions: 1\n  source_sessions: 1\n  batch_size: {most}"),
        true,
    );
    for (name, r) in [("ferry", &ferry), ("by hand", &hand)] {
        println!(
            "makespan [{}]: {name}: {:.0} simulated s = {:.3} × the bound; {} sessions; \
             {:.2} API calls per account; ferry peak RSS {:.1} MiB; {:.1} s wall",
            f.name,
            r.makespan,
            r.makespan / bound,
            r.sessions,
            r.calls as f64 / accounts as f64,
            r.peak_kib as f64 / 1024.0,
            r.wall
        );
        let top: Vec<String> = r.top.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!(
            "makespan [{}]: {name}: most calls: {}; item-log reads {} ({:.2} per account)",
            f.name,
            top.join(", "),
            r.item_logs,
            r.item_logs as f64 / accounts as f64
        );
    }
    println!(
        "makespan [{}]: ferry is {:.2}× faster than by hand",
        f.name,
        hand.makespan / ferry.makespan
    );
}

fn scenario(f: &Fleet) -> Scenario {
    let remotes = f
        .sizes
        .iter()
        .enumerate()
        .map(|(s, accts)| {
            let mut r = RemoteSpec::new(format!("old{s}.example.com"));
            r.transfer_rate = Size(f.transfer_rate);
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
        time_scale: f.time_scale,
        remotes,
        ..Scenario::default()
    };
    sc.target.max_restores = f.max_restores;
    sc.target.restore_rate = Size(f.restore_rate);
    sc
}

fn plan(url: &str, sizes: &[Vec<u64>], concurrency: &str, chained: bool) -> String {
    let mut y = format!(
        "version: 1\ntarget:\n  url: {url}\n  token: {{env: BENCH_TOKEN}}\n\
         defaults:\n  session: {{transfer_threads: {THREADS}, restore_threads: {THREADS}}}\nsources:\n"
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
    /// The most frequent calls, most first.
    top: Vec<(String, u64)>,
    /// `fetch_transfer_session_log` calls for an item log (not
    /// `master.log`): the percentages of progress by bytes.
    item_logs: usize,
    peak_kib: i64,
    wall: f64,
}

fn run(f: &Fleet, concurrency: &str, chained: bool) -> Result {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt.block_on(SimServer::start(scenario(f))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bench.yaml"),
        plan(sim.base_url(), &f.sizes, concurrency, chained),
    )
    .unwrap();
    let t = Instant::now();
    let (code, peak_kib) = run_ferry(dir.path());
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "ferry apply failed");
    let st: Value = sim.state();
    let item_logs = sim.requests().as_array().map_or(0, |rs| {
        rs.iter()
            .filter(|r| r["function"] == "fetch_transfer_session_log")
            .filter(|r| {
                r["params"]["logfile"]
                    .as_str()
                    .is_some_and(|l| l != "master.log")
            })
            .count()
    });
    rt.block_on(sim.shutdown());
    let sessions = st["sessions"].as_array().unwrap();
    if std::env::var_os("MAKESPAN_TRACE").is_some() {
        // one line per session: what the tail of a run is made of
        for s in sessions {
            println!(
                "trace: {} {:>3} items created {:>7.1} started {:>7.1} finished {:>7.1}",
                s["source"].as_str().unwrap_or("?"),
                s["items"].as_array().map_or(0, Vec::len),
                s["created_at"].as_f64().unwrap_or(f64::NAN),
                s["started_at"].as_f64().unwrap_or(f64::NAN),
                s["finished_at"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    let first = sessions
        .iter()
        .filter_map(|s| s["started_at"].as_f64())
        .fold(f64::MAX, f64::min);
    let last = sessions
        .iter()
        .map(|s| s["finished_at"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max);
    for (u, a) in st["accounts"].as_object().unwrap() {
        assert_eq!(a["restores_completed"], 1, "{u}");
    }
    let mut top: Vec<(String, u64)> = st["requests"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(f, v)| (f.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    let calls = top.iter().map(|(_, n)| n).sum();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    top.truncate(4);
    Result {
        makespan: last - first,
        sessions: sessions.len(),
        calls,
        top,
        item_logs,
        peak_kib,
        wall,
    }
}

/// Runs `ferry apply bench.yaml` and returns its exit code and peak RSS:
/// the largest `VmHWM` of the child read while it runs (rusage's
/// `ru_maxrss` would count the bench process the child was forked from).
// Reaped with wait4 (not `Child::wait`) while a thread samples its VmHWM.
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
    let pid = child.id();
    // Until the child is reaped its pid is not reused; a zombie has no
    // VmHWM line, which ends the sampling.
    let sampler = std::thread::spawn(move || {
        let mut peak = 0i64;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            else {
                break;
            };
            peak = peak.max(kib);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        peak
    });
    let mut status = 0;
    // SAFETY: wait4 on our own child; rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert!(rc > 0, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, sampler.join().expect("sampler"))
}
