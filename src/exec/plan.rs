//! The plan as the executor runs it: the compiled session DAG, plus what
//! only the edge of a run knows.
//!
//! Owns: [`RunPlan`] — the [`CompiledPlan`] (sessions, their dependencies,
//! every account's WHM item fields and fingerprint), the sources' create
//! requests with their logins resolved by `ops`, the policy, and the plan's
//! identity and hash — and the lookups the executor makes over it (an
//! account's session, its item for a given session instance, its
//! reseller). Does not own: deciding anything (the scheduler and the
//! session driver), or the plan language (`plan`): nothing here reads the
//! plan's sources; the compiled plan is the one source of truth.

use std::collections::HashMap;

use crate::client::{AccountItem, CreateSession, SshLogin};
use crate::graph::{CompiledPlan, Limits, SessionAccount, SessionPlan, SourcePlan};
use crate::plan::{LoadedPlan, Policy};

/// The plan of a run.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The plan file as given.
    pub path: String,
    /// The plan's identity (`name:`, or the file stem).
    pub name: String,
    /// Hex SHA-256 of the plan file.
    pub hash: String,
    pub compiled: CompiledPlan,
    /// Per source (the compiled order): the create request, logins
    /// resolved. `None` where sessions are never created (`ferry
    /// pause`/`abort` with no apply running).
    pub creates: Vec<Option<CreateSession>>,
    pub policy: Policy,
    /// The inventory next to the plan, when there is one (`plan::load`
    /// read it): what the stale-plan guard compares the sources with.
    pub inventory: Option<std::sync::Arc<crate::plan::inventory::Inventory>>,
    /// Target username → (session index, account index in the session).
    accounts: HashMap<String, (usize, usize)>,
}

impl RunPlan {
    /// The executor's view of a compiled plan. `logins[i]` is the SSH login
    /// of source `i` (secrets resolved by `ops`); `None` where no session
    /// will be created.
    pub fn new(
        loaded: &LoadedPlan,
        compiled: CompiledPlan,
        logins: Option<&[SshLogin]>,
    ) -> RunPlan {
        let creates = compiled
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let ssh = logins?.get(i)?.clone();
                let options = &s.options;
                Some(CreateSession {
                    host: s.host.clone(),
                    ssh,
                    transfer_threads: options.transfer_threads.unwrap_or(1),
                    restore_threads: options.restore_threads.unwrap_or(1),
                    compressed: options.compressed.unwrap_or(false),
                    low_priority: options.low_priority.unwrap_or(false),
                })
            })
            .collect();
        let mut accounts = HashMap::new();
        for (si, sp) in compiled.sessions.iter().enumerate() {
            for (ai, a) in sp.accounts.iter().enumerate() {
                accounts.insert(a.target_user.clone(), (si, ai));
            }
        }
        RunPlan {
            path: loaded.path.display().to_string(),
            name: loaded.identity(),
            hash: loaded.hash.clone(),
            compiled,
            creates,
            policy: loaded.plan.policy.clone(),
            inventory: loaded.inventory.clone(),
            accounts,
        }
    }

    pub fn sessions(&self) -> &[SessionPlan] {
        &self.compiled.sessions
    }

    pub fn source(&self, i: usize) -> &SourcePlan {
        &self.compiled.sources[i]
    }

    /// The index of the source named `name`.
    pub fn source_named(&self, name: &str) -> Option<usize> {
        self.compiled.sources.iter().position(|s| s.name == name)
    }

    pub fn limits(&self) -> Limits {
        self.compiled.limits
    }

    /// The account landing on `target`: its session index and its entry.
    pub fn account(&self, target: &str) -> Option<(usize, &SessionAccount)> {
        self.accounts
            .get(target)
            .map(|&(s, a)| (s, &self.compiled.sessions[s].accounts[a]))
    }

    /// The account's reseller in the plan (target username), and whether
    /// both are in the same compiled session.
    pub fn reseller(&self, target: &str) -> Option<(&str, bool)> {
        let (s, a) = self.account(target)?;
        let r = a.reseller.as_deref()?;
        let (rs, _) = self.account(r)?;
        Some((r, rs == s))
    }

    /// The WHM item for `target` in a session instance carrying `members`.
    /// Its `prerequisite_user` is kept only if that user is one of the
    /// members: naming a user absent from the session blocks it forever
    /// (docs/whm.md §2).
    pub fn item(&self, target: &str, members: &[String]) -> Option<AccountItem> {
        let (_, a) = self.account(target)?;
        let prerequisite_user = a.prerequisite_user.clone().filter(|pre| {
            members.iter().any(|m| {
                m != target && self.account(m).is_some_and(|(_, other)| &other.user == pre)
            })
        });
        Some(AccountItem {
            user: a.user.clone(),
            localuser: a.target_user.clone(),
            size: a.size,
            domain: a.domain.clone(),
            priority: Some(a.priority),
            prerequisite_user,
            options: a.options.to_params(),
        })
    }
}
