//! The executor's gate to the target: every WHM call of a run goes through
//! [`Api`], which
//!
//! * refuses all calls once the server refused the token (an `Auth` error):
//!   WHM's brute-force protection (cPHulk) locks out an address that keeps
//!   failing logins, which would lock the operator out too. One refusal
//!   stops every session task at its next call. A TLS handshake failure
//!   (a certificate ferry does not trust) stops the run the same way: no
//!   call can succeed until the plan changes (`tls.ca_file`), and its
//!   message names the host and that fix;
//! * retries idempotent calls through `client::retry_idempotent` (the one
//!   retry layer; the client never retries by itself), journaling each
//!   retry as `step_failed {retryable: true}` and emitting it as an event;
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

use crate::client::{self, RetryPolicy, WhmClient};

/// Why a call gave up.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The server refused the token; no further call is made to it.
    Auth(String),
    /// Any other failure, after the retries that apply.
    Failed(client::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Auth(m) => f.write_str(m),
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

/// The gate.
pub struct Api {
    client: WhmClient,
    retry: RetryPolicy,
    auth_refused: Mutex<Option<String>>,
    calls: AtomicU64,
    observer: Option<Arc<dyn client::CallObserver>>,
}

impl Api {
    pub fn new(client: WhmClient, retry: RetryPolicy) -> Self {
        Api {
            client,
            retry,
            auth_refused: Mutex::new(None),
            calls: AtomicU64::new(0),
            observer: None,
        }
    }

    /// The gate, telling `observer` of every attempt and retry (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn client::CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn client(&self) -> &WhmClient {
        &self.client
    }

    /// Calls made so far (attempts included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The auth refusal that stopped all calls, if any.
    pub fn refused(&self) -> Option<String> {
        self.auth_refused.lock().expect("not poisoned").clone()
    }

    fn gate(&self) -> Result<(), CallError> {
        match self.refused() {
            Some(m) => Err(CallError::Auth(m)),
            None => Ok(()),
        }
    }

    fn note(&self, r: Result<(), &client::Error>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r
            && let Some(m) = self.fatal(e)
        {
            let mut g = self.auth_refused.lock().expect("not poisoned");
            if g.is_none() {
                *g = Some(m);
            }
        }
    }

    /// The message that stops every call, if `e` is an error after which no
    /// call to this server can succeed.
    fn fatal(&self, e: &client::Error) -> Option<String> {
        if e.class() == client::Class::Auth {
            return Some(format!(
                "{e}. ferry stopped every call to {} at once: WHM blocks an address that keeps failing logins",
                self.client.host()
            ));
        }
        matches!(e.kind, client::ErrorKind::Tls(_)).then(|| e.kind.to_string())
    }

    fn wrap<T>(&self, r: Result<T, client::Error>) -> Result<T, CallError> {
        match r {
            Ok(v) => Ok(v),
            Err(e) if self.fatal(&e).is_some() => Err(CallError::Auth(
                self.refused().unwrap_or_else(|| e.to_string()),
            )),
            Err(e) => Err(CallError::Failed(e)),
        }
    }

    /// One attempt, no retry (create, enqueue, a log fetch while running).
    pub async fn once<T, F, Fut>(&self, f: F) -> Result<T, CallError>
    where
        F: FnOnce(WhmClient) -> Fut,
        Fut: Future<Output = Result<T, client::Error>>,
    {
        self.gate()?;
        let (c, watch) = client::watched(&self.client, self.observer.as_ref());
        let r = watch.time(f(c)).await;
        self.note(r.as_ref().map(|_| ()));
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
        self.gate()?;
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
                // Re-checked before every attempt: another task may have hit
                // an auth refusal while this one waited for its backoff.
                let refused = self.refused().is_some();
                let (c, watch) = client::watched(&self.client, self.observer.as_ref());
                let fut = watch.time(f(c));
                async move {
                    if refused {
                        return Err(client::Error {
                            function: "(stopped after an auth refusal)",
                            kind: client::ErrorKind::AuthRefused { status: 401 },
                            elapsed: Duration::ZERO,
                        });
                    }
                    let r = fut.await;
                    self.note(r.as_ref().map(|_| ()));
                    r
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
