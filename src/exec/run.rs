//! The scheduler: which session instance runs when.
//!
//! One loop owns the scheduling decisions; session tasks do the I/O. Every
//! decision reads the journal's [`RunState`] (the single source of truth)
//! and is recorded there before it takes effect.
//!
//! Limits: at most `concurrency.target_sessions` instances live at once
//! (created, enqueuing, starting or running), at most
//! `concurrency.source_sessions` per source. A batch becomes ready when
//! every batch it depends on (`after` waves, resellers in earlier batches)
//! is done. A batch gets a new instance when it has eligible accounts and
//! no live instance, so an account is never in two live instances:
//!
//! * its first instance carries the whole batch;
//! * later instances (`old1/s2#2` …) carry what is left: accounts freed
//!   from an abandoned, FAILED or ABORTED instance, and failed accounts
//!   within their `item_retries` budget — linked by `session_replaced`.
//!
//! Policies on a failed account (after its retries): `pause` pauses that
//! session (graceful), stops scheduling, lets the other live sessions end,
//! exits 3; `abort` aborts every live session, exits 5; `continue` records
//! it, holds back accounts owned by a failed reseller (`orphans: wait`) or
//! lets them go (`orphans: transfer`), and finishes the rest (exit 4).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::control::{self, ControlRequest};
use super::reconcile::{self, OpenSession};
use super::session::Want;
use super::target;
use super::task::{self, TaskEnd, TaskFail};
use super::{Ctx, ExecError, Mode, Msg, RunInput, RunReport};
use crate::events::{Event, RunStatus};
use crate::journal::record::{ControlAction, FinishStatus, Record};
use crate::journal::{Phase, Progress, RunPhase, RunState};
use crate::plan::{OnError, OrphanPolicy};

/// Why the run stops scheduling. Ordered: a later variant overrides an
/// earlier one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Pause(String),
    Abort(String),
    Fatal(String),
    Interrupted,
}

/// Instances of a batch in a row that may end without concluding any
/// account before the batch is given up.
const BARREN_LIMIT: u32 = 3;

struct Live {
    batch: Option<usize>,
    source: String,
    want: watch::Sender<Want>,
}

pub(crate) struct Scheduler {
    ctx: Arc<Ctx>,
    rx: mpsc::UnboundedReceiver<Msg>,
    tasks: JoinSet<(String, TaskEnd)>,
    live: BTreeMap<String, Live>,
    stop: Option<Stop>,
    /// Batches that cannot get a session (create refused), with why.
    blocked: BTreeMap<usize, String>,
    /// Consecutive abandoned creates per batch.
    create_failures: BTreeMap<usize, u32>,
    /// Consecutive instances per batch that ended without concluding any
    /// of their accounts.
    barren: BTreeMap<usize, u32>,
    journal_path: std::path::PathBuf,
    mode: Mode,
    /// `apply --simulate`: advice names the rehearsal.
    simulate: bool,
    tls_insecure: bool,
    started: Instant,
    /// The first journal failure met while recording the run's end.
    end_unrecorded: Option<String>,
}

impl Scheduler {
    /// The scheduler of a run, before anything is read or recorded.
    pub(crate) fn new(input: RunInput) -> Scheduler {
        let RunInput {
            plan,
            mut journal,
            journal_path,
            api,
            reporter,
            timing,
            mode,
            simulate,
            tls_insecure,
        } = input;
        journal.set_group_window(timing.group_window);
        let (tx, rx) = mpsc::unbounded_channel();
        Scheduler {
            ctx: Arc::new(Ctx::new(journal, api, reporter, plan, timing, tx)),
            rx,
            tasks: JoinSet::new(),
            live: BTreeMap::new(),
            stop: None,
            blocked: BTreeMap::new(),
            create_failures: BTreeMap::new(),
            barren: BTreeMap::new(),
            journal_path,
            mode,
            simulate,
            tls_insecure,
            started: Instant::now(),
            end_unrecorded: None,
        }
    }

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
            }
            Mode::Control(req) => {
                let what = match req.action {
                    ControlAction::Pause => "ferry pause",
                    ControlAction::Abort => "ferry abort",
                };
                self.ctx.record(super::request_record(
                    &req,
                    &format!("{what} (no apply was running)"),
                ))?;
                self.stop = Some(stop_for(&req, what));
            }
        }
        let counts = self.ctx.with_state(super::counts);
        self.ctx.emit(Event::RunStarted {
            plan: self.ctx.plan().path.clone(),
            journal: self.journal_path.display().to_string(),
            resumed,
            accounts: counts,
            sessions_planned: self.ctx.plan().batches.len(),
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
            .read(&ctx.api, known, ctx.retry_note("mirror/read"))
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
        let findings = ctx.with_state(|st| target::classify(st, &candidates, &listed));
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
            let Some((bi, acc)) = ctx.batch_account(&name) else {
                continue;
            };
            let source = ctx.plan().batches[bi].source;
            let owner = ctx
                .reseller(&name)
                .map(|(r, _)| r.to_string())
                .or_else(|| acc.owner.clone())
                .unwrap_or_else(|| "root".into());
            let domain = acc.item.domain.clone().or_else(|| {
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
                        adopted: ctx.with_state(|st| st.accounts[&name].adopted.clone()),
                        account: name,
                        source: ctx.plan().sources[source].name.clone(),
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
            |n| {
                ctx.batch_account(n)
                    .and_then(|(_, a)| a.item.domain.clone())
            },
            |n| {
                ctx.batch_account(n)
                    .map(|(b, _)| ctx.plan().batches[b].source)
            },
        );
        let mut out = BTreeMap::new();
        for src in needed {
            out.insert(src, super::analysis_of(ctx, src).await);
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

    fn want_for_all(&self) -> Want {
        match &self.stop {
            Some(Stop::Pause(_)) => Want::Pause,
            Some(Stop::Abort(_)) => Want::Abort,
            _ => Want::Run,
        }
    }

    fn spawn(&mut self, key: String, want: Want) {
        let Some(rec) = self.ctx.session(&key) else {
            return;
        };
        let batch = self
            .ctx
            .plan()
            .batches
            .iter()
            .position(|b| b.key == rec.batch);
        let (tx, rx) = watch::channel(want);
        self.live.insert(
            key.clone(),
            Live {
                batch,
                source: rec.source.clone(),
                want: tx,
            },
        );
        let ctx = self.ctx.clone();
        self.tasks.spawn(async move {
            let end = task::drive(ctx, key.clone(), rx).await;
            (key, end)
        });
    }

    pub(crate) async fn run(mut self, cancel: CancellationToken) -> Result<RunReport, ExecError> {
        match self.drive(&cancel).await {
            Ok(()) => {}
            // A journal that cannot be written stops the run before any
            // further WHM call: every task is dropped at once (each is at an
            // await point, where the journal is consistent), and the end is
            // reported from what the journal holds.
            Err(ExecError::Journal(e)) => {
                self.tasks.abort_all();
                self.live.clear();
                self.set_stop(Stop::Fatal(format!("cannot write the journal: {e}")));
            }
            Err(other) => return Err(other),
        }
        self.finish().await
    }

    async fn drive(&mut self, cancel: &CancellationToken) -> Result<(), ExecError> {
        // Accounts left unverified (or unfinished) by an earlier process.
        if let Err(end) = super::verify(&self.ctx, None).await {
            self.on_task_end(String::new(), end);
        }
        let mut control_tick = tokio::time::interval(self.ctx.timing.control_poll);
        control_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.stop.is_none() {
                self.schedule()?;
            }
            if self.live.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.set_stop(Stop::Interrupted);
                    // Detach: the server's sessions carry on; the journal
                    // is consistent at every await point.
                    self.tasks.abort_all();
                    self.live.clear();
                    break;
                }
                Some(joined) = self.tasks.join_next() => match joined {
                    Ok((key, end)) => self.on_task_end(key, end),
                    Err(e) => self.set_stop(Stop::Fatal(format!("a session task failed: {e}"))),
                },
                Some(msg) = self.rx.recv() => self.on_msg(msg)?,
                _ = control_tick.tick() => {
                    self.ctx.tick()?;
                    if matches!(self.mode, Mode::Apply { .. }) {
                        self.check_control()?;
                    }
                }
            }
            if matches!(self.stop, Some(Stop::Fatal(_))) && !self.live.is_empty() {
                self.tasks.abort_all();
                self.live.clear();
            }
        }
        while let Ok(msg) = self.rx.try_recv() {
            self.on_msg(msg)?;
        }
        Ok(())
    }

    fn set_stop(&mut self, stop: Stop) {
        if self.stop.as_ref().is_none_or(|s| *s < stop) {
            self.stop = Some(stop);
        }
    }

    fn tell(&self, key: &str, want: Want) {
        if let Some(l) = self.live.get(key) {
            l.want.send_if_modified(|w| {
                if *w < want {
                    *w = want;
                    true
                } else {
                    false
                }
            });
        }
    }

    fn tell_all(&self, want: Want) {
        for k in self.live.keys() {
            self.tell(k, want);
        }
    }

    /// A request file from `ferry pause` / `ferry abort`: recorded (who,
    /// when) before it is consumed, then obeyed by every live session.
    fn check_control(&mut self) -> Result<(), ExecError> {
        let Some(req) = control::read_request(&self.journal_path) else {
            return Ok(());
        };
        let what = match req.action {
            ControlAction::Pause => "ferry pause",
            ControlAction::Abort => "ferry abort",
        };
        self.ctx.record(super::request_record(&req, what))?;
        self.ctx.sync()?;
        control::consume_request(&self.journal_path);
        let stop = stop_for(&req, what);
        self.set_stop(stop);
        self.tell_all(match req.action {
            ControlAction::Pause => Want::Pause,
            ControlAction::Abort => Want::Abort,
        });
        Ok(())
    }

    /// Starts new instances while the limits allow.
    fn schedule(&mut self) -> Result<(), ExecError> {
        let ctx = self.ctx.clone();
        let plan = ctx.plan();
        let limits = &plan.concurrency;
        for (bi, batch) in plan.batches.iter().enumerate() {
            if self.live.len() >= limits.target_sessions as usize {
                break;
            }
            if self.blocked.contains_key(&bi) || self.live.values().any(|l| l.batch == Some(bi)) {
                continue;
            }
            let source = &plan.sources[batch.source].name;
            let per_source = self.live.values().filter(|l| &l.source == source).count();
            if per_source >= limits.source_sessions as usize {
                continue;
            }
            let decision = self.ctx.with_state(|st| {
                if !batch.depends_on.iter().all(|&d| self.batch_done(st, d)) {
                    return None;
                }
                let members: Vec<String> = batch
                    .accounts
                    .iter()
                    .filter(|a| self.eligible(st, &a.target_user))
                    .map(|a| a.target_user.clone())
                    .collect();
                if members.is_empty() {
                    return None;
                }
                let before: Vec<_> = st.instances_of(&batch.key).collect();
                let key =
                    super::instance_key(&batch.key, before.len(), |k| st.session(k).is_some());
                let prev = before.last().map(|s| s.key.clone());
                let packages = if before.is_empty() {
                    batch.packages.clone()
                } else {
                    self.packages_still_needed(st, bi, &members)
                };
                Some((key, prev, members, packages))
            });
            let Some((key, prev, members, packages)) = decision else {
                continue;
            };
            // Before an account is enqueued: is it on the target already?
            // (The target as last listed — the survey, or a session's
            // verification; no request of its own.) ferry did not put it
            // there: a person decides.
            let (members, appeared): (Vec<String>, Vec<String>) = members
                .into_iter()
                .partition(|m| self.ctx.on_target(m).is_none());
            for m in &appeared {
                self.ctx.record(Record::AccountConflict {
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
            self.ctx.intent(Record::SessionCreateIntent {
                session: key.clone(),
                batch: batch.key.clone(),
                source: source.clone(),
                host: plan.sources[batch.source].host.clone(),
                accounts: members,
                packages,
                replaces: prev.clone(),
            })?;
            if let Some(old) = prev {
                self.ctx.record(Record::SessionReplaced {
                    old,
                    new: key.clone(),
                })?;
            }
            self.spawn(key, Want::Run);
        }
        Ok(())
    }

    /// Packages a later instance needs: those of its accounts that no
    /// instance of the same source has transferred yet.
    fn packages_still_needed(&self, st: &RunState, bi: usize, members: &[String]) -> Vec<String> {
        let plan = self.ctx.plan();
        let batch = &plan.batches[bi];
        let source = &plan.sources[batch.source].name;
        let done: BTreeSet<&String> = st
            .sessions()
            .iter()
            .filter(|s| &s.source == source)
            .flat_map(|s| {
                s.package_results
                    .iter()
                    .filter(|(_, r)| **r != crate::journal::record::ItemResult::Failed)
                    .map(|(p, _)| p)
            })
            .collect();
        let mut out: Vec<String> = members
            .iter()
            .filter_map(|m| {
                self.ctx
                    .batch_account(m)
                    .and_then(|(_, a)| a.package.clone())
            })
            .filter(|p| !done.contains(p) && batch.packages.contains(p))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// May the account go into a new instance now?
    fn eligible(&self, st: &RunState, account: &str) -> bool {
        let Some(a) = st.accounts.get(account) else {
            return false;
        };
        if !a.in_plan {
            return false;
        }
        let free = match a.progress {
            Progress::Pending => true,
            // WHM never retries a FAILED item, so the account can go to a
            // fresh session — within this apply's `item_retries` budget
            // (a new apply grants a new one).
            Progress::Failed { retryable: true } => {
                a.failures <= self.ctx.plan().policy.item_retries
            }
            _ => false,
        };
        free && self.owner_allows(st, account)
    }

    /// Accounts owned by a reseller of the plan wait for it; if it failed
    /// for good, `policy.orphans` decides.
    fn owner_allows(&self, st: &RunState, account: &str) -> bool {
        match self.reseller_of(st, account) {
            None => true,
            Some((reseller, same_batch)) => {
                let r = &st.accounts[&reseller];
                match r.progress {
                    Progress::Transferred => true,
                    _ if self.dead(st, &reseller) => {
                        self.ctx.plan().policy.orphans == OrphanPolicy::Transfer
                    }
                    // In the same batch: the same instance carries both,
                    // with `prerequisite_user`.
                    _ => same_batch && self.eligible_ignoring_owner(st, &reseller),
                }
            }
        }
    }

    fn eligible_ignoring_owner(&self, st: &RunState, account: &str) -> bool {
        st.accounts.get(account).is_some_and(|a| {
            a.in_plan
                && match a.progress {
                    Progress::Pending => true,
                    Progress::Failed { retryable: true } => {
                        a.failures <= self.ctx.plan().policy.item_retries
                    }
                    _ => false,
                }
        })
    }

    /// The account's reseller if it is in the plan (target username), and
    /// whether it is in the same batch.
    fn reseller_of(&self, st: &RunState, account: &str) -> Option<(String, bool)> {
        let (reseller, same_batch) = self.ctx.reseller(account)?;
        st.accounts
            .get(reseller)
            .is_some_and(|s| s.in_plan)
            .then(|| (reseller.to_string(), same_batch))
    }

    /// Failed for good in this apply, or its batch cannot get a session.
    fn dead(&self, st: &RunState, account: &str) -> bool {
        let Some(a) = st.accounts.get(account) else {
            return true;
        };
        let failed = match a.progress {
            Progress::Failed { retryable: false } => true,
            Progress::Failed { retryable: true } => {
                a.failures > self.ctx.plan().policy.item_retries
            }
            _ => false,
        };
        failed
            || self
                .ctx
                .batch_account(account)
                .is_some_and(|(b, _)| self.blocked.contains_key(&b))
    }

    /// A batch is done when no instance of it is live and none of its
    /// accounts can still move (transferred, failed for good, or held back).
    fn batch_done(&self, st: &RunState, bi: usize) -> bool {
        if self.blocked.contains_key(&bi) {
            return true;
        }
        if self.live.values().any(|l| l.batch == Some(bi)) {
            return false;
        }
        let batch = &self.ctx.plan().batches[bi];
        batch.accounts.iter().all(|a| {
            let Some(s) = st.accounts.get(&a.target_user) else {
                return true;
            };
            !s.in_plan
                || match s.progress {
                    Progress::Transferred => true,
                    Progress::Queued | Progress::InProgress | Progress::Unfinished => false,
                    _ => !self.can_still_move(st, &a.target_user),
                }
        })
    }

    /// Not yet done with: eligible now, or as soon as its reseller is
    /// transferred. Held back for good: failed beyond its retries, or its
    /// reseller failed and `orphans: wait`.
    fn can_still_move(&self, st: &RunState, account: &str) -> bool {
        if !self.eligible_ignoring_owner(st, account) {
            return false;
        }
        match self.reseller_of(st, account) {
            Some((reseller, _)) if self.dead(st, &reseller) => {
                self.ctx.plan().policy.orphans == OrphanPolicy::Transfer
            }
            _ => true,
        }
    }

    fn on_msg(&mut self, msg: Msg) -> Result<(), ExecError> {
        match msg {
            Msg::ItemFailed { session, account } => self.on_item_failed(&session, &account),
            Msg::Stuck { session, reason } => {
                match self.ctx.policy_on_error() {
                    OnError::Pause => {
                        self.policy_request(ControlAction::Pause, &reason)?;
                        self.set_stop(Stop::Pause(reason));
                        self.tell(&session, Want::Pause);
                    }
                    OnError::Abort => {
                        self.policy_request(ControlAction::Abort, &reason)?;
                        self.set_stop(Stop::Abort(reason));
                        self.tell_all(Want::Abort);
                    }
                    // Give up on this session only: abort it (a stale one
                    // turns FAILED), conclude, and its accounts that never
                    // reached RESTORE go to a replacement.
                    OnError::Continue => self.tell(&session, Want::Abort),
                }
                Ok(())
            }
        }
    }

    fn on_item_failed(&mut self, session: &str, account: &str) -> Result<(), ExecError> {
        let (retry, source, message) = self.ctx.with_state(|st| {
            let a = &st.accounts[account];
            let retry = matches!(a.progress, Progress::Failed { retryable: true })
                && a.failures <= self.ctx.plan().policy.item_retries;
            (
                retry,
                a.source.clone(),
                a.message.clone().unwrap_or_default(),
            )
        });
        self.ctx.emit(Event::ItemFailed {
            account: account.to_string(),
            source,
            session: session.to_string(),
            message: message.clone(),
            will_retry: retry,
        });
        if retry {
            return Ok(());
        }
        let reason = format!("account {account} failed: {message}");
        match self.ctx.policy_on_error() {
            OnError::Pause => {
                self.policy_request(ControlAction::Pause, &reason)?;
                self.set_stop(Stop::Pause(reason));
                self.tell(session, Want::Pause);
            }
            OnError::Abort => {
                self.policy_request(ControlAction::Abort, &reason)?;
                self.set_stop(Stop::Abort(reason));
                self.tell_all(Want::Abort);
            }
            OnError::Continue => {}
        }
        Ok(())
    }

    /// Records a pause/abort the policy asked for (once).
    fn policy_request(&mut self, action: ControlAction, reason: &str) -> Result<(), ExecError> {
        let already = matches!(
            (&self.stop, action),
            (Some(Stop::Pause(_)), ControlAction::Pause) | (Some(Stop::Abort(_)), _)
        );
        if !already {
            let req = ControlRequest::here(action);
            let policy = match action {
                ControlAction::Pause => "policy on_error: pause",
                ControlAction::Abort => "policy on_error: abort",
            };
            self.ctx
                .record(super::request_record(&req, &format!("{policy}; {reason}")))?;
        }
        Ok(())
    }

    fn on_task_end(&mut self, key: String, end: TaskEnd) {
        let live = self.live.remove(&key);
        let batch = live.and_then(|l| l.batch);
        match end {
            TaskEnd::Finished => {
                let Some(b) = batch else { return };
                self.create_failures.remove(&b);
                // A replacement that ends without concluding any account
                // (a server that fails every session at once) must not make
                // new instances forever.
                let concluded = self.ctx.with_state(|st| {
                    st.session(&key).is_some_and(|s| {
                        s.accounts.iter().any(|a| {
                            st.accounts.get(a).is_some_and(|acc| {
                                acc.session.as_deref() == Some(key.as_str())
                                    && !matches!(acc.progress, Progress::Pending)
                            })
                        })
                    })
                });
                let n = self.barren.entry(b).or_insert(0);
                if concluded {
                    *n = 0;
                } else {
                    *n += 1;
                    if *n >= BARREN_LIMIT {
                        self.block(
                            b,
                            format!(
                                "{BARREN_LIMIT} sessions in a row ended without moving any account"
                            ),
                        );
                    }
                }
            }
            TaskEnd::Paused => {}
            TaskEnd::Abandoned { error, retryable } => {
                let Some(b) = batch else { return };
                let n = self.create_failures.entry(b).or_insert(0);
                *n += 1;
                let attempts = self.ctx.api.policy().attempts.max(1);
                if !retryable || *n >= attempts {
                    self.block(b, error);
                }
            }
            TaskEnd::Detached { reason } => {
                self.ctx.emit(Event::Warning {
                    message: format!(
                        "{reason}; ferry stopped watching it. Check the session on the target; \
                         `ferry apply` reconciles it"
                    ),
                });
                if self.stop.is_none() {
                    self.set_stop(Stop::Pause(reason));
                }
            }
            TaskEnd::Failed(TaskFail::Auth(m)) => self.set_stop(Stop::Fatal(m)),
            TaskEnd::Failed(TaskFail::Unreachable(m)) => self.set_stop(Stop::Fatal(format!(
                "the target did not answer after every retry: {m}"
            ))),
            TaskEnd::Failed(TaskFail::Journal(e)) => {
                self.set_stop(Stop::Fatal(format!("cannot write the journal: {e}")))
            }
        }
    }

    /// A batch cannot get a session (create refused, a package refused):
    /// its accounts stay pending with the reason; the policy decides.
    fn block(&mut self, b: usize, error: String) {
        let key = self.ctx.plan().batches[b].key.clone();
        let reason = format!("no session could be created for {key}: {error}");
        let _ = self.ctx.record(Record::StepFailed {
            step: format!("{key}/create"),
            error: error.clone(),
            retryable: false,
            attempt: self.create_failures.get(&b).copied().unwrap_or(1),
        });
        self.blocked.insert(b, error);
        match self.ctx.policy_on_error() {
            OnError::Pause => {
                let _ = self.policy_request(ControlAction::Pause, &reason);
                self.set_stop(Stop::Pause(reason));
            }
            OnError::Abort => {
                let _ = self.policy_request(ControlAction::Abort, &reason);
                self.set_stop(Stop::Abort(reason));
                self.tell_all(Want::Abort);
            }
            OnError::Continue => {}
        }
    }

    /// Records how the run ended and builds the report.
    async fn finish(mut self) -> Result<RunReport, ExecError> {
        if self.stop.is_none() || matches!(self.stop, Some(Stop::Pause(_) | Stop::Abort(_))) {
            if let Err(end) = super::verify(&self.ctx, None).await {
                self.on_task_end(String::new(), end);
            }
            while let Ok(msg) = self.rx.try_recv() {
                if let Err(e) = self.on_msg(msg) {
                    self.unrecorded(e);
                }
            }
        }
        let (counts, failed, mut pending) = self.ctx.with_state(|st| {
            let pending: Vec<(String, String)> = st
                .planned()
                .filter(|(_, a)| {
                    !matches!(a.progress, Progress::Transferred | Progress::Failed { .. })
                })
                .map(|(n, a)| (n.clone(), self.pending_reason(st, n, a)))
                .collect();
            (super::counts(st), super::failed_accounts(st), pending)
        });
        pending.sort();
        let control = matches!(self.mode, Mode::Control(_));
        // A rehearsal cannot be resumed (its simulator is gone): the advice
        // is to rehearse again.
        let plan_path = if self.simulate {
            format!("--simulate {}", self.ctx.plan().path)
        } else {
            self.ctx.plan().path.clone()
        };
        // What running `apply` again does: resume, or start a fresh rehearsal.
        let simulate = self.simulate;
        let again = |word: &str| {
            if simulate {
                "to rehearse again (a rehearsal always starts afresh)".to_string()
            } else {
                format!("to {word}")
            }
        };
        let (status, reason, next) = match self.stop.clone() {
            Some(Stop::Pause(reason)) => {
                self.end_record(Record::RunPaused {
                    reason: reason.clone(),
                });
                let resume = format!("ferry apply {plan_path}");
                self.ctx.emit(Event::RunPaused {
                    reason: reason.clone(),
                    resume: resume.clone(),
                });
                (
                    RunStatus::Paused,
                    Some(reason),
                    format!("fix the cause, then run `{resume}` {}", again("resume")),
                )
            }
            Some(Stop::Abort(reason)) => {
                self.end_record(Record::RunAborted {
                    reason: reason.clone(),
                });
                self.ctx.emit(Event::RunAborted {
                    reason: reason.clone(),
                });
                (
                    RunStatus::Aborted,
                    Some(reason),
                    format!("run `ferry apply --restart {plan_path}` to start again"),
                )
            }
            Some(Stop::Fatal(reason)) => {
                self.finished_record(FinishStatus::Failed, &counts);
                (
                    RunStatus::Failed,
                    Some(reason),
                    format!(
                        "fix the cause, then run `ferry apply {plan_path}` {}",
                        again("continue")
                    ),
                )
            }
            Some(Stop::Interrupted) => {
                self.finished_record(FinishStatus::Interrupted, &counts);
                (
                    RunStatus::Failed,
                    Some("interrupted".into()),
                    format!("run `ferry apply {plan_path}` {}", again("continue")),
                )
            }
            None if counts.failed == 0 && counts.pending == 0 => {
                self.finished_record(FinishStatus::Succeeded, &counts);
                (
                    RunStatus::Succeeded,
                    None,
                    "nothing: every account is transferred".into(),
                )
            }
            None => {
                self.finished_record(FinishStatus::Partial, &counts);
                (
                    RunStatus::Partial,
                    None,
                    self.ctx
                        .with_state(|st| partial_advice(st, &plan_path, self.simulate)),
                )
            }
        };
        if let Err(e) = self.ctx.sync() {
            self.unrecorded(e.into());
        }
        // The end is reported from what the journal holds even when the
        // journal could not take it (a full disk): the counts are those of
        // every record that was written.
        let reason = match (&self.end_unrecorded, reason) {
            (None, r) => r,
            (Some(_), Some(r)) if r.contains("cannot write the journal") => Some(r),
            (Some(e), r) => Some(match r {
                Some(r) => format!("{r}; its end could not be recorded: {e}"),
                None => format!("the end of the run could not be recorded: {e}"),
            }),
        };
        let status = if self.end_unrecorded.is_some() {
            RunStatus::Failed
        } else {
            status
        };
        let report = RunReport {
            status,
            counts,
            failed: failed.clone(),
            pending,
            duration: self.started.elapsed(),
            api_calls: self.ctx.api.calls(),
            reason,
            next: next.clone(),
        };
        if !control {
            self.ctx.emit(Event::RunFinished {
                status,
                accounts: counts,
                duration_secs: report.duration.as_secs_f64(),
                failed,
                next,
            });
        }
        Ok(report)
    }

    fn finished_record(&mut self, status: FinishStatus, c: &crate::events::AccountCounts) {
        if matches!(self.mode, Mode::Control(_)) {
            return;
        }
        self.end_record(Record::RunFinished {
            status,
            transferred: c.transferred,
            failed: c.failed,
            pending: c.pending,
        });
    }

    /// Records how the run ended. A journal that cannot take it no longer
    /// changes the outcome's counts (they are what the journal holds); the
    /// failure is kept for the report, and the run exits 1.
    fn end_record(&mut self, rec: Record) {
        if let Err(e) = self.ctx.record(rec) {
            self.unrecorded(e.into());
        }
    }

    fn unrecorded(&mut self, e: ExecError) {
        self.end_unrecorded.get_or_insert_with(|| e.to_string());
    }

    fn pending_reason(
        &self,
        st: &RunState,
        name: &str,
        a: &crate::journal::AccountState,
    ) -> String {
        if let Some((b, _)) = self.ctx.batch_account(name)
            && let Some(e) = self.blocked.get(&b)
        {
            return format!("no session could be created: {e}");
        }
        if let Some((reseller, _)) = self.reseller_of(st, name)
            && self.dead(st, &reseller)
        {
            return format!(
                "waiting for its reseller {reseller}, which failed (policy.orphans: wait)"
            );
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

/// What to do after a partial run, from what its failed accounts need: a
/// retry by the next `apply` (a failed-item, a restore cut with nothing on
/// the target) or a person's check first (everything else). Never promises a
/// retry that will not come.
fn partial_advice(st: &RunState, plan_path: &str, simulate: bool) -> String {
    let (retry, manual): (Vec<&String>, Vec<&String>) = st
        .planned()
        .filter(|(_, a)| matches!(a.progress, Progress::Failed { .. }))
        .map(|(n, a)| {
            (
                n,
                matches!(a.progress, Progress::Failed { retryable: true }),
            )
        })
        .fold((vec![], vec![]), |(mut r, mut m), (n, again)| {
            if again {
                r.push(n)
            } else {
                m.push(n)
            }
            (r, m)
        });
    let verb = if simulate {
        "rehearse again with"
    } else {
        "run"
    };
    let mut parts = Vec::new();
    if !retry.is_empty() {
        parts.push(format!(
            "fix the cause, then {verb} `ferry apply {plan_path}`: it retries {}",
            list(&retry)
        ));
    }
    if !manual.is_empty() {
        parts.push(format!(
            "check {} on the target by hand (each one's message says what to look for); ferry does \
             not retry them on its own",
            list(&manual)
        ));
    }
    if parts.is_empty() {
        parts.push(format!(
            "{verb} `ferry apply {plan_path}` to move the accounts still pending"
        ));
    }
    parts.join("; ")
}

fn list(names: &[&String]) -> String {
    const SHOWN: usize = 8;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

fn stop_for(req: &ControlRequest, what: &str) -> Stop {
    let reason = format!("{what} by {} at {}", req.by, req.at);
    match req.action {
        ControlAction::Pause => Stop::Pause(reason),
        ControlAction::Abort => Stop::Abort(reason),
    }
}
