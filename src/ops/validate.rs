//! `ferry validate PLAN...`: parse and check plans; every problem of every
//! file, then exit 2 if there was any.

use std::path::PathBuf;

use super::ExitStatus;
use crate::plan::Diagnostics;

/// What `ferry validate` was asked to do.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    pub plans: Vec<PathBuf>,
}

/// A plan that passed, with a one-line summary of what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPlan {
    pub path: PathBuf,
    pub sources: usize,
    pub accounts: usize,
    pub sessions: usize,
}

/// The outcome: the valid plans and the problems of the others.
#[derive(Debug, Clone)]
pub struct ValidateReport {
    pub valid: Vec<ValidPlan>,
    pub diagnostics: Diagnostics,
    pub status: ExitStatus,
}

/// Validates every plan (all files, all problems). No network.
pub fn validate(opts: &ValidateOptions) -> ValidateReport {
    let mut valid = Vec::new();
    let mut diagnostics = Diagnostics::new();
    for path in &opts.plans {
        match crate::plan::load(path) {
            Ok(loaded) => {
                let compiled = crate::graph::compile(&loaded.plan);
                valid.push(ValidPlan {
                    path: path.clone(),
                    sources: loaded.plan.sources.len(),
                    accounts: loaded.plan.sources.iter().map(|s| s.accounts.len()).sum(),
                    sessions: compiled.sessions.len(),
                });
            }
            Err(d) => diagnostics.extend(d),
        }
    }
    let status = if diagnostics.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Invalid
    };
    ValidateReport {
        valid,
        diagnostics,
        status,
    }
}
