//! What the target already has: the survey at the start of an apply, and
//! adoption.
//!
//! Owns: deciding what a planned account found on the target means before
//! anything is enqueued for it, and `--adopt`'s match rule. Does not own:
//! sessions ferry knows (journal or the target's record, `exec::mirror`):
//! an account in one of them is decided by that session's own `master.log`,
//! like any other.
//!
//! ## The rule
//!
//! The journal is the first record of what ferry did, the target's record
//! of the plan's sessions the second, the target's accounts (`listaccts`)
//! the third. An account the first two say nothing about, yet present on
//! the target, was put there by a session ferry lost track of (a journal
//! lost without the target's record, a server without `nvset`), by another
//! tool, or it is another account with the same name. ferry cannot tell a
//! finished restore from one still running from `listaccts` alone (a real
//! WHM lists the account early in its restore), so it never guesses:
//!
//! | the account (not transferred, in no open session) | on the target | without `--adopt`      | with `--adopt`                       |
//! |---------------------------------------------------|---------------|------------------------|--------------------------------------|
//! | pending (never seen restored)                     | yes           | stop, exit 2, named    | adopted if it matches, else conflict |
//! | failed-item from WHM (retryable)                  | yes           | conflict (partial)     | conflict (partial)                   |
//! | held for a person (conflict, cut restore)         | yes           | stays failed           | adopted if it matches                |
//! | held for a person                                 | no            | released: moved again  | released: moved again                |
//! | anything                                          | no            | moved as planned       | moved as planned                     |
//!
//! *Matches*: its owner on the target is the planned owner (the reseller's
//! name on the target, or `root`) and its main domain is the one the plan
//! gives, or else the one its source reports (a read-only analysis session,
//! as `ferry check` makes, created and aborted without being started); and
//! it was not on the target when the plan first looked there, before ferry
//! had created any session of the plan (then it is another account with the
//! same name). Without the target's record, a first look cannot be told from
//! a lost journal's, and only owner and domain decide.
//!
//! `--adopt` is safe once no transfer of these accounts is running. Every
//! session ferry created for the plan is in the journal or the target's
//! record and is reconciled by this run; an account found on the target is,
//! by the table, in none of them. Where the target keeps no record (no
//! `nvset`), ferry cannot check this and says so.

use std::collections::{BTreeMap, BTreeSet};

use super::api::CallError;
use super::ctx::Ctx;
use crate::client::AccountInfo;
use crate::graph::{RunStep, StepId};
use crate::journal::{Progress, RunState};

/// A planned account found on the target, and what the survey makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Never seen restored: only `--adopt` may record it.
    Unknown(AccountInfo),
    /// WHM reported its restore failed, yet it is there: a partial restore.
    Partial(AccountInfo),
    /// Held for a person (a conflict, a cut restore) and still there.
    Held(AccountInfo),
    /// Held for a person and no longer there: moved again.
    Gone,
}

/// The planned accounts the survey looks at: not transferred and in no open
/// session (those are decided by their session's log).
pub(crate) fn candidates(st: &RunState) -> Vec<String> {
    st.planned()
        .filter(|(_, a)| matches!(a.progress, Progress::Pending | Progress::Failed { .. }))
        .map(|(n, _)| n.clone())
        .collect()
}

/// What each candidate's presence on the target means (the module's table).
pub(crate) fn classify(
    st: &RunState,
    candidates: &[String],
    listed: &BTreeMap<String, AccountInfo>,
) -> Vec<(String, Found)> {
    let mut out = Vec::new();
    for name in candidates {
        let Some(a) = st.accounts.get(name) else {
            continue;
        };
        let found = match (&a.progress, listed.get(name)) {
            (Progress::Pending, Some(info)) => Found::Unknown(info.clone()),
            (Progress::Failed { retryable: true }, Some(info)) => Found::Partial(info.clone()),
            (Progress::Failed { retryable: false }, Some(info)) => Found::Held(info.clone()),
            (Progress::Failed { retryable: false }, None) => Found::Gone,
            _ => continue,
        };
        out.push((name.clone(), found));
    }
    out
}

/// `listaccts` as a map by username.
pub(crate) async fn list(ctx: &Ctx) -> Result<BTreeMap<String, AccountInfo>, CallError> {
    let list = ctx
        .api
        .repeatable(
            ctx.retry_note(StepId::Run(RunStep::Survey)),
            |c| async move { c.listaccts().await },
        )
        .await?;
    Ok(list.into_iter().map(|a| (a.user.clone(), a)).collect())
}

/// What the plan expects of an account on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    /// The planned owner's name on the target (`root` when none).
    pub owner: String,
    /// The main domain, if the plan or the source says it.
    pub domain: Option<String>,
}

/// Whether `info` (the target's account) is the planned account, or why
/// not. `seen_before`: the journal's first survey saw it on the target
/// before this plan moved anything of it.
pub(crate) fn matches(
    info: &AccountInfo,
    want: &Expected,
    seen_before: bool,
) -> Result<(), String> {
    if seen_before {
        return Err(
            "it was there before this plan first ran on this target (ferry had created no \
             session of the plan yet), so it is another account with the same name"
                .into(),
        );
    }
    let owner = info.owner.as_deref().unwrap_or("root");
    if owner != want.owner {
        return Err(format!(
            "its owner on the target is {owner}, the plan's is {}",
            want.owner
        ));
    }
    match (&want.domain, &info.domain) {
        (None, _) => Err(
            "its main domain could not be compared with the source's (neither the plan nor the \
             source's analysis gives it)"
                .into(),
        ),
        (Some(d), Some(t)) if d.eq_ignore_ascii_case(t) => Ok(()),
        (Some(d), t) => Err(format!(
            "its main domain on the target is {}, the source's is {d}",
            t.as_deref().unwrap_or("(none)")
        )),
    }
}

/// The names of `found` accounts, for messages: `shop2 (domain d, owner o)`.
pub(crate) fn describe(name: &str, info: &AccountInfo) -> String {
    format!(
        "{name} (on the target: domain {}, owner {})",
        info.domain.as_deref().unwrap_or("(none)"),
        info.owner.as_deref().unwrap_or("root")
    )
}

/// Sources whose analysis is needed to compare domains: those of accounts
/// the plan gives no domain for.
pub(crate) fn sources_needing_analysis<'a>(
    names: impl Iterator<Item = &'a String>,
    domain_of: impl Fn(&str) -> Option<String>,
    source_of: impl Fn(&str) -> Option<usize>,
) -> BTreeSet<usize> {
    names
        .filter(|n| domain_of(n).is_none())
        .filter_map(|n| source_of(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::canned::Canned;
    use crate::journal::record::{ItemResult, Record};

    fn info(user: &str, domain: &str, owner: &str) -> AccountInfo {
        AccountInfo {
            user: user.into(),
            domain: Some(domain.into()),
            owner: Some(owner.into()),
            plan: None,
            ..AccountInfo::default()
        }
    }

    fn state() -> RunState {
        let held = |a: &str| Record::AccountConflict {
            account: a.into(),
            reason: "held".into(),
        };
        Canned::run(&[
            ("old1", "a"),
            ("old1", "b"),
            ("old1", "c"),
            ("old1", "d"),
            ("old1", "e"),
        ])
        .session("old1/s1", &["b", "e"])
        .started("old1/s1")
        .outcome("old1/s1", "b", ItemResult::Failed)
        .then(held("c"))
        .then(held("d"))
        .state()
    }

    /// The module's table, row by row; `e` is in an open session and is
    /// left to it.
    #[test]
    fn the_survey_table() {
        let st = state();
        let cands = candidates(&st);
        assert_eq!(cands, vec!["a", "b", "c", "d"]);
        let listed: BTreeMap<String, AccountInfo> = ["a", "b", "c", "e"]
            .iter()
            .map(|n| (n.to_string(), info(n, "x.test", "root")))
            .collect();
        let out = classify(&st, &cands, &listed);
        assert_eq!(
            out,
            vec![
                ("a".into(), Found::Unknown(info("a", "x.test", "root"))),
                ("b".into(), Found::Partial(info("b", "x.test", "root"))),
                ("c".into(), Found::Held(info("c", "x.test", "root"))),
                ("d".into(), Found::Gone),
            ]
        );
    }

    #[test]
    fn adoption_needs_owner_domain_and_no_earlier_sighting() {
        let i = info("shop2", "Shop.Example.com", "resell1");
        let want = Expected {
            owner: "resell1".into(),
            domain: Some("shop.example.com".into()),
        };
        assert_eq!(matches(&i, &want, false), Ok(()));
        assert!(matches(&i, &want, true).unwrap_err().contains("before"));
        let other_owner = Expected {
            owner: "root".into(),
            ..want.clone()
        };
        assert!(
            matches(&i, &other_owner, false)
                .unwrap_err()
                .contains("owner")
        );
        let other_domain = Expected {
            domain: Some("elsewhere.test".into()),
            ..want.clone()
        };
        assert!(
            matches(&i, &other_domain, false)
                .unwrap_err()
                .contains("domain")
        );
        let no_domain = Expected {
            domain: None,
            ..want
        };
        assert!(matches(&i, &no_domain, false).is_err());
    }
}
