//! Batch composition: which accounts of one group (one source, one level)
//! share a session.
//!
//! Owns: the split of a group of accounts, already sorted largest first,
//! into `⌈n / batch_size⌉` sessions of at most `batch_size` each (one more
//! when the compiler asks for its last session in two). Does not
//! own: the grouping by source and level, the order within a session, or
//! the dependencies between sessions (`compile`).
//!
//! ## The algorithm: longest processing time first, in rounds
//!
//! The sessions are as few as the batch rule allows (`k = ⌈n / b⌉`). A
//! source runs at most `lanes` (`source_sessions`) of them at once, so they
//! run in *rounds* of `lanes` sessions: `s1…s{lanes}` first, then the next
//! `lanes`, and so on. Each round takes the largest accounts left (`lanes ×
//! b` of them), and within a round, taking them largest first, each goes to
//! the round's session with the least known work so far that still has
//! room (ties: the lowest session). So the giant accounts land one per
//! session, at the head of their own session, the small ones fill the
//! sessions with the least work behind their giant, and the last rounds —
//! what ends the run — hold the smallest accounts. With one lane this is
//! the contiguous split (`s1` = the `b` largest, …); with `lanes ≥ k` it is
//! one round across every session. Accounts without a size count as 0 and
//! come last (the plan's order puts them there).
//!
//! Why near-optimal: a session's work is what the scheduler can overlap
//! least (its accounts restore `restore_threads` at a time behind one
//! another), so a giant with a long queue behind it is what ends a run
//! alone. Within a round this is Graham's list scheduling in LPT order:
//! when an account goes into the least-loaded open session, that session
//! holds at most the round's average, so no session ends above the
//! round's `total / k + largest`; across rounds it is LPT in time, the
//! largest work started first.
//!
//! **The run's tail** (`split_last`, decided by the compiler for the
//! groups whose last session is among the run's last): that session is cut
//! in two, the larger half first. The target serves the oldest restores
//! first, so the run's last session restores alone, `restore_threads` at
//! a time while the other slots idle; a half-size session halves that
//! stretch (equal-size bench 1.04–1.06× → 1.03×, BENCHMARKS.md).
//!
//! Worst case: the capacity. When the lighter sessions of a round are full,
//! the rest must go where there is room (at most `b` accounts per session),
//! so a session may hold a giant and `b − 1` small accounts; the property
//! test below checks the bound over random groups.

/// Splits `sizes` (one group, largest first; `None` = unknown) into
/// sessions of at most `batch` accounts, in rounds of `lanes` sessions;
/// returns, per session, the positions in `sizes` it holds, ascending.
pub fn compose(
    sizes: &[Option<u64>],
    batch: usize,
    lanes: usize,
    split_last: bool,
) -> Vec<Vec<usize>> {
    let (batch, lanes) = (batch.max(1), lanes.max(1));
    let k = sizes.len().div_ceil(batch);
    let mut sessions: Vec<Vec<usize>> = vec![Vec::new(); k];
    let mut load = vec![0u64; k];
    for (pos, size) in sizes.iter().enumerate() {
        // the round: the first whose sessions still have room
        let round = (pos / (lanes * batch)) * lanes;
        let s = (round..(round + lanes).min(k))
            .filter(|&s| sessions[s].len() < batch)
            .min_by_key(|&s| (load[s], s))
            .expect("a round of `lanes` sessions of `batch` holds its accounts");
        sessions[s].push(pos);
        load[s] = load[s].saturating_add(size.unwrap_or(0));
    }
    // The run's tail (module doc): the last session in two, the larger
    // accounts first.
    if split_last && let Some(last) = sessions.pop() {
        let half = last.len().div_ceil(2);
        sessions.push(last[..half].to_vec());
        if half < last.len() {
            sessions.push(last[half..].to_vec());
        }
    }
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GB: u64 = 1_000_000_000;

    #[test]
    fn a_giant_gets_the_shortest_queue() {
        // one 8 GB, two 3 GB, 22 small accounts, batch 10: three sessions
        let mut sizes = vec![Some(8 * GB), Some(3 * GB), Some(3 * GB)];
        sizes.extend((0..22).map(|i| Some((600 - i * 20) * 1_000_000)));
        let s = compose(&sizes, 10, 3, false);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0][0], 0);
        assert_eq!((s[1][0], s[2][0]), (1, 2));
        // the small ones fill the 3 GB sessions first: the giant's session
        // holds only what did not fit elsewhere
        assert_eq!(s[0].len(), 5);
        assert_eq!((s[1].len(), s[2].len()), (10, 10));
        // two lanes: s1 and s2 share the 20 largest, s3 the 5 smallest
        let s = compose(&sizes, 10, 2, false);
        assert_eq!((s[0][0], s[1][..2].to_vec()), (0, vec![1, 2]));
        assert_eq!(s[2], (20..25).collect::<Vec<_>>());
    }

    #[test]
    fn one_lane_or_no_sizes_split_contiguously() {
        let s = compose(&[None; 5], 2, 3, false);
        assert_eq!(s, vec![vec![0, 1], vec![2, 3], vec![4]]);
        let sized = [Some(9), Some(7), Some(5), Some(3), Some(1)];
        assert_eq!(
            compose(&sized, 2, 1, false),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert!(compose(&[], 3, 2, false).is_empty());
    }

    proptest! {
        /// Every account in exactly one session, at most `batch` each, no
        /// more sessions than the batch rule forces, every round holding
        /// larger accounts than the next, and no session's work above its
        /// round's `total / sessions + largest` (the list-scheduling bound).
        #[test]
        fn every_rule_holds(
            mut raw in proptest::collection::vec(1u64..10_000, 0..80),
            batch in 1usize..15,
            lanes in 1usize..6,
        ) {
            raw.sort_unstable_by(|a, b| b.cmp(a));
            let sizes: Vec<Option<u64>> = raw.iter().copied().map(Some).collect();
            let s = compose(&sizes, batch, lanes, false);
            prop_assert_eq!(s.len(), sizes.len().div_ceil(batch));
            let mut seen: Vec<usize> = s.iter().flatten().copied().collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..sizes.len()).collect::<Vec<_>>());
            for round in s.chunks(lanes) {
                let positions = || round.iter().flatten().copied();
                let total: u64 = positions().map(|p| raw[p]).sum();
                let largest = positions().map(|p| raw[p]).max().unwrap_or(0);
                let n = round.len() as u64;
                for session in round {
                    prop_assert!(!session.is_empty() && session.len() <= batch);
                    let work: u64 = session.iter().map(|&p| raw[p]).sum();
                    prop_assert!(
                        work * n <= total + largest * n,
                        "{work} > {total}/{n} + {largest}"
                    );
                }
            }
            for pair in s.chunks(lanes).collect::<Vec<_>>().windows(2) {
                let last = pair[0].iter().flatten().max();
                let first = pair[1].iter().flatten().min();
                prop_assert!(last < first, "rounds overlap");
            }
        }

        /// The split of the last session: the same sessions before it,
        /// every account still in exactly one session of at most `batch`,
        /// and the last one's accounts in two halves, the larger first.
        #[test]
        fn the_split_keeps_every_rule(
            mut raw in proptest::collection::vec(1u64..10_000, 0..80),
            batch in 1usize..15,
            lanes in 1usize..6,
        ) {
            raw.sort_unstable_by(|a, b| b.cmp(a));
            let sizes: Vec<Option<u64>> = raw.iter().copied().map(Some).collect();
            let whole = compose(&sizes, batch, lanes, false);
            let split = compose(&sizes, batch, lanes, true);
            let Some(last) = whole.last() else {
                prop_assert!(split.is_empty());
                return Ok(());
            };
            let keep = whole.len() - 1;
            prop_assert_eq!(&split[..keep], &whole[..keep]);
            let tail: Vec<usize> = split[keep..].iter().flatten().copied().collect();
            prop_assert_eq!(&tail, last);
            prop_assert_eq!(split.len() - keep, if last.len() > 1 { 2 } else { 1 });
            prop_assert!(split.iter().all(|s| !s.is_empty() && s.len() <= batch));
            prop_assert!(split[keep].len() >= split[split.len() - 1].len());
        }
    }
}
