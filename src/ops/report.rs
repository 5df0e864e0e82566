//! `ferry report PLAN --html FILE`: the journal, read-only, turned into a
//! [`RunView`] and rendered to one self-contained HTML file (mode 0600).
//!
//! Owns: the mapping journal → `RunView` (timestamps of records become the
//! timeline; `journal::replay`'s fold gives each account's state) and
//! writing the file atomically. Does not own: the journal's format (it only
//! reads with `journal::file::Reader`), the page (`report::html`), or
//! printing (`cli::report` says what was written).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::journal::file::{Entry, Reader};
use crate::journal::record::{ControlAction, FinishStatus, ItemResult, Record, RestoreSpan};
use crate::journal::{Progress, RunPhase, RunState as Replayed};
use crate::ops::Error;
use crate::report::html::{
    self, AccountState, AccountView, Pause, RunState, RunView, SessionView, Totals,
};

/// What `ferry report` was asked to do.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub plan: PathBuf,
    /// The HTML file to write.
    pub html: PathBuf,
    /// Default: `.ferry/<plan stem>.journal`.
    pub journal: Option<PathBuf>,
}

/// What was written, for `cli` to tell the operator.
#[derive(Debug, Clone)]
pub struct ReportWritten {
    pub path: PathBuf,
    pub bytes: usize,
    pub totals: Totals,
    pub sessions: usize,
    /// A torn last journal line was skipped (an `apply` died mid-write).
    pub torn_tail: bool,
}

/// Reads the journal, writes the report.
pub fn report(opts: &ReportOptions) -> Result<ReportWritten, Error> {
    let w = super::journal::locate_for_reading(&opts.plan, opts.journal.as_deref())?;
    let journal = match &w {
        super::journal::Where::File(p) => p.clone(),
        super::journal::Where::Pg { loc, run } => {
            let db = super::journal::connect(loc)?;
            let exists =
                crate::journal::pg::run_exists(&db, run).map_err(super::journal::pg_error)?;
            if !exists {
                return Err(Error::Failed(format!(
                    "no run `{run}` in {}: this plan has not been applied yet",
                    loc.display()
                )));
            }
            let hints = PlanHints::read(&opts.plan);
            let view = run_view_db(&db, run, &hints, SystemTime::now())
                .map_err(super::journal::journal_error)?;
            return write_report(opts, view, false);
        }
    };
    if !journal.exists() {
        return Err(Error::Failed(format!(
            "no journal at {}: this plan has not been applied yet.\n\
             Run `ferry apply {}` first, or pass --journal PATH to the journal of the run \
             (a `--simulate` run keeps its own journal).",
            journal.display(),
            opts.plan.display()
        )));
    }
    super::journal::check_belongs_to_file(&journal, &opts.plan)?;
    let hints = PlanHints::read(&opts.plan);
    let (view, torn_tail) = run_view(&journal, &hints, SystemTime::now()).map_err(|e| {
        Error::Failed(format!(
            "cannot read the journal {}: {e}",
            journal.display()
        ))
    })?;
    write_report(opts, view, torn_tail)
}

fn write_report(
    opts: &ReportOptions,
    view: RunView,
    torn_tail: bool,
) -> Result<ReportWritten, Error> {
    let page = html::render(&view);
    write_private(&opts.html, page.as_bytes()).map_err(|e| {
        Error::io(
            format!(
                "cannot write {} (check that its folder exists and is writable)",
                opts.html.display()
            ),
            e,
        )
    })?;
    Ok(ReportWritten {
        path: opts.html.clone(),
        bytes: page.len(),
        totals: view.totals(),
        sessions: view.sessions.len(),
        torn_tail,
    })
}

/// What the report takes from the plan file, if it can still be read: the
/// target's host name and the accounts' size hints. The journal is the
/// truth about the run; the plan only adds these labels.
#[derive(Debug, Clone, Default)]
pub struct PlanHints {
    pub target: Option<String>,
    pub sizes: HashMap<String, u64>,
    /// The most restores the plan lets run at once on the target:
    /// `target_sessions` × the largest `restore_threads` of its sources.
    pub restore_slots: Option<u32>,
    /// Accounts moved with `live_transfer: 1` (target usernames).
    pub live: std::collections::HashSet<String>,
}

impl PlanHints {
    /// Reads the plan without resolving any secret; a missing or unreadable
    /// plan gives no hints (the report is still made from the journal).
    pub fn read(path: &Path) -> PlanHints {
        let Ok(crate::plan::LoadedPlan { plan, .. }) = crate::plan::load(path) else {
            return PlanHints::default();
        };
        let target = host_of(&plan.target.url);
        let compiled = crate::graph::compile(&plan);
        let threads = compiled
            .sources
            .iter()
            .map(|s| s.options.restore_threads.unwrap_or(1))
            .max()
            .unwrap_or(1);
        let restore_slots = Some(
            compiled
                .limits
                .target_sessions
                .saturating_mul(u32::from(threads)),
        );
        let live = compiled
            .sessions
            .iter()
            .flat_map(|s| &s.accounts)
            .filter(|a| a.options.live_transfer == Some(1))
            .map(|a| a.target_user.clone())
            .collect();
        let mut sizes = HashMap::new();
        for s in &plan.sources {
            for a in s.accounts.iter().map(|a| a.account()) {
                if let Some(size) = a.size {
                    sizes.insert(a.target_user().to_string(), size);
                }
            }
        }
        PlanHints {
            target,
            sizes,
            restore_slots,
            live,
        }
    }
}

/// `https://whm.example.net:2087/x` → `whm.example.net:2087`.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    (!host.is_empty()).then(|| host.to_string())
}

fn parse_ts(ts: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(ts).ok()
}

/// Per session, what the timeline needs beyond the replayed state.
#[derive(Default)]
struct Times {
    created: Option<SystemTime>,
    started: Option<SystemTime>,
    finished: Option<SystemTime>,
    pauses: Vec<Pause>,
    failed: usize,
}

impl Times {
    fn open_pause(&mut self, at: SystemTime, reason: &str) {
        if self.pauses.last().is_none_or(|p| p.until.is_some()) {
            self.pauses.push(Pause {
                at,
                until: None,
                reason: reason.to_string(),
            });
        }
    }
    fn close_pause(&mut self, at: SystemTime) {
        if let Some(p) = self.pauses.last_mut()
            && p.until.is_none()
        {
            p.until = Some(at);
        }
    }
}

/// The journal at `path` as a [`RunView`] (and whether a torn last line was
/// skipped). Read-only: nothing is repaired on disk.
pub fn run_view(
    path: &Path,
    hints: &PlanHints,
    now: SystemTime,
) -> Result<(RunView, bool), crate::journal::JournalError> {
    fold_view(
        |fold| {
            let Some(mut reader) = Reader::open(path)? else {
                return Ok(false);
            };
            while let Some(e) = reader.next()? {
                fold(&e);
            }
            Ok(reader.torn().is_some())
        },
        &path.display().to_string(),
        hints,
        now,
    )
}

/// [`run_view`] of a run in PostgreSQL.
pub fn run_view_db(
    db: &std::sync::Arc<crate::journal::pg::Db>,
    run: &str,
    hints: &PlanHints,
    now: SystemTime,
) -> Result<RunView, crate::journal::JournalError> {
    let (view, _) = fold_view(
        |fold| {
            crate::journal::pg::read(db, run, fold).map_err(|e| {
                crate::journal::JournalError::Db {
                    run: run.to_string(),
                    source: Box::new(e),
                }
            })?;
            Ok(false)
        },
        run,
        hints,
        now,
    )?;
    Ok(view)
}

/// The view from whatever `feed` hands the fold, record by record; `feed`
/// says whether a torn tail was skipped.
fn fold_view(
    feed: impl FnOnce(&mut dyn FnMut(&Entry)) -> Result<bool, crate::journal::JournalError>,
    label: &str,
    hints: &PlanHints,
    now: SystemTime,
) -> Result<(RunView, bool), crate::journal::JournalError> {
    let mut state = Replayed::default();
    let mut times: HashMap<String, Times> = HashMap::new();
    let mut run_pauses: Vec<Pause> = Vec::new();
    let mut last_stop: Option<SystemTime> = None;
    // Each failed account's master.log lines, from its latest failure.
    let mut logs: HashMap<String, Vec<String>> = HashMap::new();
    // Each account's latest RESTORE by the server's clock, and its size.
    let mut restores: HashMap<String, RestoreSpan> = HashMap::new();
    let torn = feed(&mut |e: &Entry| {
        if let Some(at) = parse_ts(&e.ts) {
            fold_times(&e.rec, at, &mut times, &mut run_pauses, &mut last_stop);
        }
        if let Record::ItemOutcome {
            account: Some(a),
            result: ItemResult::Failed,
            log,
            ..
        } = &e.rec
        {
            logs.insert(a.clone(), log.clone());
        }
        if let Record::ItemOutcome {
            account: Some(a),
            restore: Some(r),
            ..
        } = &e.rec
        {
            restores.insert(a.clone(), *r);
        }
        state.apply_entry(e);
    })?;

    let status = match &state.phase {
        RunPhase::NotStarted => RunState::NotStarted,
        RunPhase::Running => RunState::Running,
        RunPhase::Paused { .. } => RunState::Paused,
        RunPhase::Aborted { .. } => RunState::Aborted,
        RunPhase::Finished(FinishStatus::Succeeded) => RunState::Succeeded,
        RunPhase::Finished(FinishStatus::Partial) => RunState::Partial,
        RunPhase::Finished(FinishStatus::Failed) => RunState::Failed,
        RunPhase::Finished(FinishStatus::Interrupted) => RunState::Interrupted,
    };
    let plan = state.plan.clone().unwrap_or_else(|| label.to_string());
    let sessions = state
        .sessions()
        .iter()
        .map(|s| {
            let t = times.remove(&s.key).unwrap_or_default();
            SessionView {
                name: s.key.clone(),
                id: s.id.clone(),
                source: s.source.clone(),
                state: s
                    .server_state
                    .clone()
                    .unwrap_or_else(|| phase_label(s.phase).to_string()),
                created_at: t.created.unwrap_or(now),
                started_at: t.started,
                finished_at: t.finished,
                pauses: t.pauses,
                replaces: s.replaces.clone(),
                accounts: s.accounts.len(),
                failed: t.failed,
            }
        })
        .collect();
    let mut hinted = false;
    let accounts = state
        .planned()
        .map(|(name, a)| AccountView {
            account: name.clone(),
            user: a.user.clone(),
            source: a.source.clone(),
            session: a.session.clone(),
            state: match a.progress {
                Progress::Pending => AccountState::Pending,
                Progress::Queued | Progress::InProgress | Progress::Unfinished => {
                    AccountState::InProgress
                }
                Progress::Transferred => AccountState::Transferred,
                Progress::Failed { .. } => AccountState::Failed,
            },
            warnings: a.warnings,
            notes: a.notes.clone(),
            archives_deleted: a.archives_deleted,
            adopted: a.adopted.clone(),
            size: {
                let hint = hints.sizes.get(name).copied();
                hinted |= hint.is_some();
                hint.or_else(|| restores.get(name.as_str()).and_then(|r| r.bytes))
            },
            live: hints.live.contains(name.as_str()),
            restore: restores
                .get(name.as_str())
                .and_then(|r| Some((r.started?, r.ended?)))
                .filter(|(s, e)| e >= s),
            attempts: a.attempts,
            message: a.message.clone(),
            log: logs.remove(name.as_str()).unwrap_or_default(),
        })
        .collect();
    let next = if state.simulate {
        // A rehearsal cannot be resumed: its simulator is gone.
        (status != RunState::Succeeded).then(|| {
            format!(
                "this was a rehearsal: on the real target, `ferry apply {plan}` would {}; \
                 rehearse again with `ferry apply --simulate {plan}`",
                if status == RunState::Paused {
                    "resume it"
                } else {
                    "continue it"
                }
            )
        })
    } else {
        next_step(&status, &plan)
    };
    let view = RunView {
        plan,
        target: hints
            .target
            .clone()
            .unwrap_or_else(|| "(plan not readable)".into()),
        status,
        started_at: state.first_ts.as_deref().and_then(parse_ts),
        finished_at: if status == RunState::Running {
            None
        } else {
            last_stop.or_else(|| state.last_ts.as_deref().and_then(parse_ts))
        },
        generated_at: now,
        run_pauses,
        sessions,
        accounts,
        next,
        rehearsal: state.simulate,
        sizes_are_hints: hinted,
        restore_slots: hints.restore_slots,
    };
    Ok((view, torn))
}

fn fold_times(
    rec: &Record,
    at: SystemTime,
    times: &mut HashMap<String, Times>,
    run_pauses: &mut Vec<Pause>,
    last_stop: &mut Option<SystemTime>,
) {
    match rec {
        Record::RunStarted { .. } => {
            if let Some(p) = run_pauses.last_mut()
                && p.until.is_none()
            {
                p.until = Some(at);
            }
        }
        Record::SessionCreateIntent { session, .. } => {
            times.entry(session.clone()).or_default().created = Some(at);
        }
        Record::SessionStarted { session, .. } => {
            let t = times.entry(session.clone()).or_default();
            t.started.get_or_insert(at);
            t.close_pause(at);
        }
        Record::SessionState { session, state } => {
            let t = times.entry(session.clone()).or_default();
            match state.as_str() {
                "PAUSING" | "PAUSED" => t.open_pause(at, "paused"),
                "RUNNING" => t.close_pause(at),
                _ => {}
            }
        }
        Record::SessionControl {
            session,
            action: ControlAction::Pause,
            result,
        } if result == "ok" => times
            .entry(session.clone())
            .or_default()
            .open_pause(at, "paused by ferry"),
        Record::ItemOutcome {
            restore: None,
            session,
            account: Some(_),
            result: ItemResult::Failed,
            ..
        } => times.entry(session.clone()).or_default().failed += 1,
        Record::SessionFinished { session, .. } | Record::SessionAbandoned { session, .. } => {
            times.entry(session.clone()).or_default().finished = Some(at);
        }
        Record::RunPaused { reason } => {
            run_pauses.push(Pause {
                at,
                until: None,
                reason: reason.clone(),
            });
            *last_stop = Some(at);
        }
        Record::RunAborted { .. } | Record::RunFinished { .. } => *last_stop = Some(at),
        _ => {}
    }
}

fn phase_label(p: crate::journal::Phase) -> &'static str {
    use crate::journal::Phase;
    match p {
        Phase::Creating => "CREATING",
        Phase::Created | Phase::Starting => "PENDING",
        Phase::Started => "RUNNING",
        Phase::Finished => "FINISHED",
        Phase::Abandoned => "ABANDONED",
    }
}

fn next_step(status: &RunState, plan: &str) -> Option<String> {
    Some(match status {
        RunState::Succeeded => return None,
        RunState::NotStarted => format!("run `ferry apply {plan}` to start the migration"),
        RunState::Running => format!(
            "an `apply` is running (or was stopped without finishing): `ferry status {plan}` shows where it stands; `ferry apply {plan}` resumes a stopped run"
        ),
        RunState::Paused => {
            format!("fix the cause of the failure, then run `ferry apply {plan}` to resume")
        }
        RunState::Partial => format!(
            "fix the cause of each failure below, then run `ferry apply {plan}` to retry the failed accounts"
        ),
        RunState::Aborted => {
            format!("the run was aborted; to start over, run `ferry apply --restart {plan}`")
        }
        RunState::Failed | RunState::Interrupted => format!(
            "the journal is consistent: fix the cause, then run `ferry apply {plan}` to continue"
        ),
    })
}

/// Writes `bytes` to `path` with mode 0600, atomically: a temporary file in
/// the same directory, fsynced, then renamed over `path`. A crash leaves
/// either the old report or the new one, never half a page; an existing
/// report with wider permissions is replaced by a 0600 file.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the report path names no file"))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
