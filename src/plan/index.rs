//! Lookups over a plan and its fingerprints: facts several modules need,
//! defined once.
//!
//! Owns: the account index (who lands on which target username, which
//! account an `owner` names), the plan file's content hash, and an account
//! entry's fingerprint (the hash of what would be sent to WHM for it, and its
//! fields) that the journal compares across runs. Does not own: the rules
//! that use the index (`rules`), or what a changed fingerprint means
//! (`exec::reconcile`).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::model::{AccountEntry, Plan};

/// A source index and an entry index into that source's `accounts`.
pub type Slot = (usize, usize);

/// A fast, non-cryptographic hasher (the "FxHash" of rustc) for the name
/// maps built over every account. std's SipHash guards against hash
/// flooding, which a plan file a user validates on their own machine cannot
/// sensibly do; Fx makes the 100,000-account maps several times cheaper.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn write_usize(&mut self, i: usize) {
        self.write(&i.to_le_bytes());
    }
    fn finish(&self) -> u64 {
        // The multiply mixes into the high bits; hashbrown picks buckets
        // with the low ones, so bring the mixed bits down (as rustc-hash 2).
        self.0.rotate_left(26)
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

pub(crate) fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, Default::default())
}

/// Lookups by name over a plan's accounts, built once (linear) so that
/// resolving every `owner` stays linear too.
pub struct AccountIndex<'a> {
    /// Target username → the first account landing on it.
    pub targets: FastMap<&'a str, Slot>,
    /// Per source: source username → entry index (the first, if repeated).
    by_user: Vec<FastMap<&'a str, usize>>,
}

impl<'a> AccountIndex<'a> {
    pub fn new(plan: &'a Plan) -> Self {
        let total = plan.sources.iter().map(|s| s.accounts.len()).sum();
        let mut targets = fast_map(total);
        let mut by_user = Vec::with_capacity(plan.sources.len());
        for (i, s) in plan.sources.iter().enumerate() {
            let mut users = fast_map(s.accounts.len());
            for (j, e) in s.accounts.iter().enumerate() {
                targets.entry(e.target_user()).or_insert((i, j));
                users.entry(e.user()).or_insert(j);
            }
            by_user.push(users);
        }
        AccountIndex { targets, by_user }
    }

    /// The first entry of source `source` with source username `user`.
    pub fn first_with_user(&self, source: usize, user: &str) -> Option<usize> {
        self.by_user.get(source).and_then(|m| m.get(user)).copied()
    }

    /// The account an `owner` names, if it is in the plan: an account whose
    /// target username is `owner` (the reseller as it will exist on the
    /// target), else an account of the same source whose source username is
    /// `owner`. `root` owns nothing of the plan.
    pub fn resolve_owner(&self, source: usize, owner: &str) -> Option<Slot> {
        if owner == "root" {
            return None;
        }
        if let Some(&slot) = self.targets.get(owner) {
            return Some(slot);
        }
        self.by_user
            .get(source)
            .and_then(|m| m.get(owner))
            .map(|&j| (source, j))
    }

    /// The plan account owning the account at `slot`, if any.
    pub fn owner_of(&self, plan: &Plan, (i, j): Slot) -> Option<Slot> {
        match &plan.sources[i].accounts[j] {
            AccountEntry::Full(a) => a.owner.as_deref().and_then(|o| self.resolve_owner(i, o)),
            AccountEntry::Short(_) => None,
        }
    }
}

/// Hex SHA-256 of `bytes` (the plan file's content hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// What identifies an account entry's transfer: the hash of what ferry
/// would send to WHM for it (its source's host, its user and localuser,
/// domain, package, owner and options — not the size or priority, which are
/// hints), and the same field by field for naming a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fingerprint {
    /// Hex SHA-256 of the canonical JSON of the fields.
    pub hash: String,
    /// `host`, `localuser`, `package`, `owner`, `domain`, `options.<key>`
    /// (only those set).
    pub fields: BTreeMap<String, String>,
}

/// The parts of an entry that [`Fingerprint`] covers.
pub struct EntryParts<'a> {
    pub host: &'a str,
    pub user: &'a str,
    pub localuser: &'a str,
    pub domain: Option<&'a str>,
    pub package: Option<&'a str>,
    pub owner: Option<&'a str>,
    /// `enqueue_transfer_item` options in their wire order.
    pub options: &'a [(&'static str, String)],
}

impl Fingerprint {
    /// The fingerprint of an entry. The canonical JSON (sorted keys) is the
    /// one journals have always recorded, so their hashes still compare.
    pub fn of(p: &EntryParts<'_>) -> Fingerprint {
        let canonical = serde_json::json!({
            "host": p.host,
            "user": p.user,
            "localuser": p.localuser,
            "domain": p.domain,
            "package": p.package,
            "owner": p.owner,
            "options": p.options.iter().map(|(k, v)| [k.to_string(), v.clone()]).collect::<Vec<_>>(),
        });
        let hash = sha256_hex(canonical.to_string().as_bytes());
        let mut fields = BTreeMap::new();
        fields.insert("host".to_string(), p.host.to_string());
        fields.insert("localuser".to_string(), p.localuser.to_string());
        for (k, v) in [
            ("package", p.package),
            ("owner", p.owner),
            ("domain", p.domain),
        ] {
            if let Some(v) = v {
                fields.insert(k.to_string(), v.to_string());
            }
        }
        for (k, v) in p.options {
            fields.insert(format!("options.{k}"), v.clone());
        }
        Fingerprint { hash, fields }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash journals recorded before the fingerprint moved here, for
    /// one entry: a change to the canonical form would make every resumed
    /// run refuse its transferred accounts.
    #[test]
    fn the_fingerprint_hash_is_stable() {
        let f = Fingerprint::of(&EntryParts {
            host: "old1.example.com",
            user: "shop",
            localuser: "shop2",
            domain: Some("shop.example.com"),
            package: Some("gold"),
            owner: Some("resell1"),
            options: &[("ip", "1".into())],
        });
        let canonical = r#"{"domain":"shop.example.com","host":"old1.example.com","localuser":"shop2","options":[["ip","1"]],"owner":"resell1","package":"gold","user":"shop"}"#;
        assert_eq!(f.hash, sha256_hex(canonical.as_bytes()));
        assert_eq!(f.fields["options.ip"], "1");
        assert_eq!(f.fields.len(), 6);
    }
}
