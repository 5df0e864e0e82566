//! The plan language: the model ([`model`]), loading YAML with source
//! locations ([`parse`], [`locate`]), the semantic rules of design §4, every
//! problem at once ([`rules`]), diagnostics ([`diag`]), and the JSON Schema
//! generated from the model ([`schema`]).
//!
//! Owns: turning a file into a [`Plan`] that is known to be valid, or into
//! diagnostics with file:line:column. Does not own: compiling the plan into
//! steps (`graph`), resolving secrets (`secret`, called from `ops`).
//!
//! Public API (the contract other modules rely on):
//! * [`load`]`(path) -> Result<LoadedPlan, Diagnostics>`
//! * [`parse()`]`(file_name, text) -> Result<Plan, Diagnostics>`
//! * [`inventory`]: the sizes `ferry inventory` recorded, applied by `load`
//! * `LoadedPlan { plan: Plan, path, base_dir, hash }` — `hash` is the hex
//!   SHA-256 of the file's bytes, recorded in the journal.

pub mod diag;
pub mod index;
pub mod inventory;
pub mod locate;
pub mod model;
pub mod parse;
pub mod rules;
pub mod schema;
mod structure;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics};
pub use model::*;

/// A valid plan read from a file.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub plan: Plan,
    /// The path it was read from, as given.
    pub path: PathBuf,
    /// The directory relative paths in the plan (`{file: …}`, `ca_file`)
    /// are taken from: the plan file's directory.
    pub base_dir: PathBuf,
    /// Hex SHA-256 of the file's bytes.
    pub hash: String,
    /// The inventory beside the plan, when [`load`] found one (its sizes
    /// are already applied to `plan`); what the stale-plan guard compares
    /// the sources with.
    pub inventory: Option<std::sync::Arc<inventory::Inventory>>,
}

impl LoadedPlan {
    /// The plan's identity: its `name:`, or else the file's stem. A journal
    /// records it and refuses a plan with another identity; the target's
    /// record of the plan's sessions is named after it.
    pub fn identity(&self) -> String {
        identity(self.plan.name.as_deref(), &self.path)
    }
}

/// A plan's identity from its `name:` (if any) and its path.
pub fn identity(name: Option<&str>, path: &Path) -> String {
    match name {
        Some(n) => n.to_string(),
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plan".into()),
    }
}

/// Reads, parses and validates the plan at `path`. Every problem in the
/// file is returned, each with file:line:column. An inventory next to it
/// (`<stem>.inventory.json`, see [`inventory`]) gives the accounts without
/// a `size` hint their size; a malformed one is a diagnostic naming it.
pub fn load(path: &Path) -> Result<LoadedPlan, Diagnostics> {
    let mut loaded = load_without_inventory(path)?;
    // Sizes from `ferry inventory`, offline: a `size` hint still wins.
    loaded.inventory = inventory::load_into(path, &mut loaded.plan)?.map(std::sync::Arc::new);
    Ok(loaded)
}

/// [`load`] without the inventory: what `ferry inventory` reads, so that a
/// damaged inventory can be rewritten.
pub fn load_without_inventory(path: &Path) -> Result<LoadedPlan, Diagnostics> {
    let shown = path.display().to_string();
    let bytes = read_bounded(path).map_err(|(message, help)| {
        let mut d = Diagnostics::new();
        d.push(parse::whole_file(&shown, message, help));
        d
    })?;
    let plan = parse::parse_bytes(&shown, &bytes)?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(LoadedPlan {
        plan,
        path: path.to_path_buf(),
        base_dir,
        hash: sha256_hex(&bytes),
        inventory: None,
    })
}

/// Parses and validates a plan held in memory (see [`parse::parse`]).
pub fn parse(file_name: &str, text: &str) -> Result<Plan, Diagnostics> {
    parse::parse(file_name, text)
}

pub use index::sha256_hex;

fn read_bounded(path: &Path) -> Result<Vec<u8>, (String, Option<String>)> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| {
        let help = match e.kind() {
            std::io::ErrorKind::NotFound => {
                Some("check the path; plans usually live in `plans/`".to_string())
            }
            std::io::ErrorKind::PermissionDenied => {
                Some("check the file's permissions".to_string())
            }
            _ => None,
        };
        (format!("cannot read the plan: {}", e.kind()), help)
    })?;
    let meta = f
        .metadata()
        .map_err(|e| (format!("cannot read the plan: {}", e.kind()), None))?;
    if meta.is_dir() {
        return Err((
            "this is a directory, not a plan file".into(),
            Some("give the path of a .yaml file, e.g. `plans/*.yaml`".into()),
        ));
    }
    let mut bytes = Vec::new();
    f.take(parse::MAX_PLAN_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| (format!("cannot read the plan: {}", e.kind()), None))?;
    if bytes.len() > parse::MAX_PLAN_BYTES {
        return Err((
            format!("the plan is larger than {} bytes", parse::MAX_PLAN_BYTES),
            Some("split the migration into several plans".into()),
        ));
    }
    Ok(bytes)
}
