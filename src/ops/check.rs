//! `ferry check PLAN`: a read-only preflight against the live servers
//! (design §2, issue 7).
//!
//! Checks, in order:
//! 1. the target answers and accepts the token (`listaccts`); if not,
//!    nothing else is tried;
//! 2. each source's SSH credentials, as the target sees them
//!    (`remote_basic_credential_check`);
//! 3. each account and package of the plan exists on its source: a transfer
//!    session is created on the target and its remote analysis read
//!    (`analyze_transfer_session_remote` +
//!    `retrieve_transfer_session_remote_analysis`);
//! 4. each target username is free and valid (`validate_system_user`).
//!
//! The analysis session is never started, so nothing is transferred. It is
//! then aborted: WHM turns an aborted PENDING session FAILED, which can
//! never be started by anyone (a PENDING one would linger for 4 hours and
//! could be started from WHM's interface). If the abort fails, the session
//! stays PENDING, is harmless, and WHM deletes it after 4 hours; the report
//! says so.
//!
//! Every request goes through the one gate of every command
//! ([`crate::exec::Api`]): at most `concurrency.api_requests` in flight at
//! once, so 200 sources are checked in seconds without flooding the target.
//! Idempotent reads are retried on transient failures per the plan's
//! `policy.retries`; session creation is not (a lost answer leaves only a
//! harmless PENDING session). An auth refusal is never retried and stops
//! every further request: WHM's brute-force protection would lock the
//! operator out.
//!
//! Owns: the checks and the [`CheckReport`] with its text and JSON
//! renderings. Does not own: printing (cli prints the strings made here).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::resolve::{Resolved, resolve};
use super::{ExitStatus, Findings};
use crate::client::{
    CreateSession, CredentialCheck, Error as ClientError, ErrorKind, RetryPolicy, SshAuth,
    SshLogin, WhmClient,
};
use crate::exec::Api;
use crate::plan::inventory::Inventory;
use crate::plan::{Diagnostics, Plan, Source};

/// What `ferry check` needs to know.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub plan: PathBuf,
    /// Requests in flight at once (default: the plan's
    /// `concurrency.api_requests`).
    pub concurrency: Option<usize>,
    /// Timeout of one WHM request (`--request-timeout`; default 60 s).
    pub request_timeout: Option<std::time::Duration>,
}

impl CheckOptions {
    pub fn new(plan: impl Into<PathBuf>) -> Self {
        CheckOptions {
            plan: plan.into(),
            concurrency: None,
            request_timeout: None,
        }
    }
}

/// Which check a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Target,
    Credentials,
    Analysis,
    Package,
    Account,
    Username,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Target => "target",
            CheckKind::Credentials => "credentials",
            CheckKind::Analysis => "analysis",
            CheckKind::Package => "package",
            CheckKind::Account => "account",
            CheckKind::Username => "username",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not checked because an earlier check failed.
    Skipped,
    /// Works, but the operator should know (does not fail the check).
    Warn,
}

impl Verdict {
    fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::Skipped => "–",
            Verdict::Warn => "!",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: CheckKind,
    /// What was checked: the target host, a source, `source/account`, a
    /// target username.
    pub subject: String,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Sort key: (source index + 1, or 0 for the target; check; item index).
    #[serde(skip)]
    order: (usize, CheckKind, usize),
}

/// The result of `ferry check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub plan: String,
    pub findings: Vec<Finding>,
    /// Printed before the table (e.g. `tls.insecure`).
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl CheckReport {
    /// All green?
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }
}

impl Findings for CheckReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn failed(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::Fail | Verdict::Skipped))
            .count()
    }

    fn verdict_line(&self) -> String {
        let n = self.findings.len();
        let secs = self.elapsed.as_secs_f64();
        if self.ok() {
            format!("✓ ready: all {n} checks passed ({secs:.1}s)")
        } else {
            format!(
                "✗ not ready: {} of {n} checks failed or could not run ({secs:.1}s); fix them and run `ferry check` again",
                self.failed()
            )
        }
    }

    /// Check, subject, verdict, detail — fix. Warnings are not included.
    fn table(&self) -> String {
        use crate::untrusted::column_width;
        let w_check = column_width(self.findings.iter().map(|f| f.check.as_str()), 5, 48);
        let w_subject = column_width(self.findings.iter().map(|f| f.subject.as_str()), 7, 48);
        let mut out = format!(
            "{:w_check$}  {:w_subject$}  {}  {}\n",
            "CHECK", "SUBJECT", " ", "DETAIL"
        );
        for f in &self.findings {
            let mut line = format!(
                "{:w_check$}  {:w_subject$}  {}  {}",
                f.check.as_str(),
                crate::untrusted::line(&f.subject),
                f.verdict.mark(),
                crate::untrusted::line(&f.detail)
            );
            if let Some(fix) = &f.fix {
                line.push_str(" — fix: ");
                line.push_str(&crate::untrusted::line(fix));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// JSON Lines (design §7): one `check` event per finding, then
    /// `check_finished`.
    fn render_json(&self) -> String {
        crate::report::json::report_lines(
            "check",
            &self.findings,
            serde_json::json!({
                "plan": self.plan,
                "status": if self.ok() { "passed" } else { "failed" },
                "checks": self.findings.len(),
                "failed": self.failed(),
                "warnings": self.warnings,
                "elapsed_ms": self.elapsed.as_millis() as u64,
            }),
        )
    }
}

/// Why `ferry check` could not run its checks at all (exit 2 unless said).
#[derive(Debug)]
pub enum CheckError {
    /// The plan is invalid; render with `Diagnostics::render_human`.
    Plan(Diagnostics),
    /// A secret could not be resolved, the CA file is unreadable, or the
    /// target URL is refused. Nothing was sent.
    Invalid(String),
    /// The async runtime could not start (exit 1).
    Runtime(String),
}

impl CheckError {
    pub fn status(&self) -> ExitStatus {
        match self {
            CheckError::Plan(_) | CheckError::Invalid(_) => ExitStatus::Invalid,
            CheckError::Runtime(_) => ExitStatus::Failure,
        }
    }
}

/// Runs `ferry check`: load the plan, resolve its secrets, check the
/// servers. A plan error or a missing secret fails before any request.
pub fn check(opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    let loaded = crate::plan::load(&opts.plan).map_err(CheckError::Plan)?;
    check_plan(
        &loaded.plan,
        &loaded.base_dir,
        &opts.plan.display().to_string(),
        loaded.inventory.clone(),
        opts,
    )
}

/// The checks of an already loaded plan; with its inventory, the
/// stale-plan guard's growth warnings too (`exec::stale`).
pub fn check_plan(
    plan: &Plan,
    base_dir: &Path,
    plan_name: &str,
    inventory: Option<Arc<Inventory>>,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let started = Instant::now();
    let concurrency = opts
        .concurrency
        .unwrap_or(plan.concurrency.api_requests as usize);
    let mut resolved = resolve(plan, base_dir).map_err(|e| {
        CheckError::Invalid(format!(
            "cannot resolve the plan's secrets (nothing was sent):\n{e}"
        ))
    })?;
    if let Some(t) = opts.request_timeout {
        resolved.target.request_timeout = t;
    }
    let client = WhmClient::new(resolved.target.clone())
        .map_err(|e| CheckError::Invalid(format!("target.url: {}", e.kind)))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CheckError::Runtime(format!("cannot start the async runtime: {e}")))?;
    let stale = inventory.map(|inv| Stale {
        inventory: inv,
        growth: plan.policy.growth_warning,
        plan_path: plan_name.to_string(),
    });
    let mut findings = rt.block_on(run_checks(plan, &resolved, client, concurrency, stale));
    findings.sort_by_key(|f| f.order);
    Ok(CheckReport {
        plan: plan_name.to_string(),
        findings,
        warnings: resolved.warnings,
        elapsed: started.elapsed(),
    })
}

/// Shared by every check task: the one gate to the target
/// ([`crate::exec::Api`]), as for `apply`: the same retries, the same stop
/// after a refused token (cPHulk counts failed logins) or an untrusted
/// certificate, and the plan's `concurrency.api_requests` bound — each
/// request holds a place for its duration only, so a slow source does not
/// hold up the others.
struct Ctx {
    api: Api,
    /// The inventory beside the plan, for the growth warnings.
    stale: Option<Stale>,
}

/// What the stale-plan guard compares each source's analysis with.
struct Stale {
    inventory: Arc<Inventory>,
    growth: f64,
    plan_path: String,
}

impl Ctx {
    fn host(&self) -> &str {
        self.api.client().host()
    }

    /// One idempotent call, bounded and retried on transient failures.
    async fn read<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: FnMut(WhmClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        self.api
            .repeatable(|_| {}, f)
            .await
            .map_err(|e| e.error().clone())
    }

    /// One call that must not be repeated blindly (session creation).
    async fn once<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: FnOnce(WhmClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        self.api.once(f).await.map_err(|e| e.error().clone())
    }

    /// Every call stopped (a refused token, an untrusted certificate).
    fn refused(&self) -> bool {
        self.api.refused().is_some()
    }
}

async fn run_checks(
    plan: &Plan,
    resolved: &Resolved,
    client: WhmClient,
    concurrency: usize,
    stale: Option<Stale>,
) -> Vec<Finding> {
    let r = &plan.policy.retries;
    let retry = RetryPolicy {
        attempts: r.attempts,
        initial: r.initial_backoff.0,
        max: r.max_backoff.0,
    };
    let ctx = Arc::new(Ctx {
        api: Api::new(client, retry).with_limit(concurrency),
        stale,
    });
    let target = target_check(&ctx, &plan.target.user).await;
    let usable = target.verdict == Verdict::Pass;
    let mut findings = vec![target];
    if !usable {
        return findings;
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (i, (source, login)) in plan.sources.iter().zip(&resolved.sources).enumerate() {
        let ctx = ctx.clone();
        let source = source.clone();
        let login = login.clone();
        tasks.spawn(async move { source_checks(&ctx, i, &source, &login).await });
    }
    for (i, source) in plan.sources.iter().enumerate() {
        for (j, entry) in source.accounts.iter().enumerate() {
            let ctx = ctx.clone();
            let account = entry.account();
            let subject = account.target_user().to_string();
            let name = source.name.clone();
            tasks.spawn(async move {
                vec![username_check(&ctx, i, j, &name, &account.user, &subject).await]
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(mut f) => findings.append(&mut f),
            Err(e) => findings.push(Finding {
                check: CheckKind::Target,
                subject: "ferry".into(),
                verdict: Verdict::Fail,
                detail: format!("a check task failed: {e}"),
                fix: Some("report this as a bug".into()),
                order: (usize::MAX, CheckKind::Target, 0),
            }),
        }
    }
    summarise_usernames(plan, findings)
}

/// One line per failing username, and one per source for all that passed:
/// a fleet of thousands of accounts still gives a table worth reading.
fn summarise_usernames(plan: &Plan, findings: Vec<Finding>) -> Vec<Finding> {
    let mut passed: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out: Vec<Finding> = findings
        .into_iter()
        .filter(|f| {
            let collapse = f.check == CheckKind::Username && f.verdict == Verdict::Pass;
            if collapse {
                *passed.entry(f.order.0).or_default() += 1;
            }
            !collapse
        })
        .collect();
    for (si, n) in passed {
        let source = &plan.sources[si - 1];
        let total = source.accounts.len();
        out.push(Finding {
            check: CheckKind::Username,
            subject: source.name.clone(),
            verdict: Verdict::Pass,
            detail: if n == total {
                format!(
                    "all {n} target username(s) of {} are free on the target",
                    source.name
                )
            } else {
                format!(
                    "{n} of {total} target usernames of {} are free on the target",
                    source.name
                )
            },
            fix: None,
            order: (si, CheckKind::Username, 0),
        });
    }
    out
}

/// Fix text for failures that are about reaching the target at all.
fn target_fix(e: &ClientError) -> Option<String> {
    match &e.kind {
        ErrorKind::AuthRefused { .. } => Some(
            "check target.user and the token its reference points to (WHM » Manage API Tokens); \
             ferry sent it once and will not retry, so WHM's brute-force protection is not tripped"
                .into(),
        ),
        // The message already names the host and the fix.
        ErrorKind::Tls(_) => None,
        ErrorKind::Connect(_) | ErrorKind::Timeout | ErrorKind::ConnectionLost(_) => Some(
            "check target.url (https://HOST:2087), that WHM runs, and that this machine may reach it".into(),
        ),
        _ => Some("check that target.url points at WHM (port 2087)".into()),
    }
}

async fn target_check(ctx: &Ctx, user: &str) -> Finding {
    let host = ctx.host().to_string();
    let order = (0, CheckKind::Target, 0);
    match ctx.read(|c| async move { c.listaccts().await }).await {
        Ok(accounts) => Finding {
            check: CheckKind::Target,
            subject: host,
            verdict: Verdict::Pass,
            detail: format!(
                "answers; API token of `{user}` accepted; {} account{} present",
                accounts.len(),
                if accounts.len() == 1 { "" } else { "s" }
            ),
            fix: None,
            order,
        },
        Err(e) => Finding {
            check: CheckKind::Target,
            subject: host,
            verdict: Verdict::Fail,
            fix: target_fix(&e),
            detail: format!("{} — nothing else was checked", e.kind),
            order,
        },
    }
}

fn login_summary(host: &str, l: &SshLogin) -> String {
    let how = match &l.auth {
        SshAuth::Password(_) => "password".to_string(),
        SshAuth::Key { name, .. } => format!("key {name}"),
    };
    let esc = match &l.escalation {
        Some((m, _)) => format!(", then {}", m.as_str()),
        None => String::new(),
    };
    format!("{}@{host}:{} ({how}{esc})", l.user, l.port)
}

fn skipped(
    check: CheckKind,
    subject: String,
    why: &str,
    order: (usize, CheckKind, usize),
) -> Finding {
    Finding {
        check,
        subject,
        verdict: Verdict::Skipped,
        detail: format!("not checked: {why}"),
        fix: None,
        order,
    }
}

const AUTH_SKIP: &str = "the target refused the API token (see above)";

/// Credentials, then the remote analysis, of one source.
async fn source_checks(ctx: &Ctx, i: usize, source: &Source, login: &SshLogin) -> Vec<Finding> {
    let si = i + 1;
    let name = &source.name;
    if ctx.refused() {
        return vec![skipped(
            CheckKind::Credentials,
            name.clone(),
            AUTH_SKIP,
            (si, CheckKind::Credentials, 0),
        )];
    }
    let req = CredentialCheck {
        host: source.host.clone(),
        ssh: login.clone(),
    };
    let who = login_summary(&source.host, login);
    let req = &req;
    let cred = ctx
        .read(|c| async move { c.remote_basic_credential_check(req).await })
        .await;
    let mut out = Vec::new();
    let order = (si, CheckKind::Credentials, 0);
    match cred {
        Ok(()) => out.push(Finding {
            check: CheckKind::Credentials,
            subject: name.clone(),
            verdict: Verdict::Pass,
            detail: format!("the target logs in as {who}"),
            fix: None,
            order,
        }),
        Err(e) => {
            let fix = match &e.kind {
                ErrorKind::Whm { .. } => Some(format!(
                    "check sources[{i}] ({name}).ssh: user, port, and the secret its reference points to; \
                     the target must reach {}:{} over SSH",
                    source.host, login.port
                )),
                _ => target_fix(&e),
            };
            out.push(Finding {
                check: CheckKind::Credentials,
                subject: name.clone(),
                verdict: Verdict::Fail,
                detail: format!("{who}: {}", e.kind),
                fix,
                order,
            });
            out.push(skipped(
                CheckKind::Analysis,
                name.clone(),
                "the credentials failed",
                (si, CheckKind::Analysis, 0),
            ));
            return out;
        }
    }
    out.extend(analysis_checks(ctx, i, source, login).await);
    out
}

/// Creates a (never started) session, reads its remote analysis, compares
/// it with the plan, and aborts the session.
async fn analysis_checks(ctx: &Ctx, i: usize, source: &Source, login: &SshLogin) -> Vec<Finding> {
    let si = i + 1;
    let name = &source.name;
    let order = (si, CheckKind::Analysis, 0);
    if ctx.refused() {
        return vec![skipped(CheckKind::Analysis, name.clone(), AUTH_SKIP, order)];
    }
    let create = CreateSession::for_analysis(&source.host, login);
    let create = &create;
    let session = match ctx
        .once(|c| async move { c.create_remote_root_transfer_session(create).await })
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding {
                check: CheckKind::Analysis,
                subject: name.clone(),
                verdict: Verdict::Fail,
                detail: format!(
                    "cannot open an analysis session for {}: {}",
                    source.host, e.kind
                ),
                fix: Some(match e.kind {
                    ErrorKind::Whm { .. } => format!(
                        "the target could not analyse {} (see the reason); check sources[{i}] ({name}).host and .ssh",
                        source.host
                    ),
                    _ => target_fix(&e).unwrap_or_default(),
                }),
                order,
            }];
        }
    };
    let sid = &session;
    let analysis = ctx
        .read(|c| async move { c.analyze_remote(sid).await })
        .await;
    // Abort the never-started session: PENDING → FAILED, so it can never
    // be started. Best effort: a PENDING leftover is harmless.
    let abort = if ctx.refused() {
        Err(None)
    } else {
        ctx.read(|c| async move { c.abort_transfer_session(sid).await })
            .await
            .map_err(Some)
    };
    let mut out = Vec::new();
    if let Err(e) = abort {
        out.push(Finding {
            check: CheckKind::Analysis,
            subject: name.clone(),
            verdict: Verdict::Warn,
            detail: format!(
                "analysis session {session} could not be aborted{}; it stays PENDING (harmless, never started) \
                 until WHM deletes it after 4 hours",
                e.map(|e| format!(" ({})", e.kind)).unwrap_or_default()
            ),
            fix: None,
            order: (si, CheckKind::Analysis, 1),
        });
    }
    let analysis = match analysis {
        Ok(a) => a,
        Err(e) => {
            out.push(Finding {
                check: CheckKind::Analysis,
                subject: name.clone(),
                verdict: Verdict::Fail,
                detail: format!("the remote analysis of {} failed: {}", source.host, e.kind),
                fix: target_fix(&e),
                order,
            });
            return out;
        }
    };
    out.push(Finding {
        check: CheckKind::Analysis,
        subject: name.clone(),
        verdict: Verdict::Pass,
        detail: format!(
            "{} lists {} account{} and {} package{}",
            source.host,
            analysis.accounts.len(),
            if analysis.accounts.len() == 1 {
                ""
            } else {
                "s"
            },
            analysis.packages.len(),
            if analysis.packages.len() == 1 {
                ""
            } else {
                "s"
            },
        ),
        fix: None,
        order,
    });
    let remote_accounts: BTreeMap<&str, _> = analysis
        .accounts
        .iter()
        .map(|a| (a.user.as_str(), a))
        .collect();
    let remote_packages: BTreeSet<&str> = analysis.packages.iter().map(String::as_str).collect();

    let packages = source.packages.iter().map(String::as_str);
    let pkg_fix = |p: &str| {
        format!(
            "check the name in sources[{i}] ({name}).packages, or remove it and the accounts' `package: {p}`"
        )
    };
    let at = (si, source.host.as_str(), name.as_str());
    if !source.packages.is_empty() {
        presence(
            &mut out,
            CheckKind::Package,
            at,
            packages,
            |p| remote_packages.contains(p),
            pkg_fix,
        );
    }
    let users = source.accounts.iter().map(crate::plan::AccountEntry::user);
    let user_fix = |_: &str| {
        format!(
            "check the user name (the cPanel user on the source, not the domain) in sources[{i}] ({name}).accounts, or remove it"
        )
    };
    presence(
        &mut out,
        CheckKind::Account,
        at,
        users,
        |u| remote_accounts.contains_key(u),
        user_fix,
    );
    // Growth since the inventory: what `apply` warns of before it starts
    // (a missing account or package is the failure above).
    if let Some(st) = &ctx.stale {
        let users: Vec<&str> = source
            .accounts
            .iter()
            .map(crate::plan::AccountEntry::user)
            .collect();
        let found = crate::exec::stale::compare(
            name,
            &st.plan_path,
            &users,
            &[],
            &analysis,
            &st.inventory,
            st.growth,
        );
        for (j, w) in found.warnings.into_iter().enumerate() {
            out.push(Finding {
                check: CheckKind::Account,
                subject: name.to_string(),
                verdict: Verdict::Warn,
                detail: w,
                fix: None,
                order: (si, CheckKind::Account, users.len() + j + 1),
            });
        }
    }
    out
}

/// A failing finding for each planned name (`what` of `check`) the source
/// lacks, or one passing finding for them all. `at`: the source's index,
/// host and name.
fn presence<'a>(
    out: &mut Vec<Finding>,
    check: CheckKind,
    (si, host, name): (usize, &str, &str),
    planned: impl ExactSizeIterator<Item = &'a str>,
    present: impl Fn(&str) -> bool,
    fix: impl Fn(&str) -> String,
) {
    let (what, whose) = match check {
        CheckKind::Package => ("package", "package(s)"),
        _ => ("account", "account(s) of the plan"),
    };
    let total = planned.len();
    let before = out.len();
    for (j, p) in planned.enumerate() {
        if !present(p) {
            out.push(Finding {
                check,
                subject: format!("{name}/{p}"),
                verdict: Verdict::Fail,
                detail: format!("{what} `{p}` does not exist on {host}"),
                fix: Some(fix(p)),
                order: (si, check, j),
            });
        }
    }
    if out.len() == before {
        out.push(Finding {
            check,
            subject: name.to_string(),
            verdict: Verdict::Pass,
            detail: format!("all {total} {whose} exist on {host}"),
            fix: None,
            order: (si, check, 0),
        });
    }
}

/// Is the account's username free and valid on the target?
async fn username_check(
    ctx: &Ctx,
    i: usize,
    j: usize,
    source: &str,
    user: &str,
    target_user: &str,
) -> Finding {
    let order = (i + 1, CheckKind::Username, j);
    let subject = target_user.to_string();
    if ctx.refused() {
        return skipped(CheckKind::Username, subject, AUTH_SKIP, order);
    }
    let from = if user == target_user {
        format!("{source}/{user}")
    } else {
        format!("{source}/{user} → {target_user}")
    };
    let rename_fix = format!(
        "give sources[{i}] ({source}).accounts[{j}] a free `localuser:` (the name on the target), \
         or remove the existing `{target_user}` from the target"
    );
    match ctx
        .read(|c| async move { c.validate_system_user(target_user).await })
        .await
    {
        Ok(u) if u.exists => Finding {
            check: CheckKind::Username,
            subject,
            verdict: Verdict::Fail,
            detail: format!("`{target_user}` already exists on the target ({from})"),
            fix: Some(rename_fix),
            order,
        },
        Ok(u) if u.reserved => Finding {
            check: CheckKind::Username,
            subject,
            verdict: Verdict::Fail,
            detail: format!("`{target_user}` is reserved by the system on the target ({from})"),
            fix: Some(format!(
                "give sources[{i}] ({source}).accounts[{j}] another `localuser:`"
            )),
            order,
        },
        Ok(u) if !u.valid_for_transfer => Finding {
            check: CheckKind::Username,
            subject,
            verdict: Verdict::Fail,
            detail: format!(
                "`{target_user}` is not a valid username for a transfer on the target ({from})"
            ),
            fix: Some(format!(
                "give sources[{i}] ({source}).accounts[{j}] a `localuser:` of lowercase letters and digits \
                 that starts with a letter (at most 16 characters)"
            )),
            order,
        },
        Ok(_) => Finding {
            check: CheckKind::Username,
            subject,
            verdict: Verdict::Pass,
            detail: format!("free on the target ({from})"),
            fix: None,
            order,
        },
        Err(e) => Finding {
            check: CheckKind::Username,
            subject,
            verdict: Verdict::Fail,
            detail: format!("could not check: {}", e.kind),
            fix: target_fix(&e),
            order,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(check: CheckKind, subject: &str, verdict: Verdict, fix: Option<&str>) -> Finding {
        Finding {
            check,
            subject: subject.into(),
            verdict,
            detail: format!("{} detail", subject),
            fix: fix.map(Into::into),
            order: (0, check, 0),
        }
    }

    #[test]
    fn text_and_json_renderings() {
        let r = CheckReport {
            plan: "plans/x.yaml".into(),
            findings: vec![
                f(
                    CheckKind::Target,
                    "whm.example.net:2087",
                    Verdict::Pass,
                    None,
                ),
                f(
                    CheckKind::Username,
                    "taken",
                    Verdict::Fail,
                    Some("rename it"),
                ),
            ],
            warnings: vec![],
            elapsed: Duration::from_millis(1200),
        };
        assert!(!r.ok());
        assert_eq!(r.status(), ExitStatus::Failure);
        let t = r.render_text();
        let lines: Vec<_> = t.lines().collect();
        assert!(lines[0].starts_with("CHECK"), "{t}");
        assert!(
            lines[1].contains("✓") && lines[1].contains("whm.example.net:2087"),
            "{t}"
        );
        assert!(
            lines[2].contains("✗") && lines[2].contains("fix: rename it"),
            "{t}"
        );
        assert!(t.contains("1 of 2 checks failed"), "{t}");

        let j = r.render_json();
        let events: Vec<serde_json::Value> = j
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[1]["event"], "check");
        assert_eq!(events[1]["verdict"], "fail");
        assert_eq!(events[1]["fix"], "rename it");
        assert_eq!(events[2]["event"], "check_finished");
        assert_eq!(events[2]["status"], "failed");
        assert!(events[0]["ts"].as_str().unwrap().contains('T'));
    }

    #[test]
    fn all_green_exit_zero() {
        let r = CheckReport {
            plan: "p".into(),
            findings: vec![
                f(CheckKind::Target, "t", Verdict::Pass, None),
                f(CheckKind::Analysis, "s", Verdict::Warn, None),
            ],
            warnings: vec![],
            elapsed: Duration::ZERO,
        };
        assert!(r.ok());
        assert_eq!(r.status(), ExitStatus::Success);
        assert!(r.verdict_line().starts_with("✓ ready"));
    }
}
