//! `ferry journal copy FROM TO`: moves a run between a journal file and
//! PostgreSQL, both ways.
//!
//! Owns: reading every record of FROM (a file, checked line by line, a torn
//! last line left out as `apply` would cut it; or a run in the database),
//! and writing them, with their times and in their order, to TO — never
//! over an existing run (a file that exists, a run the database has).
//! Does not own: the formats (`journal::file`, `journal::pg`).
//!
//! A run in the database is named by the URL's fragment
//! (`postgres://ferry@db/ferry#dc1`); copying a file into the database,
//! the fragment may be left out: the run is named after the plan identity
//! the file records. Copy only a run no `apply` is writing.

use std::path::{Path, PathBuf};

use super::Error;
use crate::journal::file::{Durability, Entry, JournalWriter, Reader, SyncMode};
use crate::journal::pg::{self, Location};
use crate::journal::record::Record;

/// One end of a copy.
enum End {
    File(PathBuf),
    Pg { loc: Location, run: Option<String> },
}

fn end(s: &str) -> Result<End, Error> {
    if !pg::is_url(s) {
        return Ok(End::File(PathBuf::from(s)));
    }
    let (url, run) = match s.split_once('#') {
        Some((u, r)) if !r.is_empty() => (u, Some(r.to_string())),
        Some((u, _)) => (u, None),
        None => (s, None),
    };
    let loc = Location::new(url, None, None, pg::DEFAULT_LEASE)
        .map_err(|e| Error::Usage(e.to_string()))?;
    Ok(End::Pg { loc, run })
}

/// What was copied.
pub struct Copied {
    pub records: u64,
    pub run: String,
}

/// Copies FROM to TO.
pub fn copy(from: &str, to: &str) -> Result<Copied, Error> {
    let (from, to) = (end(from)?, end(to)?);
    let failure = |e: String| Error::Failed(e.to_string());
    // Refuse before reading anything large.
    if let End::File(p) = &to
        && p.exists()
    {
        return Err(Error::Usage(format!(
            "{} exists; ferry journal copy never overwrites a journal. Give a new path",
            p.display()
        )));
    }
    let entries = match &from {
        End::File(p) => read_file(p)?,
        End::Pg { loc, run } => {
            let Some(run) = run else {
                return Err(Error::Usage(
                    "name the run to copy from the database after `#`, e.g. \
                     postgres://ferry@db.example.net/ferry#dc1 (the plan's name)"
                        .to_string(),
                ));
            };
            let db = super::journal::connect(loc)?;
            if !pg::run_exists(&db, run).map_err(super::journal::pg_error)? {
                return Err(failure(format!("no run `{run}` in {}", loc.display())));
            }
            let mut out = Vec::new();
            pg::read(&db, run, |e| out.push(e.clone())).map_err(super::journal::pg_error)?;
            out
        }
    };
    let (identity, plan_file) = header(&entries).ok_or_else(|| {
        failure("the journal holds no run (no run_started record); nothing to copy".into())
    })?;
    let records = entries.len() as u64;
    match to {
        End::File(p) => {
            let (mut w, _) = JournalWriter::open(&p, SyncMode::On, |_| {})
                .map_err(|e| failure(e.to_string()))?;
            for e in &entries {
                w.append_at(&e.rec, &e.ts, Durability::Grouped)
                    .map_err(|e| failure(e.to_string()))?;
            }
            w.sync().map_err(|e| failure(e.to_string()))?;
            Ok(Copied {
                records,
                run: identity,
            })
        }
        End::Pg { loc, run } => {
            let run = run.unwrap_or(identity.clone());
            if run != identity {
                return Err(Error::Usage(format!(
                    "the journal is a run of the plan `{identity}`, not `{run}`: a run in the \
                         database is named after its plan. Drop `#{run}`"
                )));
            }
            let db = super::journal::connect(&loc)?;
            pg::import(&db, &run, &plan_file, entries).map_err(super::journal::pg_error)?;
            Ok(Copied { records, run })
        }
    }
}

fn read_file(p: &Path) -> Result<Vec<Entry>, Error> {
    let failure = |e: String| Error::Failed(e.to_string());
    let Some(mut reader) = Reader::open(p).map_err(|e| failure(e.to_string()))? else {
        return Err(failure(format!("no journal at {}", p.display())));
    };
    let mut out = Vec::new();
    while let Some(e) = reader.next().map_err(|e| failure(e.to_string()))? {
        out.push(e);
    }
    Ok(out)
}

/// The plan identity and plan file of the first `run_started`.
fn header(entries: &[Entry]) -> Option<(String, String)> {
    entries.iter().find_map(|e| match &e.rec {
        Record::RunStarted {
            plan, plan_name, ..
        } => Some((
            crate::plan::identity(plan_name.as_deref(), Path::new(plan)),
            plan.clone(),
        )),
        _ => None,
    })
}
