//! The journal → RunView mapping on a canned journal, written record by
//! record with chosen timestamps:
//!
//! | t (s) | record                                                        |
//! |-------|---------------------------------------------------------------|
//! | 0     | run_started: alpha, bravo (old1); echo, foxtrot (old2)        |
//! | 1–3   | old1/s1 created with alpha, bravo; enqueued; started          |
//! | 2–4   | old2/s1 created with echo, foxtrot; enqueued; started         |
//! | 100   | alpha transferred                                             |
//! | 120   | echo failed: "Disk quota exceeded"                            |
//! | 121–126 | pause requested; both sessions paused; run_paused           |
//! | 600   | run_started again (resume); both sessions restarted at 601    |
//! | 700   | bravo transferred with a warning; 710 foxtrot transferred     |
//! | 715–720 | both sessions COMPLETED and finished                        |
//! | 716–805 | old2/s1#2 carries echo, which fails again                   |
//! | 806   | run_finished partial                                          |

use super::*;
use crate::journal::file::encode;
use crate::journal::record::{EnqueueOutcome, PlannedAccount, Requester};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_003_100 + secs)
}

fn ts(secs: u64) -> String {
    humantime::format_rfc3339_millis(at(secs)).to_string()
}

fn run_started() -> Record {
    let mut accounts = BTreeMap::new();
    for (a, src) in [
        ("alpha", "old1"),
        ("bravo", "old1"),
        ("echo", "old2"),
        ("foxtrot", "old2"),
    ] {
        accounts.insert(
            a.to_string(),
            PlannedAccount {
                source: src.into(),
                user: a.into(),
                entry: "0".repeat(64),
                fields: BTreeMap::new(),
            },
        );
    }
    Record::RunStarted {
        plan: "plans/two.yaml".into(),
        plan_name: None,
        plan_hash: "f".repeat(64),
        accounts,
        ferry_version: "0.1.0".into(),
        pid: 4242,
        host: "ops1".into(),
        tls_insecure: false,
        simulate: true,
        restart: false,
    }
}

fn session(
    t: u64,
    key: &str,
    source: &str,
    accounts: &[&str],
    replaces: Option<&str>,
) -> Vec<(u64, Record)> {
    let s = key.to_string();
    let mut v = vec![
        (
            t,
            Record::SessionCreateIntent {
                session: s.clone(),
                batch: key.split('#').next().unwrap().into(),
                source: source.into(),
                host: format!("{source}.example.com"),
                accounts: accounts.iter().map(|a| a.to_string()).collect(),
                packages: vec![],
                replaces: replaces.map(String::from),
            },
        ),
        (
            t,
            Record::SessionCreated {
                session: s.clone(),
                id: format!("{source}examplecocopya2026113001450{}", key.len()),
            },
        ),
        (
            t,
            Record::EnqueueIntent {
                session: s.clone(),
                packages: vec![],
                accounts: accounts.iter().map(|a| a.to_string()).collect(),
            },
        ),
    ];
    for a in accounts {
        v.push((
            t,
            Record::Enqueued {
                session: s.clone(),
                package: None,
                account: Some(a.to_string()),
                outcome: EnqueueOutcome::Added,
            },
        ));
    }
    v.push((t + 2, Record::StartIntent { session: s.clone() }));
    v.push((
        t + 2,
        Record::SessionStarted {
            session: s,
            pid: 100,
        },
    ));
    v
}

fn outcome(
    t: u64,
    session: &str,
    account: &str,
    result: ItemResult,
    msg: Option<&str>,
) -> (u64, Record) {
    (t, Record::account_outcome(session, account, result, msg))
}

fn state(t: u64, session: &str, st: &str) -> (u64, Record) {
    (
        t,
        Record::SessionState {
            session: session.into(),
            state: st.into(),
        },
    )
}

fn canned() -> Vec<(u64, Record)> {
    let mut v = vec![(0, run_started())];
    v.extend(session(1, "old1/s1", "old1", &["alpha", "bravo"], None));
    v.extend(session(2, "old2/s1", "old2", &["echo", "foxtrot"], None));
    v.push(state(5, "old1/s1", "RUNNING"));
    v.push(outcome(
        100,
        "old1/s1",
        "alpha",
        ItemResult::Succeeded,
        None,
    ));
    v.push(outcome(
        120,
        "old2/s1",
        "echo",
        ItemResult::Failed,
        Some("Disk quota exceeded <quota>"),
    ));
    v.push((
        121,
        Record::PauseRequested {
            by: Requester {
                user: "ops".into(),
                host: "ops1".into(),
                pid: 4242,
            },
            at: ts(121),
            reason: "account echo failed (on_error: pause)".into(),
        },
    ));
    for s in ["old1/s1", "old2/s1"] {
        v.push((
            121,
            Record::SessionControl {
                session: s.into(),
                action: ControlAction::Pause,
                result: "ok".into(),
            },
        ));
        v.push(state(125, s, "PAUSED"));
    }
    v.push((
        126,
        Record::RunPaused {
            reason: "account echo failed (on_error: pause)".into(),
        },
    ));
    v.push((600, run_started()));
    for s in ["old1/s1", "old2/s1"] {
        v.push((601, Record::StartIntent { session: s.into() }));
        v.push((
            601,
            Record::SessionStarted {
                session: s.into(),
                pid: 101,
            },
        ));
        v.push(state(602, s, "RUNNING"));
    }
    v.push(outcome(
        700,
        "old1/s1",
        "bravo",
        ItemResult::Warning,
        Some("1 warning: MySQL user has no host"),
    ));
    v.push(outcome(
        710,
        "old2/s1",
        "foxtrot",
        ItemResult::Succeeded,
        None,
    ));
    v.push(state(715, "old2/s1", "COMPLETED"));
    v.push((
        715,
        Record::SessionFinished {
            session: "old2/s1".into(),
            state: "COMPLETED".into(),
        },
    ));
    v.extend(session(716, "old2/s1#2", "old2", &["echo"], None));
    v.push(state(720, "old1/s1", "COMPLETED"));
    v.push((
        720,
        Record::SessionFinished {
            session: "old1/s1".into(),
            state: "COMPLETED".into(),
        },
    ));
    v.push(outcome(
        800,
        "old2/s1#2",
        "echo",
        ItemResult::Failed,
        Some("Disk quota exceeded <quota>"),
    ));
    v.push(state(805, "old2/s1#2", "COMPLETED"));
    v.push((
        805,
        Record::SessionFinished {
            session: "old2/s1#2".into(),
            state: "COMPLETED".into(),
        },
    ));
    v.push((
        806,
        Record::RunFinished {
            status: FinishStatus::Partial,
            transferred: 3,
            failed: 1,
            pending: 0,
        },
    ));
    v
}

fn write_journal(dir: &Path, records: &[(u64, Record)]) -> PathBuf {
    let path = dir.join("two.journal");
    let mut bytes = Vec::new();
    for (i, (t, r)) in records.iter().enumerate() {
        bytes.extend(encode(i as u64 + 1, &ts(*t), r));
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

fn hints() -> PlanHints {
    PlanHints {
        target: Some("whm.example.net:2087".into()),
        sizes: [
            ("alpha", 1_000_000),
            ("bravo", 2_000_000),
            ("foxtrot", 500_000),
        ]
        .into_iter()
        .map(|(a, s)| (a.to_string(), s))
        .collect(),
        restore_slots: Some(4),
        live: Default::default(),
    }
}

#[test]
fn the_journal_becomes_a_run_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_journal(dir.path(), &canned());
    let (v, torn) = run_view(&path, &hints(), at(900)).unwrap();
    assert!(!torn);
    assert_eq!(v.status, RunState::Partial);
    assert_eq!(v.plan, "plans/two.yaml");
    assert_eq!(v.target, "whm.example.net:2087");
    assert_eq!(v.started_at, Some(at(0)));
    assert_eq!(v.finished_at, Some(at(806)));
    // The run paused at 126 and the second apply resumed it at 600.
    assert_eq!(v.run_pauses.len(), 1);
    assert_eq!(
        (v.run_pauses[0].at, v.run_pauses[0].until),
        (at(126), Some(at(600)))
    );
    assert!(v.run_pauses[0].reason.contains("echo failed"));

    let names: Vec<&str> = v.sessions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["old1/s1", "old2/s1", "old2/s1#2"]);
    let s1 = &v.sessions[0];
    assert_eq!(
        (s1.created_at, s1.started_at, s1.finished_at),
        (at(1), Some(at(3)), Some(at(720)))
    );
    assert_eq!(s1.pauses.len(), 1);
    assert_eq!(
        (s1.pauses[0].at, s1.pauses[0].until),
        (at(121), Some(at(601)))
    );
    assert_eq!(s1.state, "COMPLETED");
    assert_eq!((s1.accounts, s1.failed), (2, 0));
    let s2 = &v.sessions[1];
    assert_eq!((s2.accounts, s2.failed), (2, 1));
    assert!(s2.id.as_deref().unwrap().starts_with("old2examplecocopya"));
    let s3 = &v.sessions[2];
    assert_eq!((s3.accounts, s3.failed), (1, 1));
    assert!(s3.pauses.is_empty());

    let t = v.totals();
    assert_eq!((t.total, t.transferred, t.failed, t.pending), (4, 3, 1, 0));
    assert_eq!(t.bytes_moved, 3_500_000);
    let echo = v.accounts.iter().find(|a| a.account == "echo").unwrap();
    assert_eq!(echo.state, AccountState::Failed);
    assert_eq!(echo.message.as_deref(), Some("Disk quota exceeded <quota>"));
    assert_eq!(echo.session.as_deref(), Some("old2/s1#2"));
    let bravo = v.accounts.iter().find(|a| a.account == "bravo").unwrap();
    assert!(bravo.warnings);
    assert!(
        v.next
            .as_deref()
            .unwrap()
            .contains("ferry apply plans/two.yaml")
    );
}

#[test]
fn a_paused_journal_reports_paused_with_the_open_pause() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<_> = canned().into_iter().take_while(|(t, _)| *t < 600).collect();
    let path = write_journal(dir.path(), &records);
    let (v, _) = run_view(&path, &hints(), at(300)).unwrap();
    assert_eq!(v.status, RunState::Paused);
    assert_eq!(v.finished_at, Some(at(126)));
    assert_eq!(v.run_pauses[0].until, None);
    assert!(v.sessions.iter().all(|s| s.state == "PAUSED"));
    assert!(
        v.sessions
            .iter()
            .all(|s| s.pauses.len() == 1 && s.pauses[0].until.is_none())
    );
    let t = v.totals();
    assert_eq!((t.transferred, t.failed, t.pending), (1, 1, 2));
    // The canned run is a rehearsal: it cannot be resumed, only redone.
    let next = v.next.unwrap();
    assert!(next.contains("would resume it"), "{next}");
    assert!(
        next.contains("rehearse again with `ferry apply --simulate"),
        "{next}"
    );
}

#[test]
fn report_writes_a_private_self_contained_file() {
    let dir = tempfile::tempdir().unwrap();
    let journal = write_journal(dir.path(), &canned());
    let plan = dir.path().join("two.yaml");
    std::fs::write(
        &plan,
        "version: 1\ntarget: {url: 'https://whm.example.net:2087', token: {env: WHM_TOKEN}}\n\
         sources:\n  - name: old1\n    host: old1.example.com\n    ssh: {password: {env: P1}}\n\
         \x20   accounts: [{user: alpha, size: 1000000}, bravo]\n",
    )
    .unwrap();
    let html_path = dir.path().join("report.html");
    // An existing world-readable file is replaced by a 0600 one.
    std::fs::write(&html_path, "old").unwrap();
    let out = report(&ReportOptions {
        plan: plan.clone(),
        html: html_path.clone(),
        journal: Some(journal),
    })
    .unwrap();
    assert_eq!(out.totals.transferred, 3);
    assert_eq!(out.sessions, 3);
    let page = std::fs::read_to_string(&html_path).unwrap();
    assert_eq!(page.len(), out.bytes);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&html_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    crate::report::html::assert_self_contained(&page);
    assert!(page.contains("whm.example.net:2087"));
    assert!(page.contains("Disk quota exceeded &lt;quota&gt;"));
    assert_eq!(page.matches("<g class=\"lane ").count(), 3);
    // Only plan hints were used: alpha's 1 MB size, no secret resolved.
    assert!(page.contains("1.00 MB"));
    // No temporary file left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn a_missing_journal_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let err = report(&ReportOptions {
        plan: dir.path().join("x.yaml"),
        html: dir.path().join("r.html"),
        journal: Some(dir.path().join("none.journal")),
    })
    .unwrap_err();
    assert_eq!(err.exit_status(), crate::ops::ExitStatus::Failure);
    let text = err.to_string();
    assert!(text.contains("no journal at"), "{text}");
    assert!(text.contains("Run `ferry apply"), "{text}");
    assert!(!dir.path().join("r.html").exists());
}

#[test]
fn hosts_from_urls() {
    assert_eq!(
        host_of("https://whm.example.net:2087").as_deref(),
        Some("whm.example.net:2087")
    );
    assert_eq!(
        host_of("http://127.0.0.1:9/json-api/").as_deref(),
        Some("127.0.0.1:9")
    );
    assert_eq!(
        host_of("https://u:p@h.example/").as_deref(),
        Some("h.example")
    );
    assert_eq!(host_of(""), None);
}
