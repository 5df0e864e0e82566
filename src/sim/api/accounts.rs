//! The target's accounts as WHM reports them, for verifying a transfer:
//! `listaccts` and `accountsummary` (`Whostmgr/API/1/Accounts.pm` over
//! `Whostmgr/Accounts/List.pm`), `get_domain_info` (`Accounts.pm` over
//! `Cpanel/Config/userdata/Cache.pm`), `list_mysql_databases_and_users`
//! (`Whostmgr/API/1/DB.pm`, `Whostmgr/DB.pm`, `Cpanel/DB/Map/Reader.pm`) and
//! `delete_account_archives` (`Whostmgr/API/1/Transfers.pm` running
//! `scripts/unpkgacct`).
//!
//! Owns: the record of one account in those answers and their refusals.
//! The accounts themselves are the world's ([`World::accounts`]); every
//! account lives on the shared IP `192.0.2.10` in `/home`.

use serde_json::{Map, Value, json};

use super::super::clock::format_date;
use super::super::engine::{AccountRecord, World};
use super::{Answer, Call, required};

/// The target's shared IP address.
pub(crate) const SHARED_IP: &str = "192.0.2.10";

/// One account as `Whostmgr/Accounts/List.pm::listaccts` describes it.
fn acct_json(w: &World, name: &str, a: &AccountRecord) -> Value {
    let start = a.restored_at.map_or(w.clock.unix(0.0), |t| w.clock.unix(t));
    let mib = a.kib_used / 1024;
    let unlimited = "unlimited";
    json!({
        "suspended": a.suspended as u8,
        "suspendreason": if a.suspended {
            a.suspend_reason.clone().unwrap_or_else(|| "*unknown*".into())
        } else {
            "not suspended".into()
        },
        "suspendtime": a.suspend_time,
        "is_locked": 0,
        "domain": a.main_domain(name),
        "ip": SHARED_IP,
        "ipv6": [],
        "user": name,
        "outgoing_mail_suspended": 0,
        "outgoing_mail_hold": 0,
        "email": "*unknown*",
        "shell": "/usr/local/cpanel/bin/noshell",
        "uid": a.uid,
        "mailbox_format": "maildir",
        "startdate": format_date(start),
        "unix_startdate": start,
        "partition": "home",
        "disklimit": unlimited,
        // `int(KiB / 1024) . 'M'`, or `none` when nothing is used
        "diskused": if mib > 0 { format!("{mib}M") } else { "none".into() },
        "inodeslimit": unlimited,
        "inodesused": if a.files_used > 0 { json!(a.files_used) } else { json!("none") },
        "backup": 1,
        "legacy_backup": 0,
        "plan": a.package.clone().unwrap_or_else(|| "default".into()),
        "theme": "jupiter",
        "owner": a.owner.clone().unwrap_or_else(|| "root".into()),
        "maxaddons": unlimited,
        "maxftp": unlimited,
        "maxlst": unlimited,
        "maxparked": unlimited,
        "maxpop": unlimited,
        "maxsql": unlimited,
        "maxsub": unlimited,
        "max_emailacct_quota": unlimited,
        "max_email_per_hour": unlimited,
        "max_defer_fail_percentage": unlimited,
        "min_defer_fail_to_trigger_protection": 5,
        "temporary": 0,
        "child_nodes": [],
    })
}

/// Accounts matching a `listaccts` search, by name.
fn search<'w>(
    w: &'w World,
    searchtype: &str,
    search: Option<&str>,
    re: Option<&regex::Regex>,
) -> Vec<(&'w String, &'w AccountRecord)> {
    w.accounts
        .iter()
        .filter(|(_, a)| a.present)
        .filter(|(name, a)| {
            let field = match searchtype {
                "domain" => a.main_domain(name),
                "owner" => a.owner.clone().unwrap_or_else(|| "root".into()),
                "package" => a.package.clone().unwrap_or_else(|| "default".into()),
                "ip" => SHARED_IP.to_string(),
                _ => name.to_string(),
            };
            match (search, re) {
                (None, _) => true,
                (Some(s), None) => field == s,
                (Some(_), Some(r)) => r.is_match(&field),
            }
        })
        .collect()
}

pub(super) fn listaccts(w: &mut World, call: &Call<'_>) -> Answer {
    let p = call.params;
    let search_for = p.get("search").filter(|s| !s.is_empty());
    let searchtype = p.get("searchtype").map_or("user", String::as_str);
    let exact = p.get("searchmethod").is_some_and(|m| m == "exact");
    let re = match (search_for, exact) {
        (Some(s), false) => match regex::Regex::new(s) {
            Ok(r) => Some(r),
            Err(_) => return Answer::fail(format!("Invalid regular expression: {s}")),
        },
        _ => None,
    };
    let want: Option<Vec<&str>> = p
        .get("want")
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(str::trim).collect());
    let acct: Vec<Value> = search(w, searchtype, search_for.map(String::as_str), re.as_ref())
        .into_iter()
        .map(|(name, a)| {
            let mut rec = acct_json(w, name, a);
            rec["has_backup"] = 0.into();
            if let (Some(want), Some(obj)) = (&want, rec.as_object_mut()) {
                obj.retain(|k, _| want.contains(&k.as_str()));
            }
            rec
        })
        .collect();
    Answer::ok(Some(json!({ "acct": acct })))
}

/// `accountsummary`: one account by `user` (or else `domain`), exactly.
/// An unknown one answers result 0 with `data.acct` still there: null for a
/// user (`List.pm` returns nothing), an empty list for a domain.
pub(super) fn accountsummary(w: &mut World, call: &Call<'_>) -> Answer {
    let p = call.params;
    let (searchtype, wanted) = match (p.get("user"), p.get("domain")) {
        (Some(u), _) => ("user", u),
        (None, Some(d)) => ("domain", d),
        (None, None) => {
            return Answer::fail(
                "API failure: You must specify a user or domain to get a summary of.",
            );
        }
    };
    let found: Vec<Value> = search(w, searchtype, Some(wanted.as_str()), None)
        .into_iter()
        .map(|(name, a)| acct_json(w, name, a))
        .collect();
    if found.is_empty() {
        let mut a = Answer::fail("Account does not exist.");
        a.data = Some(match searchtype {
            "user" => json!({ "acct": null }),
            _ => json!({ "acct": [] }),
        });
        return a;
    }
    Answer::ok(Some(json!({ "acct": found })))
}

/// `get_domain_info`: every domain the caller controls (all for root),
/// sorted by name, with the fields of `Cpanel::Config::userdata::Cache`.
pub(super) fn get_domain_info(w: &mut World, call: &Call<'_>) -> Answer {
    let root = call.caller == "root";
    let domains: Vec<Value> = w
        .domain_rows()
        .into_iter()
        .filter(|r| root || r.owner == call.caller || r.user == call.caller)
        .map(|r| {
            json!({
                "domain": r.domain,
                "user": r.user,
                "user_owner": r.owner,
                "domain_type": r.kind,
                "parent_domain": r.parent,
                "docroot": r.docroot,
                "ipv4": SHARED_IP,
                "port": "80",
                "ipv4_ssl": SHARED_IP,
                "port_ssl": "443",
                "ipv6": null,
                "ipv6_is_dedicated": 0,
                "modsecurity_enabled": 1,
                "php_version": "ea-php81",
            })
        })
        .collect();
    Answer::ok(Some(json!({ "domains": domains })))
}

/// `Whostmgr/Authz.pm::verify_account_access` for `user`.
fn verify_account_access(w: &World, caller: &str, user: &str) -> Result<(), String> {
    if user == "root" && caller == "root" {
        return Ok(());
    }
    let acct = w.accounts.get(user).filter(|a| a.present);
    if caller == "root" {
        return match acct {
            Some(_) => Ok(()),
            None => Err(format!("You do not have a user named “{user}”.")),
        };
    }
    if user == caller || acct.is_some_and(|a| a.owner.as_deref() == Some(caller)) {
        return Ok(());
    }
    Err(format!(
        "You do not have access to an account named “{user}”."
    ))
}

/// `list_mysql_databases_and_users`: the account's databases, each with
/// its database users, and the server's MySQL settings. Errors come
/// without an XID (`get_string($_, 'no_id')`).
pub(super) fn list_mysql_databases_and_users(w: &mut World, call: &Call<'_>) -> Answer {
    let Some(user) = call
        .params
        .get("user")
        .filter(|u| !u.is_empty() && *u != "0")
    else {
        return Answer::fail("The parameter “user” is required.");
    };
    if let Err(e) = verify_account_access(w, call.caller, user) {
        return Answer::fail(e);
    }
    let dbs: Map<String, Value> = w
        .accounts
        .get(user)
        .map(|a| {
            a.databases
                .iter()
                .map(|d| (d.clone(), json!([d])))
                .collect()
        })
        .unwrap_or_default();
    Answer::ok(Some(json!({
        "mysql_databases": dbs,
        "mysql_config": {
            "use_db_prefix": 1,
            "prefix_length": 16,
            "mysql-version": "8.0",
        },
    })))
}

/// `delete_account_archives`: `scripts/unpkgacct USER [MOUNTPOINT]` removes
/// `MOUNTPOINT/cpmove-USER*` (default mount point: `/home`, where whm-sim's
/// restores keep their archive); what it prints comes back as
/// `metadata.output.messages`. Only a name with a slash (or `.`/`..`) makes
/// it fail.
pub(super) fn delete_account_archives(w: &mut World, call: &Call<'_>) -> Answer {
    let user = match required(w, call, "user") {
        Ok(u) => u.to_string(),
        Err(a) => return a,
    };
    let script = "/usr/local/cpanel/scripts/unpkgacct";
    if user.contains('/') || user == "." || user == ".." {
        let xid = w.xid();
        return Answer::fail(format!(
            "API failure: {xid} “{script}” reported error code “255” when it ended: {script}: invalid account “{user}”"
        ));
    }
    let mountpoint = call
        .params
        .get("mountpoint")
        .filter(|m| !m.is_empty())
        .map_or("/home", String::as_str);
    let mountpoint = match mountpoint.trim_end_matches('/') {
        "" => "/".to_string(),
        m => m.to_string(),
    };
    let kept = w
        .accounts
        .get_mut(&user)
        .filter(|a| a.archives > 0 && mountpoint == "/home");
    let message = match kept {
        Some(a) => {
            a.archives = 0;
            format!("Found archive: {mountpoint}/cpmove-{user}.tar.gz")
        }
        None => {
            format!("The mountpoint “{mountpoint}” does not contain any archives for “{user}”.")
        }
    };
    let mut a = Answer::ok(None);
    a.messages.push(message);
    a
}
