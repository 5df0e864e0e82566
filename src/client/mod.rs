//! The typed WHM API 1 client.
//!
//! Owns:
//! * one HTTP attempt per call ([`WhmClient`], one `reqwest` connection pool
//!   per server, cheap to clone), with typed requests and results
//!   ([`whm`]);
//! * WHM's envelope (`{metadata:{result,reason,command,version}, data}`):
//!   `result = 0` becomes [`ErrorKind::Whm`] ([`envelope`]);
//! * the classification of every failure and the backoff policy — the ONE
//!   place that says what is transient, permanent or an auth refusal, and
//!   whether a failed call may nevertheless have been applied ([`retry`]);
//! * TLS trust (rustls + ring; the platform's roots, an extra CA from the
//!   plan, or verification off) and the `http://`-only-to-loopback rule
//!   ([`tls`]);
//! * parsing `master.log` into per-item outcomes ([`masterlog`]);
//! * timing each attempt for an optional observer, the metrics
//!   ([`observe`]).
//!
//! Does not own: *deciding* to repeat a call. The client never retries by
//! itself. Idempotent reads are retried through [`retry::retry_idempotent`]
//! by whoever calls them; `create_remote_root_transfer_session` and
//! `enqueue_transfer_item` are retried only by `exec`, after it has
//! reconciled with the server (session state, `master.log`, the duplicate-key
//! refusal, `listaccts`) — see design §5.
//!
//! Secrets on the wire: the API token goes only into the
//! `Authorization: whm USER:TOKEN` header (marked sensitive); every
//! parameter — passwords included — goes into an
//! `application/x-www-form-urlencoded` POST body; the URL carries only
//! `api.version=1`. Redirects are never followed. Nothing this module logs
//! or formats (Debug, Display, tracing) contains a secret or a response
//! body.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub mod envelope;
pub mod masterlog;
pub mod observe;
pub mod retry;
pub mod tls;
pub mod whm;

pub use masterlog::{ItemOutcome, LogLine, item_outcomes, master_finished, parse_master_log};
pub use observe::{CallObserver, Watch, watched};
pub use retry::{Class, Idempotency, RetryPolicy, retry_idempotent};
pub use tls::{is_loopback_host, validate_base_url};
pub use whm::{CallTrace, WhmClient};

/// How to reach one WHM server.
///
/// `Debug` is safe to print: the token is a [`Secret`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://whm.example.net:2087`, or `http://127.0.0.1:PORT` (plain
    /// HTTP only to loopback).
    pub base_url: String,
    /// The API token's user, e.g. `root`.
    pub user: String,
    /// The WHM API token.
    pub token: Secret,
    /// An extra trusted CA (PEM text), from the plan's `target.tls.ca_file`.
    pub ca_pem: Option<String>,
    /// Skip certificate verification (the caller warns).
    pub insecure: bool,
    /// Time to establish a TCP + TLS connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Time for a whole call. Default 60 s; log fetches pass their own.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// A configuration with the default timeouts, no extra CA, verification on.
    pub fn new(base_url: impl Into<String>, user: impl Into<String>, token: Secret) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            user: user.into(),
            token,
            ca_pem: None,
            insecure: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A transfer session id as WHM makes them: `^[0-9A-Za-z_]+$` (36
/// characters in practice). Serialised as a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

/// A string that is not a valid session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid transfer session id `{0}`: WHM ids contain only letters, digits and `_`")]
pub struct InvalidSessionId(pub String);

impl SessionId {
    /// Checks the id against WHM's rule (`Session.pm::new`).
    pub fn parse(s: &str) -> Result<SessionId, InvalidSessionId> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(SessionId(s.to_string()))
        } else {
            // Cut long junk so an error message stays readable.
            Err(InvalidSessionId(s.chars().take(64).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SessionId {
    type Err = InvalidSessionId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionId::parse(s)
    }
}

impl TryFrom<String> for SessionId {
    type Error = InvalidSessionId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SessionId::parse(&s)
    }
}

impl From<SessionId> for String {
    fn from(s: SessionId) -> String {
        s.0
    }
}

/// How a non-root SSH user becomes root on the source
/// (`root_escalation_method`): the one definition, which the plan language
/// reads too (`plan::Escalation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Escalation {
    Su,
    Sudo,
}

impl Escalation {
    pub fn as_str(self) -> &'static str {
        match self {
            Escalation::Su => "su",
            Escalation::Sudo => "sudo",
        }
    }
}

/// How the target authenticates to the source over SSH.
#[derive(Debug, Clone)]
pub enum SshAuth {
    /// `password`.
    Password(Secret),
    /// `sshkey_name` (a key stored on the target for root), with
    /// `sshkey_passphrase` if the key is encrypted.
    Key {
        name: String,
        passphrase: Option<Secret>,
    },
}

/// The target's SSH login to a source.
#[derive(Debug, Clone)]
pub struct SshLogin {
    pub user: String,
    pub port: u16,
    pub auth: SshAuth,
    /// For a non-root `user`: the method, and root's password for `su`.
    pub escalation: Option<(Escalation, Option<Secret>)>,
}

/// Arguments of `create_remote_root_transfer_session`.
///
/// Fixed on the wire (not options): `unrestricted_restore=1`,
/// `copy_reseller_privs=1`, `unencrypted=0`, transport `ssh` (WHM's default).
#[derive(Debug, Clone)]
pub struct CreateSession {
    /// The source host (name or IP).
    pub host: String,
    pub ssh: SshLogin,
    pub transfer_threads: u8,
    pub restore_threads: u8,
    pub compressed: bool,
    pub low_priority: bool,
}

impl CreateSession {
    /// A session made only to read the source's analysis (`ferry check`,
    /// `ferry inventory`): never started, so one low-priority worker each.
    pub fn for_analysis(host: &str, ssh: &SshLogin) -> CreateSession {
        CreateSession {
            host: host.to_string(),
            ssh: ssh.clone(),
            transfer_threads: 1,
            restore_threads: 1,
            compressed: false,
            low_priority: true,
        }
    }
}

/// Arguments of `remote_basic_credential_check`: can the target log in to
/// `host` with `ssh`?
#[derive(Debug, Clone)]
pub struct CredentialCheck {
    pub host: String,
    pub ssh: SshLogin,
}

/// One account for `enqueue_transfer_item` (module `AccountRemoteRoot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountItem {
    /// The user on the source (the item's key).
    pub user: String,
    /// The user on the target.
    pub localuser: String,
    pub size: Option<u64>,
    pub domain: Option<String>,
    /// 1 (first) .. 255 (last, WHM's default).
    pub priority: Option<u8>,
    /// An item of the same session that must go first (its reseller).
    pub prerequisite_user: Option<String>,
    /// Further `AccountRemoteRoot` keys (`ip`, `skiphomedir`, …), e.g. from
    /// `plan::AccountOptions::to_params`.
    pub options: Vec<(&'static str, String)>,
}

/// What `enqueue_transfer_item` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// The item was added.
    Added,
    /// WHM refused it with "… already exists in the queue.": an earlier
    /// enqueue of the same key into this session took effect.
    AlreadyQueued,
}

/// A session state as `get_transfer_session_state` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionState {
    Pending,
    Running,
    Pausing,
    Paused,
    Aborting,
    Aborted,
    Completed,
    Failed,
    /// Anything else, e.g. the docs' `TRANSFER_INPROGRESS` (an item state
    /// that real servers do not return for a session).
    Other(String),
}

impl SessionState {
    /// The names of every state 11.120 returns for a session, in the order
    /// of its life (docs/whm.md §2.4).
    pub const NAMES: [&'static str; 8] = [
        "PENDING",
        "RUNNING",
        "PAUSING",
        "PAUSED",
        "ABORTING",
        "ABORTED",
        "COMPLETED",
        "FAILED",
    ];

    pub fn from_name(name: &str) -> SessionState {
        match name {
            "PENDING" => SessionState::Pending,
            "RUNNING" => SessionState::Running,
            "PAUSING" => SessionState::Pausing,
            "PAUSED" => SessionState::Paused,
            "ABORTING" => SessionState::Aborting,
            "ABORTED" => SessionState::Aborted,
            "COMPLETED" => SessionState::Completed,
            "FAILED" => SessionState::Failed,
            other => SessionState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            SessionState::Pending => "PENDING",
            SessionState::Running => "RUNNING",
            SessionState::Pausing => "PAUSING",
            SessionState::Paused => "PAUSED",
            SessionState::Aborting => "ABORTING",
            SessionState::Aborted => "ABORTED",
            SessionState::Completed => "COMPLETED",
            SessionState::Failed => "FAILED",
            SessionState::Other(s) => s,
        }
    }

    /// COMPLETED, ABORTED and FAILED: nothing will change any more (FAILED
    /// and ABORTED sessions cannot be restarted).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            SessionState::Completed | SessionState::Aborted | SessionState::Failed
        )
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SessionState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SessionState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(SessionState::from_name(&s))
    }
}

/// An account as `listaccts` (target) or the remote analysis (source) shows
/// it. Only `user` is guaranteed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AccountInfo {
    pub user: String,
    pub domain: Option<String>,
    pub owner: Option<String>,
    /// The account's package (WHM calls it `plan`).
    pub plan: Option<String>,
    /// Disk used, in bytes: the analysis's `bytesused` (or an older
    /// stand-in's `size`). `None` from `listaccts`, and when the source
    /// reports 0 (quotas off: unknown, not empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Files (inodes) used: the analysis's `filesused`; `None` likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// The main domain has a dedicated IP on the source
    /// (`has_dedicated_ip`); `None` when the answer does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedicated_ip: Option<bool>,
}

/// An account present on the target (`listaccts`).
pub type TargetAccount = AccountInfo;

/// One account on the target as `accountsummary` describes it
/// (docs/whm.md §8.2): what `ferry verify` compares with the plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AccountSummary {
    pub user: String,
    /// The main domain.
    pub domain: Option<String>,
    /// Its owner (`root` when it has none).
    pub owner: String,
    /// Its package (WHM calls it `plan`; `undefined` or `default` when none).
    pub package: Option<String>,
    pub suspended: bool,
    /// Why it is suspended, as the server says (only while suspended).
    pub suspend_reason: Option<String>,
    /// `diskused`: whole MiB, truncated; `None` when the server says `none`.
    pub disk_used_mib: Option<u64>,
}

/// `validate_system_user`'s answer for one username on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SystemUser {
    pub exists: bool,
    pub reserved: bool,
    pub valid_for_new: bool,
    pub valid_for_transfer: bool,
}

/// What a session's remote analysis found on the source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RemoteAnalysis {
    pub accounts: Vec<AccountInfo>,
    pub packages: Vec<String>,
    /// `remote.supports_live_transfers` (docs/whm.md §5, §7): the source can
    /// do live transfers (cPanel 11.89+); `None` when the answer lacks it.
    pub supports_live_transfers: Option<bool>,
    /// `remote.version`: the source's cPanel version, when the answer
    /// gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `remote.dbs.dbs.MYSQL`: the source's MySQL databases by the
    /// account owning them (docs/whm.md §5), for verification.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub databases: BTreeMap<String, Vec<String>>,
}

/// A failed WHM call: which function, what went wrong, after how many
/// attempts and how long in all. `Display` never contains a secret or a
/// response body: `WHM get_transfer_session_state failed after 5 attempts in
/// 12.3s: HTTP 503`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WHM {function} failed after {}: {kind}", attempts_and_time(*.attempts, *.elapsed))]
pub struct Error {
    pub function: &'static str,
    pub kind: ErrorKind,
    /// From the first attempt to this failure.
    pub elapsed: Duration,
    /// Attempts made (1 for a call the client made once; the retry layer
    /// counts its own).
    pub attempts: u32,
}

fn attempts_and_time(attempts: u32, elapsed: Duration) -> String {
    if attempts > 1 {
        format!("{attempts} attempts in {}", fmt_elapsed(elapsed))
    } else {
        fmt_elapsed(elapsed)
    }
}

fn fmt_elapsed(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// What went wrong. See [`retry::classify`] for what each means for a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// No connection (refused, DNS, unreachable, connect timeout): the
    /// request never reached the server.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No answer within the timeout: the request may have been applied.
    #[error("no answer before the timeout (the call may have taken effect)")]
    Timeout,
    /// The connection broke after the request was sent (reset, closed): the
    /// answer is lost, the request may have been applied.
    #[error("connection lost before the answer ({0}); the call may have taken effect")]
    ConnectionLost(String),
    /// An HTTP status other than 200 (and not an auth refusal).
    #[error("HTTP {status}{}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 401/403: the server refused the token. Never retried: WHM's
    /// brute-force protection (cPHulk) locks out repeated failures.
    #[error(
        "the server refused the API token (HTTP {status}); check target.user and target.token (ferry does not retry refused logins)"
    )]
    AuthRefused { status: u16 },
    /// WHM answered `metadata.result = 0`.
    #[error("WHM refused: {}", crate::untrusted::line(reason))]
    Whm { reason: String },
    /// The answer is not a WHM envelope, or lacks an expected field.
    #[error("unexpected answer: {}", crate::untrusted::line(.0))]
    Decode(String),
    /// The TLS handshake failed (certificate not trusted, …). The text names
    /// the host and the fix.
    #[error("{0}")]
    Tls(String),
    /// The configuration is unusable (bad URL, `http://` to a non-loopback
    /// host, unreadable CA PEM). Nothing was sent.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// Not sent: this process may no longer act for the run (its journal's
    /// lease is lost or unconfirmed, `journal::pg`). The text says why.
    #[error("not sent: {0}")]
    Fenced(String),
}

impl Error {
    /// Transient, permanent or auth refusal — decided in [`retry::classify`].
    pub fn class(&self) -> Class {
        retry::classify(&self.kind)
    }

    /// `false` only when the request surely never reached the server
    /// (connect refused, DNS, TLS handshake, invalid configuration).
    pub fn may_have_applied(&self) -> bool {
        retry::may_have_applied(&self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids() {
        let id = SessionId::parse("remoteexamplecopya20140211211719FxjU").unwrap();
        assert_eq!(id.as_str(), "remoteexamplecopya20140211211719FxjU");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"remoteexamplecopya20140211211719FxjU\""
        );
        let back: SessionId = serde_json::from_str("\"abc_123\"").unwrap();
        assert_eq!(back.to_string(), "abc_123");
        for bad in ["", "a b", "../etc", "x;rm", "ü"] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_str::<SessionId>(&format!("{bad:?}")).is_err());
        }
    }

    #[test]
    fn session_states_round_trip() {
        for name in SessionState::NAMES {
            let s = SessionState::from_name(name);
            assert!(!matches!(s, SessionState::Other(_)), "{name}");
            assert_eq!(s.as_str(), name);
        }
        let odd = SessionState::from_name("TRANSFER_INPROGRESS");
        assert_eq!(odd, SessionState::Other("TRANSFER_INPROGRESS".into()));
        assert!(!odd.is_terminal());
        assert!(SessionState::Failed.is_terminal());
        assert!(!SessionState::Paused.is_terminal());
    }

    #[test]
    fn debug_of_requests_hides_every_secret() {
        let login = SshLogin {
            user: "admin".into(),
            port: 22,
            auth: SshAuth::Key {
                name: "id_ferry".into(),
                passphrase: Some(Secret::new("pp-Debug-1")),
            },
            escalation: Some((Escalation::Su, Some(Secret::new("rootpw-Debug-2")))),
        };
        let create = CreateSession {
            host: "old1.example.com".into(),
            ssh: SshLogin {
                auth: SshAuth::Password(Secret::new("pw-Debug-3")),
                ..login.clone()
            },
            transfer_threads: 1,
            restore_threads: 1,
            compressed: false,
            low_priority: false,
        };
        let check = CredentialCheck {
            host: "old1.example.com".into(),
            ssh: login,
        };
        let cfg = ClientConfig::new(
            "https://whm.example.net:2087",
            "root",
            Secret::new("tok-Debug-4"),
        );
        let text = format!("{create:?} {create:#?} {check:?} {cfg:?} {cfg:#?}");
        for s in ["pp-Debug-1", "rootpw-Debug-2", "pw-Debug-3", "tok-Debug-4"] {
            assert!(!text.contains(s), "{s} leaked: {text}");
        }
        assert!(text.contains("[REDACTED]"));
    }

    #[test]
    fn error_display_is_one_readable_line() {
        let e = Error {
            function: "enqueue_transfer_item",
            kind: ErrorKind::Http {
                status: 503,
                retry_after: Some(Duration::from_secs(30)),
            },
            elapsed: Duration::from_millis(1500),
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "WHM enqueue_transfer_item failed after 1.5s: HTTP 503 (Retry-After 30s)"
        );
        let e = Error {
            attempts: 5,
            elapsed: Duration::from_millis(12_300),
            ..e
        };
        assert_eq!(
            e.to_string(),
            "WHM enqueue_transfer_item failed after 5 attempts in 12.3s: HTTP 503 (Retry-After 30s)"
        );
    }
}
