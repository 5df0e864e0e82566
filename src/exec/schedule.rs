//! Which session instance starts when: the one eligibility rule and the
//! creation of instances within the plan's limits.
//!
//! Limits: at most `concurrency.target_sessions` instances live at once
//! (created, enqueuing, starting or running), at most
//! `concurrency.source_sessions` per source. A compiled session ("batch")
//! becomes ready when every batch it depends on is done (its reseller's,
//! its package's first session, its source's `after`). A batch gets a new
//! instance when it has free accounts and no live instance, so an account
//! is never in two live instances:
//!
//! * its first instance carries the whole batch;
//! * later instances (`old1/s2#2` …) carry what is left: accounts freed
//!   from an abandoned, FAILED or ABORTED instance, and failed accounts
//!   within their `item_retries` budget — linked by `session_replaced`.
//!
//! Before an account is enqueued, the target as last listed (the survey,
//! each verification: no request of its own) is checked: one that appeared
//! there meanwhile is a conflict for a person, never enqueued.
//!
//! ## Which ready batch first: the critical path
//!
//! Among the batches that may start, the scheduler starts first those with
//! the most work behind them ([`crate::graph::critical`]): a batch's *tail* is its
//! own estimated duration — the larger of its largest account and its
//! total divided by its `restore_threads` (a session restores that many at
//! a time) — plus the longest tail among what waits for it: the batches
//! that depend on it, and its source's batch `source_sessions` places
//! later (which starts only when one of the source's places frees). Ties
//! keep the plan's order, and a plan without sizes keeps exactly the
//! plan's order. With the compiler's batch composition
//! ([`crate::graph::batch`]: largest first, a giant alone at the head of a
//! short session), this is critical-path list scheduling: the session that
//! would otherwise end the run alone starts in the first wave of slots, and
//! the small sessions fill the restore slots around it — the target's
//! `max_restores` slots stay busy across session boundaries because more
//! sessions are live than slots (each with `restore_threads`), and the
//! shortest ones come last, when they fill the tail.
//!
//! ## One create at a time
//!
//! A new instance is created only when no other instance's
//! `create_remote_root_transfer_session` is in flight (phase `Creating`);
//! one per pass. Enqueueing and starting overlap freely. Two reasons:
//!
//! * sessions started at the same instant with the same work end at the
//!   same instant, under any fair sharing of the target's restores: the
//!   whole first wave ended together, every restore slot idled while ferry
//!   saw the ends and started the next wave, and the run went in rounds
//!   (1.12–1.15× the bound on the equal-size bench). Staggered starts keep
//!   the ends staggered, so a session is created while the others keep the
//!   slots busy (1.04–1.06×; BENCHMARKS.md);
//! * that call logs in to the source over SSH and runs its remote analysis
//!   on both servers: a burst of them is the heavy concurrent use a real
//!   WHM is not built for.
//!
//! The cost: the first wave's last session starts a few creates later (on
//! the transfer-bound bench, where the first wave is nearly all there is,
//! 1.19× became 1.20–1.22×); and a fleet whose sessions last less than
//! `target_sessions` creates would start them slower than places free;
//! and a create that hangs (a source slow to answer SSH) holds the next
//! one back until it answers or its request times out (60 s).
//!
//! Why near-optimal: list scheduling never leaves a slot idle while work
//! is ready, so the makespan is at most `total / slots + longest chain`
//! (Graham); ordering by tail makes the longest chain start first, which
//! is what brings the second term down to the unavoidable longest account.
//! Worst case: the estimates are sizes, not times (a small account with a
//! slow restore is not seen), and the plan's limits may forbid the ideal —
//! `source_sessions` holds a source's giant batch back when that source's
//! other sessions hold its slots, and the `packages first` rule makes every
//! later batch needing a package wait for the first batch that holds it.

use std::collections::{BTreeMap, BTreeSet};

use super::ExecError;
use super::ctx::instance_key;
use super::plan::RunPlan;
use super::run::Scheduler;
use super::session::Want;
use crate::journal::record::{ItemResult, Record};
use crate::journal::{AccountState, Phase, Progress, RunState};
use crate::plan::OrphanPolicy;

/// Where an account stands for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    /// May go into a new instance now.
    Free,
    /// Waits for its reseller (in an earlier batch) to be transferred.
    WaitsFor(String),
    /// In a live instance, or its restore is being decided.
    Busy,
    /// Transferred, or no longer in the plan.
    Done,
    /// Will not move in this apply.
    Held(Hold),
}

/// Why an account will not move in this apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Hold {
    /// Failed beyond its retries, or held for a person.
    Failed,
    /// Its batch cannot get a session.
    Blocked,
    /// Its reseller is held, and `policy.orphans` is `wait`.
    Reseller(String),
}

/// The retry budget of this apply: a cleanly failed account may go to a
/// fresh session while its failures are within `item_retries` (WHM never
/// retries a FAILED item; a new apply grants a new budget). An account
/// moved with live transfer has none: its source may already be
/// suspended and proxied to the target, so a person decides (the failure
/// says how to undo it, [`live_undo`]).
pub(super) fn retries_left(plan: &RunPlan, account: &str, a: &AccountState) -> bool {
    let live = plan
        .account(account)
        .is_some_and(|(_, s)| s.options.live_transfer == Some(1));
    !live
        && matches!(a.progress, Progress::Failed { retryable: true })
        && a.failures <= plan.policy.item_retries
}

/// What a failed live-transfer account needs from a person, worded for
/// its failure (docs/whm.md §7: once its restore completes the source
/// account is suspended and proxies web and mail to the target).
pub(super) fn live_undo(plan: &RunPlan, account: &str) -> Option<String> {
    let (_, a) = plan.account(account)?;
    (a.options.live_transfer == Some(1)).then(|| {
        format!(
            "moved with live transfer, so ferry does not retry it by itself: if its restore got \
             far enough, the source account {user} is suspended and proxied to this server. To \
             undo: on the source, `whmapi1 unsuspendacct user={user}` (this also ends the proxy); \
             here, remove what arrived if anything did (`whmapi1 removeacct user={account}`); then \
             run `ferry apply` again",
            user = a.user
        )
    })
}

/// The one eligibility rule.
///
/// | the account                                    | standing          |
/// |------------------------------------------------|-------------------|
/// | not in the plan, or transferred                | `Done`            |
/// | queued, in progress, restore being decided     | `Busy`            |
/// | failed, no retry left (or held for a person)   | `Held(Failed)`    |
/// | its batch cannot get a session                 | `Held(Blocked)`   |
/// | pending, or failed with a retry left, and …    |                   |
/// | … no reseller in the plan, or it is transferred | `Free`           |
/// | … its reseller is free in the same batch (one instance carries both, with `prerequisite_user`) | `Free` |
/// | … its reseller is held: `orphans: transfer`    | `Free`            |
/// | … its reseller is held: `orphans: wait`        | `Held(Reseller)`  |
/// | … otherwise                                    | `WaitsFor(reseller)` |
pub(super) fn standing(
    plan: &RunPlan,
    blocked: &BTreeMap<usize, String>,
    st: &RunState,
    account: &str,
) -> Standing {
    let own = own_standing(plan, blocked, st, account);
    if own != Standing::Free {
        return own;
    }
    let Some((reseller, same_batch)) = plan.reseller(account) else {
        return Standing::Free;
    };
    if !st.accounts.get(reseller).is_some_and(|r| r.in_plan) {
        return Standing::Free;
    }
    match own_standing(plan, blocked, st, reseller) {
        Standing::Done => Standing::Free,
        Standing::Held(_) if plan.policy.orphans == OrphanPolicy::Transfer => Standing::Free,
        Standing::Held(_) => Standing::Held(Hold::Reseller(reseller.to_string())),
        Standing::Free if same_batch => Standing::Free,
        _ => Standing::WaitsFor(reseller.to_string()),
    }
}

/// [`standing`] without looking at the reseller.
fn own_standing(
    plan: &RunPlan,
    blocked: &BTreeMap<usize, String>,
    st: &RunState,
    account: &str,
) -> Standing {
    let Some(a) = st.accounts.get(account).filter(|a| a.in_plan) else {
        return Standing::Done;
    };
    match a.progress {
        Progress::Transferred => return Standing::Done,
        Progress::Queued | Progress::InProgress | Progress::Unfinished => return Standing::Busy,
        Progress::Pending => {}
        Progress::Failed { .. } if retries_left(plan, account, a) => {}
        Progress::Failed { .. } => return Standing::Held(Hold::Failed),
    }
    match plan.account(account) {
        Some((b, _)) if blocked.contains_key(&b) => Standing::Held(Hold::Blocked),
        _ => Standing::Free,
    }
}

impl Scheduler {
    pub(super) fn standing(&self, st: &RunState, account: &str) -> Standing {
        standing(self.ctx.plan(), &self.blocked, st, account)
    }

    /// A batch is done when no instance of it is live and none of its
    /// accounts can still move in this apply.
    fn batch_done(&self, st: &RunState, bi: usize) -> bool {
        if self.blocked.contains_key(&bi) {
            return true;
        }
        if self.live.values().any(|l| l.batch == Some(bi)) {
            return false;
        }
        self.ctx.plan().sessions()[bi].accounts.iter().all(|a| {
            matches!(
                self.standing(st, &a.target_user),
                Standing::Done | Standing::Held(_)
            )
        })
    }

    /// Starts new instances while the limits allow, critical path first.
    pub(super) fn schedule(&mut self) -> Result<(), ExecError> {
        let ctx = self.ctx.clone();
        let plan = ctx.plan();
        let limits = plan.limits();
        let order = self.order.clone();
        // One create at a time (module doc).
        let creating = ctx.with_state(|st| {
            self.live
                .keys()
                .any(|k| st.session(k).is_some_and(|s| s.phase == Phase::Creating))
        });
        if creating {
            return Ok(());
        }
        for &bi in order.iter() {
            let batch = &plan.sessions()[bi];
            if self.live.len() >= limits.target_sessions as usize {
                break;
            }
            if self.blocked.contains_key(&bi) || self.live.values().any(|l| l.batch == Some(bi)) {
                continue;
            }
            let source = &plan.source(batch.source).name;
            let per_source = self.live.values().filter(|l| &l.source == source).count();
            if per_source >= limits.source_sessions as usize {
                continue;
            }
            let decision = ctx.with_state(|st| {
                if !batch.waits_for().all(|d| self.batch_done(st, d)) {
                    return None;
                }
                let members: Vec<String> = batch
                    .accounts
                    .iter()
                    .filter(|a| self.standing(st, &a.target_user) == Standing::Free)
                    .map(|a| a.target_user.clone())
                    .collect();
                if members.is_empty() {
                    return None;
                }
                let before = st.instances_of(&batch.key).count();
                let key = instance_key(&batch.key, before, |k| st.session(k).is_some());
                let prev = st.instances_of(&batch.key).last().map(|s| s.key.clone());
                let packages = if before == 0 {
                    batch.packages.clone()
                } else {
                    packages_still_needed(plan, st, bi, &members)
                };
                Some((key, prev, members, packages))
            });
            let Some((key, prev, members, packages)) = decision else {
                continue;
            };
            // Before an account is enqueued: is it on the target already?
            // ferry did not put it there: a person decides — unless the plan
            // restores onto it on purpose (`allow_overwrite`).
            let (members, appeared): (Vec<String>, Vec<String>) =
                members.into_iter().partition(|m| {
                    ctx.on_target(m).is_none()
                        || ctx.plan().account(m).is_some_and(|(_, a)| a.overwrites())
                });
            for m in &appeared {
                ctx.record(Record::AccountConflict {
                    account: m.clone(),
                    reason: format!(
                        "it appeared on the target while this run was going, before ferry \
                         enqueued it: another tool or person is moving it. Check it; if it is this \
                         plan's account, `ferry apply --adopt` adopts it once that transfer has \
                         ended (whmapi1 accountsummary user={m})"
                    ),
                })?;
                self.on_item_failed(&batch.key, m)?;
            }
            if members.is_empty() {
                continue;
            }
            // Crash window: killed after this fsync and before
            // `session_created`, the id is lost. Resume records this
            // instance abandoned (a PENDING orphan at most, never started)
            // and creates a new one.
            ctx.intent(Record::SessionCreateIntent {
                session: key.clone(),
                batch: batch.key.clone(),
                source: source.clone(),
                host: plan.source(batch.source).host.clone(),
                accounts: members,
                packages,
                replaces: prev.clone(),
            })?;
            if let Some(old) = prev {
                ctx.record(Record::SessionReplaced {
                    old,
                    new: key.clone(),
                })?;
            }
            self.spawn(key, Want::Run);
            break;
        }
        Ok(())
    }

    /// Why an account the run leaves pending did not move.
    pub(super) fn pending_reason(&self, st: &RunState, name: &str, a: &AccountState) -> String {
        match self.standing(st, name) {
            Standing::Held(Hold::Blocked) => {
                let why = self
                    .ctx
                    .plan()
                    .account(name)
                    .and_then(|(b, _)| self.blocked.get(&b))
                    .cloned()
                    .unwrap_or_default();
                return format!("no session could be created: {why}");
            }
            Standing::Held(Hold::Reseller(r)) => {
                return format!(
                    "waiting for its reseller {r}, which failed (policy.orphans: wait)"
                );
            }
            _ => {}
        }
        match a.progress {
            Progress::Unfinished => "its restore began but did not finish; not verified yet".into(),
            Progress::InProgress | Progress::Queued => {
                let live = a
                    .session
                    .as_ref()
                    .and_then(|s| st.session(s))
                    .is_some_and(|s| matches!(s.phase, Phase::Starting | Phase::Started));
                if live {
                    "in a session that is paused or still running on the server".into()
                } else {
                    "in a session not started yet".into()
                }
            }
            _ => "not started".into(),
        }
    }
}

/// Packages a later instance needs: those of its accounts that no instance
/// of the same source has transferred yet.
fn packages_still_needed(
    plan: &RunPlan,
    st: &RunState,
    bi: usize,
    members: &[String],
) -> Vec<String> {
    let batch = &plan.sessions()[bi];
    let source = &plan.source(batch.source).name;
    let done: BTreeSet<&String> = st
        .sessions()
        .iter()
        .filter(|s| &s.source == source)
        .flat_map(|s| {
            s.package_results
                .iter()
                .filter(|(_, r)| **r != ItemResult::Failed)
                .map(|(p, _)| p)
        })
        .collect();
    let mut out: Vec<String> = members
        .iter()
        .filter_map(|m| plan.account(m).and_then(|(_, a)| a.package.clone()))
        .filter(|p| !done.contains(p) && batch.packages.contains(p))
        .collect();
    out.sort();
    out.dedup();
    out
}
