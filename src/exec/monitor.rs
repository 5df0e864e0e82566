//! Watching a started session: state polls, `master.log` reads, what the
//! run wants (pause, abort), and stalls.
//!
//! ## Crash windows
//!
//! Nothing here announces a request that could move an account: state and
//! log reads are idempotent, a `start` is safe to repeat (a live master
//! answers with its pid; a PAUSED session resumes; a stale one restarts and
//! carries on), and a pause or an abort is recorded (`session_control`)
//! after its answer — killed before that, the next `apply` finds the
//! session's state on the server and follows it.
//!
//! * **pause** is sent only to a session seen alive lately: on a dead one
//!   WHM turns a pause into FAILED (docs/whm.md §2). The machine asks for a
//!   start first otherwise.
//! * **abort and replace** (the stall remedy): killed after the abort, the
//!   next `apply` finds the session FAILED or ABORTED and concludes it as
//!   any ended session — accounts that never reached RESTORE go to a
//!   replacement, a cut restore is checked on the target.
//! * **a log read** that blocks (WHM may hold an active log until it
//!   completes) times out as "no news", never as an error.

use tokio::time::Instant;

use super::Msg;
use super::api::CallError;
use super::ctx::Halt;
use super::driver::{Driver, TaskEnd, transient};
use super::outcome::LogView;
use super::session::{Input, Remedy, Stall, Step, Want};
use crate::client::{ErrorKind, SessionId, SessionState, masterlog};
use crate::events::Event;
use crate::graph::SessionStep;
use crate::journal::record::{ControlAction, Record};
use crate::plan::OnError;

impl Driver {
    /// Polls the session until it ends (or the run stops watching it).
    pub(super) async fn monitor(&mut self) -> TaskEnd {
        match self.watch().await {
            Ok(end) | Err(end) => end,
        }
    }

    async fn watch(&mut self) -> Result<TaskEnd, TaskEnd> {
        let t = self.ctx.timing.clone();
        let mut interval = t.poll_min;
        // What the run wanted before this task started (a resumed session
        // under `ferry pause`/`abort`) counts too, not only later changes.
        if let Some(end) = self.on_want().await? {
            return Ok(end);
        }
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    changed = self.want.changed() => {
                        if changed.is_ok()
                            && let Some(end) = self.on_want().await?
                        {
                            return Ok(end);
                        }
                    }
                }
            }
            first = false;
            if let Some(end) = self.poll_once().await? {
                return Ok(end);
            }
            interval = if std::mem::take(&mut self.moved) {
                t.poll_min
            } else {
                (interval * 2).min(t.poll_max)
            };
            if let Some(stall) = self.m.on_tick(Instant::now(), t.stall_timeout) {
                if let Some(end) = self.on_stall(stall).await? {
                    return Ok(end);
                }
                interval = t.poll_min;
            }
        }
    }

    /// What the run wants now, through the machine.
    async fn on_want(&mut self) -> Result<Option<TaskEnd>, TaskEnd> {
        let step = self.feed(Input::Want(self.current_want()));
        self.do_step(step).await
    }

    /// Carries out a step; `Some(end)` ends the task.
    pub(super) async fn do_step(&mut self, step: Step) -> Result<Option<TaskEnd>, TaskEnd> {
        match step {
            Step::Start => self.call_start().await.map(|_| None),
            Step::Enqueue => {
                self.enqueue_all().await?;
                self.start().await.map(|_| None)
            }
            Step::Pause => self.control(ControlAction::Pause).await.map(|_| None),
            Step::Abort => self.control(ControlAction::Abort).await.map(|_| None),
            Step::StopWatching => Ok(Some(TaskEnd::Paused)),
            Step::Conclude => {
                let state = self.last_state.clone().unwrap_or_default();
                let end = self.conclude(&state).await;
                // The terminal state is shown after the accounts it
                // concluded, so "COMPLETED (3/3)" is the session's last word.
                self.emit_state();
                Ok(Some(end))
            }
            Step::Poll | Step::Nothing => Ok(None),
        }
    }

    /// One poll: state, then (while it runs, when [`super::pace`] says an
    /// item can have finished) the log with a short timeout.
    async fn poll_once(&mut self) -> Result<Option<TaskEnd>, TaskEnd> {
        let id = self.session_id()?;
        let r = self
            .ctx
            .api
            .repeatable(self.on_retry(SessionStep::State), |c| {
                let id = id.clone();
                async move { c.get_transfer_session_state(&id).await }
            })
            .await;
        let state = match r {
            Ok(s) => s,
            Err(CallError::Failed(e)) if !transient(&e) => {
                // WHM no longer knows the session: it deletes PENDING ones
                // after 4 hours and any after 30 days (docs/whm.md §4), or
                // the server was reinstalled. It is gone, not a passing
                // fault: nothing runs in it, so conclude without a log —
                // every open account is then decided by the target
                // (present: its restore is over; absent: moved again).
                self.step_failed(SessionStep::State, &e.to_string(), false, 1)?;
                self.ctx.emit(Event::Warning {
                    message: format!(
                        "session {} ({id}) no longer exists on the target (WHM deletes PENDING \
                         sessions after 4 hours and any after 30 days); its accounts are decided \
                         by what the target has",
                        self.key
                    ),
                });
                return Ok(Some(self.conclude_without_log("GONE").await));
            }
            Err(e) => return Err(e.into()),
        };
        let name = state.as_str().to_string();
        let changed = self.last_state.as_deref() != Some(name.as_str());
        if changed {
            self.ctx.record(Record::SessionState {
                session: self.key.clone(),
                state: name.clone(),
            })?;
            self.last_state = Some(name);
            self.m.on_progress(Instant::now());
            self.moved = true;
            if !state.is_terminal() {
                self.emit_state();
            }
        }
        let step = self.feed(Input::Server(&state));
        if step == Step::Poll
            && matches!(
                state,
                SessionState::Running | SessionState::Pausing | SessionState::Aborting
            )
            && self.pace.read_now(Instant::now(), changed)
        {
            self.read_log_while_running(&id).await?;
        }
        self.do_step(step).await
    }

    /// Fetches master.log with a short timeout. WHM may block on a log that
    /// is still being written (`log_blocking`): a timeout is "no news",
    /// never an error that stops the run.
    async fn read_log_while_running(&mut self, id: &SessionId) -> Result<(), TaskEnd> {
        let timeout = self.ctx.timing.log_timeout;
        // The slow lane: WHM may hold an active log until it completes, and
        // a state poll, a pause or an abort must never wait behind it.
        let r = self
            .ctx
            .api
            .once_slow(|c| {
                let id = id.clone();
                async move {
                    c.fetch_transfer_session_log(&id, "master.log", timeout)
                        .await
                }
            })
            .await;
        match r {
            Ok(text) => {
                self.m.on_log_read();
                let view = LogView::read(&text);
                self.restoring = Some(!view.restoring_now().is_empty());
                if view.lines > self.last_lines {
                    self.last_lines = view.lines;
                    self.m.on_progress(Instant::now());
                }
                // Polls speed up when the session's end is near — its last
                // item concluded or the master's final line written — not on
                // any new line (a log grows at every step of every item):
                // the state poll is what sees the end, and the sooner it
                // does, the sooner the next session takes the place.
                let news = self.pace.on_read(Instant::now(), view.accounts.len());
                if view.finished.is_some() || (news && view.accounts.len() >= self.users.len()) {
                    self.moved = true;
                }
                if view.current != self.current {
                    self.current = view.current.clone();
                    self.emit_state();
                }
                self.record_outcomes(&view)?;
                self.read_item_logs(id, &view).await
            }
            Err(CallError::Stopped { message, .. }) => Err(Halt::Auth(message).into()),
            // No news; the next poll asks again.
            Err(CallError::Failed(_)) => Ok(()),
        }
    }

    /// The percentages of the large items in flight (`super::progress`
    /// chooses them), each log read once, on the slow lane, with the log
    /// timeout; a timeout ends such reads for this task, any other failure
    /// is no news.
    async fn read_item_logs(&mut self, id: &SessionId, view: &LogView) -> Result<(), TaskEnd> {
        let timeout = self.ctx.timing.log_timeout;
        for due in self.items.due(view, self.users.len()) {
            let Some(account) = self.users.get(&due.user).cloned() else {
                continue;
            };
            let r = self
                .ctx
                .api
                .once_slow(|c| {
                    let id = id.clone();
                    let log = due.logfile.clone();
                    async move { c.fetch_transfer_session_log(&id, &log, timeout).await }
                })
                .await;
            let text = match r {
                Ok(text) => text,
                Err(CallError::Stopped { message, .. }) => return Err(Halt::Auth(message).into()),
                Err(CallError::Failed(e)) => {
                    if e.kind == ErrorKind::Timeout {
                        self.items.on_timeout();
                        return Ok(());
                    }
                    continue;
                }
            };
            let Some(item_percent) = masterlog::item_percentage(&text) else {
                continue;
            };
            let Some(percent) = self.items.on_read(&due, item_percent) else {
                continue;
            };
            self.ctx.record(Record::ItemProgress {
                session: self.key.clone(),
                account: account.clone(),
                percent,
            })?;
            let size = super::ctx::size_of(self.ctx.plan(), &account).or(due.size);
            self.ctx.emit(Event::ItemProgress {
                account,
                source: self.source.clone(),
                session: self.key.clone(),
                percent,
                size,
            });
        }
        Ok(())
    }

    /// `pause_transfer_session` / `abort_transfer_session`. A refusal is
    /// recorded; the next state poll says where the session is.
    async fn control(&mut self, action: ControlAction) -> Result<(), TaskEnd> {
        let Some(id) = self.id.clone() else {
            return Ok(());
        };
        let step = match action {
            ControlAction::Pause => SessionStep::Pause,
            ControlAction::Abort => SessionStep::Abort,
        };
        let r = self
            .ctx
            .api
            .repeatable(self.on_retry(step), |c| {
                let id = id.clone();
                async move {
                    match action {
                        ControlAction::Pause => c.pause_transfer_session(&id).await,
                        ControlAction::Abort => c.abort_transfer_session(&id).await,
                    }
                }
            })
            .await;
        let result = match r {
            Ok(()) => "ok".to_string(),
            Err(CallError::Failed(e)) if !transient(&e) => format!("refused: {e}"),
            Err(e) => return Err(e.into()),
        };
        self.ctx.record(Record::SessionControl {
            session: self.key.clone(),
            action,
            result,
        })?;
        Ok(())
    }

    /// A stall, and its remedy as [`super::session::SessionMachine::remedy`]
    /// decides.
    async fn on_stall(&mut self, stall: Stall) -> Result<Option<TaskEnd>, TaskEnd> {
        let idle = stall.idle.as_secs();
        let remedy = self.m.remedy(&stall, self.restoring);
        let action = match remedy {
            Remedy::Restart => "restart",
            Remedy::AbortAndReplace => "abort_and_replace",
            Remedy::Detach => "detach",
            Remedy::Escalate => match self.ctx.plan().policy.on_error {
                OnError::Pause => "pause",
                OnError::Abort => "abort",
                OnError::Continue => "abort_and_replace",
            },
        };
        self.ctx.record(Record::SessionStalled {
            session: self.key.clone(),
            idle_secs: idle,
            action: action.to_string(),
        })?;
        if let Some(id) = &self.id {
            self.ctx.emit(Event::SessionStalled {
                session: self.key.clone(),
                id: id.to_string(),
                idle_secs: idle,
            });
        }
        match remedy {
            Remedy::Restart => {
                self.call_start().await?;
                Ok(None)
            }
            Remedy::AbortAndReplace => {
                self.ctx.emit(Event::Warning {
                    message: format!(
                        "session {} made no progress for {idle}s and its master.log shows no \
                         restore running: ferry aborts it, and its accounts that never reached the \
                         restore go to a fresh session",
                        self.key
                    ),
                });
                let step = self.feed(Input::Want(Want::Abort));
                self.do_step(step).await
            }
            Remedy::Detach => {
                let doing = if self.m.want() == Want::Abort {
                    "aborting"
                } else {
                    "pausing"
                };
                self.feed(Input::Detached);
                Ok(Some(TaskEnd::Detached {
                    reason: format!(
                        "session {} made no progress for {idle}s while {doing}",
                        self.key
                    ),
                }))
            }
            Remedy::Escalate => {
                self.ctx.send(Msg::Stuck {
                    session: self.key.clone(),
                    reason: format!("session {} made no progress for {idle}s", self.key),
                });
                Ok(None)
            }
        }
    }
}
