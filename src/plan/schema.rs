//! The plan's JSON Schema, generated from the model (the one source of truth).
//!
//! Owns: [`generate`] (what `ferry schema` prints) and [`COMMITTED`], the
//! checked-in `schemas/plan.schema.json` (a test fails when the two differ;
//! regenerate with `ferry schema > schemas/plan.schema.json`).

use super::model::Plan;

/// The checked-in schema, as editors see it through the plans' modeline.
pub const COMMITTED: &str = include_str!("../../schemas/plan.schema.json");

/// The schema generated from the model types, pretty-printed, with a final
/// newline.
pub fn generate() -> String {
    let mut schema = schemars::schema_for!(Plan);
    schema.insert("title".into(), "ferry plan (version 1)".into());
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_schema_matches_the_types() {
        let generated = super::generate();
        assert!(
            generated == super::COMMITTED,
            "schemas/plan.schema.json is out of date with src/plan/model.rs; \
             regenerate it with `cargo run -q -- schema > schemas/plan.schema.json`"
        );
    }
}
