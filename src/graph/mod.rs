//! The step graph: a plan compiled into WHM API steps (petgraph), grouped
//! into transfer sessions ("batches"), with the dependencies between them.
//!
//! Owns: deciding which accounts go into which session, in which order, and
//! what must finish before what (packages before the accounts that use them,
//! resellers before the accounts they own, `after` waves). Does not own:
//! running anything (`exec`), or the limits' enforcement (`exec`; the limits
//! are attributes here).
//!
//! Public API (the contract `exec` relies on; see the module's docs below
//! once implemented):
//! * `graph::compile(&Plan) -> CompiledPlan`
//! * `CompiledPlan { graph: DiGraph<Step, ()>, sessions: Vec<SessionPlan>, limits: Limits }`
//! * `SessionPlan { key: "old1/s2", source: usize, source_name, index, packages, accounts: Vec<SessionAccount>, depends_on: Vec<usize> }`
//! * `SessionAccount { source: usize, entry: usize, user, target_user, package, owner, prerequisite_user, priority }`
//! * step ids: `old1/preflight`, `old1/s2/create`, `old1/s2/package/gold`,
//!   `old1/s2/enqueue/shop`, `old1/s2/start`, `old1/s2/await`, `old1/s2/verify`.
