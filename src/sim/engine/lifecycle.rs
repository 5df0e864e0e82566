//! A session's processes: starting a master, its end (`complete`, `pause`,
//! `abort`), the state changes with no processor running, abort's TERM,
//! `crash_at`, and WHM's maintenance.

use super::workers::release_slot_and_mutex;
use super::*;

impl World {
    /// All workers have exited: the end of `_process_child`.
    pub(super) fn finish_master(&mut self, s: usize) {
        let Some(m) = self.sessions[s].master.as_ref() else {
            return;
        };
        let pid = m.pid;
        let exits: Vec<Exit> = m
            .transfer
            .iter()
            .chain(&m.restore)
            .filter_map(|w| w.exited)
            .collect();
        let has_aborted = exits.contains(&Exit::Aborted);
        let has_paused = exits.contains(&Exit::Paused);
        let sess = &self.sessions[s];
        if has_aborted && sess.is_aborted() {
            self.master_line(s, (pid, 0), "abort", None, None, None);
            self.mark_aborted(s);
            self.sessions[s].master = None;
        } else if has_paused && sess.is_paused() {
            self.master_line(s, (pid, 0), "pause", None, None, None);
            self.sessions[s].master = None;
            let sess = &mut self.sessions[s];
            sess.pause_marker = Marker::Done;
            sess.state = SessionState::Paused;
        } else {
            self.master_line(s, (pid, 0), "complete", None, None, None);
            self.sessions[s].master = None;
            self.mark_completed(s);
            self.sessions[s].state = SessionState::Completed;
            self.sessions[s].finished_at = Some(self.now);
        }
    }

    /// `mark_session_completed`: markers removed, passwords nulled, logs renamed.
    pub(crate) fn mark_completed(&mut self, s: usize) {
        let sess = &mut self.sessions[s];
        sess.pause_marker = Marker::None;
        if sess.abort_marker == Marker::Active {
            sess.abort_marker = Marker::None;
        }
        sess.credentials_cleared = true;
        sess.options.retain(|k, _| !k.contains("pass"));
        sess.logs.complete_master();
    }

    /// `mark_session_aborted`.
    pub(crate) fn mark_aborted(&mut self, s: usize) {
        if !self.sessions[s].alive() {
            self.offline_line(s, "abort");
        }
        self.mark_completed(s);
        let sess = &mut self.sessions[s];
        sess.abort_marker = Marker::Done;
        sess.state = SessionState::Aborted;
        sess.finished_at = Some(self.now);
    }

    /// `mark_session_failed`.
    pub(crate) fn mark_failed(&mut self, s: usize) {
        if !self.sessions[s].alive() {
            self.offline_line(s, "fail");
        }
        self.mark_completed(s);
        let sess = &mut self.sessions[s];
        sess.state = SessionState::Failed;
        sess.finished_at = Some(self.now);
    }

    /// Fork a master (`Processor::start` → `_process_child`).
    pub(crate) fn spawn_master(&mut self, s: usize, resume: bool) -> u32 {
        let pid = self.new_pid();
        let total = self.sessions[s].items.len() as u32;
        let total_size = self.sessions[s].total_size();
        let (tt, rt) = (
            self.sessions[s].transfer_threads.clamp(1, 9).min(total),
            self.sessions[s].restore_threads.clamp(1, 9).min(total),
        );
        let mut master = Master {
            pid,
            transfer: Vec::new(),
            restore: Vec::new(),
        };
        for c in 1..=tt {
            let wpid = self.new_pid();
            master.transfer.push(Worker {
                child_number: c,
                pid: wpid,
                busy: None,
                exited: None,
            });
        }
        for c in 1..=rt {
            let wpid = self.new_pid();
            master.restore.push(Worker {
                child_number: c,
                pid: wpid,
                busy: None,
                exited: None,
            });
        }
        self.sessions[s].logs.reopen_master();
        if resume {
            self.master_line(s, (pid, 0), "resume", None, None, None);
        } else {
            let initiator = match self.sessions[s].kind {
                Kind::Root => "copyacct",
                Kind::User => "norootcopy",
            };
            self.master_line(s, (pid, 0), "start", None, None, None);
            self.master_line(s, (pid, 0), "initiator", None, None, Some(initiator.into()));
            self.master_line(s, (pid, 0), "version", None, None, Some("2.3".into()));
            if total > 0 {
                for q in [Queue::Transfer, Queue::Restore] {
                    self.master_line(
                        s,
                        (pid, 0),
                        "queue_count",
                        Some(q),
                        None,
                        Some(total.into()),
                    );
                    self.master_line(
                        s,
                        (pid, 0),
                        "queue_size",
                        Some(q),
                        None,
                        Some(total_size.into()),
                    );
                }
            }
        }
        let host = self.sessions[s].host.clone();
        self.master_line(s, (pid, 0), "remotehost", None, None, Some(host.into()));
        let sess = &mut self.sessions[s];
        sess.master = Some(master);
        sess.pid = Some(pid);
        if sess.started_at.is_none() {
            sess.started_at = Some(self.now);
        }
        sess.finished_at = None;
        self.pump();
        pid
    }

    /// An abort reached a live session: TERM its workers in one simulated second.
    pub(crate) fn signal_abort(&mut self, s: usize) {
        let sess = &mut self.sessions[s];
        sess.abort_gen += 1;
        let generation = sess.abort_gen;
        self.schedule(self.now + 1.0, Ev::AbortTerm { s, generation });
    }

    /// Workers' TERM handler: the current item fails with `Aborted.`.
    pub(super) fn term_workers(&mut self, s: usize) {
        let busy: Vec<usize> = self.sessions[s]
            .master
            .as_ref()
            .map(|m| {
                m.transfer
                    .iter()
                    .chain(&m.restore)
                    .filter_map(|w| w.busy)
                    .collect()
            })
            .unwrap_or_default();
        for idx in busy {
            if let Some((q, w)) = self.sessions[s].items[idx].worker {
                self.sessions[s].items[idx].token += 1;
                self.sessions[s].items[idx].outcome = None;
                self.item_failed(s, idx, q, w, "Aborted.");
            }
        }
    }

    /// `crash_at`: every master and worker dies. Sessions keep their state
    /// (stale); items in progress stay in progress or fail (`crash_leaves`).
    pub(super) fn crash(&mut self) {
        self.crashes += 1;
        for s in 0..self.sessions.len() {
            let Some(m) = self.sessions[s].master.take() else {
                continue;
            };
            let busy: Vec<usize> = m
                .transfer
                .iter()
                .chain(&m.restore)
                .filter_map(|w| w.busy)
                .collect();
            for idx in busy {
                self.settle_step_lines(s, idx);
                let it = &mut self.sessions[s].items[idx];
                it.token += 1;
                it.outcome = None;
                it.worker = None;
                release_slot_and_mutex(it, &mut self.restores_busy, &mut self.restoring);
                if self.faults.crash_leaves == CrashLeaves::Failed {
                    let was_restoring = it.state == ItemState::RestoreInprogress;
                    it.failure = Some("The transfer process died.".into());
                    it.pid = 0;
                    if was_restoring && modules::is_account(it.module.name) {
                        let lu = it.localuser.clone();
                        self.accounts.entry(lu).or_default().restores_failed += 1;
                    }
                    self.set_item_state(s, idx, ItemState::Failed);
                }
            }
        }
    }

    /// Crash every transfer process now (`POST /__sim/crash`).
    pub(crate) fn crash_now(&mut self) {
        self.crash();
        self.pump();
    }

    /// `expunge_expired_transfer_sessions`.
    pub(super) fn maintenance(&mut self) {
        for s in 0..self.sessions.len() {
            let sess = &self.sessions[s];
            if sess.deleted {
                continue;
            }
            let age = self.now - sess.created_at;
            let idle = self.now - sess.last_activity;
            if age > MAX_SESSION_AGE || (sess.state == SessionState::Pending && age > MAX_IDLE_TIME)
            {
                let id = sess.id.clone();
                self.sessions[s].deleted = true;
                self.index.remove(&id);
            } else if matches!(sess.state, SessionState::Running | SessionState::Pausing)
                && idle > MAX_IDLE_TIME
            {
                // A live master would see FAILED at its next periodic check and stop.
                if let Some(m) = self.sessions[s].master.take() {
                    for idx in m.transfer.iter().chain(&m.restore).filter_map(|w| w.busy) {
                        self.settle_step_lines(s, idx);
                        self.sessions[s].items[idx].token += 1;
                    }
                }
                self.mark_failed(s);
            }
        }
    }
}
