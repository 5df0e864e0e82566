//! The 1,000-account rehearsal both journal benchmarks write records from
//! (`benches/journal.rs`, `benches/journal_pg.rs`): 10 sources × 100
//! accounts applied with `--simulate`, its journal read back.

use std::path::Path;
use std::sync::Arc;

use ferry::events::NullReporter;
use ferry::journal::record::Record;

/// Runs the rehearsal in `dir` and returns its records, each with whether
/// it is an intent.
pub fn real_run_records(dir: &Path) -> Vec<(Record, bool)> {
    let plan = dir.join("thousand.yaml");
    let mut y = String::from(
        "version: 1\ntarget:\n  url: https://whm.example.net:2087\n  token: {env: WHM_TOKEN}\n\
         defaults:\n  session: {transfer_threads: 3, restore_threads: 3}\nsources:\n",
    );
    for s in 0..10 {
        y += &format!(
            "  - name: old{s}\n    host: old{s}.example.com\n    ssh: {{password: {{env: P}}}}\n    accounts:\n"
        );
        for i in 0..100 {
            y += &format!("      - u{s}x{i:03}\n");
        }
    }
    y += "policy:\n  poll_interval: 2s\nconcurrency:\n  target_sessions: 6\n  source_sessions: 1\n  batch_size: 25\n";
    std::fs::write(&plan, y).unwrap();
    let journal = dir.join("thousand.journal");
    let t = std::time::Instant::now();
    let status = ferry::ops::apply::apply(ferry::ops::apply::ApplyOptions {
        plan,
        simulate: Some(None),
        journal: Some(journal.clone()),
        restart: false,
        adopt: false,
        request_timeout: None,
        lock_timeout: None,
        metrics: Default::default(),
        reporter: Arc::new(NullReporter),
    })
    .unwrap_or_else(|e| panic!("rehearsal failed: {e}"));
    assert_eq!(status, ferry::ops::ExitStatus::Success);
    println!(
        "journal: 1,000-account rehearsal ran in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let rec: Record = serde_json::from_value(v["rec"].clone()).unwrap();
            let intent = rec.is_intent();
            (rec, intent)
        })
        .collect()
}
