//! The critical-path order of a compiled plan's sessions: which batch the
//! executor offers a session first, and which batches end the run.
//!
//! Owns: a batch's estimated duration, its *tail* (that estimate plus the
//! longest tail among what waits for it) and the order by tail. Used by
//! the compiler (which composes the run's last batches smaller, `compile`)
//! and by the scheduler (`exec::schedule`, whose module doc explains why
//! this order is near-optimal). Does not own: the limits or when a batch
//! may start (`exec`).

use std::collections::BTreeMap;

use super::SessionPlan;

/// A batch's estimated duration, in bytes restored one after another: the
/// larger of its largest account and its total over its `restore_threads`.
/// Unknown sizes count 0.
fn estimate(batch: &SessionPlan) -> u64 {
    let sizes = || batch.accounts.iter().map(|a| a.size.unwrap_or(0));
    let threads = u64::from(batch.options.restore_threads.unwrap_or(1).max(1));
    let total: u64 = sizes().fold(0, u64::saturating_add);
    sizes().max().unwrap_or(0).max(total.div_ceil(threads))
}

/// Every batch's tail: its [`estimate`] plus the longest tail among what
/// waits for it — the batches that depend on it, and the batch of its own
/// source `lanes` (`source_sessions`) places later, which can start only
/// when one of the source's places frees (see the module doc).
fn tails(sessions: &[SessionPlan], lanes: usize) -> Vec<u64> {
    let lanes = lanes.max(1);
    let mut behind: Vec<Vec<usize>> = vec![Vec::new(); sessions.len()];
    for (b, s) in sessions.iter().enumerate() {
        for d in s.waits_for() {
            behind[d].push(b);
        }
    }
    let mut by_source: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (b, s) in sessions.iter().enumerate() {
        by_source.entry(s.source).or_default().push(b);
    }
    for list in by_source.values() {
        for pair in list.iter().zip(list.iter().skip(lanes)) {
            behind[*pair.0].push(*pair.1);
        }
    }
    let est: Vec<u64> = sessions.iter().map(estimate).collect();
    let mut tail = est.clone();
    // Relaxation to the fixed point: every edge goes forward in the DAG,
    // so as many passes as its longest chain; the bound keeps a cycle (an
    // unchecked plan) from looping.
    for _ in 0..=sessions.len() {
        let mut changed = false;
        for b in (0..sessions.len()).rev() {
            let t = est[b].saturating_add(behind[b].iter().map(|&d| tail[d]).max().unwrap_or(0));
            if t > tail[b] {
                tail[b] = t;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    tail
}

/// The order in which the scheduler offers batches a session: longest
/// tail first, then the plan's order.
pub fn critical_order(sessions: &[SessionPlan], lanes: usize) -> Vec<usize> {
    let tail = tails(sessions, lanes);
    let mut order: Vec<usize> = (0..sessions.len()).collect();
    order.sort_by_key(|&b| (std::cmp::Reverse(tail[b]), b));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str) -> crate::graph::CompiledPlan {
        let p = crate::plan::parse("t.yaml", yaml).unwrap_or_else(|d| panic!("{d}"));
        crate::graph::compile(&p)
    }

    fn source(name: &str, extra: &str, accounts: &str) -> String {
        format!(
            "  - name: {name}\n    host: {name}.example.com\n    ssh: {{password: {{env: P}}}}\n{extra}    accounts: [{accounts}]\n"
        )
    }

    const HEAD: &str =
        "version: 1\ntarget: {url: 'https://whm.example.net:2087', token: {env: T}}\n";

    fn keys(c: &crate::graph::CompiledPlan, order: &[usize]) -> Vec<String> {
        order.iter().map(|&b| c.sessions[b].key.clone()).collect()
    }

    /// The session holding the largest account is offered a slot first,
    /// though its source comes last in the plan.
    #[test]
    fn the_largest_account_starts_first() {
        let c = compiled(&format!(
            "{HEAD}sources:\n{}{}{}",
            source(
                "a",
                "",
                "{user: a1, size: 500000000}, {user: a2, size: 500000000}"
            ),
            source("b", "", "{user: b1, size: 2000000000}"),
            source(
                "c",
                "",
                "{user: c1, size: 8000000000}, {user: c2, size: 100000000}"
            ),
        ));
        assert_eq!(
            keys(&c, &critical_order(&c.sessions, 1)),
            ["c/s1", "b/s1", "a/s1"]
        );
    }

    /// What waits behind a batch counts: a small reseller's batch with a
    /// giant owned account behind it goes before a larger lone batch.
    #[test]
    fn work_behind_a_batch_counts() {
        let c = compiled(&format!(
            "{HEAD}concurrency: {{batch_size: 1}}\nsources:\n{}{}",
            source("a", "", "{user: big, size: 3000000000}"),
            source(
                "r",
                "",
                "{user: res, size: 10000000}, {user: shop, owner: res, size: 8000000000}"
            ),
        ));
        let order = keys(&c, &critical_order(&c.sessions, 1));
        assert_eq!(order, ["r/s1", "r/s2", "a/s1"]);
        // one place per source: a source's second batch waits behind its
        // first, so two 1 GB batches in a row outweigh one of 1.5 GB; with
        // two places they do not
        let c = compiled(&format!(
            "{HEAD}concurrency: {{batch_size: 1}}\nsources:\n{}{}",
            source(
                "a",
                "",
                "{user: x, size: 1000000000}, {user: y, size: 1000000000}"
            ),
            source("b", "", "{user: z, size: 1500000000}"),
        ));
        assert_eq!(
            keys(&c, &critical_order(&c.sessions, 1)),
            ["a/s1", "b/s1", "a/s2"]
        );
        assert_eq!(
            keys(&c, &critical_order(&c.sessions, 2)),
            ["b/s1", "a/s1", "a/s2"]
        );
    }

    /// Without sizes nothing changes: the plan's order.
    #[test]
    fn without_sizes_the_plans_order() {
        let c = compiled(&format!(
            "{HEAD}concurrency: {{batch_size: 1}}\nsources:\n{}{}",
            source("a", "", "x, y"),
            source("b", "", "z"),
        ));
        assert_eq!(critical_order(&c.sessions, 1), [0, 1, 2]);
    }
}
