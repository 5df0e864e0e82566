//! Journal → [`RunState`]: a fold over the records, one at a time.
//!
//! The same [`RunState::apply`] runs when a journal is replayed on resume or
//! by `ferry status`, *and* live, for every record the executor appends
//! ([`super::Journal::record`]). So what a running `apply` believes is, by
//! construction, what a resumed one rebuilds from the file.
//!
//! Memory is proportional to the plan (accounts and session instances), not
//! to the journal: records are decoded one at a time and dropped.
//!
//! Rules the fold encodes (the executor relies on them):
//! * an account belongs to at most one *live* session instance at a time
//!   (`AccountState::session`); it joins at `session_create_intent`;
//! * `start_intent` turns the accounts of its session from `queued` into
//!   `in_progress`: from then on they may be transferred by that session;
//! * `transferred` is absorbing: no later record downgrades it;
//! * `session_abandoned` and `session_finished` free the accounts of that
//!   session that have no conclusion (back to `pending`). The executor writes
//!   `restore_unfinished` first for any whose RESTORE may have begun.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::file::{Entry, JournalError, Reader, Repaired};
use super::record::{
    ControlAction, EnqueueOutcome, FinishStatus, ItemResult, PlannedAccount, Record, Requester,
    Unfinished,
};

/// Where an account stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not in any live session.
    Pending,
    /// In a session instance that has not been started.
    Queued,
    /// In a started session, no final outcome yet.
    InProgress,
    /// A `success-item`/`warning-item` RESTORE line, or present on the target.
    Transferred,
    /// A `failed-item` line (`retryable`), or a restore that began, never
    /// finished and left nothing on the target (not retryable: an operator
    /// must look).
    Failed { retryable: bool },
    /// The RESTORE began but the session ended without a final line; waiting
    /// for `listaccts`.
    Unfinished,
}

impl Progress {
    /// design §7 account state.
    pub fn label(&self) -> &'static str {
        match self {
            Progress::Pending => "pending",
            Progress::Queued | Progress::InProgress | Progress::Unfinished => "in_progress",
            Progress::Transferred => "transferred",
            Progress::Failed { .. } => "failed",
        }
    }
}

/// One account of the plan (or of an earlier version of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub source: String,
    pub user: String,
    /// Entry hash from the latest `run_started` that listed the account.
    pub entry: String,
    /// The entry's fields from that `run_started` (empty in old journals).
    pub fields: BTreeMap<String, String>,
    /// Listed by the latest `run_started`. Accounts removed from the plan
    /// keep their history: re-adding one must not transfer it twice.
    pub in_plan: bool,
    pub progress: Progress,
    /// The session instance holding it now, or the last one that did.
    pub session: Option<String>,
    /// Session instances started with it.
    pub attempts: u32,
    /// `failed-item` outcomes since the latest `run_started` (the
    /// `item_retries` budget of this `apply`).
    pub failures: u32,
    /// The server's last failure text.
    pub message: Option<String>,
    pub warnings: bool,
    /// What its restore's summary listed (`item_notes`), for its last
    /// transfer.
    pub notes: Vec<crate::journal::record::Note>,
    /// Its transfer archives were removed from the target
    /// (`policy.cleanup`).
    pub archives_deleted: bool,
    /// How far its items are in the session holding it (`item_progress`),
    /// while it is in progress there.
    pub percent: Option<u8>,
    /// `listaccts` result, once checked.
    pub verified: Option<bool>,
    /// What its source reported of it (`session_analysed`), latest.
    pub reported: Option<crate::journal::record::ReportedAccount>,
    /// `account_checked`: how it differs from the plan on the target
    /// (empty: as planned), once checked.
    pub differences: Option<Vec<crate::journal::record::Difference>>,
    /// Transferred without this journal seeing its restore end: how it was
    /// found (`account_adopted`, or an outcome from a session recovered
    /// from the target's record).
    pub adopted: Option<String>,
    /// Why its restore had no final line, while `Unfinished`.
    pub unfinished: Unfinished,
    /// A `target_surveyed` saw it absent from the target (so an account
    /// found there later was put there after this journal began).
    pub seen_absent: bool,
    /// A `target_surveyed` taken before ferry had created any session for
    /// the plan saw it on the target: another account with the same name.
    pub there_before_plan: bool,
}

impl AccountState {
    fn new(source: &str, user: &str, entry: &str, in_plan: bool) -> AccountState {
        AccountState {
            source: source.to_string(),
            user: user.to_string(),
            entry: entry.to_string(),
            fields: BTreeMap::new(),
            in_plan,
            progress: Progress::Pending,
            session: None,
            attempts: 0,
            failures: 0,
            message: None,
            warnings: false,
            notes: Vec::new(),
            archives_deleted: false,
            percent: None,
            verified: None,
            differences: None,
            reported: None,
            adopted: None,
            unfinished: Unfinished::NoLog,
            seen_absent: false,
            there_before_plan: false,
        }
    }

    /// What `listaccts` says of an account whose outcome it decides: an
    /// unfinished restore, or a transfer the log reported.
    ///
    /// | progress                  | on the target | becomes                              |
    /// |---------------------------|---------------|--------------------------------------|
    /// | unfinished, session gone  | yes           | transferred (its restore is over)    |
    /// | unfinished, session gone  | no            | pending (moved again, no failure)    |
    /// | unfinished, log unread    | yes           | transferred (its session has ended)  |
    /// | unfinished, restore cut   | yes           | failed, for a person (maybe partial) |
    /// | unfinished (either)       | no            | failed, retried (nothing is there)   |
    /// | transferred               | no            | failed, for a person                 |
    fn verify_outcome(&mut self, present: bool) {
        match (&self.progress, present, self.unfinished) {
            (Progress::Unfinished, true, Unfinished::Gone) => {
                self.progress = Progress::Transferred;
                self.adopted = Some(
                    "present on the target after WHM deleted its session (the restore is over)"
                        .into(),
                );
            }
            // Nothing of it was restored by a session that is gone: free,
            // and not a failure of the account.
            (Progress::Unfinished, false, Unfinished::Gone) => self.progress = Progress::Pending,
            (Progress::Unfinished, true, Unfinished::NoLog) => {
                self.progress = Progress::Transferred;
                self.adopted = Some(
                    "present on the target after its session ended; the session's log could not \
                     be read"
                        .into(),
                );
            }
            (Progress::Unfinished, true, Unfinished::Cut) => {
                self.progress = Progress::Failed { retryable: false };
                self.message = Some(cut_restore_advice(&self.user_on_target()));
            }
            (Progress::Unfinished, false, _) => {
                self.progress = Progress::Failed { retryable: true };
                self.failures += 1;
                self.message = Some(
                    "its restore did not finish (its session ended first) and nothing of it is on \
                     the target; it is moved again"
                        .into(),
                );
            }
            (Progress::Transferred, false, _) => {
                self.progress = Progress::Failed { retryable: false };
                self.message = Some(
                    "the session log says transferred, but listaccts does not show it on the \
                     target; check the target by hand"
                        .into(),
                );
            }
            _ => {}
        }
    }

    /// The account's name on the target, for messages.
    fn user_on_target(&self) -> String {
        self.fields
            .get("localuser")
            .cloned()
            .unwrap_or_else(|| self.user.clone())
    }

    /// Whether the account's transfer may have begun (design §5: a changed
    /// plan entry is then refused). A cleanly failed account whose session
    /// cannot run it again does not count: its new entry is what the next
    /// attempt will use.
    pub fn began(&self) -> bool {
        match self.progress {
            Progress::Pending | Progress::Queued => false,
            Progress::Failed { retryable } => !retryable,
            Progress::InProgress | Progress::Transferred | Progress::Unfinished => true,
        }
    }
}

/// ferry's view of a session instance's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `session_create_intent` written; no id recorded.
    Creating,
    /// Id known; not started.
    Created,
    /// `start_intent` written: the session may be running.
    Starting,
    /// `start_transfer_session` answered.
    Started,
    /// `session_finished`: every account has its conclusion.
    Finished,
    /// Never started, never will be.
    Abandoned,
}

/// One session instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRec {
    pub key: String,
    pub batch: String,
    pub source: String,
    pub host: String,
    pub accounts: Vec<String>,
    pub packages: Vec<String>,
    pub replaces: Option<String>,
    pub replaced_by: Option<String>,
    pub id: Option<String>,
    pub phase: Phase,
    pub enqueue_intent: bool,
    pub enqueued_accounts: BTreeSet<String>,
    pub enqueued_packages: BTreeSet<String>,
    pub pid: Option<u32>,
    /// The last state the server reported (or the final one).
    pub server_state: Option<String>,
    pub package_results: BTreeMap<String, ItemResult>,
    pub stalls: u32,
    /// A pause or abort ferry sent to it, and the answer.
    pub control: Option<(ControlAction, String)>,
    /// Its entry in the target's record of the plan (`session_mirrored`).
    pub mirrored: Option<u64>,
    /// Read back from the target's record (`session_recovered`): this
    /// journal had lost it.
    pub recovered: bool,
    /// Its remote analysis is recorded (`session_analysed`).
    pub analysed: bool,
}

impl SessionRec {
    /// Started, not finished: the server may be running it.
    /// A session as its `session_planned` record describes it: not yet
    /// created, nothing enqueued, never seen on the server.
    pub fn planned(
        key: String,
        batch: String,
        source: String,
        host: String,
        accounts: Vec<String>,
        packages: Vec<String>,
        replaces: Option<String>,
    ) -> SessionRec {
        SessionRec {
            key,
            batch,
            source,
            host,
            accounts,
            packages,
            replaces,
            replaced_by: None,
            id: None,
            phase: Phase::Creating,
            enqueue_intent: false,
            enqueued_accounts: BTreeSet::new(),
            enqueued_packages: BTreeSet::new(),
            pid: None,
            server_state: None,
            package_results: BTreeMap::new(),
            stalls: 0,
            control: None,
            mirrored: None,
            recovered: false,
            analysed: false,
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Starting | Phase::Started)
    }
    /// Not finished and not abandoned.
    pub fn is_open(&self) -> bool {
        !matches!(self.phase, Phase::Finished | Phase::Abandoned)
    }
    /// Every item of the instance is confirmed enqueued.
    pub fn fully_enqueued(&self) -> bool {
        self.enqueue_intent
            && self
                .accounts
                .iter()
                .all(|a| self.enqueued_accounts.contains(a))
            && self
                .packages
                .iter()
                .all(|p| self.enqueued_packages.contains(p))
    }
}

/// The run as the journal tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunPhase {
    NotStarted,
    /// A `run_started` with nothing after it that ends the process's run:
    /// either an `apply` is running, or one was killed.
    Running,
    Paused {
        reason: String,
    },
    Aborted {
        reason: String,
    },
    Finished(FinishStatus),
}

/// Everything replay learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub plan: Option<String>,
    pub plan_hash: Option<String>,
    /// `run_started` records seen (apply processes).
    pub runs: u32,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    /// `ts` of the latest `run_started`.
    pub run_ts: Option<String>,
    pub tls_insecure: bool,
    pub simulate: bool,
    pub accounts: BTreeMap<String, AccountState>,
    sessions: Vec<SessionRec>,
    index: HashMap<String, usize>,
    pub phase: RunPhase,
    pub records: u64,
    /// The latest pause/abort request: action, who, when, why.
    pub request: Option<(ControlAction, Requester, String, String)>,
    /// The latest `step_failed` error.
    pub last_error: Option<String>,
    /// The highest entry of the target's record of the plan this journal
    /// knows (`session_mirrored`, `session_recovered`).
    pub mirror_count: u64,
    /// `target_surveyed` records seen.
    pub surveys: u32,
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            plan: None,
            plan_hash: None,
            runs: 0,
            first_ts: None,
            last_ts: None,
            run_ts: None,
            tls_insecure: false,
            simulate: false,
            accounts: BTreeMap::new(),
            sessions: Vec::new(),
            index: HashMap::new(),
            phase: RunPhase::NotStarted,
            records: 0,
            request: None,
            last_error: None,
            mirror_count: 0,
            surveys: 0,
        }
    }
}

impl RunState {
    /// Session instances in the order they were created.
    pub fn sessions(&self) -> &[SessionRec] {
        &self.sessions
    }

    pub fn session(&self, key: &str) -> Option<&SessionRec> {
        self.index.get(key).map(|&i| &self.sessions[i])
    }

    fn session_mut(&mut self, key: &str) -> Option<&mut SessionRec> {
        self.index.get(key).map(|&i| &mut self.sessions[i])
    }

    /// Instances of one batch, oldest first.
    pub fn instances_of<'a>(&'a self, batch: &'a str) -> impl Iterator<Item = &'a SessionRec> {
        self.sessions.iter().filter(move |s| s.batch == batch)
    }

    /// Accounts of the current plan.
    pub fn planned(&self) -> impl Iterator<Item = (&String, &AccountState)> {
        self.accounts.iter().filter(|(_, a)| a.in_plan)
    }

    /// Counts over the current plan: (transferred, failed, pending-or-in-progress).
    pub fn counts(&self) -> (usize, usize, usize) {
        let (mut t, mut f, mut p) = (0, 0, 0);
        for (_, a) in self.planned() {
            match a.progress {
                Progress::Transferred => t += 1,
                Progress::Failed { .. } => f += 1,
                _ => p += 1,
            }
        }
        (t, f, p)
    }

    /// Folds one record in.
    pub fn apply_entry(&mut self, e: &Entry) {
        if self.first_ts.is_none() {
            self.first_ts = Some(e.ts.clone());
        }
        if matches!(e.rec, Record::RunStarted { .. }) {
            self.run_ts = Some(e.ts.clone());
        }
        self.last_ts = Some(e.ts.clone());
        self.apply(&e.rec);
    }

    /// Folds one record in (see the module doc for the rules).
    pub fn apply(&mut self, rec: &Record) {
        self.records += 1;
        match rec {
            Record::RunStarted {
                plan,
                plan_hash,
                accounts,
                tls_insecure,
                simulate,
                ..
            } => self.on_run_started(plan, plan_hash, accounts, *tls_insecure, *simulate),
            Record::PlanChanged { .. } => {}
            Record::SessionCreateIntent {
                session,
                batch,
                source,
                host,
                accounts,
                packages,
                replaces,
            } => {
                let rec = SessionRec::planned(
                    session.clone(),
                    batch.clone(),
                    source.clone(),
                    host.clone(),
                    accounts.clone(),
                    packages.clone(),
                    replaces.clone(),
                );
                self.index.insert(session.clone(), self.sessions.len());
                self.sessions.push(rec);
                for a in accounts {
                    // Pending, or failed cleanly (a retry): the executor only
                    // puts such accounts into a new instance.
                    if let Some(acc) = self.accounts.get_mut(a)
                        && matches!(
                            acc.progress,
                            Progress::Pending | Progress::Failed { retryable: true }
                        )
                    {
                        acc.progress = Progress::Queued;
                        acc.session = Some(session.clone());
                        acc.percent = None;
                    }
                }
            }
            Record::SessionCreated { session, id } => {
                if let Some(s) = self.session_mut(session) {
                    s.id = Some(id.clone());
                    if s.phase == Phase::Creating {
                        s.phase = Phase::Created;
                    }
                }
            }
            Record::SessionAbandoned { session, .. } => {
                if let Some(s) = self.session_mut(session) {
                    s.phase = Phase::Abandoned;
                }
                self.free_accounts_of(session);
            }
            Record::EnqueueIntent { session, .. } => {
                if let Some(s) = self.session_mut(session) {
                    s.enqueue_intent = true;
                }
            }
            Record::Enqueued {
                session,
                package,
                account,
                outcome: EnqueueOutcome::Added | EnqueueOutcome::AlreadyQueued,
            } => {
                if let Some(s) = self.session_mut(session) {
                    if let Some(p) = package {
                        s.enqueued_packages.insert(p.clone());
                    }
                    if let Some(a) = account {
                        s.enqueued_accounts.insert(a.clone());
                    }
                }
            }
            Record::StartIntent { session } => {
                let Some(s) = self.session_mut(session) else {
                    return;
                };
                if matches!(s.phase, Phase::Creating | Phase::Created) {
                    s.phase = Phase::Starting;
                }
                let accounts = s.accounts.clone();
                for a in &accounts {
                    if let Some(acc) = self.accounts.get_mut(a)
                        && acc.session.as_deref() == Some(session.as_str())
                        && acc.progress == Progress::Queued
                    {
                        acc.progress = Progress::InProgress;
                        acc.attempts += 1;
                    }
                }
            }
            Record::SessionStarted { session, pid } => {
                if let Some(s) = self.session_mut(session) {
                    s.pid = Some(*pid);
                    if s.phase == Phase::Starting {
                        s.phase = Phase::Started;
                    }
                }
            }
            Record::SessionState { session, state } => {
                if let Some(s) = self.session_mut(session) {
                    s.server_state = Some(state.clone());
                }
            }
            Record::ItemOutcome {
                session,
                account,
                package,
                result,
                message,
                ..
            } => {
                if let Some(p) = package
                    && let Some(s) = self.session_mut(session)
                {
                    s.package_results.insert(p.clone(), *result);
                }
                let recovered = self
                    .session(session)
                    .filter(|s| s.recovered)
                    .map(|s| s.id.clone().unwrap_or_default());
                if let Some(a) = account
                    && let Some(acc) = self.accounts.get_mut(a)
                    && acc.progress != Progress::Transferred
                {
                    acc.session = Some(session.clone());
                    match result {
                        ItemResult::Succeeded | ItemResult::Warning => {
                            acc.progress = Progress::Transferred;
                            if let Some(id) = recovered {
                                acc.adopted = Some(format!(
                                    "restored by session {session} ({id}), which this journal had \
                                     lost; read back from the target's record of the plan"
                                ));
                            }
                            acc.warnings = *result == ItemResult::Warning;
                            acc.message = message.clone();
                            acc.notes.clear();
                        }
                        ItemResult::Failed => {
                            acc.progress = Progress::Failed { retryable: true };
                            acc.failures += 1;
                            acc.message = message.clone();
                        }
                    }
                }
            }
            Record::ItemProgress {
                session,
                account,
                percent,
            } => {
                if let Some(acc) = self.accounts.get_mut(account)
                    && acc.session.as_deref() == Some(session.as_str())
                    && acc.progress == Progress::InProgress
                {
                    acc.percent = Some((*percent).min(99));
                }
            }
            Record::ArchivesDeleted { account } => {
                if let Some(acc) = self.accounts.get_mut(account) {
                    acc.archives_deleted = true;
                }
            }
            Record::ItemNotes {
                session,
                account,
                notes,
            } => {
                if let Some(acc) = self.accounts.get_mut(account)
                    && acc.session.as_deref() == Some(session.as_str())
                {
                    acc.notes = notes.clone();
                }
            }
            Record::RestoreUnfinished {
                session,
                account,
                why,
            } => {
                if let Some(acc) = self.accounts.get_mut(account)
                    && acc.progress != Progress::Transferred
                {
                    acc.progress = Progress::Unfinished;
                    acc.unfinished = *why;
                    acc.session = Some(session.clone());
                }
            }
            Record::AccountVerified {
                account, present, ..
            } => {
                if let Some(acc) = self.accounts.get_mut(account) {
                    acc.verified = Some(*present);
                    acc.verify_outcome(*present);
                }
            }
            Record::SessionAnalysed { session, accounts } => {
                if let Some(s) = self.session_mut(session) {
                    s.analysed = true;
                }
                for r in accounts {
                    if let Some(acc) = self.accounts.get_mut(&r.account) {
                        acc.reported = Some(r.clone());
                    }
                }
            }
            Record::AccountChecked {
                account,
                differences,
                ..
            } => {
                if let Some(acc) = self.accounts.get_mut(account) {
                    acc.differences = Some(differences.clone());
                }
            }
            Record::SessionStalled { session, .. } => {
                if let Some(s) = self.session_mut(session) {
                    s.stalls += 1;
                }
            }
            Record::SessionControl {
                session,
                action,
                result,
            } => {
                if let Some(s) = self.session_mut(session) {
                    s.control = Some((*action, result.clone()));
                }
            }
            Record::SessionFinished { session, state } => {
                if let Some(s) = self.session_mut(session) {
                    s.phase = Phase::Finished;
                    s.server_state = Some(state.clone());
                }
                self.free_accounts_of(session);
            }
            Record::SessionReplaced { old, new } => {
                if let Some(s) = self.session_mut(old) {
                    s.replaced_by = Some(new.clone());
                }
            }
            Record::SessionMirrored { session, index } => {
                if let Some(s) = self.session_mut(session) {
                    s.mirrored = Some(*index);
                }
                self.mirror_count = self.mirror_count.max(*index);
            }
            rec @ Record::SessionRecovered { .. } => self.on_recovered(rec),
            Record::TargetSurveyed {
                present,
                before_any_session,
            } => {
                self.surveys += 1;
                let present: BTreeSet<&String> = present.iter().collect();
                for (name, acc) in self.accounts.iter_mut() {
                    if !acc.in_plan {
                        continue;
                    }
                    if !present.contains(name) {
                        acc.seen_absent = true;
                    } else if *before_any_session && !acc.seen_absent {
                        acc.there_before_plan = true;
                    }
                }
            }
            Record::AccountAdopted { account, how, .. } => {
                if let Some(acc) = self.accounts.get_mut(account) {
                    acc.progress = Progress::Transferred;
                    acc.adopted = Some(how.clone());
                    acc.verified = Some(true);
                    acc.message = None;
                }
            }
            Record::AccountConflict { account, reason } => {
                if let Some(acc) = self.accounts.get_mut(account)
                    && acc.progress != Progress::Transferred
                {
                    acc.progress = Progress::Failed { retryable: false };
                    acc.message = Some(reason.clone());
                }
            }
            Record::AccountReleased { account, .. } => {
                if let Some(acc) = self.accounts.get_mut(account)
                    && acc.progress == (Progress::Failed { retryable: false })
                {
                    acc.progress = Progress::Pending;
                    acc.verified = None;
                }
            }

            Record::StepFailed { error, .. } => self.last_error = Some(error.clone()),
            Record::PauseRequested { by, at, reason } => {
                self.request = Some((ControlAction::Pause, by.clone(), at.clone(), reason.clone()))
            }
            Record::AbortRequested { by, at, reason } => {
                self.request = Some((ControlAction::Abort, by.clone(), at.clone(), reason.clone()))
            }
            Record::RunPaused { reason } => {
                self.phase = RunPhase::Paused {
                    reason: reason.clone(),
                }
            }
            Record::RunAborted { reason } => {
                self.phase = RunPhase::Aborted {
                    reason: reason.clone(),
                }
            }
            Record::RunFinished { status, .. } => self.phase = RunPhase::Finished(*status),
        }
    }

    fn on_run_started(
        &mut self,
        plan: &str,
        hash: &str,
        accounts: &BTreeMap<String, PlannedAccount>,
        tls_insecure: bool,
        simulate: bool,
    ) {
        self.runs += 1;
        self.plan = Some(plan.to_string());
        self.plan_hash = Some(hash.to_string());
        self.tls_insecure = tls_insecure;
        self.simulate = simulate;
        self.phase = RunPhase::Running;
        for acc in self.accounts.values_mut() {
            acc.in_plan = false;
            acc.failures = 0;
        }
        for (name, p) in accounts {
            let acc = self
                .accounts
                .entry(name.clone())
                .or_insert_with(|| AccountState::new(&p.source, &p.user, &p.entry, true));
            acc.in_plan = true;
            acc.source = p.source.clone();
            acc.user = p.user.clone();
            acc.entry = p.entry.clone();
            acc.fields = p.fields.clone();
        }
    }

    /// A session read back from the target's record (`session_recovered`).
    /// A journal that knows the key without an id (created, then the copy
    /// was taken) learns the id; an unknown key becomes a new instance.
    /// Either way the session may have been started: its accounts are in
    /// progress in it — a later session claims an account from an earlier
    /// one (the target's record lists sessions in creation order, and a
    /// journal behind the target knows only older ones) — except those
    /// already transferred.
    fn on_recovered(&mut self, rec: &Record) {
        let Record::SessionRecovered {
            session: key,
            batch,
            source,
            host,
            id,
            accounts,
            packages,
            replaces,
            index,
        } = rec
        else {
            return;
        };
        self.mirror_count = self.mirror_count.max(*index);
        match self.index.get(key) {
            Some(&i) => {
                let s = &mut self.sessions[i];
                s.id = Some(id.clone());
                s.mirrored = Some(*index);
                s.recovered = true;
                s.enqueue_intent = true;
                if matches!(s.phase, Phase::Creating | Phase::Created | Phase::Abandoned) {
                    s.phase = Phase::Starting;
                }
            }
            None => {
                self.index.insert(key.clone(), self.sessions.len());
                self.sessions.push(SessionRec {
                    id: Some(id.clone()),
                    phase: Phase::Starting,
                    enqueue_intent: true,
                    mirrored: Some(*index),
                    recovered: true,
                    ..SessionRec::planned(
                        key.clone(),
                        batch.clone(),
                        source.clone(),
                        host.clone(),
                        accounts.iter().map(|a| a.account.clone()).collect(),
                        packages.to_vec(),
                        replaces.clone(),
                    )
                });
                if let Some(old) = replaces
                    && let Some(&j) = self.index.get(old)
                {
                    self.sessions[j].replaced_by = Some(key.clone());
                }
            }
        }
        for a in accounts {
            let acc = self
                .accounts
                .entry(a.account.clone())
                .or_insert_with(|| AccountState::new(source, &a.user, &a.entry, false));
            if acc.progress != Progress::Transferred {
                acc.progress = Progress::InProgress;
                acc.session = Some(key.clone());
                acc.percent = None;
                acc.attempts += 1;
            }
        }
    }

    /// Accounts held by `session` without a conclusion go back to pending.
    fn free_accounts_of(&mut self, session: &str) {
        let Some(&i) = self.index.get(session) else {
            return;
        };
        for a in &self.sessions[i].accounts {
            if let Some(acc) = self.accounts.get_mut(a)
                && acc.session.as_deref() == Some(session)
                && matches!(acc.progress, Progress::Queued | Progress::InProgress)
            {
                acc.progress = Progress::Pending;
            }
        }
    }
}

/// What an operator does about an account whose restore was cut while it
/// is on the target: check it, then adopt it or remove it and move it again.
pub fn cut_restore_advice(user: &str) -> String {
    format!(
        "its restore was cut before it finished (its session ended with no final line for it) \
         and the account is on the target, possibly incomplete. Check it (`whmapi1 \
         accountsummary user={user}`): if it is complete, `ferry apply --adopt` records it as \
         transferred; if not, remove it from the target (`whmapi1 removeacct user={user}`) and \
         `ferry apply` moves it again"
    )
}

/// Replays a journal read-only (`ferry status`, `ferry plan`): a torn last
/// line is skipped and reported, never repaired (that is `apply`'s job,
/// under the lock). A missing journal gives an empty state.
pub fn replay(path: &Path) -> Result<(RunState, Option<Repaired>), JournalError> {
    let mut state = RunState::default();
    let Some(mut reader) = Reader::open(path)? else {
        return Ok((state, None));
    };
    while let Some(entry) = reader.next()? {
        state.apply_entry(&entry);
    }
    Ok((state, reader.torn().cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::journal::canned::{self, Canned};

    fn run_started(names: &[&str]) -> Record {
        let accounts: Vec<(&str, &str)> = names.iter().map(|n| ("old1", *n)).collect();
        canned::run_started(canned::planned(&accounts))
    }

    /// The one record a [`Canned`] journal adds for `f`.
    fn one(f: impl FnOnce(Canned) -> Canned) -> Record {
        f(Canned::default()).records()[0].clone()
    }

    fn intent(key: &str, accounts: &[&str]) -> Record {
        one(|c| c.session(key, accounts))
    }

    fn outcome(session: &str, account: &str, result: ItemResult) -> Record {
        one(|c| c.outcome(session, account, result))
    }

    #[test]
    fn a_session_life_moves_accounts_through_their_states() {
        let mut st = RunState::default();
        st.apply(&run_started(&["a", "b"]));
        st.apply(&intent("old1/s1", &["a", "b"]));
        assert_eq!(st.accounts["a"].progress, Progress::Queued);
        st.apply(&Record::SessionCreated {
            session: "old1/s1".into(),
            id: "X1".into(),
        });
        st.apply(&Record::StartIntent {
            session: "old1/s1".into(),
        });
        assert_eq!(st.accounts["a"].progress, Progress::InProgress);
        assert_eq!(st.accounts["a"].attempts, 1);
        assert!(st.session("old1/s1").unwrap().is_live());
        st.apply(&outcome("old1/s1", "a", ItemResult::Succeeded));
        st.apply(&outcome("old1/s1", "b", ItemResult::Failed));
        // transferred is absorbing
        st.apply(&outcome("old1/s1", "a", ItemResult::Failed));
        assert_eq!(st.accounts["a"].progress, Progress::Transferred);
        assert_eq!(
            st.accounts["b"].progress,
            Progress::Failed { retryable: true }
        );
        assert_eq!(st.accounts["b"].failures, 1);
        st.apply(&Record::SessionFinished {
            session: "old1/s1".into(),
            state: "COMPLETED".into(),
        });
        assert_eq!(st.counts(), (1, 1, 0));
        // A new apply resets the item_retries budget but not the outcome.
        st.apply(&run_started(&["a", "b"]));
        assert_eq!(st.accounts["b"].failures, 0);
        assert!(!st.accounts["b"].began());
        assert!(st.accounts["a"].began());
        // A retry instance takes the failed account (not the transferred one).
        st.apply(&intent("old1/s1#2", &["a", "b"]));
        assert_eq!(st.accounts["b"].progress, Progress::Queued);
        assert_eq!(st.accounts["b"].session.as_deref(), Some("old1/s1#2"));
        assert_eq!(st.accounts["a"].progress, Progress::Transferred);
        assert_eq!(st.accounts["a"].session.as_deref(), Some("old1/s1"));
    }

    #[test]
    fn abandoned_and_finished_sessions_free_unconcluded_accounts() {
        let mut st = RunState::default();
        st.apply(&run_started(&["a", "b", "c"]));
        st.apply(&intent("old1/s1", &["a"]));
        st.apply(&Record::SessionAbandoned {
            session: "old1/s1".into(),
            id: None,
            reason: "lost".into(),
        });
        assert_eq!(st.accounts["a"].progress, Progress::Pending);
        st.apply(&intent("old1/s1#2", &["a", "b", "c"]));
        st.apply(&Record::StartIntent {
            session: "old1/s1#2".into(),
        });
        st.apply(&Record::RestoreUnfinished {
            session: "old1/s1#2".into(),
            account: "b".into(),
            why: Unfinished::Cut,
        });
        st.apply(&Record::SessionFinished {
            session: "old1/s1#2".into(),
            state: "FAILED".into(),
        });
        assert_eq!(st.accounts["a"].progress, Progress::Pending);
        assert_eq!(st.accounts["b"].progress, Progress::Unfinished);
        st.apply(&Record::AccountVerified {
            account: "b".into(),
            session: "old1/s1#2".into(),
            present: false,
        });
        // A cut restore with nothing of it on the target is moved again.
        assert_eq!(
            st.accounts["b"].progress,
            Progress::Failed { retryable: true }
        );
        assert!(!st.accounts["b"].began());
    }

    /// The verification table of `AccountState::verify_outcome`, row by row.
    #[test]
    fn what_the_target_says_of_an_unfinished_restore() {
        let run = |why: Unfinished, present: bool| {
            let mut st = RunState::default();
            st.apply(&run_started(&["a"]));
            st.apply(&intent("old1/s1", &["a"]));
            st.apply(&Record::StartIntent {
                session: "old1/s1".into(),
            });
            st.apply(&Record::RestoreUnfinished {
                session: "old1/s1".into(),
                account: "a".into(),
                why,
            });
            st.apply(&Record::AccountVerified {
                account: "a".into(),
                session: "old1/s1".into(),
                present,
            });
            st.accounts["a"].clone()
        };
        let a = run(Unfinished::NoLog, true);
        assert_eq!(a.progress, Progress::Transferred);
        assert!(a.adopted.is_some());
        let a = run(Unfinished::Cut, true);
        assert_eq!(a.progress, Progress::Failed { retryable: false });
        assert!(a.message.unwrap().contains("--adopt"));
        for why in [Unfinished::Cut, Unfinished::NoLog] {
            assert_eq!(
                run(why, false).progress,
                Progress::Failed { retryable: true }
            );
        }
    }

    #[test]
    fn removed_accounts_keep_their_history() {
        let mut st = RunState::default();
        st.apply(&run_started(&["a", "b"]));
        st.apply(&intent("old1/s1", &["a"]));
        st.apply(&Record::StartIntent {
            session: "old1/s1".into(),
        });
        st.apply(&run_started(&["b"]));
        assert!(!st.accounts["a"].in_plan);
        assert_eq!(st.planned().count(), 1);
        st.apply(&run_started(&["a", "b"]));
        assert_eq!(st.accounts["a"].progress, Progress::InProgress);
    }
}
