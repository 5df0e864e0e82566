//! Everything before the first session is created: steps 3–5 of resume
//! ([`super::reconcile`]), in order — catch up with the target's record of
//! the plan's sessions ([`super::mirror`]), compare the plan with the
//! journal, record the run, survey the target ([`super::target`]) and adopt
//! under `--adopt`, then hand every open session to a task.
//!
//! ## Crash windows
//!
//! Nothing here creates or enqueues anything. A kill before `run_started`
//! leaves only records that are true whenever they are read again:
//! `session_recovered` / `session_mirrored` (what the target's record
//! says), `target_surveyed`. An adoption (`account_adopted`) is recorded
//! only after its checks, and an analysis session made for it is never
//! started (at worst a PENDING orphan WHM deletes after 4 hours).

use std::collections::{BTreeMap, BTreeSet};

use super::ctx;
use super::policy::stop_for;
use super::reconcile::{self, OpenSession};
use super::run::Scheduler;
use super::session::Want;
use super::target;
use super::{ExecError, Mode};
use crate::events::Event;
use crate::graph::{RunStep, StepId};
use crate::journal::RunPhase;
use crate::journal::record::{ControlAction, Record};

impl Scheduler {
    /// Steps 3–5 of [`super::reconcile`], in order: catch up with the
    /// target's record of the plan's sessions, compare the plan, record the
    /// run, survey the target, classify the open sessions and start their
    /// tasks. Nothing is created or enqueued before this returns.
    pub(crate) async fn prepare(&mut self) -> Result<(), ExecError> {
        if let Mode::Apply { restart: false, .. } = self.mode
            && let RunPhase::Aborted { reason } = self.ctx.with_state(|st| st.phase.clone())
        {
            return Err(ExecError::Aborted { reason });
        }
        let resumed = self.ctx.with_state(|st| st.runs > 0);
        let planned = reconcile::planned_accounts(self.ctx.plan());
        // A change the journal itself shows is refused before any request;
        // one only the target's record shows (a journal behind it), after
        // reading that record.
        if matches!(self.mode, Mode::Apply { .. }) {
            self.ctx
                .with_state(|st| reconcile::compare(st, &planned))
                .map_err(|accounts| ExecError::PlanChanged { accounts })?;
        }
        self.recover().await?;
        match self.mode.clone() {
            Mode::Apply { restart, .. } => {
                let diff = self
                    .ctx
                    .with_state(|st| reconcile::compare(st, &planned))
                    .map_err(|accounts| ExecError::PlanChanged { accounts })?;
                let plan = self.ctx.plan();
                self.ctx.record(Record::RunStarted {
                    plan: plan.path.clone(),
                    plan_name: Some(plan.name.clone()),
                    plan_hash: plan.hash.clone(),
                    accounts: planned.clone(),
                    ferry_version: env!("CARGO_PKG_VERSION").to_string(),
                    pid: std::process::id(),
                    host: crate::journal::lock::hostname(),
                    tls_insecure: self.tls_insecure,
                    simulate: self.simulate,
                    restart,
                })?;
                if !diff.is_empty() {
                    self.ctx.record(Record::PlanChanged {
                        added: diff.added,
                        dropped: diff.dropped,
                        changed: diff.changed,
                    })?;
                }
                self.survey().await?;
                self.source_checks().await?;
            }
            Mode::Control(req) => {
                let what = match req.action {
                    ControlAction::Pause => "ferry pause",
                    ControlAction::Abort => "ferry abort",
                };
                self.ctx.record(ctx::request_record(
                    &req,
                    &format!("{what} (no apply was running)"),
                ))?;
                self.stop = Some(stop_for(&req, what));
            }
        }
        let counts = self.ctx.with_state(ctx::counts);
        let bytes = self.ctx.with_state(|st| ctx::bytes(self.ctx.plan(), st));
        self.ctx.emit(Event::RunStarted {
            bytes,
            plan: self.ctx.plan().path.clone(),
            journal: self.journal_path.display().to_string(),
            resumed,
            accounts: counts,
            sessions_planned: self.ctx.plan().sessions().len(),
        });
        self.resume_open(&planned)
    }

    /// Step 3: the target's record of the plan's sessions
    /// ([`super::mirror`]). One `nvget` when the journal is up to date; the
    /// entries it lacks otherwise, each recorded as `session_mirrored` (a
    /// session it knows by its id) or `session_recovered` (one it lost).
    async fn recover(&mut self) -> Result<(), ExecError> {
        let ctx = self.ctx.clone();
        let known = ctx.with_state(|st| st.mirror_count);
        let read = match ctx
            .mirror
            .read(
                &ctx.api,
                known,
                ctx.retry_note(StepId::Run(RunStep::MirrorRead)),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Err(ExecError::Target(format!(
                    "cannot read the target's record of this plan's sessions, so ferry cannot \
                     tell whether its journal is behind the target: {e}"
                )));
            }
        };
        if let Some(why) = ctx.mirror.unavailable().await {
            ctx.emit(Event::Warning {
                message: why.to_string(),
            });
            return Ok(());
        }
        for (n, why) in &read.damaged {
            ctx.emit(Event::Warning {
                message: format!(
                    "entry {n} of the target's record of this plan ({}) cannot be trusted: {why}; \
                     it was a write cut short, before anything was enqueued into its session",
                    ctx.mirror.store()
                ),
            });
        }
        if read.count < known {
            ctx.emit(Event::Warning {
                message: format!(
                    "the target's record of this plan ({}) lists {} sessions, the journal knows \
                     {known}: is this the target the journal was written against?",
                    ctx.mirror.store(),
                    read.count
                ),
            });
        }
        let records = ctx.with_state(|st| reconcile::recovered(st, &read.entries));
        let lost: Vec<String> = records
            .iter()
            .filter_map(|r| match r {
                Record::SessionRecovered { session, id, .. } => Some(format!("{session} ({id})")),
                _ => None,
            })
            .collect();
        for r in records {
            ctx.record(r)?;
        }
        if !lost.is_empty() {
            ctx.emit(Event::Warning {
                message: format!(
                    "this journal was behind the target: {} session(s) it did not know were read \
                     back from the target's record and are reconciled with the server before \
                     anything else: {}",
                    lost.len(),
                    lost.join(", ")
                ),
            });
        }
        Ok(())
    }

    /// Step 4: what the target already has ([`super::target`]). One
    /// `listaccts`, only when some planned account may be enqueued.
    async fn survey(&mut self) -> Result<(), ExecError> {
        let ctx = self.ctx.clone();
        let candidates = ctx.with_state(target::candidates);
        if candidates.is_empty() {
            return Ok(());
        }
        let listed = match target::list(&ctx).await {
            Ok(l) => l,
            Err(e) => {
                return Err(ExecError::Target(format!(
                    "cannot list the target's accounts, so ferry cannot tell which of the plan's \
                     accounts are already there: {e}"
                )));
            }
        };
        let present: Vec<String> = candidates
            .iter()
            .filter(|c| listed.contains_key(*c))
            .cloned()
            .collect();
        // No session of this plan was ever created on this target (its
        // record says so, and the journal knows none): whatever is there
        // now was there before the plan.
        let before_any_session = ctx.mirror.unavailable().await.is_none()
            && ctx.mirror.count().await == 0
            && ctx.with_state(|st| st.sessions().is_empty());
        ctx.record(Record::TargetSurveyed {
            present: present.clone(),
            before_any_session,
        })?;
        let seen_before: BTreeSet<String> = ctx.with_state(|st| {
            present
                .iter()
                .filter(|n| st.accounts[*n].there_before_plan)
                .cloned()
                .collect()
        });
        let mut findings = ctx.with_state(|st| target::classify(st, &candidates, &listed));
        // An account the plan restores onto on purpose (`allow_overwrite`)
        // is expected there: moved as planned, never adopted.
        findings.retain(|(name, found)| {
            !(matches!(found, target::Found::Unknown(_) | target::Found::Partial(_))
                && ctx
                    .plan()
                    .account(name)
                    .is_some_and(|(_, a)| a.overwrites()))
        });
        ctx.set_target_view(listed);
        let adopt = matches!(self.mode, Mode::Apply { adopt: true, .. });
        let mut unknown = Vec::new();
        let mut to_adopt = Vec::new();
        for (name, found) in findings {
            match found {
                target::Found::Gone => ctx.record(Record::AccountReleased {
                    account: name,
                    reason: "held for a check, and no longer on the target: moved again".into(),
                })?,
                target::Found::Partial(info) => ctx.record(Record::AccountConflict {
                    account: name.clone(),
                    reason: format!(
                        "WHM reported its restore failed, yet it is on the target (domain {}, \
                         owner {}): a partial restore. Check it; remove it from the target \
                         (`whmapi1 removeacct user={name}`) and run `ferry apply` to move it \
                         again, or `ferry apply --adopt` if it is complete",
                        info.domain.as_deref().unwrap_or("(none)"),
                        info.owner.as_deref().unwrap_or("root"),
                    ),
                })?,
                target::Found::Held(info) if adopt => to_adopt.push((name, info)),
                target::Found::Held(_) => {}
                target::Found::Unknown(info) if adopt => to_adopt.push((name, info)),
                target::Found::Unknown(info) => unknown.push(target::describe(&name, &info)),
            }
        }
        if !unknown.is_empty() {
            return Err(ExecError::FoundOnTarget {
                accounts: unknown,
                plan: ctx.plan().path.clone(),
            });
        }
        if !to_adopt.is_empty() {
            self.adopt(to_adopt, &seen_before).await?;
        }
        Ok(())
    }

    /// Before anything is enqueued, one read-only analysis per source that
    /// needs it: a source asked for live transfer (an account still to move
    /// with `live_transfer: 1`) must say that it supports it (docs/whm.md
    /// §7), and with an inventory next to the plan every source with
    /// accounts still to move is compared with it ([`super::stale`]). An
    /// analysis that cannot be read is a warning (WHM's own enqueue checks
    /// still apply).
    async fn source_checks(&mut self) -> Result<(), ExecError> {
        let ctx = self.ctx.clone();
        let inventory = ctx.plan().inventory.clone();
        // Per source: its accounts still to move (source usernames), the
        // packages of their sessions, and whether one asks for live transfer.
        let mut todo: BTreeMap<usize, (Vec<String>, BTreeSet<String>, bool)> = BTreeMap::new();
        ctx.with_state(|st| {
            for sp in ctx.plan().sessions() {
                for a in &sp.accounts {
                    let pending = st.accounts.get(&a.target_user).is_some_and(|s| {
                        matches!(
                            s.progress,
                            crate::journal::Progress::Pending
                                | crate::journal::Progress::Failed { retryable: true }
                        )
                    });
                    if !pending {
                        continue;
                    }
                    let e = todo.entry(a.source).or_default();
                    e.0.push(a.user.clone());
                    e.1.extend(sp.packages.iter().cloned());
                    e.2 |= a.options.live_transfer == Some(1);
                }
            }
        });
        let (mut unsupported, mut stale) = (Vec::new(), Vec::new());
        for (src, (users, packages, live)) in todo {
            let source = ctx.plan().source(src).clone();
            let inv = inventory
                .as_deref()
                .filter(|i| i.sources.contains_key(&source.name));
            if !live && inv.is_none() {
                continue;
            }
            match ctx::analysis_of(&ctx, src).await {
                Ok(a) => {
                    if live && a.supports_live_transfers == Some(false) {
                        unsupported.push(format!(
                            "{} ({}): its analysis says it does not support live transfers",
                            source.name, source.host
                        ));
                    }
                    if let Some(inv) = inv {
                        let users: Vec<&str> = users.iter().map(String::as_str).collect();
                        let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
                        let found = super::stale::compare(
                            &source.name,
                            &ctx.plan().path,
                            &users,
                            &packages,
                            &a,
                            inv,
                            ctx.plan().policy.growth_warning,
                        );
                        for message in found.warnings {
                            ctx.emit(Event::Warning { message });
                        }
                        stale.extend(found.refused);
                    }
                }
                Err(e) => ctx.emit(Event::Warning {
                    message: format!(
                        "could not read the remote analysis of {} ({e}); WHM checks each \
                         account again when it is enqueued",
                        source.name
                    ),
                }),
            }
        }
        if !stale.is_empty() {
            return Err(ExecError::StalePlan { findings: stale });
        }
        if !unsupported.is_empty() {
            return Err(ExecError::LiveTransferUnsupported {
                sources: unsupported,
            });
        }
        Ok(())
    }

    /// `--adopt`: each account found on the target is recorded transferred
    /// if it matches the plan and its source, or a conflict if not
    /// ([`super::target`]).
    async fn adopt(
        &mut self,
        found: Vec<(String, crate::client::AccountInfo)>,
        seen_before: &BTreeSet<String>,
    ) -> Result<(), ExecError> {
        let ctx = self.ctx.clone();
        let (mirrored, open) = ctx.with_state(|st| {
            (
                st.mirror_count,
                st.sessions().iter().filter(|s| s.is_open()).count(),
            )
        });
        ctx.emit(Event::Warning {
            message: match ctx.mirror.unavailable().await {
                None => format!(
                    "--adopt: the target's record of this plan lists {mirrored} session(s); this \
                     run reconciles the {open} still open, and none of them holds the {} \
                     account(s) found on the target",
                    found.len()
                ),
                Some(_) => "--adopt: this target keeps no record of ferry's sessions, so ferry \
                            cannot check that no transfer of these accounts is still running; make \
                            sure none is (WHM » Transfer Tool) before trusting the adoption"
                    .to_string(),
            },
        });
        let analyses = self.analyses_for(&found).await;
        for (name, info) in found {
            let Some((bi, acc)) = ctx.plan().account(&name) else {
                continue;
            };
            let source = ctx.plan().sessions()[bi].source;
            let owner = acc.owner_on_target().to_string();
            let domain = acc.domain.clone().or_else(|| {
                analyses
                    .get(&source)
                    .and_then(|a| a.as_ref().ok())
                    .and_then(|a| a.accounts.iter().find(|x| x.user == acc.user))
                    .and_then(|x| x.domain.clone())
            });
            let want = target::Expected { owner, domain };
            let verdict = match target::matches(&info, &want, seen_before.contains(&name)) {
                Err(why) if want.domain.is_none() => match analyses.get(&source) {
                    Some(Err(e)) => Err(format!("{why}: the source's analysis failed ({e})")),
                    _ => Err(why),
                },
                v => v,
            };
            match verdict {
                Ok(()) => {
                    ctx.record(Record::AccountAdopted {
                        account: name.clone(),
                        how: format!(
                            "found on the target with the planned owner ({}) and main domain ({}); \
                             adopted by `ferry apply --adopt`",
                            want.owner,
                            want.domain.as_deref().unwrap_or("?")
                        ),
                        domain: info.domain.clone(),
                        owner: info.owner.clone(),
                    })?;
                    ctx.emit(Event::ItemSucceeded {
                        size: ctx::size_of(ctx.plan(), &name),
                        adopted: ctx.with_state(|st| st.accounts[&name].adopted.clone()),
                        notes: Vec::new(),
                        account: name,
                        source: ctx.plan().source(source).name.clone(),
                        session: String::new(),
                        warnings: false,
                    });
                }
                Err(why) => {
                    ctx.record(Record::AccountConflict {
                        account: name.clone(),
                        reason: format!(
                            "on the target, but not as planned: {why}. ferry leaves it alone: \
                             rename the account in the plan (`localuser`), or remove the one on \
                             the target, then run apply again"
                        ),
                    })?;
                    self.on_item_failed("", &name)?;
                }
            }
        }
        Ok(())
    }

    /// The remote analysis of each source whose found accounts have no
    /// domain in the plan: a read-only analysis session per source, created
    /// and aborted without being started (as `ferry check` does).
    async fn analyses_for(
        &self,
        found: &[(String, crate::client::AccountInfo)],
    ) -> BTreeMap<usize, Result<crate::client::RemoteAnalysis, String>> {
        let ctx = &self.ctx;
        let needed = target::sources_needing_analysis(
            found.iter().map(|(n, _)| n),
            |n| ctx.plan().account(n).and_then(|(_, a)| a.domain.clone()),
            |n| {
                ctx.plan()
                    .account(n)
                    .map(|(b, _)| ctx.plan().sessions()[b].source)
            },
        );
        let mut out = BTreeMap::new();
        for src in needed {
            out.insert(src, ctx::analysis_of(ctx, src).await);
        }
        out
    }

    /// Step 4: every instance the journal left open.
    fn resume_open(
        &mut self,
        planned: &BTreeMap<String, crate::journal::record::PlannedAccount>,
    ) -> Result<(), ExecError> {
        let control = matches!(self.mode, Mode::Control(_));
        let open = self.ctx.with_state(|st| {
            reconcile::classify_open(st, |a| {
                control
                    || planned
                        .get(a)
                        .zip(st.accounts.get(a))
                        .is_some_and(|(p, s)| p.entry == s.entry)
            })
        });
        let want = self.want_for_all();
        for o in open {
            match o {
                OpenSession::Abandon { key, id, reason } => {
                    self.ctx.record(Record::SessionAbandoned {
                        session: key,
                        id,
                        reason,
                    })?;
                }
                // Pausing something never started: nothing to do on the
                // server; the next `apply` continues it.
                OpenSession::Continue { .. } if want == Want::Pause => {}
                OpenSession::Continue { key } | OpenSession::Reconcile { key } => {
                    self.spawn(key, want);
                }
            }
        }
        Ok(())
    }
}
