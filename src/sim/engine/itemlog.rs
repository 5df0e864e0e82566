//! What an item writes to its item log (`S/Processor.pm::_process_dequeued_item`,
//! `S/Item.pm`, `S/Items/AccountRemoteRoot.pm`, `S/Items/AccountBase.pm`),
//! laid out over the simulated time of its step, and the summary of an
//! account restore (`S/Item.pm::write_summary_message`,
//! `Whostmgr/Transfers/Utils.pm::_add_item`).
//!
//! A step's log opens with `percentage` 0 and the `start` line. An account's
//! TRANSFER then reports 5, pkgacct's phases 10/20/30/40 (its output lines
//! `Copying Mail…`, `Copying homedir…`, `Storing mysql…`, `Creating
//! Archive…` set them), 50, and 55…95 while the archive is copied; an
//! account's RESTORE reports 10 (`_display_options`, with its four lines),
//! then `10 + 0.8 × module progress` up to 90. At the end: 92 and the
//! `summary` line (account restores only), 100, then `success` (`Success.`)
//! or `failed` (`Failed: …`). Each value once. whm-sim writes the summary
//! before the final line, as the pace 92 → 100 reads; cPanel's Processor
//! writes it after the item's own `success`/`failed` line.

use serde_json::{Value, json};

use super::super::masterlog::{item_line, out_line, percentage_line, summary_line};
use super::*;

/// What an account restore reports (`Utils.pm`): each entry is
/// `[[module, function, line], text, action_url]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub warnings: Vec<Value>,
    pub skipped: Vec<Value>,
    pub dangerous: Vec<Value>,
    pub altered: Vec<Value>,
}

impl Summary {
    /// An entry as `Utils.pm::_add_item` records it (no action URL).
    pub(crate) fn entry(module: &str, function: &str, line: u32, text: &str) -> Value {
        json!([[module, function, line], text, null])
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.warnings.is_empty()
            && self.skipped.is_empty()
            && self.dangerous.is_empty()
            && self.altered.is_empty()
    }

    /// The four lists under the names of the log and of master.log.
    pub(crate) fn lists(&self) -> Value {
        json!({
            "warnings": self.warnings,
            "skipped_items": self.skipped,
            "dangerous_items": self.dangerous,
            "altered_items": self.altered,
        })
    }
}

/// Perl's truth of a parameter.
fn flag(params: &BTreeMap<String, String>, key: &str) -> bool {
    params.get(key).is_some_and(|v| !v.is_empty() && v != "0")
}

impl World {
    /// Write (now) and schedule (over `[now, now + dur]`) what the item's
    /// step prints until its end; `finish_step_lines` writes the end.
    pub(super) fn schedule_step_lines(&mut self, s: usize, idx: usize, q: Queue, dur: f64) {
        let now = self.now;
        let it = &self.sessions[s].items[idx];
        let pid = it.pid;
        let log = it.log_name(q);
        let account = modules::is_account(it.module.name);
        let started = started_text(it, q);
        // (fraction of the step, line); percentages also go to `pcts`
        let mut lines: Vec<(f64, Line)> = vec![(0.0, Line::Pct(0)), (0.0, Line::Start(started))];
        let sess = &self.sessions[s];
        match q {
            Queue::Transfer => {
                // whm-sim: the texts of the out lines; pkgacct's prefixes are
                // those `_pkgacct_callback` looks for
                lines.push((
                    0.0,
                    Line::Out(format!("Transferring “{}” from “{}” …", it.key, sess.host)),
                ));
                if account && dur > 0.0 {
                    lines.push((0.0, Line::Pct(5)));
                    for (f, text, p) in [
                        (0.1, "Copying Mail files ....Done", 10),
                        (0.2, "Copying homedir ....Done", 20),
                        (0.3, "Storing mysql dbs ....Done", 30),
                        (0.35, "Creating Archive ....Done", 40),
                    ] {
                        lines.push((f, Line::Out(text.to_string())));
                        lines.push((f, Line::Pct(p)));
                    }
                    lines.push((0.4, Line::Pct(50)));
                    for p in (55..=95).step_by(5) {
                        lines.push((0.4 + 0.6 * (p - 50) as f64 / 45.0, Line::Pct(p)));
                    }
                }
            }
            Queue::Restore if account && it.restore_ran => {
                let spec = self.account_spec(s, idx);
                let opt = |k: &str| sess.options.get(k).is_some_and(|v| v == "1");
                let live = flag(&it.params, "live_transfer");
                lines.push((0.0, Line::Pct(10)));
                for text in [
                    format!("Restore File: /home/cpmove-{}.tar.gz", it.key),
                    format!(
                        "Restore Reseller Privs: {}",
                        if opt("copy_reseller_privs") {
                            "no"
                        } else {
                            "yes"
                        }
                    ),
                    format!(
                        "Restricted mode: {}",
                        if opt("unrestricted_restore") {
                            "no"
                        } else {
                            "yes"
                        }
                    ),
                    format!("Live transfer: {}", if live { "yes" } else { "no" }),
                    format!("Restoring “{}” …", it.localuser),
                ] {
                    lines.push((0.0, Line::Out(text)));
                }
                let main = spec.map(|a| a.main_domain()).unwrap_or_default();
                // a restore that will fail stops before the source is touched
                let fails = matches!(it.outcome, Some(Outcome::Failure(_)));
                for p in (10..=100).step_by(10) {
                    let f = p as f64 / 100.0;
                    match p {
                        // `_run_remote_xferpoint` (the pre-DNS step)
                        60 if live && !fails => {
                            for text in [
                                format!("Pointing “{main}”’s DNS records to the new server …"),
                                "Updating mail routing on the source server …".into(),
                                "Disabling logins on the source server …".into(),
                            ] {
                                lines.push((f, Line::Out(text)));
                            }
                        }
                        // `Systems/ServiceProxy.pm`
                        100 if !fails => {
                            let text = if live {
                                format!(
                                    "Configuring the source server ({}) to proxy services to the new account …",
                                    sess.host
                                )
                            } else {
                                "This module pertains to the Live Transfer setting only.".into()
                            };
                            lines.push((f, Line::Out(text)));
                        }
                        30 if spec.is_some_and(|a| !a.databases.is_empty()) => {
                            lines.push((f, Line::Out("Restoring MySQL databases".into())));
                        }
                        50 => {
                            for addon in spec.map_or(&[][..], |a| &a.addon_domains[..]) {
                                let sub = addon_subdomain(addon, &main);
                                lines.push((
                                    f,
                                    Line::Out(format!(
                                        "Restoring Addon Domain “{addon}” on to “{sub}” …"
                                    )),
                                ));
                            }
                        }
                        90 => {
                            let text = if spec.is_some_and(|a| a.suspended) {
                                format!(
                                    "The user “{}” was suspended. The system will now attempt to suspend the restored user.",
                                    it.localuser
                                )
                            } else {
                                format!(
                                    "The user “{}” was not suspended. The system will not suspend the restored user.",
                                    it.localuser
                                )
                            };
                            lines.push((f, Line::Out(text)));
                        }
                        _ => {}
                    }
                    // `percentage_coderef`: int(10 + module% × 0.8)
                    lines.push((f, Line::Pct(10 + p * 4 / 5)));
                }
            }
            Queue::Restore => {}
        }
        let mut pcts = Vec::new();
        for (f, line) in lines {
            let at = now + f * dur;
            let time = self.clock.unix(at);
            let text = match line {
                Line::Pct(p) => {
                    pcts.push((at, p));
                    percentage_line(pid, p, time)
                }
                Line::Start(t) => item_line(pid, "start", &t, time),
                Line::Out(t) => out_line(pid, &t),
            };
            self.sessions[s].logs.item_schedule(&log, at, text);
        }
        self.sessions[s].items[idx].pcts = pcts;
    }

    /// The highest percentage the item's log shows by now.
    fn shown_percentage(&self, s: usize, idx: usize) -> Option<u32> {
        let now = self.now;
        self.sessions[s].items[idx]
            .pcts
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, p)| *p)
            .max()
    }

    /// The step ended now: settle the scheduled lines, write the end
    /// (summary, 100, `success`/`failed`) and close the log.
    pub(super) fn finish_step_lines(
        &mut self,
        s: usize,
        idx: usize,
        q: Queue,
        failure: Option<&str>,
        summary: Option<&Summary>,
    ) {
        let now = self.now;
        let time = self.unix_now();
        let it = &self.sessions[s].items[idx];
        let (pid, log) = (it.pid, it.log_name(q));
        let shown = self.shown_percentage(s, idx);
        self.sessions[s].logs.item_settle(&log, now);
        let mut end = String::new();
        if failure.is_none() {
            // whm-sim: the closing out line (the word clients saw before)
            end.push_str(&out_line(pid, "Done."));
        }
        if let Some(summary) = summary {
            if shown.is_none_or(|p| p < 92) {
                end.push_str(&percentage_line(pid, 92, time));
            }
            end.push_str(&summary_line(pid, time, &summary.lists()));
        }
        if shown != Some(100) {
            end.push_str(&percentage_line(pid, 100, time));
        }
        end.push_str(&match failure {
            None => item_line(pid, "success", "Success.", time),
            Some(msg) => item_line(pid, "failed", &format!("Failed: {msg}"), time),
        });
        let logs = &mut self.sessions[s].logs;
        logs.item_append(&log, &end);
        logs.item_complete(&log);
        self.sessions[s].items[idx].pcts.clear();
    }

    /// `_mark_item_failed_in_subsequent_queues`: the RESTORE log of an item
    /// whose TRANSFER failed holds its `start` and `failed` lines only (the
    /// item already wrote 100).
    pub(super) fn synthetic_restore_log(&mut self, s: usize, idx: usize, pid: u32, msg: &str) {
        let time = self.unix_now();
        let it = &self.sessions[s].items[idx];
        let log = it.log_name(Queue::Restore);
        let start = started_text(it, Queue::Restore);
        let logs = &mut self.sessions[s].logs;
        logs.item_create(&log);
        logs.item_append(&log, &item_line(pid, "start", &start, time));
        logs.item_append(
            &log,
            &item_line(pid, "failed", &format!("Failed: {msg}"), time),
        );
        logs.item_complete(&log);
    }

    /// A worker died mid-step (`crash_at`, maintenance): its log keeps what
    /// was written by now and stays active.
    pub(super) fn settle_step_lines(&mut self, s: usize, idx: usize) {
        let q = match self.sessions[s].items[idx].state {
            ItemState::TransferInprogress => Queue::Transfer,
            ItemState::RestoreInprogress => Queue::Restore,
            _ => return,
        };
        let log = self.sessions[s].items[idx].log_name(q);
        let now = self.now;
        self.sessions[s].logs.item_settle(&log, now);
        self.sessions[s].items[idx].pcts.clear();
    }
}

/// `S/Item.pm::start`.
fn started_text(it: &Item, q: Queue) -> String {
    if it.key != it.localuser {
        format!(
            "Starting “{}” for “{}” “{}” → “{}”.",
            q.name(),
            it.module.item_name,
            it.key,
            it.localuser
        )
    } else {
        format!(
            "Starting “{}” for “{}” “{}”.",
            q.name(),
            it.module.item_name,
            it.key
        )
    }
}

enum Line {
    Pct(u32),
    Start(String),
    Out(String),
}
