//! The executor: runs a compiled plan against WHM's transfer-session API,
//! journaling every step, and resumes from the journal after any kill.
//!
//! Owns: running the compiled session DAG within the plan's limits, the
//! per-session state machine and its driver, per-account outcomes from
//! `master.log`, resume and plan-change rules, the target's record of the
//! plan's sessions and what the target already has, the gate to the server
//! with its auth stop, and control requests from `ferry pause`/`ferry
//! abort`. It is the only writer of the journal. Does not own: how a plan is
//! compiled into sessions (`graph`), the HTTP calls and what is retried
//! (`client`), or printing (it emits [`Event`](crate::events::Event)s
//! through a [`Reporter`]; `report` words them).
//!
//! ## Files
//!
//! | file | owns |
//! |---|---|
//! | [`plan`] | [`RunPlan`]: the compiled plan plus logins and policy — the one source of what runs |
//! | [`ctx`] | what tasks share: the journal, the gate, the target's record and accounts; `verify`, `analysis_of` |
//! | `prepare` | before the first session: mirror read, plan compare, survey, `--adopt`, open sessions |
//! | `schedule` | the one eligibility rule; creating instances within the limits, critical path first |
//! | `policy` | the one reaction to `on_error` |
//! | `run` | the loop, task ends, control requests, the end of the run |
//! | [`session`] | the session state machine (pure, one table) |
//! | `driver` | one task per session instance; its phases `setup`, `monitor`, `conclude` |
//! | [`outcome`] | `master.log` → per-account conclusions |
//! | `pace` | when a running session's `master.log` is worth reading |
//! | `progress` | which running items' logs to read, and an account's percent from them |
//! | `reconcile` | resume: plan compare, recovered sessions, open sessions |
//! | [`mirror`] | the target's record of the plan's sessions (`nvset`/`nvget`) |
//! | `target` | the survey and adoption rules |
//! | [`api`] | the gate every WHM call passes |
//! | [`control`] | `ferry pause`/`abort` requests to a running apply |
//! | [`verdict`] | what a transferred account must look like on the target, and how it differs |
//!
//! ## Exactly once, in one place
//!
//! design §5 and docs/whm.md, as enforced here (each rule is repeated where
//! it is enforced, with its crash window):
//!
//! 1. **create** — intent fsync'd → call → id recorded at once. A lost
//!    answer or a kill before the id is recorded leaves at most an orphan
//!    PENDING session nobody can start: the instance is recorded abandoned
//!    and a new one is created (`setup`).
//! 2. **the target's record** — the session is written to the target
//!    before anything is enqueued, so a journal that loses it (restored
//!    from an older copy, or lost) recovers it and reconciles it as a whole
//!    journal would (`mirror`, `prepare`).
//! 3. **enqueue** — repeated into the SAME session after any ambiguity;
//!    `AlreadyQueued` proves the first call. An account never goes to a
//!    second session while one holding it may still run it: a session is
//!    abandoned only before its start intent (`setup`).
//! 4. **start** — only after every item is confirmed enqueued; repeatable
//!    (`setup`).
//! 5. **outcome** — transferred only from a `success-item`/`warning-item`
//!    RESTORE line of its session, or from the target. A failed account may
//!    go to a fresh session (never in parallel, never after success). A
//!    restore that may have begun without a final line is decided by the
//!    target and never retried while it may be there ([`outcome`],
//!    `conclude`).
//! 6. **what the target has** — before an account is enqueued, ferry knows
//!    whether the target has it; an account there that no known session
//!    holds is never enqueued: `--adopt` decides (`target`, `prepare`).
//! 7. **dead sessions** — FAILED/ABORTED sessions are never restarted;
//!    their unfinished accounts go to a new instance linked by
//!    `session_replaced` (`schedule`). Stalls get a start first; a session
//!    not seen alive recently is never paused ([`session`]).

pub mod api;
mod conclude;
pub mod control;
mod ctx;
mod driver;
pub mod mirror;
mod monitor;
pub mod outcome;
mod pace;
pub mod plan;
mod policy;
mod prepare;
mod progress;
mod reconcile;
mod run;
mod schedule;
pub mod session;
mod setup;
pub mod stale;
mod target;
pub mod verdict;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::{AccountCounts, FailedAccount, Reporter, RunStatus};
use crate::journal::{Journal, JournalError};
use crate::plan::Policy;

pub use api::Api;
pub use control::{ControlRequest, Controls};
pub use plan::RunPlan;

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
    /// The journal, for messages (a file, or `postgres://…#run`).
    pub journal_path: PathBuf,
    /// Where pause/abort requests arrive.
    pub controls: control::Controls,
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
    /// Stopped by Ctrl-C or SIGTERM.
    pub interrupted: bool,
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
    /// Accounts ask for live transfer from sources whose analysis says
    /// they cannot do it (exit 2); nothing was enqueued.
    #[error(
        "live transfer (`live_transfer: 1`) is asked of sources that do not support it:\n{}\n\
         ferry enqueued nothing. Live transfer needs a source on cPanel & WHM 11.89 or later: \
         update the source, or remove `live_transfer` from those accounts (or from \
         `defaults.account`) and run apply again",
        .sources.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n")
    )]
    LiveTransferUnsupported { sources: Vec<String> },
    /// The sources no longer hold what the plan was reviewed against (its
    /// inventory): accounts or packages gone (exit 2); nothing was enqueued.
    #[error(
        "the plan is stale: the sources no longer hold what its inventory recorded:\n{}\n\
         ferry enqueued nothing",
        .findings.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n")
    )]
    StalePlan { findings: Vec<String> },
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
    /// Transferred accounts differ from the plan on the target, for the
    /// first time (`policy.verify`).
    Differences { reason: String },
}
