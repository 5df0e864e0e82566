//! Session states and what `start`, `pause` and `abort` do to them.
//!
//! # Transition table (docs/whm.md §2.4; `Processor.pm::start`,
//! `Session.pm::start_pause/start_abort/can_change_state`)
//!
//! "alive": the session's master process runs; "stale": the state says it
//! runs but nothing does (after `crash_at`).
//!
//! | state \ call       | start                                   | pause                 | abort                                  |
//! |--------------------|-----------------------------------------|-----------------------|----------------------------------------|
//! | PENDING            | → RUNNING, new master, its pid          | refused               | → FAILED (offline `fail` line)         |
//! | RUNNING alive      | OK, the existing pid                    | → PAUSING (`.pause`)  | → ABORTING; TERM → items `Aborted.`; → ABORTED |
//! | RUNNING stale      | → RUNNING, new master, fresh `start`     | → FAILED              | → FAILED                               |
//! | PAUSING alive      | OK, the existing pid (pause goes on)    | refused               | → ABORTING → ABORTED                   |
//! | PAUSING stale      | refused: "… is pausing."                | → FAILED              | → ABORTED (offline `abort` line)       |
//! | PAUSED             | resume → RUNNING, `resume` line         | refused               | → ABORTED (offline `abort` line)       |
//! | ABORTING alive     | OK, the existing pid                    | refused               | re-signal, stays ABORTING              |
//! | ABORTING stale     | refused: "… has been aborted."          | refused               | → FAILED                               |
//! | ABORTED            | refused: "… has been aborted."          | refused               | refused                                |
//! | COMPLETED / FAILED | a master runs anyway: pending items run (remote work fails: credentials were nulled), state stays, ends COMPLETED | refused | refused |
//!
//! The table is the documentation's summary; the code decides the edge
//! cases and whm-sim follows the code: an aborted session ends ABORTED only
//! if some worker exited ABORTED (its queue still had work when it saw the
//! marker). So aborting a PAUSING session whose last item is in flight ends
//! PAUSED (the idle RESTORE worker already exited PAUSED), with the abort
//! marker left behind: a later start is refused as aborted.
//!
//! Refusals: pause/abort answer `The system failed to “pause”|“abort” the
//! transfer session.`; start answers `The system failed to start the transfer
//! session “ID” because of an error: <err>`. A master that finishes writes
//! `abort` (a worker exited ABORTED and the session is aborting), `pause`
//! (a worker exited PAUSED and the session is pausing) or `complete`.

use super::engine::World;

/// Session states (`SessionBase.pm %SESSION_STATES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionState {
    Pending,
    Running,
    Pausing,
    Aborting,
    Paused,
    Completed,
    Aborted,
    Failed,
}

impl SessionState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SessionState::Pending => "PENDING",
            SessionState::Running => "RUNNING",
            SessionState::Pausing => "PAUSING",
            SessionState::Aborting => "ABORTING",
            SessionState::Paused => "PAUSED",
            SessionState::Completed => "COMPLETED",
            SessionState::Aborted => "ABORTED",
            SessionState::Failed => "FAILED",
        }
    }

    /// `Session.pm::can_change_state`.
    pub(crate) fn can_change_to(self, to: SessionState) -> bool {
        use SessionState::*;
        if self == to || to == Failed {
            return true;
        }
        match to {
            Aborted => self == Aborting,
            Completed => self == Running,
            Paused => self == Pausing,
            Aborting => matches!(self, Pending | Running | Pausing | Paused),
            Pausing => self == Running,
            Running => matches!(self, Paused | Pending),
            _ => false,
        }
    }
}

/// A marker file pair: `.pause`/`pause`, `.abort`/`abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    None,
    /// The dot file: pausing / aborting.
    Active,
    /// Renamed: paused / aborted.
    Done,
}

/// How `start_transfer_session` ended.
#[derive(Debug)]
pub(crate) enum StartResult {
    Pid(u32),
    Refused(String),
}

impl World {
    /// `start_transfer_session` (`Processor.pm::start`).
    pub(crate) fn on_start(&mut self, s: usize) -> StartResult {
        let sess = &self.sessions[s];
        if let Some(m) = &sess.master {
            return StartResult::Pid(m.pid);
        }
        let id = sess.id.clone();
        if sess.is_aborted() {
            let xid = self.xid();
            return StartResult::Refused(format!(
                "{xid} The processor failed to start because the session “{id}” has been aborted."
            ));
        }
        let mut resume = false;
        if sess.is_paused() {
            // `unpause`: only from PAUSED; removes `pause` (not `.pause`).
            let unpaused = sess.state.can_change_to(SessionState::Running)
                && sess.pause_marker == Marker::Done;
            if !unpaused {
                let xid = self.xid();
                return StartResult::Refused(format!(
                    "{xid} The processor failed to start because the session “{id}” is pausing."
                ));
            }
            let sess = &mut self.sessions[s];
            sess.pause_marker = Marker::None;
            sess.state = SessionState::Running;
            resume = true;
        } else if sess.state.can_change_to(SessionState::Running) {
            self.sessions[s].state = SessionState::Running;
        }
        // COMPLETED/FAILED: `Session::start` refuses silently and the master
        // is forked anyway.
        StartResult::Pid(self.spawn_master(s, resume))
    }

    /// `pause_transfer_session` (`Session.pm::start_pause`); false: refused.
    pub(crate) fn on_pause(&mut self, s: usize) -> bool {
        let sess = &self.sessions[s];
        if !sess.state.can_change_to(SessionState::Pausing) {
            return false;
        }
        if !sess.alive() {
            self.mark_failed(s);
            return true;
        }
        if sess.is_paused() {
            return false;
        }
        let sess = &mut self.sessions[s];
        sess.pause_marker = Marker::Active;
        sess.state = SessionState::Pausing;
        let pid = sess.pid.unwrap_or(0);
        // the master notices `.pause` within its 0.25 s loop
        self.master_line(s, (pid, 0), "pausing", None, None, None);
        self.pump();
        true
    }

    /// `abort_transfer_session` (`Session.pm::start_abort`); false: refused.
    pub(crate) fn on_abort(&mut self, s: usize) -> bool {
        let sess = &self.sessions[s];
        if !sess.state.can_change_to(SessionState::Aborting) {
            return false;
        }
        let alive = sess.alive();
        if alive {
            self.signal_abort(s);
        } else if !sess.is_paused() {
            self.mark_failed(s);
            return true;
        }
        let first = self.sessions[s].abort_marker == Marker::None;
        let sess = &mut self.sessions[s];
        sess.abort_marker = Marker::Active;
        sess.state = SessionState::Aborting;
        if !alive {
            self.mark_aborted(s);
        } else {
            if first {
                let pid = self.sessions[s].pid.unwrap_or(0);
                self.master_line(s, (pid, 0), "aborting", None, None, None);
            }
            self.pump();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::SessionState::*;

    #[test]
    fn can_change_state_matches_the_source() {
        // same state and FAILED always
        for s in [
            Pending, Running, Pausing, Aborting, Paused, Completed, Aborted, Failed,
        ] {
            assert!(s.can_change_to(s));
            assert!(s.can_change_to(Failed));
        }
        assert!(Aborting.can_change_to(Aborted));
        assert!(!Running.can_change_to(Aborted));
        assert!(Running.can_change_to(Completed));
        assert!(!Aborting.can_change_to(Completed));
        assert!(Pausing.can_change_to(Paused));
        for s in [Pending, Running, Pausing, Paused] {
            assert!(s.can_change_to(Aborting));
        }
        assert!(!Completed.can_change_to(Aborting));
        assert!(Running.can_change_to(Pausing));
        assert!(!Paused.can_change_to(Pausing));
        assert!(Paused.can_change_to(Running) && Pending.can_change_to(Running));
        assert!(!Completed.can_change_to(Running) && !Pausing.can_change_to(Running));
    }
}
