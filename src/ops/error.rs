//! Why a command stopped: one typed error for every command, and the one
//! place that decides an exit code.
//!
//! Owns: [`Error`], what each variant means for the operator, and
//! [`Error::exit_status`] / [`run_exit_status`] — design §3's exit codes,
//! decided here and nowhere else. Does not own: rendering (`cli` renders an
//! error once, at the edge, escaping a server's text and scrubbing
//! secrets), or the errors' causes (`plan`, `journal`, `exec`, `client`
//! keep their own types; they travel here unchanged, not stringified).

use std::path::PathBuf;

use crate::events::RunStatus;
use crate::exec::ExecError;
use crate::journal::{JournalError, LockError};
use crate::plan::Diagnostics;

use super::ExitStatus;

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan does not load; its diagnostics carry file, line and column.
    /// `validate` names the plan for the closing hint (`apply`), or is
    /// `None` where the command's own output already says what to do.
    #[error(
        "{}{}",
        diagnostics.render_human(false),
        validate.as_deref().map(validate_hint).unwrap_or_default()
    )]
    Plan {
        diagnostics: Diagnostics,
        validate: Option<PathBuf>,
    },
    /// The arguments, or something the plan points at (a secret, a CA file,
    /// a scenario, the target's address), cannot be used. Nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// A secret reference or a file the plan names cannot be resolved.
    /// Nothing was sent.
    #[error(transparent)]
    Resolve(#[from] super::resolve::ResolveError),
    /// The journal given belongs to another plan; it is left untouched.
    #[error("the journal {} belongs to the plan `{theirs}`, not to `{mine}`{fix}", journal.display())]
    ForeignJournal {
        journal: PathBuf,
        theirs: String,
        mine: String,
        /// What to do, starting with its separator (`; pass …`).
        fix: String,
    },
    /// Another `apply` holds the journal, or its lock file cannot be used.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The run refused to go on, or stopped (plan changed, aborted, target
    /// or journal failure).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The journal cannot be read, or is damaged (or, in PostgreSQL, its
    /// lease was lost: see [`Error::Pg`]).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The journal in PostgreSQL: a bad location, the database unreachable,
    /// the run's lease held or lost, a damaged run.
    #[error(transparent)]
    Pg(#[from] crate::journal::pg::PgError),
    /// A file ferry must read or write (journal folder, report, control
    /// request, runtime) is not usable.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The in-process simulator of a rehearsal did not start.
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    /// The command ran and failed; the message says why and what next.
    #[error("{0}")]
    Failed(String),
    /// The command has already printed everything it had to say; only its
    /// exit status is left.
    #[error("")]
    Reported(ExitStatus),
}

/// The closing line of an invalid plan's error in `apply`.
pub(crate) fn validate_hint(plan: &std::path::Path) -> String {
    format!(
        "the plan is invalid; fix it (see `ferry validate {}`)",
        plan.display()
    )
}

impl Error {
    /// Design §3's exit code for this error: the one place it is decided.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Plan { .. }
            | Error::Usage(_)
            | Error::Resolve(_)
            | Error::ForeignJournal { .. } => ExitStatus::Invalid,
            Error::Lock(LockError::Held { .. }) => ExitStatus::Locked,
            Error::Lock(LockError::Io { .. }) => ExitStatus::Failure,
            Error::Exec(e) => match e {
                ExecError::PlanChanged { .. }
                | ExecError::FoundOnTarget { .. }
                | ExecError::LiveTransferUnsupported { .. }
                | ExecError::StalePlan { .. } => ExitStatus::Invalid,
                ExecError::Aborted { .. } => ExitStatus::Aborted,
                ExecError::Journal(JournalError::Db { source, .. }) => pg_status(source),
                ExecError::Target(_) | ExecError::Journal(_) => ExitStatus::Failure,
            },
            Error::Journal(JournalError::Db { source, .. }) => pg_status(source),
            Error::Pg(e) => pg_status(e),
            Error::Journal(_) | Error::Io { .. } | Error::Sim(_) | Error::Failed(_) => {
                ExitStatus::Failure
            }
            Error::Reported(status) => *status,
        }
    }

    /// An I/O failure on `what` (a sentence naming the file).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether the command already printed what it had to say.
    pub fn is_reported(&self) -> bool {
        matches!(self, Error::Reported(_))
    }
}

/// A PostgreSQL journal's error: 2 for a configuration (a bad URL, a
/// password in it), 6 for a lease held or lost, else 1.
fn pg_status(e: &crate::journal::pg::PgError) -> ExitStatus {
    use crate::journal::pg::PgError;
    match e {
        PgError::Config(_) => ExitStatus::Invalid,
        PgError::Held { .. } | PgError::Lost { .. } => ExitStatus::Locked,
        _ => ExitStatus::Failure,
    }
}

/// Design §3's exit code for a run that ended without an error.
pub fn run_exit_status(status: RunStatus) -> ExitStatus {
    match status {
        RunStatus::Succeeded => ExitStatus::Success,
        RunStatus::Paused => ExitStatus::Paused,
        RunStatus::Partial => ExitStatus::Partial,
        RunStatus::Aborted => ExitStatus::Aborted,
        RunStatus::Failed => ExitStatus::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_error_has_its_exit_code() {
        let io = || std::io::Error::other("x");
        let cases: Vec<(Error, ExitStatus)> = vec![
            (Error::Usage("bad".into()), ExitStatus::Invalid),
            (
                Error::ForeignJournal {
                    journal: "j".into(),
                    theirs: "a".into(),
                    mine: "b".into(),
                    fix: String::new(),
                },
                ExitStatus::Invalid,
            ),
            (
                Error::Lock(LockError::Held {
                    journal: "j".into(),
                    holder: Default::default(),
                }),
                ExitStatus::Locked,
            ),
            (
                Error::Lock(LockError::Io {
                    path: "j".into(),
                    source: io(),
                }),
                ExitStatus::Failure,
            ),
            (
                Error::Exec(ExecError::PlanChanged { accounts: vec![] }),
                ExitStatus::Invalid,
            ),
            (
                Error::Exec(ExecError::Aborted { reason: "r".into() }),
                ExitStatus::Aborted,
            ),
            (
                Error::Exec(ExecError::FoundOnTarget {
                    accounts: vec![],
                    plan: "p".into(),
                }),
                ExitStatus::Invalid,
            ),
            (Error::io("cannot write r", io()), ExitStatus::Failure),
            (Error::Failed("stopped".into()), ExitStatus::Failure),
            (Error::Reported(ExitStatus::Partial), ExitStatus::Partial),
        ];
        for (e, want) in cases {
            assert_eq!(e.exit_status(), want, "{e:?}");
        }
        assert_eq!(run_exit_status(RunStatus::Paused), ExitStatus::Paused);
        assert_eq!(run_exit_status(RunStatus::Partial), ExitStatus::Partial);
    }

    #[test]
    fn an_invalid_plan_for_apply_says_how_to_see_it() {
        let e = Error::Plan {
            diagnostics: Diagnostics::new(),
            validate: Some("p.yaml".into()),
        };
        assert!(
            e.to_string()
                .ends_with("the plan is invalid; fix it (see `ferry validate p.yaml`)")
        );
    }
}
