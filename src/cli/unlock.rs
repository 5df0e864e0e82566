//! `ferry force-unlock PLAN TOKEN`.

use std::path::PathBuf;

use clap::Args;

use crate::ops::unlock::{UnlockOptions, force_unlock};
use crate::ops::{ExitStatus, Outcome};

/// Free the lease of a run whose journal is in PostgreSQL, held by an
/// apply that is gone, without waiting for it to expire. Give the token
/// named by the refused apply (exit 6): any other token frees nothing. The
/// old holder, if it still runs, writes nothing more and stops (exit 6).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry force-unlock plans/consolidation.yaml 17      17: the token the refused apply named (exit 6)\n  \
ferry apply plans/consolidation.yaml                then resume the run, from any machine")]
pub struct UnlockArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The lease's current token.
    #[arg(value_name = "TOKEN")]
    pub token: i64,
    /// The journal: `postgres://USER@HOST:PORT/DATABASE` [default: the
    /// plan's `journal:`].
    #[arg(long, value_name = "URL")]
    pub journal: Option<PathBuf>,
}

pub fn run(args: UnlockArgs) -> Outcome {
    let was = force_unlock(&UnlockOptions {
        plan: args.plan,
        journal: args.journal,
        token: args.token,
    })?;
    if let Some(h) = was {
        eprintln!(
            "ferry: lease freed (it was held by {h}); the next apply takes it with a new token"
        );
    }
    Ok(ExitStatus::Success)
}
