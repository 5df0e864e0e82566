//! `ferry report PLAN --html FILE` on a journal written record by record
//! (the library's own line encoder): a run paused after a failure, resumed,
//! and finished with that account failed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use assert_cmd::Command;
use ferry::journal::file::encode;
use ferry::journal::record::{
    ControlAction, EnqueueOutcome, FinishStatus, ItemResult, PlannedAccount, Record,
};

fn ts(secs: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_secs(1_796_003_100 + secs))
        .to_string()
}

fn started(plan: &str) -> Record {
    let accounts: BTreeMap<String, PlannedAccount> = ["alpha", "bravo", "carol"]
        .iter()
        .map(|a| {
            (
                a.to_string(),
                PlannedAccount {
                    source: "old1".into(),
                    user: a.to_string(),
                    entry: "0".repeat(64),
                    fields: BTreeMap::new(),
                },
            )
        })
        .collect();
    Record::RunStarted {
        plan: plan.into(),
        plan_name: None,
        plan_hash: "a".repeat(64),
        accounts,
        ferry_version: "0.1.0".into(),
        pid: 1,
        host: "ops".into(),
        tls_insecure: false,
        simulate: true,
        restart: false,
    }
}

/// A run of three accounts in one session: carol fails with a message that
/// tries to inject markup, the run pauses, is resumed, and ends partial.
fn write_journal(path: &Path, plan: &str) {
    let s = || "old1/s1".to_string();
    let outcome = |a: &str, result, message: Option<&str>| Record::ItemOutcome {
        restore: None,
        session: s(),
        account: Some(a.into()),
        package: None,
        result,
        message: message.map(String::from),
        log: Vec::new(),
    };
    let records = vec![
        (0, started(plan)),
        (
            1,
            Record::SessionCreateIntent {
                session: s(),
                batch: s(),
                source: "old1".into(),
                host: "old1.example.com".into(),
                accounts: vec!["alpha".into(), "bravo".into(), "carol".into()],
                packages: vec![],
                replaces: None,
            },
        ),
        (
            1,
            Record::SessionCreated {
                session: s(),
                id: "old1examplecocopya20261130014501Zz9q".into(),
            },
        ),
        (
            2,
            Record::EnqueueIntent {
                session: s(),
                packages: vec![],
                accounts: vec!["alpha".into()],
            },
        ),
        (
            2,
            Record::Enqueued {
                session: s(),
                package: None,
                account: Some("alpha".into()),
                outcome: EnqueueOutcome::Added,
            },
        ),
        (3, Record::StartIntent { session: s() }),
        (
            3,
            Record::SessionStarted {
                session: s(),
                pid: 9,
            },
        ),
        (60, outcome("alpha", ItemResult::Succeeded, None)),
        (
            90,
            outcome(
                "carol",
                ItemResult::Failed,
                Some("<img src=x onerror=alert(1)> quota exceeded"),
            ),
        ),
        (
            91,
            Record::SessionControl {
                session: s(),
                action: ControlAction::Pause,
                result: "ok".into(),
            },
        ),
        (
            95,
            Record::SessionState {
                session: s(),
                state: "PAUSED".into(),
            },
        ),
        (
            96,
            Record::RunPaused {
                reason: "carol failed (on_error: pause)".into(),
            },
        ),
        (400, started(plan)),
        (
            401,
            Record::SessionStarted {
                session: s(),
                pid: 10,
            },
        ),
        (
            402,
            Record::SessionState {
                session: s(),
                state: "RUNNING".into(),
            },
        ),
        (500, outcome("bravo", ItemResult::Succeeded, None)),
        (
            510,
            Record::SessionState {
                session: s(),
                state: "COMPLETED".into(),
            },
        ),
        (
            510,
            Record::SessionFinished {
                session: s(),
                state: "COMPLETED".into(),
            },
        ),
        (
            511,
            Record::RunFinished {
                status: FinishStatus::Partial,
                transferred: 2,
                failed: 1,
                pending: 0,
            },
        ),
    ];
    let mut bytes = Vec::new();
    for (i, (t, r)) in records.iter().enumerate() {
        bytes.extend(encode(i as u64 + 1, &ts(*t), r));
    }
    std::fs::write(path, bytes).unwrap();
}

/// Nothing in the page may load anything: no URL scheme, no link, no import,
/// every src/href a fragment, every url() a fragment.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for banned in ["http:", "https:", "<link", "@import", "<img", "<iframe"] {
        assert!(!lower.contains(banned), "report contains {banned:?}");
    }
    // Attributes live inside tags; escaped text (`&lt;img src=…`) is not a tag.
    for tag in lower
        .split('<')
        .skip(1)
        .map(|t| t.split('>').next().unwrap_or(""))
    {
        for attr in [" src=", " href=", " xlink:href=", " action=", " srcset="] {
            for (i, _) in tag.match_indices(attr) {
                assert!(
                    tag[i + attr.len()..].starts_with("\"#"),
                    "{attr} must be a fragment: <{tag}>"
                );
            }
        }
    }
    for (i, _) in lower.match_indices("url(") {
        assert!(lower[i + 4..].starts_with('#'), "external url(");
    }
}

#[test]
fn report_of_a_paused_resumed_run_with_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("run.journal");
    write_journal(&journal, "plans/one.yaml");
    let html = dir.path().join("out.html");
    let out = Command::cargo_bin("ferry")
        .unwrap()
        .current_dir(dir.path())
        .args(["report", "plans/one.yaml", "--html"])
        .arg(&html)
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("2 of 3 accounts moved, 1 failed, 0 pending; 1 session"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "report prints nothing on stdout");

    let page = std::fs::read_to_string(&html).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&html).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_self_contained(&page);
    for a in ["alpha", "bravo", "carol"] {
        assert!(page.contains(&format!(">{a}<")), "{a} missing");
    }
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt; quota exceeded"));
    assert_eq!(page.matches("<g class=\"lane ").count(), 1);
    assert!(page.contains("pause-mark") && page.contains("resume-mark"));
    assert!(page.contains("<g class=\"run-pause\">"));
    assert!(page.contains("old1examplecocopya20261130014501Zz9q"));
}

#[test]
fn report_without_a_journal_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("ferry")
        .unwrap()
        .current_dir(dir.path())
        .args(["report", "plans/none.yaml", "--html", "r.html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no journal at plans/.ferry/none.journal"),
        "{stderr}"
    );
    assert!(stderr.contains("ferry apply plans/none.yaml"), "{stderr}");
    assert!(!dir.path().join("r.html").exists());
}

/// End to end: `ferry apply` on whm-sim with an account that fails twice
/// and `on_error: pause` → exit 3; apply again (resume; the account is
/// re-enqueued and fails again) → exit 3; then the report of the run.
#[test]
fn report_of_a_real_run_paused_resumed_with_a_failed_account() {
    use crate::kit::{Fleet, World, text};
    use ferry::sim::{FailItem, FailStage};

    let fleet = Fleet::standard(2, 6);
    let mut sc = fleet.scenario(0.001);
    sc.faults.fail_items.insert(
        "s2u03".into(),
        FailItem {
            message: "Disk quota exceeded: <b>s2u03</b> needs 3 GB".into(),
            times: 2,
            stage: FailStage::Restore,
        },
    );
    let w = World::start(fleet.clone(), sc);
    let first = w.apply(&[]);
    assert_eq!(first.status.code(), Some(3), "{}", text(&first));
    let second = w.apply(&[]);
    assert_eq!(second.status.code(), Some(3), "{}", text(&second));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("FAILED s2u03"), "{stderr}");
    assert!(stderr.contains("run paused after"), "{stderr}");

    let out = w
        .ferry(&["report", "fleet.yaml", "--html", "report.html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let path = w.dir.path().join("report.html");
    let page = std::fs::read_to_string(&path).unwrap();
    if let Some(keep) = std::env::var_os("FERRY_KEEP_REPORT") {
        // To look at it: FERRY_KEEP_REPORT=/tmp/e2e.html cargo nextest run report_of_a_real
        std::fs::copy(&path, keep).unwrap();
    }
    assert_self_contained(&page);
    // Every account of the plan is in the table.
    for u in fleet.target_users() {
        assert!(page.contains(&format!(">{u}<")), "{u} missing");
    }
    // The failure, escaped, with its own section.
    assert!(page.contains("id=\"failure-s2u03\""));
    // The failure carries its session's master.log lines (from the journal),
    // the failed-item line among them.
    assert!(page.contains("master.log ("), "no log lines in the report");
    assert!(
        page.contains("failed-item"),
        "the failed-item line is missing"
    );
    assert!(page.contains("Disk quota exceeded: &lt;b&gt;s2u03&lt;/b&gt; needs 3 GB"));
    // The fleet view dates every restore that ended, by the server's clock
    // (from master.log, through the journal), and has a row per source.
    let outcomes = w
        .records("item_outcome")
        .iter()
        .filter(|r| r["rec"]["restore"]["ended"].is_number())
        .count();
    assert!(
        outcomes >= fleet.target_users().len(),
        "{outcomes} dated outcomes"
    );
    assert!(
        page.contains("class=\"slots-used\""),
        "no restore-slot chart"
    );
    assert!(page.contains("restores over "), "no restore-slot summary");
    for s in &fleet.sources {
        assert!(
            page.contains(&format!("<a href=\"#src-{}\">", s.name)),
            "{}",
            s.name
        );
    }
    // One lane per session the journal knows.
    let sessions: std::collections::BTreeSet<String> = w
        .records("session_create_intent")
        .iter()
        .map(|r| r["rec"]["session"].as_str().unwrap().to_string())
        .collect();
    assert!(sessions.len() >= 3, "{sessions:?}");
    assert_eq!(page.matches("<g class=\"lane ").count(), sessions.len());
    for s in &sessions {
        assert!(page.contains(&format!("data-session=\"{s}\"")), "{s}");
    }
    // The run paused twice and was resumed once.
    assert_eq!(page.matches("<g class=\"run-pause\">").count(), 2);
    assert_eq!(page.matches("class=\"run-resume-line\"").count(), 1);
    assert!(
        !page.contains("id=\"rehearsal\""),
        "a run against a server is not a rehearsal"
    );
    assert!(page.contains("Paused — waiting for an operator"));
}
