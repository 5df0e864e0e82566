//! `ferry validate` (placeholder until the plan issue lands).

use clap::Args;

use crate::ops::{CliError, ExitStatus, Outcome};

#[derive(Debug, Args)]
pub struct ValidateArgs {}

pub fn run(_args: ValidateArgs) -> Outcome {
    Err(CliError::msg(ExitStatus::Failure, "not built yet"))
}
