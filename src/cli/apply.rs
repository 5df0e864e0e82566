//! `ferry apply PLAN [--simulate[=SCENARIO]] [--output text|json]
//! [--journal PATH] [--restart] [--metrics-textfile PATH]
//! [--metrics-listen ADDR] [--metrics-push URL]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::OutputFormat;
use super::output::reporter;
use crate::ops::Outcome;
use crate::ops::apply::{ApplyOptions, apply};

/// Run the plan against the target, or resume it from its journal.
///
/// Every step is journaled before it acts, so a run interrupted any way
/// (Ctrl-C, a kill, a reboot) resumes with `ferry apply` again: nothing is
/// lost and no account is transferred twice.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
ferry apply --simulate plans/consolidation.yaml     rehearse on an in-process simulator\n  \
ferry apply plans/consolidation.yaml                run it (and resume it after any stop)\n  \
ferry apply --output json plans/x.yaml | jq -c 'select(.event==\"item_failed\")'\n\n\
Exit codes: 0 every account transferred; 1 runtime failure (run apply again);\n\
2 invalid plan or plan changed incompatibly; 3 paused (run apply again to resume);\n\
4 finished with failed accounts; 5 aborted (resume with --restart);\n\
6 another apply holds the journal.")]
pub struct ApplyArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Rehearse on an in-process whm-sim seeded from the plan (or from a
    /// scenario file); uses its own journal, never touches a real server.
    #[arg(long, value_name = "SCENARIO", num_args = 0..=1, require_equals = true)]
    pub simulate: Option<Option<PathBuf>>,
    /// `text` (progress on stderr) or `json` (one event per line on stdout).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The journal: a file, or `postgres://USER@HOST:PORT/DATABASE` (no
    /// password: the plan's `journal.postgres.password` or PGPASSWORD)
    /// [default: the plan's `journal:`, else .ferry/<plan stem>.journal;
    /// with --simulate .ferry/<plan stem>.simulate.journal].
    #[arg(long, value_name = "PATH|URL")]
    pub journal: Option<PathBuf>,
    /// Wait up to DURATION (e.g. `2m`) for another apply to release the
    /// journal instead of exiting 6; in PostgreSQL also for the lease of an
    /// apply that died, until it expires.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<std::time::Duration>,
    /// Resume a run that was aborted (accounts already transferred are kept).
    #[arg(long)]
    pub restart: bool,
    /// Accounts of the plan already on the target that the journal never
    /// saw transferred (a journal lost or restored from an older copy) are
    /// recorded as transferred if their owner and main domain match the
    /// plan and the source; the rest are moved; a mismatch is reported as a
    /// conflict, never transferred. Run it only once no transfer of them is
    /// running on the target.
    #[arg(long)]
    pub adopt: bool,
    #[command(flatten)]
    pub whm: super::WhmArgs,
    /// Keep the run's metrics in PATH for node_exporter's textfile
    /// collector (e.g. /var/lib/node_exporter/textfile/ferry.prom),
    /// rewritten atomically at most every 250ms and at exit.
    #[arg(long, value_name = "PATH", help_heading = "Metrics (docs/metrics.md)")]
    pub metrics_textfile: Option<PathBuf>,
    /// Serve GET /metrics on exactly ADDR while the run lasts; use a
    /// loopback address such as 127.0.0.1:9184 (another address works, with a warning).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, help_heading = "Metrics (docs/metrics.md)")]
    pub metrics_listen: Option<SocketAddr>,
    /// At exit, push the run's metrics to the Prometheus Pushgateway at URL
    /// (as URL/metrics/job/ferry/plan/<plan>); a failed push is a warning.
    #[arg(long, value_name = "URL", value_parser = crate::metrics::parse_push_url, help_heading = "Metrics (docs/metrics.md)")]
    pub metrics_push: Option<reqwest::Url>,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "give an IP address and a port, e.g. 127.0.0.1:9184 or [::1]:9184".to_string())
}

pub fn run(args: ApplyArgs) -> Outcome {
    let reporter: Arc<dyn crate::events::Reporter> = reporter(args.output);
    apply(ApplyOptions {
        plan: args.plan,
        simulate: args.simulate,
        journal: args.journal,
        restart: args.restart,
        adopt: args.adopt,
        request_timeout: args.whm.request_timeout,
        lock_timeout: args.lock_timeout,
        metrics: crate::metrics::Export {
            textfile: args.metrics_textfile,
            listen: args.metrics_listen,
            push: args.metrics_push,
        },
        reporter,
    })
}
