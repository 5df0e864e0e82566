//! The journal's record types: one variant per line kind.
//!
//! A record says one of three things, and its name tells which:
//!
//! * **intent** — what the executor is about to ask the server
//!   (`session_create_intent`, `enqueue_intent`, `start_intent`). An intent
//!   is made durable (fsync) *before* its request leaves, so after a crash
//!   the journal always knows every request that may have taken effect.
//! * **answer** — what the server said (`session_created`, `enqueued`,
//!   `session_started`, `session_state`, `item_outcome`, `account_verified`).
//! * **conclusion** — what the executor decided from answers and rules
//!   (`session_abandoned`, `restore_unfinished`, `session_finished`,
//!   `session_replaced`, `run_paused`, `run_finished`, …).
//!
//! Serialised with `#[serde(tag = "type")]`, snake_case, so
//! `jq 'select(.rec.type == "item_outcome")'` works on a journal. No record
//! has a field that could hold a secret: records carry names, ids, states and
//! the server's messages only.
//!
//! Names used throughout:
//! * `session` — the *session key* ferry gives a session instance: the
//!   compiled plan's batch key (`old1/s2`) for the first instance of a batch,
//!   `old1/s2#2`, `old1/s2#3`… for later ones (a retry, a replacement).
//! * `account` — the account's username on the target (the plan's key).
//! * `id` — WHM's transfer session id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::client::masterlog::{Note, NoteKind};

/// An account's RESTORE as `master.log` dates it (epoch seconds of the
/// server's clock: `start-item` to the final line) and its size there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreSpan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// One account as its source's analysis reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedAccount {
    /// The account's target username (the plan's key).
    pub account: String,
    /// `bytesused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Its MySQL databases on the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
}

/// One way a transferred account differs from the plan on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What differs, in words (`its owner on the target is root, …`).
    pub what: String,
    /// What to do about it.
    pub fix: String,
}

/// Who asked for a pause or an abort: `user@host pid N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl std::fmt::Display for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{} pid {}", self.user, self.host, self.pid)
    }
}

/// An account as the plan had it when a run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAccount {
    /// The source's name in the plan.
    pub source: String,
    /// The username on the source (WHM's item key).
    pub user: String,
    /// Hex SHA-256 of the account's effective plan entry (what would be sent
    /// to WHM). Compared on resume: a changed entry of an account whose
    /// transfer began is refused (design §5).
    pub entry: String,
    /// What `entry` hashes, field by field (`host`, `localuser`, `package`,
    /// `owner`, `domain`, `options.<key>`), so that a refused change can be
    /// named precisely. Empty in journals written before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// `enqueue_transfer_item`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnqueueOutcome {
    /// The item was added now.
    Added,
    /// WHM refused a duplicate key: an earlier (ambiguous) call took effect.
    AlreadyQueued,
}

/// The final outcome of one item, from its RESTORE line in `master.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    /// `success-item`.
    Succeeded,
    /// `warning-item`: transferred, with warnings.
    Warning,
    /// `failed-item`.
    Failed,
}

/// Why an account's restore has no final line (`restore_unfinished`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unfinished {
    /// Its RESTORE began and the session ended before it finished.
    Cut,
    /// The session's log could not be read after it ended.
    #[default]
    NoLog,
    /// The session no longer exists on the target (WHM deleted it): nothing
    /// runs in it, and nothing of an account absent from the target was
    /// restored by it.
    Gone,
}

/// An account of a mirrored session (`session_recovered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredAccount {
    /// Target username.
    pub account: String,
    /// User on the source (WHM's item key).
    pub user: String,
    /// Entry hash it was planned with.
    pub entry: String,
}

/// Pause or abort, for control requests and the calls that carry them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    Pause,
    Abort,
}

/// How a run ended, as recorded (mirrors `events::RunStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishStatus {
    Succeeded,
    Partial,
    Failed,
    Interrupted,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// An `apply` process began (or resumed) the run. Written once per
    /// process, after the plan was compared with the journal.
    RunStarted {
        /// The plan file as given on the command line.
        plan: String,
        /// The plan's identity (its `name:`, or its file stem): a journal
        /// belongs to one plan and refuses any other. Absent in journals
        /// written before plans had identities (the stem of `plan` then).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan_name: Option<String>,
        /// Hex SHA-256 of the plan file's bytes.
        plan_hash: String,
        /// Every account of the plan, keyed by target username.
        accounts: BTreeMap<String, PlannedAccount>,
        ferry_version: String,
        pid: u32,
        host: String,
        /// TLS verification was disabled for the target.
        tls_insecure: bool,
        /// `apply --simulate`: the target is an in-process simulator.
        simulate: bool,
        /// `apply --restart` after an abort.
        restart: bool,
    },
    /// The plan changed since the previous run started (design §5).
    PlanChanged {
        /// New accounts, to be scheduled.
        added: Vec<String>,
        /// Accounts no longer in the plan that never started: dropped.
        dropped: Vec<String>,
        /// Accounts whose entry changed before their transfer began.
        changed: Vec<String>,
    },

    // ---- a session's life -------------------------------------------------
    /// About to call `create_remote_root_transfer_session`. Durable first.
    SessionCreateIntent {
        session: String,
        /// The compiled plan's batch this instance belongs to.
        batch: String,
        source: String,
        host: String,
        /// Accounts (target usernames) this instance will carry.
        accounts: Vec<String>,
        packages: Vec<String>,
        /// The earlier instance of the batch this one follows, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
    },
    /// WHM returned the session id. Written the moment it is known.
    SessionCreated { session: String, id: String },
    /// The instance will never be started: its id is unknown (a create whose
    /// answer was lost, or a kill before `session_created`), or the plan
    /// changed under it before it started. Its accounts are free again.
    SessionAbandoned {
        session: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        reason: String,
    },
    /// About to enqueue these items into the session. Durable first: from
    /// here on the items *may* be in the session.
    EnqueueIntent {
        session: String,
        packages: Vec<String>,
        accounts: Vec<String>,
    },
    /// `enqueue_transfer_item` confirmed one item.
    Enqueued {
        session: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        package: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        outcome: EnqueueOutcome,
    },
    /// About to call `start_transfer_session`. Durable first: from here on
    /// the session may run, and its accounts may be transferred by it.
    StartIntent { session: String },
    /// `start_transfer_session` answered (a start, a resume or a restart).
    SessionStarted { session: String, pid: u32 },
    /// A new state seen by `get_transfer_session_state`.
    SessionState { session: String, state: String },
    /// A final RESTORE line for an item, from `master.log`.
    ItemOutcome {
        session: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        package: Option<String>,
        result: ItemResult,
        /// The server's failure text (failed) or message (warning).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// A failed account's `master.log` lines (compact JSON), for the
        /// report. Scrubbed like every free text.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log: Vec<String>,
        /// The account's RESTORE by the server's clock, and its size as the
        /// server counts it, from `master.log` (the report's restore-slot
        /// view and data moved). Absent in journals before it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restore: Option<RestoreSpan>,
    },
    /// The session ended but the account's RESTORE may have begun without a
    /// final line: only the target can tell (`account_verified` follows).
    RestoreUnfinished {
        session: String,
        account: String,
        /// Why there is no final line: `cut` (its RESTORE began and the
        /// session ended before it finished — present on the target means
        /// possibly incomplete: a person checks), `no_log` (the session's
        /// log could not be read: present means the restore is over) or
        /// `gone` (WHM deleted the session: absent means nothing of it was
        /// restored). Journals before this field: `no_log`.
        #[serde(default)]
        why: Unfinished,
    },
    /// `listaccts` on the target, for an account ferry believes transferred
    /// or whose restore is unfinished.
    AccountVerified {
        account: String,
        session: String,
        present: bool,
    },
    /// What the source reported of the session's accounts, from the
    /// session's own remote analysis taken before anything was enqueued
    /// (`policy.verify: basic`): what verification compares disk use,
    /// databases and the main domain with. Read-only; at most once per
    /// session instance.
    SessionAnalysed {
        session: String,
        accounts: Vec<ReportedAccount>,
    },
    /// `policy.verify: basic`: a transferred account, present on the
    /// target, compared with the plan (`exec::verdict`): each difference
    /// with its fix; none means it passed. Never a reason to move it again.
    AccountChecked {
        account: String,
        session: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        differences: Vec<Difference>,
    },
    /// The session made no progress for `policy.stall_timeout`.
    SessionStalled {
        session: String,
        idle_secs: u64,
        /// What ferry does about it: `restart` (a start, safe both ways),
        /// `abort_and_replace` (stuck with no restore running in it, or the
        /// `continue` policy), `pause` / `abort` (the policy), `detach`
        /// (stuck while pausing or aborting).
        action: String,
    },
    /// ferry asked the server to pause or abort the session.
    SessionControl {
        session: String,
        action: ControlAction,
        /// `ok`, or why the call was not made / was refused.
        result: String,
    },
    /// The session reached a terminal state (or was given up) and every one
    /// of its accounts has a conclusion: an `item_outcome`, a
    /// `restore_unfinished`, or — for those whose RESTORE never began —
    /// none, which frees them for a later session.
    SessionFinished { session: String, state: String },
    /// `new` carries on the unfinished accounts of `old` (which ended FAILED
    /// or ABORTED, or was abandoned).
    SessionReplaced { old: String, new: String },
    /// What an account's restore summary listed (warnings, skipped,
    /// dangerous, altered items), right after its `item_outcome`; at most
    /// `MAX_NOTES`. The server's words, scrubbed like every free text.
    ItemNotes {
        session: String,
        account: String,
        notes: Vec<Note>,
    },
    /// How far the account's items are (`exec::progress`): half for its
    /// TRANSFER, half for its RESTORE, from their item logs' `percentage`
    /// lines. Recorded as it rises, for the bar and `ferry status`; an
    /// outcome supersedes it.
    ItemProgress {
        session: String,
        account: String,
        percent: u8,
    },
    /// `policy.cleanup.archives: delete`: the account's transfer archives
    /// were removed from the target (after it was found there).
    ArchivesDeleted { account: String },
    /// The session is in the target's record of this plan (its name/value
    /// store, `exec::mirror`) as entry `index`: a journal that loses track
    /// of it can recover it from there. Written once the `nvset` is
    /// confirmed, before anything is enqueued into the session.
    SessionMirrored { session: String, index: u64 },
    /// A session this journal did not know (a journal restored from an
    /// older copy, or lost), read back from the target's record. It may
    /// have been started: its accounts are in progress in it until the
    /// server says otherwise, and it is reconciled like any other.
    SessionRecovered {
        session: String,
        batch: String,
        source: String,
        host: String,
        id: String,
        /// The accounts it carries: target username, user on the source,
        /// and the entry hash they were enqueued with.
        accounts: Vec<MirroredAccount>,
        packages: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
        index: u64,
    },

    // ---- what the target already has --------------------------------------
    /// `listaccts` at the start of an apply: which of the plan's accounts
    /// not known transferred were on the target. Every other one was absent.
    TargetSurveyed {
        present: Vec<String>,
        /// The target's record of the plan's sessions was readable and empty
        /// and the journal knew no session: ferry had never created one for
        /// this plan there, so an account present now was there before the
        /// plan — another account with the same name.
        #[serde(default)]
        before_any_session: bool,
    },
    /// The account is on the target and its restore is over, but this
    /// journal did not see it transferred: recorded as transferred, with how
    /// it was found. Never enqueued.
    AccountAdopted {
        account: String,
        how: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    /// The account cannot be moved as planned without a person: on the
    /// target but not matching the plan, another restore of it running, a
    /// restore cut with the account left on the target. Never transferred
    /// automatically (a failed account for the policy and the exit code).
    AccountConflict { account: String, reason: String },
    /// An account held back for a person was found absent from the target
    /// at the start of an apply (the operator removed it, or it never
    /// arrived): nothing of it is on the target and no session holds it, so
    /// it is moved again.
    AccountReleased { account: String, reason: String },

    // ---- the run ----------------------------------------------------------
    /// A step failed; `retryable` tells whether ferry tries again.
    StepFailed {
        step: String,
        error: String,
        retryable: bool,
        attempt: u32,
    },
    /// Someone asked for a pause (`ferry pause`, or the `pause` policy).
    PauseRequested {
        by: Requester,
        at: String,
        reason: String,
    },
    /// Someone asked for an abort (`ferry abort`, or the `abort` policy).
    AbortRequested {
        by: Requester,
        at: String,
        reason: String,
    },
    /// The run stopped scheduling; its live sessions are paused.
    RunPaused { reason: String },
    /// The run's sessions were aborted; resuming needs `--restart`.
    RunAborted { reason: String },
    /// An `apply` process ended (not paused, not aborted).
    RunFinished {
        status: FinishStatus,
        transferred: usize,
        failed: usize,
        pending: usize,
    },
}

impl Record {
    /// An account's `item_outcome` with nothing but its result and message
    /// (what tests and canned journals write).
    pub fn account_outcome(
        session: &str,
        account: &str,
        result: ItemResult,
        message: Option<&str>,
    ) -> Record {
        Record::ItemOutcome {
            session: session.into(),
            account: Some(account.into()),
            package: None,
            result,
            message: message.map(String::from),
            log: Vec::new(),
            restore: None,
        }
    }

    /// The record's `type` tag, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::RunStarted { .. } => "run_started",
            Record::PlanChanged { .. } => "plan_changed",
            Record::SessionCreateIntent { .. } => "session_create_intent",
            Record::SessionCreated { .. } => "session_created",
            Record::SessionAbandoned { .. } => "session_abandoned",
            Record::EnqueueIntent { .. } => "enqueue_intent",
            Record::Enqueued { .. } => "enqueued",
            Record::StartIntent { .. } => "start_intent",
            Record::SessionStarted { .. } => "session_started",
            Record::SessionState { .. } => "session_state",
            Record::ItemOutcome { .. } => "item_outcome",
            Record::ItemNotes { .. } => "item_notes",
            Record::ItemProgress { .. } => "item_progress",
            Record::ArchivesDeleted { .. } => "archives_deleted",
            Record::RestoreUnfinished { .. } => "restore_unfinished",
            Record::AccountVerified { .. } => "account_verified",
            Record::AccountChecked { .. } => "account_checked",
            Record::SessionAnalysed { .. } => "session_analysed",
            Record::SessionStalled { .. } => "session_stalled",
            Record::SessionControl { .. } => "session_control",
            Record::SessionFinished { .. } => "session_finished",
            Record::SessionReplaced { .. } => "session_replaced",
            Record::SessionMirrored { .. } => "session_mirrored",
            Record::SessionRecovered { .. } => "session_recovered",
            Record::TargetSurveyed { .. } => "target_surveyed",
            Record::AccountAdopted { .. } => "account_adopted",
            Record::AccountConflict { .. } => "account_conflict",
            Record::AccountReleased { .. } => "account_released",
            Record::StepFailed { .. } => "step_failed",
            Record::PauseRequested { .. } => "pause_requested",
            Record::AbortRequested { .. } => "abort_requested",
            Record::RunPaused { .. } => "run_paused",
            Record::RunAborted { .. } => "run_aborted",
            Record::RunFinished { .. } => "run_finished",
        }
    }

    /// The record's free-text fields: what the server said (`error`,
    /// `message`) and why ferry did something (`reason`, `result`). The
    /// journal writer scrubs these of any registered secret (a server may
    /// echo a parameter in its reason); names, ids and states are never
    /// touched, so replay is unaffected.
    pub fn free_text_mut(&mut self) -> Vec<&mut String> {
        match self {
            Record::SessionAbandoned { reason, .. }
            | Record::PauseRequested { reason, .. }
            | Record::AbortRequested { reason, .. }
            | Record::RunPaused { reason }
            | Record::RunAborted { reason } => vec![reason],
            Record::ItemOutcome { message, log, .. } => {
                message.iter_mut().chain(log.iter_mut()).collect()
            }
            Record::ItemNotes { notes, .. } => notes.iter_mut().map(|n| &mut n.text).collect(),
            Record::AccountChecked { differences, .. } => differences
                .iter_mut()
                .flat_map(|d| [&mut d.what, &mut d.fix])
                .collect(),
            Record::SessionControl { result, .. } => vec![result],
            Record::AccountAdopted { how, .. } => vec![how],
            Record::AccountConflict { reason, .. } | Record::AccountReleased { reason, .. } => {
                vec![reason]
            }
            Record::StepFailed { error, .. } => vec![error],
            _ => vec![],
        }
    }

    /// Whether the record announces a request that is about to be sent and
    /// so must be durable before it leaves (design §5).
    pub fn is_intent(&self) -> bool {
        matches!(
            self,
            Record::SessionCreateIntent { .. }
                | Record::EnqueueIntent { .. }
                | Record::StartIntent { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_tagged_by_type_for_jq() {
        let r = Record::Enqueued {
            session: "old1/s1".into(),
            package: None,
            account: Some("shop2".into()),
            outcome: EnqueueOutcome::AlreadyQueued,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"type":"enqueued","session":"old1/s1","account":"shop2","outcome":"already_queued"}"#
        );
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.kind(), "enqueued");
        assert!(!back.is_intent());
        assert!(
            Record::StartIntent {
                session: "x".into()
            }
            .is_intent()
        );
    }
}
