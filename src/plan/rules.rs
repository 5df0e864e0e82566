//! The semantic rules of a plan (design §4): everything the types cannot say.
//!
//! Owns: [`check`], which runs every rule over a typed [`Plan`] and returns
//! every [`Problem`] found (not only the first), each with the document path
//! of the offending node. Does not own: positions (`locate` turns paths into
//! line:column) or rendering (`diag`).
//!
//! Cost: every rule is linear in the plan's size (hash maps keyed by name;
//! cycle searches visit each node once), so a 100,000-account plan checks in
//! milliseconds. The one search that is not linear, `after` edges against
//! cross-source reseller edges, is bounded by sources² (at most a few hundred
//! sources in practice).
//!
//! Username rules follow cPanel's "Reserved, Invalid, and Misconfigured
//! Usernames" (docs.cpanel.net/knowledge-base/accounts/reserved-invalid-and-misconfigured-usernames/):
//! only lowercase letters and digits, at most 16 characters, not beginning
//! with a digit or `test`, not ending with `assword`; a hyphen cannot be used
//! to create an account but an account may be renamed to a hyphenated name on
//! transfer. Accounts that already exist on a source may break the creation
//! rules (e.g. a leading digit allowed by `/etc/allowstupidstuff`), so a
//! source `user` is checked leniently and the name an account will have on
//! the target strictly. The reserved list below is a subset of cPanel's
//! (`Cpanel/Validate/Username/Core.pm` and `/etc/aliases`); `ferry check`
//! asks the target (`validate_system_user`) for the full answer.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use super::index::{AccountIndex, FxHasher, Slot};
use super::locate::{Anchor, DocPath};
use super::model::*;

/// One rule violation: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: DocPath,
    pub anchor: Anchor,
    pub message: String,
    pub help: Option<String>,
}

impl Problem {
    fn at(path: DocPath, message: impl Into<String>) -> Self {
        Problem {
            path,
            anchor: Anchor::Value,
            message: message.into(),
            help: None,
        }
    }
    fn key(path: DocPath, message: impl Into<String>) -> Self {
        Problem {
            anchor: Anchor::Key,
            ..Problem::at(path, message)
        }
    }
    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Longest cPanel username.
pub const MAX_USERNAME: usize = 16;
/// Largest believable account size: 1 PiB.
pub const MAX_ACCOUNT_SIZE: u64 = 1 << 50;

/// Names cPanel keeps for the system (a subset; see the module docs).
const RESERVED_USERS: &[&str] = &[
    "abuse",
    "adm",
    "admin",
    "all",
    "apache",
    "bin",
    "cpanel",
    "daemon",
    "dovecot",
    "ftp",
    "mail",
    "mailman",
    "mysql",
    "named",
    "nobody",
    "postgres",
    "postmaster",
    "root",
    "sshd",
    "virtfs",
    "webmaster",
    "www",
];

/// Runs every rule; an empty result means the plan is valid.
pub fn check(plan: &Plan) -> Vec<Problem> {
    let mut out = Vec::new();
    let root = DocPath::root();
    if plan.version != 1 {
        out.push(
            Problem::at(
                root.key("version"),
                format!("unsupported plan version {}", plan.version),
            )
            .help("this ferry reads `version: 1` plans"),
        );
    }
    if let Some(name) = &plan.name
        && let Err(why) = check_plan_name(name)
    {
        out.push(
            Problem::at(root.key("name"), why)
                .help("use letters, digits, `.`, `_` and `-`, e.g. `name: dc1-consolidation`"),
        );
    }
    check_target(&plan.target, &root.key("target"), &mut out);
    check_session_options(
        &plan.defaults.session,
        &root.key("defaults").key("session"),
        &mut out,
    );
    check_account_options(
        &plan.defaults.account,
        &root.key("defaults").key("account"),
        &mut out,
    );
    check_sources(plan, &mut out);
    check_policy(&plan.policy, &root.key("policy"), &mut out);
    check_concurrency(&plan.concurrency, &root.key("concurrency"), &mut out);
    check_notify(&plan.notify, &root.key("notify"), &mut out);
    if let Some(j) = &plan.journal {
        check_journal(j, &root.key("journal"), &mut out);
    }
    out
}

/// `journal:`: a PostgreSQL URL without a password, a lease from 1s to 1h.
fn check_journal(j: &JournalConfig, p: &DocPath, out: &mut Vec<Problem>) {
    let pg = p.key("postgres");
    let url = &j.postgres.url;
    let example = "e.g. `url: postgres://ferry@db.example.net:5432/ferry`, with the password as \
                   `password: {env: FERRY_PG_PASSWORD}`";
    match reqwest::Url::parse(url) {
        _ if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) => {
            out.push(Problem::at(pg.key("url"), "not a postgres:// URL").help(example));
        }
        Err(e) => {
            out.push(Problem::at(pg.key("url"), format!("not a valid URL ({e})")).help(example));
        }
        Ok(u) if u.password().is_some() => {
            out.push(
                Problem::at(
                    pg.key("url"),
                    "the URL contains a password; ferry refuses a literal secret in the plan",
                )
                .help(example),
            );
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            out.push(Problem::at(pg.key("url"), "the URL names no host").help(example));
        }
        Ok(_) => {}
    }
    if let Some(pw) = &j.postgres.password {
        check_secret(pw, &pg.key("password"), out);
    }
    if let Some(ca) = j.postgres.tls.as_ref().and_then(|t| t.ca_file.as_ref())
        && ca.as_os_str().is_empty()
    {
        out.push(
            Problem::at(pg.key("tls").key("ca_file"), "`ca_file` is empty")
                .help("give the path of a PEM file, relative to the plan"),
        );
    }
    let lease = j.lease.0;
    if lease < Duration::from_secs(1) || lease > Duration::from_secs(3600) {
        out.push(
            Problem::at(
                p.key("lease"),
                format!(
                    "lease {} is out of range",
                    humantime::format_duration(lease)
                ),
            )
            .help("give from 1s to 1h, e.g. `lease: 30s` (renewed every third of it)"),
        );
    }
}

/// The rule for a plan's `name` (its identity): what a journal, a lock
/// and the target's record of the plan are named after.
pub fn check_plan_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "the plan name `{name}` must have 1 to 64 characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "the plan name `{}` has a character ferry does not allow: {bad:?}",
            name.escape_debug()
        ));
    }
    if name.starts_with('.') {
        return Err(format!("the plan name `{name}` must not start with `.`"));
    }
    Ok(())
}

// ---------------------------------------------------------------- target

fn check_target(t: &Target, p: &DocPath, out: &mut Vec<Problem>) {
    let is_http = match check_url(&t.url) {
        Ok(http) => http,
        Err((message, help)) => {
            out.push(Problem::at(p.key("url"), message).help(help));
            false
        }
    };
    if t.user.trim().is_empty() {
        out.push(
            Problem::at(p.key("user"), "`user` is empty")
                .help("the API token's user, usually `root`; remove the key to use root"),
        );
    } else if t.user.contains(':') || t.user.chars().any(char::is_whitespace) {
        out.push(
            Problem::at(
                p.key("user"),
                format!("`{}` is not a valid WHM user name", t.user),
            )
            .help("a WHM user name has no spaces or colons, e.g. `root`"),
        );
    }
    check_secret(&t.token, &p.key("token"), out);
    if let Some(tls) = &t.tls {
        let tp = p.key("tls");
        if is_http {
            out.push(
                Problem::key(tp.clone(), "`tls` options apply only to an https:// URL")
                    .help("remove `tls`, or use https:// in `url`"),
            );
        }
        if let Some(ca) = &tls.ca_file {
            if ca.as_os_str().is_empty() {
                out.push(
                    Problem::at(tp.key("ca_file"), "`ca_file` is empty")
                        .help("give the path of a PEM file, relative to the plan"),
                );
            }
            if tls.insecure {
                out.push(
                    Problem::at(
                        tp.key("insecure"),
                        "`insecure: true` turns certificate checks off, so `ca_file` would be ignored",
                    )
                    .help("keep `ca_file` (trust that CA) and remove `insecure`"),
                );
            }
        }
    }
}

/// Checks a WHM base URL. `Ok(true)` for an allowed `http://` (loopback).
/// The messages never repeat the URL's credentials part.
fn check_url(url: &str) -> Result<bool, (String, String)> {
    let example = "write it like `https://whm.example.net:2087`";
    let url = url.trim();
    if url.is_empty() {
        return Err(("`url` is empty".into(), example.into()));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err((
            "`url` has no scheme (https://)".into(),
            format!("{example}; WHM listens on port 2087"),
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err((
            format!("`url` must use https://, not `{scheme}://`"),
            example.into(),
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err((
            "`url` contains credentials (`user:password@`)".into(),
            "remove them: the API token goes in `token: {env: WHM_TOKEN}` and the user in `user`"
                .into(),
        ));
    }
    if !(tail.is_empty() || tail == "/") {
        return Err((
            "`url` must be the server's base URL, without a path or query".into(),
            example.into(),
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err((
                "`url` has an unclosed `[` in its host".into(),
                example.into(),
            ));
        };
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(("`url` has no host".into(), example.into()));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Err((
                    format!("`url` has an invalid port `{port}`"),
                    "a port is a number from 1 to 65535; WHM's is 2087".into(),
                ));
            }
        }
    }
    let ip = host.parse::<IpAddr>().ok();
    if ip.is_none() && !valid_hostname(host) {
        return Err((
            format!("`url` has an invalid host name `{host}`"),
            example.into(),
        ));
    }
    if scheme == "http" {
        // The client enforces the same rule on every request it sends.
        if !crate::client::is_loopback_host(host) {
            return Err((
                format!(
                    "`url` uses http:// to `{host}`, which is not a loopback address: the API token would cross the network unencrypted"
                ),
                format!(
                    "use https://{host}:2087 (WHM's TLS port); http:// is allowed only for 127.0.0.0/8, ::1 and localhost"
                ),
            ));
        }
        return Ok(true);
    }
    Ok(false)
}

fn valid_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn check_secret(s: &SecretRef, p: &DocPath, out: &mut Vec<Problem>) {
    match s {
        SecretRef::Env(name) => {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                out.push(
                    Problem::at(
                        p.key("env"),
                        "not a valid environment variable name",
                    )
                    .help("name the variable with letters, digits and `_`, e.g. `{env: WHM_TOKEN}`; the value itself goes in the environment, never in the plan"),
                );
            }
        }
        SecretRef::File(path) => {
            if path.as_os_str().is_empty() {
                out.push(
                    Problem::at(p.key("file"), "the secret file path is empty")
                        .help("give a path relative to the plan, e.g. `{file: secrets/whm-token}`"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------- options

fn check_session_options(s: &SessionOptions, p: &DocPath, out: &mut Vec<Problem>) {
    for (key, v) in [
        ("transfer_threads", s.transfer_threads),
        ("restore_threads", s.restore_threads),
    ] {
        if let Some(v) = v
            && !(1..=9).contains(&v)
        {
            out.push(
                Problem::at(
                    p.key(key),
                    format!("`{key}` is {v}, but must be from 1 to 9"),
                )
                .help("WHM runs 1 to 9 worker processes per session"),
            );
        }
    }
}

fn check_account_options(o: &AccountOptions, p: &DocPath, out: &mut Vec<Problem>) {
    for (key, v) in o.flags() {
        if let Some(v) = v
            && v > 1
        {
            out.push(
                Problem::at(p.key(key), format!("`{key}` is {v}, but must be 0 or 1")).help(
                    format!(
                        "WHM's `{key}` is a flag: 1 to turn it on, 0 (or leave it out) for off"
                    ),
                ),
            );
        }
    }
    if let Some(ip) = &o.customip {
        if ip.parse::<IpAddr>().is_err() {
            out.push(
                Problem::at(p.key("customip"), format!("`{ip}` is not an IP address"))
                    .help("give the dedicated IP the account gets on the target, e.g. `customip: 203.0.113.10`"),
            );
        }
        if o.ip == Some(0) {
            out.push(
                Problem::at(p.key("customip"), "`customip` needs `ip: 1`")
                    .help("set `ip: 1` to give the account the dedicated IP `customip`"),
            );
        }
    }
    if let Some(m) = &o.mail_location
        && m.trim().is_empty()
    {
        out.push(
            Problem::at(p.key("mail_location"), "`mail_location` is empty")
                .help("use `.local`, `.existing` or a linked node alias, or remove the key"),
        );
    }
}

// ---------------------------------------------------------------- sources

/// Where an account is: (source index, entry index).
fn account_path(i: usize, j: usize) -> DocPath {
    DocPath::root()
        .key("sources")
        .index(i)
        .key("accounts")
        .index(j)
}

/// Path of a field of an account entry; a short entry (`- shop`) has only
/// itself to point at.
fn account_field(plan: &Plan, (i, j): Slot, field: &str) -> DocPath {
    match &plan.sources[i].accounts[j] {
        AccountEntry::Short(_) => account_path(i, j),
        AccountEntry::Full(_) => account_path(i, j).key(field),
    }
}

fn entry_parts(e: &AccountEntry) -> (&str, Option<&Account>) {
    (e.user(), e.details())
}

fn target_user(e: &AccountEntry) -> &str {
    e.target_user()
}

fn check_sources(plan: &Plan, out: &mut Vec<Problem>) {
    let sp = DocPath::root().key("sources");
    if plan.sources.is_empty() {
        out.push(
            Problem::key(sp, "`sources` is empty: there is nothing to move")
                .help("list at least one source server with its accounts"),
        );
        return;
    }
    // Source names: valid and unique.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, s) in plan.sources.iter().enumerate() {
        let np = sp.index(i).key("name");
        if let Err(why) = valid_source_name(&s.name) {
            out.push(Problem::at(np.clone(), why).help(
                "a source name is used in step ids such as `old1/s1/create`: letters, digits, `.`, `_` and `-`, e.g. `name: old1`",
            ));
        }
        if let Some(&first) = by_name.get(s.name.as_str()) {
            out.push(
                Problem::at(
                    np,
                    format!(
                        "source name `{}` is already used by source #{}",
                        s.name,
                        first + 1
                    ),
                )
                .help("source names must be unique: rename one of them"),
            );
        } else {
            by_name.insert(&s.name, i);
        }
    }
    for (i, s) in plan.sources.iter().enumerate() {
        check_source(s, &sp.index(i), &by_name, out);
    }
    let index = AccountIndex::new(plan);
    check_accounts(plan, &index, out);
    check_after_cycles(plan, &by_name, &index, out);
}

fn valid_source_name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("the source's `name` is empty".into());
    }
    if n.len() > 64 {
        return Err(format!(
            "source name `{n}` is too long ({} characters; at most 64)",
            n.len()
        ));
    }
    let first_ok = n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(format!(
            "source name `{n}` contains characters that cannot appear in a step id"
        ));
    }
    Ok(())
}

fn check_source(s: &Source, p: &DocPath, names: &HashMap<&str, usize>, out: &mut Vec<Problem>) {
    let host = s.host.trim();
    if host.is_empty() {
        out.push(
            Problem::at(p.key("host"), "`host` is empty")
                .help("give the source's host name or IP address, e.g. `host: old1.example.com`"),
        );
    } else if host.contains("://") {
        out.push(
            Problem::at(p.key("host"), format!("`host` is a URL (`{host}`), not a host name"))
                .help("give only the host name, e.g. `host: old1.example.com`; the target reaches it over SSH"),
        );
    } else if host.parse::<IpAddr>().is_err() {
        if host.contains(':') {
            out.push(
                Problem::at(p.key("host"), format!("`host` `{host}` contains a port"))
                    .help("put the SSH port in `ssh: {port: 2222}`"),
            );
        } else if !valid_hostname(host) {
            out.push(
                Problem::at(p.key("host"), format!("`{host}` is not a valid host name")).help(
                    "a host name is made of letters, digits, `-` and `.`, e.g. `old1.example.com`",
                ),
            );
        }
    }
    check_ssh(&s.ssh, &s.name, &p.key("ssh"), out);
    check_session_options(&s.session, &p.key("session"), out);
    // after: known sources, not itself, no repeats.
    let mut seen = HashSet::new();
    for (k, a) in s.after.iter().enumerate() {
        let ap = p.key("after").index(k);
        if a == &s.name {
            out.push(
                Problem::at(ap, format!("source `{}` cannot wait for itself", s.name))
                    .help("remove it from `after`"),
            );
        } else if !names.contains_key(a.as_str()) {
            let known: Vec<&str> = {
                let mut v: Vec<&str> = names.keys().copied().filter(|n| *n != s.name).collect();
                v.sort_unstable();
                v
            };
            let mut pr = Problem::at(
                ap,
                format!("`after` names `{a}`, which is not a source of this plan"),
            );
            pr = match super::parse::suggest(a, &known) {
                Some(sug) => pr.help(format!(
                    "did you mean `{sug}`? the sources are {}",
                    backticked(&known)
                )),
                None => pr.help(format!("the sources are {}", backticked(&known))),
            };
            out.push(pr);
        } else if !seen.insert(a.as_str()) {
            out.push(
                Problem::at(ap, format!("`{a}` is listed twice in `after`"))
                    .help("remove the repeat"),
            );
        }
    }
    // packages: valid and unique.
    let mut pk = HashSet::new();
    for (k, name) in s.packages.iter().enumerate() {
        let pp = p.key("packages").index(k);
        if let Err(why) = valid_package(name) {
            out.push(
                Problem::at(pp, why)
                    .help("a package name as WHM shows it, e.g. `gold` or `reseller_gold`"),
            );
        } else if !pk.insert(name.as_str()) {
            out.push(
                Problem::at(pp, format!("package `{name}` is listed twice"))
                    .help("remove the repeat"),
            );
        }
    }
    if s.accounts.is_empty() {
        out.push(
            Problem::key(
                p.key("accounts"),
                format!("source `{}` lists no accounts", s.name),
            )
            .help(
                "list the accounts to move, e.g. `accounts: [example, shop]`, or remove the source",
            ),
        );
    }
}

fn backticked(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn valid_package(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the package name is empty".into());
    }
    if name.trim() != name {
        return Err(format!("package `{name}` has spaces at its start or end"));
    }
    if name.len() > 256 || name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!("`{name}` is not a valid package name"));
    }
    Ok(())
}

/// The environment variable name suggested for a source's secret.
pub(crate) fn env_name(source: &str, what: &str) -> String {
    let up: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{up}_{what}")
}

fn check_ssh(ssh: &Ssh, source: &str, p: &DocPath, out: &mut Vec<Problem>) {
    let root_pw = env_name(source, "ROOT_PASSWORD");
    if ssh.user.trim().is_empty() || ssh.user.chars().any(|c| c.is_whitespace() || c == ':') {
        out.push(
            Problem::at(p.key("user"), "the SSH `user` is empty or invalid")
                .help("the user the target logs in as on the source, e.g. `user: root`"),
        );
    }
    if ssh.port == 0 {
        out.push(
            Problem::at(p.key("port"), "`port` must be from 1 to 65535")
                .help("SSH usually listens on 22"),
        );
    }
    match (&ssh.password, &ssh.sshkey_name) {
        (Some(_), Some(_)) => out.push(
            Problem::key(p.key("sshkey_name"), "give either `password` or `sshkey_name`, not both")
                .help("WHM logs in to the source with one method: remove one of them"),
        ),
        (None, None) => out.push(
            Problem::key(p.clone(), "`ssh` says neither `password` nor `sshkey_name`")
                .help(format!("add how the target logs in to the source: `password: {{env: {}}}`, or `sshkey_name: <the name of an SSH key stored on the target>`", env_name(source, "SSH_PASSWORD"))),
        ),
        _ => {}
    }
    if let Some(s) = &ssh.password {
        check_secret(s, &p.key("password"), out);
    }
    if let Some(k) = &ssh.sshkey_name
        && k.trim().is_empty()
    {
        out.push(
            Problem::at(p.key("sshkey_name"), "`sshkey_name` is empty")
                .help("the name of an SSH key stored on the target for root"),
        );
    }
    if let Some(s) = &ssh.sshkey_passphrase {
        check_secret(s, &p.key("sshkey_passphrase"), out);
        if ssh.sshkey_name.is_none() {
            out.push(
                Problem::key(p.key("sshkey_passphrase"), "`sshkey_passphrase` is set without `sshkey_name`")
                    .help("the passphrase unlocks the key named by `sshkey_name`: add it, or remove the passphrase"),
            );
        }
    }
    let is_root = ssh.user == "root";
    match (is_root, ssh.root_escalation_method) {
        (false, None) => out.push(
            Problem::at(
                p.key("user"),
                format!("SSH user `{}` is not root, so `root_escalation_method` is needed", ssh.user),
            )
            .help(format!("add `root_escalation_method: sudo` (the user's sudo rights) or `root_escalation_method: su` with `root_password: {{env: {root_pw}}}`")),
        ),
        (true, Some(_)) => out.push(
            Problem::at(p.key("root_escalation_method"), "`root_escalation_method` is only for a non-root SSH `user`")
                .help("remove it, or log in as another user with `user: <name>`"),
        ),
        _ => {}
    }
    if let Some(s) = &ssh.root_password {
        check_secret(s, &p.key("root_password"), out);
    }
    match (ssh.root_escalation_method, &ssh.root_password) {
        (Some(Escalation::Su), None) if !is_root => out.push(
            Problem::at(p.key("root_escalation_method"), "`su` needs `root_password`")
                .help(format!("add `root_password: {{env: {root_pw}}}`, or use `root_escalation_method: sudo`")),
        ),
        (Some(Escalation::Sudo), Some(_)) => out.push(
            Problem::key(p.key("root_password"), "`root_password` is only used with `root_escalation_method: su`")
                .help("remove `root_password` (sudo uses the SSH user's own rights), or switch to `su`"),
        ),
        (None, Some(_)) => out.push(
            Problem::key(p.key("root_password"), "`root_password` is set without `root_escalation_method: su`")
                .help("add `root_escalation_method: su` for a non-root SSH user, or remove `root_password`"),
        ),
        _ => {}
    }
}

// ---------------------------------------------------------------- accounts

/// How a source username may look: it exists already, so only the shape a
/// cPanel system can hold is required (see the module docs).
fn source_user_problem(u: &str) -> Option<String> {
    if u.is_empty() {
        return Some("the account's username is empty".into());
    }
    if u.chars().count() > MAX_USERNAME {
        return Some(format!(
            "username `{u}` is longer than cPanel's {MAX_USERNAME} characters"
        ));
    }
    if u.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(format!(
            "username `{u}` has capital letters; cPanel usernames are lowercase (`{}`)",
            u.to_ascii_lowercase()
        ));
    }
    if !u
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some(format!(
            "`{u}` is not a cPanel username: only lowercase letters, digits and `-`"
        ));
    }
    None
}

/// How the name an account gets on the target may look (cPanel's creation
/// rules, with the hyphen allowed on transfer).
fn target_user_problem(u: &str) -> Option<String> {
    if let Some(p) = source_user_problem(u) {
        return Some(p);
    }
    if !u.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(format!(
            "username `{u}` must start with a letter on the target"
        ));
    }
    if u.starts_with("test") {
        return Some(format!(
            "username `{u}` begins with `test`, which cPanel refuses"
        ));
    }
    if u.ends_with("assword") {
        return Some(format!(
            "username `{u}` ends with `assword`, which cPanel refuses"
        ));
    }
    if RESERVED_USERS.contains(&u) {
        return Some(format!("username `{u}` is reserved by cPanel"));
    }
    None
}

/// A possible target name for `u` that passes [`target_user_problem`].
fn suggest_target_name(u: &str) -> String {
    let mut s: String = u
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    if s.starts_with("test") {
        s = format!("t{}", &s[4..]);
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s = format!("u{s}");
    }
    if s.ends_with("assword") {
        s.truncate(s.len() - 1);
    }
    s.truncate(MAX_USERNAME - 1);
    if RESERVED_USERS.contains(&s.as_str()) || s.len() < 2 {
        s.push('1');
    } else {
        s.push('2');
    }
    s
}

fn check_accounts(plan: &Plan, index: &AccountIndex, out: &mut Vec<Problem>) {
    // Paths are built only when there is something to report: a valid
    // 100,000-account plan must not pay for a million small allocations.
    for (i, s) in plan.sources.iter().enumerate() {
        let packages: HashSet<&str, std::hash::BuildHasherDefault<FxHasher>> =
            s.packages.iter().map(String::as_str).collect();
        for (j, e) in s.accounts.iter().enumerate() {
            let (user, full) = entry_parts(e);
            let upath = || account_field(plan, (i, j), "user");
            let user_bad = source_user_problem(user);
            if let Some(why) = &user_bad {
                out.push(
                    Problem::at(upath(), why.clone())
                        .help("the account's username on the source, as WHM lists it"),
                );
            }
            let first = index.first_with_user(i, user).unwrap_or(j);
            if first != j {
                out.push(
                    Problem::at(
                        upath(),
                        format!(
                            "account `{user}` is listed twice in source `{}` (first as entry #{})",
                            s.name,
                            first + 1
                        ),
                    )
                    .help("remove the repeat: an account is transferred once"),
                );
            }
            let tuser = target_user(e);
            let has_local = full.is_some_and(|a| a.localuser.is_some());
            if user_bad.is_none() || has_local {
                let tpath = || {
                    if has_local {
                        account_path(i, j).key("localuser")
                    } else {
                        upath()
                    }
                };
                let (fi, fj) = index.targets.get(tuser).copied().unwrap_or((i, j));
                if let Some(why) = target_user_problem(tuser) {
                    let help = if has_local {
                        format!(
                            "choose another name for the target, e.g. `localuser: {}`",
                            suggest_target_name(tuser)
                        )
                    } else {
                        format!(
                            "keep the source name and give the account a new name on the target: `{{user: {user}, localuser: {}}}`",
                            suggest_target_name(user)
                        )
                    };
                    out.push(Problem::at(tpath(), why).help(help));
                } else if (fi, fj) != (i, j) {
                    // The same source user listed twice is reported above.
                    let first_user = entry_parts(&plan.sources[fi].accounts[fj]).0;
                    let repeat = fi == i && first_user == user;
                    if !repeat {
                        let first_src = &plan.sources[fi].name;
                        out.push(
                            Problem::at(
                                tpath(),
                                format!(
                                    "account `{user}` of source `{}` would land on target username `{tuser}`, which account `{first_user}` of source `{first_src}` already takes",
                                    s.name
                                ),
                            )
                            .help(format!("give one of them another name on the target, e.g. `{{user: {user}, localuser: {}}}`", suggest_target_name(tuser))),
                        );
                    }
                }
            }
            let Some(a) = full else { continue };
            // Cheap checks first; the path only on a problem.
            let ap = || account_path(i, j);
            if let Some(pkg) = &a.package
                && !packages.contains(pkg.as_str())
            {
                let mut pr = Problem::at(
                    ap().key("package"),
                    format!(
                        "account `{user}` uses package `{pkg}`, which source `{}` does not list",
                        s.name
                    ),
                );
                let listed: Vec<&str> = s.packages.iter().map(String::as_str).collect();
                pr = match super::parse::suggest(pkg, &listed) {
                    Some(sug) => pr.help(format!(
                        "did you mean `{sug}`? otherwise add `{pkg}` to the source's `packages`"
                    )),
                    None => pr.help(format!(
                        "add `{pkg}` to the source's `packages: [{}]`",
                        listed
                            .iter()
                            .copied()
                            .chain([pkg.as_str()])
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                out.push(pr);
            }
            if let Some(owner) = &a.owner
                && owner.is_empty()
            {
                out.push(Problem::at(ap().key("owner"), "`owner` is empty").help(
                    "name the reseller that owns the account, or remove `owner` (root owns it)",
                ));
            } else if let Some(owner) = &a.owner
                && owner != "root"
                && let Some(why) = source_user_problem(owner)
            {
                out.push(
                    Problem::at(ap().key("owner"), why)
                        .help("`owner` is the reseller's username (or `root`)"),
                );
            }
            if let Some(d) = &a.domain
                && !valid_hostname(d)
            {
                out.push(
                    Problem::at(ap().key("domain"), format!("`{d}` is not a valid domain"))
                        .help("the account's main domain without a scheme or path, e.g. `domain: shop.example.com`"),
                );
            }
            if let Some(size) = a.size
                && size > MAX_ACCOUNT_SIZE
            {
                out.push(
                    Problem::at(
                        ap().key("size"),
                        format!("`size` {size} is more than 1 PiB"),
                    )
                    .help("`size` is in bytes, e.g. `size: 1073741824` for 1 GiB"),
                );
            }
            if a.options != AccountOptions::default() {
                check_account_options(&a.options, &ap().key("options"), out);
            }
            check_overwrite(a, &plan.defaults.account, &ap, out);
        }
    }
    check_owner_cycles(plan, index, out);
}

/// An option that overwrites data on the target needs `allow_overwrite:
/// true` beside it (in the entry's `options` or `defaults.account`), so a
/// plan in git shows the danger; `force` with a rename is what WHM refuses
/// at restore ("You cannot overwrite an account if you change the
/// account's username", docs/whm.md §6), so it is refused here first.
fn check_overwrite(
    a: &Account,
    defaults: &AccountOptions,
    ap: &dyn Fn() -> DocPath,
    out: &mut Vec<Problem>,
) {
    let o = a.options.or(defaults);
    let dangerous = o.overwriting();
    if !dangerous.is_empty() && !a.allows_overwrite(defaults) {
        let list = dangerous
            .iter()
            .map(|k| format!("`{k}: 1`"))
            .collect::<Vec<_>>()
            .join(", ");
        let at = match a.options.overwriting().first() {
            Some(k) => ap().key("options").key(k),
            None => ap(),
        };
        out.push(
            Problem::at(
                at,
                format!(
                    "account `{}`: {list} overwrites data already on the target, and the plan \
                     does not say that is meant",
                    a.user
                ),
            )
            .help(format!(
                "add `allow_overwrite: true` to the account (or its `options`, or \
                 `defaults.account`) if restoring onto the target's existing data is what you \
                 want; otherwise remove {list}"
            )),
        );
    }
    if o.force == Some(1)
        && let Some(l) = &a.localuser
        && l != &a.user
    {
        out.push(
            Problem::at(
                ap().key("localuser"),
                format!(
                    "account `{}`: `force: 1` with `localuser: {l}` — WHM refuses to overwrite an \
                     account whose username changes",
                    a.user
                ),
            )
            .help("drop `force`, or keep the source's username (remove `localuser`)"),
        );
    }
}

fn check_owner_cycles(plan: &Plan, index: &AccountIndex, out: &mut Vec<Problem>) {
    // Each account has at most one owner, so the owner graph is a set of
    // chains; walking each chain once with three colours finds every cycle
    // in linear time.
    // 0 = not seen, 1 = on the current walk, 2 = done
    let mut state: Vec<Vec<u8>> = plan
        .sources
        .iter()
        .map(|s| vec![0; s.accounts.len()])
        .collect();
    for (i, s) in plan.sources.iter().enumerate() {
        for j in 0..s.accounts.len() {
            let mut walk = Vec::new();
            let mut cur = Some((i, j));
            while let Some(slot) = cur {
                match state[slot.0][slot.1] {
                    2 => break,
                    1 => {
                        // A cycle: the part of the walk from `slot` on.
                        let start = walk.iter().position(|s| *s == slot).unwrap_or(0);
                        let cycle = &walk[start..];
                        let names: Vec<&str> = cycle
                            .iter()
                            .map(|&(a, b)| target_user(&plan.sources[a].accounts[b]))
                            .collect();
                        let first = *cycle.iter().min().unwrap_or(&slot);
                        let chain = names
                            .iter()
                            .chain(names.first())
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(" is owned by ");
                        let msg = if cycle.len() == 1 {
                            format!("account `{}` is its own owner", names[0])
                        } else {
                            format!("`owner` forms a cycle: {chain}")
                        };
                        out.push(
                            Problem::at(account_field(plan, first, "owner"), msg)
                                .help("a reseller must exist before the accounts it owns: set `owner: root` or remove `owner` on one of them"),
                        );
                        break;
                    }
                    _ => {}
                }
                state[slot.0][slot.1] = 1;
                walk.push(slot);
                cur = index.owner_of(plan, slot);
            }
            for slot in walk {
                state[slot.0][slot.1] = 2;
            }
        }
    }
}

// ---------------------------------------------------------------- after

fn check_after_cycles(
    plan: &Plan,
    names: &HashMap<&str, usize>,
    index: &AccountIndex,
    out: &mut Vec<Problem>,
) {
    let n = plan.sources.len();
    // edges[a] = sources that must finish before a (its `after`), by index.
    let waits: Vec<Vec<(usize, usize)>> = plan
        .sources
        .iter()
        .map(|s| {
            s.after
                .iter()
                .enumerate()
                .filter_map(|(k, a)| names.get(a.as_str()).map(|&b| (b, k)))
                .collect()
        })
        .collect();
    // Pure `after` cycles (iterative DFS, colours).
    let mut color = vec![0u8; n];
    let mut reported: HashSet<Vec<usize>> = HashSet::new();
    for start in 0..n {
        if color[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&(w, _)) = waits[v].get(*next) {
                *next += 1;
                if w == v {
                    continue; // reported as "cannot wait for itself"
                }
                match color[w] {
                    0 => {
                        color[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(x, _)| *x == w).unwrap_or(0);
                        let cyc: Vec<usize> = stack[pos..].iter().map(|(x, _)| *x).collect();
                        let mut key = cyc.clone();
                        key.sort_unstable();
                        if reported.insert(key) {
                            report_after_cycle(plan, &cyc, &waits, out);
                        }
                    }
                    _ => {}
                }
            } else {
                color[v] = 2;
                stack.pop();
            }
        }
    }
    if !reported.is_empty() {
        return;
    }
    check_after_vs_owners(plan, &waits, index, out);
}

fn report_after_cycle(
    plan: &Plan,
    cyc: &[usize],
    waits: &[Vec<(usize, usize)>],
    out: &mut Vec<Problem>,
) {
    // cyc[k] waits for cyc[k+1]; report at the entry of the first (in file
    // order) naming its successor.
    let first = (0..cyc.len()).min_by_key(|&k| cyc[k]).unwrap_or(0);
    let v = cyc[first];
    let w = cyc[(first + 1) % cyc.len()];
    let k = waits[v]
        .iter()
        .find(|(b, _)| *b == w)
        .map(|(_, k)| *k)
        .unwrap_or(0);
    let mut names: Vec<&str> = (0..cyc.len())
        .map(|d| plan.sources[cyc[(first + d) % cyc.len()]].name.as_str())
        .collect();
    names.push(&plan.sources[v].name);
    let chain = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" waits for ");
    out.push(
        Problem::at(
            DocPath::root()
                .key("sources")
                .index(v)
                .key("after")
                .index(k),
            format!("`after` forms a cycle: {chain}"),
        )
        .help("no source of the cycle could ever start: remove one of these `after` entries"),
    );
}

/// Why one source needs another first: `None` for an `after` entry, or
/// (owned account, its reseller) for a reseller in another source.
type Witness = Option<(Slot, Slot)>;

/// A source that runs `after` another cannot hold a reseller that the other
/// source's accounts need first: neither could start.
fn check_after_vs_owners(
    plan: &Plan,
    waits: &[Vec<(usize, usize)>],
    index: &AccountIndex,
    out: &mut Vec<Problem>,
) {
    if waits.iter().all(Vec::is_empty) {
        return;
    }
    let n = plan.sources.len();
    // needs[s] = sources s must see (partly) finished first, with a witness.
    // owner edge: owned account's source → reseller's source.
    let mut needs: Vec<Vec<(usize, Witness)>> = vec![Vec::new(); n];
    let mut seen_pairs: HashSet<(usize, usize)> = HashSet::new();
    for (i, s) in plan.sources.iter().enumerate() {
        for &(b, _) in &waits[i] {
            if seen_pairs.insert((i, b)) {
                needs[i].push((b, None));
            }
        }
        for j in 0..s.accounts.len() {
            if let Some(r) = index.owner_of(plan, (i, j))
                && r.0 != i
                && seen_pairs.insert((i, r.0))
            {
                needs[i].push((r.0, Some(((i, j), r))));
            }
        }
    }
    let mut reported = HashSet::new();
    for (a, list) in waits.iter().enumerate() {
        for &(b, k) in list {
            // a waits for b. Can b reach a through `needs`? BFS with parents.
            let mut parent: Vec<Option<(usize, Witness)>> = vec![None; n];
            let mut queue = std::collections::VecDeque::from([b]);
            let mut found = false;
            let mut visited = vec![false; n];
            visited[b] = true;
            while let Some(v) = queue.pop_front() {
                if v == a {
                    found = true;
                    break;
                }
                for &(w, witness) in &needs[v] {
                    if !visited[w] {
                        visited[w] = true;
                        parent[w] = Some((v, witness));
                        queue.push_back(w);
                    }
                }
            }
            if !found || !reported.insert((a, b)) {
                continue;
            }
            // Find a reseller witness on the path b → … → a.
            let mut v = a;
            let mut why = String::new();
            while let Some((p, witness)) = parent[v] {
                if let Some((owned, reseller)) = witness {
                    why = format!(
                        "account `{}` of `{}` is owned by `{}` of `{}`, which must be transferred first",
                        target_user(&plan.sources[owned.0].accounts[owned.1]),
                        plan.sources[owned.0].name,
                        target_user(&plan.sources[reseller.0].accounts[reseller.1]),
                        plan.sources[reseller.0].name,
                    );
                }
                v = p;
            }
            out.push(
                Problem::at(
                    DocPath::root().key("sources").index(a).key("after").index(k),
                    format!(
                        "source `{}` waits for `{}`, but `{}` needs a reseller from `{}` first: {why}",
                        plan.sources[a].name, plan.sources[b].name, plan.sources[b].name, plan.sources[a].name
                    ),
                )
                .help("remove this `after` entry, or move the reseller to the source that runs first"),
            );
        }
    }
}

// ---------------------------------------------------------------- policy

fn check_policy(p: &Policy, path: &DocPath, out: &mut Vec<Problem>) {
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    let r = &p.retries;
    let rp = path.key("retries");
    if !(1..=100).contains(&r.attempts) {
        out.push(
            Problem::at(
                rp.key("attempts"),
                format!("`attempts` is {}, but must be from 1 to 100", r.attempts),
            )
            .help("1 means no retry; 5 is a good start"),
        );
    }
    duration_in(
        r.initial_backoff,
        ms(1),
        secs(600),
        &rp.key("initial_backoff"),
        out,
    );
    duration_in(
        r.max_backoff,
        ms(1),
        secs(3600),
        &rp.key("max_backoff"),
        out,
    );
    if r.initial_backoff > r.max_backoff {
        out.push(
            Problem::at(
                rp.key("max_backoff"),
                "`max_backoff` is shorter than `initial_backoff`",
            )
            .help("the wait between retries grows from `initial_backoff` up to `max_backoff`"),
        );
    }
    if p.item_retries > 10 {
        out.push(
            Problem::at(
                path.key("item_retries"),
                format!(
                    "`item_retries` is {}, but must be from 0 to 10",
                    p.item_retries
                ),
            )
            .help("a failed account is re-enqueued in a new session this many times"),
        );
    }
    duration_in(
        p.poll_interval,
        ms(10),
        secs(600),
        &path.key("poll_interval"),
        out,
    );
    duration_in(
        p.stall_timeout,
        secs(1),
        secs(7 * 24 * 3600),
        &path.key("stall_timeout"),
        out,
    );
    if p.stall_timeout <= p.poll_interval {
        out.push(
            Problem::at(
                path.key("stall_timeout"),
                "`stall_timeout` must be longer than `poll_interval`",
            )
            .help("a session is called stalled after several polls without progress"),
        );
    }
    if !(1.0..=1000.0).contains(&p.growth_warning) {
        out.push(
            Problem::at(
                path.key("growth_warning"),
                format!("`growth_warning` is {}, but must be from 1 to 1000", p.growth_warning),
            )
            .help("an account grown past this many times its inventoried size is reported, e.g. `growth_warning: 1.5`"),
        );
    }
}

fn duration_in(
    d: HumanDuration,
    min: Duration,
    max: Duration,
    p: &DocPath,
    out: &mut Vec<Problem>,
) {
    let key = match p.0.last() {
        Some(super::locate::Seg::Key(k)) => k.clone(),
        _ => "duration".into(),
    };
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if d.0.is_zero() {
        out.push(
            Problem::at(p.clone(), format!("`{key}` must be longer than 0"))
                .help(format!("e.g. `{key}: 5s`")),
        );
    } else if d.0 < min || d.0 > max {
        out.push(
            Problem::at(
                p.clone(),
                format!(
                    "`{key}` is {}, but must be from {} to {}",
                    show(d.0),
                    show(min),
                    show(max)
                ),
            )
            .help(format!("e.g. `{key}: 5s`")),
        );
    }
}

fn check_concurrency(c: &Concurrency, p: &DocPath, out: &mut Vec<Problem>) {
    for (key, v, max, help) in [
        (
            "target_sessions",
            c.target_sessions,
            64,
            "transfer sessions running at once on the target, e.g. 2",
        ),
        (
            "source_sessions",
            c.source_sessions,
            64,
            "transfer sessions running at once per source, e.g. 1",
        ),
        (
            "batch_size",
            c.batch_size,
            1000,
            "accounts per transfer session, e.g. 25",
        ),
        (
            "api_requests",
            c.api_requests,
            64,
            "WHM API requests in flight at once, e.g. 4",
        ),
    ] {
        if !(1..=max).contains(&v) {
            out.push(
                Problem::at(
                    p.key(key),
                    format!("`{key}` is {v}, but must be from 1 to {max}"),
                )
                .help(help),
            );
        }
    }
}

// ---------------------------------------------------------------- notify

fn check_notify(entries: &[Notify], p: &DocPath, out: &mut Vec<Problem>) {
    for (i, n) in entries.iter().enumerate() {
        let np = p.index(i);
        if n.events.is_empty() {
            out.push(
                Problem::at(
                    np.key("events"),
                    "`events` is empty: the command would never run",
                )
                .help("list the events that run it, e.g. `events: [run_paused, run_finished]`"),
            );
        }
        match n.command.first() {
            None => out.push(
                Problem::at(np.key("command"), "`command` is empty")
                    .help("give the program and its arguments as a list, e.g. `command: [/usr/local/bin/page-oncall, --team, hosting]`"),
            ),
            Some(program) if program.trim().is_empty() => out.push(
                Problem::at(np.key("command").index(0), "the program name is empty")
                    .help("the first item of `command` is the program to run, e.g. `curl`"),
            ),
            Some(_) => {}
        }
        for (k, arg) in n.command.iter().enumerate() {
            if arg.contains('\0') {
                out.push(
                    Problem::at(
                        np.key("command").index(k),
                        "a command argument contains a NUL character",
                    )
                    .help("remove it: a program cannot receive NUL in its arguments"),
                );
            }
        }
        duration_in(
            n.timeout,
            Duration::from_millis(100),
            Duration::from_secs(3600),
            &np.key("timeout"),
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(check_url("https://whm.example.net:2087"), Ok(false));
        assert_eq!(check_url("https://whm.example.net:2087/"), Ok(false));
        assert_eq!(check_url("http://127.0.0.1:8080"), Ok(true));
        assert_eq!(check_url("http://127.9.9.9"), Ok(true));
        assert_eq!(check_url("http://[::1]:2087"), Ok(true));
        assert_eq!(check_url("http://localhost:2087"), Ok(true));
        // The same rule as the client's: IPv4-mapped loopback is loopback.
        assert_eq!(check_url("http://[::ffff:127.0.0.1]:2087"), Ok(true));
        assert!(
            check_url("http://whm.example.net:2087")
                .unwrap_err()
                .0
                .contains("not a loopback")
        );
        assert!(check_url("http://10.0.0.1").is_err());
        let (m, _) = check_url("https://root:hunter2@whm.example.net").unwrap_err();
        assert!(!m.contains("hunter2"), "{m}");
        assert!(check_url("whm.example.net").is_err());
        assert!(check_url("ftp://whm.example.net").is_err());
        assert!(check_url("https://whm.example.net:99999").is_err());
        assert!(check_url("https://whm.example.net/cpsess1/x").is_err());
        assert!(check_url("https://bad host").is_err());
    }

    #[test]
    fn usernames() {
        assert_eq!(target_user_problem("shop"), None);
        assert_eq!(target_user_problem("shop-2"), None);
        assert!(target_user_problem("Shop").is_some());
        assert!(target_user_problem("1shop").is_some());
        assert!(target_user_problem("testshop").is_some());
        assert!(target_user_problem("mypassword").is_some());
        assert!(target_user_problem("abcdefghijklmnopq").is_some()); // 17
        assert_eq!(target_user_problem("abcdefghijklmnop"), None); // 16
        assert!(target_user_problem("root").is_some());
        assert_eq!(source_user_problem("1shop"), None);
        for bad in [
            "Shop",
            "testshop",
            "1x",
            "root",
            "mypassword",
            "abcdefghijklmnop",
        ] {
            let s = suggest_target_name(bad);
            assert_eq!(target_user_problem(&s), None, "{bad} -> {s}");
        }
    }
}
