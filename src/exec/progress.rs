//! Progress within an account: which running items' logs to read, and
//! what their `percentage` lines make of the account.
//!
//! Owns: the choice of item logs at one `master.log` read, and the
//! account's percent from its item's. Does not own: the reads (`monitor`,
//! on the slow lane), the log's parsing (`client::masterlog`,
//! `outcome::LogView`), or what the bar and `ferry status` make of the
//! percent (`report`, `ops::status`).
//!
//! An account is one TRANSFER item then one RESTORE item, each reporting
//! 0 → 100 in its own log (docs/whm.md §3.4). Its percent is half of each:
//! `transfer / 2` while the archive is made and copied, `50 + restore / 2`
//! while it is restored. cPanel's UI draws one bar per queue instead
//! (§3.5); one number per account is what a single bar weighted by size
//! needs.
//!
//! An item log is a whole-file read, like `master.log`, so reads are few:
//!
//! * only at a `master.log` read (which `pace` already spaces), at most one
//!   per item in flight;
//! * only for an item that was already in flight at the previous read in
//!   the same step: a small account ends between two reads and counts
//!   whole when it does;
//! * only for an item carrying at least a quarter of its session's bytes
//!   (`start-item` size ÷ `queue_size`), or — where the log gives no sizes
//!   — in a session of at most four accounts: the percentages that move
//!   the bar are the large accounts'; a session of many equal ones moves it
//!   by whole accounts anyway. So a session reads at most four item logs
//!   per `master.log` read, and a fleet of equal accounts reads none;
//! * never again in this task after one read timed out: a server that
//!   holds active logs until they complete (whm-sim's `log_blocking`) would
//!   make every such read wait its timeout, for nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::outcome::LogView;

/// A session with at most this many accounts reads its large items' logs
/// even when the log gives no sizes; also the most reads per log read.
const MAX_WATCHED: usize = 4;

/// One session task's item-log reads.
#[derive(Debug, Default)]
pub(super) struct ItemWatch {
    /// (remote user, restoring) in flight at the previous `master.log` read.
    seen: BTreeSet<(String, bool)>,
    /// The percent last recorded per remote user.
    recorded: BTreeMap<String, u8>,
    /// A read timed out: this server blocks on active logs.
    blocked: bool,
}

/// An item log to read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Due {
    /// The remote user (WHM's item key).
    pub user: String,
    pub logfile: String,
    pub restoring: bool,
    /// `start-item`'s size.
    pub size: Option<u64>,
}

impl ItemWatch {
    /// The item logs worth reading after this `master.log` read of a
    /// session of `accounts` accounts.
    pub(super) fn due(&mut self, view: &LogView, accounts: usize) -> Vec<Due> {
        let now: BTreeSet<(String, bool)> = view
            .in_flight
            .iter()
            .map(|(u, f)| (u.clone(), f.restoring))
            .collect();
        let before = std::mem::replace(&mut self.seen, now);
        if self.blocked {
            return Vec::new();
        }
        let mut due: Vec<Due> = view
            .in_flight
            .iter()
            .filter(|(u, f)| before.contains(&((*u).clone(), f.restoring)))
            .filter(|(_, f)| match (f.size, view.session_size) {
                (Some(size), Some(total)) if total > 0 => size.saturating_mul(4) >= total,
                _ => accounts <= MAX_WATCHED,
            })
            .map(|(u, f)| Due {
                user: u.clone(),
                logfile: f.logfile.clone(),
                restoring: f.restoring,
                size: f.size,
            })
            .collect();
        due.sort_by_key(|d| std::cmp::Reverse(d.size));
        due.truncate(MAX_WATCHED);
        due
    }

    /// A read timed out: no more item-log reads in this task.
    pub(super) fn on_timeout(&mut self) {
        self.blocked = true;
    }

    /// The account's percent from its item's, if it rose since the last one
    /// recorded (`Some`: record it).
    pub(super) fn on_read(&mut self, due: &Due, item_percent: u8) -> Option<u8> {
        let percent = account_percent(due.restoring, item_percent);
        let last = self.recorded.get(&due.user).copied();
        if last.is_some_and(|l| l >= percent) {
            return None;
        }
        self.recorded.insert(due.user.clone(), percent);
        Some(percent)
    }
}

/// An account's percent: half for its TRANSFER item, half for its RESTORE.
/// 100 only once it is transferred, which its outcome says, not this.
pub(super) fn account_percent(restoring: bool, item_percent: u8) -> u8 {
    let half = item_percent.min(100) / 2;
    if restoring { (50 + half).min(99) } else { half }
}

#[cfg(test)]
mod tests {
    use super::super::outcome::InFlight;
    use super::*;

    fn view(items: &[(&str, bool, Option<u64>)], total: Option<u64>) -> LogView {
        LogView {
            in_flight: items
                .iter()
                .map(|&(u, restoring, size)| {
                    (
                        u.to_string(),
                        InFlight {
                            restoring,
                            logfile: format!("log-{u}"),
                            size,
                        },
                    )
                })
                .collect(),
            session_size: total,
            ..LogView::default()
        }
    }

    fn users(due: &[Due]) -> Vec<&str> {
        due.iter().map(|d| d.user.as_str()).collect()
    }

    #[test]
    fn only_large_items_seen_at_two_reads_in_the_same_step() {
        let mut w = ItemWatch::default();
        let first = view(
            &[("giant", false, Some(800)), ("tiny", false, Some(10))],
            Some(1000),
        );
        assert!(w.due(&first, 10).is_empty(), "nothing was in flight before");
        assert_eq!(users(&w.due(&first, 10)), ["giant"]);
        // The giant moved on to RESTORE: a new step, one read to skip.
        let restoring = view(&[("giant", true, Some(800))], Some(1000));
        assert!(w.due(&restoring, 10).is_empty());
        let due = w.due(&restoring, 10);
        assert_eq!(users(&due), ["giant"]);
        assert!(due[0].restoring);
    }

    #[test]
    fn without_sizes_only_small_sessions_read_and_a_timeout_stops_all() {
        let mut w = ItemWatch::default();
        let v = view(&[("a", false, None), ("b", false, None)], None);
        w.due(&v, 12);
        assert!(
            w.due(&v, 12).is_empty(),
            "twelve accounts, no sizes: whole accounts"
        );
        assert_eq!(users(&w.due(&v, 2)), ["a", "b"]);
        w.on_timeout();
        assert!(w.due(&v, 2).is_empty());
    }

    #[test]
    fn the_percent_rises_and_is_recorded_once_per_value() {
        let mut w = ItemWatch::default();
        let d = |restoring| Due {
            user: "giant".into(),
            logfile: "l".into(),
            restoring,
            size: None,
        };
        assert_eq!(w.on_read(&d(false), 40), Some(20));
        assert_eq!(w.on_read(&d(false), 40), None);
        assert_eq!(w.on_read(&d(false), 30), None, "never back");
        assert_eq!(w.on_read(&d(true), 0), Some(50));
        assert_eq!(w.on_read(&d(true), 100), Some(99), "100 is the outcome's");
    }
}
