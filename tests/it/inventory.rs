//! `ferry inventory` against whm-sim: the file it writes, its determinism,
//! its use by `ferry plan` (sizes from the sources, hints winning), and a
//! source that cannot be analysed.

use std::time::Duration;

use serde_json::Value;

use crate::kit::world::{Fleet, World, run_bounded, text};

/// A fleet whose accounts all have different sizes, and the plan written
/// without any size hint except `hinted`'s (`HINT` bytes).
fn world(hinted: &str) -> World {
    let mut fleet = Fleet::standard(2, 6);
    let mut k = 0u64;
    for s in &mut fleet.sources {
        for a in &mut s.accounts {
            k += 1;
            a.size = 10_000_000 + k * 1_000_003;
        }
    }
    let w = World::start(fleet.clone(), fleet.scenario(0.001));
    let yaml: String = fleet
        .plan_yaml(&w.url)
        .lines()
        .map(|l| match l.find(", size: ") {
            Some(at) if l.contains(&format!("user: {hinted},")) => {
                format!("{}, size: {HINT}}}\n", &l[..at])
            }
            Some(at) => format!("{}}}\n", &l[..at]),
            None => format!("{l}\n"),
        })
        .collect();
    assert!(yaml.contains(&format!("size: {HINT}")), "{yaml}");
    std::fs::write(&w.plan, yaml).unwrap();
    w
}

const HINT: u64 = 777;

/// What whm-sim reports as `bytesused` for an account of `size` bytes:
/// whole KiB, rounded up, as cPanel's quota does.
fn reported(size: u64) -> u64 {
    size.div_ceil(1024) * 1024
}

fn inventory(w: &World, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["inventory", "fleet.yaml"];
    args.extend_from_slice(extra);
    run_bounded(w.ferry(&args), Duration::from_secs(60))
}

fn read(w: &World) -> (String, Value) {
    let t = std::fs::read_to_string(w.dir.path().join("fleet.inventory.json")).unwrap();
    let v = serde_json::from_str(&t).unwrap();
    (t, v)
}

#[test]
fn writes_what_the_sources_report_the_same_twice() {
    let w = world("s2u03");
    let out = inventory(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("fleet.inventory.json"),
        "{}",
        text(&out)
    );
    let (first, v) = read(&w);
    assert!(v["taken_at"].is_string(), "{first}");
    for s in &w.fleet.sources {
        let src = &v["sources"][&s.name];
        assert_eq!(src["host"], s.host.as_str(), "{first}");
        assert!(src["supports_live_transfers"].is_boolean(), "{first}");
        let accts = src["accounts"].as_array().unwrap();
        assert_eq!(accts.len(), s.accounts.len(), "{first}");
        let users: Vec<&str> = accts.iter().map(|a| a["user"].as_str().unwrap()).collect();
        let mut sorted = users.clone();
        sorted.sort();
        assert_eq!(users, sorted, "accounts sorted by user");
        for a in &s.accounts {
            let got = accts.iter().find(|x| x["user"] == a.user.as_str()).unwrap();
            assert_eq!(got["bytes"], reported(a.size), "{}: {got}", a.user);
            assert_eq!(got["package"], a.package.as_deref().unwrap(), "{got}");
            assert_eq!(got["owner"], a.owner.as_deref().unwrap_or("root"), "{got}");
        }
    }
    let out = inventory(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (second, _) = read(&w);
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.contains("\"taken_at\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&first), strip(&second));
    assert_eq!(first.lines().count(), second.lines().count());
}

/// The sizes of `ferry plan --format json`, by source user.
fn planned_sizes(w: &World) -> std::collections::BTreeMap<String, Value> {
    let out = run_bounded(
        w.ferry(&["plan", "fleet.yaml", "--format", "json"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["accounts"].as_array().unwrap().clone())
        .map(|a| (a["user"].as_str().unwrap().to_string(), a["size"].clone()))
        .collect()
}

#[test]
fn plan_schedules_by_the_inventory_and_hints_win() {
    let mut w = world("s2u03");
    let before = planned_sizes(&w);
    assert_eq!(before["s1u02"], Value::Null, "no hint, no inventory yet");
    assert_eq!(before["s2u03"], HINT);
    let out = inventory(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A damaged inventory stops `plan` with exit 2, naming the file …
    let path = w.dir.path().join("fleet.inventory.json");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, "{\"format\": 1").unwrap();
    let out = run_bounded(w.ferry(&["plan", "fleet.yaml"]), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("fleet.inventory.json"),
        "{}",
        text(&out)
    );
    // … and `ferry inventory` rewrites it.
    let out = inventory(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let strip = |t: &str| t.lines().filter(|l| !l.contains("taken_at")).count();
    assert_eq!(
        strip(&std::fs::read_to_string(&path).unwrap()),
        strip(&good)
    );
    // Offline from here: `plan` must not need the simulator.
    let sim = w.sim.take().unwrap();
    w.rt.block_on(sim.shutdown());
    let after = planned_sizes(&w);
    for s in &w.fleet.sources {
        for a in &s.accounts {
            let want = if a.user == "s2u03" {
                HINT
            } else {
                reported(a.size)
            };
            assert_eq!(after[&a.user], want, "{}", a.user);
        }
    }
}

#[test]
fn a_source_that_cannot_be_analysed_fails_and_keeps_the_old_file() {
    let w = world("s2u03");
    let old = "{\"kept\": true}\n";
    let path = w.dir.path().join("fleet.inventory.json");
    std::fs::write(&path, old).unwrap();
    let yaml = std::fs::read_to_string(&w.plan)
        .unwrap()
        .replace("host: old2.example.com", "host: gone.example.com");
    std::fs::write(&w.plan, yaml).unwrap();
    let out = inventory(&w, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("old2") && msg.contains("gone.example.com"),
        "{msg}"
    );
    assert!(msg.contains("nothing was written"), "{msg}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
}

#[test]
fn output_goes_where_asked() {
    let w = world("s2u03");
    let out = inventory(&w, &["--output", "elsewhere.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(w.dir.path().join("elsewhere.json").exists());
    assert!(!w.dir.path().join("fleet.inventory.json").exists());
}

/// Items enqueued on the target, over every session whm-sim knows.
fn enqueued(w: &World) -> usize {
    w.state()["sessions"]
        .as_array()
        .map(|ss| {
            ss.iter()
                .map(|s| s["items"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

/// The stale-plan guard: the inventory says what the sources held when the
/// plan was reviewed. A planned account the source no longer has stops
/// `apply` before anything is enqueued (exit 2, the account and the fix
/// named); `ferry check` reports it (exit 1). An account grown past 1.5×
/// its inventoried size is a warning and the run completes.
#[test]
fn stale_plan_guard_refuses_a_vanished_account_and_warns_on_growth() {
    let w = world("s2u03");
    let out = inventory(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let inv_path = w.dir.path().join("fleet.inventory.json");
    let pristine = std::fs::read_to_string(&inv_path).unwrap();
    let mut v: Value = serde_json::from_str(&pristine).unwrap();

    // When the inventory was taken, s1 also held `ghost`, since deleted on
    // the source; the reviewed plan still moves it.
    let s1 = &w.fleet.sources[0];
    let accts = v["sources"][&s1.name]["accounts"].as_array_mut().unwrap();
    let mut ghost = accts[0].clone();
    ghost["user"] = "ghost".into();
    accts.push(ghost);
    std::fs::write(&inv_path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let plan = std::fs::read_to_string(&w.plan).unwrap();
    let first = &s1.accounts[0].user;
    let with_ghost = plan.replacen(
        &format!("- {{user: {first}"),
        &format!("- {{user: ghost}}\n      - {{user: {first}"),
        1,
    );
    assert_ne!(with_ghost, plan, "the plan lists {first}: {plan}");
    std::fs::write(&w.plan, &with_ghost).unwrap();

    let out = w.apply(&[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("the plan is stale"), "{t}");
    assert!(t.contains("`ghost` is no longer on the source"), "{t}");
    assert!(t.contains("ferry inventory"), "the fix is named: {t}");
    assert_eq!(enqueued(&w), 0, "nothing enqueued: {:#}", w.state());
    let out = run_bounded(w.ferry(&["check", "fleet.yaml"]), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "check: {}", text(&out));
    assert!(text(&out).contains("ghost"), "{}", text(&out));

    // The plan fixed; meanwhile s2's first account has grown (the
    // inventory recorded a fifth of its size).
    std::fs::write(&w.plan, &plan).unwrap();
    let mut v: Value = serde_json::from_str(&pristine).unwrap();
    let s2 = &w.fleet.sources[1];
    let grown = s2.accounts[0].user.clone();
    let accts = v["sources"][&s2.name]["accounts"].as_array_mut().unwrap();
    let a = accts
        .iter_mut()
        .find(|a| a["user"] == grown.as_str())
        .unwrap();
    a["bytes"] = (a["bytes"].as_u64().unwrap() / 5).into();
    std::fs::write(&inv_path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    // `ferry check` reports the growth as a warning (the check passes).
    let out = run_bounded(w.ferry(&["check", "fleet.yaml"]), Duration::from_secs(60));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "check: {t}");
    assert!(t.contains(&format!("`{grown}` has grown from")), "{t}");
    let out = w.apply(&[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("`{grown}` has grown from")), "{t}");
    w.assert_exactly_once(&w.fleet.target_users());
}

/// A run killed mid-way, then the inventory taken again with different
/// sizes (the sources changed; the operator re-ran `ferry inventory` and
/// committed it): the compiler now composes the batches differently
/// (`ferry plan` shows other sessions), but the resume keeps every
/// account's history — none is transferred twice, none is lost. Oracle:
/// whm-sim's record of transfers and restores.
#[test]
fn a_resume_with_a_changed_inventory_transfers_each_account_once() {
    let w = world("s1u01");
    let plan = std::fs::read_to_string(&w.plan).unwrap();
    let two_by_two = plan.replace(
        "target_sessions: 3\n  source_sessions: 1\n  batch_size: 10",
        "target_sessions: 2\n  source_sessions: 1\n  batch_size: 2",
    );
    assert_ne!(two_by_two, plan, "{plan}");
    std::fs::write(&w.plan, two_by_two).unwrap();
    let out = inventory(&w, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let sessions_of = |w: &World| -> Vec<Value> {
        let out = run_bounded(
            w.ferry(&["plan", "fleet.yaml", "--format", "json"]),
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["sessions"].as_array().unwrap().clone()
    };
    let before = sessions_of(&w);

    let mut child = w.spawn_apply(&[], "first");
    w.wait_for(Duration::from_secs(60), "two accounts restored", |st| {
        st["accounts"]
            .as_object()
            .is_some_and(|a| a.values().filter(|a| a["restores_completed"] == 1).count() >= 2)
    });
    crate::kit::world::kill9(&mut child);
    let restored = |st: &Value| {
        st["accounts"]
            .as_object()
            .unwrap()
            .values()
            .filter(|a| a["restores_completed"] == 1)
            .count()
    };
    let at_kill = restored(&w.state());
    assert!(
        at_kill < w.fleet.target_users().len(),
        "the run was killed before its end ({at_kill} restored)"
    );

    // The new inventory: every size reversed within its source, so the
    // largest-first composition pairs other accounts.
    let inv_path = w.dir.path().join("fleet.inventory.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&inv_path).unwrap()).unwrap();
    for src in v["sources"].as_object_mut().unwrap().values_mut() {
        let accts = src["accounts"].as_array_mut().unwrap();
        let sizes: Vec<Value> = accts.iter().map(|a| a["bytes"].clone()).rev().collect();
        for (a, s) in accts.iter_mut().zip(sizes) {
            a["bytes"] = s;
        }
    }
    std::fs::write(&inv_path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    assert_ne!(sessions_of(&w), before, "the batches are composed anew");

    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.assert_exactly_once(&w.fleet.target_users());
    let st = w.state();
    for (u, a) in st["accounts"].as_object().unwrap() {
        assert!(
            a["transfers_started"].as_u64() == Some(1),
            "{u} not transferred exactly once: {a}"
        );
    }
}

/// Without an inventory there is nothing reviewed to compare with, so
/// `apply` does not analyse every source before it starts (a create per
/// source, each an SSH login). A planned account the source lacks is
/// refused by WHM's own enqueue check: the run stops under `on_error:
/// pause` (exit 3) with the server's reason, and `ferry check` names it
/// before any run (exit 1).
#[test]
fn without_an_inventory_a_vanished_account_is_refused_by_whm_and_named_by_check() {
    let w = world("s1u01");
    let plan = std::fs::read_to_string(&w.plan).unwrap();
    let first = &w.fleet.sources[0].accounts[0].user;
    let with_ghost = plan.replacen(
        &format!("- {{user: {first}"),
        &format!("- {{user: ghost}}\n      - {{user: {first}"),
        1,
    );
    assert_ne!(with_ghost, plan);
    std::fs::write(&w.plan, &with_ghost).unwrap();
    let out = run_bounded(w.ferry(&["check", "fleet.yaml"]), Duration::from_secs(60));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "check: {t}");
    assert!(t.contains("account `ghost` does not exist on"), "{t}");
    let out = w.apply(&[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("ghost (old1)"), "{t}");
    assert!(t.contains("does not exist"), "the server's reason: {t}");
    let st = w.state();
    let ghost = &st["accounts"]["ghost"];
    assert!(
        ghost.is_null() || (ghost["present"] == false && ghost["restores_started"] == 0),
        "{ghost}"
    );
}
