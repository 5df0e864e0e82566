//! whm-sim over real HTTP, the functions and behaviours added for the
//! upcoming features: the root name/value store (`nvset`/`nvget`).

use serde_json::{Value, json};

use crate::simkit::*;

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
