//! Every `AccountRemoteRoot` option of the real schema (issue 14, part 3):
//! the plan accepts them, `ferry validate` refuses the ones that overwrite
//! data on the target unless `allow_overwrite: true` says so (and `force`
//! with a rename, which WHM refuses), and `apply` sends them as the
//! parameter rules allow — an account restored onto on purpose is not
//! taken for a lost one.

use serde_json::Value;

use crate::kit::*;

/// The standard fleet's plan with `extra` spliced into account `user`'s
/// entry.
fn plan_with(w: &World, user: &str, extra: &str) -> String {
    let y = w.fleet.plan_yaml(&w.url);
    let from = format!("- {{user: {user}, ");
    assert!(y.contains(&from), "{user} not in the plan");
    y.replace(&from, &format!("- {{user: {user}, {extra}, "))
}

fn validate(w: &World, yaml: &str) -> std::process::Output {
    std::fs::write(&w.plan, yaml).unwrap();
    w.ferry(&["validate", "fleet.yaml"]).output().unwrap()
}

#[test]
fn overwriting_options_need_allow_overwrite() {
    let fleet = Fleet::standard(1, 6);
    let w = World::start(fleet.clone(), fleet.scenario(0.002));
    for opt in [
        "force",
        "skipaccount",
        "overwrite_all_dbs",
        "overwrite_all_dbusers",
        "overwrite_sameowner_dbs",
        "overwrite_sameowner_dbusers",
        "overwrite_with_delete",
    ] {
        let out = validate(
            &w,
            &plan_with(&w, "s1u02", &format!("options: {{{opt}: 1}}")),
        );
        assert_eq!(out.status.code(), Some(2), "{opt}: {}", text(&out));
        let err = text(&out);
        assert!(
            err.contains(&format!("`{opt}: 1` overwrites data")),
            "{err}"
        );
        assert!(err.contains("allow_overwrite: true"), "{err}");
        assert!(err.contains("fleet.yaml:"), "a location: {err}");
        // Said where the plan's reader looks: the entry, its options, or the defaults.
        for allowed in [
            format!("allow_overwrite: true, options: {{{opt}: 1}}"),
            format!("options: {{{opt}: 1, allow_overwrite: true}}"),
        ] {
            let out = validate(&w, &plan_with(&w, "s1u02", &allowed));
            assert_eq!(out.status.code(), Some(0), "{allowed}: {}", text(&out));
        }
        let with_defaults = plan_with(&w, "s1u02", &format!("options: {{{opt}: 1}}")).replace(
            "defaults:\n",
            "defaults:\n  account: {allow_overwrite: true}\n",
        );
        let out = validate(&w, &with_defaults);
        assert_eq!(out.status.code(), Some(0), "defaults: {}", text(&out));
    }
    // `force` with a rename is what WHM refuses at restore: refused here.
    let out = validate(
        &w,
        &plan_with(&w, "shop", "allow_overwrite: true, options: {force: 1}"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("WHM refuses to overwrite an account"),
        "{}",
        text(&out)
    );
    // Nothing was sent to the target by any of it.
    assert!(w.sim().requests().as_array().unwrap().is_empty());
}

/// The options that do not overwrite are accepted as they are, sent on the
/// enqueue, and every request stays within the parameter rules.
#[test]
fn every_option_is_sent_within_the_parameter_rules() {
    let fleet = Fleet::standard(1, 6);
    let w = World::start(fleet.clone(), fleet.scenario(0.002));
    let opts = "options: {skipemail: 1, skipsubdomains: 1, disabled: \"Cron,SSL\", \
                keep_local_cpuser_values: ALL, skipbwdata: 1}";
    std::fs::write(&w.plan, plan_with(&w, "s1u03", opts)).unwrap();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rules = rules();
    let requests = w.sim().requests();
    let mut seen = false;
    for rec in requests.as_array().unwrap() {
        let v = request_violations(&rules, rec);
        assert!(v.is_empty(), "{v:?}");
        let keys: Vec<&str> = rec["body_keys"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(rec["query_keys"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        if rec["function"] == "enqueue_transfer_item" && keys.contains(&"skipemail") {
            seen = true;
            for k in [
                "skipsubdomains",
                "disabled",
                "keep_local_cpuser_values",
                "skipbwdata",
            ] {
                assert!(keys.contains(&k), "{k} not sent: {rec}");
            }
        }
    }
    assert!(seen, "no enqueue carried the options");
    w.assert_exactly_once(&w.fleet.target_users());
}

/// An account already on the target that the plan restores onto on
/// purpose (`skipaccount: 1`, `allow_overwrite: true`) is restored onto —
/// once — not refused as an account ferry lost track of, nor adopted.
#[test]
fn an_account_restored_onto_on_purpose_is_not_taken_for_a_lost_one() {
    let fleet = Fleet::standard(1, 6);
    let mut sc = fleet.scenario(0.002);
    sc.target
        .existing_accounts
        .push(ferry::sim::ExistingAccount::Name("s1u05".into()));
    let w = World::start(fleet.clone(), sc);
    std::fs::write(
        &w.plan,
        plan_with(
            &w,
            "s1u05",
            "allow_overwrite: true, options: {skipaccount: 1}",
        ),
    )
    .unwrap();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let st = w.state();
    assert_eq!(st["accounts"]["s1u05"]["restores_started"], 1, "{st:#}");
    assert_eq!(st["accounts"]["s1u05"]["restores_completed"], 1, "{st:#}");
    let status = w.status();
    assert_eq!(status["accounts"]["s1u05"]["state"], "transferred");
    assert!(status["accounts"]["s1u05"].get("adopted").is_none());
    w.assert_exactly_once(&w.fleet.target_users());
}

/// Every option the plan accepts is a key of `AccountRemoteRoot` as the
/// server describes it (`transfer_module_schema`), and none of the
/// server's user-facing keys is missing from the plan, except the internal
/// and legacy ones.
#[tokio::test]
async fn the_plan_options_are_the_servers_schema() {
    let sim = Sim::start(scenario(0, 0)).await;
    let s = sim
        .whm
        .get("transfer_module_schema", &[("module", "AccountRemoteRoot")])
        .await;
    let server: Vec<String> = s["data"]["schema"]["keys"]
        .as_object()
        .or_else(|| s["data"]["schema"]["columns"].as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert!(!server.is_empty(), "no keys in {s:#}");
    let plan: Value = serde_json::from_str(ferry::plan::schema::COMMITTED).unwrap();
    let ours: Vec<String> = plan["$defs"]["AccountOptions"]["properties"]
        .as_object()
        .or_else(|| plan["definitions"]["AccountOptions"]["properties"].as_object())
        .expect("AccountOptions in the plan schema")
        .keys()
        .cloned()
        .collect();
    for k in &ours {
        assert!(
            k == "allow_overwrite" || server.contains(k),
            "plan option {k} is not a key of AccountRemoteRoot: {server:?}"
        );
    }
    // Set elsewhere in the entry (user, localuser, size, domain), by ferry
    // (priority, prerequisite_user), internal to WHM, or legacy.
    let not_options = [
        "user",
        "localuser",
        "size",
        "files",
        "domain",
        "priority",
        "prerequisite_user",
        "detected_remote_user",
        "copypoint",
        "cpmovefile",
        "reseller",
        "xferpoint",
    ];
    for k in &server {
        assert!(
            not_options.contains(&k.as_str()) || ours.contains(k),
            "AccountRemoteRoot key {k} cannot be set in the plan"
        );
    }
    sim.finish().await;
}

/// `live_transfer: 1` is sent on the enqueue of a source that supports it
/// (the source account ends suspended and proxied to the target); a source
/// whose analysis says it does not is refused before anything is enqueued.
#[test]
fn live_transfer_is_sent_or_refused_by_what_the_source_says() {
    let fleet = Fleet::standard(2, 6);
    let mut sc = fleet.scenario(0.002);
    sc.remotes[1].supports_live_transfers = false;
    let w = World::start(fleet.clone(), sc);
    let y = w.fleet.plan_yaml(&w.url);
    let live = |u: &str| format!("- {{user: {u}, options: {{live_transfer: 1}}, ");
    let plan = y
        .replace("- {user: s1u02, ", &live("s1u02"))
        .replace("- {user: s2u02, ", &live("s2u02"));
    std::fs::write(&w.plan, &plan).unwrap();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("old2 (old2.example.com)"), "{err}");
    assert!(!err.contains("old1 (old1.example.com)"), "{err}");
    let enq = |w: &World| {
        w.sim()
            .requests()
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["function"] == "enqueue_transfer_item")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(enq(&w).is_empty(), "enqueued before the refusal");

    // Without the unsupported source's live account, the run goes through
    // and the supported one is moved live.
    std::fs::write(&w.plan, y.replace("- {user: s1u02, ", &live("s1u02"))).unwrap();
    let out = w.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let sent: Vec<Value> = enq(&w)
        .into_iter()
        .filter(|r| r["params"]["live_transfer"] == "1")
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["params"]["user"], "s1u02");
    let st = w.state();
    assert_eq!(
        st["remotes"]["old1.example.com"]["s1u02"]["proxied"], true,
        "{st:#}"
    );
    assert_eq!(st["remotes"]["old1.example.com"]["s1u01"]["proxied"], false);
    w.assert_exactly_once(&w.fleet.target_users());
    // The report lists the source account left proxied, and only it.
    let out = w
        .ferry(&["report", "fleet.yaml", "--html", "r.html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = std::fs::read_to_string(w.dir.path().join("r.html")).unwrap();
    let section = &page[page
        .find("<section id=\"proxied\">")
        .expect("proxied section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(
        section.contains("<span class=\"count\">1</span>"),
        "{section}"
    );
    assert!(section.contains(">s1u02</span> on old1"), "{section}");
    assert!(
        section.contains("Do not unsuspend it on the source"),
        "{section}"
    );
}

/// A live-transfer account that fails is never retried by ferry itself,
/// whatever `item_retries` allows: its source may already be suspended and
/// proxied. The failure says how to undo it; a normal account with the
/// same failure is retried.
#[test]
fn a_failed_live_transfer_is_not_retried_and_says_how_to_undo() {
    let mut fleet = Fleet::standard(1, 6);
    fleet.policy = "on_error: continue\n  item_retries: 2\n  poll_interval: 40ms".into();
    let mut sc = fleet.scenario(0.002);
    for u in ["s1u02", "s1u05"] {
        sc.faults.fail_items.insert(
            u.into(),
            ferry::sim::FailItem {
                message: "Disk quota exceeded".into(),
                times: 1,
                stage: ferry::sim::FailStage::Restore,
            },
        );
    }
    let w = World::start(fleet, sc);
    let y = std::fs::read_to_string(&w.plan).unwrap().replace(
        "- {user: s1u02, ",
        "- {user: s1u02, options: {live_transfer: 1}, ",
    );
    std::fs::write(&w.plan, y).unwrap();
    let out = w.apply(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let st = w.state();
    // the normal account was retried and made it; the live one was not
    assert_eq!(st["accounts"]["s1u05"]["restores_started"], 2, "{st:#}");
    assert_eq!(st["accounts"]["s1u05"]["present"], true);
    assert_eq!(st["accounts"]["s1u02"]["restores_started"], 1, "{st:#}");
    let ev = events(&out);
    let failed = ev
        .iter()
        .find(|e| e["event"] == "item_failed" && e["account"] == "s1u02")
        .expect("s1u02 failed");
    assert_eq!(failed["will_retry"], false, "{failed}");
    let msg = failed["message"].as_str().unwrap();
    assert!(msg.starts_with("Disk quota exceeded"), "{msg}");
    assert!(msg.contains("whmapi1 unsuspendacct user=s1u02"), "{msg}");
    let fin = ev.last().unwrap();
    assert!(
        fin["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["account"] == "s1u02"
                && f["message"]
                    .as_str()
                    .unwrap()
                    .contains("does not retry it by itself")),
        "{fin}"
    );
}
