//! The inspection endpoints, for tests only (no auth, never faulted):
//! `GET /__sim/state` and `GET /__sim/requests` (design §6).
//!
//! `/__sim/state` is the oracle of end-to-end tests: `accounts` is keyed by
//! target username and lists every account the target has or was asked to
//! restore; `restores_started` counts every restore that began (a second
//! restore of a present account counts, and fails), `transfers_started`
//! every TRANSFER step that began for it; `domains` (main domain first, then
//! addon domains; empty while absent), `databases`, `suspended` and
//! `archives` (transfer archives kept: 1 after a completed restore, 0 after
//! `delete_account_archives`) describe what the target has. Sessions show their items' states
//! and the session directory's log files as named on disk (a leading dot
//! while a log is being written). `remotes` shows each source account
//! (by scenario host, then user) as a live transfer leaves it: `suspended`
//! and `proxied` to the target. `nvdata`/`nvdata_users` show the
//! `nvset` stores (root's by store name, others' by user, then store).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::engine::{RequestRecord, World};

pub(crate) fn state(w: &World) -> Value {
    let accounts: Map<String, Value> = w
        .accounts
        .iter()
        .map(|(k, a)| {
            (
                k.clone(),
                json!({
                    "source": a.source,
                    "user": a.user,
                    "transfers_started": a.transfers_started,
                    "restores_started": a.restores_started,
                    "restores_completed": a.restores_completed,
                    "restores_failed": a.restores_failed,
                    "present": a.present,
                    "owner": a.owner,
                    "package": a.package,
                    "domain": a.domain,
                    "domains": if a.present { a.domains(k) } else { Vec::new() },
                    "databases": a.databases,
                    "suspended": a.suspended,
                    "archives": a.archives,
                }),
            )
        })
        .collect();
    let packages: Map<String, Value> = w
        .packages
        .iter()
        .map(|(k, p)| {
            (
                k.clone(),
                json!({"present": p.present, "transfers": p.transfers}),
            )
        })
        .collect();
    let sessions: Vec<Value> = w
        .sessions
        .iter()
        .map(|s| {
            let items: Vec<Value> = s
                .items
                .iter()
                .map(|i| {
                    let mut v = json!({
                        "module": i.module.name,
                        "key": i.key,
                        "localuser": i.localuser,
                        "state": i.state.name(),
                        "priority": i.priority,
                    });
                    if let Some(p) = &i.prerequisite_key {
                        v["prerequisite_user"] = p.clone().into();
                    }
                    if let Some(f) = &i.failure {
                        v["failure"] = f.clone().into();
                    }
                    v
                })
                .collect();
            json!({
                "id": s.id,
                "source": s.host,
                "kind": match s.kind { super::engine::Kind::Root => "root", super::engine::Kind::User => "user" },
                "state": s.state.name(),
                "alive": s.alive(),
                "pid": s.pid,
                "deleted": s.deleted,
                "transfer_threads": s.transfer_threads,
                "restore_threads": s.restore_threads,
                "created_at": s.created_at,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "logs": s.logs.file_names(),
                "items": items,
            })
        })
        .collect();
    let (nvdata, nvdata_users) = nvdata(w);
    let mut remotes: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for ((host, user), r) in &w.remote_accounts {
        remotes.entry(host).or_default().insert(
            user.clone(),
            json!({ "suspended": r.suspended, "proxied": r.proxied }),
        );
    }
    json!({
        "sim_time": w.now,
        "crashes": w.crashes,
        "accounts": accounts,
        "packages": packages,
        "sessions": sessions,
        "requests": w.request_counts,
        "nvdata": nvdata,
        "nvdata_users": nvdata_users,
        "remotes": remotes,
        "requests_in_flight": w.in_flight,
        "requests_in_flight_max": w.in_flight_max,
    })
}

/// `nvdata`: root's stores by name (`""`: its default store);
/// `nvdata_users`: other callers' stores, by user then store name.
fn nvdata(w: &World) -> (Value, Value) {
    let mut root = Map::new();
    let mut users: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for ((user, store), pairs) in &w.nvdata {
        let stores = if user == "root" {
            &mut root
        } else {
            users.entry(user).or_default()
        };
        stores.insert(store.clone(), json!(pairs));
    }
    (json!(root), json!(users))
}

pub(crate) fn request_json(r: &RequestRecord) -> Value {
    json!({
        "index": r.index,
        "method": r.method,
        "function": r.function,
        "query_keys": r.query_keys,
        "body_keys": r.body_keys,
        "params": r.params,
        "sim_time": r.sim_time,
        "auth_user": r.auth_user,
        "tag": r.tag,
        "fault": r.fault,
        "status": r.status,
        "result": r.result,
        "reason": r.reason,
        "started": r.sim_time,
        "finished": r.finished,
    })
}

pub(crate) fn requests(w: &World) -> Value {
    Value::Array(w.requests.iter().map(request_json).collect())
}
