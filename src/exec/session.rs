//! The per-session state machine: ferry's view of one transfer session
//! instance, from its create intent to its conclusion. Pure (no I/O, no
//! clock of its own): the driver (`driver`, `setup`, `monitor`, `conclude`)
//! feeds it [`Input`]s and carries out the [`Step`] it returns. Every
//! decision about a session is made here, in [`SessionMachine::on`] — what
//! the server says, what the run wants (run, pause, abort), and the stall
//! remedy ([`SessionMachine::remedy`]).
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
//! | `Paused`    | PAUSED on the server, or paused before it started; ferry stops watching (terminal for this run) |
//! | `Aborting`  | an abort was sent or seen (ABORTING)                               |
//! | `Ended`     | COMPLETED / ABORTED / FAILED: conclude from the full log           |
//! | `Finished`  | concluded (terminal)                                               |
//! | `Abandoned` | never started and never will be (terminal)                         |
//! | `Detached`  | ferry stopped watching a live session (stuck, or a pause could not be sent safely); the next `apply` reconciles it (terminal) |
//!
//! ## The table ([`SessionMachine::on`])
//!
//! Life: `Created` (Creating → Enqueuing), `EnqueuedAll` (Enqueuing →
//! Starting), `Started` (Starting → Running; once started, only a
//! sighting), `Abandoned` (only before the start), `Concluded` (once
//! started: Ended, or gone from the server while watched), `Detached` (a
//! live session; an Ended one is concluded instead) — each to its state.
//!
//! What the run wants — `Want(w)`, only ever raised (run < pause < abort):
//!
//! | ferry state \ wanted      | pause                                         | abort            |
//! |---------------------------|-----------------------------------------------|------------------|
//! | `Creating`                | StopWatching (never created: nothing to pause) | nothing (the driver abandons it) |
//! | `Enqueuing`               | → Paused, StopWatching (never started)        | → Aborting, Abort¹ |
//! | `Starting`                | nothing: the server's state decides            | → Aborting, Abort |
//! | `Running`                 | seen alive: → Pausing, Pause; else Start²      | → Aborting, Abort |
//! | `Pausing`                 | nothing                                        | → Aborting, Abort |
//! | `Aborting`, `Ended`, terminal | nothing                                    | nothing          |
//!
//! A state seen on the server — `Server(s)`; `want` is what the run wants:
//!
//! | ferry state \ server | PENDING | RUNNING | PAUSING | PAUSED | ABORTING | COMPLETED/ABORTED/FAILED |
//! |---|---|---|---|---|---|---|
//! | `Starting` | run: Start³ (Enqueue first if not every item is confirmed⁴); pause: → Detached, StopWatching; abort: → Aborting, Abort | → Running, then as `Running` | → Pausing | run: Start (resume); pause: → Paused; abort: → Aborting, Abort | → Aborting | → Ended, Conclude |
//! | `Running` | *unlisted* | Poll (pause wanted: as `Want`; abort wanted: → Aborting, Abort) | → Pausing | as `Starting` | → Aborting | → Ended, Conclude |
//! | `Pausing` | *unlisted* | Poll (graceful)⁵ | Poll | pause: → Paused, StopWatching; run: Start; abort: Abort | → Aborting | → Ended, Conclude |
//! | `Aborting` | Abort (it did not land) | Poll | Poll | Poll⁶ | Poll | → Ended, Conclude |
//! | `Enqueuing`, `Creating` | *unlisted* | *unlisted* | *unlisted* | *unlisted* | *unlisted* | → Ended, Conclude |
//! | `Ended`, terminal | absorbed | absorbed | absorbed | absorbed | absorbed | absorbed |
//!
//! An unknown server state name (the docs' `TRANSFER_INPROGRESS`) is Poll.
//!
//! 1. Never started: an abort turns the PENDING session FAILED so nobody
//!    can start it later; then it is concluded as usual.
//! 2. Not seen alive lately: prove it first (a start answers with the live
//!    pid, or restarts a stale session, which then pauses gracefully).
//!    Pausing a dead session turns it FAILED (docs/whm.md §2).
//! 3. The start intent was durable but the start never reached the server
//!    (killed, or the answer was lost before it acted). `start` is safe to
//!    repeat: a live session answers with its existing pid.
//! 4. A session recovered from the target's record: ferry cannot know how
//!    much was enqueued, so every item is enqueued again into the same
//!    session (WHM's duplicate refusal proves each one there), then started.
//! 5. A pause is graceful: RUNNING until the master notices the marker.
//! 6. An abort of a PAUSED session ends it at once; the next poll sees it.
//!
//! Any pair not listed is *unlisted*: [`Unlisted`] names the state and the
//! input, the driver reports it and keeps polling. Terminal states absorb
//! late inputs (a poll answer that arrives after the conclusion). The whole
//! table is checked pair by pair by `every_state_and_input` below.
//!
//! ## Liveness and stalls
//!
//! "Seen alive" means: new `master.log` lines or a state change, or
//! `start_transfer_session` answering with the pid already recorded (a live
//! master answers with its own pid; a stale session is restarted and gets a
//! new one). A session without progress for `stall_timeout` is *stalled*
//! ([`SessionMachine::on_tick`]); [`SessionMachine::remedy`] decides what to
//! do about it.

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

/// What happened, as the machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// The session id was recorded.
    Created,
    /// Every item is confirmed enqueued and the start intent is durable.
    EnqueuedAll,
    /// `start_transfer_session` answered with this pid.
    Started { pid: u32 },
    /// What the run wants (only ever raised).
    Want(Want),
    /// A state seen on the server.
    Server(&'a SessionState),
    /// Never started and never will be (the create's answer was lost or
    /// refused, an item was refused before the start).
    Abandoned,
    /// Every account's conclusion is recorded.
    Concluded,
    /// ferry stops watching a live session.
    Detached,
}

impl std::fmt::Display for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Created => f.write_str("created"),
            Input::EnqueuedAll => f.write_str("enqueued_all"),
            Input::Started { pid } => write!(f, "started (pid {pid})"),
            Input::Want(w) => write!(f, "want {w:?}"),
            Input::Server(s) => write!(f, "server state {s}"),
            Input::Abandoned => f.write_str("abandoned"),
            Input::Concluded => f.write_str("concluded"),
            Input::Detached => f.write_str("detached"),
        }
    }
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep polling.
    Poll,
    /// Call `start_transfer_session` (start, resume or restart).
    Start,
    /// Enqueue every item again into the same session, then start it (see
    /// note 4 of the table).
    Enqueue,
    /// Call `pause_transfer_session`.
    Pause,
    /// Call `abort_transfer_session`.
    Abort,
    /// The session ended: fetch the full log and conclude every account.
    Conclude,
    /// Stop watching: paused, or detached.
    StopWatching,
    /// Nothing (the input was absorbed, or changes nothing to do).
    Nothing,
}

/// A (state, input) pair the table does not list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session {session}: unexpected `{input}` while {state:?}")]
pub struct Unlisted {
    pub session: String,
    pub state: SState,
    pub input: String,
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

    /// Whether every item of the session is confirmed enqueued (a resumed
    /// session says so from its journal; a recovered one is not).
    pub fn set_fully_enqueued(&mut self, yes: bool) {
        self.fully_enqueued = yes;
    }

    /// The transition table (see the module doc).
    pub fn on(&mut self, input: Input<'_>, now: Instant) -> Result<Step, Unlisted> {
        use SState as S;
        let absorbed = self.state.is_terminal() || self.state == S::Ended;
        let step = match input {
            Input::Created => match self.state {
                S::Creating => self.go(S::Enqueuing, Step::Nothing),
                s if s.is_terminal() => Step::Nothing,
                _ => return Err(self.unlisted(input)),
            },
            Input::EnqueuedAll => match self.state {
                S::Enqueuing => self.go(S::Starting, Step::Nothing),
                s if s.is_terminal() => Step::Nothing,
                _ => return Err(self.unlisted(input)),
            },
            Input::Started { .. } if self.state.is_terminal() => Step::Nothing,
            Input::Started { .. } if matches!(self.state, S::Creating | S::Enqueuing) => {
                return Err(self.unlisted(input));
            }
            Input::Started { pid } => {
                let same = self.pid == Some(pid);
                self.pid = Some(pid);
                self.last_alive = Some(now);
                if !same {
                    // A fresh master: give it a full stall window.
                    self.progress(now);
                }
                if self.state == S::Starting {
                    self.state = S::Running;
                }
                Step::Nothing
            }
            Input::Want(w) if w <= self.want => Step::Nothing,
            Input::Want(w) => {
                self.want = w;
                if absorbed {
                    Step::Nothing
                } else {
                    self.wanted(now)
                }
            }
            Input::Server(_) if absorbed => Step::Nothing,
            Input::Server(seen) => self.seen(seen, now).ok_or_else(|| self.unlisted(input))?,
            Input::Abandoned | Input::Detached | Input::Concluded if self.state.is_terminal() => {
                Step::Nothing
            }
            // Only a session that was never started is abandoned.
            Input::Abandoned => match self.state {
                S::Creating | S::Enqueuing => self.go(S::Abandoned, Step::Nothing),
                _ => return Err(self.unlisted(input)),
            },
            // An ended session is concluded, not left.
            Input::Detached => match self.state {
                S::Ended => Step::Nothing,
                _ => self.go(S::Detached, Step::StopWatching),
            },
            // Ended, or gone from the server while watched.
            Input::Concluded => match self.state {
                S::Creating | S::Enqueuing => return Err(self.unlisted(input)),
                _ => self.go(S::Finished, Step::Nothing),
            },
        };
        Ok(step)
    }

    fn go(&mut self, to: SState, step: Step) -> Step {
        self.state = to;
        step
    }

    /// The `Want` table, for a machine that is not absorbed.
    fn wanted(&mut self, now: Instant) -> Step {
        use SState as S;
        match (self.state, self.want) {
            (S::Creating, Want::Pause) => Step::StopWatching,
            (S::Enqueuing, Want::Pause) => self.go(S::Paused, Step::StopWatching),
            (S::Running, Want::Pause) => self.pause_if_alive(now),
            (S::Enqueuing | S::Starting | S::Running | S::Pausing, Want::Abort) => {
                self.go(S::Aborting, Step::Abort)
            }
            _ => Step::Nothing,
        }
    }

    /// Pause a session seen alive lately; otherwise prove it alive first.
    fn pause_if_alive(&mut self, now: Instant) -> Step {
        if self.seen_alive(now) {
            self.go(SState::Pausing, Step::Pause)
        } else {
            Step::Start
        }
    }

    /// The `Server` table, for a machine that is not absorbed; `None` for an
    /// unlisted pair.
    fn seen(&mut self, seen: &SessionState, now: Instant) -> Option<Step> {
        use SState as S;
        use SessionState as W;
        let step = match (self.state, seen) {
            (_, W::Completed | W::Aborted | W::Failed) => self.go(S::Ended, Step::Conclude),
            (S::Creating | S::Enqueuing, _) => return None,
            (S::Starting, W::Pending) => match self.want {
                Want::Run if !self.fully_enqueued => self.go(S::Enqueuing, Step::Enqueue),
                Want::Run => Step::Start,
                Want::Pause => self.go(S::Detached, Step::StopWatching),
                Want::Abort => self.go(S::Aborting, Step::Abort),
            },
            (S::Aborting, W::Pending) => Step::Abort,
            (_, W::Pending) => return None,
            (S::Starting | S::Running, W::Running) => {
                self.state = S::Running;
                match self.want {
                    Want::Run => Step::Poll,
                    Want::Pause => self.pause_if_alive(now),
                    Want::Abort => self.go(S::Aborting, Step::Abort),
                }
            }
            (S::Starting | S::Running | S::Pausing, W::Pausing) => self.go(S::Pausing, Step::Poll),
            (S::Starting | S::Running | S::Pausing, W::Paused) => match self.want {
                Want::Run => self.go(S::Starting, Step::Start),
                Want::Pause => self.go(S::Paused, Step::StopWatching),
                Want::Abort => self.go(S::Aborting, Step::Abort),
            },
            (S::Pausing, W::Running) => Step::Poll,
            (S::Aborting, _) => Step::Poll,
            (_, W::Aborting) => self.go(S::Aborting, Step::Poll),
            (_, W::Other(_)) => Step::Poll,
            _ => return None,
        };
        Some(step)
    }

    fn unlisted(&self, input: Input<'_>) -> Unlisted {
        Unlisted {
            session: self.key.clone(),
            state: self.state,
            input: input.to_string(),
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

    /// Whether the session was seen alive within the alive window.
    pub fn seen_alive(&self, now: Instant) -> bool {
        self.last_alive
            .is_some_and(|t| now.saturating_duration_since(t) <= self.alive_window)
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
}

#[cfg(test)]
mod tests;
