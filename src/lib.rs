//! # ferry — a declarative migration orchestrator for cPanel & WHM servers
//!
//! ferry reads a YAML *plan* (which accounts move from which source servers to
//! one target WHM server), compiles it into a dependency graph of WHM API 1
//! steps, and runs that graph against the target's transfer-session API with
//! retries, concurrency limits and a pause-on-error policy. Every step is
//! written to a *journal* before and after it acts, so a run killed at any
//! instant resumes without losing or duplicating an account.
//!
//! ## Module map (data flows one way: cli → ops → plan → graph → exec → client)
//!
//! | module    | owns                                                                 |
//! |-----------|----------------------------------------------------------------------|
//! | [`cli`]   | clap types; one file per command; flags → options → one `ops` call    |
//! | [`ops`]   | one function per command (validate, plan, check, apply, verify, …)   |
//! | [`plan`]  | the plan model, YAML parsing with spans, semantic rules, JSON Schema  |
//! | [`graph`] | plan → step graph (petgraph), batches, waves; text/json/dot rendering |
//! | [`exec`]  | runs the graph: budgets, session state machine, outcomes from logs   |
//! | [`journal`] | the append-only journal (a file, or PostgreSQL), its lock, its replay |
//! | [`client`]| the typed WHM API 1 client: envelope, retry classification, TLS      |
//! | [`events`]| `Event` + `Reporter`: what the executor emits, for `report` to render |
//! | [`report`]| what the operator sees: progress, JSON events, HTML report           |
//! | [`metrics`] | Prometheus metrics of a run: textfile, `/metrics`, Pushgateway      |
//! | [`notify`]| the plan's `notify:` commands, run with an event's JSON on stdin     |
//! | [`secret`]| secret references (`{env: NAME}`, `{file: PATH}`) and redaction      |
//! | [`untrusted`] | a server's text escaped for terminals and text logs           |
//! | [`sim`]   | `whm-sim`, a WHM target simulator; shares no code with `client`      |
//!
//! ## Files ferry reads and writes
//!
//! * the plan (`plan`), read only;
//! * `<plan stem>.inventory.json` next to the plan (`plan::inventory`):
//!   written atomically by `ferry inventory` (`ops::inventory`), read by
//!   `plan::load` for its sizes;
//! * `.ferry/<plan stem>.journal` (`journal`, written by `exec` only), mode 0600;
//! * `.ferry/<plan stem>.journal.lock` (`journal::lock`), held for a whole `apply`;
//! * `.ferry/<plan stem>.journal.control` (`exec::control`, written by
//!   `ferry pause`/`ferry abort`): a pause/abort request for a running `apply`;
//! * `.ferry/<plan stem>.simulate.journal`: the journal of `apply --simulate`;
//! * or, with the plan's `journal.postgres` (or `--journal postgres://…`),
//!   the tables `ferry_runs`, `ferry_records`, `ferry_leases` and
//!   `ferry_controls` of that database (`journal::pg`, docs/postgres.md):
//!   the same records, a leased lock, pause/abort requests from anywhere;
//! * the HTML report (`report::html`), mode 0600;
//! * `apply --metrics-textfile PATH` (`metrics`), rewritten atomically.
//!
//! ## Glossary
//!
//! * **source** — a server accounts move *from*; named in the plan.
//! * **target** — the one WHM server accounts move *to*; ferry talks only to it.
//! * **session** — a WHM transfer session on the target, pulling from one source.
//! * **item** — one entry of a session's queue (a package or an account).
//! * **account** — a cPanel account of the plan, keyed by its target username.
//! * **step** — a node of the compiled graph (`old1/s2/enqueue/shop`).
//! * **run** — one plan applied, across any number of `ferry apply` processes.
//! * **record** — one line of the journal.

pub mod cli;
pub mod client;
pub mod events;
pub mod exec;
pub mod graph;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod plan;
pub mod report;
pub mod secret;
pub mod sim;
pub mod untrusted;
