//! What `ferry` sets up before any command runs: log output, a panic hook
//! that cannot leak a secret, and a process that other users' debuggers
//! cannot read.
//!
//! Owns:
//! * [`init_logging`]: `tracing` to stderr. Verbosity from `RUST_LOG`
//!   (default [`DEFAULT_LOG`], warnings: an operator watches events, not logs;
//!   `RUST_LOG=ferry=debug` shows one line per WHM call and retry), format
//!   from `--log-format text|json`. Every line goes through [`Scrubbing`],
//!   so a registered secret is `[REDACTED]` whatever a dependency logs at
//!   `trace`. [`log_writer`] is the one place that chooses where lines go
//!   (the seam for routing them above progress bars).
//! * [`install_panic_hook`]: a short fixed message — where, which thread,
//!   the payload scrubbed of secrets, and that it is a bug to report with
//!   the journal — instead of the default hook.
//! * [`harden_process`]: on Linux, `PR_SET_DUMPABLE 0` (as ssh-agent does):
//!   no core dump holding the secrets in memory, and other processes of the
//!   same (non-root) user can neither ptrace ferry nor read its
//!   `/proc/<pid>/environ` and memory.
//!
//! Does not own: what is logged (each module's `tracing` calls, which log
//! names, ids, states and durations only) or the scrubber itself
//! (`crate::secret`).

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use super::LogFormat;
use crate::secret;

/// Where log lines go: stderr, above the progress bars while they are
/// drawn (`report::progress::StderrAboveBars`); [`init_logging`] scrubs
/// whatever is chosen here.
pub fn log_writer() -> BoxMakeWriter {
    BoxMakeWriter::new(|| crate::report::progress::StderrAboveBars)
}

/// The filter without `RUST_LOG`.
pub const DEFAULT_LOG: &str = "warn,rustls_platform_verifier=off";

/// Initialises `tracing` for the process (once; later calls do nothing).
/// `RUST_LOG` sets the verbosity (default `warn`; an unreadable directive
/// is ignored), `format` the line format.
pub fn init_logging(format: LogFormat) {
    init_logging_to(format, log_writer());
}

/// [`init_logging`] with an explicit writer (tests).
pub fn init_logging_to<W>(format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::builder()
            .with_default_directive(LevelFilter::WARN.into())
            .parse_lossy(v),
        // The default: warnings, except the certificate verifier's own
        // error line, which ferry's message (host and fix) replaces.
        _ => EnvFilter::new(DEFAULT_LOG),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Scrubbing(writer));
    // Err: a subscriber is already installed (a second call, a test).
    let _ = match format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(ansi).try_init()
        }
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// A [`MakeWriter`] whose writers scrub registered secrets from what they
/// are given. `tracing-subscriber` formats each event whole and writes it
/// with one `write_all`, so a secret is never split across two writes.
pub struct Scrubbing<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Scrubbing<M> {
    type Writer = ScrubWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubWriter(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        ScrubWriter(self.0.make_writer_for(meta))
    }
}

/// See [`Scrubbing`].
pub struct ScrubWriter<W>(pub W);

impl<W: Write> Write for ScrubWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => {
                self.0.write_all(secret::scrub(text).as_bytes())?;
                Ok(buf.len())
            }
            // Not text: nothing ferry formats; pass it on unchanged.
            Err(_) => self.0.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The sentence every panic message ends with.
pub const PANIC_ADVICE: &str =
    "this is a bug in ferry; please report it with the journal (it contains no secrets)";

/// Replaces the default panic hook with [`panic_message`] on stderr.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let text = panic_message(info);
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }));
}

/// The message of a panic: location, thread, payload (scrubbed of every
/// registered secret, and cut at 500 characters), a backtrace if
/// `RUST_BACKTRACE` asks for one, and [`PANIC_ADVICE`].
pub fn panic_message(info: &std::panic::PanicHookInfo<'_>) -> String {
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("<unnamed>");
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_else(|| "an unknown location".into());
    let payload = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    let mut payload = secret::scrub(&payload).into_owned();
    if payload.chars().count() > 500 {
        payload = payload.chars().take(500).collect::<String>() + "…";
    }
    let mut text = format!("ferry panicked in thread '{thread}' at {location}: {payload}\n");
    let bt = std::backtrace::Backtrace::capture();
    if bt.status() == std::backtrace::BacktraceStatus::Captured {
        text.push_str(&format!("backtrace:\n{bt}\n"));
    }
    text.push_str(PANIC_ADVICE);
    text
}

/// Makes the process non-dumpable (Linux): see the module doc. Best
/// effort; elsewhere a no-op.
pub fn harden_process() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes no pointers and only changes
    // this process's dumpable flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // A file-size limit (`ulimit -f`, a quota) must surface as a failed
    // journal write, which stops the run cleanly with its counts, not as
    // SIGXFSZ killing the process mid-record.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_panic_carrying_a_secret_prints_no_secret() {
        let secret = crate::secret::Secret::new("PANIC-ROOTPW-9f8e7d");
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = seen.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            sink.lock().unwrap().push_str(&panic_message(info));
        }));
        let value = secret.expose().to_string();
        let joined = std::thread::Builder::new()
            .name("worker-7".into())
            .spawn(move || panic!("login failed with password {value}"))
            .unwrap()
            .join();
        std::panic::set_hook(previous);
        assert!(joined.is_err());
        let text = seen.lock().unwrap().clone();
        assert!(!text.contains("PANIC-ROOTPW-9f8e7d"), "{text}");
        assert!(
            text.contains("login failed with password [REDACTED]"),
            "{text}"
        );
        assert!(text.contains("'worker-7'"), "{text}");
        assert!(text.contains("src/cli/diagnostics.rs:"), "{text}");
        assert!(text.ends_with(PANIC_ADVICE), "{text}");
    }

    #[test]
    fn log_lines_are_scrubbed() {
        let _s = crate::secret::Secret::new("LOG-TOKEN-1a2b3c");
        let mut out = Vec::new();
        let mut w = ScrubWriter(&mut out);
        w.write_all(b"DEBUG call reason=\"bad token LOG-TOKEN-1a2b3c\"\n")
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "DEBUG call reason=\"bad token [REDACTED]\"\n");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn hardened_process_is_not_dumpable() {
        harden_process();
        // SAFETY: PR_GET_DUMPABLE takes no pointers.
        let d = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        assert_eq!(d, 0);
    }
}
