//! `ferry check PLAN [--output text|json]`: flags → [`ops::check`]; prints
//! the report (table or JSON lines on stdout; warnings and errors on stderr).
//!
//! [`ops::check`]: crate::ops::check

use std::path::PathBuf;

use clap::Args;

use super::OutputFormat;
use crate::ops::check::{CheckError, CheckOptions, check};
use crate::ops::{Error, Outcome};

/// Read-only preflight against the live servers: the target answers and
/// accepts the token, each source's SSH credentials work, every account and
/// package exists on its source, every target username is free.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry check plans/fleet.yaml\n  \
ferry check plans/fleet.yaml --output json | jq 'select(.verdict == \"fail\")'\n\n\
Nothing is transferred: each source's analysis session is created, never started, then aborted.\n\
Exit codes: 0 every check passed, 1 a check failed, 2 invalid plan or missing secret.")]
pub struct CheckArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// `text`: a table and a verdict; `json`: one JSON object per finding.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub whm: super::WhmArgs,
}

pub fn run(args: CheckArgs) -> Outcome {
    let mut opts = CheckOptions::new(args.plan);
    opts.request_timeout = args.whm.request_timeout;
    let report = match check(&opts) {
        Ok(r) => r,
        Err(CheckError::Plan(diagnostics)) => {
            return Err(Error::Plan {
                diagnostics,
                validate: None,
            });
        }
        Err(CheckError::Invalid(m)) => return Err(Error::Usage(m)),
        Err(CheckError::Runtime(m)) => return Err(Error::Failed(m)),
    };
    Ok(super::print_findings(args.output, &report))
}
