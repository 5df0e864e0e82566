//! The step graph: a plan compiled into WHM API steps (petgraph), grouped
//! into transfer sessions ("batches"), with the dependencies between them.
//!
//! Owns: deciding which accounts go into which session, in which order, and
//! what must finish before what (packages before the accounts that use them,
//! resellers before the accounts they own, `after` waves), and rendering that
//! for people (`ferry plan`). Does not own: running anything (`exec`), or the
//! limits' enforcement (`exec`; the limits are attributes here).
//!
//! ## One source of truth: the session DAG
//!
//! [`CompiledPlan::sessions`] with their [`Dependency`] edges *is* the plan
//! as the executor runs it: `exec` schedules sessions from it and nothing
//! else (a session may be created once every session it depends on is
//! finished, within [`Limits`]), and builds every WHM item from its
//! [`SessionAccount`]s. The step graph ([`CompiledPlan::graph`]) is a view
//! derived from it — each session expanded into its chain `create →
//! package/… → enqueue/… → start → await → verify` behind its source's
//! `preflight`, and one edge `await → create` per dependency, carrying the
//! dependency's reasons — for `ferry plan`'s renderings and the journal
//! marks. Step ids are [`StepId`]s (`step`), made in one place.
//!
//! Public API (the contract `exec` relies on):
//! * [`compile`]`(&Plan) -> CompiledPlan`
//! * [`SessionPlan`] `{ key: "old1/s2", source, index, rank, packages, accounts, depends_on: Vec<Dependency>, options }`
//! * [`SessionAccount`] `{ source, entry, user, target_user, package, owner, reseller, domain, fingerprint, priority, size, options }`
//! * [`SourcePlan`] `{ name, host, wave, sessions, options }`
//! * [`render::render`]`(&CompiledPlan, &Plan, Format, &RenderOptions) -> String`

pub mod batch;
pub mod compile;
pub mod critical;
pub mod render;
pub mod step;

use petgraph::graph::DiGraph;
use serde::Serialize;

use crate::plan::index::Fingerprint;
use crate::plan::{AccountOptions, SessionOptions};

pub use compile::compile;
pub use render::{Format, StepMark};
pub use step::{RunStep, SessionStep, StepId};

/// A compiled plan: the step graph plus the session view `exec` schedules.
#[derive(Debug, Clone)]
pub struct CompiledPlan {
    /// Every step; an edge `a → b` means `b` may start only after `a`
    /// succeeded. A view of `sessions` (see the module doc).
    pub graph: DiGraph<Step, Edge>,
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
    /// Given to `create_remote_root_transfer_session`.
    pub host: String,
    /// 1 for sources without `after`; otherwise 1 + the highest wave of the
    /// sources it names.
    pub wave: usize,
    /// Indices into [`CompiledPlan::sessions`].
    pub sessions: Vec<usize>,
    /// Its preflight step (`old1/preflight`).
    pub preflight: StepId,
    /// `create_remote_root_transfer_session` options of its sessions: the
    /// source's `session` over `defaults.session`.
    pub options: SessionOptions,
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
    /// WHM API requests in flight at once (the gate, `exec::api`).
    pub api_requests: u32,
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
    /// How many sessions must complete before it, along its longest chain
    /// of dependencies (0: it may start at once).
    pub rank: usize,
    /// Packages enqueued in this session (each package once per source, in
    /// the first session that needs it), sorted by name.
    pub packages: Vec<String>,
    /// Accounts in enqueue order.
    pub accounts: Vec<SessionAccount>,
    /// The sessions that must finish before this one is created, each with
    /// why; sorted by session, no repeats.
    pub depends_on: Vec<Dependency>,
    /// `create_remote_root_transfer_session` options: the source's
    /// `session` over `defaults.session`.
    pub options: SessionOptions,
    /// The ordinal of its group (one source, one level) within its source,
    /// when it is that group's last session: what the compiler may split
    /// when it ends the run (`compile`).
    #[serde(skip)]
    pub last_of_group: Option<usize>,
}

impl SessionPlan {
    /// Indices of the sessions this one waits for.
    pub fn waits_for(&self) -> impl Iterator<Item = usize> + '_ {
        self.depends_on.iter().map(|d| d.on)
    }
}

/// One edge of the session DAG: `on` must finish first, for these reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// Index into [`CompiledPlan::sessions`].
    pub on: usize,
    /// Sorted, no repeats; never empty.
    pub why: Vec<Why>,
}

/// Why one session waits for another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Why {
    /// It holds an account owned by a reseller the other session moves.
    Reseller { owner: String },
    /// It needs a package the other session (the source's first to need
    /// it) enqueues.
    Package { package: String },
    /// Its source is `after` the other's: every session of that source
    /// finishes first.
    After { source: String },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Reseller { owner } => write!(f, "reseller {owner}"),
            Why::Package { package } => write!(f, "package {package}"),
            Why::After { source } => write!(f, "after {source}"),
        }
    }
}

/// An edge of the step graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Edge {
    /// The next step of the same session's chain.
    Chain,
    /// A source's preflight before each of its sessions' create.
    Preflight,
    /// `await` of one session before `create` of another, with why.
    Session { why: Vec<Why> },
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
    /// The plan account that `owner` names (its target username), if it is
    /// in the plan: it is moved in an earlier session.
    pub reseller: Option<String>,
    /// The main domain the plan gives, if any.
    pub domain: Option<String>,
    /// What identifies this entry's transfer across runs (the journal
    /// compares it).
    pub fingerprint: Fingerprint,
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

impl SessionAccount {
    /// The plan restores it onto data already on the target on purpose
    /// (an option that overwrites, and `allow_overwrite: true`): found on
    /// the target, it is restored onto, not adopted.
    pub fn overwrites(&self) -> bool {
        self.options.allow_overwrite == Some(true) && !self.options.overwriting().is_empty()
    }

    /// Its owner's username on the target: the plan's reseller once moved,
    /// else the `owner` the plan names (already on the target), else `root`.
    pub fn owner_on_target(&self) -> &str {
        self.reseller
            .as_deref()
            .or(self.owner.as_deref())
            .unwrap_or("root")
    }
}

/// A node of the step graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Stable, readable id (`old1/s2/enqueue/shop`), used by the journal.
    pub id: StepId,
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
