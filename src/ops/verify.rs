//! `ferry verify PLAN`: are the accounts the journal says transferred on
//! the target as the plan wants them?
//!
//! Owns: asking the target (one `accountsummary` per transferred account,
//! through the same gate, retries and `concurrency.api_requests` bound as
//! `apply`; `exec::verdict` compares), and the
//! report (a line per account and a verdict, or JSON lines). Does not own:
//! which accounts are transferred (the journal, read only), moving anything
//! (verify never writes to the target or the journal; a finding is for a
//! person), or printing (`cli`).
//!
//! What is compared is `exec::verdict`'s (the same as `apply`'s own
//! check): presence, suspension, owner, package, main domain, and against
//! what the source reported when the session was made (the journal's
//! `session_analysed`) disk use and MySQL databases — one
//! `list_mysql_databases_and_users` more for each account whose source
//! listed databases.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Error, Findings};
use crate::client::{AccountSummary, ErrorKind, RetryPolicy, WhmClient};
use crate::exec::Api;
use crate::journal::Progress;

/// What `ferry verify` was asked to do.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub plan: PathBuf,
    pub journal: Option<PathBuf>,
    pub request_timeout: Option<Duration>,
}

pub use crate::exec::verdict::{Finding, Wanted, compare};
use crate::exec::verdict::{
    Reported, compare_databases, compare_disk, compare_domains, domains_named,
};

/// How one account came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// On the target as planned.
    Pass { on_target: AccountSummary },
    /// On the target, but not as planned (or not there at all).
    Fail {
        findings: Vec<Finding>,
        #[serde(skip_serializing_if = "Option::is_none")]
        on_target: Option<AccountSummary>,
    },
    /// Not transferred yet: nothing to verify.
    Skipped { state: String },
    /// The target could not say: it lacks `accountsummary`, or did not
    /// answer. Fails nothing.
    Unavailable { reason: String },
}

/// One account's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountResult {
    pub account: String,
    pub source: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// What its restore's summary listed, as the journal kept it (a
    /// database or a setting it could not bring over is named there).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<crate::events::Note>,
}

/// What `ferry verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub plan: String,
    /// Sorted by target username.
    pub accounts: Vec<AccountResult>,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

impl VerifyReport {
    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.accounts.iter().filter(|a| f(&a.verdict)).count()
    }
}

impl Findings for VerifyReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn failed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Fail { .. }))
    }

    fn verdict_line(&self) -> String {
        let checked = self.count(|v| matches!(v, Verdict::Pass { .. } | Verdict::Fail { .. }));
        let skipped = self.count(|v| matches!(v, Verdict::Skipped { .. }));
        let unavailable = self.count(|v| matches!(v, Verdict::Unavailable { .. }));
        let secs = self.elapsed.as_secs_f64();
        let mut tail = String::new();
        if skipped > 0 {
            tail.push_str(&format!("; {skipped} not transferred yet"));
        }
        if unavailable > 0 {
            tail.push_str(&format!("; {unavailable} could not be checked"));
        }
        if self.failed() == 0 {
            format!(
                "✓ verified: {checked} transferred account(s) on the target as planned{tail} ({secs:.1}s)"
            )
        } else {
            format!(
                "✗ {} of {checked} transferred account(s) differ from the plan{tail} ({secs:.1}s); \
                 ferry moves none of them again: fix them on the target, then run `ferry verify` again",
                self.failed()
            )
        }
    }

    /// One line per account (what differs, then `fix:`).
    fn table(&self) -> String {
        let w =
            crate::untrusted::column_width(self.accounts.iter().map(|a| a.account.as_str()), 7, 32);
        let line = crate::untrusted::line;
        let mut out = String::new();
        for a in &self.accounts {
            let name = line(&a.account);
            match &a.verdict {
                Verdict::Pass { on_target: t } => out.push_str(&format!(
                    "✓ {name:w$}  owner {}, package {}, domain {}{}\n",
                    line(&t.owner),
                    line(t.package.as_deref().unwrap_or("(none)")),
                    line(t.domain.as_deref().unwrap_or("(none)")),
                    t.disk_used_mib
                        .map(|m| format!(", {m} MiB used"))
                        .unwrap_or_default()
                )),
                Verdict::Fail { findings, .. } => {
                    for (i, f) in findings.iter().enumerate() {
                        let lead = if i == 0 {
                            name.to_string()
                        } else {
                            String::new()
                        };
                        out.push_str(&format!(
                            "✗ {lead:w$}  {} — fix: {}\n",
                            line(&f.detail()),
                            line(&f.fix(&a.account))
                        ));
                    }
                }
                Verdict::Skipped { state } => {
                    out.push_str(&format!("- {name:w$}  not verified: {state}\n"))
                }
                Verdict::Unavailable { reason } => out.push_str(&format!(
                    "? {name:w$}  could not be checked: {}\n",
                    line(reason)
                )),
            }
            for n in &a.notes {
                out.push_str(&format!(
                    "  {:w$}  the restore said ({}): {}\n",
                    "",
                    n.kind.as_str(),
                    line(&n.text)
                ));
            }
        }
        out
    }

    /// JSON Lines: one `verify` object per account, then `verify_finished`.
    fn render_json(&self) -> String {
        crate::report::json::report_lines(
            "verify",
            &self.accounts,
            serde_json::json!({
                "plan": self.plan,
                "status": if self.failed() == 0 { "passed" } else { "failed" },
                "accounts": self.accounts.len(),
                "failed": self.failed(),
                "warnings": self.warnings,
                "elapsed_ms": self.elapsed.as_millis() as u64,
            }),
        )
    }
}

/// Runs `ferry verify`: the plan, the journal (read only), then one
/// `accountsummary` per transferred account.
pub fn verify(opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    let started = Instant::now();
    let loaded = super::apply::load(&opts.plan)?;
    let w = super::journal::locate(&loaded, opts.journal.as_deref(), super::journal::Kind::Run)?;
    if let super::journal::Where::File(p) = &w
        && p.exists()
    {
        super::journal::check_belongs(p, &loaded)?;
    }
    // A file, or the plan's run in PostgreSQL: read only.
    let Some((state, _)) = super::journal::read_state(&w)? else {
        return Err(Error::Failed(format!(
            "no journal at {}: nothing of this plan has been transferred yet, so there is nothing \
             to verify. Run `ferry apply {}` first, or pass --journal",
            w.label().display(),
            opts.plan.display()
        )));
    };
    if state.simulate {
        return Err(Error::Usage(format!(
            "the journal {} records a rehearsal (`apply --simulate`): nothing of it is on the real \
             target, whose accounts it would compare. Verify the real run's journal (drop --journal)",
            w.label().display()
        )));
    }
    let mut cfg = super::control::target_config(&loaded)?;
    if let Some(t) = opts.request_timeout {
        cfg.request_timeout = t;
    }
    let mut warnings = Vec::new();
    if cfg.insecure {
        warnings.push(super::resolve::insecure_warning(&loaded.plan.target.url));
    }
    let client = WhmClient::new(cfg).map_err(|e| Error::Usage(format!("target: {e}")))?;
    let r = &loaded.plan.policy.retries;
    let api = Api::new(
        client,
        RetryPolicy {
            attempts: r.attempts,
            initial: r.initial_backoff.0,
            max: r.max_backoff.0,
        },
    )
    .with_limit(loaded.plan.concurrency.api_requests as usize);

    let compiled = crate::graph::compile(&loaded.plan);
    let mut planned: Vec<(Wanted, String)> = Vec::new();
    for s in &compiled.sessions {
        for a in &s.accounts {
            planned.push((Wanted::of(a), loaded.plan.sources[a.source].name.clone()));
        }
    }
    planned.sort_by(|a, b| a.0.account.cmp(&b.0.account));

    let rt = super::apply::runtime()?;
    let api = Arc::new(api);
    // The databases of accounts whose source listed some (journaled by
    // apply's `session_analysed`): one more request each.
    let with_dbs: Vec<String> = state
        .accounts
        .iter()
        .filter(|(_, a)| a.progress == Progress::Transferred)
        .filter(|(_, a)| a.reported.as_ref().is_some_and(|r| !r.databases.is_empty()))
        .map(|(n, _)| n.clone())
        .collect();
    let databases = rt.block_on(ask_databases(api.clone(), with_dbs));
    // The domains of accounts whose restore's notes name a domain.
    let with_domains: Vec<String> = state
        .accounts
        .iter()
        .filter(|(_, a)| a.progress == Progress::Transferred)
        .filter(|(_, a)| !domains_named(&a.notes).is_empty())
        .map(|(n, _)| n.clone())
        .collect();
    let domains = rt.block_on(ask_each(
        api.clone(),
        with_domains,
        "get_domain_info",
        |c, user| async move { c.domains_of(&user).await },
    ));
    let summaries = rt.block_on(ask(
        api,
        planned
            .iter()
            .filter(|(w, _)| {
                state
                    .accounts
                    .get(&w.account)
                    .is_some_and(|a| a.progress == Progress::Transferred)
            })
            .map(|(w, _)| w.account.clone())
            .collect(),
    ));
    let accounts = planned
        .into_iter()
        .map(|(want, source)| {
            let acc = state.accounts.get(&want.account);
            let verdict = match (acc.map(|a| &a.progress), summaries.get(&want.account)) {
                (Some(Progress::Transferred), Some(Ok(got))) => {
                    let reported = acc.and_then(|a| a.reported.as_ref());
                    let r = reported.map_or_else(Reported::default, |r| Reported {
                        bytes: r.bytes,
                        domain: r.domain.as_deref(),
                        databases: &r.databases,
                    });
                    let mut findings = compare(&want.clone().with_reported(&r), got.as_ref());
                    if let Some(t) = got {
                        findings.extend(compare_disk(r.bytes, t.disk_used_mib));
                        let notes = acc.map(|a| a.notes.as_slice()).unwrap_or_default();
                        if let Some(Ok(Some(dbs))) = databases.get(&want.account) {
                            findings.extend(compare_databases(r.databases, dbs, notes));
                        }
                        if let Some(Ok(listed)) = domains.get(&want.account) {
                            findings.extend(compare_domains(&domains_named(notes), listed, notes));
                        }
                    }
                    match (findings.is_empty(), got) {
                        (true, Some(t)) => Verdict::Pass {
                            on_target: t.clone(),
                        },
                        _ => Verdict::Fail {
                            findings,
                            on_target: got.clone(),
                        },
                    }
                }
                (Some(Progress::Transferred), Some(Err(reason))) => Verdict::Unavailable {
                    reason: reason.clone(),
                },
                (p, _) => Verdict::Skipped {
                    state: p
                        .map_or("never in a run of this plan", |p| p.label())
                        .to_string(),
                },
            };
            AccountResult {
                account: want.account,
                source,
                verdict,
                notes: acc.map(|a| a.notes.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Ok(VerifyReport {
        plan: opts.plan.display().to_string(),
        accounts,
        warnings,
        elapsed: started.elapsed(),
    })
}

/// One read of the target per account, concurrently within the gate's
/// bound, each retried as `apply` retries it. `Err` says why the target
/// could not tell (`function` names the WHM function when the target
/// lacks it).
async fn ask_each<T, F, Fut>(
    api: Arc<Api>,
    accounts: Vec<String>,
    function: &'static str,
    call: F,
) -> BTreeMap<String, Result<T, String>>
where
    T: Send + 'static,
    F: Fn(WhmClient, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, crate::client::Error>> + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for account in accounts {
        let (api, call) = (api.clone(), call.clone());
        tasks.spawn(async move {
            let user = account.clone();
            let r = api
                .repeatable(|_| {}, move |c| call(c, user.clone()))
                .await
                .map_err(|e| match &e.error().kind {
                    ErrorKind::Whm { reason }
                        if crate::client::whm::is_unknown_function(reason) =>
                    {
                        format!("the target has no `{function}` function")
                    }
                    _ => e.error().to_string(),
                });
            (account, r)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((account, r)) = done {
            out.insert(account, r);
        }
    }
    out
}

/// `accountsummary` for each account.
async fn ask(
    api: Arc<Api>,
    accounts: Vec<String>,
) -> BTreeMap<String, Result<Option<AccountSummary>, String>> {
    ask_each(api, accounts, "accountsummary", |c, user| async move {
        c.accountsummary(&user).await
    })
    .await
}

/// `list_mysql_databases_and_users` for each account; `Err` (the target
/// lacks the function, or did not answer) leaves its databases unchecked.
async fn ask_databases(
    api: Arc<Api>,
    accounts: Vec<String>,
) -> BTreeMap<String, Result<Option<Vec<String>>, String>> {
    ask_each(
        api,
        accounts,
        "list_mysql_databases_and_users",
        |c, user| async move { c.list_mysql_databases(&user).await },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> Wanted {
        Wanted {
            account: "shop".into(),
            owner: "resell1".into(),
            package: Some("gold".into()),
            domain: Some("shop.example".into()),
        }
    }

    fn got() -> AccountSummary {
        AccountSummary {
            user: "shop".into(),
            domain: Some("Shop.Example".into()),
            owner: "resell1".into(),
            package: Some("gold".into()),
            suspended: false,
            suspend_reason: None,
            disk_used_mib: Some(812),
        }
    }

    #[test]
    fn an_account_as_planned_has_no_finding() {
        assert_eq!(compare(&want(), Some(&got())), vec![]);
        // What the plan does not say is not compared.
        let loose = Wanted {
            package: None,
            domain: None,
            ..want()
        };
        let other = AccountSummary {
            package: None,
            domain: None,
            ..got()
        };
        assert_eq!(compare(&loose, Some(&other)), vec![]);
    }

    #[test]
    fn each_difference_is_a_finding_with_a_fix() {
        assert_eq!(compare(&want(), None), vec![Finding::Missing]);
        let bad = AccountSummary {
            owner: "root".into(),
            package: Some("default".into()),
            domain: Some("other.example".into()),
            suspended: true,
            suspend_reason: Some("billing".into()),
            ..got()
        };
        let f = compare(&want(), Some(&bad));
        assert_eq!(
            f,
            vec![
                Finding::Suspended {
                    reason: Some("billing".into())
                },
                Finding::Owner {
                    planned: "resell1".into(),
                    on_target: "root".into()
                },
                Finding::Package {
                    planned: "gold".into(),
                    on_target: Some("default".into())
                },
                Finding::Domain {
                    planned: "shop.example".into(),
                    on_target: Some("other.example".into())
                },
            ]
        );
        assert!(
            f[1].fix("shop")
                .contains("modifyacct user=shop owner=resell1")
        );
        assert!(
            f[2].fix("shop")
                .contains("changepackage user=shop pkg=gold")
        );
        assert!(f[0].detail().contains("billing"));
    }
}
