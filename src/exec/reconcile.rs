//! Resume: check the record before acting (sqlx-migrator style).
//!
//! Order, each step before the next (the first two are done by the caller,
//! `ops::apply`, before the executor starts):
//!
//! 1. take the journal's lock (exit 6 if another `apply` holds it);
//! 2. open the journal: a torn last line is repaired and reported, a
//!    corrupt record elsewhere stops everything with its line number;
//! 3. compare the plan with the journal ([`compare`], design §5): new
//!    accounts are scheduled; removed ones that never started are dropped;
//!    an account whose transfer began and whose entry changed (or that was
//!    removed while in flight) is refused — exit 2, naming it;
//! 4. reconcile every session instance the journal left open with the
//!    server ([`classify_open`]): an instance without a recorded id is
//!    abandoned (never started; at most an orphan PENDING session exists);
//!    an un-started one whose accounts changed is abandoned too; every
//!    other one is handed to a session task, which asks the server for its
//!    state before doing anything else;
//! 5. only then schedule the rest.

use std::collections::BTreeMap;

use super::{RunPlan, mirror};
use crate::journal::record::PlannedAccount;
use crate::journal::record::Record;
use crate::journal::{Phase, Progress, RunState};

/// The plan's accounts as `run_started` records them.
pub(crate) fn planned_accounts(plan: &RunPlan) -> BTreeMap<String, PlannedAccount> {
    plan.sessions()
        .iter()
        .flat_map(|b| {
            b.accounts.iter().map(move |a| {
                (
                    a.target_user.clone(),
                    PlannedAccount {
                        source: plan.source(b.source).name.clone(),
                        user: a.user.clone(),
                        entry: a.fingerprint.hash.clone(),
                        fields: a.fingerprint.fields.clone(),
                    },
                )
            })
        })
        .collect()
}

/// How the plan differs from the journal's last run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PlanDiff {
    pub added: Vec<String>,
    pub dropped: Vec<String>,
    /// Entry changed before the transfer began: allowed.
    pub changed: Vec<String>,
}

impl PlanDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty() && self.changed.is_empty()
    }
}

/// Compares the plan with the journal (design §5). `Err` lists the refused
/// accounts, each with what changed.
///
/// An account is the same account when its source and its user on the
/// source are (its identity), or when it lands on the same target
/// username. Any change to an account whose transfer began is refused —
/// its `localuser` (the identity finds it under its old name), its
/// source or user (the target name finds it), its package, owner, domain,
/// options or its source's host: ferry never moves an account twice.
pub(crate) fn compare(
    st: &RunState,
    planned: &BTreeMap<String, PlannedAccount>,
) -> Result<PlanDiff, Vec<String>> {
    let mut diff = PlanDiff::default();
    let mut refused = Vec::new();
    // A fresh journal has nothing to compare with — unless sessions were
    // recovered into it from the target's record (a lost journal): their
    // accounts were planned once, and are compared like any other.
    if st.runs == 0 && st.accounts.is_empty() {
        return Ok(diff);
    }
    // (source, user) → the journal's name for it; one whose transfer began
    // wins over older names that never started.
    let mut by_identity: BTreeMap<(&str, &str), &String> = BTreeMap::new();
    for (name, a) in &st.accounts {
        let key = (a.source.as_str(), a.user.as_str());
        let better = by_identity
            .get(&key)
            .is_none_or(|n| !st.accounts[*n].began() && a.began());
        if better {
            by_identity.insert(key, name);
        }
    }
    for (name, p) in planned {
        let renamed_from = by_identity
            .get(&(p.source.as_str(), p.user.as_str()))
            .filter(|n| **n != name)
            .filter(|n| st.accounts[**n].began());
        if let Some(old) = renamed_from {
            let a = &st.accounts[*old];
            refused.push(refusal(
                old,
                a,
                &format!("its localuser changed from {old} to {name}"),
            ));
            continue;
        }
        match st.accounts.get(name) {
            None => diff.added.push(name.clone()),
            Some(a) if a.source != p.source || a.user != p.user => {
                if a.began() {
                    let what = if a.source != p.source {
                        format!(
                            "its source changed from {} to {} (user {} there)",
                            a.source, p.source, p.user
                        )
                    } else {
                        format!(
                            "its user on the source changed from {} to {}",
                            a.user, p.user
                        )
                    };
                    refused.push(refusal(name, a, &what));
                } else {
                    diff.changed.push(name.clone());
                }
            }
            Some(a) if a.entry != p.entry => {
                if a.began() {
                    refused.push(refusal(name, a, &field_changes(&a.fields, &p.fields)));
                } else {
                    diff.changed.push(name.clone());
                }
            }
            Some(a) if !a.in_plan => diff.added.push(name.clone()),
            Some(_) => {}
        }
    }
    for (name, a) in st.planned() {
        if planned.contains_key(name) {
            continue;
        }
        let renamed = planned
            .values()
            .any(|p| p.source == a.source && p.user == a.user);
        match a.progress {
            // Already refused above, under its new name.
            _ if renamed && a.began() => {}
            Progress::InProgress | Progress::Unfinished => refused.push(format!(
                "{name} (source {}, user {}): removed from the plan while its transfer is in progress",
                a.source, a.user
            )),
            _ => diff.dropped.push(name.clone()),
        }
    }
    if refused.is_empty() {
        Ok(diff)
    } else {
        Err(refused)
    }
}

/// One refused account: who it is, where it stands, what changed.
fn refusal(name: &str, a: &crate::journal::AccountState, what: &str) -> String {
    let stands = match a.progress {
        Progress::Transferred => "was transferred".to_string(),
        _ => format!("has begun its transfer ({})", a.progress.label()),
    };
    format!(
        "{name} (source {}, user {}) {stands}; since then {what}",
        a.source, a.user
    )
}

/// `package gold → silver, options.ip (unset) → 1` from two field maps;
/// "its plan entry changed" when the journal predates the fields.
fn field_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> String {
    if old.is_empty() {
        return "its plan entry changed (this journal does not record which field)".into();
    }
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let shown = |v: Option<&String>| v.map_or("(unset)".to_string(), |v| v.to_string());
    let changes: Vec<String> = keys
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| format!("{k} {} → {}", shown(old.get(k)), shown(new.get(k))))
        .collect();
    if changes.is_empty() {
        "its plan entry changed".into()
    } else {
        format!("its {} changed", changes.join(", "))
    }
}

/// The records that bring the journal up to date with the target's record
/// of the plan's sessions (`entries`: those after the journal's last known
/// one, oldest first). A session the journal knows by its WHM id is only
/// marked mirrored; any other is recovered — under its own key, unless the
/// journal holds that key with another id (two journals of one plan that
/// diverged), then under `key~N`.
pub(crate) fn recovered(st: &RunState, entries: &[(u64, mirror::Entry)]) -> Vec<Record> {
    let by_id: BTreeMap<&str, &str> = st
        .sessions()
        .iter()
        .filter_map(|s| s.id.as_deref().map(|id| (id, s.key.as_str())))
        .collect();
    let mut out = Vec::new();
    let mut keys: std::collections::BTreeSet<String> =
        st.sessions().iter().map(|s| s.key.clone()).collect();
    for (n, e) in entries {
        if let Some(key) = by_id.get(e.id.as_str()) {
            if st.session(key).and_then(|s| s.mirrored) != Some(*n) {
                out.push(Record::SessionMirrored {
                    session: key.to_string(),
                    index: *n,
                });
            }
            continue;
        }
        // Its own key when free, or held by the journal without an id (the
        // copy was taken between the create and its answer's record).
        let idless = st.session(&e.key).is_some_and(|s| s.id.is_none());
        let key = if keys.contains(&e.key) && !idless {
            format!("{}~{n}", e.key)
        } else {
            e.key.clone()
        };
        keys.insert(key.clone());
        out.push(Record::SessionRecovered {
            session: key,
            batch: e.batch.clone(),
            source: e.source.clone(),
            host: e.host.clone(),
            id: e.id.clone(),
            accounts: e.accounts.clone(),
            packages: e.packages.clone(),
            replaces: e.replaces.clone(),
            index: *n,
        });
    }
    out
}

/// What to do with a session instance the journal left open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenSession {
    /// Record it abandoned, with why.
    Abandon {
        key: String,
        id: Option<String>,
        reason: String,
    },
    /// Never started and still valid: continue enqueuing, then start.
    Continue { key: String },
    /// Started (or maybe started): ask the server, then follow it.
    Reconcile { key: String },
}

/// Classifies the open instances. `unchanged(account)`: the account is in
/// the plan with the entry the instance was made for.
pub(crate) fn classify_open(st: &RunState, unchanged: impl Fn(&str) -> bool) -> Vec<OpenSession> {
    st.sessions()
        .iter()
        .filter(|s| s.is_open())
        .map(|s| match s.phase {
            Phase::Creating => OpenSession::Abandon {
                key: s.key.clone(),
                id: None,
                reason: "ferry stopped before the session id was recorded; if WHM created the \
                         session it stays PENDING, is never started, and WHM deletes it after 4 hours"
                    .into(),
            },
            Phase::Created if !s.accounts.iter().all(|a| unchanged(a)) => OpenSession::Abandon {
                key: s.key.clone(),
                id: s.id.clone(),
                reason: "the plan changed before the session was started".into(),
            },
            Phase::Created => OpenSession::Continue { key: s.key.clone() },
            _ => OpenSession::Reconcile { key: s.key.clone() },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::ItemResult;

    fn planned(entries: &[(&str, &str)]) -> BTreeMap<String, PlannedAccount> {
        entries
            .iter()
            .map(|(n, e)| {
                (
                    n.to_string(),
                    PlannedAccount {
                        source: "old1".into(),
                        user: n.to_string(),
                        entry: e.to_string(),
                        fields: BTreeMap::new(),
                    },
                )
            })
            .collect()
    }

    fn started(st: &mut RunState, p: &BTreeMap<String, PlannedAccount>) {
        st.apply(&crate::journal::canned::run_started(p.clone()));
    }

    /// Design §5, each case: new scheduled, removed-never-started dropped,
    /// started-and-changed refused, changed-before-start allowed.
    #[test]
    fn plan_changes() {
        let v1 = planned(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
        let mut st = RunState::default();
        started(&mut st, &v1);
        st.apply(&Record::SessionCreateIntent {
            session: "old1/s1".into(),
            batch: "old1/s1".into(),
            source: "old1".into(),
            host: "h".into(),
            accounts: vec!["a".into(), "b".into()],
            packages: vec![],
            replaces: None,
        });
        st.apply(&Record::StartIntent {
            session: "old1/s1".into(),
        });
        st.apply(&Record::ItemOutcome {
            restore: None,
            session: "old1/s1".into(),
            account: Some("a".into()),
            package: None,
            result: ItemResult::Succeeded,
            message: None,
            log: Vec::new(),
        });
        // Same plan: nothing to say.
        assert_eq!(compare(&st, &v1), Ok(PlanDiff::default()));
        // e new, d removed (never started), c changed (never started).
        let v2 = planned(&[("a", "1"), ("b", "1"), ("c", "2"), ("e", "1")]);
        let diff = compare(&st, &v2).unwrap();
        assert_eq!(diff.added, vec!["e"]);
        assert_eq!(diff.dropped, vec!["d"]);
        assert_eq!(diff.changed, vec!["c"]);
        // a transferred and changed; b in progress and removed: refused.
        let v3 = planned(&[("a", "2"), ("c", "1"), ("d", "1")]);
        let refused = compare(&st, &v3).unwrap_err();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[0].starts_with("a "), "{refused:?}");
        assert!(refused[1].starts_with("b "), "{refused:?}");
    }

    #[test]
    fn open_sessions_are_classified() {
        let v1 = planned(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let mut st = RunState::default();
        started(&mut st, &v1);
        for (k, accts) in [("s1", vec!["a"]), ("s2", vec!["b"]), ("s3", vec!["c"])] {
            st.apply(&Record::SessionCreateIntent {
                session: k.into(),
                batch: k.into(),
                source: "old1".into(),
                host: "h".into(),
                accounts: accts.into_iter().map(String::from).collect(),
                packages: vec![],
                replaces: None,
            });
        }
        st.apply(&Record::SessionCreated {
            session: "s2".into(),
            id: "ID2".into(),
        });
        st.apply(&Record::SessionCreated {
            session: "s3".into(),
            id: "ID3".into(),
        });
        st.apply(&Record::StartIntent {
            session: "s3".into(),
        });
        let out = classify_open(&st, |a| a != "x");
        assert!(matches!(&out[0], OpenSession::Abandon { key, id: None, .. } if key == "s1"));
        assert_eq!(out[1], OpenSession::Continue { key: "s2".into() });
        assert_eq!(out[2], OpenSession::Reconcile { key: "s3".into() });
        let out = classify_open(&st, |a| a != "b");
        assert!(matches!(&out[1], OpenSession::Abandon { id: Some(_), .. }));
    }
}
