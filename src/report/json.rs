//! JSON Lines on stdout (`--output json`, design §7): one object per event,
//! `{"ts": "<RFC 3339 UTC>", "event": "<snake_case>", ...fields}`, flushed
//! per line so a CI step or `jq` sees each event as it happens.

use std::io::Write;
use std::time::SystemTime;

use super::Sink;
use crate::events::{Event, Reporter};

/// Writes each event as one JSON object on its own line.
pub struct JsonReporter {
    out: Sink,
}

impl JsonReporter {
    pub fn new(out: Box<dyn Write + Send>) -> JsonReporter {
        JsonReporter {
            out: Sink::new(out),
        }
    }
}

/// A command's own JSON line (`check`, `verify`): `value`'s fields with
/// `ts` and `event: kind` added, and its trailing newline.
pub fn tagged_line(kind: &str, ts: &str, value: impl serde::Serialize) -> String {
    let mut v = serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::json!({"error": format!("unserializable: {e}")}));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("ts".into(), ts.into());
        obj.insert("event".into(), kind.into());
    }
    format!("{v}\n")
}

/// A findings report as JSON lines: one `kind` object per item, then
/// `<kind>_finished` with `finished`'s fields, all with one `ts`.
pub fn report_lines<T: serde::Serialize>(
    kind: &str,
    items: &[T],
    finished: serde_json::Value,
) -> String {
    let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut out = String::new();
    for item in items {
        out.push_str(&tagged_line(kind, &ts, item));
    }
    out.push_str(&tagged_line(&format!("{kind}_finished"), &ts, finished));
    out
}

/// One event as one JSON line (with its trailing newline), `ts` first.
pub fn line(event: &Event, at: SystemTime) -> String {
    // `Event` serializes as an internally tagged object: `{"event":"…",…}`.
    // Splice `ts` in front so the key order reads naturally (`ts`, `event`,
    // fields) whatever map type serde_json is built with.
    let body = match serde_json::to_string(event) {
        Ok(s) => s,
        Err(e) => {
            // Unreachable with the types in `events`, but never lose a line.
            serde_json::json!({"event": "unserializable", "error": e.to_string()}).to_string()
        }
    };
    let ts = humantime::format_rfc3339_millis(at);
    let rest = body.strip_prefix('{').unwrap_or(&body);
    if rest.starts_with('}') {
        format!("{{\"ts\":\"{ts}\"}}\n")
    } else {
        format!("{{\"ts\":\"{ts}\",{rest}\n")
    }
}

impl Reporter for JsonReporter {
    fn event(&self, event: &Event) {
        self.out.write(&line(event, SystemTime::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Captured, scripted_run};
    use serde_json::Value;

    fn run() -> (Vec<Event>, Vec<Value>, String) {
        let cap = Captured::default();
        let r = JsonReporter::new(Box::new(cap.clone()));
        let events = scripted_run();
        for e in &events {
            r.event(e);
        }
        let text = cap.text();
        let values = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("each line is one JSON object"))
            .collect();
        (events, values, text)
    }

    #[test]
    fn one_object_per_event_with_ts_and_event_first() {
        let (events, values, text) = run();
        assert_eq!(values.len(), events.len());
        assert!(text.ends_with('\n'));
        for (line, v) in text.lines().zip(&values) {
            assert!(line.starts_with("{\"ts\":\""), "{line}");
            let ts = v["ts"].as_str().unwrap();
            assert!(ts.ends_with('Z'), "UTC: {ts}");
            humantime::parse_rfc3339(ts).expect("RFC 3339");
            assert!(v["event"].is_string());
        }
    }

    #[test]
    fn fields_of_each_event_are_carried() {
        let (_, values, _) = run();
        let names: Vec<&str> = values
            .iter()
            .map(|v| v["event"].as_str().unwrap())
            .collect();
        for want in [
            "run_started",
            "step_started",
            "step_failed",
            "step_succeeded",
            "session_state",
            "item_succeeded",
            "item_failed",
            "warning",
            "run_paused",
            "run_finished",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let failed = values.iter().find(|v| v["event"] == "step_failed").unwrap();
        assert_eq!(failed["retryable"], true);
        assert_eq!(failed["attempt"], 1);
        let item = values.iter().find(|v| v["event"] == "item_failed").unwrap();
        assert_eq!(item["account"], "gamma");
        assert_eq!(item["message"], "Disk quota exceeded <quota> & \"limits\"");
        let session = values
            .iter()
            .find(|v| v["event"] == "session_state")
            .unwrap();
        assert_eq!(session["state"], "PENDING");
        assert_eq!(session["source"], "old1");
    }

    #[test]
    fn last_line_is_run_finished_with_status_and_counts() {
        let (_, values, _) = run();
        let last = values.last().unwrap();
        assert_eq!(last["event"], "run_finished");
        assert_eq!(last["status"], "paused");
        let a = &last["accounts"];
        assert_eq!(
            (&a["total"], &a["transferred"], &a["failed"], &a["pending"]),
            (
                &Value::from(4),
                &Value::from(2),
                &Value::from(1),
                &Value::from(1)
            )
        );
        assert_eq!(
            last["failed"][0]["message"],
            "Disk quota exceeded <quota> & \"limits\""
        );
    }

    #[test]
    fn ts_is_the_given_instant() {
        let at = humantime::parse_rfc3339("2026-11-30T01:45:02.250Z").unwrap();
        let l = line(
            &Event::Warning {
                message: "x".into(),
            },
            at,
        );
        assert_eq!(
            l,
            "{\"ts\":\"2026-11-30T01:45:02.250Z\",\"event\":\"warning\",\"message\":\"x\"}\n"
        );
    }
}
