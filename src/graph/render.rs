//! `ferry plan` output: text (for a pull-request reviewer), markdown (a PR
//! comment), JSON (for tools) and DOT (Graphviz).
//!
//! Owns: turning a [`CompiledPlan`] into bytes. Every format is
//! deterministic: the same plan gives the same bytes (no maps with random
//! order, no times, no absolute paths unless the caller passes one).
//! Does not own: printing (`cli`), or reading the journal: progress marks
//! come in through [`RenderOptions::marks`], a callback from step id to
//! [`StepMark`] that the journal's owner provides; without it every step is
//! shown unmarked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use petgraph::Direction;
use serde::Serialize;

use super::compile::sources_by_wave;
use super::{CompiledPlan, SessionStep, SourcePlan, StepId, StepKind, Why};
use crate::plan::{Plan, Ssh};

/// Output format of `ferry plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Dot,
    Markdown,
}

/// A step's progress, as recorded in a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepMark {
    Done,
    InProgress,
    Pending,
}

impl StepMark {
    fn label(self) -> &'static str {
        match self {
            StepMark::Done => "done",
            StepMark::InProgress => "in progress",
            StepMark::Pending => "pending",
        }
    }
}

/// What to render besides the plan itself.
#[derive(Default)]
pub struct RenderOptions<'a> {
    /// Shown in headers, e.g. the plan's path as the user typed it.
    pub title: Option<String>,
    /// Progress of each step by id (from the journal), if there is one.
    pub marks: Option<&'a dyn Fn(&StepId) -> StepMark>,
    /// Text: every session and account even of a large plan (`--detail`);
    /// without it a plan of more than [`SUMMARY_OVER`] accounts is
    /// summarised per source.
    pub detail: bool,
}

/// Text output of a plan with more accounts than this is one line per
/// source unless `--detail` is asked (issue 12: 10,000 accounts must stay
/// readable).
pub const SUMMARY_OVER: usize = 200;

/// Renders `c` (compiled from `plan`) in `format`.
pub fn render(c: &CompiledPlan, plan: &Plan, format: Format, opts: &RenderOptions) -> String {
    match format {
        Format::Text => text(c, plan, opts),
        Format::Markdown => markdown(c, plan, opts),
        Format::Json => json_out(c, plan, opts),
        Format::Dot => dot(c, opts),
    }
}

// ------------------------------------------------------------ shared facts

struct Facts {
    accounts: usize,
    resellers: BTreeMap<(usize, usize), Vec<String>>,
    packages: usize,
    steps: usize,
}

fn facts(c: &CompiledPlan, plan: &Plan) -> Facts {
    let index = crate::plan::index::AccountIndex::new(plan);
    let mut resellers: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    let mut accounts = 0;
    for s in &c.sessions {
        for a in &s.accounts {
            accounts += 1;
            if let Some(r) = index.owner_of(plan, (a.source, a.entry)) {
                resellers.entry(r).or_default().push(a.target_user.clone());
            }
        }
    }
    for v in resellers.values_mut() {
        v.sort();
    }
    Facts {
        accounts,
        resellers,
        packages: c.sessions.iter().map(|s| s.packages.len()).sum(),
        steps: c.graph.node_count(),
    }
}

/// `old1 — old1.example.com (wave 2, after old0): 25 accounts`: a source's
/// heading in the detailed and the summarised text alike.
fn source_title(sp: &SourcePlan, after: &[String], accounts: usize) -> String {
    let after = if after.is_empty() {
        String::new()
    } else {
        format!(", after {}", after.join(", "))
    };
    format!(
        "{} — {} (wave {}{after}): {}",
        sp.name,
        sp.host,
        sp.wave,
        plural(accounts, "account", "accounts")
    )
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Bytes in binary units, one decimal: `1.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn ssh_summary(host: &str, ssh: &Ssh) -> String {
    let how = if ssh.sshkey_name.is_some() {
        "SSH key"
    } else {
        "password"
    };
    let esc = match ssh.root_escalation_method {
        Some(m) => format!(", then {} to root", m.as_str()),
        None => String::new(),
    };
    format!("{}@{}:{} ({how}{esc})", ssh.user, host, ssh.port)
}

/// Each session's progress from its steps' marks: done when all are done,
/// in progress when any has begun, else pending. One pass over the steps.
fn session_marks(c: &CompiledPlan, marks: &dyn Fn(&StepId) -> StepMark) -> Vec<StepMark> {
    // (done, total, started) per session
    let mut acc = vec![(0usize, 0usize, false); c.sessions.len()];
    for st in c.graph.node_weights() {
        if let Some(s) = st.session {
            let e = &mut acc[s];
            e.1 += 1;
            match marks(&st.id) {
                StepMark::Done => e.0 += 1,
                StepMark::InProgress => e.2 = true,
                StepMark::Pending => {}
            }
        }
    }
    acc.into_iter()
        .map(|(done, total, started)| {
            if total > 0 && done == total {
                StepMark::Done
            } else if started || done > 0 {
                StepMark::InProgress
            } else {
                StepMark::Pending
            }
        })
        .collect()
}

fn wave_line(c: &CompiledPlan, plan: &Plan, wave: usize, members: &[usize]) -> String {
    let names: Vec<&str> = members
        .iter()
        .map(|&i| c.sources[i].name.as_str())
        .collect();
    let mut line = format!("wave {wave}: {}", names.join(", "));
    let mut notes = Vec::new();
    if members.len() > 1 {
        let t = c.limits.target_sessions;
        notes.push(format!(
            "in parallel, at most {} on the target",
            plural(t as usize, "session", "sessions")
        ));
    }
    for &i in members {
        let after = &plan.sources[i].after;
        if !after.is_empty() {
            notes.push(format!("{} after {}", c.sources[i].name, after.join(", ")));
        }
    }
    if !notes.is_empty() {
        // With one source, "old3 after old1" reads better as "after old1".
        if members.len() == 1 && notes.len() == 1 {
            let n = &notes[0];
            let prefix = format!("{} ", c.sources[members[0]].name);
            line.push_str(&format!(" ({})", n.strip_prefix(&prefix).unwrap_or(n)));
        } else {
            line.push_str(&format!(" ({})", notes.join("; ")));
        }
    }
    line
}

// ------------------------------------------------------------ text

fn text(c: &CompiledPlan, plan: &Plan, opts: &RenderOptions) -> String {
    let f = facts(c, plan);
    let mut o = String::new();
    let title = opts.title.as_deref().unwrap_or("plan");
    let _ = writeln!(o, "ferry plan {title}");
    o.push('\n');
    for line in summary_lines(c, plan, &f) {
        let _ = writeln!(o, "{line}");
    }
    if !opts.detail && f.accounts > SUMMARY_OVER {
        text_per_source(&mut o, c, plan, opts);
        return o;
    }

    waves_text(&mut o, c, plan);

    o.push('\n');
    let _ = writeln!(
        o,
        "Sessions in order (a session starts once every session it waits for is complete)"
    );
    for (rank, group) in session_ranks(c).iter().enumerate() {
        // Sessions that wait for nothing but their preflight share a line;
        // the others get a line each, with what they wait for.
        let (free, waiting): (Vec<usize>, Vec<usize>) = group
            .iter()
            .partition(|&&s| c.sessions[s].depends_on.is_empty());
        let mut lines: Vec<String> = Vec::new();
        if !free.is_empty() {
            let keys: Vec<&str> = free.iter().map(|&s| c.sessions[s].key.as_str()).collect();
            lines.push(keys.join(", "));
        }
        for s in waiting {
            lines.push(format!(
                "{} — waits for {}",
                c.sessions[s].key,
                waits_text(c, s)
            ));
        }
        for (k, line) in lines.iter().enumerate() {
            if k == 0 {
                let _ = writeln!(o, "  {:>2}. {line}", rank + 1);
            } else {
                let _ = writeln!(o, "      {line}");
            }
        }
    }

    let smarks = opts.marks.map(|m| session_marks(c, m));
    for (i, sp) in c.sources.iter().enumerate() {
        let src = &plan.sources[i];
        let n: usize = sp
            .sessions
            .iter()
            .map(|&s| c.sessions[s].accounts.len())
            .sum();
        o.push('\n');
        let _ = writeln!(
            o,
            "Source {} in {}",
            source_title(sp, &src.after, n),
            plural(sp.sessions.len(), "session", "sessions")
        );
        let mark = |id: &StepId| {
            opts.marks
                .map(|m| format!(" [{}]", m(id).label()))
                .unwrap_or_default()
        };
        let _ = writeln!(
            o,
            "  {}{}  the target checks it can log in: {}",
            sp.preflight,
            mark(&sp.preflight),
            ssh_summary(&src.host, &src.ssh)
        );
        for &s in &sp.sessions {
            text_session(&mut o, c, &f, s, smarks.as_ref().map(|m| m[s]), opts.marks);
        }
        let unused: Vec<&str> = src
            .packages
            .iter()
            .filter(|p| {
                !sp.sessions
                    .iter()
                    .any(|&s| c.sessions[s].packages.contains(p))
            })
            .map(String::as_str)
            .collect();
        if !unused.is_empty() {
            let _ = writeln!(
                o,
                "  not transferred (no account of this plan uses them): {}",
                unused.join(", ")
            );
        }
    }
    o.push('\n');
    let example = c
        .sessions
        .first()
        .and_then(|s| {
            s.accounts
                .first()
                .map(|a| format!("{}/enqueue/{}", s.key, a.user))
        })
        .unwrap_or_else(|| "old1/s1/enqueue/shop".into());
    let _ = writeln!(
        o,
        "Each session: after its source's preflight, create a WHM transfer session, enqueue its\n\
         packages, then its accounts (largest first), start it, await completion, and verify the\n\
         accounts on the target. Step ids are <session>/<step>, e.g. {example}."
    );
    o
}

/// The waves section of the text rendering.
fn waves_text(o: &mut String, c: &CompiledPlan, plan: &Plan) {
    o.push('\n');
    let _ = writeln!(
        o,
        "Waves (sources in one wave run side by side; `after` makes a later wave)"
    );
    for (w, members) in sources_by_wave(c) {
        let _ = writeln!(o, "  {}", wave_line(c, plan, w, &members));
    }
}

/// A large plan's text body: its waves, then one line per source (accounts,
/// their known size, sessions, and with a journal how many are done).
fn text_per_source(o: &mut String, c: &CompiledPlan, plan: &Plan, opts: &RenderOptions) {
    waves_text(o, c, plan);
    o.push('\n');
    let _ = writeln!(
        o,
        "Sources (summarised: {} accounts; `ferry plan --detail` lists every session and account)",
        plan.sources.iter().map(|s| s.accounts.len()).sum::<usize>()
    );
    let smarks = opts.marks.map(|m| session_marks(c, m));
    for (sp, src) in c.sources.iter().zip(&plan.sources) {
        let accounts = sp.sessions.iter().flat_map(|&s| &c.sessions[s].accounts);
        let (mut n, mut known, mut unknown) = (0usize, 0u64, 0usize);
        for a in accounts {
            n += 1;
            match a.size {
                Some(b) => known += b,
                None => unknown += 1,
            }
        }
        let size = match (known, unknown) {
            (_, u) if u == n => "size unknown".to_string(),
            (b, 0) => human_size(b),
            (b, u) => format!("{} + {u} of unknown size", human_size(b)),
        };
        let done = smarks
            .as_ref()
            .map(|m| {
                let d = sp
                    .sessions
                    .iter()
                    .filter(|&&s| m[s] == StepMark::Done)
                    .count();
                format!(" [{d} of {} done]", sp.sessions.len())
            })
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {}, {size}, {}{done}",
            source_title(sp, &src.after, n),
            plural(sp.sessions.len(), "session", "sessions"),
        );
    }
}

/// The opening lines: what moves where, how big, how fast, what on error.
fn summary_lines(c: &CompiledPlan, plan: &Plan, f: &Facts) -> Vec<String> {
    let on_error = match plan.policy.on_error {
        crate::plan::OnError::Pause => "pause the run (`ferry apply` resumes it)",
        crate::plan::OnError::Abort => "abort the run",
        crate::plan::OnError::Continue => "carry on with the other accounts and report it",
    };
    vec![
        format!(
            "Moves {}{} and {} from {} to {} (API user {}).",
            plural(f.accounts, "account", "accounts"),
            match f.resellers.len() {
                0 => String::new(),
                n => format!(" ({})", plural(n, "reseller", "resellers")),
            },
            plural(f.packages, "package", "packages"),
            plural(c.sources.len(), "source server", "source servers"),
            plan.target.url,
            plan.target.user
        ),
        format!(
            "Uses {} of at most {}; {} steps in all.",
            plural(c.sessions.len(), "transfer session", "transfer sessions"),
            plural(c.limits.batch_size as usize, "account", "accounts"),
            f.steps
        ),
        format!(
            "At most {} at once on the target, and {} per source.",
            plural(
                c.limits.target_sessions as usize,
                "session runs",
                "sessions run"
            ),
            c.limits.source_sessions
        ),
        match plan.policy.item_retries {
            0 => format!("If an account fails: {on_error}."),
            1 => format!(
                "If an account fails, it is retried once in a new session; if it fails again: {on_error}."
            ),
            n => format!(
                "If an account fails, it is retried up to {n} times in new sessions; if it still fails: {on_error}."
            ),
        },
    ]
}

/// Sessions grouped by their rank (compile's: how many sessions must
/// complete before them along their longest chain): rank 1 can start at
/// once, rank 2 after some rank-1 session, and so on.
fn session_ranks(c: &CompiledPlan) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (s, sp) in c.sessions.iter().enumerate() {
        if groups.len() <= sp.rank {
            groups.resize(sp.rank + 1, Vec::new());
        }
        groups[sp.rank].push(s);
    }
    groups
}

fn text_session(
    o: &mut String,
    c: &CompiledPlan,
    f: &Facts,
    s: usize,
    smark: Option<StepMark>,
    marks: Option<&dyn Fn(&StepId) -> StepMark>,
) {
    let sp = &c.sessions[s];
    // With a journal, each package and account line ends with its step's mark.
    let step_mark = |step: SessionStep| {
        marks
            .map(|m| format!("  [{}]", m(&StepId::session(&sp.key, step)).label()))
            .unwrap_or_default()
    };
    let mark = smark
        .map(|m| format!(" [{}]", m.label()))
        .unwrap_or_default();
    let mut head = format!(
        "  {}{}  {}",
        sp.key,
        mark,
        plural(sp.accounts.len(), "account", "accounts")
    );
    if !sp.packages.is_empty() {
        let _ = write!(
            head,
            ", {} {}",
            if sp.packages.len() == 1 {
                "package"
            } else {
                "packages"
            },
            sp.packages.join(", ")
        );
    }
    let waits = waits_text(c, s);
    if !waits.is_empty() {
        let _ = write!(head, "; waits for {waits}");
    }
    let _ = writeln!(o, "{head}");
    let names: Vec<String> = sp.accounts.iter().map(account_name).collect();
    let w = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for p in &sp.packages {
        let m = step_mark(SessionStep::Package(p.clone()));
        let _ = writeln!(o, "      package  {p}{m}");
    }
    for (a, name) in sp.accounts.iter().zip(&names) {
        let mut line = format!("      account  {name:<w$}");
        let size = a.size.map(human_size).unwrap_or_default();
        let _ = write!(line, "  {size:>9}");
        let mut notes = Vec::new();
        if let Some(p) = &a.package {
            notes.push(format!("package {p}"));
        }
        if let Some(owner) = &a.owner {
            notes.push(format!("owned by {owner}"));
        }
        if let Some(owned) = f.resellers.get(&(a.source, a.entry)) {
            notes.push(format!("reseller of {}", list_short(owned, 4)));
        }
        if !notes.is_empty() {
            let _ = write!(line, "  {}", notes.join("; "));
        }
        let m = step_mark(SessionStep::Enqueue(a.user.clone()));
        let _ = writeln!(o, "{}{m}", line.trim_end());
    }
}

/// What session `s` waits for besides its preflight, with reasons:
/// `old1/s1 (reseller agency), all of old1 (after old1)`. Empty when
/// nothing.
fn waits_text(c: &CompiledPlan, s: usize) -> String {
    let sp = &c.sessions[s];
    let mut parts = Vec::new();
    // `after` dependencies are grouped per source: "all of old1".
    let mut after_groups: BTreeSet<&str> = BTreeSet::new();
    for d in &sp.depends_on {
        let own: Vec<String> = d
            .why
            .iter()
            .filter(|w| !matches!(w, Why::After { .. }))
            .map(Why::to_string)
            .collect();
        if d.why.iter().any(|w| matches!(w, Why::After { .. })) {
            after_groups.insert(c.sessions[d.on].source_name.as_str());
        }
        if !own.is_empty() {
            parts.push(format!("{} ({})", c.sessions[d.on].key, own.join(", ")));
        }
    }
    for src in &after_groups {
        parts.push(format!("all of {src} (its `after`)"));
    }
    parts.join(", ")
}

fn account_name(a: &super::SessionAccount) -> String {
    if a.user == a.target_user {
        a.user.clone()
    } else {
        format!("{} → {}", a.user, a.target_user)
    }
}

fn list_short(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

// ------------------------------------------------------------ markdown

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn markdown(c: &CompiledPlan, plan: &Plan, opts: &RenderOptions) -> String {
    let f = facts(c, plan);
    let mut o = String::new();
    let title = opts.title.as_deref().unwrap_or("plan");
    let _ = writeln!(o, "### ferry plan `{}`\n", md_escape(title));
    for line in summary_lines(c, plan, &f) {
        let _ = writeln!(o, "{}  ", md_escape(&line));
    }
    let _ = writeln!(o, "\n| wave | sources | when |\n|---|---|---|");
    for (w, members) in sources_by_wave(c) {
        let line = wave_line(c, plan, w, &members);
        let when = line
            .split_once(" (")
            .map(|(_, r)| r.trim_end_matches(')').to_string())
            .unwrap_or_else(|| "first".into());
        let names: Vec<&str> = members
            .iter()
            .map(|&i| c.sources[i].name.as_str())
            .collect();
        let _ = writeln!(
            o,
            "| {w} | {} | {} |",
            md_escape(&names.join(", ")),
            md_escape(&when)
        );
    }
    let _ = writeln!(
        o,
        "\n**Sessions in order** (a session starts once every session it waits for is complete):\n"
    );
    for (rank, group) in session_ranks(c).iter().enumerate() {
        let keys: Vec<String> = group
            .iter()
            .map(|&s| {
                let w = waits_text(c, s);
                if w.is_empty() {
                    format!("`{}`", c.sessions[s].key)
                } else {
                    format!("`{}` — waits for {}", c.sessions[s].key, md_escape(&w))
                }
            })
            .collect();
        let _ = writeln!(o, "{}. {}", rank + 1, keys.join("; "));
    }
    let smarks = opts.marks.map(|m| session_marks(c, m));
    for (i, sp) in c.sources.iter().enumerate() {
        let src = &plan.sources[i];
        let _ = writeln!(
            o,
            "\n#### {} — `{}` (wave {})\n",
            md_escape(&sp.name),
            md_escape(&src.host),
            sp.wave
        );
        let _ = writeln!(o, "Login check: `{}`\n", ssh_summary(&src.host, &src.ssh));
        let status = smarks.is_some();
        let _ = writeln!(
            o,
            "| session |{} accounts | packages | waits for |\n|---|{}---|---|---|",
            if status { " status |" } else { "" },
            if status { "---|" } else { "" }
        );
        for &s in &sp.sessions {
            let ss = &c.sessions[s];
            let accts: Vec<String> = ss
                .accounts
                .iter()
                .map(|a| {
                    let mut n = account_name(a);
                    if f.resellers.contains_key(&(a.source, a.entry)) {
                        n.push_str(" (reseller)");
                    }
                    n
                })
                .collect();
            let mark = smarks
                .as_ref()
                .map(|m| format!(" {} |", m[s].label()))
                .unwrap_or_default();
            let waits = waits_text(c, s);
            let _ = writeln!(
                o,
                "| `{}` |{mark} {} | {} | {} |",
                ss.key,
                md_escape(&list_short(&accts, 12)),
                md_escape(&ss.packages.join(", ")),
                if waits.is_empty() {
                    "—".to_string()
                } else {
                    md_escape(&waits)
                }
            );
        }
    }
    let _ = writeln!(
        o,
        "\nEach session: create → enqueue packages, then accounts (largest first) → start → await → verify."
    );
    o
}

// ------------------------------------------------------------ json

// Typed views, serialized straight into the output: a `serde_json::Value`
// tree of a 100,000-account plan would take ten times the output's size.

#[derive(Serialize)]
struct JsonPlan<'a> {
    plan: Option<&'a str>,
    target: &'a str,
    limits: super::Limits,
    sources: Vec<JsonSource<'a>>,
    sessions: Vec<JsonSession<'a>>,
    steps: Vec<JsonStep<'a>>,
}

#[derive(Serialize)]
struct JsonSource<'a> {
    name: &'a str,
    host: &'a str,
    wave: usize,
    after: &'a [String],
    preflight: &'a StepId,
    sessions: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonSession<'a> {
    key: &'a str,
    source: &'a str,
    index: usize,
    packages: &'a [String],
    accounts: Vec<JsonAccount<'a>>,
    depends_on: Vec<&'a str>,
    options: &'a crate::plan::SessionOptions,
}

#[derive(Serialize)]
struct JsonAccount<'a> {
    user: &'a str,
    target_user: &'a str,
    package: Option<&'a str>,
    owner: Option<&'a str>,
    priority: u8,
    size: Option<u64>,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    id: &'a StepId,
    kind: &'static str,
    source: &'a str,
    session: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    package: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_user: Option<&'a str>,
    /// Ids of the steps that must succeed first.
    after: Vec<&'a StepId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mark: Option<StepMark>,
}

fn json_out(c: &CompiledPlan, plan: &Plan, opts: &RenderOptions) -> String {
    let key = |s: usize| c.sessions[s].key.as_str();
    let sources = c
        .sources
        .iter()
        .enumerate()
        .map(|(i, sp)| JsonSource {
            name: &sp.name,
            host: &plan.sources[i].host,
            wave: sp.wave,
            after: &plan.sources[i].after,
            preflight: &sp.preflight,
            sessions: sp.sessions.iter().map(|&s| key(s)).collect(),
        })
        .collect();
    let sessions = c
        .sessions
        .iter()
        .map(|s| JsonSession {
            key: &s.key,
            source: &s.source_name,
            index: s.index,
            packages: &s.packages,
            accounts: s
                .accounts
                .iter()
                .map(|a| JsonAccount {
                    user: &a.user,
                    target_user: &a.target_user,
                    package: a.package.as_deref(),
                    owner: a.owner.as_deref(),
                    priority: a.priority,
                    size: a.size,
                })
                .collect(),
            depends_on: s.depends_on.iter().map(|d| key(d.on)).collect(),
            options: &s.options,
        })
        .collect();
    let steps = c
        .graph
        .node_indices()
        .map(|n| {
            let st = &c.graph[n];
            let mut after: Vec<_> = c.graph.neighbors_directed(n, Direction::Incoming).collect();
            after.sort();
            let (package, user, target_user) = match &st.kind {
                StepKind::EnqueuePackage { package } => (Some(package.as_str()), None, None),
                StepKind::EnqueueAccount { user, target_user } => {
                    (None, Some(user.as_str()), Some(target_user.as_str()))
                }
                _ => (None, None, None),
            };
            JsonStep {
                id: &st.id,
                kind: st.kind.name(),
                source: &c.sources[st.source].name,
                session: st.session.map(key),
                package,
                user,
                target_user,
                after: after.iter().map(|&p| &c.graph[p].id).collect(),
                mark: opts.marks.map(|m| m(&st.id)),
            }
        })
        .collect();
    let doc = JsonPlan {
        plan: opts.title.as_deref(),
        target: &plan.target.url,
        limits: c.limits,
        sources,
        sessions,
        steps,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("plan JSON serializes");
    s.push('\n');
    s
}

// ------------------------------------------------------------ dot

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn dot(c: &CompiledPlan, opts: &RenderOptions) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "digraph ferry {{");
    let _ = writeln!(o, "  rankdir=LR;");
    let _ = writeln!(
        o,
        "  node [shape=box, fontname=\"monospace\", fontsize=10];"
    );
    let color = |id: &StepId| -> String {
        match opts.marks.map(|m| m(id)) {
            Some(StepMark::Done) => ", style=filled, fillcolor=\"palegreen\"".into(),
            Some(StepMark::InProgress) => ", style=filled, fillcolor=\"khaki\"".into(),
            _ => String::new(),
        }
    };
    // Preflights outside clusters; each session a cluster.
    let mut by_session: BTreeMap<usize, Vec<petgraph::graph::NodeIndex>> = BTreeMap::new();
    for n in c.graph.node_indices() {
        let st = &c.graph[n];
        match st.session {
            None => {
                let id = st.id.to_string();
                let _ = writeln!(
                    o,
                    "  {} [label={}{}];",
                    dot_id(&id),
                    dot_id(&id),
                    color(&st.id)
                );
            }
            Some(s) => by_session.entry(s).or_default().push(n),
        }
    }
    for (s, nodes) in &by_session {
        let sp = &c.sessions[*s];
        let _ = writeln!(
            o,
            "  subgraph {} {{",
            dot_id(&format!("cluster_{}", sp.key))
        );
        let _ = writeln!(
            o,
            "    label={};",
            dot_id(&format!(
                "{} ({})",
                sp.key,
                plural(sp.accounts.len(), "account", "accounts")
            ))
        );
        for &n in nodes {
            let st = &c.graph[n];
            let id = st.id.to_string();
            let label = id.strip_prefix(&format!("{}/", sp.key)).unwrap_or(&id);
            let _ = writeln!(
                o,
                "    {} [label={}{}];",
                dot_id(&id),
                dot_id(label),
                color(&st.id)
            );
        }
        let _ = writeln!(o, "  }}");
    }
    let mut edges: Vec<(usize, usize)> = c
        .graph
        .edge_indices()
        .filter_map(|e| c.graph.edge_endpoints(e))
        .map(|(a, b)| (a.index(), b.index()))
        .collect();
    edges.sort_unstable();
    for (a, b) in edges {
        let (sa, sb) = (
            &c.graph[petgraph::graph::NodeIndex::new(a)],
            &c.graph[petgraph::graph::NodeIndex::new(b)],
        );
        let style = if sa.session.is_some() && sa.session != sb.session {
            " [style=bold, color=\"firebrick\"]"
        } else {
            ""
        };
        let (a, b) = (sa.id.to_string(), sb.id.to_string());
        let _ = writeln!(o, "  {} -> {}{style};", dot_id(&a), dot_id(&b));
    }
    let _ = writeln!(o, "}}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
