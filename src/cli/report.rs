//! `ferry report PLAN --html FILE`: flags → [`ReportOptions`] → one
//! `ops::report` call; says what was written.

use std::path::PathBuf;

use clap::Args;

use crate::ops::report::{ReportOptions, report};
use crate::ops::{ExitStatus, Outcome};
use crate::report::html::human_bytes;

/// Write a self-contained HTML report of a run, from its journal (no network).
///
/// The page has a summary, a timeline of the transfer sessions, every failure
/// with the server's message, and a sortable table of accounts. It loads
/// nothing from anywhere, so it can be attached to a ticket or mailed.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The plan file the run was applied from.
    pub plan: PathBuf,
    /// Where to write the report (created with mode 0600, replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    /// The run's journal [default: .ferry/<plan file stem>.journal].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> Outcome {
    let written = report(&ReportOptions {
        plan: args.plan,
        html: args.html,
        journal: args.journal,
    })?;
    if written.torn_tail {
        eprintln!(
            "warning: the journal's last line is incomplete (an apply was killed while writing it); \
             it was left out of the report"
        );
    }
    let t = written.totals;
    eprintln!(
        "wrote {} ({}): {} of {} accounts moved, {} failed, {} pending; {} session{}",
        written.path.display(),
        human_bytes(written.bytes as u64),
        t.transferred,
        t.total,
        t.failed,
        t.pending,
        written.sessions,
        if written.sessions == 1 { "" } else { "s" },
    );
    Ok(ExitStatus::Success)
}
