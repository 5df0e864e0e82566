//! The WHM API 1 functions whm-sim serves, with the server's own parameter
//! checks and refusal texts (docs/whm.md §1, §2.1, §3; `API/1/Transfers.pm`).
//!
//! Like the real server, only `enqueue_transfer_item` refuses unknown keys
//! (against the module's schema); other functions ignore keys they do not
//! use, and boolean/enum values are not range-checked where the Perl code
//! does not check them. Texts marked "whm-sim:" in the code are not from
//! cPanel's source (the real text is unknown); everything else is.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::engine::{Kind, World};
use super::masterlog::LogFile;
use super::modules::{self, SessionKindRule};
use super::session::StartResult;

mod accounts;
mod analysis;
mod nvdata;
mod remote;
mod target;

pub(crate) use analysis::db_dump;
use remote::{analyze, create_root, create_user, credential_check};
use target::{available_modules, module_schema, validate_system_user};

/// One function call: merged parameters (last occurrence wins) and the
/// authenticated token's user.
pub(crate) struct Call<'a> {
    pub function: &'a str,
    pub params: &'a BTreeMap<String, String>,
    pub caller: &'a str,
}

/// What a function answers: the envelope's `metadata` and `data`.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub result: u8,
    pub reason: String,
    pub data: Option<Value>,
    pub warnings: Vec<String>,
    /// `metadata.output.messages` (what a script printed).
    pub messages: Vec<String>,
    /// `fetch_transfer_session_log` with `log_blocking`: the log (session,
    /// plain name) is still active; ask again when the world changes.
    pub wait_for_log: Option<Box<(usize, String)>>,
}

impl Answer {
    fn ok(data: Option<Value>) -> Answer {
        Answer {
            result: 1,
            reason: "OK".into(),
            data,
            ..Answer::default()
        }
    }
    fn fail(reason: impl Into<String>) -> Answer {
        Answer {
            result: 0,
            reason: reason.into(),
            ..Answer::default()
        }
    }

    /// The JSON envelope (`Whostmgr/API/1/Data/Wrapper.pm`).
    pub(crate) fn envelope(&self, function: &str, version: u64) -> Value {
        let mut meta = json!({
            "command": function,
            "version": version,
            "result": self.result,
            "reason": self.reason,
        });
        if !self.warnings.is_empty() {
            meta["output"]["warnings"] = json!(self.warnings);
        }
        if !self.messages.is_empty() {
            meta["output"]["messages"] = json!(self.messages);
        }
        let mut v = json!({ "metadata": meta });
        if let Some(d) = &self.data {
            v["data"] = d.clone();
        }
        v
    }
}

/// The functions whm-sim implements (anything else: "Unknown app").
pub const FUNCTIONS: &[&str] = &[
    "create_remote_root_transfer_session",
    "create_remote_user_transfer_session",
    "enqueue_transfer_item",
    "start_transfer_session",
    "get_transfer_session_state",
    "pause_transfer_session",
    "abort_transfer_session",
    "fetch_transfer_session_log",
    "analyze_transfer_session_remote",
    "retrieve_transfer_session_remote_analysis",
    "remote_basic_credential_check",
    "validate_system_user",
    "available_transfer_modules",
    "transfer_module_schema",
    "listaccts",
    "nvset",
    "nvget",
    "accountsummary",
    "get_domain_info",
    "list_mysql_databases_and_users",
    "delete_account_archives",
];

const SESSION_DIR: &str = "/var/cpanel/transfer_sessions";

/// `Cpanel::Exception::MissingParameter` thrown from an API function: the
/// caller is the Perl function (`Cpanel/Exception/Caller.pm`).
fn missing(w: &mut World, key: &str, perl_fn: Option<&str>) -> Answer {
    let xid = w.xid();
    match perl_fn {
        Some(f) => Answer::fail(format!(
            "API failure: {xid} Provide the “{key}” parameter for the “{f}” function."
        )),
        None => Answer::fail(format!("API failure: {xid} Provide the “{key}” parameter.")),
    }
}

fn transfers_fn(name: &str) -> String {
    format!("Whostmgr::API::1::Transfers::{name}")
}

/// `get_length_required_argument`.
fn required<'p>(w: &mut World, call: &Call<'p>, key: &str) -> Result<&'p str, Answer> {
    match call.params.get(key).map(String::as_str) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(missing(w, key, Some(&transfers_fn(call.function)))),
    }
}

pub(crate) fn dispatch(w: &mut World, call: &Call<'_>) -> Answer {
    match call.function {
        "create_remote_root_transfer_session" => create_root(w, call),
        "create_remote_user_transfer_session" => create_user(w, call),
        "enqueue_transfer_item" => enqueue(w, call),
        "start_transfer_session" => start(w, call),
        "get_transfer_session_state" => get_state(w, call),
        "pause_transfer_session" => set_state(w, call, "pause"),
        "abort_transfer_session" => set_state(w, call, "abort"),
        "fetch_transfer_session_log" => fetch_log(w, call),
        "analyze_transfer_session_remote" => analyze(w, call),
        "retrieve_transfer_session_remote_analysis" => analysis::retrieve(w, call),
        "remote_basic_credential_check" => credential_check(w, call),
        "validate_system_user" => validate_system_user(w, call),
        "available_transfer_modules" => available_modules(),
        "transfer_module_schema" => module_schema(w, call),
        "listaccts" => accounts::listaccts(w, call),
        "accountsummary" => accounts::accountsummary(w, call),
        "get_domain_info" => accounts::get_domain_info(w, call),
        "list_mysql_databases_and_users" => accounts::list_mysql_databases_and_users(w, call),
        "delete_account_archives" => accounts::delete_account_archives(w, call),
        "nvset" if w.scenario.target.nvdata => nvdata::nvset(w, call),
        "nvget" if w.scenario.target.nvdata => nvdata::nvget(w, call),
        other => unknown_app(other),
    }
}

/// What the server answers for a function it does not have
/// (`Whostmgr/API/1/Data/Wrapper.pm`).
fn unknown_app(function: &str) -> Answer {
    Answer::fail(format!(
        "Unknown app (“{function}”) requested for this version (1) of the API."
    ))
}

// ----- sessions --------------------------------------------------------------

/// `Setup.pm::setup_session_obj` + `DBBackend.pm::get_session_connection`.
fn lookup(w: &mut World, id: Option<&str>, caller: &str) -> Result<usize, String> {
    let xid = w.xid();
    let id = match id {
        Some(i) if !i.is_empty() => i,
        _ => {
            return Err(format!(
                "{xid} The “id” or “create” parameter is required to create a session object."
            ));
        }
    };
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{xid} The session ID “{id}” may only contain alphanumeric characters and underscores."
        ));
    }
    let Some(&s) = w.index.get(id) else {
        return Err(format!(
            "{xid} The system failed to connect to the “SQLite” database “{SESSION_DIR}/{id}/db.sqlite” because of an error: unable to open database file"
        ));
    };
    if caller != "root" && w.sessions[s].creator != caller {
        return Err(format!("{xid} Access Denied to the session: {id}"));
    }
    Ok(s)
}

/// `API::enqueue_transfer_item` → `Session.pm::enqueue`.
fn enqueue(w: &mut World, call: &Call<'_>) -> Answer {
    for key in ["transfer_session_id", "module"] {
        if !call.params.contains_key(key) {
            return missing(w, key, Some(&transfers_fn("enqueue_transfer_item")));
        }
    }
    let mut args = call.params.clone();
    let id = args.remove("transfer_session_id").unwrap_or_default();
    let module_name = args.remove("module").unwrap_or_default();
    let Some(module) = modules::find(&module_name) else {
        return Answer::fail(format!(
            "The transfer session module “{module_name}” does not exist."
        ));
    };
    let non_root_ok = module.session != SessionKindRule::RootOnly;
    if call.caller != "root" && !non_root_ok {
        return Answer::fail(format!(
            "The transfer session module “{module_name}” can not be enqueued as a non-root user."
        ));
    }
    let s = match lookup(w, Some(&id), call.caller) {
        Ok(s) => s,
        Err(e) => return Answer::fail(e),
    };
    let kind = w.sessions[s].kind;
    let xid = w.xid();
    match (kind, module.session) {
        (Kind::User, SessionKindRule::RootOnly) => {
            return Answer::fail(format!(
                "API failure: {xid} User-authenticated transfer sessions cannot enqueue items of this type. Try again from a root-authenticated transfer session."
            ));
        }
        (Kind::Root, SessionKindRule::UserOnly) => {
            return Answer::fail(format!(
                "API failure: {xid} Root-authenticated transfer sessions cannot enqueue items of this type. Try again from a user-authenticated transfer session."
            ));
        }
        _ => {}
    }
    if let Some(refusal) = live_transfer_refusal(w, s, module.name, &args) {
        let xid = w.xid();
        return Answer::fail(format!("API failure: {xid} {refusal}"));
    }
    if !module.enqueue {
        return Answer::fail(format!(
            "whm-sim does not simulate the “{module_name}” module."
        ));
    }
    let schema = module.schema;
    for key in schema.required {
        if !args.contains_key(*key) {
            return Answer::fail(format!(
                "{xid} The “{key}” parameter is required for the “{module_name}” module."
            ));
        }
    }
    if let Some(bad) = args.keys().find(|k| !schema.has_key(k)) {
        return Answer::fail(format!(
            "{xid} The “{bad}” parameter is not valid for the “{module_name}” module."
        ));
    }
    let key = args.get(schema.primary).cloned().unwrap_or_default();
    if key.is_empty() {
        // `_set_state` confesses "Missing item" inside the try
        return Answer::fail("Missing item".to_string());
    }
    if w.sessions[s].item_by_key(module.type_id, &key).is_some() {
        return Answer::fail(format!(
            "{xid} An item with a “{}” key value of “{key}” and a type of “{module_name}” already exists in the queue.",
            schema.primary
        ));
    }
    let localuser = args
        .get("localuser")
        .cloned()
        .unwrap_or_else(|| key.clone());
    w.insert_item(s, module, key, localuser, args);
    Answer::ok(None)
}

/// `Items/AccountBase.pm::_prevalidate` → `_prevalidate_live_transfer` of
/// `AccountRemoteRoot.pm` (the remote's version must be 11.89 or later) and
/// `AccountRemoteUser.pm` (11.95, with the version as `11.MAJOR`). The
/// target's hostname is taken to resolve. A remote with
/// `supports_live_transfers: false` is refused as if too old, naming its
/// `version`.
fn live_transfer_refusal(
    w: &World,
    s: usize,
    module: &str,
    args: &BTreeMap<String, String>,
) -> Option<String> {
    let wanted = args
        .get("live_transfer")
        .is_some_and(|v| !v.is_empty() && v != "0");
    if !wanted || !modules::is_account(module) {
        return None;
    }
    let remote = w.remote(s)?;
    let host = &w.sessions[s].host;
    let (min, version) = if module == "AccountRemoteUser" {
        let major = remote.version.split('.').nth(1).unwrap_or("0");
        ("11.95", format!("11.{major}"))
    } else {
        ("11.89", remote.version.clone())
    };
    let supported = remote.supports_live_transfers && analysis::version_at_least(&version, min);
    (!supported).then(|| {
        format!(
            "The “live_transfer” option requires a source server that runs cPanel & WHM version “{min}” or greater. “{host}” runs version “{version}”."
        )
    })
}

fn start(w: &mut World, call: &Call<'_>) -> Answer {
    let id = call
        .params
        .get("transfer_session_id")
        .cloned()
        .unwrap_or_default();
    let s = match lookup(w, Some(&id), call.caller) {
        Ok(s) => s,
        Err(e) => {
            return Answer::fail(format!(
                "The system failed to start the transfer session “{id}” because of an error: {e}"
            ));
        }
    };
    match w.on_start(s) {
        StartResult::Pid(pid) => Answer::ok(Some(json!({ "pid": pid }))),
        StartResult::Refused(e) => Answer::fail(format!(
            "The system failed to start the transfer session “{id}” because of an error: {e}"
        )),
    }
}

fn get_state(w: &mut World, call: &Call<'_>) -> Answer {
    match lookup(
        w,
        call.params.get("transfer_session_id").map(String::as_str),
        call.caller,
    ) {
        Ok(s) => Answer::ok(Some(json!({ "state_name": w.sessions[s].state.name() }))),
        Err(e) => Answer::fail(e),
    }
}

fn set_state(w: &mut World, call: &Call<'_>, what: &str) -> Answer {
    let s = match lookup(
        w,
        call.params.get("transfer_session_id").map(String::as_str),
        call.caller,
    ) {
        Ok(s) => s,
        Err(e) => return Answer::fail(e),
    };
    let ok = if what == "pause" {
        w.on_pause(s)
    } else {
        w.on_abort(s)
    };
    if ok {
        Answer::ok(None)
    } else {
        Answer::fail(format!(
            "The system failed to “{what}” the transfer session."
        ))
    }
}

fn fetch_log(w: &mut World, call: &Call<'_>) -> Answer {
    let id = match required(w, call, "transfer_session_id") {
        Ok(v) => v.to_string(),
        Err(a) => return a,
    };
    let logfile = match required(w, call, "logfile") {
        Ok(v) => v.to_string(),
        Err(a) => return a,
    };
    let s = match lookup(w, Some(&id), call.caller) {
        Ok(s) => s,
        Err(e) => return Answer::fail(e),
    };
    let found: Option<LogFile> = if logfile.contains('/') || logfile.starts_with('.') {
        None
    } else {
        w.sessions[s].logs.get(&logfile).cloned()
    };
    let Some(file) = found else {
        let xid = w.xid();
        return Answer::fail(format!(
            "API failure: {xid} The system failed to locate either the file “{SESSION_DIR}/{id}/.{logfile}” or the file “{SESSION_DIR}/{id}/{logfile}”."
        ));
    };
    let mut a = Answer::ok(Some(json!({ "log": file.text_at(w.now) })));
    if !file.complete && w.faults.log_blocking {
        a.wait_for_log = Some(Box::new((s, logfile)));
    }
    a
}
