//! `--help` examples for the commands that do not set their own
//! `after_help`, attached to the clap command tree at startup ([`attach`]).
//! Every subcommand must end up with examples (a test checks). A test parses every example line, so an
//! example that stops being a valid invocation fails the build.

/// The examples of one subcommand, or `None`.
pub fn for_command(name: &str) -> Option<&'static str> {
    Some(match name {
        "pause" => {
            "Examples:
  ferry pause plans/consolidation.yaml      from another terminal, or with no apply running:
                                           stop scheduling and pause the run's sessions gracefully
  ferry apply plans/consolidation.yaml      later: resume where it stopped"
        }
        "abort" => {
            "Examples:
  ferry abort plans/consolidation.yaml      abort the run's sessions on the server; transferred
                                           accounts stay, the run cannot simply be resumed
  ferry apply --restart plans/consolidation.yaml   start again after an abort"
        }
        "report" => {
            "Examples:
  ferry report plans/consolidation.yaml --html report.html
  ferry report plans/consolidation.yaml --html rehearsal.html --journal .ferry/consolidation.simulate.journal
  ferry report plans/consolidation.yaml --html report.html --journal artifacts/.ferry/consolidation.journal"
        }
        "completions" => {
            "Examples:
  ferry completions bash > ~/.local/share/bash-completion/completions/ferry
  ferry completions zsh > ~/.zfunc/_ferry   (with fpath+=~/.zfunc before compinit)
  ferry completions fish > ~/.config/fish/completions/ferry.fish"
        }
        _ => return None,
    })
}

/// Adds [`for_command`]'s examples to each subcommand without its own
/// `after_help`.
pub fn attach(cmd: clap::Command) -> clap::Command {
    cmd.mut_subcommands(|sub| {
        if sub.get_after_help().is_some() || sub.get_after_long_help().is_some() {
            return sub;
        }
        match for_command(sub.get_name()) {
            Some(text) => sub.after_help(text),
            None => sub,
        }
    })
}

#[cfg(test)]
mod tests {
    /// The `ferry …` invocations of an example text: each line's command up
    /// to a pipe, a redirection or the two-space gap before its comment.
    fn invocations(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("ferry "))
            .map(|l| {
                let cmd = l.split("  ").next().unwrap();
                let cmd = cmd.split(['|', '>']).next().unwrap();
                cmd.split_whitespace().map(String::from).collect()
            })
            .collect()
    }

    #[test]
    fn every_subcommand_has_examples_in_its_help() {
        let mut cmd = crate::cli::command();
        cmd.build();
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let help = sub.clone().render_help().to_string();
            assert!(
                help.contains("Examples:\n  ferry "),
                "`ferry {} --help` has no examples:\n{help}",
                sub.get_name()
            );
        }
    }

    /// Every `ferry …` line in every subcommand's `--help` — ours and the
    /// ones commands set themselves — is a valid invocation, and the first
    /// example of a command runs that command.
    #[test]
    fn every_example_in_every_help_parses() {
        let mut cmd = crate::cli::command();
        cmd.build();
        let mut checked = 0;
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let help = sub.clone().render_help().to_string();
            let examples = invocations(help.split("Examples:").nth(1).unwrap_or(""));
            assert_eq!(
                examples.first().map(|a| a[1].as_str()),
                Some(sub.get_name()),
                "the first example of `ferry {}` runs it",
                sub.get_name()
            );
            for argv in examples {
                // Shell globs and `$VAR`s are the shell's business.
                let argv: Vec<String> = argv.into_iter().filter(|a| !a.starts_with('$')).collect();
                if let Err(e) = cmd.clone().try_get_matches_from(&argv) {
                    panic!("example `{}` does not parse:\n{e}", argv.join(" "));
                }
                checked += 1;
            }
        }
        assert!(checked >= 15, "only {checked} examples checked");
    }
}
