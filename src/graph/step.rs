//! Step ids: the one place they are made and spelled.
//!
//! Owns: [`StepId`], the typed name of every step — the compiled graph's
//! (a source's preflight; a session's create, package, enqueue, start,
//! await, verify) and the calls the executor makes within them (a state
//! poll and a log read are part of `await`; a mirror write of `create`; a
//! pause or an abort of the session) or for the whole run (reading the
//! target's record, the survey, a verification of every account, a
//! source's analysis). Its `Display` is the string the journal's
//! `step_failed` records and the events carry (`old1/s2/enqueue/shop`);
//! compile, exec, `ferry plan --journal` marks and the report all build ids
//! through it. Does not own: what a step does (`exec`) or how a mark is
//! derived from a journal (`ops::plan`).

use std::fmt;

use serde::{Serialize, Serializer};

/// One step of a session instance, or one call within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionStep {
    /// `create_remote_root_transfer_session` (a graph step).
    Create,
    /// Writing the session to the target's record (part of creating it).
    Mirror,
    /// The session's remote analysis, for verification (part of creating
    /// it, `policy.verify: basic`).
    Analyse,
    /// `enqueue_transfer_item` of a package (a graph step).
    Package(String),
    /// The enqueue phase as a whole (events).
    EnqueueAll,
    /// `enqueue_transfer_item` of an account, by its user on the source
    /// (WHM's item key; a graph step).
    Enqueue(String),
    /// `start_transfer_session` (a graph step).
    Start,
    /// Waiting for the session to end (a graph step).
    Await,
    /// `get_transfer_session_state` (a call of `await`).
    State,
    /// `fetch_transfer_session_log` (a call of `await`).
    Log,
    /// `pause_transfer_session`.
    Pause,
    /// `abort_transfer_session`.
    Abort,
    /// `listaccts` for the session's accounts (a graph step).
    Verify,
}

impl SessionStep {
    fn suffix(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow::{Borrowed, Owned};
        match self {
            SessionStep::Create => Borrowed("create"),
            SessionStep::Mirror => Borrowed("mirror"),
            SessionStep::Analyse => Borrowed("analyse"),
            SessionStep::Package(p) => Owned(format!("package/{p}")),
            SessionStep::EnqueueAll => Borrowed("enqueue"),
            SessionStep::Enqueue(u) => Owned(format!("enqueue/{u}")),
            SessionStep::Start => Borrowed("start"),
            SessionStep::Await => Borrowed("await"),
            SessionStep::State => Borrowed("state"),
            SessionStep::Log => Borrowed("log"),
            SessionStep::Pause => Borrowed("pause"),
            SessionStep::Abort => Borrowed("abort"),
            SessionStep::Verify => Borrowed("verify"),
        }
    }
}

/// A run-wide step of the executor (no session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunStep {
    /// Reading the target's record of the plan's sessions.
    MirrorRead,
    /// `listaccts` before anything is enqueued.
    Survey,
    /// `listaccts` for every account left unverified.
    Verify,
}

/// The typed id of a step. `Display` gives the journal's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepId {
    /// `old1/preflight`: the target can log in to the source.
    Preflight { source: String },
    /// `old1/analysis`: a read-only analysis session of the source.
    Analysis { source: String },
    /// `old1/s2/create`, `old1/s2#2/enqueue/shop`, …: a step of a session
    /// instance (`session` is the instance's key).
    Session { session: String, step: SessionStep },
    /// `run/verify`, `mirror/read`, `target/survey`.
    Run(RunStep),
}

impl StepId {
    pub fn preflight(source: &str) -> StepId {
        StepId::Preflight {
            source: source.to_string(),
        }
    }

    pub fn analysis(source: &str) -> StepId {
        StepId::Analysis {
            source: source.to_string(),
        }
    }

    pub fn session(session: &str, step: SessionStep) -> StepId {
        StepId::Session {
            session: session.to_string(),
            step,
        }
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepId::Preflight { source } => write!(f, "{source}/preflight"),
            StepId::Analysis { source } => write!(f, "{source}/analysis"),
            StepId::Session { session, step } => write!(f, "{session}/{}", step.suffix()),
            StepId::Run(RunStep::MirrorRead) => f.write_str("mirror/read"),
            StepId::Run(RunStep::Survey) => f.write_str("target/survey"),
            StepId::Run(RunStep::Verify) => f.write_str("run/verify"),
        }
    }
}

impl Serialize for StepId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spellings the journal and the events have always used.
    #[test]
    fn ids_spell_as_the_journal_does() {
        let s = |step| StepId::session("old1/s2#2", step).to_string();
        assert_eq!(StepId::preflight("old1").to_string(), "old1/preflight");
        assert_eq!(s(SessionStep::Create), "old1/s2#2/create");
        assert_eq!(
            s(SessionStep::Package("gold".into())),
            "old1/s2#2/package/gold"
        );
        assert_eq!(
            s(SessionStep::Enqueue("shop".into())),
            "old1/s2#2/enqueue/shop"
        );
        assert_eq!(s(SessionStep::EnqueueAll), "old1/s2#2/enqueue");
        assert_eq!(s(SessionStep::State), "old1/s2#2/state");
        assert_eq!(StepId::Run(RunStep::Verify).to_string(), "run/verify");
        assert_eq!(
            serde_json::to_string(&StepId::analysis("old3")).unwrap(),
            "\"old3/analysis\""
        );
    }
}
