//! The executor: runs a compiled plan against WHM's transfer-session API,
//! journaling every step, and resumes from the journal after any kill.
//!
//! Owns: scheduling sessions in dependency order within the plan's limits
//! ([`run`]), the per-session state machine ([`session`]) and its driver
//! ([`task`]), per-account outcomes from `master.log` ([`outcome`]), resume
//! and plan-change rules ([`reconcile`]), the gate to the server with its
//! retries and auth stop ([`api`]), and control requests from `ferry
//! pause`/`ferry abort` ([`control`]). It is the only writer of the
//! journal. Does not own: how a plan is compiled into batches (`graph`),
//! the HTTP calls (`client`), or printing (it emits [`Event`]s through a
//! [`Reporter`]).
//!
//! ## Exactly once, in one place
//!
//! Design §5 and whm-transfer-api's first section, as enforced here (each
//! rule is repeated where it is enforced, with its crash window):
//!
//! 1. **create** — intent fsync'd → call → id recorded at once. A lost
//!    answer or a kill before the id is recorded leaves at most an orphan
//!    PENDING session nobody can start: the instance is recorded abandoned
//!    and a new one is created ([`task`]: `Driver::create`).
//! 2. **enqueue** — repeated into the SAME session after any ambiguity;
//!    `AlreadyQueued` proves the first call. An account never goes to a
//!    second session while one holding it may still run it: a session is
//!    abandoned only before its start intent ([`task`]: `Driver::enqueue_all`).
//! 3. **start** — only after every item is confirmed enqueued; repeatable
//!    ([`task`]: `Driver::start`).
//! 4. **outcome** — transferred only from a `success-item`/`warning-item`
//!    RESTORE line of its session, or from `listaccts`. A failed account may
//!    go to a fresh session (never in parallel, never after success). A
//!    restore that may have begun without a final line is decided by
//!    `listaccts` and never retried automatically ([`outcome`]).
//! 5. **dead sessions** — FAILED/ABORTED sessions are never restarted;
//!    their unfinished accounts go to a new instance linked by
//!    `session_replaced` ([`run`]). Stalls get a start first; a session not
//!    seen alive recently is never paused ([`session`]).

pub mod api;
pub mod control;
pub mod mirror;
pub mod outcome;
mod reconcile;
mod run;
pub mod session;
mod target;
mod task;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{AccountItem, CreateSession};
use crate::events::{AccountCounts, Event, FailedAccount, Reporter, RunStatus};
use crate::journal::record::{ControlAction, Record};
use crate::journal::{Journal, JournalError, Progress, RunState, SessionRec};
use crate::plan::{Concurrency, OnError, Policy};

pub use api::Api;
pub use control::ControlRequest;
pub use reconcile::entry_hash;

/// The plan as the executor needs it: batches (the compiled plan's
/// sessions) with ready-made WHM items, and the sources' logins.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The plan file as given.
    pub path: String,
    /// The plan's identity (`name:`, or the file stem).
    pub name: String,
    /// Hex SHA-256 of the plan file.
    pub hash: String,
    pub sources: Vec<SourceSpec>,
    pub batches: Vec<Batch>,
    pub policy: Policy,
    pub concurrency: Concurrency,
}

/// One source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub host: String,
    /// The create request (SSH login resolved). `None` where sessions are
    /// never created (`ferry pause`/`abort`).
    pub create: Option<CreateSession>,
}

/// A batch: one session of the compiled plan. Later instances of the
/// batch (retries, replacements) carry a subset of its accounts.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `old1/s2`.
    pub key: String,
    /// Index into [`RunPlan::sources`].
    pub source: usize,
    pub packages: Vec<String>,
    /// In enqueue order (a reseller before its accounts).
    pub accounts: Vec<BatchAccount>,
    /// Batches that must be finished first (indices).
    pub depends_on: Vec<usize>,
}

/// One account of a batch.
#[derive(Debug, Clone)]
pub struct BatchAccount {
    pub target_user: String,
    /// The user on the source (WHM's item key).
    pub user: String,
    pub package: Option<String>,
    /// The reseller owning it (a username on the source).
    pub owner: Option<String>,
    /// The item as enqueued; `prerequisite_user` is kept only when that
    /// user is in the same session instance.
    pub item: AccountItem,
    /// [`entry_hash`] of the plan entry.
    pub entry: String,
    /// What the hash covers, field by field (for naming a refused change).
    pub fields: std::collections::BTreeMap<String, String>,
}

/// Timers of a run, derived from the plan's policy.
#[derive(Debug, Clone)]
pub struct Timing {
    /// First poll interval after a change ("start fast").
    pub poll_min: Duration,
    /// `policy.poll_interval`: the longest wait between polls.
    pub poll_max: Duration,
    /// `policy.stall_timeout`.
    pub stall_timeout: Duration,
    /// Log fetch timeout while a session runs (the log may block).
    pub log_timeout: Duration,
    /// Log fetch timeout once the session ended.
    pub full_log_timeout: Duration,
    /// How recent a sighting must be to pause without a start first.
    pub alive_window: Duration,
    /// How often the control file is checked.
    pub control_poll: Duration,
    /// Longest wait of a grouped journal record for its fsync.
    pub group_window: Duration,
}

impl Timing {
    /// From the policy, every duration multiplied by `scale` (1.0 for a
    /// real server; the simulator's time scale for `--simulate`).
    pub fn from_policy(policy: &Policy, scale: f64) -> Timing {
        let s = |d: Duration| d.mul_f64(scale);
        let poll_max = s(policy.poll_interval.0).max(Duration::from_millis(10));
        let poll_min = (poll_max / 10)
            .max(Duration::from_millis(10))
            .min(Duration::from_millis(500))
            .min(poll_max);
        Timing {
            poll_min,
            poll_max,
            stall_timeout: s(policy.stall_timeout.0).max(poll_max * 2),
            log_timeout: poll_max.clamp(Duration::from_millis(200), Duration::from_secs(5)),
            full_log_timeout: Duration::from_secs(60),
            alive_window: poll_max * 3,
            control_poll: poll_min.min(Duration::from_millis(250)),
            group_window: Duration::from_millis(200),
        }
    }
}

/// What the run does.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `ferry apply`: run the plan or resume it. `restart`: resume after an
    /// abort (`--restart`). `adopt`: accounts found on the target that the
    /// journal never saw transferred are adopted if they match the plan
    /// (`--adopt`, see [`target`]).
    Apply { restart: bool, adopt: bool },
    /// `ferry pause` / `ferry abort` with no `apply` running: pause or
    /// abort the journal's live sessions, record it, create nothing.
    Control(ControlRequest),
}

/// Everything a run needs.
pub struct RunInput {
    pub plan: RunPlan,
    pub journal: Journal,
    pub journal_path: PathBuf,
    pub api: Api,
    pub reporter: Arc<dyn Reporter>,
    pub timing: Timing,
    pub mode: Mode,
    pub simulate: bool,
    pub tls_insecure: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub status: RunStatus,
    pub counts: AccountCounts,
    pub failed: Vec<FailedAccount>,
    /// Accounts left pending, with why.
    pub pending: Vec<(String, String)>,
    pub duration: Duration,
    /// WHM calls made (attempts included).
    pub api_calls: u64,
    /// Why the run stopped early (pause, abort, failure), if it did.
    pub reason: Option<String>,
    pub next: String,
}

/// Why a run could not start (or stopped on an error outside WHM).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Design §5: an account whose transfer began changed in the plan
    /// (exit 2).
    #[error(
        "the plan changed incompatibly since this run began:\n{}\n\
         ferry never moves an account twice, so nothing was sent. Revert those changes in the \
         plan, or remove those accounts from it (a transferred account stays on the target as \
         it is), then run apply again",
        .accounts.iter().map(|a| format!("  - {a}")).collect::<Vec<_>>().join("\n")
    )]
    PlanChanged { accounts: Vec<String> },
    /// The run was aborted; resuming needs `--restart` (exit 5).
    #[error(
        "this run was aborted ({reason}); run `ferry apply --restart` to start it again \
         (accounts already transferred are kept)"
    )]
    Aborted { reason: String },
    /// Accounts of the plan are on the target though neither the journal
    /// nor the target's record of the plan's sessions saw them transferred
    /// (exit 2): `--adopt` decides, nothing was enqueued.
    #[error(
        "these accounts of the plan are already on the target, but this journal never saw them \
         transferred (a journal lost, or restored from an older copy; or another tool moved \
         them; or they are other accounts with the same names):\n{}\n\
         ferry enqueued nothing. If they are this plan's accounts, run `ferry apply --adopt {plan}`: \
         it records as transferred those whose owner and main domain match the plan and the \
         source, moves the rest, and reports any that do not match as conflicts, never \
         transferring them. Run it only once no transfer of them is running on the target",
        .accounts.iter().map(|a| format!("  - {a}")).collect::<Vec<_>>().join("\n")
    )]
    FoundOnTarget { accounts: Vec<String>, plan: String },
    /// The target could not be asked what it already has (exit 1): ferry
    /// does not start sessions it cannot check.
    #[error("{0}")]
    Target(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Runs (or resumes) the plan. Stops scheduling when `cancel` fires and
/// returns promptly, leaving the server's sessions as they are (the
/// journal is consistent; `apply` resumes).
pub async fn run(input: RunInput, cancel: CancellationToken) -> Result<RunReport, ExecError> {
    let mut s = run::Scheduler::new(input);
    s.prepare().await?;
    s.run(cancel).await
}

/// Messages from session tasks to the scheduler.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A `failed-item` (or a refused enqueue) was recorded for the account.
    ItemFailed { session: String, account: String },
    /// The session stays stuck after the remedy.
    Stuck { session: String, reason: String },
}

/// What session tasks share.
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
    /// target username → (batch index, account index in the batch).
    accounts: HashMap<String, (usize, usize)>,
    /// target username → its reseller's target username (an account of
    /// the same source whose user is its `owner`), and whether both are in
    /// the same batch.
    resellers: HashMap<String, (String, bool)>,
    /// The target's record of the plan's sessions.
    pub mirror: mirror::Mirror,
    /// The target's accounts as last listed (survey, verifications): what
    /// the scheduler checks an account against before enqueueing it.
    target_view: Mutex<Option<std::collections::BTreeMap<String, crate::client::AccountInfo>>>,
}

impl Ctx {
    fn new(
        journal: Journal,
        api: Api,
        reporter: Arc<dyn Reporter>,
        plan: RunPlan,
        timing: Timing,
        tx: mpsc::UnboundedSender<Msg>,
    ) -> Ctx {
        let mut accounts = HashMap::new();
        // (source, user on the source) → (target username, batch)
        let mut by_user = HashMap::new();
        for (bi, b) in plan.batches.iter().enumerate() {
            for (ai, a) in b.accounts.iter().enumerate() {
                accounts.insert(a.target_user.clone(), (bi, ai));
                by_user.insert((b.source, a.user.clone()), (a.target_user.clone(), bi));
            }
        }
        let mirror = mirror::Mirror::new(&plan.name, journal.state().mirror_count);
        let mut resellers = HashMap::new();
        for (bi, b) in plan.batches.iter().enumerate() {
            for a in &b.accounts {
                if let Some(owner) = &a.owner
                    && let Some((r, rbi)) = by_user.get(&(b.source, owner.clone()))
                    && r != &a.target_user
                {
                    resellers.insert(a.target_user.clone(), (r.clone(), *rbi == bi));
                }
            }
        }
        Ctx {
            journal: Mutex::new(journal),
            api,
            reporter,
            plan,
            timing,
            tx,
            accounts,
            resellers,
            mirror,
            target_view: Mutex::new(None),
        }
    }

    /// Journals and reports a retry of an idempotent call of `step`.
    pub fn retry_note(&self, step: &str) -> impl FnMut(api::RetryNote<'_>) + Clone + '_ {
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

    /// Remembers the target's accounts as just listed.
    pub fn set_target_view(
        &self,
        listed: std::collections::BTreeMap<String, crate::client::AccountInfo>,
    ) {
        *self.target_view.lock().expect("target view") = Some(listed);
    }

    /// Whether the target had `account` when it was last listed.
    pub fn on_target(&self, account: &str) -> Option<crate::client::AccountInfo> {
        self.target_view
            .lock()
            .expect("target view")
            .as_ref()
            .and_then(|v| v.get(account).cloned())
    }

    /// The account's reseller in the plan (target username) and whether
    /// it is in the same batch.
    pub fn reseller(&self, target: &str) -> Option<(&str, bool)> {
        self.resellers
            .get(target)
            .map(|(r, same)| (r.as_str(), *same))
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

    pub fn send(&self, m: Msg) {
        let _ = self.tx.send(m);
    }

    pub fn plan(&self) -> &RunPlan {
        &self.plan
    }

    pub fn policy_on_error(&self) -> OnError {
        self.plan.policy.on_error
    }

    pub fn source_spec(&self, name: &str) -> Option<&SourceSpec> {
        self.plan.sources.iter().find(|s| s.name == name)
    }

    pub fn batch_account(&self, target: &str) -> Option<(usize, &BatchAccount)> {
        self.accounts
            .get(target)
            .map(|&(b, a)| (b, &self.plan.batches[b].accounts[a]))
    }

    /// The WHM item for `target` in an instance carrying `members`: its
    /// `prerequisite_user` is kept only if that user is one of the members
    /// (naming a user absent from the session blocks it forever).
    pub fn account_item(&self, target: &str, members: &[String]) -> Option<AccountItem> {
        let (_, acc) = self.batch_account(target)?;
        let mut item = acc.item.clone();
        if let Some(pre) = &item.prerequisite_user {
            let present = members.iter().any(|m| {
                self.batch_account(m)
                    .is_some_and(|(_, other)| &other.user == pre && m != target)
            });
            if !present {
                item.prerequisite_user = None;
            }
        }
        Some(item)
    }
}

/// `listaccts` on the target for the accounts that need it: transferred
/// but not yet verified, or unfinished (restore began, no final line).
/// `session`: only that session's accounts. A failure to list is a warning:
/// the next `apply` verifies them.
pub(crate) async fn verify(ctx: &Ctx, session: Option<&str>) -> Result<(), task::TaskEnd> {
    let todo: Vec<(String, String, bool)> = ctx.with_state(|st| {
        st.accounts
            .iter()
            .filter(|(_, a)| session.is_none() || a.session.as_deref() == session)
            .filter(|(_, a)| {
                (a.progress == Progress::Transferred && a.verified.is_none())
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
    let step = format!("{}/verify", session.unwrap_or("run"));
    ctx.emit(Event::StepStarted { step: step.clone() });
    let r = ctx
        .api
        .repeatable(|_| {}, |c| async move { c.listaccts().await })
        .await;
    let present: std::collections::BTreeSet<String> = match r {
        Ok(list) => {
            let names = list.iter().map(|a| a.user.clone()).collect();
            ctx.set_target_view(list.into_iter().map(|a| (a.user.clone(), a)).collect());
            names
        }
        Err(api::CallError::Auth(m)) => {
            return Err(task::TaskEnd::Failed(task::TaskFail::Auth(m)));
        }
        Err(api::CallError::Failed(e)) => {
            ctx.emit(Event::Warning {
                message: format!(
                    "could not verify accounts on the target ({e}); the next `ferry apply` verifies them"
                ),
            });
            return Ok(());
        }
    };
    for (account, sess, unfinished) in todo {
        let here = present.contains(&account);
        ctx.record(Record::AccountVerified {
            account: account.clone(),
            session: sess.clone(),
            present: here,
        })?;
        let (source, progress) = ctx.with_state(|st| {
            (
                st.accounts[&account].source.clone(),
                st.accounts[&account].progress.clone(),
            )
        });
        match progress {
            Progress::Transferred if unfinished => ctx.emit(Event::ItemSucceeded {
                adopted: ctx.with_state(|st| st.accounts[&account].adopted.clone()),
                account,
                source,
                session: sess,
                warnings: false,
            }),
            Progress::Failed { .. } => ctx.send(Msg::ItemFailed {
                session: sess,
                account,
            }),
            _ => {}
        }
    }
    ctx.emit(Event::StepSucceeded { step });
    Ok(())
}

/// The remote analysis of source `src` (index into the plan's sources):
/// an analysis session is created, analysed and aborted, never started —
/// the read-only look `ferry check` takes. `Err` says why there is none.
pub(crate) async fn analysis_of(
    ctx: &Ctx,
    src: usize,
) -> Result<crate::client::RemoteAnalysis, String> {
    let source = &ctx.plan().sources[src];
    let Some(req) = source.create.clone() else {
        return Err(format!("no credentials for source {}", source.name));
    };
    let id = ctx
        .api
        .once(|c| async move { c.create_remote_root_transfer_session(&req).await })
        .await
        .map_err(|e| e.to_string())?;
    let analysis = ctx
        .api
        .repeatable(ctx.retry_note(&format!("{}/analysis", source.name)), |c| {
            let id = id.clone();
            async move { c.analyze_remote(&id).await }
        })
        .await
        .map_err(|e| e.to_string());
    // Never started: an abort turns it FAILED so nobody can start it. A
    // failure leaves a PENDING session WHM deletes after 4 hours.
    if let Err(e) = ctx
        .api
        .repeatable(ctx.retry_note(&format!("{}/analysis", source.name)), |c| {
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

/// `pause` / `abort` as a journal request record.
pub(crate) fn request_record(req: &ControlRequest, reason: &str) -> Record {
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

impl RunPlan {
    /// The executor's view of a compiled plan. `logins[i]` is the SSH login
    /// of `plan.sources[i]` (secrets resolved by `ops`); `None` where no
    /// session will be created (`ferry pause`/`abort`).
    pub fn new(
        loaded: &crate::plan::LoadedPlan,
        compiled: &crate::graph::CompiledPlan,
        logins: Option<&[crate::client::SshLogin]>,
    ) -> RunPlan {
        let plan = &loaded.plan;
        let sources = plan
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let options = s.session.or(&plan.defaults.session);
                SourceSpec {
                    name: s.name.clone(),
                    host: s.host.clone(),
                    create: logins.and_then(|l| l.get(i)).map(|ssh| CreateSession {
                        host: s.host.clone(),
                        ssh: ssh.clone(),
                        transfer_threads: options.transfer_threads.unwrap_or(1),
                        restore_threads: options.restore_threads.unwrap_or(1),
                        compressed: options.compressed.unwrap_or(false),
                        low_priority: options.low_priority.unwrap_or(false),
                    }),
                }
            })
            .collect();
        let batches = compiled
            .sessions
            .iter()
            .map(|sp| Batch {
                key: sp.key.clone(),
                source: sp.source,
                packages: sp.packages.clone(),
                depends_on: sp.depends_on.clone(),
                accounts: sp
                    .accounts
                    .iter()
                    .map(|sa| {
                        let entry = plan.sources[sa.source].accounts[sa.entry].account();
                        let item = AccountItem {
                            user: sa.user.clone(),
                            localuser: sa.target_user.clone(),
                            size: sa.size,
                            domain: entry.domain.clone(),
                            priority: Some(sa.priority),
                            prerequisite_user: sa.prerequisite_user.clone(),
                            options: sa.options.to_params(),
                        };
                        let host = &plan.sources[sa.source].host;
                        let (package, owner) = (sa.package.as_deref(), sa.owner.as_deref());
                        BatchAccount {
                            entry: entry_hash(host, &item, package, owner),
                            fields: reconcile::entry_fields(host, &item, package, owner),
                            target_user: sa.target_user.clone(),
                            user: sa.user.clone(),
                            package: sa.package.clone(),
                            owner: sa.owner.clone(),
                            item,
                        }
                    })
                    .collect(),
            })
            .collect();
        RunPlan {
            path: loaded.path.display().to_string(),
            name: loaded.identity(),
            hash: loaded.hash.clone(),
            sources,
            batches,
            policy: plan.policy.clone(),
            concurrency: plan.concurrency.clone(),
        }
    }
}
