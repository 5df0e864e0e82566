//! The WHM API 1 functions whm-sim serves, with the server's own parameter
//! checks and refusal texts (whm-transfer-api.md §1, §3; `API/1/Transfers.pm`).
//!
//! Like the real server, only `enqueue_transfer_item` refuses unknown keys
//! (against the module's schema); other functions ignore keys they do not
//! use, and boolean/enum values are not range-checked where the Perl code
//! does not check them. Texts marked "whm-sim:" in the code are not from
//! cPanel's source (the real text is unknown); everything else is.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::clock::condensed_utc;
use super::engine::{Kind, Session, World, leading_digits};
use super::masterlog::LogFile;
use super::modules::{self, MODULES, SessionKindRule};
use super::session::StartResult;

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
    /// `fetch_transfer_session_log` with `log_blocking`: the log (session,
    /// plain name) is still active; ask again when the world changes.
    pub wait_for_log: Option<(usize, String)>,
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
            meta["output"] = json!({ "warnings": self.warnings });
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
        "retrieve_transfer_session_remote_analysis" => retrieve_analysis(w, call),
        "remote_basic_credential_check" => credential_check(w, call),
        "validate_system_user" => validate_system_user(w, call),
        "available_transfer_modules" => available_modules(),
        "transfer_module_schema" => module_schema(w, call),
        "listaccts" => listaccts(w, call),
        other => Answer::fail(format!(
            "Unknown app (“{other}”) requested for this version (1) of the API."
        )),
    }
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

/// `Session.pm::_generate_session_id`.
fn new_session_id(w: &mut World, host: &str, initiator: &str) -> String {
    let stamp = condensed_utc(w.unix_now());
    let template: String = host.chars().take(15).collect::<String>()
        + &initiator.chars().take(5).collect::<String>()
        + &stamp;
    let mut id: String = template
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let pad = 36usize.saturating_sub(id.len());
    id.push_str(&w.random_alnum(pad));
    id
}

fn new_session(
    w: &mut World,
    id: String,
    kind: Kind,
    caller: &str,
    host: &str,
    remote: Option<usize>,
    params: &BTreeMap<String, String>,
) -> usize {
    let threads = |k: &str| {
        params
            .get(k)
            .and_then(|v| leading_digits(v))
            .filter(|n| *n > 0)
            .map_or(1, |n| n.min(u32::MAX as u64) as u32)
    };
    let (tt, rt) = match kind {
        Kind::Root => (threads("transfer_threads"), threads("restore_threads")),
        Kind::User => (1, 1),
    };
    let s = w.sessions.len();
    w.sessions.push(Session::new(
        id.clone(),
        kind,
        caller.to_string(),
        host.to_string(),
        remote,
        params.clone(),
        tt,
        rt,
        w.now,
    ));
    w.index.insert(id, s);
    s
}

fn find_remote(w: &World, host: &str) -> Option<usize> {
    w.scenario
        .remotes
        .iter()
        .position(|r| r.host.eq_ignore_ascii_case(host) || r.ip.as_deref() == Some(host))
}

fn is_local(w: &World, host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    h == "localhost"
        || h.starts_with("127.")
        || h == "::1"
        || h == w.scenario.hostname.to_ascii_lowercase()
}

/// The SSH credential check against a remote (`Whostmgr::Remote`). Err:
/// (error, response). The error texts are whm-sim's own.
fn check_ssh(w: &World, r: usize, p: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    let Some(ssh) = &w.scenario.remotes[r].ssh else {
        return Ok(());
    };
    let port = p
        .get("port")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(22);
    if port != ssh.port as u32 {
        return Err((
            format!("connect to host port {port}: Connection refused"),
            String::new(),
        ));
    }
    let user = p.get("user").map_or("root", String::as_str);
    let denied = || {
        (
            "Permission denied (publickey,password).".to_string(),
            String::new(),
        )
    };
    if user != ssh.user {
        return Err(denied());
    }
    if let Some(key) = p.get("sshkey_name").filter(|k| !k.is_empty()) {
        if ssh.sshkey_name.as_deref() != Some(key) {
            return Err(denied());
        }
        if let Some(pp) = &ssh.sshkey_passphrase
            && p.get("sshkey_passphrase") != Some(pp)
        {
            let msg = format!("The passphrase for the key “{key}” is incorrect.");
            return Err((msg.clone(), msg));
        }
    } else if ssh.password.is_none() || p.get("password") != ssh.password.as_ref() {
        return Err(denied());
    }
    if user != "root" {
        match p.get("root_escalation_method").map(String::as_str) {
            Some("sudo") => {}
            Some("su") | None => {
                if ssh.root_password.is_none()
                    || p.get("root_password") != ssh.root_password.as_ref()
                {
                    return Err((
                        "su: Authentication failure".into(),
                        "su: Authentication failure".into(),
                    ));
                }
            }
            Some(other) => {
                return Err((
                    format!("Unknown escalation method “{other}”."),
                    String::new(),
                ));
            }
        }
    }
    Ok(())
}

/// `Preflight/RemoteRoot/Create.pm`, then `analyze_remote`.
fn create_root(w: &mut World, call: &Call<'_>) -> Answer {
    let p = call.params;
    if let Some(t) = p.get("comm_transport")
        && !matches!(t.as_str(), "ssh" | "whostmgr" | "whostmgr_insecure")
    {
        return Answer::fail(format!("Invalid “comm_transport” ({t})."));
    }
    let host = match p.get("host").map(|h| h.trim()) {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => return Answer::fail("You must specify a source host."),
    };
    if is_local(w, &host) {
        return Answer::fail(format!(
            "“{host}” resolves to the local server. Provide a remote hostname or [IP] address instead."
        ));
    }
    let Some(r) = find_remote(w, &host) else {
        return Answer::fail(format!(
            "The system was unable to resolve the host, “{host}”, to an IP address."
        ));
    };
    let transport = p
        .get("comm_transport")
        .map_or("ssh", String::as_str)
        .to_string();
    if let Err((err, resp)) = check_ssh(w, r, p) {
        let mut a = Answer::fail(format!(
            "The remote basic credential check failed due to an error ({err}) and response: {resp}"
        ));
        a.warnings.push(format!(
            "{transport} transport failed (The remote basic credential check failed due to an error ({err}) and response: {resp}); no more transports to try."
        ));
        return a;
    }
    let id = new_session_id(w, &host, "copyacct");
    let s = new_session(w, id.clone(), Kind::Root, call.caller, &host, Some(r), p);
    let create_rawout = format!(
        "Fetching information from remote host: “{host}” …\nRemote server type: cPanel\nCreating transfer session “{id}” …\n"
    );
    if let Some(msg) = w.scenario.remotes[r].analysis_error.clone() {
        w.sessions[s].last_activity = w.now;
        return Answer::fail(msg);
    }
    let analyze_rawout = analysis_text(w, r);
    Answer::ok(Some(json!({
        "transfer_session_id": id,
        "create_rawout": create_rawout,
        "analyze_rawout": analyze_rawout,
    })))
}

fn analysis_text(w: &World, r: usize) -> String {
    let remote = &w.scenario.remotes[r];
    format!(
        "Analyzing remote “{}” …\nFound {} account(s) and {} package(s).\n",
        remote.host,
        remote.accounts.len(),
        remote.packages.len()
    )
}

/// `Preflight/RemoteUser/Create.pm`.
fn create_user(w: &mut World, call: &Call<'_>) -> Answer {
    let p = call.params;
    let host = match p.get("host") {
        Some(h) if !h.is_empty() => h.clone(),
        _ => return Answer::fail("You must specify a “host” argument."),
    };
    let Some(password) = p.get("password").filter(|v| !v.is_empty()) else {
        return Answer::fail("You must specify a “password” argument.");
    };
    let Some(r) = find_remote(w, &host).filter(|_| !is_local(w, &host)) else {
        return Answer::fail(format!(
            "The system was unable to resolve the hostname, “{host}”, to an IP address."
        ));
    };
    let remote = &w.scenario.remotes[r];
    let owner = remote
        .accounts
        .iter()
        .find(|a| a.password.as_deref() == Some(password.as_str()))
        .map(|a| a.user.clone());
    let Some(user) = owner else {
        // whm-sim: the real text of a refused cPanel login is unknown
        return Answer::fail(format!(
            "The system failed to log in to “{host}” with the given password: Access denied"
        ));
    };
    let id = new_session_id(w, &host, "norootcopy");
    let s = new_session(w, id.clone(), Kind::User, call.caller, &host, Some(r), p);
    w.sessions[s].remote_user = Some(user);
    Answer::ok(Some(json!({ "transfer_session_id": id })))
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
    let Some(schema) = module.schema else {
        return Answer::fail(format!(
            "whm-sim does not simulate the “{module_name}” module."
        ));
    };
    for key in schema.required {
        if !args.contains_key(*key) {
            return Answer::fail(format!(
                "{xid} The “{key}” parameter is required for the “{module_name}” module."
            ));
        }
    }
    if let Some(bad) = args.keys().find(|k| !schema.keys.contains(&k.as_str())) {
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
    let mut a = Answer::ok(Some(json!({ "log": file.text })));
    if !file.complete && w.faults.log_blocking {
        a.wait_for_log = Some((s, logfile));
    }
    a
}

fn analyze(w: &mut World, call: &Call<'_>) -> Answer {
    let id = match required(w, call, "transfer_session_id") {
        Ok(v) => v.to_string(),
        Err(a) => return a,
    };
    let s = match lookup(w, Some(&id), call.caller) {
        Ok(s) => s,
        Err(e) => return Answer::fail(e),
    };
    if let Some(msg) = w.remote(s).and_then(|r| r.analysis_error.clone()) {
        return Answer::fail(msg);
    }
    w.sessions[s].last_activity = w.now;
    Answer::ok(None)
}

fn retrieve_analysis(w: &mut World, call: &Call<'_>) -> Answer {
    let id = call.params.get("transfer_session_id").cloned();
    let s = match lookup(w, id.as_deref(), call.caller) {
        Ok(s) => s,
        Err(e) => return Answer::fail(e),
    };
    let Some(remote) = w.remote(s).cloned() else {
        return Answer::fail("whm-sim: this session has no remote analysis.");
    };
    let accounts: Vec<Value> = remote
        .accounts
        .iter()
        .map(|a| {
            json!({
                "user": a.user,
                "domain": a.domain.clone().unwrap_or_else(|| format!("{}.example.com", a.user)),
                "owner": a.owner,
                "plan": a.package.clone().unwrap_or_else(|| "default".into()),
                "size": a.size.0,
                "suspended": 0,
            })
        })
        .collect();
    let resellers: Vec<&str> = {
        let mut r: Vec<&str> = remote
            .accounts
            .iter()
            .filter(|a| a.owner != "root")
            .map(|a| a.owner.as_str())
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    };
    let local_users: Vec<&String> = w
        .accounts
        .iter()
        .filter(|(_, a)| a.present)
        .map(|(k, _)| k)
        .collect();
    let sess = &w.sessions[s];
    Answer::ok(Some(json!({
        "transfer_session_id": sess.id,
        "items": {
            "accounts": accounts,
            "packages": remote.packages,
        },
        "local": {
            "host": w.scenario.hostname,
            "version": "11.120.0.16",
            "major_version": "11.120",
            "users": local_users,
            "available_ips": [],
            "dedicated_ips": [],
            "dbs": {},
            "domains": [],
            "groups": [],
        },
        "remote": {
            "host": remote.host,
            "hostname": remote.host,
            "version": "11.120.0.16",
            "major_version": "11.120",
            "server_type": "cPanel",
            "resellers": resellers,
            "has_xfertool": 1,
            "supports_live_transfers": 0,
            "dbs": {},
        },
        "modules": {},
        "options": {
            "skip_reseller_privs": sess.options.get("copy_reseller_privs").map_or(0, |v| (v == "1") as u8),
            "unrestricted": sess.options.get("unrestricted_restore").map_or(0, |v| (v == "1") as u8),
        },
        "config": { "shared_mysql_server": 0 },
    })))
}

/// `Cpanel/SSH/CredentialCheck.pm`: result from the check, data always.
fn credential_check(w: &mut World, call: &Call<'_>) -> Answer {
    let p = call.params;
    for key in ["host", "user"] {
        if p.get(key).is_none_or(|v| v.is_empty()) {
            let xid = w.xid();
            return Answer::fail(format!("{xid} The parameter “{key}” is required."));
        }
    }
    let host = p["host"].clone();
    if is_local(w, &host) {
        return Answer::fail(format!(
            "“{host}” resolves to the local server. Provide a remote hostname or [IP] address instead."
        ));
    }
    let Some(r) = find_remote(w, &host) else {
        let xid = w.xid();
        return Answer::fail(format!(
            "{xid} The system was unable to resolve the host, “{host}”, to an IP address."
        ));
    };
    let output = "Basic credential check …\n".to_string();
    match check_ssh(w, r, p) {
        Ok(()) => {
            let method = (p["user"] != "root").then(|| {
                p.get("root_escalation_method")
                    .cloned()
                    .unwrap_or_else(|| "su".into())
            });
            let mut a = Answer::ok(Some(json!({
                "output": output,
                "response": "basic credential check\n",
                "escalation_method_used": method,
            })));
            a.reason = "OK".into();
            a
        }
        Err((err, resp)) => {
            let mut a = Answer::fail(err);
            a.data =
                Some(json!({ "output": output, "response": resp, "escalation_method_used": null }));
            a
        }
    }
}

/// Reserved names (a subset of `Cpanel::Validate::Username`'s list).
const RESERVED: &[&str] = &[
    "root",
    "nobody",
    "cpanel",
    "cpanelhorde",
    "cpanelphpmyadmin",
    "cpanelphppgadmin",
    "cpanelroundcube",
    "cpses",
    "mailman",
    "mysql",
    "postgres",
    "postgresql",
    "apache",
    "named",
    "bin",
    "daemon",
    "adm",
    "lp",
    "sync",
    "shutdown",
    "halt",
    "mail",
    "ftp",
    "virtfs",
    "all",
    "dovecot",
    "exim",
    "www",
    "system",
    "admin",
    "administrator",
];

fn validate_system_user(w: &mut World, call: &Call<'_>) -> Answer {
    let user = match call.params.get("user") {
        Some(u) if !u.is_empty() => u.clone(),
        _ => return missing(w, "user", None),
    };
    let exists = w.accounts.get(&user).is_some_and(|a| a.present);
    let reserved = RESERVED.contains(&user.as_str());
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

fn available_modules() -> Answer {
    let modules: Map<String, Value> = MODULES
        .iter()
        .map(|m| (m.name.to_string(), Value::String(m.type_id.to_string())))
        .collect();
    Answer::ok(Some(json!({ "modules": modules })))
}

fn module_schema(w: &mut World, call: &Call<'_>) -> Answer {
    let name = match required(w, call, "module") {
        Ok(v) => v.to_string(),
        Err(a) => return a,
    };
    match modules::find(&name) {
        None => Answer::fail(format!(
            "The transfer session module “{name}” does not exist."
        )),
        Some(m) => match m.schema {
            Some(sc) => Answer::ok(Some(json!({ "schema": modules::schema_json(sc) }))),
            None => Answer::fail(format!(
                "whm-sim does not know the schema of the “{name}” module."
            )),
        },
    }
}

fn listaccts(w: &mut World, call: &Call<'_>) -> Answer {
    let p = call.params;
    let search = p.get("search").filter(|s| !s.is_empty());
    let searchtype = p.get("searchtype").map_or("user", String::as_str);
    let exact = p.get("searchmethod").is_some_and(|m| m == "exact");
    let re = match (search, exact) {
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
    let mut acct = Vec::new();
    for (name, a) in w.accounts.iter().filter(|(_, a)| a.present) {
        let domain = a
            .domain
            .clone()
            .unwrap_or_else(|| format!("{name}.example.com"));
        let plan = a.package.clone().unwrap_or_else(|| "default".into());
        let owner = a.owner.clone().unwrap_or_else(|| "root".into());
        let field = match searchtype {
            "domain" => domain.clone(),
            "owner" => owner.clone(),
            "package" => plan.clone(),
            "ip" => "192.0.2.10".to_string(),
            _ => name.clone(),
        };
        let hit = match (search, &re) {
            (None, _) => true,
            (Some(s), None) => &field == s,
            (Some(_), Some(r)) => r.is_match(&field),
        };
        if !hit {
            continue;
        }
        let mut rec = json!({
            "user": name,
            "domain": domain,
            "owner": owner,
            "plan": plan,
            "suspended": 0,
            "ip": "192.0.2.10",
            "partition": "home",
            "email": "*unknown*",
            "unix_startdate": a.restored_at.map_or(w.clock.unix(0.0), |t| w.clock.unix(t)),
        });
        if let (Some(want), Some(obj)) = (&want, rec.as_object_mut()) {
            obj.retain(|k, _| want.contains(&k.as_str()));
        }
        acct.push(rec);
    }
    Answer::ok(Some(json!({ "acct": acct })))
}
