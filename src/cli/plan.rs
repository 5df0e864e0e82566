//! `ferry plan PLAN [--format text|json|dot|markdown] [--journal PATH]`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::graph::Format;
use crate::ops::plan::{PlanError, PlanOptions, plan};
use crate::ops::{Error, Outcome};

/// `--format` of `ferry plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PlanFormat {
    /// Grouped by wave, source and session, for a reviewer.
    #[default]
    Text,
    /// Sources, sessions and steps with their dependencies, for tools.
    Json,
    /// Graphviz: `ferry plan p.yaml --format dot | dot -Tsvg > plan.svg`.
    Dot,
    /// A pull-request comment.
    Markdown,
}

/// Compile a plan into its steps and show what will happen in which order:
/// waves of sources, transfer sessions and their accounts, and what each
/// session waits for. Deterministic: the same plan prints the same bytes.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry plan plans/consolidation.yaml\n  \
ferry plan plans/consolidation.yaml --format markdown > plan-comment.md\n  \
ferry plan plans/consolidation.yaml --format dot | dot -Tsvg > plan.svg\n  \
ferry plan plans/consolidation.yaml --format json | jq '.sessions[].key'\n  \
ferry plan plans/consolidation.yaml --journal .ferry/consolidation.journal\n  \
ferry plan plans/consolidation.yaml --detail\n\n\
A plan of more than 200 accounts is summarised per source (accounts, size, sessions) unless --detail.\n\
With a journal (--journal, or .ferry/<plan stem>.journal if it exists), each step is marked\n\
done / in progress / pending (JSON: `mark` on each step). An invalid plan prints its problems\n\
(as `ferry validate`) and exits 2; an unreadable or corrupt journal exits 1. No network is used.")]
pub struct PlanArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Journal whose progress marks the steps [default: .ferry/<plan stem>.journal, if it exists].
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Text: list every session and account even of a plan of more than
    /// 200 accounts (otherwise summarised per source).
    #[arg(long)]
    pub detail: bool,
}

pub fn run(args: PlanArgs) -> Outcome {
    let format = match args.format {
        PlanFormat::Text => Format::Text,
        PlanFormat::Json => Format::Json,
        PlanFormat::Dot => Format::Dot,
        PlanFormat::Markdown => Format::Markdown,
    };
    match plan(&PlanOptions {
        plan: args.plan,
        format,
        journal: args.journal,
        detail: args.detail,
    }) {
        Ok(out) => {
            for n in &out.notes {
                eprintln!("{n}");
            }
            super::print_stdout(&out.text);
            Ok(out.status)
        }
        Err(PlanError::Invalid(diagnostics)) => Err(Error::Plan {
            diagnostics,
            validate: None,
        }),
        Err(PlanError::Journal(e)) => Err(e.into()),
        Err(PlanError::Db(e)) => Err(e),
        Err(PlanError::OtherPlan {
            journal,
            theirs,
            mine,
        }) => Err(Error::ForeignJournal {
            journal,
            theirs,
            mine,
            fix: "; pass this plan's own journal with --journal".into(),
        }),
    }
}
