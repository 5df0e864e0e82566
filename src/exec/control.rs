//! Control requests: how `ferry pause` / `ferry abort` in another terminal
//! reach a running `apply`.
//!
//! The requester writes `<journal>.control` (JSON: action, who, when) with
//! a write-to-temp + rename, so the running `apply` never reads half a
//! request. The `apply` polls for the file between steps; when it finds
//! one it records `pause_requested` / `abort_requested` in the journal
//! (who, when), *then* deletes the file — so a request is consumed only
//! once it is durable in the journal. The requester waits for the file to
//! disappear as its acknowledgement.
//!
//! With the journal in PostgreSQL the request is a row of `ferry_controls`
//! instead ([`Controls::Db`]), so `ferry pause` works from any machine that
//! reaches the database; the same order holds (recorded in the run, then
//! marked consumed).
//!
//! Crash windows: `apply` killed after reading but before recording →
//! the file stays and the next `apply` (or the waiting requester, which then
//! takes the lock itself) obeys it. Killed after recording but before
//! deleting → the next `apply` finds the request again and records it a
//! second time; pausing twice is harmless.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::journal::lock::{hostname, username};
use crate::journal::record::{ControlAction, Requester};

/// A pause or abort request for a running `apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    pub action: ControlAction,
    pub by: Requester,
    /// RFC 3339.
    pub at: String,
}

impl ControlRequest {
    /// A request from this process.
    pub fn here(action: ControlAction) -> Self {
        ControlRequest {
            action,
            by: this_requester(),
            at: crate::journal::file::now_rfc3339(),
        }
    }
}

/// This process as a [`Requester`].
pub fn this_requester() -> Requester {
    Requester {
        user: username(),
        host: hostname(),
        pid: std::process::id(),
    }
}

/// Where a running `apply` finds pause/abort requests.
#[derive(Clone)]
pub enum Controls {
    /// `<journal>.control` beside the journal file.
    File(PathBuf),
    /// `ferry_controls` rows of the run.
    Db {
        db: Arc<crate::journal::pg::Db>,
        run: String,
    },
}

/// What to mark consumed once a request is recorded.
pub enum Ack {
    File(PathBuf),
    Db(Arc<crate::journal::pg::Db>, i64),
}

impl Controls {
    /// The oldest pending request. A database that cannot be read counts
    /// as none: the run's next journal write meets the same trouble.
    pub fn pending(&self) -> Option<(ControlRequest, Ack)> {
        match self {
            Controls::File(j) => read_request(j).map(|r| (r, Ack::File(j.clone()))),
            Controls::Db { db, run } => {
                let p = crate::journal::pg::pending_control(db, run).ok()??;
                Some((
                    ControlRequest {
                        action: p.action,
                        by: p.by,
                        at: p.at,
                    },
                    Ack::Db(db.clone(), p.id),
                ))
            }
        }
    }
}

impl Ack {
    /// Marks the request consumed (after it was recorded in the journal).
    pub fn consume(self) {
        match self {
            Ack::File(j) => consume_request(&j),
            Ack::Db(db, id) => {
                let _ = crate::journal::pg::consume_control(&db, id);
            }
        }
    }
}

/// `<journal>.control`.
pub fn control_path(journal: &Path) -> PathBuf {
    let mut s = journal.as_os_str().to_owned();
    s.push(".control");
    PathBuf::from(s)
}

/// Writes a request atomically (temp file + rename), mode 0600.
pub fn write_request(journal: &Path, req: &ControlRequest) -> std::io::Result<()> {
    let path = control_path(journal);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(&serde_json::to_vec(req).expect("serialisable"))?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    crate::journal::file::sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// The pending request, if any (unreadable content counts as none: a
/// half-written file cannot exist thanks to the rename).
pub fn read_request(journal: &Path) -> Option<ControlRequest> {
    let bytes = std::fs::read(control_path(journal)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Removes the request after it was recorded.
pub fn consume_request(journal: &Path) {
    let _ = std::fs::remove_file(control_path(journal));
}

/// Whether a request file exists (the requester's acknowledgement check).
pub fn request_pending(journal: &Path) -> bool {
    control_path(journal).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_consume() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("p.journal");
        assert!(read_request(&j).is_none());
        let req = ControlRequest::here(ControlAction::Pause);
        write_request(&j, &req).unwrap();
        assert!(request_pending(&j));
        assert_eq!(read_request(&j), Some(req));
        consume_request(&j);
        assert!(!request_pending(&j));
    }
}
