//! Parse + validate + compile a generated plan of 100,000 accounts over 200
//! sources (packages, resellers with their accounts, `after` waves), and
//! report wall time (min and median of several runs) and peak memory.
//!
//! Run: `cargo bench --bench compile` (optionally `-- ACCOUNTS SOURCES RUNS`).
//! Peak memory is the process's high-water mark (`VmHWM` in
//! /proc/self/status), which includes the generated YAML text itself.

use std::time::{Duration, Instant};

use ferry::graph::{self, Format, render::RenderOptions};

/// A plan with `accounts` accounts spread over `sources` sources.
///
/// * each source lists 5 packages; 4 accounts in 5 use one;
/// * every 25th account of a source is a reseller owning the next 24;
/// * one account in 10 is renamed on the target (`localuser`);
/// * sources come in 4 waves of `after`: each source of wave k waits for
///   two sources of wave k-1;
/// * one account in 7 uses the short form (`- name`).
fn generate(accounts: usize, sources: usize) -> String {
    let per = accounts / sources;
    let mut y = String::with_capacity(accounts * 120);
    y.push_str(
        "version: 1\ntarget:\n  url: https://whm.example.net:2087\n  token: {env: WHM_TOKEN}\n",
    );
    y.push_str("concurrency: {target_sessions: 8, source_sessions: 2, batch_size: 25}\n");
    y.push_str("sources:\n");
    let wave_size = sources.div_ceil(4);
    for s in 0..sources {
        let wave = s / wave_size;
        y.push_str(&format!(
            "  - name: src{s}\n    host: src{s}.example.com\n    ssh: {{password: {{env: SRC{s}_SSH_PASSWORD}}}}\n"
        ));
        if wave > 0 {
            let a = (wave - 1) * wave_size + s % wave_size;
            let b = (wave - 1) * wave_size + (s + 1) % wave_size;
            y.push_str(&format!("    after: [src{a}, src{b}]\n"));
        }
        y.push_str("    packages: [p0, p1, p2, p3, p4]\n    accounts:\n");
        let mut reseller = String::new();
        for a in 0..per {
            let user = format!("s{s}a{a}");
            if a % 7 == 3 && a % 25 != 0 {
                // short form: no package, no owner
                y.push_str(&format!("      - {user}\n"));
                continue;
            }
            y.push_str(&format!("      - user: {user}\n"));
            if a % 10 == 5 {
                y.push_str(&format!("        localuser: n{s}a{a}\n"));
            }
            if a % 5 != 4 {
                y.push_str(&format!("        package: p{}\n", a % 5));
            }
            if a % 25 == 0 {
                reseller = user.clone();
            } else {
                y.push_str(&format!("        owner: {reseller}\n"));
            }
            y.push_str(&format!(
                "        domain: {user}.example.com\n        size: {}\n",
                ((a * 7919 + s * 104_729) % 10_000 + 1) * 1_048_576
            ));
        }
    }
    y
}

/// CPU time of this thread: unlike wall time, hardly affected by other
/// processes competing for the machine's cores.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall and CPU time of one phase.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

struct Clock {
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_now(),
        }
    }
    fn lap(&mut self) -> Timing {
        let (w, c) = (Instant::now(), cpu_now());
        let t = Timing {
            wall: w - self.wall,
            cpu: c.saturating_sub(self.cpu),
        };
        self.wall = w;
        self.cpu = c;
        t
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn stats(v: &[Timing]) -> [Duration; 4] {
    let mut w: Vec<Duration> = v.iter().map(|t| t.wall).collect();
    let mut c: Vec<Duration> = v.iter().map(|t| t.cpu).collect();
    w.sort();
    c.sort();
    [w[0], w[w.len() / 2], c[0], c[c.len() / 2]]
}

fn ms(d: Duration) -> String {
    format!("{:>9.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; take only numeric arguments.
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let accounts = nums.first().copied().unwrap_or(100_000);
    let sources = nums.get(1).copied().unwrap_or(200);
    let runs = nums.get(2).copied().unwrap_or(7).max(1);

    let t = Instant::now();
    let yaml = generate(accounts, sources);
    let gen_time = t.elapsed();
    let rss_after_gen = peak_rss_kib();

    let (mut parse_t, mut rules_t, mut compile_t, mut total_t) = (vec![], vec![], vec![], vec![]);
    let mut summary = String::new();
    let mut kept = None;
    for _ in 0..runs {
        drop(kept.take()); // one plan and graph alive at a time
        let mut clock = Clock::start();
        let plan = match ferry::plan::parse("bench.yaml", &yaml) {
            Ok(p) => p,
            Err(d) => panic!("generated plan is invalid:\n{d}"),
        };
        let parsed = clock.lap();
        let compiled = graph::compile(&plan);
        let comp = clock.lap();
        // The rules alone (they also ran inside `parse`).
        let problems = ferry::plan::rules::check(&plan);
        let rules = clock.lap();
        assert!(problems.is_empty());
        parse_t.push(parsed);
        compile_t.push(comp);
        total_t.push(Timing {
            wall: parsed.wall + comp.wall,
            cpu: parsed.cpu + comp.cpu,
        });
        rules_t.push(rules);
        summary = format!(
            "{} accounts, {} sources, {} sessions, {} steps, {} graph edges",
            plan.sources.iter().map(|s| s.accounts.len()).sum::<usize>(),
            plan.sources.len(),
            compiled.sessions.len(),
            compiled.graph.node_count(),
            compiled.graph.edge_count(),
        );
        kept = Some((plan, compiled));
    }
    let peak = peak_rss_kib();
    // Rendering, measured after the peak above was taken.
    let (plan, compiled) = kept.expect("at least one run");
    let mut render_t = vec![];
    let mut json_len = 0;
    for _ in 0..runs.min(3) {
        let mut clock = Clock::start();
        let json = graph::render::render(&compiled, &plan, Format::Json, &RenderOptions::default());
        render_t.push(clock.lap());
        json_len = json.len();
    }
    let peak_render = peak_rss_kib();

    println!("ferry plan compile benchmark ({runs} runs)");
    println!("  plan: {summary}");
    println!(
        "  YAML: {:.1} MB, generated in {}",
        yaml.len() as f64 / 1e6,
        ms(gen_time).trim()
    );
    println!();
    println!(
        "  {:<40} {:>12} {:>12} {:>12} {:>12}",
        "phase", "wall min", "wall median", "cpu min", "cpu median"
    );
    let row = |name: &str, v: &[Timing]| {
        let [a, b, c, d] = stats(v);
        println!("  {:<40} {} {} {} {}", name, ms(a), ms(b), ms(c), ms(d));
    };
    row("parse + validate (plan::parse)", &parse_t);
    row("  of which the rules (rules::check)", &rules_t);
    row("compile (graph::compile)", &compile_t);
    row("parse + validate + compile", &total_t);
    row(
        &format!(
            "render --format json ({:.0} MB, extra)",
            json_len as f64 / 1e6
        ),
        &render_t,
    );
    println!();
    match (rss_after_gen, peak, peak_render) {
        (Some(g), Some(p), Some(r)) => {
            println!(
                "  peak memory (VmHWM) after parse + validate + compile: {:.1} MB",
                p as f64 / 1024.0
            );
            println!(
                "    (of which {:.1} MB before parsing: the YAML text and the runtime)",
                g as f64 / 1024.0
            );
            println!(
                "  peak memory (VmHWM) after rendering JSON too: {:.1} MB",
                r as f64 / 1024.0
            );
        }
        _ => println!("  peak memory: unavailable (no /proc/self/status)"),
    }
}
