//! One `apply` per journal: an exclusive `flock` on `<journal>.lock`.
//!
//! The lock is std's `File::try_lock` (flock(2) on Linux). It is held by the
//! open file description for the whole `apply`, and the kernel drops it
//! when the process dies however it dies — a SIGKILLed `apply` never
//! leaves a lock that blocks the next one, so there is no stale-lock
//! heuristic anywhere. The holder writes `pid` and `host` into the file so a
//! refused second `apply` can name it (exit 6). The file itself stays
//! behind; its content only matters while it is locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another `ferry apply` holds the journal {journal} (pid {holder}); wait for it to finish, \
         or stop it with `ferry pause`"
    )]
    Held { journal: PathBuf, holder: Holder },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Who holds a lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holder {
    pub pid: Option<u32>,
    pub host: Option<String>,
    /// When it took the lock (RFC 3339, as it wrote it).
    pub since: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.pid, &self.host) {
            (Some(pid), Some(host)) => write!(f, "{pid} on {host}"),
            (Some(pid), None) => write!(f, "{pid}"),
            _ => f.write_str("unknown: it has not written its pid yet"),
        }
    }
}

/// The held lock; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct JournalLock {
    _file: File,
    path: PathBuf,
}

impl JournalLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `<journal>.lock`.
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut s = journal.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the lock of `journal` or says who has it.
pub fn acquire(journal: &Path) -> Result<JournalLock, LockError> {
    let path = lock_path(journal);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    // The folder exists: `ops::journal` checked `--journal`'s folder and
    // created the default one (a typo must not start a new, empty journal).
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                journal: journal.to_path_buf(),
                holder: parse_holder(&text),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // Ours now: say who we are.
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let me = format!(
        "pid {}\nhost {}\nsince {}\n",
        std::process::id(),
        hostname(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    file.write_all(me.as_bytes()).map_err(io)?;
    Ok(JournalLock { _file: file, path })
}

/// Whether some process holds the lock right now (for `status`, `pause`).
/// Does not keep the lock.
pub fn holder(journal: &Path) -> Option<Holder> {
    let path = lock_path(journal);
    let mut file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Some(parse_holder(&text))
        }
        Err(TryLockError::Error(_)) => None,
    }
}

fn parse_holder(text: &str) -> Holder {
    let mut h = Holder::default();
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("pid ") {
            h.pid = p.trim().parse().ok();
        } else if let Some(host) = line.strip_prefix("host ") {
            h.host = Some(host.trim().to_string());
        } else if let Some(since) = line.strip_prefix("since ") {
            h.since = Some(since.trim().to_string());
        }
    }
    h
}

/// This machine's host name (best effort).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_string()
    }
}

/// The user running ferry (for "who asked").
pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // SAFETY: getuid has no preconditions.
            format!("uid{}", unsafe { libc::getuid() })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("p.journal");
        let first = acquire(&j).unwrap();
        match acquire(&j) {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder.pid, Some(std::process::id()));
                assert!(holder.host.is_some());
            }
            other => panic!("expected Held, got {other:?}"),
        }
        assert_eq!(holder(&j).unwrap().pid, Some(std::process::id()));
        drop(first);
        assert!(holder(&j).is_none());
        acquire(&j).unwrap();
    }
}
