//! The per-session state machine: ferry's view of one transfer session
//! instance, from its create intent to its conclusion. Pure (no I/O, no
//! clock of its own): the driver in [`super::task`] feeds it events and
//! carries out the [`Step`] it returns.
//!
//! ## States
//!
//! | state       | meaning                                                            |
//! |-------------|--------------------------------------------------------------------|
//! | `Creating`  | create intent durable; `create_remote_root_transfer_session` sent   |
//! | `Enqueuing` | id recorded; items being enqueued (session PENDING, never started) |
//! | `Starting`  | start intent durable; `start_transfer_session` sent                |
//! | `Running`   | the server runs it (RUNNING)                                       |
//! | `Pausing`   | a pause was sent or seen (PAUSING): workers finish their items     |
//! | `Paused`    | PAUSED on the server; ferry stops watching (terminal for this run) |
//! | `Aborting`  | an abort was sent or seen (ABORTING)                               |
//! | `Ended`     | COMPLETED / ABORTED / FAILED: conclude from the full log           |
//! | `Finished`  | concluded (terminal)                                               |
//! | `Abandoned` | never started and never will be (terminal)                         |
//! | `Detached`  | ferry stopped watching a live session (stuck, or a pause could not
//! |             | be sent safely); the next `apply` reconciles it (terminal)          |
//!
//! ## Transitions on a state seen on the server ([`SessionMachine::on_server_state`])
//!
//! `want` is what the run wants of the session: run it, pause it, abort it.
//!
//! | ferry state \ server | PENDING      | RUNNING                    | PAUSING  | PAUSED                            | ABORTING | COMPLETED/ABORTED/FAILED |
//! |----------------------|--------------|----------------------------|----------|-----------------------------------|----------|--------------------------|
//! | `Starting`           | run: Start again¹; pause: StopWatching; abort: Abort | Running                    | Pausing  | run: Start (resume); pause: Paused | Aborting | Ended → Conclude         |
//! | `Running`            | *unlisted*   | Running (pause wanted: Pause) | Pausing | run: Start (resume); pause: Paused | Aborting | Ended → Conclude      |
//! | `Pausing`            | *unlisted*   | Pausing (wait)²            | Pausing  | Paused → StopWatching             | Aborting | Ended → Conclude         |
//! | `Aborting`           | *unlisted*   | Aborting (wait)            | Aborting | Aborting (wait)³                  | Aborting | Ended → Conclude         |
//! | `Ended`/`Finished`/`Abandoned`/`Paused`/`Detached` | absorbed | absorbed | absorbed | absorbed | absorbed | absorbed |
//!
//! 1. The start intent was durable but the start never reached the server
//!    (killed, or the answer was lost before it acted). `start` is safe to
//!    repeat: a live session answers with its existing pid.
//! 2. A pause is graceful: RUNNING until the master notices the marker.
//! 3. An abort of a PAUSED session ends it at once; the next poll sees it.
//!
//! Any other (state, server state) pair is *unlisted*: [`Unlisted`] names
//! both, and the driver reports it and keeps polling. Terminal states
//! absorb late events (a poll answer that arrives after the conclusion).
//!
//! ## Liveness and stalls
//!
//! "Seen alive" means: new `master.log` lines or a state change, or
//! `start_transfer_session` answering with the pid already recorded (a live
//! master answers with its own pid; a stale session is restarted and gets a
//! new one). A session without progress for `stall_timeout` is *stalled*
//! ([`SessionMachine::on_tick`]); the first remedy is always a start (safe
//! both ways). Pausing requires a recent sighting: pausing a dead session
//! turns it FAILED (whm-transfer-api §2).

use std::time::Duration;

use tokio::time::Instant;

use crate::client::SessionState;

/// ferry's view of a session instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SState {
    Creating,
    Enqueuing,
    Starting,
    Running,
    Pausing,
    Paused,
    Aborting,
    Ended,
    Finished,
    Abandoned,
    Detached,
}

impl SState {
    /// Nothing more happens to the session in this run.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SState::Finished | SState::Abandoned | SState::Paused | SState::Detached
        )
    }
}

/// What the run wants of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Want {
    #[default]
    Run,
    Pause,
    Abort,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep polling.
    Poll,
    /// Call `start_transfer_session` (start, resume or restart).
    Start,
    /// Enqueue every item again into the same session, then start it: a
    /// session recovered from the target's record, still PENDING, of which
    /// ferry cannot know how much was enqueued (WHM's duplicate refusal
    /// proves each item that is there).
    Enqueue,
    /// Call `pause_transfer_session`.
    Pause,
    /// Call `abort_transfer_session`.
    Abort,
    /// The session ended: fetch the full log and conclude every account.
    Conclude,
    /// Stop watching: paused, or detached.
    StopWatching,
    /// Nothing (the event was absorbed).
    Nothing,
}

/// A (state, event) pair the table does not list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session {session}: unexpected `{event}` while {state:?}")]
pub struct Unlisted {
    pub session: String,
    pub state: SState,
    pub event: String,
}

/// A stall and what the machine knows about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub idle: Duration,
    /// Consecutive stalls without progress in between (1 = the first).
    pub strikes: u32,
    /// The log could be read during the stall window, so "no progress" is
    /// evidence, not merely "no news" (a blocking log fetch gives no news).
    pub evidence: bool,
}

/// The state machine of one session instance.
#[derive(Debug, Clone)]
pub struct SessionMachine {
    key: String,
    state: SState,
    want: Want,
    pid: Option<u32>,
    last_progress: Instant,
    last_alive: Option<Instant>,
    /// How recent a sighting must be for a pause to be safe.
    alive_window: Duration,
    strikes: u32,
    log_read_since_progress: bool,
    /// Every item is confirmed enqueued (a recovered session is not).
    fully_enqueued: bool,
}

/// What to do about a stall ([`SessionMachine::remedy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// `start_transfer_session`: safe both ways (a live master answers with
    /// its pid; a stale session is restarted and carries on).
    Restart,
    /// Abort this session and carry its accounts that never reached the
    /// RESTORE queue on in a fresh one: it is stuck, and its `master.log`
    /// shows no restore running in it (an orphan of a crash blocks its
    /// restore workers forever; restarting cannot help).
    AbortAndReplace,
    /// Stuck with no such evidence (the log cannot be read, or a restore may
    /// be running): the run's `on_error` policy decides.
    Escalate,
    /// Stuck while pausing or aborting: stop watching; the next `apply`
    /// reconciles it.
    Detach,
}

impl SessionMachine {
    /// A machine in `state` (a new instance starts `Creating`; a resumed one
    /// where the journal left it). `alive_window`: how recent a sighting
    /// must be for a pause to be sent without first proving the session
    /// alive with a start.
    pub fn new(
        key: impl Into<String>,
        state: SState,
        now: Instant,
        alive_window: Duration,
    ) -> Self {
        SessionMachine {
            key: key.into(),
            state,
            want: Want::Run,
            pid: None,
            last_progress: now,
            last_alive: None,
            alive_window,
            strikes: 0,
            log_read_since_progress: false,
            fully_enqueued: true,
        }
    }

    /// Whether every item of the session is confirmed enqueued (a resumed
    /// `Starting` session says so from its journal; a recovered one is not).
    pub fn set_fully_enqueued(&mut self, yes: bool) {
        self.fully_enqueued = yes;
    }

    /// The remedy for `stall`. `restoring`: what the latest readable
    /// `master.log` says — `Some(true)` a restore may be running (one began
    /// under the current master and has no final line), `Some(false)` none
    /// is, `None` the log could not be read.
    ///
    /// | stall                                        | remedy            |
    /// |----------------------------------------------|-------------------|
    /// | pausing or aborting, 2nd strike or later     | `Detach`          |
    /// | not stuck yet (see below)                    | `Restart`         |
    /// | stuck, log read, no restore running          | `AbortAndReplace` |
    /// | stuck, otherwise                             | `Escalate`        |
    ///
    /// Stuck: two strikes in a row with the log read in between (no
    /// progress is evidence), or five strikes (a blocking log gives none).
    pub fn remedy(&self, stall: &Stall, restoring: Option<bool>) -> Remedy {
        let waiting = matches!(self.state, SState::Pausing | SState::Aborting);
        let stuck = (stall.strikes >= 2 && stall.evidence) || stall.strikes >= 5;
        if waiting && stall.strikes >= 2 {
            Remedy::Detach
        } else if !stuck {
            Remedy::Restart
        } else if restoring == Some(false) {
            Remedy::AbortAndReplace
        } else {
            Remedy::Escalate
        }
    }

    pub fn state(&self) -> SState {
        self.state
    }
    pub fn want(&self) -> Want {
        self.want
    }
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
    pub fn set_pid(&mut self, pid: Option<u32>) {
        self.pid = pid;
    }

    fn unlisted(&self, event: impl Into<String>) -> Unlisted {
        Unlisted {
            session: self.key.clone(),
            state: self.state,
            event: event.into(),
        }
    }

    /// The id was recorded.
    pub fn on_created(&mut self) -> Result<(), Unlisted> {
        match self.state {
            SState::Creating => {
                self.state = SState::Enqueuing;
                Ok(())
            }
            s if s.is_terminal() => Ok(()),
            _ => Err(self.unlisted("created")),
        }
    }

    /// The create's answer was lost, or it was refused: never started.
    pub fn on_abandoned(&mut self) {
        if !self.state.is_terminal() {
            self.state = SState::Abandoned;
        }
    }

    /// Every item is confirmed enqueued and the start intent is durable.
    pub fn on_enqueued_all(&mut self) -> Result<(), Unlisted> {
        match self.state {
            SState::Enqueuing => {
                self.state = SState::Starting;
                Ok(())
            }
            s if s.is_terminal() => Ok(()),
            _ => Err(self.unlisted("enqueued_all")),
        }
    }

    /// `start_transfer_session` answered with `pid`. The same pid as before
    /// proves a live master; a new one means a (re)start.
    pub fn on_started(&mut self, pid: u32, now: Instant) {
        if self.state.is_terminal() {
            return;
        }
        let same = self.pid == Some(pid);
        self.pid = Some(pid);
        self.last_alive = Some(now);
        if !same {
            // A fresh master: give it a full stall window.
            self.progress(now);
        }
        if self.state == SState::Starting {
            self.state = SState::Running;
        }
    }

    /// New log lines or a state change: the session is alive and moving.
    pub fn on_progress(&mut self, now: Instant) {
        if !self.state.is_terminal() {
            self.progress(now);
            self.last_alive = Some(now);
        }
    }

    fn progress(&mut self, now: Instant) {
        self.last_progress = now;
        self.strikes = 0;
        self.log_read_since_progress = false;
    }

    /// The log was read (whether or not it had anything new).
    pub fn on_log_read(&mut self) {
        self.log_read_since_progress = true;
    }

    /// The run wants the session run, paused or aborted. Returns the call to
    /// make now, if any.
    pub fn on_want(&mut self, want: Want, now: Instant) -> Step {
        if want <= self.want {
            return Step::Nothing;
        }
        self.want = self.want.max(want);
        match (self.state, self.want) {
            (s, _) if s.is_terminal() || s == SState::Ended => Step::Nothing,
            (SState::Running, Want::Pause) => {
                if self.seen_alive(now) {
                    self.state = SState::Pausing;
                    Step::Pause
                } else {
                    // Not seen alive lately: prove it first (a start answers
                    // with the live pid, or restarts a stale session, which
                    // then pauses gracefully). See the module doc.
                    Step::Start
                }
            }
            (SState::Running | SState::Pausing | SState::Starting, Want::Abort) => {
                self.state = SState::Aborting;
                Step::Abort
            }
            // Never started: nothing runs, nothing to pause. An abort turns
            // the PENDING session FAILED so nobody can start it later.
            (SState::Enqueuing, Want::Abort) => {
                self.state = SState::Aborting;
                Step::Abort
            }
            (SState::Creating | SState::Enqueuing, Want::Pause) => Step::StopWatching,
            _ => Step::Nothing,
        }
    }

    /// Whether the session was seen alive within the alive window.
    pub fn seen_alive(&self, now: Instant) -> bool {
        self.last_alive
            .is_some_and(|t| now.saturating_duration_since(t) <= self.alive_window)
    }

    /// A state seen on the server. See the transition table in the module
    /// doc.
    pub fn on_server_state(&mut self, seen: &SessionState, now: Instant) -> Result<Step, Unlisted> {
        use SState as S;
        use SessionState as W;
        if self.state.is_terminal() || self.state == S::Ended {
            return Ok(Step::Nothing);
        }
        let step = match (self.state, seen) {
            (_, W::Completed | W::Aborted | W::Failed) => {
                self.state = S::Ended;
                Step::Conclude
            }
            // The start intent was durable but the start never took effect.
            (S::Starting, W::Pending) => match self.want {
                Want::Run if !self.fully_enqueued => {
                    self.state = S::Enqueuing;
                    Step::Enqueue
                }
                Want::Run => Step::Start,
                // Never started: nothing to pause (the next apply starts it).
                Want::Pause => {
                    self.state = S::Detached;
                    Step::StopWatching
                }
                // Turn it FAILED so nobody starts it later.
                Want::Abort => {
                    self.state = S::Aborting;
                    Step::Abort
                }
            },
            (S::Starting | S::Running, W::Running) => {
                self.state = S::Running;
                if self.want == Want::Pause {
                    if self.seen_alive(now) {
                        self.state = S::Pausing;
                        Step::Pause
                    } else {
                        Step::Start
                    }
                } else if self.want == Want::Abort {
                    self.state = S::Aborting;
                    Step::Abort
                } else {
                    Step::Poll
                }
            }
            (S::Starting | S::Running | S::Pausing, W::Pausing) => {
                self.state = S::Pausing;
                Step::Poll
            }
            (S::Starting | S::Running | S::Pausing, W::Paused) => match self.want {
                Want::Run => {
                    self.state = S::Starting;
                    Step::Start
                }
                Want::Pause => {
                    self.state = S::Paused;
                    Step::StopWatching
                }
                Want::Abort => {
                    self.state = S::Aborting;
                    Step::Abort
                }
            },
            (S::Pausing, W::Running) => Step::Poll,
            (S::Aborting, W::Running | W::Pausing | W::Paused | W::Aborting) => Step::Poll,
            (_, W::Aborting) => {
                self.state = S::Aborting;
                Step::Poll
            }
            // An abort of a never-started session turns it FAILED at once;
            // still PENDING means the abort did not land: send it again.
            (S::Aborting, W::Pending) => Step::Abort,
            (_, W::Other(_)) => Step::Poll,
            (state, seen) => {
                return Err(Unlisted {
                    session: self.key.clone(),
                    state,
                    event: format!("server state {seen}"),
                });
            }
        };
        Ok(step)
    }

    /// The conclusion is recorded.
    pub fn on_concluded(&mut self) {
        self.state = SState::Finished;
    }

    /// ferry stops watching a live session (stuck, or pause not sendable).
    pub fn on_detached(&mut self) {
        if !self.state.is_terminal() {
            self.state = SState::Detached;
        }
    }

    /// Time passes: a stall when nothing moved for `stall_timeout`. Each
    /// returned stall restarts the window (the driver applies a remedy).
    pub fn on_tick(&mut self, now: Instant, stall_timeout: Duration) -> Option<Stall> {
        if !matches!(
            self.state,
            SState::Running | SState::Pausing | SState::Aborting | SState::Starting
        ) {
            return None;
        }
        let idle = now.saturating_duration_since(self.last_progress);
        if idle < stall_timeout {
            return None;
        }
        self.strikes += 1;
        let evidence = self.log_read_since_progress;
        // Next window starts now, but keep counting strikes until progress.
        self.last_progress = now;
        self.log_read_since_progress = false;
        Some(Stall {
            idle,
            strikes: self.strikes,
            evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    fn running(now: Instant) -> SessionMachine {
        let mut m = SessionMachine::new("old1/s1", SState::Creating, now, W);
        m.on_created().unwrap();
        m.on_enqueued_all().unwrap();
        m.on_started(100, now);
        assert_eq!(m.state(), SState::Running);
        m
    }

    #[test]
    fn normal_life() {
        let now = Instant::now();
        let mut m = running(now);
        assert_eq!(
            m.on_server_state(&SessionState::Running, now),
            Ok(Step::Poll)
        );
        assert_eq!(
            m.on_server_state(&SessionState::Completed, now),
            Ok(Step::Conclude)
        );
        assert_eq!(m.state(), SState::Ended);
        m.on_concluded();
        // Terminal states absorb late events.
        assert_eq!(
            m.on_server_state(&SessionState::Running, now),
            Ok(Step::Nothing)
        );
        assert_eq!(m.on_want(Want::Abort, now), Step::Nothing);
        assert_eq!(m.state(), SState::Finished);
    }

    #[test]
    fn start_intent_without_effect_starts_again() {
        let now = Instant::now();
        let mut m = SessionMachine::new("k", SState::Starting, now, W);
        assert_eq!(
            m.on_server_state(&SessionState::Pending, now),
            Ok(Step::Start)
        );
    }

    #[test]
    fn paused_session_is_resumed_unless_the_run_pauses() {
        let now = Instant::now();
        let mut m = SessionMachine::new("k", SState::Starting, now, W);
        assert_eq!(
            m.on_server_state(&SessionState::Paused, now),
            Ok(Step::Start)
        );
        let mut m = SessionMachine::new("k", SState::Starting, now, W);
        assert_eq!(m.on_want(Want::Pause, now), Step::Nothing);
        assert_eq!(
            m.on_server_state(&SessionState::Paused, now),
            Ok(Step::StopWatching)
        );
        assert_eq!(m.state(), SState::Paused);
    }

    #[test]
    fn never_pause_a_session_not_seen_alive() {
        let t0 = Instant::now();
        let mut m = running(t0);
        let later = t0 + Duration::from_secs(600);
        // Last sighting (the start) is 10 min old: prove it alive first.
        assert_eq!(m.on_want(Want::Pause, later), Step::Start);
        assert_eq!(m.state(), SState::Running);
        // The start answered with the same pid: alive, pause now.
        m.on_started(100, later);
        assert_eq!(
            m.on_server_state(&SessionState::Running, later),
            Ok(Step::Pause)
        );
        assert_eq!(m.state(), SState::Pausing);
        assert_eq!(
            m.on_server_state(&SessionState::Paused, later),
            Ok(Step::StopWatching)
        );
    }

    #[test]
    fn pause_of_a_live_session_is_sent_at_once() {
        let t0 = Instant::now();
        let mut m = running(t0);
        m.on_progress(t0 + Duration::from_secs(1));
        assert_eq!(
            m.on_want(Want::Pause, t0 + Duration::from_secs(2)),
            Step::Pause
        );
        // Abort overrides a pause.
        assert_eq!(
            m.on_want(Want::Abort, t0 + Duration::from_secs(3)),
            Step::Abort
        );
        assert_eq!(m.state(), SState::Aborting);
        assert_eq!(
            m.on_server_state(&SessionState::Aborting, t0),
            Ok(Step::Poll)
        );
        assert_eq!(
            m.on_server_state(&SessionState::Aborted, t0),
            Ok(Step::Conclude)
        );
    }

    #[test]
    fn unstarted_sessions_on_pause_and_abort() {
        let now = Instant::now();
        let mut m = SessionMachine::new("k", SState::Enqueuing, now, W);
        assert_eq!(m.on_want(Want::Pause, now), Step::StopWatching);
        let mut m = SessionMachine::new("k", SState::Enqueuing, now, W);
        assert_eq!(m.on_want(Want::Abort, now), Step::Abort);
        assert_eq!(
            m.on_server_state(&SessionState::Failed, now),
            Ok(Step::Conclude)
        );
    }

    #[test]
    fn unlisted_transition_names_state_and_event() {
        let now = Instant::now();
        let mut m = running(now);
        let err = m.on_server_state(&SessionState::Pending, now).unwrap_err();
        assert_eq!(err.state, SState::Running);
        assert!(err.to_string().contains("PENDING"), "{err}");
    }

    #[test]
    fn stalls_count_strikes_until_progress() {
        let t0 = Instant::now();
        let mut m = running(t0);
        let st = Duration::from_secs(30);
        assert_eq!(m.on_tick(t0 + Duration::from_secs(10), st), None);
        let s1 = m.on_tick(t0 + Duration::from_secs(31), st).unwrap();
        assert_eq!((s1.strikes, s1.evidence), (1, false));
        m.on_log_read();
        let s2 = m.on_tick(t0 + Duration::from_secs(62), st).unwrap();
        assert_eq!((s2.strikes, s2.evidence), (2, true));
        m.on_progress(t0 + Duration::from_secs(63));
        let s3 = m.on_tick(t0 + Duration::from_secs(100), st).unwrap();
        assert_eq!(s3.strikes, 1);
        // A restarted stale session (new pid) gets a fresh window.
        m.on_started(200, t0 + Duration::from_secs(100));
        assert_eq!(m.on_tick(t0 + Duration::from_secs(110), st), None);
    }
}
