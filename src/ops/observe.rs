//! What watches a run of `ferry apply` besides the operator's reporter: the
//! metrics (`--metrics-*`, [`crate::metrics`]) and the plan's `notify:`
//! commands ([`crate::notify`]).
//!
//! Owns: starting them once the journal's lock is held (so a second
//! `apply` that exits 6 never touches the first one's textfile or port),
//! the hooks they need (the API observer, the journal's fsync observer,
//! the journal's account states for a resumed run), and ending them after
//! the run: last textfile, push, listener closed, notifications waited for.
//! Does not own: what they count or run, or how the run goes — nothing
//! here can fail a run; every failure is a warning.

use std::sync::Arc;

use crate::events::{Event, Reporter};
use crate::exec::Api;
use crate::journal::RunState;
use crate::metrics::{Exporter, Metrics};
use crate::notify::Notifier;
use crate::plan::LoadedPlan;

use super::apply::ApplyOptions;

/// The observers of one run.
pub(crate) struct Observers {
    metrics: Option<(Arc<Metrics>, Exporter)>,
    notifier: Option<Arc<Notifier>>,
}

impl Observers {
    /// Starts what `opts` and the plan ask for. `warn` (the operator's
    /// reporter, scrubbed) gets their warnings.
    pub(crate) async fn start(
        opts: &ApplyOptions,
        loaded: &LoadedPlan,
        warn: Arc<dyn Reporter>,
    ) -> Observers {
        let metrics = if opts.metrics.is_empty() {
            None
        } else {
            let identity = crate::metrics::plan_label(&loaded.identity(), opts.simulate.is_some());
            let m = Arc::new(Metrics::new(&identity, &loaded.plan));
            crate::journal::file::set_fsync_observer(Some(m.fsync_observer()));
            let exporter = Exporter::start(m.clone(), opts.metrics.clone(), warn.clone()).await;
            Some((m, exporter))
        };
        let notifier = Notifier::new(
            &loaded.plan,
            &loaded.base_dir,
            tokio::runtime::Handle::current(),
            warn,
        )
        .map(Arc::new);
        Observers { metrics, notifier }
    }

    /// The reporters that go beside the operator's, behind `Scrubbed`.
    pub(crate) fn reporters(&self) -> Vec<Box<dyn Reporter>> {
        let mut v: Vec<Box<dyn Reporter>> = Vec::new();
        if let Some((m, _)) = &self.metrics {
            v.push(Box::new(m.clone()));
        }
        if let Some(n) = &self.notifier {
            v.push(Box::new(n.clone()));
        }
        v
    }

    /// `api`, with the metrics told of every WHM attempt and retry.
    pub(crate) fn api(&self, api: Api) -> Api {
        match &self.metrics {
            Some((m, _)) => api.with_observer(m.clone()),
            None => api,
        }
    }

    /// A resumed run: the accounts as the journal left them.
    pub(crate) fn seed(&self, state: &RunState) {
        if let Some((m, _)) = &self.metrics {
            m.seed(
                state
                    .planned()
                    .map(|(u, a)| (u.as_str(), a.progress.label(), a.adopted.is_some())),
            );
        }
    }

    /// The run is over. `last` is the `run_finished` of a run that stopped
    /// with an error (the executor emitted none), for these observers only
    /// (`apply` gives it to the operator's reporter).
    pub(crate) async fn finish(self, last: Option<Event>) {
        if let Some(e) = &last {
            let to = crate::report::Fanout::new(self.reporters());
            crate::events::Scrubbed(Arc::new(to)).event(e);
        }
        if let Some((_, exporter)) = self.metrics {
            crate::journal::file::set_fsync_observer(None);
            exporter.finish().await;
        }
        if let Some(n) = &self.notifier {
            n.finish().await;
        }
    }
}
