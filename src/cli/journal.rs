//! `ferry journal copy FROM TO`.

use clap::{Args, Subcommand};

use crate::ops::copy::copy;
use crate::ops::{ExitStatus, Outcome};

/// Work with a run's journal itself.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry journal copy plans/.ferry/dc1.journal postgres://ferry@db.example.net/ferry\n  \
ferry journal copy postgres://ferry@db.example.net/ferry#dc1 dc1-backup.journal")]
pub struct JournalArgs {
    #[command(subcommand)]
    pub command: JournalCommand,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Copy a run between a journal file and PostgreSQL (either way), with
    /// its records' times; never over an existing journal or run. A run in
    /// the database is named after `#` (its plan's name); copying a file
    /// in, it may be left out. The database password comes from PGPASSWORD.
    /// Copy only a run that no apply is writing.
    #[command(after_help = "Examples:\n  \
ferry journal copy plans/.ferry/dc1.journal postgres://ferry@db.example.net/ferry\n  \
ferry journal copy postgres://ferry@db.example.net/ferry#dc1 dc1-backup.journal")]
    Copy {
        /// A journal file, or postgres://USER@HOST:PORT/DATABASE#RUN.
        #[arg(value_name = "FROM")]
        from: String,
        /// A new journal file, or postgres://USER@HOST:PORT/DATABASE[#RUN].
        #[arg(value_name = "TO")]
        to: String,
    },
}

pub fn run(args: JournalArgs) -> Outcome {
    match args.command {
        JournalCommand::Copy { from, to } => {
            let c = copy(&from, &to)?;
            eprintln!("ferry: copied {} records of the run `{}`", c.records, c.run);
            Ok(ExitStatus::Success)
        }
    }
}
