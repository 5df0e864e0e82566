//! The journal in PostgreSQL: one run shared by every machine that reaches
//! the database, with a leased, fenced lock (docs/postgres.md).
//!
//! Owns: the connection (tokio-postgres, rustls on ring off loopback), the
//! schema and its migrations (under `pg_advisory_xact_lock`), the lease
//! (acquire, renew, release, force-unlock; expiry always from the
//! database's clock), the fenced record writer ([`PgWriter`], a
//! [`super::Backend`]), the read of a run's records, and the pause/abort
//! requests of `ferry_controls`. Does not own: what is recorded or when
//! (`exec`), where the journal is (`ops::journal`), the record format
//! (`record`) or the fold (`replay`).
//!
//! ## Why a thread of its own
//!
//! The executor appends records synchronously (under a std mutex, like an
//! fsync of the file journal). The client lives on a small current-thread
//! tokio runtime on its own thread, and a caller hands it a job and waits on
//! a std channel: no `block_on` inside the caller's runtime, and the lease
//! is renewed on that thread even while every worker of the run is busy.
//!
//! ## Fencing
//!
//! Every record is written by one statement that takes `FOR SHARE` on the
//! run's lease row and inserts only if the row's `token` is still ours. A
//! takeover (an `UPDATE` of that row) waits for such a write to commit, and
//! a write that starts after a takeover sees the new token and writes
//! nothing: the records of a run are a single history, whoever wrote them.
//!
//! ## Durability
//!
//! The connection runs with `synchronous_commit = off`: an answer or a
//! conclusion is on the server when `append` returns (a SIGKILL of ferry
//! loses nothing), and flushed by the server within a fraction of a second.
//! An intent is written in a transaction with `synchronous_commit = on`:
//! when `append` returns it is in the WAL on disk, and with it every record
//! before it — the same promise as the file journal's fsync.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::file::{Durability, Entry, JournalError, now_rfc3339};
use super::record::{ControlAction, Record, Requester};
use crate::secret::Secret;

/// Why the database journal could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PgError {
    /// The location is unusable (exit 2): bad URL, a password in it, no TLS
    /// off loopback, an unreadable CA file.
    #[error("{0}")]
    Config(String),
    /// The database did not answer after every retry (exit 1).
    #[error(
        "PostgreSQL at {at} did not answer after {attempts} attempts in {:.1}s ({last}); the \
         journal there is consistent: run `ferry apply` again once the database is back",
        .elapsed.as_secs_f64()
    )]
    Unreachable {
        at: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    /// Another process holds the run's lease (exit 6).
    #[error(
        "another `ferry apply` holds the run `{run}` in PostgreSQL: {holder}; wait for it, stop it \
         with `ferry pause`, or (only if it is gone and you cannot wait for its lease to expire) \
         `ferry force-unlock PLAN {token}`",
        token = .holder.token
    )]
    Held { run: String, holder: Holder },
    /// The lease is no longer ours: taken by another process after it
    /// expired, or freed with force-unlock (exit 6).
    #[error(
        "this apply lost the run `{run}`'s lease and stopped at once without another request: \
         {}",
        match .holder { Some(h) => format!("it is now held by {h}"), None => "it was freed (ferry force-unlock)".to_string() }
    )]
    Lost { run: String, holder: Option<Holder> },
    /// The database holds something ferry did not write (a gap in `seq`, a
    /// record that does not parse, another record at our `seq`).
    #[error(
        "the run `{run}` in PostgreSQL is damaged at seq {seq} ({reason}); ferry refuses to guess what it meant"
    )]
    Corrupt {
        run: String,
        seq: u64,
        reason: String,
    },
    /// The database refused a statement.
    #[error("PostgreSQL refused: {0}")]
    Sql(String),
}

/// Who holds (or last held) a run's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: i32,
    pub user: String,
    /// When it took the lease (the database's clock, RFC 3339).
    pub since: String,
    pub token: i64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} (user {}) since {}, token {}",
            self.pid, self.host, self.user, self.since, self.token
        )
    }
}

/// Where the journal is: a PostgreSQL database, without its password.
#[derive(Clone)]
pub struct Location {
    /// The URL as given, without a password (checked by [`Location::new`]).
    pub url: String,
    pub password: Option<Secret>,
    /// PEM of `tls.ca_file`.
    pub ca_pem: Option<String>,
    /// How long a lease lasts without renewal (renewed every third).
    pub lease: Duration,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("url", &self.url)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Whether `s` names a PostgreSQL database rather than a file.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The default lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl Location {
    /// Checks `url`: it parses, names a database, carries no password (a
    /// password in a URL shows in the process list, the plan and CI logs).
    pub fn new(
        url: &str,
        password: Option<Secret>,
        ca_pem: Option<String>,
        lease: Duration,
    ) -> Result<Location, PgError> {
        let cfg = Config::from_str(url).map_err(|e| {
            PgError::Config(format!(
                "{}: not a PostgreSQL URL ({e}); write it as postgres://USER@HOST:PORT/DATABASE",
                redact_url(url)
            ))
        })?;
        if cfg.get_password().is_some() {
            return Err(PgError::Config(format!(
                "{}: the URL contains a password; ferry refuses it (it would show in the process \
                 list, the plan and CI logs). Remove it and give it as `journal.postgres.password: \
                 {{env: NAME}}` in the plan, or set PGPASSWORD",
                redact_url(url)
            )));
        }
        if cfg.get_hosts().is_empty() {
            return Err(PgError::Config(format!(
                "{url}: no host; write it as postgres://USER@HOST:PORT/DATABASE"
            )));
        }
        if lease < Duration::from_secs(1) {
            return Err(PgError::Config(format!(
                "lease {}: too short, give at least 1s (it is renewed every third of it)",
                humantime::format_duration(lease)
            )));
        }
        Ok(Location {
            url: url.to_string(),
            password,
            ca_pem,
            lease,
        })
    }

    /// `host:port/database`, for messages.
    pub fn display(&self) -> String {
        redact_url(&self.url)
    }

    fn loopback(cfg: &Config) -> bool {
        cfg.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => crate::client::tls::is_loopback_host(name),
            #[cfg(unix)]
            Host::Unix(_) => true,
        })
    }
}

/// A URL with whatever sits between `//` and `@` beyond the user removed.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparsable URL)".into();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_string(),
    }
}

/// How often and how long a database call is tried before giving up.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    /// One attempt's limit (a half-dead connection never answers).
    pub timeout: Duration,
}

impl Default for Retry {
    /// About 15 s of trying: a database restart or a fail-over fits in it.
    fn default() -> Self {
        Retry {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The connection, on its own thread (module doc).
pub struct Db {
    handle: tokio::runtime::Handle,
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    cfg: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    at: String,
    retry: Retry,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

/// A live connection and its prepared statements.
struct Conn {
    client: Arc<Client>,
    write: Option<Statement>,
}

/// The schema, one migration per version; applied in order, each once.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE ferry_runs (
    run        text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    plan_file  text NOT NULL
);
CREATE TABLE ferry_records (
    run        text NOT NULL REFERENCES ferry_runs (run),
    seq        bigint NOT NULL CHECK (seq >= 1),
    ts         text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    rec        text NOT NULL,
    PRIMARY KEY (run, seq)
);
CREATE TABLE ferry_leases (
    run         text PRIMARY KEY REFERENCES ferry_runs (run),
    token       bigint NOT NULL DEFAULT 0,
    holder_host text,
    holder_pid  integer,
    holder_user text,
    since       timestamptz,
    expires_at  timestamptz
);
CREATE TABLE ferry_controls (
    id          bigserial PRIMARY KEY,
    run         text NOT NULL REFERENCES ferry_runs (run),
    action      text NOT NULL CHECK (action IN ('pause', 'abort')),
    by_user     text NOT NULL,
    by_host     text NOT NULL,
    by_pid      integer NOT NULL,
    at          text NOT NULL,
    consumed_at timestamptz
);
CREATE INDEX ferry_controls_pending ON ferry_controls (run) WHERE consumed_at IS NULL;
"#];

/// The key of the transaction-level advisory lock that serialises
/// migrations ("ferry" in ASCII, then the schema's lock number 1).
const MIGRATION_LOCK: i64 = 0x0066_6572_7279_0001;

/// One record written if and only if the lease row still carries our
/// token (module doc, "Fencing"). Returns the lease's current token, the
/// number of rows inserted, and the record already at that seq (from the
/// statement's snapshot: `NULL` when ours was just inserted).
const WRITE: &str = "WITH l AS (SELECT token FROM ferry_leases WHERE run = $1 FOR SHARE), \
     ins AS (INSERT INTO ferry_records (run, seq, ts, rec) \
             SELECT $1, $3, $4, $5 FROM l WHERE l.token = $2 \
             ON CONFLICT (run, seq) DO NOTHING RETURNING 1) \
     SELECT (SELECT token FROM l), (SELECT count(*) FROM ins), \
            (SELECT rec FROM ferry_records WHERE run = $1 AND seq = $3)";

const HOLDER: &str = "SELECT token, holder_host, holder_pid, holder_user, \
     to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
     (holder_pid IS NOT NULL AND expires_at > now()) FROM ferry_leases WHERE run = $1";

impl Db {
    /// Connects (with retries) and brings the schema up to date.
    pub fn connect(loc: &Location) -> Result<Arc<Db>, PgError> {
        Self::connect_with(loc, Retry::default())
    }

    /// [`Db::connect`] with its own retry budget (tests, benchmarks).
    pub fn connect_with(loc: &Location, retry: Retry) -> Result<Arc<Db>, PgError> {
        let mut cfg = Config::from_str(&loc.url).map_err(|e| PgError::Config(e.to_string()))?;
        if let Some(p) = &loc.password {
            cfg.password(p.expose());
        } else if let Ok(p) = std::env::var("PGPASSWORD") {
            let secret = Secret::new(p);
            cfg.password(secret.expose());
        }
        cfg.application_name("ferry")
            .connect_timeout(Duration::from_secs(5))
            .keepalives_idle(Duration::from_secs(10))
            .options("-c synchronous_commit=off");
        let loopback = Location::loopback(&cfg);
        let tls = if loopback && loc.ca_pem.is_none() {
            None
        } else {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let config = crate::client::tls::rustls_config(loc.ca_pem.as_deref())
                .map_err(|e| PgError::Config(format!("journal.postgres.tls: {e}")))?;
            Some(tokio_postgres_rustls::MakeRustlsConnect::new(config))
        };
        let inner = Arc::new(Inner {
            cfg,
            tls,
            at: loc.display(),
            retry,
            conn: tokio::sync::Mutex::new(None),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PgError::Sql(format!("cannot start the database thread: {e}")))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ferry-journal-pg".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| PgError::Sql(format!("cannot start the database thread: {e}")))?;
        let db = Arc::new(Db {
            handle,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        });
        db.call(|i| async move { i.retrying(|c| async move { migrate(&c).await }).await })?;
        Ok(db)
    }

    /// Runs `job` on the database thread and waits for its result. Never
    /// called from the database thread itself.
    fn call<T, F, Fut>(&self, job: F) -> Result<T, PgError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let inner = self.inner.clone();
        self.handle.spawn(async move {
            let _ = tx.send(job(inner).await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(PgError::Sql("the database thread stopped".into())))
    }

    /// Where it is, for messages.
    pub fn at(&self) -> &str {
        &self.inner.at
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    /// The live connection, connecting if there is none.
    async fn conn(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_ref()
            && !c.client.is_closed()
        {
            return Ok(c.client.clone());
        }
        *g = None;
        let client = match &self.tls {
            None => {
                let (client, connection) = self.cfg.connect(NoTls).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            Some(tls) => {
                let (client, connection) = self.cfg.connect(tls.clone()).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        let client = Arc::new(client);
        *g = Some(Conn {
            client: client.clone(),
            write: None,
        });
        Ok(client)
    }

    /// [`WRITE`], prepared once per connection (after the migration, so
    /// the tables exist).
    async fn write_stmt(&self, client: &Arc<Client>) -> Result<Statement, tokio_postgres::Error> {
        {
            let g = self.conn.lock().await;
            if let Some(c) = g.as_ref()
                && Arc::ptr_eq(&c.client, client)
                && let Some(s) = &c.write
            {
                return Ok(s.clone());
            }
        }
        let s = client.prepare(WRITE).await?;
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_mut()
            && Arc::ptr_eq(&c.client, client)
        {
            c.write = Some(s.clone());
        }
        Ok(s)
    }

    async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// `op` on the connection, retried with backoff while the database is
    /// unreachable (a refused, reset or timed-out connection); a statement
    /// the database refuses is not retried.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, PgError>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, PgError>>,
    {
        self.attempts(false, |c, _| op(c)).await
    }

    /// [`Inner::retrying`] for a record's write, with [`WRITE`] prepared.
    async fn retrying_write<T, F, Fut>(&self, op: F) -> Result<T, PgError>
    where
        F: Fn(Arc<Client>, Option<Statement>) -> Fut,
        Fut: Future<Output = Result<T, PgError>>,
    {
        self.attempts(true, op).await
    }

    async fn attempts<T, F, Fut>(&self, prepare: bool, op: F) -> Result<T, PgError>
    where
        F: Fn(Arc<Client>, Option<Statement>) -> Fut,
        Fut: Future<Output = Result<T, PgError>>,
    {
        let started = Instant::now();
        let mut delay = self.retry.initial;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = tokio::time::timeout(self.retry.timeout, async {
                let c = self.conn().await.map_err(Failure::from)?;
                let s = if prepare {
                    Some(self.write_stmt(&c).await.map_err(Failure::from)?)
                } else {
                    None
                };
                op(c, s).await.map_err(Failure::from)
            })
            .await
            .unwrap_or_else(|_| Err(Failure::Unreachable("no answer before the timeout".into())));
            let last = match r {
                Ok(v) => return Ok(v),
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Unreachable(m)) => m,
            };
            self.forget().await;
            if attempt >= self.retry.attempts {
                return Err(PgError::Unreachable {
                    at: self.at.clone(),
                    attempts: attempt,
                    elapsed: started.elapsed(),
                    last,
                });
            }
            tracing::warn!(attempt, "PostgreSQL unreachable ({last}); retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.retry.max);
        }
    }
}

/// One attempt's failure.
enum Failure {
    /// Worth another attempt on a new connection.
    Unreachable(String),
    /// Final.
    Refused(PgError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        if unreachable(&e) {
            Failure::Unreachable(classify(&e).to_string())
        } else {
            Failure::Refused(classify(&e))
        }
    }
}

/// Connection-level trouble (retry on a new connection) or a refusal.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        // 08: connection exception; 57P01-03: shutdown, crash, starting up.
        Some(c) => c.code().starts_with("08") || c.code().starts_with("57P"),
    }
}

/// A statement's error as a [`PgError`] (retry decided by [`Failure`]).
fn classify(e: &tokio_postgres::Error) -> PgError {
    let text = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s = format!("{s}: {inner}");
                src = inner.source();
            }
            s
        }
    };
    PgError::Sql(text)
}

/// A statement error mapped for [`Inner::retrying`]: connection trouble is
/// retried, a refusal is final.
fn sql(e: tokio_postgres::Error) -> PgError {
    if unreachable(&e) {
        PgError::Unreachable {
            at: String::new(),
            attempts: 0,
            elapsed: Duration::ZERO,
            last: classify(&e).to_string(),
        }
    } else {
        classify(&e)
    }
}

/// Makes an error from [`sql`] retryable again inside [`Inner::retrying`].
trait Retryable<T> {
    fn retryable(self) -> Result<T, PgError>;
}

impl<T> Retryable<T> for Result<T, tokio_postgres::Error> {
    fn retryable(self) -> Result<T, PgError> {
        self.map_err(sql)
    }
}

/// Ends the transaction `BEGIN` opened: `COMMIT` after `r` succeeded,
/// else `ROLLBACK` (best effort: the connection may be the reason) and `r`'s
/// error.
async fn end_transaction(c: &Client, r: Result<(), PgError>) -> Result<(), PgError> {
    match r {
        Ok(()) => c.batch_execute("COMMIT").await.retryable(),
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn migrate(c: &Client) -> Result<(), PgError> {
    // Serialised under a transaction-level advisory lock: two ferry
    // processes starting on an empty database never both create the
    // tables, and the lock ends with the transaction whatever happens.
    c.batch_execute("BEGIN").await.retryable()?;
    let r = async {
        c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .retryable()?;
        c.batch_execute("CREATE TABLE IF NOT EXISTS ferry_schema (version integer PRIMARY KEY)")
            .await
            .retryable()?;
        let have: i32 = c
            .query_one("SELECT coalesce(max(version), 0) FROM ferry_schema", &[])
            .await
            .retryable()?
            .get(0);
        let known = MIGRATIONS.len() as i32;
        if have > known {
            return Err(PgError::Config(format!(
                "the database's ferry schema is version {have}, newer than this ferry knows \
                 ({known}); upgrade ferry"
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(have as usize) {
            c.batch_execute(m).await.retryable()?;
            let v = i as i32 + 1;
            c.execute("INSERT INTO ferry_schema (version) VALUES ($1)", &[&v])
                .await
                .retryable()?;
        }
        Ok(())
    }
    .await;
    end_transaction(c, r).await
}

// Inside `retrying`, a `PgError::Unreachable` from `sql` means "try again".
impl From<PgError> for Failure {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Unreachable { last, .. } => Failure::Unreachable(last),
            other => Failure::Refused(other),
        }
    }
}

fn holder_of(row: &tokio_postgres::Row) -> Option<Holder> {
    let pid: Option<i32> = row.get(2);
    Some(Holder {
        token: row.get(0),
        host: row.get::<_, Option<String>>(1).unwrap_or_default(),
        pid: pid?,
        user: row.get::<_, Option<String>>(3).unwrap_or_default(),
        since: row.get::<_, Option<String>>(4).unwrap_or_default(),
    })
}

async fn current_holder(c: &Client, run: &str) -> Result<Option<Holder>, PgError> {
    let row = c.query_opt(HOLDER, &[&run]).await.retryable()?;
    Ok(row.as_ref().and_then(holder_of))
}

/// How a held lease ended, once it did.
#[derive(Debug, Clone)]
pub enum LeaseEnd {
    /// Another process has it now (or it was freed): exit 6.
    Lost(PgError),
    /// It could not be renewed before it ran out (the database
    /// unreachable): exit 1.
    Unconfirmed(String),
}

/// What the run's fence and writer share about the lease.
pub(crate) struct LeaseState {
    /// Until when (on this machine's monotonic clock, measured
    /// conservatively from before the renewal was sent) the lease is ours.
    deadline: Mutex<Instant>,
    ended: Mutex<Option<LeaseEnd>>,
}

/// A held lease. Renewed every third of its length on the database thread;
/// released when dropped.
pub struct Lease {
    db: Arc<Db>,
    run: String,
    token: i64,
    length: Duration,
    state: Arc<LeaseState>,
    renewer: Option<tokio::task::AbortHandle>,
}

/// This process as a lease holder.
fn me() -> (String, i32, String) {
    (
        super::lock::hostname(),
        std::process::id() as i32,
        super::lock::username(),
    )
}

impl Lease {
    /// Takes the run's lease if it is free or expired (the database's
    /// clock decides), incrementing its token; else says who holds it.
    /// Creates the run's rows on first use.
    pub fn acquire(
        db: &Arc<Db>,
        run: &str,
        plan_file: &str,
        length: Duration,
    ) -> Result<Lease, PgError> {
        let (host, pid, user) = me();
        let r = run.to_string();
        let pf = plan_file.to_string();
        let secs = length.as_secs_f64();
        let before = Instant::now();
        let got = db.call(move |i| async move {
            i.retrying(|c| {
                let (r, pf, host, user) = (r.clone(), pf.clone(), host.clone(), user.clone());
                async move {
                    c.execute(
                        "INSERT INTO ferry_runs (run, plan_file) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&r, &pf],
                    )
                    .await
                    .retryable()?;
                    c.execute(
                        "INSERT INTO ferry_leases (run) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[&r],
                    )
                    .await
                    .retryable()?;
                    let row = c
                        .query_opt(
                            "UPDATE ferry_leases SET token = token + 1, holder_host = $2, \
                             holder_pid = $3, holder_user = $4, since = now(), \
                             expires_at = now() + make_interval(secs => $5) \
                             WHERE run = $1 AND (holder_pid IS NULL OR expires_at <= now()) \
                             RETURNING token",
                            &[&r, &host, &pid, &user, &secs],
                        )
                        .await
                        .retryable()?;
                    match row {
                        Some(row) => Ok(Ok(row.get::<_, i64>(0))),
                        None => Ok(Err(current_holder(&c, &r).await?)),
                    }
                }
            })
            .await
        })?;
        match got {
            Ok(token) => {
                let mut lease = Lease {
                    db: db.clone(),
                    run: run.to_string(),
                    token,
                    length,
                    state: Arc::new(LeaseState {
                        deadline: Mutex::new(before + length),
                        ended: Mutex::new(None),
                    }),
                    renewer: None,
                };
                lease.start_renewing();
                Ok(lease)
            }
            Err(holder) => Err(PgError::Held {
                run: run.to_string(),
                holder: holder.unwrap_or_else(|| Holder {
                    host: "?".into(),
                    pid: 0,
                    user: "?".into(),
                    since: "?".into(),
                    token: 0,
                }),
            }),
        }
    }

    /// [`Lease::acquire`], polling every second for up to `wait` while
    /// another process holds it (`apply --lock-timeout`).
    pub fn acquire_waiting(
        db: &Arc<Db>,
        run: &str,
        plan_file: &str,
        length: Duration,
        wait: Duration,
    ) -> Result<Lease, PgError> {
        let deadline = Instant::now() + wait;
        loop {
            match Lease::acquire(db, run, plan_file, length) {
                Err(PgError::Held { .. }) if Instant::now() < deadline => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(Duration::from_millis(500)));
                }
                other => return other,
            }
        }
    }

    pub fn token(&self) -> i64 {
        self.token
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// How it ended, if it did.
    pub fn ended(&self) -> Option<LeaseEnd> {
        self.state.ended.lock().expect("lease").clone()
    }

    fn start_renewing(&mut self) {
        let inner = self.db.inner.clone();
        let run = self.run.clone();
        let token = self.token;
        let length = self.length;
        let state = self.state.clone();
        let task = self.db.handle.spawn(async move {
            loop {
                tokio::time::sleep(length / 3).await;
                if state.ended.lock().expect("lease").is_some() {
                    return;
                }
                if let Err(end) = renew(&inner, &run, token, length, &state).await
                    && matches!(end, LeaseEnd::Lost(_))
                {
                    return;
                }
            }
        });
        self.renewer = Some(task.abort_handle());
    }

    /// Before every WHM request: Ok while the lease is ours for at least a
    /// third of its length more; else renews it now; `Err` says why no
    /// request may leave.
    pub fn check(&self) -> Result<(), String> {
        if let Some(e) = self.ended() {
            return Err(end_message(&e));
        }
        let deadline = *self.state.deadline.lock().expect("lease");
        if Instant::now() + self.length / 3 < deadline {
            return Ok(());
        }
        let (run, token, length, state) = (
            self.run.clone(),
            self.token,
            self.length,
            self.state.clone(),
        );
        let r = self
            .db
            .call(move |i| async move { Ok(renew(&i, &run, token, length, &state).await) });
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(end)) => Err(end_message(&end)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The fence the executor's gate checks before every WHM request.
    pub fn fence(self: &Arc<Self>) -> Arc<dyn Fn() -> Result<(), String> + Send + Sync> {
        let me = self.clone();
        Arc::new(move || me.check())
    }

    pub(crate) fn state(&self) -> Arc<LeaseState> {
        self.state.clone()
    }
}

fn end_message(e: &LeaseEnd) -> String {
    match e {
        LeaseEnd::Lost(e) => e.to_string(),
        LeaseEnd::Unconfirmed(m) => m.clone(),
    }
}

/// Extends the lease from the database's clock if the token is still ours.
/// A lease found gone ends it for good; a database that cannot be reached
/// ends it only once its deadline passed.
async fn renew(
    inner: &Inner,
    run: &str,
    token: i64,
    length: Duration,
    state: &LeaseState,
) -> Result<(), LeaseEnd> {
    let sent = Instant::now();
    let secs = length.as_secs_f64();
    let r = inner
        .retrying(|c| {
            let run = run.to_string();
            async move {
                let n = c
                    .execute(
                        "UPDATE ferry_leases SET expires_at = now() + make_interval(secs => $3) \
                         WHERE run = $1 AND token = $2 AND holder_pid IS NOT NULL",
                        &[&run, &token, &secs],
                    )
                    .await
                    .retryable()?;
                if n == 1 {
                    Ok(None)
                } else {
                    Ok(Some(current_holder(&c, &run).await?))
                }
            }
        })
        .await;
    let end = match r {
        Ok(None) => {
            *state.deadline.lock().expect("lease") = sent + length;
            return Ok(());
        }
        Ok(Some(holder)) => LeaseEnd::Lost(PgError::Lost {
            run: run.to_string(),
            holder: holder.filter(|h| h.token != token),
        }),
        Err(e) => {
            if Instant::now() < *state.deadline.lock().expect("lease") {
                return Ok(());
            }
            LeaseEnd::Unconfirmed(format!(
                "the run `{run}`'s lease ran out and could not be renewed: {e}"
            ))
        }
    };
    state
        .ended
        .lock()
        .expect("lease")
        .get_or_insert(end.clone());
    Err(end)
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(t) = self.renewer.take() {
            t.abort();
        }
        if self.ended().is_some() {
            return;
        }
        // Released for the next apply; one short attempt: if the database
        // is unreachable, the lease simply expires.
        let (run, token) = (self.run.clone(), self.token);
        let _ = self.db.call(move |i| async move {
            let go = async {
                let c = i.conn().await.map_err(|e| classify(&e))?;
                c.execute(
                    "UPDATE ferry_leases SET holder_host = NULL, holder_pid = NULL, \
                     holder_user = NULL, since = NULL, expires_at = NULL \
                     WHERE run = $1 AND token = $2",
                    &[&run, &token],
                )
                .await
                .map_err(|e| classify(&e))
            };
            match tokio::time::timeout(Duration::from_secs(2), go).await {
                Ok(r) => r.map(|_| ()),
                Err(_) => Ok(()),
            }
        });
    }
}

/// Frees a run's lease whatever its holder (`ferry force-unlock`): only if
/// `token` is the current one (a stale token from an old message frees
/// nothing). The token stays, so the next holder gets a greater one and
/// the old holder's writes are refused.
pub fn force_unlock(db: &Arc<Db>, run: &str, token: i64) -> Result<Option<Holder>, PgError> {
    let run = run.to_string();
    db.call(move |i| async move {
        i.retrying(|c| {
            let run = run.clone();
            async move {
                let before = current_holder(&c, &run).await?;
                let n = c
                    .execute(
                        "UPDATE ferry_leases SET holder_host = NULL, holder_pid = NULL, \
                         holder_user = NULL, since = NULL, expires_at = NULL \
                         WHERE run = $1 AND token = $2 AND holder_pid IS NOT NULL",
                        &[&run, &token],
                    )
                    .await
                    .retryable()?;
                match (n, before) {
                    (1, b) => Ok(b),
                    (_, Some(h)) => Err(PgError::Config(format!(
                        "token {token} is not the current lease of `{run}` ({h} holds token {}); \
                         nothing was freed. Give the current token, from the message of the \
                         apply that was refused",
                        h.token
                    ))),
                    (_, None) => Err(PgError::Config(format!(
                        "the run `{run}` has no lease held (token {token}); nothing to free"
                    ))),
                }
            }
        })
        .await
    })
}

/// The lease's holder right now, if it is held and not expired (`status`).
pub fn holder(db: &Arc<Db>, run: &str) -> Result<Option<Holder>, PgError> {
    let run = run.to_string();
    db.call(move |i| async move {
        i.retrying(|c| {
            let run = run.clone();
            async move {
                let row = c.query_opt(HOLDER, &[&run]).await.retryable()?;
                Ok(row
                    .filter(|r| r.get::<_, bool>(5))
                    .as_ref()
                    .and_then(holder_of))
            }
        })
        .await
    })
}

/// Whether the run exists in the database.
pub fn run_exists(db: &Arc<Db>, run: &str) -> Result<bool, PgError> {
    let run = run.to_string();
    db.call(move |i| async move {
        i.retrying(|c| {
            let run = run.clone();
            async move {
                Ok(
                    c.query_opt("SELECT 1 FROM ferry_runs WHERE run = $1", &[&run])
                        .await
                        .retryable()?
                        .is_some(),
                )
            }
        })
        .await
    })
}

/// Creates the run `run` holding `entries` (with their times), in one
/// transaction: refused if the run exists (`ferry journal copy` never
/// overwrites a run). Its lease starts free, token 0.
pub fn import(
    db: &Arc<Db>,
    run: &str,
    plan_file: &str,
    entries: Vec<Entry>,
) -> Result<u64, PgError> {
    let (run, plan_file) = (run.to_string(), plan_file.to_string());
    let n = entries.len() as u64;
    let rows: Vec<(i64, String, String)> = entries
        .iter()
        .map(|e| {
            let body = String::from_utf8(super::file::body(&e.rec)).expect("JSON is UTF-8");
            (e.seq as i64, e.ts.clone(), body)
        })
        .collect();
    let rows = Arc::new(rows);
    db.call(move |i| async move {
        i.retrying(|c| {
            let (run, plan_file, rows) = (run.clone(), plan_file.clone(), rows.clone());
            async move {
                c.batch_execute("BEGIN").await.retryable()?;
                let r = async {
                    let created = c
                        .execute(
                            "INSERT INTO ferry_runs (run, plan_file) VALUES ($1, $2)                              ON CONFLICT DO NOTHING",
                            &[&run, &plan_file],
                        )
                        .await
                        .retryable()?;
                    if created == 0 {
                        return Err(PgError::Config(format!(
                            "the run `{run}` already exists in the database; ferry journal copy                              never overwrites a run"
                        )));
                    }
                    c.execute("INSERT INTO ferry_leases (run) VALUES ($1)", &[&run])
                        .await
                        .retryable()?;
                    for chunk in rows.chunks(5_000) {
                        let seqs: Vec<i64> = chunk.iter().map(|r| r.0).collect();
                        let ts: Vec<&str> = chunk.iter().map(|r| r.1.as_str()).collect();
                        let recs: Vec<&str> = chunk.iter().map(|r| r.2.as_str()).collect();
                        c.execute(
                            "INSERT INTO ferry_records (run, seq, ts, rec)                              SELECT $1, s, t, r FROM unnest($2::bigint[], $3::text[], $4::text[])                              AS x(s, t, r)",
                            &[&run, &seqs, &ts, &recs],
                        )
                        .await
                        .retryable()?;
                    }
                    Ok(())
                }
                .await;
                end_transaction(&c, r).await
            }
        })
        .await
    })?;
    Ok(n)
}

/// Records per read when a run is replayed.
const PAGE: i64 = 20_000;

/// Every record of `run`, in order, to `f`. Refuses a gap in `seq` or a
/// record that does not parse. Returns the number of records.
///
/// Pages are ranges of `seq` (`seq` has no gaps), not `LIMIT`s: a range
/// reads only its own rows whatever the planner's statistics say (with a
/// `LIMIT` and stale statistics, as after a bulk insert, every page sorted
/// the whole rest of the run: 18 s for a million records instead of ~1 s).
pub fn read(db: &Arc<Db>, run: &str, mut f: impl FnMut(&Entry)) -> Result<u64, PgError> {
    let r = run.to_string();
    let last: i64 = db.call(move |i| async move {
        i.retrying(|c| {
            let r = r.clone();
            async move {
                Ok(c.query_one(
                    "SELECT coalesce(max(seq), 0) FROM ferry_records WHERE run = $1",
                    &[&r],
                )
                .await
                .retryable()?
                .get(0))
            }
        })
        .await
    })?;
    let mut after: i64 = 0;
    while after < last {
        let r = run.to_string();
        let upto = (after + PAGE).min(last);
        let page: Vec<(i64, String, String)> = db.call(move |i| async move {
            i.retrying(|c| {
                let r = r.clone();
                async move {
                    let rows = c
                        .query(
                            "SELECT seq, ts, rec FROM ferry_records \
                             WHERE run = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
                            &[&r, &after, &upto],
                        )
                        .await
                        .retryable()?;
                    Ok(rows
                        .into_iter()
                        .map(|row| (row.get(0), row.get(1), row.get(2)))
                        .collect())
                }
            })
            .await
        })?;
        for (seq, ts, rec) in page {
            if seq != after + 1 {
                break;
            }
            let rec: Record = serde_json::from_str(&rec).map_err(|e| PgError::Corrupt {
                run: run.to_string(),
                seq: seq as u64,
                reason: format!("the record does not parse: {e}"),
            })?;
            f(&Entry {
                line: seq as u64,
                seq: seq as u64,
                ts,
                rec,
            });
            after = seq;
        }
        if after < upto {
            return Err(PgError::Corrupt {
                run: run.to_string(),
                seq: after as u64 + 1,
                reason: format!("no record at this seq, though the run goes on to seq {last}"),
            });
        }
    }
    Ok(after as u64)
}

/// Appends a run's records under its lease (a [`super::Backend`]).
pub struct PgWriter {
    db: Arc<Db>,
    run: String,
    token: i64,
    next_seq: u64,
    lease: Arc<LeaseState>,
    failed: Option<String>,
    writes: u64,
}

impl PgWriter {
    /// The writer of `lease`'s run, after `records` records.
    pub fn new(lease: &Lease, records: u64) -> PgWriter {
        PgWriter {
            db: lease.db.clone(),
            run: lease.run.clone(),
            token: lease.token,
            next_seq: records + 1,
            lease: lease.state(),
            failed: None,
            writes: 0,
        }
    }

    /// Statements that wrote a record (for benchmarks).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    fn error(&self, source: PgError) -> JournalError {
        JournalError::Db {
            run: self.run.clone(),
            source: Box::new(source),
        }
    }
}

impl super::Backend for PgWriter {
    fn append(&mut self, rec: &Record, durability: Durability) -> Result<u64, JournalError> {
        if let Some(first) = &self.failed {
            return Err(self.error(PgError::Sql(format!(
                "no longer written after an earlier failure ({first}); run `ferry apply` again"
            ))));
        }
        let seq = self.next_seq;
        let body = String::from_utf8(super::file::body(rec)).expect("JSON is UTF-8");
        let ts = now_rfc3339();
        let (run, token) = (self.run.clone(), self.token);
        let intent = durability == Durability::Intent;
        let r = self.db.call(move |i| async move {
            i.retrying_write(|c, stmt| {
                let (run, ts, body) = (run.clone(), ts.clone(), body.clone());
                async move {
                    let stmt = stmt.expect("prepared");
                    write(&c, &stmt, &run, token, seq, &ts, &body, intent).await
                }
            })
            .await
        });
        let r = r.and_then(|outcome| match outcome {
            Written::Ok => Ok(()),
            Written::Fenced(holder) => Err(PgError::Lost {
                run: self.run.clone(),
                holder,
            }),
            Written::Other => Err(PgError::Corrupt {
                run: self.run.clone(),
                seq,
                reason: "another record is already at this seq".into(),
            }),
        });
        match r {
            Ok(()) => {
                self.next_seq += 1;
                self.writes += 1;
                Ok(seq)
            }
            Err(e) => {
                if let PgError::Lost { .. } = &e {
                    self.lease
                        .ended
                        .lock()
                        .expect("lease")
                        .get_or_insert(LeaseEnd::Lost(e.clone()));
                }
                self.failed.get_or_insert_with(|| e.to_string());
                Err(self.error(e))
            }
        }
    }

    /// Nothing to do: every record is on the server once `append` returns,
    /// and the server flushes it within its WAL writer's delay.
    fn sync_if_due(&mut self) -> Result<(), JournalError> {
        Ok(())
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        Ok(())
    }

    fn set_group_window(&mut self, _window: Duration) {}
}

enum Written {
    Ok,
    /// The lease's token is no longer ours: who has it now.
    Fenced(Option<Holder>),
    /// Another record is at our seq.
    Other,
}

#[allow(clippy::too_many_arguments)]
async fn write(
    c: &Client,
    stmt: &Statement,
    run: &str,
    token: i64,
    seq: u64,
    ts: &str,
    body: &str,
    intent: bool,
) -> Result<Written, PgError> {
    let seq_i = seq as i64;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&run, &token, &seq_i, &ts, &body];
    let row = if intent {
        // One round trip: BEGIN, the write, COMMIT pipelined; the commit
        // waits for the WAL flush (module doc, "Durability"). If the write
        // fails, COMMIT ends the failed transaction as a rollback.
        let begin = c.batch_execute("BEGIN; SET LOCAL synchronous_commit = on");
        let w = c.query_one(stmt, &params);
        let commit = c.batch_execute("COMMIT");
        let (b, w, cm) = tokio::join!(begin, w, commit);
        b.retryable()?;
        let w = w.retryable()?;
        cm.retryable()?;
        w
    } else {
        c.query_one(stmt, &params).await.retryable()?
    };
    let current: Option<i64> = row.get(0);
    let inserted: i64 = row.get(1);
    let existing: Option<String> = row.get(2);
    if current != Some(token) {
        let holder = current_holder(c, run).await?;
        return Ok(Written::Fenced(holder.filter(|h| h.token != token)));
    }
    if inserted == 1 {
        return Ok(Written::Ok);
    }
    // Already there: an earlier attempt whose answer was lost committed it.
    Ok(if existing.as_deref() == Some(body) {
        Written::Ok
    } else {
        Written::Other
    })
}

/// A pause or abort request waiting in `ferry_controls`.
#[derive(Debug, Clone)]
pub struct PendingControl {
    pub id: i64,
    pub action: ControlAction,
    pub by: Requester,
    pub at: String,
}

/// Records a pause/abort request for the run's `apply`, wherever it runs.
/// Returns its id.
pub fn request_control(
    db: &Arc<Db>,
    run: &str,
    action: ControlAction,
    by: &Requester,
    at: &str,
) -> Result<i64, PgError> {
    let (run, by, at) = (run.to_string(), by.clone(), at.to_string());
    let action = match action {
        ControlAction::Pause => "pause",
        ControlAction::Abort => "abort",
    };
    db.call(move |i| async move {
        i.retrying(|c| {
            let (run, by, at) = (run.clone(), by.clone(), at.clone());
            async move {
                let pid = by.pid as i32;
                Ok(c.query_one(
                    "INSERT INTO ferry_controls (run, action, by_user, by_host, by_pid, at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[&run, &action, &by.user, &by.host, &pid, &at],
                )
                .await
                .retryable()?
                .get(0))
            }
        })
        .await
    })
}

/// The oldest request not yet consumed.
pub fn pending_control(db: &Arc<Db>, run: &str) -> Result<Option<PendingControl>, PgError> {
    let run = run.to_string();
    db.call(move |i| async move {
        i.retrying(|c| {
            let run = run.clone();
            async move {
                let row = c
                    .query_opt(
                        "SELECT id, action, by_user, by_host, by_pid, at FROM ferry_controls \
                         WHERE run = $1 AND consumed_at IS NULL ORDER BY id LIMIT 1",
                        &[&run],
                    )
                    .await
                    .retryable()?;
                Ok(row.map(|r| PendingControl {
                    id: r.get(0),
                    action: if r.get::<_, &str>(1) == "abort" {
                        ControlAction::Abort
                    } else {
                        ControlAction::Pause
                    },
                    by: Requester {
                        user: r.get(2),
                        host: r.get(3),
                        pid: r.get::<_, i32>(4) as u32,
                    },
                    at: r.get(5),
                }))
            }
        })
        .await
    })
}

/// Marks a request consumed (after it was recorded in the run).
pub fn consume_control(db: &Arc<Db>, id: i64) -> Result<(), PgError> {
    db.call(move |i| async move {
        i.retrying(|c| async move {
            c.execute(
                "UPDATE ferry_controls SET consumed_at = now() WHERE id = $1",
                &[&id],
            )
            .await
            .retryable()?;
            Ok(())
        })
        .await
    })
}

/// Whether request `id` is still waiting.
pub fn control_pending(db: &Arc<Db>, id: i64) -> Result<bool, PgError> {
    db.call(move |i| async move {
        i.retrying(|c| async move {
            Ok(c.query_opt(
                "SELECT 1 FROM ferry_controls WHERE id = $1 AND consumed_at IS NULL",
                &[&id],
            )
            .await
            .retryable()?
            .is_some())
        })
        .await
    })
}

/// The location of a `tls.ca_file`, read.
pub fn read_ca(path: &PathBuf) -> Result<String, PgError> {
    std::fs::read_to_string(path).map_err(|e| {
        PgError::Config(format!(
            "journal.postgres.tls.ca_file: cannot read {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        let e = Location::new(
            "postgres://ferry:hunter22@db.example.net/ferry",
            None,
            None,
            DEFAULT_LEASE,
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("contains a password"), "{m}");
        assert!(!m.contains("hunter22"), "{m}");
        Location::new(
            "postgres://ferry@db.example.net/ferry",
            None,
            None,
            DEFAULT_LEASE,
        )
        .unwrap();
        assert!(is_url("postgresql://x@h/d") && !is_url("./j.journal"));
    }

    #[test]
    fn a_lease_under_a_second_is_refused() {
        let e = Location::new(
            "postgres://f@127.0.0.1/d",
            None,
            None,
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(e.to_string().contains("too short"), "{e}");
    }
}
