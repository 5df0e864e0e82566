//! `ferry schema`: print the plan's JSON Schema.

use clap::Args;

use crate::ops::Outcome;

/// Print the JSON Schema of plan files (the same as `schemas/plan.schema.json`).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ferry schema > schemas/plan.schema.json\n\n\
Editors with the YAML language server check and complete plans that start with:\n  \
# yaml-language-server: $schema=../schemas/plan.schema.json"
)]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs) -> Outcome {
    let out = crate::ops::schema::schema();
    super::print_stdout(&out.text);
    Ok(out.status)
}
