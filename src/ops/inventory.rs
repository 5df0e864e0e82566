//! `ferry inventory PLAN`: what every source holds, from its read-only
//! remote analysis, written next to the plan as `<stem>.inventory.json`
//! (issue 12; the format is [`crate::plan::inventory`]).
//!
//! Per source, as `ferry check` does: a transfer session is created on the
//! target (never started), its remote analysis read
//! (`analyze_transfer_session_remote` +
//! `retrieve_transfer_session_remote_analysis`), and the session aborted
//! (PENDING → FAILED, so nobody can start it). Every request goes through
//! the one gate [`crate::exec::Api`]: the plan's retries and
//! `concurrency.api_requests`, and no request after a refused token.
//!
//! All or nothing: a source that cannot be analysed fails the command
//! (exit 1, naming it) and the file is not written, so an older inventory
//! is kept as it was. The file is replaced atomically (temporary + rename).
//!
//! Owns: taking the inventory and writing it. Does not own: its format,
//! or applying it to a plan (`plan::inventory`, read by `plan::load`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::Error;
use super::resolve::resolve;
use crate::client::{CreateSession, RemoteAnalysis, RetryPolicy, SshLogin, WhmClient};
use crate::exec::Api;
use crate::plan::Source;
use crate::plan::inventory::{AccountInventory, FORMAT, Inventory, SourceInventory};

/// What `ferry inventory` needs to know.
#[derive(Debug, Clone)]
pub struct InventoryOptions {
    pub plan: PathBuf,
    /// Where to write [default: `<plan stem>.inventory.json` next to it].
    pub output: Option<PathBuf>,
    /// Timeout of one WHM request (default 60 s).
    pub request_timeout: Option<std::time::Duration>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct InventoryReport {
    pub path: PathBuf,
    pub inventory: Inventory,
    /// Printed on stderr (an unverified TLS connection, a leftover
    /// analysis session).
    pub warnings: Vec<String>,
}

impl InventoryReport {
    /// One line per source, then where the file is.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for (name, s) in &self.inventory.sources {
            let bytes: u64 = s.accounts.iter().filter_map(|a| a.bytes).sum();
            out.push_str(&format!(
                "{name} ({}): {} account{}, {}{}\n",
                s.host,
                s.accounts.len(),
                if s.accounts.len() == 1 { "" } else { "s" },
                crate::report::html::human_bytes(bytes),
                s.version
                    .as_deref()
                    .map(|v| format!(", cPanel {v}"))
                    .unwrap_or_default(),
            ));
        }
        out.push_str(&format!("wrote {}\n", self.path.display()));
        out
    }
}

/// Runs `ferry inventory`. A plan error or a missing secret fails before
/// any request (exit 2); a source that cannot be analysed fails with
/// nothing written (exit 1).
pub fn inventory(opts: &InventoryOptions) -> Result<InventoryReport, Error> {
    // Without the old inventory: a damaged one must not stop its rewrite.
    let loaded =
        crate::plan::load_without_inventory(&opts.plan).map_err(|diagnostics| Error::Plan {
            diagnostics,
            validate: Some(opts.plan.clone()),
        })?;
    let plan = &loaded.plan;
    let mut resolved = resolve(plan, &loaded.base_dir)?;
    if let Some(t) = opts.request_timeout {
        resolved.target.request_timeout = t;
    }
    let client = WhmClient::new(resolved.target.clone())
        .map_err(|e| Error::Usage(format!("target.url: {}", e.kind)))?;
    let r = &plan.policy.retries;
    let api = Arc::new(
        Api::new(
            client,
            RetryPolicy {
                attempts: r.attempts,
                initial: r.initial_backoff.0,
                max: r.max_backoff.0,
            },
        )
        .with_limit(plan.concurrency.api_requests as usize),
    );
    let rt = super::apply::runtime()?;
    let results = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (source, login)) in plan.sources.iter().zip(&resolved.sources).enumerate() {
            let api = api.clone();
            let source = source.clone();
            let login = login.clone();
            tasks.spawn(async move { (i, analyse(&api, &source, &login).await) });
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(r) => out.push(r),
                Err(e) => return Err(Error::Failed(format!("an analysis task failed: {e}"))),
            }
        }
        Ok(out)
    })?;
    let mut warnings = resolved.warnings.clone();
    let mut failures = Vec::new();
    let mut sources = BTreeMap::new();
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    for (i, r) in results {
        let source = &plan.sources[i];
        match r {
            Ok((analysis, warning)) => {
                warnings.extend(warning);
                sources.insert(source.name.clone(), source_inventory(source, analysis));
            }
            Err(why) => failures.push(format!("  {} ({}): {why}", source.name, source.host)),
        }
    }
    if !failures.is_empty() {
        return Err(Error::Failed(format!(
            "cannot take the inventory, nothing was written:\n{}\nfix the source(s) (see `ferry check {}`) and run `ferry inventory` again",
            failures.join("\n"),
            opts.plan.display()
        )));
    }
    let inventory = Inventory {
        format: FORMAT,
        taken_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        sources,
    };
    let path = opts
        .output
        .clone()
        .unwrap_or_else(|| crate::plan::inventory::path_for(&opts.plan));
    crate::metrics::write_atomic(&path, &inventory.render())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    Ok(InventoryReport {
        path,
        inventory,
        warnings,
    })
}

fn source_inventory(source: &Source, a: RemoteAnalysis) -> SourceInventory {
    let mut accounts: Vec<AccountInventory> = a
        .accounts
        .into_iter()
        .map(|a| AccountInventory {
            user: a.user,
            domain: a.domain,
            owner: a.owner,
            package: a.plan,
            bytes: a.bytes,
            files: a.files,
            dedicated_ip: a.dedicated_ip,
        })
        .collect();
    accounts.sort_by(|a, b| a.user.cmp(&b.user));
    SourceInventory {
        host: source.host.clone(),
        version: a.version,
        supports_live_transfers: a.supports_live_transfers,
        accounts,
    }
}

/// The remote analysis of one source through a never-started session,
/// aborted afterwards; with a warning when the abort failed. The error is
/// a sentence for the operator.
async fn analyse(
    api: &Api,
    source: &Source,
    login: &SshLogin,
) -> Result<(RemoteAnalysis, Option<String>), String> {
    if api.refused().is_some() {
        return Err("not tried: the target refused the API token".into());
    }
    let create = CreateSession::for_analysis(&source.host, login);
    let create = &create;
    let session = api
        .once(|c| async move { c.create_remote_root_transfer_session(create).await })
        .await
        .map_err(|e| format!("cannot open an analysis session: {}", e.error().kind))?;
    let sid = &session;
    let analysis = api
        .repeatable(|_| {}, |c| async move { c.analyze_remote(sid).await })
        .await
        .map_err(|e| format!("the remote analysis failed: {}", e.error().kind));
    let abort = if api.refused().is_some() {
        Some("not tried".to_string())
    } else {
        api.repeatable(
            |_| {},
            |c| async move { c.abort_transfer_session(sid).await },
        )
        .await
        .err()
        .map(|e| e.error().kind.to_string())
    };
    let warning = abort.map(|why| {
        format!(
            "warning: analysis session {session} of {} could not be aborted ({why}); it stays PENDING \
             (harmless, never started) until WHM deletes it after 4 hours",
            source.name
        )
    });
    analysis.map(|a| (a, warning))
}
