//! whm-sim over real HTTP, the functions and behaviours added for the
//! upcoming features: the root name/value store (`nvset`/`nvget`).

use serde_json::{Value, json};

use crate::kit::*;

/// A second token, for a reseller.
fn with_reseller(mut sc: ferry::sim::Scenario) -> ferry::sim::Scenario {
    sc.tokens.push(ferry::sim::TokenSpec {
        user: "resell1".into(),
        token: "r3s".into(),
    });
    sc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nvset_and_nvget_keep_pairs_per_store() {
    let sim = Sim::start(with_reseller(scenario(0, 0))).await;
    let w = &sim.whm;

    // a missing key (and a missing store) reads as [null]
    let g = w.get("nvget", &[("key", "ferry.run")]).await;
    assert!(ok(&g), "{g:#}");
    assert_eq!(
        g["data"],
        json!({"nvdatum": {"key": "ferry.run", "value": [null]}})
    );

    // keyN/valueN pairs with any suffix, `key`+`value` too
    let s = w
        .call(
            "nvset",
            &[
                ("key1", "ferry.run"),
                ("value1", "r-42"),
                ("keyx", "ferry.batch"),
                ("valuex", "3"),
                ("key", "plain"),
                ("value", "v"),
            ],
        )
        .await;
    assert!(ok(&s), "{s:#}");
    let mut set: Vec<(String, String)> = s["data"]["nvdatum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    set.sort();
    assert_eq!(
        set,
        [("ferry.batch", "3"), ("ferry.run", "r-42"), ("plain", "v")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    let g = w.get("nvget", &[("key", "ferry.run")]).await;
    assert_eq!(g["data"]["nvdatum"]["value"], json!(["r-42"]));

    // a named store is another store; slashes are stripped from its name
    w.call(
        "nvset",
        &[
            ("store", "fer/ry"),
            ("key1", "ferry.run"),
            ("value1", "r-7"),
        ],
    )
    .await;
    let g = w
        .get("nvget", &[("key", "ferry.run"), ("store", "ferry")])
        .await;
    assert_eq!(g["data"]["nvdatum"]["value"], json!(["r-7"]));
    let g = w.get("nvget", &[("key", "ferry.run")]).await;
    assert_eq!(g["data"]["nvdatum"]["value"], json!(["r-42"]));

    // key names are cut to 128 characters, values to 2048
    let long_key = "k".repeat(200);
    let long_value = "v".repeat(3000);
    let s = w
        .call("nvset", &[("key1", &long_key), ("value1", &long_value)])
        .await;
    assert_eq!(
        s["data"]["nvdatum"][0]["key"].as_str().unwrap().len(),
        128,
        "{s:#}"
    );
    assert_eq!(
        s["data"]["nvdatum"][0]["value"].as_str().unwrap().len(),
        2048
    );
    let g = w.get("nvget", &[("key", &long_key)]).await;
    assert_eq!(g["data"]["nvdatum"]["key"], "k".repeat(128));
    assert_eq!(g["data"]["nvdatum"]["value"][0], "v".repeat(2048));

    // a reseller's `store` is ignored: it writes and reads its own store
    let r = Whm::new(&w.base, None, Some("whm resell1:r3s".into()));
    let s = r
        .call(
            "nvset",
            &[
                ("store", "ferry"),
                ("key1", "ferry.run"),
                ("value1", "mine"),
            ],
        )
        .await;
    assert!(ok(&s), "{s:#}");
    let g = r
        .get("nvget", &[("key", "ferry.run"), ("store", "ferry")])
        .await;
    assert_eq!(g["data"]["nvdatum"]["value"], json!(["mine"]));
    let g = w
        .get("nvget", &[("key", "ferry.run"), ("store", "ferry")])
        .await;
    assert_eq!(
        g["data"]["nvdatum"]["value"],
        json!(["r-7"]),
        "root's store untouched"
    );

    let st = sim.state();
    assert_eq!(st["nvdata"][""]["ferry.run"], "r-42");
    assert_eq!(st["nvdata"][""]["plain"], "v");
    assert_eq!(st["nvdata"]["ferry"], json!({"ferry.run": "r-7"}));
    assert_eq!(
        st["nvdata_users"]["resell1"][""],
        json!({"ferry.run": "mine"})
    );
    assert!(r.violations.lock().unwrap().is_empty());
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nvdata_false_makes_the_functions_unknown() {
    let mut sc = scenario(0, 0);
    sc.target.nvdata = false;
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    for (f, p) in [
        ("nvset", vec![("key1", "a"), ("value1", "b")]),
        ("nvget", vec![("key", "a")]),
    ] {
        let v: Value = w.call(f, &p).await;
        assert_eq!(v["metadata"]["result"], 0, "{v:#}");
        assert_eq!(
            reason(&v),
            format!("Unknown app (“{f}”) requested for this version (1) of the API.")
        );
        assert!(v.get("data").is_none());
    }
    assert_eq!(sim.state()["nvdata"], json!({}));
    // the switch is a scenario key
    let sc = ferry::sim::Scenario::from_yaml("target: {nvdata: false}\n").unwrap();
    assert!(!sc.target.nvdata);
    assert!(ferry::sim::Scenario::default().target.nvdata);
    sim.finish().await;
}

/// The remote of the analysis tests: two accounts with databases, an addon
/// domain, a dedicated IP; an old remote without live transfers.
fn analysis_scenario() -> ferry::sim::Scenario {
    let mut sc = scenario(0, 0);
    let r = &mut sc.remotes[0];
    r.packages = vec!["pkg1".into(), "basic".into()];
    let mut shop = ferry::sim::AccountSpec::new("shop");
    shop.domain = Some("shop.example.org".into());
    shop.size = ferry::sim::Size(1_000_001); // 977 KiB, rounded up
    shop.owner = "resell1".into();
    shop.databases = vec!["shop_wp".into(), "shop_logs".into()];
    shop.addon_domains = vec!["shop-two.example.net".into()];
    shop.dedicated_ip = true;
    let mut blog = ferry::sim::AccountSpec::new("blog");
    blog.domain = Some("a-blog.example.org".into());
    blog.size = ferry::sim::Size(5_000_000);
    blog.files = Some(1234);
    blog.databases = vec!["taken_db".into()];
    r.accounts = vec![shop, blog];
    let mut old = ferry::sim::RemoteSpec::new("old2.example.com");
    old.version = "11.86.0.5".into();
    old.supports_live_transfers = false;
    sc.remotes.push(old);
    sc.target.existing_accounts = vec![ferry::sim::ExistingAccount::Name("taken".into())];
    sc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_analysis_has_cpanel_s_shape_right_after_create() {
    let sim = Sim::start(analysis_scenario()).await;
    let w = &sim.whm;
    // no analyze_transfer_session_remote: create ran the analysis
    let id = w.session((1, 1)).await;
    let a = w
        .get(
            "retrieve_transfer_session_remote_analysis",
            &[("transfer_session_id", &id)],
        )
        .await;
    assert!(ok(&a), "{a:#}");
    let d = &a["data"];
    let accounts = d["items"]["accounts"].as_array().unwrap();
    // sorted by domain, as Results.pm sorts its domain map
    assert_eq!(accounts[0]["user"], "blog");
    assert_eq!(
        accounts[1],
        json!({
            "user": "shop", "ensim_user": "shop", "domain": "shop.example.org",
            "bytesused": 977 * 1024, "filesused": 1_000_001 / 50_000 + 10,
            "owner": "resell1", "has_dedicated_ip": 1, "worker_nodes": {},
            "plan": "default"
        })
    );
    assert_eq!(accounts[0]["filesused"], 1234);
    assert_eq!(accounts[0]["has_dedicated_ip"], 0);
    assert_eq!(accounts[0]["bytesused"], 4883 * 1024);
    assert_eq!(
        d["items"]["packages"],
        json!([{"name": "basic", "featurelist": "default"}, {"name": "pkg1", "featurelist": "default"}])
    );
    let r = &d["remote"];
    assert_eq!(r["version"], "11.120.0.16");
    assert_eq!(r["major_version"], "11.120");
    assert_eq!(r["server_type"], "WHM1164");
    assert_eq!(r["cpversion"], "11.64");
    assert_eq!(r["host"], "old1.example.com");
    assert_eq!(r["hostname"], "old1.example.com");
    assert_eq!(r["supports_live_transfers"], 1);
    assert_eq!(r["resellers"], json!({"resell1": 1, "root": 1}));
    assert_eq!(
        r["dbs"]["dbs"]["MYSQL"]["shop_wp"],
        json!({"owner": "shop"})
    );
    assert_eq!(
        r["dbs"]["users"]["MYSQL"]["taken_db"],
        json!({"owner": "blog"})
    );
    for k in [
        "has_owners",
        "has_disk_used",
        "has_files_used",
        "has_xfertool",
        "has_package_extensions",
        "conflicts",
        "roundcube_dbtype",
        "linked_nodes",
    ] {
        assert!(r.get(k).is_some(), "remote.{k}: {r:#}");
    }
    let l = &d["local"];
    assert_eq!(l["users"]["taken"], 1);
    assert_eq!(l["users"]["root"], 1);
    assert_eq!(l["host"], "target.example.net");
    assert_eq!(l["domains"]["taken.example.com"], "taken");
    for k in [
        "dedicated_ips",
        "groups",
        "dbs",
        "version",
        "available_ips",
        "major_version",
        "roundcube_dbtype",
    ] {
        assert!(l.get(k).is_some(), "local.{k}: {l:#}");
    }
    assert_eq!(d["modules"]["MySQL"]["name"], "Database Server");

    // the other remote: its version, no live transfers
    let v = w.create_root("old2.example.com", "x", (1, 1)).await;
    let id2 = v["data"]["transfer_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = w
        .get(
            "retrieve_transfer_session_remote_analysis",
            &[("transfer_session_id", &id2)],
        )
        .await;
    assert_eq!(a["data"]["remote"]["version"], "11.86.0.5");
    assert_eq!(a["data"]["remote"]["major_version"], "11.86");
    assert_eq!(a["data"]["remote"]["supports_live_transfers"], 0);
    assert_eq!(a["data"]["items"]["accounts"], json!([]));
    assert_eq!(a["data"]["remote"]["has_disk_used"], 0);

    // refusals
    let m = w
        .misuse("retrieve_transfer_session_remote_analysis", &[])
        .await;
    assert_eq!(
        reason(&m),
        "A valid transfer_session_id is required to analyze a remote transfer source."
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analysis_reports_database_conflicts_with_the_target() {
    let mut sc = analysis_scenario();
    sc.remotes[0].accounts[1].password = Some("blogpw".into());
    // the target already has `taken_db`, owned by `taken`
    let mut other = ferry::sim::RemoteSpec::new("old3.example.com");
    let mut taken = ferry::sim::AccountSpec::new("taken2");
    taken.size = ferry::sim::Size(1_000_000);
    taken.databases = vec!["taken_db".into()];
    other.accounts = vec![taken];
    sc.remotes.push(other);
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let v = w.create_root("old3.example.com", "x", (1, 1)).await;
    let id = v["data"]["transfer_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    w.enqueue_account(&id, "taken2", &[]).await;
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], std::time::Duration::from_secs(20))
        .await;
    // a new session from old1 sees the database of taken2 on the target
    let id = w.session((1, 1)).await;
    let a = w
        .get(
            "retrieve_transfer_session_remote_analysis",
            &[("transfer_session_id", &id)],
        )
        .await;
    let d = &a["data"];
    assert_eq!(
        d["local"]["dbs"]["dbs"]["MYSQL"]["taken_db"],
        json!({"owner": "taken2"})
    );
    assert_eq!(
        d["remote"]["conflicts"]["blog"]["dbs"]["MYSQL"]["taken_db"],
        json!({"remote_owner": "blog", "local_owner": "taken2"})
    );
    assert_eq!(d["local"]["users"]["taken2"], 1);
    // a user session has no remote analysis
    let us = w
        .call(
            "create_remote_user_transfer_session",
            &[
                ("host", "old1.example.com"),
                ("password", "blogpw"),
                ("unrestricted_restore", "1"),
            ],
        )
        .await;
    let uid = us["data"]["transfer_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = w
        .get(
            "retrieve_transfer_session_remote_analysis",
            &[("transfer_session_id", &uid)],
        )
        .await;
    assert_eq!(
        reason(&a),
        "The supplied session ID has an invalid session type. You must provide a session ID with a session type of “RemoteRoot”."
    );
    sim.finish().await;
}

/// Run `users` of old1 in one session to completion.
async fn transfer(sim: &Sim, users: &[&str]) -> String {
    let w = &sim.whm;
    let id = w.session((2, 2)).await;
    for u in users {
        let e = w.enqueue_account(&id, u, &[]).await;
        assert!(ok(&e), "{e:#}");
    }
    assert!(ok(&w.start(&id).await));
    sim.wait_state(&id, &["COMPLETED"], std::time::Duration::from_secs(20))
        .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_accounts_can_be_verified_on_the_target() {
    let mut sc = analysis_scenario();
    sc.remotes[0].accounts[0].suspended = true; // shop
    sc.epoch = Some(1_392_153_439);
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    transfer(&sim, &["shop", "blog"]).await;

    // accountsummary by user and by domain
    let s = w.get("accountsummary", &[("user", "shop")]).await;
    assert!(ok(&s), "{s:#}");
    let a = &s["data"]["acct"][0];
    assert_eq!(a["user"], "shop");
    assert_eq!(a["domain"], "shop.example.org");
    assert_eq!(a["ip"], "192.0.2.10");
    assert_eq!(a["owner"], "root", "resell1 is not on the target");
    assert_eq!(a["plan"], "default");
    assert_eq!(a["partition"], "home");
    assert_eq!(a["diskused"], "none", "977 KiB is under a MiB");
    assert_eq!(a["suspended"], 1);
    assert_eq!(a["suspendreason"], "Transfer/Restore");
    assert_eq!(a["email"], "*unknown*");
    let re = regex::Regex::new(r"^\d\d [A-Z][a-z]{2} \d\d \d\d:\d\d$").unwrap();
    assert!(re.is_match(a["startdate"].as_str().unwrap()), "{a}");
    assert!(a["unix_startdate"].as_i64().unwrap() >= 1_392_153_439);
    let s = w
        .get("accountsummary", &[("domain", "a-blog.example.org")])
        .await;
    assert_eq!(s["data"]["acct"][0]["user"], "blog");
    assert_eq!(s["data"]["acct"][0]["suspended"], 0);
    assert_eq!(s["data"]["acct"][0]["suspendreason"], "not suspended");
    assert_eq!(s["data"]["acct"][0]["diskused"], "4M");
    // listaccts shows the suspension too
    let l = w
        .get(
            "listaccts",
            &[
                ("search", "shop"),
                ("searchtype", "user"),
                ("searchmethod", "exact"),
            ],
        )
        .await;
    assert_eq!(l["data"]["acct"][0]["suspended"], 1);
    // unknown accounts and a call without either key
    let s = w.get("accountsummary", &[("user", "ghost")]).await;
    assert_eq!(s["metadata"]["result"], 0);
    assert_eq!(reason(&s), "Account does not exist.");
    let s = w
        .misuse("accountsummary", &[("domain", "nowhere.example")])
        .await;
    assert_eq!(reason(&s), "Account does not exist.");
    let s = w.misuse("accountsummary", &[]).await;
    assert_eq!(
        reason(&s),
        "API failure: You must specify a user or domain to get a summary of."
    );

    // get_domain_info: main, the addon's subdomain and the addon
    let g = w.get("get_domain_info", &[]).await;
    let rows: Vec<&Value> = g["data"]["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["user"] == "shop")
        .collect();
    let kinds: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|d| {
            (
                d["domain"].as_str().unwrap(),
                d["domain_type"].as_str().unwrap(),
                d["parent_domain"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("shop-two.example.net", "addon", "shop-two.shop.example.org"),
            ("shop-two.shop.example.org", "sub", "shop.example.org"),
            ("shop.example.org", "main", "shop.example.org"),
        ]
    );
    let main = rows.iter().find(|d| d["domain_type"] == "main").unwrap();
    assert_eq!(main["docroot"], "/home/shop/public_html");
    assert_eq!(main["user_owner"], "root");
    for k in ["ipv4", "ipv6", "php_version", "port", "modsecurity_enabled"] {
        assert!(main.get(k).is_some(), "{k}: {main}");
    }

    // list_mysql_databases_and_users
    let m = w
        .get("list_mysql_databases_and_users", &[("user", "shop")])
        .await;
    assert!(ok(&m), "{m:#}");
    assert_eq!(
        m["data"]["mysql_databases"],
        json!({"shop_wp": ["shop_wp"], "shop_logs": ["shop_logs"]})
    );
    assert_eq!(m["data"]["mysql_config"]["use_db_prefix"], 1);
    let m = w
        .get("list_mysql_databases_and_users", &[("user", "ghost")])
        .await;
    assert_eq!(reason(&m), "You do not have a user named “ghost”.");
    let m = w.misuse("list_mysql_databases_and_users", &[]).await;
    assert_eq!(reason(&m), "The parameter “user” is required.");

    // the oracle
    let st = sim.state();
    let shop = &st["accounts"]["shop"];
    assert_eq!(
        shop["domains"],
        json!(["shop.example.org", "shop-two.example.net"])
    );
    assert_eq!(shop["databases"], json!(["shop_wp", "shop_logs"]));
    assert_eq!(shop["suspended"], true);
    assert_eq!(shop["archives"], 1);
    assert_eq!(st["accounts"]["blog"]["suspended"], false);
    assert_eq!(st["accounts"]["taken"]["archives"], 0);

    // delete_account_archives: once found, then none
    let d = w.call("delete_account_archives", &[("user", "shop")]).await;
    assert!(ok(&d), "{d:#}");
    assert_eq!(
        d["metadata"]["output"]["messages"],
        json!(["Found archive: /home/cpmove-shop.tar.gz"])
    );
    assert_eq!(sim.state()["accounts"]["shop"]["archives"], 0);
    let d = w
        .call(
            "delete_account_archives",
            &[("user", "shop"), ("mountpoint", "/home")],
        )
        .await;
    assert_eq!(
        d["metadata"]["output"]["messages"],
        json!(["The mountpoint “/home” does not contain any archives for “shop”."])
    );
    let d = w.misuse("delete_account_archives", &[]).await;
    assert_eq!(
        without_xid(&reason(&d)),
        "API failure: Provide the “user” parameter for the “Whostmgr::API::1::Transfers::delete_account_archives” function."
    );
    let d = w.call("delete_account_archives", &[("user", "a/b")]).await;
    assert!(
        without_xid(&reason(&d)).starts_with(
            "API failure: “/usr/local/cpanel/scripts/unpkgacct” reported error code “255” when it ended:"
        ),
        "{d:#}"
    );
    sim.finish().await;
}

/// An item log's lines.
async fn item_log(w: &Whm, id: &str, name: &str) -> Vec<Value> {
    let v = w.log(id, name).await;
    assert!(ok(&v), "{name}: {v:#}");
    v["data"]["log"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}

fn percentages(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["type"] == "control" && l["contents"]["action"] == "percentage")
        .map(|l| l["contents"]["percentage"].as_u64().unwrap())
        .collect()
}

fn summary_of(lines: &[Value]) -> Value {
    lines
        .iter()
        .find(|l| l["contents"]["action"] == "summary")
        .map(|l| l["contents"].clone())
        .unwrap_or(Value::Null)
}

fn texts(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e[1].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_logs_report_progress_at_the_simulated_pace() {
    // 400 MB: an 8 s transfer, a 16 s restore; 0.05 real s per simulated s
    let mut sc = scenario(1, 400_000_000);
    sc.time_scale = 0.05;
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "u000", &[("localuser", "u000b")])
        .await;
    w.start(&id).await;
    // mid-transfer: the log is active and shows the percentages due so far
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let logs = sim.state()["sessions"][0]["logs"].clone();
    assert!(
        logs.as_array()
            .unwrap()
            .contains(&".item-TRANSFER_AccountRemoteRoot_u000".into()),
        "{logs}"
    );
    let mid = percentages(&item_log(w, &id, "item-TRANSFER_AccountRemoteRoot_u000").await);
    assert!(mid.len() >= 2 && !mid.contains(&100), "{mid:?}");
    sim.wait_state(&id, &["COMPLETED"], std::time::Duration::from_secs(20))
        .await;
    let logs = sim.state()["sessions"][0]["logs"].clone();
    for name in [
        "item-TRANSFER_AccountRemoteRoot_u000",
        "item-RESTORE_AccountRemoteRoot_u000",
    ] {
        assert!(logs.as_array().unwrap().contains(&name.into()), "{logs}");
    }

    let t = item_log(w, &id, "item-TRANSFER_AccountRemoteRoot_u000").await;
    assert_eq!(
        percentages(&t),
        [
            0, 5, 10, 20, 30, 40, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100
        ]
    );
    assert_eq!(t[1]["type"], "start");
    assert_eq!(
        t[1]["contents"]["msg"][0],
        "Starting “TRANSFER” for “Account” “u000” → “u000b”."
    );
    assert!(t.iter().any(|l| {
        l["type"] == "out"
            && l["contents"]["msg"][0]
                .as_str()
                .unwrap()
                .starts_with("Copying homedir")
    }));
    assert!(summary_of(&t).is_null(), "a transfer writes no summary");
    assert_eq!(t.last().unwrap()["type"], "success");
    assert_eq!(t.last().unwrap()["contents"]["msg"][0], "Success.");
    // times advance with the simulated pace
    let times: Vec<i64> = t
        .iter()
        .filter(|l| l["type"] == "control")
        .map(|l| l["contents"]["time"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1]));
    assert!(times.last().unwrap() - times[0] >= 7, "{times:?}");

    let r = item_log(w, &id, "item-RESTORE_AccountRemoteRoot_u000").await;
    let p = percentages(&r);
    assert_eq!(p[..2], [0, 10]);
    assert!(
        p.windows(2).all(|x| x[0] < x[1]),
        "increasing, each once: {p:?}"
    );
    assert_eq!(p[p.len() - 2..], [92, 100]);
    assert!(
        r.iter()
            .any(|l| l["contents"]["msg"][0] == "Restricted mode: no\n")
    );
    let sum_at = r
        .iter()
        .position(|l| l["contents"]["action"] == "summary")
        .expect("a summary");
    assert_eq!(r.last().unwrap()["type"], "success");
    assert!(sum_at < r.len() - 1);
    assert_eq!(
        summary_of(&r),
        json!({"action": "summary", "time": summary_of(&r)["time"], "warnings": [],
               "skipped_items": [], "dangerous_items": [], "altered_items": []})
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_item_log_fetch_answers_the_whole_log() {
    let mut sc = scenario(1, 100_000_000);
    sc.time_scale = 0.05;
    sc.faults.log_blocking = true;
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "u000", &[]).await;
    w.start(&id).await;
    let t = item_log(w, &id, "item-TRANSFER_AccountRemoteRoot_u000").await;
    assert_eq!(percentages(&t).last(), Some(&100));
    assert_eq!(t.last().unwrap()["type"], "success");
    sim.wait_state(&id, &["COMPLETED"], std::time::Duration::from_secs(20))
        .await;
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_carry_losses_injected_items_and_warnings() {
    let mut sc = analysis_scenario();
    sc.remotes[0].accounts[1].warnings = vec!["The IP address changed.".into()]; // blog
    sc.faults.restore_loses.insert(
        "shop".into(),
        ferry::sim::RestoreLoss {
            databases: vec!["shop_logs".into()],
            domains: vec!["shop-two.example.net".into()],
        },
    );
    let mut sc = with_reseller(sc);
    sc.remotes[0].accounts.push({
        let mut a = ferry::sim::AccountSpec::new("plain");
        a.size = ferry::sim::Size(1_000_000);
        a
    });
    sc.faults.restore_summary.insert(
        "plain".into(),
        ferry::sim::RestoreSummary {
            skipped: vec!["Cron jobs were skipped.".into()],
            altered: vec!["The shell was changed.".into()],
            dangerous: vec!["A setuid file was found.".into()],
        },
    );
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    let id = transfer(&sim, &["shop", "blog", "plain"]).await;
    let log = w.master_log(&id).await;
    let line = |item: &str| {
        log.iter()
            .find(|c| {
                c["queue"] == "RESTORE"
                    && c["item"] == item
                    && matches!(
                        c["action"].as_str(),
                        Some("success-item" | "warning-item" | "failed-item")
                    )
            })
            .unwrap()
            .clone()
    };

    // shop: what it lost is named in warnings and absent on the target
    let m = line("shop");
    assert_eq!(m["action"], "warning-item");
    let r = item_log(w, &id, "item-RESTORE_AccountRemoteRoot_shop").await;
    let sum = summary_of(&r);
    let warnings = texts(&sum["warnings"]);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("“shop_logs”"), "{warnings:?}");
    assert!(
        warnings[1].contains("“shop-two.example.net”"),
        "{warnings:?}"
    );
    // entries in the real shape: [[module, function, line], text, url]
    assert!(sum["warnings"][0][0].as_array().unwrap().len() == 3);
    assert_eq!(m["msg"]["warnings"], 2);
    assert_eq!(m["msg"]["contents"]["warnings"], sum["warnings"]);
    let dbs = w
        .get("list_mysql_databases_and_users", &[("user", "shop")])
        .await;
    assert_eq!(
        dbs["data"]["mysql_databases"],
        json!({"shop_wp": ["shop_wp"]})
    );
    let domains = w.get("get_domain_info", &[]).await;
    assert!(
        !domains.to_string().contains("shop-two"),
        "the lost addon domain is not on the target"
    );
    let st = sim.state();
    assert_eq!(st["accounts"]["shop"]["databases"], json!(["shop_wp"]));
    assert_eq!(
        st["accounts"]["shop"]["domains"],
        json!(["shop.example.org"])
    );

    // blog: the remote account's warnings
    let m = line("blog");
    assert_eq!(m["action"], "warning-item");
    let sum = summary_of(&item_log(w, &id, "item-RESTORE_AccountRemoteRoot_blog").await);
    assert_eq!(texts(&sum["warnings"]), ["The IP address changed."]);
    assert_eq!(m["msg"]["contents"]["warnings"], sum["warnings"]);

    // plain: injected skipped, altered and dangerous items
    let m = line("plain");
    assert_eq!(m["action"], "warning-item");
    let sum = summary_of(&item_log(w, &id, "item-RESTORE_AccountRemoteRoot_plain").await);
    assert_eq!(texts(&sum["skipped_items"]), ["Cron jobs were skipped."]);
    assert_eq!(texts(&sum["altered_items"]), ["The shell was changed."]);
    assert_eq!(texts(&sum["dangerous_items"]), ["A setuid file was found."]);
    assert_eq!(
        (
            m["msg"]["warnings"].clone(),
            m["msg"]["skipped_items"].clone(),
            m["msg"]["altered_items"].clone(),
            m["msg"]["dangerous_items"].clone()
        ),
        (0.into(), 1.into(), 1.into(), 1.into())
    );
    assert_eq!(m["msg"]["contents"]["skipped_items"], sum["skipped_items"]);
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_a_restricted_owner_fallback_in_the_item_logs() {
    let mut sc = analysis_scenario();
    sc.faults.fail_items.insert(
        "blog".into(),
        ferry::sim::FailItem {
            message: "Disk quota exceeded".into(),
            times: 1,
            stage: ferry::sim::FailStage::Restore,
        },
    );
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    // a restricted session: shop's owner resell1 is not on the target
    let v = w
        .call(
            "create_remote_root_transfer_session",
            &[
                ("host", "old1.example.com"),
                ("user", "root"),
                ("password", "pw1"),
                ("transfer_threads", "1"),
                ("restore_threads", "1"),
                ("unrestricted_restore", "0"),
                ("copy_reseller_privs", "0"),
                ("compressed", "0"),
                ("unencrypted", "0"),
                ("low_priority", "0"),
            ],
        )
        .await;
    let id = v["data"]["transfer_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    w.enqueue_account(&id, "shop", &[]).await;
    w.enqueue_account(&id, "blog", &[]).await;
    w.enqueue_account(&id, "ghost", &[]).await; // not on the remote
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], std::time::Duration::from_secs(20))
        .await;

    let r = item_log(w, &id, "item-RESTORE_AccountRemoteRoot_shop").await;
    assert!(
        r.iter()
            .any(|l| l["contents"]["msg"][0] == "Restricted mode: yes\n")
    );
    let sum = summary_of(&r);
    assert_eq!(
        texts(&sum["skipped_items"]),
        [
            "The user, “resell1”, that owns the account in this backup is not a reseller on this system. Because of this, “root” will own this restored account instead."
        ]
    );
    let log = w.master_log(&id).await;
    assert_eq!(
        results(&log)
            .into_iter()
            .find(|(i, _)| i == "shop")
            .unwrap()
            .1,
        "warning-item"
    );
    assert_eq!(sim.state()["accounts"]["shop"]["owner"], "root");

    // a restore that fails: summary, 100, then `failed`
    let r = item_log(w, &id, "item-RESTORE_AccountRemoteRoot_blog").await;
    assert!(summary_of(&r).is_object());
    assert_eq!(percentages(&r).last(), Some(&100));
    let last = r.last().unwrap();
    assert_eq!(last["type"], "failed");
    assert_eq!(last["contents"]["msg"][0], "Failed: Disk quota exceeded");

    // a transfer that fails: its RESTORE log holds start and failed only
    let t = item_log(w, &id, "item-TRANSFER_AccountRemoteRoot_ghost").await;
    assert_eq!(t.last().unwrap()["type"], "failed");
    assert_eq!(percentages(&t).last(), Some(&100));
    let r = item_log(w, &id, "item-RESTORE_AccountRemoteRoot_ghost").await;
    let kinds: Vec<&str> = r.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["start", "failed"]);
    assert_eq!(
        r[1]["contents"]["msg"][0],
        "Failed: The account “ghost” does not exist on “old1.example.com”."
    );
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_transfers_suspend_and_proxy_the_source() {
    let mut sc = analysis_scenario();
    let mut old = ferry::sim::AccountSpec::new("legacy");
    old.size = ferry::sim::Size(1_000_000);
    old.password = Some("legacypw".into());
    sc.remotes[1].accounts = vec![old];
    let mut failing = ferry::sim::AccountSpec::new("flaky");
    failing.size = ferry::sim::Size(1_000_000);
    sc.remotes[0].accounts.push(failing);
    sc.faults.fail_items.insert(
        "flaky".into(),
        ferry::sim::FailItem {
            message: "Disk quota exceeded".into(),
            times: 1,
            stage: ferry::sim::FailStage::Restore,
        },
    );
    let sim = Sim::start(sc).await;
    let w = &sim.whm;

    // a source without live transfers refuses the item at enqueue time
    let v = w.create_root("old2.example.com", "x", (1, 1)).await;
    let old_id = v["data"]["transfer_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = w
        .enqueue_account(&old_id, "legacy", &[("live_transfer", "1")])
        .await;
    assert_eq!(
        without_xid(&reason(&e)),
        "API failure: The “live_transfer” option requires a source server that runs cPanel & WHM version “11.89” or greater. “old2.example.com” runs version “11.86.0.5”."
    );
    assert!(reason(&e).starts_with("API failure: (XID "));
    assert!(ok(&w
        .enqueue_account(&old_id, "legacy", &[("live_transfer", "0")])
        .await));
    // so does a user session, against 11.95 and the version's major
    let us = w
        .call(
            "create_remote_user_transfer_session",
            &[
                ("host", "old2.example.com"),
                ("password", "legacypw"),
                ("unrestricted_restore", "1"),
            ],
        )
        .await;
    let uid = us["data"]["transfer_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = w
        .enqueue(
            &uid,
            "AccountRemoteUser",
            &[
                ("user", "legacy"),
                ("localuser", "legacy"),
                ("live_transfer", "1"),
            ],
        )
        .await;
    assert_eq!(
        without_xid(&reason(&e)),
        "API failure: The “live_transfer” option requires a source server that runs cPanel & WHM version “11.95” or greater. “old2.example.com” runs version “11.86”."
    );

    // a live transfer from old1: once restored, the source is suspended and proxied
    let st = sim.state();
    assert_eq!(
        st["remotes"]["old1.example.com"]["shop"],
        json!({"suspended": false, "proxied": false})
    );
    let id = w.session((2, 2)).await;
    for u in ["shop", "flaky"] {
        assert!(ok(&w
            .enqueue_account(&id, u, &[("live_transfer", "1")])
            .await));
    }
    w.enqueue_account(&id, "blog", &[]).await;
    w.start(&id).await;
    sim.wait_state(&id, &["COMPLETED"], std::time::Duration::from_secs(20))
        .await;
    let st = sim.state();
    let src = &st["remotes"]["old1.example.com"];
    assert_eq!(src["shop"], json!({"suspended": true, "proxied": true}));
    assert_eq!(src["blog"], json!({"suspended": false, "proxied": false}));
    assert_eq!(
        src["flaky"],
        json!({"suspended": false, "proxied": false}),
        "a failed restore leaves the source untouched"
    );
    assert_eq!(st["accounts"]["shop"]["present"], true);
    let r = item_log(w, &id, "item-RESTORE_AccountRemoteRoot_shop").await;
    let outs: Vec<&str> = r
        .iter()
        .filter(|l| l["type"] == "out")
        .map(|l| l["contents"]["msg"][0].as_str().unwrap())
        .collect();
    assert!(outs.contains(&"Live transfer: yes\n"), "{outs:?}");
    assert!(outs.contains(&"Disabling logins on the source server …\n"));
    assert!(outs.contains(
        &"Configuring the source server (old1.example.com) to proxy services to the new account …\n"
    ));
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_counted_with_their_waits() {
    let mut sc = scenario(1, 200_000_000); // a 4 s transfer: 0.2 s real
    sc.time_scale = 0.05;
    sc.faults.log_blocking = true;
    let sim = Sim::start(sc).await;
    let w = &sim.whm;
    for _ in 0..3 {
        w.get("available_transfer_modules", &[]).await;
    }
    assert_eq!(sim.state()["requests_in_flight_max"], 1);
    let id = w.session((1, 1)).await;
    w.enqueue_account(&id, "u000", &[]).await;
    w.start(&id).await;
    // four blocking fetches of the active TRANSFER log wait together
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (w, id) = (w.clone(), id.clone());
        set.spawn(async move { w.log(&id, "item-TRANSFER_AccountRemoteRoot_u000").await });
    }
    while let Some(r) = set.join_next().await {
        assert!(ok(&r.unwrap()));
    }
    let st = sim.state();
    assert_eq!(st["requests_in_flight_max"], 4, "{st:#}");
    assert_eq!(st["requests_in_flight"], 0);
    let reqs = w.inspect("requests").await;
    let fetches: Vec<&Value> = reqs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == "fetch_transfer_session_log")
        .collect();
    assert_eq!(fetches.len(), 4);
    let started: Vec<f64> = fetches
        .iter()
        .map(|r| r["started"].as_f64().unwrap())
        .collect();
    let finished: Vec<f64> = fetches
        .iter()
        .map(|r| r["finished"].as_f64().unwrap())
        .collect();
    // they overlapped, and each waited for the log (simulated seconds)
    let last_start = started.iter().cloned().fold(f64::MIN, f64::max);
    let first_end = finished.iter().cloned().fold(f64::MAX, f64::min);
    assert!(last_start < first_end, "{started:?} {finished:?}");
    assert!(first_end >= 3.9, "{finished:?}");
    for r in reqs.as_array().unwrap() {
        assert!(r["finished"].as_f64().unwrap() >= r["started"].as_f64().unwrap());
        assert_eq!(r["started"], r["sim_time"]);
    }
    sim.wait_state(&id, &["COMPLETED"], std::time::Duration::from_secs(20))
        .await;
    sim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_module_schema_is_the_source_s() {
    let sim = Sim::start(scenario(0, 0)).await;
    let w = &sim.whm;
    let s = w
        .get("transfer_module_schema", &[("module", "AccountRemoteRoot")])
        .await;
    let schema = &s["data"]["schema"];
    assert_eq!(schema["primary"], json!(["user"]));
    assert_eq!(schema["required"], json!(["user", "localuser"]));
    assert_eq!(schema["prerequisite"], "prerequisite_user");
    // Items/Schema/AccountBase.pm, key by key
    let (c, b, f, t) = (
        "char(255) DEFAULT NULL",
        "BIGINT UNSIGNED DEFAULT 1",
        "int(1) DEFAULT 0",
        "text",
    );
    let want = [
        ("user", c),
        ("size", b),
        ("files", b),
        ("priority", "int(1) DEFAULT 255"),
        ("localuser", c),
        ("detected_remote_user", c),
        ("domain", c),
        ("customip", c),
        ("replaceip", c),
        ("prerequisite_user", c),
        ("reseller", f),
        ("force", f),
        ("ip", f),
        ("skiphomedir", f),
        ("shared_mysql_server", f),
        ("skipres", f),
        ("skipacctdb", f),
        ("skipbwdata", f),
        ("skipaccount", f),
        ("skipsubdomains", f),
        ("skipemail", f),
        ("overwrite_all_dbs", f),
        ("overwrite_all_dbusers", f),
        ("overwrite_sameowner_dbs", f),
        ("overwrite_sameowner_dbusers", f),
        ("xferpoint", f),
        ("copypoint", t),
        ("cpmovefile", t),
        ("disabled", t),
        ("overwrite_with_delete", f),
        ("live_transfer", f),
        ("keep_local_cpuser_values", t),
        ("mail_location", c),
    ];
    let keys = schema["keys"].as_object().unwrap();
    assert_eq!(keys.len(), want.len(), "{keys:?}");
    for (k, def) in want {
        assert_eq!(keys[k], json!({ "def": def }), "{k}");
    }
    // the user module shares it; packages use varchar; a config module has its own
    let u = w
        .get("transfer_module_schema", &[("module", "AccountRemoteUser")])
        .await;
    assert_eq!(u["data"]["schema"], *schema);
    let p = w
        .get("transfer_module_schema", &[("module", "PackageRemoteRoot")])
        .await;
    assert_eq!(
        p["data"]["schema"],
        json!({"primary": ["package"], "required": ["package"],
               "keys": {"package": {"def": "varchar(255) DEFAULT NULL"},
                        "size": {"def": "BIGINT UNSIGNED DEFAULT 1"}}})
    );
    let e = w
        .misuse("transfer_module_schema", &[("module", "EximRemoteRoot")])
        .await;
    assert_eq!(
        e["data"]["schema"]["keys"]["disable_rbls"]["def"],
        "BIGINT UNSIGNED DEFAULT 0"
    );
    let n = w
        .misuse("transfer_module_schema", &[("module", "Nope")])
        .await;
    assert_eq!(
        reason(&n),
        "The transfer session module “Nope” does not exist."
    );
    sim.finish().await;
}
