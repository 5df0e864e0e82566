//! Run metrics for Prometheus: what `ferry apply --metrics-textfile`,
//! `--metrics-listen` and `--metrics-push` export (docs/metrics.md lists
//! every metric).
//!
//! Owns: the metric registry of one `apply` (the `prometheus-client`
//! crate) and keeping it current from what the run tells it — the
//! executor's events ([`Metrics`] is a [`Reporter`]), every WHM attempt and
//! retry ([`CallObserver`], hooked into `exec::Api`) and every journal
//! fsync (`journal::file::set_fsync_observer`); rendering it in the
//! Prometheus text format 0.0.4 ([`Metrics::render`]), which is what
//! node_exporter's textfile collector and the Pushgateway parse (no
//! OpenMetrics `# EOF`, counters named `…_total` on their `# TYPE` line);
//! and the three ways out ([`Exporter`]): a textfile rewritten atomically
//! (debounced, at most every [`DEBOUNCE`], and at exit), a `GET /metrics`
//! listener that lives as long as the run, and a Pushgateway push at exit.
//!
//! Does not own: any decision (a metric only counts what it is told; an
//! export failure is a warning, never a reason to stop a run), what the
//! operator reads (`report`), or the events themselves (`exec`).
//!
//! Secrets and names: no label carries an account name or a server's free
//! text. Labels are the plan's identity, WHM function names, fixed words,
//! and session states (only `[A-Z0-9_]`, else `OTHER`). The events reach
//! [`Metrics`] through `events::Scrubbed`, and whatever is rendered is
//! scrubbed once more ([`crate::secret::scrub`]) on its way out.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::client::{self, CallObserver, ErrorKind};
use crate::events::{AccountCounts, Event, Reporter, RunStatus};
use crate::plan::Plan;

/// The least time between two rewrites of the textfile.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The four account states of `ferry status`.
const ACCOUNT_STATES: [&str; 4] = ["pending", "in_progress", "transferred", "failed"];
/// Every value of `ferry_run_status{status}`.
const RUN_STATUSES: [&str; 6] = [
    "running",
    "succeeded",
    "paused",
    "partial",
    "aborted",
    "failed",
];
/// WHM's session states, always exported (0 when none is in it).
const SESSION_STATES: [&str; 8] = crate::client::SessionState::NAMES;
/// Every value of `ferry_retries_total{class}`.
const RETRY_CLASSES: [&str; 7] = [
    "connect",
    "timeout",
    "connection_lost",
    "http_429",
    "http_5xx",
    "other",
    "item",
];
/// Session states after which nothing changes any more.
const TERMINAL: [&str; 3] = ["COMPLETED", "ABORTED", "FAILED"];

type Label = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];
type OwnedLabel = [(&'static str, String); 1];
type F64Gauge = Gauge<f64, AtomicU64>;

/// Where the metrics go (`apply`'s `--metrics-*` flags).
#[derive(Debug, Clone, Default)]
pub struct Export {
    /// `--metrics-textfile PATH`.
    pub textfile: Option<PathBuf>,
    /// `--metrics-listen ADDR`.
    pub listen: Option<SocketAddr>,
    /// `--metrics-push URL`.
    pub push: Option<reqwest::Url>,
}

impl Export {
    /// Nothing asked for: no metrics are kept at all.
    pub fn is_empty(&self) -> bool {
        self.textfile.is_none() && self.listen.is_none() && self.push.is_none()
    }
}

/// The `plan` label: the plan's identity (`LoadedPlan::identity`: its
/// `name:`, or its file stem); a rehearsal's is `<identity>.simulate`, so
/// that it never overwrites the real run's series or Pushgateway group.
pub fn plan_label(identity: &str, simulate: bool) -> String {
    if simulate {
        format!("{identity}.simulate")
    } else {
        identity.to_string()
    }
}

/// The metrics of one run.
pub struct Metrics {
    registry: Registry,
    plan: String,
    accounts: Family<Label, Gauge>,
    adopted: Gauge,
    // `ferry_accounts_verified`, `ferry_bytes_total` and
    // `ferry_run_started_timestamp_seconds` live in the registry only: set
    // once (the first stays 0 until the executor emits verification events).
    sessions: Family<OwnedLabel, Gauge>,
    bytes_done: Gauge<u64, AtomicU64>,
    requests: Family<Labels2, Counter>,
    request_seconds: Family<Label, Histogram>,
    retries: Family<Label, Counter>,
    fsync_seconds: Histogram,
    finished: F64Gauge,
    status: Family<Label, Gauge>,
    model: Mutex<Model>,
    /// Woken at every change (the textfile writer waits on it).
    changed: tokio::sync::Notify,
}

/// What the gauges are derived from.
#[derive(Default)]
struct Model {
    /// Planned accounts by target username.
    accounts: HashMap<String, Account>,
    transferred: usize,
    failed: usize,
    adopted: usize,
    bytes_done: u64,
    /// Sessions by key: the last state seen, accounts and accounts done.
    sessions: BTreeMap<String, (String, usize, usize)>,
    /// Every `ferry_sessions{state}` exported so far (so that one no
    /// session is in any more goes back to 0).
    session_states: std::collections::BTreeSet<String>,
    /// The counts of `run_finished`, which settle the account gauges.
    settled: Option<AccountCounts>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Done {
    No,
    Transferred,
    Failed,
}

struct Account {
    size: u64,
    done: Done,
    /// The bytes counted for it while in progress (`item_progress`: size ×
    /// percent), in `bytes_done` until it ends.
    partial: u64,
    /// Found on the target rather than seen transferred (`adopted`).
    adopted: bool,
}

fn request_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ])
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    /// The metrics of a run of `plan` labelled `plan="<identity>"`, with
    /// every account pending.
    pub fn new(identity: &str, plan: &Plan) -> Metrics {
        let mut r = Registry::with_labels(std::iter::once((
            Cow::Borrowed("plan"),
            Cow::Owned(identity.to_string()),
        )));
        let accounts = Family::<Label, Gauge>::default();
        r.register(
            "ferry_accounts",
            "Accounts of the plan by state, as ferry status names them",
            accounts.clone(),
        );
        let adopted = Gauge::<i64>::default();
        r.register(
            "ferry_accounts_adopted",
            "Accounts of the plan found on the target and adopted, without their restore seen to end",
            adopted.clone(),
        );
        let verified = Gauge::<i64>::default();
        r.register(
            "ferry_accounts_verified",
            "Transferred accounts verified on the target (0 until the executor reports verifications)",
            verified.clone(),
        );
        let sessions = Family::<OwnedLabel, Gauge>::default();
        r.register(
            "ferry_sessions",
            "Transfer sessions of this run by the WHM state last seen",
            sessions.clone(),
        );
        let bytes_total = Gauge::<u64, AtomicU64>::default();
        r.register(
            "ferry_bytes_total",
            "Bytes to move: the sum of the plan's size hints",
            bytes_total.clone(),
        );
        let bytes_done = Gauge::<u64, AtomicU64>::default();
        r.register(
            "ferry_bytes_done",
            "Bytes moved: the size hints of the transferred accounts",
            bytes_done.clone(),
        );
        let requests = Family::<Labels2, Counter>::default();
        r.register(
            "ferry_whm_requests",
            "WHM API attempts by function and outcome (ok, whm_error, transient, auth, error)",
            requests.clone(),
        );
        let request_seconds = Family::<Label, Histogram>::new_with_constructor(
            request_histogram as fn() -> Histogram,
        );
        r.register(
            "ferry_whm_request_duration_seconds",
            "Duration of WHM API attempts by function",
            request_seconds.clone(),
        );
        let retries = Family::<Label, Counter>::default();
        r.register(
            "ferry_retries",
            "Retries by class: the failure retried (connect, timeout, connection_lost, http_429, http_5xx, other), or item (a failed account re-enqueued)",
            retries.clone(),
        );
        let fsync_seconds = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ]);
        r.register(
            "ferry_journal_fsync_seconds",
            "Duration of journal fsyncs",
            fsync_seconds.clone(),
        );
        let started = F64Gauge::default();
        r.register(
            "ferry_run_started_timestamp_seconds",
            "When this ferry apply started the run (Unix time)",
            started.clone(),
        );
        let finished = F64Gauge::default();
        r.register(
            "ferry_run_finished_timestamp_seconds",
            "When this ferry apply ended the run (Unix time; 0 while it runs)",
            finished.clone(),
        );
        let status = Family::<Label, Gauge>::default();
        r.register(
            "ferry_run_status",
            "1 for the run's current status, 0 for the others",
            status.clone(),
        );
        let mut model = Model {
            session_states: SESSION_STATES.iter().map(|s| s.to_string()).collect(),
            ..Model::default()
        };
        let mut total = 0u64;
        for source in &plan.sources {
            for a in &source.accounts {
                let size = a.details().and_then(|d| d.size).unwrap_or(0);
                total = total.saturating_add(size);
                model.accounts.insert(
                    a.target_user().to_string(),
                    Account {
                        size,
                        done: Done::No,
                        partial: 0,
                        adopted: false,
                    },
                );
            }
        }
        bytes_total.set(total);
        started.set(unix_now());
        let m = Metrics {
            registry: r,
            plan: identity.to_string(),
            accounts,
            adopted,
            sessions,
            bytes_done,
            requests,
            request_seconds,
            retries,
            fsync_seconds,
            finished,
            status,
            model: Mutex::new(model),
            changed: tokio::sync::Notify::new(),
        };
        // Known label values start at 0, so that `increase()` sees their
        // first step.
        for class in RETRY_CLASSES {
            let _ = m.retries.get_or_create(&[("class", class)]);
        }
        m.set_status("running");
        m.publish(&m.model());
        m
    }

    /// The `plan` label's value.
    pub fn plan(&self) -> &str {
        &self.plan
    }

    /// Takes the accounts' states from a resumed run's journal (before the
    /// run starts), so that `ferry_bytes_done` counts what earlier runs
    /// moved. `states` yields (target username, `ferry status` state,
    /// adopted).
    pub fn seed<'a>(&self, states: impl IntoIterator<Item = (&'a str, &'static str, bool)>) {
        let mut model = self.model();
        for (user, state, adopted) in states {
            let done = match state {
                "transferred" => Done::Transferred,
                "failed" => Done::Failed,
                _ => Done::No,
            };
            model.set(user, done);
            if adopted {
                model.adopt(user);
            }
        }
        self.publish(&model);
        drop(model);
        self.changed.notify_one();
    }

    /// The metrics in the Prometheus text format (0.0.4), scrubbed.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).is_err() {
            // Only a failing `fmt::Write`, which a String is not.
            out.clear();
        }
        crate::secret::scrub(&out).into_owned()
    }

    /// The journal's fsync observer, feeding `ferry_journal_fsync_seconds`.
    pub fn fsync_observer(self: &Arc<Self>) -> crate::journal::file::FsyncObserver {
        let m = Arc::downgrade(self);
        Arc::new(move |took: Duration| {
            if let Some(m) = m.upgrade() {
                m.fsync_seconds.observe(took.as_secs_f64());
                m.changed.notify_one();
            }
        })
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_status(&self, status: &str) {
        for s in RUN_STATUSES {
            self.status
                .get_or_create(&[("status", s)])
                .set(i64::from(s == status));
        }
    }

    /// Sets every gauge derived from the model.
    fn publish(&self, model: &Model) {
        let total = model.accounts.len();
        // Accounts in sessions that can still move, not yet done there.
        let live: usize = model
            .sessions
            .values()
            .filter(|(state, _, _)| !TERMINAL.contains(&state.as_str()))
            .map(|(_, accounts, done)| accounts.saturating_sub(*done))
            .sum();
        let (transferred, failed, undecided) = match model.settled {
            Some(c) => (c.transferred, c.failed, c.pending),
            None => (
                model.transferred,
                model.failed,
                total.saturating_sub(model.transferred + model.failed),
            ),
        };
        let in_progress = live.min(undecided);
        for (state, n) in [
            ("pending", undecided - in_progress),
            ("in_progress", in_progress),
            ("transferred", transferred),
            ("failed", failed),
        ] {
            debug_assert!(ACCOUNT_STATES.contains(&state));
            self.accounts
                .get_or_create(&[("state", state)])
                .set(n as i64);
        }
        self.bytes_done.set(model.bytes_done);
        self.adopted.set(model.adopted as i64);
        let mut by_state: BTreeMap<&str, i64> = model
            .session_states
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect();
        for (state, _, _) in model.sessions.values() {
            *by_state.entry(state.as_str()).or_insert(0) += 1;
        }
        for (state, n) in by_state {
            self.sessions
                .get_or_create(&[("state", state.to_string())])
                .set(n);
        }
    }
}

impl Model {
    fn adopt(&mut self, user: &str) {
        if let Some(a) = self.accounts.get_mut(user)
            && !a.adopted
        {
            a.adopted = true;
            self.adopted += 1;
        }
    }

    /// An account in progress at `percent`: its share of its size counts
    /// in `ferry_bytes_done` until it ends.
    fn progress(&mut self, user: &str, percent: u8) {
        let Some(a) = self.accounts.get_mut(user) else {
            return;
        };
        if a.done != Done::No {
            return;
        }
        let partial = a.size / 100 * u64::from(percent.min(99));
        self.bytes_done = self
            .bytes_done
            .saturating_sub(a.partial)
            .saturating_add(partial);
        a.partial = partial;
    }

    fn set(&mut self, user: &str, done: Done) {
        let Some(a) = self.accounts.get_mut(user) else {
            return; // not an account of this plan
        };
        let before = a.done;
        if before == done {
            return;
        }
        self.bytes_done = self
            .bytes_done
            .saturating_sub(std::mem::take(&mut a.partial));
        match before {
            Done::Transferred => {
                self.transferred -= 1;
                self.bytes_done = self.bytes_done.saturating_sub(a.size);
            }
            Done::Failed => self.failed -= 1,
            Done::No => {}
        }
        match done {
            Done::Transferred => {
                self.transferred += 1;
                self.bytes_done = self.bytes_done.saturating_add(a.size);
            }
            Done::Failed => self.failed += 1,
            Done::No => {}
        }
        a.done = done;
    }
}

/// A session state as a label value: WHM's words (`RUNNING`), anything
/// else as `OTHER` (a label never carries free text).
fn state_label(state: &str) -> String {
    let word = !state.is_empty()
        && state.len() <= 32
        && state
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if word {
        state.to_string()
    } else {
        "OTHER".into()
    }
}

fn status_word(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Paused => "paused",
        RunStatus::Partial => "partial",
        RunStatus::Aborted => "aborted",
        RunStatus::Failed => "failed",
    }
}

impl Reporter for Metrics {
    fn event(&self, event: &Event) {
        let mut model = self.model();
        match event {
            Event::RunStarted { .. } => self.set_status("running"),
            Event::ItemSucceeded {
                account, adopted, ..
            } => {
                model.set(account, Done::Transferred);
                if adopted.is_some() {
                    model.adopt(account);
                }
            }
            Event::ItemProgress {
                account, percent, ..
            } => model.progress(account, *percent),
            Event::ItemFailed {
                account,
                will_retry,
                ..
            } => {
                if *will_retry {
                    model.set(account, Done::No);
                    self.retries.get_or_create(&[("class", "item")]).inc();
                } else {
                    model.set(account, Done::Failed);
                }
            }
            Event::SessionState {
                session,
                state,
                accounts,
                done,
                ..
            } => {
                let label = state_label(state);
                model.session_states.insert(label.clone());
                model
                    .sessions
                    .insert(session.clone(), (label, *accounts, *done));
            }
            Event::RunPaused { .. } => self.set_status("paused"),
            Event::RunAborted { .. } => self.set_status("aborted"),
            Event::RunFinished {
                status, accounts, ..
            } => {
                self.set_status(status_word(*status));
                self.finished.set(unix_now());
                // A run that could not start reports zero accounts: keep
                // what is known then.
                if accounts.total > 0 {
                    model.settled = Some(*accounts);
                }
            }
            Event::StepStarted { .. }
            | Event::StepSucceeded { .. }
            | Event::StepFailed { .. }
            | Event::SessionStalled { .. }
            | Event::Warning { .. } => return,
        }
        self.publish(&model);
        drop(model);
        self.changed.notify_one();
    }
}

/// `ferry_whm_requests_total{outcome}`: how an attempt ended.
fn outcome(result: Result<(), &client::Error>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(e) => match (&e.kind, e.class()) {
            (ErrorKind::Whm { .. }, _) => "whm_error",
            (_, client::Class::Auth) => "auth",
            (_, client::Class::Untrusted) => "untrusted",
            (_, client::Class::Fenced) => "fenced",
            (_, client::Class::Transient { .. }) => "transient",
            (_, client::Class::Permanent) => "error",
        },
    }
}

/// `ferry_retries_total{class}`: what failed before a retry.
fn retry_class(e: &client::Error) -> &'static str {
    match &e.kind {
        ErrorKind::Connect(_) => "connect",
        ErrorKind::Timeout => "timeout",
        ErrorKind::ConnectionLost(_) => "connection_lost",
        ErrorKind::Http { status: 429, .. } => "http_429",
        ErrorKind::Http { status, .. } if (500..600).contains(status) => "http_5xx",
        _ => "other",
    }
}

impl CallObserver for Metrics {
    fn attempt(
        &self,
        function: &'static str,
        result: Result<(), &client::Error>,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&[("function", function), ("outcome", outcome(result))])
            .inc();
        self.request_seconds
            .get_or_create(&[("function", function)])
            .observe(elapsed.as_secs_f64());
        self.changed.notify_one();
    }

    fn retry(&self, error: &client::Error) {
        self.retries
            .get_or_create(&[("class", retry_class(error))])
            .inc();
        self.changed.notify_one();
    }
}

// ------------------------------------------------------------------ export

/// The running exports of one run. [`Exporter::finish`] writes the last
/// textfile, pushes, and closes the listener.
pub struct Exporter {
    metrics: Arc<Metrics>,
    export: Export,
    warn: Arc<dyn Reporter>,
    stop: CancellationToken,
    /// The textfile writer; it ends with the error it last reported.
    textfile: Option<tokio::task::JoinHandle<Option<String>>>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

/// A warning line for the operator (never fatal).
fn warn(to: &dyn Reporter, message: String) {
    to.event(&Event::Warning {
        message: format!("metrics: {message}"),
    });
}

impl Exporter {
    /// Starts what `export` asks for: writes the textfile once and keeps it
    /// current, binds the listener. A failure is a warning.
    pub async fn start(metrics: Arc<Metrics>, export: Export, to: Arc<dyn Reporter>) -> Exporter {
        let stop = CancellationToken::new();
        let textfile = export.textfile.as_ref().map(|path| {
            tokio::spawn(textfile_loop(
                metrics.clone(),
                path.clone(),
                stop.clone(),
                to.clone(),
            ))
        });
        let mut listener = None;
        if let Some(addr) = export.listen {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    let shown = l.local_addr().unwrap_or(addr);
                    if !addr.ip().is_loopback() {
                        warn(
                            to.as_ref(),
                            format!(
                                "serving /metrics on {shown}, which is not a loopback address: anyone who can \
                                 reach it can read this run's progress; prefer 127.0.0.1:9184 and scrape it locally"
                            ),
                        );
                    }
                    tracing::info!(%shown, "serving /metrics");
                    listener = Some(tokio::spawn(accept_loop(l, metrics.clone(), stop.clone())));
                }
                Err(e) => warn(
                    to.as_ref(),
                    format!(
                        "cannot listen on {addr} ({e}); /metrics is not served during this run"
                    ),
                ),
            }
        }
        Exporter {
            metrics,
            export,
            warn: to,
            stop,
            textfile,
            listener,
        }
    }

    /// The run is over: the last textfile, the push, the listener closed.
    pub async fn finish(self) {
        self.stop.cancel();
        if let Some(t) = self.listener {
            let _ = t.await;
        }
        let failing = match self.textfile {
            Some(t) => t.await.unwrap_or(None),
            None => None,
        };
        let text = self.metrics.render();
        if let Some(path) = &self.export.textfile {
            let p = path.clone();
            let t = text.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || write_atomic(&p, &t)).await
                && failing.as_deref() != Some(e.to_string().as_str())
            {
                warn(
                    self.warn.as_ref(),
                    format!("cannot write the textfile {} at exit ({e})", path.display()),
                );
            }
        }
        if let Some(url) = &self.export.push
            && let Err(e) = push(url, self.metrics.plan(), text).await
        {
            warn(
                self.warn.as_ref(),
                format!(
                    "the push to the Pushgateway at {} failed: {e}",
                    shown_url(url)
                ),
            );
        }
    }
}

/// Rewrites `path` with `text` so that a reader sees the old file or the
/// new one, never a part: a temporary file in the same folder (not ending
/// in `.prom`, which the textfile collector would read), fsync, rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

async fn textfile_loop(
    m: Arc<Metrics>,
    path: PathBuf,
    stop: CancellationToken,
    to: Arc<dyn Reporter>,
) -> Option<String> {
    // The last failure reported, so that a full disk warns once, not 4 times a second.
    let mut failing: Option<String> = None;
    loop {
        let text = m.render();
        let p = path.clone();
        let r = tokio::task::spawn_blocking(move || write_atomic(&p, &text)).await;
        match r {
            Ok(Ok(())) => {
                if failing.take().is_some() {
                    warn(
                        to.as_ref(),
                        format!("the textfile {} is written again", path.display()),
                    );
                }
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                if failing.as_deref() != Some(msg.as_str()) {
                    warn(
                        to.as_ref(),
                        format!(
                            "cannot write the textfile {} ({msg}); the run goes on, ferry tries again at the next change",
                            path.display()
                        ),
                    );
                    failing = Some(msg);
                }
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = m.changed.notified() => {}
            _ = stop.cancelled() => return failing,
        }
        tokio::select! {
            _ = tokio::time::sleep(DEBOUNCE) => {}
            _ = stop.cancelled() => return failing,
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, m: Arc<Metrics>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    // EMFILE and friends: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return, // drops the listener: the port closes
        };
        let m = m.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let m = m.clone();
                async move { Ok::<_, Infallible>(answer(&m, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn answer<B>(
    m: &Metrics,
    req: &hyper::Request<B>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use hyper::{Method, StatusCode, header};
    let reply = |status: StatusCode, ctype: &'static str, body: String| {
        let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(ctype),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: ferry serves its metrics at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    reply(StatusCode::OK, CONTENT_TYPE, m.render())
}

/// `url` as it may be printed: without a user name or password.
fn shown_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// The Pushgateway URL of a run: `URL/metrics/job/ferry/plan/<plan>`
/// (the plan percent-encoded as one path segment).
pub fn push_url(base: &reqwest::Url, plan: &str) -> Result<reqwest::Url, String> {
    let mut u = base.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.path_segments_mut()
        .map_err(|_| "the URL cannot have a path".to_string())?
        .pop_if_empty()
        .extend(["metrics", "job", "ferry", "plan", plan]);
    Ok(u)
}

/// Checks a `--metrics-push` URL: http(s) with a host.
pub fn parse_push_url(s: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(s).map_err(|e| {
        format!("not a URL ({e}); give the Pushgateway's base URL, e.g. http://pushgateway.example.net:9091")
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(
            "give the Pushgateway's http:// or https:// base URL, e.g. http://pushgateway.example.net:9091"
                .into(),
        );
    }
    Ok(u)
}

/// PUTs `body` as the run's group (replacing what an earlier run of the
/// plan pushed).
async fn push(base: &reqwest::Url, plan: &str, body: String) -> Result<(), String> {
    let url = push_url(base, plan)?;
    crate::client::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| crate::client::tls::root_message(&e))?;
    let resp = http
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .map_err(|e| crate::client::tls::root_message(&e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let first: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    Err(format!(
        "HTTP {status}{}",
        if first.is_empty() {
            String::new()
        } else {
            format!(": {first}")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{AccountCounts, FailedAccount};

    fn plan() -> Plan {
        serde_json::from_value(serde_json::json!({
            "version": 1,
            "target": {"url": "https://whm.example.net:2087", "token": {"env": "T"}},
            "sources": [{"name": "old1", "host": "old1.example.com",
                         "ssh": {"password": {"env": "P"}},
                         "accounts": [{"user": "a", "size": 100}, {"user": "b", "localuser": "b2", "size": 20}, "c"]}]
        }))
        .unwrap()
    }

    /// The value of the one sample `name{labels}` (labels as written, plan first).
    fn value(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series))
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    /// The value of `metric{plan="p",label="v"}`.
    fn labelled(text: &str, metric: &str, label: &str, v: &str) -> f64 {
        value(text, &format!("{metric}{{plan=\"p\",{label}=\"{v}\"}}"))
    }

    fn accounts(text: &str, state: &str) -> f64 {
        labelled(text, "ferry_accounts", "state", state)
    }

    fn session(name: &str, state: &str, accounts: usize, done: usize) -> Event {
        Event::SessionState {
            session: name.into(),
            id: None,
            source: "old1".into(),
            state: state.into(),
            current: None,
            accounts,
            done,
        }
    }

    #[test]
    fn text_is_prometheus_0_0_4_not_openmetrics() {
        let m = Metrics::new("p", &plan());
        m.attempt("listaccts", Ok(()), Duration::from_millis(3));
        let t = m.render();
        assert!(!t.contains("# EOF"), "{t}");
        assert!(!t.contains("# UNIT"), "{t}");
        assert!(t.contains("# TYPE ferry_whm_requests_total counter"), "{t}");
        assert!(t.contains("# TYPE ferry_retries_total counter"), "{t}");
        assert!(
            t.contains("# TYPE ferry_journal_fsync_seconds histogram"),
            "{t}"
        );
        assert!(t.ends_with('\n'));
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("plan=\"p\""), "{line}");
        }
        assert_eq!(value(&t, "ferry_bytes_total{plan=\"p\"}"), 120.0);
        assert_eq!(accounts(&t, "pending"), 3.0);
        assert_eq!(labelled(&t, "ferry_run_status", "status", "running"), 1.0);
        assert_eq!(labelled(&t, "ferry_run_status", "status", "paused"), 0.0);
        assert_eq!(labelled(&t, "ferry_sessions", "state", "RUNNING"), 0.0);
        // Known retry classes start at 0.
        assert_eq!(
            labelled(&t, "ferry_retries_total", "class", "http_5xx"),
            0.0
        );
    }

    #[test]
    fn events_move_accounts_sessions_bytes_and_status() {
        let m = Metrics::new("p", &plan());
        m.event(&session("old1/s1", "RUNNING", 3, 0));
        let t = m.render();
        assert_eq!(accounts(&t, "in_progress"), 3.0);
        assert_eq!(accounts(&t, "pending"), 0.0);
        assert_eq!(labelled(&t, "ferry_sessions", "state", "RUNNING"), 1.0);
        m.event(&Event::ItemSucceeded {
            size: None,
            account: "b2".into(),
            source: "old1".into(),
            session: "old1/s1".into(),
            warnings: false,
            adopted: None,
            notes: Vec::new(),
        });
        m.event(&session("old1/s1", "RUNNING", 3, 1));
        m.event(&Event::ItemFailed {
            size: None,
            account: "a".into(),
            source: "old1".into(),
            session: "old1/s1".into(),
            message: "Disk quota exceeded".into(),
            will_retry: false,
        });
        m.event(&session("old1/s1", "PAUSED", 3, 2));
        m.event(&Event::RunPaused {
            reason: "x".into(),
            resume: "y".into(),
        });
        let t = m.render();
        assert_eq!(accounts(&t, "transferred"), 1.0);
        assert_eq!(accounts(&t, "failed"), 1.0);
        assert_eq!(accounts(&t, "in_progress"), 1.0);
        assert_eq!(accounts(&t, "pending"), 0.0);
        assert_eq!(value(&t, "ferry_bytes_done{plan=\"p\"}"), 20.0);
        assert_eq!(labelled(&t, "ferry_sessions", "state", "PAUSED"), 1.0);
        assert_eq!(labelled(&t, "ferry_sessions", "state", "RUNNING"), 0.0);
        assert_eq!(labelled(&t, "ferry_run_status", "status", "paused"), 1.0);
        assert_eq!(labelled(&t, "ferry_run_status", "status", "running"), 0.0);
        assert_eq!(
            value(&t, "ferry_run_finished_timestamp_seconds{plan=\"p\"}"),
            0.0
        );
        m.event(&Event::RunFinished {
            status: RunStatus::Paused,
            accounts: AccountCounts {
                total: 3,
                transferred: 1,
                failed: 1,
                pending: 1,
            },
            duration_secs: 1.0,
            failed: vec![FailedAccount {
                account: "a".into(),
                source: "old1".into(),
                message: "Disk quota exceeded".into(),
                retried: true,
            }],
            next: "z".into(),
            plan: "p.yaml".into(),
            rehearsal: false,
            interrupted: false,
        });
        let t = m.render();
        assert!(value(&t, "ferry_run_finished_timestamp_seconds{plan=\"p\"}") > 1.7e9);
        assert_eq!(accounts(&t, "in_progress") + accounts(&t, "pending"), 1.0);
        // No account name is ever a label.
        assert!(!t.contains("\"b2\"") && !t.contains("\"a\""), "{t}");
    }

    #[test]
    fn a_retried_item_is_pending_again_and_counted() {
        let m = Metrics::new("p", &plan());
        m.event(&Event::ItemFailed {
            size: None,
            account: "c".into(),
            source: "old1".into(),
            session: "old1/s1".into(),
            message: "m".into(),
            will_retry: true,
        });
        let t = m.render();
        assert_eq!(accounts(&t, "failed"), 0.0);
        assert_eq!(labelled(&t, "ferry_retries_total", "class", "item"), 1.0);
    }

    #[test]
    fn seeding_from_a_journal_counts_earlier_bytes() {
        let m = Metrics::new("p", &plan());
        m.seed([
            ("a", "transferred", true),
            ("zz", "transferred", false),
            ("c", "failed", false),
        ]);
        let t = m.render();
        assert_eq!(value(&t, "ferry_bytes_done{plan=\"p\"}"), 100.0);
        assert_eq!(value(&t, "ferry_accounts_adopted{plan=\"p\"}"), 1.0);
        assert_eq!(accounts(&t, "transferred"), 1.0);
        assert_eq!(accounts(&t, "failed"), 1.0);
        assert_eq!(accounts(&t, "pending"), 1.0);
    }

    #[test]
    fn calls_count_by_function_and_outcome() {
        let m = Metrics::new("p", &plan());
        let e = |kind| client::Error {
            function: "get_transfer_session_state",
            kind,
            elapsed: Duration::ZERO,
            attempts: 1,
        };
        m.attempt("listaccts", Ok(()), Duration::from_millis(3));
        m.attempt("listaccts", Ok(()), Duration::from_millis(3));
        let refused = e(ErrorKind::Whm {
            reason: "no".into(),
        });
        m.attempt(
            "enqueue_transfer_item",
            Err(&refused),
            Duration::from_millis(3),
        );
        let busy = e(ErrorKind::Http {
            status: 503,
            retry_after: None,
        });
        m.attempt(
            "get_transfer_session_state",
            Err(&busy),
            Duration::from_millis(3),
        );
        m.retry(&busy);
        m.attempt(
            "listaccts",
            Err(&e(ErrorKind::AuthRefused { status: 401 })),
            Duration::ZERO,
        );
        let t = m.render();
        let req = |f: &str, o: &str| {
            value(
                &t,
                &format!("ferry_whm_requests_total{{plan=\"p\",function=\"{f}\",outcome=\"{o}\"}}"),
            )
        };
        assert_eq!(req("listaccts", "ok"), 2.0);
        assert_eq!(req("listaccts", "auth"), 1.0);
        assert_eq!(req("enqueue_transfer_item", "whm_error"), 1.0);
        assert_eq!(req("get_transfer_session_state", "transient"), 1.0);
        assert_eq!(
            labelled(&t, "ferry_retries_total", "class", "http_5xx"),
            1.0
        );
        assert_eq!(
            value(
                &t,
                "ferry_whm_request_duration_seconds_count{plan=\"p\",function=\"listaccts\"}"
            ),
            3.0
        );
    }

    #[test]
    fn session_states_never_carry_free_text() {
        assert_eq!(state_label("RUNNING"), "RUNNING");
        assert_eq!(state_label("TRANSFER_INPROGRESS"), "TRANSFER_INPROGRESS");
        assert_eq!(state_label("running now"), "OTHER");
        assert_eq!(state_label(""), "OTHER");
        assert_eq!(state_label(&"A".repeat(40)), "OTHER");
    }

    #[test]
    fn push_urls() {
        let u = parse_push_url("http://gw.example.net:9091").unwrap();
        assert_eq!(
            push_url(&u, "consolidation").unwrap().as_str(),
            "http://gw.example.net:9091/metrics/job/ferry/plan/consolidation"
        );
        let u = parse_push_url("https://u:pw@gw.example.net/prefix/?x=1").unwrap();
        assert_eq!(
            push_url(&u, "a b").unwrap().as_str(),
            "https://u:pw@gw.example.net/prefix/metrics/job/ferry/plan/a%20b"
        );
        assert!(!shown_url(&u).contains("pw"));
        assert!(parse_push_url("gw.example.net:9091").is_err());
        assert!(parse_push_url("ftp://gw.example.net").is_err());
    }

    #[test]
    fn a_rehearsal_has_a_label_of_its_own() {
        assert_eq!(plan_label("consolidation", false), "consolidation");
        assert_eq!(plan_label("consolidation", true), "consolidation.simulate");
    }

    #[test]
    fn adopted_accounts_are_counted_once() {
        let m = Metrics::new("p", &plan());
        let adopted = |account: &str| Event::ItemSucceeded {
            size: None,
            account: account.into(),
            source: "old1".into(),
            session: "old1/s1".into(),
            warnings: false,
            adopted: Some("present on the target".into()),
            notes: Vec::new(),
        };
        m.event(&adopted("a"));
        m.event(&adopted("a"));
        m.event(&adopted("not-in-the-plan"));
        let t = m.render();
        assert_eq!(value(&t, "ferry_accounts_adopted{plan=\"p\"}"), 1.0);
        assert_eq!(accounts(&t, "transferred"), 1.0);
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ferry.prom");
        write_atomic(&p, "a 1\n").unwrap();
        write_atomic(&p, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ferry.prom")]);
        assert!(write_atomic(&dir.path().join("missing/ferry.prom"), "x").is_err());
    }
}
