//! The reporter of `apply`, `pause` and `abort`: `report::reporter_for`
//! with the terminal read from the environment — progress bars on a
//! terminal, plain lines otherwise (or with `TERM=dumb`), no colour with
//! `NO_COLOR`, and for `--output json` JSON events on stdout with the human
//! lines on stderr (design §2, §7).

use std::sync::Arc;

use super::OutputFormat;
use crate::events::Reporter;

/// The reporter for `--output`.
pub fn reporter(format: OutputFormat) -> Arc<dyn Reporter> {
    Arc::from(crate::report::reporter_for_env(format.into()))
}
