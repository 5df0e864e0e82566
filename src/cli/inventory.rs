//! `ferry inventory PLAN [--output PATH] [--request-timeout D]`: flags →
//! [`ops::inventory`]; prints a line per source and where the file is.
//!
//! [`ops::inventory`]: crate::ops::inventory

use std::path::PathBuf;

use clap::Args;

use crate::ops::inventory::{InventoryOptions, inventory};
use crate::ops::{ExitStatus, Outcome};

/// Read what every source holds (read-only remote analysis, as `check`
/// does) and write it next to the plan as `<plan stem>.inventory.json`:
/// per account its size, file count, domain, owner, package and
/// dedicated-IP flag. `plan` and `apply` then schedule by these sizes (a
/// `size` in the plan wins). Commit it and review its diffs like a lockfile.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry inventory plans/consolidation.yaml\n  \
git diff plans/consolidation.inventory.json\n\n\
Nothing is transferred: each analysis session is never started and is aborted afterwards.\n\
Exit codes: 0 written, 1 a source could not be analysed (nothing written; an older inventory is kept), 2 invalid plan or arguments.")]
pub struct InventoryArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Where to write [default: <plan stem>.inventory.json next to the plan].
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub whm: super::WhmArgs,
}

pub fn run(args: InventoryArgs) -> Outcome {
    let report = inventory(&InventoryOptions {
        plan: args.plan,
        output: args.output,
        request_timeout: args.whm.request_timeout,
    })?;
    for w in &report.warnings {
        eprintln!("{}", crate::untrusted::text(&crate::secret::scrub(w)));
    }
    super::print_stdout(&report.render_text());
    Ok(ExitStatus::Success)
}
