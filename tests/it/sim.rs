//! whm-sim over real HTTP: every function, auth, refusal texts, ordering,
//! prerequisites, logs, owners and duplicates (issue 3).

use std::time::Duration;

use ferry::sim::{ExistingAccount, FailItem, Scenario, Size};
use serde_json::Value;

use crate::kit::*;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_answers_in_whm_s_envelope() {
    let mut sc = scenario(3, 50_000_000);
    sc.remotes[0].accounts[0].password = Some("userpw".into());
    sc.target.existing_accounts = vec![ExistingAccount::Name("taken".into())];
    let sim = Sim::start(sc).await;
    let w = &sim.whm;

    let mods = w.get("available_transfer_modules", &[]).await;
    assert_eq!(mods["data"]["modules"]["AccountRemoteRoot"], "3000");
    assert_eq!(mods["data"]["modules"]["PackageRemoteRoot"], "2000");
    for m in [
        "AccountRemoteRoot",
        "AccountRemoteUser",
        "PackageRemoteRoot",
        "FeatureListRemoteRoot",
        "AccountLocal",
        "LegacyAccountBackup",
    ] {
        let s = w.get("transfer_module_schema", &[("module", m)]).await;
        assert!(ok(&s), "{m}: {s:#}");
    }
    let s = w
        .get("transfer_module_schema", &[("module", "AccountRemoteRoot")])
        .await;
    assert_eq!(s["data"]["schema"]["primary"][0], "user");
    assert!(s["data"]["schema"]["keys"]["prerequisite_user"].is_object());

    let v = w.get("validate_system_user", &[("user", "taken")]).await;
    assert_eq!(
        (
            v["data"]["exists"].clone(),
            v["data"]["valid_for_new"].clone()
        ),
        (1.into(), 1.into())
    );
    let v = w.get("validate_system_user", &[("user", "u000")]).await;
    assert_eq!(v["data"]["exists"], 0);
    let v = w.get("validate_system_user", &[("user", "root")]).await;
    assert_eq!(v["data"]["reserved"], 1);

    let c = w
        .get(
            "remote_basic_credential_check",
            &[
                ("host", "old1.example.com"),
                ("user", "root"),
                ("password", "pw1"),
            ],
        )
        .await;
    assert!(ok(&c), "{c:#}");
    let c = w
        .get(
            "remote_basic_credential_check",
            &[
                ("host", "old1.example.com"),
                ("user", "root"),
                ("password", "nope"),
            ],
        )
        .await;
    assert!(!ok(&c));
    assert!(
        c["data"]["output"].is_string(),
        "data comes back even on failure: {c:#}"
    );

    let id = w.session((2, 2)).await;
    assert!(id.starts_with("old1examplecocopya"), "{id}");
    assert_eq!(id.len(), 36);
    assert!(ok(&w
        .call(
            "analyze_transfer_session_remote",
            &[("transfer_session_id", &id)]
        )
        .await));
    let a = w
        .get(
            "retrieve_transfer_session_remote_analysis",
            &[("transfer_session_id", &id)],
        )
        .await;
    assert_eq!(a["data"]["items"]["accounts"].as_array().unwrap().len(), 3);
    assert_eq!(a["data"]["items"]["packages"][0]["name"], "pkg1");
    assert_eq!(a["data"]["local"]["users"]["taken"], 1);

    assert!(ok(&w
        .enqueue(&id, "PackageRemoteRoot", &[("package", "pkg1")])
        .await));
    for u in ["u000", "u001", "u002"] {
        assert!(ok(&w.enqueue_account(&id, u, &[]).await));
    }
    let st = w.start(&id).await;
    assert!(st["data"]["pid"].as_u64().unwrap() > 1);
    sim.wait_state(&id, &["COMPLETED"], T).await;

    let log = w.master_log(&id).await;
    let mut res = results(&log);
    res.sort();
    assert_eq!(
        res,
        [
            ("pkg1", "success-item"),
            ("u000", "success-item"),
            ("u001", "success-item"),
            ("u002", "success-item")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(log.last().unwrap()["action"], "complete");
    assert_eq!(log.last().unwrap()["child_number"], 0);
    assert!(ok(&w.log(&id, "master.error_log").await));
    let item = w.log(&id, "item-RESTORE_AccountRemoteRoot_u001").await;
    assert!(
        item["data"]["log"].as_str().unwrap().contains("Done"),
        "{item:#}"
    );

    let l = w.get("listaccts", &[]).await;
    let users: Vec<&str> = l["data"]["acct"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["taken", "u000", "u001", "u002"]);
    let l = w
        .get(
            "listaccts",
            &[("search", "u00[12]"), ("searchtype", "user")],
        )
        .await;
    assert_eq!(l["data"]["acct"].as_array().unwrap().len(), 2);
    let l = w
        .get(
            "listaccts",
            &[
                ("search", "u001"),
                ("searchtype", "user"),
                ("searchmethod", "exact"),
                ("want", "user,plan"),
            ],
        )
        .await;
    assert_eq!(
        l["data"]["acct"][0],
        serde_json::json!({"user": "u001", "plan": "pkg1"})
    );

    // a user session moves one account as its owner
    let us = w
        .call(
            "create_remote_user_transfer_session",
            &[
                ("host", "old1.example.com"),
                ("password", "userpw"),
                ("unrestricted_restore", "1"),
            ],
        )
        .await;
    let uid = us["data"]["transfer_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(uid.starts_with("old1exampleconoroo"), "{uid}");
    let e = w
        .enqueue(
            &uid,
            "AccountRemoteUser",
            &[("user", "u000"), ("localuser", "u000b")],
        )
        .await;
    assert!(ok(&e), "{e:#}");
    assert!(ok(&w.start(&uid).await));
    sim.wait_state(&uid, &["COMPLETED"], T).await;
    assert_eq!(sim.state()["accounts"]["u000b"]["present"], true);
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refusals_never_run_the_function() {
    let sim = Sim::start(scenario(1, 1_000_000)).await;
    let url = sim.whm.url(
        "create_remote_root_transfer_session",
        &[
            ("host", "old1.example.com"),
            ("user", "root"),
            ("password", "pw1"),
        ],
    );
    let bad_headers: [Option<&str>; 5] = [
        None,
        Some("whm root:wrong"),
        Some("whm nobody:s3cret"),
        Some("Basic cm9vdDpzM2NyZXQ="),
        Some("whm root"),
    ];
    for h in bad_headers {
        let mut r = sim
            .whm
            .client
            .get(&url)
            .header("X-Whm-Sim-Tag", "nonconformant");
        if let Some(h) = h {
            r = r.header("Authorization", h);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{h:?}");
        assert_eq!(resp.text().await.unwrap(), "Access denied\n");
    }
    let st = sim.state();
    assert!(
        st["sessions"].as_array().unwrap().is_empty(),
        "nothing ran: {st:#}"
    );
    let reqs = sim.whm.inspect("requests").await;
    assert_eq!(reqs.as_array().unwrap().len(), 5);
    assert!(
        reqs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == 401 && r["result"].is_null())
    );
    // secrets never reach the request log
    assert_eq!(reqs[0]["params"]["password"], "[redacted]");
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_texts_are_whm_s() {
    let mut sc = scenario(2, 1_000_000);
    sc.hostname = "target.example.net".into();
    sc.tokens.push(ferry::sim::TokenSpec {
        user: "resell1".into(),
        token: "r3s".into(),
    });
    let mut failing = ferry::sim::RemoteSpec::new("old2.example.com");
    failing.analysis_error = Some("The remote server did not answer the analysis.".into());
    sc.remotes.push(failing);
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let r = |v: Value| without_xid(&reason(&v));

    // create_remote_root_transfer_session, in the order the server checks
    let base = [("user", "root"), ("password", "pw1")];
    let mut p = base.to_vec();
    p.extend([("host", "old1.example.com"), ("comm_transport", "rsh")]);
    assert_eq!(
        r(w.misuse("create_remote_root_transfer_session", &p).await),
        "Invalid “comm_transport” (rsh)."
    );
    assert_eq!(
        r(w.misuse("create_remote_root_transfer_session", &base).await),
        "You must specify a source host."
    );
    let mut p = base.to_vec();
    p.push(("host", "nowhere.example.com"));
    assert_eq!(
        r(w.misuse("create_remote_root_transfer_session", &p).await),
        "The system was unable to resolve the host, “nowhere.example.com”, to an IP address."
    );
    let mut p = base.to_vec();
    p.push(("host", "127.0.0.1"));
    assert_eq!(
        r(w.misuse("create_remote_root_transfer_session", &p).await),
        "“127.0.0.1” resolves to the local server. Provide a remote hostname or [IP] address instead."
    );
    let bad = w
        .misuse(
            "create_remote_root_transfer_session",
            &[
                ("host", "old1.example.com"),
                ("user", "root"),
                ("password", "nope"),
            ],
        )
        .await;
    assert!(
        r(bad.clone()).starts_with("The remote basic credential check failed due to an error ("),
        "{bad:#}"
    );
    assert!(
        bad["metadata"]["output"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("ssh transport failed (")
    );
    assert!(
        sim.state()["sessions"].as_array().unwrap().is_empty(),
        "no session for refused creates"
    );

    let u = w
        .misuse("create_remote_user_transfer_session", &[("password", "x")])
        .await;
    assert_eq!(r(u), "You must specify a “host” argument.");
    let u = w
        .misuse(
            "create_remote_user_transfer_session",
            &[("host", "old1.example.com")],
        )
        .await;
    assert_eq!(r(u), "You must specify a “password” argument.");

    // enqueue_transfer_item, in the order the server checks
    let id = w.session((1, 1)).await;
    let e = w
        .misuse("enqueue_transfer_item", &[("transfer_session_id", &id)])
        .await;
    assert!(reason(&e).starts_with("API failure: (XID "), "{e:#}");
    assert_eq!(
        r(e),
        "API failure: Provide the “module” parameter for the “Whostmgr::API::1::Transfers::enqueue_transfer_item” function."
    );
    let e = w
        .misuse(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", &id),
                ("module", "Nope"),
                ("user", "a"),
            ],
        )
        .await;
    assert_eq!(r(e), "The transfer session module “Nope” does not exist.");
    let e = w
        .misuse(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", "bad-id!"),
                ("module", "AccountRemoteRoot"),
            ],
        )
        .await;
    assert_eq!(
        r(e),
        "The session ID “bad-id!” may only contain alphanumeric characters and underscores."
    );
    let e = w
        .misuse(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", "nosuchsession"),
                ("module", "AccountRemoteRoot"),
            ],
        )
        .await;
    assert_eq!(
        r(e),
        "The system failed to connect to the “SQLite” database “/var/cpanel/transfer_sessions/nosuchsession/db.sqlite” because of an error: unable to open database file"
    );
    let e = w
        .misuse(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", &id),
                ("module", "AccountRemoteUser"),
                ("user", "u000"),
                ("localuser", "u000"),
            ],
        )
        .await;
    assert!(r(e).starts_with(
        "API failure: Root-authenticated transfer sessions cannot enqueue items of this type."
    ));
    let e = w
        .misuse(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", &id),
                ("module", "AccountRemoteRoot"),
                ("user", "u000"),
            ],
        )
        .await;
    assert_eq!(
        r(e),
        "The “localuser” parameter is required for the “AccountRemoteRoot” module."
    );
    let e = w
        .misuse(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", &id),
                ("module", "AccountRemoteRoot"),
                ("user", "u000"),
                ("localuser", "u000"),
                ("colour", "red"),
            ],
        )
        .await;
    assert_eq!(
        r(e),
        "The “colour” parameter is not valid for the “AccountRemoteRoot” module."
    );
    let e = w
        .misuse(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", &id),
                ("module", "PackageRemoteRoot"),
                ("package", "pkg1"),
                ("priority", "1"),
            ],
        )
        .await;
    assert_eq!(
        r(e),
        "The “priority” parameter is not valid for the “PackageRemoteRoot” module."
    );
    assert!(ok(&w.enqueue_account(&id, "u000", &[]).await));
    let dup = w
        .enqueue_account(&id, "u000", &[("localuser", "other")])
        .await;
    assert!(reason(&dup).starts_with("(XID "), "{dup:#}");
    assert_eq!(
        r(dup),
        "An item with a “user” key value of “u000” and a type of “AccountRemoteRoot” already exists in the queue."
    );
    // the same key in another session is accepted: that is how duplicates happen
    let id2 = w.session((1, 1)).await;
    assert!(ok(&w.enqueue_account(&id2, "u000", &[]).await));

    // session functions on unknown ids
    let s = w
        .misuse(
            "start_transfer_session",
            &[("transfer_session_id", "nosuchsession")],
        )
        .await;
    assert!(r(s).starts_with("The system failed to start the transfer session “nosuchsession” because of an error: The system failed to connect to the “SQLite” database"));
    let g = w
        .misuse(
            "get_transfer_session_state",
            &[("transfer_session_id", "nosuchsession")],
        )
        .await;
    assert!(r(g).starts_with("The system failed to connect to the “SQLite” database"));
    let g = w.misuse("get_transfer_session_state", &[]).await;
    assert_eq!(
        r(g),
        "The “id” or “create” parameter is required to create a session object."
    );
    let f = w
        .misuse(
            "fetch_transfer_session_log",
            &[("transfer_session_id", &id)],
        )
        .await;
    assert_eq!(
        r(f),
        "API failure: Provide the “logfile” parameter for the “Whostmgr::API::1::Transfers::fetch_transfer_session_log” function."
    );
    // a PENDING session has no master.log yet
    let f = w.log(&id, "master.log").await;
    assert_eq!(
        r(f),
        format!(
            "API failure: The system failed to locate either the file “/var/cpanel/transfer_sessions/{id}/.master.log” or the file “/var/cpanel/transfer_sessions/{id}/master.log”."
        )
    );
    let m = w
        .misuse("transfer_module_schema", &[("module", "Nope")])
        .await;
    assert_eq!(r(m), "The transfer session module “Nope” does not exist.");

    // a non-root token: no root-only module, no access to root's sessions
    let reseller = Whm::new(&w.base, None, Some("whm resell1:r3s".into()));
    let e = reseller
        .misuse(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", &id),
                ("module", "AccountRemoteRoot"),
                ("user", "u001"),
                ("localuser", "u001"),
            ],
        )
        .await;
    assert_eq!(
        r(e),
        "The transfer session module “AccountRemoteRoot” can not be enqueued as a non-root user."
    );
    let g = reseller
        .misuse(
            "get_transfer_session_state",
            &[("transfer_session_id", &id)],
        )
        .await;
    assert_eq!(r(g), format!("Access Denied to the session: {id}"));

    let u = w.misuse("no_such_function", &[]).await;
    assert_eq!(
        r(u),
        "Unknown app (“no_such_function”) requested for this version (1) of the API."
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_version_other_than_1_is_not_served() {
    let sim = Sim::start(scenario(1, 1_000_000)).await;
    let resp = sim
        .whm
        .client
        .get(format!("{}/json-api/listaccts", sim.whm.base))
        .header("Authorization", format!("whm root:{TOKEN}"))
        .header("X-Whm-Sim-Tag", "nonconformant")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["metadata"]["result"], 0);
    assert_eq!(
        v["metadata"]["reason"],
        "Unknown app (“listaccts”) requested for this version (0) of the API."
    );
    sim.finish().await;
}

/// Module barrier, then `priority`, then key; one thread makes the order visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_run_by_module_then_priority_then_key() {
    let sim = Sim::start(scenario(5, 1_000_000)).await;
    let w = &sim.whm;
    let id = w.session((1, 1)).await;
    // enqueued in a scrambled order; the package last
    w.enqueue_account(&id, "u003", &[]).await;
    w.enqueue_account(&id, "u001", &[("priority", "10")]).await;
    // 0 is outside the documented 1..255 but the server reads it as 255
    let z = [
        ("transfer_session_id", id.as_str()),
        ("module", "AccountRemoteRoot"),
        ("user", "u004"),
        ("localuser", "u004"),
        ("priority", "0"),
    ];
    assert!(ok(&w.misuse("enqueue_transfer_item", &z).await));
    w.enqueue_account(&id, "u000", &[]).await;
    w.enqueue_account(&id, "u002", &[("priority", "10")]).await;
    w.enqueue(&id, "PackageRemoteRoot", &[("package", "pkg1")])
        .await;
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], T).await;
    let log = w.master_log(&id).await;
    let order = |q: &str| -> Vec<String> {
        log.iter()
            .filter(|c| c["action"] == "start-item" && c["queue"] == q)
            .map(|c| c["item"].as_str().unwrap().to_string())
            .collect()
    };
    let want = ["pkg1", "u001", "u002", "u000", "u003", "u004"];
    assert_eq!(order("TRANSFER"), want);
    assert_eq!(order("RESTORE"), want);
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prerequisite_user_waits_and_a_failed_prerequisite_releases() {
    let mut sc = scenario(3, 1_000_000);
    sc.faults.fail_items.insert(
        "u001".into(),
        FailItem {
            message: "Disk quota exceeded".into(),
            times: 1,
            stage: ferry::sim::FailStage::Transfer,
        },
    );
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let id = w.session((3, 3)).await;
    // u000 waits for u002 although its key sorts first and threads are free
    w.enqueue_account(&id, "u000", &[("prerequisite_user", "u002")])
        .await;
    w.enqueue_account(&id, "u002", &[]).await;
    // u001 fails its transfer; its dependent still runs
    w.enqueue_account(&id, "u001", &[]).await;
    w.enqueue_account(&id, "u003x", &[("prerequisite_user", "u001")])
        .await;
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], T).await;
    let log = w.master_log(&id).await;
    let pos = |action: &str, q: &str, item: &str| {
        log.iter()
            .position(|c| c["action"] == action && c["queue"] == q && c["item"] == item)
            .unwrap_or_else(|| panic!("{action} {q} {item} missing"))
    };
    // TRANSFER of u000 starts only after u002 left TRANSFER_INPROGRESS,
    // RESTORE of u000 only after u002's restore finished
    assert!(pos("start-item", "TRANSFER", "u000") > pos("success-item", "TRANSFER", "u002"));
    assert!(pos("start-item", "RESTORE", "u000") > pos("success-item", "RESTORE", "u002"));
    assert!(pos("start-item", "TRANSFER", "u003x") > pos("failed-item", "TRANSFER", "u001"));
    let st = sim.state();
    assert_eq!(st["accounts"]["u000"]["present"], true);
    assert_eq!(st["accounts"]["u001"]["present"], false);
    // u003x is not on the remote: its transfer fails, but it ran
    assert_eq!(st["sessions"][0]["items"][3]["state"], "FAILED");
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_prerequisite_blocks_the_session_forever() {
    let sim = Sim::start(scenario(2, 1_000_000)).await;
    let w = &sim.whm;
    let id = w.session((2, 2)).await;
    w.enqueue_account(&id, "u000", &[]).await;
    w.enqueue_account(&id, "u001", &[("prerequisite_user", "ghost")])
        .await;
    w.start(&id).await;
    let st = sim
        .wait_until("u000 restored", T, |s| {
            s["accounts"]["u000"]["present"] == true
        })
        .await;
    assert_eq!(st["sessions"][0]["items"][1]["state"], "TRANSFER_PENDING");
    // an hour of simulated time later (3.6 s real) it still runs
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(w.state_name(&id).await, "RUNNING");
    assert_eq!(
        sim.state()["sessions"][0]["items"][1]["state"],
        "TRANSFER_PENDING"
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_items_leave_the_session_completed_and_fail_n_times() {
    let mut sc = scenario(3, 1_000_000);
    sc.faults.fail_items.insert(
        "u001".into(),
        FailItem {
            message: "Disk quota exceeded".into(),
            times: 2,
            stage: Default::default(),
        },
    );
    sc.remotes[0].accounts[2].warnings = vec!["The IP address changed.".into()];
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    for attempt in 1..=3 {
        let id = w.session((2, 2)).await;
        w.enqueue_account(&id, "u001", &[]).await;
        w.start(&id).await;
        assert_eq!(
            sim.wait_state(&id, &["COMPLETED", "FAILED"], T).await,
            "COMPLETED"
        );
        let log = w.master_log(&id).await;
        let last = log
            .iter()
            .rfind(|c| c["queue"] == "RESTORE" && c["item"] == "u001")
            .unwrap();
        if attempt <= 2 {
            assert_eq!(last["action"], "failed-item");
            assert_eq!(last["msg"]["failure"], "Disk quota exceeded");
        } else {
            assert_eq!(last["action"], "success-item");
        }
    }
    let a = &sim.state()["accounts"]["u001"];
    assert_eq!(
        (
            a["restores_started"].clone(),
            a["restores_failed"].clone(),
            a["restores_completed"].clone()
        ),
        (3.into(), 2.into(), 1.into())
    );
    // warnings make the RESTORE line a warning-item
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "u002", &[]).await;
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], T).await;
    let log = w.master_log(&id).await;
    assert_eq!(
        results(&log),
        [("u002".to_string(), "warning-item".to_string())]
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_present_on_the_target_fails_at_transfer_time() {
    let mut sc = scenario(2, 1_000_000);
    sc.target.existing_accounts = vec![ExistingAccount::Name("u000".into())];
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "u000", &[]).await;
    w.enqueue_account(&id, "u001", &[("localuser", "u000")])
        .await; // renamed onto a taken name
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], T).await;
    let log = w.master_log(&id).await;
    let fails: Vec<&Value> = log
        .iter()
        .filter(|c| c["action"] == "failed-item")
        .collect();
    // each TRANSFER failure also writes the synthetic RESTORE pair
    assert_eq!(fails.len(), 4);
    assert!(
        fails
            .iter()
            .all(|c| c["msg"]["failure"] == "A user named “u000” already exists on this server.")
    );
    let a = &sim.state()["accounts"]["u000"];
    assert_eq!(a["restores_started"], 0, "{a:#}");
    assert_eq!(a["transfers_started"], 2);
    sim.finish().await;
}

/// The same account in two sessions is not refused by WHM: the oracle shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_transfers_across_sessions_are_visible() {
    let sim = Sim::start(scenario(1, 100_000_000)).await;
    let w = &sim.whm;
    let a = w.session((1, 1)).await;
    let b = w.session((1, 1)).await;
    w.enqueue_account(&a, "u000", &[]).await;
    w.enqueue_account(&b, "u000", &[]).await;
    w.start(&a).await;
    w.start(&b).await;
    sim.wait_state(&a, &["COMPLETED"], T).await;
    sim.wait_state(&b, &["COMPLETED"], T).await;
    let acc = &sim.state()["accounts"]["u000"];
    assert_eq!(acc["restores_started"], 2, "{acc:#}");
    assert_eq!(acc["restores_completed"], 1);
    assert_eq!(acc["restores_failed"], 1);
    let lb = w.master_log(&b).await;
    let f = lb
        .iter()
        .find(|c| c["action"] == "failed-item")
        .expect("the second restore fails");
    assert_eq!(
        f["msg"]["failure"],
        "Another process claims to be restoring u000."
    );
    // a third, later session is refused at transfer time and restores nothing
    let c = w.session((1, 1)).await;
    w.enqueue_account(&c, "u000", &[]).await;
    w.start(&c).await;
    sim.wait_state(&c, &["COMPLETED"], T).await;
    let acc = &sim.state()["accounts"]["u000"];
    assert_eq!(
        (
            acc["restores_started"].clone(),
            acc["transfers_started"].clone()
        ),
        (2.into(), 3.into())
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_kept_only_when_the_reseller_exists() {
    let mut sc = scenario(0, 0);
    let acct = |u: &str, owner: &str| {
        let mut a = ferry::sim::AccountSpec::new(u);
        a.owner = owner.into();
        a.size = Size(1_000_000);
        a
    };
    sc.remotes[0].accounts = vec![
        acct("resell1", "root"),
        acct("shop", "resell1"),
        acct("blog", "resell2"),
    ];
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "resell1", &[]).await;
    w.enqueue_account(&id, "shop", &[("prerequisite_user", "resell1")])
        .await;
    w.enqueue_account(&id, "blog", &[]).await;
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], T).await;
    let st = sim.state();
    assert_eq!(st["accounts"]["shop"]["owner"], "resell1");
    assert_eq!(st["accounts"]["blog"]["owner"], "root");
    let l = w
        .get(
            "listaccts",
            &[
                ("search", "resell1"),
                ("searchtype", "owner"),
                ("searchmethod", "exact"),
            ],
        )
        .await;
    assert_eq!(l["data"]["acct"][0]["user"], "shop");
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_logs_are_dot_named_and_log_blocking_waits_for_completion() {
    for blocking in [false, true] {
        let mut sc = scenario(1, 200_000_000); // 4 s transfer + 8 s restore
        sc.time_scale = 0.05; // 600 ms real
        sc.faults.log_blocking = blocking;
        let sim = Sim::start(sc).await;
        let w = &sim.whm;
        let id = w.session((1, 1)).await;
        w.enqueue_account(&id, "u000", &[]).await;
        w.start(&id).await;
        let st = sim.state();
        assert_eq!(st["sessions"][0]["state"], "RUNNING");
        let logs = st["sessions"][0]["logs"].as_array().unwrap();
        assert!(logs.contains(&".master.log".into()), "{logs:?}");
        let v = w.log(&id, "master.log").await;
        let text = v["data"]["log"].as_str().unwrap();
        let st = sim.state();
        let master_done = text.lines().any(|l| {
            let c = &serde_json::from_str::<Value>(l).unwrap()["contents"];
            c["action"] == "complete" && c["child_number"] == 0
        });
        // blocking: the answer came only once the log was complete
        assert_eq!(master_done, blocking, "{text}");
        if blocking {
            assert_eq!(st["sessions"][0]["state"], "COMPLETED");
        }
        sim.wait_state(&id, &["COMPLETED"], T).await;
        let logs = sim.state()["sessions"][0]["logs"].clone();
        assert!(
            logs.as_array().unwrap().contains(&"master.log".into()),
            "{logs}"
        );
        sim.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_session_completes_at_once() {
    let sim = Sim::start(scenario(0, 0)).await;
    let id = sim.whm.session((4, 4)).await;
    sim.whm.start(&id).await;
    assert_eq!(sim.wait_state(&id, &["COMPLETED"], T).await, "COMPLETED");
    let actions: Vec<Value> = sim
        .whm
        .master_log(&id)
        .await
        .into_iter()
        .map(|c| c["action"].clone())
        .collect();
    assert_eq!(
        actions,
        ["start", "initiator", "version", "remotehost", "complete"]
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_files_round_trip_and_defaults_follow_the_design() {
    let s = Scenario::default();
    assert_eq!(s.target.max_restores, 4);
    assert_eq!(s.target.restore_rate, Size(25_000_000));
    assert_eq!(
        ferry::sim::RemoteSpec::new("h").transfer_rate,
        Size(50_000_000)
    );
    assert_eq!(ferry::sim::AccountSpec::new("a").size, Size(50_000_000));
    let r = Scenario::rehearsal(
        "t.example",
        "root",
        "tok",
        vec![ferry::sim::RemoteSpec::new("old1")],
    );
    assert_eq!(Scenario::from_yaml(&r.to_yaml()).unwrap(), r);
}

#[test]
fn the_readme_scenario_parses() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme
        .find("### Scenario")
        .expect("README has the scenario section")..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").unwrap()];
    let sc = Scenario::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.faults.seed, 7);
    assert_eq!(sc.target.existing_accounts.len(), 2);
}

fn count_items(st: &Value, state: &str) -> usize {
    st["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["items"].as_array().unwrap().iter())
        .filter(|i| i["state"] == state)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_clamped_and_restores_share_the_target_s_slots() {
    // 12 accounts of 1 TB: nothing finishes during the test
    let sim = Sim::start(scenario(12, 1_000_000_000_000)).await;
    let w = &sim.whm;
    let id = w.session((20, 20)).await;
    for i in 0..12 {
        w.enqueue_account(&id, &format!("u{i:03}"), &[]).await;
    }
    w.start(&id).await;
    assert_eq!(
        count_items(&sim.state(), "TRANSFER_INPROGRESS"),
        9,
        "clamped to 9 workers"
    );
    // two items, five threads: two workers per queue
    let id2 = w.session((5, 5)).await;
    w.enqueue(&id2, "PackageRemoteRoot", &[("package", "pkg1")])
        .await;
    w.enqueue(&id2, "FeatureListRemoteRoot", &[("featurelist", "default")])
        .await;
    w.start(&id2).await;
    sim.wait_state(&id2, &["COMPLETED"], T).await;
    let log = w.master_log(&id2).await;
    let children: std::collections::BTreeSet<(String, u64)> = log
        .iter()
        .filter(|c| c["child_number"].as_u64() > Some(0))
        .map(|c| {
            (
                c["queue"].as_str().unwrap().to_string(),
                c["child_number"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(children.len(), 4, "{children:?}");
    sim.finish().await;

    // max_restores across sessions: 3 sessions × 2 restore threads, 3 slots
    let mut sc = scenario(12, 400_000_000); // 8 s transfer, 16 s restore
    sc.target.max_restores = 3;
    sc.time_scale = 0.002;
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let mut ids = Vec::new();
    for s in 0..3 {
        let id = w.session((2, 2)).await;
        for i in (s..12).step_by(3) {
            w.enqueue_account(&id, &format!("u{i:03}"), &[]).await;
        }
        ids.push(id);
    }
    for id in &ids {
        w.start(id).await;
    }
    let mut peak = 0;
    loop {
        let st = sim.state();
        peak = peak.max(count_items(&st, "RESTORE_INPROGRESS"));
        assert!(peak <= 3, "at most max_restores restores at once");
        if st["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "COMPLETED")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(peak, 3);
    sim.finish().await;
}
