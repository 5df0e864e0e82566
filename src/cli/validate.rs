//! `ferry validate PLAN... [--output text|json]`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::OutputFormat;
use crate::ops::validate::{ValidateOptions, validate};
use crate::ops::{Error, ExitStatus, Outcome};

/// Check plans: YAML syntax, keys and types, and every semantic rule.
/// Prints every problem of every file with file:line:column, what is wrong
/// and how to fix it. Exit 0 when all plans are valid, 2 otherwise.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry validate plans/consolidation.yaml\n  \
ferry validate plans/*.yaml\n  \
ferry validate --output json plans/new.yaml | jq '.[] | \"\\(.line):\\(.column) \\(.message)\"'\n\n\
With --output json, stdout is a JSON array of {file, line, column, message, path, help}\n\
(empty when every plan is valid). No network is used.")]
pub struct ValidateArgs {
    /// Plan files to check.
    #[arg(required = true, value_name = "PLAN")]
    pub plans: Vec<PathBuf>,
    /// `text` (human, with snippets, on stderr) or `json` (on stdout).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub fn run(args: ValidateArgs) -> Outcome {
    let report = validate(&ValidateOptions { plans: args.plans });
    match args.output {
        OutputFormat::Json => {
            super::print_stdout(&format!("{}\n", report.diagnostics.to_json()));
        }
        OutputFormat::Text => {
            let mut lines = String::new();
            for v in &report.valid {
                lines.push_str(&format!(
                    "{}: valid ({} source{}, {} account{}, {} transfer session{})\n",
                    v.path.display(),
                    v.sources,
                    if v.sources == 1 { "" } else { "s" },
                    v.accounts,
                    if v.accounts == 1 { "" } else { "s" },
                    v.sessions,
                    if v.sessions == 1 { "" } else { "s" },
                ));
            }
            super::print_stdout(&lines);
            if !report.diagnostics.is_empty() {
                let color = std::io::stderr().is_terminal();
                eprint!("{}", report.diagnostics.render_human(color));
            }
        }
    }
    match report.status {
        ExitStatus::Success => Ok(ExitStatus::Success),
        s => Err(Error::Reported(s)),
    }
}
