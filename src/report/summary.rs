//! The end-of-run summary a human reads: how the run ended, how many
//! accounts moved, failed and wait, each failure with the server's reason,
//! how long it took, and what to do next. Rendered from
//! [`Event::RunFinished`](crate::events::Event::RunFinished) alone.

use std::fmt::Write as _;
use std::time::Duration;

use crate::events::{AccountCounts, Event, FailedAccount, RunStatus};

/// Renders the summary of a `RunFinished` event; `None` for any other event.
pub fn from_event(event: &Event) -> Option<String> {
    match event {
        Event::RunFinished {
            status,
            accounts,
            duration_secs,
            failed,
            next,
            ..
        } => Some(render(*status, accounts, *duration_secs, failed, next)),
        _ => None,
    }
}

/// A duration as a human reads it, to the second: `12m 34s`, `2h 5m 0s`.
pub fn human_duration(secs: f64) -> String {
    let secs = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// The summary text, several lines, ending with a newline.
pub fn render(
    status: RunStatus,
    accounts: &AccountCounts,
    duration_secs: f64,
    failed: &[FailedAccount],
    next: &str,
) -> String {
    let took = human_duration(duration_secs);
    let mut out = String::new();
    let headline = match status {
        RunStatus::Succeeded => format!("run succeeded in {took}"),
        RunStatus::Paused => format!("run paused after {took}"),
        RunStatus::Partial => format!("run finished in {took}, some accounts failed"),
        RunStatus::Aborted => format!("run aborted after {took}"),
        RunStatus::Failed => format!("run failed after {took}"),
    };
    let _ = writeln!(out, "\n{headline}");
    let _ = writeln!(
        out,
        "  transferred  {} of {} accounts",
        accounts.transferred, accounts.total
    );
    let _ = writeln!(out, "  failed       {}", accounts.failed);
    let _ = writeln!(out, "  pending      {}", accounts.pending);
    if !failed.is_empty() {
        let _ = writeln!(out, "\nfailed accounts (the server's reason):");
        let width = failed
            .iter()
            .map(|f| f.account.len() + f.source.len() + 3)
            .max()
            .unwrap_or(0);
        for f in failed {
            let who = format!("{} ({})", f.account, f.source);
            let mut lines = f.message.trim().lines();
            let first = lines.next().unwrap_or("(no message from the server)");
            let _ = writeln!(out, "  {who:<width$}  {first}");
            for more in lines {
                let _ = writeln!(out, "  {:<width$}  {more}", "");
            }
        }
    }
    // A run that succeeded leaves nothing to do, whatever the executor says.
    let next = if status == RunStatus::Succeeded {
        ""
    } else if next.trim().is_empty() {
        default_next(status)
    } else {
        next.trim()
    };
    if !next.is_empty() {
        let _ = writeln!(out, "\nnext: {next}");
    }
    out
}

/// What to do next when the executor did not say.
fn default_next(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "",
        RunStatus::Paused => {
            "fix the cause, then run `ferry apply` with the same plan again to resume"
        }
        RunStatus::Partial => {
            "fix the failed accounts' causes, then run `ferry apply` with the same plan again to retry them"
        }
        RunStatus::Aborted => {
            "the run cannot be resumed; inspect it with `ferry status`, then start over with `ferry apply --restart`"
        }
        RunStatus::Failed => {
            "the journal is consistent: fix the cause above, then run `ferry apply` with the same plan again"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::scripted_run;

    #[test]
    fn summary_names_counts_duration_failures_and_next_step() {
        let events = scripted_run();
        let text = from_event(events.last().unwrap()).unwrap();
        assert!(text.contains("run paused after 12m 34s"), "{text}");
        assert!(text.contains("transferred  2 of 4 accounts"), "{text}");
        assert!(text.contains("failed       1"), "{text}");
        assert!(text.contains("pending      1"), "{text}");
        assert!(
            text.contains("gamma (old2)  Disk quota exceeded <quota> & \"limits\""),
            "{text}"
        );
        assert!(
            text.contains("next: fix the cause, then run `ferry apply plans/two.yaml` to resume"),
            "{text}"
        );
        assert!(from_event(&events[0]).is_none());
    }

    #[test]
    fn every_failed_account_is_listed_with_its_message() {
        let failed: Vec<FailedAccount> = (0..3)
            .map(|i| FailedAccount {
                account: format!("acct{i}"),
                source: "old9".into(),
                message: format!("reason number {i}\nsecond line {i}"),
                retried: true,
            })
            .collect();
        let counts = AccountCounts {
            total: 10,
            transferred: 7,
            failed: 3,
            pending: 0,
        };
        let text = render(RunStatus::Partial, &counts, 59.6, &failed, "");
        assert!(
            text.contains("run finished in 1m, some accounts failed"),
            "{text}"
        );
        for i in 0..3 {
            assert!(
                text.contains(&format!("acct{i} (old9)  reason number {i}")),
                "{text}"
            );
            assert!(text.contains(&format!("second line {i}")), "{text}");
        }
        assert!(
            text.contains("next: fix the failed accounts' causes"),
            "{text}"
        );
    }

    #[test]
    fn success_says_nothing_to_do() {
        let counts = AccountCounts {
            total: 2,
            transferred: 2,
            failed: 0,
            pending: 0,
        };
        let text = render(
            RunStatus::Succeeded,
            &counts,
            0.2,
            &[],
            "nothing: every account is transferred",
        );
        assert!(text.contains("run succeeded in 0s"), "{text}");
        assert!(!text.contains("next:"), "{text}");
        assert!(!text.contains("failed accounts"), "{text}");
    }
}
