//! `--help` examples for every command, kept in one place and attached to
//! the clap command tree at startup ([`attach`]). A command that sets its
//! own `after_help` keeps it. A test parses every example line, so an
//! example that stops being a valid invocation fails the build.

/// The examples of one subcommand, or `None`.
pub fn for_command(name: &str) -> Option<&'static str> {
    Some(match name {
        "validate" => {
            "Examples:
  ferry validate plans/q4.yaml              check one plan: schema and rules, every problem at once
  ferry validate plans/*.yaml               check every plan (in CI, on each pull request)"
        }
        "plan" => {
            "Examples:
  ferry plan plans/q4.yaml                  the step graph, marked with progress from the journal
  ferry plan plans/q4.yaml --format json    the same as JSON, for scripts
  ferry plan plans/q4.yaml --format markdown > comment.md   a pull-request comment
  ferry plan plans/q4.yaml --format dot | dot -Tsvg > plan.svg"
        }
        "check" => {
            "Examples:
  ferry check plans/q4.yaml                 read-only preflight before a migration window:
                                            credentials, free usernames, accounts present"
        }
        "apply" => {
            "Examples:
  ferry apply --simulate plans/q4.yaml      rehearse the whole plan on the built-in simulator
  ferry apply plans/q4.yaml                 run it; after a pause, run it again to resume
  ferry apply plans/q4.yaml --output json > events.jsonl   JSON events for CI (design §7)

Exit codes: 0 all moved, 1 runtime failure (run again), 2 invalid plan, 3 paused (fix, run
again), 4 some accounts failed, 5 aborted, 6 another apply holds the journal."
        }
        "pause" => {
            "Examples:
  ferry pause plans/q4.yaml                 from another terminal: stop scheduling, pause the
                                            running sessions gracefully; `ferry apply` resumes"
        }
        "abort" => {
            "Examples:
  ferry abort plans/q4.yaml                 abort every running session of the run (no resume)"
        }
        "status" => {
            "Examples:
  ferry status plans/q4.yaml                per account, session and source, from the journal
  ferry status plans/q4.yaml --output json | jq '.accounts | map_values(.state)'"
        }
        "report" => {
            "Examples:
  ferry report plans/q4.yaml --html q4-report.html
  ferry report plans/q4.yaml --html q4-report.html --journal ci/.ferry/q4.journal"
        }
        "schema" => {
            "Examples:
  ferry schema > plan.schema.json           for editors: # yaml-language-server: $schema=plan.schema.json"
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
    use super::*;

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

    #[test]
    fn every_example_of_an_existing_command_parses() {
        let cmd = crate::cli::command();
        // Every built ferry command but `schema` takes an argument (a plan or
        // a shell); one without is a placeholder another branch replaces.
        let names: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| s.get_positionals().next().is_some() || s.get_name() == "schema")
            .map(|s| s.get_name().to_string())
            .collect();
        let mut checked = 0;
        for name in &names {
            let Some(text) = for_command(name) else {
                continue;
            };
            for argv in invocations(text) {
                assert_eq!(&argv[1], name, "example under the wrong command: {argv:?}");
                if let Err(e) = cmd.clone().try_get_matches_from(&argv) {
                    panic!("example `{}` does not parse:\n{e}", argv.join(" "));
                }
                checked += 1;
            }
        }
        assert!(checked >= 4, "only {checked} examples checked");
    }
}
