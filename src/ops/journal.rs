//! Which journal a command uses, and whether it belongs to the plan.
//!
//! Owns: where a command's journal is ([`Where`]: a file, or PostgreSQL as
//! the plan's `journal.postgres` or `--journal postgres://…` says, with its
//! password resolved here at the edge), the default file location
//! (design §2) and the two checks every command makes before it reads or
//! writes a journal file: a `--journal` whose
//! folder does not exist is an error (never a silent `mkdir -p`), and a
//! journal that records another plan's identity is refused (exit 2) and left
//! untouched. Does not own: the journal's format or lock (`journal`).
//!
//! The default does not depend on the current folder: it lives next to the
//! plan file, `<plan's folder>/.ferry/<plan file stem>.journal`, so the same
//! plan applied from two working folders uses one journal and one lock (the
//! second `apply` exits 6 naming the first's pid).

use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use super::Error;
use crate::journal::pg::{self, Db, Location, PgError};
use crate::journal::{JournalError, RunState};
use crate::plan::LoadedPlan;

/// Where a command's journal is.
#[derive(Debug, Clone)]
pub enum Where {
    File(PathBuf),
    /// The run named after the plan's identity, in this database.
    Pg {
        loc: Location,
        run: String,
    },
}

impl Where {
    /// For messages and `status`: the file, or `postgres://…#run`.
    pub fn label(&self) -> PathBuf {
        match self {
            Where::File(p) => p.clone(),
            Where::Pg { loc, run } => PathBuf::from(format!("{}#{run}", loc.display())),
        }
    }
}

/// The journal of `loaded` (its run, or with `kind` its rehearsal): a
/// `--journal postgres://…` or the plan's `journal.postgres` (a rehearsal
/// never touches the database: its journal is always a file), else a
/// file.
pub fn locate(loaded: &LoadedPlan, given: Option<&Path>, kind: Kind) -> Result<Where, Error> {
    let given_url = given
        .and_then(|p| p.to_str())
        .filter(|s| pg::is_url(s))
        .map(str::to_string);
    if let Some(url) = given_url {
        if kind == Kind::Rehearsal {
            return Err(Error::Usage(
                "--simulate keeps its rehearsal journal in a file, never in PostgreSQL; drop \
                 --journal (or give a file)"
                    .to_string(),
            ));
        }
        return Ok(Where::Pg {
            loc: location(loaded, Some(&url))?,
            run: loaded.identity(),
        });
    }
    if given.is_none() && kind == Kind::Run && loaded.plan.journal.is_some() {
        return Ok(Where::Pg {
            loc: location(loaded, None)?,
            run: loaded.identity(),
        });
    }
    Ok(Where::File(resolve(&loaded.path, given, kind)?))
}

/// [`locate`] for commands that read a journal without needing a valid
/// plan (`status`, `report`, `plan`): a file unless the plan loads and says
/// PostgreSQL, or `--journal` is a URL.
pub fn locate_for_reading(plan: &Path, given: Option<&Path>) -> Result<Where, Error> {
    let wants_pg = given.and_then(|p| p.to_str()).is_some_and(pg::is_url);
    match crate::plan::load(plan) {
        Ok(loaded) => locate(&loaded, given, Kind::Run),
        Err(_) if wants_pg => Err(Error::Usage(format!(
            "{}: the plan does not load, so ferry cannot tell which run in the database is \
                 its own; fix it (see `ferry validate {}`)",
            plan.display(),
            plan.display()
        ))),
        Err(_) => Ok(Where::File(resolve(plan, given, Kind::Run)?)),
    }
}

/// The database location: the plan's `journal.postgres` (its password and
/// CA resolved), its URL replaced by `url` if given.
fn location(loaded: &LoadedPlan, url: Option<&str>) -> Result<Location, Error> {
    let invalid = |m: String| Error::Usage(m.to_string());
    let cfg = loaded.plan.journal.as_ref();
    let url = url
        .map(str::to_string)
        .or_else(|| cfg.map(|c| c.postgres.url.clone()))
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let password = match cfg.and_then(|c| c.postgres.password.as_ref()) {
        Some(r) => Some(
            r.resolve(&loaded.base_dir, &mut warnings)
                .map_err(|e| invalid(format!("journal.postgres.password: {e}")))?,
        ),
        None => None,
    };
    let ca_pem = match cfg.and_then(|c| c.postgres.tls.as_ref()?.ca_file.as_ref()) {
        Some(ca) => {
            let p = loaded.base_dir.join(ca);
            Some(pg::read_ca(&p).map_err(|e| invalid(e.to_string()))?)
        }
        None => None,
    };
    let lease = cfg.map(|c| c.lease.0).unwrap_or(pg::DEFAULT_LEASE);
    Location::new(&url, password, ca_pem, lease).map_err(|e| invalid(format!("--journal: {e}")))
}

/// Connects to the journal's database (schema brought up to date).
pub fn connect(loc: &Location) -> Result<Arc<Db>, Error> {
    Db::connect(loc).map_err(pg_error)
}

/// A database error, typed (its exit status is decided in `ops::error`).
pub fn pg_error(e: PgError) -> Error {
    Error::Pg(e)
}

/// A journal error, typed (a lost lease in PostgreSQL exits 6).
pub fn journal_error(e: JournalError) -> Error {
    Error::Journal(e)
}

/// The state a journal's records imply, read-only (`status`, `plan`,
/// `report`), with the pid of the apply holding it, if one runs. `None`:
/// no such journal.
pub fn read_state(w: &Where) -> Result<Option<(RunState, Option<u32>)>, Error> {
    match w {
        Where::File(p) => {
            if !p.exists() {
                return Ok(None);
            }
            let (st, _torn) = crate::journal::replay(p)?;
            Ok(Some((
                st,
                crate::journal::lock::holder(p).and_then(|h| h.pid),
            )))
        }
        Where::Pg { loc, run } => {
            let db = connect(loc)?;
            if !pg::run_exists(&db, run).map_err(pg_error)? {
                return Ok(None);
            }
            let mut st = RunState::default();
            pg::read(&db, run, |e| st.apply_entry(e)).map_err(pg_error)?;
            let holder = pg::holder(&db, run).map_err(pg_error)?;
            Ok(Some((st, holder.map(|h| h.pid as u32))))
        }
    }
}

/// Takes the run's lease, or says who holds it (exit 6); with `wait`,
/// polls for it that long first (`apply --lock-timeout`).
pub fn lease(
    db: &Arc<Db>,
    run: &str,
    loaded: &LoadedPlan,
    length: Duration,
    wait: Option<Duration>,
) -> Result<pg::Lease, Error> {
    let plan_file = loaded.path.display().to_string();
    let r = match wait {
        Some(w) => pg::Lease::acquire_waiting(db, run, &plan_file, length, w),
        None => pg::Lease::acquire(db, run, &plan_file, length),
    };
    r.map_err(pg_error)
}

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
