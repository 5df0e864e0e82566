//! Per-account outcomes from a session's `master.log` — never from the
//! session state alone.
//!
//! WHM ends a session COMPLETED however many of its items failed
//! (docs/whm.md §3.3), so the state says nothing about an account. What
//! counts is the RESTORE queue's final line for the item (`success-item`,
//! `warning-item`, `failed-item`; parsed by `client::masterlog`). An item
//! without one is judged by whether its RESTORE began:
//!
//! | final RESTORE line | RESTORE began | session ended | conclusion                        |
//! |--------------------|---------------|---------------|-----------------------------------|
//! | success / warning  | —             | —             | transferred                        |
//! | failed             | —             | —             | failed (may go to a fresh session) |
//! | none               | yes           | yes           | cut → `listaccts` decides          |
//! | none               | no            | yes           | not begun → free for a new session |
//! | none               | —             | no            | wait                               |
//!
//! "RESTORE began" is any RESTORE-queue line for the item. When the log
//! cannot be read at all after the session ended, every account without a
//! recorded outcome counts as *unfinished*: without evidence, ferry assumes
//! the worst (a second restore of a live account is an outage).

use std::collections::{BTreeMap, BTreeSet};

use crate::client::masterlog::{self, ItemOutcome, LogLine};
use crate::journal::record::{RestoreSpan, Unfinished};

const ACCOUNT_MODULE: &str = "AccountRemoteRoot";
const PACKAGE_MODULE: &str = "PackageRemoteRoot";

/// What one read of `master.log` says, reduced to what ferry decides on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogView {
    /// Lines parsed (progress: the count grows while the session works).
    pub lines: usize,
    /// Final outcomes of account items, keyed by the remote user.
    pub accounts: BTreeMap<String, ItemOutcome>,
    /// Final outcomes of package items.
    pub packages: BTreeMap<String, ItemOutcome>,
    /// Account items with any RESTORE-queue line.
    pub restore_begun: BTreeSet<String>,
    /// The master's last final action (`complete`, `abort`, `fail`,
    /// `pause`), if the log ends with one.
    pub finished: Option<&'static str>,
    /// The account item most recently picked by a worker (for display).
    pub current: Option<String>,
    /// For each failed account item, its `master.log` lines (compact JSON,
    /// at most [`MAX_ITEM_LINES`], the last ones kept): journaled with the
    /// failure so the report can show them without the server.
    pub failed_lines: BTreeMap<String, Vec<String>>,
    /// Account items a worker holds now (picked after the master's latest
    /// `start` or `resume`, no final line in that queue yet), keyed by the
    /// remote user: whose item log has a percentage worth reading.
    pub in_flight: BTreeMap<String, InFlight>,
    /// The session's total size (`queue_size`), when the log gives it.
    pub session_size: Option<u64>,
    /// Each account item's RESTORE as the server's lines date it, and its
    /// size as the server counts it: for the report's restore-slot view.
    pub restores: BTreeMap<String, RestoreSpan>,
}

/// An account item being worked on (docs/whm.md §3.3, §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// `RESTORE` (or else `TRANSFER`): the step it is in.
    pub restoring: bool,
    /// Its item log: `process-item`'s `msg`, else cPanel's naming rule.
    pub logfile: String,
    /// `start-item`'s `size`, when given.
    pub size: Option<u64>,
}

/// How many `master.log` lines of a failed account are kept.
pub const MAX_ITEM_LINES: usize = 20;

impl LogView {
    /// Account items whose RESTORE began after the master's latest `start`
    /// or `resume` and has no final line: restores that may be running now
    /// (the items in flight in the RESTORE queue). One begun under an
    /// earlier master (before a crash and a restart) is not here: that
    /// master and its workers are gone.
    pub fn restoring_now(&self) -> BTreeSet<&str> {
        self.in_flight
            .iter()
            .filter(|(_, f)| f.restoring)
            .map(|(u, _)| u.as_str())
            .collect()
    }

    /// Reads a whole `master.log` text (a torn last line is tolerated).
    pub fn read(text: &str) -> LogView {
        let lines = masterlog::parse_master_log(text);
        LogView::from_lines(&lines)
    }

    pub fn from_lines(lines: &[LogLine]) -> LogView {
        let mut view = LogView {
            lines: lines.len(),
            finished: masterlog::master_finished(lines),
            ..LogView::default()
        };
        for ((module, key), outcome) in masterlog::item_outcomes(lines) {
            match module.as_str() {
                ACCOUNT_MODULE => {
                    view.accounts.insert(key, outcome);
                }
                PACKAGE_MODULE => {
                    view.packages.insert(key, outcome);
                }
                _ => {}
            }
        }
        for l in lines {
            if l.child_number == 0
                && l.item.is_none()
                && matches!(l.action.as_str(), "start" | "resume")
            {
                view.in_flight.clear();
            }
            if l.child_number == 0 && l.action == "queue_size" {
                view.session_size = l.msg.as_u64().or(view.session_size);
            }
            if l.item_type.as_deref() != Some(ACCOUNT_MODULE) {
                continue;
            }
            in_flight(&mut view.in_flight, l);
            if let (Some(item), Some("RESTORE")) = (&l.item, l.queue.as_deref()) {
                let span = view.restores.entry(item.clone()).or_default();
                if let Some(size) = l.msg.get("size").and_then(serde_json::Value::as_u64) {
                    span.bytes = Some(size);
                }
                match l.action.as_str() {
                    "start-item" if l.time > 0.0 => {
                        span.started = Some(l.time);
                        span.ended = None;
                    }
                    "success-item" | "warning-item" | "failed-item" if l.time > 0.0 => {
                        span.ended = Some(l.time);
                    }
                    _ => {}
                }
            }
            let Some(item) = &l.item else { continue };
            if l.queue.as_deref() == Some("RESTORE") {
                view.restore_begun.insert(item.clone());
            }
            if l.action == "start" || l.action == "start-item" {
                view.current = Some(l.local_item.clone().unwrap_or_else(|| item.clone()));
            }
            if matches!(view.accounts.get(item), Some(ItemOutcome::Failed { .. })) {
                let kept = view.failed_lines.entry(item.clone()).or_default();
                if kept.len() == MAX_ITEM_LINES {
                    kept.remove(0);
                }
                kept.push(compact(l));
            }
        }
        view
    }
}

/// Follows one account line into the items in flight.
fn in_flight(map: &mut BTreeMap<String, InFlight>, l: &LogLine) {
    let (Some(item), Some(queue)) = (&l.item, l.queue.as_deref()) else {
        return;
    };
    let restoring = queue == "RESTORE";
    match l.action.as_str() {
        "start" | "process-item" | "start-item" => {
            let e = map.entry(item.clone()).or_insert_with(|| InFlight {
                restoring,
                logfile: String::new(),
                size: None,
            });
            if e.restoring != restoring {
                *e = InFlight {
                    restoring,
                    logfile: String::new(),
                    size: e.size,
                };
            }
            if l.action == "process-item"
                && let Some(name) = l.msg.as_str()
            {
                e.logfile = name.to_string();
            }
            if let Some(size) = l.msg.get("size").and_then(serde_json::Value::as_u64) {
                e.size = Some(size);
            }
            if e.logfile.is_empty() {
                e.logfile = format!("item-{queue}_{ACCOUNT_MODULE}_{item}");
            }
        }
        // The RESTORE queue's final line ends the item whatever was seen
        // of it; a TRANSFER one only its TRANSFER step.
        "success-item" | "warning-item" | "failed-item"
            if restoring || map.get(item).is_some_and(|e| !e.restoring) =>
        {
            map.remove(item);
        }
        _ => {}
    }
}

/// One log line as compact JSON: the fields a reader needs, in a fixed order.
fn compact(l: &LogLine) -> String {
    let mut o = serde_json::Map::new();
    o.insert("time".into(), serde_json::json!(l.time));
    o.insert("action".into(), serde_json::json!(l.action));
    if let Some(q) = &l.queue {
        o.insert("queue".into(), serde_json::json!(q));
    }
    if let Some(i) = &l.item {
        o.insert("item".into(), serde_json::json!(i));
    }
    if !l.msg.is_null() {
        o.insert("msg".into(), l.msg.clone());
    }
    serde_json::Value::Object(o).to_string()
}

/// What ferry concludes about one account of an ended session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conclusion {
    Transferred {
        warnings: bool,
    },
    Failed {
        message: String,
    },
    /// No final line, and its RESTORE may have begun (`Cut`: it did; `NoLog`:
    /// the log could not be read): ask `listaccts`.
    Unfinished(Unfinished),
    /// Nothing of it reached the RESTORE queue: it can go to a new session
    /// (the ended session will never run it).
    NotBegun,
}

/// Concludes one account (remote user `user`) of a session that has
/// ended. `view` is `None` when the log could not be read.
pub fn conclude(view: Option<&LogView>, user: &str) -> Conclusion {
    let Some(view) = view else {
        return Conclusion::Unfinished(Unfinished::NoLog);
    };
    match view.accounts.get(user) {
        Some(ItemOutcome::Succeeded { warnings, .. }) => Conclusion::Transferred {
            warnings: *warnings,
        },
        Some(ItemOutcome::Failed { message }) => Conclusion::Failed {
            message: message.clone(),
        },
        None if view.restore_begun.contains(user) => Conclusion::Unfinished(Unfinished::Cut),
        None => Conclusion::NotBegun,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        action: &str,
        child: u32,
        queue: Option<&str>,
        item: Option<&str>,
        msg: &str,
    ) -> String {
        let mut c = serde_json::json!({"action": action, "time": 1, "child_number": child});
        if let Some(q) = queue {
            c["queue"] = q.into();
        }
        if let Some(i) = item {
            c["item"] = i.into();
            c["local_item"] = i.into();
            c["item_type"] = ACCOUNT_MODULE.into();
        }
        if !msg.is_empty() {
            c["msg"] = serde_json::json!({"failure": msg});
        }
        serde_json::json!({"type":"control","pid":1,"indent":0,"partial":0,"contents":c})
            .to_string()
    }

    /// A restore begun under a master that died (a crash, then a restart's
    /// fresh `start`) is not running any more; one begun after it may be.
    #[test]
    fn restores_running_now_are_those_begun_under_the_latest_master() {
        let log = [
            line("start", 0, None, None, ""),
            line("success-item", 1, Some("TRANSFER"), Some("orphan"), ""),
            line("start-item", 1, Some("RESTORE"), Some("orphan"), ""),
            line("start", 0, None, None, ""),
            line("start-item", 2, Some("RESTORE"), Some("live"), ""),
            line("start-item", 1, Some("RESTORE"), Some("done"), ""),
            line("success-item", 1, Some("RESTORE"), Some("done"), ""),
        ]
        .join("\n");
        let view = LogView::read(&log);
        assert_eq!(view.restoring_now(), BTreeSet::from(["live"]));
        assert!(view.restore_begun.contains("orphan"));
    }

    /// Items in flight: picked and not ended in their queue, under the
    /// latest master; a TRANSFER that ended waits (not in flight) until its
    /// RESTORE is picked, which names its own log.
    #[test]
    fn items_in_flight_follow_the_latest_master() {
        let sized = |action: &str, q: &str, item: &str, size: u64| {
            line(action, 1, Some(q), Some(item), "").replace(
                "\"time\":1",
                &format!("\"time\":1,\"msg\":{{\"size\":{size}}}"),
            )
        };
        let log = [
            line("start", 0, None, None, ""),
            line("start-item", 1, Some("TRANSFER"), Some("gone"), ""),
            line("start", 0, None, None, ""),
            r#"{"type":"control","contents":{"action":"queue_size","child_number":0,"queue":"TRANSFER","msg":900}}"#.to_string(),
            sized("start-item", "TRANSFER", "big", 800),
            sized("start-item", "TRANSFER", "small", 100),
            line("success-item", 1, Some("TRANSFER"), Some("small"), ""),
            line("success-item", 1, Some("TRANSFER"), Some("big"), ""),
            sized("start-item", "RESTORE", "big", 800),
        ]
        .join("\n");
        let view = LogView::read(&log);
        assert_eq!(view.session_size, Some(900));
        assert_eq!(view.in_flight.keys().collect::<Vec<_>>(), ["big"]);
        let big = &view.in_flight["big"];
        assert!(big.restoring);
        assert_eq!(big.size, Some(800));
        assert_eq!(big.logfile, "item-RESTORE_AccountRemoteRoot_big");
        let span = view.restores["big"];
        assert_eq!(
            (span.started, span.ended, span.bytes),
            (Some(1.0), None, Some(800))
        );
    }

    #[test]
    fn the_table_of_conclusions() {
        let log = [
            line("start", 0, None, None, ""),
            line("success-item", 1, Some("TRANSFER"), Some("ok"), ""),
            line("success-item", 1, Some("RESTORE"), Some("ok"), ""),
            line(
                "failed-item",
                1,
                Some("RESTORE"),
                Some("bad"),
                "Disk quota exceeded",
            ),
            line("success-item", 1, Some("TRANSFER"), Some("mid"), ""),
            line("start-item", 2, Some("RESTORE"), Some("mid"), ""),
            line("start-item", 1, Some("TRANSFER"), Some("early"), ""),
            line("abort", 0, None, None, ""),
        ]
        .join("\n");
        let view = LogView::read(&log);
        assert_eq!(view.finished, Some("abort"));
        assert_eq!(view.current.as_deref(), Some("early"));
        assert_eq!(view.restoring_now(), BTreeSet::from(["mid"]));
        let v = Some(&view);
        assert_eq!(
            conclude(v, "ok"),
            Conclusion::Transferred { warnings: false }
        );
        assert_eq!(
            conclude(v, "bad"),
            Conclusion::Failed {
                message: "Disk quota exceeded".into()
            }
        );
        assert_eq!(conclude(v, "mid"), Conclusion::Unfinished(Unfinished::Cut));
        assert_eq!(conclude(v, "early"), Conclusion::NotBegun);
        assert_eq!(conclude(v, "never"), Conclusion::NotBegun);
        // No log at all: assume the worst.
        assert_eq!(
            conclude(None, "early"),
            Conclusion::Unfinished(Unfinished::NoLog)
        );
    }
}
