//! Plan → sessions → step graph.
//!
//! The rules, in the order they are applied:
//! 1. **Levels.** An account's level is 0 when no account of the plan owns
//!    it, else 1 + its owner's level (owners may live in other sources).
//!    Every dependency between sessions goes from a lower level to a higher
//!    one, or from an earlier session of a source to a later one of the same
//!    level, which is why the session graph has no cycle (given the plan
//!    rules: no owner cycle, no `after` cycle, no `after` against a reseller).
//! 2. **Sessions.** Per source, accounts are grouped by level, lower levels
//!    first, and each level is split into `⌈n / batch_size⌉` sessions of at
//!    most `batch_size` by [`super::batch::compose`]: in rounds of
//!    `source_sessions` sessions (those that may run at once), largest
//!    first, each account into the round's session with the least work so
//!    far, so a giant account does not sit in a session with a long queue
//!    behind it, and the last rounds hold the smallest accounts. A
//!    reseller is therefore never in the same session as an account it
//!    owns, and `prerequisite_user` is never needed.
//!    **The run's tail:** a first pass composes as above; the sessions the
//!    critical order ([`super::critical`]) runs last — as many as
//!    `target_sessions`, each the last of its group, with at least twice its
//!    `restore_threads` accounts (and 4), all of known size — are then cut
//!    in two by a second pass. The run's last sessions restore alone, a few
//!    at a time; smaller ones end it sooner, for one create each.
//! 3. **Order within a level and a session:** size descending, then target
//!    username. Starting the largest transfers first keeps a big account from
//!    being the last thing running while the other workers sit idle (the
//!    "longest processing time first" rule), which shortens the whole move;
//!    the name makes the order total, so the same plan always compiles to
//!    the same sessions. Accounts without a `size` go after those with one.
//! 4. **Dependencies** (`depends_on`, and `await → create` edges):
//!    * a session holding an account owned by a plan reseller depends on the
//!      reseller's session;
//!    * a package is enqueued once per source, in the first session that
//!      needs it; a later session of that source needing it depends on that
//!      first session;
//!    * `after`: each session of a source that depends on no other session of
//!      its own source depends on the *last* sessions of every named source
//!      (those no other session of that source depends on), so every session
//!      of the named sources has finished first, transitively, without an
//!      edge from every session to every session.
//! 5. **Steps.** Per source a `preflight`; per session the chain `create →
//!    package/<p>… → enqueue/<user>… → start → await → verify`, with
//!    `preflight → create`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};

use super::{
    CompiledPlan, Dependency, Edge, Limits, SessionAccount, SessionPlan, SessionStep, SourcePlan,
    Step, StepId, StepKind, Why,
};
use crate::plan::index::{AccountIndex, EntryParts, Fingerprint};
use crate::plan::{AccountEntry, Plan};

/// Compiles a valid plan (as returned by `plan::load`/`plan::parse`).
///
/// Deterministic: the same plan gives the same sessions, steps and ids in
/// the same order.
pub fn compile(plan: &Plan) -> CompiledPlan {
    let first = compile_with(plan, &BTreeSet::new());
    let split = tail_groups(plan, &first);
    if split.is_empty() {
        first
    } else {
        compile_with(plan, &split)
    }
}

/// The fewest accounts a session of the run's tail must hold to be split:
/// below it a split saves at most a restore or two and costs a create (an
/// SSH login on the source).
const TAIL_SPLIT_MIN: usize = 4;

/// The groups (source, ordinal within the source) whose last session is
/// among the run's last `target_sessions` in the critical order and holds
/// at least twice its `restore_threads` accounts (and [`TAIL_SPLIT_MIN`]),
/// all of known size: those the second pass splits (rule 2, "the run's
/// tail").
fn tail_groups(plan: &Plan, first: &CompiledPlan) -> BTreeSet<(usize, usize)> {
    let places = plan.concurrency.target_sessions.max(1) as usize;
    if first.sessions.len() <= places {
        return BTreeSet::new();
    }
    let lanes = plan.concurrency.source_sessions.max(1) as usize;
    let order = super::critical::critical_order(&first.sessions, lanes);
    order
        .iter()
        .rev()
        .take(places)
        .map(|&b| &first.sessions[b])
        .filter(|s| {
            let threads = s.options.restore_threads.unwrap_or(1).max(1) as usize;
            s.accounts.len() >= (2 * threads).max(TAIL_SPLIT_MIN)
                && s.accounts.iter().all(|a| a.size.is_some())
        })
        .filter_map(|s| s.last_of_group.map(|g| (s.source, g)))
        .collect()
}

/// [`compile`] with the given groups' last session split in two.
fn compile_with(plan: &Plan, split: &BTreeSet<(usize, usize)>) -> CompiledPlan {
    let index = AccountIndex::new(plan);
    let levels = levels(plan, &index);
    let batch = plan.concurrency.batch_size.max(1) as usize;

    // --- sessions, per source
    let mut sessions: Vec<SessionPlan> = Vec::new();
    // (source, entry) → global session index
    let mut session_of: Vec<Vec<usize>> = plan
        .sources
        .iter()
        .map(|s| vec![usize::MAX; s.accounts.len()])
        .collect();
    let mut sources: Vec<SourcePlan> = Vec::with_capacity(plan.sources.len());
    for (i, src) in plan.sources.iter().enumerate() {
        let mut order: Vec<usize> = (0..src.accounts.len()).collect();
        order.sort_by(|&a, &b| {
            let (ea, eb) = (&src.accounts[a], &src.accounts[b]);
            levels[i][a]
                .cmp(&levels[i][b])
                .then_with(|| size_key(eb).cmp(&size_key(ea)))
                .then_with(|| ea.target_user().cmp(eb.target_user()))
                .then_with(|| a.cmp(&b))
        });
        let options = src.session.or(&plan.defaults.session);
        let mut mine = Vec::new();
        let mut start = 0;
        let mut group_no = 0;
        while start < order.len() {
            // A session holds one level only; a level's accounts are split
            // by `batch::compose` (longest processing time first).
            let level = levels[i][order[start]];
            let mut end = start;
            while end < order.len() && levels[i][order[end]] == level {
                end += 1;
            }
            let group = &order[start..end];
            let sizes: Vec<Option<u64>> = group
                .iter()
                .map(|&j| src.accounts[j].details().and_then(|a| a.size))
                .collect();
            let lanes = plan.concurrency.source_sessions.max(1) as usize;
            let composed =
                super::batch::compose(&sizes, batch, lanes, split.contains(&(i, group_no)));
            let count = composed.len();
            for (n, positions) in composed.into_iter().enumerate() {
                let global = sessions.len();
                let index_in_source = mine.len() + 1;
                let accounts = positions
                    .iter()
                    .enumerate()
                    .map(|(rank, &p)| {
                        let j = group[p];
                        session_of[i][j] = global;
                        session_account(plan, &index, i, j, rank)
                    })
                    .collect();
                sessions.push(SessionPlan {
                    key: format!("{}/s{}", src.name, index_in_source),
                    source: i,
                    source_name: src.name.clone(),
                    index: index_in_source,
                    rank: 0,
                    packages: Vec::new(),
                    accounts,
                    depends_on: Vec::new(),
                    options: options.clone(),
                    last_of_group: (n + 1 == count).then_some(group_no),
                });
                mine.push(global);
            }
            group_no += 1;
            start = end;
        }
        sources.push(SourcePlan {
            name: src.name.clone(),
            host: src.host.clone(),
            wave: 0,
            sessions: mine,
            preflight: StepId::preflight(&src.name),
            options: options.clone(),
        });
    }

    // --- dependencies: owners and packages, each with why
    let mut deps: Vec<BTreeMap<usize, BTreeSet<Why>>> = vec![BTreeMap::new(); sessions.len()];
    for src_sessions in sources.iter().map(|s| s.sessions.clone()) {
        let mut first_with: HashMap<String, usize> = HashMap::new();
        for &s in &src_sessions {
            let mut needed: BTreeSet<&str> = BTreeSet::new();
            for a in &sessions[s].accounts {
                if let Some(p) = &a.package {
                    needed.insert(p);
                }
                if let Some(r) = index.owner_of(plan, (a.source, a.entry)) {
                    let rs = session_of[r.0][r.1];
                    if rs != s {
                        let owner = a.owner.clone().unwrap_or_default();
                        deps[s]
                            .entry(rs)
                            .or_default()
                            .insert(Why::Reseller { owner });
                    }
                }
            }
            let mut enqueue_here = Vec::new();
            for p in needed {
                match first_with.get(p) {
                    Some(&first) => {
                        let package = p.to_string();
                        deps[s]
                            .entry(first)
                            .or_default()
                            .insert(Why::Package { package });
                    }
                    None => {
                        first_with.insert(p.to_string(), s);
                        enqueue_here.push(p.to_string());
                    }
                }
            }
            sessions[s].packages = enqueue_here;
        }
    }

    // --- waves and `after`
    let by_name: HashMap<&str, usize> = plan
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let waves = waves(plan, &by_name);
    for (i, w) in waves.iter().enumerate() {
        sources[i].wave = *w;
    }
    // Last sessions of each source: no session of the same source depends on them.
    let mut has_dependent_in_source = vec![false; sessions.len()];
    for (s, d) in deps.iter().enumerate() {
        for &t in d.keys() {
            if sessions[t].source == sessions[s].source {
                has_dependent_in_source[t] = true;
            }
        }
    }
    let roots: Vec<Vec<usize>> = sources
        .iter()
        .map(|sp| {
            sp.sessions
                .iter()
                .copied()
                .filter(|&s| {
                    deps[s]
                        .keys()
                        .all(|&t| sessions[t].source != sessions[s].source)
                })
                .collect()
        })
        .collect();
    for (i, src) in plan.sources.iter().enumerate() {
        for name in &src.after {
            let Some(&b) = by_name.get(name.as_str()) else {
                continue;
            };
            let lasts: Vec<usize> = sources[b]
                .sessions
                .iter()
                .copied()
                .filter(|&t| !has_dependent_in_source[t])
                .collect();
            for &r in &roots[i] {
                for &l in &lasts {
                    deps[r].entry(l).or_default().insert(Why::After {
                        source: name.clone(),
                    });
                }
            }
        }
    }
    for (s, d) in deps.into_iter().enumerate() {
        sessions[s].depends_on = d
            .into_iter()
            .map(|(on, why)| Dependency {
                on,
                why: why.into_iter().collect(),
            })
            .collect();
    }
    ranks(&mut sessions);

    let graph = build_graph(&sessions, &sources);
    let compiled = CompiledPlan {
        graph,
        sessions,
        limits: Limits {
            target_sessions: plan.concurrency.target_sessions,
            source_sessions: plan.concurrency.source_sessions,
            batch_size: plan.concurrency.batch_size,
            api_requests: plan.concurrency.api_requests,
        },
        sources,
    };
    debug_assert!(
        petgraph::algo::toposort(&compiled.graph, None).is_ok(),
        "compiled step graph has a cycle"
    );
    compiled
}

/// Sort key for "largest first": known sizes above unknown ones.
fn size_key(e: &AccountEntry) -> (bool, u64) {
    match e.details().and_then(|a| a.size) {
        Some(s) => (true, s),
        None => (false, 0),
    }
}

fn session_account(
    plan: &Plan,
    index: &AccountIndex,
    i: usize,
    j: usize,
    rank: usize,
) -> SessionAccount {
    let e = &plan.sources[i].accounts[j];
    let d = e.details();
    let mut options = match d {
        Some(a) => a.options.or(&plan.defaults.account),
        None => plan.defaults.account.clone(),
    };
    // One answer for "is overwriting meant", wherever the plan says it.
    if d.is_some_and(|a| a.allows_overwrite(&plan.defaults.account)) {
        options.allow_overwrite = Some(true);
    }
    let (package, owner) = (
        d.and_then(|a| a.package.clone()),
        d.and_then(|a| a.owner.clone()),
    );
    let domain = d.and_then(|a| a.domain.clone());
    let fingerprint = Fingerprint::of(&EntryParts {
        host: &plan.sources[i].host,
        user: e.user(),
        localuser: e.target_user(),
        domain: domain.as_deref(),
        package: package.as_deref(),
        owner: owner.as_deref(),
        options: &options.to_params(),
    });
    SessionAccount {
        source: i,
        entry: j,
        user: e.user().to_string(),
        target_user: e.target_user().to_string(),
        reseller: index
            .owner_of(plan, (i, j))
            .map(|(ri, rj)| plan.sources[ri].accounts[rj].target_user().to_string()),
        package,
        owner,
        domain,
        fingerprint,
        prerequisite_user: None,
        priority: (rank + 1).min(255) as u8,
        size: d.and_then(|a| a.size),
        options,
    }
}

/// Each session's rank: the length of its longest chain of dependencies.
/// A session depends only on sessions of lower levels, or on earlier
/// sessions of its own source, or (through `after`) on sessions of an
/// earlier wave — so repeating the relaxation as many times as there are
/// sessions reaches the fixed point; in practice two or three passes do.
fn ranks(sessions: &mut [SessionPlan]) {
    loop {
        let mut changed = false;
        for s in 0..sessions.len() {
            let r = sessions[s]
                .waits_for()
                .map(|d| sessions[d].rank + 1)
                .max()
                .unwrap_or(0);
            if r > sessions[s].rank && r <= sessions.len() {
                sessions[s].rank = r;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// Level of every account (see the module docs), computed along owner
/// chains with an explicit stack: linear, and no recursion on long chains.
fn levels(plan: &Plan, index: &AccountIndex) -> Vec<Vec<usize>> {
    const UNKNOWN: usize = usize::MAX;
    let mut lv: Vec<Vec<usize>> = plan
        .sources
        .iter()
        .map(|s| vec![UNKNOWN; s.accounts.len()])
        .collect();
    let mut chain = Vec::new();
    for (i, s) in plan.sources.iter().enumerate() {
        for j in 0..s.accounts.len() {
            chain.clear();
            let mut cur = (i, j);
            let base = loop {
                if lv[cur.0][cur.1] != UNKNOWN {
                    break lv[cur.0][cur.1];
                }
                chain.push(cur);
                // The plan rules exclude owner cycles; the bound keeps an
                // unchecked plan from looping forever.
                match index.owner_of(plan, cur) {
                    Some(o) if chain.len() <= index.targets.len() + 1 => cur = o,
                    _ => break usize::MAX,
                }
            };
            // `base` is the level of the first known owner, or MAX when the
            // chain ended (its last element has no owner: level 0).
            let first = if base == usize::MAX { 0 } else { base + 1 };
            for (level, &slot) in (first..).zip(chain.iter().rev()) {
                lv[slot.0][slot.1] = level;
            }
        }
    }
    lv
}

/// Wave of each source: 1 + the highest wave among the sources it waits
/// for (1 without `after`). Iterative; the plan rules exclude cycles, and a
/// bound keeps an unchecked plan from looping.
fn waves(plan: &Plan, by_name: &HashMap<&str, usize>) -> Vec<usize> {
    let n = plan.sources.len();
    let mut wave = vec![1usize; n];
    for _ in 0..n {
        let mut changed = false;
        for (i, s) in plan.sources.iter().enumerate() {
            let w = s
                .after
                .iter()
                .filter_map(|a| by_name.get(a.as_str()))
                .map(|&b| wave[b] + 1)
                .max()
                .unwrap_or(1);
            if w > wave[i] && w <= n {
                wave[i] = w;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    wave
}

fn build_graph(sessions: &[SessionPlan], sources: &[SourcePlan]) -> DiGraph<Step, Edge> {
    let steps: usize = sessions
        .iter()
        .map(|s| 5 + s.packages.len() + s.accounts.len())
        .sum::<usize>()
        + sources.len();
    let mut g = DiGraph::with_capacity(steps, steps + sessions.len());
    let mut preflight = Vec::with_capacity(sources.len());
    for (i, sp) in sources.iter().enumerate() {
        preflight.push(g.add_node(Step {
            id: sp.preflight.clone(),
            kind: StepKind::Preflight,
            source: i,
            session: None,
        }));
    }
    let mut create: Vec<NodeIndex> = Vec::with_capacity(sessions.len());
    let mut awaits: Vec<NodeIndex> = Vec::with_capacity(sessions.len());
    for (s, sp) in sessions.iter().enumerate() {
        let add = |g: &mut DiGraph<Step, Edge>, step: SessionStep, kind: StepKind| {
            g.add_node(Step {
                id: StepId::session(&sp.key, step),
                kind,
                source: sp.source,
                session: Some(s),
            })
        };
        let c = add(&mut g, SessionStep::Create, StepKind::CreateSession);
        g.add_edge(preflight[sp.source], c, Edge::Preflight);
        let mut prev = c;
        for p in &sp.packages {
            let n = add(
                &mut g,
                SessionStep::Package(p.clone()),
                StepKind::EnqueuePackage { package: p.clone() },
            );
            g.add_edge(prev, n, Edge::Chain);
            prev = n;
        }
        for a in &sp.accounts {
            let n = add(
                &mut g,
                SessionStep::Enqueue(a.user.clone()),
                StepKind::EnqueueAccount {
                    user: a.user.clone(),
                    target_user: a.target_user.clone(),
                },
            );
            g.add_edge(prev, n, Edge::Chain);
            prev = n;
        }
        let st = add(&mut g, SessionStep::Start, StepKind::Start);
        g.add_edge(prev, st, Edge::Chain);
        let aw = add(&mut g, SessionStep::Await, StepKind::Await);
        g.add_edge(st, aw, Edge::Chain);
        let v = add(&mut g, SessionStep::Verify, StepKind::Verify);
        g.add_edge(aw, v, Edge::Chain);
        create.push(c);
        awaits.push(aw);
    }
    for (s, sp) in sessions.iter().enumerate() {
        for d in &sp.depends_on {
            g.add_edge(
                awaits[d.on],
                create[s],
                Edge::Session { why: d.why.clone() },
            );
        }
    }
    g
}

/// Sessions grouped per source, then by wave (used by the renderers).
pub(crate) fn sources_by_wave(c: &CompiledPlan) -> BTreeMap<usize, Vec<usize>> {
    let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, s) in c.sources.iter().enumerate() {
        m.entry(s.wave).or_default().push(i);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Plan {
        crate::plan::parse("t.yaml", yaml).unwrap_or_else(|d| panic!("{d}"))
    }

    const HEAD: &str =
        "version: 1\ntarget: {url: 'https://whm.example.net:2087', token: {env: T}}\n";

    #[test]
    fn resellers_go_first_and_packages_once() {
        let p = plan(&format!(
            "{HEAD}concurrency: {{batch_size: 2}}\nsources:\n  - name: old1\n    host: old1.example.com\n    ssh: {{password: {{env: P}}}}\n    packages: [gold]\n    accounts:\n      - {{user: res, package: gold}}\n      - {{user: a, owner: res, package: gold, size: 10}}\n      - {{user: b, owner: res, size: 30}}\n      - {{user: c, package: gold, size: 20}}\n"
        ));
        let c = compile(&p);
        let keys: Vec<(&str, Vec<&str>)> = c
            .sessions
            .iter()
            .map(|s| {
                (
                    s.key.as_str(),
                    s.accounts.iter().map(|a| a.user.as_str()).collect(),
                )
            })
            .collect();
        // level 0: c (20), res (no size); level 1: b (30), a (10)
        assert_eq!(
            keys,
            vec![("old1/s1", vec!["c", "res"]), ("old1/s2", vec!["b", "a"])]
        );
        assert_eq!(c.sessions[0].packages, vec!["gold"]);
        assert!(c.sessions[1].packages.is_empty());
        assert_eq!(c.sessions[1].waits_for().collect::<Vec<_>>(), vec![0]);
        assert_eq!(
            c.sessions[1].depends_on[0].why,
            vec![
                Why::Reseller {
                    owner: "res".into()
                },
                Why::Package {
                    package: "gold".into()
                }
            ]
        );
        assert_eq!((c.sessions[0].rank, c.sessions[1].rank), (0, 1));
        assert_eq!(c.sessions[1].accounts[0].reseller.as_deref(), Some("res"));
        assert!(petgraph::algo::toposort(&c.graph, None).is_ok());
        let ids: Vec<String> = c.graph.node_weights().map(|s| s.id.to_string()).collect();
        assert!(ids.iter().any(|i| i == "old1/s2/enqueue/a"));
        assert!(ids.iter().any(|i| i == "old1/s1/package/gold"));
        assert!(ids.iter().any(|i| i == "old1/preflight"));
    }

    /// The run's tail: of 8 equal sessions over 2 places, the 2 the
    /// critical order runs last are split in two (4 → 2 + 2); the others
    /// keep the batch rule's count. A plan without sizes is not split.
    #[test]
    fn the_runs_last_sessions_are_split_in_two() {
        let source = |n: usize, sized: bool| {
            let accounts: Vec<String> = (0..8)
                .map(|i| {
                    if sized {
                        format!("{{user: s{n}a{i}, size: 1000000000}}")
                    } else {
                        format!("{{user: s{n}a{i}}}")
                    }
                })
                .collect();
            format!(
                "  - name: old{n}\n    host: old{n}.example.com\n    ssh: {{password: {{env: P}}}}\n    accounts: [{}]\n",
                accounts.join(", ")
            )
        };
        let yaml = |sized: bool| {
            format!(
                "{HEAD}defaults: {{session: {{restore_threads: 2}}}}\nconcurrency: {{batch_size: 4, target_sessions: 2, source_sessions: 1}}\nsources:\n{}",
                (1..=4).map(|n| source(n, sized)).collect::<String>()
            )
        };
        let c = compile(&plan(&yaml(true)));
        let order = crate::graph::critical::critical_order(&c.sessions, 1);
        let sizes: Vec<(&str, usize)> = order
            .iter()
            .map(|&b| (c.sessions[b].key.as_str(), c.sessions[b].accounts.len()))
            .collect();
        assert_eq!(c.sessions.len(), 10, "{sizes:?}");
        assert!(sizes[..6].iter().all(|s| s.1 == 4), "{sizes:?}");
        assert!(sizes[6..].iter().all(|s| s.1 == 2), "{sizes:?}");
        assert_eq!(compile(&plan(&yaml(false))).sessions.len(), 8);
    }

    #[test]
    fn after_waits_for_the_last_sessions() {
        let p = plan(&format!(
            "{HEAD}concurrency: {{batch_size: 1}}\nsources:\n  - name: a\n    host: a.example.com\n    ssh: {{password: {{env: P}}}}\n    accounts: [x, y]\n  - name: b\n    host: b.example.com\n    ssh: {{password: {{env: P}}}}\n    after: [a]\n    accounts: [z]\n"
        ));
        let c = compile(&p);
        assert_eq!(c.sources[1].wave, 2);
        let b = c.sources[1].sessions[0];
        assert_eq!(c.sessions[b].waits_for().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(
            c.sessions[b].depends_on[0].why,
            vec![Why::After { source: "a".into() }]
        );
    }

    use proptest::prelude::*;

    /// A random account: its size, the index of its owner in its source
    /// (kept when earlier), its package (gold/silver).
    type RandomAccount = (Option<u64>, Option<usize>, Option<bool>);

    /// One random plan: per source, accounts with or without a size and a
    /// package, some owned by an earlier account of the source; some
    /// sources `after` the previous one.
    fn random_plan(sources: &[(Vec<RandomAccount>, bool)], batch: usize, lanes: usize) -> String {
        let mut y = format!(
            "{HEAD}concurrency: {{batch_size: {batch}, source_sessions: {lanes}}}\nsources:\n"
        );
        for (i, (accounts, after)) in sources.iter().enumerate() {
            y += &format!(
                "  - name: s{i}\n    host: s{i}.example.com\n    ssh: {{password: {{env: P}}}}\n    packages: [gold, silver]\n"
            );
            if *after && i > 0 {
                y += &format!("    after: [s{}]\n", i - 1);
            }
            y += "    accounts:\n";
            for (j, (size, owner, package)) in accounts.iter().enumerate() {
                let mut f = vec![format!("user: s{i}u{j}")];
                if let Some(sz) = size {
                    f.push(format!("size: {sz}"));
                }
                if let Some(o) = owner.filter(|&o| o < j) {
                    f.push(format!("owner: s{i}u{o}"));
                }
                if let Some(p) = package {
                    f.push(format!("package: {}", if *p { "gold" } else { "silver" }));
                }
                y += &format!("      - {{{}}}\n", f.join(", "));
            }
        }
        y
    }

    /// Every session `s` waits for, transitively.
    fn closure(c: &CompiledPlan, s: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = c.sessions[s].waits_for().collect();
        while let Some(d) = stack.pop() {
            if seen.insert(d) {
                stack.extend(c.sessions[d].waits_for());
            }
        }
        seen
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Batch composition keeps every plan rule: each account in one
        /// session, at most `batch_size` per session, one level per
        /// session, the reseller's session before its accounts', a package
        /// enqueued once per source in the first session needing it and
        /// waited for by the others, `after` honoured, largest first
        /// within a session, and no cycle.
        #[test]
        fn composition_keeps_every_plan_rule(
            sources in proptest::collection::vec(
                (
                    proptest::collection::vec(
                        (
                            proptest::option::weighted(0.8, 1u64..5_000_000_000),
                            proptest::option::weighted(0.2, 0usize..30),
                            proptest::option::of(any::<bool>()),
                        ),
                        1..30,
                    ),
                    any::<bool>(),
                ),
                1..4,
            ),
            batch in 1usize..12,
            lanes in 1usize..4,
        ) {
            let p = plan(&random_plan(&sources, batch, lanes));
            let c = compile(&p);
            prop_assert!(petgraph::algo::toposort(&c.graph, None).is_ok());
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for (si, s) in c.sessions.iter().enumerate() {
                prop_assert!(!s.accounts.is_empty() && s.accounts.len() <= batch);
                for a in &s.accounts {
                    prop_assert!(seen.insert(a.target_user.as_str(), si).is_none());
                }
                let sizes: Vec<(bool, u64)> = s
                    .accounts
                    .iter()
                    .map(|a| a.size.map_or((false, 0), |z| (true, z)))
                    .collect();
                prop_assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
            }
            let total: usize = sources.iter().map(|s| s.0.len()).sum();
            prop_assert_eq!(seen.len(), total);
            for (si, s) in c.sessions.iter().enumerate() {
                let waits = closure(&c, si);
                for a in &s.accounts {
                    if let Some(r) = &a.reseller {
                        let rs = seen[r.as_str()];
                        prop_assert!(rs != si && waits.contains(&rs), "{} before {}", r, a.target_user);
                    }
                    if let Some(pkg) = &a.package {
                        let first = c.sources[s.source]
                            .sessions
                            .iter()
                            .copied()
                            .find(|&t| c.sessions[t].accounts.iter().any(|b| b.package.as_ref() == Some(pkg)))
                            .unwrap();
                        prop_assert!(c.sessions[first].packages.contains(pkg));
                        prop_assert!(first == si || waits.contains(&first));
                    }
                }
                let enqueued: usize = c.sources[s.source]
                    .sessions
                    .iter()
                    .filter(|&&t| c.sessions[t].packages.iter().any(|p| s.packages.contains(p)))
                    .count();
                prop_assert!(s.packages.is_empty() || enqueued == 1);
                if sources[s.source].1 && s.source > 0 {
                    for &t in &c.sources[s.source - 1].sessions {
                        prop_assert!(waits.contains(&t), "{} after {}", s.key, c.sessions[t].key);
                    }
                }
            }
        }
    }
}
