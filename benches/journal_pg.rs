//! The journal in PostgreSQL (`cargo bench --bench journal_pg`; figures in
//! BENCHMARKS.md, "The journal in PostgreSQL"). Needs the server of
//! `FERRY_BENCH_PG_HOST` (default 127.0.0.1:5432, trust authentication, the
//! `psql` client); a scratch database is created and dropped.
//!
//! 1. **The price of durability**: the records of a real 1,000-account run
//!    (an in-process `ferry apply --simulate`, as in `benches/journal.rs`)
//!    appended again through the fenced PostgreSQL writer (intents
//!    committed with `synchronous_commit = on` before "their request", the
//!    rest with it off), beside the file journal with fsync on the same
//!    machine.
//! 2. **Replay of a 1,000,000-record run from PostgreSQL** (target < 2 s):
//!    that run's records, padded in SQL with the state polls and retries a
//!    long run piles up, read back the way `apply` and `status` do.

#[path = "common/thousand.rs"]
mod thousand;
use thousand::real_run_records;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::journal::pg::{self, Db, Lease, Location};
use ferry::journal::record::Record;
use ferry::journal::{Journal, JournalWriter, RunState, SyncMode};

const RECORDS: i64 = 1_000_000;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let host = std::env::var("FERRY_BENCH_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let name = format!("ferry_bench_{}", std::process::id());
    psql(&host, "postgres", &format!("CREATE DATABASE {name}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let loc = Location::new(
        &format!("postgres://root@{host}:5432/{name}"),
        None,
        None,
        Duration::from_secs(30),
    )
    .expect("location");
    let db = Db::connect(&loc).expect("connect");
    let records = real_run_records(dir.path());
    durability(&db, dir.path(), &records);
    replay(&db, &host, &name, &records);
    drop(db);
    psql(
        &host,
        "postgres",
        &format!("DROP DATABASE {name} WITH (FORCE)"),
    );
}

fn psql(host: &str, db: &str, q: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", host, "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", q])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn append_all(journal: &mut Journal, records: &[(Record, bool)]) {
    for (rec, intent) in records {
        if *intent {
            journal.record_intent(rec.clone()).unwrap();
        } else {
            journal.record(rec.clone()).unwrap();
        }
    }
    journal.sync().unwrap();
}

fn durability(db: &Arc<Db>, dir: &Path, records: &[(Record, bool)]) {
    let intents = records.iter().filter(|(_, i)| *i).count();
    println!(
        "journal_pg: the 1,000-account run wrote {} records, {intents} of them intents",
        records.len()
    );
    let mut best_pg = Duration::MAX;
    let mut best_file = Duration::MAX;
    for round in 0..3 {
        let lease = Lease::acquire(db, &format!("dur{round}"), "bench", Duration::from_secs(30))
            .expect("lease");
        let mut journal = Journal::open_pg(&lease).expect("open");
        let t = Instant::now();
        append_all(&mut journal, records);
        best_pg = best_pg.min(t.elapsed());
        let path = dir.join(format!("dur{round}.journal"));
        let (w, _) = JournalWriter::open(&path, SyncMode::On, |_| {}).unwrap();
        let mut file = Journal::with_backend(Box::new(w), RunState::default());
        let t = Instant::now();
        append_all(&mut file, records);
        best_file = best_file.min(t.elapsed());
    }
    for (what, best) in [("PostgreSQL", best_pg), ("file, fsync on", best_file)] {
        println!(
            "journal_pg: append the run's {} records to the {what} journal: {:.1} ms ({:.1} µs/record)",
            records.len(),
            best.as_secs_f64() * 1e3,
            best.as_secs_f64() * 1e6 / records.len() as f64
        );
    }
}

fn replay(db: &Arc<Db>, host: &str, name: &str, records: &[(Record, bool)]) {
    {
        let lease = Lease::acquire(db, "big", "bench", Duration::from_secs(30)).expect("lease");
        let mut journal = Journal::open_pg(&lease).expect("open");
        append_all(&mut journal, records);
    }
    // The bulk a very long run piles up: state changes seen while polling,
    // transient failures retried.
    let state = serde_json::to_string(&Record::SessionState {
        session: "old0/s1".into(),
        state: "COMPLETED".into(),
    })
    .unwrap();
    let failed = serde_json::to_string(&Record::StepFailed {
        step: "old0/s1/state".into(),
        error: "WHM get_transfer_session_state failed after 2.0s: no answer before the timeout \
                (the call may have taken effect)"
            .into(),
        retryable: true,
        attempt: 2,
    })
    .unwrap();
    let t = Instant::now();
    psql(
        host,
        name,
        &format!(
            "INSERT INTO ferry_records (run, seq, ts, rec) SELECT 'big', g, \
             '2026-12-02T00:00:00.000Z', CASE WHEN g % 3 = 0 THEN '{failed}' ELSE '{state}' END \
             FROM generate_series({}, {RECORDS}) g",
            records.len() + 1
        ),
    );
    let size = psql(
        host,
        name,
        "SELECT pg_size_pretty(pg_total_relation_size('ferry_records'))",
    );
    println!(
        "journal_pg: padded the run to {RECORDS} records ({size} with the other runs) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for round in 0..3 {
        let t = Instant::now();
        let mut st = RunState::default();
        let n = pg::read(db, "big", |e| st.apply_entry(e)).expect("read");
        let took = t.elapsed();
        assert_eq!(n, RECORDS as u64);
        assert_eq!(st.records, RECORDS as u64);
        assert_eq!(st.counts().0, 1000);
        println!(
            "journal_pg: replay {RECORDS} records from PostgreSQL (round {round}): {:.3} s",
            took.as_secs_f64()
        );
    }
}
