//! The canned journals in `tests/fixtures/journals/`: each is exactly what
//! its builder here writes (`FERRY_BLESS=1` rewrites them after a format
//! change), and each reads as its README entry says — through `ferry
//! status`, `ferry plan --journal` and the journal's own repair rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry::journal::canned::{self, Canned};
use ferry::journal::record::{FinishStatus, ItemResult, PlannedAccount, Record};
use serde_json::Value;

use crate::kit::text;

const SESSION: &str = "old1/s1";
const ID: &str = "old1examplecocopya20261130010003Vq7k";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journals")
}

fn plan() -> PathBuf {
    dir().join("plan.yaml")
}

/// `run_started` of the fixture plan, with its real entry hashes (so the
/// journals belong to it field by field).
fn start() -> Canned {
    let loaded = ferry::plan::load(&plan()).expect("the fixture plan loads");
    let compiled = ferry::graph::compile(&loaded.plan);
    let mut accounts = BTreeMap::new();
    for session in &compiled.sessions {
        for a in &session.accounts {
            accounts.insert(
                a.target_user.clone(),
                PlannedAccount {
                    source: "old1".into(),
                    user: a.user.clone(),
                    entry: a.fingerprint.hash.clone(),
                    fields: a.fingerprint.fields.clone(),
                },
            );
        }
    }
    let mut rec = canned::run_started_for(
        "tests/fixtures/journals/plan.yaml",
        Some("fixtures"),
        accounts,
    );
    if let Record::RunStarted { plan_hash, .. } = &mut rec {
        *plan_hash = loaded.hash.clone();
    }
    Canned::default().then(rec)
}

fn mid_transfer() -> Canned {
    start()
        .session(SESSION, &["alice", "bob", "carol"])
        .created(SESSION, ID)
        .then(Record::SessionMirrored {
            session: SESSION.into(),
            index: 1,
        })
        .enqueued(SESSION, &["alice", "bob", "carol"])
        .started(SESSION)
        .then(Record::SessionStarted {
            session: SESSION.into(),
            pid: 31337,
        })
        .then(Record::SessionState {
            session: SESSION.into(),
            state: "RUNNING".into(),
        })
        .outcome(SESSION, "alice", ItemResult::Succeeded)
        .outcome(SESSION, "bob", ItemResult::Failed)
}

/// Each fixture: its file name and its bytes.
fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let finished = mid_transfer()
        .outcome(SESSION, "carol", ItemResult::Succeeded)
        .then(Record::SessionState {
            session: SESSION.into(),
            state: "COMPLETED".into(),
        })
        .then(Record::AccountVerified {
            account: "alice".into(),
            session: SESSION.into(),
            present: true,
        })
        .then(Record::AccountVerified {
            account: "carol".into(),
            session: SESSION.into(),
            present: true,
        })
        .finished(SESSION, "COMPLETED")
        .then(Record::RunFinished {
            status: FinishStatus::Partial,
            transferred: 2,
            failed: 1,
            pending: 0,
        });
    let mut torn = mid_transfer().bytes();
    let next = Canned::default()
        .outcome(SESSION, "carol", ItemResult::Succeeded)
        .bytes();
    torn.extend_from_slice(&next[..next.len() / 2]);
    let damaged = {
        let bytes = mid_transfer().bytes();
        let mut lines: Vec<String> = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        // Line 4 (session_mirrored) keeps its checksum but not its text.
        lines[3] = lines[3].replace("\"index\":1", "\"index\":7");
        let mut s = lines.join("\n");
        s.push('\n');
        s.into_bytes()
    };
    vec![
        ("killed-before-any-session.journal", start().bytes()),
        (
            "killed-after-create-intent.journal",
            start().session(SESSION, &["alice", "bob", "carol"]).bytes(),
        ),
        ("mid-transfer.journal", mid_transfer().bytes()),
        ("finished-with-a-failure.journal", finished.bytes()),
        ("torn-tail.journal", torn),
        ("damaged-middle.journal", damaged),
    ]
}

#[test]
fn every_fixture_is_what_its_builder_writes() {
    let bless = std::env::var_os("FERRY_BLESS").is_some();
    for (name, bytes) in fixtures() {
        let path = dir().join(name);
        if bless {
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{name}: {e} (FERRY_BLESS=1 writes the fixtures)"));
        assert!(
            on_disk == bytes,
            "{name} differs from its builder in tests/it/fixtures.rs; if the change is \
             intended, rerun with FERRY_BLESS=1 and update tests/fixtures/journals/README.md"
        );
        let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
        assert!(
            readme.contains(&format!("## `{name}`")),
            "{name} is not documented in tests/fixtures/journals/README.md"
        );
    }
}

fn status(journal: &str) -> (i32, Value, String) {
    let out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .args(["status"])
        .arg(plan())
        .arg("--journal")
        .arg(dir().join(journal))
        .args(["--output", "json"])
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, v, text(&out))
}

fn states(v: &Value) -> BTreeMap<String, String> {
    v["accounts"]
        .as_object()
        .unwrap_or_else(|| panic!("no accounts in {v}"))
        .iter()
        .map(|(k, a)| (k.clone(), a["state"].as_str().unwrap_or("?").to_string()))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .collect()
}

#[test]
fn each_fixture_reads_as_its_readme_says() {
    let cases: [(&str, &[(&str, &str)]); 5] = [
        (
            "killed-before-any-session.journal",
            &[
                ("alice", "pending"),
                ("bob", "pending"),
                ("carol", "pending"),
            ],
        ),
        (
            "killed-after-create-intent.journal",
            &[
                ("alice", "in_progress"),
                ("bob", "in_progress"),
                ("carol", "in_progress"),
            ],
        ),
        (
            "mid-transfer.journal",
            &[
                ("alice", "transferred"),
                ("bob", "failed"),
                ("carol", "in_progress"),
            ],
        ),
        (
            "finished-with-a-failure.journal",
            &[
                ("alice", "transferred"),
                ("bob", "failed"),
                ("carol", "transferred"),
            ],
        ),
        // Read-only commands read up to the torn line and leave it.
        (
            "torn-tail.journal",
            &[
                ("alice", "transferred"),
                ("bob", "failed"),
                ("carol", "in_progress"),
            ],
        ),
    ];
    for (name, want) in cases {
        let (code, v, out) = status(name);
        assert_eq!(code, 0, "{name}: {out}");
        assert_eq!(states(&v), expect(want), "{name}: {v}");
    }
}

#[test]
fn a_torn_tail_is_left_alone_by_readers_and_repaired_by_the_writer() {
    let before = std::fs::read(dir().join("torn-tail.journal")).unwrap();
    let (code, _, out) = status("torn-tail.journal");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read(dir().join("torn-tail.journal")).unwrap(),
        before,
        "status must never write"
    );
    // The writer (what `apply` opens) truncates exactly the torn line.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("j.journal");
    std::fs::write(&copy, &before).unwrap();
    let (_, opened) =
        ferry::journal::JournalWriter::open(&copy, ferry::journal::SyncMode::Off, |_| {}).unwrap();
    let repaired = opened.repaired.expect("the torn line is reported");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        mid_transfer().bytes(),
        "only the torn line goes: {repaired:?}"
    );
}

#[test]
fn a_damaged_middle_line_is_refused_with_its_number() {
    let (code, _, out) = status("damaged-middle.journal");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 4"), "names the line: {out}");
    let plan_out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .arg("plan")
        .arg(plan())
        .arg("--journal")
        .arg(dir().join("damaged-middle.journal"))
        .output()
        .unwrap();
    assert_eq!(plan_out.status.code(), Some(1), "{}", text(&plan_out));
    assert!(text(&plan_out).contains("line 4"), "{}", text(&plan_out));
}

#[test]
fn plan_marks_the_steps_of_the_mid_transfer_journal() {
    let out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .arg("plan")
        .arg(plan())
        .arg("--journal")
        .arg(dir().join("mid-transfer.journal"))
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let line = |user: &str| {
        t.lines()
            .find(|l| l.contains("account") && l.contains(user))
            .unwrap_or_else(|| panic!("no line for {user} in {t}"))
            .to_string()
    };
    assert!(line("alice").contains("done"), "{t}");
    // A clean failure is pending: the next apply moves it in a new session.
    assert!(line("bob").contains("pending"), "{t}");
    assert!(line("carol").contains("in progress"), "{t}");
}

#[test]
fn another_plans_journal_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other.yaml");
    let yaml = std::fs::read_to_string(plan())
        .unwrap()
        .replace("name: fixtures", "name: other");
    std::fs::write(&other, yaml).unwrap();
    let out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .arg("status")
        .arg(&other)
        .arg("--journal")
        .arg(dir().join("mid-transfer.journal"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("belongs to the plan `fixtures`"),
        "{}",
        text(&out)
    );
}
