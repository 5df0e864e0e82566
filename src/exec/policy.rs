//! The run's reaction to trouble: `policy.on_error`, in one table.
//!
//! | on_error \ trouble | an account failed (no retry left) | a session is stuck | a batch cannot get a session |
//! |--------------------|-----------------------------------|--------------------|------------------------------|
//! | `pause`            | pause that session (graceful), stop scheduling; the others end; exit 3 | the same | stop scheduling; exit 3 |
//! | `abort`            | abort every live session; exit 5  | the same           | the same                     |
//! | `continue`         | record it and go on; exit 4 at the end | abort that session: its unrestored accounts go to a replacement | go on; its accounts stay pending |
//!
//! and a fourth trouble, a transferred account that differs from the plan
//! on the target (`policy.verify`, found after its session ended): under
//! `pause` and `abort` the run stops scheduling new sessions (the live ones
//! end as they are: a difference never interrupts a transfer) and exits 3;
//! under `continue` it goes on. Either way a run that ends with differences
//! left exits 4, and the account is never transferred again for it. The
//! run stops once per account: the next `apply` checks it again and, still
//! different, goes on.
//!
//! Under `continue`, accounts owned by a held reseller wait
//! (`orphans: wait`) or move anyway (`orphans: transfer`): see
//! [`super::schedule::standing`]. Every reaction that pauses or aborts is
//! recorded first (`pause_requested` / `abort_requested`, by the policy).

use super::ExecError;
use super::control::ControlRequest;
use super::ctx::request_record;
use super::run::{Scheduler, Stop};
use super::schedule::{live_undo, retries_left};
use super::session::Want;
use crate::events::Event;
use crate::graph::{SessionStep, StepId};
use crate::journal::record::{ControlAction, Record};
use crate::plan::OnError;

/// What went wrong, for the table.
#[derive(Debug, Clone, Copy)]
pub(super) enum Trouble<'a> {
    /// An account failed for good in this apply, in `session`.
    ItemFailed { session: &'a str },
    /// `session` made no progress and its remedies ran out.
    Stuck { session: &'a str },
    /// A batch cannot get a session.
    Blocked,
    /// Transferred accounts differ from the plan on the target.
    Differences,
}

impl Scheduler {
    /// The table of the module doc.
    pub(super) fn react(&mut self, trouble: Trouble<'_>, reason: String) -> Result<(), ExecError> {
        match (self.ctx.plan().policy.on_error, trouble) {
            (OnError::Pause | OnError::Abort, Trouble::Differences) => {
                self.policy_request(ControlAction::Pause, &reason)?;
                self.set_stop(Stop::Pause(reason));
            }
            (OnError::Continue, Trouble::Differences) => {}
            (OnError::Pause, _) => {
                self.policy_request(ControlAction::Pause, &reason)?;
                self.set_stop(Stop::Pause(reason));
                match trouble {
                    Trouble::ItemFailed { session } | Trouble::Stuck { session } => {
                        self.tell(session, Want::Pause)
                    }
                    Trouble::Blocked | Trouble::Differences => {}
                }
            }
            (OnError::Abort, _) => {
                self.policy_request(ControlAction::Abort, &reason)?;
                self.set_stop(Stop::Abort(reason));
                self.tell_all(Want::Abort);
            }
            // Give up on this session only: abort it (a stale one turns
            // FAILED), conclude, and its accounts that never reached
            // RESTORE go to a replacement.
            (OnError::Continue, Trouble::Stuck { session }) => self.tell(session, Want::Abort),
            (OnError::Continue, Trouble::ItemFailed { .. } | Trouble::Blocked) => {}
        }
        Ok(())
    }

    /// A `failed-item` (or a refused enqueue, or a conflict) was recorded
    /// for `account`: reported, then retried within its budget or handed to
    /// the policy.
    pub(super) fn on_item_failed(&mut self, session: &str, account: &str) -> Result<(), ExecError> {
        let (retry, source, mut message) = self.ctx.with_state(|st| {
            let a = &st.accounts[account];
            (
                retries_left(self.ctx.plan(), account, a),
                a.source.clone(),
                a.message.clone().unwrap_or_default(),
            )
        });
        if let Some(undo) = live_undo(self.ctx.plan(), account) {
            message = format!("{message} — {undo}");
        }
        self.ctx.emit(Event::ItemFailed {
            size: super::ctx::size_of(self.ctx.plan(), account),
            account: account.to_string(),
            source,
            session: session.to_string(),
            message: message.clone(),
            will_retry: retry,
        });
        if retry {
            return Ok(());
        }
        self.react(
            Trouble::ItemFailed { session },
            format!("account {account} failed: {message}"),
        )
    }

    /// Records a pause or abort the policy asked for (once).
    fn policy_request(&mut self, action: ControlAction, reason: &str) -> Result<(), ExecError> {
        let already = matches!(
            (&self.stop, action),
            (Some(Stop::Pause(_)), ControlAction::Pause) | (Some(Stop::Abort(_)), _)
        );
        if !already {
            let req = ControlRequest::here(action);
            // The policy that asked (a difference under `abort` pauses).
            let policy = match self.ctx.plan().policy.on_error {
                OnError::Abort => "policy on_error: abort",
                _ => "policy on_error: pause",
            };
            self.ctx
                .record(request_record(&req, &format!("{policy}; {reason}")))?;
        }
        Ok(())
    }

    /// A batch cannot get a session (create refused, a package refused):
    /// its accounts stay pending with the reason; the policy decides.
    ///
    /// `blocked` lives in memory only, like the other per-apply budgets of
    /// the scheduler (`create_failures`, `barren`): a new `apply` tries the
    /// batch again with a fresh budget, as it does failed accounts with a
    /// fresh `item_retries`. The `step_failed` record says why it stopped.
    pub(super) fn block(&mut self, b: usize, error: String) -> Result<(), ExecError> {
        let key = self.ctx.plan().sessions()[b].key.clone();
        let reason = format!("no session could be created for {key}: {error}");
        self.ctx.record(Record::StepFailed {
            step: StepId::session(&key, SessionStep::Create).to_string(),
            error: error.clone(),
            retryable: false,
            attempt: self.create_failures.get(&b).copied().unwrap_or(1),
        })?;
        self.blocked.insert(b, error);
        self.react(Trouble::Blocked, reason)
    }
}

/// `pause` / `abort` from a request, as the reason the run stops.
pub(super) fn stop_for(req: &ControlRequest, what: &str) -> Stop {
    let reason = format!("{what} by {} at {}", req.by, req.at);
    match req.action {
        ControlAction::Pause => Stop::Pause(reason),
        ControlAction::Abort => Stop::Abort(reason),
    }
}
