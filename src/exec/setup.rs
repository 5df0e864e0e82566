//! Setting a session up: create it, write it to the target's record,
//! enqueue its items, start it.
//!
//! ## Crash windows (the exactly-once rules of this phase)
//!
//! * **create** — the scheduler made `session_create_intent` durable. Killed
//!   before the call or before `session_created`, the id is lost: if WHM
//!   created the session it is PENDING and nobody can start it without its
//!   id; resume records the instance abandoned and makes a new one (WHM
//!   deletes the orphan after 4 hours). A lost answer (timeout, reset, 5xx:
//!   `may_have_applied`) is the same, at once. The create is repeated under
//!   the same intent only when the request surely never reached the server
//!   (connection refused, DNS, TLS).
//! * **the target's record** — written right after the id is recorded and
//!   before anything is enqueued ([`super::mirror`] has its own windows):
//!   a journal that loses this session later can recover it.
//! * **enqueue** — `enqueue_intent` is durable before the first call; an
//!   item may then be in the session without an `enqueued` record. Resume
//!   (or a retry after a lost answer) repeats the enqueue into the SAME
//!   session, where WHM's duplicate refusal proves the first call took
//!   effect. The account never goes to another session while this one may
//!   still run it: a session is only ever abandoned before its start
//!   intent, while nothing in it can run.
//! * **start** — `start_intent` is durable before the call, and only once
//!   every item is confirmed; from then on the session may be RUNNING.
//!   Resume asks the server first: PENDING is started again (a live session
//!   answers with its existing pid, a PAUSED one resumes).

use super::Msg;
use super::api::CallError;
use super::ctx::Halt;
use super::driver::{Driver, TaskEnd, transient};
use super::mirror;
use super::session::{Input, Want};
use crate::client;
use crate::events::Event;
use crate::graph::SessionStep;
use crate::journal::Phase;
use crate::journal::record::{
    EnqueueOutcome, ItemResult, MirroredAccount, Record, ReportedAccount,
};
use crate::plan::VerifyPolicy;

impl Driver {
    /// `create_remote_root_transfer_session` (see the module's crash
    /// windows).
    pub(super) async fn create(&mut self) -> Result<(), TaskEnd> {
        let step = self.step(SessionStep::Create);
        let source = self.ctx.plan().source_named(&self.source);
        let Some(req) = source.and_then(|s| self.ctx.plan().creates[s].clone()) else {
            self.abandon("no source credentials in this mode", None)?;
            return Err(TaskEnd::Abandoned {
                error: format!("source {} has no credentials", self.source),
                retryable: false,
            });
        };
        self.ctx.emit(Event::StepStarted {
            step: step.to_string(),
        });
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
            let e = match r {
                Ok(id) => {
                    // Recorded the moment it is known (design §5).
                    self.ctx.record(Record::SessionCreated {
                        session: self.key.clone(),
                        id: id.to_string(),
                    })?;
                    self.id = Some(id);
                    self.feed(Input::Created);
                    self.ctx.emit(Event::StepSucceeded {
                        step: step.to_string(),
                    });
                    return Ok(());
                }
                Err(CallError::Stopped { message, .. }) => {
                    self.abandon(&message, None)?;
                    return Err(Halt::Auth(message).into());
                }
                Err(CallError::Failed(e)) => e,
            };
            let retryable = transient(&e);
            // The request never reached the server (connection refused,
            // DNS, TLS handshake): nothing was created, so the same
            // instance may simply try again.
            let unreached = retryable && !e.may_have_applied();
            let again = unreached && attempt < attempts;
            self.step_failed(
                SessionStep::Create,
                &e.to_string(),
                again || (retryable && !unreached),
                attempt,
            )?;
            if again {
                self.backoff(attempt, &e).await;
                continue;
            }
            if unreached {
                // Every attempt failed before reaching the target: a runtime
                // failure (design §3, exit 1), not a reason to pause.
                // Nothing exists on the server.
                self.abandon("the target could not be reached; nothing was created", None)?;
                return Err(Halt::Unreachable(format!("{e} (after {attempt} attempts)")).into());
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

    /// Writes the session to the target's record of the plan unless it is
    /// there already. Nothing is enqueued before the write is confirmed.
    pub(super) async fn mirror(&mut self) -> Result<(), TaskEnd> {
        let Some(id) = self.id.clone() else {
            return Ok(());
        };
        let Some(rec) = self.ctx.session(&self.key) else {
            return Ok(());
        };
        if rec.mirrored.is_some() || matches!(rec.phase, Phase::Finished | Phase::Abandoned) {
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
            .write(&self.ctx.api, &entry, self.on_retry(SessionStep::Mirror))
            .await?;
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

    /// `policy.verify: basic`: what the source reports of the session's
    /// accounts (size, main domain, MySQL databases), journaled as
    /// `session_analysed` before anything is enqueued, for the checks after
    /// the restore. From the session's own analysis (one retrieve: create
    /// ran it) for a source's first session in this apply; its later
    /// sessions reuse that answer (`Ctx::analysis`). Read-only, so
    /// repeatable after any failure or kill; a failure is a warning, never
    /// fatal (those checks then say nothing for these accounts).
    pub(super) async fn analyse(&mut self) -> Result<(), TaskEnd> {
        if self.ctx.plan().policy.verify != VerifyPolicy::Basic {
            return Ok(());
        }
        let Some(id) = self.id.clone() else {
            return Ok(());
        };
        let Some(rec) = self.ctx.session(&self.key) else {
            return Ok(());
        };
        if rec.analysed || rec.enqueue_intent || rec.phase != Phase::Created {
            return Ok(());
        }
        let src = self.ctx.plan().source_named(&self.source);
        let analysis = match src.and_then(|i| self.ctx.analysis(i)) {
            // The source was read already in this apply (a session of it,
            // or the checks before the first enqueue): no request.
            Some(a) => a,
            None => {
                let r = self
                    .ctx
                    .api
                    .repeatable(self.on_retry(SessionStep::Analyse), |c| {
                        let id = id.clone();
                        // the analysis create ran (docs/whm.md §5): one request
                        async move { c.retrieve_remote_analysis(&id).await }
                    })
                    .await;
                match r {
                    Ok(a) => {
                        let a = std::sync::Arc::new(a);
                        if let Some(i) = src {
                            self.ctx.keep_analysis(i, a.clone());
                        }
                        a
                    }
                    Err(CallError::Stopped { message, .. }) => {
                        return Err(Halt::Auth(message).into());
                    }
                    Err(CallError::Failed(e)) => {
                        self.ctx.emit(Event::Warning {
                            message: format!(
                                "could not read the remote analysis of session {} ({e}): its \
                                 accounts' disk use and databases will not be compared with the \
                                 source's",
                                self.key
                            ),
                        });
                        return Ok(());
                    }
                }
            }
        };
        let accounts = analysis
            .accounts
            .iter()
            .filter_map(|a| {
                let account = self.users.get(&a.user)?;
                Some(ReportedAccount {
                    account: account.clone(),
                    bytes: a.bytes,
                    domain: a.domain.clone(),
                    databases: analysis.databases.get(&a.user).cloned().unwrap_or_default(),
                })
            })
            .collect();
        self.ctx.record(Record::SessionAnalysed {
            session: self.key.clone(),
            accounts,
        })?;
        Ok(())
    }

    pub(super) fn abandon(&mut self, reason: &str, id: Option<String>) -> Result<(), TaskEnd> {
        self.ctx.record(Record::SessionAbandoned {
            session: self.key.clone(),
            id,
            reason: reason.to_string(),
        })?;
        self.feed(Input::Abandoned);
        Ok(())
    }

    /// Enqueues every item not yet confirmed, packages first, then accounts
    /// in plan order (a reseller before its accounts).
    pub(super) async fn enqueue_all(&mut self) -> Result<(), TaskEnd> {
        let id = self.session_id()?;
        let Some(rec) = self.ctx.session(&self.key) else {
            return Err(TaskEnd::Detached {
                reason: format!("session {} is not in the journal", self.key),
            });
        };
        if !rec.enqueue_intent {
            self.ctx.intent(Record::EnqueueIntent {
                session: self.key.clone(),
                packages: rec.packages.clone(),
                accounts: rec.accounts.clone(),
            })?;
        }
        let step = self.step(SessionStep::EnqueueAll);
        self.ctx.emit(Event::StepStarted {
            step: step.to_string(),
        });
        for p in &rec.packages {
            if rec.enqueued_packages.contains(p) {
                continue;
            }
            if self.current_want() == Want::Pause {
                return Err(TaskEnd::Paused);
            }
            let (pkg, sid) = (p.clone(), id.clone());
            let outcome = self
                .enqueue_one(SessionStep::Package(p.clone()), move |c| {
                    let (id, pkg) = (sid.clone(), pkg.clone());
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
            let Some(item) = self.ctx.plan().item(a, &members) else {
                self.abandon(
                    &format!("account {a} is no longer in the plan"),
                    Some(id.to_string()),
                )?;
                return Err(TaskEnd::Abandoned {
                    error: format!("account {a} left the plan"),
                    retryable: true,
                });
            };
            let sid = id.clone();
            let outcome = self
                .enqueue_one(SessionStep::Enqueue(item.user.clone()), move |c| {
                    let (id, item) = (sid.clone(), item.clone());
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
                    self.ctx.record(Record::ItemOutcome {
                        restore: None,
                        session: self.key.clone(),
                        account: Some(a.clone()),
                        package: None,
                        result: ItemResult::Failed,
                        message: Some(format!("WHM refused to enqueue it: {reason}")),
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
        self.ctx.emit(Event::StepSucceeded {
            step: step.to_string(),
        });
        Ok(())
    }

    /// One `enqueue_transfer_item`, repeated into the same session after
    /// transient failures. `Ok(Ok(outcome))`: in the session;
    /// `Ok(Err(reason))`: WHM refused it for good.
    async fn enqueue_one<F, Fut>(
        &mut self,
        step: SessionStep,
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
                Err(CallError::Stopped { message, .. }) => return Err(Halt::Auth(message).into()),
                Err(CallError::Failed(e)) if transient(&e) => {
                    self.step_failed(step.clone(), &e.to_string(), attempt < attempts, attempt)?;
                    if attempt >= attempts {
                        // The session stays un-started; the next apply
                        // repeats the enqueue into it.
                        return Err(
                            Halt::Unreachable(format!("{e} (after {attempt} attempts)")).into()
                        );
                    }
                    self.backoff(attempt, &e).await;
                }
                Err(CallError::Failed(e)) => {
                    self.step_failed(step, &e.to_string(), false, attempt)?;
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
    pub(super) async fn start(&mut self) -> Result<(), TaskEnd> {
        let fully = self
            .ctx
            .session(&self.key)
            .is_some_and(|r| r.fully_enqueued());
        if !fully {
            return Err(TaskEnd::Detached {
                reason: format!("session {} is not fully enqueued", self.key),
            });
        }
        self.ctx.intent(Record::StartIntent {
            session: self.key.clone(),
        })?;
        self.feed(Input::EnqueuedAll);
        self.ctx.emit(Event::StepStarted {
            step: self.step(SessionStep::Start).to_string(),
        });
        self.call_start().await
    }

    /// Calls start and records a new pid. A permanent refusal is recorded
    /// and left to the state poll to explain.
    pub(super) async fn call_start(&mut self) -> Result<(), TaskEnd> {
        let id = self.session_id()?;
        let r = self
            .ctx
            .api
            .repeatable(self.on_retry(SessionStep::Start), |c| {
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
                self.feed(Input::Started { pid });
                self.start_refusals = 0;
                self.ctx.emit(Event::StepSucceeded {
                    step: self.step(SessionStep::Start).to_string(),
                });
                Ok(())
            }
            Err(CallError::Failed(e)) if !transient(&e) => {
                self.start_refusals += 1;
                self.step_failed(
                    SessionStep::Start,
                    &e.to_string(),
                    false,
                    self.start_refusals,
                )?;
                if self.start_refusals >= self.ctx.api.policy().attempts.max(2) {
                    return Err(TaskEnd::Detached {
                        reason: format!("WHM keeps refusing to start session {}: {e}", self.key),
                    });
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
