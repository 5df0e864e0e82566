//! The step graph: a plan compiled into WHM API steps (petgraph), grouped
//! into transfer sessions ("batches"), with the dependencies between them.
//!
//! Owns: deciding which accounts go into which session, in which order, and
//! what must finish before what (packages before the accounts that use them,
//! resellers before the accounts they own, `after` waves), and rendering that
//! for people (`ferry plan`). Does not own: running anything (`exec`), or the
//! limits' enforcement (`exec`; the limits are attributes here).
//!
//! Public API (the contract `exec` relies on):
//! * [`compile`]`(&Plan) -> CompiledPlan`
//! * [`CompiledPlan`] `{ graph: DiGraph<Step, ()>, sessions: Vec<SessionPlan>, limits: Limits, sources: Vec<SourcePlan> }`
//! * [`SessionPlan`] `{ key: "old1/s2", source, source_name, index, packages, accounts: Vec<SessionAccount>, depends_on: Vec<usize>, options }`
//! * [`SessionAccount`] `{ source, entry, user, target_user, package, owner, prerequisite_user, priority, size, options }`
//! * step ids: `old1/preflight`, `old1/s2/create`, `old1/s2/package/gold`,
//!   `old1/s2/enqueue/shop` (the *source* username: WHM's item key),
//!   `old1/s2/start`, `old1/s2/await`, `old1/s2/verify`.
//! * [`render::render`]`(&CompiledPlan, &Plan, Format, Option<&dyn Fn(&str) -> StepMark>) -> String`
//!
//! How to schedule from it: a session may be created once its source's
//! preflight succeeded and every session in its `depends_on` has finished
//! (its `await` step: the transfer session is COMPLETED and its log read).
//! `depends_on` lists *direct* prerequisites; waiting for them satisfies
//! every ordering rule transitively. Within a session, steps run in the
//! order of the chain `create → package/… → enqueue/… → start → await →
//! verify`. Then [`Limits`] cap how many sessions run at once.

pub mod compile;
pub mod render;

use petgraph::graph::DiGraph;
use serde::Serialize;

use crate::plan::{AccountOptions, SessionOptions};

pub use compile::compile;
pub use render::{Format, StepMark};

/// A compiled plan: the step graph plus the session view `exec` schedules.
#[derive(Debug, Clone)]
pub struct CompiledPlan {
    /// Every step; an edge `a → b` means `b` may start only after `a` succeeded.
    pub graph: DiGraph<Step, ()>,
    /// Transfer sessions in source order, then session order.
    pub sessions: Vec<SessionPlan>,
    /// Concurrency limits the executor enforces.
    pub limits: Limits,
    /// Per source (same order as the plan): its wave and step of preflight.
    pub sources: Vec<SourcePlan>,
}

/// What a source contributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcePlan {
    pub name: String,
    /// 1 for sources without `after`; otherwise 1 + the highest wave of the
    /// sources it names.
    pub wave: usize,
    /// Indices into [`CompiledPlan::sessions`].
    pub sessions: Vec<usize>,
    /// Id of this source's preflight step (`old1/preflight`).
    pub preflight: String,
}

/// Concurrency limits (plan `concurrency`), enforced by `exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Transfer sessions running at once on the target.
    pub target_sessions: u32,
    /// Transfer sessions running at once per source.
    pub source_sessions: u32,
    /// Accounts per transfer session at most (already applied by `compile`).
    pub batch_size: u32,
}

/// One WHM transfer session ("batch"): accounts of one source moved together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionPlan {
    /// `old1/s2`: the prefix of this session's step ids.
    pub key: String,
    /// Index of the source in the plan.
    pub source: usize,
    pub source_name: String,
    /// 1-based position among its source's sessions (the `2` of `s2`).
    pub index: usize,
    /// Packages enqueued in this session (each package once per source, in
    /// the first session that needs it), sorted by name.
    pub packages: Vec<String>,
    /// Accounts in enqueue order.
    pub accounts: Vec<SessionAccount>,
    /// Indices (into [`CompiledPlan::sessions`]) of the sessions that must
    /// finish before this one is created; sorted, no repeats.
    pub depends_on: Vec<usize>,
    /// `create_remote_root_transfer_session` options: the source's
    /// `session` over `defaults.session`.
    pub options: SessionOptions,
}

/// One account of a session, with everything `enqueue_transfer_item` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionAccount {
    /// Index of the source in the plan.
    pub source: usize,
    /// Index of the entry in the source's `accounts`.
    pub entry: usize,
    /// Username on the source (WHM's item key).
    pub user: String,
    /// Username on the target (`localuser`).
    pub target_user: String,
    pub package: Option<String>,
    pub owner: Option<String>,
    /// Never set by this compiler: a reseller and the accounts it owns are
    /// always in different sessions (ordered by `depends_on`), because WHM
    /// blocks a session forever when a prerequisite is missing from it.
    pub prerequisite_user: Option<String>,
    /// WHM queue priority (1 = first … 255): the enqueue order, so the
    /// largest accounts start first.
    pub priority: u8,
    /// Size hint in bytes, if the plan gives one.
    pub size: Option<u64>,
    /// `enqueue_transfer_item` options: the account's over `defaults.account`.
    pub options: AccountOptions,
}

/// A node of the step graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Stable, readable id (`old1/s2/enqueue/shop`), used by the journal.
    pub id: String,
    pub kind: StepKind,
    /// Index of the source in the plan.
    pub source: usize,
    /// Index into [`CompiledPlan::sessions`]; `None` for a preflight.
    pub session: Option<usize>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    /// Check the source's credentials (`remote_basic_credential_check`).
    Preflight,
    /// `create_remote_root_transfer_session`.
    CreateSession,
    /// `enqueue_transfer_item` with module `PackageRemoteRoot`.
    EnqueuePackage { package: String },
    /// `enqueue_transfer_item` with module `AccountRemoteRoot`.
    EnqueueAccount { user: String, target_user: String },
    /// `start_transfer_session`.
    Start,
    /// Poll until the session is COMPLETED; read its `master.log`.
    Await,
    /// Confirm each account is present on the target (`listaccts`).
    Verify,
}

impl StepKind {
    /// Short name used in ids and renderings.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Preflight => "preflight",
            StepKind::CreateSession => "create",
            StepKind::EnqueuePackage { .. } => "package",
            StepKind::EnqueueAccount { .. } => "enqueue",
            StepKind::Start => "start",
            StepKind::Await => "await",
            StepKind::Verify => "verify",
        }
    }
}
