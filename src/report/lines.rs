//! Plain lines on stderr when it is not a terminal (CI logs, `2> file`):
//! one line per notable event, each starting with the time since the run
//! began, so `grep FAILED` or `grep 'session old1/'` finds what matters.
//! Session states are printed when they change, not on every poll.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use super::{Sink, summary};
use crate::events::{Event, Reporter};

/// The non-TTY human reporter.
pub struct LineReporter {
    out: Sink,
    state: Mutex<LineState>,
}

#[derive(Default)]
struct LineState {
    started: Option<Instant>,
    /// Last state printed per session, so polls that change nothing stay quiet.
    sessions: HashMap<String, String>,
}

impl LineReporter {
    pub fn new(out: Box<dyn Write + Send>) -> LineReporter {
        LineReporter {
            out: Sink::new(out),
            state: Mutex::new(LineState::default()),
        }
    }
}

impl Reporter for LineReporter {
    fn event(&self, event: &Event) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let started = *st.started.get_or_insert_with(Instant::now);
        let Some(text) = describe(event, &mut st.sessions) else {
            return;
        };
        drop(st);
        let mut out = String::new();
        if let Event::RunFinished { .. } = event {
            out.push_str(&text);
        } else {
            let secs = started.elapsed().as_secs();
            let stamp = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            for (i, l) in text.lines().enumerate() {
                if i == 0 {
                    out.push_str(&format!("[{stamp}] {l}\n"));
                } else {
                    out.push_str(&format!("           {l}\n"));
                }
            }
        }
        self.out.write(&out);
    }
}

/// The line for an event, or `None` when it is not worth a line. `sessions`
/// remembers the last state printed for each session.
pub(crate) fn describe(event: &Event, sessions: &mut HashMap<String, String>) -> Option<String> {
    Some(match event {
        Event::RunStarted {
            plan,
            journal,
            resumed,
            accounts,
            sessions_planned,
            ..
        } => {
            let verb = if *resumed {
                "run resumed"
            } else {
                "run started"
            };
            let mut s = format!(
                "{verb}: {plan}, {} accounts, {sessions_planned} sessions planned (journal {journal})",
                accounts.total
            );
            if *resumed {
                s.push_str(&format!(
                    "; already transferred {}, {} to go",
                    accounts.transferred,
                    accounts.total - accounts.transferred.min(accounts.total)
                ));
            }
            s
        }
        Event::StepStarted { .. } | Event::StepSucceeded { .. } => return None,
        Event::StepFailed {
            step,
            error,
            retryable,
            attempt,
        } => {
            let then = if *retryable {
                "will retry"
            } else {
                "giving up"
            };
            format!("step {step} failed (attempt {attempt}, {then}): {error}")
        }
        Event::SessionState {
            session,
            id,
            source,
            state,
            accounts,
            done,
            ..
        } => {
            let previous = sessions.insert(session.clone(), state.clone());
            match previous {
                Some(p) if p == *state => return None,
                Some(_) => format!("session {session}: {state} ({done}/{accounts} accounts)"),
                None => {
                    let id = id.as_deref().unwrap_or("(id not yet known)");
                    format!(
                        "session {session} created on {source}: {state}, {accounts} accounts, id {id}"
                    )
                }
            }
        }
        Event::ItemSucceeded {
            account,
            source,
            session,
            warnings,
            adopted,
            notes,
            ..
        } => {
            let w = if *warnings { " with warnings" } else { "" };
            let mut line = match adopted {
                Some(how) => format!("adopted {account} ({source}): {how}"),
                None => format!("transferred {account}{w} ({source}, session {session})"),
            };
            for n in notes {
                line.push_str(&format!("\n  {}: {}", n.kind.as_str(), n.text));
            }
            line
        }
        Event::ItemFailed {
            account,
            source,
            session,
            message,
            will_retry,
            ..
        } => {
            let then = if *will_retry {
                "; will retry in a new session"
            } else {
                ""
            };
            format!(
                "FAILED {account} ({source}, session {session}): {}{then}",
                message.trim()
            )
        }
        Event::ItemProgress {
            account,
            source,
            percent,
            size,
            ..
        } => {
            let of = size
                .map(|b| {
                    format!(
                        " ({} of {})",
                        crate::report::html::human_bytes(b / 100 * u64::from(*percent)),
                        crate::report::html::human_bytes(b)
                    )
                })
                .unwrap_or_default();
            format!("{account} ({source}): {percent}%{of}")
        }
        Event::SessionStalled {
            session,
            id,
            idle_secs,
        } => format!(
            "session {session} stalled: no progress for {} (id {id})",
            summary::human_duration(*idle_secs as f64)
        ),
        Event::Warning { message } => format!("warning: {message}"),
        Event::RunPaused { reason, resume } => format!("PAUSED: {reason}\nto resume: {resume}"),
        Event::RunAborted { reason } => format!("ABORTED: {reason}"),
        Event::RunFinished { .. } => summary::from_event(event)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Captured, scripted_run};

    fn output() -> String {
        let cap = Captured::default();
        let r = LineReporter::new(Box::new(cap.clone()));
        for e in scripted_run() {
            r.event(&e);
        }
        cap.text()
    }

    #[test]
    fn notable_events_one_line_each() {
        let text = output();
        let body: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
        let expect = [
            "run started: plans/two.yaml, 4 accounts, 2 sessions planned (journal .ferry/two.journal)",
            "step old1/s1/create failed (attempt 1, will retry): HTTP 503 Service Unavailable",
            "session old1/s1 created on old1: PENDING, 2 accounts, id old1examplecocopya20261130014502Ab3x",
            "session old2/s1 created on old2: PENDING, 2 accounts, id old2examplecocopya20261130014502Ab3x",
            "session old1/s1: RUNNING (0/2 accounts)",
            "session old2/s1: RUNNING (0/2 accounts)",
            "transferred alpha (old1, session old1/s1)",
            "warning: TLS verification is disabled for target (insecure: true)",
            "FAILED gamma (old2, session old2/s1): Disk quota exceeded <quota> & \"limits\"",
            "PAUSED: account gamma failed (policy on_error: pause)",
            "transferred beta with warnings (old1, session old1/s1)",
            "session old1/s1: COMPLETED (2/2 accounts)",
            "session old2/s1: PAUSED (1/2 accounts)",
        ];
        assert_eq!(body.len(), expect.len(), "{text}");
        for (line, want) in body.iter().zip(expect) {
            // "[HH:MM:SS] " then the text.
            assert_eq!(&line[..1], "[");
            assert_eq!(&line[9..11], "] ");
            assert_eq!(&line[11..], want);
        }
        assert!(text.contains(
            "\n           to resume: fix the cause, then run `ferry apply plans/two.yaml` to resume\n"
        ));
    }

    #[test]
    fn repeated_polls_of_the_same_state_print_nothing() {
        let text = output();
        // old1/s1 was RUNNING twice (current account changed): one line.
        assert_eq!(
            text.matches("session old1/s1: RUNNING").count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn ends_with_the_summary() {
        let text = output();
        let tail = text
            .split("run paused after")
            .nth(1)
            .expect("summary present");
        assert!(tail.contains("gamma (old2)  Disk quota exceeded"), "{text}");
        assert!(tail.contains("next: fix the cause"), "{text}");
    }
}
