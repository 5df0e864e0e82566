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
ferry status --watch plans/consolidation.yaml          in a second terminal beside apply\n  \
ferry status plans/consolidation.yaml --watch=10s\n  \
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
    /// Show the status again every INTERVAL (default 2s) until the run is
    /// no longer running, from the journal alone: for a second terminal
    /// beside an `apply`. On a terminal the screen is redrawn; otherwise
    /// each view is printed after the last (JSON: one object per line).
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, require_equals = true,
          default_missing_value = "2s",
          value_parser = humantime::parse_duration)]
    pub watch: Option<std::time::Duration>,
}

pub fn run(args: StatusArgs) -> Outcome {
    let opts = StatusOptions {
        plan: args.plan,
        journal: args.journal,
    };
    let Some(every) = args.watch else {
        let s = status(&opts)?;
        match args.output {
            OutputFormat::Json => println!("{}", s.to_json()),
            OutputFormat::Text => print!("{}", s.to_text()),
        }
        return Ok(ExitStatus::Success);
    };
    watch(
        &opts,
        args.output,
        every.max(std::time::Duration::from_millis(100)),
    )
}

/// `--watch`: a view every `every` until the run stops running (or a view
/// cannot be read). The journal is only read; a run not started yet is
/// waited for, since `status` may be started before `apply`.
fn watch(opts: &StatusOptions, output: OutputFormat, every: std::time::Duration) -> Outcome {
    use std::io::{IsTerminal, Write};
    let redraw = std::io::stdout().is_terminal() && output == OutputFormat::Text;
    let mut seen_running = false;
    loop {
        let s = status(opts)?;
        let frame = match output {
            OutputFormat::Json => format!("{}\n", serde_json::to_string(&s).expect("serialisable")),
            OutputFormat::Text => {
                let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                format!(
                    "{}\n(ferry status --watch, {at}; Ctrl-C to stop)\n",
                    s.to_text()
                )
            }
        };
        {
            let mut out = std::io::stdout().lock();
            if redraw {
                // Clear the screen and home the cursor: ferry's own escape,
                // the frame itself is escaped text.
                let _ = out.write_all(b"\x1b[2J\x1b[H");
            }
            let _ = out.write_all(crate::secret::scrub(&frame).as_bytes());
            if !redraw && output == OutputFormat::Text {
                let _ = out.write_all(b"\n");
            }
            if out.flush().is_err() {
                // The reader went away (`| head`): nothing left to do.
                return Ok(ExitStatus::Success);
            }
        }
        let running = s.status == "running";
        seen_running |= running;
        if !running && (seen_running || s.status != "not_started") {
            return Ok(ExitStatus::Success);
        }
        std::thread::sleep(every);
    }
}
