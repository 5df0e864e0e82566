//! The plan language: the model ([`model`]), loading YAML with source
//! locations, the semantic rules of design §4 (every problem at once), and
//! the JSON Schema generated from the model.
//!
//! Owns: turning a file into a [`Plan`] that is known to be valid, or into
//! diagnostics with file:line:column. Does not own: compiling the plan into
//! steps (`graph`), resolving secrets (`secret`, called from `ops`).
//!
//! Public API (the contract other modules rely on):
//! * `plan::load(path) -> Result<LoadedPlan, Diagnostics>`
//! * `LoadedPlan { plan: Plan, path, base_dir, hash }` — `hash` is the hex
//!   SHA-256 of the file's bytes, recorded in the journal.

pub mod model;

pub use model::*;
