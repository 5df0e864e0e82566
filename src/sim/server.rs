//! HTTP(S) serving: the accept loop, routing, authentication, the WHM
//! envelope, injected faults and shutdown.
//!
//! whm-sim owns its accept loop (hyper's HTTP/1 connection per socket)
//! rather than a framework's `serve`, because a `reset` fault must close one
//! connection without an answer: the handler sets `SO_LINGER 0` on the
//! socket and cancels its connection task, so the client sees a reset, not
//! an HTTP response.
//!
//! # Authentication
//! `Authorization: whm USER:TOKEN` with a token of the scenario. Anything else
//! is refused with HTTP 401, `Content-Type: text/plain` and the body
//! `Access denied`, without running the function (cpsrvd's real answer is
//! unknown, docs/whm.md §10, second question). Inspection endpoints
//! (`/__sim/*`) need no auth and are never faulted.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

/// Every answer's body: whole, in memory.
type Body = Full<Bytes>;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::api::{self, Answer, Call};
use super::clock::Clock;
use super::engine::{RequestRecord, World};
use super::faults::{self, Strike};
use super::inspect;
use super::scenario::{FaultSpec, Scenario, TlsMode, TokenSpec};
use super::{SimError, tls};

/// State shared by the accept loop, every connection and the engine task.
pub(crate) struct Shared {
    /// The whole simulated target. A std mutex: it is held only for
    /// synchronous work, never across an await.
    pub world: Mutex<World>,
    pub clock: Clock,
    tokens: Vec<TokenSpec>,
    /// Bumped whenever the world advanced: blocked log fetches wait on it.
    changed: watch::Sender<u64>,
    /// Tells the engine task that the next event may be earlier now.
    wake: Notify,
    pub shutdown: CancellationToken,
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lock the world advanced to the current simulated time (waking blocked
    /// log fetches if anything happened).
    pub(crate) fn world_now(&self) -> MutexGuard<'_, World> {
        let mut w = self.world();
        let now = self.clock.now();
        if w.advance(now) {
            self.changed.send_modify(|g| *g += 1);
        }
        w
    }

    /// After a mutation: let the engine and blocked readers re-check.
    pub(crate) fn touched(&self) {
        self.changed.send_modify(|g| *g += 1);
        self.wake.notify_one();
    }
}

/// A running server: what `SimServer` keeps.
pub(crate) struct Running {
    pub shared: Arc<Shared>,
    pub base_url: String,
    pub ca_pem: Option<String>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Set up the world, TLS and the background tasks on `listener`.
pub(crate) fn launch(listener: TcpListener, scenario: Scenario) -> Result<Running, SimError> {
    scenario.validate()?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let material = match scenario.tls {
        TlsMode::None => None,
        TlsMode::SelfSigned => Some(tls::generate(&scenario.hostname)?),
    };
    let scheme = if material.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{host}:{}", addr.port());
    let clock = Clock::new(scenario.time_scale, scenario.epoch);
    let shared = Arc::new(Shared {
        tokens: scenario.tokens.clone(),
        world: Mutex::new(World::new(scenario, clock.clone())),
        clock,
        changed: watch::Sender::new(0),
        wake: Notify::new(),
        shutdown: CancellationToken::new(),
    });
    let acceptor = material
        .as_ref()
        .map(|m| tokio_rustls::TlsAcceptor::from(m.config.clone()));
    let tasks = vec![
        tokio::spawn(engine(shared.clone())),
        tokio::spawn(accept_loop(listener, shared.clone(), acceptor)),
    ];
    Ok(Running {
        shared,
        base_url,
        ca_pem: material.map(|m| m.ca_pem),
        tasks,
    })
}

/// Serve until `shutdown` completes (mini-redis style).
pub(crate) async fn serve(
    listener: TcpListener,
    scenario: Scenario,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let running = launch(listener, scenario)?;
    shutdown.await;
    stop(running).await;
    Ok(())
}

pub(crate) async fn stop(running: Running) {
    running.shared.shutdown.cancel();
    for t in running.tasks {
        let _ = t.await;
    }
}

/// The engine task: sleep until the next event is due (or something changed),
/// then advance the world.
async fn engine(shared: Arc<Shared>) {
    loop {
        let next = shared.world().next_event_time();
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(shared.clock.instant_for(t).into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        let deadline_passed = tokio::select! {
            _ = sleep => true,
            _ = shared.wake.notified() => false,
            _ = shared.shutdown.cancelled() => return,
        };
        let changed = {
            let mut w = shared.world();
            let mut t = shared.clock.now();
            if deadline_passed && let Some(n) = next {
                // the deadline passed in real time: the event is due even if
                // float rounding puts `clock.now()` a hair before it
                t = t.max(n);
            }
            w.advance(t)
        };
        if changed {
            shared.changed.send_modify(|g| *g += 1);
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    // EMFILE and friends: back off instead of spinning
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, shared.clone(), tls.clone()));
    }
}

/// What a handler may do to its own connection.
#[derive(Clone)]
struct ConnCtl {
    kill: CancellationToken,
    fd: i32,
}

impl ConnCtl {
    /// Close the connection with a TCP reset, without an answer.
    fn reset(&self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: `fd` is the socket of this connection, which stays open
        // until `kill` is cancelled (the connection task owns it); setsockopt
        // only reads the `linger` struct for the given length.
        unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        self.kill.cancel();
    }
}

async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let ctl = ConnCtl {
        kill: CancellationToken::new(),
        fd: stream.as_raw_fd(),
    };
    let svc_shared = shared.clone();
    let svc_ctl = ctl.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        let ctl = svc_ctl.clone();
        async move { Ok::<_, Infallible>(route(shared, ctl, req).await) }
    });
    let builder = hyper::server::conn::http1::Builder::new();
    match tls {
        None => {
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = ctl.kill.cancelled() => {}
                _ = shared.shutdown.cancelled() => {}
            }
        }
        Some(acceptor) => {
            let tls_stream = tokio::select! {
                r = acceptor.accept(stream) => match r { Ok(s) => s, Err(_) => return },
                _ = tokio::time::sleep(Duration::from_secs(30)) => return,
                _ = shared.shutdown.cancelled() => return,
            };
            let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = ctl.kill.cancelled() => {}
                _ = shared.shutdown.cancelled() => {}
            }
        }
    }
}

/// A request's whole body, at most `limit` bytes.
async fn read_body(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Limited::new(req.into_body(), limit)
        .collect()
        .await?
        .to_bytes())
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "text/plain; charset=utf-8"
            .parse()
            .unwrap_or_else(|_| unreachable!()),
    );
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=\"UTF-8\""
            .parse()
            .unwrap_or_else(|_| unreachable!()),
    );
    r
}

async fn route(shared: Arc<Shared>, ctl: ConnCtl, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if let Some(what) = path.strip_prefix("/__sim/") {
        return inspect_route(&shared, what, req).await;
    }
    if let Some(function) = path.strip_prefix("/json-api/") {
        let function = function.trim_end_matches('/').to_string();
        return api_route(shared, ctl, function, req).await;
    }
    text(StatusCode::NOT_FOUND, "Not Found\n")
}

async fn inspect_route(shared: &Arc<Shared>, what: &str, req: Request<Incoming>) -> Response<Body> {
    match (req.method().clone(), what) {
        (Method::GET, "state") => {
            let v = inspect::state(&shared.world_now());
            json_response(StatusCode::OK, &v)
        }
        (Method::GET, "requests") => {
            let v = inspect::requests(&shared.world_now());
            json_response(StatusCode::OK, &v)
        }
        (Method::POST, "crash") => {
            shared.world_now().crash_now();
            shared.touched();
            json_response(StatusCode::OK, &json!({"crashed": true}))
        }
        (Method::POST, "faults") => {
            let body = match read_body(req, 1 << 20).await {
                Ok(b) => b,
                Err(e) => return text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
            };
            match serde_json::from_slice::<FaultSpec>(&body) {
                Ok(spec) => match spec.validate() {
                    Ok(()) => {
                        let mut w = shared.world_now();
                        w.faults = spec;
                        w.reset_fault_state();
                        drop(w);
                        shared.touched();
                        json_response(StatusCode::OK, &json!({"faults": "replaced"}))
                    }
                    Err(e) => text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
                },
                Err(e) => text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

/// Secret-bearing parameters are recorded as `[redacted]`.
fn redact(key: &str, value: &str) -> String {
    let k = key.to_ascii_lowercase();
    if k.contains("pass") || k.contains("token") || k == "sshkey_passphrase" {
        "[redacted]".to_string()
    } else {
        value.to_string()
    }
}

fn parse_pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn unique_keys(pairs: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (k, _) in pairs {
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

fn authenticate(shared: &Shared, req: &Request<Incoming>) -> Option<String> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let rest = h.strip_prefix("whm ")?;
    let (user, token) = rest.trim().split_once(':')?;
    shared
        .tokens
        .iter()
        .find(|t| t.user == user && t.token == token)
        .map(|t| t.user.clone())
}

async fn api_route(
    shared: Arc<Shared>,
    ctl: ConnCtl,
    function: String,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let query = parse_pairs(req.uri().query().unwrap_or("").as_bytes());
    let auth_user = authenticate(&shared, &req);
    let tag = req
        .headers()
        .get("x-whm-sim-tag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let body = if method == Method::POST {
        match read_body(req, 16 << 20).await {
            Ok(b) if form => parse_pairs(&b),
            Ok(_) => Vec::new(),
            Err(_) => return text(StatusCode::BAD_REQUEST, "Bad Request\n"),
        }
    } else {
        Vec::new()
    };
    // last occurrence wins; query first, then the body
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in query.iter().chain(body.iter()) {
        params.insert(k.clone(), v.clone());
    }
    let version = params.get("api.version").cloned();
    let (index, decision, hang_max, _in_flight) = {
        let mut w = shared.world_now();
        let index = w.requests.len() as u64;
        w.in_flight += 1;
        w.in_flight_max = w.in_flight_max.max(w.in_flight);
        let in_flight = InFlight {
            shared: shared.clone(),
            index,
        };
        let decision = faults::decide(&w.faults, index);
        let hang_max = Duration::from_secs_f64(w.faults.hang_max_secs);
        let sim_time = w.now;
        w.requests.push(RequestRecord {
            index,
            method: method.to_string(),
            function: function.clone(),
            query_keys: unique_keys(&query),
            body_keys: unique_keys(&body),
            params: params
                .iter()
                .map(|(k, v)| (k.clone(), redact(k, v)))
                .collect(),
            sim_time,
            auth_user: auth_user.clone(),
            tag,
            fault: decision.strike.label(),
            status: None,
            result: None,
            reason: None,
            finished: None,
        });
        *w.request_counts.entry(function.clone()).or_default() += 1;
        (index, decision, hang_max, in_flight)
    };
    if decision.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.latency_ms)).await;
    }
    match decision.strike {
        Strike::Http500 => {
            finish_record(&shared, index, 500, None);
            let mut r = text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
            r.headers_mut().insert(
                "content-type",
                "text/html".parse().unwrap_or_else(|_| unreachable!()),
            );
            return r;
        }
        Strike::Reset { after: false } => return reset(&ctl).await,
        Strike::Hang { after: false } => return hang(&shared, &ctl, hang_max).await,
        _ => {}
    }
    let Some(user) = auth_user else {
        finish_record(&shared, index, 401, None);
        return text(StatusCode::UNAUTHORIZED, "Access denied\n");
    };
    let answer = if version.as_deref() != Some("1") {
        let v = version.as_deref().unwrap_or("0");
        Answer {
            result: 0,
            reason: format!(
                "Unknown app (“{function}”) requested for this version ({v}) of the API."
            ),
            ..Answer::default()
        }
    } else {
        let mut args = params.clone();
        args.retain(|k, _| !k.starts_with("api."));
        match apply(&shared, &function, &args, &user, hang_max).await {
            Some(a) => a,
            // a log that never completed within the hang bound: no answer
            None => return hang(&shared, &ctl, Duration::ZERO).await,
        }
    };
    let envelope = answer.envelope(
        &function,
        version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
    );
    finish_record(&shared, index, 200, Some(&answer));
    match decision.strike {
        Strike::Reset { after: true } => reset(&ctl).await,
        Strike::Hang { after: true } => hang(&shared, &ctl, hang_max).await,
        _ => json_response(StatusCode::OK, &envelope),
    }
}

/// An API request being handled, from its record to the end of its
/// handler however it ends (the future is dropped when the connection goes).
struct InFlight {
    shared: Arc<Shared>,
    index: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.shared.clock.now();
        let mut w = self.shared.world();
        w.in_flight = w.in_flight.saturating_sub(1);
        if let Some(r) = w.requests.get_mut(self.index as usize) {
            r.finished = Some(now.max(r.sim_time));
        }
    }
}

/// Run a function against the world; a blocking log fetch waits (without
/// the lock) until its log completes. None: it did not complete within
/// `max` (or the server stops), and the request is dropped unanswered.
async fn apply(
    shared: &Arc<Shared>,
    function: &str,
    args: &BTreeMap<String, String>,
    user: &str,
    max: Duration,
) -> Option<Answer> {
    let mut changed = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let answer = {
            let mut w = shared.world_now();
            api::dispatch(
                &mut w,
                &Call {
                    function,
                    params: args,
                    caller: user,
                },
            )
        };
        let Some(_) = answer.wait_for_log else {
            shared.touched();
            return Some(answer);
        };
        changed.borrow_and_update();
        tokio::select! {
            r = changed.changed() => if r.is_err() { return None },
            _ = tokio::time::sleep_until(deadline) => return None,
            _ = shared.shutdown.cancelled() => return None,
        }
    }
}

fn finish_record(shared: &Shared, index: u64, status: u16, answer: Option<&Answer>) {
    let mut w = shared.world();
    if let Some(r) = w.requests.get_mut(index as usize) {
        r.status = Some(status);
        r.result = answer.map(|a| a.result);
        r.reason = answer.map(|a| a.reason.clone());
    }
}

/// Never answers: the connection is gone.
async fn reset(ctl: &ConnCtl) -> Response<Body> {
    ctl.reset();
    std::future::pending().await
}

async fn hang(shared: &Shared, ctl: &ConnCtl, max: Duration) -> Response<Body> {
    tokio::select! {
        _ = tokio::time::sleep(max) => {}
        _ = shared.shutdown.cancelled() => {}
    }
    ctl.kill.cancel();
    std::future::pending().await
}
