//! The files of a session directory that `fetch_transfer_session_log` reads:
//! `master.log`, `master.error_log` and one `item-<QUEUE>_<Module>_<key>` per
//! item and queue (`S/Logs.pm`; the name from `Processor.pm::
//! _calculate_log_file_name_by_item_obj`, the key being the remote name).
//!
//! A log still being written is named with a leading dot (`.master.log`) and
//! renamed when complete; the API takes the plain name and reads whichever
//! exists, so only `/__sim/state` shows the dot. Every line is a
//! `Cpanel::Output` message (`Cpanel/Output.pm::message`):
//! `{"type":T,"pid":N,"indent":0,"partial":0,"contents":…}`. `master.log`
//! holds `control` lines with `{action,time,child_number,…}`; an item log
//! holds what the item printed (`out`: `{"msg":["text\n"]}`, through
//! `Cpanel/WrapOutputFH.pm`), `start`/`success`/`failed` lines
//! (`{"msg":[…],"time":T}`, `S/Item.pm`) and `control` lines for its
//! `percentage` and its `summary`.
//!
//! An item's lines are laid out over simulated time when its step starts
//! ([`LogFile::scheduled`]): a read sees every line due by then, so the
//! percentages advance at the simulated pace.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// One log file: its text and whether it was renamed to its completed name.
#[derive(Debug, Default, Clone)]
pub(crate) struct LogFile {
    pub text: String,
    pub complete: bool,
    /// Lines the writer will have written by a later simulated time, in
    /// order: (simulated time, line).
    pub scheduled: Vec<(f64, String)>,
}

impl LogFile {
    /// The text as it stands at simulated time `now`.
    pub(crate) fn text_at(&self, now: f64) -> String {
        let mut t = self.text.clone();
        for (_, line) in self.scheduled.iter().take_while(|(at, _)| *at <= now) {
            t.push_str(line);
        }
        t
    }

    /// The writer stopped at `now`: lines due are written, the rest never are.
    pub(crate) fn settle(&mut self, now: f64) {
        for (at, line) in std::mem::take(&mut self.scheduled) {
            if at <= now {
                self.text.push_str(&line);
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct SessionLogs {
    /// None until the first line is written (a PENDING session has no master.log).
    pub master: Option<LogFile>,
    pub error: Option<LogFile>,
    pub items: BTreeMap<String, LogFile>,
}

/// The item a control line is about (`item`, `local_item`, `item_type`, `item_name`).
#[derive(Debug, Clone)]
pub(crate) struct ItemFields {
    pub item: String,
    pub local_item: String,
    pub item_type: &'static str,
    pub item_name: &'static str,
}

/// A `control` line of master.log.
#[derive(Debug, Clone)]
pub(crate) struct Control<'a> {
    pub pid: u32,
    pub action: &'a str,
    pub time: i64,
    pub child_number: u32,
    pub queue: Option<&'static str>,
    pub item: Option<&'a ItemFields>,
    pub logfile: Option<String>,
    pub msg: Option<Value>,
}

impl Control<'_> {
    pub(crate) fn to_line(&self) -> String {
        let mut c = Map::new();
        c.insert("action".into(), self.action.into());
        c.insert("time".into(), self.time.into());
        c.insert("child_number".into(), self.child_number.into());
        if let Some(it) = self.item {
            c.insert("item".into(), it.item.clone().into());
            c.insert("local_item".into(), it.local_item.clone().into());
            c.insert("item_type".into(), it.item_type.into());
            c.insert("item_name".into(), it.item_name.into());
        }
        if let Some(q) = self.queue {
            c.insert("queue".into(), q.into());
        }
        if let Some(l) = &self.logfile {
            c.insert("logfile".into(), l.clone().into());
        }
        if let Some(m) = &self.msg {
            c.insert("msg".into(), m.clone());
        }
        let line = json!({"type": "control", "pid": self.pid, "indent": 0, "partial": 0, "contents": Value::Object(c)});
        let mut s = line.to_string();
        s.push('\n');
        s
    }
}

/// One `Cpanel::Output` line.
fn output_line(pid: u32, kind: &str, contents: Value) -> String {
    let mut s = json!({"type": kind, "pid": pid, "indent": 0, "partial": 0, "contents": contents})
        .to_string();
    s.push('\n');
    s
}

/// An `out` line of an item log: what the item printed.
pub(crate) fn out_line(pid: u32, text: &str) -> String {
    output_line(pid, "out", json!({ "msg": [format!("{text}\n")] }))
}

/// A `start`, `success` or `failed` line of an item log (`S/Item.pm`).
pub(crate) fn item_line(pid: u32, kind: &str, text: &str, time: i64) -> String {
    output_line(pid, kind, json!({ "msg": [text], "time": time }))
}

/// A `percentage` control line (`S/Item.pm::set_percentage`).
pub(crate) fn percentage_line(pid: u32, percentage: u32, time: i64) -> String {
    // the most frequent line, so written without building a JSON value
    format!(
        "{{\"type\":\"control\",\"pid\":{pid},\"indent\":0,\"partial\":0,\"contents\":{{\"action\":\"percentage\",\"percentage\":{percentage},\"time\":{time}}}}}\n"
    )
}

/// The `summary` control line of an account restore
/// (`S/Item.pm::write_summary_message`): each list holds entries
/// `[[module, function, line], text, action_url]`.
pub(crate) fn summary_line(pid: u32, time: i64, summary: &Value) -> String {
    output_line(
        pid,
        "control",
        json!({
            "time": time,
            "action": "summary",
            "warnings": summary["warnings"],
            "skipped_items": summary["skipped_items"],
            "dangerous_items": summary["dangerous_items"],
            "altered_items": summary["altered_items"],
        }),
    )
}

impl SessionLogs {
    /// Append a control line to master.log (creating it, active, if needed).
    pub(crate) fn master(&mut self, line: &Control<'_>) {
        let f = self.master.get_or_insert_with(LogFile::default);
        f.text.push_str(&line.to_line());
        self.error.get_or_insert_with(LogFile::default);
    }

    /// A line written with no processor running (`_offline_master_message`):
    /// it goes to both master.log and master.error_log.
    pub(crate) fn offline(&mut self, line: &Control<'_>) {
        let text = line.to_line();
        self.master
            .get_or_insert_with(LogFile::default)
            .text
            .push_str(&text);
        self.error
            .get_or_insert_with(LogFile::default)
            .text
            .push_str(&text);
    }

    /// Reopen master logs under their active names (a master starting again).
    pub(crate) fn reopen_master(&mut self) {
        for f in [&mut self.master, &mut self.error] {
            f.get_or_insert_with(LogFile::default).complete = false;
        }
    }

    /// `mark_session_completed`: master logs renamed to their completed names.
    pub(crate) fn complete_master(&mut self) {
        for f in [&mut self.master, &mut self.error] {
            f.get_or_insert_with(LogFile::default).complete = true;
        }
    }

    /// `create_active_file`: a fresh, active item log.
    pub(crate) fn item_create(&mut self, name: &str) {
        self.items.insert(name.to_string(), LogFile::default());
    }

    pub(crate) fn item_append(&mut self, name: &str, text: &str) {
        self.items
            .entry(name.to_string())
            .or_default()
            .text
            .push_str(text);
    }

    /// A line the item writes at simulated time `at` (later than now).
    pub(crate) fn item_schedule(&mut self, name: &str, at: f64, line: String) {
        self.items
            .entry(name.to_string())
            .or_default()
            .scheduled
            .push((at, line));
    }

    /// The item's writer stopped at `now` (its step ended, or it died).
    pub(crate) fn item_settle(&mut self, name: &str, now: f64) {
        if let Some(f) = self.items.get_mut(name) {
            f.settle(now);
        }
    }

    pub(crate) fn item_complete(&mut self, name: &str) {
        self.items.entry(name.to_string()).or_default().complete = true;
    }

    /// The file `fetch_transfer_session_log` would read for the plain name `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&LogFile> {
        match name {
            "master.log" => self.master.as_ref(),
            "master.error_log" => self.error.as_ref(),
            other => self.items.get(other),
        }
    }

    /// Names as they are on disk: a leading dot while a log is being written.
    pub(crate) fn file_names(&self) -> Vec<String> {
        let name = |plain: &str, f: &LogFile| {
            if f.complete {
                plain.to_string()
            } else {
                format!(".{plain}")
            }
        };
        let mut out = Vec::new();
        if let Some(f) = &self.master {
            out.push(name("master.log", f));
        }
        if let Some(f) = &self.error {
            out.push(name("master.error_log", f));
        }
        for (k, f) in &self.items {
            out.push(name(k, f));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_carry_item_fields_only_when_given() {
        let it = ItemFields {
            item: "shop".into(),
            local_item: "shop2".into(),
            item_type: "AccountRemoteRoot",
            item_name: "Account",
        };
        let line = Control {
            pid: 42,
            action: "start",
            time: 1,
            child_number: 1,
            queue: Some("TRANSFER"),
            item: Some(&it),
            logfile: Some("item-TRANSFER_AccountRemoteRoot_shop".into()),
            msg: None,
        }
        .to_line();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "control");
        assert_eq!(v["contents"]["local_item"], "shop2");
        assert_eq!(v["contents"]["queue"], "TRANSFER");
        assert!(v["contents"].get("msg").is_none());
    }

    #[test]
    fn item_log_lines_are_cpanel_output_messages() {
        let p: Value = serde_json::from_str(&percentage_line(7, 55, 100)).unwrap();
        assert_eq!(
            p,
            json!({"type": "control", "pid": 7, "indent": 0, "partial": 0,
                   "contents": {"action": "percentage", "percentage": 55, "time": 100}})
        );
        let o: Value = serde_json::from_str(&out_line(7, "a “b”")).unwrap();
        assert_eq!(o["contents"], json!({"msg": ["a “b”\n"]}));
        let f: Value = serde_json::from_str(&item_line(7, "failed", "Failed: x", 3)).unwrap();
        assert_eq!(f["contents"], json!({"msg": ["Failed: x"], "time": 3}));
    }

    #[test]
    fn scheduled_lines_appear_when_due_and_settle_drops_the_rest() {
        let mut f = LogFile {
            scheduled: vec![(1.0, "a\n".into()), (2.0, "b\n".into())],
            ..LogFile::default()
        };
        assert_eq!(f.text_at(0.5), "");
        assert_eq!(f.text_at(1.0), "a\n");
        f.settle(1.5);
        assert_eq!((f.text.as_str(), f.scheduled.len()), ("a\n", 0));
    }

    #[test]
    fn active_logs_are_dot_named() {
        let mut l = SessionLogs::default();
        l.master(&Control {
            pid: 1,
            action: "start",
            time: 0,
            child_number: 0,
            queue: None,
            item: None,
            logfile: None,
            msg: None,
        });
        l.item_create("item-TRANSFER_PackageRemoteRoot_p1");
        assert_eq!(
            l.file_names(),
            vec![
                ".master.log",
                ".master.error_log",
                ".item-TRANSFER_PackageRemoteRoot_p1"
            ]
        );
        l.complete_master();
        l.item_complete("item-TRANSFER_PackageRemoteRoot_p1");
        assert_eq!(
            l.file_names(),
            vec![
                "master.log",
                "master.error_log",
                "item-TRANSFER_PackageRemoteRoot_p1"
            ]
        );
    }
}
