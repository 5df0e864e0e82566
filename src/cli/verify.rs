//! `ferry verify PLAN [--journal PATH] [--output text|json]`: flags →
//! [`ops::verify`]; prints a line per account (or JSON lines) on stdout.
//!
//! [`ops::verify`]: crate::ops::verify

use std::path::PathBuf;

use clap::Args;

use super::OutputFormat;
use crate::ops::Outcome;
use crate::ops::verify::{VerifyOptions, verify};

/// Read-only check of the target after a run: every account the journal
/// saw transferred is there, not suspended, with the planned owner, package
/// and main domain.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry verify plans/consolidation.yaml\n  \
ferry verify plans/consolidation.yaml --output json | jq 'select(.verdict == \"fail\")'\n\n\
Nothing is changed on the target or in the journal; a finding is for a person (ferry never moves an account again by itself).\n\
Exit codes: 0 every transferred account as planned, 1 findings or the target unreachable, 2 invalid plan or arguments.")]
pub struct VerifyArgs {
    /// The plan file (names the default journal).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The journal [default: .ferry/<plan stem>.journal].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// `text`: a line per account and a verdict; `json`: one object per account.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub whm: super::WhmArgs,
}

pub fn run(args: VerifyArgs) -> Outcome {
    let report = verify(&VerifyOptions {
        plan: args.plan,
        journal: args.journal,
        request_timeout: args.whm.request_timeout,
    })?;
    Ok(super::print_findings(args.output, &report))
}
