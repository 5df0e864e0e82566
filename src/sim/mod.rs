//! `whm-sim`: a WHM target server simulator for the transfer functions.
//!
//! Owns: the scenario file (design §6), a model of WHM's transfer sessions
//! written from `docs/whm.md` alone (it imports nothing from `plan`,
//! `graph`, `exec`, `journal` or `client`, so a misunderstanding in the
//! client cannot leak into the fake), simulated time, injected faults, TLS,
//! and the inspection endpoints `/__sim/state` and `/__sim/requests` that
//! end-to-end tests use as their oracle. Does not own: turning a plan into a
//! scenario (`ferry apply --simulate` does that with
//! [`Scenario::rehearsal`]), or printing anything.
//!
//! Layout:
//! * [`scenario`] — the YAML scenario (serde types, sizes like `50MB`);
//! * `server` — accept loop, auth, envelope, faults, shutdown;
//! * `api` — the WHM API 1 functions and their parameter checks (the
//!   transfer functions, the target's own account functions, `nvset`/`nvget`);
//! * `session` — session states and start/pause/abort (opens with the table);
//! * `engine` — the world, its event queue and the worker/timing model;
//! * `clock` — simulated time (`time_scale`); `faults` — seeded decisions;
//! * `masterlog` — `master.log` and item-log lines, `.`-prefixed active
//!   logs (what an item writes when: `engine/itemlog.rs`);
//! * `modules` — item module ids and schemas; `inspect` — `/__sim/*`;
//! * `tls` — the generated CA and server certificate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry::sim::SimError> {
//! use ferry::sim::{Scenario, SimServer};
//! let sim = SimServer::start(Scenario::default()).await?;
//! println!("{}", sim.base_url());
//! let state = sim.state(); // same JSON as GET /__sim/state
//! # let _ = state;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod clock;
mod engine;
mod faults;
mod inspect;
mod masterlog;
mod modules;
pub mod scenario;
mod server;
mod session;
mod tls;

use std::future::Future;

pub use api::FUNCTIONS;
pub use scenario::{
    AccountSpec, CrashLeaves, ExistingAccount, ExistingAccountSpec, FailItem, FailStage, FaultSpec,
    RemoteSpec, RestoreLoss, RestoreSummary, Scenario, ScenarioError, Size, SshSpec, TargetSpec,
    TlsMode, TokenSpec,
};

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("whm-sim: {0}")]
    Io(#[from] std::io::Error),
    #[error("whm-sim: TLS setup failed: {0}")]
    Tls(String),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The `on_ready` callback of [`serve_with`] failed.
    #[error("whm-sim: {0}")]
    Ready(String),
}

/// A simulator serving in the background on the current tokio runtime.
pub struct SimServer {
    running: server::Running,
}

impl SimServer {
    /// Bind `127.0.0.1:0` and serve in the background.
    pub async fn start(scenario: Scenario) -> Result<SimServer, SimError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Ok(SimServer {
            running: server::launch(listener, scenario)?,
        })
    }

    /// Serve on an already bound listener.
    pub async fn start_on(
        scenario: Scenario,
        listener: std::net::TcpListener,
    ) -> Result<SimServer, SimError> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        Ok(SimServer {
            running: server::launch(listener, scenario)?,
        })
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.running.base_url
    }

    /// The CA certificate (PEM) when `tls: self_signed`.
    pub fn ca_pem(&self) -> Option<&str> {
        self.running.ca_pem.as_deref()
    }

    /// The same JSON as `GET /__sim/state`.
    pub fn state(&self) -> serde_json::Value {
        inspect::state(&self.running.shared.world_now())
    }

    /// The same JSON as `GET /__sim/requests`.
    pub fn requests(&self) -> serde_json::Value {
        inspect::requests(&self.running.shared.world())
    }

    /// Current simulated time in seconds.
    pub fn sim_time(&self) -> f64 {
        self.running.shared.clock.now()
    }

    /// Kill every transfer process now, as `crash_at` does (`POST /__sim/crash`).
    pub fn crash_now(&self) {
        let shared = &self.running.shared;
        shared.world_now().crash_now();
        shared.touched();
    }

    /// Stop serving; open connections are dropped.
    pub async fn shutdown(self) {
        server::stop(self.running).await;
    }
}

/// Serve on `listener` until `shutdown` completes (the binary passes
/// SIGINT/SIGTERM; tests pass their own future).
pub async fn serve(
    listener: tokio::net::TcpListener,
    scenario: Scenario,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    server::serve(listener, scenario, shutdown).await
}

/// Like [`serve`], calling `on_ready` with the base URL and CA (if any) once
/// the server is listening (the binary prints it and writes `--addr-file`);
/// an error from `on_ready` stops the server at once.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    scenario: Scenario,
    on_ready: impl FnOnce(&str, Option<&str>) -> Result<(), String>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let running = server::launch(listener, scenario)?;
    if let Err(e) = on_ready(&running.base_url, running.ca_pem.as_deref()) {
        server::stop(running).await;
        return Err(SimError::Ready(e));
    }
    shutdown.await;
    server::stop(running).await;
    Ok(())
}
