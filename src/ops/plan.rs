//! `ferry plan PLAN [--journal PATH]`: compile a plan and render its step
//! graph, each step marked done / in progress / pending when a journal
//! exists (design §2).
//!
//! Owns: reading the journal read-only ([`journal::replay`]: a torn last
//! line is skipped and mentioned, never repaired) and turning the replayed
//! [`RunState`] into a mark per step id ([`step_marks`]). Does not own:
//! writing the journal (`exec`) or the renderings (`graph::render`, which
//! takes the marks through `RenderOptions::marks`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ExitStatus;
use crate::graph::render::{self, Format, RenderOptions};
use crate::graph::{CompiledPlan, StepId, StepKind, StepMark};
use crate::journal::record::ItemResult;
use crate::journal::{self, JournalError, Phase, Progress, RunState, SessionRec};
use crate::plan::Diagnostics;

/// What `ferry plan` was asked to do.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub plan: PathBuf,
    pub format: Format,
    /// `--journal`: the journal whose progress marks the steps. `None`:
    /// the default journal (`.ferry/<plan stem>.journal`) if it exists.
    pub journal: Option<PathBuf>,
    /// `--detail`: text output lists every session and account even of a
    /// large plan (otherwise summarised per source).
    pub detail: bool,
}

/// The rendering, plus notes for stderr.
#[derive(Debug, Clone)]
pub struct PlanOutput {
    pub text: String,
    pub notes: Vec<String>,
    pub status: ExitStatus,
}

/// Why `ferry plan` printed no plan.
#[derive(Debug)]
pub enum PlanError {
    /// The plan is invalid: its diagnostics (exit 2, as `ferry validate`).
    Invalid(Diagnostics),
    /// The journal cannot be read or is corrupt (exit 1: the plan and the
    /// arguments are fine, the file on disk is not — as for `ferry status`
    /// and `ferry apply` on the same journal).
    Journal(JournalError),
    /// The journal records another plan's identity (exit 2).
    OtherPlan {
        journal: PathBuf,
        theirs: String,
        mine: String,
    },
    /// The journal in PostgreSQL could not be read (its own exit status).
    Db(super::Error),
}

/// Loads, validates, compiles and renders; with a journal, marks each
/// step from the replayed run.
pub fn plan(opts: &PlanOptions) -> Result<PlanOutput, PlanError> {
    let loaded = crate::plan::load(&opts.plan).map_err(PlanError::Invalid)?;
    let compiled = crate::graph::compile(&loaded.plan);
    let mut notes = Vec::new();
    if let Some(url) = opts.journal.as_deref().and_then(|p| p.to_str())
        && journal::pg::is_url(url)
    {
        let w = super::journal::locate(&loaded, opts.journal.as_deref(), super::journal::Kind::Run)
            .map_err(PlanError::Db)?;
        let state = super::journal::read_state(&w).map_err(PlanError::Db)?;
        let marks = state.map(|(st, _)| step_marks(&compiled, &st));
        if marks.is_none() {
            notes.push(format!(
                "note: no run `{}` in {}; steps are shown without progress",
                loaded.identity(),
                w.label().display()
            ));
        }
        return Ok(rendered(opts, &loaded, &compiled, marks, notes));
    }
    let journal_path = match &opts.journal {
        Some(p) if p.exists() => Some(p.clone()),
        Some(p) => {
            notes.push(format!(
                "note: no journal at {}; steps are shown without progress",
                p.display()
            ));
            None
        }
        None => Some(super::default_journal_path(&opts.plan)).filter(|p| p.exists()),
    };
    if let Some(path) = &journal_path
        && let Ok(Some(theirs)) = journal::plan_identity(path)
        && theirs != loaded.identity()
    {
        return Err(PlanError::OtherPlan {
            journal: path.clone(),
            theirs,
            mine: loaded.identity(),
        });
    }
    let marks = match &journal_path {
        None => None,
        Some(path) => {
            let (state, torn) = journal::replay(path).map_err(PlanError::Journal)?;
            notes.extend(journal_notes(path, &state, &loaded.hash, torn));
            Some(step_marks(&compiled, &state))
        }
    };
    Ok(rendered(opts, &loaded, &compiled, marks, notes))
}

/// The plan rendered in `opts.format`, each step marked from the run's
/// `marks` if there is one.
fn rendered(
    opts: &PlanOptions,
    loaded: &crate::plan::LoadedPlan,
    compiled: &CompiledPlan,
    marks: Option<HashMap<StepId, StepMark>>,
    notes: Vec<String>,
) -> PlanOutput {
    let lookup = marks
        .as_ref()
        .map(|m| move |id: &StepId| m.get(id).copied().unwrap_or(StepMark::Pending));
    let ropts = RenderOptions {
        title: Some(opts.plan.display().to_string()),
        marks: lookup.as_ref().map(|f| f as &dyn Fn(&StepId) -> StepMark),
        detail: opts.detail,
    };
    PlanOutput {
        text: render::render(compiled, &loaded.plan, opts.format, &ropts),
        notes,
        status: ExitStatus::Success,
    }
}

/// What the reader should know about the journal the marks come from.
fn journal_notes(
    path: &Path,
    state: &RunState,
    plan_hash: &str,
    torn: Option<journal::Repaired>,
) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(t) = torn {
        notes.push(format!(
            "note: journal {}: the last line (line {}) is torn and was ignored; the next `ferry apply` repairs it",
            path.display(),
            t.line
        ));
    }
    match state.plan_hash.as_deref() {
        None => notes.push(format!(
            "note: journal {} records no run yet; every step is pending",
            path.display()
        )),
        Some(h) if h != plan_hash => notes.push(format!(
            "note: the plan changed since the run in {} began; marks follow account names and \
             session keys, and `ferry apply` will reconcile the change",
            path.display()
        )),
        Some(_) => {}
    }
    notes
}

/// Progress of every step of `c`, from a replayed journal; steps not in the
/// map are pending.
///
/// * `<source>/preflight` — WHM checks a source's credentials when it
///   creates a transfer session, so the journal's proof of a passed
///   preflight is a session id recorded for that source (or an account of
///   it transferred); a create announced without an id yet: in progress.
/// * Session steps follow the batch's *current* instance: the latest one
///   not abandoned (`old1/s2`, or a retry/replacement `old1/s2#2`).
///   `create` is done once its id is known; `start` once
///   `start_transfer_session` answered (in progress from its intent);
///   `await` once the instance finished (in progress while it runs);
///   `verify` once every account of the batch is transferred and confirmed
///   by `listaccts` (in progress after the instance finished, until then).
///   A batch whose every account is transferred has create, packages,
///   enqueues, start and await done whatever its instances say.
/// * `package/<p>` — done once any session of the source restored it
///   (a package moves once per source); in progress while an open instance
///   carries it and its enqueue was announced.
/// * `enqueue/<user>` — stands for the account's move: done once the account
///   is transferred; in progress while its transfer may be under way
///   (queued after the enqueue intent, started, restore unfinished, or
///   failed in a way an operator must check); pending otherwise, including
///   a clean failure that the next `apply` retries in a new session.
pub fn step_marks(c: &CompiledPlan, st: &RunState) -> HashMap<StepId, StepMark> {
    let mut out = HashMap::with_capacity(c.graph.node_count());
    let transferred = |t: &str| {
        st.accounts
            .get(t)
            .is_some_and(|a| a.progress == Progress::Transferred)
    };
    // Per batch: (current instance, every account transferred).
    let batches: Vec<(Option<&SessionRec>, bool)> = c
        .sessions
        .iter()
        .map(|sp| {
            let current = st
                .instances_of(&sp.key)
                .filter(|i| i.phase != Phase::Abandoned)
                .last();
            let all = sp.accounts.iter().all(|a| transferred(&a.target_user));
            (current, all)
        })
        .collect();
    for step in c.graph.node_weights() {
        let source = &c.sources[step.source].name;
        let mark = match (&step.kind, step.session) {
            (StepKind::Preflight, _) => preflight_mark(c, st, step.source, source),
            (kind, Some(s)) => {
                let (current, all) = batches[s];
                let phase = current.map(|i| i.phase);
                match kind {
                    _ if all && !matches!(kind, StepKind::Verify | StepKind::Await) => {
                        StepMark::Done
                    }
                    StepKind::CreateSession => match phase {
                        None => StepMark::Pending,
                        Some(Phase::Creating) => StepMark::InProgress,
                        Some(_) => StepMark::Done,
                    },
                    StepKind::EnqueuePackage { package } => {
                        package_mark(st, source, package, current)
                    }
                    StepKind::EnqueueAccount { target_user, .. } => account_mark(st, target_user),
                    StepKind::Start => match phase {
                        Some(Phase::Starting) => StepMark::InProgress,
                        Some(Phase::Started | Phase::Finished) => StepMark::Done,
                        _ => StepMark::Pending,
                    },
                    StepKind::Await => match phase {
                        Some(Phase::Finished) => StepMark::Done,
                        Some(Phase::Starting | Phase::Started) => StepMark::InProgress,
                        _ if all => StepMark::Done,
                        _ => StepMark::Pending,
                    },
                    StepKind::Verify => {
                        let confirmed = c.sessions[s].accounts.iter().all(|a| {
                            st.accounts
                                .get(&a.target_user)
                                .is_some_and(|x| x.verified == Some(true))
                        });
                        let open = current.is_some_and(SessionRec::is_open);
                        if all && confirmed && !open {
                            StepMark::Done
                        } else if all || phase == Some(Phase::Finished) {
                            StepMark::InProgress
                        } else {
                            StepMark::Pending
                        }
                    }
                    StepKind::Preflight => StepMark::Pending,
                }
            }
            (_, None) => StepMark::Pending,
        };
        if mark != StepMark::Pending {
            out.insert(step.id.clone(), mark);
        }
    }
    out
}

fn preflight_mark(c: &CompiledPlan, st: &RunState, source: usize, name: &str) -> StepMark {
    let mut instances = st.sessions().iter().filter(|s| s.source == name);
    let any_transferred = c.sources[source].sessions.iter().any(|&s| {
        c.sessions[s].accounts.iter().any(|a| {
            st.accounts
                .get(&a.target_user)
                .is_some_and(|x| x.progress == Progress::Transferred)
        })
    });
    if any_transferred || instances.clone().any(|s| s.id.is_some()) {
        StepMark::Done
    } else if instances.any(|s| s.phase == Phase::Creating) {
        StepMark::InProgress
    } else {
        StepMark::Pending
    }
}

fn package_mark(
    st: &RunState,
    source: &str,
    package: &str,
    current: Option<&SessionRec>,
) -> StepMark {
    let restored = st.sessions().iter().any(|s| {
        s.source == source
            && s.package_results
                .get(package)
                .is_some_and(|r| *r != ItemResult::Failed)
    });
    if restored {
        StepMark::Done
    } else if current
        .is_some_and(|i| i.is_open() && i.enqueue_intent && i.packages.iter().any(|p| p == package))
    {
        StepMark::InProgress
    } else {
        StepMark::Pending
    }
}

fn account_mark(st: &RunState, target_user: &str) -> StepMark {
    let Some(a) = st.accounts.get(target_user) else {
        return StepMark::Pending;
    };
    match a.progress {
        Progress::Transferred => StepMark::Done,
        Progress::Queued => {
            let announced = a
                .session
                .as_deref()
                .and_then(|k| st.session(k))
                .is_some_and(|s| s.is_open() && s.enqueue_intent);
            if announced {
                StepMark::InProgress
            } else {
                StepMark::Pending
            }
        }
        _ if a.began() => StepMark::InProgress,
        _ => StepMark::Pending,
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::journal::record::{EnqueueOutcome, Record};

    const PLAN: &str = "version: 1
target: {url: https://whm.example.net:2087, token: {env: WHM_TOKEN}}
sources:
  - name: old1
    host: old1.example.com
    ssh: {user: root, password: {env: OLD1_PW}}
    packages: [basic, business]
    accounts:
      - {user: shop, localuser: shop2, package: business, size: 4000}
      - {user: photos, package: business, size: 3000}
      - {user: example, size: 2000}
      - {user: blog, package: basic, size: 1000}
";

    /// One session `old1/s1`: packages basic, business; accounts shop
    /// (→ shop2), photos, example, blog.
    fn compiled() -> CompiledPlan {
        let plan = crate::plan::parse("p.yaml", PLAN).unwrap();
        let c = crate::graph::compile(&plan);
        assert_eq!(c.sessions.len(), 1);
        c
    }

    fn run_started(c: &CompiledPlan) -> Record {
        let accounts: Vec<(&str, &str, &str)> = c.sessions[0]
            .accounts
            .iter()
            .map(|a| ("old1", a.user.as_str(), a.target_user.as_str()))
            .collect();
        crate::journal::canned::run_started(crate::journal::canned::planned_as(&accounts))
    }

    fn intent(c: &CompiledPlan, key: &str, accounts: &[&str], packages: &[&str]) -> Record {
        Record::SessionCreateIntent {
            session: key.into(),
            batch: c.sessions[0].key.clone(),
            source: "old1".into(),
            host: "old1.example.com".into(),
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            packages: packages.iter().map(|s| s.to_string()).collect(),
            replaces: None,
        }
    }

    fn item(session: &str, account: &str, result: ItemResult) -> Record {
        Record::account_outcome(session, account, result, None)
    }

    fn mark(m: &HashMap<StepId, StepMark>, id: &str) -> StepMark {
        m.iter()
            .find(|(k, _)| k.to_string() == id)
            .map(|(_, v)| *v)
            .unwrap_or(StepMark::Pending)
    }

    #[test]
    fn a_batch_moves_from_pending_through_in_progress_to_done() {
        let c = compiled();
        let all = ["shop2", "photos", "example", "blog"];
        let mut st = RunState::default();
        st.apply(&run_started(&c));
        assert!(step_marks(&c, &st).is_empty(), "nothing began");

        st.apply(&intent(&c, "old1/s1", &all, &["basic", "business"]));
        let m = step_marks(&c, &st);
        assert_eq!(mark(&m, "old1/preflight"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/create"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/enqueue/shop"), StepMark::Pending);

        st.apply(&Record::SessionCreated {
            session: "old1/s1".into(),
            id: "X1".into(),
        });
        st.apply(&Record::EnqueueIntent {
            session: "old1/s1".into(),
            packages: vec!["basic".into(), "business".into()],
            accounts: all.iter().map(|s| s.to_string()).collect(),
        });
        st.apply(&Record::Enqueued {
            session: "old1/s1".into(),
            package: None,
            account: Some("shop2".into()),
            outcome: EnqueueOutcome::Added,
        });
        let m = step_marks(&c, &st);
        assert_eq!(mark(&m, "old1/preflight"), StepMark::Done);
        assert_eq!(mark(&m, "old1/s1/create"), StepMark::Done);
        assert_eq!(mark(&m, "old1/s1/package/basic"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/enqueue/shop"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/start"), StepMark::Pending);

        st.apply(&Record::StartIntent {
            session: "old1/s1".into(),
        });
        let m = step_marks(&c, &st);
        assert_eq!(mark(&m, "old1/s1/start"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/await"), StepMark::InProgress);
        st.apply(&Record::SessionStarted {
            session: "old1/s1".into(),
            pid: 7,
        });
        st.apply(&Record::ItemOutcome {
            restore: None,
            session: "old1/s1".into(),
            account: None,
            package: Some("basic".into()),
            result: ItemResult::Succeeded,
            message: None,
            log: Vec::new(),
        });
        st.apply(&item("old1/s1", "shop2", ItemResult::Succeeded));
        st.apply(&item("old1/s1", "photos", ItemResult::Failed));
        let m = step_marks(&c, &st);
        assert_eq!(mark(&m, "old1/s1/start"), StepMark::Done);
        assert_eq!(mark(&m, "old1/s1/package/basic"), StepMark::Done);
        assert_eq!(mark(&m, "old1/s1/enqueue/shop"), StepMark::Done);
        // A clean failure is retried by the next session: pending again.
        assert_eq!(mark(&m, "old1/s1/enqueue/photos"), StepMark::Pending);
        assert_eq!(mark(&m, "old1/s1/enqueue/blog"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/verify"), StepMark::Pending);

        st.apply(&item("old1/s1", "example", ItemResult::Warning));
        st.apply(&item("old1/s1", "blog", ItemResult::Succeeded));
        st.apply(&Record::SessionFinished {
            session: "old1/s1".into(),
            state: "COMPLETED".into(),
        });
        let m = step_marks(&c, &st);
        assert_eq!(mark(&m, "old1/s1/await"), StepMark::Done);
        assert_eq!(mark(&m, "old1/s1/verify"), StepMark::InProgress);

        // A replacement for photos: the batch follows the new instance.
        st.apply(&Record::SessionCreateIntent {
            session: "old1/s1#2".into(),
            batch: "old1/s1".into(),
            source: "old1".into(),
            host: "old1.example.com".into(),
            accounts: vec!["photos".into()],
            packages: vec![],
            replaces: Some("old1/s1".into()),
        });
        let m = step_marks(&c, &st);
        assert_eq!(mark(&m, "old1/s1/create"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/start"), StepMark::Pending);
        assert_eq!(mark(&m, "old1/s1/enqueue/shop"), StepMark::Done);
        assert_eq!(mark(&m, "old1/s1/enqueue/photos"), StepMark::Pending);
        for r in [
            Record::SessionCreated {
                session: "old1/s1#2".into(),
                id: "X2".into(),
            },
            Record::EnqueueIntent {
                session: "old1/s1#2".into(),
                packages: vec![],
                accounts: vec!["photos".into()],
            },
            Record::StartIntent {
                session: "old1/s1#2".into(),
            },
            Record::SessionStarted {
                session: "old1/s1#2".into(),
                pid: 8,
            },
        ] {
            st.apply(&r);
        }
        let m = step_marks(&c, &st);
        assert_eq!(mark(&m, "old1/s1/enqueue/photos"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/await"), StepMark::InProgress);
        st.apply(&item("old1/s1#2", "photos", ItemResult::Succeeded));
        st.apply(&Record::SessionFinished {
            session: "old1/s1#2".into(),
            state: "COMPLETED".into(),
        });
        let m = step_marks(&c, &st);
        // Transferred but not yet confirmed by listaccts.
        assert_eq!(mark(&m, "old1/s1/verify"), StepMark::InProgress);
        assert_eq!(mark(&m, "old1/s1/package/business"), StepMark::Done);
        for a in all {
            st.apply(&Record::AccountVerified {
                account: a.into(),
                session: "old1/s1".into(),
                present: true,
            });
        }
        let m = step_marks(&c, &st);
        for step in c.graph.node_weights() {
            assert_eq!(
                mark(&m, &step.id.to_string()),
                StepMark::Done,
                "{}",
                step.id
            );
        }
    }

    #[test]
    fn an_abandoned_instance_leaves_its_batch_pending() {
        let c = compiled();
        let mut st = RunState::default();
        st.apply(&run_started(&c));
        st.apply(&intent(&c, "old1/s1", &["shop2", "blog"], &["basic"]));
        st.apply(&Record::SessionAbandoned {
            session: "old1/s1".into(),
            id: None,
            reason: "create answer lost".into(),
        });
        let m = step_marks(&c, &st);
        assert_eq!(mark(&m, "old1/s1/create"), StepMark::Pending);
        assert_eq!(mark(&m, "old1/s1/enqueue/shop"), StepMark::Pending);
        assert_eq!(mark(&m, "old1/preflight"), StepMark::Pending);
    }
}
