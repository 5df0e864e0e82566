//! The remote analysis as `retrieve_transfer_session_remote_analysis`
//! returns it (`Whostmgr/Transfers/Session/Preflight/RemoteRoot/Results.pm`),
//! and the snapshot the analysis itself takes (`…/RemoteRoot/Analyze.pm`).
//!
//! Owns: the shape of `data` (`items`, `local`, `remote`, `modules`,
//! `config`, `options`), the remote's database dump
//! (`Whostmgr/Pkgacct/dump_databases_and_users`) and the database-name
//! conflicts between source and target. The analysis runs inside
//! `create_remote_root_transfer_session` (`API/1/Transfers.pm` calls
//! `analyze_remote` right after creating the session), so a session's
//! analysis can be retrieved at once; `analyze_transfer_session_remote`
//! runs it again. What the analysis stored (the target's databases and the
//! conflicts) is a snapshot of that moment; the target's users and domains
//! are read when the analysis is retrieved, as `Results.pm` does.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::super::engine::{AnalysisSnapshot, Kind, World};
use super::super::scenario::{DEFAULT_VERSION, RemoteSpec};
use super::target::SYSTEM_USERS;
use super::{Answer, Call, lookup};

/// `Whostmgr/Pkgacct/dump_databases_and_users`: `{dbs, users}` × `{MYSQL,
/// PGSQL}` → name → `{owner}`. Version 1.2 of the script reads the MySQL map
/// for both engines, so PGSQL repeats MYSQL; whm-sim keeps that.
pub(crate) fn db_dump<'a>(owned: impl Iterator<Item = (&'a str, &'a [String])>) -> Value {
    let mut dbs = Map::new();
    for (owner, names) in owned {
        for name in names {
            dbs.insert(name.clone(), json!({ "owner": owner }));
        }
    }
    // every database has a database user of the same name (whm-sim's convention)
    let engines = json!({ "MYSQL": dbs, "PGSQL": dbs });
    json!({ "dbs": engines, "users": engines })
}

/// `Analyze.pm::_determine_database_name_conflicts`: a name the target
/// already has under another owner, keyed by the remote owner.
fn conflicts(local: &Value, remote: &Value) -> Value {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for object in ["dbs", "users"] {
        for system in ["MYSQL", "PGSQL"] {
            let Some(locals) = local[object][system].as_object() else {
                continue;
            };
            for (name, l) in locals {
                let r = &remote[object][system][name];
                if r.is_object() && r["owner"] != l["owner"] {
                    let owner = r["owner"].as_str().unwrap_or_default().to_string();
                    let entry = out.entry(owner.clone()).or_insert_with(|| json!({}));
                    entry[object][system][name] =
                        json!({ "remote_owner": owner, "local_owner": l["owner"] });
                }
            }
        }
    }
    json!(out)
}

/// The remote's database dump.
fn remote_dump(remote: &RemoteSpec) -> Value {
    db_dump(
        remote
            .accounts
            .iter()
            .map(|a| (a.user.as_str(), a.databases.as_slice())),
    )
}

/// What `analyze_remote` stores in the session.
pub(super) fn snapshot(w: &World, r: usize) -> AnalysisSnapshot {
    let local_dbs = w.target_db_dump();
    let conflicts = conflicts(&local_dbs, &remote_dump(&w.scenario.remotes[r]));
    AnalysisSnapshot {
        local_dbs,
        conflicts,
    }
}

/// Perl's numeric compare of dotted versions, as `Whostmgr/Whm5.pm::ver_cmp`.
fn ver_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |s: &str| -> Vec<u64> {
        s.split('.')
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    };
    let (x, y) = (parse(a), parse(b));
    for i in 0..x.len().max(y.len()) {
        let o = x.get(i).unwrap_or(&0).cmp(y.get(i).unwrap_or(&0));
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// `Cpanel::Version::Compare::compare($version, '>=', $min)`.
pub(crate) fn version_at_least(version: &str, min: &str) -> bool {
    ver_cmp(version, min).is_ge()
}

/// `Whostmgr/Whm5.pm::find_WHM_version`: the server type of a cPanel version.
fn whm_servtype(version: &str) -> &'static str {
    let le = |v: &str| ver_cmp(version, v).is_le();
    if le("4.4") {
        "preWHM45"
    } else if le("11.18.9") {
        "WHM45"
    } else if le("11.19.9") {
        "WHM1119"
    } else if le("11.22.9") {
        "WHM1120"
    } else if le("11.23.9") {
        "WHM1123"
    } else if le("11.24.0") {
        "WHM1124"
    } else if le("11.24.1") {
        "WHM11241"
    } else if ver_cmp(version, "11.53.0.0").is_lt() {
        "WHM1130"
    } else if ver_cmp(version, "11.64.0.30").is_lt() {
        "WHM1154"
    } else {
        "WHM1164"
    }
}

/// `Whostmgr/Transfers/Version.pm::servtype_to_version` (so an 11.120 remote
/// reports `cpversion` 11.64, as the source computes it).
fn servtype_to_version(servtype: &str) -> String {
    let Some(n) = servtype.strip_prefix("WHM").filter(|n| !n.is_empty()) else {
        return "3.0".into();
    };
    let part = |a: usize, b: usize| n.get(a..b.min(n.len())).unwrap_or("");
    if n.len() <= 4 {
        format!("{}.{}", part(0, 2), part(2, 4))
    } else {
        format!("{}.{}.{}", part(0, 2), part(2, 4), &n[4..])
    }
}

/// `major_version`: the first two parts.
pub(crate) fn major(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// `{NAME: 1}`, the shape of `users`, `groups` and `resellers`.
fn name_set<'a>(names: impl Iterator<Item = &'a str>) -> Value {
    let m: Map<String, Value> = names.map(|n| (n.to_string(), json!(1))).collect();
    Value::Object(m)
}

/// The modules of `Preflight/RemoteRoot/Modules/` and their names; whm-sim
/// reports no per-module analysis, warnings or errors.
const MODULES: &[(&str, &str)] = &[
    ("Apache", "Easy Apache"),
    ("AutoSSLOptions", "AutoSSL Options"),
    ("Backups", "Backups"),
    ("Exim", "Exim"),
    ("GreyList", "GreyList"),
    ("Hulk", "Hulk"),
    ("ModSecurity", "ModSecurity"),
    ("MySQL", "Database Server"),
    ("Themes", "User Interface Themes"),
    ("WHMConf", "cPanel & WHM"),
];

fn items(remote: &RemoteSpec) -> Value {
    let mut accounts: Vec<(String, Value)> = remote
        .accounts
        .iter()
        .map(|a| {
            let domain = a.main_domain();
            let v = json!({
                "user": a.user,
                "ensim_user": a.user,
                "domain": domain,
                "bytesused": a.kib_used() * 1024,
                "filesused": a.files_used(),
                "owner": a.owner,
                "has_dedicated_ip": a.dedicated_ip as u8,
                "worker_nodes": {},
                // whm-sim: Results.pm has no `plan`; ferry's client reads it
                // when present, and its tests rely on it
                "plan": a.package.clone().unwrap_or_else(|| "default".into()),
            });
            (domain, v)
        })
        .collect();
    // `sort keys %MAINDOMAINS`: by domain
    accounts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut packages: Vec<&String> = remote.packages.iter().collect();
    packages.sort();
    packages.dedup();
    json!({
        "accounts": accounts.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "packages": packages
            .iter()
            .map(|p| json!({ "name": p, "featurelist": "default" }))
            .collect::<Vec<_>>(),
    })
}

fn local(w: &World, snap: &AnalysisSnapshot) -> Value {
    let accounts: Vec<&str> = w
        .accounts
        .iter()
        .filter(|(_, a)| a.present)
        .map(|(k, _)| k.as_str())
        .collect();
    let names = || SYSTEM_USERS.iter().copied().chain(accounts.iter().copied());
    let domains: Map<String, Value> = w
        .target_domains()
        .into_iter()
        .map(|(d, u)| (d, Value::String(u)))
        .collect();
    json!({
        "dedicated_ips": {},
        "groups": name_set(names()),
        "users": name_set(names()),
        "domains": domains,
        "dbs": snap.local_dbs,
        "version": DEFAULT_VERSION,
        "available_ips": [],
        "host": w.scenario.hostname,
        "major_version": major(DEFAULT_VERSION),
        "roundcube_dbtype": "sqlite",
    })
}

fn remote_part(remote: &RemoteSpec, host: &str, snap: &AnalysisSnapshot) -> Value {
    let servtype = whm_servtype(&remote.version);
    let resellers = name_set(
        remote
            .accounts
            .iter()
            .map(|a| a.owner.as_str())
            .chain(["root"]),
    );
    json!({
        "dbs": remote_dump(remote),
        "resellers": resellers,
        "has_owners": 1,
        "has_disk_used": (!remote.accounts.is_empty()) as u8,
        "has_files_used": (!remote.accounts.is_empty()) as u8,
        "has_xfertool": 1,
        "server_type": servtype,
        "hostname": remote.host,
        "cpversion": servtype_to_version(servtype),
        "version": remote.version,
        "host": host,
        "has_package_extensions": 0,
        "conflicts": snap.conflicts,
        "major_version": major(&remote.version),
        "roundcube_dbtype": "sqlite",
        "linked_nodes": [],
        // whm-sim: 0/1 as numbers (the source passes "1"/"0" through the
        // session's store)
        "supports_live_transfers": remote.supports_live_transfers as u8,
    })
}

/// `retrieve_transfer_session_remote_analysis` (`Results.pm::retrieve_analysis`).
pub(super) fn retrieve(w: &mut World, call: &Call<'_>) -> Answer {
    let id = call
        .params
        .get("transfer_session_id")
        .filter(|v| !v.is_empty())
        .cloned();
    let Some(id) = id else {
        return Answer::fail(
            "A valid transfer_session_id is required to analyze a remote transfer source.",
        );
    };
    let s = match lookup(w, Some(&id), call.caller) {
        Ok(s) => s,
        Err(e) => return Answer::fail(e),
    };
    let sess = &w.sessions[s];
    if sess.kind != Kind::Root {
        return Answer::fail(
            "The supplied session ID has an invalid session type. You must provide a session ID with a session type of “RemoteRoot”.",
        );
    }
    let (Some(remote), Some(snap)) = (w.remote(s), sess.analysis.as_ref()) else {
        // whm-sim: a root session always has its remote and its analysis
        return Answer::fail("whm-sim: this session has no remote analysis.");
    };
    let modules: Map<String, Value> = MODULES
        .iter()
        .map(|(m, name)| (m.to_string(), json!({ "analysis": {}, "name": name })))
        .collect();
    let flag = |k: &str| sess.options.get(k).map_or(0, |v| (v == "1") as u8);
    let data = json!({
        "transfer_session_id": sess.id,
        "items": items(remote),
        "local": local(w, snap),
        "remote": remote_part(remote, &sess.host, snap),
        "config": { "shared_mysql_server": 0 },
        "options": {
            "unrestricted": flag("unrestricted_restore"),
            // `copy_reseller_privs` is stored as `skipres` (Create.pm)
            "skip_reseller_privs": flag("copy_reseller_privs"),
        },
        "modules": modules,
    });
    Answer::ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_types_and_their_versions_follow_whm5_pm() {
        assert_eq!(whm_servtype("11.120.0.16"), "WHM1164");
        assert_eq!(whm_servtype("11.60.0.1"), "WHM1154");
        assert_eq!(whm_servtype("11.40.1.2"), "WHM1130");
        assert_eq!(servtype_to_version("WHM1164"), "11.64");
        assert_eq!(servtype_to_version("WHM11241"), "11.24.1");
        assert_eq!(servtype_to_version("cpanel"), "3.0");
        assert_eq!(major("11.120.0.16"), "11.120");
    }

    #[test]
    fn conflicts_name_the_remote_owner() {
        let local = db_dump([("bob", &["shop_db".to_string()][..])].into_iter());
        let remote = db_dump([("shop", &["shop_db".to_string()][..])].into_iter());
        let c = conflicts(&local, &remote);
        assert_eq!(
            c["shop"]["dbs"]["MYSQL"]["shop_db"],
            json!({"remote_owner": "shop", "local_owner": "bob"})
        );
        assert!(conflicts(&local, &local).as_object().unwrap().is_empty());
    }
}
