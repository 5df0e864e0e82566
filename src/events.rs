//! What happens during a run, as data: the executor emits [`Event`]s through
//! a [`Reporter`]; `report` implements reporters (progress bars, JSON lines,
//! a plain summary) and `cli` picks one. The executor never prints.
//!
//! Design §7 names the JSON form: each event is one line with `ts`
//! (RFC 3339), `event` (the snake_case variant name) and the variant's
//! fields. No event carries a secret: events hold names, ids, states and the
//! server's messages only.

use serde::Serialize;

pub use crate::client::masterlog::{Note, NoteKind};

/// Account counts of a run (design §7 `run_finished.accounts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccountCounts {
    pub total: usize,
    pub transferred: usize,
    pub failed: usize,
    pub pending: usize,
}

/// The bytes of a run's accounts, when the plan knows every account's size
/// (a hint or the inventory): what a bar weighted by size needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByteCounts {
    pub total: u64,
    /// Of accounts already transferred.
    pub done: u64,
}

/// How a run ended (design §7 `run_finished.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Paused,
    Partial,
    Aborted,
    Failed,
}

/// One thing that happened. Serialized with `#[serde(tag = "event")]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run (or a resumed run) begins.
    RunStarted {
        plan: String,
        journal: String,
        resumed: bool,
        accounts: AccountCounts,
        sessions_planned: usize,
        /// Sizes, when every planned account's is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes: Option<ByteCounts>,
    },
    /// A step of the graph begins (`old1/s2/create`, …).
    StepStarted {
        step: String,
    },
    StepSucceeded {
        step: String,
    },
    /// A step failed; `retryable` says whether ferry will try again.
    StepFailed {
        step: String,
        error: String,
        retryable: bool,
        attempt: u32,
    },
    /// A transfer session changed state on the server.
    SessionState {
        session: String,
        id: Option<String>,
        source: String,
        state: String,
        /// The account currently being worked on, if known.
        current: Option<String>,
        accounts: usize,
        done: usize,
    },
    /// An account was transferred (from the session's master.log), or
    /// adopted: found on the target, its restore over, without this journal
    /// having seen it end (`adopted` says how it was found).
    ItemSucceeded {
        account: String,
        source: String,
        session: String,
        warnings: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        adopted: Option<String>,
        /// What the restore's summary lists (warnings, skipped, dangerous
        /// and altered items), in the server's words.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notes: Vec<Note>,
        /// Its size, where the plan knows it (a hint or the inventory).
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// An account's items moved on (`exec::progress`: half for its
    /// TRANSFER, half for its RESTORE, from their item logs), with its size
    /// where known (the plan's hint or inventory, else what `master.log`
    /// says), so a bar can weigh it.
    ItemProgress {
        account: String,
        source: String,
        session: String,
        percent: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// An account failed, with the server's message.
    ItemFailed {
        account: String,
        source: String,
        session: String,
        message: String,
        will_retry: bool,
        /// Its size, where the plan knows it.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// A session made no progress for the stall timeout.
    SessionStalled {
        session: String,
        id: String,
        idle_secs: u64,
    },
    /// A warning the operator must see (e.g. TLS verification disabled).
    Warning {
        message: String,
    },
    /// The run stopped scheduling and paused its sessions.
    RunPaused {
        reason: String,
        resume: String,
    },
    /// The run's sessions were aborted.
    RunAborted {
        reason: String,
    },
    /// The last event of every `apply`.
    RunFinished {
        status: RunStatus,
        accounts: AccountCounts,
        duration_secs: f64,
        /// Failed accounts with the server's reason.
        failed: Vec<FailedAccount>,
        /// What the operator should do next, in one sentence: worded by
        /// `report::advice` from the facts here (the executor leaves it
        /// empty; `report::advice::Advised` fills it in).
        next: String,
        /// The plan as given.
        plan: String,
        /// `apply --simulate`.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        rehearsal: bool,
        /// Stopped by Ctrl-C or SIGTERM.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
    },
}

/// A failed account in the final summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedAccount {
    pub account: String,
    pub source: String,
    pub message: String,
    /// The next `apply` moves it again (a failed-item; a cut restore with
    /// nothing on the target); otherwise a person must look first.
    pub retried: bool,
}

/// Receives events. Implementations must be cheap: the executor calls
/// `event` inline.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}

/// A reporter that drops everything (tests, library use).
pub struct NullReporter;

impl Reporter for NullReporter {
    fn event(&self, _: &Event) {}
}

impl Event {
    /// The event's free-text fields: the server's messages, errors and
    /// reasons, warnings and advice. What [`Scrubbed`] cleans.
    pub fn free_text_mut(&mut self) -> Vec<&mut String> {
        match self {
            Event::StepFailed { error, .. } => vec![error],
            Event::ItemFailed { message, .. } | Event::Warning { message } => vec![message],
            Event::ItemSucceeded { notes, .. } => notes.iter_mut().map(|n| &mut n.text).collect(),
            Event::RunPaused { reason, resume } => vec![reason, resume],
            Event::RunAborted { reason } => vec![reason],
            Event::RunFinished { failed, next, .. } => {
                let mut v: Vec<&mut String> = failed.iter_mut().map(|f| &mut f.message).collect();
                v.push(next);
                v
            }
            _ => vec![],
        }
    }
}

impl Event {
    /// The fields that may hold a server's words, each with whether it may
    /// span lines (ferry's own composed messages) or is one value (a
    /// reason, a state). What [`ForHumans`] escapes.
    pub fn untrusted_mut(&mut self) -> Vec<(&mut String, bool)> {
        match self {
            Event::StepFailed { error, .. } => vec![(error, false)],
            Event::ItemFailed { message, .. } => vec![(message, false)],
            Event::ItemSucceeded { adopted, notes, .. } => adopted
                .iter_mut()
                .chain(notes.iter_mut().map(|n| &mut n.text))
                .map(|a| (a, false))
                .collect(),
            Event::SessionState {
                state, current, id, ..
            } => {
                let mut v = vec![(state, false)];
                v.extend(current.iter_mut().map(|c| (c, false)));
                v.extend(id.iter_mut().map(|i| (i, false)));
                v
            }
            Event::Warning { message } => vec![(message, true)],
            Event::RunPaused { reason, resume } => vec![(reason, true), (resume, true)],
            Event::RunAborted { reason } => vec![(reason, true)],
            Event::RunFinished { failed, next, .. } => {
                let mut v: Vec<(&mut String, bool)> =
                    failed.iter_mut().map(|f| (&mut f.message, false)).collect();
                v.push((next, true));
                v
            }
            _ => vec![],
        }
    }
}

/// A reporter for people: every event is passed on with its untrusted
/// fields escaped for a terminal ([`crate::untrusted`]), so a server's
/// control characters reach the screen as `\x1b`, `\r`, `\0`. The JSON
/// reporter does not need it (JSON escapes them itself).
pub struct ForHumans(pub Box<dyn Reporter>);

impl Reporter for ForHumans {
    fn event(&self, event: &Event) {
        let mut safe = event.clone();
        let mut changed = false;
        for (text, multiline) in safe.untrusted_mut() {
            let escaped = if multiline {
                crate::untrusted::text(text)
            } else {
                crate::untrusted::line(text)
            };
            if let std::borrow::Cow::Owned(s) = escaped {
                *text = s;
                changed = true;
            }
        }
        self.0.event(if changed { &safe } else { event });
    }
}

/// A reporter that passes every event on with any registered secret
/// scrubbed from its free text ([`crate::secret::scrub`]): the last line of
/// defence between a server that echoes a parameter and the terminal, the
/// JSON events and the report. `ops` wraps the caller's reporter in it.
pub struct Scrubbed(pub std::sync::Arc<dyn Reporter>);

impl Reporter for Scrubbed {
    fn event(&self, event: &Event) {
        let mut clean = event.clone();
        let mut changed = false;
        for text in clean.free_text_mut() {
            if let std::borrow::Cow::Owned(s) = crate::secret::scrub(text) {
                *text = s;
                changed = true;
            }
        }
        self.0.event(if changed { &clean } else { event });
    }
}

/// A shared reporter is a reporter (so an `Arc` can sit in a `Fanout`).
impl<R: Reporter + ?Sized> Reporter for std::sync::Arc<R> {
    fn event(&self, event: &Event) {
        (**self).event(event)
    }
}
