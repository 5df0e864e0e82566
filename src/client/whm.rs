//! The typed WHM API 1 calls: one method per function, one HTTP attempt
//! each.
//!
//! Owns: the request shape (`POST /json-api/<function>?api.version=1`, the
//! `Authorization: whm USER:TOKEN` header, every parameter in the form
//! body), mapping transport failures and HTTP statuses to [`ErrorKind`], and
//! decoding each function's `data` into a typed result.
//!
//! Does not own: retries (see `retry`), or what a result means for the run
//! (see `exec`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use super::envelope::{self, as_flag, as_text, as_u64, field};
use super::tls;
use super::{
    AccountInfo, AccountItem, AccountSummary, ClientConfig, CreateSession, CredentialCheck,
    Enqueued, Error, ErrorKind, RemoteAnalysis, SessionId, SessionState, SshAuth, SshLogin,
    SystemUser, TargetAccount,
};
use crate::secret::Secret;

/// A client for one WHM server: one connection pool, cheap to clone.
#[derive(Clone)]
pub struct WhmClient {
    inner: Arc<Inner>,
    /// Set on a clone made by [`WhmClient::traced`]: where each call writes
    /// its function name.
    trace: Option<Arc<CallTrace>>,
}

/// The WHM function last called through a [`WhmClient::traced`] clone, so
/// that whoever times a call (`exec::Api`, for the metrics) can name it
/// when it succeeds (a failure names it in [`Error::function`]).
#[derive(Debug, Default)]
pub struct CallTrace(Mutex<Option<&'static str>>);

impl CallTrace {
    /// The function called last, if any.
    pub fn function(&self) -> Option<&'static str> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Inner {
    http: reqwest::Client,
    /// Base URL without a trailing slash.
    base: String,
    host: String,
    user: String,
    /// `whm USER:TOKEN`, marked sensitive (hyper/h2 never log or index it).
    auth: HeaderValue,
    /// The token, only to scrub it from server-supplied reasons.
    token: Secret,
    request_timeout: Duration,
    insecure: bool,
}

impl std::fmt::Debug for WhmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhmClient")
            .field("base_url", &self.inner.base)
            .field("user", &self.inner.user)
            .field("token", &"[REDACTED]")
            .field("insecure", &self.inner.insecure)
            .finish()
    }
}

/// A parameter value: plain, or a secret that is exposed only while the
/// body is serialised (and scrubbed from any reason WHM sends back).
enum Param {
    Plain(String),
    Secret(Secret),
}

struct Params(Vec<(std::borrow::Cow<'static, str>, Param)>);

impl Params {
    fn new() -> Self {
        Params(Vec::new())
    }
    fn add(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        self.0.push((key.into(), Param::Plain(value.into())));
        self
    }
    /// A parameter whose name is made at run time (`nvset`'s `keyN`).
    fn add_named(&mut self, key: String, value: impl Into<String>) -> &mut Self {
        self.0.push((key.into(), Param::Plain(value.into())));
        self
    }
    fn secret(&mut self, key: &'static str, value: &Secret) -> &mut Self {
        self.0.push((key.into(), Param::Secret(value.clone())));
        self
    }
    fn session(s: &SessionId) -> Self {
        let mut p = Params::new();
        p.add("transfer_session_id", s.as_str());
        p
    }
    fn ssh(&mut self, host: &str, ssh: &SshLogin) -> &mut Self {
        self.add("host", host)
            .add("user", ssh.user.as_str())
            .add("port", ssh.port.to_string());
        match &ssh.auth {
            SshAuth::Password(pw) => {
                self.secret("password", pw);
            }
            SshAuth::Key { name, passphrase } => {
                self.add("sshkey_name", name.as_str());
                if let Some(pp) = passphrase {
                    self.secret("sshkey_passphrase", pp);
                }
            }
        }
        if let Some((method, root_pw)) = &ssh.escalation {
            self.add("root_escalation_method", method.as_str());
            if let Some(pw) = root_pw {
                self.secret("root_password", pw);
            }
        }
        self
    }
    fn session_id(&self) -> Option<&str> {
        self.0.iter().find_map(|(k, v)| match v {
            Param::Plain(s) if k == "transfer_session_id" => Some(s.as_str()),
            _ => None,
        })
    }
    fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter().filter_map(|(_, v)| match v {
            Param::Secret(s) => Some(s),
            Param::Plain(_) => None,
        })
    }
}

impl WhmClient {
    /// Validates the configuration (URL rules of [`tls::validate_base_url`],
    /// the CA PEM) and builds the connection pool. Sends nothing.
    pub fn new(cfg: ClientConfig) -> Result<WhmClient, Error> {
        let started = Instant::now();
        let fail = |kind| Error {
            function: "client_config",
            kind,
            elapsed: started.elapsed(),
            attempts: 1,
        };
        let url = tls::validate_base_url(&cfg.base_url).map_err(|m| fail(ErrorKind::Config(m)))?;
        if cfg.user.is_empty() || cfg.user.contains(':') || cfg.user.chars().any(char::is_control) {
            return Err(fail(ErrorKind::Config(
                "target.user must be a non-empty user name without `:`".into(),
            )));
        }
        let mut auth = HeaderValue::from_str(&format!("whm {}:{}", cfg.user, cfg.token.expose()))
            .map_err(|_| {
            fail(ErrorKind::Config(
                "the API token contains characters not allowed in an HTTP header".into(),
            ))
        })?;
        auth.set_sensitive(true);
        let http = tls::build_http_client(&cfg, url.scheme() == "http").map_err(fail)?;
        Ok(WhmClient {
            inner: Arc::new(Inner {
                http,
                base: url.as_str().trim_end_matches('/').to_string(),
                host: tls::host_and_port(&url),
                user: cfg.user,
                auth,
                token: cfg.token,
                request_timeout: cfg.request_timeout,
                insecure: cfg.insecure,
            }),
            trace: None,
        })
    }

    /// A clone (same connection pool) that records in the returned
    /// [`CallTrace`] the function of each call made through it.
    pub fn traced(&self) -> (WhmClient, Arc<CallTrace>) {
        let trace = Arc::new(CallTrace::default());
        let client = WhmClient {
            inner: self.inner.clone(),
            trace: Some(trace.clone()),
        };
        (client, trace)
    }

    /// `host:port` of the server, for messages.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Creates a root transfer session pulling from `req.host`. Not
    /// idempotent: a lost answer may leave a PENDING session behind (exec
    /// reconciles before repeating).
    pub async fn create_remote_root_transfer_session(
        &self,
        req: &CreateSession,
    ) -> Result<SessionId, Error> {
        const F: &str = "create_remote_root_transfer_session";
        let mut p = Params::new();
        p.ssh(&req.host, &req.ssh)
            .add("transfer_threads", req.transfer_threads.max(1).to_string())
            .add("restore_threads", req.restore_threads.max(1).to_string())
            .add("compressed", flag(req.compressed))
            .add("low_priority", flag(req.low_priority))
            // Fixed choices (see `CreateSession`): full restore as WHM's
            // Transfer Tool does by default, reseller privileges copied,
            // the SSH stream encrypted.
            .add("unrestricted_restore", "1")
            .add("copy_reseller_privs", "1")
            .add("unencrypted", "0");
        self.call(F, p, None, |data| {
            let id = as_text(field(data, "transfer_session_id")?)
                .ok_or_else(|| decode("`data.transfer_session_id` is not a string"))?;
            SessionId::parse(&id).map_err(|e| ErrorKind::Decode(e.to_string()))
        })
        .await
    }

    /// Enqueues a package (`PackageRemoteRoot`). A duplicate-key refusal is
    /// [`Enqueued::AlreadyQueued`].
    pub async fn enqueue_package(&self, s: &SessionId, package: &str) -> Result<Enqueued, Error> {
        let mut p = Params::session(s);
        p.add("module", "PackageRemoteRoot").add("package", package);
        self.enqueue(p).await
    }

    /// Enqueues an account (`AccountRemoteRoot`). A duplicate-key refusal is
    /// [`Enqueued::AlreadyQueued`].
    pub async fn enqueue_account(
        &self,
        s: &SessionId,
        item: &AccountItem,
    ) -> Result<Enqueued, Error> {
        let mut p = Params::session(s);
        p.add("module", "AccountRemoteRoot")
            .add("user", item.user.as_str())
            .add("localuser", item.localuser.as_str());
        if let Some(size) = item.size {
            p.add("size", size.max(1).to_string());
        }
        if let Some(d) = &item.domain {
            p.add("domain", d.as_str());
        }
        if let Some(prio) = item.priority {
            p.add("priority", prio.to_string());
        }
        if let Some(pre) = &item.prerequisite_user {
            p.add("prerequisite_user", pre.as_str());
        }
        for (k, v) in &item.options {
            p.add(k, v.as_str());
        }
        self.enqueue(p).await
    }

    async fn enqueue(&self, p: Params) -> Result<Enqueued, Error> {
        match self
            .call("enqueue_transfer_item", p, None, |_| Ok(()))
            .await
        {
            Ok(()) => Ok(Enqueued::Added),
            Err(Error {
                kind: ErrorKind::Whm { reason },
                ..
            }) if is_duplicate_refusal(&reason) => Ok(Enqueued::AlreadyQueued),
            Err(e) => Err(e),
        }
    }

    /// Starts (or resumes, or confirms) a session; returns the master's pid.
    pub async fn start_transfer_session(&self, s: &SessionId) -> Result<u32, Error> {
        self.call("start_transfer_session", Params::session(s), None, |data| {
            let pid = as_u64(field(data, "pid")?)
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| decode("`data.pid` is not a process id"))?;
            Ok(pid)
        })
        .await
    }

    pub async fn get_transfer_session_state(&self, s: &SessionId) -> Result<SessionState, Error> {
        self.call(
            "get_transfer_session_state",
            Params::session(s),
            None,
            |data| {
                let name = as_text(field(data, "state_name")?)
                    .ok_or_else(|| decode("`data.state_name` is not a string"))?;
                Ok(SessionState::from_name(name.trim()))
            },
        )
        .await
    }

    pub async fn pause_transfer_session(&self, s: &SessionId) -> Result<(), Error> {
        self.call("pause_transfer_session", Params::session(s), None, |_| {
            Ok(())
        })
        .await
    }

    pub async fn abort_transfer_session(&self, s: &SessionId) -> Result<(), Error> {
        self.call("abort_transfer_session", Params::session(s), None, |_| {
            Ok(())
        })
        .await
    }

    /// Fetches a session log (`master.log`, an item log). On a log still
    /// being written WHM may block until it completes: give a `timeout`
    /// that the caller's poll loop can afford.
    pub async fn fetch_transfer_session_log(
        &self,
        s: &SessionId,
        logfile: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        let mut p = Params::session(s);
        p.add("logfile", logfile);
        self.call(
            "fetch_transfer_session_log",
            p,
            Some(timeout),
            |data| match data.and_then(|d| d.get("log")) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Null) | None => Ok(String::new()),
                Some(_) => Err(decode("`data.log` is not a string")),
            },
        )
        .await
    }

    /// The accounts present on this server.
    pub async fn listaccts(&self) -> Result<Vec<TargetAccount>, Error> {
        self.call("listaccts", Params::new(), None, |data| {
            let list = match data.and_then(|d| d.get("acct")) {
                Some(Value::Array(a)) => a.as_slice(),
                Some(Value::Null) | None => &[],
                Some(_) => return Err(decode("`data.acct` is not a list")),
            };
            list.iter().map(account_info).collect()
        })
        .await
    }

    /// The accounts among `users` that this server has: `listaccts` with
    /// `searchtype=user` and an anchored alternation of the names as its
    /// `search` regex, and `want` cut to the fields [`AccountInfo`] keeps
    /// (docs/whm.md §8.1). The answer, and WHM's work to build it, grow
    /// with `users`, not with the server: after each of 400 sessions on a
    /// target filling up to 10,000 accounts, the whole list is what made a
    /// fleet's sessions wait.
    /// Each entry is read both ways: what the survey keeps, and the
    /// summary `ferry verify` compares (`listaccts` has every field of
    /// `accountsummary`, §8.2).
    pub async fn listaccts_of(
        &self,
        users: &[String],
    ) -> Result<Vec<(TargetAccount, AccountSummary)>, Error> {
        let mut p = Params::new();
        p.add("searchtype", "user");
        let names: Vec<String> = users.iter().map(|u| regex::escape(u)).collect();
        p.add("search", format!("^(?:{})$", names.join("|")));
        p.add(
            "want",
            "user,domain,owner,plan,has_dedicated_ip,suspended,suspendreason,diskused",
        );
        let wanted: std::collections::HashSet<&str> = users.iter().map(String::as_str).collect();
        self.call("listaccts", p, None, |data| {
            let list = match data.and_then(|d| d.get("acct")) {
                Some(Value::Array(a)) => a.as_slice(),
                Some(Value::Null) | None => &[],
                Some(_) => return Err(decode("`data.acct` is not a list")),
            };
            // The search is a case-insensitive regex on WHM: keep exact names.
            list.iter()
                .map(|v| Ok((account_info(v)?, account_summary(v)?)))
                .filter(|a| {
                    a.as_ref()
                        .map_or(true, |(a, _)| wanted.contains(a.user.as_str()))
                })
                .collect()
        })
        .await
    }

    /// One account of this server by its username (`accountsummary`);
    /// `None` when the server has no such account ("Account does not
    /// exist.", docs/whm.md §8.2).
    pub async fn accountsummary(&self, user: &str) -> Result<Option<AccountSummary>, Error> {
        let mut p = Params::new();
        p.add("user", user);
        let r = self
            .call("accountsummary", p, None, |data| {
                let list = match data.and_then(|d| d.get("acct")) {
                    Some(Value::Array(a)) => a.as_slice(),
                    Some(Value::Null) | None => &[],
                    Some(_) => return Err(decode("`data.acct` is not a list")),
                };
                list.first().map(account_summary).transpose()
            })
            .await;
        match r {
            Err(e) if matches!(&e.kind, ErrorKind::Whm { reason } if reason.contains("Account does not exist")) => {
                Ok(None)
            }
            r => r,
        }
    }

    /// Removes `user`'s transfer archives from this server
    /// (`delete_account_archives`, docs/whm.md §8.5). Repeatable: a second
    /// call finds nothing to remove and still succeeds.
    pub async fn delete_account_archives(&self, user: &str) -> Result<(), Error> {
        let mut p = Params::new();
        p.add("user", user);
        self.call("delete_account_archives", p, None, |_| Ok(()))
            .await
    }

    /// `user`'s domains on this server (`get_domain_info`, docs/whm.md §8.3:
    /// it takes no user, so the whole list is filtered here — ask only when
    /// there is a domain to look for).
    pub async fn domains_of(&self, user: &str) -> Result<Vec<String>, Error> {
        let user = user.to_string();
        self.call("get_domain_info", Params::new(), None, move |data| {
            let list = match data.and_then(|d| d.get("domains")) {
                Some(Value::Array(a)) => a.as_slice(),
                Some(Value::Null) | None => &[],
                Some(_) => return Err(decode("`data.domains` is not a list")),
            };
            Ok(list
                .iter()
                .filter(|d| d.get("user").and_then(as_text).as_deref() == Some(user.as_str()))
                .filter_map(|d| d.get("domain").and_then(as_text))
                .collect())
        })
        .await
    }

    /// The names of `user`'s MySQL databases (`list_mysql_databases_and_users`,
    /// docs/whm.md §8.4); `None` when the server could not read the user's
    /// database map (it answers `mysql_databases: null`).
    pub async fn list_mysql_databases(&self, user: &str) -> Result<Option<Vec<String>>, Error> {
        let mut p = Params::new();
        p.add("user", user);
        self.call("list_mysql_databases_and_users", p, None, |data| match data
            .and_then(|d| d.get("mysql_databases"))
        {
            Some(Value::Object(m)) => Ok(Some(m.keys().cloned().collect())),
            Some(Value::Null) | None => Ok(None),
            Some(_) => Err(decode("`data.mysql_databases` is not a map")),
        })
        .await
    }

    /// Can this server log in to `req.host` over SSH with `req.ssh`?
    /// `Ok(())` = yes; a refusal is [`ErrorKind::Whm`] with WHM's reason.
    pub async fn remote_basic_credential_check(&self, req: &CredentialCheck) -> Result<(), Error> {
        let mut p = Params::new();
        p.ssh(&req.host, &req.ssh);
        self.call("remote_basic_credential_check", p, None, |_| Ok(()))
            .await
    }

    /// Whether `user` exists, is reserved, and is valid for a new account or
    /// a transfer on this server.
    pub async fn validate_system_user(&self, user: &str) -> Result<SystemUser, Error> {
        let mut p = Params::new();
        p.add("user", user);
        self.call("validate_system_user", p, None, |data| {
            let b = |k: &str| -> Result<bool, ErrorKind> {
                as_flag(field(data, k)?).ok_or_else(|| decode(&format!("`data.{k}` is not 0/1")))
            };
            Ok(SystemUser {
                exists: b("exists")?,
                reserved: b("reserved")?,
                valid_for_new: b("valid_for_new")?,
                valid_for_transfer: b("valid_for_transfer")?,
            })
        })
        .await
    }

    /// `retrieve_transfer_session_remote_analysis` alone: the analysis
    /// `create_remote_root_transfer_session` already ran (docs/whm.md §5).
    pub async fn retrieve_remote_analysis(&self, s: &SessionId) -> Result<RemoteAnalysis, Error> {
        self.call(
            "retrieve_transfer_session_remote_analysis",
            Params::session(s),
            None,
            remote_analysis,
        )
        .await
    }

    /// Runs `analyze_transfer_session_remote` then returns
    /// `retrieve_transfer_session_remote_analysis`: the source's accounts
    /// and packages as seen by session `s`.
    pub async fn analyze_remote(&self, s: &SessionId) -> Result<RemoteAnalysis, Error> {
        self.call(
            "analyze_transfer_session_remote",
            Params::session(s),
            None,
            |_| Ok(()),
        )
        .await?;
        self.retrieve_remote_analysis(s).await
    }

    /// `nvset`: stores every `(key, value)` pair in root's name/value store
    /// `store` in one call (WHM's `keyN`/`valueN` form pairs). Returns the
    /// pairs as the server says it stored them — WHM cuts keys at 128 and
    /// values at 2,048 characters, so a caller compares them with what it
    /// sent (docs/whm.md, the name/value store).
    pub async fn nvset(
        &self,
        store: &str,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, String)>, Error> {
        let mut p = Params::new();
        p.add("store", store);
        for (i, (k, v)) in pairs.iter().enumerate() {
            p.add_named(format!("key{i}"), k.as_str())
                .add_named(format!("value{i}"), v.as_str());
        }
        self.call("nvset", p, None, |data| {
            let list = match data.and_then(|d| d.get("nvdatum")) {
                Some(Value::Array(a)) => a.as_slice(),
                Some(Value::Object(_)) => {
                    std::slice::from_ref(data.and_then(|d| d.get("nvdatum")).expect("just matched"))
                }
                _ => return Err(decode("`data.nvdatum` is not a list")),
            };
            Ok(list
                .iter()
                .filter_map(|d| {
                    let k = d.get("key").and_then(as_text)?;
                    let v = d.get("value").and_then(nv_value).unwrap_or_default();
                    Some((k, v))
                })
                .collect())
        })
        .await
    }

    /// `nvget`: one key of root's name/value store `store`; `None` when the
    /// key is not set (WHM answers a one-element list holding null).
    pub async fn nvget(&self, store: &str, key: &str) -> Result<Option<String>, Error> {
        let mut p = Params::new();
        p.add("store", store).add("key", key);
        self.call("nvget", p, None, |data| {
            let datum = data
                .and_then(|d| d.get("nvdatum"))
                .ok_or_else(|| decode("no `data.nvdatum`"))?;
            Ok(datum.get("value").and_then(nv_value))
        })
        .await
    }

    /// One HTTP attempt: POST the form, classify the failure or decode the
    /// envelope and hand `data` to `parse`.
    async fn call<T>(
        &self,
        function: &'static str,
        params: Params,
        timeout: Option<Duration>,
        parse: impl FnOnce(Option<&Value>) -> Result<T, ErrorKind>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        if let Some(t) = &self.trace {
            *t.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(function);
        }
        let session = params.session_id().unwrap_or("").to_string();
        let result = self.attempt(function, &params, timeout, parse).await;
        let elapsed = started.elapsed();
        match result {
            Ok((status, v)) => {
                tracing::debug!(
                    function,
                    host = %self.inner.host,
                    session = %session,
                    status,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "whm call ok"
                );
                Ok(v)
            }
            Err(kind) => {
                let kind = self.scrub(kind, &params);
                tracing::debug!(
                    function,
                    host = %self.inner.host,
                    session = %session,
                    elapsed_ms = elapsed.as_millis() as u64,
                    error = %kind,
                    "whm call failed"
                );
                Err(Error {
                    function,
                    kind,
                    elapsed,
                    attempts: 1,
                })
            }
        }
    }

    async fn attempt<T>(
        &self,
        function: &'static str,
        params: &Params,
        timeout: Option<Duration>,
        parse: impl FnOnce(Option<&Value>) -> Result<T, ErrorKind>,
    ) -> Result<(u16, T), ErrorKind> {
        let url = format!("{}/json-api/{function}?api.version=1", self.inner.base);
        // The only place secrets are exposed: into the form body, which
        // reqwest serialises right here and never logs.
        let form: Vec<(&str, &str)> = params
            .0
            .iter()
            .map(|(k, v)| match v {
                Param::Plain(s) => (k.as_ref(), s.as_str()),
                Param::Secret(s) => (k.as_ref(), s.expose()),
            })
            .collect();
        let resp = self
            .inner
            .http
            .post(&url)
            .header(AUTHORIZATION, self.inner.auth.clone())
            .form(&form)
            .timeout(timeout.unwrap_or(self.inner.request_timeout))
            .send()
            .await
            .map_err(|e| self.send_error(&e))?;
        drop(form);
        let status = resp.status().as_u16();
        tracing::trace!(function, status, "whm answer headers");
        if status == 401 || status == 403 {
            return Err(ErrorKind::AuthRefused { status });
        }
        if status != 200 {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Err(ErrorKind::Http {
                status,
                retry_after,
            });
        }
        let body = resp.bytes().await.map_err(|e| body_error(&e))?;
        let data = envelope::decode(&body)?;
        let value = parse(data.as_ref())?;
        Ok((status, value))
    }

    /// Classifies a failure of `send()` (nothing or only headers received).
    fn send_error(&self, e: &reqwest::Error) -> ErrorKind {
        let host = &self.inner.host;
        if let Some(detail) = tls::find_tls_error(e) {
            return ErrorKind::Tls(tls::tls_failure_message(host, &detail));
        }
        if e.is_connect() {
            let why = if e.is_timeout() {
                "connect timed out".to_string()
            } else {
                tls::root_message(e)
            };
            return ErrorKind::Connect(format!("{host}: {why}"));
        }
        if e.is_timeout() {
            return ErrorKind::Timeout;
        }
        // Sent (at least partly) and then the connection broke: reset,
        // closed, incomplete message.
        ErrorKind::ConnectionLost(tls::root_message(e))
    }

    /// Removes any secret we sent (and the token) from a reason the server
    /// echoed back, so errors can be printed anywhere.
    fn scrub(&self, kind: ErrorKind, params: &Params) -> ErrorKind {
        let ErrorKind::Whm { mut reason } = kind else {
            return kind;
        };
        for s in params.secrets().chain(std::iter::once(&self.inner.token)) {
            let v = s.expose();
            if v.len() >= 3 && reason.contains(v) {
                reason = reason.replace(v, "[REDACTED]");
            }
        }
        ErrorKind::Whm { reason }
    }
}

/// A failure while reading the body of a 200 answer.
fn body_error(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::ConnectionLost(tls::root_message(e))
    }
}

fn decode(msg: &str) -> ErrorKind {
    ErrorKind::Decode(msg.to_string())
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// An `nvget` value: a string, or WHM's one-element list holding a string
/// or null.
fn nv_value(v: &Value) -> Option<String> {
    match v {
        Value::Array(a) => a.first().and_then(nv_value),
        Value::Null => None,
        other => as_text(other),
    }
}

/// WHM's answer for a function the server does not have: `Unknown app
/// (“nvset”) requested for this version (1) of the API.`
pub fn is_unknown_function(reason: &str) -> bool {
    reason.contains("Unknown app")
}

/// WHM's duplicate-item refusal: `(XID …) An item with a “user” key value of
/// “bob” and a type of “AccountRemoteRoot” already exists in the queue.`
pub fn is_duplicate_refusal(reason: &str) -> bool {
    reason.contains("already exists in the queue")
}

/// `data` of `retrieve_transfer_session_remote_analysis`: cPanel's shape
/// (`items.accounts` a list, `items.packages` objects `{name, featurelist}`)
/// or an older stand-in's (accounts keyed by user, packages as strings).
fn remote_analysis(data: Option<&Value>) -> Result<RemoteAnalysis, ErrorKind> {
    let items = field(data, "items")?;
    let accounts = match items.get("accounts") {
        Some(Value::Array(a)) => a.iter().map(account_info).collect::<Result<_, _>>()?,
        Some(Value::Object(m)) => m
            .iter()
            .map(|(user, v)| {
                // keyed by user: the entry may leave `user` out
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    o.entry("user")
                        .or_insert_with(|| Value::String(user.clone()));
                }
                account_info(&v)
            })
            .collect::<Result<_, ErrorKind>>()?,
        None | Some(Value::Null) => vec![],
        Some(_) => return Err(decode("`data.items.accounts` is not a list")),
    };
    let packages = match items.get("packages") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| {
                package_name(p)
                    .ok_or_else(|| decode("an entry of `data.items.packages` has no name"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        None | Some(Value::Null) => vec![],
        Some(_) => return Err(decode("`data.items.packages` is not a list")),
    };
    let supports_live_transfers = data
        .and_then(|d| d.get("remote"))
        .and_then(|r| r.get("supports_live_transfers"))
        .and_then(as_flag);
    let version = data
        .and_then(|d| d.get("remote"))
        .and_then(|r| r.get("version"))
        .and_then(as_text)
        .filter(|v| !v.is_empty());
    // `{dbs: {MYSQL: {name: {owner}}, PGSQL: …}, users: …}`
    let mut databases: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    if let Some(Value::Object(m)) = data.and_then(|d| d.pointer("/remote/dbs/dbs/MYSQL")) {
        for (name, v) in m {
            if let Some(owner) = v.get("owner").and_then(as_text).filter(|o| !o.is_empty()) {
                databases.entry(owner).or_default().push(name.clone());
            }
        }
    }
    Ok(RemoteAnalysis {
        accounts,
        packages,
        supports_live_transfers,
        version,
        databases,
    })
}

/// One account of `listaccts` or of the remote analysis. The analysis's
/// fields are cPanel's (`Results.pm`: `bytesused`, `filesused`,
/// `has_dedicated_ip`); older stand-ins send `size` (bytes) instead. A size
/// of 0 is what a source with quotas off reports: unknown, so `None`.
fn account_info(v: &Value) -> Result<AccountInfo, ErrorKind> {
    let get = |k: &str| v.get(k).and_then(as_text).filter(|s| !s.is_empty());
    let count = |k: &str| v.get(k).and_then(as_u64).filter(|n| *n > 0);
    let user = get("user").ok_or_else(|| decode("an account entry has no `user`"))?;
    Ok(AccountInfo {
        user,
        domain: get("domain"),
        owner: get("owner"),
        plan: get("plan").or_else(|| get("package")),
        bytes: count("bytesused").or_else(|| count("size")),
        files: count("filesused"),
        dedicated_ip: v.get("has_dedicated_ip").and_then(as_flag),
    })
}

fn account_summary(v: &Value) -> Result<AccountSummary, ErrorKind> {
    let get = |k: &str| v.get(k).and_then(as_text).filter(|s| !s.is_empty());
    let user = get("user").ok_or_else(|| decode("an account entry has no `user`"))?;
    let suspended = v.get("suspended").and_then(as_flag).unwrap_or(false);
    Ok(AccountSummary {
        user,
        domain: get("domain"),
        owner: get("owner").unwrap_or_else(|| "root".into()),
        package: get("plan").filter(|p| p != "undefined"),
        suspended,
        suspend_reason: get("suspendreason").filter(|_| suspended),
        disk_used_mib: get("diskused").and_then(|d| d.strip_suffix('M')?.parse().ok()),
    })
}

fn package_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(_) => ["name", "package", "plan"]
            .iter()
            .find_map(|k| v.get(*k).and_then(as_text)),
        _ => None,
    }
}

/// `Retry-After`: delay-seconds, or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`) turned into a delay from now.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_imf_fixdate(v)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (RFC 9110 §5.6.7).
fn parse_imf_fixdate(s: &str) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mon = months.iter().position(|m| m == mon)? as u64 + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, se] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *h > 23 || *mi > 59 || *se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if mon <= 2 {
        (year - 1, mon + 9)
    } else {
        (year, mon - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::Escalation;
    use serde_json::json;

    /// cPanel's shape (`Results.pm`): sizes in bytes, 0 when quotas are off,
    /// packages as `{name, featurelist}`.
    #[test]
    fn remote_analysis_reads_cpanels_fields() {
        let data = json!({"items": {
            "accounts": [
                {"user": "shop", "domain": "shop.example", "owner": "root",
                 "bytesused": 4_883_456, "filesused": 120, "has_dedicated_ip": 1,
                 "ensim_user": "shop", "worker_nodes": {}},
                {"user": "blog", "domain": "blog.example", "owner": "res",
                 "bytesused": 0, "filesused": 0, "has_dedicated_ip": 0},
            ],
            "packages": [{"name": "gold", "featurelist": "default"}],
        },
        "remote": {"dbs": {
            "dbs": {"MYSQL": {"shop_wp": {"owner": "shop"}, "shop_logs": {"owner": "shop"},
                              "orphan": {}}, "PGSQL": {"shop_pg": {"owner": "shop"}}},
            "users": {"MYSQL": {"shop_u": {"owner": "shop"}}},
        }}});
        let a = remote_analysis(Some(&data)).unwrap();
        assert_eq!(a.packages, ["gold"]);
        // MySQL databases by owner (sorted by name), nothing else
        assert_eq!(a.databases.len(), 1);
        assert_eq!(a.databases["shop"], ["shop_logs", "shop_wp"]);
        assert_eq!(a.accounts[0].bytes, Some(4_883_456));
        assert_eq!(a.accounts[0].files, Some(120));
        assert_eq!(a.accounts[0].dedicated_ip, Some(true));
        assert_eq!(a.accounts[0].owner.as_deref(), Some("root"));
        // quotas off: unknown, not empty
        assert_eq!((a.accounts[1].bytes, a.accounts[1].files), (None, None));
        assert_eq!(a.accounts[1].dedicated_ip, Some(false));
    }

    /// What older stand-ins send: accounts keyed by user with `size`,
    /// packages as strings.
    #[test]
    fn remote_analysis_accepts_older_shapes() {
        let data = json!({"items": {
            "accounts": {"shop": {"domain": "shop.example", "size": "1048576", "plan": "gold"}},
            "packages": ["gold", "silver"],
        }});
        let a = remote_analysis(Some(&data)).unwrap();
        assert_eq!(a.packages, ["gold", "silver"]);
        assert_eq!(a.accounts[0].user, "shop");
        assert_eq!(a.accounts[0].bytes, Some(1_048_576));
        assert_eq!(a.accounts[0].plan.as_deref(), Some("gold"));
        assert_eq!(
            (a.accounts[0].files, a.accounts[0].dedicated_ip),
            (None, None)
        );
        let bad = json!({"items": {"accounts": [], "packages": [{"featurelist": "x"}]}});
        assert!(remote_analysis(Some(&bad)).is_err());
    }

    /// A client of `127.0.0.1` on a port just closed (bound, then dropped):
    /// every call is refused before anything is sent.
    pub(crate) fn closed_port_client() -> (WhmClient, u16) {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = WhmClient::new(ClientConfig::new(
            format!("http://127.0.0.1:{port}"),
            "root",
            Secret::new("t"),
        ))
        .unwrap();
        (c, port)
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        // A date in the past is "now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }

    #[test]
    fn duplicate_refusal_text() {
        assert!(is_duplicate_refusal(
            "(XID 3hq8z2) An item with a “user” key value of “bob” and a type of “AccountRemoteRoot” already exists in the queue."
        ));
        assert!(!is_duplicate_refusal(
            "The “user” parameter is required for the “AccountRemoteRoot” module."
        ));
    }

    #[test]
    fn ssh_params_put_secrets_only_as_secret_params() {
        let mut p = Params::new();
        p.ssh(
            "old1.example.com",
            &SshLogin {
                user: "admin".into(),
                port: 2222,
                auth: SshAuth::Key {
                    name: "id_ferry".into(),
                    passphrase: Some(Secret::new("pp-secret")),
                },
                escalation: Some((Escalation::Su, Some(Secret::new("root-secret")))),
            },
        );
        let keys: Vec<_> = p.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(
            keys,
            [
                "host",
                "user",
                "port",
                "sshkey_name",
                "sshkey_passphrase",
                "root_escalation_method",
                "root_password"
            ]
        );
        let secret_keys: Vec<_> =
            p.0.iter()
                .filter(|(_, v)| matches!(v, Param::Secret(_)))
                .map(|(k, _)| k.as_ref())
                .collect();
        assert_eq!(secret_keys, ["sshkey_passphrase", "root_password"]);
    }

    #[test]
    fn debug_hides_the_token() {
        let c = WhmClient::new(ClientConfig::new(
            "http://127.0.0.1:9",
            "root",
            Secret::new("tok-very-secret-42"),
        ))
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("tok-very-secret-42"), "{d}");
        assert_eq!(c.host(), "127.0.0.1:9");
        let cfg = ClientConfig::new(
            "http://127.0.0.1:9",
            "root",
            Secret::new("tok-very-secret-42"),
        );
        assert!(!format!("{cfg:?}").contains("tok-very-secret-42"));
    }

    #[test]
    fn new_refuses_bad_urls_without_echoing_credentials() {
        let e = WhmClient::new(ClientConfig::new(
            "http://whm.example.net:2086",
            "root",
            Secret::new("t"),
        ))
        .unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Config(_)));
        assert!(!e.may_have_applied());
        let e = WhmClient::new(ClientConfig::new(
            "https://root:pw-in-url@whm.example.net:2087",
            "root",
            Secret::new("t"),
        ))
        .unwrap_err();
        assert!(!e.to_string().contains("pw-in-url"), "{e}");
    }

    #[tokio::test]
    async fn connection_refused_is_connect_and_not_applied() {
        // Bind then drop a listener: the port is (almost surely) closed.
        let (c, port) = closed_port_client();
        let e = c.listaccts().await.unwrap_err();
        assert_eq!(e.function, "listaccts");
        assert!(matches!(e.kind, ErrorKind::Connect(_)), "{e:?}");
        assert!(!e.may_have_applied());
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[tokio::test]
    async fn a_traced_clone_names_the_function_it_called() {
        let (c, _) = closed_port_client();
        let (traced, trace) = c.traced();
        assert_eq!(trace.function(), None);
        let _ = traced.listaccts().await;
        assert_eq!(trace.function(), Some("listaccts"));
        // The original client and other clones record nothing.
        let (_, other) = c.traced();
        let _ = c.listaccts().await;
        assert_eq!(other.function(), None);
    }
}
