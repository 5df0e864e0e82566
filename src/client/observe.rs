//! Telling an observer (the metrics, `crate::metrics`) about each WHM
//! attempt: which function, how it ended, how long it took.
//!
//! Owns: [`CallObserver`] and [`watched`], the one wrapper `exec::Api`
//! puts around an attempt. Does not own: what is counted or exported
//! (`metrics`), or deciding anything about the call — an observer only
//! watches, and without one nothing here runs at all.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CallTrace, Error, WhmClient};

/// Told of every WHM attempt and retry that passes `exec::Api`. Called
/// inline: implementations must be cheap and must not block.
pub trait CallObserver: Send + Sync {
    /// One attempt ended after `elapsed`; `function` is the WHM function.
    fn attempt(&self, function: &'static str, result: Result<(), &Error>, elapsed: Duration);
    /// A transient failure of a repeatable call is about to be retried.
    fn retry(&self, error: &Error);
}

/// What [`watched`] hands out with the client: times an attempt and
/// reports it to the observer (or, without one, does nothing at all).
pub struct Watch(Option<(Arc<dyn CallObserver>, Arc<CallTrace>)>);

/// The client to make one attempt with. With an observer, it is a
/// [`WhmClient::traced`] clone, and [`Watch::time`] reports the attempt
/// with the function it called (from the trace, or [`Error::function`]).
pub fn watched(client: &WhmClient, observer: Option<&Arc<dyn CallObserver>>) -> (WhmClient, Watch) {
    match observer {
        None => (client.clone(), Watch(None)),
        Some(o) => {
            let (client, trace) = client.traced();
            (client, Watch(Some((o.clone(), trace))))
        }
    }
}

impl Watch {
    /// Awaits the attempt `fut` (timed from its first poll) and reports it.
    pub async fn time<T>(self, fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let started = Instant::now();
        let r = fut.await;
        if let Some((o, trace)) = self.0 {
            let function = trace
                .function()
                .or(r.as_ref().err().map(|e| e.function))
                .unwrap_or("unknown");
            o.attempt(function, r.as_ref().map(|_| ()), started.elapsed());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ErrorKind;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(&'static str, bool)>>);
    impl CallObserver for Seen {
        fn attempt(&self, function: &'static str, result: Result<(), &Error>, _: Duration) {
            self.0.lock().unwrap().push((function, result.is_ok()));
        }
        fn retry(&self, _: &Error) {}
    }

    #[tokio::test]
    async fn an_attempt_is_reported_with_its_function_only_when_observed() {
        let (c, _) = crate::client::whm::tests::closed_port_client();
        let seen = Arc::new(Seen::default());
        let o: Arc<dyn CallObserver> = seen.clone();
        let (client, watch) = watched(&c, Some(&o));
        let r = watch.time(client.listaccts()).await;
        assert!(matches!(r.unwrap_err().kind, ErrorKind::Connect(_)));
        // An attempt that never reaches the client is named "unknown".
        let (_, watch) = watched(&c, Some(&o));
        assert!(watch.time(async { Ok(()) }).await.is_ok());
        let (client, watch) = watched(&c, None);
        let _ = watch.time(client.listaccts()).await;
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![("listaccts", false), ("unknown", true)]
        );
    }
}
