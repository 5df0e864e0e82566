//! `ferry apply PLAN [--simulate[=SCENARIO]] [--journal PATH] [--restart]`.
//!
//! Owns the edge of a run: load and compile the plan, take the journal's
//! lock (exit 6), open the journal (torn tail repaired, corruption refused),
//! resolve secrets — or start an in-process simulator for `--simulate` —
//! build the WHM client, run the executor on a tokio runtime with Ctrl-C
//! wired to its cancellation token, and map the result to an exit status
//! (design §3). Does not own: printing (the caller's [`Reporter`] gets every
//! event, including the final summary) or any scheduling (`exec`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::observe::Observers;
use super::{Error, ExitStatus, Outcome, run_exit_status};
use crate::client::{ClientConfig, RetryPolicy, WhmClient};
use crate::events::{Event, Reporter, RunStatus, Scrubbed};
use crate::exec::{self, Api, Mode, RunInput, RunPlan, RunReport, Timing};
use crate::journal::{self, Journal, SyncMode};
use crate::plan::LoadedPlan;
use crate::report::Fanout;
use crate::sim::{Scenario, SimServer};

/// What `ferry apply` was asked to do.
pub struct ApplyOptions {
    pub plan: PathBuf,
    /// `None`: the real target. `Some(None)`: `--simulate` (a rehearsal
    /// seeded from the plan). `Some(Some(file))`: `--simulate=SCENARIO`.
    pub simulate: Option<Option<PathBuf>>,
    /// `--journal`; default `.ferry/<stem>.journal`, or
    /// `.ferry/<stem>.simulate.journal` for a rehearsal.
    pub journal: Option<PathBuf>,
    /// `--restart`: resume a run that was aborted.
    pub restart: bool,
    /// `--adopt`: record as transferred the accounts found on the target
    /// that match the plan (see `exec::target`).
    pub adopt: bool,
    /// Per-request timeout of WHM calls (default 60 s; a rehearsal 5 s).
    pub request_timeout: Option<Duration>,
    /// Where the run's metrics go (`--metrics-textfile`, `--metrics-listen`,
    /// `--metrics-push`); none by default.
    pub metrics: crate::metrics::Export,
    /// `--lock-timeout`: wait this long for a journal in PostgreSQL whose
    /// lease another apply holds (or held, and died), instead of exit 6.
    pub lock_timeout: Option<Duration>,
    /// Receives every event of the run.
    pub reporter: Arc<dyn Reporter>,
}

/// The journal of a run, held for the whole `apply`: the file's lock, or
/// the database's lease.
pub(crate) enum Held {
    File {
        path: PathBuf,
        _lock: journal::JournalLock,
    },
    Pg {
        label: PathBuf,
        lease: Arc<journal::pg::Lease>,
    },
}

impl Held {
    /// Takes the lock or the lease (exit 6 if another apply has it), and
    /// for a file checks whose journal it is (another plan's is refused and
    /// left untouched). A run in the database is named after the plan's
    /// identity: it is this plan's by construction.
    pub(crate) fn take(
        w: &super::journal::Where,
        loaded: &LoadedPlan,
        wait: Option<Duration>,
    ) -> Result<Held, Error> {
        match w {
            super::journal::Where::File(path) => {
                super::journal::prepare_dir(path)?;
                let deadline = wait.map(|w| std::time::Instant::now() + w);
                let lock = loop {
                    match lock(path) {
                        Err(e)
                            if e.exit_status() == ExitStatus::Locked
                                && deadline.is_some_and(|d| std::time::Instant::now() < d) =>
                        {
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        other => break other?,
                    }
                };
                super::journal::check_belongs(path, loaded)?;
                Ok(Held::File {
                    path: path.clone(),
                    _lock: lock,
                })
            }
            super::journal::Where::Pg { loc, run } => {
                let db = super::journal::connect(loc)?;
                let lease = super::journal::lease(&db, run, loaded, loc.lease, wait)?;
                Ok(Held::Pg {
                    label: w.label(),
                    lease: Arc::new(lease),
                })
            }
        }
    }

    /// For messages.
    pub(crate) fn label(&self) -> PathBuf {
        match self {
            Held::File { path, .. } => path.clone(),
            Held::Pg { label, .. } => label.clone(),
        }
    }

    /// The journal, replayed (a torn file tail repaired and reported).
    pub(crate) fn open(&self, reporter: &dyn Reporter) -> Result<Journal, Error> {
        match self {
            Held::File { path, .. } => open_journal(path, reporter),
            Held::Pg { lease, .. } => {
                Journal::open_pg(lease).map_err(super::journal::journal_error)
            }
        }
    }

    pub(crate) fn controls(&self) -> exec::Controls {
        match self {
            Held::File { path, .. } => exec::Controls::File(path.clone()),
            Held::Pg { lease, .. } => exec::Controls::Db {
                db: lease.db().clone(),
                run: lease.run().to_string(),
            },
        }
    }

    /// The gate to WHM, fenced by the lease if there is one.
    pub(crate) fn fence(&self, api: Api) -> Api {
        match self {
            Held::File { .. } => api,
            Held::Pg { lease, .. } => api.with_fence(lease.fence()),
        }
    }

    /// Once the run is over: a lease lost while it ran decides the exit
    /// (6 if another process has it, 1 if it could not be confirmed),
    /// whatever the run's own error said.
    pub(crate) fn verdict<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        let Held::Pg { lease, .. } = self else {
            return r;
        };
        match lease.ended() {
            Some(journal::pg::LeaseEnd::Lost(e)) => Err(Error::Pg(e)),
            Some(journal::pg::LeaseEnd::Unconfirmed(m)) if r.is_ok() => Err(Error::Failed(m)),
            _ => r,
        }
    }
}

/// The journal `apply` uses for `plan` (see [`super::journal`]).
pub fn journal_path(plan: &Path, given: Option<&Path>, simulate: bool) -> Result<PathBuf, Error> {
    let kind = if simulate {
        super::journal::Kind::Rehearsal
    } else {
        super::journal::Kind::Run
    };
    super::journal::resolve(plan, given, kind)
}

/// Runs `ferry apply`.
pub fn apply(opts: ApplyOptions) -> Outcome {
    let reporter = opts.reporter.clone();
    let report = (|| {
        let loaded = load(&opts.plan)?;
        let kind = if opts.simulate.is_some() {
            super::journal::Kind::Rehearsal
        } else {
            super::journal::Kind::Run
        };
        let w = super::journal::locate(&loaded, opts.journal.as_deref(), kind)?;
        let rt = runtime()?;
        rt.block_on(apply_async(&opts, &loaded, &w))
    })();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            // design §7: the last event of every apply is `run_finished`,
            // also when the run could not start (plan, lock, journal).
            reporter.event(&not_run(&opts, &e));
            return Err(e);
        }
    };
    match &report.reason {
        // Why the run stopped, once, as the command's error.
        Some(reason) if report.status == RunStatus::Failed => {
            let plan = opts.plan.display().to_string();
            let next = crate::report::advice::next(&crate::report::advice::Facts {
                status: report.status,
                interrupted: report.interrupted,
                plan: &plan,
                rehearsal: opts.simulate.is_some(),
                failed: &report.failed,
            });
            Err(Error::Failed(format!("{reason}\n{next}")))
        }
        _ => Ok(run_exit_status(report.status)),
    }
}

/// The `run_finished` of a run that stopped with an error.
fn not_run(opts: &ApplyOptions, e: &Error) -> Event {
    Event::RunFinished {
        status: if e.exit_status() == ExitStatus::Aborted {
            RunStatus::Aborted
        } else {
            RunStatus::Failed
        },
        accounts: Default::default(),
        duration_secs: 0.0,
        failed: vec![],
        next: match e {
            // The diagnostics are printed once, as the error; `next` says
            // only what to do.
            Error::Plan {
                validate: Some(p), ..
            } => super::error::validate_hint(p),
            _ => e.to_string(),
        },
        plan: opts.plan.display().to_string(),
        rehearsal: opts.simulate.is_some(),
        interrupted: false,
    }
}

pub(crate) fn load(plan: &Path) -> Result<LoadedPlan, Error> {
    crate::plan::load(plan).map_err(|diagnostics| Error::Plan {
        diagnostics,
        validate: Some(plan.to_path_buf()),
    })
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the runtime", e))
}

/// Takes the lock or says who holds it (exit 6).
pub(crate) fn lock(path: &Path) -> Result<journal::JournalLock, Error> {
    Ok(journal::lock::acquire(path)?)
}

/// Opens the journal, reporting a repaired torn tail.
pub(crate) fn open_journal(path: &Path, reporter: &dyn Reporter) -> Result<Journal, Error> {
    let (journal, opened) = Journal::open(path, SyncMode::On)?;
    if let Some(r) = opened.repaired {
        reporter.event(&Event::Warning {
            message: format!("journal {}: {r}", path.display()),
        });
    }
    Ok(journal)
}

/// Cancels `token` on Ctrl-C or SIGTERM: the run stops scheduling and
/// detaches (the server's sessions carry on; `apply` resumes them).
pub(crate) fn cancel_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term_fut = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term_fut => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        t.cancel();
    });
    token
}

async fn apply_async(
    opts: &ApplyOptions,
    loaded: &LoadedPlan,
    w: &super::journal::Where,
) -> Result<RunReport, Error> {
    // 1. The lock (or the lease), before anything touches the journal;
    // then whose journal it is (another plan's is refused and left
    // untouched, even a rehearsal's).
    let held = Held::take(w, loaded, opts.lock_timeout)?;
    // Every event's free text is scrubbed of the run's secrets on its way
    // out (a server may echo a parameter in its reason), also on its way to
    // the metrics and the notification commands.
    let scrubbed = |r: Arc<dyn Reporter>| -> Arc<dyn Reporter> { Arc::new(Scrubbed(r)) };
    let observers = Observers::start(opts, loaded, scrubbed(opts.reporter.clone())).await;
    let mut all: Vec<Box<dyn Reporter>> = vec![Box::new(opts.reporter.clone())];
    all.extend(observers.reporters());
    // Every reporter gets the same advice at the end (`report::advice`).
    let reporter = scrubbed(Arc::new(crate::report::advice::Advised(Arc::new(
        Fanout::new(all),
    ))));
    let result = run_locked(opts, loaded, &held, reporter, &observers).await;
    let result = held.verdict(result);
    observers
        .finish(result.as_ref().err().map(|e| not_run(opts, e)))
        .await;
    result
}

/// Everything of a run once the lock is held and the journal is this plan's.
async fn run_locked(
    opts: &ApplyOptions,
    loaded: &LoadedPlan,
    held: &Held,
    reporter: Arc<dyn Reporter>,
    observers: &Observers,
) -> Result<RunReport, Error> {
    let compiled = crate::graph::compile(&loaded.plan);
    let mut sim: Option<SimServer> = None;
    let (client_cfg, logins, scale, tls_insecure) = match &opts.simulate {
        None => {
            let resolved = super::resolve::resolve(&loaded.plan, &loaded.base_dir)?;
            for w in &resolved.warnings {
                reporter.event(&Event::Warning { message: w.clone() });
            }
            let mut cfg = resolved.target;
            if let Some(t) = opts.request_timeout {
                cfg.request_timeout = t;
            }
            let insecure = cfg.insecure;
            (cfg, resolved.sources, 1.0, insecure)
        }
        Some(scenario_file) => {
            let (scenario, logins, user, token, credentials) = match scenario_file {
                None => {
                    let r = super::simulate::rehearsal_for(loaded);
                    for w in &r.warnings {
                        reporter.event(&Event::Warning { message: w.clone() });
                    }
                    (r.scenario, r.logins, r.token_user, r.token, r.note)
                }
                Some(f) => {
                    let scenario = super::simulate::load_scenario(f).map_err(Error::Usage)?;
                    let logins = super::simulate::logins(&loaded.plan, &scenario);
                    let (user, token) = super::simulate::credentials(&scenario);
                    let note = format!("credentials: the scenario's ({})", f.display());
                    (scenario, logins, user, token, note)
                }
            };
            // A rehearsal starts from nothing: its own journal, fresh — never
            // over a real run's journal (`--simulate --journal` pointed at it).
            let Held::File { path, .. } = held else {
                unreachable!("a rehearsal's journal is a file (ops::journal::locate)")
            };
            refuse_a_real_runs_journal(path)?;
            remove_journal(path)?;
            let scale = scenario.time_scale;
            let server = start_sim(scenario).await?;
            let mut cfg = ClientConfig::new(server.base_url(), user, token);
            cfg.ca_pem = server.ca_pem().map(str::to_string);
            cfg.request_timeout = opts.request_timeout.unwrap_or(Duration::from_secs(5));
            cfg.connect_timeout = Duration::from_secs(5);
            reporter.event(&Event::Warning {
                message: format!(
                    "rehearsal: an in-process whm-sim at {} stands in for {} (time scale {scale}); \
                     nothing real is touched; {credentials}",
                    server.base_url(),
                    loaded.plan.target.url
                ),
            });
            sim = Some(server);
            (cfg, logins, scale, false)
        }
    };
    // 2. The journal: torn tail repaired, corruption refused.
    let journal = held.open(reporter.as_ref())?;
    observers.seed(journal.state());
    let client = WhmClient::new(client_cfg).map_err(|e| Error::Usage(format!("target: {e}")))?;
    let policy = &loaded.plan.policy;
    let retry = RetryPolicy {
        attempts: policy.retries.attempts,
        initial: policy.retries.initial_backoff.0.mul_f64(scale),
        max: policy.retries.max_backoff.0.mul_f64(scale),
    };
    let input = RunInput {
        plan: RunPlan::new(loaded, compiled, Some(&logins)),
        journal,
        journal_path: held.label(),
        controls: held.controls(),
        api: observers.api(held.fence(
            Api::new(client, retry).with_limit(loaded.plan.concurrency.api_requests as usize),
        )),
        reporter: reporter.clone(),
        timing: Timing::from_policy(policy, scale),
        mode: Mode::Apply {
            restart: opts.restart,
            adopt: opts.adopt,
        },
        simulate: sim.is_some(),
        tls_insecure,
    };
    let cancel = cancel_on_signals();
    let result = exec::run(input, cancel).await;
    if let Some(s) = sim {
        s.shutdown().await;
    }
    Ok(result?)
}

async fn start_sim(scenario: Scenario) -> Result<SimServer, Error> {
    SimServer::start(scenario).await.map_err(Error::from)
}

/// A rehearsal deletes its journal to start afresh: refused (exit 2) when
/// the journal records a real run, which would be lost.
fn refuse_a_real_runs_journal(path: &Path) -> Result<(), Error> {
    match crate::journal::header(path) {
        Ok(Some(h)) if !h.rehearsal => Err(Error::Usage(format!(
            "the journal {} records a real run of `{}`; a rehearsal starts afresh and would \
             delete it. Drop --journal (a rehearsal keeps its own `.simulate.journal`) or point \
             it elsewhere",
            path.display(),
            h.identity
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn remove_journal(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            format!("cannot reset the rehearsal journal {}", path.display()),
            e,
        )),
    }
}
