//! The one gate to a WHM server: every call ferry makes — `apply`, `check`,
//! `pause`, `abort`, `verify` — goes through an [`Api`], which
//!
//! * stops every call once one found that no call to this server can
//!   succeed ([`client::Class::stops_every_call`]): the server refused the
//!   token (WHM's brute-force protection, cPHulk, locks out an address that
//!   keeps failing logins, which would lock the operator out too), or its
//!   certificate is not trusted (its message names the host and the fix,
//!   `tls.ca_file`). One such failure stops every task at its next call;
//! * retries idempotent calls through [`client::retry_idempotent`] — the one
//!   retry layer; the client never retries by itself, and every error class
//!   is decided in `client::retry` — telling the caller of each retry (the
//!   executor journals it as `step_failed {retryable: true}`);
//! * bounds the requests in flight to the server ([`Api::with_limit`]: the
//!   plan's `concurrency.api_requests`), each request holding a place only
//!   while it is on the wire; a call that may block (a log read while the
//!   session runs: WHM may hold an active log until it completes) takes its
//!   place on a slow lane that leaves at least one place free, so a state
//!   poll, a pause or an abort never waits behind it;
//! * checks the run's fence before every request, if it has one
//!   ([`Api::with_fence`]: the journal's lease in PostgreSQL): once this
//!   process may no longer act for the run, no request leaves;
//! * counts calls (API calls per account, in the benchmark), and tells an
//!   optional [`client::CallObserver`] (the metrics) of every attempt and
//!   retry.
//!
//! Non-idempotent calls (create, enqueue) go through [`Api::once`]: the
//! caller decides what to do with an ambiguous failure (design §5).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::client::{self, RetryPolicy, WhmClient};

/// Why a call gave up.
#[derive(Debug, Clone)]
pub enum CallError {
    /// No call to this server can succeed (the token refused, the
    /// certificate not trusted): `message` says so and what to do; no
    /// further call is made to it.
    Stopped {
        message: String,
        error: client::Error,
    },
    /// Any other failure, after the retries that apply.
    Failed(client::Error),
}

impl CallError {
    /// The failure of the call itself.
    pub fn error(&self) -> &client::Error {
        match self {
            CallError::Stopped { error, .. } | CallError::Failed(error) => error,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Stopped { message, .. } => f.write_str(message),
            CallError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// A retry about to happen (for the journal and the reporter).
pub struct RetryNote<'a> {
    pub attempt: u32,
    pub error: &'a client::Error,
    pub delay: Duration,
}

/// Which places a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Answers promptly (or times out): any place.
    Prompt,
    /// May block for long: the slow lane, one place fewer.
    Slow,
}

/// The places of [`Api::with_limit`].
struct Limit {
    all: Semaphore,
    slow: Semaphore,
}

/// The gate.
pub struct Api {
    client: WhmClient,
    retry: RetryPolicy,
    stopped: Mutex<Option<(String, client::Error)>>,
    calls: AtomicU64,
    observer: Option<Arc<dyn client::CallObserver>>,
    limit: Option<Limit>,
    fence: Option<Fence>,
}

/// Checked right before every request: `Err` says why this process may no
/// longer act for the run (then every call stops, nothing is sent).
pub type Fence = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl Api {
    pub fn new(client: WhmClient, retry: RetryPolicy) -> Self {
        Api {
            client,
            retry,
            stopped: Mutex::new(None),
            calls: AtomicU64::new(0),
            observer: None,
            limit: None,
            fence: None,
        }
    }

    /// The gate, checking `fence` right before every request.
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// The gate, telling `observer` of every attempt and retry (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn client::CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// At most `n` requests in flight to the server (at least 1); calls that
    /// may block use at most `n - 1` of them (at least 1).
    pub fn with_limit(mut self, n: usize) -> Self {
        let n = n.max(1);
        self.limit = Some(Limit {
            all: Semaphore::new(n),
            slow: Semaphore::new(n.saturating_sub(1).max(1)),
        });
        self
    }

    pub fn client(&self) -> &WhmClient {
        &self.client
    }

    /// Calls made so far (attempts included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Why every call stopped, if one found that none can succeed.
    pub fn refused(&self) -> Option<String> {
        self.stopped
            .lock()
            .expect("not poisoned")
            .as_ref()
            .map(|(m, _)| m.clone())
    }

    fn stop_error(&self) -> Option<CallError> {
        self.stopped
            .lock()
            .expect("not poisoned")
            .as_ref()
            .map(|(message, error)| CallError::Stopped {
                message: message.clone(),
                error: error.clone(),
            })
    }

    fn note(&self, r: Result<(), &client::Error>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r
            && e.class().stops_every_call()
        {
            let mut g = self.stopped.lock().expect("not poisoned");
            if g.is_none() {
                *g = Some((self.stop_message(e), e.clone()));
            }
        }
    }

    /// What the operator is told when `e` stops every call.
    fn stop_message(&self, e: &client::Error) -> String {
        match e.class() {
            client::Class::Auth => format!(
                "{e}. ferry stopped every call to {} at once: WHM blocks an address that keeps failing logins",
                self.client.host()
            ),
            _ => e.kind.to_string(),
        }
    }

    fn wrap<T>(&self, r: Result<T, client::Error>) -> Result<T, CallError> {
        match r {
            Ok(v) => Ok(v),
            Err(e) if e.class().stops_every_call() => Err(CallError::Stopped {
                message: self.refused().unwrap_or_else(|| self.stop_message(&e)),
                error: e,
            }),
            Err(e) => Err(CallError::Failed(e)),
        }
    }

    /// The call, watched by the observer (made now, sent when awaited).
    fn call<T, Fut>(
        &self,
        make: impl FnOnce(WhmClient) -> Fut,
    ) -> impl Future<Output = Result<T, client::Error>>
    where
        Fut: Future<Output = Result<T, client::Error>>,
    {
        let (c, watch) = client::watched(&self.client, self.observer.as_ref());
        watch.time(make(c))
    }

    /// One attempt: its place in the limit, then the call, then the count.
    async fn attempt<T>(
        &self,
        lane: Lane,
        call: impl Future<Output = Result<T, client::Error>>,
    ) -> Result<T, client::Error> {
        // Held only while the request is on the wire. The semaphores are
        // never closed, so acquiring cannot fail.
        let _slow = match (&self.limit, lane) {
            (Some(l), Lane::Slow) => l.slow.acquire().await.ok(),
            _ => None,
        };
        let _place = match &self.limit {
            Some(l) => l.all.acquire().await.ok(),
            None => None,
        };
        if let Some(fence) = &self.fence
            && let Err(why) = fence()
        {
            // Not a call: not counted, not observed; every later call stops.
            let e = client::Error {
                function: "(none: the lease check came first)",
                kind: client::ErrorKind::Fenced(why),
                elapsed: Duration::ZERO,
                attempts: 0,
            };
            let mut g = self.stopped.lock().expect("not poisoned");
            if g.is_none() {
                *g = Some((e.kind.to_string(), e.clone()));
            }
            return Err(e);
        }
        let r = call.await;
        self.note(r.as_ref().map(|_| ()));
        r
    }

    /// One attempt, no retry (create, enqueue).
    pub async fn once<T, F, Fut>(&self, f: F) -> Result<T, CallError>
    where
        F: FnOnce(WhmClient) -> Fut,
        Fut: Future<Output = Result<T, client::Error>>,
    {
        if let Some(e) = self.stop_error() {
            return Err(e);
        }
        let r = self.attempt(Lane::Prompt, self.call(f)).await;
        self.wrap(r)
    }

    /// One attempt of a call that may block for long (a log read while its
    /// session runs), on the slow lane: it never holds the last place.
    pub async fn once_slow<T, F, Fut>(&self, f: F) -> Result<T, CallError>
    where
        F: FnOnce(WhmClient) -> Fut,
        Fut: Future<Output = Result<T, client::Error>>,
    {
        if let Some(e) = self.stop_error() {
            return Err(e);
        }
        let r = self.attempt(Lane::Slow, self.call(f)).await;
        self.wrap(r)
    }

    /// An idempotent call, retried on transient failures (backoff with full
    /// jitter, `Retry-After` honoured, up to `policy.retries.attempts`).
    /// `on_retry` hears about each retry before its wait.
    pub async fn repeatable<T, F, Fut>(
        &self,
        mut on_retry: impl FnMut(RetryNote<'_>),
        mut f: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(WhmClient) -> Fut,
        Fut: Future<Output = Result<T, client::Error>>,
    {
        if let Some(e) = self.stop_error() {
            return Err(e);
        }
        let r = client::retry_idempotent(
            &self.retry,
            |attempt, error, delay| {
                if let Some(o) = &self.observer {
                    o.retry(error);
                }
                on_retry(RetryNote {
                    attempt,
                    error,
                    delay,
                })
            },
            || {
                // Re-checked before every attempt: another task may have
                // stopped every call while this one waited for its backoff.
                let stopped = self.stop_error();
                let (c, watch) = client::watched(&self.client, self.observer.as_ref());
                let attempt = self.attempt(Lane::Prompt, watch.time(f(c)));
                async move {
                    match stopped {
                        Some(e) => Err(e.error().clone()),
                        None => attempt.await,
                    }
                }
            },
        )
        .await;
        self.wrap(r)
    }

    /// The retry policy (for create/enqueue loops the executor runs itself).
    pub fn policy(&self) -> &RetryPolicy {
        &self.retry
    }
}
