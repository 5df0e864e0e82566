//! The command line: clap types and one thin file per command.
//!
//! Owns: flags, `--help` texts, rendering errors once with their exit code,
//! tracing initialisation. Does not own: any behaviour — each command builds
//! an options struct and makes one `ops` call.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::ops::{Error, ExitStatus, Findings, Outcome};

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
    Inventory(inventory::InventoryArgs),
    Apply(apply::ApplyArgs),
    /// Pause a run: the running apply (if any) stops scheduling and pauses
    /// its sessions on the server; the journal records who asked.
    Pause(control::ControlArgs),
    /// Abort a run: its sessions are aborted on the server; resuming needs
    /// `apply --restart`.
    Abort(control::ControlArgs),
    Status(status::StatusArgs),
    Verify(verify::VerifyArgs),
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
mod inventory;
mod journal;
pub mod output;
mod plan;
mod report;
mod schema;
mod status;
mod unlock;
mod validate;
mod verify;

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
        Command::Inventory(a) => inventory::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Pause(a) => control::run(a, crate::journal::record::ControlAction::Pause),
        Command::Abort(a) => control::run(a, crate::journal::record::ControlAction::Abort),
        Command::Status(a) => status::run(a),
        Command::Verify(a) => verify::run(a),
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

/// How ferry talks to WHM, for every command that does (`apply`, `check`,
/// `verify`, `inventory`).
#[derive(Debug, clap::Args)]
pub struct WhmArgs {
    /// Timeout of one WHM request, e.g. `30s` [default: 60s; 5s for
    /// `apply --simulate`]. A server that trickles its answer is cut off
    /// after it, and the request retried where that is safe.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub request_timeout: Option<std::time::Duration>,
}

/// A findings report (`check`, `verify`): its warnings on stderr, then the
/// table on stdout, or JSON lines on stdout and the verdict on stderr.
/// Returns the report's exit status.
pub(crate) fn print_findings(output: OutputFormat, report: &impl Findings) -> ExitStatus {
    for w in report.warnings() {
        eprintln!("{}", crate::untrusted::text(&crate::secret::scrub(w)));
    }
    match output {
        OutputFormat::Text => print_stdout(&report.render_text()),
        OutputFormat::Json => {
            print_stdout(&report.render_json());
            eprintln!("{}", report.verdict_line());
        }
    }
    report.status()
}

/// Renders an error once and maps the outcome to the process exit code
/// (decided by [`Error::exit_status`]).
pub fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            if !e.is_reported() {
                // Last line of defence: no registered secret in an error.
                eprint!("{}", crate::secret::scrub(&render_error(&e)));
            }
            ExitCode::from(e.exit_status().code())
        }
    }
}

/// A plan's diagnostics as `ferry validate` shows them (colour on a
/// terminal); any other error as `error: …`, escaped for the terminal since
/// it may carry a server's words.
fn render_error(e: &Error) -> String {
    if let Error::Plan {
        diagnostics,
        validate,
    } = e
    {
        let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut text = diagnostics.render_human(color);
        if let Some(plan) = validate {
            text.push_str(&crate::ops::error::validate_hint(plan));
            text.push('\n');
        }
        return text;
    }
    let text = crate::untrusted::text(&e.to_string()).into_owned();
    format!("error: {text}\n")
}
