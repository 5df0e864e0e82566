//! `ferry pause PLAN` and `ferry abort PLAN`.
//!
//! With an `apply` running (it holds the journal's lock), the request is
//! written next to the journal (`<journal>.control`: who, when) and this
//! command waits until the running `apply` has recorded it in the journal
//! and consumed the file; the `apply` then stops scheduling, pauses or
//! aborts its sessions on the server and exits 3 or 5.
//!
//! With no `apply` running, this command takes the lock itself, replays the
//! journal and has the executor pause or abort the recorded live sessions
//! (in `exec`, the only writer of the journal, which records who asked).
//! If the `apply` ends while we wait, without having consumed the request,
//! we take the lock and do it ourselves.
//!
//! With the journal in PostgreSQL the same, with the run's lease for the
//! lock and a `ferry_controls` row for the file: from any folder or
//! machine that reaches the database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::apply::{load, runtime};
use super::{Error, ExitStatus, Outcome};
use crate::client::{ClientConfig, RetryPolicy, WhmClient};
use crate::events::{Event, Reporter};
use crate::exec::{self, Api, ControlRequest, Mode, RunInput, RunPlan, Timing, control};
use crate::journal::record::ControlAction;
use crate::journal::{self, LockError};

/// What `ferry pause` / `ferry abort` was asked to do.
pub struct ControlOptions {
    pub plan: PathBuf,
    pub journal: Option<PathBuf>,
    pub action: ControlAction,
    /// How long to wait for a running `apply` to acknowledge.
    pub wait: Duration,
    pub reporter: Arc<dyn Reporter>,
}

/// What happened, for `cli` to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlResult {
    /// The running `apply` (pid) recorded the request.
    Acknowledged { pid: Option<u32> },
    /// No `apply` was running: done here; `sessions` live sessions handled.
    Direct { sessions: usize },
    /// Nothing to do: no run in this journal.
    NoRun,
}

/// Runs `ferry pause` / `ferry abort`.
pub fn control(opts: &ControlOptions) -> Result<ControlResult, Error> {
    let loaded = load(&opts.plan)?;
    let w = super::journal::locate(&loaded, opts.journal.as_deref(), super::journal::Kind::Run)?;
    let path = match w {
        super::journal::Where::File(p) => p,
        super::journal::Where::Pg { ref loc, ref run } => {
            return control_db(opts, &loaded, &w, loc, run);
        }
    };
    if !path.exists() {
        return Ok(ControlResult::NoRun);
    }
    super::journal::check_belongs(&path, &loaded)?;
    let req = ControlRequest::here(opts.action);
    let deadline = Instant::now() + opts.wait;
    let mut written = false;
    let mut holder_pid = None;
    loop {
        // Acknowledged first: the apply may consume the request and exit
        // (freeing the lock) between two of our checks.
        if written && !control::request_pending(&path) {
            return Ok(ControlResult::Acknowledged { pid: holder_pid });
        }
        match journal::lock::acquire(&path) {
            Ok(lock) => {
                // No apply runs: a request file left behind is obeyed here.
                control::consume_request(&path);
                let held = super::apply::Held::File {
                    path: path.clone(),
                    _lock: lock,
                };
                return direct(opts, &loaded, &held, req.clone());
            }
            Err(LockError::Held { holder, .. }) => {
                holder_pid = holder.pid.or(holder_pid);
                if !written {
                    control::write_request(&path, &req).map_err(|e| {
                        Error::io(
                            format!(
                                "cannot write the control request next to {}",
                                path.display()
                            ),
                            e,
                        )
                    })?;
                    written = true;
                }
                if Instant::now() >= deadline {
                    return Err(Error::Failed(format!(
                        "the running apply (pid {holder}) has not picked up the request after {}s; \
                         it stays in {} and is obeyed when apply next checks",
                        opts.wait.as_secs(),
                        control::control_path(&path).display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e @ LockError::Io { .. }) => return Err(e.into()),
        }
    }
}

/// [`control`] for a journal in PostgreSQL.
fn control_db(
    opts: &ControlOptions,
    loaded: &crate::plan::LoadedPlan,
    w: &super::journal::Where,
    loc: &journal::pg::Location,
    run: &str,
) -> Result<ControlResult, Error> {
    use super::journal::pg_error;
    let db = super::journal::connect(loc)?;
    if !journal::pg::run_exists(&db, run).map_err(pg_error)? {
        return Ok(ControlResult::NoRun);
    }
    let req = ControlRequest::here(opts.action);
    let deadline = Instant::now() + opts.wait;
    let mut written: Option<i64> = None;
    let mut holder_pid = None;
    loop {
        if let Some(id) = written
            && !journal::pg::control_pending(&db, id).map_err(pg_error)?
        {
            return Ok(ControlResult::Acknowledged { pid: holder_pid });
        }
        match journal::pg::Lease::acquire(&db, run, &loaded.path.display().to_string(), loc.lease) {
            Ok(lease) => {
                // No apply runs: our own request (if written) and any left
                // behind are obeyed here, recorded by the executor.
                let held = super::apply::Held::Pg {
                    label: w.label(),
                    lease: Arc::new(lease),
                };
                let r = direct(opts, loaded, &held, req.clone());
                return held.verdict(r);
            }
            Err(journal::pg::PgError::Held { holder, .. }) => {
                holder_pid = Some(holder.pid as u32);
                if written.is_none() {
                    written = Some(
                        journal::pg::request_control(&db, run, req.action, &req.by, &req.at)
                            .map_err(pg_error)?,
                    );
                }
                if Instant::now() >= deadline {
                    return Err(Error::Failed(format!(
                        "the running apply ({holder}) has not picked up the request after {}s; \
                             it stays in the database and is obeyed when apply next checks",
                        opts.wait.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(pg_error(e)),
        }
    }
}

/// Exit status of `ferry pause`/`abort` itself: success once done.
pub fn outcome(r: Result<ControlResult, Error>) -> Outcome {
    r.map(|_| ExitStatus::Success)
}

fn direct(
    opts: &ControlOptions,
    loaded: &crate::plan::LoadedPlan,
    held: &super::apply::Held,
    req: ControlRequest,
) -> Result<ControlResult, Error> {
    if let super::apply::Held::File { path, .. } = held
        && !path.exists()
    {
        return Ok(ControlResult::NoRun);
    }
    let reporter: Arc<dyn Reporter> = Arc::new(crate::events::Scrubbed(opts.reporter.clone()));
    let journal = held.open(reporter.as_ref())?;
    if journal.state().runs == 0 {
        return Ok(ControlResult::NoRun);
    }
    let live = journal
        .state()
        .sessions()
        .iter()
        .filter(|s| s.is_open())
        .count();
    let simulate = journal.state().simulate;
    if simulate {
        return Err(Error::Usage(
            "this journal belongs to a rehearsal (`apply --simulate`), whose simulator is gone; \
             nothing to pause"
                .into(),
        ));
    }
    let cfg = target_config(loaded)?;
    if cfg.insecure {
        reporter.event(&Event::Warning {
            message: super::resolve::insecure_warning(&loaded.plan.target.url),
        });
    }
    let client = WhmClient::new(cfg).map_err(|e| Error::Usage(format!("target: {e}")))?;
    let policy = &loaded.plan.policy;
    let retry = RetryPolicy {
        attempts: policy.retries.attempts,
        initial: policy.retries.initial_backoff.0,
        max: policy.retries.max_backoff.0,
    };
    let compiled = crate::graph::compile(&loaded.plan);
    let input = RunInput {
        plan: RunPlan::new(loaded, compiled, None),
        journal,
        journal_path: held.label(),
        controls: held.controls(),
        api: held.fence(
            Api::new(client, retry).with_limit(loaded.plan.concurrency.api_requests as usize),
        ),
        reporter: reporter.clone(),
        timing: Timing::from_policy(policy, 1.0),
        mode: Mode::Control(req),
        simulate: false,
        tls_insecure: loaded.plan.target.tls.as_ref().is_some_and(|t| t.insecure),
    };
    let rt = runtime()?;
    let report = rt.block_on(exec::run(input, rt_cancel()))?;
    if let Some(reason) = &report.reason {
        reporter.event(&Event::Warning {
            message: format!("recorded: {reason}"),
        });
    }
    Ok(ControlResult::Direct { sessions: live })
}

fn rt_cancel() -> tokio_util::sync::CancellationToken {
    tokio_util::sync::CancellationToken::new()
}

/// The target's client configuration only: pausing needs no source
/// credentials.
pub(super) fn target_config(loaded: &crate::plan::LoadedPlan) -> Result<ClientConfig, Error> {
    let plan = &loaded.plan;
    let mut warnings = Vec::new();
    let token = plan
        .target
        .token
        .resolve(&loaded.base_dir, &mut warnings)
        .map_err(|e| Error::Usage(format!("target.token: {e}")))?;
    let mut cfg = ClientConfig::new(plan.target.url.clone(), plan.target.user.clone(), token);
    if let Some(tls) = &plan.target.tls {
        cfg.insecure = tls.insecure;
        if let Some(ca) = &tls.ca_file {
            let p = if ca.is_absolute() {
                ca.clone()
            } else {
                loaded.base_dir.join(ca)
            };
            cfg.ca_pem = Some(std::fs::read_to_string(&p).map_err(|e| {
                Error::Usage(format!(
                    "target.tls.ca_file: cannot read {}: {e}",
                    p.display()
                ))
            })?);
        }
    }
    Ok(cfg)
}
