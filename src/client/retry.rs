//! The ONE place that decides what a failed WHM call means for a retry.
//!
//! Owns: the classification of every [`ErrorKind`] ([`classify`],
//! [`may_have_applied`]), which functions may be repeated blindly
//! ([`idempotency`]), the backoff ([`RetryPolicy::delay`]: exponential with
//! full jitter, capped, honouring `Retry-After`) and the retry loop for
//! idempotent calls ([`retry_idempotent`]).
//!
//! Does not own: retrying `create_remote_root_transfer_session` or
//! `enqueue_transfer_item`. A lost answer to those may hide a call that took
//! effect; `exec` reconciles with the server first (design §5) and then
//! decides. Nothing in `client` retries on its own, so retries never stack.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::{Error, ErrorKind};

/// What a failure means for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Worth trying again later; wait at least `retry_after` if the server
    /// said so.
    Transient { retry_after: Option<Duration> },
    /// Trying again gives the same answer.
    Permanent,
    /// The server refused the credentials. Never retried, and the caller
    /// stops talking to that server: WHM's brute-force protection (cPHulk)
    /// blocks the source IP after repeated failed logins, which would lock
    /// the operator out as well.
    Auth,
    /// The server's certificate is not trusted: no call to it can succeed
    /// until the plan changes (`tls.ca_file`), so the caller stops talking
    /// to it too. Nothing was sent.
    Untrusted,
    /// This process may no longer act for the run (its lease is gone): no
    /// call may leave, and nothing was sent.
    Fenced,
}

impl Class {
    /// No call to this server can succeed until the plan changes: the gate
    /// stops every further call (`exec::api`).
    pub fn stops_every_call(self) -> bool {
        matches!(self, Class::Auth | Class::Untrusted | Class::Fenced)
    }
}

/// Classifies one failure. Every case has its reason.
pub fn classify(kind: &ErrorKind) -> Class {
    match kind {
        // Connection refused, DNS failure, unreachable, connect timeout: the
        // server (or the network) may be back in a moment, and nothing was
        // sent, so a retry is safe even for non-idempotent calls.
        ErrorKind::Connect(_) => Class::Transient { retry_after: None },
        // No answer in time: the server may be overloaded or the call slow
        // (a blocking log fetch). Transient, but the call may have been
        // applied (`may_have_applied`).
        ErrorKind::Timeout => Class::Transient { retry_after: None },
        // Reset / closed connection after sending: transient, may have been
        // applied.
        ErrorKind::ConnectionLost(_) => Class::Transient { retry_after: None },
        // 429 Too Many Requests and every 5xx (500 internal error, 502/504 a
        // proxy in front of cpsrvd, 503 restarting): transient; 429 and 503
        // carry `Retry-After`, which the backoff honours.
        ErrorKind::Http {
            status,
            retry_after,
        } if *status == 429 || (500..600).contains(status) => Class::Transient {
            retry_after: *retry_after,
        },
        // Any other status (400, 404 — wrong URL or port, 405, a 3xx we
        // refuse to follow): the request itself is wrong; repeating it
        // changes nothing.
        ErrorKind::Http { .. } => Class::Permanent,
        // 401/403: token refused. Never retried (see `Class::Auth`).
        ErrorKind::AuthRefused { .. } => Class::Auth,
        // `metadata.result = 0`: WHM ran the function and refused it (bad
        // parameter, duplicate item, wrong state). The same call gets the
        // same refusal; the caller decides what the refusal means.
        ErrorKind::Whm { .. } => Class::Permanent,
        // Not a WHM envelope (a login page, a proxy's error page, a field
        // missing): not something waiting fixes.
        ErrorKind::Decode(_) => Class::Permanent,
        // Certificate not trusted: the operator must fix the plan
        // (`tls.ca_file`), waiting does not help, and neither does any other
        // call to the same server.
        ErrorKind::Tls(_) => Class::Untrusted,
        // The lease check before the request failed: nothing was sent, and
        // nothing more may be (`exec::api`).
        ErrorKind::Fenced(_) => Class::Fenced,
        // Invalid configuration: nothing was sent; fix the plan.
        ErrorKind::Config(_) => Class::Permanent,
    }
}

/// `false` only when the request surely had no effect on the server.
pub fn may_have_applied(kind: &ErrorKind) -> bool {
    match kind {
        // Never reached the server: no connection, no TLS session, or not
        // even sent.
        ErrorKind::Connect(_) | ErrorKind::Tls(_) | ErrorKind::Config(_) | ErrorKind::Fenced(_) => {
            false
        }
        // cpsrvd refuses the token before dispatching the function.
        ErrorKind::AuthRefused { .. } => false,
        // The request was sent and the answer lost or unusable: the server
        // may have acted. A 5xx may come from a proxy after cpsrvd acted; a
        // `result = 0` from `create_remote_root_transfer_session` can still
        // leave a PENDING session row behind (docs/whm.md §2.1).
        ErrorKind::Timeout
        | ErrorKind::ConnectionLost(_)
        | ErrorKind::Http { .. }
        | ErrorKind::Whm { .. }
        | ErrorKind::Decode(_) => true,
    }
}

/// What repeating a function would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reading, or an action WHM makes safe to repeat: state, logs,
    /// `listaccts`, `validate_system_user`, credential checks, analysis,
    /// `start_transfer_session` (returns the running pid; resumes a paused
    /// session without redoing work), pause/abort (a repeat is refused or
    /// absorbed, never doubled).
    Repeatable,
    /// A repeat may create a second session (`create_…`) or depends on the
    /// duplicate-key refusal (`enqueue_transfer_item`): reconcile first.
    ReconcileFirst,
}

/// What repeating `function` would do (by WHM function name).
pub fn idempotency(function: &str) -> Idempotency {
    match function {
        "create_remote_root_transfer_session"
        | "create_remote_user_transfer_session"
        | "enqueue_transfer_item" => Idempotency::ReconcileFirst,
        _ => Idempotency::Repeatable,
    }
}

/// How often and how patiently to retry transient failures (from the plan's
/// `policy.retries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub attempts: u32,
    /// Backoff ceiling of the first retry.
    pub initial: Duration,
    /// Backoff ceiling of any retry, and the longest `Retry-After` honoured.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// The plan's defaults: 5 attempts, 1 s initial, 60 s max.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No waiting between attempts: for tests.
    pub fn no_delay(attempts: u32) -> Self {
        RetryPolicy {
            attempts,
            initial: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    /// The wait before retry number `attempt` (1 = the first retry).
    ///
    /// Exponential with full jitter (AWS architecture blog, "Exponential
    /// Backoff And Jitter"): uniform in `[0, min(max, initial·2^(attempt-1))]`,
    /// so many clients hitting one server spread out. With a `Retry-After`
    /// from the server the wait is at least that long, but never above `max`
    /// (a server cannot park the run for an hour; the plan's `max_backoff`
    /// bounds every wait).
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let ceiling = self
            .initial
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        let jittered = if ceiling.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(
                rng.random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64),
            )
        };
        match retry_after {
            Some(ra) => jittered.max(ra).min(self.max),
            None => jittered,
        }
    }
}

/// Runs an idempotent call (see [`Idempotency::Repeatable`]) up to
/// `policy.attempts` times: a transient failure waits [`RetryPolicy::delay`]
/// and tries again; a permanent failure or an auth refusal returns at once.
/// `on_retry(attempt, &error, delay)` is told before each wait (attempt = the
/// retry about to happen, from 1) so the caller can log or journal it.
/// Returns the last error when the attempts run out.
pub async fn retry_idempotent<T, F, Fut>(
    policy: &RetryPolicy,
    mut on_retry: impl FnMut(u32, &Error, Duration),
    mut f: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let attempts = policy.attempts.max(1);
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        let mut err = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        // What the caller sees: every attempt, from the first.
        err.attempts = attempt;
        err.elapsed = started.elapsed();
        let retry_after = match err.class() {
            Class::Transient { retry_after } => retry_after,
            Class::Permanent | Class::Auth | Class::Untrusted | Class::Fenced => return Err(err),
        };
        // A call whose repeat may duplicate its effect is never repeated
        // here, whoever passes it: its caller reconciles first (design §5).
        if attempt >= attempts || idempotency(err.function) == Idempotency::ReconcileFirst {
            return Err(err);
        }
        // The thread-local rng is dropped before the await (it is not Send).
        let delay = policy.delay(attempt, retry_after, &mut rand::rng());
        on_retry(attempt, &err, delay);
        tracing::debug!(
            function = err.function,
            attempt,
            delay_ms = delay.as_millis() as u64,
            "retrying a transient WHM failure"
        );
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn err(kind: ErrorKind) -> Error {
        Error {
            function: "get_transfer_session_state",
            kind,
            elapsed: Duration::from_millis(3),
            attempts: 1,
        }
    }

    #[test]
    fn classification_table() {
        let t = |k: ErrorKind| (classify(&k), may_have_applied(&k));
        let transient = Class::Transient { retry_after: None };
        assert_eq!(t(ErrorKind::Connect("refused".into())), (transient, false));
        assert_eq!(t(ErrorKind::Timeout), (transient, true));
        assert_eq!(
            t(ErrorKind::ConnectionLost("reset".into())),
            (transient, true)
        );
        for status in [500, 502, 503, 504] {
            assert_eq!(
                t(ErrorKind::Http {
                    status,
                    retry_after: None
                }),
                (transient, true),
                "{status}"
            );
        }
        let ra = Some(Duration::from_secs(7));
        assert_eq!(
            classify(&ErrorKind::Http {
                status: 429,
                retry_after: ra
            }),
            Class::Transient { retry_after: ra }
        );
        assert_eq!(
            classify(&ErrorKind::Http {
                status: 503,
                retry_after: ra
            }),
            Class::Transient { retry_after: ra }
        );
        for status in [301, 400, 404, 405] {
            assert_eq!(
                classify(&ErrorKind::Http {
                    status,
                    retry_after: None
                }),
                Class::Permanent,
                "{status}"
            );
        }
        assert_eq!(
            t(ErrorKind::AuthRefused { status: 401 }),
            (Class::Auth, false)
        );
        assert_eq!(
            t(ErrorKind::AuthRefused { status: 403 }),
            (Class::Auth, false)
        );
        assert_eq!(
            t(ErrorKind::Whm { reason: "x".into() }),
            (Class::Permanent, true)
        );
        assert_eq!(t(ErrorKind::Decode("x".into())), (Class::Permanent, true));
        assert_eq!(t(ErrorKind::Tls("x".into())), (Class::Untrusted, false));
        assert_eq!(t(ErrorKind::Config("x".into())), (Class::Permanent, false));
    }

    #[test]
    fn create_and_enqueue_need_reconciliation() {
        assert_eq!(
            idempotency("create_remote_root_transfer_session"),
            Idempotency::ReconcileFirst
        );
        assert_eq!(
            idempotency("enqueue_transfer_item"),
            Idempotency::ReconcileFirst
        );
        for f in [
            "start_transfer_session",
            "get_transfer_session_state",
            "fetch_transfer_session_log",
            "listaccts",
            "pause_transfer_session",
        ] {
            assert_eq!(idempotency(f), Idempotency::Repeatable, "{f}");
        }
    }

    #[test]
    fn zero_policy_never_waits() {
        let p = RetryPolicy::no_delay(5);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for a in 1..10 {
            assert_eq!(p.delay(a, None, &mut rng), Duration::ZERO);
            assert_eq!(
                p.delay(a, Some(Duration::from_secs(30)), &mut rng),
                Duration::ZERO
            );
        }
    }

    proptest! {
        #[test]
        fn backoff_stays_within_bounds(
            attempt in 1u32..200,
            initial_ms in 0u64..10_000,
            max_ms in 0u64..120_000,
            retry_after_ms in proptest::option::of(0u64..600_000),
            seed: u64,
        ) {
            let p = RetryPolicy {
                attempts: 5,
                initial: Duration::from_millis(initial_ms),
                max: Duration::from_millis(max_ms),
            };
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let ra = retry_after_ms.map(Duration::from_millis);
            let d = p.delay(attempt, ra, &mut rng);
            // Never above the cap.
            prop_assert!(d <= p.max);
            // Never above the exponential ceiling, unless Retry-After asks for more.
            let ceiling = Duration::from_millis(initial_ms)
                .saturating_mul(2u32.saturating_pow((attempt - 1).min(31)))
                .min(p.max);
            match ra {
                None => prop_assert!(d <= ceiling),
                Some(ra) => {
                    prop_assert!(d >= ra.min(p.max));
                    prop_assert!(d <= ceiling.max(ra).min(p.max));
                }
            }
        }
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let p = RetryPolicy {
            attempts: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let ds: Vec<_> = (0..200).map(|_| p.delay(4, None, &mut rng)).collect();
        let lo = ds.iter().filter(|d| **d < Duration::from_secs(4)).count();
        let hi = ds.len() - lo;
        // Uniform over [0, 8s]: both halves well populated.
        assert!(lo > 50 && hi > 50, "lo {lo} hi {hi}");
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let mut seen = vec![];
        let out = retry_idempotent(
            &RetryPolicy::no_delay(5),
            |a, e, d| seen.push((a, e.kind.clone(), d)),
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(err(ErrorKind::Timeout)),
                    1 => Err(err(ErrorKind::Http {
                        status: 500,
                        retry_after: None,
                    })),
                    _ => Ok(7),
                }
            },
        )
        .await;
        assert_eq!(out, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, 1);
        assert_eq!(seen[1].0, 2);
    }

    #[tokio::test]
    async fn auth_and_permanent_are_not_retried() {
        for kind in [
            ErrorKind::AuthRefused { status: 403 },
            ErrorKind::Whm {
                reason: "no".into(),
            },
        ] {
            let calls = AtomicU32::new(0);
            let out: Result<(), _> = retry_idempotent(
                &RetryPolicy::no_delay(5),
                |_, _, _| panic!("no retry expected"),
                || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let k = kind.clone();
                    async move { Err(err(k)) }
                },
            )
            .await;
            assert_eq!(out.unwrap_err().kind, kind);
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn gives_up_after_attempts() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retry_idempotent(
            &RetryPolicy::no_delay(3),
            |_, _, _| {},
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(err(ErrorKind::ConnectionLost("reset".into()))) }
            },
        )
        .await;
        assert!(matches!(
            out.unwrap_err().kind,
            ErrorKind::ConnectionLost(_)
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
