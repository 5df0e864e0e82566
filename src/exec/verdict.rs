//! What a transferred account must look like on the target, and how it
//! differs: the one comparison behind `ferry verify` (`ops::verify`) and
//! the check `apply` makes after each session (`policy.verify: basic`,
//! `ctx::verify`).
//!
//! Owns: [`Wanted`] (from the compiled plan), [`Finding`] with its words
//! and its fix, and [`compare`], pure. Does not own: asking the target
//! (`listaccts` after a session, `accountsummary` in `ferry verify`), or
//! what a finding does to the run (`ctx::verify`: recorded, reported, the
//! run paused once; never a new transfer).
//!
//! What is compared (docs/whm.md §8.1–8.2): the account exists, is not
//! suspended, has the planned owner (a reseller that was not on the target
//! when the account was restored makes WHM restore it under `root`, which
//! shows here), the planned package, and the main domain — the plan's, or
//! else the one the source reported. Against what the source reported
//! (its session's remote analysis, in the journal, [`Reported`]): disk use
//! ([`compare_disk`]: less than half of the source's, above 100 MiB) and
//! its MySQL databases ([`compare_databases`]: each on the target, unless
//! the restore's notes say it was renamed).

use serde::Serialize;

use crate::client::AccountSummary;
use crate::graph::SessionAccount;

/// What the plan wants of an account on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub account: String,
    pub owner: String,
    pub package: Option<String>,
    pub domain: Option<String>,
}

impl Wanted {
    pub fn of(a: &SessionAccount) -> Wanted {
        Wanted {
            account: a.target_user.clone(),
            owner: a.owner_on_target().to_string(),
            package: a.package.clone(),
            domain: a.domain.clone(),
        }
    }
}

/// What the source reported of an account when its session was made
/// (`session_analysed` in the journal).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reported<'a> {
    pub bytes: Option<u64>,
    pub domain: Option<&'a str>,
    pub databases: &'a [String],
}

impl Wanted {
    /// The source's main domain where the plan names none.
    pub fn with_reported(mut self, r: &Reported<'_>) -> Wanted {
        if self.domain.is_none() {
            self.domain = r.domain.map(str::to_string);
        }
        self
    }
}

const MIB: u64 = 1024 * 1024;

/// Disk use on the target against the source's: a finding when the target
/// holds less than half of what the source reported and the source's is
/// over 100 MiB (small accounts vary by more than their size with logs and
/// caches; more on the target is never a loss).
pub fn compare_disk(source_bytes: Option<u64>, target_mib: Option<u64>) -> Option<Finding> {
    let (source, target) = (source_bytes?, target_mib?);
    (source > 100 * MIB && target.saturating_mul(MIB) < source / 2).then_some(Finding::Disk {
        source_bytes: source,
        target_mib: target,
    })
}

/// The source's MySQL databases against the target's: each must be there,
/// unless the restore's notes name it as altered (a database renamed on
/// restore, "to what" in the note's words). A note that names a missing one
/// goes with the finding.
pub fn compare_databases(
    source: &[String],
    target: &[String],
    notes: &[crate::client::masterlog::Note],
) -> Vec<Finding> {
    use crate::client::masterlog::NoteKind;
    source
        .iter()
        .filter(|db| !target.contains(db))
        .filter(|db| {
            !notes
                .iter()
                .any(|n| n.kind == NoteKind::Altered && n.text.contains(db.as_str()))
        })
        .map(|db| Finding::Database {
            name: db.clone(),
            said: notes
                .iter()
                .find(|n| n.text.contains(db.as_str()))
                .map(|n| n.text.clone()),
        })
        .collect()
}

/// The domains the restore's notes say something about: “quoted” names
/// with a dot in notes that speak of a domain (cPanel's `Systems/Domains.pm`
/// writes `Failed to restore the domain “shop.example” …`). The source's
/// other domains are not in its analysis (docs/whm.md §5); these are the
/// ones worth looking for on the target.
pub fn domains_named(notes: &[crate::client::masterlog::Note]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in notes
        .iter()
        .filter(|n| n.text.to_ascii_lowercase().contains("domain"))
    {
        for part in n.text.split('“').skip(1) {
            if let Some((name, _)) = part.split_once('”')
                && name.contains('.')
                && !name.contains(char::is_whitespace)
                && !out.iter().any(|o| o == name)
            {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The domains the notes name ([`domains_named`]) against the account's
/// domains on the target: each one absent is a finding, with the note.
pub fn compare_domains(
    named: &[String],
    target: &[String],
    notes: &[crate::client::masterlog::Note],
) -> Vec<Finding> {
    named
        .iter()
        .filter(|d| !target.iter().any(|t| t.eq_ignore_ascii_case(d)))
        .map(|d| Finding::LostDomain {
            domain: d.clone(),
            said: notes
                .iter()
                .find(|n| n.text.contains(d.as_str()))
                .map(|n| n.text.clone()),
        })
        .collect()
}

/// One way an account differs from the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The journal says transferred; the target has no such account.
    Missing,
    Suspended {
        reason: Option<String>,
    },
    Owner {
        planned: String,
        on_target: String,
    },
    Package {
        planned: String,
        on_target: Option<String>,
    },
    Domain {
        planned: String,
        on_target: Option<String>,
    },
    /// Less than half the disk the source reported.
    Disk {
        source_bytes: u64,
        target_mib: u64,
    },
    /// A domain the restore's notes name is not on the target.
    LostDomain {
        domain: String,
        said: Option<String>,
    },
    /// A database the source listed is not on the target.
    Database {
        name: String,
        /// The restore's note about it, if one names it.
        said: Option<String>,
    },
}

impl Finding {
    /// What differs, in words.
    pub fn detail(&self) -> String {
        match self {
            Finding::Missing => "not on the target, though the journal saw it transferred".into(),
            Finding::Suspended { reason } => match reason {
                Some(r) => format!("suspended on the target ({r})"),
                None => "suspended on the target".into(),
            },
            Finding::Owner { planned, on_target } => {
                format!("its owner on the target is {on_target}, the plan's is {planned}")
            }
            Finding::Package { planned, on_target } => format!(
                "its package on the target is {}, the plan's is {planned}",
                on_target.as_deref().unwrap_or("(none)")
            ),
            Finding::Domain { planned, on_target } => format!(
                "its main domain on the target is {}, the plan's is {planned}",
                on_target.as_deref().unwrap_or("(none)")
            ),
            Finding::Disk {
                source_bytes,
                target_mib,
            } => format!(
                "it uses {target_mib} MiB on the target, less than half of the {} MiB the source reported",
                source_bytes / MIB
            ),
            Finding::LostDomain { domain, said } => match said {
                Some(s) => {
                    format!("its domain {domain} is not on the target (the restore said: {s})")
                }
                None => format!("its domain {domain} is not on the target"),
            },
            Finding::Database { name, said } => match said {
                Some(s) => {
                    format!("its database {name} is not on the target (the restore said: {s})")
                }
                None => format!("its database {name}, listed on the source, is not on the target"),
            },
        }
    }

    /// What to do about it on `account` (ferry never moves it again by
    /// itself).
    pub fn fix(&self, account: &str) -> String {
        match self {
            Finding::Missing => format!(
                "see its restore in `ferry report`; if it was removed from the target on purpose, \
                 remove `{account}` from the plan"
            ),
            Finding::Suspended { .. } => format!(
                "if it should serve, unsuspend it: whmapi1 unsuspendacct user={account} (an account \
                 suspended on its source is restored suspended)"
            ),
            Finding::Owner { planned, .. } => format!(
                "WHM restores an account under root when its reseller is not on the target yet; \
                 give it to {planned}: whmapi1 modifyacct user={account} owner={planned}"
            ),
            Finding::Package { planned, .. } => {
                format!("whmapi1 changepackage user={account} pkg={planned}")
            }
            Finding::Domain { .. } => {
                "check which is right; if the target's, correct the account's `domain` in the plan"
                    .into()
            }
            Finding::Disk { .. } => format!(
                "compare the home directory and mail on both servers (du -sh ~{account}); a restore \
                 module that failed or was skipped is named in the restore's notes (`ferry status`)"
            ),
            Finding::LostDomain { domain, .. } => format!(
                "recreate it for {account} as it is on the source (cPanel » Domains; for an addon \
                 domain `cpapi2 --user={account} AddonDomain addaddondomain newdomain={domain} …`), \
                 then compare its DNS zone and document root with the source's"
            ),
            Finding::Database { name, .. } => format!(
                "copy it from the source (mysqldump {name} there, import it here for {account}), \
                 or move the account again on purpose (overwrite_all_dbs with allow_overwrite)"
            ),
        }
    }
}

/// The differences between what the plan wants and the target's account.
pub fn compare(want: &Wanted, got: Option<&AccountSummary>) -> Vec<Finding> {
    let Some(got) = got else {
        return vec![Finding::Missing];
    };
    let mut out = Vec::new();
    if got.suspended {
        out.push(Finding::Suspended {
            reason: got.suspend_reason.clone(),
        });
    }
    if got.owner != want.owner {
        out.push(Finding::Owner {
            planned: want.owner.clone(),
            on_target: got.owner.clone(),
        });
    }
    if let Some(p) = &want.package
        && got.package.as_deref() != Some(p.as_str())
    {
        out.push(Finding::Package {
            planned: p.clone(),
            on_target: got.package.clone(),
        });
    }
    if let Some(d) = &want.domain
        && !got
            .domain
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(d))
    {
        out.push(Finding::Domain {
            planned: d.clone(),
            on_target: got.domain.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::masterlog::{Note, NoteKind};

    #[test]
    fn disk_is_a_finding_only_below_half_of_a_sizeable_source() {
        let gib = 1024 * MIB;
        assert_eq!(
            compare_disk(Some(gib), Some(400)),
            Some(Finding::Disk {
                source_bytes: gib,
                target_mib: 400
            })
        );
        assert_eq!(compare_disk(Some(gib), Some(600)), None, "over half");
        assert_eq!(compare_disk(Some(gib), Some(5000)), None, "more is no loss");
        assert_eq!(
            compare_disk(Some(90 * MIB), Some(0)),
            None,
            "small accounts vary"
        );
        assert_eq!(
            compare_disk(None, Some(0)),
            None,
            "quotas off on the source"
        );
        assert_eq!(compare_disk(Some(gib), None), None, "`none` on the target");
    }

    #[test]
    fn a_missing_database_is_a_finding_unless_the_restore_renamed_it() {
        let source = vec!["shop_wp".to_string(), "shop_logs".into(), "shop_old".into()];
        let target = vec!["shop_wp".to_string(), "shop_new".into()];
        let notes = vec![
            Note {
                kind: NoteKind::Altered,
                text: "The database shop_old was renamed to shop_new.".into(),
            },
            Note {
                kind: NoteKind::Warning,
                text: "The database shop_logs could not be restored.".into(),
            },
        ];
        let f = compare_databases(&source, &target, &notes);
        assert_eq!(
            f,
            vec![Finding::Database {
                name: "shop_logs".into(),
                said: Some("The database shop_logs could not be restored.".into()),
            }]
        );
        assert!(f[0].detail().contains("the restore said"));
        assert!(f[0].fix("shop").contains("mysqldump shop_logs"));
        assert!(compare_databases(&source, &source, &[]).is_empty());
    }

    #[test]
    fn domains_the_notes_name_are_looked_for_on_the_target() {
        let notes = vec![
            Note {
                kind: NoteKind::Warning,
                text:
                    "Failed to restore the domain “extra.example”: The domain could not be created."
                        .into(),
            },
            Note {
                kind: NoteKind::Warning,
                text: "The system cannot restore the MySQL database “shop_db”.".into(),
            },
            Note {
                kind: NoteKind::Skipped,
                text: "Skipped the domain “parked.example” and “extra.example”.".into(),
            },
        ];
        assert_eq!(domains_named(&notes), ["extra.example", "parked.example"]);
        let target = vec!["shop.example".to_string(), "PARKED.example".into()];
        let f = compare_domains(&domains_named(&notes), &target, &notes);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].detail()
                .starts_with("its domain extra.example is not on the target")
        );
        assert!(f[0].fix("shop").contains("newdomain=extra.example"));
        assert!(domains_named(&[]).is_empty());
    }

    #[test]
    fn the_sources_domain_stands_in_where_the_plan_names_none() {
        let want = Wanted {
            account: "shop".into(),
            owner: "root".into(),
            package: None,
            domain: None,
        };
        let r = Reported {
            domain: Some("shop.example"),
            ..Reported::default()
        };
        assert_eq!(
            want.clone().with_reported(&r).domain.as_deref(),
            Some("shop.example")
        );
        let planned = Wanted {
            domain: Some("planned.example".into()),
            ..want
        };
        assert_eq!(
            planned.with_reported(&r).domain.as_deref(),
            Some("planned.example")
        );
    }
}
