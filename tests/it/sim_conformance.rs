//! The conformance check itself: it catches what the parameter and response
//! rules forbid (so a clean `Sim::finish` means something), and every request
//! of a whole transfer made the usual way passes it.

use serde_json::json;

use crate::kit::*;

fn rec(
    function: &str,
    method: &str,
    query: &[&str],
    body: &[&str],
    params: serde_json::Value,
) -> serde_json::Value {
    json!({"index": 0, "function": function, "method": method, "query_keys": query, "body_keys": body,
           "params": params, "auth_user": "root"})
}

#[test]
fn the_request_rules_catch_violations() {
    let rules = rules();
    let good = rec(
        "enqueue_transfer_item",
        "POST",
        &["api.version"],
        &[
            "transfer_session_id",
            "module",
            "user",
            "localuser",
            "priority",
        ],
        json!({"api.version": "1", "transfer_session_id": "x", "module": "AccountRemoteRoot", "user": "a", "localuser": "a", "priority": "5"}),
    );
    assert_eq!(request_violations(&rules, &good), Vec::<String>::new());
    let cases = [
        (
            json!({"api.version": "1", "transfer_session_id": "x", "module": "AccountRemoteRoot", "user": "a"}),
            "required parameter \"localuser\"",
        ),
        (
            json!({"api.version": "1", "transfer_session_id": "x", "module": "AccountRemoteRoot", "user": "a", "localuser": "a", "colour": "red"}),
            "unknown parameter \"colour\"",
        ),
        (
            json!({"api.version": "1", "transfer_session_id": "x", "module": "AccountRemoteRoot", "user": "a", "localuser": "a", "ip": "yes"}),
            "ip=\"yes\"",
        ),
        (
            json!({"api.version": "1", "transfer_session_id": "x", "module": "AccountRemoteRoot", "user": "a", "localuser": "a", "priority": "300"}),
            "out of range",
        ),
        (
            json!({"api.version": "1", "transfer_session_id": "x", "module": "AccountRemoteRoot", "user": "a", "localuser": "b", "skipaccount": "1"}),
            "skipaccount requires",
        ),
        (
            json!({"api.version": "1", "transfer_session_id": "x", "module": "PackageRemoteRoot", "package": "p", "priority": "1"}),
            "unknown parameter \"priority\"",
        ),
    ];
    for (params, needle) in cases {
        let keys: Vec<&str> = params
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let r = rec(
            "enqueue_transfer_item",
            "POST",
            &["api.version"],
            &keys,
            params.clone(),
        );
        let v = request_violations(&rules, &r);
        assert!(v.iter().any(|m| m.contains(needle)), "{needle}: {v:?}");
    }
    // enqueue needs a form body; the version goes in the query; auth is required
    let get = rec(
        "enqueue_transfer_item",
        "GET",
        &[
            "api.version",
            "transfer_session_id",
            "module",
            "user",
            "localuser",
        ],
        &[],
        json!({"api.version": "1", "transfer_session_id": "x", "module": "AccountRemoteRoot", "user": "a", "localuser": "a"}),
    );
    assert!(
        request_violations(&rules, &get)
            .iter()
            .any(|m| m.contains("form-urlencoded body"))
    );
    let mut anon = rec(
        "get_transfer_session_state",
        "GET",
        &["transfer_session_id"],
        &[],
        json!({"transfer_session_id": "x"}),
    );
    anon["auth_user"] = serde_json::Value::Null;
    let v = request_violations(&rules, &anon);
    assert!(
        v.iter().any(|m| m.contains("api.version"))
            && v.iter().any(|m| m.contains("Authorization")),
        "{v:?}"
    );
    let create = rec(
        "create_remote_root_transfer_session",
        "POST",
        &["api.version"],
        &["host"],
        json!({"api.version": "1", "host": "h"}),
    );
    let v = request_violations(&rules, &create);
    assert!(
        v.iter().any(|m| m.contains("\"transfer_threads\" missing")),
        "{v:?}"
    );
}

#[test]
fn the_response_rules_catch_violations() {
    let ok_state = json!({"metadata": {"command": "get_transfer_session_state", "version": 1, "result": 1, "reason": "OK"}, "data": {"state_name": "RUNNING"}});
    assert!(response_violations("get_transfer_session_state", &ok_state).is_empty());
    let bad_state = json!({"metadata": {"command": "get_transfer_session_state", "version": 1, "result": 1, "reason": "OK"}, "data": {"state_name": "BUSY"}});
    assert!(!response_violations("get_transfer_session_state", &bad_state).is_empty());
    let wrong_command =
        json!({"metadata": {"command": "other", "version": 1, "result": 0, "reason": "x"}});
    assert!(!response_violations("start_transfer_session", &wrong_command).is_empty());
    let failure_with_data = json!({"metadata": {"command": "start_transfer_session", "version": 1, "result": 0, "reason": "x"}, "data": {"pid": 1}});
    assert!(!response_violations("start_transfer_session", &failure_with_data).is_empty());
    let bad_log = json!({"metadata": {"command": "fetch_transfer_session_log", "version": 1, "result": 1, "reason": "OK"}, "data": {"log": "not json\n"}});
    assert!(!response_violations("fetch_transfer_session_log", &bad_log).is_empty());
    let short_id = json!({"metadata": {"command": "create_remote_user_transfer_session", "version": 1, "result": 1, "reason": "OK"}, "data": {"transfer_session_id": "abc"}});
    assert!(!response_violations("create_remote_user_transfer_session", &short_id).is_empty());
}

/// A whole transfer through every function; `finish` checks each request
/// and answer against the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_transfer_conforms() {
    let sim = Sim::start(scenario(4, 10_000_000)).await;
    let w = &sim.whm;
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
    assert!(ok(&c));
    let v = w.get("validate_system_user", &[("user", "u000")]).await;
    assert_eq!(v["data"]["exists"], 0);
    let id = w.session((2, 2)).await;
    w.call(
        "analyze_transfer_session_remote",
        &[("transfer_session_id", &id)],
    )
    .await;
    w.get(
        "retrieve_transfer_session_remote_analysis",
        &[("transfer_session_id", &id)],
    )
    .await;
    w.get("available_transfer_modules", &[]).await;
    w.get("transfer_module_schema", &[("module", "PackageRemoteRoot")])
        .await;
    w.enqueue(&id, "PackageRemoteRoot", &[("package", "pkg1")])
        .await;
    w.enqueue_account(
        &id,
        "u000",
        &[("priority", "1"), ("skiphomedir", "0"), ("ip", "0")],
    )
    .await;
    w.enqueue_account(
        &id,
        "u001",
        &[
            ("prerequisite_user", "u000"),
            ("domain", "u001.example.com"),
        ],
    )
    .await;
    w.enqueue_account(&id, "u002", &[("localuser", "u002b")])
        .await;
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], std::time::Duration::from_secs(20))
        .await;
    for f in [
        "master.log",
        "master.error_log",
        "item-TRANSFER_AccountRemoteRoot_u000",
        "item-RESTORE_PackageRemoteRoot_pkg1",
    ] {
        assert!(ok(&w.log(&id, f).await), "{f}");
    }
    let l = w
        .get(
            "listaccts",
            &[
                ("searchtype", "user"),
                ("search", "u002b"),
                ("searchmethod", "exact"),
            ],
        )
        .await;
    assert_eq!(l["data"]["acct"][0]["user"], "u002b");
    assert!(w.violations.lock().unwrap().is_empty());
    sim.finish().await;
}
