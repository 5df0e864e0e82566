//! Notifications: the plan's `notify:` commands, run when the events they
//! name happen (docs/notify.md).
//!
//! Owns: [`Notifier`], a [`Reporter`] that, for each event a `notify:`
//! entry lists, runs that entry's command (no shell) with the event's JSON
//! on standard input — exactly the line `apply --output json` prints for
//! it — and `FERRY_EVENT` set to the event's name; ferry's environment is
//! passed on minus every variable a secret reference of the plan names.
//! Each command runs in its own process group, is killed (the whole group)
//! after its `timeout`, and its failure — a spawn error, a non-zero exit,
//! a timeout — is a warning line, never a failure of the run.
//!
//! Never blocks the executor: [`Reporter::event`] only spawns a task.
//! Bounded: at most [`RUNNING`] commands run at once and [`WAITING`] more
//! wait for their turn (in the order of their events); beyond that a
//! notification is dropped with a warning. When the run ends,
//! [`Notifier::finish`] waits for the outstanding ones as long as the
//! longest `timeout` of the plan, then stops the rest (with a warning).
//!
//! Does not own: which events exist (`events`), their JSON form
//! (`report::json`), or the plan's rules for `notify:` (`plan::rules`).
//! The events come through `events::Scrubbed`, so no secret reaches a
//! command's input; its output never reaches ferry's stdout (the command's
//! stdout is discarded, the start of its stderr goes into the warning).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::events::{Event, Reporter};
use crate::plan::{NotifyEvent, Plan};

/// Commands running at once, at most.
pub const RUNNING: usize = 4;
/// Notifications waiting for a free slot, at most.
pub const WAITING: usize = 64;
/// The start of a failed command's stderr that goes into the warning.
const STDERR_SHOWN: usize = 300;

/// The `notify:` entry an event is matched against, ready to run.
struct Entry {
    /// `notify[i]`, for messages.
    index: usize,
    events: Vec<NotifyEvent>,
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

/// Runs the plan's notification commands.
pub struct Notifier {
    entries: Vec<Arc<Entry>>,
    /// Variables removed from the commands' environment.
    hidden: Arc<[String]>,
    runtime: tokio::runtime::Handle,
    /// Where warnings go: the operator's reporter (never back here).
    warn: Arc<dyn Reporter>,
    slots: Arc<Semaphore>,
    /// Notifications running or waiting.
    outstanding: Arc<AtomicUsize>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The `notify:` name of an event (the `event` of its JSON line).
pub fn kind(e: &Event) -> NotifyEvent {
    match e {
        Event::RunStarted { .. } => NotifyEvent::RunStarted,
        Event::StepStarted { .. } => NotifyEvent::StepStarted,
        Event::StepSucceeded { .. } => NotifyEvent::StepSucceeded,
        Event::StepFailed { .. } => NotifyEvent::StepFailed,
        Event::SessionState { .. } => NotifyEvent::SessionState,
        Event::ItemSucceeded { .. } => NotifyEvent::ItemSucceeded,
        Event::ItemProgress { .. } => NotifyEvent::ItemProgress,
        Event::ItemFailed { .. } => NotifyEvent::ItemFailed,
        Event::SessionStalled { .. } => NotifyEvent::SessionStalled,
        Event::Warning { .. } => NotifyEvent::Warning,
        Event::RunPaused { .. } => NotifyEvent::RunPaused,
        Event::RunAborted { .. } => NotifyEvent::RunAborted,
        Event::RunFinished { .. } => NotifyEvent::RunFinished,
    }
}

fn name(k: NotifyEvent) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Notifier {
    /// The notifier of `plan` (`None` without `notify:` entries). Relative
    /// programs with a `/` are taken from `base_dir`, the plan's directory.
    /// Tasks are spawned on `runtime`; warnings go to `warn`.
    pub fn new(
        plan: &Plan,
        base_dir: &Path,
        runtime: tokio::runtime::Handle,
        warn: Arc<dyn Reporter>,
    ) -> Option<Notifier> {
        if plan.notify.is_empty() {
            return None;
        }
        let entries = plan
            .notify
            .iter()
            .enumerate()
            .filter_map(|(index, n)| {
                let (program, args) = n.command.split_first()?;
                let program = if program.contains('/') && Path::new(program).is_relative() {
                    base_dir.join(program)
                } else {
                    PathBuf::from(program)
                };
                Some(Arc::new(Entry {
                    index,
                    events: n.events.clone(),
                    program,
                    args: args.to_vec(),
                    timeout: n.timeout.0,
                }))
            })
            .collect();
        Some(Notifier {
            entries,
            hidden: plan.secret_env_names().into(),
            runtime,
            warn,
            slots: Arc::new(Semaphore::new(RUNNING)),
            outstanding: Arc::new(AtomicUsize::new(0)),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The run is over: waits for the notifications still running or
    /// waiting, at most the longest `timeout` of the plan (and a second),
    /// then stops the rest.
    pub async fn finish(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let longest = self.entries.iter().map(|e| e.timeout).max();
        let deadline = tokio::time::Instant::now()
            + longest.unwrap_or(Duration::ZERO)
            + Duration::from_secs(1);
        let mut stopped = 0;
        for mut t in tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                // Dropping the task's future kills its process group.
                t.abort();
                let _ = t.await;
                stopped += 1;
            }
        }
        if stopped > 0 {
            self.warn.event(&Event::Warning {
                message: format!(
                    "notify: {stopped} notification(s) were still waiting or running when the run ended, and were stopped"
                ),
            });
        }
    }
}

impl Reporter for Notifier {
    fn event(&self, event: &Event) {
        let k = kind(event);
        let mut line: Option<Arc<str>> = None;
        for entry in self.entries.iter().filter(|e| e.events.contains(&k)) {
            let event_name = name(k);
            if self.outstanding.fetch_add(1, Ordering::SeqCst) >= RUNNING + WAITING {
                self.outstanding.fetch_sub(1, Ordering::SeqCst);
                self.warn.event(&Event::Warning {
                    message: format!(
                        "notify: too many notifications outstanding ({RUNNING} running, {WAITING} waiting); \
                         the {event_name} notification of notify[{}] was dropped",
                        entry.index
                    ),
                });
                continue;
            }
            let line = line
                .get_or_insert_with(|| crate::report::json::line(event, SystemTime::now()).into())
                .clone();
            let job = Job {
                entry: entry.clone(),
                line,
                event: event_name,
                hidden: self.hidden.clone(),
            };
            let slots = self.slots.clone();
            let outstanding = self.outstanding.clone();
            let warn = self.warn.clone();
            let task = self.runtime.spawn(async move {
                // Fair: notifications start in the order of their events.
                let permit = slots.acquire_owned().await;
                if let Err(why) = job.run().await {
                    warn.event(&Event::Warning {
                        message: format!(
                            "notify: `{}` (notify[{}]) for {}: {why}; the run goes on",
                            job.entry.program.display(),
                            job.entry.index,
                            job.event
                        ),
                    });
                }
                drop(permit);
                outstanding.fetch_sub(1, Ordering::SeqCst);
            });
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
    }
}

/// One notification: an entry's command for one event.
struct Job {
    entry: Arc<Entry>,
    /// The event's JSON line, with its newline.
    line: Arc<str>,
    event: String,
    hidden: Arc<[String]>,
}

/// Kills a command's process group when dropped while armed: on a timeout,
/// or when [`Notifier::finish`] stops the task. Disarmed as soon as the
/// command is reaped (from then on its pid may be reused).
struct KillGroup(Option<u32>);

impl KillGroup {
    fn kill(&self) {
        #[cfg(unix)]
        if let Some(pid) = self.0
            && let Ok(pid) = i32::try_from(pid)
        {
            // SAFETY: kill(2) with a negative pid signals the process group
            // `pid`, which is the group the command leads
            // (`process_group(0)`); the leader is not reaped yet (the
            // guard is disarmed right after `wait`), so the id cannot have
            // been reused.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for KillGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Job {
    async fn run(&self) -> Result<(), String> {
        let e = &self.entry;
        let mut cmd = tokio::process::Command::new(&e.program);
        cmd.args(&e.args)
            .env("FERRY_EVENT", &self.event)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in self.hidden.iter() {
            cmd.env_remove(name);
        }
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|err| format!("cannot run it: {err}"))?;
        let mut guard = KillGroup(child.id());
        // Drain stderr as it comes (a full pipe would block the command),
        // keeping its start for the warning.
        let err_buf = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stderr.take().map(|mut stderr| {
            let buf = err_buf.clone();
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
                    let room = (4 * STDERR_SHOWN).saturating_sub(b.len());
                    b.extend_from_slice(&chunk[..n.min(room)]);
                }
            })
        });
        let stdin = child.stdin.take();
        let line = self.line.clone();
        let write = async move {
            if let Some(mut stdin) = stdin {
                // A command that does not read its input may exit first:
                // the broken pipe is not an error.
                let _ = stdin.write_all(line.as_bytes()).await;
                let _ = stdin.shutdown().await;
            }
        };
        let waited = tokio::time::timeout(e.timeout, async {
            let ((), status) = tokio::join!(write, child.wait());
            status
        })
        .await;
        let result = match waited {
            Ok(Ok(status)) => {
                guard.0 = None;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("{status}"))
                }
            }
            Ok(Err(err)) => Err(format!("cannot wait for it: {err}")),
            Err(_) => {
                guard.kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                guard.0 = None;
                Err(format!(
                    "killed after its timeout of {}",
                    humantime::format_duration(e.timeout)
                ))
            }
        };
        if let Some(r) = reader {
            // What is there by now; a grandchild may keep the pipe open.
            let _ = tokio::time::timeout(Duration::from_millis(200), r).await;
        }
        result.map_err(|why| {
            let err = err_buf.lock().unwrap_or_else(|e| e.into_inner());
            let text = String::from_utf8_lossy(&err);
            let text: String = text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(STDERR_SHOWN)
                .collect();
            if text.is_empty() {
                why
            } else {
                format!("{why} (stderr: {text})")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::AccountCounts;

    /// A notifier for `p` run in `dir`, and the warnings it reports.
    fn notifier(p: &Plan, dir: &std::path::Path) -> (Notifier, Arc<Warnings>) {
        let warn = Arc::new(Warnings::default());
        let n = Notifier::new(p, dir, tokio::runtime::Handle::current(), warn.clone()).unwrap();
        (n, warn)
    }

    #[test]
    fn every_event_kind_is_named_as_in_its_json() {
        for e in crate::report::scripted_run() {
            let line = crate::report::json::line(&e, SystemTime::now());
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["event"], name(kind(&e)).as_str(), "{line}");
        }
        let more = [
            Event::SessionStalled {
                session: "s".into(),
                id: "i".into(),
                idle_secs: 1,
            },
            Event::RunAborted { reason: "r".into() },
        ];
        for e in more {
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["event"], name(kind(&e)).as_str());
        }
    }

    fn plan(notify: serde_json::Value) -> Plan {
        serde_json::from_value(serde_json::json!({
            "version": 1,
            "target": {"url": "https://whm.example.net:2087", "token": {"env": "FERRY_NOTIFY_T_TOKEN"}},
            "sources": [{"name": "old1", "host": "old1.example.com",
                         "ssh": {"password": {"env": "HOME"}},
                         "accounts": ["a"]}],
            "notify": notify,
        }))
        .unwrap()
    }

    #[derive(Default)]
    struct Warnings(Mutex<Vec<String>>);
    impl Reporter for Warnings {
        fn event(&self, e: &Event) {
            if let Event::Warning { message } = e {
                self.0.lock().unwrap().push(message.clone());
            }
        }
    }

    fn finished() -> Event {
        Event::RunFinished {
            status: crate::events::RunStatus::Paused,
            accounts: AccountCounts::default(),
            duration_secs: 1.0,
            failed: vec![],
            next: "n".into(),
            plan: "p.yaml".into(),
            rehearsal: false,
            interrupted: false,
        }
    }

    #[tokio::test]
    async fn a_command_gets_the_json_line_the_event_name_and_no_secret_variable() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        // HOME, named by a secret reference, is in any test environment.
        let script = format!(
            "cat > {0}; echo \"$FERRY_EVENT ${{HOME-unset}}\" >> {0}",
            out.display()
        );
        let p = plan(serde_json::json!([
            {"events": ["run_finished"], "command": ["sh", "-c", script]}
        ]));
        let (n, warn) = notifier(&p, dir.path());
        n.event(&Event::Warning {
            message: "not subscribed".into(),
        });
        n.event(&finished());
        n.finish().await;
        let got = std::fs::read_to_string(&out).unwrap();
        let mut lines = got.lines();
        let json: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(json["event"], "run_finished");
        assert_eq!(json["status"], "paused");
        assert_eq!(lines.next(), Some("run_finished unset"));
        assert!(warn.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn failures_and_timeouts_are_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(serde_json::json!([
            {"events": ["run_finished"], "command": ["sh", "-c", "echo boom >&2; exit 3"]},
            {"events": ["run_finished"], "command": ["sh", "-c", "sleep 30"], "timeout": "200ms"},
            {"events": ["run_finished"], "command": ["./does-not-exist"]},
        ]));
        let (n, warn) = notifier(&p, dir.path());
        let t0 = std::time::Instant::now();
        n.event(&finished());
        n.finish().await;
        assert!(t0.elapsed() < Duration::from_secs(10));
        let mut w = warn.0.lock().unwrap().clone();
        w.sort();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w.iter()
                .any(|m| m.contains("exit status: 3") && m.contains("boom")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|m| m.contains("killed after its timeout of 200ms")),
            "{w:?}"
        );
        assert!(w.iter().any(|m| m.contains("cannot run it")), "{w:?}");
        assert!(w.iter().all(|m| m.contains("notify[")), "{w:?}");
    }
}
