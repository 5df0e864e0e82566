//! `ferry schema` (placeholder until the plan issue lands).

use clap::Args;

use crate::ops::{CliError, ExitStatus, Outcome};

#[derive(Debug, Args)]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs) -> Outcome {
    Err(CliError::msg(ExitStatus::Failure, "not built yet"))
}
