//! A structural pass over a document that did not deserialize (placeholder).

use super::locate::SourceIndex;
use super::rules::Problem;

pub(crate) fn check(_text: &str, _idx: &SourceIndex) -> Vec<Problem> {
    Vec::new()
}
