//! What the operator sees: rendering for humans and for machines.
//!
//! Owns: the [`Reporter`]s that turn the executor's [`Event`]s into output —
//! progress bars on a terminal ([`progress`]), plain greppable lines when
//! stderr is not a terminal ([`lines`]), JSON Lines on stdout for CI
//! ([`json`]), the end-of-run summary ([`summary`]) — and the self-contained
//! HTML report of a run ([`html`]).
//!
//! Does not own: any decision. Nothing here changes what a run does; a
//! reporter only formats what it is told. It does not read the journal
//! either (`ops::report` maps the journal to an [`html::RunView`]).
//!
//! Where output goes (design §2): with `--output json`, stdout carries only
//! JSON events and every human line goes to stderr; progress bars appear
//! only when stderr is a terminal that can draw them (not `TERM=dumb`);
//! `NO_COLOR` (set and non-empty) turns colour off but keeps the bars.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::events::{Event, Reporter};

pub mod advice;
pub mod html;
pub mod json;
pub mod lines;
pub mod progress;
pub mod summary;

/// What `apply` prints on stdout: human text, or JSON events (design §7).
/// Our own enum so that `report` does not depend on clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// What the terminal allows, read once from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// stderr is a terminal able to redraw lines (a TTY, and `TERM` is not `dumb`).
    pub stderr_is_tty: bool,
    /// Colour is forbidden: `NO_COLOR` is set to a non-empty value, or `TERM=dumb`.
    pub no_color: bool,
}

impl Terminal {
    /// Reads `std::io::stderr().is_terminal()`, `NO_COLOR` and `TERM`.
    pub fn detect() -> Terminal {
        let term_dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Terminal {
            stderr_is_tty: std::io::stderr().is_terminal() && !term_dumb,
            no_color: no_color || term_dumb,
        }
    }
}

/// The reporter `apply` uses.
///
/// * `Output::Text`: progress bars on a terminal, plain lines otherwise; the
///   summary at the end either way. Everything on stderr.
/// * `Output::Json`: JSON Lines on stdout, plus the human reporter above on
///   stderr (so a CI log still reads well while stdout stays machine-only).
pub fn reporter_for(output: Output, stderr_is_tty: bool, no_color: bool) -> Box<dyn Reporter> {
    let human: Box<dyn Reporter> = if stderr_is_tty {
        Box::new(progress::ProgressReporter::stderr(!no_color))
    } else {
        Box::new(lines::LineReporter::new(Box::new(std::io::stderr())))
    };
    // A server's words reach the terminal escaped (`crate::untrusted`).
    let human: Box<dyn Reporter> = Box::new(crate::events::ForHumans(human));
    match output {
        Output::Text => human,
        Output::Json => Box::new(Fanout::new(vec![
            Box::new(json::JsonReporter::new(Box::new(std::io::stdout()))),
            human,
        ])),
    }
}

/// [`reporter_for`] with the terminal read from the environment.
pub fn reporter_for_env(output: Output) -> Box<dyn Reporter> {
    let t = Terminal::detect();
    reporter_for(output, t.stderr_is_tty, t.no_color)
}

/// Sends every event to several reporters, in order.
pub struct Fanout {
    reporters: Vec<Box<dyn Reporter>>,
}

impl Fanout {
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Fanout {
        Fanout { reporters }
    }
}

impl Reporter for Fanout {
    fn event(&self, event: &Event) {
        for r in &self.reporters {
            r.event(event);
        }
    }
}

/// A writer shared by a reporter's calls. Write errors (a closed pipe) are
/// ignored: losing output must never stop a migration.
pub(crate) struct Sink(Mutex<Box<dyn Write + Send>>);

impl Sink {
    pub(crate) fn new(w: Box<dyn Write + Send>) -> Sink {
        Sink(Mutex::new(w))
    }

    /// Writes `text` (complete lines) and flushes.
    pub(crate) fn write(&self, text: &str) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }
}

/// A `Write` that appends into a shared buffer, for tests of reporters.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A scripted run shared by the reporters' unit tests: two sessions on two
/// sources, one account failing with a server message, a pause, the end.
#[cfg(test)]
pub(crate) fn scripted_run() -> Vec<Event> {
    use crate::events::{AccountCounts, FailedAccount, RunStatus};
    let counts = AccountCounts {
        total: 4,
        transferred: 0,
        failed: 0,
        pending: 4,
    };
    let session =
        |name: &str, source: &str, state: &str, current: Option<&str>, done| Event::SessionState {
            session: name.into(),
            id: Some(format!("{source}examplecocopya20261130014502Ab3x")),
            source: source.into(),
            state: state.into(),
            current: current.map(String::from),
            accounts: 2,
            done,
        };
    vec![
        Event::RunStarted {
            bytes: None,
            plan: "plans/two.yaml".into(),
            journal: ".ferry/two.journal".into(),
            resumed: false,
            accounts: counts,
            sessions_planned: 2,
        },
        Event::StepStarted {
            step: "old1/s1/create".into(),
        },
        Event::StepFailed {
            step: "old1/s1/create".into(),
            error: "HTTP 503 Service Unavailable".into(),
            retryable: true,
            attempt: 1,
        },
        Event::StepSucceeded {
            step: "old1/s1/create".into(),
        },
        session("old1/s1", "old1", "PENDING", None, 0),
        session("old2/s1", "old2", "PENDING", None, 0),
        session("old1/s1", "old1", "RUNNING", Some("alpha"), 0),
        session("old2/s1", "old2", "RUNNING", Some("gamma"), 0),
        session("old1/s1", "old1", "RUNNING", Some("beta"), 1),
        Event::ItemSucceeded {
            size: None,
            account: "alpha".into(),
            source: "old1".into(),
            session: "old1/s1".into(),
            warnings: false,
            adopted: None,
            notes: Vec::new(),
        },
        Event::Warning {
            message: "TLS verification is disabled for target (insecure: true)".into(),
        },
        Event::ItemFailed {
            size: None,
            account: "gamma".into(),
            source: "old2".into(),
            session: "old2/s1".into(),
            message: "Disk quota exceeded <quota> & \"limits\"".into(),
            will_retry: false,
        },
        Event::RunPaused {
            reason: "account gamma failed (policy on_error: pause)".into(),
            resume: "fix the cause, then run `ferry apply plans/two.yaml` to resume".into(),
        },
        Event::ItemSucceeded {
            size: None,
            account: "beta".into(),
            source: "old1".into(),
            session: "old1/s1".into(),
            warnings: true,
            adopted: None,
            notes: Vec::new(),
        },
        session("old1/s1", "old1", "COMPLETED", None, 2),
        session("old2/s1", "old2", "PAUSED", None, 1),
        Event::RunFinished {
            status: RunStatus::Paused,
            accounts: AccountCounts {
                total: 4,
                transferred: 2,
                failed: 1,
                pending: 1,
            },
            duration_secs: 754.2,
            failed: vec![FailedAccount {
                account: "gamma".into(),
                source: "old2".into(),
                message: "Disk quota exceeded <quota> & \"limits\"".into(),
                retried: false,
            }],
            next: "fix the cause, then run `ferry apply plans/two.yaml` to resume".into(),
            plan: "plans/two.yaml".into(),
            rehearsal: false,
            interrupted: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NullReporter;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(Arc<AtomicUsize>);
    impl Reporter for Count {
        fn event(&self, _: &Event) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn fanout_sends_every_event_to_every_reporter() {
        let a = Arc::new(AtomicUsize::new(0));
        let b = Arc::new(AtomicUsize::new(0));
        let f = Fanout::new(vec![
            Box::new(Count(a.clone())),
            Box::new(NullReporter),
            Box::new(Count(b.clone())),
        ]);
        let events = scripted_run();
        for e in &events {
            f.event(e);
        }
        assert_eq!(a.load(Ordering::SeqCst), events.len());
        assert_eq!(b.load(Ordering::SeqCst), events.len());
    }
}
