//! `render` on a hand-built run: two sources, a session paused by policy
//! and resumed, a failed account with its log, a replacement session.

use super::*;
use std::time::{Duration, UNIX_EPOCH};

fn at(secs: u64) -> SystemTime {
    // 2026-11-30 01:45:00 UTC + secs
    UNIX_EPOCH + Duration::from_secs(1_796_003_100 + secs)
}

const EVIL: &str = "Disk quota exceeded for <script>alert('x')</script> & \"friends\"";

fn account(name: &str, source: &str, session: &str, state: AccountState, size: u64) -> AccountView {
    AccountView {
        account: name.into(),
        user: name.into(),
        source: source.into(),
        session: Some(session.into()),
        state,
        warnings: false,
        notes: vec![],
        archives_deleted: false,
        adopted: None,
        size: Some(size),
        restore: None,
        live: false,
        attempts: 1,
        message: None,
        log: vec![],
    }
}

pub(crate) fn sample_view() -> RunView {
    let mut accounts = vec![
        account(
            "alpha",
            "old1",
            "old1/s1",
            AccountState::Transferred,
            1_250_000_000,
        ),
        account(
            "bravo",
            "old1",
            "old1/s1",
            AccountState::Transferred,
            310_000_000,
        ),
        account(
            "charlie",
            "old1",
            "old1/s2",
            AccountState::Transferred,
            88_000_000,
        ),
        account(
            "delta",
            "old2",
            "old2/s1",
            AccountState::Transferred,
            2_400_000_000,
        ),
        account("echo", "old2", "old2/s1", AccountState::Failed, 540_000_000),
        account(
            "foxtrot",
            "old2",
            "old2/s1",
            AccountState::Pending,
            120_000_000,
        ),
    ];
    accounts[1].warnings = true;
    accounts[1].message = Some("Restored with 1 warning: MySQL user bravo_wp has no host".into());
    accounts[2].user = "charlie".into();
    accounts[2].account = "charlie2".into();
    accounts[4].message = Some(EVIL.into());
    accounts[4].attempts = 2;
    accounts[4].log = vec![
        r#"{"type":"control","contents":{"action":"start","item":"echo","queue":"RESTORE","time":1796003700}}"#.into(),
        r#"{"type":"control","contents":{"action":"failed-item","item":"echo","queue":"RESTORE","msg":{"failure":"Disk quota exceeded <b>"}}}"#.into(),
    ];
    accounts[5].session = None;
    accounts[5].attempts = 0;
    let session = |name: &str, source: &str, state: &str, c, s, f: Option<u64>| SessionView {
        name: name.into(),
        id: Some(format!("{}examplecocopya20261130{}", source, name.len())),
        source: source.into(),
        state: state.into(),
        created_at: at(c),
        started_at: Some(at(s)),
        finished_at: f.map(at),
        pauses: vec![],
        replaces: None,
        accounts: 2,
        failed: 0,
    };
    let mut s1 = session("old1/s1", "old1", "COMPLETED", 0, 4, Some(700));
    s1.pauses = vec![Pause {
        at: at(410),
        until: Some(at(560)),
        reason: "account echo failed".into(),
    }];
    let mut s2 = session("old1/s2", "old1", "COMPLETED", 565, 566, Some(900));
    s2.replaces = Some("old1/s1".into());
    s2.accounts = 1;
    let mut s3 = session("old2/s1", "old2", "COMPLETED", 2, 9, Some(420));
    s3.accounts = 3;
    s3.failed = 1;
    RunView {
        plan: "plans/q4-consolidation.yaml".into(),
        target: "whm.example.net".into(),
        status: RunState::Partial,
        started_at: Some(at(0)),
        finished_at: Some(at(905)),
        generated_at: at(1000),
        run_pauses: vec![Pause {
            at: at(405),
            until: Some(at(558)),
            reason: "account echo failed (on_error: pause)".into(),
        }],
        sessions: vec![s1, s3, s2],
        accounts,
        next: Some(
            "fix the cause, then run `ferry apply plans/q4-consolidation.yaml` again".into(),
        ),
        rehearsal: false,
        sizes_are_hints: true,
        restore_slots: Some(4),
    }
}

#[test]
fn every_account_is_in_the_table() {
    let v = sample_view();
    let html = render(&v);
    let section = html.split("id=\"accounts\"").nth(1).unwrap();
    let table = section
        .split("<tbody>")
        .nth(1)
        .unwrap()
        .split("</tbody>")
        .next()
        .unwrap();
    assert_eq!(table.matches("<tr ").count(), v.accounts.len());
    for a in &v.accounts {
        assert!(
            table.contains(&format!(">{}</td>", a.account))
                || table.contains(&format!(">{}</a>", a.account)),
            "{} missing",
            a.account
        );
    }
}

#[test]
fn failures_carry_the_escaped_message_and_log_lines() {
    let html = render(&sample_view());
    let failures = html
        .split("id=\"failures\"")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    assert!(failures.contains("id=\"failure-echo\""));
    assert!(failures.contains(
        "Disk quota exceeded for &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;friends&quot;"
    ));
    assert!(failures.contains("&quot;action&quot;:&quot;failed-item&quot;"));
    assert!(failures.contains("Disk quota exceeded &lt;b&gt;"));
    assert!(failures.contains("2 attempts"));
    // Only the failed account has a failure block.
    assert_eq!(failures.matches("<article class=\"failure\"").count(), 1);
    // The server's text never becomes markup.
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<b>\""));
    assert_eq!(html.matches("<script>").count(), 1, "only our own script");
}

#[test]
fn what_a_restore_said_is_shown_escaped_beside_the_account() {
    let mut v = sample_view();
    let a = v
        .accounts
        .iter_mut()
        .find(|a| a.state == AccountState::Transferred)
        .expect("a transferred account");
    a.warnings = true;
    a.notes = vec![crate::events::Note {
        kind: crate::events::NoteKind::Skipped,
        text: EVIL.into(),
    }];
    let html = render(&v);
    assert!(html.contains("transferred, warnings"), "{html}");
    assert!(
        html.contains(
            "<span class=\"note\">skipped:</span> Disk quota exceeded for &lt;script&gt;"
        ),
        "{html}"
    );
    assert!(!html.contains("<script>alert"));
}

#[test]
fn one_svg_lane_per_session_grouped_by_source_with_pause_and_resume() {
    let v = sample_view();
    let html = render(&v);
    let svg = html
        .split("<svg")
        .nth(1)
        .unwrap()
        .split("</svg>")
        .next()
        .unwrap();
    assert_eq!(svg.matches("<g class=\"lane ").count(), v.sessions.len());
    for s in &v.sessions {
        assert_eq!(
            svg.matches(&format!("data-session=\"{}\"", s.name)).count(),
            1
        );
    }
    assert_eq!(svg.matches("class=\"source-name\"").count(), 2);
    // Lanes of a source follow its heading: old1's two lanes come before old2's heading.
    let old2 = svg.find(">old2</text>").unwrap();
    assert!(svg.find("data-session=\"old1/s2\"").unwrap() < old2);
    assert!(svg.find("data-session=\"old2/s1\"").unwrap() > old2);
    // Coloured by outcome: old2/s1 completed with a failed account.
    assert!(svg.contains("<g class=\"lane warn\" data-session=\"old2/s1\""));
    assert!(svg.contains("<g class=\"lane ok\" data-session=\"old1/s1\""));
    // Session pause and resume marks, and the run's pause band.
    assert_eq!(svg.matches("pause-mark").count(), 1);
    assert_eq!(svg.matches("resume-mark").count(), 1);
    assert_eq!(svg.matches("<g class=\"run-pause\">").count(), 1);
    assert!(svg.contains(">resumed</text>"));
    assert!(svg.contains("took over the unfinished accounts of old1/s1"));
}

#[test]
fn summary_counts_duration_and_bytes() {
    let v = sample_view();
    let t = v.totals();
    assert_eq!((t.total, t.transferred, t.failed, t.pending), (6, 4, 1, 1));
    assert_eq!(
        t.bytes_moved,
        1_250_000_000 + 310_000_000 + 88_000_000 + 2_400_000_000
    );
    let html = render(&v);
    let cards = html
        .split("id=\"summary\"")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    assert!(cards.contains("<div class=\"label\">Moved</div><div class=\"value\">4</div>"));
    assert!(cards.contains("<div class=\"label\">Failed</div><div class=\"value\">1</div>"));
    assert!(cards.contains("<div class=\"label\">Pending</div><div class=\"value\">1</div>"));
    assert!(cards.contains("15m 5s"), "{cards}");
    assert!(cards.contains("incl. 2m 33s paused"), "{cards}");
    assert!(cards.contains("4.05 GB"), "{cards}");
    assert!(cards.contains("4,048,000,000 bytes"), "{cards}");
    assert!(html.contains("Finished with failures — 1 of 6 accounts could not be moved"));
    assert!(html.contains("Next step: fix the cause"));
    assert!(!html.contains("id=\"rehearsal\""));
    assert!(html.contains("Sizes are the plan's (size hints or the inventory)"));
}

/// Every `src`/`href` attribute and every `url(` must point inside the
/// document; nothing may be imported or linked.
pub fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for banned in [
        "http:", "https:", "<link", "@import", "<iframe", "<object", "<embed", "<img",
    ] {
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
        assert!(
            lower[i + 4..].starts_with('#'),
            "external url(: {}",
            &html[i..(i + 40).min(html.len())]
        );
    }
    assert!(!lower.contains("//fonts"), "no web fonts");
}

#[test]
fn references_nothing_outside_the_file() {
    assert_self_contained(&render(&sample_view()));
}

#[test]
fn render_is_deterministic_and_prints() {
    let v = sample_view();
    let a = render(&v);
    assert_eq!(a, render(&v));
    assert!(a.contains("@media print"));
    if let Some(path) = std::env::var_os("FERRY_REPORT_SAMPLE") {
        // For looking at it (docs/report-example.png comes from this, with a
        // realistic message): FERRY_REPORT_SAMPLE=/tmp/r.html cargo nextest run html
        let mut docs = v.clone();
        for acct in &mut docs.accounts {
            if acct.message.as_deref() == Some(EVIL) {
                acct.message = Some(
                    "Disk quota exceeded: the restore needs 540 MB, /home has 120 MB free".into(),
                );
                acct.log[1] = acct.log[1].replace("Disk quota exceeded <b>", "Disk quota exceeded");
            }
        }
        std::fs::write(path, render(&docs)).unwrap();
    }
}

#[test]
fn an_empty_run_renders_without_a_timeline() {
    let v = RunView {
        plan: "p.yaml".into(),
        target: "t".into(),
        status: RunState::NotStarted,
        started_at: None,
        finished_at: None,
        generated_at: at(0),
        run_pauses: vec![],
        sessions: vec![],
        accounts: vec![AccountView {
            state: AccountState::Pending,
            session: None,
            ..account("solo", "old1", "-", AccountState::Pending, 1)
        }],
        next: None,
        rehearsal: true,
        sizes_are_hints: false,
        restore_slots: None,
    };
    let html = render(&v);
    assert!(html.contains("No transfer session has been created yet."));
    assert!(!html.contains("<svg"));
    assert!(html.contains("Not started"));
    assert!(html.contains("Rehearsal report — simulated run"));
    assert!(html.contains("id=\"rehearsal\""));
    assert_self_contained(&html);
}

#[test]
fn escaping_and_units() {
    assert_eq!(
        esc("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(esc("bell\u{7}"), "bell\u{FFFD}");
    assert_eq!(human_bytes(999), "999 B");
    assert_eq!(human_bytes(1_000), "1.00 kB");
    assert_eq!(human_bytes(52_428_800), "52.4 MB");
    assert_eq!(human_bytes(4_048_000_000), "4.05 GB");
    assert_eq!(grouped(1234567), "1,234,567");
    assert_eq!(grouped(123), "123");
    assert_eq!(utc(at(62)), "2026-11-30 01:46:02 UTC");
}

#[test]
fn the_self_contained_check_catches_external_references() {
    let base = render(&sample_view());
    for bad in [
        "<script src=\"app.js\"></script>",
        "<a href=\"report2.html\">x</a>",
        "<style>body{background:url(bg.png)}</style>",
        "<link rel=\"stylesheet\" href=\"#x\">",
        "<style>@import 'x.css';</style>",
        "<img src=\"#x\">",
        "<p>see https://example.com</p>",
    ] {
        let page = base.replace("</main>", &format!("{bad}</main>"));
        let caught = std::panic::catch_unwind(|| assert_self_contained(&page)).is_err();
        assert!(caught, "not caught: {bad}");
    }
}

/// Tick marks of the timeline's axis: how many, for spans from a
/// sub-second rehearsal to a day-long migration.
#[test]
fn the_axis_has_a_few_readable_ticks_at_any_scale() {
    for (span_ms, label_len) in [
        (150u64, 12usize),
        (800, 10),
        (3_000, 10),
        (45_000, 8),
        (3_600_000, 5),
        (30 * 3_600_000, 11),
    ] {
        let mut v = sample_view();
        v.run_pauses.clear();
        let s = &mut v.sessions[0];
        s.pauses.clear();
        s.created_at = UNIX_EPOCH + Duration::from_millis(1_796_003_100_000 + 37);
        s.started_at = Some(s.created_at);
        s.finished_at = Some(s.created_at + Duration::from_millis(span_ms));
        v.sessions.truncate(1);
        v.started_at = None;
        v.finished_at = None;
        let html = render(&v);
        let ticks: Vec<&str> = html
            .match_indices("class=\"tick\"")
            .map(|(i, _)| {
                let rest = &html[i..];
                let text = &rest[rest.find('>').unwrap() + 1..];
                &text[..text.find('<').unwrap()]
            })
            .collect();
        assert!(
            (3..=9).contains(&ticks.len()),
            "{span_ms} ms: {} ticks {ticks:?}",
            ticks.len()
        );
        assert!(
            ticks.iter().all(|t| t.len() == label_len),
            "{span_ms} ms: {ticks:?}"
        );
    }
}

/// The fleet view: restore slots in use against the plan's band, with the
/// utilisation it implies, and one row per source.
#[test]
fn the_fleet_view_shows_restore_slots_and_a_row_per_source() {
    let mut v = sample_view();
    // Server clock: alpha 0–100 s, bravo 0–50, charlie 50–100, delta
    // 100–200; so two at once, then one: 300 s of restores in 200 s.
    let t = 1_796_003_100.0;
    for (name, span) in [
        ("alpha", (0.0, 100.0)),
        ("bravo", (0.0, 50.0)),
        ("charlie2", (50.0, 100.0)),
        ("delta", (100.0, 200.0)),
    ] {
        let a = v.accounts.iter_mut().find(|a| a.account == name).unwrap();
        a.restore = Some((t + span.0, t + span.1));
    }
    v.restore_slots = Some(2);
    let html = render(&v);
    let fleet = &html[html.find("<section id=\"fleet\">").unwrap()
        ..html.find("<section id=\"timeline\">").unwrap()];
    assert!(fleet.contains("class=\"slots-used\""), "{fleet}");
    assert!(fleet.contains("class=\"slots-band\""), "{fleet}");
    // 300 s busy ÷ (a peak of 2 × 200 s) = 75 %.
    assert!(
        fleet.contains("4 restores over 3m 20s by the target&#39;s clock; at most 2 at once (the plan allows 2); those 2 slots were busy 75% of the window"),
        "{fleet}"
    );
    // One row per source, linking to its lanes; data moved per source.
    assert_eq!(
        fleet
            .matches("<tr><td class=\"mono\"><a href=\"#src-old1\">")
            .count(),
        1,
        "{fleet}"
    );
    assert!(
        fleet.contains("<tr class=\"has-failed\"><td class=\"mono\"><a href=\"#src-old2\">"),
        "{fleet}"
    );
    assert!(
        fleet.contains("1.65 GB"),
        "old1 moved alpha+bravo+charlie: {fleet}"
    );
    // Few sources: the lanes stay in one timeline, not folded.
    assert!(!html.contains("<details class=\"source-lanes\""));
    assert_self_contained(&html);
}

/// More sources than the fold limit: one folded timeline per source,
/// named by the anchor the fleet table links to.
#[test]
fn at_fleet_scale_each_sources_lanes_are_folded() {
    let mut v = sample_view();
    let base = v.sessions[0].clone();
    v.sessions = (0..25)
        .map(|i| SessionView {
            name: format!("src{i:02}/s1"),
            source: format!("src{i:02}"),
            ..base.clone()
        })
        .collect();
    let html = render(&v);
    assert_eq!(html.matches("<details class=\"source-lanes\"").count(), 25);
    assert!(html.contains("id=\"src-src07\""));
    assert!(html.contains("<a href=\"#src-src07\">src07</a>"));
    assert!(html.contains("<details class=\"all-sessions\">"));
    assert!(html.contains("No restore has been dated yet"));
    assert_self_contained(&html);
}
