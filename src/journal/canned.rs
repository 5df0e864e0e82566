//! Canned journals: the one builder of records for tests and benchmarks.
//!
//! Owns: [`Canned`], which writes the records a run would write, in the
//! order it would write them, with the fields every test would otherwise
//! spell out by hand (a plan's `run_started`, a session's life, outcomes).
//! The canned histories in `tests/fixtures/journals/` are made with it and
//! documented record by record in that folder's README. Does not own: what
//! the records mean (`replay`) or the file format (`file`).
//!
//! ```
//! use ferry::journal::canned::Canned;
//! use ferry::journal::record::ItemResult;
//! use ferry::journal::Progress;
//! let st = Canned::run(&[("old1", "alice"), ("old1", "bob")])
//!     .session("old1/s1", &["alice", "bob"])
//!     .created("old1/s1", "old1copya20261201000000abcd")
//!     .started("old1/s1")
//!     .outcome("old1/s1", "alice", ItemResult::Succeeded)
//!     .state();
//! assert_eq!(st.accounts["alice"].progress, Progress::Transferred);
//! assert_eq!(st.accounts["bob"].progress, Progress::InProgress);
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use super::file::{Durability, JournalError, JournalWriter, SyncMode};
use super::record::{ItemResult, PlannedAccount, Record};
use super::replay::RunState;

/// A journal being written by hand, record by record.
#[derive(Debug, Clone, Default)]
pub struct Canned {
    records: Vec<Record>,
}

/// `run_started`'s accounts: each target username from its `(source,
/// user)`, its entry hash `h-<user>`.
pub fn planned(accounts: &[(&str, &str)]) -> BTreeMap<String, PlannedAccount> {
    let renamed: Vec<(&str, &str, &str)> = accounts.iter().map(|(s, u)| (*s, *u, *u)).collect();
    planned_as(&renamed)
}

/// `run_started`'s accounts from `(source, user, target user)`: for plans
/// that rename an account on the target.
pub fn planned_as(accounts: &[(&str, &str, &str)]) -> BTreeMap<String, PlannedAccount> {
    accounts
        .iter()
        .map(|(source, user, target)| {
            (
                target.to_string(),
                PlannedAccount {
                    source: source.to_string(),
                    user: user.to_string(),
                    entry: format!("h-{user}"),
                    fields: BTreeMap::new(),
                },
            )
        })
        .collect()
}

/// A `run_started` of plan `p.yaml` listing `accounts`.
pub fn run_started(accounts: BTreeMap<String, PlannedAccount>) -> Record {
    run_started_for("p.yaml", None, accounts)
}

/// A `run_started` of the plan file `plan` (identity `name:`, if given)
/// listing `accounts`, by pid 4242 on host `ops1`.
pub fn run_started_for(
    plan: &str,
    name: Option<&str>,
    accounts: BTreeMap<String, PlannedAccount>,
) -> Record {
    Record::RunStarted {
        plan: plan.into(),
        plan_name: name.map(str::to_string),
        plan_hash: "0".repeat(64),
        accounts,
        ferry_version: env!("CARGO_PKG_VERSION").into(),
        pid: 4242,
        host: "ops1".into(),
        tls_insecure: false,
        simulate: false,
        restart: false,
    }
}

impl Canned {
    /// A journal that begins with a `run_started` of these `(source, user)`
    /// accounts (each lands on the target under its own name).
    pub fn run(accounts: &[(&str, &str)]) -> Canned {
        Canned::default().then(run_started(planned(accounts)))
    }

    /// Any record, next.
    pub fn then(mut self, rec: Record) -> Canned {
        self.records.push(rec);
        self
    }

    /// `session_create_intent` of instance `key` (its batch is the key
    /// without `#N`) carrying `accounts`, from the source of its first
    /// account's key prefix (`old1/s1` → `old1`).
    pub fn session(self, key: &str, accounts: &[&str]) -> Canned {
        let source = key.split('/').next().unwrap_or(key).to_string();
        self.then(Record::SessionCreateIntent {
            session: key.into(),
            batch: key.split('#').next().unwrap_or(key).into(),
            host: format!("{source}.example.com"),
            source,
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            packages: vec![],
            replaces: None,
        })
    }

    pub fn created(self, key: &str, id: &str) -> Canned {
        self.then(Record::SessionCreated {
            session: key.into(),
            id: id.into(),
        })
    }

    /// `enqueue_intent` for `accounts`, then one confirmed `enqueued` each.
    pub fn enqueued(mut self, key: &str, accounts: &[&str]) -> Canned {
        self = self.then(Record::EnqueueIntent {
            session: key.into(),
            packages: vec![],
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
        });
        for a in accounts {
            self = self.then(Record::Enqueued {
                session: key.into(),
                package: None,
                account: Some(a.to_string()),
                outcome: super::record::EnqueueOutcome::Added,
            });
        }
        self
    }

    /// `start_intent` (from here on the session may run its accounts).
    pub fn started(self, key: &str) -> Canned {
        self.then(Record::StartIntent {
            session: key.into(),
        })
    }

    /// An account's final RESTORE line (`Failed` with a quota message).
    pub fn outcome(self, key: &str, account: &str, result: ItemResult) -> Canned {
        self.then(Record::ItemOutcome {
            restore: None,
            session: key.into(),
            account: Some(account.into()),
            package: None,
            result,
            message: (result == ItemResult::Failed).then(|| "Disk quota exceeded".to_string()),
            log: Vec::new(),
        })
    }

    pub fn finished(self, key: &str, state: &str) -> Canned {
        self.then(Record::SessionFinished {
            session: key.into(),
            state: state.into(),
        })
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The state the records fold into, as replay would make it.
    pub fn state(&self) -> RunState {
        let mut st = RunState::default();
        for r in &self.records {
            st.apply(r);
        }
        st
    }

    /// The journal file's bytes, every line stamped one second after the
    /// last from `2026-11-30T01:00:00Z`: the same records always make the
    /// same bytes (the fixtures in `tests/fixtures/journals/`).
    pub fn bytes(&self) -> Vec<u8> {
        let start = humantime::parse_rfc3339("2026-11-30T01:00:00Z").expect("a valid instant");
        let mut out = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            let at = start + std::time::Duration::from_secs(i as u64);
            let ts = humantime::format_rfc3339_millis(at).to_string();
            out.extend(super::file::encode(i as u64 + 1, &ts, r));
        }
        out
    }

    /// Writes the records as a journal file (no fsync: for tests).
    pub fn write(&self, path: &Path) -> Result<(), JournalError> {
        let (mut w, _) = JournalWriter::open(path, SyncMode::Off, |_| {})?;
        for r in &self.records {
            w.append(r, Durability::Grouped)?;
        }
        w.sync()
    }
}
