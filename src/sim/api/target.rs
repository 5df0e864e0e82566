//! Functions about the target itself: `validate_system_user`,
//! `available_transfer_modules`, `transfer_module_schema` (its accounts:
//! `accounts.rs`).

use serde_json::{Map, Value, json};

use super::super::engine::World;
use super::super::modules::{self, MODULES};
use super::{Answer, Call, missing, required};

/// System users and groups every cPanel server has (a part of its passwd).
pub(super) const SYSTEM_USERS: &[&str] = &[
    "root",
    "bin",
    "daemon",
    "adm",
    "lp",
    "sync",
    "shutdown",
    "halt",
    "mail",
    "nobody",
    "named",
    "mysql",
    "dovecot",
    "dovenull",
    "mailman",
    "cpanel",
    "cpanelphpmyadmin",
    "cpses",
];

/// Names cPanel reserves besides the system users (a subset of
/// `Cpanel::Validate::Username`'s list).
const RESERVED: &[&str] = &[
    "cpanelhorde",
    "cpanelphppgadmin",
    "cpanelroundcube",
    "postgres",
    "postgresql",
    "apache",
    "ftp",
    "virtfs",
    "all",
    "exim",
    "www",
    "system",
    "admin",
    "administrator",
];

pub(super) fn validate_system_user(w: &mut World, call: &Call<'_>) -> Answer {
    let user = match call.params.get("user") {
        Some(u) if !u.is_empty() => u.clone(),
        _ => return missing(w, "user", None),
    };
    let exists = w.accounts.get(&user).is_some_and(|a| a.present);
    let reserved = RESERVED.contains(&user.as_str()) || SYSTEM_USERS.contains(&user.as_str());
    let shape = |max: usize, extra: &[char]| {
        let mut cs = user.chars();
        user.len() <= max
            && cs.next().is_some_and(|c| c.is_ascii_lowercase())
            && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
    };
    let valid_for_new = !reserved && shape(16, &[]) && !user.starts_with("test");
    let valid_for_transfer = !reserved && shape(16, &['_', '-', '.']);
    Answer::ok(Some(json!({
        "exists": exists as u8,
        "reserved": reserved as u8,
        "valid_for_new": valid_for_new as u8,
        "valid_for_transfer": valid_for_transfer as u8,
    })))
}

pub(super) fn available_modules() -> Answer {
    let modules: Map<String, Value> = MODULES
        .iter()
        .map(|m| (m.name.to_string(), Value::String(m.type_id.to_string())))
        .collect();
    Answer::ok(Some(json!({ "modules": modules })))
}

pub(super) fn module_schema(w: &mut World, call: &Call<'_>) -> Answer {
    let name = match required(w, call, "module") {
        Ok(v) => v.to_string(),
        Err(a) => return a,
    };
    match modules::find(&name) {
        None => Answer::fail(format!(
            "The transfer session module “{name}” does not exist."
        )),
        Some(m) => Answer::ok(Some(json!({ "schema": modules::schema_json(m.schema) }))),
    }
}
