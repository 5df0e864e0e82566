//! The inventory file, `<plan stem>.inventory.json` next to the plan: what
//! the sources held when `ferry inventory` read their remote analysis
//! (issue 12). Meant to be committed and reviewed like a lockfile.
//!
//! Owns: the file's format ([`Inventory`]), its path ([`path_for`]),
//! rendering it deterministically ([`Inventory::render`]: keys and arrays
//! sorted, so the same live state gives the same bytes except `taken_at`),
//! reading it back ([`read`]) and giving the plan's accounts without a
//! `size` hint the inventory's `bytes` ([`apply_sizes`]; a hint wins).
//! Does not own: taking it (`ops::inventory`, over the network), writing
//! it to disk (`ops::inventory`, atomically).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Account, AccountEntry, Diagnostic, Diagnostics, Plan};

/// Version of the file's format.
pub const FORMAT: u32 = 1;

/// The largest inventory file read (10,000 accounts take about 2 MB).
pub const MAX_INVENTORY_BYTES: usize = 64 * 1024 * 1024;

/// What every source reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// When it was taken (RFC 3339, UTC): the one field that differs
    /// between two inventories of the same live state.
    pub taken_at: String,
    /// By source name (sorted).
    pub sources: BTreeMap<String, SourceInventory>,
}

/// One source as its remote analysis describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInventory {
    pub host: String,
    /// The source's cPanel version, when the analysis says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `remote.supports_live_transfers`, when the analysis says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_live_transfers: Option<bool>,
    /// Every account the source reports, sorted by user.
    pub accounts: Vec<AccountInventory>,
}

/// One account as the source reports it; `null` where it does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInventory {
    pub user: String,
    pub domain: Option<String>,
    pub owner: Option<String>,
    pub package: Option<String>,
    /// Disk used (`bytesused`); `null` when unknown (quotas off).
    pub bytes: Option<u64>,
    /// Files used (`filesused`).
    pub files: Option<u64>,
    pub dedicated_ip: Option<bool>,
}

impl Inventory {
    /// Sorts every array so that rendering is deterministic.
    pub fn normalise(&mut self) {
        for s in self.sources.values_mut() {
            s.accounts.sort_by(|a, b| a.user.cmp(&b.user));
        }
    }

    /// Pretty JSON with a final newline; keys in a fixed order (struct
    /// fields in declaration order, maps sorted), arrays sorted.
    pub fn render(&self) -> String {
        let mut me = self.clone();
        me.normalise();
        let mut text = serde_json::to_string_pretty(&me).expect("an inventory serialises");
        text.push('\n');
        text
    }

    /// The account `user` of source `source`, if the inventory has it.
    pub fn account(&self, source: &str, user: &str) -> Option<&AccountInventory> {
        let accounts = &self.sources.get(source)?.accounts;
        accounts
            .binary_search_by(|a| a.user.as_str().cmp(user))
            .ok()
            .map(|i| &accounts[i])
    }
}

/// `<plan stem>.inventory.json` in the plan's directory.
pub fn path_for(plan: &Path) -> PathBuf {
    let stem = plan
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".into());
    plan.with_file_name(format!("{stem}.inventory.json"))
}

/// Reads the inventory at `path`: `Ok(None)` when there is none, a
/// diagnostic naming the file when it cannot be used.
pub fn read(path: &Path) -> Result<Option<Inventory>, Diagnostic> {
    let shown = path.display().to_string();
    let bad = |message: String| {
        super::parse::whole_file(
            &shown,
            message,
            Some(format!(
                "run `ferry inventory` again to rewrite it, or delete {shown} to plan without it"
            )),
        )
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(format!("cannot read the inventory: {}", e.kind()))),
    };
    if bytes.len() > MAX_INVENTORY_BYTES {
        return Err(bad(format!(
            "the inventory is larger than {MAX_INVENTORY_BYTES} bytes"
        )));
    }
    let mut inv: Inventory = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("the inventory is not valid: {e}")))?;
    if inv.format != FORMAT {
        return Err(bad(format!(
            "the inventory has format {}, this ferry reads format {FORMAT}",
            inv.format
        )));
    }
    inv.normalise();
    Ok(Some(inv))
}

/// Gives each account of `plan` without a `size` hint the inventory's
/// `bytes` for it (a hint in the plan wins; an account the inventory does
/// not know, or whose size it does not know, keeps none). Returns how many
/// accounts took a size.
pub fn apply_sizes(plan: &mut Plan, inv: &Inventory) -> usize {
    let mut n = 0;
    for source in &mut plan.sources {
        for entry in &mut source.accounts {
            if entry.details().is_some_and(|a| a.size.is_some()) {
                continue;
            }
            let Some(bytes) = inv
                .account(&source.name, entry.user())
                .and_then(|a| a.bytes)
            else {
                continue;
            };
            match entry {
                AccountEntry::Short(user) => {
                    *entry = AccountEntry::Full(Box::new(Account {
                        user: std::mem::take(user),
                        size: Some(bytes),
                        ..Account::default()
                    }));
                }
                AccountEntry::Full(a) => a.size = Some(bytes),
            }
            n += 1;
        }
    }
    n
}

/// Loads the inventory next to `plan_path` (if any) into `plan`.
pub(crate) fn load_into(
    plan_path: &Path,
    plan: &mut Plan,
) -> Result<Option<Inventory>, Diagnostics> {
    match read(&path_for(plan_path)) {
        Ok(Some(inv)) => {
            apply_sizes(plan, &inv);
            Ok(Some(inv))
        }
        Ok(None) => Ok(None),
        Err(d) => {
            let mut ds = Diagnostics::new();
            ds.push(d);
            Err(ds)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        let acct = |user: &str, bytes| AccountInventory {
            user: user.into(),
            domain: Some(format!("{user}.example")),
            owner: Some("root".into()),
            package: None,
            bytes,
            files: None,
            dedicated_ip: Some(false),
        };
        Inventory {
            format: FORMAT,
            taken_at: "2026-01-01T00:00:00Z".into(),
            sources: BTreeMap::from([(
                "old".to_string(),
                SourceInventory {
                    host: "old.example".into(),
                    version: None,
                    supports_live_transfers: Some(true),
                    accounts: vec![acct("zed", Some(7)), acct("amy", Some(5)), acct("bo", None)],
                },
            )]),
        }
    }

    #[test]
    fn renders_sorted_and_reads_back() {
        let i = inv();
        let text = i.render();
        assert!(text.find("\"amy\"").unwrap() < text.find("\"zed\"").unwrap());
        let dir = std::env::temp_dir().join(format!("ferry-inv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.inventory.json");
        std::fs::write(&p, &text).unwrap();
        let back = read(&p).unwrap().unwrap();
        assert_eq!(back.render(), text);
        std::fs::write(&p, "{").unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.file.contains("x.inventory.json"), "{e:?}");
        assert!(read(&dir.join("none.json")).unwrap().is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn path_is_next_to_the_plan() {
        assert_eq!(
            path_for(Path::new("plans/move.yaml")),
            PathBuf::from("plans/move.inventory.json")
        );
    }
}
