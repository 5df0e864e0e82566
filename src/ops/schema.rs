//! `ferry schema`: the plan's JSON Schema, generated from the model.

use super::ExitStatus;

/// What `ferry schema` prints.
pub struct SchemaOutput {
    pub text: String,
    pub status: ExitStatus,
}

pub fn schema() -> SchemaOutput {
    SchemaOutput {
        text: crate::plan::schema::generate(),
        status: ExitStatus::Success,
    }
}
