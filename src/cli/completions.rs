//! `ferry completions SHELL`: prints a completion script on stdout.

use clap::Args;
use clap_complete::Shell;

use crate::ops::{ExitStatus, Outcome};

/// Print a shell completion script (bash, zsh, fish, elvish, powershell).
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> Outcome {
    let mut cmd = super::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "ferry", &mut out);
    Ok(ExitStatus::Success)
}
