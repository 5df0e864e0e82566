//! Which journal a command uses, and whether it belongs to the plan.
//!
//! Owns: the default journal location (design §2) and the two checks every
//! command makes before it reads or writes a journal: a `--journal` whose
//! folder does not exist is an error (never a silent `mkdir -p`), and a
//! journal that records another plan's identity is refused (exit 2) and left
//! untouched. Does not own: the journal's format or lock (`journal`).
//!
//! The default does not depend on the current folder: it lives next to the
//! plan file, `<plan's folder>/.ferry/<plan file stem>.journal`, so the same
//! plan applied from two working folders uses one journal and one lock (the
//! second `apply` exits 6 naming the first's pid).

use std::path::{Path, PathBuf};

use super::Error;
use crate::plan::LoadedPlan;

/// Which journal of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The run's journal.
    Run,
    /// The rehearsal journal of `apply --simulate` (started afresh each time).
    Rehearsal,
}

/// `<plan's folder>/.ferry/<plan file stem>.journal` (or
/// `.simulate.journal` for a rehearsal).
pub fn default_path(plan: &Path, kind: Kind) -> PathBuf {
    let stem = plan
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".to_string());
    let dir = match plan.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file = match kind {
        Kind::Run => format!("{stem}.journal"),
        Kind::Rehearsal => format!("{stem}.simulate.journal"),
    };
    dir.join(".ferry").join(file)
}

/// The journal a command uses: `--journal` as given (its folder must
/// exist), or the default.
pub fn resolve(plan: &Path, given: Option<&Path>, kind: Kind) -> Result<PathBuf, Error> {
    let Some(p) = given else {
        return Ok(default_path(plan, kind));
    };
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Error::Usage(format!(
            "--journal {}: the folder {} does not exist; create it, or give a path in an \
             existing folder (ferry never creates it for you, so a typo cannot start a new, \
             empty journal)",
            p.display(),
            parent.display()
        )));
    }
    Ok(p.to_path_buf())
}

/// Creates the default journal's `.ferry` folder if the journal is the
/// default one (a `--journal` folder must already exist, see [`resolve`]).
pub fn prepare_dir(path: &Path) -> Result<(), Error> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::io(
            format!("cannot create the journal folder {}", dir.display()),
            e,
        )
    })
}

/// Refuses (exit 2) a journal that belongs to another plan. Reads only the
/// journal's first records; never writes it.
pub fn check_belongs(path: &Path, loaded: &LoadedPlan) -> Result<(), Error> {
    check_identity(path, &loaded.identity(), &loaded.path)
}

/// [`check_belongs`] for commands that read a journal without needing a
/// valid plan (`status`, `report`): the identity is the plan's `name:` if
/// the plan loads, else its file stem.
pub fn check_belongs_to_file(path: &Path, plan: &Path) -> Result<(), Error> {
    let mine = match crate::plan::load(plan) {
        Ok(loaded) => loaded.identity(),
        Err(_) => crate::plan::identity(None, plan),
    };
    check_identity(path, &mine, plan)
}

fn check_identity(path: &Path, mine: &str, plan: &Path) -> Result<(), Error> {
    match crate::journal::plan_identity(path) {
        Ok(Some(theirs)) if theirs != mine => Err(Error::ForeignJournal {
            journal: path.to_path_buf(),
            fix: format!(
                " ({}); ferry refuses to mix two plans' runs and left the journal untouched.\n\
                 Use this plan's own journal (drop --journal, or point it elsewhere); if this is \
                 the same plan renamed, add `name: {theirs}` to it",
                plan.display()
            ),
            theirs,
            mine: mine.to_string(),
        }),
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Journal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lives_next_to_the_plan() {
        assert_eq!(
            default_path(Path::new("plans/dc1.yaml"), Kind::Run),
            Path::new("plans/.ferry/dc1.journal")
        );
        assert_eq!(
            default_path(Path::new("dc1.yaml"), Kind::Rehearsal),
            Path::new("./.ferry/dc1.simulate.journal")
        );
        assert_eq!(
            default_path(Path::new("/srv/p/x.yml"), Kind::Run),
            Path::new("/srv/p/.ferry/x.journal")
        );
    }

    #[test]
    fn a_journal_in_a_missing_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("j.journal");
        assert_eq!(
            resolve(Path::new("p.yaml"), Some(&ok), Kind::Run).unwrap(),
            ok
        );
        let bad = dir.path().join("nope/j.journal");
        let e = resolve(Path::new("p.yaml"), Some(&bad), Kind::Run).unwrap_err();
        assert_eq!(e.exit_status(), crate::ops::ExitStatus::Invalid);
    }
}
