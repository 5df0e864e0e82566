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
//! shows here), the planned package, and the plan's main domain where the
//! plan gives one.

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
