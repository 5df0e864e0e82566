//! The command line: clap types and one thin file per command.
//!
//! Owns: flags, `--help` texts, rendering errors once with their exit code,
//! tracing initialisation. Does not own: any behaviour — each command builds
//! an options struct and makes one `ops` call.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::ops::{CliError, ExitStatus, Outcome};

/// Output style shared by commands that can print JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

impl From<OutputFormat> for crate::report::Output {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Text => crate::report::Output::Text,
            OutputFormat::Json => crate::report::Output::Json,
        }
    }
}

/// Log line format (`--log-format`); verbosity comes from `RUST_LOG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Declarative migration orchestrator for cPanel & WHM servers",
    long_about = "ferry moves hosting accounts between cPanel & WHM servers from a YAML plan kept in git.\n\
                  It compiles the plan into a graph of WHM API steps, runs it with retries and a\n\
                  pause-on-error policy, and journals every step so an interrupted run resumes.",
    after_help = "Exit codes: 0 success, 1 runtime failure, 2 invalid plan or arguments, 3 paused,\n\
                  4 finished with failed accounts, 5 aborted, 6 another apply holds the journal.\n\n\
                  Rehearse a plan on the bundled simulator:  ferry apply --simulate plans/single-server.yaml"
)]
pub struct Cli {
    /// Log line format on stderr. Verbosity comes from RUST_LOG (default
    /// `warn`; RUST_LOG=ferry=debug logs each WHM call). Secrets are never
    /// logged, at any level.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Validate(validate::ValidateArgs),
    Plan(plan::PlanArgs),
    Schema(schema::SchemaArgs),
    Check(check::CheckArgs),
    Apply(apply::ApplyArgs),
    /// Pause a run: the running apply (if any) stops scheduling and pauses
    /// its sessions on the server; the journal records who asked.
    Pause(control::ControlArgs),
    /// Abort a run: its sessions are aborted on the server; resuming needs
    /// `apply --restart`.
    Abort(control::ControlArgs),
    Status(status::StatusArgs),
    Report(report::ReportArgs),
    ForceUnlock(unlock::UnlockArgs),
    Journal(journal::JournalArgs),
    Completions(completions::CompletionsArgs),
}

mod apply;
mod check;
mod completions;
mod control;
pub mod diagnostics;
mod examples;
mod journal;
pub mod output;
mod plan;
mod report;
mod schema;
mod status;
mod unlock;
mod validate;

/// The clap command tree with every subcommand's `--help` examples
/// ([`examples`]); what `main` parses with and what completions describe.
pub fn command() -> clap::Command {
    examples::attach(Cli::command())
}

/// Entry point of the `ferry` binary.
pub fn main() -> ExitCode {
    diagnostics::harden_process();
    diagnostics::install_panic_hook();
    let parsed = command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(ExitStatus::Invalid.code()),
            };
        }
    };
    diagnostics::init_logging(cli.log_format);
    let outcome = run(cli);
    exit_code(outcome)
}

fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Check(a) => check::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Pause(a) => control::run(a, crate::journal::record::ControlAction::Pause),
        Command::Abort(a) => control::run(a, crate::journal::record::ControlAction::Abort),
        Command::Status(a) => status::run(a),
        Command::Report(a) => report::run(a),
        Command::ForceUnlock(a) => unlock::run(a),
        Command::Journal(a) => journal::run(a),
        Command::Completions(a) => completions::run(a),
    }
}

/// Writes `text` to stdout. A closed pipe (`ferry plan p.yaml | head`) is
/// not an error worth a panic: the reader has what it wanted.
pub(crate) fn print_stdout(text: &str) {
    use std::io::Write;
    let text = crate::secret::scrub(text);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Renders an error once and maps the outcome to the process exit code.
pub fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(status) => ExitCode::from(status.code()),
        Err(CliError { status, report }) => {
            if let Some(report) = report {
                // Last line of defence: no registered secret in an error.
                eprintln!("{}", crate::secret::scrub(&render_error(&report)));
            }
            ExitCode::from(status.code())
        }
    }
}

/// A plain message as `error: …`; a message that is already rendered (a
/// plan's diagnostics, which start indented) as it is; a rich diagnostic
/// (labels, source, help) through miette's graphical handler.
fn render_error(report: &miette::Report) -> String {
    let plain = report.labels().is_none()
        && report.source_code().is_none()
        && report.help().is_none()
        && report.related().is_none();
    if !plain {
        // ferry's own diagnostics (a plan's spans and help), styled by
        // miette: no server text travels this way.
        return format!("{report:?}");
    }
    // A plain message may carry a server's words: escaped for the terminal.
    let text = crate::untrusted::text(&report.to_string()).into_owned();
    if text.starts_with(char::is_whitespace) {
        text
    } else {
        format!("error: {text}")
    }
}
