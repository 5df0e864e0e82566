//! `ferry status PLAN [--output json]`.

use std::path::PathBuf;

use clap::Args;

use super::OutputFormat;
use crate::ops::status::{StatusOptions, status};
use crate::ops::{ExitStatus, Outcome};

/// Show where a run stands, per source, per session and per account, from
/// the journal alone (no network).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry status plans/consolidation.yaml\n  \
ferry status plans/consolidation.yaml --output json | jq '.accounts | map_values(.state)'")]
pub struct StatusArgs {
    /// The plan file (names the default journal).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The journal: a file or `postgres://USER@HOST:PORT/DATABASE`
    /// [default: the plan's `journal:`, else .ferry/<plan stem>.journal].
    #[arg(long, value_name = "PATH|URL")]
    pub journal: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub fn run(args: StatusArgs) -> Outcome {
    let s = status(&StatusOptions {
        plan: args.plan,
        journal: args.journal,
    })?;
    match args.output {
        OutputFormat::Json => println!("{}", s.to_json()),
        OutputFormat::Text => print!("{}", s.to_text()),
    }
    Ok(ExitStatus::Success)
}
