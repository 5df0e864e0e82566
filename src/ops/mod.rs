//! One function per command. `cli` turns flags into an options struct and
//! calls exactly one function here; nothing below `cli` sees clap types.
//!
//! Owns: exit statuses ([`ExitStatus`], design §3) and the error every
//! command returns ([`Error`], which decides its exit status). Does not own: printing (commands return
//! reports; `cli` renders them) or any terminal handling.

use std::path::{Path, PathBuf};

pub mod plan;
pub mod report;
pub mod schema;
pub mod validate;

/// A report of findings (`ferry check`, `ferry verify`): a table for a
/// person, JSON lines for a program, one verdict line, and its exit status
/// (design §3: 0 when nothing failed, 1 otherwise).
pub trait Findings {
    /// Printed on stderr before the report (e.g. `tls.insecure`).
    fn warnings(&self) -> &[String];
    /// How many findings fail the report.
    fn failed(&self) -> usize;
    /// The one-line verdict.
    fn verdict_line(&self) -> String;
    /// One line per finding (a server's words escaped), without the verdict.
    fn table(&self) -> String;
    /// JSON Lines: one object per finding, then the summary.
    fn render_json(&self) -> String;

    /// The table, a blank line, then the verdict.
    fn render_text(&self) -> String {
        format!("{}\n{}\n", self.table(), self.verdict_line())
    }

    fn status(&self) -> ExitStatus {
        if self.failed() == 0 {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        }
    }
}

/// Exit codes of design §3. `main` turns these into the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every account transferred, or validation passed.
    Success = 0,
    /// Runtime failure; the journal is consistent and `apply` can run again.
    Failure = 1,
    /// Invalid plan or arguments, or a plan changed incompatibly.
    Invalid = 2,
    /// Run paused (policy or `ferry pause`); run `apply` again to resume.
    Paused = 3,
    /// Run finished, some accounts failed (policy `continue`).
    Partial = 4,
    /// Run aborted.
    Aborted = 5,
    /// Another `apply` holds the journal.
    Locked = 6,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

pub use error::{Error, run_exit_status};

/// What a command returns: its exit status, or why it stopped.
pub type Outcome = Result<ExitStatus, Error>;

/// The default journal path of design §2: `.ferry/<plan file stem>.journal`
/// next to the plan file (see [`journal`]).
pub fn default_journal_path(plan: &Path) -> PathBuf {
    journal::default_path(plan, journal::Kind::Run)
}

pub mod apply;
pub mod check;
pub mod control;
pub mod copy;
pub mod error;
pub mod inventory;
pub mod journal;
mod observe;
pub mod resolve;
pub mod simulate;
pub mod status;
pub mod unlock;
pub mod verify;
