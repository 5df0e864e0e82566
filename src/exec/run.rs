//! The scheduler's loop: session tasks, what they report, control requests,
//! and how the run ends.
//!
//! One loop owns the scheduling decisions; session tasks do the I/O. Every
//! decision reads the journal's `RunState` (the single source of truth) and
//! is recorded there before it takes effect. The parts of the scheduler
//! live beside it: [`super::prepare`] (everything before the first session
//! is created), [`super::schedule`] (which instance starts when),
//! [`super::policy`] (the reaction to trouble).
//!
//! ## What lives only in memory, and why that is safe
//!
//! The live instances (`live`) are re-derived on resume from the journal's
//! open sessions. `blocked`, `create_failures` and `barren` are budgets of
//! this apply (like `item_retries`): a new apply starts them afresh on
//! purpose, and the journal's `step_failed` / `session_abandoned` records
//! say what used them up. A journal write that fails stops the run at once:
//! every task is dropped at an await point (where the journal is
//! consistent) before any further WHM call, and the end is reported with
//! the counts the journal holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::control;
use super::ctx::{self, Ctx, Halt};
use super::driver::{self, TaskEnd};
use super::policy::{Trouble, stop_for};
use super::session::Want;
use super::{ExecError, Mode, Msg, RunInput, RunReport};
use crate::events::{Event, RunStatus};
use crate::journal::Progress;
use crate::journal::record::{ControlAction, FinishStatus, Record};

/// Why the run stops scheduling. Ordered: a later variant overrides an
/// earlier one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stop {
    Pause(String),
    Abort(String),
    Fatal(String),
    Interrupted,
}

/// Instances of a batch in a row that may end without concluding any
/// account before the batch is given up.
const BARREN_LIMIT: u32 = 3;

/// A live session task.
pub(super) struct Live {
    pub batch: Option<usize>,
    pub source: String,
    pub want: watch::Sender<Want>,
}

pub(crate) struct Scheduler {
    pub(super) ctx: Arc<Ctx>,
    rx: mpsc::UnboundedReceiver<Msg>,
    tasks: JoinSet<(String, TaskEnd)>,
    pub(super) live: BTreeMap<String, Live>,
    pub(super) stop: Option<Stop>,
    /// Batches that cannot get a session (create refused), with why.
    pub(super) blocked: BTreeMap<usize, String>,
    /// Consecutive abandoned creates per batch.
    pub(super) create_failures: BTreeMap<usize, u32>,
    /// Consecutive instances per batch that ended without concluding any
    /// of their accounts.
    barren: BTreeMap<usize, u32>,
    pub(super) journal_path: std::path::PathBuf,
    /// Where `ferry pause` / `ferry abort` leave their requests.
    controls: control::Controls,
    pub(super) mode: Mode,
    /// `apply --simulate`.
    pub(super) simulate: bool,
    pub(super) tls_insecure: bool,
    started: Instant,
    /// The first journal failure met while recording the run's end.
    end_unrecorded: Option<String>,
    /// The order batches are offered a session in (critical path first,
    /// `graph::critical::critical_order`), fixed for the run.
    pub(super) order: Vec<usize>,
}

impl Scheduler {
    /// The scheduler of a run, before anything is read or recorded.
    pub(crate) fn new(input: RunInput) -> Scheduler {
        let RunInput {
            plan,
            mut journal,
            journal_path,
            controls,
            api,
            reporter,
            timing,
            mode,
            simulate,
            tls_insecure,
        } = input;
        journal.set_group_window(timing.group_window);
        let (tx, rx) = mpsc::unbounded_channel();
        let order = crate::graph::critical::critical_order(
            plan.sessions(),
            plan.limits().source_sessions as usize,
        );
        Scheduler {
            ctx: Arc::new(Ctx::new(journal, api, reporter, plan, timing, tx)),
            rx,
            tasks: JoinSet::new(),
            live: BTreeMap::new(),
            stop: None,
            blocked: BTreeMap::new(),
            create_failures: BTreeMap::new(),
            barren: BTreeMap::new(),
            journal_path,
            controls,
            mode,
            simulate,
            tls_insecure,
            started: Instant::now(),
            end_unrecorded: None,
            order,
        }
    }

    pub(super) fn want_for_all(&self) -> Want {
        match &self.stop {
            Some(Stop::Pause(_)) => Want::Pause,
            Some(Stop::Abort(_)) => Want::Abort,
            _ => Want::Run,
        }
    }

    pub(super) fn spawn(&mut self, key: String, want: Want) {
        let Some(rec) = self.ctx.session(&key) else {
            return;
        };
        let batch = self
            .ctx
            .plan()
            .sessions()
            .iter()
            .position(|b| b.key == rec.batch);
        let (tx, rx) = watch::channel(want);
        self.live.insert(
            key.clone(),
            Live {
                batch,
                source: rec.source.clone(),
                want: tx,
            },
        );
        let ctx = self.ctx.clone();
        self.tasks.spawn(async move {
            let end = driver::drive(ctx, key.clone(), rx).await;
            (key, end)
        });
    }

    pub(crate) async fn run(mut self, cancel: CancellationToken) -> Result<RunReport, ExecError> {
        match self.drive(&cancel).await {
            Ok(()) => {}
            // A journal that cannot be written stops the run before any
            // further WHM call: every task is dropped at once (each is at an
            // await point, where the journal is consistent), and the end is
            // reported from what the journal holds.
            Err(ExecError::Journal(e)) => {
                self.halt_tasks();
                self.set_stop(Stop::Fatal(format!("cannot write the journal: {e}")));
            }
            Err(other) => return Err(other),
        }
        self.finish().await
    }

    fn halt_tasks(&mut self) {
        self.tasks.abort_all();
        self.live.clear();
    }

    async fn drive(&mut self, cancel: &CancellationToken) -> Result<(), ExecError> {
        // Accounts left unverified (or unfinished) by an earlier process.
        if let Err(halt) = ctx::verify(&self.ctx, None, true).await {
            self.on_task_end(String::new(), TaskEnd::Halted(halt))?;
        }
        let mut control_tick = tokio::time::interval(self.ctx.timing.control_poll);
        control_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.stop.is_none() {
                self.schedule()?;
            }
            if self.live.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.set_stop(Stop::Interrupted);
                    // Detach: the server's sessions carry on; the journal
                    // is consistent at every await point.
                    self.halt_tasks();
                    break;
                }
                Some(joined) = self.tasks.join_next() => match joined {
                    Ok((key, end)) => self.on_task_end(key, end)?,
                    Err(e) => self.set_stop(Stop::Fatal(format!("a session task failed: {e}"))),
                },
                Some(msg) = self.rx.recv() => self.on_msg(msg)?,
                _ = control_tick.tick() => {
                    self.ctx.tick()?;
                    if matches!(self.mode, Mode::Apply { .. }) {
                        self.check_control()?;
                    }
                }
            }
            if matches!(self.stop, Some(Stop::Fatal(_))) && !self.live.is_empty() {
                self.halt_tasks();
            }
        }
        while let Ok(msg) = self.rx.try_recv() {
            self.on_msg(msg)?;
        }
        Ok(())
    }

    pub(super) fn set_stop(&mut self, stop: Stop) {
        if self.stop.as_ref().is_none_or(|s| *s < stop) {
            self.stop = Some(stop);
        }
    }

    pub(super) fn tell(&self, key: &str, want: Want) {
        if let Some(l) = self.live.get(key) {
            l.want.send_if_modified(|w| {
                if *w < want {
                    *w = want;
                    true
                } else {
                    false
                }
            });
        }
    }

    pub(super) fn tell_all(&self, want: Want) {
        for k in self.live.keys() {
            self.tell(k, want);
        }
    }

    /// A request file from `ferry pause` / `ferry abort`: recorded (who,
    /// when) before it is consumed, then obeyed by every live session.
    fn check_control(&mut self) -> Result<(), ExecError> {
        let Some((req, ack)) = self.controls.pending() else {
            return Ok(());
        };
        let what = match req.action {
            ControlAction::Pause => "ferry pause",
            ControlAction::Abort => "ferry abort",
        };
        self.ctx.record(ctx::request_record(&req, what))?;
        self.ctx.sync()?;
        ack.consume();
        self.set_stop(stop_for(&req, what));
        self.tell_all(match req.action {
            ControlAction::Pause => Want::Pause,
            ControlAction::Abort => Want::Abort,
        });
        Ok(())
    }

    fn on_msg(&mut self, msg: Msg) -> Result<(), ExecError> {
        match msg {
            Msg::ItemFailed { session, account } => self.on_item_failed(&session, &account),
            Msg::Stuck { session, reason } => {
                self.react(Trouble::Stuck { session: &session }, reason)
            }
            Msg::Differences { reason } => self.react(Trouble::Differences, reason),
        }
    }

    fn on_task_end(&mut self, key: String, end: TaskEnd) -> Result<(), ExecError> {
        let live = self.live.remove(&key);
        let batch = live.and_then(|l| l.batch);
        match end {
            TaskEnd::Finished => {
                let Some(b) = batch else { return Ok(()) };
                self.create_failures.remove(&b);
                // A replacement that ends without concluding any account
                // (a server that fails every session at once) must not make
                // new instances forever.
                let concluded = self.ctx.with_state(|st| {
                    st.session(&key).is_some_and(|s| {
                        s.accounts.iter().any(|a| {
                            st.accounts.get(a).is_some_and(|acc| {
                                acc.session.as_deref() == Some(key.as_str())
                                    && !matches!(acc.progress, Progress::Pending)
                            })
                        })
                    })
                });
                let n = self.barren.entry(b).or_insert(0);
                if concluded {
                    *n = 0;
                } else {
                    *n += 1;
                    if *n >= BARREN_LIMIT {
                        self.block(
                            b,
                            format!(
                                "{BARREN_LIMIT} sessions in a row ended without moving any account"
                            ),
                        )?;
                    }
                }
            }
            TaskEnd::Paused => {}
            TaskEnd::Abandoned { error, retryable } => {
                let Some(b) = batch else { return Ok(()) };
                let n = self.create_failures.entry(b).or_insert(0);
                *n += 1;
                let attempts = self.ctx.api.policy().attempts.max(1);
                if !retryable || *n >= attempts {
                    self.block(b, error)?;
                }
            }
            TaskEnd::Detached { reason } => {
                self.ctx.emit(Event::Warning {
                    message: format!(
                        "{reason}; ferry stopped watching it. Check the session on the target; \
                         `ferry apply` reconciles it"
                    ),
                });
                if self.stop.is_none() {
                    self.set_stop(Stop::Pause(reason));
                }
            }
            TaskEnd::Halted(Halt::Auth(m)) => self.set_stop(Stop::Fatal(m)),
            TaskEnd::Halted(Halt::Unreachable(m)) => self.set_stop(Stop::Fatal(format!(
                "the target did not answer after every retry: {m}"
            ))),
            TaskEnd::Halted(Halt::Journal(e)) => return Err(ExecError::Journal(e)),
        }
        Ok(())
    }

    /// Records how the run ended and builds the report.
    async fn finish(mut self) -> Result<RunReport, ExecError> {
        if self.stop.is_none() || matches!(self.stop, Some(Stop::Pause(_) | Stop::Abort(_))) {
            if let Err(halt) = ctx::verify(&self.ctx, None, false).await
                && let Err(e) = self.on_task_end(String::new(), TaskEnd::Halted(halt))
            {
                self.unrecorded(e);
            }
            while let Ok(msg) = self.rx.try_recv() {
                if let Err(e) = self.on_msg(msg) {
                    self.unrecorded(e);
                }
            }
        }
        let (counts, mut failed, mut pending, differing) = self.ctx.with_state(|st| {
            let pending: Vec<(String, String)> = st
                .planned()
                .filter(|(_, a)| {
                    !matches!(a.progress, Progress::Transferred | Progress::Failed { .. })
                })
                .map(|(n, a)| (n.clone(), self.pending_reason(st, n, a)))
                .collect();
            (
                ctx::counts(st),
                ctx::failed_accounts(st),
                pending,
                ctx::differing_accounts(st),
            )
        });
        let clean = differing.is_empty();
        for f in &mut failed {
            if let Some(undo) = super::schedule::live_undo(self.ctx.plan(), &f.account) {
                f.message = format!("{} — {undo}", f.message);
                f.retried = false;
            }
        }
        failed.extend(differing);
        pending.sort();
        let (status, reason) = match self.stop.clone() {
            Some(Stop::Pause(reason)) => {
                self.end_record(Record::RunPaused {
                    reason: reason.clone(),
                });
                let plan = self.ctx.plan().path.clone();
                let resume = if self.simulate {
                    format!("ferry apply --simulate {plan}")
                } else {
                    format!("ferry apply {plan}")
                };
                self.ctx.emit(Event::RunPaused {
                    reason: reason.clone(),
                    resume,
                });
                (RunStatus::Paused, Some(reason))
            }
            Some(Stop::Abort(reason)) => {
                self.end_record(Record::RunAborted {
                    reason: reason.clone(),
                });
                self.ctx.emit(Event::RunAborted {
                    reason: reason.clone(),
                });
                (RunStatus::Aborted, Some(reason))
            }
            Some(Stop::Fatal(reason)) => {
                self.finished_record(FinishStatus::Failed, &counts);
                (RunStatus::Failed, Some(reason))
            }
            Some(Stop::Interrupted) => {
                self.finished_record(FinishStatus::Interrupted, &counts);
                (RunStatus::Failed, Some("interrupted".to_string()))
            }
            None if counts.failed == 0 && counts.pending == 0 && clean => {
                self.finished_record(FinishStatus::Succeeded, &counts);
                (RunStatus::Succeeded, None)
            }
            None => {
                self.finished_record(FinishStatus::Partial, &counts);
                (RunStatus::Partial, None)
            }
        };
        if let Err(e) = self.ctx.sync() {
            self.unrecorded(e.into());
        }
        let interrupted = matches!(self.stop, Some(Stop::Interrupted));
        // The end is reported from what the journal holds even when the
        // journal could not take it (a full disk): the counts are those of
        // every record that was written.
        let reason = match (&self.end_unrecorded, reason) {
            (None, r) => r,
            (Some(_), Some(r)) if r.contains("cannot write the journal") => Some(r),
            (Some(e), Some(r)) => Some(format!("{r}; its end could not be recorded: {e}")),
            (Some(e), None) => Some(format!("the end of the run could not be recorded: {e}")),
        };
        let status = if self.end_unrecorded.is_some() {
            RunStatus::Failed
        } else {
            status
        };
        let report = RunReport {
            status,
            counts,
            failed: failed.clone(),
            pending,
            duration: self.started.elapsed(),
            api_calls: self.ctx.api.calls(),
            reason,
            interrupted,
        };
        if !matches!(self.mode, Mode::Control(_)) {
            self.ctx.emit(Event::RunFinished {
                status,
                accounts: counts,
                duration_secs: report.duration.as_secs_f64(),
                failed,
                // Worded from these facts by `report::advice`.
                next: String::new(),
                plan: self.ctx.plan().path.clone(),
                rehearsal: self.simulate,
                interrupted,
            });
        }
        Ok(report)
    }

    fn finished_record(&mut self, status: FinishStatus, c: &crate::events::AccountCounts) {
        if matches!(self.mode, Mode::Control(_)) {
            return;
        }
        self.end_record(Record::RunFinished {
            status,
            transferred: c.transferred,
            failed: c.failed,
            pending: c.pending,
        });
    }

    /// Records how the run ended. A journal that cannot take it no longer
    /// changes the outcome's counts (they are what the journal holds); the
    /// failure is kept for the report, and the run exits 1.
    fn end_record(&mut self, rec: Record) {
        if let Err(e) = self.ctx.record(rec) {
            self.unrecorded(e.into());
        }
    }

    fn unrecorded(&mut self, e: ExecError) {
        self.end_unrecorded.get_or_insert_with(|| e.to_string());
    }
}
