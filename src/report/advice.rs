//! What to do next, in one sentence, at the end of a run.
//!
//! Owns: the wording of the advice `run_finished` carries (`next`) and the
//! summary ends with, from the facts the executor states — how the run
//! ended, why, whether it was a rehearsal, which failed accounts the next
//! `apply` retries and which wait for a person. Never promises a retry that
//! will not come. Does not own: those facts (`exec`), or printing.
//!
//! [`Advised`] fills the advice into the executor's `run_finished` on its
//! way to the reporters, so every reporter — terminal, JSON, notifications
//! — shows the same sentence.

use std::sync::Arc;

use crate::events::{Event, FailedAccount, Reporter, RunStatus};

/// The facts the advice is worded from.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub status: RunStatus,
    /// Stopped by Ctrl-C or SIGTERM (a `failed` status with nothing to fix).
    pub interrupted: bool,
    /// The plan as given.
    pub plan: &'a str,
    /// `apply --simulate`: running it again rehearses afresh.
    pub rehearsal: bool,
    pub failed: &'a [FailedAccount],
}

/// The next step, one sentence.
pub fn next(f: &Facts<'_>) -> String {
    let plan = if f.rehearsal {
        format!("--simulate {}", f.plan)
    } else {
        f.plan.to_string()
    };
    let again = |word: &str| {
        if f.rehearsal {
            "to rehearse again (a rehearsal always starts afresh)".to_string()
        } else {
            format!("to {word}")
        }
    };
    match f.status {
        RunStatus::Succeeded => "nothing: every account is transferred".into(),
        RunStatus::Paused => format!(
            "fix the cause, then run `ferry apply {plan}` {}",
            again("resume")
        ),
        RunStatus::Aborted => format!("run `ferry apply --restart {plan}` to start again"),
        RunStatus::Failed if f.interrupted => {
            format!("run `ferry apply {plan}` {}", again("continue"))
        }
        RunStatus::Failed => format!(
            "fix the cause, then run `ferry apply {plan}` {}",
            again("continue")
        ),
        RunStatus::Partial => partial(f.failed, &plan, f.rehearsal),
    }
}

/// After a partial run: the failed accounts the next `apply` retries (a
/// failed-item, a restore cut with nothing on the target), and those a
/// person must check first (everything else).
fn partial(failed: &[FailedAccount], plan: &str, rehearsal: bool) -> String {
    let (retry, manual): (Vec<&FailedAccount>, Vec<&FailedAccount>) =
        failed.iter().partition(|f| f.retried);
    let verb = if rehearsal {
        "rehearse again with"
    } else {
        "run"
    };
    let mut parts = Vec::new();
    if !retry.is_empty() {
        parts.push(format!(
            "fix the cause, then {verb} `ferry apply {plan}`: it retries {}",
            list(&retry)
        ));
    }
    if !manual.is_empty() {
        parts.push(format!(
            "check {} on the target by hand (each one's message says what to look for); ferry \
             does not retry them on its own",
            list(&manual)
        ));
    }
    if parts.is_empty() {
        parts.push(format!(
            "{verb} `ferry apply {plan}` to move the accounts still pending"
        ));
    }
    parts.join("; ")
}

fn list(failed: &[&FailedAccount]) -> String {
    const SHOWN: usize = 8;
    let mut s = failed
        .iter()
        .take(SHOWN)
        .map(|f| f.account.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if failed.len() > SHOWN {
        s.push_str(&format!(" and {} more", failed.len() - SHOWN));
    }
    s
}

/// Passes every event on, with the advice of a `run_finished` filled in
/// from its facts (the executor leaves `next` empty).
pub struct Advised(pub Arc<dyn Reporter>);

impl Reporter for Advised {
    fn event(&self, event: &Event) {
        match event {
            Event::RunFinished {
                status,
                failed,
                next,
                plan,
                rehearsal,
                interrupted,
                ..
            } if next.is_empty() => {
                let mut e = event.clone();
                if let Event::RunFinished { next, .. } = &mut e {
                    *next = self::next(&Facts {
                        status: *status,
                        interrupted: *interrupted,
                        plan,
                        rehearsal: *rehearsal,
                        failed,
                    });
                }
                self.0.event(&e);
            }
            _ => self.0.event(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(account: &str, retried: bool) -> FailedAccount {
        FailedAccount {
            account: account.into(),
            source: "old1".into(),
            message: "m".into(),
            retried,
        }
    }

    fn facts<'a>(status: RunStatus, failed: &'a [FailedAccount]) -> Facts<'a> {
        Facts {
            status,
            interrupted: false,
            plan: "plans/p.yaml",
            rehearsal: false,
            failed,
        }
    }

    /// A retry is promised only for the accounts the next apply retries.
    #[test]
    fn a_partial_run_promises_only_the_retries_that_come() {
        let f = [failed("a", true), failed("b", false)];
        let n = next(&facts(RunStatus::Partial, &f));
        assert!(n.contains("it retries a;"), "{n}");
        assert!(n.contains("check b on the target by hand"), "{n}");
        let only_manual = [failed("b", false)];
        let n = next(&facts(RunStatus::Partial, &only_manual));
        assert!(!n.contains("retries"), "{n}");
    }

    #[test]
    fn rehearsals_rehearse_again_and_interruptions_have_nothing_to_fix() {
        let mut f = facts(RunStatus::Paused, &[]);
        f.rehearsal = true;
        assert!(next(&f).contains("--simulate plans/p.yaml` to rehearse again"));
        let mut f = facts(RunStatus::Failed, &[]);
        f.interrupted = true;
        assert_eq!(next(&f), "run `ferry apply plans/p.yaml` to continue");
        assert!(next(&facts(RunStatus::Aborted, &[])).contains("--restart"));
    }
}
