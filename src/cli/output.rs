//! The two simple reporters of `apply`, `pause` and `abort`:
//!
//! * [`TextReporter`] — one line per notable event on stderr, and the final
//!   summary (transferred, failed with the server's reason, pending,
//!   duration, what to do next);
//! * [`JsonReporter`] — design §7: one JSON object per event on stdout,
//!   `{"ts": RFC 3339, "event": name, …fields}`; the last line of an
//!   `apply` is `run_finished`.
//!
//! Progress bars and the HTML report build on the same [`Reporter`] seam.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::OutputFormat;
use crate::events::{Event, Reporter, RunStatus};

/// The reporter for `--output`.
pub fn reporter(format: OutputFormat) -> Arc<dyn Reporter> {
    match format {
        OutputFormat::Text => Arc::new(TextReporter::default()),
        OutputFormat::Json => Arc::new(JsonReporter::default()),
    }
}

/// JSON lines on stdout.
#[derive(Default)]
pub struct JsonReporter {
    out: Mutex<()>,
}

/// One event as its JSON line (without the newline).
pub fn json_line(event: &Event) -> String {
    let body = serde_json::to_string(event).expect("events serialise");
    let ts = crate::journal::file::now_rfc3339();
    // `{"event":…}` → `{"ts":"…","event":…}`: ts first for readers.
    format!("{{\"ts\":\"{ts}\",{}", &body[1..])
}

impl Reporter for JsonReporter {
    fn event(&self, event: &Event) {
        let line = json_line(event);
        let _g = self.out.lock();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        // A warning (e.g. `tls.insecure`) must reach a person too, not only
        // the program reading stdout.
        if let Event::Warning { message } = event {
            let _ = writeln!(std::io::stderr().lock(), "ferry: {message}");
        }
    }
}

/// Plain lines on stderr.
#[derive(Default)]
pub struct TextReporter {
    /// Serialises lines; remembers each session's last printed state so
    /// only changes are printed.
    out: Mutex<std::collections::HashMap<String, String>>,
}

impl TextReporter {
    fn line(&self, text: &str) {
        let _g = self.out.lock();
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// Whether `state` is new for `session` (and remember it).
    fn changed(&self, session: &str, state: &str) -> bool {
        let mut seen = self.out.lock().expect("not poisoned");
        if seen.get(session).map(String::as_str) == Some(state) {
            return false;
        }
        seen.insert(session.to_string(), state.to_string());
        true
    }
}

impl Reporter for TextReporter {
    fn event(&self, event: &Event) {
        match event {
            Event::RunStarted {
                plan,
                journal,
                resumed,
                accounts,
                sessions_planned,
            } => self.line(&format!(
                "ferry: {} {plan}: {} accounts in {sessions_planned} planned sessions \
                 ({} transferred already; journal {journal})",
                if *resumed { "resuming" } else { "applying" },
                accounts.total,
                accounts.transferred
            )),
            Event::StepFailed {
                step,
                error,
                retryable: false,
                ..
            } => self.line(&format!("  ! {step}: {error}")),
            Event::SessionState {
                session,
                id,
                state,
                accounts,
                done,
                ..
            } if self.changed(session, state) => self.line(&format!(
                "  {session} {state} ({done}/{accounts}){}",
                id.as_deref()
                    .map(|i| format!("  [{i}]"))
                    .unwrap_or_default()
            )),
            Event::ItemSucceeded {
                account,
                source,
                warnings,
                ..
            } => self.line(&format!(
                "  ✓ {account} ({source}){}",
                if *warnings { " with warnings" } else { "" }
            )),
            Event::ItemFailed {
                account,
                source,
                message,
                will_retry,
                ..
            } => self.line(&format!(
                "  ✗ {account} ({source}): {message}{}",
                if *will_retry {
                    " — will retry in a new session"
                } else {
                    ""
                }
            )),
            Event::SessionStalled {
                session, idle_secs, ..
            } => self.line(&format!("  ? {session}: no progress for {idle_secs}s")),
            Event::Warning { message } => self.line(&format!("ferry: {message}")),
            Event::RunPaused { reason, resume } => self.line(&format!(
                "ferry: paused: {reason}\n       resume with: {resume}"
            )),
            Event::RunAborted { reason } => self.line(&format!("ferry: aborted: {reason}")),
            Event::RunFinished {
                status,
                accounts,
                duration_secs,
                failed,
                next,
            } => {
                let mut s = format!(
                    "\n{}: {} of {} accounts transferred, {} failed, {} pending ({})\n",
                    match status {
                        RunStatus::Succeeded => "done",
                        RunStatus::Paused => "paused",
                        RunStatus::Partial => "finished with failures",
                        RunStatus::Aborted => "aborted",
                        RunStatus::Failed => "stopped",
                    },
                    accounts.transferred,
                    accounts.total,
                    accounts.failed,
                    accounts.pending,
                    humantime::format_duration(std::time::Duration::from_secs(
                        duration_secs.round() as u64
                    ))
                );
                for f in failed {
                    s.push_str(&format!(
                        "  failed {} ({}): {}\n",
                        f.account, f.source, f.message
                    ));
                }
                s.push_str(&format!("next: {next}"));
                self.line(&s);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_start_with_ts_and_event() {
        let line = json_line(&Event::Warning {
            message: "x".into(),
        });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "warning");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        assert!(line.starts_with("{\"ts\":"));
    }
}
