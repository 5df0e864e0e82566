//! The journal: an append-only record of a run, its lock, and its replay.
//!
//! Owns: the record types ([`record`]), the [`Backend`] every journal
//! writes through — the file with its checksums, fsync points and
//! torn-tail repair ([`file`]) and its one-`apply`-at-a-time lock
//! ([`lock`]), or PostgreSQL with its leased, fenced lock ([`pg`]) — and
//! the fold that turns records into a [`RunState`] ([`replay`]). Does not own: deciding *what* to record or when (that is
//! `exec`, the only writer), or rendering it (`ops::status`, `report`).
//!
//! Design §5 in one paragraph: an intent is durable before its request is
//! sent; an answer is recorded the moment it is known; a torn last line is
//! repaired, any other damage refused with its line number; no secret is
//! ever written. See README "The journal" for the operator's view.
//!
//! [`Journal`] ties a writer to the state it implies: every record appended
//! is folded into the in-memory [`RunState`] by the same code that replays
//! a journal from disk, so a live run and a resumed run cannot disagree.

pub mod canned;
pub mod file;
pub mod lock;
pub mod pg;
pub mod record;
pub mod replay;

use std::path::Path;

pub use file::{Durability, JournalError, JournalWriter, Opened, Repaired, SyncMode};
pub use lock::{JournalLock, LockError};
pub use record::Record;
pub use replay::{AccountState, Phase, Progress, RunPhase, RunState, SessionRec, replay};

/// The identity of the plan a journal belongs to: the `plan_name` of its
/// first `run_started` (for a journal written before plans had names, the
/// stem of the plan file it records). `None` for a missing or empty
/// journal. Reads only the first records; never writes (a torn tail is
/// left as it is).
pub fn plan_identity(path: &Path) -> Result<Option<String>, JournalError> {
    Ok(header(path)?.map(|h| h.identity))
}

/// What a journal's first `run_started` says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The plan it belongs to (see [`plan_identity`]).
    pub identity: String,
    /// It records a rehearsal (`apply --simulate`), not a real run.
    pub rehearsal: bool,
}

/// The journal's [`Header`]; `None` for a missing or empty journal. Reads
/// only the first records; never writes.
pub fn header(path: &Path) -> Result<Option<Header>, JournalError> {
    let Some(mut reader) = file::Reader::open(path)? else {
        return Ok(None);
    };
    while let Some(entry) = reader.next()? {
        if let Record::RunStarted {
            plan,
            plan_name,
            simulate,
            ..
        } = entry.rec
        {
            return Ok(Some(Header {
                identity: crate::plan::identity(plan_name.as_deref(), Path::new(&plan)),
                rehearsal: simulate,
            }));
        }
    }
    Ok(None)
}

/// Where a journal's records go: the same records, in the same order, with
/// the same promise whatever the medium — an [`Durability::Intent`] is
/// durable when `append` returns (its request may leave only then), any
/// other record is handed over at once and durable soon after.
pub trait Backend: Send {
    /// Appends one record; returns its `seq`.
    fn append(&mut self, rec: &Record, durability: Durability) -> Result<u64, JournalError>;
    /// Makes grouped records durable if their window has passed.
    fn sync_if_due(&mut self) -> Result<(), JournalError>;
    /// Makes every record durable.
    fn sync(&mut self) -> Result<(), JournalError>;
    /// How long a grouped record may wait.
    fn set_group_window(&mut self, window: std::time::Duration);
}

/// A journal open for appending, with the state its records imply.
pub struct Journal {
    writer: Box<dyn Backend>,
    state: RunState,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, replaying it. The caller
    /// must hold the [`lock`]. A torn last line is repaired and reported in
    /// the returned [`Opened`].
    pub fn open(path: &Path, sync: SyncMode) -> Result<(Journal, Opened), JournalError> {
        let mut state = RunState::default();
        let (writer, opened) = JournalWriter::open(path, sync, |e| state.apply_entry(e))?;
        Ok((
            Journal {
                writer: Box::new(writer),
                state,
            },
            opened,
        ))
    }

    /// Opens the run `lease` holds in PostgreSQL, replaying its records;
    /// every record appended is fenced by the lease (`pg`).
    pub fn open_pg(lease: &pg::Lease) -> Result<Journal, JournalError> {
        let mut state = RunState::default();
        let n = pg::read(lease.db(), lease.run(), |e| state.apply_entry(e)).map_err(|source| {
            JournalError::Db {
                run: lease.run().to_string(),
                source: Box::new(source),
            }
        })?;
        Ok(Journal {
            writer: Box::new(pg::PgWriter::new(lease, n)),
            state,
        })
    }

    /// A journal over any backend, from the state its records imply.
    pub fn with_backend(writer: Box<dyn Backend>, state: RunState) -> Journal {
        Journal { writer, state }
    }

    /// Appends an answer or a conclusion (fsync grouped).
    pub fn record(&mut self, rec: Record) -> Result<(), JournalError> {
        debug_assert!(!rec.is_intent(), "{} must use record_intent", rec.kind());
        self.writer.append(&rec, Durability::Grouped)?;
        self.state.apply(&rec);
        Ok(())
    }

    /// Appends an intent and makes it (and everything before it) durable.
    /// Only after this returns may the announced request be sent.
    pub fn record_intent(&mut self, rec: Record) -> Result<(), JournalError> {
        self.writer.append(&rec, Durability::Intent)?;
        self.state.apply(&rec);
        Ok(())
    }

    /// fsyncs grouped records whose window has passed.
    pub fn tick(&mut self) -> Result<(), JournalError> {
        self.writer.sync_if_due()
    }

    /// fsyncs everything written.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.writer.sync()
    }

    pub fn state(&self) -> &RunState {
        &self.state
    }

    pub fn set_group_window(&mut self, window: std::time::Duration) {
        self.writer.set_group_window(window);
    }
}
