//! `ferry pause PLAN` and `ferry abort PLAN`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::OutputFormat;
use super::output::reporter;
use crate::journal::record::ControlAction;
use crate::ops::Outcome;
use crate::ops::control::{ControlOptions, ControlResult, control, outcome};

/// Arguments shared by `pause` and `abort`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The journal: a file or `postgres://USER@HOST:PORT/DATABASE`
    /// [default: the plan's `journal:`, else .ferry/<plan stem>.journal].
    #[arg(long, value_name = "PATH|URL")]
    pub journal: Option<PathBuf>,
    /// How long to wait for a running apply to acknowledge, e.g. `30s`.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub wait: std::time::Duration,
    /// `text` or `json` (events on stdout).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub fn run(args: ControlArgs, action: ControlAction) -> Outcome {
    let reporter: Arc<dyn crate::events::Reporter> = reporter(args.output);
    let r = control(&ControlOptions {
        plan: args.plan,
        journal: args.journal,
        action,
        wait: args.wait,
        reporter,
    });
    let verb = match action {
        ControlAction::Pause => "pause",
        ControlAction::Abort => "abort",
    };
    match &r {
        Ok(ControlResult::Acknowledged { pid }) => eprintln!(
            "ferry: the running apply (pid {}) recorded the {verb} request; it {} its sessions and exits {}",
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            if verb == "pause" { "pauses" } else { "aborts" },
            if verb == "pause" { 3 } else { 5 }
        ),
        Ok(ControlResult::Direct { sessions }) => eprintln!(
            "ferry: no apply was running; {verb} recorded in the journal and sent to {sessions} open session(s){}",
            if verb == "pause" {
                "; run `ferry apply` to resume"
            } else {
                "; `ferry apply --restart` starts again"
            }
        ),
        Ok(ControlResult::NoRun) => eprintln!("ferry: no run in this journal; nothing to {verb}"),
        Err(_) => {}
    }
    outcome(r)
}
