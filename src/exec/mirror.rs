//! The target's record of the plan's sessions (the *mirror*), kept in
//! WHM's root name/value store (`nvset` / `nvget`, docs/whm.md §9).
//!
//! Owns: the store's layout, writing one entry per session ferry creates,
//! and reading back the entries a journal lacks. Does not own: what a
//! recovered session means for its accounts (the journal's fold,
//! `session_recovered`) or when to write (the session driver: right after
//! `create_remote_root_transfer_session`, before any enqueue).
//!
//! ## Why
//!
//! The journal is ferry's record, but a CI runner can lose it or put back an
//! older copy. The target is the one thing every run reaches. Everything a
//! journal needs to reconcile a session it lost — its key, WHM id, batch,
//! source and accounts — is written to the target before the session can
//! hold a transfer, so a journal that is behind recovers every session ferry
//! ever created for the plan and reconciles each one as a whole journal
//! would (state, `master.log`, items).
//!
//! ## Layout (store `ferry.<plan identity>`)
//!
//! WHM's store keeps keys of up to 128 characters and values of up to
//! 2,048, reads one key per `nvget`, and cannot list its keys, so entries
//! are numbered:
//!
//! | key        | value                                                    |
//! |------------|----------------------------------------------------------|
//! | `sessions` | how many entries were written (decimal)                   |
//! | `sN`       | entry N's header: `{"parts":P,"crc32":"…","len":L}`       |
//! | `sN.p`     | part p (1..=P) of entry N's JSON, at most 2,000 bytes     |
//!
//! One `nvset` writes an entry's parts, its header and the counter; its
//! answer echoes what the server stored and is compared with what was sent
//! (a cut value would fail the check). A reader trusts an entry only if its
//! parts join to the header's length and CRC-32.
//!
//! ## Crash windows
//!
//! * killed after the create, before the write: the session is PENDING and
//!   empty (enqueueing waits for a confirmed write); a journal that keeps
//!   `session_created` writes the entry on resume; a lost journal loses only
//!   an empty PENDING session, which WHM deletes after 4 hours;
//! * killed during the `nvset`: WHM writes key by key, so the entry may be
//!   partial — the reader finds its CRC wrong and skips it (with a warning):
//!   the write was never confirmed, so nothing was enqueued;
//! * killed after the write, before `session_mirrored`: the next apply reads
//!   the entry, finds the session in its journal (same key and id) and
//!   records `session_mirrored` then.
//!
//! One writer per plan at a time (the journal's lock); entries are written
//! one at a time under [`Mirror`]'s mutex, so indices never collide within
//! a run.

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::api::{Api, CallError, RetryNote};
use crate::client::{self, ErrorKind};
use crate::journal::record::MirroredAccount;

/// Longest part written (WHM cuts values at 2,048 characters).
const PART: usize = 2000;

/// One session as the target's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Layout version.
    pub v: u32,
    pub key: String,
    pub batch: String,
    pub source: String,
    pub host: String,
    pub id: String,
    pub accounts: Vec<MirroredAccount>,
    pub packages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    parts: usize,
    len: usize,
    crc32: String,
}

/// Why the mirror cannot be used this run (said once, then ferry goes on
/// without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The server has no `nvset`/`nvget` ("Unknown app").
    NoFunction(String),
    /// A write was refused or came back different from what was sent.
    WriteRefused(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NoFunction(why) => write!(
                f,
                "the target has no name/value store ({why}); ferry keeps no record of its \
                 sessions on the target this run, so a journal lost or restored from an older \
                 copy cannot recover them — keep this journal safe"
            ),
            Unavailable::WriteRefused(why) => write!(
                f,
                "the target refused ferry's record of a session ({why}); ferry stops keeping one \
                 this run, so a journal lost or restored from an older copy cannot recover the \
                 sessions created from now on — keep this journal safe"
            ),
        }
    }
}

/// What reading the record found.
#[derive(Debug, Default)]
pub struct Read {
    /// Entries after the journal's last known one, oldest first, with their
    /// index.
    pub entries: Vec<(u64, Entry)>,
    /// The counter on the target.
    pub count: u64,
    /// Entries that could not be trusted (a write cut short), with why.
    pub damaged: Vec<(u64, String)>,
}

/// The mirror of one plan on one target.
pub struct Mirror {
    store: String,
    state: Mutex<State>,
}

struct State {
    /// Entries written so far (the counter), once read.
    count: u64,
    unavailable: Option<Unavailable>,
}

impl Mirror {
    /// The mirror of the plan with this identity. `known`: the highest
    /// entry the journal knows (the counter's floor until it is read).
    pub fn new(identity: &str, known: u64) -> Mirror {
        Mirror {
            store: store_name(identity),
            state: Mutex::new(State {
                count: known,
                unavailable: None,
            }),
        }
    }

    pub fn store(&self) -> &str {
        &self.store
    }

    /// Entries on the target as far as this run knows (read, or written).
    pub async fn count(&self) -> u64 {
        self.state.lock().await.count
    }

    /// Why the mirror is off this run, if it is.
    pub async fn unavailable(&self) -> Option<Unavailable> {
        self.state.lock().await.unavailable.clone()
    }

    /// Reads the counter and every entry after `known`. A server without the
    /// store turns the mirror off (`Ok` with the reason noted); a target
    /// that cannot be reached is an error (the run cannot know whether its
    /// journal is behind).
    pub async fn read(
        &self,
        api: &Api,
        known: u64,
        on_retry: impl FnMut(RetryNote<'_>) + Clone,
    ) -> Result<Read, CallError> {
        let mut st = self.state.lock().await;
        let count = match self.get(api, "sessions", on_retry.clone()).await {
            Ok(v) => v.and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0),
            Err(CallError::Failed(e)) if no_function(&e) => {
                st.unavailable = Some(Unavailable::NoFunction(e.to_string()));
                return Ok(Read::default());
            }
            Err(e) => return Err(e),
        };
        st.count = st.count.max(count);
        let mut out = Read {
            count,
            ..Read::default()
        };
        for n in known + 1..=count {
            match self.read_entry(api, n, on_retry.clone()).await? {
                Ok(e) => out.entries.push((n, e)),
                Err(why) => out.damaged.push((n, why)),
            }
        }
        Ok(out)
    }

    async fn read_entry(
        &self,
        api: &Api,
        n: u64,
        on_retry: impl FnMut(RetryNote<'_>) + Clone,
    ) -> Result<Result<Entry, String>, CallError> {
        let Some(h) = self.get(api, &format!("s{n}"), on_retry.clone()).await? else {
            return Ok(Err("its header is missing".into()));
        };
        let Ok(h) = serde_json::from_str::<Header>(&h) else {
            return Ok(Err("its header is unreadable".into()));
        };
        if h.parts == 0 || h.parts > 4096 {
            return Ok(Err(format!("its header names {} parts", h.parts)));
        }
        let mut text = String::with_capacity(h.len);
        for p in 1..=h.parts {
            match self
                .get(api, &format!("s{n}.{p}"), on_retry.clone())
                .await?
            {
                Some(part) => text.push_str(&part),
                None => return Ok(Err(format!("part {p} is missing"))),
            }
        }
        if text.len() != h.len || format!("{:08x}", crc32fast::hash(text.as_bytes())) != h.crc32 {
            return Ok(Err("its parts do not match its checksum".into()));
        }
        Ok(serde_json::from_str(&text).map_err(|e| format!("it is unreadable: {e}")))
    }

    /// Writes `entry` as the next entry; returns its index, or `None` when
    /// the mirror is off (said once through the returned reason, which the
    /// caller reports).
    pub async fn write(
        &self,
        api: &Api,
        entry: &Entry,
        on_retry: impl FnMut(RetryNote<'_>),
    ) -> Result<Written, CallError> {
        let mut st = self.state.lock().await;
        if st.unavailable.is_some() {
            return Ok(Written::Off { first: false });
        }
        let n = st.count + 1;
        let pairs = encode(n, entry);
        let store = self.store.clone();
        let r = api
            .repeatable(on_retry, |c| {
                let (store, pairs) = (store.clone(), pairs.clone());
                async move { c.nvset(&store, &pairs).await }
            })
            .await;
        let refused = match r {
            Ok(echo) => match check_echo(&pairs, &echo) {
                Ok(()) => {
                    st.count = n;
                    return Ok(Written::At(n));
                }
                Err(why) => Unavailable::WriteRefused(why),
            },
            Err(CallError::Failed(e)) if no_function(&e) => Unavailable::NoFunction(e.to_string()),
            Err(CallError::Failed(e)) if !transient(&e) => Unavailable::WriteRefused(e.to_string()),
            Err(e) => return Err(e),
        };
        st.unavailable = Some(refused);
        Ok(Written::Off { first: true })
    }

    async fn get(
        &self,
        api: &Api,
        key: &str,
        on_retry: impl FnMut(RetryNote<'_>),
    ) -> Result<Option<String>, CallError> {
        let store = self.store.clone();
        let key = key.to_string();
        api.repeatable(on_retry, |c| {
            let (store, key) = (store.clone(), key.clone());
            async move { c.nvget(&store, &key).await }
        })
        .await
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Confirmed as entry N.
    At(u64),
    /// The mirror is off; `first`: it went off with this write (the caller
    /// reports why, once).
    Off { first: bool },
}

/// `ferry.<identity>`, with any character WHM's store file name could not
/// hold replaced by `_` (a plan's `name:` never has one; a file stem may),
/// at most 128 characters (WHM cuts store names there).
pub fn store_name(identity: &str) -> String {
    let clean: String = identity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut s = format!("ferry.{clean}");
    s.truncate(128);
    s
}

/// The `nvset` pairs of entry `n`: its parts, its header, the counter.
fn encode(n: u64, entry: &Entry) -> Vec<(String, String)> {
    let text = serde_json::to_string(entry).expect("entries serialise");
    let mut parts = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(PART);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let header = Header {
        parts: parts.len(),
        len: text.len(),
        crc32: format!("{:08x}", crc32fast::hash(text.as_bytes())),
    };
    let mut pairs: Vec<(String, String)> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("s{n}.{}", i + 1), p.to_string()))
        .collect();
    pairs.push((
        format!("s{n}"),
        serde_json::to_string(&header).expect("headers serialise"),
    ));
    pairs.push(("sessions".to_string(), n.to_string()));
    pairs
}

/// The server's echo of an `nvset` must hold every pair as sent.
fn check_echo(sent: &[(String, String)], echo: &[(String, String)]) -> Result<(), String> {
    for (k, v) in sent {
        match echo.iter().find(|(ek, _)| ek == k) {
            Some((_, ev)) if ev == v => {}
            Some(_) => return Err(format!("the value of `{k}` came back different")),
            None => return Err(format!("`{k}` is missing from the answer")),
        }
    }
    Ok(())
}

fn no_function(e: &client::Error) -> bool {
    matches!(&e.kind, ErrorKind::Whm { reason } if client::whm::is_unknown_function(reason))
}

fn transient(e: &client::Error) -> bool {
    matches!(e.class(), client::Class::Transient { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(accounts: usize) -> Entry {
        Entry {
            v: 1,
            key: "old1/s2#2".into(),
            batch: "old1/s2".into(),
            source: "old1".into(),
            host: "old1.example.com".into(),
            id: "old1examplecocopya20261130014502Ab3x".into(),
            accounts: (0..accounts)
                .map(|i| MirroredAccount {
                    account: format!("acct{i:04}"),
                    user: format!("user{i:04}"),
                    entry: "ab".repeat(32),
                })
                .collect(),
            packages: vec!["gold".into()],
            replaces: Some("old1/s2".into()),
        }
    }

    /// Entries of any size split into parts under WHM's value limit and
    /// join back to the same entry; the echo check catches a cut value.
    #[test]
    fn entries_split_and_join() {
        for n in [0, 1, 25, 400] {
            let e = entry(n);
            let pairs = encode(7, &e);
            assert!(pairs.iter().all(|(k, v)| k.len() <= 128 && v.len() <= 2048));
            assert_eq!(pairs.last().unwrap(), &("sessions".into(), "7".into()));
            let header: Header =
                serde_json::from_str(&pairs.iter().find(|(k, _)| k == "s7").unwrap().1).unwrap();
            let text: String = (1..=header.parts)
                .map(|p| {
                    pairs
                        .iter()
                        .find(|(k, _)| *k == format!("s7.{p}"))
                        .unwrap()
                        .1
                        .clone()
                })
                .collect();
            assert_eq!(text.len(), header.len);
            assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
            assert_eq!(check_echo(&pairs, &pairs), Ok(()));
            let mut cut = pairs.clone();
            cut[0].1.truncate(10);
            assert!(check_echo(&pairs, &cut).is_err());
        }
    }

    #[test]
    fn store_names_are_safe_and_bounded() {
        assert_eq!(store_name("dc1-consolidation"), "ferry.dc1-consolidation");
        assert_eq!(store_name("my plan/2"), "ferry.my_plan_2");
        assert_eq!(store_name(&"x".repeat(300)).len(), 128);
    }
}
