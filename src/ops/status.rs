//! `ferry status PLAN [--output json]`: where a run stands, from the journal
//! alone (no network). The plan names the default journal and, if it loads,
//! its identity, which the journal must record (another plan's is refused).
//!
//! Replay is streaming and read-only (a torn last line is skipped and
//! mentioned, never repaired: that is `apply`'s job under the lock), so a
//! journal of a million records is read in about a second.
//!
//! JSON shape (design §7), accounts keyed by target username:
//! `{"status", "accounts": {name: {source, user, state, session, attempts, …}},
//!   "sessions": [{id, key, source, state, …}], …}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Error;
use crate::journal::record::{ControlAction, FinishStatus};
use crate::journal::{self, Phase, Progress, RunPhase, RunState};

/// What `ferry status` was asked to do.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub plan: PathBuf,
    pub journal: Option<PathBuf>,
}

/// The status of a run, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `not_started`, `running`, `succeeded`, `paused`, `partial`,
    /// `aborted`, `failed`.
    pub status: String,
    /// Why it is paused / aborted / failed, or who asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The pid of the `apply` holding the journal, if one is running.
    pub apply_pid: Option<u32>,
    /// The host it runs on, and since when it holds the journal (RFC 3339),
    /// when it says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_since: Option<String>,
    /// The last `apply` was killed or interrupted (no end record).
    pub interrupted: bool,
    pub journal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    pub counts: Counts,
    pub accounts: BTreeMap<String, AccountStatus>,
    pub sessions: Vec<SessionStatus>,
    pub records: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub total: usize,
    pub transferred: usize,
    pub failed: usize,
    pub in_progress: usize,
    pub pending: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    pub source: String,
    pub user: String,
    /// `pending`, `in_progress`, `transferred`, `failed`.
    pub state: String,
    /// WHM id of the session that holds (or last held) it.
    pub session: Option<String>,
    /// ferry's key of that session (`old1/s2`, `old1/s2#2`).
    pub session_key: Option<String>,
    /// Sessions started with it.
    pub attempts: u32,
    /// While in progress: how far its items are, from their item logs'
    /// percentages (half TRANSFER, half RESTORE; large accounts only, see
    /// `exec::progress`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warnings: bool,
    /// What its restore's summary listed: `{kind: warning|skipped|altered|
    /// dangerous, text}`, in the server's words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<crate::events::Note>,
    /// Its transfer archives were removed from the target (`policy.cleanup`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub archives_deleted: bool,
    /// Checked on the target: present (and, with `policy.verify: basic`,
    /// as planned). `null` until checked.
    pub verified: Option<bool>,
    /// How it differs from the plan on the target (`policy.verify`), each
    /// with its fix; its state stays `transferred`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<crate::journal::record::Difference>,
    /// Transferred without this journal seeing its restore end: how it was
    /// found on the target (its state stays `transferred`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub id: Option<String>,
    pub key: String,
    pub source: String,
    /// The server state last seen (`COMPLETED`, `RUNNING`, …), or ferry's
    /// view for sessions never started (`CREATING`, `PENDING`, `ABANDONED`).
    pub state: String,
    pub accounts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// Reads the journal and builds the status.
pub fn status(opts: &StatusOptions) -> Result<Status, Error> {
    let w = super::journal::locate_for_reading(&opts.plan, opts.journal.as_deref())?;
    let path = match &w {
        super::journal::Where::File(p) => p.clone(),
        super::journal::Where::Pg { .. } => {
            // A run in the database is named after the plan's identity.
            let (state, pid) = super::journal::read_state(&w)?.unwrap_or_default();
            return Ok(build(&state, &w.label(), pid));
        }
    };
    super::journal::check_belongs_to_file(&path, &opts.plan)?;
    let (state, torn) = journal::replay(&path)?;
    let holder = journal::lock::holder(&path);
    let mut s = build(&state, &path, holder.as_ref().and_then(|h| h.pid));
    if let Some(h) = holder {
        s.apply_host = h.host;
        s.apply_since = h.since;
    }
    if let Some(t) = torn {
        s.note = Some(format!(
            "the last line (line {}) is torn and was ignored; the next `ferry apply` repairs it",
            t.line
        ));
    }
    Ok(s)
}

/// Builds the status from a replayed journal.
pub fn build(st: &RunState, journal: &Path, apply_pid: Option<u32>) -> Status {
    let ids: BTreeMap<&str, Option<&String>> = st
        .sessions()
        .iter()
        .map(|s| (s.key.as_str(), s.id.as_ref()))
        .collect();
    let mut counts = Counts::default();
    let accounts: BTreeMap<String, AccountStatus> = st
        .planned()
        .map(|(name, a)| {
            counts.total += 1;
            match a.progress {
                Progress::Transferred => counts.transferred += 1,
                Progress::Failed { .. } => counts.failed += 1,
                Progress::Pending => counts.pending += 1,
                _ => counts.in_progress += 1,
            }
            let key = a.session.clone();
            (
                name.clone(),
                AccountStatus {
                    source: a.source.clone(),
                    user: a.user.clone(),
                    state: a.progress.label().to_string(),
                    session: key
                        .as_deref()
                        .and_then(|k| ids.get(k).copied().flatten().cloned()),
                    session_key: key,
                    attempts: a.attempts,
                    percent: a.percent.filter(|_| a.progress == Progress::InProgress),
                    message: match a.progress {
                        Progress::Failed { .. } => a.message.clone(),
                        _ => None,
                    },
                    warnings: a.warnings,
                    notes: a.notes.clone(),
                    archives_deleted: a.archives_deleted,
                    verified: a.verified.map(|present| {
                        present && a.differences.as_ref().is_none_or(|d| d.is_empty())
                    }),
                    differences: a.differences.clone().unwrap_or_default(),
                    adopted: a.adopted.clone(),
                },
            )
        })
        .collect();
    let sessions = st
        .sessions()
        .iter()
        .map(|s| SessionStatus {
            id: s.id.clone(),
            key: s.key.clone(),
            source: s.source.clone(),
            state: match (s.phase, &s.server_state) {
                (Phase::Abandoned, _) => "ABANDONED".into(),
                (_, Some(state)) => state.clone(),
                (Phase::Creating, None) => "CREATING".into(),
                (_, None) => "PENDING".into(),
            },
            accounts: s.accounts.clone(),
            replaces: s.replaces.clone(),
        })
        .collect();
    let running = apply_pid.is_some();
    let interrupted = st.phase == RunPhase::Running && !running
        || st.phase == RunPhase::Finished(FinishStatus::Interrupted);
    let (status, mut reason) = match &st.phase {
        RunPhase::NotStarted => ("not_started", None),
        _ if running => ("running", None),
        RunPhase::Running => (
            "failed",
            Some(
                "the last apply stopped without finishing (killed?); run `ferry apply` to continue"
                    .to_string(),
            ),
        ),
        RunPhase::Paused { reason } => ("paused", Some(reason.clone())),
        RunPhase::Aborted { reason } => ("aborted", Some(reason.clone())),
        RunPhase::Finished(FinishStatus::Succeeded) => ("succeeded", None),
        RunPhase::Finished(FinishStatus::Partial) => ("partial", None),
        RunPhase::Finished(FinishStatus::Failed) => ("failed", st.last_error.clone()),
        RunPhase::Finished(FinishStatus::Interrupted) => (
            "failed",
            Some("interrupted; run `ferry apply` to continue".into()),
        ),
    };
    if running && let Some((action, by, at, _)) = &st.request {
        let what = match action {
            ControlAction::Pause => "pause",
            ControlAction::Abort => "abort",
        };
        reason = Some(format!("{what} requested by {by} at {at}"));
    }
    Status {
        status: status.to_string(),
        reason,
        apply_pid,
        apply_host: None,
        apply_since: None,
        interrupted,
        journal: journal.display().to_string(),
        plan: st.plan.clone(),
        plan_hash: st.plan_hash.clone(),
        counts,
        accounts,
        sessions,
        records: st.records,
        started_at: st.first_ts.clone(),
        updated_at: st.last_ts.clone(),
        note: None,
    }
}

impl Status {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("serialisable")
    }

    /// Per source, per session, per account.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "run: {}", self.status);
        if let Some(pid) = self.apply_pid {
            let _ = write!(out, " (apply pid {pid}");
            if let Some(h) = &self.apply_host {
                let _ = write!(out, " on {}", crate::untrusted::line(h));
            }
            if let Some(t) = &self.apply_since {
                let _ = write!(out, ", since {}", crate::untrusted::line(t));
            }
            out.push(')');
        }
        out.push('\n');
        if let Some(r) = &self.reason {
            let _ = writeln!(out, "  {}", crate::untrusted::text(r));
        }
        if let Some(p) = &self.plan {
            let _ = writeln!(out, "plan: {p}   journal: {}", self.journal);
        }
        let c = &self.counts;
        let _ = writeln!(
            out,
            "accounts: {} total, {} transferred, {} failed, {} in progress, {} pending",
            c.total, c.transferred, c.failed, c.in_progress, c.pending
        );
        let mut sources: Vec<&str> = self.accounts.values().map(|a| a.source.as_str()).collect();
        sources.sort();
        sources.dedup();
        for src in sources {
            let _ = writeln!(out, "\nsource {src}");
            for s in self.sessions.iter().filter(|s| s.source == src) {
                let _ = writeln!(
                    out,
                    "  session {} {} {} ({} accounts){}",
                    s.key,
                    crate::untrusted::line(s.id.as_deref().unwrap_or("(no id)")),
                    crate::untrusted::line(&s.state),
                    s.accounts.len(),
                    s.replaces
                        .as_deref()
                        .map(|r| format!(", after {r}"))
                        .unwrap_or_default()
                );
            }
            for (name, a) in self.accounts.iter().filter(|(_, a)| a.source == src) {
                let mut line = format!("    {name:<20} {}", a.state);
                if name != &a.user {
                    line = format!("    {:<20} {}", format!("{name} ({})", a.user), a.state);
                }
                if let Some(k) = &a.session_key {
                    let _ = write!(line, "  [{k}]");
                }
                if a.attempts > 1 {
                    let _ = write!(line, "  attempts {}", a.attempts);
                }
                if let Some(p) = a.percent {
                    let _ = write!(line, "  {p}%");
                }
                if let Some(m) = &a.message {
                    let _ = write!(line, "  {}", crate::untrusted::line(m));
                }
                if let Some(how) = &a.adopted {
                    let _ = write!(line, "  (adopted: {})", crate::untrusted::line(how));
                }
                if a.warnings {
                    line.push_str("  with warnings");
                }
                if a.archives_deleted {
                    line.push_str("  (archives removed)");
                }
                if !a.differences.is_empty() {
                    line.push_str("  NOT AS PLANNED");
                }
                let _ = writeln!(out, "{line}");
                for d in &a.differences {
                    let _ = writeln!(
                        out,
                        "      differs: {} (fix: {})",
                        crate::untrusted::line(&d.what),
                        crate::untrusted::line(&d.fix)
                    );
                }
                for n in &a.notes {
                    let _ = writeln!(
                        out,
                        "      {}: {}",
                        n.kind.as_str(),
                        crate::untrusted::line(&n.text)
                    );
                }
            }
        }
        if let Some(n) = &self.note {
            let _ = writeln!(out, "\nnote: {n}");
        }
        out
    }
}
