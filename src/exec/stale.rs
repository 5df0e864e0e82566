//! The stale-plan guard (issue 12): before anything is enqueued, each
//! source with accounts still to move is compared with what the plan was
//! reviewed against — the inventory committed next to it (`ferry
//! inventory`, `plan::inventory`).
//!
//! Owns: the comparison ([`compare`], pure) and its findings: a planned
//! account the source no longer has, or a package it no longer has, stops
//! the run before anything is enqueued (exit 2, `ExecError::StalePlan`);
//! an account grown past `policy.growth_warning` (1.5 by default) times its
//! inventoried size is a warning (the schedule was composed from the old
//! size). Does not own: reading the analysis (`ctx::analysis_of`, one read-only session per
//! source, never started), the live-transfer rule (`prepare`, which reads
//! the same analysis), or a planned username already held on the target
//! (the survey, `target`: adopted, restored onto with `allow_overwrite`, or
//! refused as `FoundOnTarget`).
//!
//! Without an inventory the guard does not run: nothing was reviewed to
//! compare with, and WHM refuses an enqueue of an account its source lacks.
//! Accounts already transferred or adopted are never compared (they may be
//! gone from the source on purpose after their move).

use std::collections::HashMap;

use crate::client::RemoteAnalysis;
use crate::plan::inventory::Inventory;

/// What [`compare`] found for one source.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stale {
    /// Each stops the run (exit 2), with its fix.
    pub refused: Vec<String>,
    /// Each is reported; the run goes on.
    pub warnings: Vec<String>,
}

/// Compares one source's live analysis with the inventory, for the
/// accounts (source usernames) and packages the plan still has to move.
pub(crate) fn compare(
    source: &str,
    plan_path: &str,
    pending: &[&str],
    packages: &[&str],
    live: &RemoteAnalysis,
    inventory: &Inventory,
    growth: f64,
) -> Stale {
    let mut out = Stale::default();
    let now_by_user: HashMap<&str, _> =
        live.accounts.iter().map(|a| (a.user.as_str(), a)).collect();
    for &user in pending {
        let Some(now) = now_by_user.get(user) else {
            out.refused.push(format!(
                "{source}: account `{user}` is no longer on the source — remove it from the plan \
                 (or fix its user name), then run `ferry inventory {plan_path}` and review the diff"
            ));
            continue;
        };
        let then = inventory.account(source, user).and_then(|a| a.bytes);
        if let (Some(before), Some(after)) = (then, now.bytes)
            && before > 0
            && after as f64 > before as f64 * growth
        {
            out.warnings.push(format!(
                "{source}: account `{user}` has grown from {before} to {after} bytes since the \
                 inventory (more than {growth}×, `policy.growth_warning`): the schedule was \
                 planned with the old size; run `ferry inventory {plan_path}` and commit it to plan with the new one"
            ));
        }
    }
    for &p in packages {
        if !live.packages.iter().any(|have| have == p) {
            out.refused.push(format!(
                "{source}: package `{p}` is no longer on the source — remove it from the source's \
                 `packages` and the accounts' `package: {p}`, or recreate it on the source"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AccountInfo;
    use crate::plan::inventory::{AccountInventory, SourceInventory};

    fn live(accounts: &[(&str, Option<u64>)], packages: &[&str]) -> RemoteAnalysis {
        RemoteAnalysis {
            accounts: accounts
                .iter()
                .map(|&(user, bytes)| AccountInfo {
                    user: user.to_string(),
                    bytes,
                    ..AccountInfo::default()
                })
                .collect(),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            supports_live_transfers: None,
            version: None,
            databases: Default::default(),
        }
    }

    /// The inventory of one source, `old1`.
    fn inventory(accounts: &[(&str, Option<u64>)]) -> Inventory {
        let mut inv = Inventory {
            format: crate::plan::inventory::FORMAT,
            taken_at: "2026-12-01T00:00:00Z".into(),
            sources: Default::default(),
        };
        inv.sources.insert("old1".into(), source(accounts));
        inv.normalise();
        inv
    }

    fn source(accounts: &[(&str, Option<u64>)]) -> SourceInventory {
        SourceInventory {
            host: "old1.example.com".into(),
            version: None,
            supports_live_transfers: None,
            accounts: accounts
                .iter()
                .map(|&(user, bytes)| AccountInventory {
                    user: user.to_string(),
                    domain: None,
                    owner: None,
                    package: None,
                    bytes,
                    files: None,
                    dedicated_ip: None,
                })
                .collect(),
        }
    }

    #[test]
    fn as_inventoried_nothing_is_found() {
        let inv = inventory(&[("shop", Some(100)), ("blog", Some(50))]);
        let now = live(&[("shop", Some(140)), ("blog", Some(50))], &["gold"]);
        let s = compare(
            "old1",
            "p.yaml",
            &["shop", "blog"],
            &["gold"],
            &now,
            &inv,
            1.5,
        );
        assert_eq!(s, Stale::default());
    }

    #[test]
    fn a_missing_account_and_a_missing_package_are_refused_with_their_fix() {
        let inv = inventory(&[("shop", Some(100)), ("gone", Some(50))]);
        let now = live(&[("shop", Some(100))], &["silver"]);
        let s = compare(
            "old1",
            "p.yaml",
            &["shop", "gone"],
            &["gold"],
            &now,
            &inv,
            1.5,
        );
        assert_eq!(s.refused.len(), 2, "{s:?}");
        assert!(s.refused[0].contains("`gone` is no longer on the source"));
        assert!(s.refused[0].contains("ferry inventory p.yaml"));
        assert!(s.refused[1].contains("package `gold`"));
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn growth_past_the_factor_warns_and_below_it_does_not() {
        let inv = inventory(&[("big", Some(1_000)), ("ok", Some(1_000)), ("unknown", None)]);
        let now = live(
            &[
                ("big", Some(1_501)),
                ("ok", Some(1_500)),
                ("unknown", Some(9_999)),
            ],
            &[],
        );
        let s = compare(
            "old1",
            "p.yaml",
            &["big", "ok", "unknown"],
            &[],
            &now,
            &inv,
            1.5,
        );
        assert!(s.refused.is_empty());
        assert_eq!(s.warnings.len(), 1, "{s:?}");
        assert!(s.warnings[0].contains("`big` has grown from 1000 to 1501 bytes"));
    }

    #[test]
    fn only_pending_accounts_are_compared() {
        let now = live(&[], &[]);
        let inv = inventory(&[("moved", Some(100))]);
        let s = compare("old1", "p.yaml", &[], &[], &now, &inv, 1.5);
        assert_eq!(
            s,
            Stale::default(),
            "a transferred account gone from its source is fine"
        );
    }
}
