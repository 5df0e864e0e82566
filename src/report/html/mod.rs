//! The HTML report of a run (`ferry report PLAN --html FILE`): one
//! self-contained file an operator attaches to a change ticket or sends to
//! a customer.
//!
//! Owns: [`RunView`], plain data describing a run (sessions, accounts,
//! pauses, totals), and [`render`], a pure function from it to HTML. Does not
//! own: reading the journal (`ops::report` builds the `RunView` from
//! `journal::replay`) or writing the file.
//!
//! The page references nothing outside itself — no scripts, fonts, images,
//! style sheets or links to fetch — so it opens the same offline, in a mail
//! client or years later. Its parts: a summary (moved, failed, pending,
//! duration, data moved), a timeline as inline SVG (one lane per session,
//! grouped by source, coloured by outcome, pauses and resumes marked), a
//! table of accounts (sortable with a few lines of inline JS, complete
//! without it), and every failure with the server's message and its
//! `master.log` lines. Print CSS keeps it legible on paper.
//!
//! Every piece of text — account names, server messages, log lines — is
//! escaped: a server message is attacker-controlled input.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::summary::human_duration;

mod fleet;
mod timeline;

/// A run, as the report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    /// The plan file as the operator named it (`plans/q4.yaml`).
    pub plan: String,
    /// The target server's host name.
    pub target: String,
    pub status: RunState,
    /// When the first `apply` of the run began.
    pub started_at: Option<SystemTime>,
    /// When the last `apply` process of the run ended (`None` while running).
    pub finished_at: Option<SystemTime>,
    /// When this report was made.
    pub generated_at: SystemTime,
    /// The whole run stopped scheduling (policy or `ferry pause`) and when an
    /// `apply` resumed it (`until: None`: still paused).
    pub run_pauses: Vec<Pause>,
    pub sessions: Vec<SessionView>,
    pub accounts: Vec<AccountView>,
    /// What the operator should do next, if anything.
    pub next: Option<String>,
    /// A rehearsal (`apply --simulate`): no real server was touched.
    pub rehearsal: bool,
    /// Some sizes are the plan's (hints or the inventory), not bytes
    /// reported by the server.
    pub sizes_are_hints: bool,
    /// The most restores the plan lets run at once (the band of the
    /// restore-slot view), when the plan could be read.
    pub restore_slots: Option<u32>,
}

/// How the run stands (design §7 run status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    NotStarted,
    Running,
    Succeeded,
    Paused,
    Partial,
    Aborted,
    Failed,
    /// The last `apply` was interrupted (Ctrl-C) before the run ended.
    Interrupted,
}

/// A pause and the resume that ended it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    pub at: SystemTime,
    pub until: Option<SystemTime>,
    /// Why (`account gamma failed (on_error: pause)`, `ferry pause`).
    pub reason: String,
}

/// One WHM transfer session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    /// ferry's name for it (`old1/s1`); accounts refer to sessions by it.
    pub name: String,
    /// WHM's transfer session id, once known.
    pub id: Option<String>,
    /// The source's name in the plan.
    pub source: String,
    /// Last WHM state seen (`COMPLETED`, `PAUSED`, …).
    pub state: String,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Pauses of this session on the server, with their resumes.
    pub pauses: Vec<Pause>,
    /// The session whose unfinished accounts this one took over, if any.
    pub replaces: Option<String>,
    /// Accounts enqueued in this session.
    pub accounts: usize,
    /// Of those, the ones that failed in this session (even if a later
    /// session moved them).
    pub failed: usize,
}

/// One account of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    /// Target username (the account's key).
    pub account: String,
    /// Username on the source.
    pub user: String,
    pub source: String,
    /// The session (name) of its last attempt, if it was enqueued.
    pub session: Option<String>,
    pub state: AccountState,
    /// Transferred with warnings (`warning-item`).
    pub warnings: bool,
    /// What its restore's summary listed (warnings, skipped, dangerous,
    /// altered items), in the server's words.
    pub notes: Vec<crate::events::Note>,
    /// Its transfer archives were removed from the target (`policy.cleanup`).
    pub archives_deleted: bool,
    /// Transferred without the journal seeing its restore end: how it was
    /// found on the target.
    pub adopted: Option<String>,
    /// Bytes: the plan's size (hint or inventory), else the size the
    /// server's `master.log` gave.
    pub size: Option<u64>,
    /// Its last RESTORE, from start to end, in the server's clock (epoch
    /// seconds), when the journal has it.
    pub restore: Option<(f64, f64)>,
    /// Moved with `live_transfer: 1`: once restored, its source account is
    /// suspended and proxies to the target (docs/whm.md §7).
    pub live: bool,
    /// Transfer attempts (sessions it was enqueued in).
    pub attempts: u32,
    /// The server's message (failure reason or warning).
    pub message: Option<String>,
    /// The `master.log` lines about this account, raw.
    pub log: Vec<String>,
}

/// An account's state (design §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccountState {
    Failed,
    InProgress,
    Pending,
    Transferred,
}

impl AccountState {
    fn label(self) -> &'static str {
        match self {
            AccountState::Failed => "failed",
            AccountState::InProgress => "in progress",
            AccountState::Pending => "pending",
            AccountState::Transferred => "transferred",
        }
    }
    fn class(self) -> &'static str {
        match self {
            AccountState::Failed => "failed",
            AccountState::InProgress => "running",
            AccountState::Pending => "pending",
            AccountState::Transferred => "ok",
        }
    }
}

/// Counts derived from the accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub total: usize,
    pub transferred: usize,
    pub failed: usize,
    /// Pending or in progress.
    pub pending: usize,
    pub with_warnings: usize,
    /// Sum of the sizes of transferred accounts.
    pub bytes_moved: u64,
}

impl RunView {
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            total: self.accounts.len(),
            ..Totals::default()
        };
        for a in &self.accounts {
            match a.state {
                AccountState::Transferred => {
                    t.transferred += 1;
                    t.bytes_moved += a.size.unwrap_or(0);
                    if a.warnings {
                        t.with_warnings += 1;
                    }
                }
                AccountState::Failed => t.failed += 1,
                AccountState::Pending | AccountState::InProgress => t.pending += 1,
            }
        }
        t
    }

    /// The first and last instants the report knows of.
    fn span(&self) -> (SystemTime, SystemTime) {
        let mut times: Vec<SystemTime> = Vec::new();
        times.extend(self.started_at);
        times.extend(self.finished_at);
        for s in &self.sessions {
            times.push(s.created_at);
            times.extend(s.started_at);
            times.extend(s.finished_at);
            for p in &s.pauses {
                times.push(p.at);
                times.extend(p.until);
            }
        }
        for p in &self.run_pauses {
            times.push(p.at);
            times.extend(p.until);
        }
        let start = times.iter().min().copied().unwrap_or(self.generated_at);
        let mut end = times.iter().max().copied().unwrap_or(self.generated_at);
        if self.finished_at.is_none() && self.status == RunState::Running {
            end = end.max(self.generated_at);
        }
        (start, end)
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab/newline have no business in
            // a report (and some are invalid in HTML).
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Sizes as people read them (decimal units, like disk vendors and WHM's UI).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.2} {unit}")
    } else if v < 100.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// `12,345,678`.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2026-11-30 01:45:02 UTC`.
pub(crate) fn utc(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-11-30T01:45:02Z
    format!("{} {} UTC", &s[..10], &s[11..19])
}

fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).unwrap_or(Duration::ZERO).as_secs_f64()
}

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("sort.js");

/// Renders the whole report. Pure: the same view gives the same bytes.
pub fn render(view: &RunView) -> String {
    let totals = view.totals();
    let mut h = String::with_capacity(16 * 1024 + view.accounts.len() * 512);
    let title = format!("Migration report — {}", view.plan);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"ferry {}\">\n<title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    header(&mut h, view);
    summary(&mut h, view, &totals);
    fleet::section(&mut h, view);
    timeline::section(&mut h, view);
    failures(&mut h, view);
    proxied(&mut h, view);
    accounts_table(&mut h, view);
    let _ = write!(
        h,
        "<footer>Generated by ferry {} on {} from the run's journal. \
         Times are in UTC. Sizes are {}decimal (1 GB = 1,000,000,000 bytes).</footer>\n\
         </main>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&utc(view.generated_at)),
        if view.sizes_are_hints {
            "the plan's (size hints or the inventory) where it gives them, else the server's, in "
        } else {
            "the server's, in "
        },
    );
    h
}

fn status_banner(view: &RunView, t: &Totals) -> (&'static str, String) {
    match view.status {
        RunState::NotStarted => (
            "pending",
            "Not started — nothing has been transferred yet".into(),
        ),
        RunState::Running => (
            "running",
            format!(
                "In progress — {} of {} accounts moved so far",
                t.transferred, t.total
            ),
        ),
        RunState::Succeeded => ("ok", format!("Completed — all {} accounts moved", t.total)),
        RunState::Paused => (
            "paused",
            "Paused — waiting for an operator to resume".to_string(),
        ),
        RunState::Partial => (
            "warn",
            format!(
                "Finished with failures — {} of {} accounts could not be moved",
                t.failed, t.total
            ),
        ),
        RunState::Aborted => ("failed", "Aborted — the run was stopped".to_string()),
        RunState::Failed => ("failed", "Stopped by an error — see below".to_string()),
        RunState::Interrupted => (
            "paused",
            format!(
                "Interrupted — {} of {} accounts moved; the run can be resumed",
                t.transferred, t.total
            ),
        ),
    }
}

fn header(h: &mut String, view: &RunView) {
    let window = match (view.started_at, view.finished_at) {
        (Some(a), Some(b)) => format!("{} → {}", utc(a), utc(b)),
        (Some(a), None) => format!("{} → (running)", utc(a)),
        _ => "not started".to_string(),
    };
    let _ = write!(
        h,
        "<header>\n<p class=\"eyebrow\">{}</p>\n<h1>{}</h1>\n<dl class=\"meta\">\
         <div><dt>Target server</dt><dd>{}</dd></div>\
         <div><dt>Window</dt><dd>{}</dd></div>\
         <div><dt>Report generated</dt><dd>{}</dd></div></dl>\n</header>\n",
        if view.rehearsal {
            "Rehearsal report — simulated run"
        } else {
            "Account migration report"
        },
        esc(&view.plan),
        esc(&view.target),
        esc(&window),
        esc(&utc(view.generated_at)),
    );
}

fn summary(h: &mut String, view: &RunView, t: &Totals) {
    let (class, text) = status_banner(view, t);
    let _ = write!(
        h,
        "<section class=\"status {class}\" id=\"status\"><strong>{}</strong>",
        esc(&text)
    );
    if let Some(next) = view.next.as_deref().filter(|n| !n.trim().is_empty()) {
        let _ = write!(h, "<span class=\"next\">Next step: {}</span>", esc(next));
    }
    h.push_str("</section>\n");
    if view.rehearsal {
        h.push_str(
            "<p class=\"rehearsal\" id=\"rehearsal\">This was a rehearsal (<code>ferry apply --simulate</code>) \
             against ferry's built-in simulator of the target server. No real server was contacted and \
             no account was moved.</p>\n",
        );
    }

    let duration = match (view.started_at, view.finished_at) {
        (Some(a), Some(b)) => human_duration(secs_between(a, b)),
        (Some(a), None) => human_duration(secs_between(a, view.generated_at)),
        _ => "—".to_string(),
    };
    let paused_total: f64 = view
        .run_pauses
        .iter()
        .map(|p| secs_between(p.at, p.until.unwrap_or(view.finished_at.unwrap_or(p.at))))
        .sum();
    let duration_note = if paused_total >= 1.0 {
        format!("incl. {} paused", human_duration(paused_total))
    } else {
        "wall-clock time".to_string()
    };
    let warn_note = if t.with_warnings > 0 {
        format!("{} with warnings", t.with_warnings)
    } else {
        format!("of {} accounts", t.total)
    };
    let pct = if t.total > 0 {
        t.transferred as f64 * 100.0 / t.total as f64
    } else {
        0.0
    };
    h.push_str("<section class=\"cards\" id=\"summary\" aria-label=\"Summary\">\n");
    let card = |h: &mut String, class: &str, label: &str, value: &str, note: &str, title: &str| {
        let _ = writeln!(
            h,
            "<div class=\"card {class}\"{}><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"note\">{}</div></div>",
            if title.is_empty() {
                String::new()
            } else {
                format!(" title=\"{}\"", esc(title))
            },
            esc(label),
            esc(value),
            esc(note)
        );
    };
    card(
        h,
        "ok",
        "Moved",
        &t.transferred.to_string(),
        &warn_note,
        &format!("{pct:.0}% of the plan"),
    );
    card(
        h,
        if t.failed > 0 { "failed" } else { "quiet" },
        "Failed",
        &t.failed.to_string(),
        if t.failed > 0 {
            "see Failures below"
        } else {
            "none"
        },
        "",
    );
    card(
        h,
        if t.pending > 0 { "pending" } else { "quiet" },
        "Pending",
        &t.pending.to_string(),
        if t.pending > 0 {
            "not yet moved"
        } else {
            "none"
        },
        "",
    );
    card(h, "quiet", "Duration", &duration, &duration_note, "");
    card(
        h,
        "quiet",
        "Data moved",
        &human_bytes(t.bytes_moved),
        &format!("{} bytes", grouped(t.bytes_moved)),
        "",
    );
    h.push_str("</section>\n");
    // A thin bar of the proportions, readable at a glance (and on paper).
    if t.total > 0 {
        let part = |n: usize| n as f64 * 100.0 / t.total as f64;
        let _ = writeln!(
            h,
            "<div class=\"ratio\" role=\"img\" aria-label=\"{} moved, {} failed, {} pending\">\
             <span class=\"ok\" style=\"width:{:.3}%\"></span><span class=\"failed\" style=\"width:{:.3}%\"></span>\
             <span class=\"pending\" style=\"width:{:.3}%\"></span></div>",
            t.transferred,
            t.failed,
            t.pending,
            part(t.transferred),
            part(t.failed),
            part(t.pending)
        );
    }
}

/// Live transfers: the source accounts left suspended and proxied to the
/// target, which unsuspending would undo.
fn proxied(h: &mut String, view: &RunView) {
    let live: Vec<&AccountView> = view
        .accounts
        .iter()
        .filter(|a| a.live && a.state == AccountState::Transferred)
        .collect();
    if live.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<section id=\"proxied\">\n<h2>Still served through their source <span class=\"count\">{}</span></h2>\n\
         <p class=\"hint\">Moved with live transfer: each source account below is <strong>suspended and proxies \
         web and mail to this server</strong> until DNS points here. Do not unsuspend it on the source — that \
         undoes the proxy. Once DNS has moved and mail arrives here, remove it from the source \
         (<code>whmapi1 removeacct user=USER</code> on the source).</p>\n<ul class=\"proxied\">\n",
        live.len()
    );
    for a in live {
        let _ = writeln!(
            h,
            "<li><span class=\"mono\">{}</span> on {} (source user <span class=\"mono\">{}</span>)</li>",
            esc(&a.account),
            esc(&a.source),
            esc(&a.user)
        );
    }
    h.push_str("</ul>\n</section>\n");
}

fn failures(h: &mut String, view: &RunView) {
    let failed: Vec<&AccountView> = view
        .accounts
        .iter()
        .filter(|a| a.state == AccountState::Failed)
        .collect();
    if failed.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<section id=\"failures\">\n<h2>Failures <span class=\"count\">{}</span></h2>\n\
         <p class=\"hint\">Each account below was not moved. The message is the target server's own; \
         the log lines are from the transfer session's <code>master.log</code>.</p>\n",
        failed.len()
    );
    for a in failed {
        let session = a
            .session
            .as_deref()
            .map(|s| session_label(view, s))
            .unwrap_or_else(|| "not enqueued".into());
        let _ = write!(
            h,
            "<article class=\"failure\" id=\"failure-{}\">\n<h3>{}</h3>\n<p class=\"where\">from <b>{}</b>{} · session {} · {} attempt{}</p>\n\
             <div class=\"message\">{}</div>\n",
            esc(&anchor(&a.account)),
            esc(&a.account),
            esc(&a.source),
            if a.user != a.account {
                format!(" (user <b>{}</b>)", esc(&a.user))
            } else {
                String::new()
            },
            esc(&session),
            a.attempts,
            if a.attempts == 1 { "" } else { "s" },
            esc(a
                .message
                .as_deref()
                .unwrap_or("The server gave no message.")),
        );
        if a.log.is_empty() {
            h.push_str(
                "<p class=\"hint\">No master.log lines were recorded for this account.</p>\n",
            );
        } else {
            let _ = write!(
                h,
                "<details open><summary>master.log ({} line{})</summary><pre class=\"log\">",
                a.log.len(),
                if a.log.len() == 1 { "" } else { "s" }
            );
            for l in &a.log {
                h.push_str(&esc(l));
                h.push('\n');
            }
            h.push_str("</pre></details>\n");
        }
        h.push_str("</article>\n");
    }
    h.push_str("</section>\n");
}

/// `old1/s1 (old1examplecoco…)`.
fn session_label(view: &RunView, name: &str) -> String {
    match view
        .sessions
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.id.as_deref())
    {
        Some(id) => format!("{name} ({id})"),
        None => name.to_string(),
    }
}

/// A fragment id from an account name (usernames are [a-z0-9] already;
/// anything else becomes `-`).
fn anchor(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn accounts_table(h: &mut String, view: &RunView) {
    let mut rows: Vec<&AccountView> = view.accounts.iter().collect();
    rows.sort_by(|a, b| (&a.source, &a.account).cmp(&(&b.source, &b.account)));
    let _ = write!(
        h,
        "<section id=\"accounts\">\n<h2>Accounts <span class=\"count\">{}</span></h2>\n\
         <p class=\"hint screen-only\">Click a column heading to sort.</p>\n\
         <table class=\"sortable\">\n<thead><tr>\
         <th scope=\"col\" data-type=\"text\">Account</th>\
         <th scope=\"col\" data-type=\"text\">Source</th>\
         <th scope=\"col\" data-type=\"text\">Source user</th>\
         <th scope=\"col\" data-type=\"text\">Session</th>\
         <th scope=\"col\" data-type=\"num\">State</th>\
         <th scope=\"col\" data-type=\"num\" class=\"num\">Size</th>\
         <th scope=\"col\" data-type=\"num\" class=\"num\">Attempts</th>\
         <th scope=\"col\" data-type=\"text\">Message</th>\
         </tr></thead>\n<tbody>\n",
        rows.len()
    );
    for a in rows {
        let state_rank = a.state as u8;
        let state = match (a.state, a.warnings, &a.adopted) {
            (AccountState::Transferred, _, Some(_)) => "transferred, adopted".to_string(),
            (AccountState::Transferred, true, None) => "transferred, warnings".to_string(),
            _ => a.state.label().to_string(),
        };
        let class = if a.state == AccountState::Transferred && a.warnings {
            "warn"
        } else {
            a.state.class()
        };
        let mut message = a
            .message
            .as_deref()
            .or(a.adopted.as_deref())
            .map(|m| esc(m.lines().next().unwrap_or("")))
            .unwrap_or_default();
        if a.archives_deleted {
            if !message.is_empty() {
                message.push_str("<br>");
            }
            message.push_str("transfer archives removed from the target");
        }
        for n in &a.notes {
            if !message.is_empty() {
                message.push_str("<br>");
            }
            let _ = write!(
                message,
                "<span class=\"note\">{}:</span> {}",
                n.kind.as_str(),
                esc(&n.text)
            );
        }
        let account_cell = if a.state == AccountState::Failed {
            format!(
                "<a href=\"#failure-{}\">{}</a>",
                esc(&anchor(&a.account)),
                esc(&a.account)
            )
        } else {
            esc(&a.account)
        };
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td class=\"acct\">{account_cell}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td>\
             <td class=\"state\" data-sort=\"{state_rank}\"><span class=\"pill {class}\">{}</span></td>\
             <td class=\"num\" data-sort=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"msg\">{}</td></tr>",
            esc(&a.source),
            esc(&a.user),
            esc(a.session.as_deref().unwrap_or("—")),
            esc(&state),
            a.size.unwrap_or(0),
            a.size.map(human_bytes).unwrap_or_else(|| "—".into()),
            a.attempts,
            message,
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
pub(crate) use tests::assert_self_contained;
