//! The journal file: JSON Lines, append-only, a CRC-32 per record.
//!
//! Each line is exactly
//!
//! ```text
//! {"seq":N,"ts":"2026-11-30T01:45:02.123Z","crc32":"1a2b3c4d","rec":{"type":…}}
//! ```
//!
//! `crc32` is the CRC-32 (IEEE) of the bytes of `rec` as written, in eight
//! lowercase hex digits; `seq` counts from 1 without gaps. The fixed layout
//! lets the reader find `rec` without parsing the line twice (fast replay),
//! and still reads as plain JSON for `jq`.
//!
//! ## Durability
//!
//! * Every record is handed to the kernel with one `write` as soon as it is
//!   appended (no user-space buffer): a SIGKILL never loses a record that
//!   `append` returned for.
//! * [`Durability::Intent`] records are followed by `sync_data` before
//!   `append` returns: the request they announce leaves only after that.
//!   That fsync also makes every earlier record durable, so the durable
//!   prefix of the file is always a consistent history.
//! * Other records are grouped: synced at the next intent, or by
//!   [`JournalWriter::sync_if_due`] once `group_window` has passed. A power
//!   loss can lose such a tail; every one of those records is an answer or
//!   conclusion that resume re-derives from the server.
//! * Creating the file fsyncs its directory, so the file itself survives a
//!   power loss. The file is created with mode 0600.
//!
//! ## Damage
//!
//! A line that does not parse, has a bad checksum or a wrong `seq` is:
//! * the **last** line of the file (nothing but whitespace after it): a
//!   write torn by a kill or a crash. [`JournalWriter::open`] truncates it
//!   away and reports it in [`Repaired`]; the request it announced, if any,
//!   was never sent, because sending waits for the fsync of a whole line;
//! * any **other** line: [`JournalError::Corrupt`], naming the line number.
//!   ferry refuses to guess what a damaged history meant.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::record::Record;

/// Errors reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An earlier write or fsync failed: nothing more is written (a line
    /// after a partial one would corrupt the middle of the file; after a
    /// failed fsync the kernel's copy cannot be trusted). The next `apply`
    /// repairs the torn tail, if any, and resumes.
    #[error(
        "journal {path}: no longer written after an earlier failure ({first}); free the disk or \
         fix the cause, then run `ferry apply` again: it repairs the journal and resumes"
    )]
    Stopped { path: PathBuf, first: String },
    /// The journal in PostgreSQL could not be read or written
    /// (`journal::pg`).
    #[error("journal of `{run}` in PostgreSQL: {source}")]
    Db {
        run: String,
        #[source]
        source: Box<super::pg::PgError>,
    },
    #[error(
        "journal {path}: line {line} is corrupt ({reason}); the journal cannot be trusted past it. \
         Inspect the line (e.g. `sed -n {line}p {path}`), restore the journal from a backup, or move \
         it aside: the next `ferry apply` then rebuilds this plan's sessions from the target's own \
         record of them (README, \"When the journal is not the whole truth\")"
    )]
    Corrupt {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

impl JournalError {
    fn io(path: &Path, source: io::Error) -> Self {
        JournalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A torn last line that [`JournalWriter::open`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// 1-based line number of the torn line.
    pub line: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// Why it was judged torn.
    pub reason: String,
}

impl std::fmt::Display for Repaired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the journal's last line ({}, {} bytes) was torn by an interrupted write ({}); it was removed. \
             Whatever it announced was never sent",
            self.line, self.bytes, self.reason
        )
    }
}

/// How soon a record must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before `append` returns: the record announces a request.
    Intent,
    /// Grouped with later records (at most `group_window` old).
    Grouped,
}

/// Whether the writer calls fsync at all. `Off` exists only to measure what
/// durability costs (benches/journal.rs); `apply` always uses `On`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    On,
    Off,
}

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub line: u64,
    pub seq: u64,
    pub ts: String,
    pub rec: Record,
}

/// Reads a journal line by line, checking every line; holds one line in
/// memory at a time.
pub struct Reader<R> {
    input: R,
    path: PathBuf,
    buf: Vec<u8>,
    line: u64,
    /// Byte offset of the end of the last good line.
    good_len: u64,
    next_seq: u64,
    /// Set when a torn last line was found.
    torn: Option<Repaired>,
    /// Bytes after the torn line (blank or garbage), removed with it.
    trailing: u64,
}

impl Reader<BufReader<File>> {
    /// Opens `path` for reading (missing file: an empty journal).
    pub fn open(path: &Path) -> Result<Option<Self>, JournalError> {
        match File::open(path) {
            Ok(f) => Ok(Some(Reader::new(
                BufReader::with_capacity(1 << 16, f),
                path,
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(JournalError::io(path, e)),
        }
    }
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R, path: &Path) -> Self {
        Reader {
            input,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(512),
            line: 0,
            good_len: 0,
            next_seq: 1,
            torn: None,
            trailing: 0,
        }
    }

    /// The next record, `None` at the end (or at a torn last line, see
    /// [`Reader::torn`]).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry>, JournalError> {
        if self.torn.is_some() {
            return Ok(None);
        }
        loop {
            self.buf.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| JournalError::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let complete = self.buf.last() == Some(&b'\n');
            let body = trim_line(&self.buf);
            if body.is_empty() && complete {
                // A blank line (e.g. an editor's): harmless.
                self.good_len += n as u64;
                continue;
            }
            let decoded = if complete {
                decode(body, self.next_seq)
            } else {
                Err("the line has no final newline".to_string())
            };
            match decoded {
                Ok((seq, ts, rec)) => {
                    self.good_len += n as u64;
                    self.next_seq = seq + 1;
                    return Ok(Some(Entry {
                        line: self.line,
                        seq,
                        ts,
                        rec,
                    }));
                }
                Err(reason) => {
                    let bad_len = n as u64;
                    if self.rest_is_blank()? {
                        self.torn = Some(Repaired {
                            line: self.line,
                            bytes: bad_len + self.trailing,
                            reason,
                        });
                        return Ok(None);
                    }
                    return Err(JournalError::Corrupt {
                        path: self.path.clone(),
                        line: self.line,
                        reason,
                    });
                }
            }
        }
    }

    /// Whether nothing but whitespace follows the current line. Consumes
    /// the rest of the input (only called on a bad line).
    fn rest_is_blank(&mut self) -> Result<bool, JournalError> {
        let mut rest = Vec::new();
        self.input
            .read_to_end(&mut rest)
            .map_err(|e| JournalError::io(&self.path, e))?;
        self.trailing = rest.len() as u64;
        Ok(rest.iter().all(|b| b.is_ascii_whitespace()))
    }

    /// The torn last line found, if any (after `next` returned `None`).
    pub fn torn(&self) -> Option<&Repaired> {
        self.torn.as_ref()
    }

    /// Length of the file up to the end of the last good line.
    pub fn good_len(&self) -> u64 {
        self.good_len
    }

    /// The `seq` the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Lines read so far.
    pub fn lines(&self) -> u64 {
        self.line
    }
}

fn trim_line(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && (buf[end - 1] == b'\n' || buf[end - 1] == b'\r') {
        end -= 1;
    }
    &buf[..end]
}

const P_SEQ: &[u8] = b"{\"seq\":";
const P_TS: &[u8] = b",\"ts\":\"";
const P_CRC: &[u8] = b"\",\"crc32\":\"";
const P_REC: &[u8] = b"\",\"rec\":";

/// A record's JSON as every backend stores it: the last line of defence
/// (issue 6) scrubs any registered secret from its free text, even one a
/// server echoed in its reason. Cheap when there is none.
pub(crate) fn body(rec: &Record) -> Vec<u8> {
    let body = serde_json::to_vec(rec).expect("records always serialise");
    if !crate::secret::mentions_secret(&String::from_utf8_lossy(&body)) {
        return body;
    }
    let mut clean = rec.clone();
    for text in clean.free_text_mut() {
        *text = crate::secret::scrub(text).into_owned();
    }
    serde_json::to_vec(&clean).expect("records always serialise")
}

/// Decodes one line of the fixed layout; the error says what is wrong.
fn decode(line: &[u8], expect_seq: u64) -> Result<(u64, String, Record), String> {
    let rest = line
        .strip_prefix(P_SEQ)
        .ok_or("it does not start with {\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return Err("no valid seq".into());
    }
    let seq: u64 = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("no valid seq")?;
    let rest = rest[digits..].strip_prefix(P_TS).ok_or("no ts field")?;
    let ts_len = rest
        .iter()
        .position(|&b| b == b'"')
        .ok_or("ts unterminated")?;
    let ts = std::str::from_utf8(&rest[..ts_len]).map_err(|_| "ts is not UTF-8")?;
    let rest = rest[ts_len..].strip_prefix(P_CRC).ok_or("no crc32 field")?;
    if rest.len() < 8 {
        return Err("crc32 truncated".into());
    }
    let crc_hex = std::str::from_utf8(&rest[..8]).map_err(|_| "crc32 is not hex")?;
    let crc = u32::from_str_radix(crc_hex, 16).map_err(|_| "crc32 is not hex")?;
    let rest = rest[8..].strip_prefix(P_REC).ok_or("no rec field")?;
    let rec_bytes = rest.strip_suffix(b"}").ok_or("the line is not closed")?;
    let actual = crc32fast::hash(rec_bytes);
    if actual != crc {
        return Err(format!(
            "checksum mismatch: recorded {crc:08x}, computed {actual:08x}"
        ));
    }
    if seq != expect_seq {
        return Err(format!("seq {seq} where {expect_seq} was expected"));
    }
    let rec: Record =
        serde_json::from_slice(rec_bytes).map_err(|e| format!("unreadable record: {e}"))?;
    Ok((seq, ts.to_string(), rec))
}

/// Formats a record as one journal line (with its newline).
pub fn encode(seq: u64, ts: &str, rec: &Record) -> Vec<u8> {
    let body = body(rec);
    let crc = crc32fast::hash(&body);
    let mut line = Vec::with_capacity(body.len() + 80);
    line.extend_from_slice(P_SEQ);
    line.extend_from_slice(seq.to_string().as_bytes());
    line.extend_from_slice(P_TS);
    line.extend_from_slice(ts.as_bytes());
    line.extend_from_slice(P_CRC);
    line.extend_from_slice(format!("{crc:08x}").as_bytes());
    line.extend_from_slice(P_REC);
    line.extend_from_slice(&body);
    line.extend_from_slice(b"}\n");
    line
}

/// The current time in RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Appends records. Exactly one exists per journal at a time (the caller
/// holds [`super::lock::JournalLock`]).
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    next_seq: u64,
    sync: SyncMode,
    group_window: Duration,
    /// When the oldest record not yet fsynced was written; `None` when all
    /// written records are durable.
    unsynced_since: Option<Instant>,
    fsyncs: u64,
    /// The first write or fsync that failed; from then on nothing is
    /// written ([`JournalError::Stopped`]).
    failed: Option<String>,
}

/// What opening found.
#[derive(Debug, Default)]
pub struct Opened {
    /// The torn last line that was removed, if any.
    pub repaired: Option<Repaired>,
    /// The file did not exist and was created.
    pub created: bool,
}

impl JournalWriter {
    /// Opens (creating if needed) the journal for appending, after reading
    /// it through `fold` — every good record, in order. A torn last line is
    /// truncated away (and reported); a corrupt record elsewhere is an
    /// error and nothing is written.
    pub fn open(
        path: &Path,
        sync: SyncMode,
        mut fold: impl FnMut(&Entry),
    ) -> Result<(JournalWriter, Opened), JournalError> {
        let mut opened = Opened::default();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(|e| JournalError::io(parent, e))?;
            if let Some(grand) = parent.parent() {
                sync_dir(grand);
            }
        }
        let mut file = open_rw(path).map_err(|e| JournalError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::io(path, e))?
            .len();
        let mut next_seq = 1;
        if len == 0 {
            opened.created = true;
            // The directory entry must survive a power loss too.
            file.sync_all().map_err(|e| JournalError::io(path, e))?;
            sync_dir(path.parent().unwrap_or(Path::new(".")));
        } else {
            let mut reader = Reader::new(BufReader::with_capacity(1 << 16, &mut file), path);
            while let Some(entry) = reader.next()? {
                fold(&entry);
            }
            next_seq = reader.next_seq();
            let good = reader.good_len();
            let torn = reader.torn().cloned();
            drop(reader);
            if let Some(torn) = torn {
                file.set_len(good).map_err(|e| JournalError::io(path, e))?;
                file.sync_all().map_err(|e| JournalError::io(path, e))?;
                opened.repaired = Some(torn);
            }
        }
        file.seek(SeekFrom::End(0))
            .map_err(|e| JournalError::io(path, e))?;
        Ok((
            JournalWriter {
                file,
                path: path.to_path_buf(),
                next_seq,
                sync,
                group_window: Duration::from_millis(200),
                unsynced_since: None,
                fsyncs: 0,
                failed: None,
            },
            opened,
        ))
    }

    /// Sets how long a grouped record may wait for its fsync.
    pub fn set_group_window(&mut self, window: Duration) {
        self.group_window = window;
    }

    /// Appends one record: written to the kernel now; fsynced now for an
    /// intent, else within the group window. Returns its `seq`.
    pub fn append(&mut self, rec: &Record, durability: Durability) -> Result<u64, JournalError> {
        self.append_at(rec, &now_rfc3339(), durability)
    }

    /// [`JournalWriter::append`] with the record's time given (a journal
    /// copied from elsewhere keeps its times: `ferry journal copy`).
    pub fn append_at(
        &mut self,
        rec: &Record,
        ts: &str,
        durability: Durability,
    ) -> Result<u64, JournalError> {
        self.usable()?;
        let seq = self.next_seq;
        let line = encode(seq, ts, rec);
        // One write of the whole line: a kill leaves either nothing or a
        // prefix of this line (a torn tail, repaired on the next open).
        if let Err(e) = self.file.write_all(&line) {
            return Err(self.stop(e));
        }
        self.next_seq += 1;
        if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        match durability {
            Durability::Intent => self.sync()?,
            Durability::Grouped => self.sync_if_due()?,
        }
        Ok(seq)
    }

    /// fsyncs if the oldest unsynced record is older than the group window.
    pub fn sync_if_due(&mut self) -> Result<(), JournalError> {
        match self.unsynced_since {
            Some(t) if t.elapsed() >= self.group_window => self.sync(),
            _ => Ok(()),
        }
    }

    /// Makes every written record durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.usable()?;
        if self.unsynced_since.take().is_some() && self.sync == SyncMode::On {
            let started = Instant::now();
            if let Err(e) = self.file.sync_data() {
                return Err(self.stop(e));
            }
            self.fsyncs += 1;
            observe_fsync(started.elapsed());
        }
        Ok(())
    }

    /// Whether an earlier write failed (then nothing more is written).
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn usable(&self) -> Result<(), JournalError> {
        match &self.failed {
            None => Ok(()),
            Some(first) => Err(JournalError::Stopped {
                path: self.path.clone(),
                first: first.clone(),
            }),
        }
    }

    /// The first failed write or fsync: recorded, and every later append
    /// refused (see [`JournalError::Stopped`]).
    fn stop(&mut self, e: io::Error) -> JournalError {
        self.failed.get_or_insert_with(|| e.to_string());
        JournalError::io(&self.path, e)
    }

    /// fsync calls made so far (for benchmarks).
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    /// The `seq` of the next record.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl super::Backend for JournalWriter {
    fn append(&mut self, rec: &Record, durability: Durability) -> Result<u64, JournalError> {
        JournalWriter::append(self, rec, durability)
    }
    fn sync_if_due(&mut self) -> Result<(), JournalError> {
        JournalWriter::sync_if_due(self)
    }
    fn sync(&mut self) -> Result<(), JournalError> {
        JournalWriter::sync(self)
    }
    fn set_group_window(&mut self, window: Duration) {
        JournalWriter::set_group_window(self, window)
    }
}

/// Told how long each journal fsync took (the metrics). Process-wide: one
/// `apply` runs per process.
pub type FsyncObserver = std::sync::Arc<dyn Fn(Duration) + Send + Sync>;

static FSYNC_OBSERVER: std::sync::RwLock<Option<FsyncObserver>> = std::sync::RwLock::new(None);

/// Sets (or, with `None`, clears) the fsync observer.
pub fn set_fsync_observer(observer: Option<FsyncObserver>) {
    *FSYNC_OBSERVER.write().unwrap_or_else(|e| e.into_inner()) = observer;
}

fn observe_fsync(took: Duration) {
    if let Some(o) = FSYNC_OBSERVER
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        o(took);
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        // Best effort at exit: a failure here was either reported by the
        // run already (the writer stopped) or leaves only grouped answers
        // unsynced, which resume re-derives from the server (module doc).
        if self.failed.is_none() {
            let _ = self.sync();
        }
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// fsyncs a directory so a new entry in it is durable. Best effort: some
/// filesystems refuse fsync on directories.
pub(crate) fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::Record;

    fn rec(i: u32) -> Record {
        Record::SessionCreated {
            session: format!("old1/s{i}"),
            id: format!("old1copya{i:08}"),
        }
    }

    fn write_n(path: &Path, n: u32) {
        let (mut w, opened) = JournalWriter::open(path, SyncMode::On, |_| {}).unwrap();
        assert!(opened.created);
        for i in 0..n {
            w.append(&rec(i), Durability::Grouped).unwrap();
        }
        w.sync().unwrap();
    }

    fn read_all(path: &Path) -> Result<(Vec<Entry>, Opened), JournalError> {
        let mut out = vec![];
        let (_w, opened) = JournalWriter::open(path, SyncMode::On, |e| out.push(e.clone()))?;
        Ok((out, opened))
    }

    #[test]
    fn round_trip_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/j.journal");
        write_n(&p, 3);
        let (entries, opened) = read_all(&p).unwrap();
        assert!(opened.repaired.is_none());
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].seq, 3);
        assert_eq!(entries[1].rec, rec(1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Each line is valid JSON on its own (jq-readable).
        let text = std::fs::read_to_string(&p).unwrap();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["rec"]["type"], "session_created");
        }
    }

    #[test]
    fn torn_last_line_is_truncated_at_every_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.journal");
        write_n(&p, 3);
        let full = std::fs::read(&p).unwrap();
        let last_start = full[..full.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        for cut in last_start..full.len() {
            std::fs::write(&p, &full[..cut]).unwrap();
            let (entries, opened) = read_all(&p).unwrap();
            assert_eq!(entries.len(), 2, "cut at {cut}");
            assert_eq!(opened.repaired.is_some(), cut > last_start, "cut at {cut}");
            assert_eq!(std::fs::metadata(&p).unwrap().len(), last_start as u64);
            // Appending continues the sequence.
            let (mut w, _) = JournalWriter::open(&p, SyncMode::On, |_| {}).unwrap();
            assert_eq!(w.next_seq(), 3);
            w.append(&rec(9), Durability::Intent).unwrap();
            drop(w);
            let (entries, _) = read_all(&p).unwrap();
            assert_eq!(entries.len(), 3);
            assert_eq!(entries[2].rec, rec(9));
        }
    }

    #[test]
    fn corrupt_middle_line_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.journal");
        write_n(&p, 4);
        let text = std::fs::read_to_string(&p).unwrap();
        let damaged = text.replacen("old1/s1", "old1/sX", 1);
        std::fs::write(&p, damaged).unwrap();
        let err = read_all(&p).unwrap_err();
        match &err {
            JournalError::Corrupt { line, reason, .. } => {
                assert_eq!(*line, 2);
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn trailing_zero_bytes_count_as_torn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.journal");
        write_n(&p, 2);
        let mut bytes = std::fs::read(&p).unwrap();
        let good = bytes.len();
        bytes.extend_from_slice(&[0u8; 37]);
        std::fs::write(&p, bytes).unwrap();
        let (entries, opened) = read_all(&p).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(opened.repaired.unwrap().bytes, 37);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), good as u64);
    }

    #[test]
    fn a_missing_line_is_a_seq_gap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.journal");
        write_n(&p, 4);
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let kept = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
        std::fs::write(&p, kept).unwrap();
        let err = read_all(&p).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("seq 3"), "{err}");
    }
}
