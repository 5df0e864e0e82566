//! Functions that reach a remote (source) server: creating root and user
//! sessions (`Preflight/Remote*/Create.pm`), the credential check and the
//! remote analysis.

use std::collections::BTreeMap;

use serde_json::json;

use super::super::clock::condensed_utc;
use super::super::engine::{Kind, Session, World, leading_digits};
use super::{Answer, Call, lookup, required};

/// `Session.pm::_generate_session_id`.
pub(super) fn new_session_id(w: &mut World, host: &str, initiator: &str) -> String {
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

pub(super) fn new_session(
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

pub(super) fn find_remote(w: &World, host: &str) -> Option<usize> {
    w.scenario
        .remotes
        .iter()
        .position(|r| r.host.eq_ignore_ascii_case(host) || r.ip.as_deref() == Some(host))
}

pub(super) fn is_local(w: &World, host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    h == "localhost"
        || h.starts_with("127.")
        || h == "::1"
        || h == w.scenario.hostname.to_ascii_lowercase()
}

/// The SSH credential check against a remote (`Whostmgr::Remote`). Err:
/// (error, response). The error texts are whm-sim's own.
pub(super) fn check_ssh(
    w: &World,
    r: usize,
    p: &BTreeMap<String, String>,
) -> Result<(), (String, String)> {
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
pub(super) fn create_root(w: &mut World, call: &Call<'_>) -> Answer {
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
    w.sessions[s].analysis = Some(super::analysis::snapshot(w, r));
    Answer::ok(Some(json!({
        "transfer_session_id": id,
        "create_rawout": create_rawout,
        "analyze_rawout": analyze_rawout,
    })))
}

pub(super) fn analysis_text(w: &World, r: usize) -> String {
    let remote = &w.scenario.remotes[r];
    format!(
        "Analyzing remote “{}” …\nFound {} account(s) and {} package(s).\n",
        remote.host,
        remote.accounts.len(),
        remote.packages.len()
    )
}

/// `Preflight/RemoteUser/Create.pm`.
pub(super) fn create_user(w: &mut World, call: &Call<'_>) -> Answer {
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

pub(super) fn analyze(w: &mut World, call: &Call<'_>) -> Answer {
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
    if let Some(r) = w.sessions[s].remote {
        w.sessions[s].analysis = Some(super::analysis::snapshot(w, r));
    }
    w.sessions[s].last_activity = w.now;
    Answer::ok(None)
}

/// `Cpanel/SSH/CredentialCheck.pm`: result from the check, data always.
pub(super) fn credential_check(w: &mut World, call: &Call<'_>) -> Answer {
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
