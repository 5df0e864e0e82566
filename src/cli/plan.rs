//! `ferry plan` (placeholder until the plan issue lands).

use clap::Args;

use crate::ops::{CliError, ExitStatus, Outcome};

#[derive(Debug, Args)]
pub struct PlanArgs {}

pub fn run(_args: PlanArgs) -> Outcome {
    Err(CliError::msg(ExitStatus::Failure, "not built yet"))
}
