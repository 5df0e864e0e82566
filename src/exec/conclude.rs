//! Concluding: each account's outcome from its session's `master.log`, the
//! end of the session, and the target's word on what the log cannot tell.
//!
//! ## Crash windows
//!
//! * **outcomes** — an account is recorded transferred only from a
//!   `success-item` / `warning-item` RESTORE line of *its* session's log
//!   (or later from the target), never from the session state; only
//!   accounts still in progress in this session are considered, so an
//!   outcome is never recorded twice.
//! * **the end** — killed between the conclusions and `session_finished`:
//!   resume finds the session terminal on the server and concludes again.
//!   Killed before the verification: the next `apply` verifies every
//!   unverified account.
//! * **a cut restore** (RESTORE began, no final line, the session ended) is
//!   recorded `restore_unfinished` before `session_finished` frees the
//!   session's other accounts, and is decided by the target — never
//!   retried automatically while it may be on the target.

use super::Msg;
use super::api::CallError;
use super::ctx::{Halt, verify};
use super::driver::{Driver, TaskEnd};
use super::outcome::{self, Conclusion, LogView};
use super::session::Input;
use crate::client::ItemOutcome;
use crate::events::Event;
use crate::graph::SessionStep;
use crate::journal::Progress;
use crate::journal::record::{ItemResult, Record, Unfinished};

impl Driver {
    /// Records the final RESTORE lines not yet recorded for this session. A
    /// failure is reported to the scheduler at once, for the policy.
    pub(super) fn record_outcomes(&mut self, view: &LogView) -> Result<(), TaskEnd> {
        let mut new = Vec::new();
        self.ctx.with_state(|st| {
            for (user, outcome) in &view.accounts {
                let Some(target) = self.users.get(user) else {
                    continue;
                };
                let Some(acc) = st.accounts.get(target) else {
                    continue;
                };
                if acc.session.as_deref() == Some(self.key.as_str())
                    && matches!(acc.progress, Progress::InProgress | Progress::Unfinished)
                {
                    let log = view.failed_lines.get(user).cloned().unwrap_or_default();
                    let restore = view.restores.get(user).copied();
                    new.push((target.clone(), outcome.clone(), log, restore));
                }
            }
        });
        for (target, outcome, log, restore) in new {
            let (result, message) = item_result(&outcome);
            self.ctx.record(Record::ItemOutcome {
                session: self.key.clone(),
                account: Some(target.clone()),
                package: None,
                result,
                message,
                log,
                restore,
            })?;
            match outcome {
                ItemOutcome::Succeeded { warnings, notes } => {
                    if !notes.is_empty() {
                        self.ctx.record(Record::ItemNotes {
                            session: self.key.clone(),
                            account: target.clone(),
                            notes: notes.clone(),
                        })?;
                    }
                    let adopted = self
                        .ctx
                        .with_state(|st| st.accounts.get(&target).and_then(|a| a.adopted.clone()));
                    self.ctx.emit(Event::ItemSucceeded {
                        size: super::ctx::size_of(self.ctx.plan(), &target),
                        account: target,
                        source: self.source.clone(),
                        session: self.key.clone(),
                        warnings,
                        adopted,
                        notes,
                    });
                }
                ItemOutcome::Failed { message } => {
                    if let Some(reason) = conflict_reason(&target, &message) {
                        self.ctx.record(Record::AccountConflict {
                            account: target.clone(),
                            reason,
                        })?;
                    }
                    self.ctx.send(Msg::ItemFailed {
                        session: self.key.clone(),
                        account: target,
                    });
                }
            }
        }
        let Some(rec) = self.ctx.session(&self.key) else {
            return Ok(());
        };
        for (pkg, outcome) in &view.packages {
            if rec.packages.contains(pkg) && !rec.package_results.contains_key(pkg) {
                let (result, message) = item_result(outcome);
                self.ctx.record(Record::ItemOutcome {
                    restore: None,
                    session: self.key.clone(),
                    account: None,
                    package: Some(pkg.clone()),
                    result,
                    message,
                    log: Vec::new(),
                })?;
            }
        }
        Ok(())
    }

    /// The session ended on the server: read the whole log (terminal logs
    /// do not block) and conclude every account.
    pub(super) async fn conclude(&mut self, state: &str) -> TaskEnd {
        let Some(id) = self.id.clone() else {
            return self.conclude_without_log(state).await;
        };
        let timeout = self.ctx.timing.full_log_timeout;
        let r = self
            .ctx
            .api
            .repeatable(self.on_retry(SessionStep::Log), |c| {
                let id = id.clone();
                async move {
                    c.fetch_transfer_session_log(&id, "master.log", timeout)
                        .await
                }
            })
            .await;
        let view = match r {
            Ok(text) => Some(LogView::read(&text)),
            Err(CallError::Stopped { message, .. }) => return Halt::Auth(message).into(),
            Err(CallError::Failed(e)) => {
                if let Err(end) = self.step_failed(SessionStep::Log, &e.to_string(), false, 1) {
                    return end;
                }
                None
            }
        };
        self.finish(state, view.as_ref()).await
    }

    pub(super) async fn conclude_without_log(&mut self, state: &str) -> TaskEnd {
        self.finish(state, None).await
    }

    /// Conclusions for every open account, then `session_finished`, then
    /// `listaccts`.
    async fn finish(&mut self, state: &str, view: Option<&LogView>) -> TaskEnd {
        match self.conclude_accounts(state, view).await {
            Ok(()) => TaskEnd::Finished,
            Err(end) => end,
        }
    }

    async fn conclude_accounts(
        &mut self,
        state: &str,
        view: Option<&LogView>,
    ) -> Result<(), TaskEnd> {
        if let Some(v) = view {
            self.record_outcomes(v)?;
        }
        let open: Vec<(String, String)> = self.ctx.with_state(|st| {
            self.users
                .iter()
                .filter(|(_, t)| {
                    st.accounts.get(*t).is_some_and(|a| {
                        a.session.as_deref() == Some(self.key.as_str())
                            && a.progress == Progress::InProgress
                    })
                })
                .map(|(u, t)| (u.clone(), t.clone()))
                .collect()
        });
        for (user, target) in open {
            let rec = match outcome::conclude(view, &user) {
                // Its RESTORE may have begun: the target decides, never a
                // second restore while it may be there.
                Conclusion::Unfinished(why) => Record::RestoreUnfinished {
                    session: self.key.clone(),
                    account: target.clone(),
                    why: if state == "GONE" {
                        Unfinished::Gone
                    } else {
                        why
                    },
                },
                // A COMPLETED session has a final line for every item it
                // held. None means WHM dropped the item: count it as a
                // failure so `item_retries` and the policy bound the retries.
                Conclusion::NotBegun if state == "COMPLETED" => Record::ItemOutcome {
                    session: self.key.clone(),
                    account: Some(target.clone()),
                    package: None,
                    result: ItemResult::Failed,
                    message: Some("the session completed without a result for this account".into()),
                    log: Vec::new(),
                    restore: None,
                },
                // NotBegun in a FAILED/ABORTED session: freed by
                // `session_finished` below (the ended session will never run
                // it) and carried on by a replacement.
                _ => continue,
            };
            let failed = matches!(rec, Record::ItemOutcome { .. });
            self.ctx.record(rec)?;
            if failed {
                self.ctx.send(Msg::ItemFailed {
                    session: self.key.clone(),
                    account: target,
                });
            }
        }
        self.ctx.record(Record::SessionFinished {
            session: self.key.clone(),
            state: state.to_string(),
        })?;
        self.feed(Input::Concluded);
        self.emit_state();
        verify(&self.ctx, Some(&self.key), false).await?;
        Ok(())
    }
}

fn item_result(o: &ItemOutcome) -> (ItemResult, Option<String>) {
    match o {
        ItemOutcome::Succeeded {
            warnings: false, ..
        } => (ItemResult::Succeeded, None),
        ItemOutcome::Succeeded { warnings: true, .. } => (ItemResult::Warning, None),
        ItemOutcome::Failed { message } => (ItemResult::Failed, Some(message.clone())),
    }
}

/// A failed-item that says the account's restore collides with the target's
/// state (docs/whm.md §4): another restore of it running somewhere, or an
/// account of that name already there. Retrying in a new session would meet
/// the same refusal or — worse — a second restore: a person decides.
fn conflict_reason(account: &str, message: &str) -> Option<String> {
    if message.contains("Another process claims to be restoring") {
        Some(format!(
            "another restore of {account} is running on the target (WHM: {message}). ferry will not \
             enqueue it again while that may run; once it has ended, check the account and run \
             `ferry apply --adopt` (it adopts it if it matches the plan)"
        ))
    } else if message.contains("already exists on this server") {
        Some(format!(
            "an account named {account} is already on the target (WHM: {message}). ferry did not \
             put it there as far as this journal knows; check it: `ferry apply --adopt` adopts it \
             if it is this plan's account, else rename the account in the plan (`localuser`)"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failed-items that make an account a conflict for a person, with
    /// WHM's texts (docs/whm.md §4); any other failure is retried.
    #[test]
    fn restore_collisions_are_conflicts() {
        let busy = conflict_reason("bob", "Another process claims to be restoring bob.").unwrap();
        assert!(
            busy.contains("--adopt") && busy.contains("will not"),
            "{busy}"
        );
        let there =
            conflict_reason("bob", "A user named “bob” already exists on this server.").unwrap();
        assert!(there.contains("already on the target"), "{there}");
        assert_eq!(conflict_reason("bob", "Disk quota exceeded"), None);
    }
}
