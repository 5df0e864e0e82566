//! `ferry plan PLAN`: compile a plan and render its step graph.

use std::path::PathBuf;

use super::ExitStatus;
use crate::graph::render::{self, Format, RenderOptions};
use crate::plan::Diagnostics;

/// What `ferry plan` was asked to do.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub plan: PathBuf,
    pub format: Format,
    /// The journal whose progress marks the steps (design §2).
    pub journal: PathBuf,
}

/// The rendering, plus notes for stderr.
#[derive(Debug, Clone)]
pub struct PlanOutput {
    pub text: String,
    pub notes: Vec<String>,
    pub status: ExitStatus,
}

/// Loads, validates, compiles and renders. An invalid plan gives its
/// diagnostics (exit 2).
///
/// Journal hook: marking steps done / in progress / pending needs the
/// journal reader (`journal::replay`), which is not part of this module yet.
/// When it exists, build a `Fn(&str) -> StepMark` from the replayed run
/// state and pass it as `RenderOptions::marks`; every renderer already
/// shows marks. Until then an existing journal is mentioned in `notes`.
pub fn plan(opts: &PlanOptions) -> Result<PlanOutput, Diagnostics> {
    let loaded = crate::plan::load(&opts.plan)?;
    let compiled = crate::graph::compile(&loaded.plan);
    let mut notes = Vec::new();
    if opts.journal.exists() {
        notes.push(format!(
            "note: journal {} exists, but this build cannot read journals yet; steps are shown without progress",
            opts.journal.display()
        ));
    }
    let ropts = RenderOptions {
        title: Some(opts.plan.display().to_string()),
        marks: None,
    };
    Ok(PlanOutput {
        text: render::render(&compiled, &loaded.plan, opts.format, &ropts),
        notes,
        status: ExitStatus::Success,
    })
}
