//! The WHM name/value store: `nvset` and `nvget` (`Whostmgr/API/1/NVData.pm`
//! over `Whostmgr/NVData.pm`).
//!
//! Owns: where a call's pairs go and what the answers look like. The data
//! itself lives in [`World::nvdata`] for as long as the simulator runs.
//!
//! A store is one YAML file under `/var/cpanel/whm/nvdata`, named by the
//! caller (`REMOTE_USER`) and the `store` argument: the caller's default
//! store is `USER.yaml`, a named store `USER/STORE.yaml`. Only a caller with
//! root may name a store; anyone else's `store` is dropped — with Perl's
//! truthiness, so a non-root `store=0` survives and names `USER/0.yaml`, as
//! the source reads. whm-sim keys a store by (caller, store name), which maps
//! one-to-one onto those files. Keys cannot be listed through the API.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::engine::World;
use super::{Answer, Call};

/// `$MAX_STORE_LENGTH`, `$MAX_KEYNAME_LENGTH`, `$MAX_VALUE_LENGTH`.
const MAX_STORE: usize = 128;
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 2048;

/// Perl's `substr $s, 0, $n` (characters).
fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Perl's truth of a string: false for `""` and `"0"`.
fn perl_true(s: &str) -> bool {
    !(s.is_empty() || s == "0")
}

/// The store a call reads or writes: (caller, store name; `""` = default).
/// `NVData.pm::set/get_ref`: slashes stripped from a true store name, then
/// a true name dropped unless the caller has root.
fn store_of(call: &Call<'_>) -> (String, String) {
    let raw = call.params.get("store").map_or("", String::as_str);
    let mut store = truncate(raw, MAX_STORE);
    if perl_true(&store) {
        store.retain(|c| c != '/');
    }
    if perl_true(&store) && call.caller != "root" {
        store.clear();
    }
    let user: String = call.caller.chars().filter(|c| *c != '/').collect();
    (user, store)
}

/// `nvset`: every `keyN` parameter names a pair whose value is `valueN`
/// (any suffix N, the empty one too). Answers the pairs it set.
pub(super) fn nvset(w: &mut World, call: &Call<'_>) -> Answer {
    let store = store_of(call);
    // `%nvdata{ $args->{keyN} } = $args->{valueN}`: a later keyN naming
    // the same key replaces an earlier one (Perl's hash order; here the
    // parameters' sorted order).
    let mut pairs: BTreeMap<String, String> = BTreeMap::new();
    for (arg, name) in call.params {
        let Some(id) = arg.strip_prefix("key") else {
            continue;
        };
        // a missing valueN is undef, which `substr` turns into ""
        let value = call.params.get(&format!("value{id}")).cloned();
        pairs.insert(name.clone(), value.unwrap_or_default());
    }
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    let data = w.nvdata.entry(store).or_default();
    for (key, value) in pairs {
        let key = truncate(&key, MAX_KEY);
        let value = truncate(&value, MAX_VALUE);
        data.insert(key.clone(), value.clone());
        set.insert(key, value);
    }
    let nvdatum: Vec<Value> = set
        .into_iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    Answer::ok(Some(json!({ "nvdatum": nvdatum })))
}

/// `nvget`: one key; the value comes back as a one-element list, `[null]`
/// when the key (or the whole store) does not exist.
pub(super) fn nvget(w: &mut World, call: &Call<'_>) -> Answer {
    let store = store_of(call);
    let key = truncate(call.params.get("key").map_or("", String::as_str), MAX_KEY);
    let value = w
        .nvdata
        .get(&store)
        .and_then(|d| d.get(&key))
        .cloned()
        .map_or(Value::Null, Value::String);
    Answer::ok(Some(json!({ "nvdatum": { "key": key, "value": [value] } })))
}
