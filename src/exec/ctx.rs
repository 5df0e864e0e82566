//! What the scheduler and the session tasks share.
//!
//! Owns: [`Ctx`] — the journal (behind a std mutex, held only for one
//! append or one read of the state, never across an await), the gate to the
//! target ([`Api`]), the reporter, the [`RunPlan`], the target's record of
//! the plan ([`Mirror`]), the target's accounts as last listed, and the
//! channel to the scheduler — and the two run-wide reads every part needs:
//! [`verify`] (`listaccts` for accounts whose outcome the target decides)
//! and [`analysis_of`] (a source's read-only analysis). Does not own:
//! decisions (`run`, `schedule`, `policy`, the session driver).
//!
//! Only the executor writes the journal, and only through [`Ctx::record`]
//! (an answer or a conclusion, fsync grouped) and [`Ctx::intent`] (durable
//! before the request it announces leaves). A failed write stops the writer
//! (`journal::file`), and the run at its next step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::api::{self, Api, CallError};
use super::mirror::Mirror;
use super::plan::RunPlan;
use super::{Msg, Timing};
use crate::client::AccountSummary;
use crate::client::{AccountInfo, RemoteAnalysis};
use crate::events::{AccountCounts, ByteCounts, Event, FailedAccount, Reporter};
use crate::graph::{RunStep, StepId};
use crate::journal::record::Difference;
use crate::journal::record::{ControlAction, Record};
use crate::journal::{Journal, JournalError, Progress, RunState, SessionRec};
use crate::plan::{ArchiveCleanup, VerifyPolicy};

/// Why a session task or a run-wide read could not go on.
#[derive(Debug)]
pub(crate) enum Halt {
    /// The server refused the token (or a certificate is not trusted): no
    /// further call is made to it.
    Auth(String),
    /// The target did not answer after every retry.
    Unreachable(String),
    /// The journal could not be written: the run stops before any further
    /// WHM call.
    Journal(JournalError),
}

impl From<JournalError> for Halt {
    fn from(e: JournalError) -> Self {
        Halt::Journal(e)
    }
}

impl From<CallError> for Halt {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Stopped { message, .. } => Halt::Auth(message),
            CallError::Failed(e) => Halt::Unreachable(e.to_string()),
        }
    }
}

/// What session tasks and the scheduler share.
pub(crate) struct Ctx {
    /// The journal and the state it implies. A std mutex: held only for an
    /// append (plus its fsync for an intent) or a read of the state, never
    /// across an await.
    journal: Mutex<Journal>,
    pub api: Api,
    reporter: Arc<dyn Reporter>,
    plan: RunPlan,
    pub timing: Timing,
    tx: mpsc::UnboundedSender<Msg>,
    /// The target's record of the plan's sessions.
    pub mirror: Mirror,
    /// The target's accounts as last listed (the survey, each
    /// verification): what the scheduler checks an account against before
    /// enqueueing it. No request of its own.
    target_view: Mutex<Option<BTreeMap<String, AccountInfo>>>,
    /// Each source's remote analysis as read in this apply (by source
    /// index): a source's later sessions reuse it (`setup::analyse`), so a
    /// source is read once per apply, not once per session — the answer
    /// carries the target's whole user and domain lists, which grow with
    /// the run.
    analyses: Mutex<BTreeMap<usize, Arc<RemoteAnalysis>>>,
}

impl Ctx {
    pub fn new(
        journal: Journal,
        api: Api,
        reporter: Arc<dyn Reporter>,
        plan: RunPlan,
        timing: Timing,
        tx: mpsc::UnboundedSender<Msg>,
    ) -> Ctx {
        let mirror = Mirror::new(&plan.name, journal.state().mirror_count);
        Ctx {
            journal: Mutex::new(journal),
            api,
            reporter,
            plan,
            timing,
            tx,
            mirror,
            target_view: Mutex::new(None),
            analyses: Mutex::new(BTreeMap::new()),
        }
    }

    /// Appends an answer or conclusion.
    pub fn record(&self, rec: Record) -> Result<(), JournalError> {
        self.journal.lock().expect("journal lock").record(rec)
    }

    /// Appends an intent, durable before this returns.
    pub fn intent(&self, rec: Record) -> Result<(), JournalError> {
        self.journal
            .lock()
            .expect("journal lock")
            .record_intent(rec)
    }

    pub fn tick(&self) -> Result<(), JournalError> {
        self.journal.lock().expect("journal lock").tick()
    }

    pub fn sync(&self) -> Result<(), JournalError> {
        self.journal.lock().expect("journal lock").sync()
    }

    pub fn with_state<R>(&self, f: impl FnOnce(&RunState) -> R) -> R {
        f(self.journal.lock().expect("journal lock").state())
    }

    pub fn session(&self, key: &str) -> Option<SessionRec> {
        self.with_state(|st| st.session(key).cloned())
    }

    pub fn emit(&self, e: Event) {
        self.reporter.event(&e);
    }

    /// Tells the scheduler. The scheduler outlives every task, so a send
    /// can only fail once the run is being torn down, when nobody listens.
    pub fn send(&self, m: Msg) {
        if self.tx.send(m).is_err() {
            tracing::debug!("a session task's message arrived after the scheduler stopped");
        }
    }

    pub fn plan(&self) -> &RunPlan {
        &self.plan
    }

    /// Journals and reports a retry of an idempotent call of `step`.
    pub fn retry_note(&self, step: StepId) -> impl FnMut(api::RetryNote<'_>) + Clone + '_ {
        let step = step.to_string();
        move |n: api::RetryNote<'_>| {
            let error = n.error.to_string();
            if let Err(e) = self.record(Record::StepFailed {
                step: step.clone(),
                error: error.clone(),
                retryable: true,
                attempt: n.attempt,
            }) {
                // The run stops at its next journal write, which fails the
                // same way (the writer refuses everything after a failure).
                self.emit(Event::Warning {
                    message: format!("could not record a retry: {e}"),
                });
            }
            self.emit(Event::StepFailed {
                step: step.clone(),
                error,
                retryable: true,
                attempt: n.attempt,
            });
        }
    }

    /// Records and reports a step that failed.
    pub fn step_failed(
        &self,
        step: &StepId,
        error: &str,
        retryable: bool,
        attempt: u32,
    ) -> Result<(), JournalError> {
        let step = step.to_string();
        self.record(Record::StepFailed {
            step: step.clone(),
            error: error.to_string(),
            retryable,
            attempt,
        })?;
        self.emit(Event::StepFailed {
            step,
            error: error.to_string(),
            retryable,
            attempt,
        });
        Ok(())
    }

    /// Remembers the target's accounts as just listed.
    pub fn set_target_view(&self, listed: BTreeMap<String, AccountInfo>) {
        *self.target_view.lock().expect("target view") = Some(listed);
    }

    /// What a listing of `asked` found: each of them is on the target as
    /// listed, or not at all; the others stay as last seen.
    pub fn merge_target_view(&self, asked: &[String], listed: Vec<AccountInfo>) {
        let mut view = self.target_view.lock().expect("target view");
        let view = view.get_or_insert_with(BTreeMap::new);
        for a in asked {
            view.remove(a);
        }
        view.extend(listed.into_iter().map(|a| (a.user.clone(), a)));
    }

    /// Source `src`'s analysis, if this apply has read it.
    pub fn analysis(&self, src: usize) -> Option<Arc<RemoteAnalysis>> {
        self.analyses.lock().expect("analyses").get(&src).cloned()
    }

    /// Keeps source `src`'s analysis for the rest of this apply.
    pub fn keep_analysis(&self, src: usize, a: Arc<RemoteAnalysis>) {
        self.analyses.lock().expect("analyses").insert(src, a);
    }

    /// The account as the target had it when it was last listed.
    pub fn on_target(&self, account: &str) -> Option<AccountInfo> {
        self.target_view
            .lock()
            .expect("target view")
            .as_ref()
            .and_then(|v| v.get(account).cloned())
    }
}

/// `policy.verify: basic` for one transferred account on the target:
/// compared with the plan, recorded, each difference a warning; a first
/// difference joins `new` (the run stops scheduling once for those).
///
/// Against what the source reported (`session_analysed`): the main domain
/// where the plan names none, disk use, and — one
/// `list_mysql_databases_and_users` for an account the source listed
/// databases for — its databases; the domains its restore's notes name,
/// with one `get_domain_info`. A target without such a function (`Unknown
/// app`) or a failed read leaves that part unchecked, with a warning.
async fn check(
    ctx: &Ctx,
    account: &str,
    session: &str,
    got: &AccountSummary,
    new: &mut Vec<String>,
) -> Result<(), Halt> {
    use super::verdict::{
        Reported, Wanted, compare, compare_databases, compare_disk, compare_domains, domains_named,
    };
    let Some((_, planned)) = ctx.plan().account(account) else {
        return Ok(()); // no longer in the plan: nothing to compare with
    };
    let (reported, notes) = ctx.with_state(|st| {
        st.accounts
            .get(account)
            .map(|a| (a.reported.clone(), a.notes.clone()))
            .unwrap_or_default()
    });
    let r = reported
        .as_ref()
        .map_or_else(Reported::default, |r| Reported {
            bytes: r.bytes,
            domain: r.domain.as_deref(),
            databases: &r.databases,
        });
    let mut findings = compare(&Wanted::of(planned).with_reported(&r), Some(got));
    findings.extend(compare_disk(r.bytes, got.disk_used_mib));
    let named = domains_named(&notes);
    if !named.is_empty()
        && let Some(domains) = read_for(ctx, session, account, "domains", |c, user| async move {
            c.domains_of(&user).await
        })
        .await?
    {
        findings.extend(compare_domains(&named, &domains, &notes));
    }
    if !r.databases.is_empty()
        && let Some(Some(dbs)) =
            read_for(ctx, session, account, "databases", |c, user| async move {
                c.list_mysql_databases(&user).await
            })
            .await?
    {
        findings.extend(compare_databases(r.databases, &dbs, &notes));
    }
    let differences: Vec<Difference> = findings
        .iter()
        .map(|f| Difference {
            what: f.detail(),
            fix: f.fix(account),
        })
        .collect();
    let before = ctx.with_state(|st| {
        st.accounts
            .get(account)
            .and_then(|a| a.differences.clone())
            .unwrap_or_default()
    });
    ctx.record(Record::AccountChecked {
        account: account.to_string(),
        session: session.to_string(),
        differences: differences.clone(),
    })?;
    for d in &differences {
        ctx.emit(Event::Warning {
            message: format!(
                "{account} is on the target but not as planned: {}; to fix: {}",
                d.what, d.fix
            ),
        });
    }
    if before.is_empty() && !differences.is_empty() {
        let what: Vec<&str> = differences.iter().map(|d| d.what.as_str()).collect();
        new.push(format!("{account} ({})", what.join(", ")));
    }
    Ok(())
}

/// One read of the target about `account` for [`check`], retried as every
/// read is; a failure (a target without the function, no answer) is a
/// warning and `None`: that part is not compared, and fails nothing.
async fn read_for<T, F, Fut>(
    ctx: &Ctx,
    session: &str,
    account: &str,
    what: &str,
    call: F,
) -> Result<Option<T>, Halt>
where
    F: Fn(crate::client::WhmClient, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::client::Error>>,
{
    let step = StepId::session(session, crate::graph::SessionStep::Verify);
    match ctx
        .api
        .repeatable(ctx.retry_note(step), |c| call(c, account.to_string()))
        .await
    {
        Ok(v) => Ok(Some(v)),
        Err(CallError::Stopped { message, .. }) => Err(Halt::Auth(message)),
        Err(CallError::Failed(e)) => {
            ctx.emit(Event::Warning {
                message: format!(
                    "could not read {account}'s {what} on the target ({e}): they are not \
                     compared (`ferry verify` can, later)"
                ),
            });
            Ok(None)
        }
    }
}

/// Accounts listed by name per `listaccts` call.
const LIST_BY_NAME: usize = 200;

/// `listaccts` on the target for the accounts whose outcome it decides:
/// transferred but not yet verified, or unfinished (a restore with no final
/// line), by name, [`LIST_BY_NAME`] at a time. `session`: only that
/// session's accounts. A failure to list is a warning: the next `apply`
/// verifies them.
///
/// With `policy.verify: basic` each transferred account found there is
/// also compared with the plan from the same answer (`verdict::compare`;
/// no extra request): `account_checked` records the differences, each is a
/// warning, and differences an account did not have before stop the run's
/// scheduling once (`Msg::Differences`, the policy's table). An account
/// with differences is listed again by the next `apply` (`recheck`: the
/// verification at its start), which goes on without stopping and ends
/// with exit 4 while they remain. Never a new transfer.
pub(crate) async fn verify(ctx: &Ctx, session: Option<&str>, recheck: bool) -> Result<(), Halt> {
    let checking = ctx.plan().policy.verify == VerifyPolicy::Basic;
    let todo: Vec<(String, String, bool)> = ctx.with_state(|st| {
        st.accounts
            .iter()
            .filter(|(_, a)| session.is_none() || a.session.as_deref() == session)
            .filter(|(_, a)| {
                let differs = a.differences.as_ref().is_some_and(|d| !d.is_empty());
                (a.progress == Progress::Transferred
                    && (a.verified.is_none() || (recheck && checking && differs)))
                    || a.progress == Progress::Unfinished
            })
            .map(|(n, a)| {
                (
                    n.clone(),
                    a.session.clone().unwrap_or_default(),
                    a.progress == Progress::Unfinished,
                )
            })
            .collect()
    });
    if todo.is_empty() {
        return Ok(());
    }
    let step = match session {
        Some(s) => StepId::session(s, crate::graph::SessionStep::Verify),
        None => StepId::Run(RunStep::Verify),
    };
    ctx.emit(Event::StepStarted {
        step: step.to_string(),
    });
    let names: Vec<String> = todo.iter().map(|(n, ..)| n.clone()).collect();
    let mut found: BTreeMap<String, AccountSummary> = BTreeMap::new();
    for asked in names.chunks(LIST_BY_NAME) {
        let r = ctx
            .api
            .repeatable(ctx.retry_note(step.clone()), |c| async move {
                c.listaccts_of(asked).await
            })
            .await;
        match r {
            Ok(list) => {
                let (infos, summaries): (Vec<_>, Vec<_>) = list.into_iter().unzip();
                ctx.merge_target_view(asked, infos);
                found.extend(summaries.into_iter().map(|s| (s.user.clone(), s)));
            }
            Err(CallError::Stopped { message, .. }) => return Err(Halt::Auth(message)),
            Err(CallError::Failed(e)) => {
                ctx.emit(Event::Warning {
                    message: format!(
                        "could not verify accounts on the target ({e}); the next `ferry apply` verifies them"
                    ),
                });
                return Ok(());
            }
        }
    }
    let present: BTreeSet<String> = found.keys().cloned().collect();
    let mut new_differences: Vec<String> = Vec::new();
    let cleanup = ctx.plan().policy.cleanup.archives == ArchiveCleanup::Delete;
    for (account, sess, unfinished) in todo {
        let here = present.contains(&account);
        ctx.record(Record::AccountVerified {
            account: account.clone(),
            session: sess.clone(),
            present: here,
        })?;
        let transferred =
            ctx.with_state(|st| st.accounts[&account].progress == Progress::Transferred);
        if checking
            && transferred
            && let Some(summary) = found.get(&account)
        {
            check(ctx, &account, &sess, summary, &mut new_differences).await?;
        }
        // Archives go only once the account is there and, when checked, as
        // planned: a difference may need what the archive holds.
        let (as_planned, cleaned) = ctx.with_state(|st| {
            let a = &st.accounts[&account];
            (
                a.differences.as_ref().is_none_or(|d| d.is_empty()),
                a.archives_deleted,
            )
        });
        if cleanup && here && transferred && as_planned && !cleaned {
            delete_archives(ctx, &account).await?;
        }
        let (source, progress, adopted) = ctx.with_state(|st| {
            let a = &st.accounts[&account];
            (a.source.clone(), a.progress.clone(), a.adopted.clone())
        });
        match progress {
            Progress::Transferred if unfinished => ctx.emit(Event::ItemSucceeded {
                size: size_of(ctx.plan(), &account),
                account,
                source,
                session: sess,
                warnings: false,
                adopted,
                notes: Vec::new(),
            }),
            Progress::Failed { .. } => ctx.send(Msg::ItemFailed {
                session: sess,
                account,
            }),
            _ => {}
        }
    }
    if !new_differences.is_empty() {
        ctx.send(Msg::Differences {
            reason: format!(
                "{} transferred account{} not as planned on the target: {}",
                new_differences.len(),
                if new_differences.len() == 1 {
                    " is"
                } else {
                    "s are"
                },
                new_differences.join("; ")
            ),
        });
    }
    ctx.emit(Event::StepSucceeded {
        step: step.to_string(),
    });
    Ok(())
}

/// `policy.cleanup.archives: delete` for one account that is transferred
/// and on the target. Idempotent on the server, so a lost answer is simply
/// asked again; a failure is a warning (the archives only cost disk), and
/// the next `apply` does not retry it.
async fn delete_archives(ctx: &Ctx, account: &str) -> Result<(), Halt> {
    let user = account.to_string();
    let r = ctx
        .api
        .repeatable(ctx.retry_note(StepId::Run(RunStep::Verify)), move |c| {
            let user = user.clone();
            async move { c.delete_account_archives(&user).await }
        })
        .await;
    match r {
        Ok(()) => ctx.record(Record::ArchivesDeleted {
            account: account.to_string(),
        })?,
        Err(CallError::Stopped { message, .. }) => return Err(Halt::Auth(message)),
        Err(CallError::Failed(e)) => ctx.emit(Event::Warning {
            message: format!(
                "could not remove {account}'s transfer archives from the target ({e}); remove them \
                 with `whmapi1 delete_account_archives user={account}`"
            ),
        }),
    }
    Ok(())
}

/// The remote analysis of source `src`: an analysis session is created,
/// analysed and aborted, never started — the read-only look `ferry check`
/// takes. `Err` says why there is none.
pub(crate) async fn analysis_of(ctx: &Ctx, src: usize) -> Result<RemoteAnalysis, String> {
    let source = ctx.plan().source(src);
    let Some(req) = ctx.plan().creates[src].clone() else {
        return Err(format!("no credentials for source {}", source.name));
    };
    let step = StepId::analysis(&source.name);
    let id = ctx
        .api
        .once(|c| async move { c.create_remote_root_transfer_session(&req).await })
        .await
        .map_err(|e| e.to_string())?;
    let analysis = ctx
        .api
        .repeatable(ctx.retry_note(step.clone()), |c| {
            let id = id.clone();
            async move { c.analyze_remote(&id).await }
        })
        .await
        .map_err(|e| e.to_string());
    if let Ok(a) = &analysis {
        ctx.keep_analysis(src, Arc::new(a.clone()));
    }
    // Never started: an abort turns it FAILED so nobody can start it. A
    // failure leaves a PENDING session WHM deletes after 4 hours.
    if let Err(e) = ctx
        .api
        .repeatable(ctx.retry_note(step), |c| {
            let id = id.clone();
            async move { c.abort_transfer_session(&id).await }
        })
        .await
    {
        ctx.emit(Event::Warning {
            message: format!(
                "the analysis session {id} of source {} could not be aborted ({e}); it was never \
                 started and WHM deletes it after 4 hours",
                source.name
            ),
        });
    }
    analysis
}

/// Accounts of the current plan that are failed, with their messages.
pub(crate) fn failed_accounts(st: &RunState) -> Vec<FailedAccount> {
    st.planned()
        .filter(|(_, a)| matches!(a.progress, Progress::Failed { .. }))
        .map(|(n, a)| FailedAccount {
            account: n.clone(),
            source: a.source.clone(),
            message: a.message.clone().unwrap_or_default(),
            retried: matches!(a.progress, Progress::Failed { retryable: true }),
        })
        .collect()
}

/// Transferred accounts that differ from the plan on the target
/// (`policy.verify`), each with what differs, as the end of a run lists
/// them beside the failed ones (`retried: false`: a person decides).
pub(crate) fn differing_accounts(st: &RunState) -> Vec<FailedAccount> {
    st.planned()
        .filter(|(_, a)| a.progress == Progress::Transferred)
        .filter_map(|(n, a)| {
            let d = a.differences.as_ref().filter(|d| !d.is_empty())?;
            let what: Vec<String> = d
                .iter()
                .map(|d| format!("{} ({})", d.what, d.fix))
                .collect();
            Some(FailedAccount {
                account: n.clone(),
                source: a.source.clone(),
                message: format!(
                    "transferred, but not as planned on the target: {}",
                    what.join("; ")
                ),
                retried: false,
            })
        })
        .collect()
}

/// Counts for events.
pub(crate) fn counts(st: &RunState) -> AccountCounts {
    let (t, f, p) = st.counts();
    AccountCounts {
        total: t + f + p,
        transferred: t,
        failed: f,
        pending: p,
    }
}

/// The plan's account sizes (hints, inventory), when it knows every one;
/// `done` counts the transferred ones.
pub(crate) fn bytes(plan: &RunPlan, st: &RunState) -> Option<ByteCounts> {
    let mut b = ByteCounts::default();
    for (name, a) in st.planned() {
        let size = size_of(plan, name)?;
        b.total = b.total.saturating_add(size);
        if a.progress == Progress::Transferred {
            b.done = b.done.saturating_add(size);
        }
    }
    Some(b)
}

/// An account's size as the plan knows it (a hint or the inventory).
pub(crate) fn size_of(plan: &RunPlan, account: &str) -> Option<u64> {
    plan.account(account).and_then(|(_, a)| a.size)
}

/// `pause` / `abort` as a journal request record.
pub(crate) fn request_record(req: &super::ControlRequest, reason: &str) -> Record {
    match req.action {
        ControlAction::Pause => Record::PauseRequested {
            by: req.by.clone(),
            at: req.at.clone(),
            reason: reason.to_string(),
        },
        ControlAction::Abort => Record::AbortRequested {
            by: req.by.clone(),
            at: req.at.clone(),
            reason: reason.to_string(),
        },
    }
}

/// Session keys of one batch's instances: `old1/s2`, `old1/s2#2`, …: the
/// first of those not `taken` (a session recovered from the target's record
/// may hold a key of its own).
pub(crate) fn instance_key(batch: &str, n_before: usize, taken: impl Fn(&str) -> bool) -> String {
    let mut n = n_before;
    loop {
        let key = if n == 0 {
            batch.to_string()
        } else {
            format!("{batch}#{}", n + 1)
        };
        if !taken(&key) {
            return key;
        }
        n += 1;
    }
}
