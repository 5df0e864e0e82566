//! Properties of the compiler on random valid plans (proptest): whatever the
//! plan, every account is moved exactly once, in sessions no bigger than
//! `batch_size`, resellers and packages before the accounts that need them,
//! `after` respected, and the result acyclic and deterministic.

use std::collections::{BTreeSet, HashMap};

use ferry::graph::{self, CompiledPlan, Format, render::RenderOptions};
use ferry::plan::*;
use proptest::prelude::*;

/// One account to generate: package choice, owner choice (an index into the
/// accounts generated before it, across sources), size.
#[derive(Debug, Clone)]
struct Acc {
    package: Option<usize>,
    owner: Option<usize>,
    size: Option<u64>,
    rename: bool,
}

#[derive(Debug, Clone)]
struct Src {
    packages: usize,
    after: Vec<usize>,
    accounts: Vec<Acc>,
}

fn acc() -> impl Strategy<Value = Acc> {
    (
        prop::option::of(0usize..3),
        prop::option::weighted(0.4, any::<prop::sample::Index>()),
        prop::option::of(1u64..1_000),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(package, owner, size, rename)| Acc {
            package,
            owner: owner.map(|i| i.index(usize::MAX / 2)),
            size,
            rename,
        })
}

fn src() -> impl Strategy<Value = Src> {
    (
        0usize..3,
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        prop::collection::vec(acc(), 1..9),
    )
        .prop_map(|(packages, after, accounts)| Src {
            packages,
            after: after.iter().map(|i| i.index(usize::MAX / 2)).collect(),
            accounts,
        })
}

/// Builds a valid plan: `after` only names earlier sources, an owner is an
/// account generated earlier (so chains end, and a reseller's source never
/// runs after its accounts' source), usernames are unique.
fn build(sources: &[Src], batch: u32) -> Plan {
    let mut out = Vec::new();
    let mut earlier: Vec<String> = Vec::new(); // target usernames so far
    for (i, s) in sources.iter().enumerate() {
        let packages: Vec<String> = (0..s.packages).map(|p| format!("p{p}")).collect();
        let mut after: Vec<String> = if i == 0 {
            Vec::new()
        } else {
            s.after.iter().map(|a| format!("s{}", a % i)).collect()
        };
        after.sort();
        after.dedup();
        let mut accounts = Vec::new();
        for (j, a) in s.accounts.iter().enumerate() {
            let user = format!("u{i}x{j}");
            let localuser = a.rename.then(|| format!("n{i}x{j}"));
            let target = localuser.clone().unwrap_or_else(|| user.clone());
            let owner = match a.owner {
                Some(k) if !earlier.is_empty() => Some(earlier[k % earlier.len()].clone()),
                _ => None,
            };
            let package = match (a.package, s.packages) {
                (Some(p), n) if n > 0 => Some(format!("p{}", p % n)),
                _ => None,
            };
            accounts.push(AccountEntry::Full(Box::new(Account {
                user,
                localuser,
                package,
                owner,
                domain: None,
                size: a.size,
                options: AccountOptions::default(),
                allow_overwrite: None,
            })));
            earlier.push(target);
        }
        out.push(Source {
            name: format!("s{i}"),
            host: format!("s{i}.example.com"),
            ssh: Ssh {
                user: "root".into(),
                port: 22,
                password: Some(SecretRef::Env("P".into())),
                sshkey_name: None,
                sshkey_passphrase: None,
                root_escalation_method: None,
                root_password: None,
            },
            session: SessionOptions::default(),
            after,
            packages,
            accounts,
        });
    }
    Plan {
        version: 1,
        name: None,
        target: Target {
            url: "https://whm.example.net:2087".into(),
            user: "root".into(),
            token: SecretRef::Env("T".into()),
            tls: None,
        },
        defaults: Defaults::default(),
        sources: out,
        policy: Policy::default(),
        concurrency: Concurrency {
            target_sessions: 2,
            source_sessions: 1,
            batch_size: batch,
            api_requests: 4,
        },
        notify: vec![],
        journal: None,
    }
}

/// Sessions that `s` waits for, directly or not.
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

fn check(plan: &Plan, c: &CompiledPlan) -> Result<(), TestCaseError> {
    // Where each account went.
    let mut session_of: HashMap<(usize, usize), usize> = HashMap::new();
    for (s, sp) in c.sessions.iter().enumerate() {
        prop_assert!(!sp.accounts.is_empty());
        prop_assert!(sp.accounts.len() <= plan.concurrency.batch_size as usize);
        let ons: Vec<usize> = sp.waits_for().collect();
        let mut deps = ons.clone();
        deps.sort();
        deps.dedup();
        prop_assert_eq!(&deps, &ons, "depends_on sorted, unique");
        prop_assert!(!ons.contains(&s));
        prop_assert!(
            sp.depends_on.iter().all(|d| !d.why.is_empty()),
            "every edge says why"
        );
        prop_assert_eq!(
            sp.rank,
            sp.waits_for()
                .map(|d| c.sessions[d].rank + 1)
                .max()
                .unwrap_or(0),
            "rank is the longest chain"
        );
        for a in &sp.accounts {
            prop_assert_eq!(a.source, sp.source);
            prop_assert!(
                session_of.insert((a.source, a.entry), s).is_none(),
                "moved twice"
            );
        }
    }
    let total: usize = plan.sources.iter().map(|s| s.accounts.len()).sum();
    prop_assert_eq!(session_of.len(), total, "every account moved");
    // Acyclic: the step graph sorts, and no session waits for itself.
    prop_assert!(petgraph::algo::toposort(&c.graph, None).is_ok());
    for s in 0..c.sessions.len() {
        prop_assert!(!closure(c, s).contains(&s), "session cycle at {}", s);
    }
    // Resellers before the accounts they own.
    let by_target: HashMap<&str, (usize, usize)> = plan
        .sources
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.accounts
                .iter()
                .enumerate()
                .map(move |(j, e)| (e.target_user(), (i, j)))
        })
        .collect();
    for (i, s) in plan.sources.iter().enumerate() {
        for (j, e) in s.accounts.iter().enumerate() {
            let here = session_of[&(i, j)];
            if let Some(o) = e.details().and_then(|a| a.owner.as_deref()) {
                let there = session_of[&by_target[o]];
                prop_assert!(here != there, "reseller shares a session");
                prop_assert!(closure(c, here).contains(&there), "owner first");
            }
            // Packages: enqueued here, or in a session this one waits for.
            if let Some(p) = e.details().and_then(|a| a.package.as_ref()) {
                let ok = c.sessions[here].packages.contains(p)
                    || closure(c, here)
                        .iter()
                        .any(|&d| c.sessions[d].source == i && c.sessions[d].packages.contains(p));
                prop_assert!(ok, "package {} before {}", p, e.user());
            }
        }
        // Each package enqueued at most once per source.
        let mut seen = BTreeSet::new();
        for &s in &c.sources[i].sessions {
            for p in &c.sessions[s].packages {
                prop_assert!(seen.insert(p.clone()), "package {} twice", p);
            }
        }
    }
    // `after`: every session of A waits for every session of B.
    for (a, s) in plan.sources.iter().enumerate() {
        for b in &s.after {
            let bi = plan.sources.iter().position(|x| &x.name == b).unwrap();
            for &sa in &c.sources[a].sessions {
                let cl = closure(c, sa);
                for &sb in &c.sources[bi].sessions {
                    prop_assert!(
                        cl.contains(&sb),
                        "{} after {}",
                        c.sessions[sa].key,
                        c.sessions[sb].key
                    );
                }
            }
        }
    }
    // Step chain inside a session, and ids unique.
    let mut ids = BTreeSet::new();
    for st in c.graph.node_weights() {
        prop_assert!(ids.insert(st.id.clone()), "duplicate id {}", st.id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn compiled_graphs_keep_every_rule(
        sources in prop::collection::vec(src(), 1..5),
        batch in 1u32..5,
    ) {
        let plan = build(&sources, batch);
        let problems = ferry::plan::rules::check(&plan);
        prop_assert!(problems.is_empty(), "generated plan invalid: {:?}", problems);
        let c = graph::compile(&plan);
        check(&plan, &c)?;
        // Deterministic: same plan, same sessions, same bytes.
        let again = graph::compile(&plan);
        prop_assert_eq!(&c.sessions, &again.sessions);
        for f in [Format::Text, Format::Json, Format::Dot, Format::Markdown] {
            let o = RenderOptions::default();
            prop_assert_eq!(
                graph::render::render(&c, &plan, f, &o),
                graph::render::render(&again, &plan, f, &o)
            );
        }
    }
}
