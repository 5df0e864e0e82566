//! When a running session's `master.log` is worth reading.
//!
//! Owns: the one decision "read the log at this state poll or not", from
//! what the session showed so far. Does not own: the polls themselves or
//! what a log says (`monitor`, `outcome`).
//!
//! A state poll is one small call; a log read returns the whole
//! `master.log` (no offset exists, docs/whm.md) and may block on an active
//! log. Reading it at every state poll is most of a run's requests, yet it
//! can only bring news when an item may have finished. So:
//!
//! * the first state poll of a running session reads it (the items it
//!   shows begin the session's record), and so does any change of state;
//! * after a read, the next is due once an item can have finished by the
//!   session's own pace so far: half the mean time between its concluded
//!   items (elapsed since the session was first seen running ÷ items
//!   concluded). Before any item concluded there is no pace: every poll
//!   reads (the polls themselves back off);
//! * never later than `cap` after the last read (a fraction of the stall
//!   timeout), so a stall is still seen by its progress in the log.

use std::time::Duration;

use tokio::time::Instant;

/// The log-read pace of one session task.
#[derive(Debug, Clone)]
pub(super) struct LogPace {
    /// When the session was first seen running by this task.
    since: Option<Instant>,
    /// The next read is due at this instant (`None`: at the next poll).
    due: Option<Instant>,
    cap: Duration,
    /// Items concluded at the last read.
    concluded: usize,
}

impl LogPace {
    pub(super) fn new(cap: Duration) -> LogPace {
        LogPace {
            since: None,
            due: None,
            cap,
            concluded: 0,
        }
    }

    /// Whether this state poll should read the log.
    pub(super) fn read_now(&mut self, now: Instant, state_changed: bool) -> bool {
        self.since.get_or_insert(now);
        state_changed || self.due.is_none_or(|d| now >= d)
    }

    /// After a read at `now` that showed `concluded` of the session's
    /// account items concluded. Returns whether that is more than the last
    /// read showed (news: the polls speed up again).
    pub(super) fn on_read(&mut self, now: Instant, concluded: usize) -> bool {
        let since = *self.since.get_or_insert(now);
        let news = concluded > self.concluded;
        self.concluded = self.concluded.max(concluded);
        self.due = match u32::try_from(concluded) {
            Ok(c) if c > 0 => {
                let gap = (now.duration_since(since) / c / 2).min(self.cap);
                Some(now + gap)
            }
            _ => None,
        };
        news
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn reads_every_poll_until_a_pace_is_known() {
        let t0 = Instant::now();
        let mut p = LogPace::new(60 * S);
        assert!(p.read_now(t0, false));
        p.on_read(t0, 0);
        assert!(p.read_now(t0 + S, false));
        p.on_read(t0 + S, 0);
        assert!(p.read_now(t0 + 2 * S, false));
    }

    #[test]
    fn after_conclusions_it_waits_half_the_mean_gap() {
        let t0 = Instant::now();
        let mut p = LogPace::new(60 * S);
        assert!(p.read_now(t0, false));
        // 2 items concluded in 20 s: one every 10 s, next read in 5 s
        assert!(p.on_read(t0 + 20 * S, 2));
        assert!(!p.read_now(t0 + 21 * S, false));
        assert!(!p.read_now(t0 + 24 * S, false));
        assert!(p.read_now(t0 + 25 * S, false));
        // a change of state reads at once
        assert!(!p.on_read(t0 + 25 * S, 2));
        assert!(p.read_now(t0 + 26 * S, true));
    }

    #[test]
    fn never_later_than_the_cap() {
        let t0 = Instant::now();
        let mut p = LogPace::new(3 * S);
        assert!(p.read_now(t0, false));
        p.on_read(t0 + 100 * S, 1);
        assert!(!p.read_now(t0 + 102 * S, false));
        assert!(p.read_now(t0 + 103 * S, false));
    }
}
