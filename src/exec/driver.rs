//! The driver of one session instance: carries out what the
//! [`SessionMachine`] decides, talks to WHM through the gate
//! ([`super::api::Api`]), and writes every intent, answer and conclusion to
//! the journal.
//!
//! One tokio task per live session instance. It owns no shared state: what
//! it learns goes into the journal (folded into the shared `RunState`), and
//! the few things the scheduler must react to at once (a failed item, a
//! stuck session) go over a channel. The scheduler tells it what the run
//! wants (run / pause / abort) through a `watch`.
//!
//! The phases live in their own files, each opening with its crash windows:
//! [`super::setup`] (create, the target's record, enqueue, start),
//! [`super::monitor`] (polls, logs, stalls, pause and abort) and
//! [`super::conclude`] (outcomes, the end of the session, verification).
//! This file holds the task's entry, its dispatch over the phases, and what
//! they share.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::api::RetryNote;
use super::ctx::{Ctx, Halt};
use super::session::{Input, SState, SessionMachine, Unlisted, Want};
use crate::client::{self, SessionId};
use crate::events::Event;
use crate::graph::{SessionStep, StepId};
use crate::journal::record::Record;
use crate::journal::{JournalError, Phase, Progress, SessionRec};

/// How a session task ended.
#[derive(Debug)]
pub(crate) enum TaskEnd {
    /// The session ended on the server and every account is concluded.
    Finished,
    /// Never started and never will be; `retryable`: a new instance may be
    /// tried (the failure was transient).
    Abandoned { error: String, retryable: bool },
    /// PAUSED on the server (or paused before it started).
    Paused,
    /// ferry stopped watching a live session; the next `apply` reconciles it.
    Detached { reason: String },
    /// The task could not go on: auth refused, the target unreachable after
    /// every retry, or the journal unwritable. The journal is consistent.
    Halted(Halt),
}

impl From<JournalError> for TaskEnd {
    fn from(e: JournalError) -> Self {
        TaskEnd::Halted(Halt::Journal(e))
    }
}

impl From<Halt> for TaskEnd {
    fn from(h: Halt) -> Self {
        TaskEnd::Halted(h)
    }
}

impl From<super::api::CallError> for TaskEnd {
    fn from(e: super::api::CallError) -> Self {
        TaskEnd::Halted(e.into())
    }
}

/// Runs one session instance to its end (for this run).
pub(crate) async fn drive(ctx: Arc<Ctx>, key: String, want: watch::Receiver<Want>) -> TaskEnd {
    let Some(rec) = ctx.session(&key) else {
        return TaskEnd::Detached {
            reason: format!("session {key} is not in the journal"),
        };
    };
    let mut d = Driver::new(ctx, rec, want);
    match d.run().await {
        Ok(end) | Err(end) => end,
    }
}

pub(crate) struct Driver {
    pub(super) ctx: Arc<Ctx>,
    pub(super) key: String,
    pub(super) source: String,
    pub(super) m: SessionMachine,
    pub(super) id: Option<SessionId>,
    pub(super) want: watch::Receiver<Want>,
    /// remote user (WHM's item key) → target username.
    pub(super) users: BTreeMap<String, String>,
    pub(super) last_lines: usize,
    pub(super) last_state: Option<String>,
    pub(super) current: Option<String>,
    pub(super) start_refusals: u32,
    /// Something moved since the last poll (for the adaptive interval).
    pub(super) moved: bool,
    /// What the latest readable `master.log` says: a restore may be running
    /// in the session now (`Some(true)`), none is (`Some(false)`), or the log
    /// has not been read (`None`). The stall remedy depends on it.
    pub(super) restoring: Option<bool>,
    /// When the running session's log is next worth reading.
    pub(super) pace: super::pace::LogPace,
    /// Which running items' logs to read for their percentages.
    pub(super) items: super::progress::ItemWatch,
}

impl Driver {
    fn new(ctx: Arc<Ctx>, rec: SessionRec, want: watch::Receiver<Want>) -> Self {
        let now = Instant::now();
        let state = match rec.phase {
            Phase::Creating => SState::Creating,
            Phase::Created => SState::Enqueuing,
            Phase::Starting | Phase::Started => SState::Starting,
            Phase::Finished => SState::Finished,
            Phase::Abandoned => SState::Abandoned,
        };
        let mut m = SessionMachine::new(&rec.key, state, now, ctx.timing.alive_window);
        let pace =
            super::pace::LogPace::new((ctx.timing.stall_timeout / 4).max(ctx.timing.poll_max));
        m.set_pid(rec.pid);
        m.set_fully_enqueued(rec.fully_enqueued() || rec.phase == Phase::Started);
        let users = ctx.with_state(|st| {
            rec.accounts
                .iter()
                .filter_map(|a| st.accounts.get(a).map(|s| (s.user.clone(), a.clone())))
                .collect()
        });
        Driver {
            id: rec.id.as_deref().and_then(|i| SessionId::parse(i).ok()),
            key: rec.key,
            source: rec.source,
            ctx,
            m,
            want,
            users,
            last_lines: 0,
            last_state: rec.server_state,
            current: None,
            start_refusals: 0,
            moved: false,
            restoring: None,
            pace,
            items: super::progress::ItemWatch::default(),
        }
    }

    /// The id of this instance's `step`.
    pub(super) fn step(&self, step: SessionStep) -> StepId {
        StepId::session(&self.key, step)
    }

    /// The WHM id of this instance; a task without one has nothing to call
    /// and detaches (the journal says why on resume).
    pub(super) fn session_id(&self) -> Result<SessionId, TaskEnd> {
        self.id.clone().ok_or_else(|| TaskEnd::Detached {
            reason: format!("session {} has no id", self.key),
        })
    }

    pub(super) fn current_want(&self) -> Want {
        *self.want.borrow()
    }

    /// Journals and reports a retry of an idempotent call.
    pub(super) fn on_retry(&self, step: SessionStep) -> impl FnMut(RetryNote<'_>) + Clone + '_ {
        self.ctx.retry_note(self.step(step))
    }

    /// Feeds the machine; an unlisted pair is reported and changes nothing.
    pub(super) fn feed(&mut self, input: Input<'_>) -> super::session::Step {
        match self.m.on(input, Instant::now()) {
            Ok(step) => step,
            Err(unlisted) => {
                self.warn_unlisted(unlisted);
                super::session::Step::Nothing
            }
        }
    }

    fn warn_unlisted(&self, unlisted: Unlisted) {
        self.ctx.emit(Event::Warning {
            message: unlisted.to_string(),
        });
    }

    /// Records and reports a failed step.
    pub(super) fn step_failed(
        &self,
        step: SessionStep,
        error: &str,
        retryable: bool,
        attempt: u32,
    ) -> Result<(), TaskEnd> {
        Ok(self
            .ctx
            .step_failed(&self.step(step), error, retryable, attempt)?)
    }

    pub(super) async fn backoff(&self, attempt: u32, e: &client::Error) {
        let ra = match e.class() {
            client::Class::Transient { retry_after } => retry_after,
            _ => None,
        };
        let delay = self.ctx.api.policy().delay(attempt, ra, &mut rand::rng());
        tokio::time::sleep(delay).await;
    }

    /// The phases in order, from wherever the journal left the instance.
    /// `Err` ends the task early (its reason inside).
    async fn run(&mut self) -> Result<TaskEnd, TaskEnd> {
        match self.m.state() {
            SState::Finished => return Ok(TaskEnd::Finished),
            SState::Abandoned => {
                return Ok(TaskEnd::Abandoned {
                    error: "abandoned earlier".into(),
                    retryable: true,
                });
            }
            _ => {}
        }
        if self.m.state() == SState::Creating {
            if self.current_want() != Want::Run {
                // The run stopped before this instance got an id.
                self.ctx.record(Record::SessionAbandoned {
                    session: self.key.clone(),
                    id: None,
                    reason: "the run stopped before the session was created".into(),
                })?;
                self.feed(Input::Abandoned);
                return Ok(TaskEnd::Paused);
            }
            self.create().await?;
        }
        self.mirror().await?;
        if self.m.state() == SState::Enqueuing && self.current_want() == Want::Run {
            self.analyse().await?;
        }
        if self.m.state() == SState::Enqueuing {
            match self.current_want() {
                Want::Pause => return Ok(TaskEnd::Paused),
                Want::Abort => {
                    // Never started: abort turns the PENDING session FAILED
                    // so nobody can start it later; then conclude as usual.
                    let step = self.feed(Input::Want(Want::Abort));
                    self.do_step(step).await?;
                }
                Want::Run => {
                    self.enqueue_all().await?;
                    self.start().await?;
                }
            }
        }
        Ok(self.monitor().await)
    }

    /// `session_state` event: the server state, the account being worked
    /// on, and how many of its accounts are concluded.
    pub(super) fn emit_state(&self) {
        let (accounts, done) = self.ctx.with_state(|st| {
            let rec = st.session(&self.key);
            let accounts = rec.map_or(0, |r| r.accounts.len());
            let done = rec.map_or(0, |r| {
                r.accounts
                    .iter()
                    .filter(|a| {
                        st.accounts.get(*a).is_some_and(|s| {
                            s.session.as_deref() == Some(self.key.as_str())
                                && matches!(
                                    s.progress,
                                    Progress::Transferred | Progress::Failed { .. }
                                )
                        })
                    })
                    .count()
            });
            (accounts, done)
        });
        self.ctx.emit(Event::SessionState {
            session: self.key.clone(),
            id: self.id.as_ref().map(|i| i.to_string()),
            source: self.source.clone(),
            state: self.last_state.clone().unwrap_or_else(|| "PENDING".into()),
            current: self.current.clone(),
            accounts,
            done,
        });
    }
}

/// Whether a failure is worth another attempt (`client::retry` decides).
pub(super) fn transient(e: &client::Error) -> bool {
    matches!(e.class(), client::Class::Transient { .. })
}
