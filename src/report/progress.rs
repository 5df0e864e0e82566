//! Progress bars on a terminal (indicatif `MultiProgress`): one overall
//! accounts bar (transferred, failed, total, elapsed, ETA) and one line per
//! running session with its state, current account and the percentages of
//! its large accounts (`item_progress`).
//!
//! The overall bar is weighted by size when the plan knows every account's
//! (`run_started.bytes`: hints or the inventory): its position is the bytes
//! of the accounts settled plus each in-flight account's size × percent,
//! so one 20 GB account at 40 % moves it as far as 8 GB of small ones, and
//! the ETA follows bytes. Without sizes every account weighs the same, and
//! an in-flight one counts its percent of one account. Notable events
//! (failures, warnings, a pause, a session ending) are printed above the
//! bars with the same words as the plain line reporter; the summary follows
//! the bars at the end.
//!
//! Used only when stderr is a terminal that can redraw (see
//! [`Terminal`](super::Terminal)); `color: false` (NO_COLOR) keeps the bars
//! and drops every colour.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Sink, lines, summary};
use crate::events::{Event, Reporter};

/// Session states after which a session's line is removed.
const TERMINAL: [&str; 3] = ["COMPLETED", "FAILED", "ABORTED"];

/// The bars drawn on stderr right now, if any, so that log lines can be
/// printed above them instead of through them ([`StderrAboveBars`]). Set by
/// [`ProgressReporter::stderr`], cleared when that reporter is dropped.
static ACTIVE: std::sync::Mutex<Option<MultiProgress>> = std::sync::Mutex::new(None);

/// A writer to stderr that, while progress bars are drawn there, prints
/// above them (`MultiProgress::suspend`). For `tracing`'s log lines: the
/// formatter writes each event whole, so a line is never split by a redraw.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrAboveBars;

impl Write for StderrAboveBars {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match active {
            Some(mp) => mp.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The TTY reporter.
pub struct ProgressReporter {
    mp: MultiProgress,
    /// Lines printed above the bars (through `MultiProgress::suspend`).
    out: Sink,
    color: bool,
    /// Registered in [`ACTIVE`] (the process's stderr bars).
    on_stderr: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    overall: Option<ProgressBar>,
    /// Live session lines, keyed by session name (`old1/s1`).
    sessions: BTreeMap<String, ProgressBar>,
    /// Last state seen per session (for "created" vs state-change lines).
    seen: HashMap<String, String>,
    total: u64,
    transferred: u64,
    /// Accounts failed for good in this process (a later success removes one).
    failed: HashSet<String>,
    /// `run_started.bytes`: the bar counts bytes.
    bytes: Option<crate::events::ByteCounts>,
    /// Bytes of the accounts settled in this process (transferred, or
    /// failed for good: neither moves again in this run).
    settled_bytes: u64,
    /// In-flight accounts' latest `item_progress`: session, size, percent.
    in_flight: BTreeMap<String, (String, Option<u64>, u8)>,
    /// Each live session's latest `session_state`, to redraw its line
    /// when one of its accounts' percent moves.
    last_state: HashMap<String, Event>,
}

/// Units of the bar for one account without sizes (its percent).
const PER_ACCOUNT: u64 = 100;

impl State {
    /// The bar's (position, length).
    fn position(&self) -> (u64, u64) {
        let settled = self.transferred + self.failed.len() as u64;
        match self.bytes {
            Some(b) => {
                let partial: u64 = self
                    .in_flight
                    .values()
                    .map(|(_, size, pct)| size.unwrap_or(0) / 100 * u64::from(*pct))
                    .sum();
                let pos = b
                    .done
                    .saturating_add(self.settled_bytes)
                    .saturating_add(partial);
                (pos.min(b.total), b.total)
            }
            None => {
                let partial: u64 = self.in_flight.values().map(|(.., p)| u64::from(*p)).sum();
                let len = self.total * PER_ACCOUNT;
                ((settled * PER_ACCOUNT + partial).min(len), len)
            }
        }
    }
}

impl ProgressReporter {
    /// Bars on stderr, redrawn at most 10 times a second.
    pub fn stderr(color: bool) -> ProgressReporter {
        let mut r = ProgressReporter::with_target(
            ProgressDrawTarget::stderr_with_hz(10),
            Box::new(std::io::stderr()),
            color,
        );
        r.on_stderr = true;
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.mp.clone());
        r
    }

    /// Bars drawn to `target`; text lines written to `out`.
    pub fn with_target(
        target: ProgressDrawTarget,
        out: Box<dyn Write + Send>,
        color: bool,
    ) -> ProgressReporter {
        ProgressReporter {
            mp: MultiProgress::with_draw_target(target),
            out: Sink::new(out),
            color,
            on_stderr: false,
            state: Mutex::new(State::default()),
        }
    }

    fn overall_style(&self) -> ProgressStyle {
        let template = if self.color {
            "{prefix:.bold} [{bar:30.green/dim}] {msg}  {elapsed_precise} elapsed, ETA {eta}"
        } else {
            "{prefix} [{bar:30}] {msg}  {elapsed_precise} elapsed, ETA {eta}"
        };
        ProgressStyle::with_template(template)
            .expect("static template")
            .progress_chars(if self.color { "━╸ " } else { "=> " })
    }

    fn session_style(&self) -> ProgressStyle {
        let template = if self.color {
            "  {spinner:.cyan} {prefix:.bold} {msg}"
        } else {
            "  {spinner} {prefix} {msg}"
        };
        ProgressStyle::with_template(template)
            .expect("static template")
            .tick_chars(if self.color {
                "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "
            } else {
                "-\\|/ "
            })
    }

    /// Prints text above the bars.
    fn print(&self, text: &str) {
        let mut s = text.to_string();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        self.mp.suspend(|| self.out.write(&s));
    }

    fn overall<'a>(&self, st: &'a mut State) -> &'a ProgressBar {
        if st.overall.is_none() {
            let bar = self.mp.insert(0, ProgressBar::new(st.total));
            bar.set_style(self.overall_style());
            bar.set_prefix("accounts");
            bar.enable_steady_tick(Duration::from_millis(200));
            st.overall = Some(bar);
        }
        st.overall.as_ref().expect("just set")
    }

    fn refresh_overall(&self, st: &mut State) {
        let failed = st.failed.len() as u64;
        let (transferred, total) = (st.transferred, st.total);
        let (pos, len) = st.position();
        let bytes = st.bytes;
        let bar = self.overall(st);
        bar.set_length(len);
        bar.set_position(pos);
        let mut msg = format!("{transferred} transferred");
        if failed > 0 {
            msg.push_str(&format!(", {failed} failed"));
        }
        msg.push_str(&format!(" of {total}"));
        if let Some(b) = bytes {
            msg.push_str(&format!(
                " · {} of {}",
                crate::report::html::human_bytes(pos),
                crate::report::html::human_bytes(b.total)
            ));
        }
        bar.set_message(msg);
    }

    /// An account left flight: settled (`Some(size)`), or back to wait.
    fn landed(st: &mut State, account: &str, settled: Option<Option<u64>>) {
        st.in_flight.remove(account);
        if let Some(size) = settled {
            st.settled_bytes = st.settled_bytes.saturating_add(size.unwrap_or(0));
        }
    }

    fn on_session(&self, st: &mut State, event: &Event) {
        let Event::SessionState {
            session,
            source,
            state,
            current,
            accounts,
            done,
            ..
        } = event
        else {
            return;
        };
        let terminal = TERMINAL.contains(&state.as_str());
        if terminal {
            st.last_state.remove(session);
        } else {
            st.last_state.insert(session.clone(), event.clone());
        }
        if terminal {
            if let Some(bar) = st.sessions.remove(session) {
                bar.finish_and_clear();
                self.mp.remove(&bar);
            }
            return;
        }
        let bar = match st.sessions.get(session) {
            Some(b) => b.clone(),
            None => {
                let b = self.mp.add(ProgressBar::new_spinner());
                b.set_style(self.session_style());
                b.set_prefix(format!("{session:<12}"));
                b.enable_steady_tick(Duration::from_millis(120));
                st.sessions.insert(session.clone(), b.clone());
                b
            }
        };
        let mut msg = format!("{state:<9} {done}/{accounts}  {source}");
        if let Some(c) = current {
            msg.push_str(&format!("  now: {c}"));
        }
        for (account, (s, _, pct)) in &st.in_flight {
            if s == session {
                msg.push_str(&format!("  {account} {pct}%"));
            }
        }
        bar.set_message(msg);
    }

    /// The overall bar's position and message, and each live session line
    /// (prefix, message), for tests.
    #[cfg(test)]
    fn snapshot(&self) -> (u64, u64, String, Vec<(String, String)>) {
        let st = self.state.lock().unwrap();
        let o = st.overall.as_ref().expect("overall bar");
        let sessions = st
            .sessions
            .values()
            .map(|b| (b.prefix().trim().to_string(), b.message()))
            .collect();
        (o.position(), o.length().unwrap_or(0), o.message(), sessions)
    }
}

impl Reporter for ProgressReporter {
    fn event(&self, event: &Event) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Lines above the bars use the plain reporter's words.
        let line = match event {
            // Percentages move the bars; they are not worth a line here.
            Event::ItemSucceeded { .. }
            | Event::ItemProgress { .. }
            | Event::RunFinished { .. } => None,
            // Only sessions appearing or ending get a line; the bar shows the rest.
            Event::SessionState { session, state, .. } => {
                let first = !st.seen.contains_key(session);
                let text = lines::describe(event, &mut st.seen);
                text.filter(|_| first || TERMINAL.contains(&state.as_str()))
            }
            _ => lines::describe(event, &mut st.seen),
        };
        if let Some(l) = line {
            self.print(&l);
        }
        match event {
            Event::RunStarted {
                accounts, bytes, ..
            } => {
                st.total = accounts.total as u64;
                st.transferred = accounts.transferred as u64;
                st.bytes = *bytes;
                self.refresh_overall(&mut st);
                self.overall(&mut st).reset_eta();
            }
            Event::ItemProgress {
                account,
                session,
                percent,
                size,
                ..
            } => {
                st.in_flight
                    .insert(account.clone(), (session.clone(), *size, *percent));
                self.refresh_overall(&mut st);
                if let Some(last) = st.last_state.get(session).cloned() {
                    self.on_session(&mut st, &last);
                }
            }
            Event::ItemSucceeded { account, size, .. } => {
                if st.failed.remove(account) {
                    st.settled_bytes = st.settled_bytes.saturating_sub(size.unwrap_or(0));
                }
                st.transferred += 1;
                Self::landed(&mut st, account, Some(*size));
                self.refresh_overall(&mut st);
            }
            Event::ItemFailed {
                account,
                will_retry,
                size,
                ..
            } => {
                let settled = (!will_retry && st.failed.insert(account.clone())).then_some(*size);
                Self::landed(&mut st, account, settled);
                self.refresh_overall(&mut st);
            }
            Event::SessionState { .. } => self.on_session(&mut st, event),
            Event::RunFinished {
                accounts: counts, ..
            } => {
                for (_, bar) in std::mem::take(&mut st.sessions) {
                    bar.finish_and_clear();
                    self.mp.remove(&bar);
                }
                st.total = counts.total as u64;
                st.transferred = counts.transferred as u64;
                st.in_flight.clear();
                // Every account settled (some without an event of their
                // own, found on the target): the bar ends full.
                if let Some(b) = st.bytes
                    && counts.pending == 0
                    && counts.total > 0
                {
                    st.settled_bytes = b.total.saturating_sub(b.done);
                }
                self.refresh_overall(&mut st);
                if let Some(o) = &st.overall {
                    o.disable_steady_tick();
                    o.abandon();
                }
                // The final bar stays on screen; the summary goes below it,
                // and nothing redraws the bars after it.
                self.mp.set_draw_target(ProgressDrawTarget::hidden());
                if let Some(text) = summary::from_event(event) {
                    self.out.write(&text);
                }
            }
            _ => {}
        }
    }
}

impl Drop for ProgressReporter {
    /// A run that ends without `RunFinished` (an error) must not leave
    /// spinners behind on the terminal.
    fn drop(&mut self) {
        if self.on_stderr {
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, bar) in std::mem::take(&mut st.sessions) {
            bar.finish_and_clear();
        }
        if let Some(o) = st.overall.take()
            && !o.is_finished()
        {
            o.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Captured, scripted_run};

    fn reporter(color: bool) -> (ProgressReporter, Captured) {
        let cap = Captured::default();
        let r = ProgressReporter::with_target(
            ProgressDrawTarget::hidden(),
            Box::new(cap.clone()),
            color,
        );
        (r, cap)
    }

    #[test]
    fn overall_bar_and_one_line_per_running_session() {
        let (r, _) = reporter(true);
        let events = scripted_run();
        // Up to and including old1/s1 RUNNING with "beta" current.
        for e in &events[..9] {
            r.event(e);
        }
        let (pos, len, msg, sessions) = r.snapshot();
        assert_eq!((pos, len), (0, 400), "a hundred units per account");
        assert_eq!(msg, "0 transferred of 4");
        assert_eq!(
            sessions,
            vec![
                (
                    "old1/s1".to_string(),
                    "RUNNING   1/2  old1  now: beta".to_string()
                ),
                (
                    "old2/s1".to_string(),
                    "RUNNING   0/2  old2  now: gamma".to_string()
                ),
            ]
        );
        // alpha transferred, warning, gamma failed, pause, beta transferred,
        // old1/s1 completed: its line goes away.
        for e in &events[9..15] {
            r.event(e);
        }
        let (pos, _, msg, sessions) = r.snapshot();
        assert_eq!(pos, 300);
        assert_eq!(msg, "2 transferred, 1 failed of 4");
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].0, "old2/s1");
    }

    #[test]
    fn failures_warnings_and_pause_are_printed_above_the_bars_then_the_summary() {
        let (r, cap) = reporter(false);
        for e in scripted_run() {
            r.event(&e);
        }
        let text = cap.text();
        assert!(
            text.contains("FAILED gamma (old2, session old2/s1): Disk quota exceeded"),
            "{text}"
        );
        assert!(
            text.contains("warning: TLS verification is disabled"),
            "{text}"
        );
        assert!(text.contains("PAUSED: account gamma failed"), "{text}");
        assert!(text.contains("session old1/s1 created on old1"), "{text}");
        assert!(text.contains("session old1/s1: COMPLETED"), "{text}");
        // Successes and mid-run state changes stay on the bars.
        assert!(!text.contains("transferred alpha"), "{text}");
        assert!(!text.contains("RUNNING"), "{text}");
        let summary = text
            .split("run paused after 12m 34s")
            .nth(1)
            .expect("summary");
        assert!(
            summary.contains("gamma (old2)  Disk quota exceeded"),
            "{summary}"
        );
        // No colour codes when colour is off.
        assert!(!text.contains('\x1b'), "{text:?}");
        let (.., sessions) = r.snapshot();
        assert!(sessions.is_empty(), "session lines cleared at the end");
    }

    /// A terminal that keeps everything drawn on it.
    #[derive(Debug, Clone, Default)]
    struct Screen(std::sync::Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            let mut t = self.0.lock().unwrap();
            t.push_str(s);
            t.push('\n');
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bars_are_drawn_on_a_terminal() {
        let screen = Screen::default();
        let cap = Captured::default();
        let r = ProgressReporter::with_target(
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
            Box::new(cap.clone()),
            false,
        );
        let events = scripted_run();
        for e in &events[..8] {
            r.event(e);
            std::thread::sleep(Duration::from_millis(60));
        }
        let drawn = screen.0.lock().unwrap().clone();
        assert!(
            drawn.contains("accounts [") && drawn.contains("0 transferred of 4"),
            "{drawn}"
        );
        assert!(drawn.contains("old2/s1"), "{drawn}");
        assert!(drawn.contains("RUNNING   0/2  old2  now: gamma"), "{drawn}");
        assert!(drawn.contains("ETA"), "{drawn}");
        assert!(!drawn.contains('\x1b'), "no colour: {drawn:?}");
        for e in &events[8..] {
            r.event(e);
        }
        let drawn = screen.0.lock().unwrap().clone();
        assert!(drawn.contains("2 transferred, 1 failed of 4"), "{drawn}");
    }

    #[test]
    fn resumed_run_starts_the_bar_where_the_journal_left_it() {
        let (r, _) = reporter(false);
        r.event(&Event::RunStarted {
            plan: "p.yaml".into(),
            journal: "j".into(),
            resumed: true,
            accounts: crate::events::AccountCounts {
                total: 10,
                transferred: 7,
                failed: 1,
                pending: 2,
            },
            sessions_planned: 1,
            bytes: None,
        });
        let (pos, len, msg, _) = r.snapshot();
        assert_eq!((pos, len), (700, 1000));
        assert_eq!(msg, "7 transferred of 10");
    }

    /// With every size known the bar counts bytes: one giant at 40 % moves
    /// it further than a small account transferred, and its session line
    /// shows the percent until the giant lands.
    #[test]
    fn the_bar_is_weighted_by_bytes_and_percentages() {
        let (r, _) = reporter(false);
        let gb = 1_000_000_000;
        r.event(&Event::RunStarted {
            plan: "p.yaml".into(),
            journal: "j".into(),
            resumed: false,
            accounts: crate::events::AccountCounts {
                total: 2,
                transferred: 0,
                failed: 0,
                pending: 2,
            },
            sessions_planned: 2,
            bytes: Some(crate::events::ByteCounts {
                total: 21 * gb,
                done: 0,
            }),
        });
        r.event(&Event::SessionState {
            session: "old1/s1".into(),
            id: None,
            source: "old1".into(),
            state: "RUNNING".into(),
            current: Some("giant".into()),
            accounts: 1,
            done: 0,
        });
        r.event(&Event::ItemProgress {
            account: "giant".into(),
            source: "old1".into(),
            session: "old1/s1".into(),
            percent: 40,
            size: Some(20 * gb),
        });
        r.event(&Event::ItemSucceeded {
            account: "small".into(),
            source: "old1".into(),
            session: "old1/s2".into(),
            warnings: false,
            adopted: None,
            notes: Vec::new(),
            size: Some(gb),
        });
        let (pos, len, msg, _) = r.snapshot();
        assert_eq!((pos, len), (9 * gb, 21 * gb));
        assert_eq!(msg, "1 transferred of 2 · 9.00 GB of 21.0 GB");
        // The session line follows the percent, with no new state event.
        let (.., sessions) = r.snapshot();
        assert_eq!(sessions[0].1, "RUNNING   0/1  old1  now: giant  giant 40%");
        r.event(&Event::ItemSucceeded {
            account: "giant".into(),
            source: "old1".into(),
            session: "old1/s1".into(),
            warnings: false,
            adopted: None,
            notes: Vec::new(),
            size: Some(20 * gb),
        });
        let (pos, len, ..) = r.snapshot();
        assert_eq!(pos, len);
    }
}
