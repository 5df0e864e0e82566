//! Journal benchmarks (`cargo bench --bench journal`; figures in
//! BENCHMARKS.md, section "journal").
//!
//! 1. **Replay of 1,000,000 records** (target: < 2 s, memory proportional
//!    to the plan): a journal of a 1,000-account run padded with the
//!    records a long run accumulates (state changes, retries), replayed the
//!    way `ferry status` does (read-only) and the way `apply` does (open for
//!    appending). Peak RSS is measured around the replay only (VmHWM reset
//!    through /proc/self/clear_refs).
//! 2. **The price of durability**: the records of a real 1,000-account run
//!    (an in-process `ferry apply --simulate` of a generated plan) appended
//!    again through the journal writer, with fsync (intents synced before
//!    their request, the rest grouped) and without.
//!
//! `JOURNAL_BENCH_RECORDS` overrides the 1,000,000.

#[path = "common/thousand.rs"]
mod thousand;
use thousand::real_run_records;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry::journal::record::{ItemResult, PlannedAccount, Record};
use ferry::journal::{Durability, Journal, JournalWriter, SyncMode};

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: u64 = std::env::var("JOURNAL_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    replay_bench(dir.path(), n);
    durability_bench(dir.path());
}

/// Peak resident set size of this process since the last reset, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes a plausible journal of `n` records for 1,000 accounts in 40
/// sessions: the life of each session, then state polls and retries.
fn write_big_journal(path: &Path, n: u64) {
    let (mut w, _) = JournalWriter::open(path, SyncMode::Off, |_| {}).expect("journal");
    let accounts: BTreeMap<String, PlannedAccount> = (0..1000)
        .map(|i| {
            (
                format!("acct{i:04}"),
                PlannedAccount {
                    source: format!("old{}", i % 10),
                    user: format!("acct{i:04}"),
                    entry: format!("{:064x}", i),
                    fields: BTreeMap::new(),
                },
            )
        })
        .collect();
    let mut written = 0u64;
    fn put(w: &mut JournalWriter, written: &mut u64, r: Record) {
        w.append(&r, Durability::Grouped).expect("append");
        *written += 1;
    }
    put(
        &mut w,
        &mut written,
        Record::RunStarted {
            plan: "plans/big.yaml".into(),
            plan_name: None,
            plan_hash: "ab".repeat(32),
            accounts,
            ferry_version: "0.1.0".into(),
            pid: 4242,
            host: "ops1".into(),
            tls_insecure: false,
            simulate: false,
            restart: false,
        },
    );
    for s in 0..40 {
        let key = format!("old{}/s{}", s % 10, s / 10 + 1);
        let members: Vec<String> = (0..25).map(|i| format!("acct{:04}", s * 25 + i)).collect();
        put(
            &mut w,
            &mut written,
            Record::SessionCreateIntent {
                session: key.clone(),
                batch: key.clone(),
                source: format!("old{}", s % 10),
                host: format!("old{}.example.com", s % 10),
                accounts: members.clone(),
                packages: vec!["gold".into()],
                replaces: None,
            },
        );
        put(
            &mut w,
            &mut written,
            Record::SessionCreated {
                session: key.clone(),
                id: format!("old{}examplecocopya20261130014502Ab{s:02}", s % 10),
            },
        );
        put(
            &mut w,
            &mut written,
            Record::EnqueueIntent {
                session: key.clone(),
                packages: vec!["gold".into()],
                accounts: members.clone(),
            },
        );
        for a in &members {
            put(
                &mut w,
                &mut written,
                Record::Enqueued {
                    session: key.clone(),
                    package: None,
                    account: Some(a.clone()),
                    outcome: ferry::journal::record::EnqueueOutcome::Added,
                },
            );
        }
        put(
            &mut w,
            &mut written,
            Record::StartIntent {
                session: key.clone(),
            },
        );
        put(
            &mut w,
            &mut written,
            Record::SessionStarted {
                session: key.clone(),
                pid: 1000 + s as u32,
            },
        );
        for a in &members {
            put(
                &mut w,
                &mut written,
                Record::ItemOutcome {
                    restore: None,
                    session: key.clone(),
                    account: Some(a.clone()),
                    package: None,
                    result: ItemResult::Succeeded,
                    message: None,
                    log: Vec::new(),
                },
            );
        }
    }
    // The bulk: what a very long run piles up (state changes seen while
    // polling, transient failures retried).
    let mut i = 0u64;
    while written < n - 80 {
        let key = format!("old{}/s{}", i % 10, (i / 10) % 4 + 1);
        let rec = if i.is_multiple_of(3) {
            Record::StepFailed {
                step: format!("{key}/state"),
                error: "WHM get_transfer_session_state failed after 2.0s: no answer before the timeout (the call may have taken effect)".into(),
                retryable: true,
                attempt: (i % 5) as u32 + 1,
            }
        } else {
            Record::SessionState {
                session: key,
                state: if i.is_multiple_of(2) {
                    "RUNNING"
                } else {
                    "PAUSING"
                }
                .into(),
            }
        };
        put(&mut w, &mut written, rec);
        i += 1;
    }
    for s in 0..40 {
        let key = format!("old{}/s{}", s % 10, s / 10 + 1);
        put(
            &mut w,
            &mut written,
            Record::SessionFinished {
                session: key,
                state: "COMPLETED".into(),
            },
        );
    }
    while written < n {
        put(
            &mut w,
            &mut written,
            Record::SessionState {
                session: "old0/s1".into(),
                state: "COMPLETED".into(),
            },
        );
    }
    w.sync().expect("sync");
}

fn replay_bench(dir: &Path, n: u64) {
    let path = dir.join("big.journal");
    let t = Instant::now();
    write_big_journal(&path, n);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "journal: wrote {n} records ({:.1} MB) in {:.2} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    // Drop the page cache's influence as far as we can: read it once.
    let _ = std::fs::read(&path);
    for round in 0..3 {
        let base = rss_kib();
        reset_hwm();
        let t = Instant::now();
        let (state, torn) = ferry::journal::replay(&path).expect("replay");
        let status_time = t.elapsed();
        let peak = vm_hwm_kib().saturating_sub(base);
        assert!(torn.is_none());
        assert_eq!(state.records, n);
        assert_eq!(state.counts().0, 1000);
        let t = Instant::now();
        let (journal, _) = Journal::open(&path, SyncMode::Off).expect("open");
        let open_time = t.elapsed();
        assert_eq!(journal.state().records, n);
        drop(journal);
        println!(
            "journal: replay {n} records (round {round}): status-style {:.3} s, apply-style open {:.3} s, \
             peak RSS during replay +{:.1} MiB over a {:.1} MiB baseline",
            status_time.as_secs_f64(),
            open_time.as_secs_f64(),
            peak as f64 / 1024.0,
            base as f64 / 1024.0
        );
    }
}

fn durability_bench(dir: &Path) {
    let records = real_run_records(dir);
    let intents = records.iter().filter(|(_, i)| *i).count();
    println!(
        "journal: the 1,000-account run wrote {} records, {} of them intents",
        records.len(),
        intents
    );
    for mode in [SyncMode::On, SyncMode::Off] {
        let mut best = Duration::MAX;
        let mut fsyncs = 0;
        for round in 0..3 {
            let path = dir.join(format!("dur-{mode:?}-{round}.journal"));
            let (mut w, _) = JournalWriter::open(&path, mode, |_| {}).unwrap();
            let t = Instant::now();
            for (rec, intent) in &records {
                let d = if *intent {
                    Durability::Intent
                } else {
                    Durability::Grouped
                };
                w.append(rec, d).unwrap();
            }
            w.sync().unwrap();
            best = best.min(t.elapsed());
            fsyncs = w.fsyncs();
        }
        println!(
            "journal: append the run's {} records with fsync {:?}: {:.1} ms ({:.1} µs/record, {} fsyncs)",
            records.len(),
            mode,
            best.as_secs_f64() * 1e3,
            best.as_secs_f64() * 1e6 / records.len() as f64,
            fsyncs
        );
    }
}
