//! `master.log` of a transfer session: one JSON object per line,
//! `{"type":"control","pid":N,"indent":0,"partial":0,"contents":{action,
//! time, child_number, queue?, item?, local_item?, item_type?, msg?}}`.
//!
//! Owns: parsing (tolerant: a torn last line — the log is read while being
//! written — and unknown actions are skipped or kept as-is), per-item
//! outcomes, and the master's final action.
//!
//! Facts used (docs/whm.md §3.3): workers write `success-item`,
//! `warning-item` or `failed-item` per item and queue; a TRANSFER failure is
//! followed by a synthetic RESTORE `failed-item`; packages' RESTORE step is
//! an immediate success. So the RESTORE queue's line is each item's final
//! outcome, and an item without one is not finished. The master
//! (`child_number` 0) ends with `complete`, `abort`, `fail` or `pause`; a
//! `resume`/`start` after a `pause` reopens the session.
//!
//! Does not own: deciding what an outcome means for the run (exec).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One line's `contents`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub action: String,
    /// Epoch seconds.
    pub time: f64,
    /// 0 = the master; 1..n = a worker of `queue`.
    pub child_number: u32,
    pub queue: Option<String>,
    /// The item's key on the source (the remote user, the package name).
    pub item: Option<String>,
    /// The target username of an account item.
    pub local_item: Option<String>,
    /// The module, e.g. `AccountRemoteRoot`, `PackageRemoteRoot`.
    pub item_type: Option<String>,
    pub msg: Value,
}

/// Parses a whole `master.log`. Lines that are not JSON objects with
/// `contents.action` are skipped: the last line may be torn (still being
/// written), and nothing else should stop an outcome from being read.
pub fn parse_master_log(text: &str) -> Vec<LogLine> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<LogLine> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let v: Value = serde_json::from_str(line).ok()?;
    let c = v.get("contents")?;
    let text = |k: &str| match c.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let action = text("action")?;
    let time = match c.get("time") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    };
    let child_number = match c.get("child_number") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    Some(LogLine {
        action,
        time,
        child_number,
        queue: text("queue"),
        item: text("item"),
        local_item: text("local_item"),
        item_type: text("item_type"),
        msg: c.get("msg").cloned().unwrap_or(Value::Null),
    })
}

/// The final outcome of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// `success-item`, or `warning-item` (`warnings: true`) with what its
    /// summary lists (docs/whm.md §3.3, §3.4).
    Succeeded { warnings: bool, notes: Vec<Note> },
    /// `failed-item`, with the server's failure text.
    Failed { message: String },
}

/// Final outcomes keyed by `(item_type, item)`, e.g.
/// `("AccountRemoteRoot", "bob")`. Only the RESTORE queue's line counts; a
/// later RESTORE line for the same key (a restarted session) wins.
pub fn item_outcomes(lines: &[LogLine]) -> BTreeMap<(String, String), ItemOutcome> {
    let mut out = BTreeMap::new();
    for l in lines {
        if l.queue.as_deref() != Some("RESTORE") {
            continue;
        }
        let (Some(ty), Some(item)) = (&l.item_type, &l.item) else {
            continue;
        };
        let outcome = match l.action.as_str() {
            "success-item" => ItemOutcome::Succeeded {
                warnings: false,
                notes: notes(&l.msg),
            },
            "warning-item" => ItemOutcome::Succeeded {
                warnings: true,
                notes: notes(&l.msg),
            },
            "failed-item" => ItemOutcome::Failed {
                message: failure_text(&l.msg),
            },
            _ => continue,
        };
        out.insert((ty.clone(), item.clone()), outcome);
    }
    out
}

/// What a restore's summary says it did not do as asked, one entry of
/// its lists (docs/whm.md §3.4): cPanel's UI shows them as *Warning:*,
/// *Skipped:*, *Dangerous:*, *Altered:*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub kind: NoteKind,
    /// The server's text, as it wrote it (escape before printing).
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    Warning,
    Skipped,
    Dangerous,
    Altered,
}

impl NoteKind {
    const LISTS: [(&'static str, NoteKind); 4] = [
        ("warnings", NoteKind::Warning),
        ("skipped_items", NoteKind::Skipped),
        ("dangerous_items", NoteKind::Dangerous),
        ("altered_items", NoteKind::Altered),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Warning => "warning",
            NoteKind::Skipped => "skipped",
            NoteKind::Dangerous => "dangerous",
            NoteKind::Altered => "altered",
        }
    }
}

/// Most notes kept per item: a restore that lists thousands (one per
/// skipped file, say) must not grow the journal without bound.
pub const MAX_NOTES: usize = 20;

/// The notes of an item line's `msg.contents`: each list's entries, an
/// entry being `[[module, function, line], text, action]`, `{"msg":
/// [text…]}` (TRANSFER warnings) or a plain string. Unknown shapes are
/// skipped; texts are cut at 1,000 characters.
fn notes(msg: &Value) -> Vec<Note> {
    let Some(contents) = msg.get("contents") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, kind) in NoteKind::LISTS {
        let Some(Value::Array(list)) = contents.get(key) else {
            continue;
        };
        for entry in list {
            let text = match entry {
                Value::String(s) => Some(s.clone()),
                Value::Array(parts) => parts.get(1).and_then(Value::as_str).map(str::to_string),
                Value::Object(o) => o.get("msg").map(|m| match m {
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<String>(),
                    other => other.as_str().unwrap_or_default().to_string(),
                }),
                _ => None,
            };
            let Some(text) = text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) else {
                continue;
            };
            if out.len() < MAX_NOTES {
                out.push(Note {
                    kind,
                    text: text.chars().take(1000).collect(),
                });
            }
        }
    }
    out
}

/// The failure text of a `failed-item` line: `msg.failure`, else
/// `msg.message`, else `msg` itself if it is a string.
fn failure_text(msg: &Value) -> String {
    let pick = |k: &str| msg.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    pick("failure")
        .or_else(|| pick("message"))
        .or_else(|| msg.as_str())
        .unwrap_or("(no failure message in master.log)")
        .to_string()
}

/// The master's final action if the session has ended (for now): one of
/// `"complete"`, `"abort"`, `"fail"`, `"pause"`. `None` while it runs,
/// including after a `resume` or a fresh `start` that followed a pause or a
/// crash.
pub fn master_finished(lines: &[LogLine]) -> Option<&'static str> {
    let mut state = None;
    for l in lines.iter().filter(|l| l.child_number == 0) {
        match l.action.as_str() {
            "complete" => state = Some("complete"),
            "abort" => state = Some("abort"),
            "fail" => state = Some("fail"),
            "pause" => state = Some("pause"),
            "start" | "resume" | "pausing" | "aborting" => state = None,
            _ => {}
        }
    }
    state
}

/// The latest `percentage` an item log reports (`{"type":"control",
/// "contents":{"action":"percentage","percentage":N}}`, docs/whm.md §3.4),
/// clamped to 0..=100. Each value appears at most once and they rise, but
/// a log read while written may end in a torn line: the highest value
/// among the whole lines is the answer. `None` when the log has none.
pub fn item_percentage(text: &str) -> Option<u8> {
    text.lines()
        .filter_map(|line| {
            let v: Value = serde_json::from_str(line.trim()).ok()?;
            let c = v.get("contents")?;
            if c.get("action")?.as_str()? != "percentage" {
                return None;
            }
            let n = match c.get("percentage")? {
                Value::Number(n) => n.as_f64()?,
                Value::String(s) => s.trim().parse().ok()?,
                _ => return None,
            };
            Some(n.clamp(0.0, 100.0) as u8)
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session with a package, one good account, one with warnings and one
    /// whose TRANSFER failed (so the RESTORE pair is synthetic), as
    /// docs/whm.md §3.3 describes the lines.
    const LOG: &str = r#"{"type":"control","pid":9001,"indent":0,"partial":0,"contents":{"action":"start","time":1764467102,"child_number":0}}
{"type":"control","pid":9001,"indent":0,"partial":0,"contents":{"action":"initiator","time":1764467102,"child_number":0,"msg":"copyacct"}}
{"type":"control","pid":9001,"indent":0,"partial":0,"contents":{"action":"version","time":1764467102,"child_number":0,"msg":"2.3"}}
{"type":"control","pid":9001,"indent":0,"partial":0,"contents":{"action":"queue_count","time":1764467102,"child_number":0,"queue":"TRANSFER","msg":4}}
{"type":"control","pid":9001,"indent":0,"partial":0,"contents":{"action":"queue_size","time":1764467102,"child_number":0,"queue":"TRANSFER","msg":157286400}}
{"type":"control","pid":9001,"indent":0,"partial":0,"contents":{"action":"remotehost","time":1764467102,"child_number":0,"msg":"old1.example.com"}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"start","time":1764467103,"child_number":1,"queue":"TRANSFER","item":"package1","item_type":"PackageRemoteRoot","item_name":"Package","logfile":"item-TRANSFER_PackageRemoteRoot_package1"}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"process-item","time":1764467103,"child_number":1,"queue":"TRANSFER","item":"package1","item_type":"PackageRemoteRoot","msg":"item-TRANSFER_PackageRemoteRoot_package1"}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"success-item","time":1764467104,"child_number":1,"queue":"TRANSFER","item":"package1","item_type":"PackageRemoteRoot","msg":{"size":1,"warnings":0,"skipped_items":0,"dangerous_items":0,"altered_items":0,"message":""}}}
{"type":"control","pid":9003,"indent":0,"partial":0,"contents":{"action":"success-item","time":1764467104,"child_number":1,"queue":"RESTORE","item":"package1","item_type":"PackageRemoteRoot","msg":{"size":1,"warnings":0}}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"start-item","time":1764467105,"child_number":1,"queue":"TRANSFER","item":"shop","local_item":"shop2","item_type":"AccountRemoteRoot","msg":{"size":52428800}}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"success-item","time":1764467106,"child_number":1,"queue":"TRANSFER","item":"shop","local_item":"shop2","item_type":"AccountRemoteRoot","msg":{"size":52428800,"warnings":0}}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"failed-item","time":1764467107,"child_number":1,"queue":"TRANSFER","item":"root","local_item":"root","item_type":"AccountRemoteRoot","msg":{"size":1,"failure":"The account “root” already exists on “control.box.new”."}}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"start-item","time":1764467107,"child_number":1,"queue":"RESTORE","item":"root","local_item":"root","item_type":"AccountRemoteRoot","msg":{"size":1}}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"failed-item","time":1764467107,"child_number":1,"queue":"RESTORE","item":"root","local_item":"root","item_type":"AccountRemoteRoot","msg":{"size":1,"failure":"The account “root” already exists on “control.box.new”."}}}
{"type":"control","pid":9003,"indent":0,"partial":0,"contents":{"action":"success-item","time":1764467109,"child_number":1,"queue":"RESTORE","item":"shop","local_item":"shop2","item_type":"AccountRemoteRoot","msg":{"size":52428800,"warnings":0}}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"success-item","time":1764467110,"child_number":1,"queue":"TRANSFER","item":"blog","local_item":"blog","item_type":"AccountRemoteRoot","msg":{"size":1}}}
{"type":"control","pid":9003,"indent":0,"partial":0,"contents":{"action":"warning-item","time":1764467112,"child_number":1,"queue":"RESTORE","item":"blog","local_item":"blog","item_type":"AccountRemoteRoot","msg":{"size":1,"warnings":1,"skipped_items":1,"altered_items":1,"contents":{"warnings":[[["Mysql","restore_databases",412],"The database blog_old could not be restored.",null]],"skipped_items":[{"msg":["Skipped the mail filter."]}],"dangerous_items":[],"altered_items":["Renamed the database blog_db to blog_db2.",[["x"],"",null]]},"message":"restored with warnings"}}}
{"type":"control","pid":9002,"indent":0,"partial":0,"contents":{"action":"complete","time":1764467112,"child_number":1,"queue":"TRANSFER"}}
{"type":"control","pid":9003,"indent":0,"partial":0,"contents":{"action":"complete","time":1764467113,"child_number":1,"queue":"RESTORE"}}
{"type":"control","pid":9001,"indent":0,"partial":0,"contents":{"action":"complete","time":1764467113,"child_number":0}}
"#;

    fn key(t: &str, i: &str) -> (String, String) {
        (t.to_string(), i.to_string())
    }

    #[test]
    fn outcomes_from_the_restore_queue() {
        let lines = parse_master_log(LOG);
        assert_eq!(lines.len(), 21);
        let out = item_outcomes(&lines);
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(
            out[&key("PackageRemoteRoot", "package1")],
            ItemOutcome::Succeeded {
                warnings: false,
                notes: vec![]
            }
        );
        assert_eq!(
            out[&key("AccountRemoteRoot", "shop")],
            ItemOutcome::Succeeded {
                warnings: false,
                notes: vec![]
            }
        );
        assert_eq!(
            out[&key("AccountRemoteRoot", "blog")],
            ItemOutcome::Succeeded {
                warnings: true,
                // Each of the summary's entry shapes; an empty text is dropped.
                notes: vec![
                    Note {
                        kind: NoteKind::Warning,
                        text: "The database blog_old could not be restored.".into()
                    },
                    Note {
                        kind: NoteKind::Skipped,
                        text: "Skipped the mail filter.".into()
                    },
                    Note {
                        kind: NoteKind::Altered,
                        text: "Renamed the database blog_db to blog_db2.".into()
                    },
                ]
            }
        );
        assert_eq!(
            out[&key("AccountRemoteRoot", "root")],
            ItemOutcome::Failed {
                message: "The account “root” already exists on “control.box.new”.".into()
            }
        );
        assert_eq!(master_finished(&lines), Some("complete"));
        let shop = lines
            .iter()
            .find(|l| l.item.as_deref() == Some("shop"))
            .unwrap();
        assert_eq!(shop.local_item.as_deref(), Some("shop2"));
        assert_eq!(shop.time, 1764467105.0);
    }

    #[test]
    fn transfer_success_alone_is_not_final() {
        // Cut the log right after shop's TRANSFER success.
        let cut: String = LOG.lines().take(12).map(|l| format!("{l}\n")).collect();
        let lines = parse_master_log(&cut);
        let out = item_outcomes(&lines);
        assert!(
            !out.contains_key(&key("AccountRemoteRoot", "shop")),
            "{out:?}"
        );
        assert_eq!(master_finished(&lines), None);
    }

    #[test]
    fn item_percentage_is_the_highest_whole_line() {
        let log = concat!(
            r#"{"type":"control","contents":{"action":"percentage","percentage":0}}"#,
            "\n",
            r#"{"type":"control","contents":{"action":"start","msg":"x"}}"#,
            "\n",
            r#"{"type":"control","contents":{"action":"percentage","percentage":"42"}}"#,
            "\n",
            r#"{"type":"out","contents":{"msg":["percentage 99"]}}"#,
            "\n",
            r#"{"type":"control","contents":{"action":"percentage","percentage":130}}"#,
            "\n",
            r#"{"type":"control","contents":{"action":"percentage","perc"#,
        );
        assert_eq!(item_percentage(log), Some(100));
        let first_four = log.lines().take(4).collect::<Vec<_>>().join("\n");
        assert_eq!(item_percentage(&first_four), Some(42));
        assert_eq!(item_percentage("garbage\n{}"), None);
        assert_eq!(item_percentage(""), None);
    }

    #[test]
    fn torn_last_line_and_garbage_are_tolerated() {
        let mut torn = String::from(LOG);
        torn.push_str(
            r#"{"type":"control","pid":9001,"indent":0,"partial":0,"contents":{"action":"compl"#,
        );
        assert_eq!(parse_master_log(&torn).len(), 21);
        // Every possible cut point of the log parses without panicking, and
        // never yields more lines than complete ones.
        for cut in 0..LOG.len() {
            if !LOG.is_char_boundary(cut) {
                continue;
            }
            let lines = parse_master_log(&LOG[..cut]);
            let whole = LOG[..cut].matches('\n').count();
            assert!(lines.len() <= whole + 1);
        }
        let odd = "not json\n[1,2]\n{\"contents\":{}}\n{\"contents\":{\"action\":\"brand-new-action\",\"time\":\"12.5\",\"child_number\":\"3\"}}\n";
        let lines = parse_master_log(odd);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].action, "brand-new-action");
        assert_eq!(lines[0].time, 12.5);
        assert_eq!(lines[0].child_number, 3);
        assert!(item_outcomes(&lines).is_empty());
    }

    #[test]
    fn pause_then_resume_then_abort() {
        let l = |action: &str, child: u32| LogLine {
            action: action.into(),
            time: 0.0,
            child_number: child,
            queue: None,
            item: None,
            local_item: None,
            item_type: None,
            msg: Value::Null,
        };
        let mut lines = vec![l("start", 0), l("pausing", 0), l("complete", 1)];
        assert_eq!(
            master_finished(&lines),
            None,
            "worker complete is not final"
        );
        lines.push(l("pause", 0));
        assert_eq!(master_finished(&lines), Some("pause"));
        lines.push(l("resume", 0));
        assert_eq!(master_finished(&lines), None);
        lines.push(l("aborting", 0));
        assert_eq!(master_finished(&lines), None);
        lines.push(l("abort", 0));
        assert_eq!(master_finished(&lines), Some("abort"));
        // An offline `fail` (abort of a PENDING session).
        assert_eq!(master_finished(&[l("fail", 0)]), Some("fail"));
    }

    #[test]
    fn failure_text_fallbacks() {
        assert_eq!(failure_text(&serde_json::json!({"failure": "x"})), "x");
        assert_eq!(
            failure_text(&serde_json::json!({"failure": "", "message": "m"})),
            "m"
        );
        assert_eq!(failure_text(&serde_json::json!("plain")), "plain");
        assert!(failure_text(&Value::Null).contains("no failure message"));
    }
}
