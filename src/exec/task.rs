//! The driver of one session instance: carries out what the
//! [`SessionMachine`] decides, talks to WHM through [`Api`], and writes
//! every intent, answer and conclusion to the journal.
//!
//! One tokio task per live session instance. It owns no shared state: what
//! it learns goes into the journal (folded into the shared [`RunState`]),
//! and the few things the scheduler must react to at once (a failed item, a
//! stuck session) go over a channel. The scheduler tells it what the run
//! wants (run / pause / abort) through a `watch`.
//!
//! The exactly-once rules live in the functions that enforce them, each
//! with the crash window it closes: [`Driver::create`],
//! [`Driver::enqueue_all`], [`Driver::start`], [`Driver::record_outcomes`]
//! and [`Driver::conclude`].

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::api::{CallError, RetryNote};
use super::mirror;
use super::outcome::{self, Conclusion, LogView};
use super::session::{Remedy, SState, SessionMachine, Stall, Step, Want};
use super::{Ctx, Msg};
use crate::client::{self, ItemOutcome, SessionId, SessionState};
use crate::events::Event;
use crate::journal::record::{
    ControlAction, EnqueueOutcome, ItemResult, MirroredAccount, Record, Unfinished,
};
use crate::journal::{JournalError, Phase, Progress, SessionRec};
use crate::plan::OnError;

/// How a session task ended.
#[derive(Debug)]
pub(crate) enum TaskEnd {
    /// The session ended on the server and every account is concluded.
    Finished,
    /// Never started and never will be; `retryable`: a new instance may be
    /// tried (the failure was transient).
    Abandoned { error: String, retryable: bool },
    /// PAUSED on the server (or paused before it started).
    Paused,
    /// ferry stopped watching a live session; the next `apply` reconciles it.
    Detached { reason: String },
    /// The task could not go on: auth refused, the target unreachable after
    /// every retry, or the journal unwritable. The journal is consistent.
    Failed(TaskFail),
}

#[derive(Debug)]
pub(crate) enum TaskFail {
    Auth(String),
    Unreachable(String),
    Journal(JournalError),
}

impl From<JournalError> for TaskEnd {
    fn from(e: JournalError) -> Self {
        TaskEnd::Failed(TaskFail::Journal(e))
    }
}

fn fail(e: CallError) -> TaskEnd {
    match e {
        CallError::Auth(m) => TaskEnd::Failed(TaskFail::Auth(m)),
        CallError::Failed(e) => TaskEnd::Failed(TaskFail::Unreachable(e.to_string())),
    }
}

/// A failed-item that says the account's restore collides with the target's
/// state (docs/whm.md §4): another restore of it running somewhere, or an
/// account of that name already there. Retrying in a new session would meet
/// the same refusal or — worse — a second restore: a person decides.
fn conflict_reason(account: &str, message: &str) -> Option<String> {
    if message.contains("Another process claims to be restoring") {
        Some(format!(
            "another restore of {account} is running on the target (WHM: {message}). ferry will not \
             enqueue it again while that may run; once it has ended, check the account and run \
             `ferry apply --adopt` (it adopts it if it matches the plan)"
        ))
    } else if message.contains("already exists on this server") {
        Some(format!(
            "an account named {account} is already on the target (WHM: {message}). ferry did not \
             put it there as far as this journal knows; check it: `ferry apply --adopt` adopts it \
             if it is this plan's account, else rename the account in the plan (`localuser`)"
        ))
    } else {
        None
    }
}

fn transient(e: &client::Error) -> bool {
    matches!(e.class(), client::Class::Transient { .. })
}

/// Runs one session instance to its end (for this run).
pub(crate) async fn drive(ctx: Arc<Ctx>, key: String, want: watch::Receiver<Want>) -> TaskEnd {
    let Some(rec) = ctx.session(&key) else {
        return TaskEnd::Detached {
            reason: format!("session {key} is not in the journal"),
        };
    };
    let mut d = Driver::new(ctx, rec, want);
    d.run().await
}

struct Driver {
    ctx: Arc<Ctx>,
    key: String,
    source: String,
    m: SessionMachine,
    id: Option<SessionId>,
    want: watch::Receiver<Want>,
    /// remote user (WHM's item key) → target username.
    users: BTreeMap<String, String>,
    last_lines: usize,
    last_state: Option<String>,
    current: Option<String>,
    start_refusals: u32,
    /// Something moved since the last poll (for the adaptive interval).
    moved: bool,
    /// What the latest readable `master.log` says: a restore may be running
    /// in the session now (`Some(true)`), none is (`Some(false)`), or the log
    /// has not been read (`None`). The stall remedy depends on it.
    restoring: Option<bool>,
}

impl Driver {
    fn new(ctx: Arc<Ctx>, rec: SessionRec, want: watch::Receiver<Want>) -> Self {
        let now = Instant::now();
        let state = match rec.phase {
            Phase::Creating => SState::Creating,
            Phase::Created => SState::Enqueuing,
            Phase::Starting | Phase::Started => SState::Starting,
            Phase::Finished => SState::Finished,
            Phase::Abandoned => SState::Abandoned,
        };
        let mut m = SessionMachine::new(&rec.key, state, now, ctx.timing.alive_window);
        m.set_pid(rec.pid);
        m.set_fully_enqueued(rec.fully_enqueued() || rec.phase == Phase::Started);
        let users = ctx.with_state(|st| {
            rec.accounts
                .iter()
                .filter_map(|a| st.accounts.get(a).map(|s| (s.user.clone(), a.clone())))
                .collect()
        });
        Driver {
            id: rec.id.as_deref().and_then(|i| SessionId::parse(i).ok()),
            key: rec.key,
            source: rec.source,
            ctx,
            m,
            want,
            users,
            last_lines: 0,
            last_state: rec.server_state,
            current: None,
            start_refusals: 0,
            moved: false,
            restoring: None,
        }
    }

    fn step_id(&self, what: &str) -> String {
        format!("{}/{what}", self.key)
    }

    fn current_want(&self) -> Want {
        *self.want.borrow()
    }

    /// Journals and reports a retry of an idempotent call.
    fn on_retry(&self, step: &str) -> impl FnMut(RetryNote<'_>) + '_ {
        let step = self.step_id(step);
        move |n: RetryNote<'_>| {
            let error = n.error.to_string();
            let _ = self.ctx.record(Record::StepFailed {
                step: step.clone(),
                error: error.clone(),
                retryable: true,
                attempt: n.attempt,
            });
            self.ctx.emit(Event::StepFailed {
                step: step.clone(),
                error,
                retryable: true,
                attempt: n.attempt,
            });
        }
    }

    async fn run(&mut self) -> TaskEnd {
        match self.m.state() {
            SState::Finished => {
                return TaskEnd::Finished;
            }
            SState::Abandoned => {
                return TaskEnd::Abandoned {
                    error: "abandoned earlier".into(),
                    retryable: true,
                };
            }
            _ => {}
        }
        if self.m.state() == SState::Creating {
            if self.current_want() != Want::Run {
                // The run stopped before this instance got an id.
                if let Err(e) = self.ctx.record(Record::SessionAbandoned {
                    session: self.key.clone(),
                    id: None,
                    reason: "the run stopped before the session was created".into(),
                }) {
                    return e.into();
                }
                return TaskEnd::Paused;
            }
            if let Err(end) = self.create().await {
                return end;
            }
        }
        if self.m.state() != SState::Creating
            && let Err(end) = self.mirror().await
        {
            return end;
        }
        if self.m.state() == SState::Enqueuing {
            match self.current_want() {
                Want::Pause => return TaskEnd::Paused,
                Want::Abort => {
                    // Never started: abort turns the PENDING session FAILED
                    // so nobody can start it later; then conclude as usual.
                    self.m.on_want(Want::Abort, Instant::now());
                    if let Err(end) = self.abort().await {
                        return end;
                    }
                }
                Want::Run => {
                    if let Err(end) = self.enqueue_all().await {
                        return end;
                    }
                    if let Err(end) = self.start().await {
                        return end;
                    }
                }
            }
        }
        self.monitor().await
    }

    /// `create_remote_root_transfer_session`. The scheduler has already
    /// made `session_create_intent` durable.
    ///
    /// Crash windows:
    /// * killed after the intent, before the call or before
    ///   `session_created`: the id is lost. If WHM created the session it is
    ///   PENDING and nobody can start it without its id; resume records the
    ///   instance abandoned and makes a new one. WHM deletes the orphan after
    ///   4 hours.
    /// * the answer is lost (timeout, reset, 5xx — `may_have_applied`): the
    ///   same, at once. Repeating the create under the same intent is only
    ///   done when the request surely never reached the server
    ///   (`may_have_applied() == false`: connection refused, DNS, TLS).
    async fn create(&mut self) -> Result<(), TaskEnd> {
        let step = self.step_id("create");
        let spec = self
            .ctx
            .source_spec(&self.source)
            .and_then(|s| s.create.clone());
        let Some(req) = spec else {
            self.abandon("no source credentials in this mode", None)?;
            return Err(TaskEnd::Abandoned {
                error: format!("source {} has no credentials", self.source),
                retryable: false,
            });
        };
        self.ctx.emit(Event::StepStarted { step: step.clone() });
        let attempts = self.ctx.api.policy().attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self
                .ctx
                .api
                .once(|c| {
                    let req = req.clone();
                    async move { c.create_remote_root_transfer_session(&req).await }
                })
                .await;
            match r {
                Ok(id) => {
                    // Recorded the moment it is known (design §5).
                    self.ctx.record(Record::SessionCreated {
                        session: self.key.clone(),
                        id: id.to_string(),
                    })?;
                    self.id = Some(id);
                    if let Err(unlisted) = self.m.on_created() {
                        self.warn_unlisted(unlisted);
                    }
                    self.ctx.emit(Event::StepSucceeded { step });
                    return Ok(());
                }
                Err(CallError::Auth(m)) => {
                    self.abandon(&m, None)?;
                    return Err(TaskEnd::Failed(TaskFail::Auth(m)));
                }
                Err(CallError::Failed(e)) => {
                    let retryable = transient(&e);
                    // The request never reached the server (connection
                    // refused, DNS, TLS handshake): nothing was created, so
                    // the same instance may simply try again.
                    let unreached = retryable && !e.may_have_applied();
                    let again = unreached && attempt < attempts;
                    self.step_failed(
                        &step,
                        &e.to_string(),
                        again || (retryable && !unreached),
                        attempt,
                    );
                    if again {
                        self.backoff(attempt, &e).await;
                        continue;
                    }
                    if unreached {
                        // Every attempt failed before reaching the target:
                        // a runtime failure (design §3, exit 1), not a
                        // reason to pause. Nothing exists on the server.
                        self.abandon("the target could not be reached; nothing was created", None)?;
                        return Err(TaskEnd::Failed(TaskFail::Unreachable(format!(
                            "{e} (after {attempt} attempts)"
                        ))));
                    }
                    self.abandon(
                        &format!(
                            "create failed ({e}); if the server created the session anyway it stays \
                             PENDING and is never started"
                        ),
                        None,
                    )?;
                    return Err(TaskEnd::Abandoned {
                        error: e.to_string(),
                        retryable,
                    });
                }
            }
        }
    }

    /// Writes the session to the target's record of the plan
    /// (`exec::mirror`) unless it is there already: right after the create
    /// and before anything is enqueued, so a journal that loses this
    /// session can recover it from the target.
    ///
    /// Crash window: killed before `session_mirrored` is recorded, the
    /// entry may be on the target; the next apply reads it back and finds
    /// this session by its id. Nothing is enqueued before the write is
    /// confirmed.
    async fn mirror(&mut self) -> Result<(), TaskEnd> {
        let Some(id) = self.id.clone() else {
            return Ok(());
        };
        let Some(rec) = self.ctx.session(&self.key) else {
            return Ok(());
        };
        if rec.mirrored.is_some() || rec.phase == Phase::Finished || rec.phase == Phase::Abandoned {
            return Ok(());
        }
        let accounts = self.ctx.with_state(|st| {
            rec.accounts
                .iter()
                .filter_map(|a| {
                    st.accounts.get(a).map(|s| MirroredAccount {
                        account: a.clone(),
                        user: s.user.clone(),
                        entry: s.entry.clone(),
                    })
                })
                .collect()
        });
        let entry = mirror::Entry {
            v: 1,
            key: rec.key.clone(),
            batch: rec.batch.clone(),
            source: rec.source.clone(),
            host: rec.host.clone(),
            id: id.to_string(),
            accounts,
            packages: rec.packages.clone(),
            replaces: rec.replaces.clone(),
        };
        let written = self
            .ctx
            .mirror
            .write(&self.ctx.api, &entry, self.on_retry("mirror"))
            .await
            .map_err(fail)?;
        match written {
            mirror::Written::At(index) => self.ctx.record(Record::SessionMirrored {
                session: self.key.clone(),
                index,
            })?,
            mirror::Written::Off { first: true } => {
                if let Some(why) = self.ctx.mirror.unavailable().await {
                    self.ctx.emit(Event::Warning {
                        message: why.to_string(),
                    });
                }
            }
            mirror::Written::Off { first: false } => {}
        }
        Ok(())
    }

    fn warn_unlisted(&self, unlisted: super::session::Unlisted) {
        self.ctx.emit(Event::Warning {
            message: unlisted.to_string(),
        });
    }

    fn abandon(&mut self, reason: &str, id: Option<String>) -> Result<(), TaskEnd> {
        self.ctx.record(Record::SessionAbandoned {
            session: self.key.clone(),
            id,
            reason: reason.to_string(),
        })?;
        self.m.on_abandoned();
        Ok(())
    }

    fn step_failed(&self, step: &str, error: &str, retryable: bool, attempt: u32) {
        let _ = self.ctx.record(Record::StepFailed {
            step: step.to_string(),
            error: error.to_string(),
            retryable,
            attempt,
        });
        self.ctx.emit(Event::StepFailed {
            step: step.to_string(),
            error: error.to_string(),
            retryable,
            attempt,
        });
    }

    async fn backoff(&self, attempt: u32, e: &client::Error) {
        let ra = match e.class() {
            client::Class::Transient { retry_after } => retry_after,
            _ => None,
        };
        let delay = self.ctx.api.policy().delay(attempt, ra, &mut rand::rng());
        tokio::time::sleep(delay).await;
    }

    /// Enqueues every item not yet confirmed, packages first, then accounts
    /// in plan order (a reseller before its accounts).
    ///
    /// Crash window: `enqueue_intent` is durable before the first call; an
    /// item may then be in the session without an `enqueued` record. Resume
    /// (or a retry after a lost answer) repeats the enqueue into the SAME
    /// session, where WHM's duplicate-key refusal
    /// ([`client::Enqueued::AlreadyQueued`]) proves the first call took
    /// effect. The account is never put into another session while this one
    /// may still run it: this session is only ever abandoned before its
    /// start intent, i.e. while nothing in it can run.
    async fn enqueue_all(&mut self) -> Result<(), TaskEnd> {
        let Some(id) = self.id.clone() else {
            return Err(TaskEnd::Detached {
                reason: format!("session {} has no id", self.key),
            });
        };
        let rec = self.ctx.session(&self.key).expect("known session");
        if !rec.enqueue_intent {
            self.ctx.intent(Record::EnqueueIntent {
                session: self.key.clone(),
                packages: rec.packages.clone(),
                accounts: rec.accounts.clone(),
            })?;
        }
        let step = self.step_id("enqueue");
        self.ctx.emit(Event::StepStarted { step: step.clone() });
        for p in &rec.packages {
            if rec.enqueued_packages.contains(p) {
                continue;
            }
            if self.current_want() == Want::Pause {
                return Err(TaskEnd::Paused);
            }
            let pkg = p.clone();
            let id2 = id.clone();
            let step = self.step_id(&format!("package/{p}"));
            let outcome = self
                .enqueue_one(&step, move |c| {
                    let (id, pkg) = (id2.clone(), pkg.clone());
                    async move { c.enqueue_package(&id, &pkg).await }
                })
                .await?;
            match outcome {
                Ok(o) => self.ctx.record(Record::Enqueued {
                    session: self.key.clone(),
                    package: Some(p.clone()),
                    account: None,
                    outcome: o,
                })?,
                Err(reason) => {
                    // Never started: safe to abandon; the batch is blocked.
                    self.abandon(
                        &format!("WHM refused to enqueue package {p}: {reason}"),
                        Some(id.to_string()),
                    )?;
                    return Err(TaskEnd::Abandoned {
                        error: format!("package {p}: {reason}"),
                        retryable: false,
                    });
                }
            }
        }
        let members: Vec<String> = rec.accounts.clone();
        for a in &members {
            if rec.enqueued_accounts.contains(a) {
                continue;
            }
            if self.current_want() == Want::Pause {
                return Err(TaskEnd::Paused);
            }
            let Some(item) = self.ctx.account_item(a, &members) else {
                self.abandon(
                    &format!("account {a} is no longer in the plan"),
                    Some(id.to_string()),
                )?;
                return Err(TaskEnd::Abandoned {
                    error: format!("account {a} left the plan"),
                    retryable: true,
                });
            };
            let id2 = id.clone();
            let step = self.step_id(&format!("enqueue/{}", item.user));
            let outcome = self
                .enqueue_one(&step, move |c| {
                    let (id, item) = (id2.clone(), item.clone());
                    async move { c.enqueue_account(&id, &item).await }
                })
                .await?;
            match outcome {
                Ok(o) => self.ctx.record(Record::Enqueued {
                    session: self.key.clone(),
                    package: None,
                    account: Some(a.clone()),
                    outcome: o,
                })?,
                Err(reason) => {
                    // WHM refused the item itself (a schema or module error,
                    // not the duplicate refusal): it is not in the session.
                    // The session was never started, so abandoning it is
                    // safe; the other accounts go to a new instance.
                    let message = format!("WHM refused to enqueue it: {reason}");
                    self.ctx.record(Record::ItemOutcome {
                        session: self.key.clone(),
                        account: Some(a.clone()),
                        package: None,
                        result: ItemResult::Failed,
                        message: Some(message),
                        log: Vec::new(),
                    })?;
                    self.ctx.send(Msg::ItemFailed {
                        session: self.key.clone(),
                        account: a.clone(),
                    });
                    self.abandon(
                        &format!("WHM refused to enqueue account {a}"),
                        Some(id.to_string()),
                    )?;
                    return Err(TaskEnd::Abandoned {
                        error: format!("account {a}: {reason}"),
                        retryable: true,
                    });
                }
            }
        }
        self.ctx.emit(Event::StepSucceeded { step });
        Ok(())
    }

    /// One `enqueue_transfer_item`, repeated into the same session after
    /// transient failures. `Ok(Ok(outcome))`: in the session;
    /// `Ok(Err(reason))`: WHM refused it for good.
    async fn enqueue_one<F, Fut>(
        &mut self,
        step: &str,
        mut call: F,
    ) -> Result<Result<EnqueueOutcome, String>, TaskEnd>
    where
        F: FnMut(client::WhmClient) -> Fut,
        Fut: std::future::Future<Output = Result<client::Enqueued, client::Error>>,
    {
        let attempts = self.ctx.api.policy().attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ctx.api.once(&mut call).await {
                Ok(client::Enqueued::Added) => return Ok(Ok(EnqueueOutcome::Added)),
                Ok(client::Enqueued::AlreadyQueued) => {
                    return Ok(Ok(EnqueueOutcome::AlreadyQueued));
                }
                Err(CallError::Auth(m)) => return Err(TaskEnd::Failed(TaskFail::Auth(m))),
                Err(CallError::Failed(e)) if transient(&e) => {
                    self.step_failed(step, &e.to_string(), attempt < attempts, attempt);
                    if attempt >= attempts {
                        // The session stays un-started; the next apply
                        // repeats the enqueue into it.
                        return Err(TaskEnd::Failed(TaskFail::Unreachable(e.to_string())));
                    }
                    self.backoff(attempt, &e).await;
                }
                Err(CallError::Failed(e)) => {
                    self.step_failed(step, &e.to_string(), false, attempt);
                    let reason = match &e.kind {
                        client::ErrorKind::Whm { reason } => reason.clone(),
                        _ => e.to_string(),
                    };
                    return Ok(Err(reason));
                }
            }
        }
    }

    /// `start_transfer_session`, only once every item is confirmed enqueued.
    ///
    /// Crash window: `start_intent` is durable before the call; from then on
    /// the session may be RUNNING and its accounts may be transferred by it.
    /// Resume asks the server first: PENDING → start again (repeatable: a
    /// live session answers with its existing pid, a PAUSED one resumes).
    async fn start(&mut self) -> Result<(), TaskEnd> {
        let rec = self.ctx.session(&self.key).expect("known session");
        if !rec.fully_enqueued() {
            return Err(TaskEnd::Detached {
                reason: format!("session {} is not fully enqueued", self.key),
            });
        }
        self.ctx.intent(Record::StartIntent {
            session: self.key.clone(),
        })?;
        if let Err(unlisted) = self.m.on_enqueued_all() {
            self.warn_unlisted(unlisted);
        }
        self.ctx.emit(Event::StepStarted {
            step: self.step_id("start"),
        });
        self.call_start().await
    }

    /// Calls start and records a new pid. A permanent refusal is recorded
    /// and left to the state poll to explain.
    async fn call_start(&mut self) -> Result<(), TaskEnd> {
        let id = self.id.clone().expect("started sessions have ids");
        let step = self.step_id("start");
        let r = self
            .ctx
            .api
            .repeatable(self.on_retry("start"), |c| {
                let id = id.clone();
                async move { c.start_transfer_session(&id).await }
            })
            .await;
        match r {
            Ok(pid) => {
                if self.m.pid() != Some(pid) {
                    self.ctx.record(Record::SessionStarted {
                        session: self.key.clone(),
                        pid,
                    })?;
                }
                self.m.on_started(pid, Instant::now());
                self.start_refusals = 0;
                self.ctx.emit(Event::StepSucceeded { step });
                Ok(())
            }
            Err(CallError::Failed(e)) if !transient(&e) => {
                self.start_refusals += 1;
                self.step_failed(&step, &e.to_string(), false, self.start_refusals);
                if self.start_refusals >= self.ctx.api.policy().attempts.max(2) {
                    return Err(TaskEnd::Detached {
                        reason: format!("WHM keeps refusing to start session {}: {e}", self.key),
                    });
                }
                Ok(())
            }
            Err(e) => Err(fail(e)),
        }
    }

    async fn pause(&mut self) -> Result<(), TaskEnd> {
        self.control(ControlAction::Pause).await
    }

    async fn abort(&mut self) -> Result<(), TaskEnd> {
        self.control(ControlAction::Abort).await
    }

    /// `pause_transfer_session` / `abort_transfer_session`. A refusal is
    /// recorded; the next state poll says where the session is.
    async fn control(&mut self, action: ControlAction) -> Result<(), TaskEnd> {
        let Some(id) = self.id.clone() else {
            return Ok(());
        };
        let what = match action {
            ControlAction::Pause => "pause",
            ControlAction::Abort => "abort",
        };
        let r = self
            .ctx
            .api
            .repeatable(self.on_retry(what), |c| {
                let id = id.clone();
                async move {
                    match action {
                        ControlAction::Pause => c.pause_transfer_session(&id).await,
                        ControlAction::Abort => c.abort_transfer_session(&id).await,
                    }
                }
            })
            .await;
        let result = match r {
            Ok(()) => "ok".to_string(),
            Err(CallError::Failed(e)) if !transient(&e) => format!("refused: {e}"),
            Err(e) => return Err(fail(e)),
        };
        self.ctx.record(Record::SessionControl {
            session: self.key.clone(),
            action,
            result,
        })?;
        Ok(())
    }

    /// Polls the session until it ends (or the run stops watching it).
    async fn monitor(&mut self) -> TaskEnd {
        let t = self.ctx.timing.clone();
        let mut interval = t.poll_min;
        let mut first = true;
        // What the run wanted before this task started (a resumed session
        // under `ferry pause`/`abort`) counts too, not only later changes.
        if let Err(end) = self.on_want().await {
            return end;
        }
        loop {
            if !first {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    changed = self.want.changed() => {
                        if changed.is_ok()
                            && let Err(end) = self.on_want().await
                        {
                            return end;
                        }
                    }
                }
            }
            first = false;
            match self.poll_once().await {
                Ok(Some(end)) => return end,
                Ok(None) => {}
                Err(end) => return end,
            }
            let moved = self.last_progress_is_now();
            interval = if moved {
                t.poll_min
            } else {
                (interval * 2).min(t.poll_max)
            };
            if let Some(stall) = self.m.on_tick(Instant::now(), t.stall_timeout) {
                match self.on_stall(stall).await {
                    Ok(Some(end)) => return end,
                    Ok(None) => interval = t.poll_min,
                    Err(end) => return end,
                }
            }
        }
    }

    fn last_progress_is_now(&mut self) -> bool {
        std::mem::take(&mut self.moved)
    }

    async fn on_want(&mut self) -> Result<(), TaskEnd> {
        let want = self.current_want();
        let step = self.m.on_want(want, Instant::now());
        self.do_step(step).await.map(|_| ())
    }

    /// Carries out a step; `Some(end)` ends the task.
    async fn do_step(&mut self, step: Step) -> Result<Option<TaskEnd>, TaskEnd> {
        match step {
            Step::Start => self.call_start().await.map(|_| None),
            Step::Enqueue => {
                self.enqueue_all().await?;
                self.start().await.map(|_| None)
            }
            Step::Pause => self.pause().await.map(|_| None),
            Step::Abort => self.abort().await.map(|_| None),
            Step::StopWatching => Ok(Some(TaskEnd::Paused)),
            Step::Conclude => {
                let state = self.last_state.clone().unwrap_or_default();
                let end = self.conclude(&state).await;
                // The terminal state is shown after the accounts it
                // concluded, so "COMPLETED (3/3)" is the session's last word.
                self.emit_state();
                Ok(Some(end))
            }
            Step::Poll | Step::Nothing => Ok(None),
        }
    }

    /// One poll: state, then (while it runs) the log with a short timeout.
    async fn poll_once(&mut self) -> Result<Option<TaskEnd>, TaskEnd> {
        let id = self.id.clone().expect("monitored sessions have ids");
        let r = self
            .ctx
            .api
            .repeatable(self.on_retry("state"), |c| {
                let id = id.clone();
                async move { c.get_transfer_session_state(&id).await }
            })
            .await;
        let state = match r {
            Ok(s) => s,
            Err(CallError::Failed(e)) if !transient(&e) => {
                // WHM no longer knows the session: it deletes PENDING ones
                // after 4 hours and any after 30 days (docs/whm.md §4), or
                // the server was reinstalled. It is gone, not a passing
                // fault: nothing runs in it, so conclude without a log —
                // every open account is then decided by the target
                // (present: its restore is over; absent: moved again).
                self.step_failed(&self.step_id("state"), &e.to_string(), false, 1);
                self.ctx.emit(Event::Warning {
                    message: format!(
                        "session {} ({id}) no longer exists on the target (WHM deletes PENDING \
                         sessions after 4 hours and any after 30 days); its accounts are decided \
                         by what the target has",
                        self.key
                    ),
                });
                return Ok(Some(self.conclude_without_log("GONE").await));
            }
            Err(e) => return Err(fail(e)),
        };
        let now = Instant::now();
        let name = state.as_str().to_string();
        if self.last_state.as_deref() != Some(name.as_str()) {
            self.ctx.record(Record::SessionState {
                session: self.key.clone(),
                state: name.clone(),
            })?;
            self.last_state = Some(name);
            self.m.on_progress(now);
            self.moved = true;
            if !matches!(
                state,
                SessionState::Completed | SessionState::Aborted | SessionState::Failed
            ) {
                self.emit_state();
            }
        }
        let step = match self.m.on_server_state(&state, now) {
            Ok(s) => s,
            Err(unlisted) => {
                self.ctx.emit(Event::Warning {
                    message: unlisted.to_string(),
                });
                Step::Poll
            }
        };
        if step == Step::Poll
            && matches!(
                state,
                SessionState::Running | SessionState::Pausing | SessionState::Aborting
            )
        {
            self.read_log_while_running(&id).await?;
        }
        self.do_step(step).await
    }

    /// Fetches master.log with a short timeout. WHM may block on a log that
    /// is still being written (`log_blocking`): a timeout is "no news",
    /// never an error that stops the run.
    async fn read_log_while_running(&mut self, id: &SessionId) -> Result<(), TaskEnd> {
        let timeout = self.ctx.timing.log_timeout;
        let r = self
            .ctx
            .api
            .once(|c| {
                let id = id.clone();
                async move {
                    c.fetch_transfer_session_log(&id, "master.log", timeout)
                        .await
                }
            })
            .await;
        match r {
            Ok(text) => {
                self.m.on_log_read();
                let view = LogView::read(&text);
                self.restoring = Some(!view.restoring_now.is_empty());
                if view.lines > self.last_lines {
                    self.last_lines = view.lines;
                    self.m.on_progress(Instant::now());
                    self.moved = true;
                }
                if view.current != self.current {
                    self.current = view.current.clone();
                    self.emit_state();
                }
                self.record_outcomes(&view)?;
                Ok(())
            }
            Err(CallError::Auth(m)) => Err(TaskEnd::Failed(TaskFail::Auth(m))),
            Err(CallError::Failed(_)) => Ok(()),
        }
    }

    /// Records the final RESTORE lines not yet recorded for this session.
    ///
    /// An account is recorded transferred only from a `success-item` /
    /// `warning-item` RESTORE line of *its* session's log (or later from
    /// `listaccts`) — never from the session state. A failure is reported to
    /// the scheduler at once, for the policy.
    fn record_outcomes(&mut self, view: &LogView) -> Result<(), TaskEnd> {
        let mut new = Vec::new();
        self.ctx.with_state(|st| {
            for (user, outcome) in &view.accounts {
                let Some(target) = self.users.get(user) else {
                    continue;
                };
                let Some(acc) = st.accounts.get(target) else {
                    continue;
                };
                if acc.session.as_deref() == Some(self.key.as_str())
                    && matches!(acc.progress, Progress::InProgress | Progress::Unfinished)
                {
                    let log = view.failed_lines.get(user).cloned().unwrap_or_default();
                    new.push((target.clone(), outcome.clone(), log));
                }
            }
        });
        for (target, outcome, log) in new {
            let (result, message) = match &outcome {
                ItemOutcome::Succeeded { warnings: false } => (ItemResult::Succeeded, None),
                ItemOutcome::Succeeded { warnings: true } => (ItemResult::Warning, None),
                ItemOutcome::Failed { message } => (ItemResult::Failed, Some(message.clone())),
            };
            self.ctx.record(Record::ItemOutcome {
                session: self.key.clone(),
                account: Some(target.clone()),
                package: None,
                result,
                message,
                log,
            })?;
            if let ItemOutcome::Failed { message } = &outcome
                && let Some(reason) = conflict_reason(&target, message)
            {
                self.ctx.record(Record::AccountConflict {
                    account: target.clone(),
                    reason,
                })?;
            }
            match outcome {
                ItemOutcome::Succeeded { warnings } => self.ctx.emit(Event::ItemSucceeded {
                    account: target.clone(),
                    source: self.source.clone(),
                    session: self.key.clone(),
                    warnings,
                    adopted: self
                        .ctx
                        .with_state(|st| st.accounts.get(&target).and_then(|a| a.adopted.clone())),
                }),
                ItemOutcome::Failed { .. } => self.ctx.send(Msg::ItemFailed {
                    session: self.key.clone(),
                    account: target.clone(),
                }),
            }
        }
        let rec = self.ctx.session(&self.key).expect("known session");
        for (pkg, outcome) in &view.packages {
            if rec.packages.contains(pkg) && !rec.package_results.contains_key(pkg) {
                let (result, message) = match outcome {
                    ItemOutcome::Succeeded { warnings: false } => (ItemResult::Succeeded, None),
                    ItemOutcome::Succeeded { warnings: true } => (ItemResult::Warning, None),
                    ItemOutcome::Failed { message } => (ItemResult::Failed, Some(message.clone())),
                };
                self.ctx.record(Record::ItemOutcome {
                    session: self.key.clone(),
                    account: None,
                    package: Some(pkg.clone()),
                    result,
                    message,
                    log: Vec::new(),
                })?;
            }
        }
        Ok(())
    }

    /// The session ended on the server: read the whole log (terminal logs
    /// do not block) and conclude every account.
    async fn conclude(&mut self, state: &str) -> TaskEnd {
        let Some(id) = self.id.clone() else {
            return self.conclude_without_log(state).await;
        };
        let timeout = self.ctx.timing.full_log_timeout;
        let r = self
            .ctx
            .api
            .repeatable(self.on_retry("log"), |c| {
                let id = id.clone();
                async move {
                    c.fetch_transfer_session_log(&id, "master.log", timeout)
                        .await
                }
            })
            .await;
        let view = match r {
            Ok(text) => Some(LogView::read(&text)),
            Err(CallError::Auth(m)) => return TaskEnd::Failed(TaskFail::Auth(m)),
            Err(CallError::Failed(e)) => {
                self.step_failed(&self.step_id("log"), &e.to_string(), false, 1);
                None
            }
        };
        self.finish(state, view.as_ref()).await
    }

    async fn conclude_without_log(&mut self, state: &str) -> TaskEnd {
        self.finish(state, None).await
    }

    /// Conclusions for every open account, then `session_finished`, then
    /// `listaccts`.
    ///
    /// Crash window: killed between the conclusions and `session_finished`
    /// → resume finds the session terminal on the server and concludes
    /// again; recorded outcomes are not recorded twice (only accounts still
    /// in progress in this session are considered). Killed before the
    /// verification → the next `apply` verifies every unverified account.
    async fn finish(&mut self, state: &str, view: Option<&LogView>) -> TaskEnd {
        if let Some(v) = view
            && let Err(end) = self.record_outcomes(v)
        {
            return end;
        }
        let open: Vec<(String, String)> = self.ctx.with_state(|st| {
            self.users
                .iter()
                .filter(|(_, t)| {
                    st.accounts.get(*t).is_some_and(|a| {
                        a.session.as_deref() == Some(self.key.as_str())
                            && a.progress == Progress::InProgress
                    })
                })
                .map(|(u, t)| (u.clone(), t.clone()))
                .collect()
        });
        for (user, target) in open {
            let rec = match outcome::conclude(view, &user) {
                // Its RESTORE may have begun: never retried automatically
                // (a second restore of a live account is an outage).
                Conclusion::Unfinished(why) => Record::RestoreUnfinished {
                    session: self.key.clone(),
                    account: target.clone(),
                    why: if state == "GONE" {
                        Unfinished::Gone
                    } else {
                        why
                    },
                },
                // A COMPLETED session has a final line for every item it
                // held. None means WHM dropped the item: count it as a
                // failure so `item_retries` and the policy bound the retries.
                Conclusion::NotBegun if state == "COMPLETED" => Record::ItemOutcome {
                    session: self.key.clone(),
                    account: Some(target.clone()),
                    package: None,
                    result: ItemResult::Failed,
                    message: Some("the session completed without a result for this account".into()),
                    log: Vec::new(),
                },
                // NotBegun in a FAILED/ABORTED session: freed by
                // `session_finished` below (the ended session will never run
                // it) and carried on by a replacement.
                _ => continue,
            };
            let failed = matches!(rec, Record::ItemOutcome { .. });
            if let Err(e) = self.ctx.record(rec) {
                return e.into();
            }
            if failed {
                self.ctx.send(Msg::ItemFailed {
                    session: self.key.clone(),
                    account: target,
                });
            }
        }
        if let Err(e) = self.ctx.record(Record::SessionFinished {
            session: self.key.clone(),
            state: state.to_string(),
        }) {
            return e.into();
        }
        self.m.on_concluded();
        self.emit_state();
        if let Err(end) = super::verify(&self.ctx, Some(&self.key)).await {
            return end;
        }
        TaskEnd::Finished
    }

    /// A stall, and its remedy as [`SessionMachine::remedy`] decides:
    /// first a start (safe both ways); a session that stays stuck with no
    /// restore running in it is aborted and its unrestored accounts go to a
    /// fresh session; one stuck otherwise goes to the policy through the
    /// scheduler.
    ///
    /// Crash window (abort and replace): killed after the abort, the next
    /// apply finds the session FAILED or ABORTED and concludes it as any
    /// ended session — accounts that never reached RESTORE go to a
    /// replacement, a cut restore is checked on the target.
    async fn on_stall(&mut self, stall: Stall) -> Result<Option<TaskEnd>, TaskEnd> {
        let idle = stall.idle.as_secs();
        let remedy = self.m.remedy(&stall, self.restoring);
        let action = match remedy {
            Remedy::Restart => "restart",
            Remedy::AbortAndReplace => "abort_and_replace",
            Remedy::Detach => "detach",
            Remedy::Escalate => match self.ctx.policy_on_error() {
                OnError::Pause => "pause",
                OnError::Abort => "abort",
                OnError::Continue => "abort-and-replace",
            },
        };
        self.ctx.record(Record::SessionStalled {
            session: self.key.clone(),
            idle_secs: idle,
            action: action.to_string(),
        })?;
        if let Some(id) = &self.id {
            self.ctx.emit(Event::SessionStalled {
                session: self.key.clone(),
                id: id.to_string(),
                idle_secs: idle,
            });
        }
        match remedy {
            Remedy::Restart => {
                // Safe on every state a stall can be seen in: a live master
                // answers with its pid (nothing changes), a stale RUNNING
                // session is restarted and carries on with its pending items.
                self.call_start().await?;
                Ok(None)
            }
            Remedy::AbortAndReplace => {
                self.ctx.emit(Event::Warning {
                    message: format!(
                        "session {} made no progress for {idle}s and its master.log shows no \
                         restore running: ferry aborts it, and its accounts that never reached the \
                         restore go to a fresh session",
                        self.key
                    ),
                });
                let step = self.m.on_want(Want::Abort, Instant::now());
                self.do_step(step).await.map(|_| None)
            }
            Remedy::Detach => {
                self.m.on_detached();
                Ok(Some(TaskEnd::Detached {
                    reason: format!(
                        "session {} made no progress for {idle}s while {}",
                        self.key,
                        if self.m.want() == Want::Abort {
                            "aborting"
                        } else {
                            "pausing"
                        }
                    ),
                }))
            }
            Remedy::Escalate => {
                self.ctx.send(Msg::Stuck {
                    session: self.key.clone(),
                    reason: format!("session {} made no progress for {idle}s", self.key),
                });
                Ok(None)
            }
        }
    }

    fn emit_state(&self) {
        let (accounts, done) = self.ctx.with_state(|st| {
            let rec = st.session(&self.key);
            let accounts = rec.map_or(0, |r| r.accounts.len());
            let done = rec.map_or(0, |r| {
                r.accounts
                    .iter()
                    .filter(|a| {
                        st.accounts.get(*a).is_some_and(|s| {
                            s.session.as_deref() == Some(self.key.as_str())
                                && matches!(
                                    s.progress,
                                    Progress::Transferred | Progress::Failed { .. }
                                )
                        })
                    })
                    .count()
            });
            (accounts, done)
        });
        self.ctx.emit(Event::SessionState {
            session: self.key.clone(),
            id: self.id.as_ref().map(|i| i.to_string()),
            source: self.source.clone(),
            state: self.last_state.clone().unwrap_or_else(|| "PENDING".into()),
            current: self.current.clone(),
            accounts,
            done,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failed-items that make an account a conflict for a person, with
    /// WHM's texts (docs/whm.md §4); any other failure is retried.
    #[test]
    fn restore_collisions_are_conflicts() {
        let busy = conflict_reason("bob", "Another process claims to be restoring bob.").unwrap();
        assert!(
            busy.contains("--adopt") && busy.contains("will not"),
            "{busy}"
        );
        let there =
            conflict_reason("bob", "A user named “bob” already exists on this server.").unwrap();
        assert!(there.contains("already on the target"), "{there}");
        assert_eq!(conflict_reason("bob", "Disk quota exceeded"), None);
    }
}
