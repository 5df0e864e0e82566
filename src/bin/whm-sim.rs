//! `whm-sim`: serve a simulated WHM target (design §6) until SIGINT/SIGTERM.
//! Parses flags, reads the scenario, binds, and hands over to
//! `ferry::sim::serve_with`; all behaviour lives in the library.
//!
//! `whm-sim --from-plan PLAN [--out FILE]` instead writes the rehearsal
//! scenario of a plan (`ferry::ops::simulate::rehearsal`, the mapping
//! `ferry apply --simulate` uses) and exits. The binary may read plans; the
//! `sim` module never does.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use ferry::sim::{self, Scenario};

const AFTER_HELP: &str = "\
Rehearse a migration:
  1. Write a scenario: the target's tokens and existing accounts, each source
     server (`remotes`) with its SSH credentials, packages and accounts, and
     `time_scale` (real seconds per simulated second; 0.001 = an hour in 3.6 s).
     Or start from your plan: whm-sim --from-plan plan.yaml --out rehearsal.yaml
     (every account and package of the plan on its source, any SSH credentials
     accepted, the token printed in `tokens:`), then edit it (add faults).
  2. whm-sim --scenario rehearsal.yaml --listen 127.0.0.1:0 --addr-file sim.url
  3. Point the plan's target.url at the printed URL and run ferry against it,
     or let `ferry apply --simulate` start an in-process simulator for you.
  4. curl -s $(cat sim.url)/__sim/state | jq .accounts   # what the target has:
     restores_started/completed/failed per account (each account restored once?)
     curl -s $(cat sim.url)/__sim/requests               # every API call received

Faults (scenario `faults:`, deterministic for a `seed`): http_500, reset (connection
closed unanswered), hang (never answered), latency_ms, fail_items (an account fails
N times), log_blocking (fetch_transfer_session_log blocks on an active log),
crash_at (simulated seconds at which every transfer process dies; sessions stay
RUNNING with nothing running) with crash_leaves: in_progress | failed,
restore_loses (databases/domains a restore cannot bring over) and
restore_summary (skipped/altered/dangerous items its summary reports).
Half of reset/hang strike after the call was applied. At run time:
  curl -X POST $URL/__sim/crash                 # crash now
  curl -X POST -d @faults.json $URL/__sim/faults # replace the fault settings (JSON)

API: WHM API 1 at /json-api/<function>?api.version=1 (GET query or POST form), header
`Authorization: whm USER:TOKEN` (anything else: HTTP 401 \"Access denied\").
See README.md, section whm-sim.";

/// A WHM target server simulator for ferry's tests and rehearsals.
#[derive(Debug, Parser)]
#[command(name = "whm-sim", version, after_help = AFTER_HELP)]
struct Args {
    /// Scenario file (YAML, design §6). Without it: an empty target that
    /// accepts the token root:s3cret, in real time.
    #[arg(long, value_name = "FILE", conflicts_with = "from_plan")]
    scenario: Option<PathBuf>,
    /// Write the rehearsal scenario of this ferry plan (every account and
    /// package present on its source, credentials accepted) and exit
    /// without serving. An invalid plan prints its problems and exits 2.
    #[arg(long, value_name = "PLAN")]
    from_plan: Option<PathBuf>,
    /// With --from-plan: write the scenario here instead of stdout.
    #[arg(long, value_name = "FILE", requires = "from_plan")]
    out: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2087")]
    listen: String,
    /// Also write the base URL to this file once listening.
    #[arg(long, value_name = "PATH")]
    addr_file: Option<PathBuf>,
    /// With `tls: self_signed`, write the generated CA certificate (PEM) here.
    #[arg(long, value_name = "PATH")]
    cert_out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(plan) = &args.from_plan {
        return from_plan(plan, args.out.as_deref());
    }
    let scenario = match &args.scenario {
        None => Scenario::default(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match Scenario::from_yaml(&text) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("whm-sim: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
            Err(e) => {
                eprintln!("whm-sim: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("whm-sim: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(args, scenario))
}

/// `--from-plan`: the plan's rehearsal scenario, to stdout or `out`.
fn from_plan(plan: &Path, out: Option<&Path>) -> ExitCode {
    let loaded = match ferry::plan::load(plan) {
        Ok(l) => l,
        Err(diags) => {
            eprint!("{}", diags.render_human(std::io::stderr().is_terminal()));
            return ExitCode::from(2);
        }
    };
    let mut scenario = ferry::ops::simulate::rehearsal(&loaded.plan);
    // Served on its own, the simulator is reached at the loopback URL it
    // prints, so plain HTTP keeps the recipe short; set `tls: self_signed`
    // (and `--cert-out`) to rehearse certificate handling too.
    scenario.tls = sim::TlsMode::None;
    let text = format!(
        "# whm-sim scenario seeded from {}: every account and package of the plan on its\n\
         # source, any SSH credentials accepted, served over plain HTTP (set\n\
         # `tls: self_signed` and pass --cert-out to rehearse certificates).\n\
         # Serve it: whm-sim --scenario FILE\n{}",
        plan.display(),
        scenario.to_yaml()
    );
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                eprintln!("whm-sim: cannot write the scenario: {e}");
                return ExitCode::from(1);
            }
        }
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("whm-sim: cannot write {}: {e}", path.display());
                return ExitCode::from(1);
            }
            let plural =
                |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            let accounts = scenario.remotes.iter().map(|r| r.accounts.len()).sum();
            eprintln!(
                "whm-sim: wrote {} ({}, {}); serve it with: whm-sim --scenario {}",
                path.display(),
                plural(scenario.remotes.len(), "remote"),
                plural(accounts, "account"),
                path.display()
            );
        }
    }
    ExitCode::SUCCESS
}

async fn run(args: Args, scenario: Scenario) -> ExitCode {
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("whm-sim: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("whm-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    let on_ready = |url: &str, ca: Option<&str>| -> Result<(), String> {
        if let (Some(path), Some(pem)) = (&args.cert_out, ca) {
            std::fs::write(path, pem)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        if let Some(path) = &args.addr_file {
            std::fs::write(path, format!("{url}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        println!("listening on {url}");
        Ok(())
    };
    match sim::serve_with(listener, scenario, on_ready, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// SIGINT or SIGTERM. The handlers are installed when this is called (before
/// the server announces itself), so a signal sent right after the
/// `listening on` line is never lost to the default action.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
